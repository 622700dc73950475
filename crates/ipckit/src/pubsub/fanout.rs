//! Publish-subscribe over `unix:` (stream) and `tcp:`: fan-out from the
//! publisher's process, one connection per subscriber.
//!
//! # The wire (a contract: programs in other languages speak it)
//!
//! Every unit is a `len32` frame, as everywhere in ipckit: a u32
//! little-endian length, then that many bytes. Integers are little-endian.
//!
//! 1. **Subscriber → publisher, once, right after connecting:** the
//!    subscribe frame, 19 bytes of payload:
//!
//!    | bytes | value |
//!    | --- | --- |
//!    | 0–9 | `IPCKIT-SUB` |
//!    | 10 | version, `0x01` |
//!    | 11–18 | K, u64: how many kept messages it asks for (0: none) |
//!
//!    Nothing else is ever sent by a subscriber: a byte more, a frame of
//!    another length, another magic, or no complete frame within 10 s
//!    drops that connection (with a warning) and nothing else.
//! 2. **Publisher → subscriber, once:** the answer, 12 bytes or more:
//!
//!    | bytes | value |
//!    | --- | --- |
//!    | 0–9 | `IPCKIT-PUB` |
//!    | 10 | version, `0x01` |
//!    | 11 | `0x00` accepted; `0x01` refused, history too large; `0x02` refused, unsupported version |
//!    | 12– | accepted: u64, how many kept messages follow (at most K); refused: the reason, UTF-8, at most 1024 bytes |
//!
//!    After a refusal the publisher closes the connection.
//! 3. **Publisher → subscriber, then:** one frame per message: u64, how
//!    many messages this subscriber lost just before this one
//!    (`overflow=drop-oldest`; always 0 under `block`), then the
//!    payload. The frame's length is 8 + the payload's length.
//!
//! The publisher closing the connection is the end of the topic. A frame
//! from the publisher shorter than its fixed part, or an answer that is
//! not one of the above, is `Corrupt` for the subscriber.
//!
//! A subscription asking for 2 kept messages, accepted with 2 following,
//! the first of them `hi`, nothing lost:
//!
//! ```text
//! → 13 00 00 00  49 50 43 4b 49 54 2d 53 55 42  01  02 00 00 00 00 00 00 00
//! ← 14 00 00 00  49 50 43 4b 49 54 2d 50 55 42  01  00  02 00 00 00 00 00 00 00
//! ← 0a 00 00 00  00 00 00 00 00 00 00 00  68 69
//! ```
//!
//! # The publisher's side
//!
//! - **A service thread.** Each publisher has one thread of its own
//!   that serves its subscribers while the publisher does anything else
//!   or nothing: it accepts connections, reads subscribe frames and
//!   answers them at once (with history), writes backlogs as sockets
//!   make room, and lets go of subscribers that leave, die or break the
//!   protocol (with a warning for the latter). It waits in `epoll`
//!   (level-triggered) on the listener, an eventfd rung when the
//!   publisher is dropped, every pending connection, and every
//!   subscriber's socket: for readability and hang-up always, for room
//!   only while its backlog is not empty. The thread and the publishing
//!   calls share the state under one lock.
//! - **Backlogs.** Each subscriber has a backlog in user space, written
//!   with non-blocking `sendmsg` (`MSG_NOSIGNAL`: a dead subscriber is an
//!   error, never `SIGPIPE`) of up to 64 frames at once. A publish
//!   appends the message to every backlog and writes it where the
//!   subscriber is not behind: one `sendmsg` per subscriber, nothing
//!   more. A write that leaves bytes behind turns on the thread's watch
//!   for room on that socket (one `epoll_ctl`, which wakes the thread as
//!   soon as there is room); from then on the thread writes that backlog
//!   and the publisher only appends to it, until it is empty. A backlog is
//!   **full** at [`depth`] messages (`max(history, 64)`) or
//!   [`BACKLOG_BYTES`] bytes of payload (a single larger message still
//!   fits an empty backlog). Each message is held once however many
//!   backlogs and the history hold it (`Arc`), so the publisher holds at
//!   most what the fullest backlog and the history need, beside the
//!   kernel's socket buffers.
//! - **`overflow=block`:** a publish waits (on a condition variable the
//!   thread signals when it wrote backlogs or let a subscriber go) while
//!   any backlog is full; `try_publish` is `Full` then. A subscriber that
//!   dies is seen as its socket hangs up and no longer holds the
//!   publisher back.
//! - **`overflow=drop-oldest`:** a publish never waits; a full backlog
//!   drops its oldest messages not yet started on the wire, and the next
//!   message the subscriber gets carries their number (exact).
//! - **History:** the last `history=N` messages are kept (whatever their
//!   size: N is the bound), and a subscriber asking for K ≤ N gets the last
//!   K of them first; K > N is refused, and the subscriber's connect is
//!   `Invalid`, naming N.
//! - **Drop:** the thread writes what the backlogs hold, for as long as
//!   some subscriber takes bytes within 1 s; then it is stopped and
//!   joined, and every connection is closed: subscribers read what
//!   reached them, then `Disconnected`.
//!   A publisher that is killed loses its backlogs; what reached the
//!   kernel still arrives.

use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::TopicConfig;
use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Credentials, Limit, Message, Meta, check_len};
use crate::options::{Options, Overflow};
use crate::socket::server::{Acceptor, EVENTS, LISTENER};
use crate::socket::{Connection, Listener, tcp};
use crate::sys::io::EpollReady;
use crate::sys::{self, Errno};
use crate::wait::{Got, Wait, until_peer_ready};

