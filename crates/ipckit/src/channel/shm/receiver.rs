//! A `shm:` receiver: the listener, one ring per sender (it is their only
//! consumer), served in turn, and every control connection in one epoll
//! set (what `poll_fd` hands out).
//!
//! A receive takes the next message from the rings, round-robin, with no
//! system call. With none there, it spins for the spin window, then parks:
//! it sets `PARKED` on every ring (senders then wake it over their control
//! connection) and sleeps in `epoll_wait`, which also brings new senders
//! (accepted and welcomed without blocking: a client that connects and
//! says nothing holds only its own descriptor) and the end of senders that
//! left. A sender that left is dropped once everything it published has
//! been received; its unfinished message, never published, is simply gone.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Config;
use super::control::{self, Packet, Refusal};
use super::hellos::Hellos;
use super::memory::{LivePage, MappedRing};
use super::pool::{self, PeerPool, PoolView};
use super::ring::{Consumer, Record, RingError, RingMemory, TAG_INLINE, TAG_POOL};
use super::sample::{Pooled, Sample};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Credentials, Message, Meta, SendMeta};
use crate::socket::Listener;
use crate::socket::server::{Acceptor, EVENTS, LISTENER};
use crate::sys;
use crate::transport::Io;
use crate::wait::{Got, Wait};

/// Epoll data of the receiving side's own doorbell (its epoll): an
/// eventfd, edge-triggered, rung by the service thread when new senders
/// wait to be adopted, and by this side itself. No sender holds it.
const DOORBELL: u64 = u64::MAX - 1;

/// Epoll data of a sender's doorbell (the receiving side's epoll): this
/// bit and its slot. An eventfd of its own, edge-triggered, never read,
/// rung by that sender alone when it found this receiver parked: a sender
/// that spoils it (clears `O_NONBLOCK`, fills its counter; both belong to
/// the open file description) spoils only its own wake-ups.
const SENDER_BELL: u64 = 1 << 33;

/// Epoll data of a connection that has not said hello yet (the service
/// thread's epoll): this bit and its slot.
const PENDING: u64 = 1 << 32;

/// Epoll data of the service thread's own bell (stop, or a sender left).
const SERVICE_BELL: u64 = u64::MAX - 2;

/// How often a busy-waiting receiver looks for new senders and departures.
const BUSY_EVENTS: Duration = Duration::from_millis(1);

/// A connected sender.
#[derive(Debug)]
struct Peer {
    control: Io,
    /// Its doorbell (see [`SENDER_BELL`]).
    doorbell: OwnedFd,
    ring: Consumer<MappedRing>,
    /// Its payload pool, shared with the samples lent out.
    pool: Option<Arc<PeerPool>>,
    creds: Credentials,
    /// Its connection ended: dropped once its ring is drained.
    leaving: bool,
    /// `PARKED` is set on its ring.
    armed: bool,
}

/// A checked pool reference.
#[derive(Clone, Copy, Debug)]
struct PoolRef {
    offset: usize,
    len: usize,
    /// First chunk and count.
    chunks: (usize, usize),
}

/// The message at the head of a sender's ring, checked, not consumed yet.
struct Found<'a> {
    peer: &'a mut Peer,
    record: Record,
    /// Where it is when it is in the sender's pool.
    pooled: Option<PoolRef>,
    meta: Meta,
}

