//! The synchronization primitives between real processes: exact counts
//! under the robust mutex, owner death by SIGKILL and its recovery, condvar
//! hand-offs, System V `SEM_UNDO`, POSIX named and unnamed semaphores, futex
//! events and semaphores, a C peer using libc directly, other users'
//! objects, and objects that are not ipckit locks.
//!
//! Children are this test binary re-run (`child_*` entry points, ignored
//! when run directly) or a C program built at test time. A child reports its
//! progress as frames on a pipe it inherits (`IPCKIT_REPORT_FD`), so the
//! parent never sleeps to wait for readiness; every wait has the 30 s hang
//! guard, and no assertion depends on timing other than that guard (a wait
//! that only its timeout ended is a lost wake-up, hence a failure).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipckit::endpoint::SysvKey;
use ipckit::pipe::{PipeReader, PipeWriter};
use ipckit::shm::{MAGIC, Opened, STATE_OFFSET, STATE_READY, Segment, ShmName};
use ipckit::sync::{
    Condvar, Event, EventMode, FutexSemaphore, LockError, MUTEX_DATA_OFFSET, MUTEX_OFFSET, Mutex, MutexGuard,
    NamedSemaphore, SEM_VALUE_MAX, SEMVMX, SemOp, SemaphoreSet, SharedSemaphore,
};
use ipckit::{ErrorKind, Options};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::c::build_c;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::Rng;
use ipckit_testkit::scratch::{Scratch, SemName};

/// `SIGKILL`.
const SIGKILL: i32 = 9;

// ---------------------------------------------------------------------------
// Support

const REPORT_FD: &str = "IPCKIT_REPORT_FD";

/// The parent's end of a report pipe shared by one or more children.
struct Reports {
    rx: PipeReader,
    tx: Option<PipeWriter>,
}

impl Reports {
    fn new() -> Reports {
        let (rx, tx) = ipckit::pipe::pipe().unwrap();
        Reports { rx, tx: Some(tx) }
    }

    fn pass(&self, cmd: &mut Command) -> i32 {
        self.tx.as_ref().expect("spawn before seal").pass_to(cmd)
    }

    /// Spawns a re-run of this binary that reports on this pipe.
    fn spawn(&self, cmd: &mut Command) -> Guarded {
        let fd = self.pass(cmd);
        Guarded::spawn(cmd.env(REPORT_FD, fd.to_string()))
    }

    /// Spawns a program that takes the descriptor number as its last argument.
    fn spawn_fd_arg(&self, cmd: &mut Command) -> Guarded {
        let fd = self.pass(cmd);
        Guarded::spawn(cmd.arg(fd.to_string()))
    }

    /// Closes the parent's write end: once every child is gone, reading
    /// reports `Disconnected` instead of waiting out the hang guard.
    fn seal(&mut self) {
        self.tx = None;
    }

    fn next(&mut self, what: &str) -> String {
        match self.rx.recv_timeout(HANG_GUARD) {
            Ok(m) => String::from_utf8(m.data).expect("reports are text"),
            Err(e) => panic!("waiting for {what} from a child: {e}"),
        }
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.next(want), want);
    }
}

/// A child with its own report pipe (sealed at spawn).
fn spawn_reporting(cmd: &mut Command) -> (Guarded, Reports) {
    let mut reports = Reports::new();
    let child = reports.spawn(cmd);
    reports.seal();
    (child, reports)
}

/// In a child: the report pipe.
fn reporter() -> PipeWriter {
    let fd = env(REPORT_FD).parse().expect("report fd");
    PipeWriter::from_inherited(fd, &Options::default()).expect("claim the report pipe")
}

