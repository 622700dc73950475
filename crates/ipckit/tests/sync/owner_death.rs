//! Owner death.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    assert_no_leftovers, assert_success, block_until_killed, hang_guarded, kill_and_reap, reporter, seed, shm_name,
    spawn_reporting, spin,
};
use ipckit::ErrorKind;
use ipckit::shm::ShmName;
use ipckit::sync::{LockError, Mutex};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::Rng;
use ipckit_testkit::scratch::Scratch;

/// Child: reports "ready", then loops lock / work / unlock on the
/// `Mutex<[u64; 2]>` `IPCKIT_MUTEX` ([inside flag, counter]) until killed,
/// holding the lock for most of each iteration.
#[test]
#[ignore = "child process entry point"]
fn child_mutex_worker() {
    let Some(_) = child_role() else { return };
    let m = Mutex::<[u64; 2]>::open(&shm_name(&env("IPCKIT_MUTEX"))).unwrap();
    reporter().send(b"ready").unwrap();
    let start = Instant::now();
    while start.elapsed() < 2 * HANG_GUARD {
        // The parent repairs every death before it starts the next worker.
        let mut g = m.lock().unwrap();
        g[0] = 1;
        g[1] += 1;
        // The stores reach memory now, not only at the unlock.
        std::hint::black_box(&mut *g);
        spin(Duration::from_micros(40));
        g[0] = 0;
        std::hint::black_box(&mut *g);
        drop(g);
        spin(Duration::from_micros(5));
    }
    panic!("never killed");
}

/// Child: locks the `Mutex<u64>` `IPCKIT_MUTEX`, stores 42, reports
/// "holding", and waits to be killed.
#[test]
#[ignore = "child process entry point"]
fn child_mutex_holder() {
    let Some(_) = child_role() else { return };
    let m = Mutex::<u64>::open(&shm_name(&env("IPCKIT_MUTEX"))).unwrap();
    let mut g = m.lock().unwrap();
    *std::hint::black_box(&mut *g) = 42;
    reporter().send(b"holding").unwrap();
    block_until_killed();
}

/// Child: the `Mutex<u64>` `IPCKIT_MUTEX` is not recoverable, for
/// `IPCKIT_LOCKS` (`lock`: lock and lock_timeout; `try`: try_lock twice).
#[test]
#[ignore = "child process entry point"]
fn child_mutex_not_recoverable() {
    let Some(_) = child_role() else { return };
    let m = Mutex::<u64>::open(&shm_name(&env("IPCKIT_MUTEX"))).unwrap();
    let tries = match env("IPCKIT_LOCKS").as_str() {
        "try" => [m.try_lock(), m.try_lock()],
        _ => [m.lock_timeout(HANG_GUARD), m.lock()],
    };
    for (i, r) in tries.into_iter().enumerate() {
        let e = r.map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotRecoverable, "attempt {i}: {e}");
    }
}

/// Makes the `Mutex<u64>` `name` not recoverable: a thread dies holding it,
/// and the OwnerDied guard is dropped without `mark_consistent`.
fn make_not_recoverable(m: &Mutex<u64>, name: &ShmName) {
    // A joined thread, not a scoped one: a scope ends when the closure
    // returns, before the thread exits and the kernel marks its robust
    // mutexes owner-died; join waits for the exit itself.
    let name = name.clone();
    std::thread::spawn(move || std::mem::forget(Mutex::<u64>::open(&name).unwrap().lock().unwrap())).join().unwrap();
    match m.try_lock() {
        Err(LockError::OwnerDied(g)) => drop(g),
        other => panic!("expected OwnerDied, got {:?}", other.map(|g| *g)),
    }
}

#[derive(Debug)]
enum Outcome {
    /// `lock()` succeeded: the child did not hold the lock when it died.
    Free,
    /// `OwnerDied`, with the inside flag as found.
    OwnerDied { flag: u64 },
}

