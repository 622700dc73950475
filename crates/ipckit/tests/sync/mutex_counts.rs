//! Exact counts under the mutex.

use std::time::Duration;

use crate::support::{Reports, assert_no_leftovers, assert_success, reporter, shm_name, spin};
use ipckit::ErrorKind;
use ipckit::shm::Opened;
use ipckit::sync::Mutex;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;

/// Child: reports "ready", then increments the `Mutex<u64>` `IPCKIT_MUTEX`
/// `IPCKIT_N` times, and reports "foreign K": how many times it found the
/// counter changed by another process since its own last increment.
#[test]
#[ignore = "child process entry point"]
pub(crate) fn child_mutex_incrementer() {
    let Some(_) = child_role() else { return };
    let m = Mutex::<u64>::open(&shm_name(&env("IPCKIT_MUTEX"))).unwrap();
    let n: u64 = env("IPCKIT_N").parse().unwrap();
    let mut report = reporter();
    report.send(b"ready").unwrap();
    let (mut foreign, mut mine) = (0u64, None);
    for _ in 0..n {
        let mut g = m.lock().unwrap();
        let v = *g;
        if mine.is_some_and(|last| last != v) {
            foreign += 1;
        }
        // A read, then a write: without exclusion, updates would be lost.
        *std::hint::black_box(&mut *g) = v + 1;
        mine = Some(v + 1);
        drop(g);
        // Work outside the lock: a woken waiter gets its chance (an unfair
        // lock would otherwise let one process run its whole loop alone).
        spin(Duration::from_micros(1));
    }
    report.send(format!("foreign {foreign}").as_bytes()).unwrap();
}

/// `procs` processes increment one counter `n` times each, starting
/// together (queued on the lock the parent holds while they start).
fn count_in_processes(name: &str, procs: usize, n: u64) {
    let (m, opened) = Mutex::<u64>::open_or_create(&shm_name(name), 0).unwrap();
    assert_eq!(opened, Opened::Created, "{name}");
    let mut reports = Reports::new();
    let held = m.lock().unwrap();
    let children: Vec<Guarded> = (0..procs)
        .map(|_| {
            reports.spawn(
                rerun("mutex_counts::child_mutex_incrementer", "inc")
                    .env("IPCKIT_MUTEX", name)
                    .env("IPCKIT_N", n.to_string()),
            )
        })
        .collect();
    reports.seal();
    for _ in 0..procs {
        reports.expect("ready");
    }
    assert_eq!(*held, 0, "{name}: nobody increments while the parent holds the lock");
    drop(held);
    let mut foreign = 0;
    for _ in 0..procs {
        let r = reports.next("a count");
        foreign += r.strip_prefix("foreign ").and_then(|k| k.parse::<u64>().ok()).unwrap_or_else(|| panic!("{r}"));
    }
    for c in children {
        assert_success(c.wait(), "incrementer");
    }
    assert_eq!(*m.lock().unwrap(), procs as u64 * n, "{name}: lost or extra increments");
    // Not vacuous: the processes really took turns on the lock.
    assert!(foreign > 0, "{name}: the processes never interleaved");
}

#[test]
fn four_processes_count_exactly_under_the_mutex() {
    let s = Scratch::new("sync-count");
    {
        let name = s.shm("m");
        count_in_processes(&name, 4, 100_000);
    }
    assert_no_leftovers(&s);
}

#[test]
fn the_mutex_works_in_system_v_segments_and_mapped_files() {
    let s = Scratch::new("sync-countkinds");
    let sysv_name = {
        let sysv = s.sysv_shm(1);
        count_in_processes(&sysv, 2, 20_000);
        sysv.shm_name()
    };
    assert_eq!(ipckit::shm::info(&sysv_name).unwrap_err().kind(), ErrorKind::NotFound, "segment removed");
    let file = format!("file:{}", s.path("mutex").display());
    count_in_processes(&file, 2, 20_000);
}
