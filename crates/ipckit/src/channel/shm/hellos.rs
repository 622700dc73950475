//! The connections a `shm:` service thread (a channel's receiver, a
//! topic's publisher) holds until they say hello.
//!
//! Any local user can connect to an abstract socket name, so what is held
//! is bounded: at most [`PENDING_MAX`] connections, each for at most
//! [`HELLO_TIMEOUT`]; and the credentials are checked at accept
//! (`SO_PEERCRED` is known then), so that a user the object does not admit
//! gets at most [`REFUSING_MAX`] of those slots, each for
//! [`REFUSING_TIMEOUT`], and cannot crowd out the users it does admit. A
//! refused user's connection is still held that long so that its hello
//! can be answered with the reason, not a reset. Past the bounds a
//! connection is closed at once.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::sys;
use crate::transport::Io;
use crate::wait::Wait;

/// The most connections held waiting for their hello.
pub(crate) const PENDING_MAX: usize = 256;
/// Of which, from users the object does not admit.
pub(crate) const REFUSING_MAX: usize = 16;
/// How long a connection may take to say hello.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection of a user not admitted is held.
pub(crate) const REFUSING_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection that has not said hello yet.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) control: Io,
    since: Instant,
    /// Its user may use the object (else it is only held to hear its
    /// hello, so that the refusal reaches it as a reason).
    pub(crate) admitted: bool,
}

/// The connections held, by slot (a slot is part of the connection's
/// epoll data).
#[derive(Debug, Default)]
pub(crate) struct Hellos {
    slots: Vec<Option<Pending>>,
}

impl Hellos {
    /// Holds `control` until its hello, registered in `epoll` with the
    /// data `tag | slot`. `false`: past the bounds, or not registered;
    /// the connection is closed.
    pub(crate) fn hold(&mut self, epoll: BorrowedFd<'_>, control: Io, admitted: bool, tag: u64) -> bool {
        let held = self.slots.iter().flatten().count();
        let refusing = self.slots.iter().flatten().filter(|p| !p.admitted).count();
        if held >= PENDING_MAX || (!admitted && refusing >= REFUSING_MAX) {
            return false;
        }
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        if sys::io::epoll_add(epoll, control.fd(), tag | slot as u64).is_err() {
            return false;
        }
        self.slots[slot] = Some(Pending { control, since: Instant::now(), admitted });
        true
    }

    /// The connection of `slot`, to read its hello (put it back with
    /// [`put_back`](Self::put_back) if the hello is not whole yet).
    pub(crate) fn take(&mut self, slot: usize) -> Option<Pending> {
        self.slots.get_mut(slot).and_then(Option::take)
    }

    /// Holds `pending` in `slot` again (its epoll registration stays).
    pub(crate) fn put_back(&mut self, slot: usize, pending: Pending) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(pending);
        }
    }

    /// Drops the connections past their time, calling `closed` once for
    /// each (a descriptor is free again).
    pub(crate) fn expire(&mut self, mut closed: impl FnMut()) {
        for p in &mut self.slots {
            let limit = |p: &Pending| if p.admitted { HELLO_TIMEOUT } else { REFUSING_TIMEOUT };
            if p.as_ref().is_some_and(|p| p.since.elapsed() > limit(p)) {
                *p = None;
                closed();
            }
        }
    }

    /// How long the service thread may wait for events: while connections
    /// owe a hello, it looks again in time to drop those that never say
    /// it.
    pub(crate) fn wait(&self) -> Wait {
        match self.slots.iter().any(Option::is_some) {
            true => Wait::timeout(REFUSING_TIMEOUT),
            false => Wait::Forever,
        }
    }
}
