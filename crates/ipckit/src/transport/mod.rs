//! The two engines every fd-based transport runs on.
//!
//! 1. `stream`: byte streams (pipes, FIFOs, Unix stream sockets, TCP) with
//!    [`Framing`](crate::Framing).
//! 2. `packet`: message sockets (Unix seqpacket and datagram), where the
//!    kernel keeps message boundaries.
//!
//! Both take a [`Wait`](crate::wait::Wait), so that each public operation
//! exists in blocking, `try_` and `_timeout` forms without repeating logic.

pub(crate) mod packet;
pub(crate) mod stream;

use std::io::IoSlice;
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::error::Result;
use crate::meta::{Message, Meta, SendMeta};
use crate::wait::{Got, Wait};

/// Either engine, for types that can be built on both (connections).
#[derive(Debug)]
pub(crate) enum Io {
    Stream(stream::StreamIo),
    Packet(packet::PacketIo),
}

impl Io {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Io::Stream(s) => s.fd(),
            Io::Packet(p) => p.fd(),
        }
    }

    pub(crate) fn into_fd(self) -> OwnedFd {
        match self {
            Io::Stream(s) => s.into_fd(),
            Io::Packet(p) => p.into_fd(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Io::Stream(s) => s.name(),
            Io::Packet(p) => p.name(),
        }
    }

    pub(crate) fn send(&mut self, iov: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        match self {
            Io::Stream(s) => s.send(iov, meta.only_fds("send", s.name())?, wait),
            Io::Packet(p) => p.send(iov, meta.only_fds("send", p.name())?, wait),
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

    /// True when a message can be returned without reading the fd.
    pub(crate) fn has_buffered_message(&self) -> bool {
        match self {
            Io::Stream(s) => s.has_buffered_message(),
            Io::Packet(_) => false,
        }
    }
}
