//! [`AsyncClient`] and [`AsyncServer`]: request-response (see
//! [`crate::rpc`]) on tokio, over the same links and the same envelope.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::tokio::sync::{oneshot, watch};
use ::tokio::task::JoinSet;

use super::reactor::{Want, Watch};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::rpc::envelope::{self, STATUS_OK};
use crate::rpc::link::ClientLink;
use crate::rpc::{Request, Server, one_client};
use crate::wait::{Got, Wait};

/// How often a caller reading replies looks whether the server is still
/// there, where the reply descriptor cannot tell (`shm:`, the queues), as
/// the blocking client does.
const LIVENESS_EVERY: Duration = Duration::from_millis(100);

/// The most requests an [`AsyncServer::serve`] handles at once: past it,
/// it receives the next when one is answered.
pub const MAX_IN_FLIGHT: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A duplicate of a link's descriptor (or none), as the reactor's loop
/// takes it.
#[derive(Debug)]
struct Waitable(Option<OwnedFd>);

fn waitable_fd(w: &Waitable) -> Option<BorrowedFd<'_>> {
    w.0.as_ref().map(|fd| fd.as_fd())
}

/// A call's outcome: the reply body, or the handler's error text.
type Outcome = std::result::Result<Vec<u8>, String>;

#[derive(Debug, Default)]
struct Calls {
    /// Calls waiting for their reply.
    waiting: HashMap<u64, oneshot::Sender<Outcome>>,
    /// The link ended: every call fails with this.
    broken: Option<Error>,
}

/// The calling end, async: `client.call(b"req").await`. Calls from many
/// tasks are in flight together, each reply going to its own caller, as
/// with [`rpc::Client`](crate::rpc::Client), on every rpc transport.
///
/// No task of its own: one waiting caller at a time reads the replies for
/// everyone (handing each to its caller) until its own comes, then the
/// next waiting caller takes over.
///
/// ```no_run
/// # async fn f() -> ipckit::Result<()> {
/// use ipckit::tokio::AsyncClient;
/// let client = AsyncClient::connect(&"unix:@calc".parse()?)?;
/// let reply = client.call(b"hello").await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncClient {
    name: Arc<str>,
    // Before `link`: the registration goes before the descriptor.
    reader: ::tokio::sync::Mutex<(Watch, Waitable)>,
    link: ClientLink,
    calls: Mutex<Calls>,
    next_id: AtomicU64,
    stray: AtomicU64,
}

/// Takes a call out of the table when its future ends, however it ends
/// (a reply that comes later is dropped and counted as stray).
struct Pending<'a> {
    calls: &'a Mutex<Calls>,
    id: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        lock(self.calls).waiting.remove(&self.id);
    }
}

impl AsyncClient {
    /// Connects with default [`Options`]: at once (no server there is
    /// `NotFound` or `Disconnected`), as [`rpc::Client::connect`](crate::rpc::Client::connect).
    /// Needs no runtime: the client registers with the current one at its
    /// first wait.
    pub fn connect(ep: &Endpoint) -> Result<AsyncClient> {
        AsyncClient::connect_with(ep, &Options::default())
    }

    /// Connects to the server of `ep`.
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<AsyncClient> {
        let name: Arc<str> = ep.to_string().into();
        let link = ClientLink::connect(ep, opts, Wait::Never)?;
        let fd = link.reply_fd(&name)?;
        Ok(AsyncClient {
            name,
            reader: ::tokio::sync::Mutex::new((Watch::default(), Waitable(fd))),
            link,
            calls: Mutex::new(Calls::default()),
            next_id: AtomicU64::new(1),
            stray: AtomicU64::new(0),
        })
    }

    /// What this client is connected to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replies that matched no call waiting (a call dropped before its
    /// reply came, or a server that broke the envelope): dropped, never
    /// handed to the wrong caller, and counted here.
    pub fn stray_replies(&self) -> u64 {
        self.stray.load(Ordering::Relaxed)
    }