#[test]
fn a_holder_killed_at_random_points_is_reported_and_recovered() {
    const ROUNDS: usize = 200;
    let s = Scratch::new("sync-kill");
    {
        let guard = s.shm("m");
        let (m, _) = Mutex::<[u64; 2]>::open_or_create(&guard.shm_name(), [0, 0]).unwrap();
        let m = Arc::new(m);
        let mut rng = Rng(seed());
        let (mut free, mut died, mut died_inside) = (0, 0, 0);
        for round in 0..ROUNDS {
            let (child, mut reports) =
                spawn_reporting(rerun("owner_death::child_mutex_worker", "worker").env("IPCKIT_MUTEX", &*guard));
            reports.expect("ready");
            // Varies where the kill lands; any landing place is handled below.
            std::thread::sleep(Duration::from_micros(rng.below(1500)));
            kill_and_reap(child, "worker");
            // The worker is dead and reaped: lock() must not block, and
            // reports OwnerDied exactly when the worker held the lock.
            let m2 = m.clone();
            let outcome = hang_guarded("lock after the kill", move || match m2.lock() {
                Ok(g) => {
                    assert_eq!(g[0], 0, "the inside flag is set, yet lock() did not report the owner's death");
                    Outcome::Free
                }
                Err(LockError::OwnerDied(mut g)) => {
                    let flag = g[0];
                    g[0] = 0;
                    g.mark_consistent().unwrap();
                    Outcome::OwnerDied { flag }
                }
                Err(LockError::Failed(e)) => panic!("lock: {e}"),
            });
            match outcome {
                Outcome::Free => free += 1,
                Outcome::OwnerDied { flag } => {
                    died += 1;
                    died_inside += flag;
                }
            }
            // Repaired: the death is reported once, and the mutex is normal.
            let m2 = m.clone();
            let after = hang_guarded("lock after the repair", move || m2.lock().map(|g| *g).map_err(|e| e.kind()));
            assert!(matches!(after, Ok([0, _])), "round {round}: after the repair: {after:?}");
        }
        eprintln!("{ROUNDS} kills: {free} outside the lock, {died} holding it ({died_inside} with the flag set)");
        let g = m.try_lock().unwrap();
        assert!(g[1] > 0, "the workers never worked");
        // Both outcomes happened, so neither implication held vacuously.
        assert!(free > 0 && died_inside > 0, "{free} free, {died} died, {died_inside} inside: rerun with the seed");
    }
    assert_no_leftovers(&s);
}

#[test]
fn a_death_not_marked_consistent_leaves_the_mutex_not_recoverable() {
    let s = Scratch::new("sync-notrec");
    {
        let guard = s.shm("m");
        let (m, _) = Mutex::<u64>::open_or_create(&guard.shm_name(), 0).unwrap();
        let (child, mut reports) =
            spawn_reporting(rerun("owner_death::child_mutex_holder", "holder").env("IPCKIT_MUTEX", &*guard));
        reports.expect("holding");
        assert_eq!(m.try_lock().map(|_| ()).unwrap_err().kind(), ErrorKind::Busy, "the child holds it");
        kill_and_reap(child, "holder");
        match m.try_lock() {
            Err(LockError::OwnerDied(g)) => {
                assert_eq!(*g, 42, "the dead owner's data is there to repair");
                // Dropped without mark_consistent.
                drop(g);
            }
            other => panic!("expected OwnerDied, got {:?}", other.map(|g| *g)),
        }
        let name = guard.shm_name();
        let kind = hang_guarded("lock a not-recoverable mutex", move || {
            let m = Mutex::<u64>::open(&name).unwrap();
            m.lock().map(|_| ()).unwrap_err().kind()
        });
        assert_eq!(kind, ErrorKind::NotRecoverable);
        let e = m.lock_timeout(Duration::from_millis(10)).map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotRecoverable, "{e}");
        // For every process, not only this one.
        let status = Guarded::spawn(
            rerun("owner_death::child_mutex_not_recoverable", "check")
                .env("IPCKIT_MUTEX", &*guard)
                .env("IPCKIT_LOCKS", "lock"),
        )
        .wait();
        assert_success(status, "not-recoverable check in another process");
    }
    assert_no_leftovers(&s);
}

#[test]
fn lock_or_recover_repairs_after_a_killed_holder() {
    let s = Scratch::new("sync-recover");
    {
        let guard = s.shm("m");
        let (m, _) = Mutex::<u64>::open_or_create(&guard.shm_name(), 0).unwrap();
        let (child, mut reports) =
            spawn_reporting(rerun("owner_death::child_mutex_holder", "holder").env("IPCKIT_MUTEX", &*guard));
        reports.expect("holding");
        kill_and_reap(child, "holder");
        let mut repaired = None;
        let mut g = m
            .lock_or_recover(|v| {
                repaired = Some(*v);
                *v = 1;
            })
            .unwrap();
        assert_eq!((repaired, *g), (Some(42), 1), "repair saw the dead holder's data");
        *g += 1;
        drop(g);
        // Marked consistent: normal from now on, with no repair.
        let g = m.lock_or_recover(|_| panic!("nobody died this time")).unwrap();
        assert_eq!(*g, 2);
        drop(g);
        assert_eq!(*m.try_lock().unwrap(), 2);
    }
    assert_no_leftovers(&s);
}

#[test]
fn try_lock_on_a_not_recoverable_mutex_leaves_it_usable_by_others() {
    let s = Scratch::new("sync-notrec-try");
    {
        let guard = s.shm("m");
        let name = guard.shm_name();
        let (m, _) = Mutex::<u64>::open_or_create(&name, 0).unwrap();
        make_not_recoverable(&m, &name);
        for i in 0..2 {
            let e = m.try_lock().map(|_| ()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotRecoverable, "try_lock {i} in this thread: {e}");
        }
        // Another process, with try_lock then lock and lock_timeout.
        for locks in ["try", "lock"] {
            let status = Guarded::spawn(
                rerun("owner_death::child_mutex_not_recoverable", "check")
                    .env("IPCKIT_MUTEX", &*guard)
                    .env("IPCKIT_LOCKS", locks),
            )
            .wait();
            assert_success(status, "not-recoverable check in another process");
        }
    }
    assert_no_leftovers(&s);
}
