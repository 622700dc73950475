//! Request-response on `unix:` (stream and seqpacket), `tcp:`, `shm:`,
//! `mq:` and `sysv-mq:`: a [`Server`] that many clients call, and a
//! [`Client`] whose calls may be in flight together from several threads.
//!
//! ```no_run
//! use ipckit::rpc::{Client, Server};
//! let ep = "unix:@calc".parse()?;
//! let server = Server::bind(&ep)?;
//! std::thread::spawn(move || server.serve(|req| Ok::<_, String>(req.body().to_ascii_uppercase())));
//! let client = Client::connect(&ep)?;
//! assert_eq!(client.call(b"hello")?, b"HELLO");
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! Every request carries a correlation id, and its reply the same id (see
//! [`envelope`] for the bytes), so replies reach their own callers however
//! they interleave. A handler's error reaches its caller as a
//! [`Remote`](crate::ErrorKind::Remote) error with the handler's message.
//!
//! How replies travel back:
//!
//! | transport | the way back |
//! | --- | --- |
//! | `unix:`, `unix-seqpacket:`, `tcp:` | the client's connection |
//! | `shm:NAME` | a reply channel per client, `shm:NAME~r<client id, 16 hex digits>`, which the client binds (its ring per server, as every `shm:` channel) and the server joins at the client's first request |
//! | `mq:/NAME` | a reply queue per client, `/NAME.r<pid>-<n>`, which the client creates (mode 0600) and the server unlinks as soon as it has opened it; a client killed before its first request is answered leaves its queue until the server's next new client, which removes the reply queues of clients that are gone |
//! | `sysv-mq:KEY` | the request queue itself: requests are type 1, replies have the client's id as their type (`pid << 20 \| n`, plus 2), so each client receives only its own; the server removes what it sent to clients that are gone |
//!
//! On `shm:` and the queues the client id is in each request (the
//! envelope's addressed form).

pub mod envelope;
pub(crate) mod link;

use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use self::envelope::{STATUS_FAILED, STATUS_OK};
use self::link::{ClientLink, ReplyTo, ServerCore};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::Meta;
use crate::options::Options;
use crate::wait::{Got, Wait, not_yet};

/// One request, as a server receives it: its body, what came with it, and
/// where its reply goes.
#[derive(Debug)]
pub struct Request {
    id: u64,
    body: Body,
    meta: Meta,
    to: ReplyTo,
}

impl Request {
    /// The request's body.
    pub fn body(&self) -> &[u8] {
        &self.body.data[self.body.start..]
    }

    /// The request's correlation id (its reply carries it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What came with it (the client's credentials where the transport
    /// tells).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The body, taken.
    pub fn into_body(self) -> Vec<u8> {
        let mut data = self.body.data;
        data.drain(..self.body.start);
        data
    }
}

/// A request's message, and where its body starts (after the envelope's
/// header: not moved down, which would copy every body once more).
#[derive(Debug)]
pub(crate) struct Body {
    pub(crate) data: Vec<u8>,
    pub(crate) start: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The serving end: binds the endpoint and answers every client's
/// requests. Shareable between threads (`&self` everywhere): one receives
/// at a time, replies go out in parallel.
#[derive(Debug)]
pub struct Server {
    name: Arc<str>,
    core: Mutex<ServerCore>,
    stopped: std::sync::atomic::AtomicBool,
    /// `sysv-mq:`: serving loops block in the queue (a timed System V
    /// wait polls), and [`stop`](Self::stop) wakes them with a nudge.
    sysv: Option<Arc<link::SysvWay>>,
}

/// How often a serving loop looks whether it was asked to stop.
const STOP_POLL: Duration = Duration::from_millis(50);

impl Server {
    /// Binds with default [`Options`] (queues are created if missing).
    pub fn bind(ep: &Endpoint) -> Result<Server> {
        Server::bind_with(ep, &Options::default())
    }

    /// Binds `ep`: listens (sockets), binds the channel (`shm:`), or opens
    /// the request queue, creating it (`mq:`, `sysv-mq:`).
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<Server> {
        ep.refuse_pubsub_options("bind")?;
        let core = ServerCore::bind(ep, opts)?;
        let sysv = core.sysv_way();
        Ok(Server { name: core.name().into(), core: Mutex::new(core), stopped: Default::default(), sysv })
    }

    /// The endpoint clients use (for TCP port 0, the real port).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn recv_wait(&self, wait: Wait) -> Result<Request> {
        match lock(&self.core).next(wait, &self.stopped)? {
            Got::Msg(r) => Ok(r),
            Got::Eof => Err(Error::new(ErrorKind::Disconnected, "recv request", &*self.name, "the endpoint closed")),
            Got::NotYet => Err(not_yet(wait, "recv request", &self.name)),
        }
    }

    /// The next request. A client that breaks the envelope is `Corrupt`
    /// (its connection dropped); the others are served on.
    pub fn recv(&self) -> Result<Request> {
        self.recv_wait(Wait::Forever)
    }

    /// The next request if one is there (else `Empty`).
    pub fn try_recv(&self) -> Result<Request> {
        self.recv_wait(Wait::Never)
    }

    /// The next request within `timeout` (else `TimedOut`).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Request> {
        self.recv_wait(Wait::timeout(timeout))
    }

    /// Answers `request`: `Ok(body)` is the reply, `Err(message)` reaches
    /// the caller as a `Remote` error with that message. A client that is
    /// gone is `Disconnected` (nothing else is disturbed). A reply too
    /// large for the way back is `TooLarge` here, and the caller gets an
    /// error reply saying so instead of waiting for nothing.
    pub fn reply(&self, request: Request, outcome: std::result::Result<&[u8], &str>) -> Result<()> {
        let (status, body) = match outcome {
            Ok(body) => (STATUS_OK, body),
            Err(why) => (STATUS_FAILED, why.as_bytes()),
        };
        let header = envelope::reply_header(request.id, status);
        let sent = request.to.send(&[IoSlice::new(&header), IoSlice::new(body)], &self.name);
        if let Err(e) = &sent {
            if e.kind() == ErrorKind::TooLarge {
                // Short, to fit where the reply did not.
                let why = format!("the reply of {} bytes was too large to send back", body.len());
                let header = envelope::reply_header(request.id, STATUS_FAILED);
                // The error text is short; if even it cannot go, the
                // first error is the one to report.
                let _ = request.to.send(&[IoSlice::new(&header), IoSlice::new(why.as_bytes())], &self.name);
            }
        }
        sent
    }

    /// Makes every serving loop ([`serve`](Self::serve) and its forms)
    /// return `Ok` soon (within 50 ms), from any thread.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(way) = &self.sysv {
            way.nudge();
        }
    }

    /// How a serving loop waits for the next request: in slices, to look
    /// at [`stop`](Self::stop) between them, or (System V, whose timed
    /// waits poll) blocked until a request or the stop's nudge.
    fn serving_wait(&self) -> Wait {
        if self.sysv.is_some() { Wait::Forever } else { Wait::timeout(STOP_POLL) }
    }

    fn stopping(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Serves requests with `handler` until [`stop`](Self::stop) or until
    /// receiving fails for good: a handler's `Err` goes back as an error
    /// reply. Problems with one client (a broken envelope, a reply it
    /// cannot take) are skipped.
    pub fn serve<F, E>(&self, mut handler: F) -> Result<()>
    where
        F: FnMut(&Request) -> std::result::Result<Vec<u8>, E>,
        E: std::fmt::Display,
    {
        while !self.stopping() {
            self.serve_one(&mut handler)?;
        }
        Ok(())
    }

    /// Serves exactly `count` requests (skipping broken ones, which do not
    /// count), then returns.
    pub fn serve_count<F, E>(&self, count: u64, mut handler: F) -> Result<()>
    where
        F: FnMut(&Request) -> std::result::Result<Vec<u8>, E>,
        E: std::fmt::Display,
    {
        let mut served = 0;
        while served < count && !self.stopping() {
            if self.serve_one(&mut handler)? {
                served += 1;
            }
        }
        Ok(())
    }

    /// Serves with `workers` threads, each receiving and running `handler`
    /// in turn, so that a slow request does not hold up the others; until
    /// [`stop`](Self::stop) or until receiving fails for good.
    pub fn serve_threads<F, E>(&self, workers: usize, handler: F) -> Result<()>
    where
        F: Fn(&Request) -> std::result::Result<Vec<u8>, E> + Sync,
        E: std::fmt::Display,
    {
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..workers.max(1))
                .map(|_| {
                    s.spawn(|| {
                        while !self.stopping() {
                            self.serve_one(&mut |r: &Request| handler(r))?;
                        }
                        // The next worker may be blocked in the queue.
                        if let Some(way) = &self.sysv {
                            way.nudge();
                        }
                        Ok(())
                    })
                })
                .collect();
            let mut first = Ok(());
            for t in threads {
                let r: Result<()> = t.join().unwrap_or_else(|_| {
                    Err(Error::new(ErrorKind::Io, "serve", &*self.name, "a worker thread panicked"))
                });
                if first.is_ok() {
                    first = r;
                }
            }
            first
        })
    }

    /// One request: `Ok(true)` when one was answered, `Ok(false)` when a
    /// client's problem was skipped or none came in a stop poll.
    fn serve_one<F, E>(&self, handler: &mut F) -> Result<bool>
    where
        F: FnMut(&Request) -> std::result::Result<Vec<u8>, E>,
        E: std::fmt::Display,
    {
        let request = match self.recv_wait(self.serving_wait()) {
            Ok(r) => r,
            Err(e) if one_client(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        let outcome = handler(&request);
        let sent = match &outcome {
            Ok(body) => self.reply(request, Ok(body)),
            Err(why) => self.reply(request, Err(&why.to_string())),
        };
        match sent {
            Err(e) if !one_client(&e) => Err(e),
            _ => Ok(true),
        }
    }

    /// Conditions met that a user should hear of (clients dropped, reply
    /// links that failed, replies to gone clients removed).
    pub fn take_warnings(&self) -> Vec<String> {
        lock(&self.core).take_warnings()
    }
}

/// Errors that concern one client only: the server goes on.
pub(crate) fn one_client(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Corrupt
            | ErrorKind::TooLarge
            | ErrorKind::Disconnected
            | ErrorKind::NotFound
            | ErrorKind::Full
            | ErrorKind::TimedOut
            | ErrorKind::PermissionDenied
    )
}

