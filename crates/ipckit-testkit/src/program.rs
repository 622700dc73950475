//! Any program (the `ipckit` binary, a C peer, a shell tool) run to
//! completion or in the background, with its output collected.
//!
//! - [`run`] runs a program to completion (30 s hang guard) and collects
//!   its exit status and output as an [`Out`].
//! - [`Bg`] runs a program in the background with its output collected by
//!   threads, and waits for lines on its standard error (`ipckit: ready
//!   ENDPOINT`), never sleeping for readiness. The process is killed if the
//!   test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use crate::HANG_GUARD;
use crate::child::{self, Guarded};
use crate::cli::READY;

/// What a finished process left.
#[derive(Debug)]
pub struct Out {
    pub pid: u32,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32, what: &str) -> &Out {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{what}: exit status {:?}, expected {code}\nstdout: {}\nstderr: {}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self
    }

    /// Standard output as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// Standard output as one JSON value per line.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }
}

/// Asserts that the standard error of `out` mentions `needle`.
#[track_caller]
pub fn assert_stderr(out: &Out, needle: &str, what: &str) {
    assert!(out.stderr.contains(needle), "{what}: stderr does not mention {needle:?}:\n{}", out.stderr);
}

/// Runs `cmd` to completion with `input` on its standard input (none:
/// standard input closed).
pub fn run(cmd: &mut Command, input: Option<&[u8]>) -> Out {
    run_within(cmd, input, HANG_GUARD)
}

/// As [`run`], with `guard` instead of the hang guard (see
/// [`Guarded::output_within`]).
pub fn run_within(cmd: &mut Command, input: Option<&[u8]>, guard_for: std::time::Duration) -> Out {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut guard = Guarded::spawn(cmd);
    let pid = guard.child().id();
    if let Some(input) = input {
        let mut stdin = guard.child().stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // A thread, so that a child that does not read cannot block the test;
        // a child that exits early makes the write fail, which is fine.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out = guard.output_within(guard_for);
    Out { pid, status: out.status, stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// `mkfifo PATH` with the shell tool.
pub fn mkfifo(path: &Path) {
    let out = run(Command::new("mkfifo").arg(path), None);
    out.expect_code(0, "mkfifo");
}

/// A background process whose stdout and stderr are collected by threads.
#[derive(Debug)]
pub struct Bg {
    guard: Guarded,
    pid: u32,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout: mpsc::Receiver<Vec<u8>>,
    stderr: mpsc::Receiver<String>,
}

impl Bg {
    /// Spawns `cmd` with stdout and stderr piped (stdin as `cmd` says;
    /// [`Ipckit::command`](crate::cli::Ipckit::command) closes it).
    pub fn spawn(cmd: &mut Command) -> Bg {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut guard = Guarded::spawn(cmd);
        let pid = guard.child().id();
        let mut out = guard.child().stdout.take().expect("stdout is piped");
        let err = guard.child().stderr.take().expect("stderr is piped");
        let (out_tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            let _ = out_tx.send(buf);
        });
        let (line_tx, lines) = mpsc::channel();
        let (err_tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            let mut reader = BufReader::new(err);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line).into_owned();
                all.push_str(&text);
                let _ = line_tx.send(text.trim_end_matches('\n').to_string());
                line.clear();
            }
            let _ = err_tx.send(all);
        });
        Bg { guard, pid, lines, seen: Vec::new(), stdout, stderr }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its standard input, if it was spawned with `Stdio::piped()`.
    pub fn stdin(&mut self) -> &mut std::process::ChildStdin {
        self.guard.child().stdin.as_mut().expect("spawned with a piped stdin")
    }

    /// Closes its standard input (it reads end-of-file).
    pub fn close_stdin(&mut self) {
        drop(self.guard.child().stdin.take());
    }

    /// The exit status, if the process has exited (`try_wait`).
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.guard.child().try_wait()
    }

    /// Waits for a stderr line starting with `prefix` and returns the rest
    /// of it. Fails if the process closes stderr (exits) first.
    #[track_caller]
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no line {prefix:?} on stderr within {HANG_GUARD:?}; seen: {:?}", self.seen)
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.guard.child().try_wait();
                    panic!("stderr closed before a line {prefix:?} (status {status:?}); seen: {:?}", self.seen)
                }
            }
        }
    }

    /// Waits for `ipckit: ready ENDPOINT` and returns ENDPOINT.
    #[track_caller]
    pub fn ready(&mut self) -> String {
        self.wait_line(READY)
    }

    /// The next line on standard error, or `None` once the process has
    /// closed it (it exited). Fails after the hang guard.
    #[track_caller]
    pub fn next_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(HANG_GUARD) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no line and no exit within {HANG_GUARD:?}; seen: {:?}", self.seen)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for the process to exit and collects its output.
    pub fn finish(mut self) -> Out {
        let mut child = self.guard.0.take().expect("child already waited for");
        let status = child::wait_guarded(&mut child);
        let stdout = self.stdout.recv_timeout(HANG_GUARD).expect("stdout collector");
        let rest = self.stderr.recv_timeout(HANG_GUARD).expect("stderr collector");
        Out { pid: self.pid, status, stdout, stderr: rest }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid as i32).expect("nonzero pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }
}