fn shm_name(text: &str) -> ShmName {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Kills a child with SIGKILL, reaps it, and checks that the kill is what
/// ended it (not an exit or a panic before).
fn kill_and_reap(mut child: Guarded, what: &str) {
    child.child().kill().expect("kill");
    let status = child.wait();
    assert_eq!(status.signal(), Some(SIGKILL), "{what}: ended by {status}, not by the kill");
}

fn assert_success(status: ExitStatus, what: &str) {
    assert!(status.success(), "{what} failed: {status}");
}

/// In a child: waits to be killed (bounded, in case the parent is gone).
fn block_until_killed() -> ! {
    let start = Instant::now();
    while start.elapsed() < 2 * HANG_GUARD {
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never killed");
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Runs `f` on its own thread and waits for its result at most the hang
/// guard: a wait with no timeout of its own (`Mutex::lock`) cannot hang the
/// test (a hung thread is left behind; the test fails and cleans up).
fn hang_guarded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung for {HANG_GUARD:?}"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked (see above)"),
    }
}

/// A timed wait given the hang guard as its timeout, failing if only the
/// timeout ended it: `Event` and `FutexSemaphore` re-check their condition
/// when the time runs out, so a lost wake-up would otherwise pass as slow.
fn within_guard<T>(what: &str, wait: impl FnOnce(Duration) -> ipckit::Result<T>) -> T {
    let start = Instant::now();
    let r = wait(HANG_GUARD).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(start.elapsed() < HANG_GUARD, "{what}: only the timeout ended the wait (a lost wake-up)");
    r
}

fn seed() -> u64 {
    let seed = std::env::var("IPCKIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1));
    eprintln!("seed {seed} (replay with IPCKIT_SEED={seed})");
    seed
}

/// Nothing of this test's is left in /dev/shm (shared-memory objects and
/// named semaphores, `sem.NAME`), once its guards are dropped.
fn assert_no_leftovers(s: &Scratch) {
    let tag = s.name("");
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&tag))
        .collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

fn sysv_key(s: &Scratch, id: u8) -> SysvKey {
    SysvKey::parse(s.dir().to_str().unwrap(), id).unwrap()
}

// ---------------------------------------------------------------------------
// 1. Exact counts under the mutex

/// Child: reports "ready", then increments the `Mutex<u64>` `IPCKIT_MUTEX`
/// `IPCKIT_N` times, and reports "foreign K": how many times it found the
/// counter changed by another process since its own last increment.
#[test]
#[ignore = "child process entry point"]
fn child_mutex_incrementer() {
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
            reports
                .spawn(rerun("child_mutex_incrementer", "inc").env("IPCKIT_MUTEX", name).env("IPCKIT_N", n.to_string()))
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

// ---------------------------------------------------------------------------
// 2. Owner death

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
                spawn_reporting(rerun("child_mutex_worker", "worker").env("IPCKIT_MUTEX", &*guard));
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
        let (child, mut reports) = spawn_reporting(rerun("child_mutex_holder", "holder").env("IPCKIT_MUTEX", &*guard));
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
            rerun("child_mutex_not_recoverable", "check").env("IPCKIT_MUTEX", &*guard).env("IPCKIT_LOCKS", "lock"),
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
        let (child, mut reports) = spawn_reporting(rerun("child_mutex_holder", "holder").env("IPCKIT_MUTEX", &*guard));
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
                rerun("child_mutex_not_recoverable", "check").env("IPCKIT_MUTEX", &*guard).env("IPCKIT_LOCKS", locks),
            )
            .wait();
            assert_success(status, "not-recoverable check in another process");
        }
    }
    assert_no_leftovers(&s);
}

// ---------------------------------------------------------------------------
// 3. Condvar hand-offs

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
            rerun("child_cv_producer", "producer").env("IPCKIT_MUTEX", &*mg).env("IPCKIT_CONDVAR", &*cg),
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
                reports.spawn(rerun("child_cv_waiter", "waiter").env("IPCKIT_MUTEX", &*mg).env("IPCKIT_CONDVAR", &*cg))
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

// ---------------------------------------------------------------------------
// 4. System V semaphore sets

