//! The transports under request-response: how a client's requests go out
//! and its replies come back, and how a server receives requests and
//! finds the way back to each caller (see the table in `rpc`).

use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::envelope;
use super::{Body, Request, lock};
use crate::channel::{Receiver, Sender};
use crate::endpoint::{Endpoint, EndpointKind, UnixType};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::mq::{PosixQueue, SysvQueue};
use crate::options::Options;
use crate::socket::server::Server as SocketServer;
use crate::socket::{Connection, Listener};
use crate::sys;
use crate::transport::Io;
use crate::wait::{Got, Wait};

/// How long a reply may wait for room at its client: past it the reply is
/// dropped (a client that does not read its replies stalls nobody else).
const REPLY_WAIT: Duration = Duration::from_secs(1);

/// The most reply links a server keeps open (`shm:`, `mq:`): past it, the
/// ones whose client is gone go first, then any (they reopen on demand).
const MAX_LINKS: usize = 4096;

/// How often a System V server looks for clients that are gone.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How often a caller waiting for a reply looks whether the server is
/// still there (where the wait itself cannot tell: `shm:`, the queues).
const LIVENESS_EVERY: Duration = Duration::from_millis(100);

/// The presence socket of a queue server: an abstract seqpacket listener
/// bound while the server lives. A client connects to it first (nobody
/// there: no server, at once) and holds the connection; the server's end,
/// however it ends, shows as the end of that connection.
fn presence(ep: &Endpoint) -> Result<Endpoint> {
    let what = match ep.kind() {
        EndpointKind::Mq(name) => format!("mq{name}"),
        EndpointKind::SysvMq(k) => format!("sysv/{:08x}", crate::name::resolve_key(k, ep)?),
        _ => unreachable!("queues only"),
    };
    // Long queue names hashed (FNV-1a: the same in every build).
    let what = if what.len() > 80 {
        let h = what.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        format!("{}-{h:016x}", &what[..40])
    } else {
        what
    };
    format!("unix-seqpacket:@ipckit/rpc/{what}").parse()
}

/// Connects to a queue server's presence socket.
fn join_presence(ep: &Endpoint) -> Result<Connection> {
    Connection::connect(&presence(ep)?).map_err(|e| {
        Error::new(e.kind(), "connect", ep, "no server is serving this queue (its presence socket is not there)")
    })
}

/// Whether the server at the other end of a presence connection is gone.
fn presence_gone(conn: &Connection) -> bool {
    use std::os::fd::AsFd;
    // Readable (end of file) or hung up: the server closed it.
    sys::io::poll(conn.as_fd(), sys::io::Ready::Read, Wait::Never).unwrap_or(true)
}

/// The options of an open this module makes for its own use (the other
/// side's object, a reply queue, a second handle): never creating or
/// removing what the user's options may have asked of the endpoint itself.
fn internal(opts: &Options) -> Options {
    Options { create: false, exclusive: false, unlink_on_drop: false, ..opts.clone() }
}