/// Hashes correlation ids, which this client numbers itself (no peer
/// chooses them): a multiplication spreads them, no SipHash needed.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A call's outcome, as the reader hands it to its caller.
type Outcome = std::result::Result<Vec<u8>, String>;

#[derive(Debug, Default)]
struct Calls {
    /// Calls waiting for their reply, and the replies come for them.
    waiting: HashMap<u64, Option<Outcome>, std::hash::BuildHasherDefault<IdHasher>>,
    /// Callers asleep on the condition variable (none: no wake-up to make,
    /// which would cost a system call per reply).
    sleepers: usize,
    /// A caller is receiving replies for everyone.
    reading: bool,
    /// The connection ended: every call fails with this.
    broken: Option<Error>,
}

/// The calling end: connects to a server and makes calls. `Sync`: calls
/// from several threads at once stay in flight together, each reply going
/// to its own caller.
#[derive(Debug)]
pub struct Client {
    name: Arc<str>,
    link: ClientLink,
    calls: Mutex<Calls>,
    cv: Condvar,
    next_id: AtomicU64,
    stray: AtomicU64,
}

impl Client {
    /// Connects with default [`Options`]. No server there is `NotFound` or
    /// `Disconnected`, at once.
    pub fn connect(ep: &Endpoint) -> Result<Client> {
        Client::connect_with(ep, &Options::default())
    }

