//! One-direction channels over any endpoint: [`Sender`] and [`Receiver`],
//! and the one private contract every transport meets.
//!
//! 1. `sender`: [`Sender`], which connects to an endpoint and sends.
//! 2. `receiver`: [`Receiver`], which owns an endpoint and receives from
//!    every sender that comes (a mailbox).
//! 3. `flavor`: the table of transports, and the `Flavor` enum that both
//!    dispatch over (the way crossbeam-channel's `SenderFlavor` does).
//! 4. `pipe`: anonymous pipe ends (no endpoint; from `PipeReader` and
//!    `PipeWriter`).
//! 5. `fifo`: `fifo:/path`.
//! 6. `unix`: `unix:` and `unix-seqpacket:`, a connection or a server.
//! 7. `dgram`: `unix-dgram:`.
//! 8. `tcp`: `tcp:HOST:PORT`, a connection or a server.
//! 9. `mq`: `mq:/name`, POSIX queues.
//! 10. `sysv_mq`: `sysv-mq:KEY`, System V queues.
//! 11. `shm`: `shm:NAME`, ipckit's shared-memory channel (a directory of
//!     its own: rings, layout, control connection, the two ends).
//!
//! # The contract
//!
//! A transport is two traits. `Open` says how an endpoint of its kind is
//! connected (a sender), bound (a receiver) and removed (`ipckit rm`);
//! `Transfer` says how the value it opens moves messages: one attempt at
//! a time, within a `Wait`, reporting what it `Got`. The blocking, `try_`
//! and `_timeout` forms, the errors for an attempt that got nothing, and
//! the dispatch are written once, in `Sender`, `Receiver` and `flavor`.
//!
//! # Adding a transport
//!
//! One new module and one line in the table. The shared-memory channel was
//! added that way:
//!
//! 1. `channel/shm/` defines `Shm` (a sender's or a receiver's end) and
//!    implements `Open` for it (`connect` joins the receiver's channel,
//!    `bind` creates it, `remove` explains there is nothing to remove) and
//!    `Transfer` (`send` writes into the ring, `recv_into`/`recv` read from
//!    the rings, `poll_fd` hands out what to poll).
//! 2. `flavor.rs` gained one row in its `transports!` table:
//!    `Shm(shm::Shm) = shm::Shm: EndpointKind::Shm(_),`
//!
//! Every endpoint kind without a row is `Unsupported` in `connect`, `bind`
//! and `remove`.

mod dgram;
mod fifo;
mod flavor;
mod mq;
mod pipe;
mod receiver;
mod sender;
pub(crate) mod shm;
mod sysv_mq;
mod tcp;
mod unix;

use std::io::IoSlice;
use std::os::fd::BorrowedFd;

pub use receiver::Receiver;
pub use sender::Sender;
#[doc(hidden)]
pub use shm::fuzzing;
pub use shm::sample::{Loan, Sample, TypedLoan, Unsent};

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::meta::{Message, Meta, SendMeta};
use crate::options::Options;
use crate::wait::{Got, Wait};

/// How endpoints of one kind are opened and removed.
pub(crate) trait Open {
    /// What an open endpoint is.
    type End: Transfer;

    /// Connects a sender. `wait` bounds the part of connecting that can
    /// block (a TCP handshake); `NotFound` (no such object) and
    /// `Disconnected` (nobody receiving) are the errors a caller may retry.
    fn connect(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Self::End>;

    /// Takes the endpoint for a receiver: binds, listens, or opens for
    /// reading, creating the object if `opts` say so.
    fn bind(ep: &Endpoint, opts: &Options) -> Result<Self::End>;

    /// Removes the named object the endpoint refers to.
    fn remove(ep: &Endpoint) -> Result<()>;
}

/// How an open endpoint moves messages: one attempt within a wait.
pub(crate) trait Transfer {
    /// Sends one message gathered from `parts`, waiting per `wait` for room
    /// (`Full` or `TimedOut` otherwise, with nothing sent).
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()>;

    /// One attempt to receive a message into `buf`.
    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>>;

    /// One attempt to receive a message into a buffer of its size.
    fn recv(&mut self, wait: Wait) -> Result<Got<Message>>;

    /// The endpoint as errors and readiness lines name it.
    fn name(&self) -> &str;

    /// The descriptor to poll, where the transport has one.
    fn poll_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Whether bytes already read may hold a message.
    fn has_buffered_message(&self) -> bool {
        false
    }

    /// How many senders are connected (socket servers).
    fn connections(&self) -> usize {
        0
    }

    /// Conditions met since the last call that the caller should hear of
    /// but that did not stop the operation (the library never prints).
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Sends `payload` as a sealed memfd (`unix:` transports): see
    /// [`Sender::send_sealed`](crate::Sender::send_sealed).
    /// Receives the next message as a [`Sample`]: in place where the
    /// transport can (a `shm:` pool), by copy otherwise.
    fn recv_sample(&mut self, wait: Wait) -> Result<Got<Sample>> {
        let name = self.name().to_string();
        Ok(self.recv(wait)?.map(|m| Sample::owned(m, &name)))
    }

    fn send_sealed(&mut self, _payload: &[u8], _wait: Wait) -> Result<()> {
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            "send_sealed",
            self.name(),
            "sealed memfd messages travel over unix: sockets only",
        ))
    }
}

/// Removes the named object an endpoint refers to: a FIFO, a Unix socket
/// file, a POSIX queue (`mq_unlink`) or a System V queue (`IPC_RMID`).
/// Checks the kind of file first, so that `fifo:/etc/passwd` removes
/// nothing. Objects without a name (abstract sockets, TCP ports) are
/// `Invalid`.
pub fn remove(ep: &Endpoint) -> Result<()> {
    flavor::Flavor::remove(ep)
}

/// The public ends are `Send + Sync` (shareable across threads behind a
/// lock or an `Arc`), loans and samples `Send`: checked at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Sender>();
    send_sync::<Receiver>();
    send_sync::<Sample>();
    send::<Loan<'static>>();
};
