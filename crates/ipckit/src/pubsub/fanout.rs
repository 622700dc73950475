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
//! - **No thread.** A publisher serves its subscribers (accepts, answers,
//!   writes backlogs, notices the dead) inside its own calls: `publish`
//!   and its forms, `subscribers`, `wait_for_subscribers`, and on drop.
//!   A subscriber connecting while the publisher does none of these waits
//!   for its answer until it does.
//! - **Backlogs.** Each subscriber has a backlog in user space, written
//!   with non-blocking `sendmsg` (`MSG_NOSIGNAL`: a dead subscriber is an
//!   error, never `SIGPIPE`) of up to 64 frames at once, on every publish
//!   and whenever the publisher waits. A backlog is **full** at
//!   [`depth`] messages (`max(history, 64)`) or [`BACKLOG_BYTES`] bytes of
//!   payload (a single larger message still fits an empty backlog). Each
//!   message is held once however many backlogs and the history hold it
//!   (`Arc`), so the publisher holds at most what the fullest backlog and
//!   the history need, beside the kernel's socket buffers.
//! - **`overflow=block`:** a publish waits (polling every subscriber's
//!   socket for room or hang-up) while any backlog is full; `try_publish`
//!   is `Full` then. A subscriber that dies is seen as its socket hangs up
//!   and no longer holds the publisher back.
//! - **`overflow=drop-oldest`:** a publish never waits; a full backlog
//!   drops its oldest messages not yet started on the wire, and the next
//!   message the subscriber gets carries their number (exact).
//! - **History:** the last `history=N` messages are kept (whatever their
//!   size: N is the bound), and a subscriber asking for K ≤ N gets the last
//!   K of them first; K > N is refused, and the subscriber's connect is
//!   `Invalid`, naming N.
//! - **Drop:** the publisher writes what its backlogs hold, for as long
//!   as some subscriber takes bytes within 1 s, then closes every
//!   connection: subscribers read what reached them, then `Disconnected`.
//!   A publisher that is killed loses its backlogs; what reached the
//!   kernel still arrives.

use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TopicConfig;
use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Credentials, Limit, Message, Meta, check_len};
use crate::options::{Options, Overflow};
use crate::socket::server::Acceptor;
use crate::socket::{Connection, Listener, tcp};
use crate::sys::io::Polled;
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
/// this long (the publisher answers while it publishes or waits).
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Between two looks at new connections and hang-ups while publishing.
const SERVICE_EVERY: Duration = Duration::from_millis(1);
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
    buf: [u8; 4 + SUBSCRIBE_LEN],
    got: usize,
    since: Instant,
    who: String,
}

/// A subscriber and its backlog.
#[derive(Debug)]
struct Sub {
    fd: OwnedFd,
    queue: VecDeque<Entry>,
    /// Bytes of the front entry's frame already written.
    sent: usize,
    /// Payload bytes in `queue`.
    bytes: usize,
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

/// The publisher of a `unix:` or `tcp:` topic.
#[derive(Debug)]
pub(crate) struct FanoutPublisher {
    /// Boxed: a publisher is a few hundred bytes, and the public type's
    /// enum should not be that large for every flavor.
    topic: Box<Topic>,
}

impl FanoutPublisher {
    pub(crate) fn bind(ep: &Endpoint, opts: &Options, topic: TopicConfig) -> Result<Self> {
        Ok(FanoutPublisher { topic: Box::new(Topic::bind(ep, opts, topic)?) })
    }

    /// `Ok(false)`: not published within `wait`.
    pub(crate) fn publish(&mut self, msg: &[u8], wait: Wait) -> Result<bool> {
        self.topic.publish(msg, wait)
    }

    pub(crate) fn subscribers(&mut self) -> usize {
        self.topic.subscribers()
    }

    /// `Ok(false)`: not that many within `wait`.
    pub(crate) fn wait_for_subscribers(&mut self, n: usize, wait: Wait) -> Result<bool> {
        self.topic.wait_for_subscribers(n, wait)
    }

    pub(crate) fn name(&self) -> &str {
        &self.topic.name
    }

    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.topic.warnings)
    }
}

/// The publisher's state.
#[derive(Debug)]
struct Topic {
    acceptor: Acceptor,
    /// Holds the listener only: the acceptor's set, polled with the rest.
    epoll: OwnedFd,
    tcp: bool,
    topic: TopicConfig,
    depth: usize,
    max_message: usize,
    history: VecDeque<Arc<[u8]>>,
    pending: Vec<Pending>,
    subs: Vec<Sub>,
    name: String,
    warnings: Vec<String>,
    /// Warnings not kept (past [`MAX_WARNINGS`]).
    unkept: usize,
    last_service: Instant,
    /// Connections accepted so far, to name them in warnings.
    accepted: u64,
    polled: Vec<Polled>,
}

