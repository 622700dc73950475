//! The one loop every async operation runs: an attempt that never waits
//! (a `try_` form), and between attempts a wait for the descriptor's
//! readiness in tokio's reactor, or, where there is no descriptor (System
//! V queues), a short timer.
//!
//! # The loop
//!
//! 1. Attempt at once: a message already there (or read ahead) costs no
//!    reactor at all.
//! 2. `Empty`/`Full`: register a duplicate of the descriptor (the
//!    reactor's own, so the registration is sound whatever the end does
//!    with its descriptor; once, again when the end's descriptor changed,
//!    and before every wait on a FIFO receiver, which reopens its FIFO
//!    when the writers leave), take tokio's readiness guard, attempt
//!    again *while holding it*, and only then clear the readiness. Tokio
//!    clears it only if no new event came since the guard was taken, so a
//!    wake-up between the attempt and the clearing is not lost.
//! 3. Before clearing, one `poll` with no timeout on the descriptor: the
//!    descriptors ipckit hands out are often epoll sets (socket servers,
//!    `shm:` receivers), and an epoll set that an attempt left readable
//!    (more ready connections than one `epoll_wait` reports) would raise
//!    no new edge in tokio's epoll. Readable now: attempt again.
//!
//! Every attempt is synchronous and whole: it returns a message or
//! nothing, sends one or nothing. That is what makes every future here
//! cancel safe: dropping it between attempts drops no message.
//!
//! # Without a descriptor
//!
//! System V queues have none: between attempts the task sleeps on tokio's
//! timer, 1 ms at first, doubling up to [`BACKOFF_MAX`] (4 ms), and back to
//! 1 ms after every success. Chosen over a blocking thread per waiting
//! call because an attempt stays whole and synchronous (cancel safety for
//! free: a thread in `msgrcv` could take a message for a future that was
//! dropped meanwhile), and a thousand idle queues cost timers, not
//! threads. The price: a message waits up to 4 ms to be seen, and an idle
//! queue costs about 250 wake-ups a second.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::{Interest, Ready};

use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// The longest pause between two attempts on a transport without a
/// descriptor.
pub const BACKOFF_MAX: Duration = Duration::from_millis(4);
/// The first pause.
const BACKOFF_MIN: Duration = Duration::from_millis(1);

/// What an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Readable (messages, or a `shm:` sender's wake-up).
    Read,
    /// Writable (room on the kernel's transports).
    Write,
}

impl Want {
    fn interest(self) -> Interest {
        match self {
            Want::Read => Interest::READABLE,
            Want::Write => Interest::WRITABLE,
        }
    }

    fn ready(self) -> Ready {
        match self {
            Want::Read => Ready::READABLE | Ready::READ_CLOSED,
            Want::Write => Ready::WRITABLE | Ready::WRITE_CLOSED,
        }
    }

    fn sys(self) -> sys::io::Ready {
        match self {
            Want::Read => sys::io::Ready::Read,
            Want::Write => sys::io::Ready::Write,
        }
    }
}

/// One end's registration with the reactor, made at its first wait (so
/// that the ends can be made outside a runtime), and the backoff of ends
/// without a descriptor.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// A duplicate of the end's descriptor, registered; what it waits
    /// for; the number of the end's descriptor it duplicates.
    reg: Option<(AsyncFd<OwnedFd>, Want, RawFd)>,
    backoff: Option<Duration>,
}

/// Whether an attempt found nothing to do now (wait and attempt again).
fn would_wait(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Empty | ErrorKind::Full)
}

impl Watch {
    /// Runs `attempt` on `end` until it does not find `Empty`/`Full`,
    /// waiting between attempts for the descriptor `fd(end)` to be ready
    /// for `want` (see the module docs). `renew`: register the descriptor
    /// anew before every wait (FIFO receivers).
    pub(crate) async fn until<E, T>(
        &mut self,
        end: &mut E,
        want: Want,
        renew: bool,
        name: &str,
        mut attempt: impl FnMut(&mut E) -> Result<T>,
        fd: fn(&E) -> Option<BorrowedFd<'_>>,
    ) -> Result<T> {
        match attempt(end) {
            Err(e) if would_wait(&e) => {}
            done => {
                self.backoff = None;
                return done;
            }
        }
        loop {
            let Some(raw) = fd(end).map(|b| b.as_raw_fd()) else {
                let pause = self.backoff.map_or(BACKOFF_MIN, |p| (p * 2).min(BACKOFF_MAX));
                self.backoff = Some(pause);
                ::tokio::time::sleep(pause).await;
                match attempt(end) {
                    Err(e) if would_wait(&e) => continue,
                    done => {
                        self.backoff = None;
                        return done;
                    }
                }
            };
            let stale = !matches!(&self.reg, Some((_, w, of)) if *of == raw && *w == want);
            if renew || stale {
                self.reg = None;
                // A duplicate: the registration is the reactor's own, and
                // stays sound whatever the end does with its descriptor.
                let io = |e: std::io::Error| {
                    Error::new(ErrorKind::Io, "register with the tokio reactor", name, e.to_string())
                };
                let dup = fd(end).expect("looked at above").try_clone_to_owned().map_err(io)?;
                let afd = sys::tokio::register(dup, want.interest()).map_err(io)?;
                self.reg = Some((afd, want, raw));
            }
            let (afd, _, _) = self.reg.as_ref().expect("registered above");
            let mut guard = afd
                .ready(want.interest())
                .await
                .map_err(|e| Error::new(ErrorKind::Io, "wait for readiness", name, e.to_string()))?;
            match attempt(end) {
                Err(e) if would_wait(&e) => {
                    let ready_now = fd(end).is_some_and(|b| {
                        b.as_raw_fd() == raw && sys::io::poll(b, want.sys(), crate::wait::Wait::Never).unwrap_or(true)
                    });
                    if ready_now {
                        drop(guard);
                        // Readable although the attempt found nothing: let
                        // other tasks run before looking again.
                        ::tokio::task::yield_now().await;
                    } else {
                        guard.clear_ready_matching(want.ready());
                    }
                }
                done => return done,
            }
        }
    }
}