impl Found<'_> {
    /// The message's length.
    fn len(&self) -> usize {
        self.pooled.map_or(self.record.len, |p| p.len)
    }

    /// Copies the message into `buf[..self.len()]`.
    fn read(&self, buf: &mut [u8]) {
        match (self.pooled, &self.peer.pool) {
            (Some(p), Some(pool)) => pool.view().read(p.offset, &mut buf[..p.len]),
            _ => self.peer.ring.read(self.record, &mut buf[..self.record.len]),
        }
    }

    /// Consumes the message: its ring record, and its chunks go back.
    fn consume(self) {
        ShmReceiver::popped(&mut self.peer.ring, self.record, &mut self.peer.control);
        if let (Some(p), Some(pool)) = (self.pooled, &self.peer.pool) {
            pool.give_back(p.chunks.0, p.chunks.1);
        }
    }

    /// Consumes the ring record; the message stays where it is, held by
    /// the sample (copied out when it was inline).
    fn into_sample(self, name: &Arc<str>, max: usize) -> Sample {
        let meta = std::mem::take(&mut { self.meta });
        match (self.pooled, self.peer.pool.clone()) {
            (Some(p), Some(pool)) => {
                pool.view().hold(p.chunks.0, p.chunks.1);
                ShmReceiver::popped(&mut self.peer.ring, self.record, &mut self.peer.control);
                Sample::pooled(Pooled::new(pool, p.chunks, (p.offset, p.len), max), meta, name.clone())
            }
            _ => {
                // Bounded by the ring (checked in `peek`).
                let mut data = vec![0u8; self.record.len];
                self.peer.ring.read(self.record, &mut data);
                ShmReceiver::popped(&mut self.peer.ring, self.record, &mut self.peer.control);
                Sample::owned(Message { data, meta }, name)
            }
        }
    }
}

/// What the service thread hands to the receiving side.
#[derive(Debug, Default)]
struct Shared {
    /// Senders welcomed, not yet adopted.
    incoming: Mutex<Vec<Peer>>,
    has_incoming: AtomicBool,
    /// Senders welcomed and not yet dropped.
    live: AtomicUsize,
    warnings: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// The receiving end of a `shm:` channel.
///
/// Senders join through a service thread of the receiver's own (it
/// accepts, checks credentials, creates the ring and welcomes), so that a
/// sender can join while the receiving thread is busy, or is the same
/// thread (bind, connect, send, receive in one thread). The receiving
/// side adopts new senders at its next receive; a doorbell (an eventfd in
/// its epoll set) wakes it for them when it is parked.
#[derive(Debug)]
pub(crate) struct ShmReceiver {
    name: Arc<str>,
    cfg: Config,
    epoll: OwnedFd,
    doorbell: OwnedFd,
    shared: Arc<Shared>,
    service_bell: OwnedFd,
    service: Option<std::thread::JoinHandle<()>>,
    peers: Vec<Option<Peer>>,
    /// Where the next round-robin turn starts.
    next: usize,
    events: Vec<u64>,
    /// Messages taken, and when events were last looked at.
    busy_turns: u64,
    last_events: Instant,
}

impl ShmReceiver {
    /// Binds the channel: its control socket, an abstract name (a second
    /// live receiver is `AlreadyExists`), and starts its service thread.
    pub(crate) fn bind(ep: &Endpoint, cfg: Config) -> Result<ShmReceiver> {
        let name: Arc<str> = ep.to_string().into();
        let listener = Listener::bind_with(&cfg.control, &cfg.control_opts()).map_err(|e| {
            let kind = e.kind();
            let why = match kind {
                ErrorKind::AlreadyExists => "another receiver is bound to this channel".to_string(),
                _ => e.to_string(),
            };
            Error::new(kind, "bind", ep, why)
        })?;
        let os = |op: &'static str| move |e| Error::os(op, ep, e);
        let epoll = sys::io::epoll_create().map_err(os("epoll_create"))?;
        let doorbell = sys::io::eventfd().map_err(os("eventfd"))?;
        // Edge-triggered: each ring is one event, and nothing is ever read
        // from it (a wake-up costs the sender's write and this side's
        // epoll_wait, no more).
        sys::io::epoll_add_edge(epoll.as_fd(), doorbell.as_fd(), DOORBELL).map_err(os("epoll_ctl"))?;
        let service_epoll = sys::io::epoll_create().map_err(os("epoll_create"))?;
        let service_bell = sys::io::eventfd().map_err(os("eventfd"))?;
        sys::io::epoll_add(service_epoll.as_fd(), service_bell.as_fd(), SERVICE_BELL).map_err(os("epoll_ctl"))?;
        let acceptor = Acceptor::new(listener, service_epoll.as_fd())?;
        let shared = Arc::new(Shared::default());
        let page = LivePage::create(&cfg.channel)?;
        let mut service = Service {
            name: name.clone(),
            cfg: cfg.clone(),
            page,
            epoll: service_epoll,
            bell: service_bell.try_clone().map_err(|e| Error::new(ErrorKind::Io, "bind", ep, e.to_string()))?,
            doorbell: doorbell.try_clone().map_err(|e| Error::new(ErrorKind::Io, "bind", ep, e.to_string()))?,
            acceptor,
            hellos: Hellos::default(),
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("ipckit-shm:{}", cfg.channel))
            .spawn(move || service.run())
            .map_err(|e| Error::new(ErrorKind::Io, "bind", ep, format!("cannot start the service thread: {e}")))?;
        Ok(ShmReceiver {
            name,
            cfg,
            epoll,
            doorbell,
            shared,
            service_bell,
            service: Some(thread),
            peers: Vec::new(),
            next: 0,
            events: Vec::with_capacity(EVENTS),
            busy_turns: 0,
            last_events: Instant::now(),
        })
    }

