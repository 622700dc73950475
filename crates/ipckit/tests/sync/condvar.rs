//! Condvar hand-offs.

use std::time::{Duration, Instant};

use crate::support::{Reports, assert_no_leftovers, assert_success, reporter, shm_name};
use ipckit::sync::{Condvar, Mutex, MutexGuard};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;

type Slot = [u64; 2];

/// Waits on `cv` while `cond` holds; a wait that times out (the hang guard)
/// fails, even if the condition holds by then: that is a lost wake-up.
fn wait_while<'a>(
    cv: &Condvar,
    mut g: MutexGuard<'a, Slot>,
    what: &str,
    cond: impl Fn(&Slot) -> bool,
) -> MutexGuard<'a, Slot> {
    while cond(&g) {
        let (ng, timed_out) = cv.wait_timeout(g, HANG_GUARD).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!timed_out, "{what}: no notification for {HANG_GUARD:?}");
        g = ng;
    }
    g
}

const HANDOFFS: u64 = 100_000;

/// Child: produces 1..=HANDOFFS into the one-slot mailbox `IPCKIT_MUTEX`
/// ([full, value]), signalling `IPCKIT_CONDVAR`.
#[test]
#[ignore = "child process entry point"]
fn child_cv_producer() {
    let Some(_) = child_role() else { return };
    let m = Mutex::<Slot>::open(&shm_name(&env("IPCKIT_MUTEX"))).unwrap();
    let cv = Condvar::open(&shm_name(&env("IPCKIT_CONDVAR"))).unwrap();
    for i in 1..=HANDOFFS {
        let mut g = wait_while(&cv, m.lock().unwrap(), "producer", |s| s[0] != 0);
        *g = [1, i];
        drop(g);
        cv.notify_one().unwrap();
    }
}

#[test]
fn condvar_hands_off_100_000_values_between_processes() {
    let s = Scratch::new("sync-cv");
    {
        let (mg, cg) = (s.shm("m"), s.shm("cv"));
        let (m, _) = Mutex::<Slot>::open_or_create(&mg.shm_name(), [0, 0]).unwrap();
        let (cv, _) = Condvar::open_or_create(&cg.shm_name()).unwrap();
        let producer = Guarded::spawn(
            rerun("condvar::child_cv_producer", "producer").env("IPCKIT_MUTEX", &*mg).env("IPCKIT_CONDVAR", &*cg),
        );
        let (mut count, mut sum) = (0u64, 0u64);
        for want in 1..=HANDOFFS {
            let mut g = wait_while(&cv, m.lock().unwrap(), "consumer", |s| s[0] == 0);
            assert_eq!(g[1], want, "values arrive in order, none lost or repeated");
            count += 1;
            sum += g[1];
            *g = [0, 0];
            drop(g);
            cv.notify_one().unwrap();
        }
        assert_success(producer.wait(), "producer");
        assert_eq!((count, sum), (HANDOFFS, HANDOFFS * (HANDOFFS + 1) / 2));
        assert_eq!(*m.lock().unwrap(), [0, 0], "nothing produced beyond the count");
    }
    assert_no_leftovers(&s);
}

/// Child: registers in `IPCKIT_MUTEX` ([waiting, go]) and waits on
/// `IPCKIT_CONDVAR` until go, then reports "woke".
#[test]
#[ignore = "child process entry point"]
fn child_cv_waiter() {
    let Some(_) = child_role() else { return };
    let m = Mutex::<Slot>::open(&shm_name(&env("IPCKIT_MUTEX"))).unwrap();
    let cv = Condvar::open(&shm_name(&env("IPCKIT_CONDVAR"))).unwrap();
    let mut report = reporter();
    let mut g = m.lock().unwrap();
    g[0] += 1;
    let g = wait_while(&cv, g, "waiter", |s| s[1] == 0);
    drop(g);
    report.send(b"woke").unwrap();
}

#[test]
fn condvar_notify_all_wakes_every_waiting_process() {
    const WAITERS: u64 = 3;
    let s = Scratch::new("sync-cvall");
    {
        let (mg, cg) = (s.shm("m"), s.shm("cv"));
        let (m, _) = Mutex::<Slot>::open_or_create(&mg.shm_name(), [0, 0]).unwrap();
        let (cv, _) = Condvar::open_or_create(&cg.shm_name()).unwrap();
        let mut reports = Reports::new();
        let children: Vec<Guarded> = (0..WAITERS)
            .map(|_| {
                reports.spawn(
                    rerun("condvar::child_cv_waiter", "waiter").env("IPCKIT_MUTEX", &*mg).env("IPCKIT_CONDVAR", &*cg),
                )
            })
            .collect();
        reports.seal();
        // A child registers and starts waiting under one hold of the lock:
        // once all have registered, all are waiting (or about to sleep on a
        // sequence value that the notify changes).
        let start = Instant::now();
        let mut g = m.lock().unwrap();
        while g[0] != WAITERS {
            drop(g);
            assert!(start.elapsed() < HANG_GUARD, "the waiters never registered");
            std::thread::sleep(Duration::from_millis(1));
            g = m.lock().unwrap();
        }
        g[1] = 1;
        drop(g);
        cv.notify_all().unwrap();
        for _ in 0..WAITERS {
            reports.expect("woke");
        }
        for c in children {
            assert_success(c.wait(), "waiter");
        }
    }
    assert_no_leftovers(&s);
}
