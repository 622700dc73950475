//! Publish-subscribe: one [`Publisher`] binds a topic, any number of
//! [`Subscriber`]s connect, each reading at its own pace.
//!
//! | endpoint | how messages reach subscribers |
//! | --- | --- |
//! | `shm:NAME` | in place, from the publisher's ring (mapped read-only by subscribers), each subscriber with its own read position: no copy per subscriber. A topic is its own kind of object: `shm:NAME` as a topic never clashes with the channel `shm:NAME` |
//! | `unix:PATH`, `unix:@NAME`, `tcp:HOST:PORT` | fan-out from the publisher's process: one connection per subscriber (see the wire in `fanout`) |
//!
//! | endpoint option | side | meaning | default |
//! | --- | --- | --- | --- |
//! | `overflow=block` / `overflow=drop-oldest` | publisher | a subscriber that fell behind by what the topic holds holds the publisher back / loses the oldest messages, counted in [`Meta::lost`](crate::Meta) | `block` |
//! | `history=N` | publisher | the topic keeps the last N messages for subscribers that come later | 0 |
//! | `history=K` | subscriber | ask for up to K kept messages (also [`Options::history`]); more than the topic keeps is `Invalid` | 0 |
//!
//! Under `block`, a topic with no subscriber does not block: messages go
//! to the history only. A subscriber that dies is forgotten (under
//! `block` it no longer holds the publisher back). The publisher's end is
//! `Disconnected` for subscribers once they have read what was published.

mod fanout;
mod shm;

use std::time::Duration;

use crate::endpoint::{Endpoint, EndpointKind, UnixType};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::Message;
use crate::options::{Options, Overflow};
use crate::wait::{Got, Wait, not_yet};

/// A topic's settings from the publisher's endpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TopicConfig {
    pub(crate) overflow: Overflow,
    pub(crate) history: u64,
}

fn config(ep: &Endpoint) -> Result<TopicConfig> {
    let overflow = match ep.option("overflow") {
        Some(v) => crate::endpoint::parse_overflow(v).map_err(|why| Error::new(ErrorKind::Invalid, "bind", ep, why))?,
        None => Overflow::Block,
    };
    let history = ep.size_option("history")?.unwrap_or(0);
    Ok(TopicConfig { overflow, history })
}

#[derive(Debug)]
enum PubFlavor {
    Shm(Box<shm::ShmPublisher>),
    Fanout(fanout::FanoutPublisher),
}

#[derive(Debug)]
enum SubFlavor {
    Shm(Box<shm::ShmSubscriber>),
    Fanout(fanout::FanoutSubscriber),
}

fn unsupported(op: &'static str, ep: &Endpoint) -> Error {
    Error::new(ErrorKind::Unsupported, op, ep, "publish-subscribe runs on shm:, unix: (stream) and tcp: endpoints")
}

/// Publishes messages to a topic's subscribers.
#[derive(Debug)]
pub struct Publisher {
    flavor: PubFlavor,
    /// The endpoint subscribers use: the bound one without the topic's own
    /// options (`overflow`, `history`), which a subscriber would take as
    /// its own (`history=K` is what it asks for).
    name: String,
}

/// `name` without the publisher's options.
fn for_subscribers(name: &str) -> String {
    let Some((base, query)) = name.split_once('?') else { return name.to_string() };
    let kept: Vec<&str> =
        query.split('&').filter(|kv| !kv.starts_with("overflow=") && !kv.starts_with("history=")).collect();
    if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) }
}

impl Publisher {
    /// Binds the topic with default [`Options`].
    pub fn bind(ep: &Endpoint) -> Result<Publisher> {
        Publisher::bind_with(ep, &Options::default())
    }

    /// Binds the topic: `shm:` creates its ring, `unix:`/`tcp:` listen.
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<Publisher> {
        let topic = config(ep)?;
        let flavor = match ep.kind() {
            EndpointKind::Shm(_) => PubFlavor::Shm(Box::new(shm::ShmPublisher::bind(ep, opts, topic)?)),
            EndpointKind::Unix(UnixType::Stream, _) | EndpointKind::Tcp { .. } => {
                PubFlavor::Fanout(fanout::FanoutPublisher::bind(ep, opts, topic)?)
            }
            _ => return Err(unsupported("bind", ep)),
        };
        let name = for_subscribers(match &flavor {
            PubFlavor::Shm(p) => p.name(),
            PubFlavor::Fanout(p) => p.name(),
        });
        Ok(Publisher { flavor, name })
    }

    fn publish_wait(&mut self, msg: &[u8], wait: Wait) -> Result<()> {
        let sent = match &mut self.flavor {
            PubFlavor::Shm(p) => p.publish(msg, wait)?,
            PubFlavor::Fanout(p) => p.publish(msg, wait)?,
        };
        if sent { Ok(()) } else { Err(not_yet(wait, "publish", self.name())) }
    }

    /// Publishes `msg`. Under `overflow=block` waits while a subscriber is
    /// as far behind as the topic holds.
    pub fn publish(&mut self, msg: &[u8]) -> Result<()> {
        self.publish_wait(msg, Wait::Forever)
    }