impl Topic {
    fn bind(ep: &Endpoint, opts: &Options, topic: TopicConfig) -> Result<Self> {
        let listener = Listener::bind_with(ep, opts)?;
        let name = subscriber_name(listener.local_endpoint());
        let epoll = sys::io::epoll_create().map_err(|e| Error::os("epoll_create", &name, e))?;
        let acceptor = Acceptor::new(listener, epoll.as_fd())?;
        let max_message = opts.max_message.min(u32::MAX as usize - 8);
        Ok(Topic {
            acceptor,
            epoll,
            tcp: matches!(ep.kind(), EndpointKind::Tcp { .. }),
            topic,
            depth: depth(topic.history),
            max_message,
            history: VecDeque::new(),
            pending: Vec::new(),
            subs: Vec::new(),
            name,
            warnings: Vec::new(),
            unkept: 0,
            last_service: Instant::now(),
            accepted: 0,
            polled: Vec::new(),
        })
    }

    fn warn(&mut self, text: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(format!("{}: {text}", self.name));
        } else {
            self.unkept += 1;
        }
    }

    fn publish(&mut self, msg: &[u8], wait: Wait) -> Result<bool> {
        check_len(&[IoSlice::new(msg)], self.max_message, Limit::Maximum, "publish", &self.name)?;
        if self.last_service.elapsed() >= SERVICE_EVERY {
            self.step(Wait::Never)?;
        }
        if self.topic.overflow == Overflow::Block {
            loop {
                let depth = self.depth;
                if !self.subs.iter().any(|s| s.full(depth)) {
                    break;
                }
                if wait.remaining() == Some(Duration::ZERO) {
                    // One more look: the sockets may have room by now.
                    self.step(Wait::Never)?;
                    if self.subs.iter().any(|s| s.full(depth)) {
                        return Ok(false);
                    }
                    break;
                }
                self.step(wait)?;
            }
        }
        if self.subs.is_empty() && self.topic.history == 0 {
            return Ok(true);
        }
        let msg: Arc<[u8]> = Arc::from(msg);
        if self.topic.history > 0 {
            if self.history.len() as u64 >= self.topic.history {
                self.history.pop_front();
            }
            self.history.push_back(msg.clone());
        }
        let (overflow, depth) = (self.topic.overflow, self.depth);
        for s in &mut self.subs {
            s.push(&msg, overflow, depth);
        }
        self.flush_all();
        Ok(true)
    }

    /// Writes every backlog as far as the sockets take; forgets the
    /// subscribers whose connection failed. Returns the bytes written.
    fn flush_all(&mut self) -> usize {
        let mut total = 0;
        let mut i = 0;
        while i < self.subs.len() {
            match self.subs[i].flush() {
                Ok(n) => {
                    total += n;
                    i += 1;
                }
                Err(_) => self.forget(i, Gone::Left),
            }
        }
        total
    }

    fn forget(&mut self, i: usize, why: Gone) {
        let sub = self.subs.swap_remove(i);
        drop(sub);
        self.acceptor.closed(self.epoll.as_fd());
        if let Gone::Fault(text) = why {
            self.warn(text);
        }
    }

    /// One round of serving: waits at most `wait` for anything (a
    /// connection, a subscribe frame, room in a socket with a backlog, a
    /// hang-up), then handles what is ready and writes backlogs.
    fn step(&mut self, wait: Wait) -> Result<()> {
        self.last_service = Instant::now();
        // A pending connection's deadline bounds the wait.
        let wait = match self.pending.iter().map(|p| p.since + HANDSHAKE).min() {
            Some(t) if wait.remaining().is_none_or(|left| Instant::now() + left > t) => Wait::Until(t),
            _ => wait,
        };
        let mut set: Vec<(BorrowedFd<'_>, bool)> = Vec::with_capacity(1 + self.pending.len() + self.subs.len());
        set.push((self.epoll.as_fd(), false));
        set.extend(self.pending.iter().map(|p| (p.fd.as_fd(), false)));
        set.extend(self.subs.iter().map(|s| (s.fd.as_fd(), !s.queue.is_empty())));
        let mut polled = std::mem::take(&mut self.polled);
        let r = sys::io::poll_many(&set, &mut polled, wait);
        drop(set);
        let r = r.map_err(|e| Error::os("poll", &self.name, e));
        let result = r.and_then(|_| self.handle(&polled));
        self.polled = polled;
        result
    }

    fn handle(&mut self, polled: &[Polled]) -> Result<()> {
        let np = self.pending.len();
        let (listener, pending, subs) = (polled[0], &polled[1..1 + np], &polled[1 + np..]);
        // Subscribers first, from the back (forgetting one swaps the last
        // into its place, which was already looked at).
        for i in (0..subs.len()).rev() {
            let p = subs[i];
            if p.readable || p.hangup {
                if let Some(gone) = self.subs[i].check_input() {
                    self.forget(i, gone);
                    continue;
                }
            }
        }
        self.flush_all();
        // Pending connections: read, expire, promote.
        let now = Instant::now();
        for i in (0..pending.len()).rev() {
            let p = pending[i];
            let step = if p.readable || p.hangup {
                self.read_pending(i)
            } else if now >= self.pending[i].since + HANDSHAKE {
                let who = &self.pending[i].who;
                Handshake::Drop(Some(format!(
                    "{who} sent no subscribe frame within {} s: dropped",
                    HANDSHAKE.as_secs()
                )))
            } else {
                Handshake::Waiting
            };
            match step {
                Handshake::Waiting => {}
                Handshake::Drop(why) => {
                    self.pending.swap_remove(i);
                    self.acceptor.closed(self.epoll.as_fd());
                    if let Some(why) = why {
                        self.warn(why);
                    }
                }
                Handshake::Subscribe(k) => {
                    let p = self.pending.swap_remove(i);
                    self.admit(p, k);
                }
            }
        }
        if listener.readable || listener.hangup {
            let (epoll, live) = (self.epoll.as_fd(), self.pending.len() + self.subs.len());
            let (pending, accepted, tcp) = (&mut self.pending, &mut self.accepted, self.tcp);
            self.acceptor.accept_all(epoll, live, |fd| {
                if tcp {
                    // Without TCP_NODELAY small messages wait for Nagle.
                    let _ = tcp::accepted(&fd);
                }
                *accepted += 1;
                let who = match sys::net::peer_credentials(fd.as_fd()) {
                    Ok(c) => format!("subscriber {} (pid {})", accepted, Credentials::from(c).pid),
                    Err(_) => format!("subscriber {accepted}"),
                };
                pending.push(Pending { fd, buf: [0; 4 + SUBSCRIBE_LEN], got: 0, since: Instant::now(), who });
                Ok(())
            })?;
            for w in self.acceptor.take_warnings() {
                self.warn(w);
            }
        }
        if self.unkept > 0 && self.warnings.len() < MAX_WARNINGS {
            let n = std::mem::take(&mut self.unkept);
            self.warn(format!("{n} more warnings were not kept"));
        }
        Ok(())
    }

    /// Reads what a pending connection sent, exactly up to the end of its
    /// subscribe frame, and checks it.
    fn read_pending(&mut self, i: usize) -> Handshake {
        let p = &mut self.pending[i];
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
        if asked > self.topic.history {
            let text = format!(
                "history {asked} asked for, but the topic keeps at most {} messages (?history= on the publisher's endpoint)",
                self.topic.history
            );
            let _ =
                sys::net::send(p.fd.as_fd(), &[IoSlice::new(&answer_frame(REFUSED_HISTORY, reason(&text)))], &[], true);
            return Handshake::Drop(None);
        }
        Handshake::Subscribe(asked)
    }

    /// Answers a subscription and makes it a subscriber, its backlog
    /// starting with the last `asked` kept messages.
    fn admit(&mut self, p: Pending, asked: u64) {
        let kept = (asked as usize).min(self.history.len());
        let answer = answer_frame(ACCEPTED, &(kept as u64).to_le_bytes());
        // A new connection's socket buffer always has room for 24 bytes.
        match sys::net::send(p.fd.as_fd(), &[IoSlice::new(&answer)], &[], true) {
            Ok(n) if n == answer.len() => {}
            _ => {
                self.acceptor.closed(self.epoll.as_fd());
                return;
            }
        }
        let mut sub = Sub { fd: p.fd, queue: VecDeque::new(), sent: 0, bytes: 0, who: p.who };
        for m in self.history.iter().skip(self.history.len() - kept) {
            sub.bytes += m.len();
            sub.queue.push_back(Entry::new(0, m.clone()));
        }
        self.subs.push(sub);
        let last = self.subs.len() - 1;
        if self.subs[last].flush().is_err() {
            self.forget(last, Gone::Left);
        }
    }

    fn subscribers(&mut self) -> usize {
        let _ = self.step(Wait::Never);
        self.subs.len()
    }

    fn wait_for_subscribers(&mut self, n: usize, wait: Wait) -> Result<bool> {
        loop {
            self.step(Wait::Never)?;
            if self.subs.len() >= n {
                return Ok(true);
            }
            if wait.remaining() == Some(Duration::ZERO) {
                return Ok(false);
            }
            self.step(wait)?;
            if self.subs.len() >= n {
                return Ok(true);
            }
        }
    }
}

impl Drop for Topic {
    /// Writes the backlogs while subscribers take bytes (giving up after
    /// [`DRAIN_IDLE`] without progress), then closes every connection.
    fn drop(&mut self) {
        let mut progress = Instant::now();
        while self.subs.iter().any(|s| !s.queue.is_empty()) {
            if self.flush_all() > 0 {
                progress = Instant::now();
            }
            let deadline = progress + DRAIN_IDLE;
            if Instant::now() >= deadline || self.subs.iter().all(|s| s.queue.is_empty()) {
                break;
            }
            if self.step(Wait::Until(deadline)).is_err() {
                break;
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
                        "the publisher did not answer within the timeout (a publisher answers while it publishes or \
                         waits)"
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
        let mut s = Sub { fd: a, queue: VecDeque::new(), sent: 0, bytes: 0, who: String::new() };
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
