//! A `shm:` topic's publisher: the topic memory it alone writes, the list
//! of subscribers (their cursor pages and connections) behind a lock that
//! the publishing thread takes once per message, and a service thread
//! that accepts subscribers and watches their connections end.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::super::TopicConfig;
use super::control::{self, Packet, Refusal};
use super::memory::{CursorPage, MappedTopic};
use super::protocol::{self, CursorMemory, HEAD_LIMIT, TopicMemory, Watch, Writer};
use super::{Config, layout, spin};
use crate::channel::shm::hellos::Hellos;
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::SendMeta;
use crate::options::{Options, Overflow};
use crate::socket::Listener;
use crate::socket::server::{Acceptor, EVENTS, LISTENER};
use crate::sys::{self, io::Ready};
use crate::transport::Io;
use crate::wait::{Got, Wait};

/// Epoll data of the service thread's bell (stop).
const SERVICE_BELL: u64 = u64::MAX - 2;
/// Epoll data of a connection that has not said hello yet: this bit and
/// its slot.
const PENDING: u64 = 1 << 32;
/// Epoll data of a subscriber's connection: this bit and its id.
const SUBSCRIBER: u64 = 1 << 40;

/// A subscriber, as the publishing side knows it.
#[derive(Debug)]
struct Sub {
    id: u64,
    page: CursorPage,
    /// Its control connection (a duplicate): a wake packet on it wakes
    /// the subscriber when it sleeps and a message comes; shut down to
    /// drop it.
    control: OwnedFd,
    watch: Watch,
    pid: i32,
}

/// The subscribers, behind the lock.
#[derive(Debug, Default)]
struct Subs {
    list: Vec<Sub>,
    /// The list changed since `room_until` was computed.
    fresh: bool,
    /// Messages below this index may be published without loading a
    /// cursor (`overflow=block`).
    room_until: u64,
    next_id: u64,
}

#[derive(Debug, Default)]
struct Shared {
    subs: Mutex<Subs>,
    warnings: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn subs(&self) -> MutexGuard<'_, Subs> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn warn(&self, w: String) {
        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).push(w);
    }
}

/// Forgets a subscriber (its connection is shut down: it sees the end).
fn drop_sub(subs: &mut Subs, i: usize) -> Sub {
    let sub = subs.list.swap_remove(i);
    let _ = sys::net::shutdown_both(sub.control.as_fd());
    subs.fresh = true;
    sub
}

/// The publishing end of a `shm:` topic.
#[derive(Debug)]
pub(crate) struct ShmPublisher {
    name: Arc<str>,
    topic: Arc<MappedTopic>,
    writer: Writer,
    overflow: Overflow,
    cfg: Config,
    shared: Arc<Shared>,
    /// Rung by the service thread only (an eventfd never handed to a
    /// subscriber): when subscribers come or go, and when one sends a wake
    /// packet because it saw this side parked.
    doorbell: OwnedFd,
    service_bell: OwnedFd,
    service: Option<std::thread::JoinHandle<()>>,
}

impl ShmPublisher {
    /// Binds the topic: its control socket (a second live publisher is
    /// `AlreadyExists`), its memory, and its service thread.
    pub(crate) fn bind(ep: &Endpoint, opts: &Options, topic: TopicConfig) -> Result<Self> {
        let cfg = Config::new(ep, opts, "bind")?;
        let name: Arc<str> = ep.to_string().into();
        let slots = layout::slots_for(topic.history).ok_or_else(|| {
            Error::new(ErrorKind::Invalid, "bind", ep, format!("a history of {} messages", topic.history))
        })?;
        layout::check_geometry(slots, cfg.slot_size).map_err(|why| Error::new(ErrorKind::Invalid, "bind", ep, why))?;
        let listener = Listener::bind_with(&cfg.control, &Config::control_opts()).map_err(|e| {
            let kind = e.kind();
            let why = match kind {
                ErrorKind::AlreadyExists => "another publisher is bound to this topic".to_string(),
                _ => e.to_string(),
            };
            Error::new(kind, "bind", ep, why)
        })?;
        let memory = Arc::new(MappedTopic::create(&cfg.topic, slots, cfg.slot_size, topic.history, topic.overflow)?);
        let os = |op: &'static str| move |e| Error::os(op, ep, e);
        let io = |e: std::io::Error| Error::new(ErrorKind::Io, "bind", ep, e.to_string());
        let doorbell = sys::io::eventfd().map_err(os("eventfd"))?;
        let epoll = sys::io::epoll_create().map_err(os("epoll_create"))?;
        let service_bell = sys::io::eventfd().map_err(os("eventfd"))?;
        sys::io::epoll_add(epoll.as_fd(), service_bell.as_fd(), SERVICE_BELL).map_err(os("epoll_ctl"))?;
        let acceptor = Acceptor::new(listener, epoll.as_fd())?;
        let shared = Arc::new(Shared::default());
        let mut service = Service {
            name: name.clone(),
            cfg: cfg.clone(),
            topic: memory.clone(),
            epoll,
            bell: service_bell.try_clone().map_err(io)?,
            doorbell: doorbell.try_clone().map_err(io)?,
            acceptor,
            hellos: Hellos::default(),
            conns: HashMap::new(),
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("ipckit-topic:{}", cfg.topic))
            .spawn(move || service.run())
            .map_err(|e| Error::new(ErrorKind::Io, "bind", ep, format!("cannot start the service thread: {e}")))?;
        Ok(ShmPublisher {
            name,
            topic: memory,
            writer: Writer::new(),
            overflow: topic.overflow,
            cfg,
            shared,
            doorbell,
            service_bell,
            service: Some(thread),
        })
    }

