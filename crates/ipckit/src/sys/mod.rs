//! The only module that talks to the kernel.
//!
//! Everything here is a thin wrapper: it retries `EINTR` (recomputing what is
//! left of a deadline), returns owned file descriptors, and reports a bare
//! [`Errno`] that the caller turns into an [`Error`](crate::Error) naming the
//! operation and the object. rustix first; libc only where rustix has
//! nothing.

pub(crate) mod fs;
pub(crate) mod io;
pub(crate) mod mq;
pub(crate) mod net;
pub(crate) mod process;
pub(crate) mod shm;
pub(crate) mod sync;

pub use rustix::io::Errno;

/// Reads a kernel limit from `/proc/sys/...`.
pub(crate) fn proc_limit(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
