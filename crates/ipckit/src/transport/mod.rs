//! The two engines every fd-based transport runs on.
//!
//! 1. `stream`: byte streams (pipes, FIFOs, Unix stream sockets, TCP) with
//!    [`Framing`](crate::Framing).
//! 2. `packet`: message sockets (Unix seqpacket and datagram), where the
//!    kernel keeps message boundaries.
//! 3. `sealed`: sealed memfd messages on Unix sockets, the marker that
//!    stands for one on the wire (its format), and what both engines do
//!    with it.
//!
//! Both take a [`Wait`](crate::wait::Wait), so that each public operation
//! exists in blocking, `try_` and `_timeout` forms without repeating logic.

/// An engine extends [`Base`]: it dereferences to it and gives up its
/// descriptor with `into_fd`.
macro_rules! extends_base {
    ($engine:ty) => {
        impl std::ops::Deref for $engine {
            type Target = super::Base;

            fn deref(&self) -> &super::Base {
                &self.base
            }
        }

        impl $engine {
            pub(crate) fn into_fd(self) -> std::os::fd::OwnedFd {
                self.base.fd
            }
        }
    };
}

pub(crate) mod packet;
pub(crate) mod sealed;
pub(crate) mod stream;

use std::io::IoSlice;
use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::meta::{Credentials, Message, Meta, SendMeta};
use crate::sys::{self, Errno};
use crate::wait::{Got, Wait};

/// What both engines have: the descriptor, the endpoint that names it in
/// errors, and the peer's credentials (`SO_PEERCRED`, for connected Unix
/// sockets). `StreamIo` and `PacketIo` dereference to it.
#[derive(Debug)]
pub(crate) struct Base {
    fd: OwnedFd,
    name: Arc<str>,
    creds: Option<Credentials>,
}

impl Base {
    /// `peer_creds`: read `SO_PEERCRED` now (connected Unix sockets).
    fn new(fd: OwnedFd, name: Arc<str>, peer_creds: bool) -> Base {
        let creds = if peer_creds { sys::net::peer_credentials(fd.as_fd()).ok().map(Credentials::from) } else { None };
        Base { fd, name, creds }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn peer_credentials(&self) -> Option<Credentials> {
        self.creds
    }

    pub(crate) fn os(&self, op: &'static str, e: Errno) -> Error {
        Error::os(op, &*self.name, e)
    }
}

/// Either engine, for types that can be built on both (connections).
#[derive(Debug)]
pub(crate) enum Io {
    Stream(stream::StreamIo),
    Packet(packet::PacketIo),
}

impl Deref for Io {
    type Target = Base;

    fn deref(&self) -> &Base {
        match self {
            Io::Stream(s) => s,
            Io::Packet(p) => p,
        }
    }
}

impl Io {
    /// A second engine over a duplicate of the descriptor, to send on while
    /// this one receives.
    pub(crate) fn duplicate(&self) -> Result<Io> {
        Ok(match self {
            Io::Stream(s) => Io::Stream(s.duplicate()?),
            Io::Packet(p) => Io::Packet(p.duplicate()?),
        })
    }

    pub(crate) fn into_fd(self) -> OwnedFd {
        match self {
            Io::Stream(s) => s.into_fd(),
            Io::Packet(p) => p.into_fd(),
        }
    }

    pub(crate) fn send(&mut self, iov: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        match self {
            Io::Stream(s) => s.send(iov, meta.only_fds("send", s.name())?, wait),
            Io::Packet(p) => p.send(iov, meta.only_fds("send", p.name())?, wait),
        }
    }

    /// Sends `payload` as a sealed memfd message (Unix sockets).
    pub(crate) fn send_sealed(&mut self, payload: &[u8], wait: Wait) -> Result<()> {
        match self {
            Io::Stream(s) => s.send_sealed(payload, wait),
            Io::Packet(p) => p.send_sealed(payload, wait),
        }
    }

    /// Whether the last receive's error refused one message and left the
    /// connection in step, so that a server keeps its sender (a malformed
    /// sealed message).
    pub(crate) fn refused_one(&self) -> bool {
        match self {
            Io::Stream(s) => s.refused_one(),
            Io::Packet(p) => p.refused_one(),
        }
    }

    pub(crate) fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        match self {
            Io::Stream(s) => s.recv_into(buf, wait),
            Io::Packet(p) => p.recv_into(buf, wait),
        }
    }

    pub(crate) fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        match self {
            Io::Stream(s) => s.recv(wait),
            Io::Packet(p) => p.recv(wait),
        }
    }

    /// The bytes held for a message not yet complete.
    pub(crate) fn buffered(&self) -> usize {
        match self {
            Io::Stream(s) => s.buffered(),
            Io::Packet(_) => 0,
        }
    }

    /// True when a message can be returned without reading the fd.
    pub(crate) fn has_buffered_message(&self) -> bool {
        match self {
            Io::Stream(s) => s.has_buffered_message(),
            Io::Packet(p) => p.has_buffered_message(),
        }
    }
}
