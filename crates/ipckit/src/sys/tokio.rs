//! Descriptors registered with tokio's reactor (`epoll_ctl` in tokio's
//! epoll set): the one `unsafe` the async layer needs.

use std::os::fd::OwnedFd;

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

/// Registers `fd` with the current runtime's reactor for `interest`
/// (edge-triggered, as tokio registers everything). Must be called in a
/// runtime's context.
pub(crate) fn register(fd: OwnedFd, interest: Interest) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` owns `fd`: it is open, refers to the same file
    // and `as_raw_fd` returns the same number for as long as the `AsyncFd`
    // lives, which is what `register_with_interest` requires.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into_parts().1)
}