/// The client ids of this process: its pid and a counter.
fn next_client() -> (i32, u32) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    (sys::process::getpid(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A System V client's message type: `pid << 20 | n`, plus 2 (type 1 is
/// requests).
fn sysv_type(pid: i32, n: u32) -> i64 {
    (((pid as i64) << 20) | (n as i64 & 0xf_ffff)) + 2
}

/// The pid in a System V client's message type.
fn sysv_pid(mtype: i64) -> i32 {
    ((mtype - 2) >> 20) as i32
}

/// `shm:NAME` without its options, and the options.
fn split_shm(ep: &Endpoint) -> (String, String) {
    let EndpointKind::Shm(name) = ep.kind() else { unreachable!("a shm: endpoint") };
    let query: Vec<String> = ep.options().map(|(k, v)| format!("{k}={v}")).collect();
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    (name.trim_start_matches('/').to_string(), query)
}

/// A client's reply channel on `shm:`.
fn shm_reply(channel: &str, client: u64, query: &str) -> Result<Endpoint> {
    format!("shm:{channel}~r{client:016x}{query}").parse()
}

/// A client's reply queue on `mq:`.
fn mq_reply(queue: &str, pid: i32, n: u32) -> Result<Endpoint> {
    format!("mq:{queue}.r{pid}-{n}").parse()
}

/// The most replies a client's reply queue holds: replies are read as they
/// come, and every queue counts against the user's `RLIMIT_MSGQUEUE`.
const REPLY_QUEUE_MESSAGES: i64 = 4;

/// A client's two directions.
#[derive(Debug)]
pub(crate) struct ClientLink {
    tx: Mutex<Tx>,
    rx: Mutex<Rx>,
    /// The client id sent with each request (`shm:`, queues).
    client: Option<u64>,
    /// A reply queue to remove when the client goes (if the server has
    /// not already).
    remove: Option<Endpoint>,
    /// A queue server's presence (see [`presence`]).
    presence: Option<Connection>,
    /// `sysv-mq:`: set when the client goes, for the thread that watches
    /// the server's presence (see [`watch_sysv_server`]).
    watcher: Option<Arc<AtomicBool>>,
}

/// How often the watcher of a System V client looks whether its client
/// went.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// On `sysv-mq:` a blocked `msgrcv` cannot also wait for the server's
/// presence connection to end, and a timed one polls (System V queues have
/// no descriptor). So a client waits for replies in a blocking `msgrcv`,
/// and a thread of its own waits for the server's end: when it comes, it
/// sends the client a wake-up (a reply header with correlation id 0, which
/// no call has) of the client's own type, so that the waiting caller looks
/// and finds the server gone. The thread ends when the client goes
/// (within [`WATCH_EVERY`]).
fn watch_sysv_server(presence: &Connection, wake: SysvQueue, mtype: i64) -> Result<Arc<AtomicBool>> {
    use std::os::fd::AsFd;
    let label = wake.object().to_string();
    let fd = presence
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::new(ErrorKind::Io, "connect", &label, format!("dup of the presence socket: {e}")))?;
    let gone = Arc::new(AtomicBool::new(false));
    let client_gone = gone.clone();
    std::thread::Builder::new()
        .name("ipckit-rpc-watch".into())
        .spawn(move || {
            let mut wake = wake;
            while !client_gone.load(Ordering::Relaxed) {
                // Readable or hung up: the server's end.
                if sys::io::poll(fd.as_fd(), sys::io::Ready::Read, Wait::timeout(WATCH_EVERY)).unwrap_or(true) {
                    let header = envelope::reply_header(0, envelope::STATUS_OK);
                    let meta = SendMeta::new().msg_type(mtype);
                    let _ = wake.send_wait(&[IoSlice::new(&header)], &meta, Wait::timeout(REPLY_WAIT));
                    return;
                }
            }
        })
        .map_err(|e| {
            Error::new(ErrorKind::Io, "connect", &label, format!("cannot start the server watcher thread: {e}"))
        })?;
    Ok(gone)
}

#[derive(Debug)]
enum Tx {
    Io(Io),
    Sender(Sender),
    Posix(PosixQueue),
    Sysv(SysvQueue),
}

#[derive(Debug)]
enum Rx {
    Io(Io),
    Receiver(Receiver),
    Posix(PosixQueue),
    Sysv(SysvQueue),
}

impl ClientLink {
    pub(crate) fn connect(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<ClientLink> {
        match ep.kind() {
            EndpointKind::Unix(UnixType::Stream | UnixType::Seqpacket, _) | EndpointKind::Tcp { .. } => {
                let io = Connection::connect_wait(ep, opts, wait)?.into_io();
                let rx = io.duplicate()?;
                Ok(ClientLink {
                    tx: Mutex::new(Tx::Io(io)),
                    rx: Mutex::new(Rx::Io(rx)),
                    client: None,
                    remove: None,
                    presence: None,
                    watcher: None,
                })
            }
            EndpointKind::Shm(_) => {
                let (channel, query) = split_shm(ep);
                // The server first: nobody there fails at once.
                let tx = match wait {
                    Wait::Never => Sender::connect_with(ep, opts)?,
                    _ => Sender::connect_timeout(ep, opts, wait.remaining().unwrap_or(Duration::MAX))?,
                };
                let (pid, n) = next_client();
                let client = (pid as u64) << 32 | n as u64;
                let rx = Receiver::bind_with(&shm_reply(&channel, client, &query)?, &internal(opts))?;
                Ok(ClientLink {
                    tx: Mutex::new(Tx::Sender(tx)),
                    rx: Mutex::new(Rx::Receiver(rx)),
                    client: Some(client),
                    remove: None,
                    presence: None,
                    watcher: None,
                })
            }
            EndpointKind::Mq(queue) => {
                let presence = join_presence(ep)?;
                let tx = PosixQueue::open(ep, &internal(opts))?;
                let (pid, n) = next_client();
                // Replies as large as the server's requests may be; few of
                // them.
                let size = tx.attributes()?.msgsize;
                let maxmsg = REPLY_QUEUE_MESSAGES.min(tx.attributes()?.maxmsg);
                let mode = ep.mode()?.map_or(String::new(), |m| format!("&mode={m:o}"));
                let reply = mq_reply(queue, pid, n)?;
                let create: Endpoint = format!("{reply}?maxmsg={maxmsg}&msgsize={size}{mode}").parse()?;
                let rx = PosixQueue::open(&create, &Options { create: true, exclusive: true, ..internal(opts) })?;
                Ok(ClientLink {
                    tx: Mutex::new(Tx::Posix(tx)),
                    rx: Mutex::new(Rx::Posix(rx)),
                    client: Some((pid as u64) << 32 | n as u64),
                    remove: Some(reply),
                    presence: Some(presence),
                    watcher: None,
                })
            }
            EndpointKind::SysvMq(_) => {
                let presence = join_presence(ep)?;
                let tx = SysvQueue::open(ep, &internal(opts))?;
                let (pid, n) = next_client();
                let mtype = sysv_type(pid, n);
                let rx = SysvQueue::open(ep, &Options { msg_type: mtype, ..internal(opts) })?;
                let watcher = watch_sysv_server(&presence, SysvQueue::open(ep, &internal(opts))?, mtype)?;
                Ok(ClientLink {
                    tx: Mutex::new(Tx::Sysv(tx)),
                    rx: Mutex::new(Rx::Sysv(rx)),
                    client: Some(mtype as u64),
                    remove: None,
                    presence: Some(presence),
                    watcher: Some(watcher),
                })
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                "connect",
                ep,
                "request-response runs on unix:, unix-seqpacket:, tcp:, shm:, mq: and sysv-mq:",
            )),
        }
    }

    pub(crate) fn send_request(&self, id: u64, body: &[u8], wait: Wait) -> Result<()> {
        let (header, n) = envelope::request_header(id, self.client);
        let parts = [IoSlice::new(&header[..n]), IoSlice::new(body)];
        let meta = SendMeta::new();
        match &mut *lock(&self.tx) {
            Tx::Io(io) => io.send(&parts, &meta, wait),
            Tx::Sender(s) => s.send_parts(&parts, &meta, wait),
            Tx::Posix(q) => q.send_wait(&parts, &meta, wait),
            Tx::Sysv(q) => q.send_wait(&parts, &meta, wait),
        }
    }

    /// The next reply within `wait`. Where the wait cannot see the server
    /// go (`shm:`, queues), it looks every 100 ms: a server that is gone is
    /// `Eof`.
    pub(crate) fn recv_reply(&self, wait: Wait) -> Result<Got<Vec<u8>>> {
        let mut rx = lock(&self.rx);
        if let Rx::Io(io) = &mut *rx {
            return Ok(io.recv(wait)?.map(|m| m.data));
        }
        loop {
            let slice = match wait {
                Wait::Never => Wait::Never,
                // The watcher thread wakes a blocked System V wait.
                Wait::Forever if self.watcher.is_some() => Wait::Forever,
                _ => Wait::timeout(wait.remaining().map_or(LIVENESS_EVERY, |left| left.min(LIVENESS_EVERY))),
            };
            let got: Got<Message> = match &mut *rx {
                Rx::Io(_) => unreachable!("handled above"),
                Rx::Receiver(r) => r.recv_got(slice)?,
                Rx::Posix(q) => q.recv_got(slice)?,
                Rx::Sysv(q) => q.recv_got(slice)?,
            };
            let got = match got {
                // The watcher's wake-up: look.
                Got::Msg(m) if self.watcher.is_some() && is_wake(&m.data) => Got::NotYet,
                got => got,
            };
            match got {
                Got::NotYet if !self.server_gone() && wait.remaining() != Some(Duration::ZERO) => continue,
                Got::NotYet if self.server_gone() => return Ok(Got::Eof),
                got => return Ok(got.map(|m| m.data)),
            }
        }
    }

    /// Whether the server is known to be gone.
    fn server_gone(&self) -> bool {
        if let Some(p) = &self.presence {
            return presence_gone(p);
        }
        match &*lock(&self.tx) {
            Tx::Sender(s) => s.receiver_gone(),
            _ => false,
        }
    }
}

/// The watcher's wake-up (see [`watch_sysv_server`]).
fn is_wake(data: &[u8]) -> bool {
    data.len() == envelope::REPLY_HEADER && envelope::parse_reply(data).is_some_and(|r| r.id == 0)
}

impl Drop for ClientLink {
    fn drop(&mut self) {
        if let Some(w) = &self.watcher {
            w.store(true, Ordering::Relaxed);
        }
        if self.client.is_some() {
            // Goodbye: the server lets go of its way back to this client.
            let _ = self.send_request(envelope::GOODBYE, &[], Wait::Never);
        }
        if let Some(ep) = &self.remove {
            // Gone already when the server has opened it.
            let _ = crate::remove(ep);
        }
    }
}

/// A reply link to one client (`shm:` or `mq:`), shared by the requests
/// that came from it.
#[derive(Debug)]
pub(crate) struct ReplyLink<T> {
    end: Mutex<T>,
    /// A send failed for good: the client is gone.
    dead: AtomicBool,
}

/// Where a request's reply goes.
#[derive(Clone, Debug)]
pub(crate) enum ReplyTo {
    Io(Arc<Mutex<Io>>),
    Shm(Arc<ReplyLink<Sender>>),
    Posix(Arc<ReplyLink<PosixQueue>>),
    Sysv(Arc<SysvWay>, i64),
}

/// The way back on `sysv-mq:`: replies go on the request queue itself, so
/// a queue full of requests would leave no room for them while the server
/// is busy replying. A reply that finds no room takes requests out into
/// `backlog` (served before the queue, in their order) until it fits.
#[derive(Debug)]
pub(crate) struct SysvWay {
    /// Sends replies.
    reply: Mutex<SysvQueue>,
    /// Takes requests (type 1) out to make room.
    drain: Mutex<SysvQueue>,
    backlog: Mutex<std::collections::VecDeque<Message>>,
    /// Clients answered, by message type, and their pids.
    clients: Mutex<HashMap<i64, i32>>,
}

/// The most requests a System V server holds taken out of its queue (each
/// at most the kernel's `msgmax`, 8 KiB by default).
const SYSV_BACKLOG: usize = 1024;

impl SysvWay {
    /// Wakes a thread blocked in the queue for a request (see
    /// [`Server::stop`](super::Server::stop)): a nudge, an addressed
    /// goodbye from client 0.
    pub(crate) fn nudge(&self) {
        let (nudge, n) = envelope::request_header(envelope::GOODBYE, Some(0));
        let _ = lock(&self.reply).send_wait(&[IoSlice::new(&nudge[..n])], &SendMeta::new().msg_type(1), Wait::Never);
    }

    /// Sends a reply of type `mtype`, making room by taking requests out
    /// while there is none, for at most [`REPLY_WAIT`].
    fn send(&self, parts: &[IoSlice<'_>], mtype: i64) -> Result<()> {
        let mut took_any = false;
        let sent = self.send_making_room(parts, mtype, &mut took_any);
        if took_any {
            // Another thread may be waiting in the queue for a request
            // while those taken out wait here: a nudge wakes it, and it
            // looks at the backlog. With no room for it, the queue is not
            // empty and wakes that thread anyway.
            self.nudge();
        }
        sent
    }

    fn send_making_room(&self, parts: &[IoSlice<'_>], mtype: i64, took_any: &mut bool) -> Result<()> {
        let deadline = Instant::now() + REPLY_WAIT;
        let meta = SendMeta::new().msg_type(mtype);
        let mut pause = Duration::from_micros(20);
        loop {
            let sent = lock(&self.reply).send_wait(parts, &meta, Wait::Never);
            match sent {
                Err(e) if e.kind() == ErrorKind::Full && Instant::now() < deadline => {
                    let took = {
                        let mut backlog = lock(&self.backlog);
                        backlog.len() < SYSV_BACKLOG
                            && match lock(&self.drain).recv_got(Wait::Never) {
                                Ok(Got::Msg(m)) => {
                                    backlog.push_back(m);
                                    true
                                }
                                _ => false,
                            }
                    };
                    *took_any |= took;
                    if !took {
                        // Full of replies: their clients read them soon.
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(2));
                    }
                }
                other => return other,
            }
        }
    }
}

impl ReplyTo {
    pub(crate) fn send(&self, parts: &[IoSlice<'_>], server: &str) -> Result<()> {
        // At once if there is room (the usual case: no clock read), else
        // waiting for the client to make some.
        let twice = |send: &mut dyn FnMut(Wait) -> Result<()>| match send(Wait::Never) {
            Err(e) if e.kind() == ErrorKind::Full => send(Wait::timeout(REPLY_WAIT)),
            done => done,
        };
        let sent = match self {
            ReplyTo::Io(io) => twice(&mut |w| lock(io).send(parts, &SendMeta::new(), w)),
            ReplyTo::Shm(link) => link.send(|s| twice(&mut |w| s.send_parts(parts, &SendMeta::new(), w))),
            ReplyTo::Posix(link) => link.send(|q| twice(&mut |w| q.send_wait(parts, &SendMeta::new(), w))),
            ReplyTo::Sysv(way, mtype) => {
                let sent = way.send(parts, *mtype);
                // Known again (a sweep may have let go of it meanwhile): if
                // it is gone, the next sweep takes this reply out.
                lock(&way.clients).insert(*mtype, sysv_pid(*mtype));
                sent
            }
        };
        sent.map_err(|e| {
            let kind = e.kind();
            Error::new(kind, "reply", server, format!("the reply did not reach its client: {e}"))
        })
    }
}

impl<T> ReplyLink<T> {
    fn new(end: T) -> Arc<ReplyLink<T>> {
        Arc::new(ReplyLink { end: Mutex::new(end), dead: AtomicBool::new(false) })
    }

    fn send(&self, f: impl FnOnce(&mut T) -> Result<()>) -> Result<()> {
        let sent = f(&mut lock(&self.end));
        if let Err(e) = &sent {
            if e.kind() == ErrorKind::Disconnected {
                self.dead.store(true, Ordering::Relaxed);
            }
        }
        sent
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }
}

/// Reply links by client id, bounded.
#[derive(Debug)]
pub(crate) struct Links<T>(HashMap<u64, Arc<ReplyLink<T>>>);

impl<T> Links<T> {
    fn get_or_open(&mut self, client: u64, open: impl FnOnce() -> Result<T>) -> Result<Arc<ReplyLink<T>>> {
        if let Some(link) = self.0.get(&client).filter(|l| !l.is_dead()) {
            return Ok(link.clone());
        }
        if self.0.len() >= MAX_LINKS {
            self.0.retain(|_, l| !l.is_dead());
            if self.0.len() >= MAX_LINKS {
                self.0.clear();
            }
        }
        let link = ReplyLink::new(open()?);
        self.0.insert(client, link.clone());
        Ok(link)
    }
}

/// A server's receiving side, and the ways back. One per server, so the
/// variants' sizes do not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum ServerCore {
    Socket(SocketServer),
    Shm {
        rx: Receiver,
        channel: String,
        query: String,
        opts: Options,
        links: Links<Sender>,
        warnings: Vec<String>,
    },
    Posix {
        queue: PosixQueue,
        presence: Presence,
        name: String,
        opts: Options,
        links: Links<PosixQueue>,
        warnings: Vec<String>,
    },
    Sysv {
        queue: SysvQueue,
        presence: Presence,
        way: Arc<SysvWay>,
        ep: Endpoint,
        opts: Options,
        swept: Instant,
        warnings: Vec<String>,
    },
}

impl ServerCore {
    pub(crate) fn bind(ep: &Endpoint, opts: &Options) -> Result<ServerCore> {
        match ep.kind() {
            EndpointKind::Unix(UnixType::Stream | UnixType::Seqpacket, _) | EndpointKind::Tcp { .. } => {
                let listener = Listener::bind_with(ep, opts)?;
                Ok(ServerCore::Socket(SocketServer::new(listener, opts)?))
            }
            EndpointKind::Shm(_) => {
                let (channel, query) = split_shm(ep);
                let rx = Receiver::bind_with(ep, opts)?;
                Ok(ServerCore::Shm {
                    rx,
                    channel,
                    query,
                    opts: opts.clone(),
                    links: Links(HashMap::new()),
                    warnings: Vec::new(),
                })
            }
            EndpointKind::Mq(_) => {
                let presence = Presence::bind(ep)?;
                let queue = PosixQueue::open(ep, &Options { create: true, ..opts.clone() })?;
                let mut core = ServerCore::Posix {
                    queue,
                    presence,
                    name: ep.to_string(),
                    opts: opts.clone(),
                    links: Links(HashMap::new()),
                    warnings: Vec::new(),
                };
                core.sweep_mq(ep);
                Ok(core)
            }
            EndpointKind::SysvMq(_) => {
                let presence = Presence::bind(ep)?;
                let queue = SysvQueue::open(ep, &Options { create: true, msg_type: 1, ..opts.clone() })?;
                let reply = SysvQueue::open(ep, &internal(opts))?;
                let drain = SysvQueue::open(ep, &Options { msg_type: 1, ..internal(opts) })?;
                let way = SysvWay {
                    reply: Mutex::new(reply),
                    drain: Mutex::new(drain),
                    backlog: Mutex::new(Default::default()),
                    clients: Mutex::new(HashMap::new()),
                };
                Ok(ServerCore::Sysv {
                    queue,
                    presence,
                    way: Arc::new(way),
                    ep: ep.clone(),
                    opts: opts.clone(),
                    swept: Instant::now(),
                    warnings: Vec::new(),
                })
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                "bind",
                ep,
                "request-response runs on unix:, unix-seqpacket:, tcp:, shm:, mq: and sysv-mq:",
            )),
        }
    }

    pub(crate) fn name(&self) -> String {
        match self {
            ServerCore::Socket(s) => s.name().to_string(),
            ServerCore::Shm { rx, .. } => rx.name().to_string(),
            ServerCore::Posix { name, .. } => name.clone(),
            ServerCore::Sysv { ep, .. } => ep.to_string(),
        }
    }

    /// The System V way back, whose nudge wakes a blocked receive.
    pub(crate) fn sysv_way(&self) -> Option<Arc<SysvWay>> {
        match self {
            ServerCore::Sysv { way, .. } => Some(way.clone()),
            _ => None,
        }
    }

    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        match self {
            ServerCore::Socket(s) => s.take_warnings(),
            ServerCore::Shm { rx, warnings, .. } => {
                let mut w = rx.take_warnings();
                w.append(warnings);
                w
            }
            ServerCore::Posix { warnings, .. } | ServerCore::Sysv { warnings, .. } => std::mem::take(warnings),
        }
    }

    fn corrupt(&self, why: String) -> Error {
        Error::new(ErrorKind::Corrupt, "recv request", self.name(), why)
    }

    /// The next request within `wait` (goodbyes and nudges handled on the
    /// way; after one, `stop` set returns `NotYet`).
    pub(crate) fn next(&mut self, wait: Wait, stop: &AtomicBool) -> Result<Got<Request>> {
        loop {
            match self.next_one(wait)? {
                Got::Msg(Some(request)) => return Ok(Got::Msg(request)),
                Got::Msg(None) if stop.load(Ordering::Acquire) => return Ok(Got::NotYet),
                Got::Msg(None) => continue,
                Got::NotYet => return Ok(Got::NotYet),
                Got::Eof => return Ok(Got::Eof),
            }
        }
    }

    /// One message: a request, or `None` for a client's goodbye.
    fn next_one(&mut self, wait: Wait) -> Result<Got<Option<Request>>> {
        match self {
            ServerCore::Socket(server) => {
                let got = server.next_from(wait, |slot, io, w| Ok(io.recv(w)?.map(|m| (slot, m))))?;
                let Got::Msg((slot, m)) = got else { return Ok(got.map(|_| None)) };
                let Some(parts) = envelope::parse_request(&m.data, false) else {
                    let who = m
                        .meta
                        .creds
                        .map_or_else(|| "a client".to_string(), |c| format!("the client with pid {}", c.pid));
                    server.drop_connection(slot);
                    return Err(self.corrupt(format!(
                        "{who} sent a request of {} bytes, shorter than its {}-byte header; its connection was dropped",
                        m.data.len(),
                        envelope::REQUEST_HEADER
                    )));
                };
                let id = parts.id;
                let to = ReplyTo::Io(server.reply_handle(slot)?);
                let body = Body { data: m.data, start: envelope::REQUEST_HEADER };
                Ok(Got::Msg(Some(Request { id, body, meta: m.meta, to })))
            }
            ServerCore::Shm { rx, channel, query, opts, links, .. } => {
                let Got::Msg(m) = rx.recv_got(wait)? else { return Ok(Got::NotYet) };
                let (id, client, body, meta) = addressed(m).map_err(|why| self_corrupt(rx.name(), why))?;
                if id == envelope::GOODBYE {
                    links.0.remove(&client);
                    return Ok(Got::Msg(None));
                }
                if !links.0.contains_key(&client) {
                    // A new client: let go of the ways back to clients
                    // that are gone (killed: no goodbye came).
                    links.0.retain(|_, l| !lock(&l.end).receiver_gone());
                }
                let link = links.get_or_open(client, || {
                    let ep = shm_reply(channel, client, query)?;
                    Sender::connect_timeout(&ep, &internal(opts), REPLY_WAIT).map_err(|e| {
                        Error::new(e.kind(), "reply", rx.name(), format!("cannot join the client's reply channel: {e}"))
                    })
                })?;
                Ok(Got::Msg(Some(Request { id, body, meta, to: ReplyTo::Shm(link) })))
            }
            ServerCore::Posix { queue, name, opts, links, presence, .. } => {
                let Got::Msg(m) = queue.recv_got(wait)? else { return Ok(Got::NotYet) };
                let (id, client, body, meta) = addressed(m).map_err(|why| self_corrupt(name, why))?;
                if id == envelope::GOODBYE {
                    links.0.remove(&client);
                    return Ok(Got::Msg(None));
                }
                let fresh = !links.0.contains_key(&client);
                presence.accept(fresh);
                let link = links.get_or_open(client, || {
                    let ep: Endpoint = name.parse()?;
                    let crate::EndpointKind::Mq(base) = ep.kind() else { unreachable!("a POSIX queue server") };
                    let reply = mq_reply(base, (client >> 32) as i32, client as u32)?;
                    let q = PosixQueue::open(&reply, &internal(opts)).map_err(|e| {
                        Error::new(
                            e.kind(),
                            "reply",
                            name.as_str(),
                            format!("cannot open the client's reply queue: {e}"),
                        )
                    })?;
                    // Opened: nothing is left behind whatever happens to
                    // the client from now on.
                    let _ = crate::remove(&reply);
                    Ok(q)
                })?;
                if fresh {
                    // Its queue's memory counts against the user's limit
                    // for as long as it is open here: let go of the ones
                    // whose client is gone.
                    links.0.retain(|client, _| sys::process::is_alive((client >> 32) as i32));
                    let ep: Endpoint = name.parse()?;
                    self.sweep_mq(&ep);
                }
                Ok(Got::Msg(Some(Request { id, body, meta, to: ReplyTo::Posix(link) })))
            }
            ServerCore::Sysv { queue, way, ep, swept, warnings, opts, presence } => {
                if swept.elapsed() >= SWEEP_EVERY {
                    *swept = Instant::now();
                    sweep_sysv(ep, opts, &mut lock(&way.clients), warnings);
                }
                // Requests a reply took out come first: they came before
                // those still in the queue.
                let backlogged = lock(&way.backlog).pop_front();
                let m = match backlogged {
                    Some(m) => m,
                    None => match queue.recv_got(wait)? {
                        Got::Msg(m) => m,
                        _ => return Ok(Got::NotYet),
                    },
                };
                let (id, client, body, meta) = addressed(m).map_err(|why| self_corrupt(&ep.to_string(), why))?;
                let mtype = client as i64;
                if id == envelope::GOODBYE && mtype == 0 {
                    // A nudge (see `SysvWay::send`): the backlog has
                    // requests.
                    return Ok(Got::Msg(None));
                }
                if mtype < 2 {
                    return Err(self_corrupt(&ep.to_string(), format!("a request names the client type {mtype}")));
                }
                if id == envelope::GOODBYE {
                    lock(&way.clients).remove(&mtype);
                    return Ok(Got::Msg(None));
                }
                let fresh = lock(&way.clients).insert(mtype, sysv_pid(mtype)).is_none();
                presence.accept(fresh);
                Ok(Got::Msg(Some(Request { id, body, meta, to: ReplyTo::Sysv(way.clone(), mtype) })))
            }
        }
    }

    /// Removes the reply queues of this server's clients that are gone
    /// (killed before their first request was answered).
    fn sweep_mq(&mut self, ep: &Endpoint) {
        let ServerCore::Posix { warnings, .. } = self else { return };
        let crate::EndpointKind::Mq(base) = ep.kind() else { return };
        let prefix = format!("{}.r", base.trim_start_matches('/'));
        let Ok(dir) = std::fs::read_dir("/dev/mqueue") else { return };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(&prefix).and_then(|r| r.split('-').next()).and_then(|p| p.parse().ok())
            else {
                continue;
            };
            if !sys::process::is_alive(pid) {
                if let Ok(gone) = format!("mq:/{name}").parse::<Endpoint>() {
                    if crate::remove(&gone).is_ok() {
                        warnings
                            .push(format!("{ep}: removed the reply queue /{name} of client pid {pid}, which is gone"));
                    }
                }
            }
        }
    }
}