    /// Publishes `msg` within `wait`; `Ok(false)`: a subscriber held it
    /// back for all of `wait` (`overflow=block`).
    pub(crate) fn publish(&mut self, msg: &[u8], wait: Wait) -> Result<bool> {
        let max = self.topic.max_message();
        if msg.len() > max {
            return Err(Error::new(
                ErrorKind::TooLarge,
                "publish",
                &*self.name,
                format!(
                    "{} bytes exceed the topic's largest message of {max} bytes (?size= is the slot size)",
                    msg.len()
                ),
            ));
        }
        if self.writer.head() + 1 >= HEAD_LIMIT {
            return Err(Error::new(ErrorKind::Full, "publish", &*self.name, "2^62 messages were published"));
        }
        loop {
            let mut subs = self.shared.subs();
            let h = self.writer.head();
            let blocker = match self.overflow {
                Overflow::Block => self.room(&mut subs, h),
                _ => None,
            };
            let Some(id) = blocker else {
                self.writer.write(&*self.topic, msg);
                for sub in &subs.list {
                    if protocol::announce(&sub.page, h + 1) {
                        control::wake(sub.control.as_fd());
                    }
                }
                return Ok(true);
            };
            drop(subs);
            if !self.wait_for(id, h, wait)? {
                return Ok(false);
            }
        }
    }

    /// Under `overflow=block`: the subscriber that holds message `h` back,
    /// if any. Loads cursors only when the slowest one seen would be
    /// overtaken, or when subscribers came or went; drops a subscriber
    /// whose cursor is nonsense.
    fn room(&self, subs: &mut Subs, h: u64) -> Option<u64> {
        if !subs.fresh && h < subs.room_until {
            return None;
        }
        let slots = self.topic.slots();
        let mut slowest: Option<(u64, u64)> = None;
        let mut i = 0;
        while i < subs.list.len() {
            let sub = &mut subs.list[i];
            match sub.watch.load(&sub.page, h) {
                Ok(cursor) => {
                    if slowest.is_none_or(|(c, _)| cursor < c) {
                        slowest = Some((cursor, sub.id));
                    }
                    i += 1;
                }
                Err(why) => {
                    let sub = drop_sub(subs, i);
                    self.shared.warn(format!("{}: the subscriber with pid {} was dropped: {why}", self.name, sub.pid));
                }
            }
        }
        subs.fresh = false;
        subs.room_until = slowest.map_or(u64::MAX, |(c, _)| c + slots as u64);
        slowest.filter(|_| h >= subs.room_until).map(|(_, id)| id)
    }

    /// Waits for subscriber `id` to move on (or to go): spins, then parks
    /// on its cursor. `Ok(false)`: `wait` ran out.
    fn wait_for(&mut self, id: u64, h: u64, wait: Wait) -> Result<bool> {
        if matches!(wait, Wait::Never) {
            return Ok(false);
        }
        let shared = self.shared.clone();
        let window = self.cfg.window();
        let moved = spin(window.unwrap_or(Duration::MAX), wait, || {
            let mut subs = shared.subs();
            subs.fresh = true;
            self.room(&mut subs, h).is_none()
        });
        if moved {
            return Ok(true);
        }
        if wait.remaining() == Some(Duration::ZERO) {
            return Ok(false);
        }
        if window.is_none() {
            return Ok(true);
        }
        {
            let mut subs = self.shared.subs();
            subs.fresh = true;
            let slots = self.topic.slots();
            let Some(i) = subs.list.iter().position(|s| s.id == id) else { return Ok(true) };
            let sub = &mut subs.list[i];
            match sub.watch.park(&sub.page, h, slots) {
                Ok(true) => {}
                Ok(false) => return Ok(true),
                Err(why) => {
                    let sub = drop_sub(&mut subs, i);
                    self.shared.warn(format!("{}: the subscriber with pid {} was dropped: {why}", self.name, sub.pid));
                    return Ok(true);
                }
            }
        }
        let woken = sys::io::poll(self.doorbell.as_fd(), Ready::Read, wait);
        let _ = sys::io::eventfd_drain(self.doorbell.as_fd());
        let mut subs = self.shared.subs();
        if let Some(sub) = subs.list.iter().find(|s| s.id == id) {
            Watch::unpark(&sub.page);
        }
        subs.fresh = true;
        drop(subs);
        woken.map_err(|e| Error::os("poll", &*self.name, e))
    }

