//! Futex events and semaphores.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::{Reports, assert_no_leftovers, assert_success, reporter, shm_name, within_guard};
use ipckit::ErrorKind;
use ipckit::shm::{Segment, ShmName};
use ipckit::sync::{Event, EventMode, FutexSemaphore};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;

const ROUND_TRIPS: u64 = 10_000;

/// Child: answers `ROUND_TRIPS` pings (`IPCKIT_PING`) with pongs
/// (`IPCKIT_PONG`), turning the odd number the parent left in the shared
/// word (`IPCKIT_WORD`) into the next even one.
#[test]
#[ignore = "child process entry point"]
fn child_event_ponger() {
    let Some(_) = child_role() else { return };
    let ping = Event::open(&shm_name(&env("IPCKIT_PING"))).unwrap();
    let pong = Event::open(&shm_name(&env("IPCKIT_PONG"))).unwrap();
    let region = Segment::new(shm_name(&env("IPCKIT_WORD"))).size(64).open().unwrap();
    let word = region.atomic_u64(0).unwrap();
    for i in 1..=ROUND_TRIPS {
        within_guard(&format!("ping {i}"), |t| ping.wait_timeout(t));
        assert_eq!(word.load(Ordering::SeqCst), 2 * i - 1, "one ping, one wake-up");
        word.store(2 * i, Ordering::SeqCst);
        pong.set().unwrap();
    }
}

