//! `ipckit lock NAME -- COMMAND`: runs a command while holding a robust
//! process-shared mutex, the way `flock(1)` does with a file lock.
//!
//! ipckit itself holds the lock: it locks, runs the command in a child, waits
//! for it, unlocks, and exits with the command's status. The child gets
//! `PR_SET_PDEATHSIG` (SIGKILL), so that killing ipckit also ends the
//! command instead of leaving it running without the lock. The mutex is
//! robust: if a holder dies, the next one is told ("previous holder died")
//! and takes over.

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
        1 or 2 for ipckit's own errors.";

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

pub fn run(args: LockArgs) -> anyhow::Result<()> {
    let name: ShmName = args.name.parse()?;
    let (mutex, _) = Mutex::<u64>::open_or_create(&name, 0)?;
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
            guard.mark_consistent()?;
            guard
        }
        Err(LockError::Failed(e)) if e.kind() == ErrorKind::NotRecoverable => {
            return Err(anyhow::Error::new(e)
                .context(format!("lock {name} is unusable: remove it with `ipckit rm {name}`, then retry")));
        }
        Err(LockError::Failed(e)) => return Err(e.into()),
    };
    // The holder's pid, for the warning above if this process dies.
    *guard = u64::from(std::process::id());

    let outcome = run_command(&args.command);
    // Unlock before exiting (std::process::exit runs no destructors; the
    // mapping itself goes with the process).
    drop(guard);
    match outcome {
        Ok(status) => match exit_code(status) {
            0 => Ok(()),
            code => std::process::exit(code),
        },
        Err(Failure::CannotRun(code, message)) => {
            eprintln!("ipckit: lock {name}: {message}");
            std::process::exit(code)
        }
        Err(Failure::Other(e)) => Err(e),
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