    /// Takes the senders the service thread welcomed.
    fn adopt(&mut self) -> Result<()> {
        // A plain load first: this is on every receive's path.
        if !self.shared.has_incoming.load(Ordering::Acquire) || !self.shared.has_incoming.swap(false, Ordering::AcqRel)
        {
            return Ok(());
        }
        let incoming = std::mem::take(&mut *self.shared.incoming.lock().unwrap_or_else(|p| p.into_inner()));
        let mut failed = None;
        for peer in incoming {
            let slot = match self.peers.iter().position(Option::is_none) {
                Some(slot) => slot,
                None => {
                    self.peers.push(None);
                    self.peers.len() - 1
                }
            };
            self.peers[slot] = Some(peer);
            let peer = self.peers[slot].as_ref().expect("just placed");
            let added = sys::io::epoll_add(self.epoll.as_fd(), peer.control.fd(), slot as u64).and_then(|()| {
                sys::io::epoll_add_edge(self.epoll.as_fd(), peer.doorbell.as_fd(), SENDER_BELL | slot as u64)
            });
            if let Err(e) = added {
                // Not served without its departures seen: let it go.
                self.drop_peer(slot);
                failed.get_or_insert(Error::os("epoll_ctl", &*self.name, e));
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn corrupt(&self, pid: i32, why: String) -> Error {
        Error::new(
            ErrorKind::Corrupt,
            "recv",
            &*self.name,
            format!("the sender with pid {pid} broke the ring protocol ({why}); it was dropped"),
        )
    }

    /// After a message is consumed: wakes its sender if it parked.
    fn popped(ring: &mut Consumer<MappedRing>, record: Record, control: &mut Io) {
        if ring.pop(record) {
            // Its end gone shows as the end of its connection.
            let _ = control.send(&[IoSlice::new(b"w")], &SendMeta::new(), Wait::Never);
        }
    }

    /// Receives one message within `wait`, by `take`.
    fn next<T>(&mut self, wait: Wait, mut take: impl FnMut(Found<'_>) -> Result<T>) -> Result<Got<T>> {
        // Armed by a `try_` call that was `Empty`: not any more.
        self.disarm();
        let mut looked = 0;
        loop {
            self.adopt()?;
            if let Some(got) = self.take(&mut take)? {
                self.busy_turns += 1;
                // A busy channel still notices departures and wake-ups:
                // now and then, without a clock read per message.
                if self.busy_turns % 64 == 0 && self.last_events.elapsed() >= BUSY_EVENTS {
                    self.events(Wait::Never)?;
                }
                return Ok(Got::Msg(got));
            }
            if matches!(wait, Wait::Never) {
                looked += 1;
                if looked == 1 {
                    self.events(Wait::Never)?;
                    continue;
                }
                // Say it will wait, so that `poll_fd` turns readable.
                if self.arm() {
                    return Ok(Got::NotYet);
                }
                if looked >= 3 {
                    // A peer racing with every look: say "nothing now", and
                    // leave `poll_fd` readable so the caller looks again.
                    let _ = sys::io::eventfd_signal(self.doorbell.as_fd());
                    return Ok(Got::NotYet);
                }
                self.disarm();
                continue;
            }
            let busy = self.cfg.wait == crate::options::WaitMode::Busy;
            let window = if busy { Duration::MAX } else { self.cfg.spin };
            if self.spin(window, wait)? {
                continue;
            }
            if wait.remaining() == Some(Duration::ZERO) {
                return Ok(Got::NotYet);
            }
            if busy {
                continue;
            }
            if self.arm() {
                let woken = self.events(wait);
                self.disarm();
                woken?;
            } else {
                self.disarm();
            }
        }
    }

    /// One round over the rings, from where the last one stopped: the
    /// first message found, by `take`. A ring that breaks the protocol is
    /// dropped and reported; one whose sender left and that is drained is
    /// dropped; a pool reference that is wrong is dropped and reported (its
    /// sender stays: it only spoiled its own message).
    fn take<T>(&mut self, take: &mut impl FnMut(Found<'_>) -> Result<T>) -> Result<Option<T>> {
        let n = self.peers.len();
        for k in 0..n {
            let slot = (self.next + k) % n;
            let Some(peer) = self.peers[slot].as_mut() else { continue };
            match peer.ring.peek() {
                Ok(Some(record)) if record.tag == TAG_INLINE => {
                    let meta = Meta { creds: Some(peer.creds), ..Meta::default() };
                    // The next turn is the next sender's, also when this
                    // message does not fit (it stays queued).
                    self.next = slot + 1;
                    return take(Found { peer, record, pooled: None, meta }).map(Some);
                }
                Ok(Some(record)) if record.tag == TAG_POOL => {
                    self.next = slot + 1;
                    let pooled = match ShmReceiver::reference(peer, record) {
                        Ok(pooled) => pooled,
                        Err(why) => {
                            let pid = peer.creds.pid;
                            ShmReceiver::popped(&mut peer.ring, record, &mut peer.control);
                            return Err(Error::new(
                                ErrorKind::Corrupt,
                                "recv",
                                &*self.name,
                                format!("a message from the sender with pid {pid} was dropped: {why}"),
                            ));
                        }
                    };
                    let meta = Meta { creds: Some(peer.creds), ..Meta::default() };
                    return take(Found { peer, record, pooled: Some(pooled), meta }).map(Some);
                }
                Ok(Some(record)) => {
                    let pid = peer.creds.pid;
                    self.drop_peer(slot);
                    return Err(self.corrupt(pid, format!("a record has the unknown tag {}", record.tag)));
                }
                Ok(None) if peer.leaving => self.drop_peer(slot),
                Ok(None) => {
                    // Nothing more here: what was consumed goes back now.
                    if peer.ring.release() {
                        let _ = peer.control.send(&[IoSlice::new(b"w")], &SendMeta::new(), Wait::Never);
                    }
                }
                Err(RingError::Corrupt(why)) => {
                    let pid = peer.creds.pid;
                    self.drop_peer(slot);
                    return Err(self.corrupt(pid, why));
                }
            }
        }
        Ok(None)
    }

    /// Reads and checks a pool reference: inside the sender's pool, in
    /// whole chunks, not overlapping a message this side still holds.
    fn reference(peer: &Peer, record: Record) -> std::result::Result<PoolRef, String> {
        let Some(pool) = &peer.pool else {
            return Err("a pool reference from a sender without a pool".into());
        };
        if record.len != 16 {
            return Err(format!("a pool reference of {} bytes, not 16", record.len));
        }
        let mut bytes = [0u8; 16];
        peer.ring.read(record, &mut bytes);
        let offset = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"));
        let chunks = pool.view().check(offset, len)?;
        // Inside the pool (checked), so both fit a usize.
        Ok(PoolRef { offset: offset as usize, len: len as usize, chunks })
    }

    /// Whether any ring holds a published message (or something to act
    /// on): a cheap check, for spinning.
    fn any_ready(&mut self) -> bool {
        self.shared.has_incoming.load(Ordering::Acquire)
            || self.peers.iter_mut().flatten().any(|p| p.leaving || !matches!(p.ring.peek(), Ok(None)))
    }

    /// Spins until a ring has a message, at most `window` and never past
    /// `wait`; in a long spin, looks for events now and then. `true` when
    /// something may be ready.
    fn spin(&mut self, window: Duration, wait: Wait) -> Result<bool> {
        if window.is_zero() {
            return Ok(false);
        }
        let start = Instant::now();
        let mut looked = start;
        loop {
            for _ in 0..32 {
                std::hint::spin_loop();
                if self.any_ready() {
                    return Ok(true);
                }
            }
            let now = Instant::now();
            if now.duration_since(start) >= window || wait.remaining() == Some(Duration::ZERO) {
                return Ok(false);
            }
            if now.duration_since(looked) >= BUSY_EVENTS {
                looked = now;
                if self.events(Wait::Never)? {
                    return Ok(true);
                }
            }
        }
    }

    /// Sets `PARKED` on every ring; `false` when a ring has a message, a
    /// sender is leaving, or new senders wait: then there is no sleeping.
    fn arm(&mut self) -> bool {
        let mut sleep = !self.shared.has_incoming.load(Ordering::Acquire);
        for peer in self.peers.iter_mut().flatten() {
            if peer.leaving {
                sleep = false;
                continue;
            }
            peer.armed = true;
            if !matches!(peer.ring.park(), Ok(true)) {
                sleep = false;
            }
        }
        sleep
    }

    fn disarm(&mut self) {
        for peer in self.peers.iter_mut().flatten() {
            if std::mem::take(&mut peer.armed) {
                peer.ring.unpark();
            }
        }
    }

    /// Waits for events within `wait` and handles them: wake-ups,
    /// departures, new senders. `true` when any came.
    fn events(&mut self, wait: Wait) -> Result<bool> {
        self.last_events = Instant::now();
        let n = sys::io::epoll_wait(self.epoll.as_fd(), &mut self.events, EVENTS, wait)
            .map_err(|e| Error::os("epoll_wait", &*self.name, e))?;
        for i in 0..n {
            match self.events[i] {
                DOORBELL => self.adopt()?,
                // A sender published onto a parked ring: the caller looks.
                bell if bell & SENDER_BELL != 0 => {}
                slot => self.drain(slot as usize),
            }
        }
        Ok(n > 0)
    }

    /// Takes a sender's wake-ups; notes its departure.
    fn drain(&mut self, slot: usize) {
        let Some(peer) = self.peers.get_mut(slot).and_then(Option::as_mut) else { return };
        let mut scratch = [0u8; control::PACKET_MAX];
        for _ in 0..64 {
            match peer.control.recv_into(&mut scratch, Wait::Never) {
                Ok(Got::Msg(_)) => {}
                Ok(Got::NotYet) => return,
                Ok(Got::Eof) | Err(_) => {
                    peer.leaving = true;
                    let _ = sys::io::epoll_remove(self.epoll.as_fd(), peer.control.fd());
                    return;
                }
            }
        }
    }

    fn drop_peer(&mut self, slot: usize) {
        if let Some(peer) = self.peers.get_mut(slot).and_then(Option::take) {
            peer.ring.memory().close();
            // Removed by hand: the sender holds its doorbell too (and
            // samples the connection), so closing them here would not take
            // them out of the epoll set.
            let _ = sys::io::epoll_remove(self.epoll.as_fd(), peer.doorbell.as_fd());
            let _ = sys::io::epoll_remove(self.epoll.as_fd(), peer.control.fd());
            // Its samples still hold a descriptor of the connection (to
            // wake it): the sender sees the end now all the same.
            let _ = sys::net::shutdown_both(peer.control.fd());
            drop(peer);
            self.shared.live.fetch_sub(1, Ordering::AcqRel);
            // A descriptor is free: the service thread may accept again.
            let _ = sys::io::eventfd_signal(self.service_bell.as_fd());
        }
    }
}

/// The receiver's service thread: accepts, checks credentials, creates
/// rings, welcomes; never touches a ring after handing it over.
struct Service {
    name: Arc<str>,
    cfg: Config,
    /// Held (its mutex locked) by this thread while it runs: its end is
    /// how senders learn the receiver's.
    page: LivePage,
    epoll: OwnedFd,
    bell: OwnedFd,
    /// The receiving side's own doorbell: rung when senders wait to be
    /// adopted. Never handed to a sender.
    doorbell: OwnedFd,
    acceptor: Acceptor,
    hellos: Hellos,
    shared: Arc<Shared>,
}

impl Service {
    fn run(&mut self) {
        if let Err(e) = self.page.hold() {
            self.warn(format!("{}: senders will not see this receiver's end at once: {e}", self.name));
        }
        let mut events = Vec::with_capacity(EVENTS);
        while !self.shared.stop.load(Ordering::Acquire) {
            let (hellos, acceptor, epoll) = (&mut self.hellos, &mut self.acceptor, &self.epoll);
            hellos.expire(|| acceptor.closed(epoll.as_fd()));
            let wait = self.hellos.wait();
            let n = match sys::io::epoll_wait(self.epoll.as_fd(), &mut events, EVENTS, wait) {
                Ok(n) => n,
                Err(e) => {
                    self.warn(format!("{}: the service thread stopped: epoll_wait: {e:?}", self.name));
                    return;
                }
            };
            for &event in &events[..n] {
                match event {
                    SERVICE_BELL => {
                        let _ = sys::io::eventfd_drain(self.bell.as_fd());
                        self.acceptor.closed(self.epoll.as_fd());
                    }
                    LISTENER => self.accept(),
                    data => self.hello((data & !PENDING) as usize),
                }
            }
            let mut warnings = self.acceptor.take_warnings();
            if !warnings.is_empty() {
                self.shared.warnings.lock().unwrap_or_else(|p| p.into_inner()).append(&mut warnings);
            }
        }
    }

    fn warn(&self, w: String) {
        self.shared.warnings.lock().unwrap_or_else(|p| p.into_inner()).push(w);
    }

    fn accept(&mut self) {
        let mut accepted = Vec::new();
        let live = self.shared.live.load(Ordering::Acquire);
        if let Err(e) = self.acceptor.accept_all(self.epoll.as_fd(), live, |fd| {
            accepted.push(fd);
            Ok(())
        }) {
            self.warn(format!("{}: accept: {e}", self.name));
        }
        for fd in accepted {
            if let Err(e) = self.add_pending(fd) {
                self.warn(format!("{}: a sender could not join: {e}", self.name));
            }
        }
    }

    fn add_pending(&mut self, fd: OwnedFd) -> Result<()> {
        let Ok(conn) = self.acceptor.listener().wrap(fd) else { return Ok(()) };
        let control = conn.into_io();
        let admitted = control.peer_credentials().is_some_and(|c| control::admits(self.cfg.mode, self.cfg.me, c));
        self.hellos.hold(self.epoll.as_fd(), control, admitted, PENDING);
        Ok(())
    }

    /// A pending connection said something: welcome it, or refuse it.
    fn hello(&mut self, slot: usize) {
        let Some(mut pending) = self.hellos.take(slot) else { return };
        let (packet, fds) = match pending.control.recv(Wait::Never) {
            Ok(Got::Msg(m)) => (Packet::hello(&m.data), m.meta.fds),
            // Not yet a whole packet: keep waiting for it.
            Ok(Got::NotYet) => {
                self.hellos.put_back(slot, pending);
                return;
            }
            Ok(Got::Eof) | Err(_) => {
                self.acceptor.closed(self.epoll.as_fd());
                return;
            }
        };
        let mut control = pending.control;
        let _ = sys::io::epoll_remove(self.epoll.as_fd(), control.fd());
        let Some(Packet::Hello { pool, .. }) = packet else {
            refuse(&mut control, Refusal::Protocol, "that was not a hello".into());
            self.acceptor.closed(self.epoll.as_fd());
            return;
        };
        // Refused after its hello is read: a connection closed with unread
        // data would reach the sender as a reset, not as the reason.
        let creds = control.peer_credentials();
        if !creds.is_some_and(|c| control::admits(self.cfg.mode, self.cfg.me, c)) {
            let why = format!(
                "uid {} may not use this channel (the receiver is uid {}; ?mode= admits others)",
                creds.map_or(-1, |c| c.uid as i64),
                self.cfg.me.0
            );
            refuse(&mut control, Refusal::Permission, why);
            self.acceptor.closed(self.epoll.as_fd());
            return;
        }
        if self.shared.live.load(Ordering::Acquire) >= self.cfg.senders {
            let why = format!("the channel serves at most {} senders (?senders=)", self.cfg.senders);
            refuse(&mut control, Refusal::Senders, why);
            self.acceptor.closed(self.epoll.as_fd());
            return;
        }
        // Its pool, mapped read-only, or why not (before anything is made
        // for it).
        let mut fds = fds.into_iter();
        let view = match (pool, fds.next(), fds.next()) {
            (0, None, _) => None,
            (size, Some(fd), None) if size > 0 => {
                match usize::try_from(size)
                    .map_err(|_| format!("a pool of {size} bytes"))
                    .and_then(|size| PoolView::open(fd, size, &self.name).map_err(|e| e.to_string()))
                {
                    Ok(view) => Some(view),
                    Err(why) => {
                        refuse(&mut control, Refusal::Protocol, format!("its pool was refused: {why}"));
                        self.acceptor.closed(self.epoll.as_fd());
                        return;
                    }
                }
            }
            _ => {
                let why = "a hello must carry one descriptor if it announces a pool, none otherwise".to_string();
                refuse(&mut control, Refusal::Protocol, why);
                self.acceptor.closed(self.epoll.as_fd());
                return;
            }
        };
        if let Err(e) = self.welcome(control, view) {
            self.warn(format!("{}: a sender could not join: {e}", self.name));
        }
    }

    fn welcome(&mut self, control: Io, view: Option<PoolView>) -> Result<()> {
        let creds = control.peer_credentials().expect("checked at accept");
        let chunks = view.as_ref().map_or(0, |v| v.size() / pool::CHUNK);
        let ring = MappedRing::create(&self.cfg.channel, self.cfg.capacity, super::layout::release_capacity(chunks))?;
        let pool = match view {
            Some(view) => {
                let wake = control
                    .fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::new(ErrorKind::Io, "accept", &*self.name, e.to_string()))?;
                Some(Arc::new(PeerPool::new(view, ring.release_ring()?, wake)))
            }
            None => None,
        };
        // Its own doorbell: one sender cannot spoil another's (see
        // `SENDER_BELL`).
        let doorbell = sys::io::eventfd().map_err(|e| Error::os("eventfd", &*self.name, e))?;
        let packet = Packet::Welcome { capacity: ring.capacity() as u64 }.encode();
        // Handed over before the welcome goes out, so that a sender that has
        // its welcome is one the receiving side adopts at its next look.
        let mut incoming = self.shared.incoming.lock().unwrap_or_else(|p| p.into_inner());
        incoming.push(Peer { control, doorbell, ring: Consumer::new(ring), pool, creds, leaving: false, armed: false });
        self.shared.has_incoming.store(true, Ordering::Release);
        let peer = incoming.last_mut().expect("just pushed");
        let fds = [peer.ring.memory().fd(), self.page.fd(), peer.doorbell.as_fd()];
        if let Err(e) = peer.control.send(&[IoSlice::new(&packet)], &SendMeta::new().fds(&fds), Wait::Never) {
            incoming.pop();
            return Err(e);
        }
        self.shared.live.fetch_add(1, Ordering::AcqRel);
        drop(incoming);
        sys::io::eventfd_signal(self.doorbell.as_fd()).map_err(|e| Error::os("eventfd", &*self.name, e))
    }
}

/// Tells a connection why it may not join, and closes it.
fn refuse(control: &mut Io, reason: Refusal, why: String) {
    let packet = Packet::Refused { reason: Some(reason), why }.encode();
    let _ = control.send(&[IoSlice::new(&packet)], &SendMeta::new(), Wait::Never);
}

impl super::super::Transfer for ShmReceiver {
    fn send(&mut self, _parts: &[IoSlice<'_>], _meta: &SendMeta<'_>, _wait: Wait) -> Result<()> {
        Err(Error::new(ErrorKind::Unsupported, "send", &*self.name, "a shm: receiver does not send"))
    }

    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        let name = self.name.clone();
        self.next(wait, |found| {
            let len = found.len();
            if len > buf.len() {
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    "recv",
                    &*name,
                    format!("message of {len} bytes does not fit the {}-byte buffer (it stays queued)", buf.len()),
                ));
            }
            found.read(buf);
            let meta = Meta { creds: found.meta.creds, ..Meta::default() };
            found.consume();
            Ok((len, meta))
        })
    }

    fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        let (name, max) = (self.name.clone(), self.cfg.max_message);
        self.next(wait, |found| {
            let len = found.len();
            if len > max {
                found.consume();
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    "recv",
                    &*name,
                    format!("message of {len} bytes over the maximum of {max} bytes was dropped"),
                ));
            }
            // Bounded by the ring or the pool (checked) and the maximum.
            let mut data = vec![0u8; len];
            found.read(&mut data);
            let meta = Meta { creds: found.meta.creds, ..Meta::default() };
            found.consume();
            Ok(Message { data, meta })
        })
    }

