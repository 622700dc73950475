//! System V semaphore sets.

use std::time::{Duration, Instant};

use crate::support::{assert_success, block_until_killed, kill_and_reap, reporter, spawn_reporting, sysv_key};
use ipckit::ErrorKind;
use ipckit::endpoint::SysvKey;
use ipckit::sync::{SEMVMX, SemOp, SemaphoreSet};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;

/// Child: takes one from semaphore 0 of the set `IPCKIT_SYSV` (ftok path,
/// id 1) with or without `SEM_UNDO` (`IPCKIT_UNDO`), reports "taken", then
/// waits to be killed, or (`IPCKIT_THEN=exit`) exits once the parent posts
/// semaphore 1 (so that the parent sees the value before the exit undoes
/// it).
#[test]
#[ignore = "child process entry point"]
fn child_sysv_taker() {
    let Some(_) = child_role() else { return };
    let set = SemaphoreSet::open(&SysvKey::parse(&env("IPCKIT_SYSV"), 1).unwrap()).unwrap();
    let undo = env("IPCKIT_UNDO") == "1";
    set.op_timeout(&[SemOp { index: 0, delta: -1, undo }], HANG_GUARD).unwrap();
    reporter().send(b"taken").unwrap();
    if env("IPCKIT_THEN") != "exit" {
        block_until_killed();
    }
    set.op_timeout(&[SemOp { index: 1, delta: -1, undo: false }], HANG_GUARD).unwrap();
}

/// Child: reports "waiting", waits on semaphore 0 of the set `IPCKIT_SYSV`,
/// and expects the set's removal to wake it with `Disconnected`.
#[test]
#[ignore = "child process entry point"]
fn child_sysv_waiter() {
    let Some(_) = child_role() else { return };
    let set = SemaphoreSet::open(&SysvKey::parse(&env("IPCKIT_SYSV"), 1).unwrap()).unwrap();
    reporter().send(b"waiting").unwrap();
    let e = set.wait_timeout(0, HANG_GUARD).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
}

#[test]
fn sem_undo_restores_what_a_killed_process_took() {
    let s = Scratch::new("sync-semundo");
    let key = sysv_key(&s, 1);
    // Semaphore 0 is taken; semaphore 1 lets an exiting child go.
    let set = SemaphoreSet::create(&key, 2, 1, 0o600, true).unwrap().remove_on_drop(true);
    let dir = s.dir().to_str().unwrap();
    // (undo, how the child ends, the value after it is gone)
    for (undo, then, after) in [(true, "kill", 1), (false, "kill", 0), (true, "exit", 1)] {
        set.set_value(0, 1).unwrap();
        set.set_value(1, 0).unwrap();
        let (child, mut reports) = spawn_reporting(
            rerun("sysv_semaphores::child_sysv_taker", "taker")
                .env("IPCKIT_SYSV", dir)
                .env("IPCKIT_UNDO", if undo { "1" } else { "0" })
                .env("IPCKIT_THEN", then),
        );
        let pid = child.0.as_ref().unwrap().id() as i32;
        reports.expect("taken");
        assert_eq!(set.value(0).unwrap(), 0, "the child took it");
        assert_eq!(set.last_pid(0).unwrap(), pid);
        if then == "kill" {
            kill_and_reap(child, "taker");
        } else {
            set.op(&[SemOp { index: 1, delta: 1, undo: false }]).unwrap();
            assert_success(child.wait(), "taker");
        }
        assert_eq!(set.value(0).unwrap(), after, "undo {undo}, {then}");
    }
    drop(set);
    assert_eq!(SemaphoreSet::open(&key).unwrap_err().kind(), ErrorKind::NotFound, "removed on drop");
}

#[test]
fn removing_a_set_wakes_a_waiting_process() {
    let s = Scratch::new("sync-semrm");
    let key = sysv_key(&s, 1);
    let set = SemaphoreSet::create(&key, 1, 0, 0o600, true).unwrap().remove_on_drop(true);
    let (child, mut reports) = spawn_reporting(
        rerun("sysv_semaphores::child_sysv_waiter", "waiter").env("IPCKIT_SYSV", s.dir().to_str().unwrap()),
    );
    reports.expect("waiting");
    // Asleep in semop (GETNCNT counts it), not merely about to be.
    let start = Instant::now();
    while set.waiting(0).unwrap() != 1 {
        assert!(start.elapsed() < HANG_GUARD, "the child never waited");
        std::thread::sleep(Duration::from_millis(1));
    }
    SemaphoreSet::remove(&key).unwrap();
    assert_success(child.wait(), "waiter");
    assert_eq!(SemaphoreSet::open(&key).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn sysv_semaphore_errors() {
    let s = Scratch::new("sync-semerr");
    let key = sysv_key(&s, 1);
    for (count, value) in [(0, 0), (1, -1), (1, SEMVMX + 1)] {
        let e = SemaphoreSet::create(&key, count, value, 0o600, true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "count {count} value {value}: {e}");
    }
    let set = SemaphoreSet::create(&key, 2, 0, 0o600, true).unwrap().remove_on_drop(true);
    assert_eq!(SemaphoreSet::create(&key, 2, 0, 0o600, true).unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!((set.len(), set.status().unwrap().mode), (2, 0o600));
    let take = |index| SemOp { index, delta: -1, undo: true };
    let give = |index| SemOp { index, delta: 1, undo: true };

    // Value 0: Busy without waiting, TimedOut with a timeout (semtimedop
    // says EAGAIN for both), a zero timeout included.
    let e = set.try_op(&[take(0)]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert_eq!(set.try_wait(0).unwrap_err().kind(), ErrorKind::Busy);
    let e = set.op_timeout(&[take(0)], Duration::from_millis(20)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    for timeout in [Duration::from_millis(20), Duration::ZERO] {
        let e = set.wait_timeout(0, timeout).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{timeout:?}: {e}");
    }

    // All or nothing: one semaphore short, nothing is taken.
    set.post(0).unwrap();
    assert_eq!(set.try_op(&[take(0), take(1)]).unwrap_err().kind(), ErrorKind::Busy);
    assert_eq!((set.value(0).unwrap(), set.value(1).unwrap()), (1, 0));
    set.post(1).unwrap();
    set.try_op(&[take(0), take(1)]).unwrap();
    assert_eq!((set.value(0).unwrap(), set.value(1).unwrap()), (0, 0));

    // Index out of range, alone or among valid operations.
    for e in [
        set.post(2).unwrap_err(),
        set.try_wait(2).unwrap_err(),
        set.try_op(&[give(0), give(7)]).unwrap_err(),
        set.value(2).unwrap_err(),
        set.set_value(2, 1).unwrap_err(),
        set.waiting(u16::MAX).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    }
    assert_eq!(set.value(0).unwrap(), 0, "an operation with a bad index did nothing");

    // SEMVMX: the value cannot be set or posted beyond it.
    for v in [SEMVMX + 1, -1, i32::MAX] {
        let e = set.set_value(0, v).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "set_value({v}): {e}");
    }
    set.set_value(0, SEMVMX).unwrap();
    let e = set.post(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.to_string().contains("SEMVMX"), "{e}");
    let e = set.try_op(&[SemOp { index: 0, delta: 1, undo: false }]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert_eq!(set.value(0).unwrap(), SEMVMX);
    drop(set);
    assert_eq!(SemaphoreSet::open(&key).unwrap_err().kind(), ErrorKind::NotFound, "removed on drop");
}