/// Child: takes one from semaphore 0 of the set `IPCKIT_SYSV` (ftok path,
/// id 1) with or without `SEM_UNDO` (`IPCKIT_UNDO`), reports "taken", then
/// waits to be killed, or exits (`IPCKIT_THEN=exit`).
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
    let set = SemaphoreSet::create(&key, 1, 1, 0o600, true).unwrap().remove_on_drop(true);
    let dir = s.dir().to_str().unwrap();
    // (undo, how the child ends, the value after it is gone)
    for (undo, then, after) in [(true, "kill", 1), (false, "kill", 0), (true, "exit", 1)] {
        set.set_value(0, 1).unwrap();
        let (child, mut reports) = spawn_reporting(
            rerun("child_sysv_taker", "taker")
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
    let (child, mut reports) =
        spawn_reporting(rerun("child_sysv_waiter", "waiter").env("IPCKIT_SYSV", s.dir().to_str().unwrap()));
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

// ---------------------------------------------------------------------------
// 5. POSIX semaphores, named and unnamed in shared memory

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
fn echo(post: &dyn Fn() -> ipckit::Result<()>, wait: &dyn Fn() -> ipckit::Result<()>, mut reports: Reports) {
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
            rerun("child_sem_echo", "echo")
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
            rerun("child_sem_echo", "echo")
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

// ---------------------------------------------------------------------------
// 6. Futex events and semaphores

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
            rerun("child_event_ponger", "ponger")
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
            .map(|_| reports.spawn(rerun("child_event_waiter", "waiter").env("IPCKIT_EVENT", &*guard)))
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
        let children: Vec<Guarded> =
            (0..2).map(|_| reports.spawn(rerun("child_event_waiter", "waiter").env("IPCKIT_EVENT", &*guard))).collect();
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
                rerun("child_futex_sem", op)
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

// ---------------------------------------------------------------------------
// 7. A C peer

fn c_peer(s: &Scratch) -> std::path::PathBuf {
    build_c(s, "sync_peer", include_str!("c/sync_peer.c"), &["-lpthread", "-lrt"])
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
        let rust = reports
            .spawn(rerun("child_mutex_incrementer", "inc").env("IPCKIT_MUTEX", &*guard).env("IPCKIT_N", N.to_string()));
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

// ---------------------------------------------------------------------------
// 8. Other users' objects, and objects that are not ipckit locks

/// Child running as uid 65534: every object named in the environment is
/// refused with PermissionDenied.
#[test]
#[ignore = "child process entry point"]
fn child_unprivileged_sync() {
    let Some(_) = child_role() else { return };
    let mut failures = Vec::new();
    let mut check = |what: &str, r: ipckit::Result<()>| match r {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {}
        Err(e) => failures.push(format!("{what}: {e}")),
        Ok(()) => failures.push(format!("{what}: opened")),
    };
    for name in env("IPCKIT_MUTEXES").split(' ') {
        check(name, Mutex::<u64>::open(&shm_name(name)).map(drop));
        check(name, Mutex::<u64>::open_or_create(&shm_name(name), 0).map(drop));
    }
    for name in env("IPCKIT_NAMED").split(' ') {
        check(name, NamedSemaphore::open(name).map(drop));
        check(name, NamedSemaphore::open_or_create(name, 0, 0o600).map(drop));
    }
    let name = env("IPCKIT_SHARED");
    check(&name, SharedSemaphore::open(&shm_name(&name)).map(drop));
    let name = env("IPCKIT_EVENT");
    check(&name, Event::open(&shm_name(&name)).map(drop));
    let name = env("IPCKIT_FUTEXSEM");
    check(&name, FutexSemaphore::open(&shm_name(&name)).map(drop));
    let name = env("IPCKIT_CONDVAR");
    check(&name, Condvar::open(&shm_name(&name)).map(drop));
    for id in [1, 2] {
        let key = SysvKey::parse(&env("IPCKIT_SYSV"), id).unwrap();
        check(&format!("sysv set {id}"), SemaphoreSet::open(&key).map(drop));
    }
    assert!(failures.is_empty(), "not refused: {failures:#?}");
}

#[test]
fn other_users_objects_are_permission_denied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to start a child as uid 65534");
        return;
    }
    let s = Scratch::new("sync-perm");
    std::fs::set_permissions(s.dir(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    {
        let (m600, m666) = (s.shm("m600"), s.shm("m666"));
        let (shared, event, futexsem, condvar) = (s.shm("shared"), s.shm("event"), s.shm("fsem"), s.shm("cv"));
        let (n600, n666) = (SemName::new(&s, "n600"), SemName::new(&s, "n666"));
        // 0600: the kernel refuses; 0666: ipckit's owner check refuses.
        let _m1 = Mutex::<u64>::open_or_create(&m600.shm_name(), 0).unwrap();
        let _m2 = Mutex::<u64>::open_or_create_with(&Segment::new(m666.shm_name()).mode(0o666), 0).unwrap();
        let _n1 = NamedSemaphore::create(&n600.0, 0, 0o600).unwrap();
        let _n2 = NamedSemaphore::create(&n666.0, 0, 0o666).unwrap();
        let _sh = SharedSemaphore::open_or_create(&shared.shm_name(), 0).unwrap();
        let _ev = Event::open_or_create(&event.shm_name(), EventMode::AutoReset).unwrap();
        let _fs = FutexSemaphore::open_or_create(&futexsem.shm_name(), 0).unwrap();
        let _cv = Condvar::open_or_create(&condvar.shm_name()).unwrap();
        let _set1 = SemaphoreSet::create(&sysv_key(&s, 1), 1, 0, 0o600, true).unwrap().remove_on_drop(true);
        let _set2 = SemaphoreSet::create(&sysv_key(&s, 2), 1, 0, 0o666, true).unwrap().remove_on_drop(true);
        let mut cmd = rerun("child_unprivileged_sync", "nobody");
        cmd.uid(65534)
            .gid(65534)
            .env("IPCKIT_MUTEXES", format!("{} {}", &*m600, &*m666))
            .env("IPCKIT_NAMED", format!("{} {}", n600.0, n666.0))
            .env("IPCKIT_SHARED", &*shared)
            .env("IPCKIT_EVENT", &*event)
            .env("IPCKIT_FUTEXSEM", &*futexsem)
            .env("IPCKIT_CONDVAR", &*condvar)
            .env("IPCKIT_SYSV", s.dir());
        assert_success(Guarded::spawn(&mut cmd).wait(), "unprivileged child");
    }
    assert_no_leftovers(&s);
}

/// A plain POSIX segment of `size` bytes holding `bytes` at offset 0.
fn plant(name: &ShmName, size: usize, bytes: &[u8]) {
    let region = Segment::new(name.clone()).size(size).create().unwrap();
    region.write_at(0, bytes).unwrap();
}

#[test]
fn objects_that_are_not_ipckit_mutexes_are_refused() {
    // Header 64 + pthread_mutex_t slot 64 + u64.
    const SIZE: usize = 136;
    let s = Scratch::new("sync-notlock");
    {
        let guards: Vec<_> = (0..11).map(|i| s.shm(&format!("o{i}"))).collect();
        let names: Vec<ShmName> = guards.iter().map(|g| g.shm_name()).collect();

        // A genuine Mutex<u64>, whose header the doctored copies start from.
        let (_real, _) = Mutex::<u64>::open_or_create(&names[0], 7).unwrap();
        let mut header = [0u8; 64];
        Segment::new(names[0].clone()).read_only().open().unwrap().read_at(0, &mut header).unwrap();
        let doctored = |offset: usize, value: &[u8]| {
            let mut h = header;
            h[offset..offset + value.len()].copy_from_slice(value);
            h
        };

        // (what, the object planted or made, the kind expected)
        const CORRUPT: &[ErrorKind] = &[ErrorKind::Corrupt];
        const INVALID: &[ErrorKind] = &[ErrorKind::Invalid];
        let mut cases: Vec<(&str, ShmName, &[ErrorKind])> = Vec::new();
        plant(&names[1], SIZE, &[]);
        cases.push(("zeros (never initialised)", names[1].clone(), CORRUPT));
        plant(&names[2], SIZE, &[0xA5; SIZE]);
        cases.push(("garbage", names[2].clone(), CORRUPT));
        plant(&names[3], SIZE, &doctored(0, b"NOTIPCKT"));
        cases.push(("ready, but a foreign magic", names[3].clone(), CORRUPT));
        plant(&names[4], SIZE, &doctored(STATE_OFFSET, &1u32.to_ne_bytes()));
        plant(&names[5], SIZE, &doctored(8, &2u32.to_ne_bytes()));
        cases.push(("layout version 2", names[5].clone(), INVALID));
        plant(&names[6], SIZE, &doctored(16, &0xdead_beef_u64.to_ne_bytes()));
        cases.push(("another ABI", names[6].clone(), INVALID));
        plant(&names[7], SIZE, &doctored(32, &4096u64.to_ne_bytes()));
        cases.push(("header size disagrees", names[7].clone(), CORRUPT));
        plant(&names[8], SIZE, &doctored(24, &4u32.to_ne_bytes()));
        cases.push(("another kind of object", names[8].clone(), INVALID));
        plant(&names[9], 16, &[]);
        cases.push(("too small", names[9].clone(), CORRUPT));
        // A genuine object of another kind, and smaller: refused as too small
        // (after the initialisation deadline) or for its kind.
        let _ev = Event::open_or_create(&names[10], EventMode::AutoReset).unwrap();
        cases.push(("an ipckit event", names[10].clone(), &[ErrorKind::Corrupt, ErrorKind::Invalid]));

        // Some cases wait out the initialisation deadline: run them together.
        let (results, other_type): (Vec<_>, _) = std::thread::scope(|sc| {
            // A Mutex of another data type (another size) is refused too.
            let other_type = sc.spawn(|| Mutex::<[u64; 2]>::open(&names[0]).map(drop).map_err(|e| e.kind()));
            let handles: Vec<_> = cases
                .iter()
                .map(|(what, name, _)| {
                    let open = sc.spawn(move || Mutex::<u64>::open(name).map(drop).map_err(|e| e.kind()));
                    let create =
                        sc.spawn(move || Mutex::<u64>::open_or_create(name, 0).map(drop).map_err(|e| e.kind()));
                    (*what, open, create)
                })
                .collect();
            let results = handles.into_iter().map(|(what, o, c)| (what, o.join().unwrap(), c.join().unwrap()));
            (results.collect(), other_type.join().unwrap())
        });
        for ((what, open, create), (_, _, want)) in results.into_iter().zip(&cases) {
            assert!(open.is_err_and(|k| want.contains(&k)), "Mutex::open of {what}: {open:?}, want one of {want:?}");
            assert!(
                create.is_err_and(|k| want.contains(&k)),
                "Mutex::open_or_create of {what}: {create:?}, want one of {want:?}"
            );
        }
        assert_eq!(other_type, Err(ErrorKind::Corrupt), "Mutex<[u64; 2]>::open of a Mutex<u64>");
        // Initialising, and nobody holds it (its creator died): open reports
        // it; create-or-open removes it under its lock and starts afresh.
        // (One after the other: a concurrent opener's lock probe would make
        // the removal back off.)
        let e = Mutex::<u64>::open(&names[4]).map(drop).map_err(|e| e.kind());
        assert_eq!(e, Err(ErrorKind::Corrupt), "Mutex::open of an abandoned object");
        let (healed, opened) = Mutex::<u64>::open_or_create(&names[4], 5).unwrap();
        assert_eq!(opened, Opened::Created);
        assert_eq!(*healed.lock().unwrap(), 5);
        // And the genuine one still works.
        assert_eq!(*Mutex::<u64>::open(&names[0]).unwrap().lock().unwrap(), 7);
    }
    assert_no_leftovers(&s);
}
