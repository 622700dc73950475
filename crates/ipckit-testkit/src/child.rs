//! Child processes: the test binary re-run as a child, and a guard that
//! kills a child when the test fails.
//!
//! A child entry point is an ignored test that does nothing unless
//! [`child_role`] says this process is a child:
//!
//! ```text
//! #[test]
//! #[ignore = "child process entry point"]
//! fn child_echo() {
//!     let Some(role) = child_role() else { return };
//!     ...
//! }
//! ```
//!
//! and the parent starts it with `Guarded::spawn(&mut rerun("child_echo",
//! "echo"))`, naming the test by its full path in the test binary
//! (`module::child_echo` when it lives in a module).

use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::HANG_GUARD;

/// The role a re-run test binary plays, if this process is a child.
pub fn child_role() -> Option<String> {
    std::env::var("IPCKIT_CHILD").ok()
}

/// In a child: the environment variable `var` its parent set, which must
/// be there.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"))
}

/// A command that re-runs this test binary, running only `test` (its full
/// path in the binary, e.g. `child_sender` or `exchange::child_exchange`),
/// with `IPCKIT_CHILD=role`.
///
/// Panics if the binary has no such test: the harness would run nothing
/// and exit 0, and the parent would take that for a child that succeeded.
pub fn rerun(test: &str, role: &str) -> Command {
    assert!(
        tests_of_this_binary().iter().any(|t| t == test),
        "rerun: this test binary has no test {test:?} (name it by its full path, module::name)"
    );
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1", "--include-ignored"])
        .env("IPCKIT_CHILD", role)
        .stdin(Stdio::null())
        // The harness's own report would mix with the parent's; a child's
        // failure shows on stderr and in its exit status.
        .stdout(Stdio::null());
    cmd
}

/// The names of the tests of this binary (ignored ones included), from its
/// `--list`, asked once per process.
fn tests_of_this_binary() -> &'static [String] {
    static TESTS: OnceLock<Vec<String>> = OnceLock::new();
    TESTS.get_or_init(|| {
        let out = Command::new(std::env::current_exe().expect("current_exe"))
            .args(["--list", "--format=terse"])
            .env_remove("IPCKIT_CHILD")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("list the tests of this binary");
        assert!(out.status.success(), "listing the tests of this binary failed: {}", out.status);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(String::from)
            .collect()
    })
}

/// A child process killed (and reaped) on drop unless it was waited for.
#[derive(Debug)]
pub struct Guarded(pub Option<Child>);

impl Guarded {
    /// Spawns `cmd`.
    pub fn spawn(cmd: &mut Command) -> Guarded {
        Guarded(Some(cmd.spawn().expect("spawn child")))
    }

    /// The child, while it has not been waited for.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child already waited for")
    }

    /// Waits (hang guard: 30 s, then the child is killed and the test fails).
    pub fn wait(mut self) -> ExitStatus {
        let mut child = self.0.take().expect("child already waited for");
        wait_guarded(&mut child)
    }

    /// Waits and collects stdout/stderr (they must be piped).
    pub fn output(self) -> Output {
        self.output_within(HANG_GUARD)
    }

    /// As [`output`](Self::output), with `guard` instead of the hang
    /// guard: for a child whose work is long by design (a benchmark run),
    /// not for one that waits for something.
    pub fn output_within(mut self, guard: Duration) -> Output {
        let child = self.0.take().expect("child already waited for");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(guard) {
            Ok(out) => out.expect("wait for child"),
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("child {pid} hung for {guard:?}");
            }
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for a child with the hang guard.
pub fn wait_guarded(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} hung for {HANG_GUARD:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
