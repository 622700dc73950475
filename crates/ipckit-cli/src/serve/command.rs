//! One request's run of COMMAND: the body on its standard input (written
//! by a thread, so that a command that writes before it has read all of
//! it cannot deadlock with serve), its standard output read as the reply,
//! its standard error passed through to serve's, a piece (a line) at a
//! time, the last non-empty line kept for an error reply.
//!
//! Each command runs in its own process group, so that [`Handler::stop`]
//! reaches what it started too (`sh -c` and its children), and gets
//! `PR_SET_PDEATHSIG` (SIGKILL): a serve that is killed does not leave
//! commands running. A command's pid stays in the running set until it
//! has exited, and is taken out before it is reaped, so that `stop` never
//! signals a process group id that was reused.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

/// The most bytes of a command's last line of standard error sent back as
/// the error (so that it fits the smallest queue messages).
const MAX_ERROR: usize = 1024;

/// Standard error is passed through in pieces of at most this many bytes:
/// a line, or part of a longer one.
const MAX_PIECE: u64 = 64 * 1024;

/// The command run for each request.
#[derive(Debug)]
pub struct Handler {
    argv: Vec<OsString>,
    /// `--max-size`: the longest reply.
    max: usize,
    /// The commands running, by pid (each its own process group's id).
    running: Mutex<HashSet<i32>>,
    /// Set by `stop`: no command starts any more.
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A command's standard output.
enum Output {
    Reply(Vec<u8>),
    /// More than `--max-size` bytes (the pipe was closed there).
    TooLarge,
}

impl Handler {
    pub fn new(argv: &[OsString], max: usize) -> Handler {
        Handler { argv: argv.to_vec(), max, running: Mutex::new(HashSet::new()), stopping: AtomicBool::new(false) }
    }

    fn program(&self) -> String {
        self.argv[0].to_string_lossy().into_owned()
    }

    /// Sends SIGTERM to the process group of every command running; no
    /// command starts after this.
    pub fn stop(&self) {
        let running = lock(&self.running);
        self.stopping.store(true, Ordering::Release);
        for &pid in running.iter() {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process_group(pid, Signal::TERM);
            }
        }
    }

    /// Runs the command with `body` on its standard input: its output, or
    /// the error reply's text.
    pub fn run(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let mut child = self.spawn()?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (output, last) = std::thread::scope(|s| {
            s.spawn(move || {
                let mut stdin = stdin;
                // A command that does not read it all makes this fail
                // (EPIPE): that is its business.
                let _ = stdin.write_all(body);
            });
            let err = s.spawn(move || pass_through(stderr));
            let output = read_at_most(stdout, self.max);
            (output, err.join().unwrap_or_default())
        });
        let status = self.wait(&mut child).map_err(|e| crate::io_error("wait", &self.program(), &e).to_string())?;
        match output {
            Output::TooLarge => {
                Err(format!("the command's output exceeds the maximum of {} bytes (--max-size)", self.max))
            }
            Output::Reply(reply) if status.success() => Ok(reply),
            Output::Reply(_) => Err(last.unwrap_or_else(|| describe(status))),
        }
    }

    fn spawn(&self) -> Result<Child, String> {
        let (program, args) = self.argv.split_first().expect("clap requires a command");
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        ipckit::process::kill_with_parent(&mut cmd);
        let mut running = lock(&self.running);
        if self.stopping.load(Ordering::Acquire) {
            return Err("the server is stopping".to_string());
        }
        let child = cmd.spawn().map_err(|e| {
            let e = crate::io_error("run", &self.program(), &e);
            crate::errln(format_args!("{e}"));
            e.to_string()
        })?;
        running.insert(child.id() as i32);
        Ok(child)
    }

    /// Waits for the command to exit, takes it out of the running set, and
    /// only then reaps it (until then its pid cannot be reused).
    fn wait(&self, child: &mut Child) -> std::io::Result<ExitStatus> {
        let pid = child.id() as i32;
        if let Some(p) = Pid::from_raw(pid) {
            let exited = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
            while let Err(Errno::INTR) = rustix::process::waitid(WaitId::Pid(p), exited) {}
        }
        lock(&self.running).remove(&pid);
        child.wait()
    }
}

/// "exit status N" or "killed by signal N".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => status.to_string(),
    }
}

/// All of `out`, unless it has more than `max` bytes: then the pipe is
/// closed there (a command still writing gets EPIPE or SIGPIPE).
fn read_at_most(out: ChildStdout, max: usize) -> Output {
    let mut data = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    // An error reading the pipe ends the reply where it is.
    let _ = out.take(limit).read_to_end(&mut data);
    if data.len() > max { Output::TooLarge } else { Output::Reply(data) }
}

/// Copies the command's standard error to serve's, a line at a time, and
/// returns its last non-empty line without the newline (at most
/// [`MAX_ERROR`] bytes of it).
fn pass_through(err: ChildStderr) -> Option<String> {
    let mut reader = BufReader::new(err);
    let mut last: Option<Vec<u8>> = None;
    let mut piece = Vec::new();
    loop {
        piece.clear();
        match (&mut reader).take(MAX_PIECE).read_until(b'\n', &mut piece) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        let complete = piece.ends_with(b"\n");
        // Short of a newline and of the piece's size: the end of the output.
        if !complete && piece.len() < MAX_PIECE as usize {
            piece.push(b'\n');
        }
        // Standard error that cannot be written to does not stop serving.
        let _ = std::io::stderr().lock().write_all(&piece);
        let mut line = &piece[..];
        line = line.strip_suffix(b"\n").unwrap_or(line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            last = Some(line.to_vec());
        }
    }
    last.map(|l| shorten(String::from_utf8_lossy(&l).into_owned()))
}

/// `text` cut to [`MAX_ERROR`] bytes (at a character boundary, "..." added).
fn shorten(mut text: String) -> String {
    if text.len() > MAX_ERROR {
        let mut cut = MAX_ERROR - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_at_a_character() {
        assert_eq!(shorten("oops".into()), "oops");
        let long = "é".repeat(MAX_ERROR);
        let cut = shorten(long);
        assert!(cut.len() <= MAX_ERROR && cut.ends_with("..."), "{}", cut.len());
    }
}
