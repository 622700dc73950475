//! A C peer.

use std::process::Command;

use crate::posix_semaphores::echo;
use crate::support::{Reports, assert_no_leftovers, assert_success};
use ipckit::shm::{MAGIC, STATE_OFFSET, STATE_READY};
use ipckit::sync::{MUTEX_DATA_OFFSET, MUTEX_OFFSET, Mutex, NamedSemaphore};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::c::build_c;
use ipckit_testkit::child::rerun;
use ipckit_testkit::scratch::{Scratch, SemName};

fn c_peer(s: &Scratch) -> std::path::PathBuf {
    build_c(s, "sync_peer", include_str!("../c/sync_peer.c"), &["-lpthread", "-lrt"])
}

#[test]
fn c_program_shares_named_semaphores_both_ways() {
    const N: u64 = 2_000;
    let s = Scratch::new("sync-csem");
    {
        let peer = c_peer(&s);
        let (an, bn) = (SemName::new(&s, "a"), SemName::new(&s, "b"));
        let a = NamedSemaphore::create(&an.0, 0, 0o600).unwrap();
        let b = NamedSemaphore::create(&bn.0, 0, 0o600).unwrap();
        let mut reports = Reports::new();
        let child = reports.spawn_fd_arg(Command::new(&peer).args(["sem", &an.0, &bn.0, &N.to_string()]));
        reports.seal();
        // ipckit posts, C waits; C posts, ipckit waits.
        echo(&|| a.post(), &|| b.wait_timeout(HANG_GUARD), reports);
        assert_success(child.wait(), "C peer");
        assert_eq!((a.value().unwrap(), b.value().unwrap()), (0, 0));
    }
    assert_no_leftovers(&s);
}

#[test]
fn c_program_locks_the_documented_mutex_layout() {
    const N: u64 = 100_000;
    // The constants the C program hard-codes.
    assert_eq!((MUTEX_OFFSET, MUTEX_DATA_OFFSET, STATE_OFFSET, STATE_READY), (64, 128, 12, 2));
    assert_eq!(&MAGIC, b"IPCKIT\0\x01");
    let s = Scratch::new("sync-cmutex");
    {
        let peer = c_peer(&s);
        let guard = s.shm("m");
        let (m, _) = Mutex::<u64>::open_or_create(&guard.shm_name(), 0).unwrap();
        let mut reports = Reports::new();
        let held = m.lock().unwrap();
        let c = reports.spawn_fd_arg(Command::new(&peer).args(["mutex", &*guard, &N.to_string()]));
        let rust = reports.spawn(
            rerun("mutex_counts::child_mutex_incrementer", "inc")
                .env("IPCKIT_MUTEX", &*guard)
                .env("IPCKIT_N", N.to_string()),
        );
        reports.seal();
        reports.expect("ready");
        reports.expect("ready");
        drop(held);
        let r = reports.next("the Rust child's count");
        let foreign: u64 = r.strip_prefix("foreign ").and_then(|k| k.parse().ok()).unwrap_or_else(|| panic!("{r}"));
        assert_success(c.wait(), "C peer");
        assert_success(rust.wait(), "Rust child");
        assert_eq!(*m.lock().unwrap(), 2 * N, "lost or extra increments");
        assert!(foreign > 0, "the C and Rust processes never interleaved");
    }
    assert_no_leftovers(&s);
}
