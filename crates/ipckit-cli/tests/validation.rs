//! Arguments are checked before anything is created: a command refused
//! for its arguments (exit 2), or for a message that cannot fit (exit 1),
//! leaves no queue, FIFO, socket file, semaphore or segment behind, even
//! with `--create`.

use std::path::Path;

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::scratch::{NumericKey, Scratch, SemName};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// Whether a System V object with numeric `key` is listed in
/// `/proc/sysvipc/FILE` (`msg`, `sem`, `shm`).
fn sysv_listed(file: &str, key: u32) -> bool {
    let text = std::fs::read_to_string(format!("/proc/sysvipc/{file}")).expect("read /proc/sysvipc");
    text.lines().skip(1).any(|l| l.split_whitespace().next().and_then(|k| k.parse::<i32>().ok()) == Some(key as i32))
}

/// Whether the POSIX queue `mq:/NAME` exists.
fn mq_exists(ep: &str) -> bool {
    let name = ep.trim_start_matches("mq:/").split('?').next().expect("name");
    Path::new(&format!("/dev/mqueue/{name}")).exists()
}

/// `send --create` with a bad type, priority or timeout, or a message
/// over `--max-size`: refused, and the queue was not made (`ipckit rm`
/// finds nothing, neither does `/dev/mqueue` or `/proc/sysvipc/msg`).
#[test]
fn send_checks_its_arguments_before_creating_a_queue() {
    let s = Scratch::new("validate-send");
    let key = NumericKey::new(0x5e);
    let sysv = key.endpoint();
    let mq = s.mq("q", "?maxmsg=2&msgsize=64");
    let fifo = format!("fifo:{}", s.path("fifo").display());
    let cases: Vec<(&str, Vec<&str>, i32)> = vec![
        (&sysv, vec!["--type", "0", "x"], 2),
        (&sysv, vec!["--type", "-1", "x"], 2),
        (&sysv, vec!["--type", "9223372036854775808", "x"], 2),
        (&sysv, vec!["--max-size", "4", "hello"], 1),
        (&sysv, vec!["--priority", "1", "x"], 2),
        (&sysv, vec!["--timeout", "-1s", "x"], 2),
        (&sysv, vec!["--stdin-whole", "x"], 2),
        (&mq, vec!["--priority", "32768", "x"], 2),
        (&mq, vec!["--priority", "-1", "x"], 2),
        (&mq, vec!["--max-size", "4", "fits", "hello"], 1),
        (&mq, vec!["--type", "1", "x"], 2),
        (&fifo, vec!["--max-size", "1", "xy"], 1),
        (&fifo, vec!["--priority", "1", "x"], 2),
    ];
    for (ep, extra, code) in &cases {
        let mut args = vec!["send", ep, "--create"];
        args.extend_from_slice(extra);
        let out = IPCKIT.run(&args);
        out.expect_code(*code, &format!("{args:?}"));
        assert!(!sysv_listed("msg", key.key()), "{args:?} left a System V queue behind");
        assert!(!mq_exists(&mq), "{args:?} left {mq} behind");
        assert!(!s.path("fifo").exists(), "{args:?} left a FIFO behind");
        let rm = IPCKIT.run(&["rm", ep]);
        assert_eq!(rm.status.code(), Some(1), "{args:?}: `ipckit rm {ep}` found something: {}", rm.stderr);
    }
    // The same sends, valid, do create (the checks above can fail).
    IPCKIT.run_ok(&["send", &sysv, "--create", "--type", "1", "x"], None);
    assert!(sysv_listed("msg", key.key()));
    IPCKIT.run_ok(&["send", &mq, "--create", "--priority", "32767", "x"], None);
    assert!(mq_exists(&mq));
}

/// `recv --create` with a bad option: refused before binding, nothing
/// made.
#[test]
fn recv_checks_its_arguments_before_creating() {
    let s = Scratch::new("validate-recv");
    let key = NumericKey::new(0x5f);
    let sysv = key.endpoint();
    let mq = s.mq("q", "");
    let fifo = format!("fifo:{}", s.path("fifo").display());
    let sock = format!("unix:{}", s.path("s.sock").display());
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (&sysv, vec!["--type", "99999999999999999999"]),
        (&sysv, vec!["--count", "-1"]),
        (&sysv, vec!["--ready-fd", "1"]),
        (&mq, vec!["--timeout", "-1s"]),
        (&mq, vec!["--max-size", "-1"]),
        (&mq, vec!["--type", "3"]),
        (&fifo, vec!["--ready-fd", "0"]),
        (&fifo, vec!["--noerror"]),
        (&sock, vec!["--ready-fd", "2"]),
        (&sock, vec!["--max-buffered", "1e3"]),
    ];
    for (ep, extra) in &cases {
        let mut args = vec!["recv", ep, "--create", "--count", "0"];
        args.extend_from_slice(extra);
        let out = IPCKIT.run(&args);
        out.expect_code(2, &format!("{args:?}"));
        assert!(!sysv_listed("msg", key.key()), "{args:?} left a System V queue behind");
        assert!(!mq_exists(&mq), "{args:?} left {mq} behind");
        assert!(!s.path("fifo").exists() && !s.path("s.sock").exists(), "{args:?} left a file behind");
    }
}

/// `sem create`, `shm create` and `lock` with a bad value: refused, nothing
/// made.
#[test]
fn sem_shm_and_lock_check_their_arguments_before_creating() {
    let s = Scratch::new("validate-sync");
    let sem = SemName::new(&s, "sem");
    let seg = s.shm("seg");
    let lock = s.shm("lock");
    let set_key = NumericKey::new(0x60);
    let set = format!("sysv:{:#x}", set_key.key());
    let _set_guard = SetGuard(set.clone());
    let cases: Vec<Vec<&str>> = vec![
        vec!["sem", "create", &sem.0, "--value", "-1"],
        vec!["sem", "create", &sem.0, "--value", "2147483648"],
        vec!["sem", "create", &sem.0, "--count", "2"],
        vec!["sem", "create", &set, "--value", "32768"],
        vec!["sem", "create", &set, "--value", "-1"],
        vec!["sem", "create", &set, "--count", "0"],
        vec!["shm", "create", &seg, "--size", "-1"],
        vec!["shm", "create", &seg, "--size", "0"],
        vec!["shm", "create", &seg, "--size", "64", "--mode", "0999"],
        vec!["lock", &lock, "--timeout", "-1s", "--", "true"],
    ];
    for args in &cases {
        let out = IPCKIT.run(args);
        out.expect_code(2, &format!("{args:?}"));
        assert!(!Path::new(&sem.file()).exists(), "{args:?} left {} behind", sem.file());
        assert!(!sysv_listed("sem", set_key.key()), "{args:?} left a System V semaphore set behind");
        for name in [&*seg, &*lock] {
            assert!(!Path::new(&format!("/dev/shm{name}")).exists(), "{args:?} left {name} behind");
        }
    }
}

/// Removes the System V semaphore set it names on drop (the NumericKey
/// guard removes queues only), also when the test fails.
struct SetGuard(String);

impl Drop for SetGuard {
    fn drop(&mut self) {
        if let Ok(ipckit::shm::ShmName::Sysv(key)) = self.0.parse() {
            let _ = ipckit::sync::SemaphoreSet::remove(&key);
        }
    }
}
