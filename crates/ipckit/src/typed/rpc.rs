//! Typed request-response on top of [`crate::rpc`]: requests and replies
//! are postcard encodings of `Req` and `Resp` inside the same envelope.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Limits, decode, encode};
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::options::Options;
use crate::rpc;

/// A server of `Req → Resp` calls.
///
/// ```no_run
/// use ipckit::typed::{Client, Server};
/// let ep = "shm:adder".parse()?;
/// let server = Server::<(u32, u32), u32>::bind(&ep)?;
/// std::thread::spawn(move || server.serve(|(a, b)| Ok::<_, String>(a + b)));
/// let client = Client::<(u32, u32), u32>::connect(&ep)?;
/// assert_eq!(client.call(&(2, 3))?, 5);
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// A request that is not a `Req` gets an error reply (its caller sees a
/// [`Remote`](crate::ErrorKind::Remote) error saying it did not decode,
/// naming the type); a handler's `Err` too, with its message.
#[derive(Debug)]
pub struct Server<Req, Resp> {
    inner: rpc::Server,
    limits: Limits,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req: DeserializeOwned, Resp: Serialize> Server<Req, Resp> {
    /// Binds with default [`Options`] (as [`rpc::Server::bind`]).
    pub fn bind(ep: &Endpoint) -> Result<Self> {
        rpc::Server::bind(ep).map(Server::new)
    }

    /// Binds.
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<Self> {
        rpc::Server::bind_with(ep, opts).map(Server::new)
    }

    /// Serves typed calls on an untyped server.
    pub fn new(inner: rpc::Server) -> Self {
        Server { inner, limits: Limits::default(), _types: PhantomData }
    }

    /// Decodes requests within `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// One call: decode, handle, encode. Every failure is the error reply's
    /// text.
    fn answer<E: std::fmt::Display>(
        &self,
        request: &rpc::Request,
        handler: impl FnOnce(Req) -> std::result::Result<Resp, E>,
    ) -> std::result::Result<Vec<u8>, String> {
        let req = decode::<Req>(request.body(), &self.limits, self.inner.name()).map_err(|e| e.to_string())?;
        let resp = handler(req).map_err(|e| e.to_string())?;
        encode(&resp, self.inner.name()).map_err(|e| e.to_string())
    }

    /// Serves with `handler` until [`stop`](Self::stop) (see
    /// [`rpc::Server::serve`]).
    pub fn serve<F, E>(&self, mut handler: F) -> Result<()>
    where
        F: FnMut(Req) -> std::result::Result<Resp, E>,
        E: std::fmt::Display,
    {
        self.inner.serve(|r| self.answer(r, &mut handler))
    }

    /// Serves exactly `count` requests, then returns.
    pub fn serve_count<F, E>(&self, count: u64, mut handler: F) -> Result<()>
    where
        F: FnMut(Req) -> std::result::Result<Resp, E>,
        E: std::fmt::Display,
    {
        self.inner.serve_count(count, |r| self.answer(r, &mut handler))
    }

    /// Serves with `workers` threads (see [`rpc::Server::serve_threads`]).
    pub fn serve_threads<F, E>(&self, workers: usize, handler: F) -> Result<()>
    where
        F: Fn(Req) -> std::result::Result<Resp, E> + Sync,
        E: std::fmt::Display,
    {
        self.inner.serve_threads(workers, |r| self.answer(r, &handler))
    }

    /// Makes the serving loops return soon, from any thread.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// The endpoint clients use.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Conditions met that a user should hear of.
    pub fn take_warnings(&self) -> Vec<String> {
        self.inner.take_warnings()
    }

    /// The untyped server.
    pub fn inner(&self) -> &rpc::Server {
        &self.inner
    }
}

/// A client making `Req → Resp` calls; `Sync`, as [`rpc::Client`].
#[derive(Debug)]
pub struct Client<Req, Resp> {
    inner: rpc::Client,
    limits: Limits,
    _types: PhantomData<fn(&Req) -> Resp>,
}

impl<Req: Serialize, Resp: DeserializeOwned> Client<Req, Resp> {
    /// Connects with default [`Options`] (no server is an error at once).
    pub fn connect(ep: &Endpoint) -> Result<Self> {
        rpc::Client::connect(ep).map(Client::new)
    }

    /// Connects.
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<Self> {
        rpc::Client::connect_with(ep, opts).map(Client::new)
    }

    /// Connects, retrying while no server is there, for at most `timeout`.
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<Self> {
        rpc::Client::connect_timeout(ep, opts, timeout).map(Client::new)
    }

    /// Makes typed calls on an untyped client.
    pub fn new(inner: rpc::Client) -> Self {
        Client { inner, limits: Limits::default(), _types: PhantomData }
    }

    /// Decodes replies within `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Calls and waits for the reply. A reply that is not a `Resp` is
    /// `Decode`; the handler's error is `Remote`.
    pub fn call(&self, request: &Req) -> Result<Resp> {
        let body = encode(request, self.inner.name())?;
        let reply = self.inner.call(&body)?;
        decode(&reply, &self.limits, self.inner.name())
    }

    /// Calls, waiting at most `timeout` (`TimedOut`).
    pub fn call_timeout(&self, request: &Req, timeout: Duration) -> Result<Resp> {
        let body = encode(request, self.inner.name())?;
        let reply = self.inner.call_timeout(&body, timeout)?;
        decode(&reply, &self.limits, self.inner.name())
    }

    /// The endpoint.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The untyped client.
    pub fn inner(&self) -> &rpc::Client {
        &self.inner
    }
}
