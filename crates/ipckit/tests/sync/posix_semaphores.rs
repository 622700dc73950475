//! POSIX semaphores, named and unnamed in shared memory.

use std::time::Duration;

use crate::support::{Reports, assert_no_leftovers, assert_success, reporter, shm_name, spawn_reporting};
use ipckit::ErrorKind;
use ipckit::sync::{NamedSemaphore, SEM_VALUE_MAX, SharedSemaphore};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{child_role, env, rerun};
use ipckit_testkit::scratch::{Scratch, SemName};

/// Child: opens the semaphores `IPCKIT_A` and `IPCKIT_B` (`IPCKIT_KIND`:
/// named or shared), reports "ready", then `IPCKIT_N` times waits on A and
/// posts B.
#[test]
#[ignore = "child process entry point"]
fn child_sem_echo() {
    let Some(_) = child_role() else { return };
    let n: u64 = env("IPCKIT_N").parse().unwrap();
    type Wait = Box<dyn Fn() -> ipckit::Result<()>>;
    let (wait, post): (Wait, Wait) = match env("IPCKIT_KIND").as_str() {
        "named" => {
            let a = NamedSemaphore::open(&env("IPCKIT_A")).unwrap();
            let b = NamedSemaphore::open(&env("IPCKIT_B")).unwrap();
            (Box::new(move || a.wait_timeout(HANG_GUARD)), Box::new(move || b.post()))
        }
        _ => {
            let a = SharedSemaphore::open(&shm_name(&env("IPCKIT_A"))).unwrap();
            let b = SharedSemaphore::open(&shm_name(&env("IPCKIT_B"))).unwrap();
            (Box::new(move || a.wait_timeout(HANG_GUARD)), Box::new(move || b.post()))
        }
    };
    reporter().send(b"ready").unwrap();
    for i in 0..n {
        wait().unwrap_or_else(|e| panic!("round {i}: {e}"));
        post().unwrap();
    }
}

const ECHOES: u64 = 2_000;

/// Drives `child_sem_echo` through `post` (to A) and `wait` (on B): half in
/// lock step, half as a burst of posts answered by a burst.
pub(crate) fn echo(post: &dyn Fn() -> ipckit::Result<()>, wait: &dyn Fn() -> ipckit::Result<()>, mut reports: Reports) {
    reports.expect("ready");
    for i in 0..ECHOES / 2 {
        post().unwrap();
        wait().unwrap_or_else(|e| panic!("lock step {i}: {e}"));
    }
    for _ in 0..ECHOES / 2 {
        post().unwrap();
    }
    for i in 0..ECHOES / 2 {
        wait().unwrap_or_else(|e| panic!("burst {i}: {e}"));
    }
}

#[test]
fn named_semaphores_between_processes() {
    let s = Scratch::new("sync-named");
    {
        let (an, bn) = (SemName::new(&s, "a"), SemName::new(&s, "b"));
        let a = NamedSemaphore::create(&an.0, 0, 0o600).unwrap();
        let b = NamedSemaphore::create(&bn.0, 0, 0o600).unwrap();
        let (child, reports) = spawn_reporting(
            rerun("posix_semaphores::child_sem_echo", "echo")
                .env("IPCKIT_KIND", "named")
                .env("IPCKIT_A", &an.0)
                .env("IPCKIT_B", &bn.0)
                .env("IPCKIT_N", ECHOES.to_string()),
        );
        echo(&|| a.post(), &|| b.wait_timeout(HANG_GUARD), reports);
        assert_success(child.wait(), "echo");
        assert_eq!((a.value().unwrap(), b.value().unwrap()), (0, 0));

        // Empty: Busy now, TimedOut later.
        assert_eq!(b.try_wait().unwrap_err().kind(), ErrorKind::Busy);
        let e = b.wait_timeout(Duration::from_millis(20)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");

        // SEM_VALUE_MAX: no initial value above it, no post beyond it.
        let cn = SemName::new(&s, "c");
        let e = NamedSemaphore::create(&cn.0, SEM_VALUE_MAX + 1, 0o600).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        let c = NamedSemaphore::create(&cn.0, SEM_VALUE_MAX, 0o600).unwrap();
        let e = c.post().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert_eq!(c.value().unwrap(), SEM_VALUE_MAX);
        c.try_wait().unwrap();
        c.post().unwrap();

        // Existence, names, removal.
        assert_eq!(NamedSemaphore::create(&an.0, 0, 0o600).unwrap_err().kind(), ErrorKind::AlreadyExists);
        assert_eq!(NamedSemaphore::open_or_create(&an.0, 5, 0o600).unwrap().value().unwrap(), 0, "kept its value");
        for bad in ["no-slash", "/a/b", "/", ""] {
            assert_eq!(NamedSemaphore::open(bad).unwrap_err().kind(), ErrorKind::Invalid, "{bad:?}");
        }
        NamedSemaphore::unlink(&cn.0).unwrap();
        assert_eq!(NamedSemaphore::open(&cn.0).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(NamedSemaphore::unlink(&cn.0).unwrap_err().kind(), ErrorKind::NotFound);
        c.try_wait().unwrap();
    }
    assert_no_leftovers(&s);
}

#[test]
fn shared_semaphores_between_processes() {
    let s = Scratch::new("sync-shared");
    {
        let (ag, bg) = (s.shm("a"), s.shm("b"));
        let (a, _) = SharedSemaphore::open_or_create(&ag.shm_name(), 0).unwrap();
        let (b, _) = SharedSemaphore::open_or_create(&bg.shm_name(), 0).unwrap();
        let (child, reports) = spawn_reporting(
            rerun("posix_semaphores::child_sem_echo", "echo")
                .env("IPCKIT_KIND", "shared")
                .env("IPCKIT_A", &*ag)
                .env("IPCKIT_B", &*bg)
                .env("IPCKIT_N", ECHOES.to_string()),
        );
        echo(&|| a.post(), &|| b.wait_timeout(HANG_GUARD), reports);
        assert_success(child.wait(), "echo");
        assert_eq!((a.value().unwrap(), b.value().unwrap()), (0, 0));
        assert_eq!(b.try_wait().unwrap_err().kind(), ErrorKind::Busy);
        assert_eq!(b.wait_timeout(Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::TimedOut);

        let cg = s.shm("c");
        let e = SharedSemaphore::open_or_create(&cg.shm_name(), SEM_VALUE_MAX + 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        let (c, _) = SharedSemaphore::open_or_create(&cg.shm_name(), SEM_VALUE_MAX).unwrap();
        let e = c.post().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert_eq!(c.value().unwrap(), SEM_VALUE_MAX);
    }
    assert_no_leftovers(&s);
}
