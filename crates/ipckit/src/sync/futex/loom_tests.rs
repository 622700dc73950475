//! loom models of the futex event and semaphore protocols, over loom's
//! memory (`crate::atomic::model`). Run them with the command in
//! `crate::atomic`'s docs. A lost wake-up leaves a model thread asleep for
//! ever: loom reports it as a deadlock. Every model runs with no spin (the
//! waiter parks at once) and with a spin (it spins, then parks).

use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;

use super::{EventCore, EventMode, STATE, SemCore, WAITERS};
use crate::atomic::Words;
use crate::atomic::model::LoomWords;

/// Preemptions per execution unless `LOOM_MAX_PREEMPTIONS` is set: enough
/// for every interleaving of these protocols' races, small enough to keep
/// each model to seconds.
const DEFAULT_PREEMPTIONS: usize = 3;

/// Runs `model` under loom once with no spin and once with a spin.
fn check(model: impl Fn(Duration) + Send + Sync + Copy + 'static) {
    for spin in [Duration::ZERO, Duration::from_micros(20)] {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound.get_or_insert(DEFAULT_PREEMPTIONS);
        builder.check(move || model(spin));
    }
}

fn event(mode: EventMode) -> Arc<EventCore<LoomWords>> {
    Arc::new(EventCore { words: LoomWords::new(&[0, 0], &[]), mode })
}

/// Waits for the event; counts the take in `taken`.
fn spawn_waiter(ev: &Arc<EventCore<LoomWords>>, taken: &Arc<AtomicU32>, spin: Duration) -> thread::JoinHandle<()> {
    let (ev, taken) = (ev.clone(), taken.clone());
    thread::spawn(move || {
        assert!(ev.wait_until(spin, None).unwrap(), "a wait with no deadline returned without the event");
        taken.fetch_add(1, Ordering::AcqRel);
    })
}

/// One setter, one waiter: the waiter always returns (no lost wake-up),
/// and takes the one set (the event is unset afterwards).
#[test]
fn loom_auto_reset_set_wakes_the_waiter() {
    check(|spin| {
        let ev = event(EventMode::AutoReset);
        let setter = {
            let ev = ev.clone();
            thread::spawn(move || ev.set().unwrap())
        };
        assert!(ev.wait_until(spin, None).unwrap());
        setter.join().unwrap();
        assert!(!ev.is_set(), "the waiter took the set, so the event is unset");
        assert_eq!(ev.words.u32(WAITERS).load(Ordering::Relaxed), 0, "every waiter left");
    });
}

/// Two waiters, one set: exactly one of them takes it. The other is
/// released by a second set, made only once the first take is seen; if
/// both had taken the first set, the second would be left over.
#[test]
fn loom_auto_reset_one_set_releases_one_of_two_waiters() {
    check(|spin| {
        let ev = event(EventMode::AutoReset);
        let taken = Arc::new(AtomicU32::new(0));
        let waiters = [spawn_waiter(&ev, &taken, spin), spawn_waiter(&ev, &taken, spin)];
        ev.set().unwrap();
        while taken.load(Ordering::Acquire) == 0 {
            thread::yield_now();
        }
        ev.set().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::Acquire), 2);
        assert!(!ev.is_set(), "two sets, two takes: nothing is left over (one set was taken twice)");
    });
}

/// Two sets racing (with each other and with the waiter's announcement),
/// one waiter: it returns, and the sets count once or twice (an auto-reset
/// event does not count), never more: at most one is left to take.
#[test]
fn loom_auto_reset_two_sets_one_waiter() {
    check(|spin| {
        let ev = event(EventMode::AutoReset);
        let setters: Vec<_> = (0..2)
            .map(|_| {
                let ev = ev.clone();
                thread::spawn(move || ev.set().unwrap())
            })
            .collect();
        assert!(ev.wait_until(spin, None).unwrap());
        for s in setters {
            s.join().unwrap();
        }
        assert!(ev.words.u32(STATE).load(Ordering::Relaxed) <= 1);
        ev.take();
        assert!(!ev.take(), "an auto-reset event was taken more often than it was set");
    });
}

/// Manual reset: one set releases every waiter, and the event stays set.
#[test]
fn loom_manual_reset_set_wakes_all() {
    check(|spin| {
        let ev = event(EventMode::ManualReset);
        let taken = Arc::new(AtomicU32::new(0));
        let waiters = [spawn_waiter(&ev, &taken, spin), spawn_waiter(&ev, &taken, spin)];
        ev.set().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::Acquire), 2);
        assert!(ev.is_set());
    });
}

/// Semaphore: two posts, two waiters: both return, and both units are
/// taken, once each.
#[test]
fn loom_semaphore_two_posts_two_waiters() {
    check(|spin| {
        let sem = Arc::new(SemCore { words: LoomWords::new(&[0, 0], &[]) });
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || assert!(sem.wait_until(spin, None).unwrap()))
            })
            .collect();
        assert!(sem.post().unwrap());
        assert!(sem.post().unwrap());
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(sem.value(), 0);
    });
}