/// The subscribe frame's magic.
pub(crate) const SUB_MAGIC: &[u8; 10] = b"IPCKIT-SUB";
/// The answer's magic.
pub(crate) const PUB_MAGIC: &[u8; 10] = b"IPCKIT-PUB";
/// The wire's version.
pub(crate) const VERSION: u8 = 1;
/// The subscribe frame's payload: magic, version, u64.
const SUBSCRIBE_LEN: usize = 19;
/// Answer codes (byte 11 of the answer).
const ACCEPTED: u8 = 0;
const REFUSED_HISTORY: u8 = 1;
const REFUSED_VERSION: u8 = 2;
/// The longest reason a refusal carries.
const MAX_REASON: usize = 1024;
/// The fixed part of an answer: magic, version, code.
const ANSWER_HEAD: usize = 12;
/// A message frame's fixed part: the length and the lost count.
const MSG_HEAD: usize = 12;

/// The fewest messages a backlog holds (a topic with a longer history
/// holds that many).
pub(crate) const MIN_DEPTH: u64 = 64;
/// The most payload bytes a backlog holds (a single larger message still
/// fits an empty one): 4 MiB.
pub(crate) const BACKLOG_BYTES: usize = 4 << 20;
/// A connection must send its subscribe frame within this.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// A subscriber waiting for the publisher's answer in `try_connect` waits
/// this long (the publisher's service thread answers at once; this covers
/// a publisher that is stopped or starved of CPU).
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// On drop: give up writing backlogs when no subscriber took a byte for
/// this long.
const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// The most frames one `sendmsg` carries.
const BATCH: usize = 64;
/// The most warnings kept until taken (a flood of bad clients cannot grow
/// them without bound); past it they are counted.
const MAX_WARNINGS: usize = 64;

/// The messages a backlog holds: `max(history, 64)`.
pub(crate) fn depth(history: u64) -> usize {
    usize::try_from(history.max(MIN_DEPTH)).unwrap_or(usize::MAX)
}

/// The subscribe frame asking for `history` kept messages, as sent.
pub(crate) fn subscribe_frame(history: u64) -> [u8; 4 + SUBSCRIBE_LEN] {
    let mut f = [0u8; 4 + SUBSCRIBE_LEN];
    f[..4].copy_from_slice(&(SUBSCRIBE_LEN as u32).to_le_bytes());
    f[4..14].copy_from_slice(SUB_MAGIC);
    f[14] = VERSION;
    f[15..].copy_from_slice(&history.to_le_bytes());
    f
}

/// An answer frame: `code`, then `rest`.
fn answer_frame(code: u8, rest: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + ANSWER_HEAD + rest.len());
    f.extend_from_slice(&((ANSWER_HEAD + rest.len()) as u32).to_le_bytes());
    f.extend_from_slice(PUB_MAGIC);
    f.push(VERSION);
    f.push(code);
    f.extend_from_slice(rest);
    f
}

/// A refusal's reason, cut to [`MAX_REASON`] bytes on a character boundary.
fn reason(text: &str) -> &[u8] {
    let mut end = text.len().min(MAX_REASON);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text.as_bytes()[..end]
}

/// The endpoint as subscribers write it: the publisher's, without the
/// topic's own options (`overflow`, `history`).
fn subscriber_name(ep: &Endpoint) -> String {
    let text = ep.to_string();
    let Some((base, query)) = text.split_once('?') else { return text };
    let kept: Vec<&str> =
        query.split('&').filter(|kv| !kv.starts_with("overflow=") && !kv.starts_with("history=")).collect();
    if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) }
}

/// One message in a backlog: its frame header (length, lost count) and
/// the payload, shared with every other backlog and the history.
#[derive(Debug)]
struct Entry {
    head: [u8; MSG_HEAD],
    msg: Arc<[u8]>,
}

impl Entry {
    fn new(lost: u64, msg: Arc<[u8]>) -> Entry {
        let mut head = [0u8; MSG_HEAD];
        head[..4].copy_from_slice(&((8 + msg.len()) as u32).to_le_bytes());
        head[4..].copy_from_slice(&lost.to_le_bytes());
        Entry { head, msg }
    }

    fn lost(&self) -> u64 {
        u64::from_le_bytes(self.head[4..].try_into().expect("8 bytes"))
    }

    fn add_lost(&mut self, n: u64) {
        let lost = self.lost().saturating_add(n);
        self.head[4..].copy_from_slice(&lost.to_le_bytes());
    }

    fn frame_len(&self) -> usize {
        MSG_HEAD + self.msg.len()
    }
}

/// A connection that has not sent its whole subscribe frame yet.
#[derive(Debug)]
struct Pending {
    fd: OwnedFd,
    /// Its epoll data word: [`PENDING`], its serial and its slot.
    token: u64,
    buf: [u8; 4 + SUBSCRIBE_LEN],
    got: usize,
    since: Instant,
    who: String,
}

/// A subscriber and its backlog.
#[derive(Debug)]
struct Sub {
    fd: OwnedFd,
    /// Its epoll data word: its serial and its slot.
    token: u64,
    queue: VecDeque<Entry>,
    /// Bytes of the front entry's frame already written.
    sent: usize,
    /// Payload bytes in `queue`.
    bytes: usize,
    /// Watched for room (`EPOLLOUT`) by the service thread, which then
    /// writes its backlog. Always so while the backlog is not empty.
    watched: bool,
    who: String,
}

/// Why a subscriber is let go.
enum Gone {
    /// It closed, reset, or died: no warning.
    Left,
    /// It broke the protocol: a warning.
    Fault(String),
}

impl Sub {
    fn full(&self, depth: usize) -> bool {
        self.queue.len() >= depth || (self.bytes >= BACKLOG_BYTES && !self.queue.is_empty())
    }

    /// Queues `msg`; under drop-oldest, a full backlog first drops its
    /// oldest entries not started on the wire, their count carried by the
    /// next entry.
    fn push(&mut self, msg: &Arc<[u8]>, overflow: Overflow, depth: usize) {
        let mut carry = 0u64;
        if overflow == Overflow::DropOldest {
            let victim = usize::from(self.sent > 0);
            while self.full(depth) && self.queue.len() > victim {
                let v = self.queue.remove(victim).expect("checked length");
                self.bytes -= v.msg.len();
                let lost = v.lost().saturating_add(1);
                match self.queue.get_mut(victim) {
                    Some(next) => next.add_lost(lost),
                    None => carry = carry.saturating_add(lost),
                }
            }
        }
        self.bytes += msg.len();
        self.queue.push_back(Entry::new(carry, msg.clone()));
    }