fn self_corrupt(name: &str, why: String) -> Error {
    Error::new(ErrorKind::Corrupt, "recv request", name, why)
}

/// A request in the addressed form: id, client, body, meta.
fn addressed(m: Message) -> std::result::Result<(u64, u64, Body, Meta), String> {
    let Some(parts) = envelope::parse_request(&m.data, true) else {
        return Err(format!(
            "a request of {} bytes is shorter than its {}-byte header; dropped",
            m.data.len(),
            envelope::ADDRESSED_HEADER
        ));
    };
    let (id, client) = (parts.id, parts.client.expect("addressed"));
    Ok((id, client, Body { data: m.data, start: envelope::ADDRESSED_HEADER }, m.meta))
}

/// Takes out of the queue what was sent to clients that are gone.
fn sweep_sysv(ep: &Endpoint, opts: &Options, clients: &mut HashMap<i64, i32>, warnings: &mut Vec<String>) {
    let gone: Vec<i64> = clients.iter().filter(|(_, pid)| !sys::process::is_alive(**pid)).map(|(t, _)| *t).collect();
    for mtype in gone {
        clients.remove(&mtype);
        let Ok(mut q) = SysvQueue::open(ep, &Options { msg_type: mtype, ..internal(opts) }) else {
            continue;
        };
        let mut removed = 0;
        while let Ok(Got::Msg(_)) = q.recv_got(Wait::Never) {
            removed += 1;
        }
        if removed > 0 {
            warnings.push(format!("{ep}: removed {removed} replies to client pid {}, which is gone", sysv_pid(mtype)));
        }
    }
}

