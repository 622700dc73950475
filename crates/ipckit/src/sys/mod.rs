//! The only module that talks to the kernel.
//!
//! Everything here is a thin wrapper: it retries `EINTR` (recomputing what is
//! left of a deadline), returns owned file descriptors, and reports a bare
//! [`Errno`] that the caller turns into an [`Error`](crate::Error) naming the
//! operation and the object. rustix first; libc only where rustix has
//! nothing. The rest of the library reaches rustix and libc only through
//! here.
//!
//! 1. `fs`: files, FIFOs, `stat`, modes, directory locks.
//! 2. `io`: read, write, `poll`, epoll, pipes.
//! 3. `mq`: POSIX and System V message queues (libc).
//! 4. `net`: sockets, addresses, ancillary data.
//! 5. `process`: descriptors for children, signals, affinity, limits, ids.
//! 6. `shm`: mappings, POSIX and System V segments, memfds, `flock`.
//! 7. `sync`: pthread mutexes, POSIX and System V semaphores, futexes.
//! 8. `tokio` (feature `tokio`): descriptors registered with tokio's
//!    reactor.

pub(crate) mod fs;
pub(crate) mod io;
pub(crate) mod mq;
pub(crate) mod net;
pub(crate) mod process;
pub(crate) mod shm;
pub(crate) mod sync;
#[cfg(feature = "tokio")]
pub(crate) mod tokio;

pub use rustix::io::Errno;

/// Reads a kernel limit from `/proc/sys/...`.
pub(crate) fn proc_limit(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
