//! A `shm:` topic's subscriber: the topic memory mapped read-only, its
//! cursor page, its control connection (the publisher's wake packets come
//! on it) and a doorbell of its own, both in one epoll set (what `poll_fd`
//! hands out).

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::control::{self, Packet, Refusal};
use super::memory::{CursorPage, MappedTopic};
use super::protocol::Reader;
use super::{Config, spin};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::options::Options;
use crate::socket::Connection;
use crate::sys;
use crate::transport::Io;
use crate::wait::{Got, Wait, until_peer_ready};

/// Epoll data of the doorbell and of the control connection.
const DOORBELL: u64 = 0;
const CONTROL: u64 = 1;
/// How long a `try_connect` waits for the publisher's welcome.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The subscribing end of a `shm:` topic.
#[derive(Debug)]
pub(crate) struct ShmSubscriber {
    name: Arc<str>,
    cfg: Config,
    control: Io,
    epoll: OwnedFd,
    /// Its own eventfd (never handed to the publisher): keeps `poll_fd`
    /// readable when a `try_recv` gave up racing with the publisher.
    doorbell: OwnedFd,
    topic: MappedTopic,
    page: CursorPage,
    reader: Reader,
    events: Vec<u64>,
    /// `PARKED` is set on `published` (a `try_recv` that was `Empty`).
    armed: bool,
    /// The publisher is gone: what it published is read, then `Eof`.
    gone: bool,
    /// The publisher broke the protocol: every receive fails.
    broken: Option<String>,
}

