//! [`AsyncSubscriber`]: a [`Subscriber`] driven by tokio's reactor (see
//! `reactor` for the loop).

use std::time::Duration;

use super::reactor::{Want, Watch};
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::meta::Message;
use crate::options::Options;
use crate::pubsub::Subscriber;

/// A [`Subscriber`] whose receives are futures: `sub.recv().await`.
///
/// Waits in tokio's reactor on [`Subscriber::poll_fd`]: on `shm:` an
/// epoll set over the subscriber's doorbell and its control connection (a
/// `try_recv` that finds nothing announces on the subscriber's cursor page
/// that it is parked, and the publisher's next message rings the
/// doorbell); on `unix:` and `tcp:` the connection itself. Every receive
/// attempts first, so whole messages a subscriber has already read from
/// its connection are returned before any wait.
///
/// ```no_run
/// # async fn f() -> ipckit::Result<()> {
/// use ipckit::tokio::AsyncSubscriber;
/// let mut sub = AsyncSubscriber::connect(&"shm:prices".parse()?)?;
/// let m = sub.recv().await?;
/// println!("{} bytes, {} lost before it", m.data.len(), m.meta.lost);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncSubscriber {
    // Before `sub`: the registration goes before the descriptor.
    watch: Watch,
    sub: Subscriber,
}

impl AsyncSubscriber {
    /// Wraps a subscriber. Needs no runtime: it registers with the
    /// current one at its first wait.
    pub fn new(sub: Subscriber) -> AsyncSubscriber {
        AsyncSubscriber { watch: Watch::default(), sub }
    }

    /// [`Subscriber::try_connect`] with default [`Options`]: subscribes if
    /// a publisher is there now (else `NotFound`). The handshake is on
    /// this machine's sockets, answered by the publisher within its own
    /// calls, and waited for on this thread (see [`Subscriber`]).
    pub fn connect(ep: &Endpoint) -> Result<AsyncSubscriber> {
        Subscriber::try_connect(ep, &Options::default()).map(AsyncSubscriber::new)
    }

    /// [`Subscriber::try_connect`].
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<AsyncSubscriber> {
        Subscriber::try_connect(ep, opts).map(AsyncSubscriber::new)
    }

    /// [`Subscriber::connect_timeout`]: waits at most `timeout` for a
    /// publisher, blocking this thread (use `spawn_blocking` for long
    /// waits).
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<AsyncSubscriber> {
        Subscriber::connect_timeout(ep, opts, timeout).map(AsyncSubscriber::new)
    }

    /// The subscriber, for its other calls (`try_recv`).
    pub fn get_mut(&mut self) -> &mut Subscriber {
        &mut self.sub
    }

    /// The subscriber, shared.
    pub fn get_ref(&self) -> &Subscriber {
        &self.sub
    }

    /// The subscriber back.
    pub fn into_inner(self) -> Subscriber {
        self.sub
    }

    /// The topic's endpoint.
    pub fn name(&self) -> &str {
        self.sub.name()
    }

    /// The next message; [`Meta::lost`](crate::Meta) says how many were
    /// lost just before it (`overflow=drop-oldest`). `Disconnected` once
    /// the publisher is gone and everything it published was read.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe. If the future is dropped before it
    /// completes (in a `tokio::select!` branch that lost, under a
    /// `timeout`), no message was taken: each attempt takes a whole
    /// message and returns it, or takes nothing (a partly read frame on
    /// `unix:`/`tcp:` stays in the subscriber's buffer), and the future
    /// waits only between attempts. The next message, and its lost
    /// count, are there for the next call.
    pub async fn recv(&mut self) -> Result<Message> {
        let name = self.sub.name().to_string();
        self.watch.until(&mut self.sub, Want::Read, false, &name, Subscriber::try_recv, Subscriber::poll_fd).await
    }
}