    /// Writes what the socket takes now. Returns the bytes written.
    fn flush(&mut self) -> std::result::Result<usize, Errno> {
        let mut total = 0;
        while !self.queue.is_empty() {
            let mut iov = [IoSlice::new(&[]); 2 * BATCH];
            let mut n = 0;
            for (i, e) in self.queue.iter().take(BATCH).enumerate() {
                let skip = if i == 0 { self.sent } else { 0 };
                if skip < MSG_HEAD {
                    iov[n] = IoSlice::new(&e.head[skip..]);
                    n += 1;
                }
                let from = skip.saturating_sub(MSG_HEAD);
                if from < e.msg.len() {
                    iov[n] = IoSlice::new(&e.msg[from..]);
                    n += 1;
                }
            }
            let written = match sys::net::send(self.fd.as_fd(), &iov[..n], &[], true) {
                Ok(w) => w,
                Err(Errno::AGAIN) => return Ok(total),
                Err(e) => return Err(e),
            };
            total += written;
            let mut left = self.sent + written;
            while let Some(front) = self.queue.front() {
                if left < front.frame_len() {
                    break;
                }
                left -= front.frame_len();
                self.bytes -= front.msg.len();
                self.queue.pop_front();
            }
            self.sent = left;
        }
        Ok(total)
    }

    /// Writes what the socket takes now, then has the service thread watch
    /// the socket for room if a backlog is left (one `epoll_ctl`, only
    /// then). Returns the bytes written; an error lets the subscriber go.
    fn flush_and_watch(&mut self, epoll: BorrowedFd<'_>) -> std::result::Result<usize, Gone> {
        let n = self.flush().map_err(|_| Gone::Left)?;
        if !self.queue.is_empty() && !self.watched {
            self.watch(epoll, true)?;
        }
        Ok(n)
    }

    /// Turns the service thread's watch for room on or off.
    fn watch(&mut self, epoll: BorrowedFd<'_>, on: bool) -> std::result::Result<(), Gone> {
        sys::io::epoll_modify_rw(epoll, self.fd.as_fd(), self.token, on).map_err(|e| {
            Gone::Fault(format!("{}: cannot watch its socket ({}): dropped", self.who, crate::error::errno_name(e)))
        })?;
        self.watched = on;
        Ok(())
    }

    /// Reads what the subscriber sent after subscribing, which must be
    /// nothing: its end (closed, reset) or a fault.
    fn check_input(&self) -> Option<Gone> {
        let mut scratch = [0u8; 64];
        match sys::net::recv(self.fd.as_fd(), &mut [IoSliceMut::new(&mut scratch)], true, false) {
            Ok(r) if r.bytes == 0 => Some(Gone::Left),
            Ok(r) => Some(Gone::Fault(format!(
                "{} sent {} bytes after subscribing (a subscriber sends only its subscribe frame): dropped",
                self.who, r.bytes
            ))),
            Err(Errno::AGAIN) => None,
            Err(_) => Some(Gone::Left),
        }
    }
}

/// What a pending connection's bytes came to.
enum Handshake {
    /// More bytes are needed.
    Waiting,
    /// Accepted, asking for this many kept messages.
    Subscribe(u64),
    /// Let go; a warning when it broke the protocol.
    Drop(Option<String>),
}

/// Epoll data of the service thread's bell (the publisher is dropped).
const BELL: u64 = LISTENER - 1;
/// Set in the epoll data of a pending connection.
const PENDING: u64 = 1 << 62;

/// An epoll data word: a connection's serial (so that an event that was
/// waiting while its slot changed hands is told apart) and its slot.
fn token(serial: u64, slot: usize) -> u64 {
    ((serial & 0x3fff_ffff) << 32) | (slot as u64 & 0xffff_ffff)
}

fn slot_of(token: u64) -> usize {
    (token & 0xffff_ffff) as usize
}

/// Values in numbered slots, a slot reused once free.
#[derive(Debug)]
struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slots<T> {
    fn new() -> Self {
        Slots { items: Vec::new(), free: Vec::new(), len: 0 }
    }

    /// The slot the next [`Slots::put`] fills.
    fn vacant(&self) -> usize {
        self.free.last().copied().unwrap_or(self.items.len())
    }

    fn put(&mut self, item: T) -> usize {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.items.push(None);
                self.items.len() - 1
            }
        };
        self.items[slot] = Some(item);
        self.len += 1;
        slot
    }

    fn take(&mut self, slot: usize) -> Option<T> {
        let item = self.items.get_mut(slot)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(item)
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.items.get_mut(slot)?.as_mut()
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().flatten()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.items.iter_mut().enumerate().filter_map(|(i, s)| s.as_mut().map(|s| (i, s)))
    }
}

/// The publisher of a `unix:` or `tcp:` topic: the publishing side of the
/// state it shares with its service thread.
#[derive(Debug)]
pub(crate) struct FanoutPublisher {
    shared: Arc<Shared>,
    service: Option<std::thread::JoinHandle<()>>,
    max_message: usize,
    name: String,
}

