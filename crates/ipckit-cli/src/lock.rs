//! `ipckit lock NAME -- COMMAND`: runs a command while holding a robust
//! process-shared mutex, the way `flock(1)` does with a file lock.
//!
//! ipckit itself holds the lock: it locks, runs the command in a child, waits
//! for it, unlocks, and exits with the command's status. The child gets
//! `PR_SET_PDEATHSIG` (SIGKILL), so that killing ipckit also ends the
//! command instead of leaving it running without the lock. The mutex is
//! robust: if a holder dies, the next one is told ("previous holder died")
//! and takes over.
//!
//! A damaged lock object is reported, never fatal: one scribbled on between
//! uses is `Corrupt` (the library checks the mutex before glibc sees it),
//! exit 1 with the hint to remove it; one truncated while the command runs
//! is caught by a `SIGBUS` handler ([`sigbus`]), and ipckit still exits
//! with the command's status.

mod sigbus;

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use clap::Args;
use ipckit::ErrorKind;
use ipckit::shm::ShmName;
use ipckit::sync::{LockError, Mutex};

use crate::units;

/// The long help of `ipckit lock` (`--help`).
pub const LONG_HELP: &str = "Run COMMAND while holding the robust lock NAME, then exit with the command's status.\n\n\
        NAME is an ipckit lock object: `/name` (POSIX shared memory), `sysv:KEY` or `file:/path`; it is \
        created (mode 0600) on first use and stays until `ipckit rm NAME`. ipckit holds the lock while the \
        command runs in a child process; if ipckit is killed, the command is killed too (PR_SET_PDEATHSIG: the \
        command itself, not processes it starts; use `exec` in `sh -c`), and the next `ipckit lock NAME` warns that the previous holder died, then runs anyway.\n\n\
        Exit status: the command's (128+N if it was killed by signal N; 127 if it was not found, 126 if it \
        could not be run), 3 if the lock was not acquired within --timeout (the command is not run), \
        1 or 2 for ipckit's own errors (1 for a corrupt lock object: remove it with `ipckit rm NAME`). If \
        another process truncates the lock object while the command runs, ipckit says so and still exits \
        with the command's status.";

#[derive(Args, Debug)]
pub struct LockArgs {
    /// The lock object: `/name`, `sysv:KEY` or `file:/path`.
    pub name: String,
    /// Give up if the lock is not acquired within this long (e.g. 500ms, 2s):
    /// exit 3 without running the command.
    #[arg(long, value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,
    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// An error about the lock object itself, with what to do about it.
#[derive(Debug)]
struct Damaged {
    error: ipckit::Error,
    name: ShmName,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (remove it with `ipckit rm {}`)", self.error, self.name)
    }
}

impl std::error::Error for Damaged {}

/// A corrupt lock object gets the hint to remove it (exit 1); other errors
/// go as they are.
fn hinted(error: ipckit::Error, name: &ShmName) -> anyhow::Error {
    if error.kind() == ErrorKind::Corrupt {
        anyhow::Error::new(Damaged { error, name: name.clone() })
    } else {
        error.into()
    }
}

pub fn run(args: LockArgs) -> anyhow::Result<()> {
    let name: ShmName = args.name.parse()?;
    sigbus::install(&name.to_string())?;
    let (mutex, _) = Mutex::<u64>::open_or_create(&name, 0).map_err(|e| hinted(e, &name))?;
    sigbus::set_mapping(mutex.mapped_range());
    let locked = match args.timeout {
        Some(t) => mutex.lock_timeout(t),
        None => mutex.lock(),
    };
    let mut guard = match locked {
        Ok(guard) => guard,
        Err(LockError::OwnerDied(mut guard)) => {
            let pid = match *guard {
                0 => "unknown pid".to_string(),
                pid => format!("pid {pid}"),
            };
            eprintln!(
                "ipckit: warning: lock {name}: the previous holder died holding it ({pid}); \
                 what it was doing may be half done; running the command anyway"
            );
            guard.mark_consistent().map_err(|e| hinted(e, &name))?;
            guard
        }
        Err(LockError::Failed(e)) if e.kind() == ErrorKind::NotRecoverable => {
            return Err(anyhow::Error::new(e)
                .context(format!("lock {name} is unusable: remove it with `ipckit rm {name}`, then retry")));
        }
        Err(LockError::Failed(e)) => return Err(hinted(e, &name)),
    };
    // The holder's pid, for the warning above if this process dies.
    *guard = u64::from(std::process::id());

    // While the command runs, nothing touches the lock object's memory: a
    // truncation then faults only at the unlock, which the SIGBUS handler
    // turns into the command's status.
    let outcome = run_command(&args.command);
    let code = match &outcome {
        Ok(status) => exit_code(*status),
        Err(Failure::CannotRun(code, message)) => {
            eprintln!("ipckit: lock {name}: {message}");
            *code
        }
        Err(Failure::Other(_)) => 1,
    };
    sigbus::set_status(code);
    // Unlock before exiting (std::process::exit runs no destructors; the
    // mapping itself goes with the process).
    drop(guard);
    match outcome {
        Err(Failure::Other(e)) => Err(e),
        _ if code == 0 => Ok(()),
        _ => std::process::exit(code),
    }
}

enum Failure {
    /// The command could not be started: exit code (127 not found, 126
    /// found but not runnable, as shells do) and the message.
    CannotRun(i32, String),
    Other(anyhow::Error),
}

fn run_command(argv: &[OsString]) -> Result<ExitStatus, Failure> {
    let (program, rest) = argv.split_first().expect("clap requires a command");
    let mut cmd = Command::new(program);
    cmd.args(rest);
    ipckit::process::kill_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            use rustix::io::Errno;
            let shown = program.to_string_lossy();
            let code = match Errno::from_io_error(&e) {
                Some(Errno::NOENT) => 127,
                Some(
                    Errno::ACCESS
                    | Errno::PERM
                    | Errno::NOEXEC
                    | Errno::ISDIR
                    | Errno::NOTDIR
                    | Errno::LOOP
                    | Errno::TXTBSY
                    | Errno::NAMETOOLONG,
                ) => 126,
                _ => return Err(Failure::Other(anyhow::Error::new(e).context(format!("starting {shown:?}")))),
            };
            return Err(Failure::CannotRun(code, format!("cannot run {shown:?}: {e}")));
        }
    };
    // `wait` retries EINTR itself.
    child.wait().map_err(|e| Failure::Other(anyhow::Error::new(e).context("waiting for the command")))
}

/// A shell's `$?` for a finished command: its exit code, or 128 + the
/// signal that killed it.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}
