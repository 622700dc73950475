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

use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::wait::Wait;

/// The result of one receive attempt.
#[derive(Debug)]
pub(crate) enum Got<T> {
    /// A message (length, or the allocated message).
    Msg(T),
    /// The peer closed the connection between messages.
    Eof,
    /// Nothing complete within the wait; partial data is kept.
    NotYet,
}

/// Turns `Eof` and `NotYet` into the errors a caller of a connection sees.
pub(crate) fn finish<T>(got: Result<Got<T>>, wait: Wait, op: &'static str, name: &str) -> Result<T> {
    match got? {
        Got::Msg(m) => Ok(m),
        Got::Eof => Err(Error::new(ErrorKind::Disconnected, op, name, "peer closed the connection")),
        Got::NotYet => Err(not_yet(wait, op, name)),
    }
}

/// The error for a wait that ran out: `Empty`/`Full` for `try_` forms,
/// `TimedOut` otherwise.
pub(crate) fn not_yet(wait: Wait, op: &'static str, name: &str) -> Error {
    let sending = op.starts_with("send");
    match (wait, sending) {
        (Wait::Never, true) => Error::new(ErrorKind::Full, op, name, "no room for the message now"),
        (Wait::Never, false) => Error::new(ErrorKind::Empty, op, name, "no message now"),
        (_, true) => Error::new(ErrorKind::TimedOut, op, name, "no room for the message within the timeout"),
        (_, false) => Error::new(ErrorKind::TimedOut, op, name, "no message within the timeout"),
    }
}

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

/// Generates the public blocking, `try_` and `_timeout` forms of send and
/// receive from three private methods that take a [`Wait`]:
/// `send_wait(&mut self, &[IoSlice], &SendMeta, Wait) -> Result<()>`,
/// `recv_into_wait(&mut self, &mut [u8], Wait) -> Result<(usize, Meta)>` and
/// `recv_wait(&mut self, Wait) -> Result<Message>`.
macro_rules! send_ops {
    () => {
        /// Sends one message, waiting as long as it takes for room.
        pub fn send(&mut self, msg: &[u8]) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], &$crate::SendMeta::new(), $crate::wait::Wait::Forever)
        }

        /// Sends one message if there is room now; `Full` otherwise (and
        /// nothing is sent).
        pub fn try_send(&mut self, msg: &[u8]) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], &$crate::SendMeta::new(), $crate::wait::Wait::Never)
        }

        /// Sends one message, waiting at most `timeout` for room before the
        /// first byte (`TimedOut`, nothing sent); a started message is
        /// always finished.
        pub fn send_timeout(&mut self, msg: &[u8], timeout: std::time::Duration) -> $crate::Result<()> {
            self.send_wait(
                &[std::io::IoSlice::new(msg)],
                &$crate::SendMeta::new(),
                $crate::wait::Wait::timeout(timeout),
            )
        }

        /// Sends one message gathered from several buffers.
        pub fn send_vectored(&mut self, parts: &[std::io::IoSlice<'_>]) -> $crate::Result<()> {
            self.send_wait(parts, &$crate::SendMeta::new(), $crate::wait::Wait::Forever)
        }

        /// Non-blocking form of [`send_vectored`](Self::send_vectored).
        pub fn try_send_vectored(&mut self, parts: &[std::io::IoSlice<'_>]) -> $crate::Result<()> {
            self.send_wait(parts, &$crate::SendMeta::new(), $crate::wait::Wait::Never)
        }

        /// Timed form of [`send_vectored`](Self::send_vectored).
        pub fn send_vectored_timeout(
            &mut self,
            parts: &[std::io::IoSlice<'_>],
            timeout: std::time::Duration,
        ) -> $crate::Result<()> {
            self.send_wait(parts, &$crate::SendMeta::new(), $crate::wait::Wait::timeout(timeout))
        }

        /// Sends one message with a priority, a type or file descriptors
        /// (see [`SendMeta`]($crate::SendMeta)); a transport that cannot carry
        /// them refuses with `Unsupported`.
        pub fn send_with(&mut self, msg: &[u8], meta: &$crate::SendMeta<'_>) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], meta, $crate::wait::Wait::Forever)
        }

        /// Non-blocking form of [`send_with`](Self::send_with).
        pub fn try_send_with(&mut self, msg: &[u8], meta: &$crate::SendMeta<'_>) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], meta, $crate::wait::Wait::Never)
        }

        /// Timed form of [`send_with`](Self::send_with).
        pub fn send_with_timeout(
            &mut self,
            msg: &[u8],
            meta: &$crate::SendMeta<'_>,
            timeout: std::time::Duration,
        ) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], meta, $crate::wait::Wait::timeout(timeout))
        }
    };
}

/// The receive half of [`message_ops`].
macro_rules! recv_ops {
    () => {
        /// Receives one message into `buf`, waiting as long as it takes.
        /// Returns its length and metadata. A message larger than `buf` is
        /// `TooLarge` and stays queued: call again with a larger buffer.
        pub fn recv_into(&mut self, buf: &mut [u8]) -> $crate::Result<(usize, $crate::Meta)> {
            self.recv_into_wait(buf, $crate::wait::Wait::Forever)
        }

        /// Receives one message if one is there now; `Empty` otherwise.
        pub fn try_recv_into(&mut self, buf: &mut [u8]) -> $crate::Result<(usize, $crate::Meta)> {
            self.recv_into_wait(buf, $crate::wait::Wait::Never)
        }

        /// Receives one message, waiting at most `timeout` (`TimedOut`; a
        /// partly received message is kept for the next call).
        pub fn recv_into_timeout(
            &mut self,
            buf: &mut [u8],
            timeout: std::time::Duration,
        ) -> $crate::Result<(usize, $crate::Meta)> {
            self.recv_into_wait(buf, $crate::wait::Wait::timeout(timeout))
        }

        /// Receives one message into a new buffer of exactly its size
        /// (never more than the configured maximum).
        pub fn recv(&mut self) -> $crate::Result<$crate::Message> {
            self.recv_wait($crate::wait::Wait::Forever)
        }

        /// Non-blocking form of [`recv`](Self::recv).
        pub fn try_recv(&mut self) -> $crate::Result<$crate::Message> {
            self.recv_wait($crate::wait::Wait::Never)
        }

        /// Timed form of [`recv`](Self::recv).
        pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> $crate::Result<$crate::Message> {
            self.recv_wait($crate::wait::Wait::timeout(timeout))
        }
    };
}
/// Both halves: [`send_ops`] and [`recv_ops`].
macro_rules! message_ops {
    () => {
        $crate::transport::send_ops!();
        $crate::transport::recv_ops!();
    };
}
pub(crate) use {message_ops, recv_ops, send_ops};
