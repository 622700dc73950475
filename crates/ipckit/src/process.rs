//! Handing descriptors to child processes, and placing processes on CPUs.
//!
//! A parent marks a descriptor for a child with [`pass_fd`]: in the child
//! only (between `fork` and `exec`), the descriptor's close-on-exec flag is
//! cleared, and its number is listed in the child's [`FDS_ENV`]
//! environment variable. The child claims it, once, with
//! [`take_inherited_fd`], which accepts only the numbers listed there by its
//! own parent ([`FDS_PID_ENV`]). This is systemd's `LISTEN_FDS` convention,
//! and it keeps ownership single: the parent keeps its copy, the child gets
//! its own.
//!
//! ```no_run
//! use std::process::Command;
//! let (rx, tx) = ipckit::pipe::pipe()?;
//! let mut child = Command::new("worker");
//! let n = ipckit::process::pass_fd(&mut child, &tx);
//! child.arg(n.to_string()).spawn().expect("spawn");
//! // in the worker: ipckit::process::take_inherited_fd(n)?
//! # drop(rx);
//! # Ok::<(), ipckit::Error>(())
//! ```

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::process::Command;

use crate::error::{Error, Result};
use crate::sys;

pub use crate::sys::process::{FDS_ENV, FDS_PID_ENV};

/// Lets the child that `cmd` spawns inherit `fd` under the same number, and
/// returns that number. The descriptor must stay open in the parent until
/// the child is spawned (if it is closed, the spawn fails with `EBADF`).
pub fn pass_fd(cmd: &mut Command, fd: impl AsFd) -> RawFd {
    sys::process::pass_fd(cmd, fd.as_fd())
}

/// In a child: claims descriptor `raw`, passed by the parent with
/// [`pass_fd`]. Fails (`Invalid`, `EBADF`) unless `raw` is listed in
/// [`FDS_ENV`] by this process's parent, is open, and was not claimed
/// before. The descriptor is made close-on-exec again.
pub fn take_inherited_fd(raw: RawFd) -> Result<OwnedFd> {
    sys::process::take_inherited_fd(raw).map_err(|e| Error::os("take inherited fd", raw, e))
}

/// Claims descriptor `raw` that the user named on a command line (as in
/// `--ready-fd 3` with `3>file`), for a program's entry point. Fails
/// (`EBADF`) for standard streams, closed numbers, and numbers claimed
/// before through this module.
pub fn take_fd_named_by_user(raw: RawFd) -> Result<OwnedFd> {
    sys::process::take_fd_named_by_user(raw).map_err(|e| Error::os("claim fd", raw, e))
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)` in the child that `cmd` spawns: it is
/// killed when the thread that spawned it exits (the signal follows the
/// parent *thread*), so that a command run under a lock never outlives the
/// lock's holder. Spawn from a thread that stays alive while the child
/// runs. A parent that dies between `fork` and the `prctl` is caught by
/// checking the parent pid afterwards (the spawn then fails with `ESRCH`).
/// Only the direct child is signalled.
pub fn kill_with_parent(cmd: &mut Command) {
    sys::process::kill_with_parent(cmd)
}

/// Restores the kernel's default action for `SIGPIPE` (terminate the
/// process), which Rust programs replace with "ignore" at start-up: for
/// programs that want shell-like behaviour, and for tests that prove a
/// transport never raises `SIGPIPE`.
pub fn set_sigpipe_default() -> Result<()> {
    sys::process::set_sigpipe_default().map_err(|e| Error::os("signal", "SIGPIPE", e))
}

/// Raises the soft limit on open descriptors (`RLIMIT_NOFILE`) to the hard
/// limit, for a program that serves many connections. Returns the new soft
/// limit.
pub fn raise_fd_limit() -> Result<u64> {
    sys::process::raise_nofile_limit().map_err(|e| Error::os("setrlimit", "RLIMIT_NOFILE", e))
}

/// `sched_setaffinity`: pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    sys::process::pin_to_cpu(cpu).map_err(|e| Error::os("sched_setaffinity", format!("cpu {cpu}"), e))
}

/// `sched_getaffinity`: the CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    sys::process::allowed_cpus()
}