    /// Calls the server with `body` and waits for the reply. A handler's
    /// error is a `Remote` error with its message; a server that is gone
    /// is `Disconnected`, for this call and every later one.
    ///
    /// The request is sent when there is room for it; where the way there
    /// has no descriptor to wait on for room (a full `shm:` ring or queue)
    /// the call tries again after a short timer (1 ms, doubling up to
    /// 4 ms).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons this call and no other: the request
    /// may have been sent (and may be handled); its reply, if it comes, is
    /// dropped and counted in [`stray_replies`](Self::stray_replies).
    /// Replies to the other calls in flight are never lost: a dropped
    /// caller that was reading replies for everyone hands the role over
    /// between two whole receives.
    pub async fn call(&self, body: &[u8]) -> Result<Vec<u8>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut mine) = oneshot::channel();
        {
            let mut calls = lock(&self.calls);
            if let Some(e) = &calls.broken {
                return Err(e.clone());
            }
            calls.waiting.insert(id, tx);
        }
        let _pending = Pending { calls: &self.calls, id };
        let mut room = Watch::default();
        room.until(
            &mut Waitable(None),
            Want::Write,
            false,
            &self.name,
            |_| self.link.send_request(id, body, Wait::Never),
            waitable_fd,
        )
        .await?;
        // Either the reader hands this call its reply, or this call
        // becomes the reader.
        ::tokio::select! {
            biased;
            outcome = &mut mine => self.finish(outcome.ok()),
            mut reader = self.reader.lock() => {
                let (watch, fd) = &mut *reader;
                self.read_until(watch, fd, &mut mine).await
            }
        }
    }

    /// The caller's result from its outcome (`None`: the link broke).
    fn finish(&self, outcome: Option<Outcome>) -> Result<Vec<u8>> {
        match outcome {
            Some(Ok(body)) => Ok(body),
            Some(Err(why)) => Err(Error::new(ErrorKind::Remote, "call", &*self.name, why)),
            None => Err(lock(&self.calls).broken.clone().unwrap_or_else(|| self.gone())),
        }
    }

    fn gone(&self) -> Error {
        Error::new(ErrorKind::Disconnected, "call", &*self.name, "the server is gone")
    }

    /// As the reader: receives replies, handing each to its caller, until
    /// `mine` has come or the link broke.
    async fn read_until(
        &self,
        watch: &mut Watch,
        fd: &mut Waitable,
        mine: &mut oneshot::Receiver<Outcome>,
    ) -> Result<Vec<u8>> {
        loop {
            match mine.try_recv() {
                Ok(outcome) => return self.finish(Some(outcome)),
                Err(oneshot::error::TryRecvError::Closed) => return self.finish(None),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let attempt = |_: &mut Waitable| match self.link.recv_reply(Wait::Never) {
                Ok(Got::NotYet) => Err(Error::new(ErrorKind::Empty, "call", &*self.name, "no reply now")),
                Ok(Got::Msg(bytes)) => Ok(Some(bytes)),
                Ok(Got::Eof) => Ok(None),
                Err(e) => Err(e),
            };
            let got = match ::tokio::time::timeout(
                LIVENESS_EVERY,
                watch.until(fd, Want::Read, false, &self.name, attempt, waitable_fd),
            )
            .await
            {
                // Another look at the server's liveness (in the attempt).
                Err(_elapsed) => continue,
                Ok(got) => got,
            };
            match got {
                Ok(Some(bytes)) => self.deliver(bytes),
                Ok(None) => self.break_all(self.gone()),
                Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::TooLarge => {
                    self.stray.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.break_all(e),
            }
        }
    }

    /// Hands a reply to its caller, or counts it as stray.
    fn deliver(&self, mut bytes: Vec<u8>) {
        let Some((id, status)) = envelope::parse_reply(&bytes).map(|r| (r.id, r.status)) else {
            self.stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(caller) = lock(&self.calls).waiting.remove(&id) else {
            self.stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        bytes.drain(..envelope::REPLY_HEADER);
        let outcome = match status {
            STATUS_OK => Ok(bytes),
            _ => Err(String::from_utf8_lossy(&bytes).into_owned()),
        };
        if caller.send(outcome).is_err() {
            self.stray.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The link ended: every call waiting fails with `e`, and every later
    /// one.
    fn break_all(&self, e: Error) {
        let mut calls = lock(&self.calls);
        calls.broken.get_or_insert(e);
        // Dropping their senders wakes them; they read `broken`.
        calls.waiting.clear();
    }
}

/// The serving end, async: requests are received in tokio's reactor and
/// handled by an async handler, several at once.
///
/// ```no_run
/// # async fn f() -> ipckit::Result<()> {
/// use ipckit::tokio::AsyncServer;
/// let server = AsyncServer::bind(&"unix:@calc".parse()?)?;
/// server
///     .serve(|req| async move { Ok::<_, String>(req.body().to_ascii_uppercase()) })
///     .await?;
/// # Ok(()) }
/// ```
///
/// A reply is sent as the handler returns; a client that does not read
/// its replies makes that send wait up to 1 s for room (then the reply is
/// dropped), as with [`rpc::Server`](crate::rpc::Server), and that wait
/// blocks the thread that runs the handler's task.
#[derive(Debug)]
pub struct AsyncServer {
    // Before `server`: the registration goes before the descriptor.
    reader: ::tokio::sync::Mutex<(Watch, Waitable)>,
    server: Arc<Server>,
    stop: watch::Sender<bool>,
}

impl AsyncServer {
    /// Binds with default [`Options`] (queues are created if missing).
    pub fn bind(ep: &Endpoint) -> Result<AsyncServer> {
        AsyncServer::bind_with(ep, &Options::default())
    }

    /// Binds `ep`, as [`rpc::Server::bind_with`](crate::rpc::Server::bind_with).
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<AsyncServer> {
        AsyncServer::new(Server::bind_with(ep, opts)?)
    }

    /// Wraps a bound server.
    pub fn new(server: Server) -> Result<AsyncServer> {
        let fd = server.request_fd()?;
        Ok(AsyncServer {
            reader: ::tokio::sync::Mutex::new((Watch::default(), Waitable(fd))),
            server: Arc::new(server),
            stop: watch::channel(false).0,
        })
    }

    /// The endpoint clients use (for TCP port 0, the real port).
    pub fn name(&self) -> &str {
        self.server.name()
    }

    /// The blocking server underneath (its `reply`, `take_warnings`).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The next request. A client that breaks the envelope is `Corrupt`
    /// (its connection dropped); the others are served on.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: a future dropped before it completes
    /// took no request, and the next request is there for the next call.
    pub async fn recv(&self) -> Result<Request> {
        let mut reader = self.reader.lock().await;
        let (watch, fd) = &mut *reader;
        let server = &self.server;
        watch.until(fd, Want::Read, false, server.name(), |_| server.try_recv(), waitable_fd).await
    }

    /// Answers `request` (see [`rpc::Server::reply`](crate::rpc::Server::reply)).
    pub fn reply(&self, request: Request, outcome: std::result::Result<&[u8], &str>) -> Result<()> {
        self.server.reply(request, outcome)
    }

    /// Makes every [`serve`](Self::serve) return soon: it takes no new
    /// request, and returns when the requests it is handling are answered.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Serves requests until [`stop`](Self::stop) or until receiving fails
    /// for good: each request is handed to `handler` by value, and the
    /// future it returns runs as a task of its own (up to
    /// [`MAX_IN_FLIGHT`] at once), so a slow request does not hold up the
    /// others. `Ok(body)` is the reply; `Err(e)` reaches the caller as a
    /// `Remote` error with `e`'s text. Problems with one client (a broken
    /// envelope, a reply it cannot take) are skipped.
    ///
    /// Must run inside a tokio runtime (it spawns the handlers' futures).
    ///
    /// # Cancel safety
    ///
    /// Dropping this future takes no request that is not being handled:
    /// requests not received yet stay for the next serving loop. Requests
    /// being handled go on in their tasks and are answered.
    pub async fn serve<F, Fut, E>(&self, handler: F) -> Result<()>
    where
        F: Fn(Request) -> Fut,
        Fut: Future<Output = std::result::Result<Vec<u8>, E>> + Send + 'static,
        E: Display,
    {
        let mut stop = self.stop.subscribe();
        let mut tasks = JoinSet::new();
        let result = loop {
            if *stop.borrow_and_update() {
                break Ok(());
            }
            ::tokio::select! {
                biased;
                _ = stop.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                got = self.recv(), if tasks.len() < MAX_IN_FLIGHT => match got {
                    Ok(request) => {
                        let ticket = request.reply_ticket();
                        let work = handler(request);
                        let server = self.server.clone();
                        tasks.spawn(async move {
                            let outcome = work.await;
                            // A client's problem (it is gone, its reply
                            // did not fit) concerns it alone.
                            let _ = match &outcome {
                                Ok(body) => server.reply(ticket, Ok(body)),
                                Err(why) => server.reply(ticket, Err(&why.to_string())),
                            };
                        });
                    }
                    Err(e) if one_client(&e) => {}
                    Err(e) => break Err(e),
                },
            }
        };
        while tasks.join_next().await.is_some() {}
        result
    }
}