/// A queue server's presence socket (see [`presence`]) and the clients
/// holding a connection to it.
#[derive(Debug)]
pub(crate) struct Presence {
    listener: Listener,
    held: Vec<Connection>,
    looked: Instant,
}

/// How often a queue server takes its waiting presence connections when no
/// new client came meanwhile.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);

impl Presence {
    fn bind(ep: &Endpoint) -> Result<Presence> {
        let listener = Listener::bind(&presence(ep)?).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => {
                Error::new(ErrorKind::AlreadyExists, "bind", ep, "another server serves this queue")
            }
            _ => e,
        })?;
        listener.set_nonblocking(true)?;
        Ok(Presence { listener, held: Vec::new(), looked: Instant::now() })
    }

    /// Takes the connections waiting (without reading them: a client only
    /// holds one to see the server's end), and lets go of the ones whose
    /// client left: when a `fresh` client's request came (it connected
    /// before sending), else at most every [`PRESENCE_EVERY`], so that
    /// requests cost no system call for it.
    fn accept(&mut self, fresh: bool) {
        if !fresh && self.looked.elapsed() < PRESENCE_EVERY {
            return;
        }
        self.looked = Instant::now();
        let mut came = false;
        while let Ok(c) = self.listener.try_accept() {
            if !came {
                // A new client: the ones that left are let go first (one
                // poll each, once per client that comes).
                self.held.retain(|c| !presence_gone(c));
                came = true;
            }
            self.held.push(c);
        }
    }
}