    fn recv_sample(&mut self, wait: Wait) -> Result<Got<Sample>> {
        let (name, max) = (self.name.clone(), self.cfg.max_message);
        self.next(wait, |found| Ok(found.into_sample(&name, max)))
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// An epoll set, readable when a sender that saw this receiver parked
    /// (after a `try_recv` that was `Empty`) has published, or when a
    /// sender comes or goes.
    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.epoll.as_fd())
    }

    fn connections(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Whether a ring holds a message now (or a sender came or left): then
    /// a `try_recv` has something to do although `poll_fd` may not be
    /// readable.
    fn has_buffered_message(&self) -> bool {
        self.shared.has_incoming.load(Ordering::Acquire)
            || self.peers.iter().flatten().any(|p| p.leaving || p.ring.published())
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut *self.shared.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for ShmReceiver {
    fn drop(&mut self) {
        // Senders learn at their next send, before their connection's end.
        for peer in self.peers.iter().flatten() {
            peer.ring.memory().close();
            let _ = sys::net::shutdown_both(peer.control.fd());
        }
        self.shared.stop.store(true, Ordering::Release);
        let _ = sys::io::eventfd_signal(self.service_bell.as_fd());
        if let Some(service) = self.service.take() {
            let _ = service.join();
        }
        // Senders welcomed but never adopted.
        for peer in self.shared.incoming.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            peer.ring.memory().close();
            let _ = sys::net::shutdown_both(peer.control.fd());
        }
    }
}
