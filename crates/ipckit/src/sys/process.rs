//! Process-level system calls: descriptors for children, `prctl`, signal
//! dispositions, CPU affinity, user ids. The public, documented face of
//! the first ones is [`crate::process`].

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

use rustix::io::{Errno, FdFlags};

/// The environment variable that lists descriptors passed by
/// [`pass_fd`](crate::process::pass_fd).
pub const FDS_ENV: &str = "IPCKIT_FDS";

/// The environment variable with the pid of the process that passed them:
/// only its direct child may claim them (a grandchild inherits the
/// environment, not the descriptors).
pub const FDS_PID_ENV: &str = "IPCKIT_FDS_PID";

static TAKEN: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// Lets the child that `cmd` spawns inherit `fd` under the same number, and
/// returns that number. The descriptor must stay open in the parent until
/// the child is spawned (if it is closed, the spawn fails with `EBADF`).
pub(crate) fn pass_fd(cmd: &mut Command, fd: impl AsFd) -> RawFd {
    let raw = fd.as_fd().as_raw_fd();
    let list = match cmd.get_envs().find(|(k, _)| *k == FDS_ENV).and_then(|(_, v)| v) {
        Some(prev) => format!("{},{raw}", prev.to_string_lossy()),
        None => raw.to_string(),
    };
    cmd.env(FDS_ENV, list);
    cmd.env(FDS_PID_ENV, rustix::process::getpid().as_raw_nonzero().get().to_string());
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called. It calls fcntl through
    // rustix (a direct system call: no allocation, no locks) on a number it
    // captured by value.
    unsafe {
        cmd.pre_exec(move || {
            // SAFETY: `raw` is only used for this fcntl in the child; if it is
            // not open, fcntl fails with EBADF and the spawn reports it.
            let fd = rustix::fd::BorrowedFd::borrow_raw(raw);
            rustix::io::fcntl_setfd(fd, FdFlags::empty()).map_err(std::io::Error::from)
        });
    }
    raw
}

/// Claims descriptor `raw`, passed by the parent with [`pass_fd`]. Fails with
/// `EBADF` unless `raw` is listed in `IPCKIT_FDS` by this process's parent
/// (`IPCKIT_FDS_PID`), is open, and was not claimed before. The descriptor
/// is made close-on-exec again.
pub(crate) fn take_inherited_fd(raw: RawFd) -> Result<OwnedFd, Errno> {
    let listed =
        std::env::var(FDS_ENV).map(|v| v.split(',').any(|n| n.trim().parse::<RawFd>() == Ok(raw))).unwrap_or(false);
    let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
    let passed_by_parent = std::env::var(FDS_PID_ENV).ok().and_then(|p| p.parse::<i32>().ok()) == parent;
    if !listed || !passed_by_parent {
        return Err(Errno::BADF);
    }
    claim(raw)
}

/// Turns `raw` into an owned descriptor, once per number per process:
/// refuses standard streams, closed numbers and numbers claimed before.
fn claim(raw: RawFd) -> Result<OwnedFd, Errno> {
    if raw <= 2 {
        return Err(Errno::BADF);
    }
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    if taken.contains(&raw) {
        return Err(Errno::BADF);
    }
    // SAFETY: only used for the F_GETFD probe below while `raw` is checked.
    let borrowed = unsafe { rustix::fd::BorrowedFd::borrow_raw(raw) };
    rustix::io::fcntl_getfd(borrowed)?;
    taken.push(raw);
    // SAFETY: `raw` is open (F_GETFD succeeded) and was handed to this
    // process for this purpose (listed in IPCKIT_FDS by the parent, or named
    // by the user who started the program); the TAKEN list makes this the
    // only owner this module ever creates for it.
    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&owned, FdFlags::CLOEXEC)?;
    Ok(owned)
}

/// Makes the child that `cmd` spawns receive `SIGKILL` when the thread that
/// spawned it exits (`prctl(PR_SET_PDEATHSIG)` follows the parent *thread*),
/// so that a command run under a lock never outlives the lock's holder:
/// spawn from the thread that holds the lock and stays alive while the child
/// runs. A parent that dies between fork and the prctl is caught by checking
/// the parent pid afterwards. Only the direct child is signalled.
pub(crate) fn kill_with_parent(cmd: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec; prctl and
    // getppid are direct system calls through rustix (async-signal-safe: no
    // allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)?;
            if rustix::process::getppid() != Some(parent) {
                // The parent died before the prctl took effect.
                return Err(std::io::Error::from(Errno::SRCH));
            }
            Ok(())
        });
    }
}

/// Claims descriptor `raw` that the user named on the command line (as in
/// `--ready-fd 3` with `3>file`): for a program's entry point. Fails with
/// `EBADF` for standard streams, closed numbers, and numbers claimed before
/// through this module.
pub(crate) fn take_fd_named_by_user(raw: RawFd) -> Result<OwnedFd, Errno> {
    claim(raw)
}

/// Restores the kernel's default action for `SIGPIPE` (terminate the
/// process), which Rust programs replace with "ignore" at start-up. For
/// programs that want shell-like behaviour, and for tests that prove a
/// transport never raises `SIGPIPE`.
pub(crate) fn set_sigpipe_default() -> Result<(), Errno> {
    // SAFETY: installing SIG_DFL runs no handler code in this process, so no
    // async-signal-safety requirement arises; `signal` only changes the
    // process's disposition table.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    if previous == libc::SIG_ERR { Err(Errno::INVAL) } else { Ok(()) }
}

/// Pins the calling thread to one CPU.
pub(crate) fn pin_to_cpu(cpu: usize) -> Result<(), Errno> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
}

/// The CPUs the calling thread may run on.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => vec![0],
    }
}

/// The soft `RLIMIT_FSIZE` (`None`: unlimited). Growing a file past it
/// raises `SIGXFSZ`, so sizes are checked against it first.
pub(crate) fn file_size_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Fsize).current
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit now in force (`u64::MAX`: unlimited).
pub(crate) fn raise_nofile_limit() -> Result<u64, Errno> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum })?;
    }
    Ok(limit.maximum.unwrap_or(u64::MAX))
}

/// The effective group id of this process.
pub(crate) fn getegid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// The effective user id of this process.
pub(crate) fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether process `pid` exists (`kill(pid, 0)`; one of another user
/// counts).
pub(crate) fn is_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else { return false };
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

/// This process's id.
pub(crate) fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}