/// Hooks for the async client and server (`crate::tokio`): the descriptor
/// each side waits on between non-blocking attempts, duplicated so that
/// the reactor's registration needs no hold on the link's locks.
#[cfg(feature = "tokio")]
fn duplicate(fd: std::os::fd::BorrowedFd<'_>, name: &str) -> Result<Option<std::os::fd::OwnedFd>> {
    fd.try_clone_to_owned().map(Some).map_err(|e| Error::new(ErrorKind::Io, "dup", name, e.to_string()))
}

#[cfg(feature = "tokio")]
impl ClientLink {
    /// What turns readable when a reply may have come: the connection,
    /// the reply channel's epoll set, the reply queue; `None` on System V
    /// queues.
    pub(crate) fn reply_fd(&self, name: &str) -> Result<Option<std::os::fd::OwnedFd>> {
        use std::os::fd::AsFd;
        match &*lock(&self.rx) {
            Rx::Io(io) => duplicate(io.fd(), name),
            Rx::Receiver(r) => r.poll_fd().map_or(Ok(None), |fd| duplicate(fd, name)),
            Rx::Posix(q) => duplicate(q.as_fd(), name),
            Rx::Sysv(_) => Ok(None),
        }
    }
}

#[cfg(feature = "tokio")]
impl ServerCore {
    /// What turns readable when a request may be there: the socket
    /// server's or the channel's epoll set, the request queue; `None` on
    /// System V queues.
    pub(crate) fn request_fd(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        use std::os::fd::AsFd;
        let name = self.name();
        match self {
            ServerCore::Socket(s) => duplicate(s.poll_fd(), &name),
            ServerCore::Shm { rx, .. } => rx.poll_fd().map_or(Ok(None), |fd| duplicate(fd, &name)),
            ServerCore::Posix { queue, .. } => duplicate(queue.as_fd(), &name),
            ServerCore::Sysv { .. } => Ok(None),
        }
    }
}
