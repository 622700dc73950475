//! The receiving view of any endpoint: a mailbox that takes messages from
//! every sender that comes.

use std::os::fd::BorrowedFd;

use super::flavor::Flavor;
use super::pipe::Pipe;
use super::shm::sample::Sample;
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::meta::{Message, Meta};
use crate::options::Options;
use crate::pipe::PipeReader;
use crate::wait::{Got, Wait, finish, recv_ops};

/// Receives messages on an endpoint it owns, from every sender that comes.
///
/// - Sockets (`unix`, `unix-seqpacket`, `tcp`): binds, listens, and serves
///   all connected senders at once, each message whole (a sender's
///   messages arrive in order). A sender that closes is dropped; one that
///   breaks off inside a frame is reported as `Disconnected` once.
/// - `unix-dgram`: binds; each datagram carries the sender's credentials.
/// - `fifo`: opens the FIFO for reading (`create` makes it); when the last
///   writer closes, it reopens and waits for the next.
/// - Queues (`mq`, `sysv-mq`): opens the queue (`create` makes it).
/// - Anonymous pipe (`From<PipeReader>`): when every writer is gone,
///   `Disconnected`.
#[derive(Debug)]
pub struct Receiver {
    flavor: Flavor,
}

impl Receiver {
    /// Binds with default [`Options`].
    pub fn bind(ep: &Endpoint) -> Result<Receiver> {
        Receiver::bind_with(ep, &Options::default())
    }

    /// Takes the endpoint: binds a socket, opens a FIFO for reading, or
    /// opens a queue. A path this call creates is removed on drop when
    /// `opts` ask for it (`unlink_on_drop`).
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<Receiver> {
        ep.refuse_pubsub_options("bind")?;
        Flavor::bind(ep, opts).map(|flavor| Receiver { flavor })
    }

    /// The endpoint senders should use (for TCP port 0, the real port).
    pub fn name(&self) -> &str {
        self.flavor.name()
    }

    /// Conditions met since the last call that did not stop receiving but
    /// that a user should hear of (the library never prints): for example
    /// connections refused because descriptors ran out, or a connection
    /// dropped for holding too much of an unfinished frame.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.flavor.take_warnings()
    }

    /// How many senders are connected now (socket receivers).
    pub fn connections(&self) -> usize {
        self.flavor.connections()
    }

    #[inline]
    fn recv_into_got(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        self.flavor.recv_into(buf, wait)
    }

    #[inline]
    pub(crate) fn recv_got(&mut self, wait: Wait) -> Result<Got<Message>> {
        self.flavor.recv(wait)
    }

    fn object(&self) -> &str {
        self.flavor.name()
    }

    recv_ops!();

    /// Receives the next message in place: on `shm:`, a message the sender
    /// placed in its pool stays there, mapped read-only, until the sample
    /// is dropped (see [`Sample`] for what is safe to do with it); every
    /// other message is received by copy. Not bounded by
    /// [`Options::max_message`] for pool messages: nothing is allocated.
    pub fn recv_sample(&mut self) -> Result<Sample> {
        finish(self.flavor.recv_sample(Wait::Forever), Wait::Forever, "recv", self.flavor.name())
    }

    /// Non-blocking form of [`recv_sample`](Self::recv_sample).
    pub fn try_recv_sample(&mut self) -> Result<Sample> {
        finish(self.flavor.recv_sample(Wait::Never), Wait::Never, "recv", self.flavor.name())
    }

    /// Timed form of [`recv_sample`](Self::recv_sample).
    pub fn recv_sample_timeout(&mut self, timeout: std::time::Duration) -> Result<Sample> {
        let wait = Wait::timeout(timeout);
        finish(self.flavor.recv_sample(wait), wait, "recv", self.flavor.name())
    }

    /// The descriptor to poll for readiness, where the transport has one
    /// (every transport but System V queues): for sockets an epoll instance
    /// that is readable when the listener or any connected sender is; the
    /// datagram socket, the pipe or the queue otherwise. A FIFO receiver
    /// reopens its FIFO when every writer has gone, so its descriptor
    /// changes then.
    ///
    /// A receiver may hold whole messages it has already read (read-ahead
    /// on pipes, FIFOs and TCP): before waiting for readiness, receive with
    /// `try_recv` until `Empty`, or check
    /// [`has_buffered_message`](Self::has_buffered_message).
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.flavor.poll_fd()
    }

    /// Whether bytes already read may hold a message (so a `try_recv` can
    /// succeed although the descriptor is not readable).
    pub fn has_buffered_message(&self) -> bool {
        self.flavor.has_buffered_message()
    }
}

impl From<PipeReader> for Receiver {
    fn from(r: PipeReader) -> Receiver {
        Receiver { flavor: Flavor::Pipe(Pipe::reader(r.io)) }
    }
}