/// What the publisher and its service thread share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled by the service thread, when some thread waits on it
    /// ([`State::waiters`]), after it wrote backlogs, admitted or let go a
    /// subscriber, or stopped: a publish blocked under `overflow=block`,
    /// `wait_for_subscribers` and the drop's drain look again.
    changed: Condvar,
    /// The service thread's set: the listener, the bell, every pending
    /// connection and every subscriber (for room only while it has a
    /// backlog). Level-triggered, so that turning on the watch for room of
    /// a socket that has some wakes the thread at once.
    epoll: OwnedFd,
    /// An eventfd in `epoll`: rung when the publisher is dropped.
    bell: OwnedFd,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits on `changed` until `wait` runs out (which the caller checks).
    fn wait<'a>(&self, mut st: MutexGuard<'a, State>, wait: Wait) -> MutexGuard<'a, State> {
        st.waiters += 1;
        let mut st = match wait.remaining() {
            None => self.changed.wait(st).unwrap_or_else(|p| p.into_inner()),
            Some(left) => self.changed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0,
        };
        st.waiters -= 1;
        st
    }
}

/// The topic's state, under [`Shared::state`].
#[derive(Debug)]
struct State {
    acceptor: Acceptor,
    tcp: bool,
    topic: TopicConfig,
    depth: usize,
    history: VecDeque<Arc<[u8]>>,
    pending: Slots<Pending>,
    subs: Slots<Sub>,
    name: String,
    warnings: Vec<String>,
    /// Warnings not kept (past [`MAX_WARNINGS`]).
    unkept: usize,
    /// Connections accepted so far, to name them in warnings.
    accepted: u64,
    /// Threads waiting on [`Shared::changed`].
    waiters: usize,
    /// When the service thread last wrote backlog bytes (the drop's drain
    /// gives up [`DRAIN_IDLE`] after it).
    progress: Instant,
    /// Why the service thread stopped, if it stopped on an error.
    broken: Option<String>,
}

impl FanoutPublisher {
    /// Listens and starts the service thread.
    pub(crate) fn bind(ep: &Endpoint, opts: &Options, topic: TopicConfig) -> Result<Self> {
        let listener = Listener::bind_with(ep, opts)?;
        let name = subscriber_name(listener.local_endpoint());
        let at = name.as_str();
        let os = |op: &'static str| move |e| Error::os(op, at, e);
        let epoll = sys::io::epoll_create().map_err(os("epoll_create"))?;
        let bell = sys::io::eventfd().map_err(os("eventfd"))?;
        sys::io::epoll_add(epoll.as_fd(), bell.as_fd(), BELL).map_err(os("epoll_ctl"))?;
        let acceptor = Acceptor::new(listener, epoll.as_fd())?;
        let state = State {
            acceptor,
            tcp: matches!(ep.kind(), EndpointKind::Tcp { .. }),
            topic,
            depth: depth(topic.history),
            history: VecDeque::new(),
            pending: Slots::new(),
            subs: Slots::new(),
            name: name.clone(),
            warnings: Vec::new(),
            unkept: 0,
            accepted: 0,
            waiters: 0,
            progress: Instant::now(),
            broken: None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            epoll,
            bell,
            stop: AtomicBool::new(false),
        });
        let service = std::thread::Builder::new()
            .name("ipckit-pub".into())
            .spawn({
                let shared = shared.clone();
                move || serve(&shared)
            })
            .map_err(|e| Error::new(ErrorKind::Io, "bind", &name, format!("cannot start the service thread: {e}")))?;
        let max_message = opts.max_message.min(u32::MAX as usize - 8);
        Ok(FanoutPublisher { shared, service: Some(service), max_message, name })
    }

    /// `Ok(false)`: not published within `wait`.
    pub(crate) fn publish(&mut self, msg: &[u8], wait: Wait) -> Result<bool> {
        check_len(&[IoSlice::new(msg)], self.max_message, Limit::Maximum, "publish", &self.name)?;
        let sh = &*self.shared;
        let mut st = sh.lock();
        if st.topic.overflow == Overflow::Block {
            let mut looked = false;
            while st.any_full() {
                if let Some(why) = &st.broken {
                    return Err(Error::new(ErrorKind::Io, "publish", &self.name, why.clone()));
                }
                if !looked {
                    // One look of its own: the sockets may have room by now.
                    looked = true;
                    st.flush_full(sh.epoll.as_fd());
                    continue;
                }
                if wait.remaining() == Some(Duration::ZERO) {
                    return Ok(false);
                }
                st = sh.wait(st, wait);
            }
        }
        if st.subs.len == 0 && st.topic.history == 0 {
            return Ok(true);
        }
        let msg: Arc<[u8]> = Arc::from(msg);
        if st.topic.history > 0 {
            if st.history.len() as u64 >= st.topic.history {
                st.history.pop_front();
            }
            st.history.push_back(msg.clone());
        }
        st.deliver(&msg, sh.epoll.as_fd());
        Ok(true)
    }

    pub(crate) fn subscribers(&mut self) -> usize {
        self.shared.lock().subs.len
    }

    /// `Ok(false)`: not that many within `wait`.
    pub(crate) fn wait_for_subscribers(&mut self, n: usize, wait: Wait) -> Result<bool> {
        let sh = &*self.shared;
        let mut st = sh.lock();
        loop {
            if st.subs.len >= n {
                return Ok(true);
            }
            if let Some(why) = &st.broken {
                return Err(Error::new(ErrorKind::Io, "wait for subscribers", &self.name, why.clone()));
            }
            if wait.remaining() == Some(Duration::ZERO) {
                return Ok(false);
            }
            st = sh.wait(st, wait);
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().warnings)
    }
}

impl Drop for FanoutPublisher {
    /// Lets the service thread write the backlogs while subscribers take
    /// bytes (giving up after [`DRAIN_IDLE`] without progress), stops it,
    /// then closes every connection (the last reference to the state).
    fn drop(&mut self) {
        let sh = &*self.shared;
        {
            let mut st = sh.lock();
            st.progress = Instant::now();
            while st.broken.is_none() && st.subs.iter().any(|s| !s.queue.is_empty()) {
                let deadline = st.progress + DRAIN_IDLE;
                if Instant::now() >= deadline {
                    break;
                }
                st = sh.wait(st, Wait::Until(deadline));
            }
        }
        sh.stop.store(true, Ordering::Release);
        let _ = sys::io::eventfd_signal(sh.bell.as_fd());
        if let Some(service) = self.service.take() {
            let _ = service.join();
        }
    }
}