    /// Connects to the server of `ep`.
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<Client> {
        Client::open(ep, opts, Wait::Never)
    }

    /// Connects, retrying while no server is there yet, for at most
    /// `timeout` (then `TimedOut`).
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<Client> {
        crate::wait::until_peer_ready(Wait::timeout(timeout), "connect", ep, |w| Client::open(ep, opts, w))
    }

    fn open(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Client> {
        ep.refuse_pubsub_options("connect")?;
        let link = ClientLink::connect(ep, opts, wait)?;
        Ok(Client {
            name: ep.to_string().into(),
            link,
            calls: Mutex::new(Calls::default()),
            cv: Condvar::new(),
            next_id: AtomicU64::new(1),
            stray: AtomicU64::new(0),
        })
    }

    /// What this client is connected to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replies that matched no call waiting (a call that timed out, or a
    /// server that broke the envelope): dropped, never handed to the wrong
    /// caller, and counted here.
    pub fn stray_replies(&self) -> u64 {
        self.stray.load(Ordering::Relaxed)
    }

    /// Calls the server with `body` and waits for the reply.
    pub fn call(&self, body: &[u8]) -> Result<Vec<u8>> {
        self.call_wait(body, Wait::Forever)
    }

    /// Calls, waiting at most `timeout` for the request to go and the
    /// reply to come (`TimedOut`; a reply that comes later is dropped).
    pub fn call_timeout(&self, body: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        self.call_wait(body, Wait::timeout(timeout))
    }

    fn call_wait(&self, body: &[u8], wait: Wait) -> Result<Vec<u8>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut calls = lock(&self.calls);
            if let Some(e) = &calls.broken {
                return Err(e.clone());
            }
            calls.waiting.insert(id, None);
        }
        if let Err(e) = self.link.send_request(id, body, wait) {
            lock(&self.calls).waiting.remove(&id);
            return Err(e);
        }
        self.wait_reply(id, wait)
    }

    /// Waits for the reply to call `id`: as the reader (receiving replies
    /// for every caller) when nobody else is, else for the reader to hand
    /// it over.
    fn wait_reply(&self, id: u64, wait: Wait) -> Result<Vec<u8>> {
        let mut calls = lock(&self.calls);
        loop {
            if let Some(Some(_)) = calls.waiting.get(&id) {
                let outcome = calls.waiting.remove(&id).flatten().expect("checked");
                return outcome.map_err(|why| Error::new(ErrorKind::Remote, "call", &*self.name, why));
            }
            if let Some(e) = calls.broken.clone() {
                calls.waiting.remove(&id);
                return Err(e);
            }
            if wait.remaining() == Some(Duration::ZERO) && !matches!(wait, Wait::Never) {
                calls.waiting.remove(&id);
                return Err(self.timed_out());
            }
            if !calls.reading {
                calls.reading = true;
                drop(calls);
                let got = self.link.recv_reply(wait);
                calls = lock(&self.calls);
                calls.reading = false;
                match got {
                    Ok(Got::Msg(bytes)) => self.deliver(&mut calls, bytes),
                    Ok(Got::NotYet) => {}
                    Ok(Got::Eof) => {
                        calls.broken =
                            Some(Error::new(ErrorKind::Disconnected, "call", &*self.name, "the server is gone"));
                    }
                    Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::TooLarge => {
                        self.stray.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => calls.broken = Some(e),
                }
                // Someone else may take over receiving, or find its reply.
                if calls.sleepers > 0 {
                    self.cv.notify_all();
                }
                if matches!(wait, Wait::Never) && !matches!(calls.waiting.get(&id), Some(Some(_))) {
                    calls.waiting.remove(&id);
                    return Err(self.timed_out());
                }
                continue;
            }
            calls.sleepers += 1;
            calls = match wait.remaining() {
                None => self.cv.wait(calls).unwrap_or_else(|p| p.into_inner()),
                Some(left) => self.cv.wait_timeout(calls, left).unwrap_or_else(|p| p.into_inner()).0,
            };
            calls.sleepers -= 1;
        }
    }

    /// Hands a reply to its caller, or counts it as stray.
    fn deliver(&self, calls: &mut Calls, mut bytes: Vec<u8>) {
        let Some((id, status)) = envelope::parse_reply(&bytes).map(|r| (r.id, r.status)) else {
            self.stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match calls.waiting.get_mut(&id) {
            Some(slot @ None) => {
                // The body moved down in place: no second buffer.
                bytes.drain(..envelope::REPLY_HEADER);
                *slot = Some(match status {
                    STATUS_OK => Ok(bytes),
                    _ => Err(String::from_utf8_lossy(&bytes).into_owned()),
                });
            }
            _ => {
                self.stray.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn timed_out(&self) -> Error {
        Error::new(ErrorKind::TimedOut, "call", &*self.name, "no reply within the timeout")
    }
}

/// Hooks for the async server (`crate::tokio`), which waits for requests
/// in tokio's reactor and hands each to its handler by value.
impl Server {
    /// A duplicate of the descriptor that turns readable when a request
    /// may be there (after a `try_recv` that was `Empty`); `None` on System
    /// V queues, which have none.
    #[cfg(feature = "tokio")]
    pub(crate) fn request_fd(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        lock(&self.core).request_fd()
    }
}

impl Request {
    /// A bodiless request with this one's id and way back, to answer with
    /// [`Server::reply`] once the handler has taken the request itself.
    #[cfg(feature = "tokio")]
    pub(crate) fn reply_ticket(&self) -> Request {
        Request { id: self.id, body: Body { data: Vec::new(), start: 0 }, meta: Meta::default(), to: self.to.clone() }
    }
}