    pub(crate) fn subscribers(&mut self) -> usize {
        self.shared.subs().list.len()
    }

    /// `Ok(false)`: not that many within `wait`.
    pub(crate) fn wait_for_subscribers(&mut self, n: usize, wait: Wait) -> Result<bool> {
        loop {
            if self.shared.subs().list.len() >= n {
                return Ok(true);
            }
            if wait.remaining() == Some(Duration::ZERO) {
                return Ok(false);
            }
            sys::io::poll(self.doorbell.as_fd(), Ready::Read, wait).map_err(|e| Error::os("poll", &*self.name, e))?;
            let _ = sys::io::eventfd_drain(self.doorbell.as_fd());
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut *self.shared.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for ShmPublisher {
    fn drop(&mut self) {
        // Subscribers see `closed` after the last `head`, then the end of
        // their connections.
        self.topic.close();
        self.shared.stop.store(true, Ordering::Release);
        let _ = sys::io::eventfd_signal(self.service_bell.as_fd());
        if let Some(service) = self.service.take() {
            let _ = service.join();
        }
        for sub in std::mem::take(&mut self.shared.subs().list) {
            let _ = sys::net::shutdown_both(sub.control.as_fd());
        }
    }
}

/// The publisher's service thread: accepts, checks credentials, makes
/// cursor pages, welcomes; forgets subscribers whose connection ended.
struct Service {
    name: Arc<str>,
    cfg: Config,
    topic: Arc<MappedTopic>,
    epoll: OwnedFd,
    bell: OwnedFd,
    /// The publisher's doorbell: rung when subscribers come or go, and
    /// when one sends a wake packet.
    doorbell: OwnedFd,
    acceptor: Acceptor,
    hellos: Hellos,
    /// Every subscriber's connection, by id.
    conns: HashMap<u64, Io>,
    shared: Arc<Shared>,
}

impl Service {
    fn run(&mut self) {
        let mut events = Vec::with_capacity(EVENTS);
        while !self.shared.stop.load(Ordering::Acquire) {
            let (hellos, acceptor, epoll) = (&mut self.hellos, &mut self.acceptor, &self.epoll);
            hellos.expire(|| acceptor.closed(epoll.as_fd()));
            let wait = self.hellos.wait();
            let n = match sys::io::epoll_wait(self.epoll.as_fd(), &mut events, EVENTS, wait) {
                Ok(n) => n,
                Err(e) => {
                    self.shared.warn(format!("{}: the service thread stopped: epoll_wait: {e:?}", self.name));
                    return;
                }
            };
            for &event in &events[..n] {
                match event {
                    SERVICE_BELL => {
                        let _ = sys::io::eventfd_drain(self.bell.as_fd());
                    }
                    LISTENER => self.accept(),
                    data if data & SUBSCRIBER != 0 => self.watch(data & !SUBSCRIBER),
                    data => self.hello((data & !PENDING) as usize),
                }
            }
            let warnings = self.acceptor.take_warnings();
            for w in warnings {
                self.shared.warn(w);
            }
        }
    }

    fn accept(&mut self) {
        let mut accepted = Vec::new();
        let live = self.conns.len();
        if let Err(e) = self.acceptor.accept_all(self.epoll.as_fd(), live, |fd| {
            accepted.push(fd);
            Ok(())
        }) {
            self.shared.warn(format!("{}: accept: {e}", self.name));
        }
        for fd in accepted {
            let Ok(conn) = self.acceptor.listener().wrap(fd) else { continue };
            let control = conn.into_io();
            // Checked now too, so that users the topic does not admit
            // cannot hold the slots of those it does.
            let admitted = control
                .peer_credentials()
                .is_some_and(|c| crate::channel::shm::control::admits(self.cfg.mode, self.cfg.me, c));
            self.hellos.hold(self.epoll.as_fd(), control, admitted, PENDING);
        }
    }

    /// A subscriber's connection is readable: wake packets (it saw the
    /// publisher parked; anything else it sends counts as one), or its
    /// end.
    fn watch(&mut self, id: u64) {
        let Some(control) = self.conns.get_mut(&id) else { return };
        let mut scratch = [0u8; control::PACKET_MAX];
        let mut ended = false;
        let mut woken = false;
        // At most 64 a turn (the epoll set is level-triggered: the rest
        // come next turn), so that one subscriber cannot keep this thread.
        for _ in 0..64 {
            match control.recv_into(&mut scratch, Wait::Never) {
                Ok(Got::Msg(_)) => woken = true,
                Ok(Got::NotYet) => break,
                Ok(Got::Eof) | Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
        if !ended {
            if woken {
                let _ = sys::io::eventfd_signal(self.doorbell.as_fd());
            }
            return;
        }
        if let Some(control) = self.conns.remove(&id) {
            let _ = sys::io::epoll_remove(self.epoll.as_fd(), control.fd());
        }
        let mut subs = self.shared.subs();
        if let Some(i) = subs.list.iter().position(|s| s.id == id) {
            drop_sub(&mut subs, i);
        }
        drop(subs);
        self.acceptor.closed(self.epoll.as_fd());
        // A publisher waiting for it goes on.
        let _ = sys::io::eventfd_signal(self.doorbell.as_fd());
    }

    fn hello(&mut self, slot: usize) {
        let Some(mut pending) = self.hellos.take(slot) else { return };
        let packet = match pending.control.recv(Wait::Never) {
            Ok(Got::Msg(m)) => Packet::parse(&m.data),
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
        let refused = match packet {
            Some(Packet::Hello { history }) => {
                let creds = control.peer_credentials();
                if !creds.is_some_and(|c| crate::channel::shm::control::admits(self.cfg.mode, self.cfg.me, c)) {
                    Some((
                        Refusal::Permission,
                        format!(
                            "uid {} may not use this topic (the publisher is uid {}; ?mode= admits others)",
                            creds.map_or(-1, |c| c.uid as i64),
                            self.cfg.me.0
                        ),
                    ))
                } else if history > self.topic.history() {
                    Some((
                        Refusal::History,
                        format!(
                            "{history} messages of history asked for, but the topic keeps the last {} \
                             (?history={} on the publisher)",
                            self.topic.history(),
                            self.topic.history()
                        ),
                    ))
                } else {
                    match self.welcome(&mut control, history) {
                        Ok(id) => {
                            self.conns.insert(id, control);
                            let _ = sys::io::eventfd_signal(self.doorbell.as_fd());
                            return;
                        }
                        Err(e) => {
                            self.shared.warn(format!("{}: a subscriber could not join: {e}", self.name));
                            None
                        }
                    }
                }
            }
            _ => Some((Refusal::Protocol, "that was not a hello".to_string())),
        };
        if let Some((reason, why)) = refused {
            let packet = Packet::Refused { reason: Some(reason), why }.encode();
            let _ = control.send(&[IoSlice::new(&packet)], &SendMeta::new(), Wait::Never);
        }
        self.acceptor.closed(self.epoll.as_fd());
    }

    /// Adds the subscriber (under the lock, so that every message
    /// published after its start is announced to it) and welcomes it.
    fn welcome(&mut self, control: &mut Io, history: u64) -> Result<u64> {
        let name = self.name.clone();
        let os = |op: &'static str| {
            let name = name.clone();
            move |e| Error::os(op, &*name, e)
        };
        let page = CursorPage::create(&self.cfg.topic, 0, 0)?;
        let dup = control
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Error::new(ErrorKind::Io, "accept", &*self.name, e.to_string()))?;
        let pid = control.peer_credentials().map_or(0, |c| c.pid);
        let mut subs = self.shared.subs();
        // The publisher writes `head` only under this lock: exact.
        let head = self.topic.head_now();
        let start = head - history.min(head);
        page.published().store(head, Ordering::Release);
        page.cursor().store(start, Ordering::Release);
        let id = subs.next_id;
        let packet = Packet::Welcome { start }.encode();
        let fds = [self.topic.fd(), page.fd()];
        control.send(&[IoSlice::new(&packet)], &SendMeta::new().fds(&fds), Wait::Never)?;
        sys::io::epoll_add(self.epoll.as_fd(), control.fd(), SUBSCRIBER | id).map_err(os("epoll_ctl"))?;
        subs.next_id += 1;
        subs.list.push(Sub { id, page, control: dup, watch: Watch::new(start), pid });
        subs.fresh = true;
        Ok(id)
    }
}