/// The service thread: waits on the epoll set, and serves what is ready,
/// under the state's lock, until the publisher is dropped.
fn serve(sh: &Shared) {
    let mut ready = Vec::with_capacity(EVENTS);
    let mut wait = Wait::Forever;
    while !sh.stop.load(Ordering::Acquire) {
        if let Err(e) = sys::io::epoll_wait_ready(sh.epoll.as_fd(), &mut ready, EVENTS, wait) {
            let mut st = sh.lock();
            let why = format!("the publisher's service thread stopped: epoll_wait: {}", crate::error::errno_name(e));
            st.warn(why.clone());
            st.broken = Some(why);
            sh.changed.notify_all();
            return;
        }
        if sh.stop.load(Ordering::Acquire) {
            return;
        }
        let mut st = sh.lock();
        let changed = st.serve(&ready, sh.epoll.as_fd());
        if changed && st.waiters > 0 {
            sh.changed.notify_all();
        }
        // A pending connection's deadline bounds the next wait.
        wait = st.pending.iter().map(|p| p.since + HANDSHAKE).min().map_or(Wait::Forever, Wait::Until);
    }
}

impl State {
    fn warn(&mut self, text: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(format!("{}: {text}", self.name));
        } else {
            self.unkept += 1;
        }
    }

    fn any_full(&self) -> bool {
        let depth = self.depth;
        self.subs.iter().any(|s| s.full(depth))
    }

    /// Appends `msg` to every backlog and writes it where the socket has
    /// room (a backlog the service thread watches is left to it): one
    /// `sendmsg` per subscriber, none for one already behind.
    fn deliver(&mut self, msg: &Arc<[u8]>, epoll: BorrowedFd<'_>) {
        let (overflow, depth) = (self.topic.overflow, self.depth);
        let mut gone = Vec::new();
        for (i, s) in self.subs.iter_mut() {
            s.push(msg, overflow, depth);
            if !s.watched {
                if let Err(why) = s.flush_and_watch(epoll) {
                    gone.push((i, why));
                }
            }
        }
        for (i, why) in gone {
            self.forget(i, why, epoll);
        }
    }

    /// Writes the full backlogs as far as the sockets take.
    fn flush_full(&mut self, epoll: BorrowedFd<'_>) {
        let depth = self.depth;
        let mut gone = Vec::new();
        for (i, s) in self.subs.iter_mut() {
            if s.full(depth) {
                if let Err(why) = s.flush_and_watch(epoll) {
                    gone.push((i, why));
                }
            }
        }
        for (i, why) in gone {
            self.forget(i, why, epoll);
        }
    }

    fn forget(&mut self, slot: usize, why: Gone, epoll: BorrowedFd<'_>) {
        // Closing the socket takes it out of the epoll set.
        drop(self.subs.take(slot));
        self.acceptor.closed(epoll);
        if let Gone::Fault(text) = why {
            self.warn(text);
        }
    }

    /// One round of the service thread over what epoll reported: hang-ups
    /// and room of subscribers, subscribe frames, expired handshakes, new
    /// connections. Returns whether a waiter should look again.
    fn serve(&mut self, ready: &[EpollReady], epoll: BorrowedFd<'_>) -> bool {
        let mut changed = false;
        let mut accept = false;
        for ev in ready {
            match ev.data {
                LISTENER => accept = true,
                // The drop: the loop sees `stop`.
                BELL => {}
                t if t & PENDING != 0 => changed |= self.pending_ready(t, epoll),
                t => changed |= self.sub_ready(t, ev, epoll),
            }
        }
        self.expire_pending(epoll);
        if accept {
            self.accept(epoll);
        }
        if self.unkept > 0 && self.warnings.len() < MAX_WARNINGS {
            let n = std::mem::take(&mut self.unkept);
            self.warn(format!("{n} more warnings were not kept"));
        }
        changed
    }

    /// A subscriber's socket is readable (it left, or sent what it must
    /// not), hung up, or has room for its backlog.
    fn sub_ready(&mut self, token: u64, ev: &EpollReady, epoll: BorrowedFd<'_>) -> bool {
        let slot = slot_of(token);
        let Some(s) = self.subs.get_mut(slot).filter(|s| s.token == token) else { return false };
        if ev.readable || ev.hangup {
            if let Some(gone) = s.check_input() {
                self.forget(slot, gone, epoll);
                return true;
            }
        }
        if !(ev.writable || ev.hangup) {
            return false;
        }
        let result = s.flush().map_err(|_| Gone::Left).and_then(|n| {
            if s.queue.is_empty() && s.watched {
                s.watch(epoll, false)?;
            }
            Ok(n)
        });
        match result {
            Ok(0) => false,
            Ok(_) => {
                self.progress = Instant::now();
                true
            }
            Err(why) => {
                self.forget(slot, why, epoll);
                true
            }
        }
    }

    /// A pending connection is readable: its subscribe frame, or its end.
    fn pending_ready(&mut self, token: u64, epoll: BorrowedFd<'_>) -> bool {
        let slot = slot_of(token);
        if self.pending.get_mut(slot).is_none_or(|p| p.token != token) {
            return false;
        }
        match self.read_pending(slot) {
            Handshake::Waiting => false,
            Handshake::Drop(why) => {
                drop(self.pending.take(slot));
                self.acceptor.closed(epoll);
                if let Some(why) = why {
                    self.warn(why);
                }
                false
            }
            Handshake::Subscribe(k) => {
                let p = self.pending.take(slot).expect("looked at");
                self.admit(p, k, epoll)
            }
        }
    }

    /// Drops the connections that sent no subscribe frame in time.
    fn expire_pending(&mut self, epoll: BorrowedFd<'_>) {
        let now = Instant::now();
        let expired: Vec<usize> =
            self.pending.iter_mut().filter(|(_, p)| now >= p.since + HANDSHAKE).map(|(i, _)| i).collect();
        for slot in expired {
            let p = self.pending.take(slot).expect("listed");
            let why = format!("{} sent no subscribe frame within {} s: dropped", p.who, HANDSHAKE.as_secs());
            drop(p);
            self.acceptor.closed(epoll);
            self.warn(why);
        }
    }

    /// Accepts the waiting connections, each pending until it subscribes.
    fn accept(&mut self, epoll: BorrowedFd<'_>) {
        let live = self.pending.len + self.subs.len;
        let (pending, accepted, tcp) = (&mut self.pending, &mut self.accepted, self.tcp);
        let mut failed = Vec::new();
        let r = self.acceptor.accept_all(epoll, live, |fd| {
            if tcp {
                // Without TCP_NODELAY small messages wait for Nagle.
                let _ = tcp::accepted(&fd);
            }
            *accepted += 1;
            let who = match sys::net::peer_credentials(fd.as_fd()) {
                Ok(c) => format!("subscriber {} (pid {})", accepted, Credentials::from(c).pid),
                Err(_) => format!("subscriber {accepted}"),
            };
            let token = PENDING | token(*accepted, pending.vacant());
            match sys::io::epoll_add_rw(epoll, fd.as_fd(), token, false) {
                Ok(()) => {
                    pending.put(Pending { fd, token, buf: [0; 4 + SUBSCRIBE_LEN], got: 0, since: Instant::now(), who });
                }
                Err(e) => failed.push(format!("{who}: epoll_ctl: {}: dropped", crate::error::errno_name(e))),
            }
            Ok(())
        });
        if let Err(e) = r {
            self.warn(e.to_string());
        }
        for w in failed {
            self.warn(w);
        }
        for w in self.acceptor.take_warnings() {
            self.warn(w);
        }
    }

    /// Reads what a pending connection sent, exactly up to the end of its
    /// subscribe frame, and checks it.
    fn read_pending(&mut self, i: usize) -> Handshake {
        let history = self.topic.history;
        let Some(p) = self.pending.get_mut(i) else { return Handshake::Waiting };
        let r = sys::net::recv(p.fd.as_fd(), &mut [IoSliceMut::new(&mut p.buf[p.got..])], true, false);
        match r {
            Ok(r) if r.bytes == 0 => {
                return Handshake::Drop(Some(format!("{} closed before subscribing: dropped", p.who)));
            }
            Ok(r) => p.got += r.bytes,
            Err(Errno::AGAIN) => return Handshake::Waiting,
            Err(e) => {
                return Handshake::Drop(Some(format!(
                    "{} failed before subscribing ({}): dropped",
                    p.who,
                    crate::error::errno_name(e)
                )));
            }
        }
        let bad = |why: String| Handshake::Drop(Some(format!("{}: malformed subscribe frame: {why}: dropped", p.who)));
        if p.got >= 4 {
            let len = u32::from_le_bytes(p.buf[..4].try_into().expect("4 bytes"));
            if len as usize != SUBSCRIBE_LEN {
                return bad(format!("length {len}, not {SUBSCRIBE_LEN}"));
            }
        }
        if p.got >= 14 && &p.buf[4..14] != SUB_MAGIC {
            return bad("no IPCKIT-SUB magic".into());
        }
        if p.got < p.buf.len() {
            return Handshake::Waiting;
        }
        let version = p.buf[14];
        let asked = u64::from_le_bytes(p.buf[15..].try_into().expect("8 bytes"));
        if version != VERSION {
            let text = format!("wire version {version} is not supported (this publisher speaks version {VERSION})");
            let _ =
                sys::net::send(p.fd.as_fd(), &[IoSlice::new(&answer_frame(REFUSED_VERSION, reason(&text)))], &[], true);
            return Handshake::Drop(Some(format!("{}: refused: {text}", p.who)));
        }
        if asked > history {
            let text = format!(
                "history {asked} asked for, but the topic keeps at most {} messages (?history= on the publisher's endpoint)",
                history
            );
            let _ =
                sys::net::send(p.fd.as_fd(), &[IoSlice::new(&answer_frame(REFUSED_HISTORY, reason(&text)))], &[], true);
            return Handshake::Drop(None);
        }
        Handshake::Subscribe(asked)
    }

    /// Answers a subscription and makes it a subscriber, its backlog
    /// starting with the last `asked` kept messages. Returns whether it
    /// became one.
    fn admit(&mut self, p: Pending, asked: u64, epoll: BorrowedFd<'_>) -> bool {
        let kept = (asked as usize).min(self.history.len());
        let answer = answer_frame(ACCEPTED, &(kept as u64).to_le_bytes());
        // A new connection's socket buffer always has room for 24 bytes.
        match sys::net::send(p.fd.as_fd(), &[IoSlice::new(&answer)], &[], true) {
            Ok(n) if n == answer.len() => {}
            _ => {
                drop(p);
                self.acceptor.closed(epoll);
                return false;
            }
        }
        let serial = (p.token >> 32) & 0x3fff_ffff;
        let token = token(serial, self.subs.vacant());
        let mut sub = Sub { fd: p.fd, token, queue: VecDeque::new(), sent: 0, bytes: 0, watched: false, who: p.who };
        for m in self.history.iter().skip(self.history.len() - kept) {
            sub.bytes += m.len();
            sub.queue.push_back(Entry::new(0, m.clone()));
        }
        let written = sub.flush();
        // Its data word becomes a subscriber's; watched for room if history
        // is left to write.
        let watched = written.is_ok() && !sub.queue.is_empty();
        let moved = sys::io::epoll_modify_rw(epoll, sub.fd.as_fd(), token, watched);
        match (written, moved) {
            (Err(_), _) => {
                drop(sub);
                self.acceptor.closed(epoll);
                false
            }
            (Ok(_), Err(e)) => {
                let why = format!("{}: epoll_ctl: {}: dropped", sub.who, crate::error::errno_name(e));
                drop(sub);
                self.acceptor.closed(epoll);
                self.warn(why);
                false
            }
            (Ok(_), Ok(())) => {
                sub.watched = watched;
                self.subs.put(sub);
                true
            }
        }
    }
}

