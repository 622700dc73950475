//! What several sections use: the report pipe a child writes its progress
//! to (`IPCKIT_REPORT_FD`), waits bounded by the hang guard, and names.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipckit::Options;
use ipckit::endpoint::SysvKey;
use ipckit::pipe::{PipeReader, PipeWriter};
use ipckit::shm::ShmName;
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, env};
use ipckit_testkit::scratch::Scratch;

/// `SIGKILL`.
const SIGKILL: i32 = 9;

const REPORT_FD: &str = "IPCKIT_REPORT_FD";

/// The parent's end of a report pipe shared by one or more children.
pub(crate) struct Reports {
    rx: PipeReader,
    tx: Option<PipeWriter>,
}

impl Reports {
    pub(crate) fn new() -> Reports {
        let (rx, tx) = ipckit::pipe::pipe().unwrap();
        Reports { rx, tx: Some(tx) }
    }

    pub(crate) fn pass(&self, cmd: &mut Command) -> i32 {
        self.tx.as_ref().expect("spawn before seal").pass_to(cmd)
    }

    /// Spawns a re-run of this binary that reports on this pipe.
    pub(crate) fn spawn(&self, cmd: &mut Command) -> Guarded {
        let fd = self.pass(cmd);
        Guarded::spawn(cmd.env(REPORT_FD, fd.to_string()))
    }

    /// Spawns a program that takes the descriptor number as its last argument.
    pub(crate) fn spawn_fd_arg(&self, cmd: &mut Command) -> Guarded {
        let fd = self.pass(cmd);
        Guarded::spawn(cmd.arg(fd.to_string()))
    }

    /// Closes the parent's write end: once every child is gone, reading
    /// reports `Disconnected` instead of waiting out the hang guard.
    pub(crate) fn seal(&mut self) {
        self.tx = None;
    }

    pub(crate) fn next(&mut self, what: &str) -> String {
        match self.rx.recv_timeout(HANG_GUARD) {
            Ok(m) => String::from_utf8(m.data).expect("reports are text"),
            Err(e) => panic!("waiting for {what} from a child: {e}"),
        }
    }

    pub(crate) fn expect(&mut self, want: &str) {
        assert_eq!(self.next(want), want);
    }
}

/// A child with its own report pipe (sealed at spawn).
pub(crate) fn spawn_reporting(cmd: &mut Command) -> (Guarded, Reports) {
    let mut reports = Reports::new();
    let child = reports.spawn(cmd);
    reports.seal();
    (child, reports)
}

/// In a child: the report pipe.
pub(crate) fn reporter() -> PipeWriter {
    let fd = env(REPORT_FD).parse().expect("report fd");
    PipeWriter::from_inherited(fd, &Options::default()).expect("claim the report pipe")
}

pub(crate) fn shm_name(text: &str) -> ShmName {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Kills a child with SIGKILL, reaps it, and checks that the kill is what
/// ended it (not an exit or a panic before).
pub(crate) fn kill_and_reap(mut child: Guarded, what: &str) {
    child.child().kill().expect("kill");
    let status = child.wait();
    assert_eq!(status.signal(), Some(SIGKILL), "{what}: ended by {status}, not by the kill");
}

pub(crate) fn assert_success(status: ExitStatus, what: &str) {
    assert!(status.success(), "{what} failed: {status}");
}

/// In a child: waits to be killed (bounded, in case the parent is gone).
pub(crate) fn block_until_killed() -> ! {
    let start = Instant::now();
    while start.elapsed() < 2 * HANG_GUARD {
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never killed");
}

pub(crate) fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Runs `f` on its own thread and waits for its result at most the hang
/// guard: a wait with no timeout of its own (`Mutex::lock`) cannot hang the
/// test (a hung thread is left behind; the test fails and cleans up).
pub(crate) fn hang_guarded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
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
pub(crate) fn within_guard<T>(what: &str, wait: impl FnOnce(Duration) -> ipckit::Result<T>) -> T {
    let start = Instant::now();
    let r = wait(HANG_GUARD).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(start.elapsed() < HANG_GUARD, "{what}: only the timeout ended the wait (a lost wake-up)");
    r
}

pub(crate) fn seed() -> u64 {
    let seed = std::env::var("IPCKIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1));
    eprintln!("seed {seed} (replay with IPCKIT_SEED={seed})");
    seed
}

/// Nothing of this test's is left in /dev/shm (shared-memory objects and
/// named semaphores, `sem.NAME`), once its guards are dropped.
pub(crate) fn assert_no_leftovers(s: &Scratch) {
    let tag = s.name("");
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&tag))
        .collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

pub(crate) fn sysv_key(s: &Scratch, id: u8) -> SysvKey {
    SysvKey::parse(s.dir().to_str().unwrap(), id).unwrap()
}