#[test]
fn auto_reset_events_ping_pong_between_processes() {
    let s = Scratch::new("sync-pingpong");
    {
        let (pg, qg, wg) = (s.shm("ping"), s.shm("pong"), s.shm("word"));
        let (ping, _) = Event::open_or_create(&pg.shm_name(), EventMode::AutoReset).unwrap();
        let (pong, _) = Event::open_or_create(&qg.shm_name(), EventMode::AutoReset).unwrap();
        let region = Segment::new(wg.shm_name()).size(64).create().unwrap();
        let word = region.atomic_u64(0).unwrap();
        let child = Guarded::spawn(
            rerun("futex::child_event_ponger", "ponger")
                .env("IPCKIT_PING", &*pg)
                .env("IPCKIT_PONG", &*qg)
                .env("IPCKIT_WORD", &*wg),
        );
        for i in 1..=ROUND_TRIPS {
            word.store(2 * i - 1, Ordering::SeqCst);
            ping.set().unwrap();
            within_guard(&format!("pong {i}"), |t| pong.wait_timeout(t));
            assert_eq!(word.load(Ordering::SeqCst), 2 * i);
        }
        assert_success(child.wait(), "ponger");
        assert!(!ping.is_set() && !pong.is_set(), "every set was taken exactly once");
        assert_eq!(pong.try_wait().unwrap_err().kind(), ErrorKind::Busy);
        assert_eq!(pong.wait_timeout(Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::TimedOut);
    }
    assert_no_leftovers(&s);
}

/// Child: reports "waiting", waits for the event `IPCKIT_EVENT`, reports
/// "woke".
#[test]
#[ignore = "child process entry point"]
fn child_event_waiter() {
    let Some(_) = child_role() else { return };
    let ev = Event::open(&shm_name(&env("IPCKIT_EVENT"))).unwrap();
    let mut report = reporter();
    report.send(b"waiting").unwrap();
    within_guard("event wait", |t| ev.wait_timeout(t));
    report.send(b"woke").unwrap();
}

/// The event's waiter count (offset 68 of the documented layout).
fn event_waiters(name: &ShmName) -> u32 {
    let region = Segment::new(name.clone()).open().unwrap();
    region.atomic_u32(68).unwrap().load(Ordering::SeqCst)
}

/// Waits until `n` processes sleep on the event.
fn await_waiters(name: &ShmName, n: u32) {
    let start = Instant::now();
    while event_waiters(name) != n {
        assert!(start.elapsed() < HANG_GUARD, "{n} waiters never slept on the event");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_manual_reset_event_releases_every_waiting_process() {
    const WAITERS: u32 = 3;
    let s = Scratch::new("sync-manual");
    {
        let guard = s.shm("ev");
        let name = guard.shm_name();
        let (ev, _) = Event::open_or_create(&name, EventMode::ManualReset).unwrap();
        assert_eq!(ev.mode(), EventMode::ManualReset);
        let mut reports = Reports::new();
        let children: Vec<Guarded> = (0..WAITERS)
            .map(|_| reports.spawn(rerun("futex::child_event_waiter", "waiter").env("IPCKIT_EVENT", &*guard)))
            .collect();
        reports.seal();
        for _ in 0..WAITERS {
            reports.expect("waiting");
        }
        await_waiters(&name, WAITERS);
        ev.set().unwrap();
        for _ in 0..WAITERS {
            reports.expect("woke");
        }
        for c in children {
            assert_success(c.wait(), "waiter");
        }
        assert!(ev.is_set(), "manual reset: still set after releasing everyone");
        ev.try_wait().unwrap();
        ev.reset();
        assert_eq!(ev.try_wait().unwrap_err().kind(), ErrorKind::Busy);
    }
    assert_no_leftovers(&s);
}

#[test]
fn an_auto_reset_event_releases_one_waiting_process_per_set() {
    let s = Scratch::new("sync-auto");
    {
        let guard = s.shm("ev");
        let name = guard.shm_name();
        let (ev, _) = Event::open_or_create(&name, EventMode::AutoReset).unwrap();
        let mut reports = Reports::new();
        let children: Vec<Guarded> = (0..2)
            .map(|_| reports.spawn(rerun("futex::child_event_waiter", "waiter").env("IPCKIT_EVENT", &*guard)))
            .collect();
        reports.seal();
        reports.expect("waiting");
        reports.expect("waiting");
        await_waiters(&name, 2);
        ev.set().unwrap();
        reports.expect("woke");
        // The woken one took the event; the other sleeps on until the next set.
        assert!(!ev.is_set());
        assert_eq!(event_waiters(&name), 1, "one set released exactly one waiter");
        ev.set().unwrap();
        reports.expect("woke");
        for c in children {
            assert_success(c.wait(), "waiter");
        }
        assert!(!ev.is_set());
    }
    assert_no_leftovers(&s);
}

/// Child: posts (`IPCKIT_OP=post`) or takes (`take`) `IPCKIT_N` times on
/// the futex semaphore `IPCKIT_SEM`.
#[test]
#[ignore = "child process entry point"]
fn child_futex_sem() {
    let Some(_) = child_role() else { return };
    let sem = FutexSemaphore::open(&shm_name(&env("IPCKIT_SEM"))).unwrap();
    let n: u64 = env("IPCKIT_N").parse().unwrap();
    let take = env("IPCKIT_OP") == "take";
    for i in 0..n {
        if take {
            within_guard(&format!("take {i}"), |t| sem.wait_timeout(t));
        } else {
            sem.post().unwrap();
        }
    }
}

#[test]
fn futex_semaphore_counts_across_processes() {
    const EACH: u64 = 50_000;
    let s = Scratch::new("sync-futexsem");
    {
        let guard = s.shm("sem");
        let (sem, _) = FutexSemaphore::open_or_create(&guard.shm_name(), 0).unwrap();
        let spawn = |op: &str| {
            Guarded::spawn(
                rerun("futex::child_futex_sem", op)
                    .env("IPCKIT_SEM", &*guard)
                    .env("IPCKIT_OP", op)
                    .env("IPCKIT_N", EACH.to_string()),
            )
        };
        // Two producers, two consumers (a child and this process).
        let children = [spawn("take"), spawn("post"), spawn("post")];
        for i in 0..EACH {
            within_guard(&format!("take {i}"), |t| sem.wait_timeout(t));
        }
        for c in children {
            assert_success(c.wait(), "futex semaphore child");
        }
        // As many taken as posted: none lost, none taken twice.
        assert_eq!(sem.value(), 0);
        assert_eq!(sem.try_wait().unwrap_err().kind(), ErrorKind::Busy);
        assert_eq!(sem.wait_timeout(Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::TimedOut);

        let full = s.shm("full");
        let (max, _) = FutexSemaphore::open_or_create(&full.shm_name(), u32::MAX).unwrap();
        assert_eq!(max.post().unwrap_err().kind(), ErrorKind::Invalid);
        assert_eq!(max.value(), u32::MAX);
    }
    assert_no_leftovers(&s);
}