/// What reading more brought.
enum More {
    Data,
    NotYet,
    Eof,
}

/// A subscriber of a `unix:` or `tcp:` topic.
#[derive(Debug)]
pub(crate) struct FanoutSubscriber {
    fd: OwnedFd,
    name: String,
    max: usize,
    /// Bytes read: `buf[start..end]` not yet consumed. Grows with the
    /// bytes that arrive (never with what a frame announces), up to one
    /// frame of the maximum message.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of a message over the maximum still to skip.
    skip: usize,
    /// Lost counts of skipped messages, for the next message.
    carry: u64,
    eof: bool,
    /// A malformed frame came: every receive is `Corrupt` from then on.
    broken: Option<String>,
    creds: Option<Credentials>,
}

/// The first size of a subscriber's buffer.
const FIRST_BUF: usize = 64 * 1024;

impl FanoutSubscriber {
    pub(crate) fn connect(ep: &Endpoint, opts: &Options, history: u64, wait: Wait) -> Result<Self> {
        let name = ep.to_string();
        let conn = until_peer_ready(wait, "subscribe", ep, |w| Connection::connect_wait(ep, opts, w))?;
        let fd: OwnedFd = conn.into();
        let creds = sys::net::peer_credentials(fd.as_fd()).ok().map(Credentials::from);
        let mut sub = FanoutSubscriber {
            fd,
            name,
            max: opts.max_message.min(u32::MAX as usize - 8),
            buf: vec![0; FIRST_BUF],
            start: 0,
            end: 0,
            skip: 0,
            carry: 0,
            eof: false,
            broken: None,
            creds,
        };
        let answer_wait = match wait {
            Wait::Never => Wait::timeout(ANSWER_WAIT),
            other => other,
        };
        sub.send_all(&subscribe_frame(history), answer_wait)?;
        sub.answer(history, answer_wait)?;
        Ok(sub)
    }

