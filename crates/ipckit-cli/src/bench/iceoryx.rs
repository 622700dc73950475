//! iceoryx2 0.10 beside ipckit's `shm:` channel (`--features
//! compare-iceoryx2`): the busy ping-pong over two publish-subscribe
//! services of byte slices, one each way, as iceoryx2's own benchmark sets
//! them up (no history, a buffer of one sample, `ipc::Service`).
//!
//! Copies in and out, as ipckit's channel makes: a send loans a slice of
//! the message's length and copies the message into it; a receive
//! busy-polls `receive` and copies the sample's payload out into the
//! caller's buffer. Both processes busy-poll.
//!
//! And in the copy-vs-map table, at 1 MiB: the writer fills a loaned slice
//! (`write_from_slice`), the reader takes the sample and drops it unread,
//! an 8-byte acknowledgement back; beside `map-pool writer-fills`.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;

use super::link::{Buffer, Link, Rounds, Sample, time_round_trips, time_rounds};
use super::meeting::{Meeting, SETUP_TIMEOUT};
use super::plan::MAX_MESSAGE;
use super::process::{Alarm, Peer};
use super::shm::ShmJob;

type Service = ipc::Service;

/// One end of the ping-pong. Fields drop in order: the ports, then the
/// services, then the node.
#[derive(Debug)]
pub(super) struct IceoryxLink {
    publisher: Publisher<Service, [u8], ()>,
    subscriber: Subscriber<Service, [u8], ()>,
    /// The parent's: set when the peer died.
    dead: Option<Arc<AtomicBool>>,
    _services: [PubSub<Service, [u8], ()>; 2],
    _node: Node<Service>,
}

/// An iceoryx2 error, in words.
fn failed(what: impl std::fmt::Display, e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("iceoryx2: {what}: {e:?}")
}

/// A node that installs no signal handlers and says only errors.
fn node() -> Result<Node<Service>> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<Service>()
        .map_err(|e| failed("create a node", e))
}

fn service_name(name: &str) -> Result<ServiceName> {
    ServiceName::new(name).map_err(|e| failed(format!("service name {name:?}"), e))
}

impl IceoryxLink {
    /// Publishes on service `publish` and subscribes to `subscribe`, which
    /// are created (the parent) or exist (the peer).
    fn join(node: Node<Service>, publish: &str, subscribe: &str, create: bool, size: usize) -> Result<IceoryxLink> {
        let open = |name: &str| -> Result<PubSub<Service, [u8], ()>> {
            let builder = node.service_builder(&service_name(name)?).publish_subscribe::<[u8]>();
            match create {
                true => builder
                    .max_publishers(1)
                    .max_subscribers(1)
                    .history_size(0)
                    .subscriber_max_buffer_size(1)
                    .create()
                    .map_err(|e| failed(format!("create service {name}"), e)),
                false => builder.open().map_err(|e| failed(format!("open service {name}"), e)),
            }
        };
        let (outgoing, incoming) = (open(publish)?, open(subscribe)?);
        // The subscriber first: once the publisher shows, both are there.
        let subscriber =
            incoming.subscriber_builder().create().map_err(|e| failed(format!("subscribe to {subscribe}"), e))?;
        let publisher = outgoing
            .publisher_builder()
            .initial_max_slice_len(size.max(1))
            .create()
            .map_err(|e| failed(format!("publish on {publish}"), e))?;
        Ok(IceoryxLink { publisher, subscriber, dead: None, _services: [outgoing, incoming], _node: node })
    }

    /// Whether the other side's ports are there: a subscriber to what this
    /// side publishes, a publisher of what it subscribes to.
    fn other_side_joined(&self) -> bool {
        let [outgoing, incoming] = &self._services;
        outgoing.dynamic_config().number_of_subscribers() >= 1 && incoming.dynamic_config().number_of_publishers() >= 1
    }
}

impl Link for IceoryxLink {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let sample = self.publisher.loan_slice_uninit(msg.len()).map_err(|e| failed("loan", e))?;
        sample.write_from_slice(msg).send().map_err(|e| failed("send", e))?;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            if let Some(sample) = self.subscriber.receive().map_err(|e| failed("receive", e))? {
                let payload = sample.payload();
                ensure!(payload.len() <= buf.len(), "a {}-byte sample", payload.len());
                buf[..payload.len()].copy_from_slice(payload);
                return Ok(payload.len());
            }
            if self.dead.as_ref().is_some_and(|d| d.load(Ordering::Relaxed)) {
                bail!("the peer died");
            }
            std::hint::spin_loop();
        }
    }
}

