//! The sending view of any endpoint.

use std::io::IoSlice;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::flavor::Flavor;
use super::pipe::Pipe;
use super::shm::sample::{Loan, TypedLoan};
use super::shm::{Shm, ShmSender};
use super::unix::Socket;
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::meta::SendMeta;
use crate::options::Options;
use crate::pipe::PipeWriter;
use crate::socket::Connection;
use crate::wait::{Wait, send_ops, until_peer_ready};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Sends messages to an endpoint: the writing side of a FIFO, a client of a
/// socket, a queue, or the write end of a pipe.
///
/// ```no_run
/// use ipckit::{Endpoint, Sender};
/// let mut tx = Sender::connect(&"unix:/run/app.sock".parse()?)?;
/// tx.send(b"job 1")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug)]
pub struct Sender {
    flavor: Flavor,
}

impl Sender {
    /// Connects once with default [`Options`]. Nobody there is `NotFound`
    /// (no such socket or FIFO) or `Disconnected` (nothing listening, no
    /// reader).
    pub fn connect(ep: &Endpoint) -> Result<Sender> {
        Sender::connect_with(ep, &Options::default())
    }

    /// Connects once.
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<Sender> {
        ep.refuse_pubsub_options("connect")?;
        Flavor::connect(ep, opts, Wait::Forever).map(|flavor| Sender { flavor })
    }

    /// Connects, retrying while the receiver is not there yet, for at most
    /// `timeout` (then `TimedOut`).
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<Sender> {
        ep.refuse_pubsub_options("connect")?;
        until_peer_ready(Wait::timeout(timeout), "connect", ep, |w| Flavor::connect(ep, opts, w))
            .map(|flavor| Sender { flavor })
    }

    #[inline]
    fn send_wait(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        self.flavor.send(parts, meta, wait)
    }

    send_ops!();

    pub(crate) fn send_parts(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        self.send_wait(parts, meta, wait)
    }

    /// A `shm:` sender, whose pool loans are in place.
    pub(crate) fn shm_sender(&mut self) -> Option<&mut ShmSender> {
        match &mut self.flavor {
            Flavor::Shm(Shm::Sender(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether the receiver is known to be gone (`shm:` only: other
    /// transports tell at the next send).
    pub(crate) fn receiver_gone(&self) -> bool {
        self.shm_sender_ref().is_some_and(|s| !s.receiver_alive())
    }

    /// As [`shm_sender`](Self::shm_sender), shared.
    pub(crate) fn shm_sender_ref(&self) -> Option<&ShmSender> {
        match &self.flavor {
            Flavor::Shm(Shm::Sender(s)) => Some(s),
            _ => None,
        }
    }

    /// How many bytes of this `shm:` sender's pool are lent now (loans
    /// not sent, messages the receiver still holds), in whole 64 KiB
    /// chunks, after taking back what the receiver gave back; `None`
    /// without a pool.
    pub fn pool_in_use(&mut self) -> Result<Option<usize>> {
        match self.shm_sender() {
            Some(shm) if shm.pool_size().is_some() => shm.pool_lent().map(Some),
            _ => Ok(None),
        }
    }

    /// Lends `len` bytes to write the next message in place: in a `shm:`
    /// sender's pool (only a reference travels when it is sent), else a
    /// buffer of this process sent by copy. Waits for the receiver to give
    /// pool room back. `TooLarge`, with both sizes, when `len` is more than
    /// the pool holds.
    ///
    /// ```no_run
    /// # let mut tx = ipckit::Sender::connect(&"shm:frames".parse()?)?;
    /// let mut loan = tx.loan(4 << 20)?;
    /// loan[..5].copy_from_slice(b"frame");
    /// loan.send()?;
    /// # Ok::<(), ipckit::Error>(())
    /// ```
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        Loan::new(self, len, Wait::Forever)
    }

    /// Non-blocking form of [`loan`](Self::loan): `Full` when the pool has
    /// no room now (the receiver holds it); then [`poll_fd`](Self::poll_fd)
    /// turns readable when room may be back.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        Loan::new(self, len, Wait::Never)
    }

    /// Timed form of [`loan`](Self::loan): `TimedOut` when no room came.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        Loan::new(self, len, Wait::timeout(timeout))
    }

    /// Lends room for one `T`, written in place as a `T` (any bytes are a
    /// valid `T`: it starts as whatever the pool held).
    pub fn loan_typed<T: FromBytes + IntoBytes + Immutable + KnownLayout>(&mut self) -> Result<TypedLoan<'_, T>> {
        TypedLoan::new(self, Wait::Forever)
    }

    /// Non-blocking form of [`loan_typed`](Self::loan_typed).
    pub fn try_loan_typed<T: FromBytes + IntoBytes + Immutable + KnownLayout>(&mut self) -> Result<TypedLoan<'_, T>> {
        TypedLoan::new(self, Wait::Never)
    }

    /// Timed form of [`loan_typed`](Self::loan_typed).
    pub fn loan_typed_timeout<T: FromBytes + IntoBytes + Immutable + KnownLayout>(
        &mut self,
        timeout: Duration,
    ) -> Result<TypedLoan<'_, T>> {
        TypedLoan::new(self, Wait::timeout(timeout))
    }

    /// Sends `payload` as a sealed memfd (`unix:`, `unix-seqpacket:` and
    /// `unix-dgram:` endpoints): the payload is written into a fresh memfd,
    /// sealed with `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW`, and the
    /// descriptor travels with SCM_RIGHTS, so that the receiver can read it
    /// in place, safely: nobody can change it any more. The one-off large
    /// transfer; for many, a `shm:` channel's pool maps once.
    pub fn send_sealed(&mut self, payload: &[u8]) -> Result<()> {
        self.flavor.send_sealed(payload, Wait::Forever)
    }

    /// Non-blocking form of [`send_sealed`](Self::send_sealed).
    pub fn try_send_sealed(&mut self, payload: &[u8]) -> Result<()> {
        self.flavor.send_sealed(payload, Wait::Never)
    }

    /// Timed form of [`send_sealed`](Self::send_sealed).
    pub fn send_sealed_timeout(&mut self, payload: &[u8], timeout: Duration) -> Result<()> {
        self.flavor.send_sealed(payload, Wait::timeout(timeout))
    }

    /// Conditions met since the last call that did not stop sending but
    /// that a user should hear of (the library never prints): for example
    /// a frame over `PIPE_BUF` on a FIFO, which another writer's frames can
    /// interleave with, or endpoint attributes an existing queue ignored.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.flavor.take_warnings()
    }

    /// What this sender is connected to.
    pub fn name(&self) -> &str {
        self.flavor.name()
    }

    /// The descriptor to poll for room, where the transport has one (every
    /// transport but System V queues). On the kernel's transports it is
    /// *writable* when there is room. On `shm:` it is the control
    /// connection, *readable* when room may be there after a `try_send`
    /// that was `Full` (and when the receiver is gone): poll it for
    /// reading, then `try_send` again.
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.flavor.poll_fd()
    }
}

impl From<PipeWriter> for Sender {
    fn from(w: PipeWriter) -> Sender {
        Sender { flavor: Flavor::Pipe(Pipe::writer(w.io)) }
    }
}

impl From<Connection> for Sender {
    /// A connection's sending half, Unix or TCP (both are one socket
    /// transport).
    fn from(c: Connection) -> Sender {
        Sender { flavor: Flavor::Unix(Socket::Connection(c.into_io())) }
    }
}