    fn os(&self, op: &'static str, e: Errno) -> Error {
        Error::os(op, &self.name, e)
    }

    fn corrupt(&mut self, why: String) -> Error {
        self.broken = Some(why.clone());
        Error::new(ErrorKind::Corrupt, "recv", &self.name, why)
    }

    fn send_all(&self, mut bytes: &[u8], wait: Wait) -> Result<()> {
        while !bytes.is_empty() {
            match sys::net::send(self.fd.as_fd(), &[IoSlice::new(bytes)], &[], true) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::AGAIN) => {
                    if !sys::io::poll(self.fd.as_fd(), sys::io::Ready::Write, wait)
                        .map_err(|e| self.os("subscribe", e))?
                    {
                        return Err(Error::new(ErrorKind::TimedOut, "subscribe", &self.name, "no room to subscribe"));
                    }
                }
                Err(e) => return Err(self.os("subscribe", e)),
            }
        }
        Ok(())
    }

    /// Reads and checks the publisher's answer.
    fn answer(&mut self, asked: u64, wait: Wait) -> Result<()> {
        let name = self.name.clone();
        let err = |kind, why: String| Error::new(kind, "subscribe", &name, why);
        let len = loop {
            if let Some(len) = self.frame_len() {
                if !(ANSWER_HEAD..=ANSWER_HEAD + MAX_REASON).contains(&len) {
                    return Err(err(ErrorKind::Corrupt, format!("the publisher's answer has length {len}")));
                }
                if self.end - self.start >= 4 + len {
                    break len;
                }
            }
            match self.read_more(4 + ANSWER_HEAD + MAX_REASON, wait)? {
                More::Data => {}
                More::NotYet => {
                    return Err(err(
                        ErrorKind::TimedOut,
                        "the publisher did not answer within the timeout (its service thread answers at once: the \
                         publisher is stopped or overloaded)"
                            .into(),
                    ));
                }
                More::Eof => {
                    return Err(err(
                        ErrorKind::Disconnected,
                        "the publisher closed the connection before answering".into(),
                    ));
                }
            }
        };
        let a = &self.buf[self.start + 4..self.start + 4 + len];
        if &a[..10] != PUB_MAGIC || a[10] != VERSION {
            return Err(err(ErrorKind::Corrupt, "the publisher's answer has no IPCKIT-PUB version 1 header".into()));
        }
        let (code, rest) = (a[11], &a[12..]);
        let text = || String::from_utf8_lossy(rest).into_owned();
        let result = match code {
            ACCEPTED if rest.len() == 8 => {
                let kept = u64::from_le_bytes(rest.try_into().expect("8 bytes"));
                if kept > asked {
                    Err(err(
                        ErrorKind::Corrupt,
                        format!("the publisher announces {kept} kept messages, {asked} were asked for"),
                    ))
                } else {
                    Ok(())
                }
            }
            REFUSED_HISTORY => Err(err(ErrorKind::Invalid, format!("refused by the publisher: {}", text()))),
            REFUSED_VERSION => Err(err(ErrorKind::Unsupported, format!("refused by the publisher: {}", text()))),
            _ => {
                Err(err(ErrorKind::Corrupt, format!("the publisher's answer has code {code} and {} bytes", rest.len())))
            }
        };
        self.start += 4 + len;
        result
    }

    /// The length of the frame at `start`, once its 4 bytes are there.
    fn frame_len(&self) -> Option<usize> {
        (self.end - self.start >= 4)
            .then(|| u32::from_le_bytes(self.buf[self.start..self.start + 4].try_into().expect("4 bytes")) as usize)
    }

    /// Reads what the socket has (waiting at most `wait`), making room for
    /// a frame of `want` bytes: the buffer grows only when it is full of
    /// bytes that arrived.
    fn read_more(&mut self, want: usize, wait: Wait) -> Result<More> {
        if self.eof {
            return Ok(More::Eof);
        }
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).min(want.max(self.buf.len() + 1));
                self.buf.resize(grown, 0);
            }
        }
        loop {
            let r = sys::net::recv(self.fd.as_fd(), &mut [IoSliceMut::new(&mut self.buf[self.end..])], true, false);
            match r {
                Ok(r) if r.bytes == 0 => {
                    self.eof = true;
                    return Ok(More::Eof);
                }
                Ok(r) => {
                    self.end += r.bytes;
                    return Ok(More::Data);
                }
                Err(Errno::CONNRESET) => {
                    self.eof = true;
                    return Ok(More::Eof);
                }
                Err(Errno::AGAIN) => {
                    if matches!(wait, Wait::Never) {
                        return Ok(More::NotYet);
                    }
                    if !sys::io::poll(self.fd.as_fd(), sys::io::Ready::Read, wait).map_err(|e| self.os("recv", e))? {
                        return Ok(More::NotYet);
                    }
                }
                Err(e) => return Err(self.os("recv", e)),
            }
        }
    }

    pub(crate) fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        if let Some(why) = &self.broken {
            return Err(Error::new(ErrorKind::Corrupt, "recv", &self.name, why.clone()));
        }
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.end - self.start);
                self.start += n;
                self.skip -= n;
            }
            if self.skip == 0 {
                if let Some(got) = self.take_frame()? {
                    return Ok(Got::Msg(got));
                }
            }
            let want = self.frame_len().map_or(MSG_HEAD, |l| l.saturating_add(4)).min(4 + 8 + self.max);
            match self.read_more(want, wait)? {
                More::Data => {}
                More::NotYet => return Ok(Got::NotYet),
                More::Eof if self.start == self.end && self.skip == 0 => return Ok(Got::Eof),
                More::Eof => {
                    return Err(Error::new(
                        ErrorKind::Disconnected,
                        "recv",
                        &self.name,
                        format!(
                            "the publisher is gone, in the middle of a message ({} bytes of it arrived): every whole \
                             message before it was delivered",
                            self.end - self.start
                        ),
                    ));
                }
            }
        }
    }

    /// The message at `start`, if all of it is there.
    fn take_frame(&mut self) -> Result<Option<Message>> {
        let Some(len) = self.frame_len() else { return Ok(None) };
        if len < 8 {
            return Err(self.corrupt(format!("a message frame of length {len} from the publisher (at least 8)")));
        }
        let avail = self.end - self.start;
        if avail < MSG_HEAD {
            return Ok(None);
        }
        let at = self.start;
        let lost = u64::from_le_bytes(self.buf[at + 4..at + 12].try_into().expect("8 bytes"));
        let size = len - 8;
        if size > self.max {
            // Skipped, so that the stream stays in step; what was lost
            // before it goes with the next message.
            self.carry = self.carry.saturating_add(lost);
            self.skip = 4 + len;
            return Err(Error::new(
                ErrorKind::TooLarge,
                "recv",
                &self.name,
                format!("message of {size} bytes exceeds the maximum of {} bytes: skipped", self.max),
            ));
        }
        if avail < 4 + len {
            return Ok(None);
        }
        let data = self.buf[at + MSG_HEAD..at + 4 + len].to_vec();
        self.start += 4 + len;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        let lost = lost.saturating_add(std::mem::take(&mut self.carry));
        Ok(Some(Message { data, meta: Meta { lost, creds: self.creds, ..Meta::default() } }))
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_bytes() {
        let sub = subscribe_frame(2);
        assert_eq!(
            sub.as_slice(),
            [0x13, 0, 0, 0, b'I', b'P', b'C', b'K', b'I', b'T', b'-', b'S', b'U', b'B', 1, 2, 0, 0, 0, 0, 0, 0, 0]
        );
        let acc = answer_frame(ACCEPTED, &2u64.to_le_bytes());
        assert_eq!(acc[..4], [0x14, 0, 0, 0]);
        assert_eq!(&acc[4..14], PUB_MAGIC);
        assert_eq!(acc[14..], [1, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        let e = Entry::new(0, Arc::from(&b"hi"[..]));
        assert_eq!(e.head, [0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn drop_oldest_counts_exactly() {
        let a = crate::sys::net::socket(crate::sys::net::Family::UNIX, crate::sys::net::Type::STREAM).unwrap();
        let mut s =
            Sub { fd: a, token: 0, queue: VecDeque::new(), sent: 0, bytes: 0, watched: false, who: String::new() };
        let depth = 4;
        for i in 0..10u8 {
            s.push(&Arc::from(&[i][..]), Overflow::DropOldest, depth);
        }
        let kept: Vec<(u8, u64)> = s.queue.iter().map(|e| (e.msg[0], e.lost())).collect();
        assert_eq!(kept, [(6, 6), (7, 0), (8, 0), (9, 0)]);
        // A started front is kept; the next one goes.
        s.sent = 3;
        s.push(&Arc::from(&[10][..]), Overflow::DropOldest, depth);
        let kept: Vec<(u8, u64)> = s.queue.iter().map(|e| (e.msg[0], e.lost())).collect();
        assert_eq!(kept, [(6, 6), (8, 1), (9, 0), (10, 0)]);
    }

    #[test]
    fn subscriber_names_leave_the_topic_options_out() {
        let ep: Endpoint = "unix:@t?overflow=drop-oldest&history=5".parse().unwrap();
        assert_eq!(subscriber_name(&ep), "unix:@t");
        let ep: Endpoint = "unix:/tmp/x?mode=0660&history=5".parse().unwrap();
        assert_eq!(subscriber_name(&ep), "unix:/tmp/x?mode=0660");
    }
}