    /// Publishes `msg` if no subscriber holds it back now (else `Full`).
    pub fn try_publish(&mut self, msg: &[u8]) -> Result<()> {
        self.publish_wait(msg, Wait::Never)
    }

    /// Publishes `msg`, waiting at most `timeout` (else `TimedOut`).
    pub fn publish_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.publish_wait(msg, Wait::timeout(timeout))
    }

    /// The subscribers connected now.
    pub fn subscribers(&mut self) -> usize {
        match &mut self.flavor {
            PubFlavor::Shm(p) => p.subscribers(),
            PubFlavor::Fanout(p) => p.subscribers(),
        }
    }

    /// Waits until at least `n` subscribers are connected, at most
    /// `timeout` (`None`: as long as it takes; then `TimedOut`).
    pub fn wait_for_subscribers(&mut self, n: usize, timeout: Option<Duration>) -> Result<()> {
        let wait = timeout.map_or(Wait::Forever, Wait::timeout);
        let ok = match &mut self.flavor {
            PubFlavor::Shm(p) => p.wait_for_subscribers(n, wait)?,
            PubFlavor::Fanout(p) => p.wait_for_subscribers(n, wait)?,
        };
        if ok { Ok(()) } else { Err(not_yet(wait, "wait for subscribers", self.name())) }
    }

    /// The topic's endpoint, as subscribers use it (for TCP port 0, the
    /// real port).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Conditions met that a user should hear of (subscribers dropped).
    pub fn take_warnings(&mut self) -> Vec<String> {
        match &mut self.flavor {
            PubFlavor::Shm(p) => p.take_warnings(),
            PubFlavor::Fanout(p) => p.take_warnings(),
        }
    }
}

/// Receives a topic's messages, at its own pace.
#[derive(Debug)]
pub struct Subscriber {
    flavor: SubFlavor,
}

impl Subscriber {
    /// Subscribes with default [`Options`], waiting for a publisher.
    pub fn connect(ep: &Endpoint) -> Result<Subscriber> {
        Subscriber::open(ep, &Options::default(), Wait::Forever)
    }

    /// Subscribes, waiting for a publisher.
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<Subscriber> {
        Subscriber::open(ep, opts, Wait::Forever)
    }

    /// Subscribes if a publisher is there now (else `NotFound`).
    pub fn try_connect(ep: &Endpoint, opts: &Options) -> Result<Subscriber> {
        Subscriber::open(ep, opts, Wait::Never)
    }

    /// Subscribes, waiting at most `timeout` for a publisher (`TimedOut`).
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<Subscriber> {
        Subscriber::open(ep, opts, Wait::timeout(timeout))
    }

    fn open(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Subscriber> {
        if ep.option("overflow").is_some() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "subscribe",
                ep,
                "option overflow is the publisher's (the topic's policy)",
            ));
        }
        let history = match ep.size_option("history")? {
            Some(k) => k,
            None => opts.history,
        };
        let flavor = match ep.kind() {
            EndpointKind::Shm(_) => SubFlavor::Shm(Box::new(shm::ShmSubscriber::connect(ep, opts, history, wait)?)),
            EndpointKind::Unix(UnixType::Stream, _) | EndpointKind::Tcp { .. } => {
                SubFlavor::Fanout(fanout::FanoutSubscriber::connect(ep, opts, history, wait)?)
            }
            _ => return Err(unsupported("subscribe", ep)),
        };
        Ok(Subscriber { flavor })
    }

    fn recv_wait(&mut self, wait: Wait) -> Result<Message> {
        let got = match &mut self.flavor {
            SubFlavor::Shm(s) => s.recv(wait)?,
            SubFlavor::Fanout(s) => s.recv(wait)?,
        };
        match got {
            Got::Msg(m) => Ok(m),
            Got::Eof => Err(Error::new(ErrorKind::Disconnected, "recv", self.name(), "the publisher is gone")),
            Got::NotYet => Err(not_yet(wait, "recv", self.name())),
        }
    }

    /// The next message; [`Meta::lost`](crate::Meta) says how many were
    /// lost just before it (`overflow=drop-oldest`). `Disconnected` once
    /// the publisher is gone and everything it published was read.
    pub fn recv(&mut self) -> Result<Message> {
        self.recv_wait(Wait::Forever)
    }

    /// The next message if one is there (else `Empty`).
    pub fn try_recv(&mut self) -> Result<Message> {
        self.recv_wait(Wait::Never)
    }

    /// The next message within `timeout` (else `TimedOut`).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message> {
        self.recv_wait(Wait::timeout(timeout))
    }

    /// The topic's endpoint.
    pub fn name(&self) -> &str {
        match &self.flavor {
            SubFlavor::Shm(s) => s.name(),
            SubFlavor::Fanout(s) => s.name(),
        }
    }

    /// A descriptor that turns readable when a message may be there or the
    /// publisher ended (for poll, epoll, tokio); receive with `try_recv`
    /// until `Empty` before waiting on it.
    pub fn poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match &self.flavor {
            SubFlavor::Shm(s) => s.poll_fd(),
            SubFlavor::Fanout(s) => s.poll_fd(),
        }
    }
}