impl ShmSubscriber {
    pub(crate) fn connect(ep: &Endpoint, opts: &Options, history: u64, wait: Wait) -> Result<Self> {
        let cfg = Config::new(ep, opts, "subscribe")?;
        // `?size=` is the publisher's: the topic's slots are what it made.
        let name: Arc<str> = ep.to_string().into();
        let mut control = until_peer_ready(wait, "subscribe", ep, |w| {
            Connection::connect_wait(&cfg.control, &Config::control_opts(), w).map_err(|e| match e.kind() {
                ErrorKind::NotFound | ErrorKind::Disconnected => {
                    Error::new(ErrorKind::NotFound, "subscribe", ep, "no publisher is bound to this topic")
                }
                _ => e,
            })
        })?
        .into_io();
        let publisher = control.peer_credentials().ok_or_else(|| {
            Error::new(ErrorKind::PermissionDenied, "subscribe", ep, "the publisher's credentials are unknown")
        })?;
        if !crate::channel::shm::control::admits(cfg.mode, cfg.me, publisher) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "subscribe",
                ep,
                format!(
                    "the topic's publisher (pid {}) is uid {}, not this user (uid {}); ?mode= admits others",
                    publisher.pid, publisher.uid, cfg.me.0
                ),
            ));
        }
        let handshake = match wait {
            Wait::Never => Wait::timeout(HANDSHAKE),
            other => other,
        };
        let hello = Packet::Hello { history }.encode();
        control.send(&[IoSlice::new(&hello)], &SendMeta::new(), handshake)?;
        let answer = match control.recv(handshake)? {
            Got::Msg(m) => m,
            Got::Eof => {
                return Err(Error::new(
                    ErrorKind::Disconnected,
                    "subscribe",
                    ep,
                    "the publisher closed the connection",
                ));
            }
            Got::NotYet => {
                return Err(Error::new(ErrorKind::TimedOut, "subscribe", ep, "the publisher did not answer in time"));
            }
        };
        let start = match Packet::parse(&answer.data) {
            Some(Packet::Welcome { start }) => start,
            Some(Packet::Refused { reason, why }) => {
                let kind = match reason {
                    Some(Refusal::Permission) => ErrorKind::PermissionDenied,
                    Some(Refusal::History) => ErrorKind::Invalid,
                    Some(Refusal::Protocol) | None => ErrorKind::Corrupt,
                };
                return Err(Error::new(kind, "subscribe", ep, format!("the publisher refused: {why}")));
            }
            _ => {
                return Err(Error::new(ErrorKind::Corrupt, "subscribe", ep, "the publisher's answer is not a welcome"));
            }
        };
        let corrupt = |why: &str| Error::new(ErrorKind::Corrupt, "subscribe", ep, why.to_string());
        let mut fds = answer.meta.fds.into_iter();
        let (Some(topic), Some(page), None) = (fds.next(), fds.next(), fds.next()) else {
            return Err(corrupt("the welcome did not carry the topic and a cursor page"));
        };
        let topic = MappedTopic::open(topic, &name)?;
        let page = CursorPage::open(page, &name)?;
        let head = super::protocol::TopicMemory::head(&topic).load(std::sync::atomic::Ordering::Acquire);
        if !MappedTopic::sane_head(head) || start > head {
            return Err(corrupt(&format!("the welcome's start {start} is impossible ({head} messages published)")));
        }
        let os = |op: &'static str| move |e| Error::os(op, ep, e);
        let epoll = sys::io::epoll_create().map_err(os("epoll_create"))?;
        let doorbell = sys::io::eventfd().map_err(os("eventfd"))?;
        sys::io::epoll_add(epoll.as_fd(), doorbell.as_fd(), DOORBELL).map_err(os("epoll_ctl"))?;
        sys::io::epoll_add(epoll.as_fd(), control.fd(), CONTROL).map_err(os("epoll_ctl"))?;
        Ok(ShmSubscriber {
            name,
            cfg,
            control,
            epoll,
            doorbell,
            topic,
            page,
            reader: Reader::new(start, start),
            events: Vec::with_capacity(2),
            armed: false,
            gone: false,
            broken: None,
        })
    }

    fn corrupt(&self, why: &str) -> Error {
        Error::new(ErrorKind::Corrupt, "recv", &*self.name, format!("the publisher broke the topic's protocol: {why}"))
    }

    /// Looks at the control connection: takes the wake packets that
    /// came; its end is the publisher's.
    fn check_control(&mut self) {
        let mut scratch = [0u8; control::PACKET_MAX];
        for _ in 0..64 {
            match self.control.recv_into(&mut scratch, Wait::Never) {
                // Wake packets (anything else counts as one).
                Ok(Got::Msg(_)) => {}
                Ok(Got::NotYet) => return,
                Ok(Got::Eof) | Err(_) => {
                    self.gone = true;
                    let _ = sys::io::epoll_remove(self.epoll.as_fd(), self.control.fd());
                    return;
                }
            }
        }
    }

    /// The next message within `wait`.
    pub(crate) fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        if let Some(why) = &self.broken {
            return Err(self.corrupt(why));
        }
        if std::mem::take(&mut self.armed) {
            Reader::unpark(&self.page);
        }
        let mut looked = 0;
        let mut buf = Vec::new();
        loop {
            match self.reader.read(&self.topic, &mut buf) {
                Ok(Some(lost)) => {
                    if self.reader.progress(&self.page) {
                        control::wake(self.control.fd());
                    }
                    return Ok(Got::Msg(Message { data: buf, meta: Meta { lost, ..Meta::default() } }));
                }
                Ok(None) => {}
                Err(why) => {
                    let e = self.corrupt(&why);
                    self.broken = Some(why);
                    return Err(e);
                }
            }
            if self.gone {
                return Ok(Got::Eof);
            }
            if self.topic.is_closed() {
                self.gone = true;
                continue;
            }
            if matches!(wait, Wait::Never) {
                looked += 1;
                if looked == 1 {
                    self.check_control();
                    continue;
                }
                let _ = sys::io::eventfd_drain(self.doorbell.as_fd());
                self.check_control();
                if self.gone {
                    continue;
                }
                // Say it will wait, so that `poll_fd` turns readable.
                if self.reader.park(&self.page, &self.topic) {
                    self.armed = true;
                    return Ok(Got::NotYet);
                }
                if looked >= 3 {
                    // A publisher racing with every look: "nothing now",
                    // and `poll_fd` left readable so the caller looks again.
                    let _ = sys::io::eventfd_signal(self.doorbell.as_fd());
                    return Ok(Got::NotYet);
                }
                continue;
            }
            let window = self.cfg.window();
            let (reader, topic) = (&self.reader, &self.topic);
            if spin(window.unwrap_or(Duration::MAX), wait, || reader.ready(topic) || topic.is_closed()) {
                continue;
            }
            if wait.remaining() == Some(Duration::ZERO) {
                return Ok(Got::NotYet);
            }
            if window.is_none() {
                self.check_control();
                continue;
            }
            if self.reader.park(&self.page, &self.topic) {
                let n = sys::io::epoll_wait(self.epoll.as_fd(), &mut self.events, 2, wait);
                Reader::unpark(&self.page);
                let n = n.map_err(|e| Error::os("epoll_wait", &*self.name, e))?;
                for i in 0..n {
                    match self.events[i] {
                        DOORBELL => {
                            let _ = sys::io::eventfd_drain(self.doorbell.as_fd());
                        }
                        _ => self.check_control(),
                    }
                }
            }
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// An epoll set over the doorbell and the control connection: readable
    /// when a message came after a `try_recv` that was `Empty`, or when
    /// the publisher is gone.
    pub(crate) fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.epoll.as_fd())
    }
}
