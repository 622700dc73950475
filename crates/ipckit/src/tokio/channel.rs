//! [`AsyncSender`] and [`AsyncReceiver`]: a [`Sender`] and a [`Receiver`]
//! driven by tokio's reactor (see `reactor` for the loop).

use std::io::IoSlice;

use super::reactor::{Want, Watch};
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::meta::{Message, Meta, SendMeta};
use crate::options::Options;
use crate::{Receiver, Sample, Sender};

/// A [`Sender`] whose sends are futures: `tx.send(b"job").await`.
///
/// Works on every transport: on a descriptor the sender has (see
/// [`Sender::poll_fd`]) through tokio's reactor, on System V queues by
/// trying again after a short timer (1 ms, doubling up to 4 ms).
///
/// ```no_run
/// # async fn f() -> ipckit::Result<()> {
/// use ipckit::tokio::AsyncSender;
/// let mut tx = AsyncSender::connect(&"shm:jobs".parse()?)?;
/// tx.send(b"job 1").await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncSender {
    // Before `tx`: the registration goes before the descriptor.
    watch: Watch,
    tx: Sender,
}

impl AsyncSender {
    /// Wraps a connected sender. Needs no runtime: it registers with the
    /// current one at its first wait.
    pub fn new(tx: Sender) -> AsyncSender {
        AsyncSender { watch: Watch::default(), tx }
    }

    /// [`Sender::connect`]: connects once, at once (a `shm:` or socket
    /// connect is a handshake on this machine, not worth a future).
    pub fn connect(ep: &Endpoint) -> Result<AsyncSender> {
        Sender::connect(ep).map(AsyncSender::new)
    }

    /// [`Sender::connect_with`].
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<AsyncSender> {
        Sender::connect_with(ep, opts).map(AsyncSender::new)
    }

    /// The sender, for its other calls (`try_` forms, loans, warnings).
    pub fn get_mut(&mut self) -> &mut Sender {
        &mut self.tx
    }

    /// The sender, shared.
    pub fn get_ref(&self) -> &Sender {
        &self.tx
    }

    /// The sender back.
    pub fn into_inner(self) -> Sender {
        self.tx
    }

    /// What to wait for when there is no room: writable on the kernel's
    /// transports, readable on `shm:` (a wake-up on the control
    /// connection).
    fn want(&self) -> Want {
        if self.tx.shm_sender_ref().is_some() { Want::Read } else { Want::Write }
    }

    /// Sends one message, waiting in the reactor for room.
    ///
    /// A stream transport (`unix:`, `tcp:`, FIFOs, pipes) never leaves a
    /// frame half-written: once its first byte is out, the rest is
    /// written before this returns, blocking the thread if the peer is
    /// slow to make room (as [`Sender::try_send`] does). Messages that fit
    /// the socket's buffer never block; a larger one sent to a reader that
    /// runs in the same current-thread runtime can deadlock (use a
    /// multi-threaded runtime, or keep the reader elsewhere).
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe. Dropping the future before it completes
    /// sends nothing: each attempt sends the whole message or nothing, and
    /// the future waits only between attempts.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, &SendMeta::new()).await
    }

    /// Sends one message gathered from several buffers (see
    /// [`send`](Self::send)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`send`](Self::send).
    pub async fn send_vectored(&mut self, parts: &[IoSlice<'_>]) -> Result<()> {
        let (want, name) = (self.want(), self.tx.name().to_string());
        self.watch.until(&mut self.tx, want, false, &name, |tx| tx.try_send_vectored(parts), Sender::poll_fd).await
    }

    /// Sends one message with a priority, a type or descriptors (see
    /// [`SendMeta`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`send`](Self::send).
    pub async fn send_with(&mut self, msg: &[u8], meta: &SendMeta<'_>) -> Result<()> {
        let (want, name) = (self.want(), self.tx.name().to_string());
        self.watch.until(&mut self.tx, want, false, &name, |tx| tx.try_send_with(msg, meta), Sender::poll_fd).await
    }
}

/// A [`Receiver`] whose receives are futures: `rx.recv().await`.
///
/// Works on every transport: through tokio's reactor on the descriptor
/// [`Receiver::poll_fd`] hands out (a `shm:` receiver's is an epoll set
/// that senders ring: no thread per channel waits), on System V queues by
/// trying again after a short timer (1 ms, doubling up to 4 ms). Messages
/// the receiver has already read ahead are returned before any wait.
///
/// ```no_run
/// # async fn f() -> ipckit::Result<()> {
/// use ipckit::tokio::AsyncReceiver;
/// let mut rx = AsyncReceiver::bind(&"shm:jobs".parse()?)?;
/// let msg = rx.recv().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncReceiver {
    // Before `rx`: the registration goes before the descriptor.
    watch: Watch,
    rx: Receiver,
    /// A FIFO receiver's descriptor changes when it reopens.
    renew: bool,
}

impl AsyncReceiver {
    /// Wraps a bound receiver. Needs no runtime: it registers with the
    /// current one at its first wait.
    pub fn new(rx: Receiver) -> AsyncReceiver {
        let renew = rx.name().starts_with("fifo:");
        AsyncReceiver { watch: Watch::default(), rx, renew }
    }

    /// [`Receiver::bind`].
    pub fn bind(ep: &Endpoint) -> Result<AsyncReceiver> {
        Receiver::bind(ep).map(AsyncReceiver::new)
    }

    /// [`Receiver::bind_with`].
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<AsyncReceiver> {
        Receiver::bind_with(ep, opts).map(AsyncReceiver::new)
    }

    /// The receiver, for its other calls (`try_` forms, warnings).
    pub fn get_mut(&mut self) -> &mut Receiver {
        &mut self.rx
    }

    /// The receiver, shared.
    pub fn get_ref(&self) -> &Receiver {
        &self.rx
    }

    /// The receiver back.
    pub fn into_inner(self) -> Receiver {
        self.rx
    }

    /// The endpoint senders should use (for TCP port 0, the real port).
    pub fn name(&self) -> &str {
        self.rx.name()
    }

    async fn until<T>(&mut self, attempt: impl FnMut(&mut Receiver) -> Result<T>) -> Result<T> {
        let name = self.rx.name().to_string();
        self.watch.until(&mut self.rx, Want::Read, self.renew, &name, attempt, Receiver::poll_fd).await
    }

    /// Receives the next message into a new buffer of its size.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe. If the future is dropped before it
    /// completes (in a `tokio::select!` branch that lost, under a
    /// `timeout`), no message was taken: each attempt takes a whole
    /// message and returns it, or takes nothing, and the future waits only
    /// between attempts. The next message is there for the next call.
    pub async fn recv(&mut self) -> Result<Message> {
        self.until(Receiver::try_recv).await
    }

    /// Receives the next message into `buf` (its length and metadata). A
    /// message larger than `buf` is `TooLarge` and stays queued.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv`](Self::recv).
    pub async fn recv_into(&mut self, buf: &mut [u8]) -> Result<(usize, Meta)> {
        self.until(|rx| rx.try_recv_into(buf)).await
    }

    /// Receives the next message in place where the transport can (a
    /// `shm:` sender's pool), by copy otherwise: see
    /// [`Receiver::recv_sample`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`recv`](Self::recv).
    pub async fn recv_sample(&mut self) -> Result<Sample> {
        self.until(Receiver::try_recv_sample).await
    }
}
