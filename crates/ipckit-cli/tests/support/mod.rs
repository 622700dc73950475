//! Running the `ipckit` binary (and other programs) from the CLI tests.
//!
//! - [`Bg`] runs a program in the background with its output collected by
//!   threads, and waits for lines on its standard error (`ipckit: ready
//!   ENDPOINT`), never sleeping for readiness. The process is killed if the
//!   test fails.
//! - [`run`] runs a program to completion (30 s hang guard) and collects
//!   its exit status and output.
//! - Every wait has the 30 s hang guard of `common`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{self, Guarded, HANG_GUARD};

/// The line prefix `ipckit recv` writes on stderr when ready.
pub const READY: &str = "ipckit: ready ";

/// The `ipckit` binary under test, with standard input closed.
pub fn ipckit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipckit"));
    cmd.stdin(Stdio::null());
    cmd
}

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

/// Runs `cmd` to completion with `input` on its standard input (none:
/// standard input closed).
pub fn run(cmd: &mut Command, input: Option<&[u8]>) -> Out {
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
    let out = guard.output();
    Out { pid, status: out.status, stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// A background process whose stdout and stderr are collected by threads.
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
    /// [`ipckit`] closes it).
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

    /// Waits for the process to exit and collects its output.
    pub fn finish(mut self) -> Out {
        let mut child = self.guard.0.take().expect("child already waited for");
        let status = common::wait_guarded(&mut child);
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

/// The endpoint text with `tcp:...:0` replaced by the real port the
/// receiver announced (other endpoints are announced unchanged).
#[track_caller]
pub fn check_announced(requested: &str, announced: &str) {
    if let Some(host_port) = requested.strip_prefix("tcp:") {
        let (host, port) = host_port.rsplit_once(':').expect("tcp endpoint has a port");
        let (ahost, aport) =
            announced.strip_prefix("tcp:").and_then(|a| a.rsplit_once(':')).expect("announced tcp endpoint");
        assert_eq!(ahost, host, "announced {announced} for {requested}");
        let aport: u16 = aport.parse().expect("announced port is a number");
        assert_ne!(aport, 0, "port 0 must be replaced by the real port");
        if port != "0" {
            assert_eq!(aport.to_string(), port);
        }
    } else {
        assert_eq!(announced, requested);
    }
}

/// `mkfifo PATH` with the shell tool.
pub fn mkfifo(path: &std::path::Path) {
    let out = run(Command::new("mkfifo").arg(path), None);
    out.expect_code(0, "mkfifo");
}

/// Whether the process is sleeping in `nanosleep` (the retry pause of a
/// connect with `--timeout`), from `/proc/PID/wchan` or
/// `/proc/PID/syscall`. `None` when neither file tells.
pub fn sleeping_in_nanosleep(pid: u32) -> Option<bool> {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let wchan_usable = !wchan.is_empty() && wchan != "0";
    if wchan_usable && wchan.contains("nanosleep") {
        return Some(true);
    }
    // The system call numbers of nanosleep and clock_nanosleep.
    let sleeps: &[&str] = if cfg!(target_arch = "x86_64") {
        &["35", "230"]
    } else if cfg!(target_arch = "aarch64") {
        &["101", "115"]
    } else {
        &[]
    };
    match std::fs::read_to_string(format!("/proc/{pid}/syscall")) {
        Ok(s) if !sleeps.is_empty() => Some(s.split_whitespace().next().is_some_and(|n| sleeps.contains(&n))),
        _ if wchan_usable => Some(false),
        _ => None,
    }
}

/// Waits until `bg` is pausing between connection attempts (so a peer
/// started now certainly starts after a failed attempt). Returns false when
/// this kernel does not tell (the test then still runs, less strictly).
pub fn wait_until_retrying(bg: &mut Bg) -> bool {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match sleeping_in_nanosleep(bg.pid()) {
            None => return false,
            Some(true) => return true,
            Some(false) => {}
        }
        if let Ok(Some(status)) = bg.guard.child().try_wait() {
            panic!("process exited ({status}) instead of waiting for its peer");
        }
        assert!(Instant::now() < deadline, "process never paused to retry within {HANG_GUARD:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The len32 encoding of `msgs`.
pub fn len32_frames(msgs: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&u32::try_from(m.len()).expect("fits u32").to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// The payload of one `recv --json` object, from `data` or `data_b64`;
/// checks that `data_b64` is used exactly for non-UTF-8 payloads and that
/// `len` agrees.
#[track_caller]
pub fn json_payload(v: &serde_json::Value) -> Vec<u8> {
    use base64::Engine;
    let data = match (v.get("data"), v.get("data_b64")) {
        (Some(s), None) => s.as_str().expect("data is a string").as_bytes().to_vec(),
        (None, Some(b)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_str().expect("data_b64 is a string"))
                .expect("data_b64 is base64");
            assert!(std::str::from_utf8(&bytes).is_err(), "UTF-8 payload sent as data_b64: {v}");
            bytes
        }
        _ => panic!("exactly one of data and data_b64 expected: {v}"),
    };
    assert_eq!(v["len"].as_u64(), Some(data.len() as u64), "len of {v}");
    data
}

// Message queues (mq_cli.rs, mq_interop.rs).

impl Bg {
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
}

/// Whether process `pid` is blocked in the system call numbered `nr`
/// (`/proc/PID/syscall`) or in a kernel function whose name contains
/// `wchan` (`/proc/PID/wchan`). `None` when neither file tells.
pub fn blocked_in_syscall(pid: u32, wchan: &str, nr: Option<&str>) -> Option<bool> {
    let w = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let wchan_usable = !w.is_empty() && w != "0";
    if wchan_usable && w.contains(wchan) {
        return Some(true);
    }
    match (std::fs::read_to_string(format!("/proc/{pid}/syscall")), nr) {
        (Ok(s), Some(nr)) => Some(s.split_whitespace().next() == Some(nr)),
        _ if wchan_usable => Some(false),
        _ => None,
    }
}

/// The system call numbers of `msgsnd` and `msgrcv` on this architecture.
pub fn sysv_msg_syscalls() -> (Option<&'static str>, Option<&'static str>) {
    if cfg!(target_arch = "x86_64") {
        (Some("69"), Some("70"))
    } else if cfg!(target_arch = "aarch64") {
        (Some("189"), Some("188"))
    } else {
        (None, None)
    }
}

/// Waits until `bg` is blocked in the system call (see
/// [`blocked_in_syscall`]). Returns false when this kernel does not tell.
pub fn wait_until_blocked(bg: &mut Bg, wchan: &str, nr: Option<&str>) -> bool {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match blocked_in_syscall(bg.pid(), wchan, nr) {
            None => return false,
            Some(true) => return true,
            Some(false) => {}
        }
        if let Ok(Some(status)) = bg.guard.child().try_wait() {
            panic!("process exited ({status}) instead of blocking in {wchan}");
        }
        assert!(Instant::now() < deadline, "process never blocked in {wchan} within {HANG_GUARD:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A System V queue key given as a number, derived from this process's id
/// and `salt` (one per test) so that it is unlikely to be anyone else's.
/// The queue is removed on drop, also when the test fails.
pub struct NumericKey {
    key: u32,
}

impl NumericKey {
    pub fn new(salt: u8) -> NumericKey {
        let pid = std::process::id();
        NumericKey { key: 0x4000_0000 | ((pid & 0x3f_ffff) << 8) | u32::from(salt) }
    }

    pub fn key(&self) -> u32 {
        self.key
    }

    /// `sysv-mq:0xKEY`.
    pub fn endpoint(&self) -> String {
        format!("sysv-mq:{:#x}", self.key)
    }
}

impl Drop for NumericKey {
    fn drop(&mut self) {
        if let Ok(ep) = self.endpoint().parse::<ipckit::Endpoint>() {
            let _ = ipckit::remove(&ep);
        }
    }
}
