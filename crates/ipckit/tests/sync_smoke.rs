//! Quick checks of the synchronization primitives in one process, across
//! threads; the multi-process tests are in sync.rs.

use std::time::Duration;

use ipckit::ErrorKind;
use ipckit::sync::{Condvar, Event, EventMode, FutexSemaphore, LockError, Mutex};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::scratch::Scratch;

#[test]
fn mutex_counts_across_threads_and_try_lock_is_busy() {
    let s = Scratch::new("smoke-mutex");
    let guard = s.shm("m");
    let name = guard.shm_name();
    let (m, _) = Mutex::<u64>::open_or_create(&name, 0).unwrap();
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| {
                let (m, _) = Mutex::<u64>::open_or_create(&name, 0).unwrap();
                for _ in 0..10_000 {
                    *m.lock().unwrap() += 1;
                }
            });
        }
    });
    assert_eq!(*m.lock().unwrap(), 40_000);
    let g = m.lock().unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let other = Mutex::<u64>::open(&name).unwrap();
            assert_eq!(other.try_lock().unwrap_err().kind(), ErrorKind::Busy);
            assert_eq!(other.lock_timeout(Duration::from_millis(10)).unwrap_err().kind(), ErrorKind::TimedOut);
        });
    });
    drop(g);
}

#[test]
fn condvar_hands_off_between_threads() {
    let s = Scratch::new("smoke-cv");
    let (m_guard, cv_guard) = (s.shm("m"), s.shm("cv"));
    let (m_name, cv_name) = (m_guard.shm_name(), cv_guard.shm_name());
    let (m, _) = Mutex::<[u64; 2]>::open_or_create(&m_name, [0, 0]).unwrap();
    let (cv, _) = Condvar::open_or_create(&cv_name).unwrap();
    const N: u64 = 10_000;
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let m = Mutex::<[u64; 2]>::open(&m_name).unwrap();
            let cv = Condvar::open(&cv_name).unwrap();
            for i in 1..=N {
                let mut g = m.lock().unwrap();
                while g[0] != 0 {
                    g = cv.wait(g).unwrap();
                }
                g[0] = i;
                drop(g);
                cv.notify_all().unwrap();
            }
        });
        let mut sum = 0;
        for _ in 0..N {
            let mut g = m.lock().unwrap();
            while g[0] == 0 {
                let (ng, _) = cv.wait_timeout(g, Duration::from_secs(30)).unwrap();
                g = ng;
            }
            sum += g[0];
            g[0] = 0;
            drop(g);
            cv.notify_all().unwrap();
        }
        assert_eq!(sum, N * (N + 1) / 2);
    });
}

#[test]
fn events_and_futex_semaphores() {
    let s = Scratch::new("smoke-event");
    let guards = [s.shm("a"), s.shm("b"), s.shm("s")];
    let (auto, _) = Event::open_or_create(&guards[0].shm_name(), EventMode::AutoReset).unwrap();
    assert_eq!(auto.try_wait().unwrap_err().kind(), ErrorKind::Busy);
    assert_eq!(auto.wait_timeout(Duration::from_millis(5)).unwrap_err().kind(), ErrorKind::TimedOut);
    auto.set().unwrap();
    auto.wait().unwrap();
    assert!(!auto.is_set(), "auto-reset");
    let (manual, _) = Event::open_or_create(&guards[1].shm_name(), EventMode::ManualReset).unwrap();
    manual.set().unwrap();
    manual.wait().unwrap();
    manual.wait().unwrap();
    manual.reset();
    assert!(!manual.is_set());
    let (sem, _) = FutexSemaphore::open_or_create(&guards[2].shm_name(), 2).unwrap();
    sem.wait().unwrap();
    sem.wait().unwrap();
    assert_eq!(sem.try_wait().unwrap_err().kind(), ErrorKind::Busy);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for _ in 0..1000 {
                sem.post().unwrap();
            }
        });
        for _ in 0..1000 {
            sem.wait_timeout(Duration::from_secs(30)).unwrap();
        }
    });
    assert_eq!(sem.value(), 0);
}

#[test]
fn owner_death_in_a_thread_is_reported() {
    // A thread that exits holding a robust mutex counts as a dead owner.
    let s = Scratch::new("smoke-dead");
    let guard = s.shm("m");
    let name = guard.shm_name();
    let (m, _) = Mutex::<u32>::open_or_create(&name, 7).unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let m = Mutex::<u32>::open(&name).unwrap();
            let mut g = m.lock().unwrap();
            *g = 8;
            std::mem::forget(g);
        });
    });
    match m.lock() {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(*g, 8);
            *g = 9;
            g.mark_consistent().unwrap();
        }
        other => panic!("expected OwnerDied, got {:?}", other.map(|g| *g)),
    }
    assert_eq!(*m.lock().unwrap(), 9);
}

/// A guard forgotten and its Mutex dropped: the mapping must stay, so that
/// when the thread exits the kernel can mark the lock owner-died through
/// it (were it unmapped, the next locker would wait forever).
#[test]
fn a_forgotten_guard_keeps_the_mapping_for_the_robust_list() {
    let s = Scratch::new("smoke-forget");
    let guard = s.shm("m");
    let name = guard.shm_name();
    let (m, _) = Mutex::<u32>::open_or_create(&name, 1).unwrap();
    let path = format!("/dev/shm{}", &*guard);
    std::thread::spawn({
        let name = name.clone();
        let path = path.clone();
        move || {
            let m = Mutex::<u32>::open(&name).unwrap();
            let mapped_before = std::fs::read_to_string("/proc/self/maps").unwrap().matches(&path).count();
            std::mem::forget(m.lock().unwrap());
            drop(m);
            let mapped_after = std::fs::read_to_string("/proc/self/maps").unwrap().matches(&path).count();
            assert_eq!(mapped_after, mapped_before, "the held mutex's mapping was unmapped");
        }
    })
    .join()
    .unwrap();
    match m.lock_timeout(HANG_GUARD) {
        Err(LockError::OwnerDied(mut g)) => g.mark_consistent().unwrap(),
        other => panic!("expected OwnerDied, got {:?}", other.map(|g| *g).map_err(|e| e.kind())),
    }
}