impl IceoryxLink {
    /// Busy-polls for the next sample and drops it unread; its length.
    pub(super) fn recv_untouched(&mut self) -> Result<usize> {
        loop {
            if let Some(sample) = self.subscriber.receive().map_err(|e| failed("receive", e))? {
                return Ok(sample.payload().len());
            }
            if self.dead.as_ref().is_some_and(|d| d.load(Ordering::Relaxed)) {
                bail!("the peer died");
            }
            std::hint::spin_loop();
        }
    }

    /// The parent's side of a trial: creates both services, spawns the
    /// peer (`cmd`) with their names and waits for its ports; then `run`.
    fn parent_trial(
        mut cmd: Command,
        (down, up): (String, String),
        size: usize,
        run: impl FnOnce(&mut IceoryxLink) -> Result<Sample>,
    ) -> Result<Sample> {
        let mut link = IceoryxLink::join(node()?, &down, &up, true, size)?;
        cmd.args(Meeting { objects: vec![down, up], ..Meeting::default() }.args());
        let dead = Arc::new(AtomicBool::new(false));
        link.dead = Some(dead.clone());
        let alarm: Alarm = Box::new(move || dead.store(true, Ordering::Relaxed));
        let peer = Peer::spawn(&mut cmd, Some(alarm))?;
        let outcome = (|| {
            let deadline = Instant::now() + SETUP_TIMEOUT;
            while !link.other_side_joined() {
                ensure!(link.dead.as_ref().is_none_or(|d| !d.load(Ordering::Relaxed)), "the peer died");
                ensure!(Instant::now() < deadline, "the peer's iceoryx2 ports did not appear within {SETUP_TIMEOUT:?}");
                // Set-up only, not timed: iceoryx2 has no event for a new port.
                std::thread::sleep(Duration::from_micros(200));
            }
            run(&mut link)
        })();
        drop(link);
        peer.finish(outcome)
    }
}

/// The names of a trial's two services under `base`: (parent to peer,
/// peer to parent).
fn names(base: &str) -> (String, String) {
    (format!("{base}/down"), format!("{base}/up"))
}

/// One trial: creates both services, spawns the peer (`cmd`) with their
/// names, waits for its ports, and times the round trips.
pub(super) fn trial(cmd: Command, job: ShmJob, rounds: Rounds, n: usize) -> Result<Sample> {
    let base = format!("ipckit-bench/{}/{}-{}-{n}", std::process::id(), job.row.name(), job.size);
    IceoryxLink::parent_trial(cmd, names(&base), job.size, |link| {
        let mut buf = Buffer::payload(MAX_MESSAGE);
        time_round_trips(link, &mut buf, job.size, rounds)
    })
}

/// A copy-vs-map trial: `payload` written into a loaned slice each round
/// (the writer fills), an 8-byte acknowledgement back.
pub(super) fn writer_fills_trial(cmd: Command, payload: &[u8], rounds: Rounds, n: usize) -> Result<Sample> {
    let size = payload.len();
    let base = format!("ipckit-bench/{}/copymap-{size}-{n}", std::process::id());
    IceoryxLink::parent_trial(cmd, names(&base), size, |link| {
        let mut ack = [0u8; 8];
        time_rounds(rounds, |_| {
            link.send(payload)?;
            let len = link.recv(&mut ack)?;
            ensure!(len == 8 && ack == (size as u64).to_le_bytes(), "a wrong acknowledgement (did the peer fail?)");
            Ok(())
        })
    })
}

/// The peer's end: opens the parent's services (`--object DOWN --object
/// UP`), subscribes to the first and publishes on the second.
pub(super) fn open_peer(meeting: &Meeting, size: usize) -> Result<IceoryxLink> {
    let [down, up] = &meeting.objects[..] else {
        bail!("two --object service names are required in iceoryx2 mode");
    };
    IceoryxLink::join(node()?, up, down, false, size).context("join the parent's services")
}
