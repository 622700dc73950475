//! Publish-subscribe on `shm:` (`pubsub`): 64 bytes through
//! `ipckit::pubsub::{Publisher, Subscriber}`, the publisher in this
//! process and every subscriber a peer process, beside the `shm:` channel
//! round trip that waits the same way (`shm-spin`), in the same rotating
//! trials.
//!
//! | row | the parent times |
//! | --- | --- |
//! | `pubsub-shm-1sub` | `publish` → 1 subscriber, which sends the message back on a `shm:` channel: publish to echo |
//! | `pubsub-shm-4sub` | `publish` → 4 subscribers (4 peers, all on the peer's CPU), each sending the message back on the same `shm:` channel (a ring each): publish to the 4th echo |
//! | `pubsub-shm-2topics` | `publish` → 1 subscriber, which publishes the message back on a second topic, to which the parent subscribes: publish to echo, publish-subscribe both ways |
//! | plain (`shm-spin`) | two `shm:` channels, `?wait=block` |
//!
//! Topics and channels all have `?wait=block` with the default spin
//! window (50 µs, then park): a subscriber waits as a `shm:` receiver in
//! blocking mode does, which is why the plain round trip is `shm-spin`'s
//! and not `shm-park`'s (`?spin=0`). Topics have no history, and the
//! parent publishes only once every subscriber is there; with one message
//! in flight, `overflow=block` never holds the publisher back.
//!
//! Topics and channels have abstract names (a topic: `@ipckit/topic/...`
//! and a memfd), gone with their processes: nothing to remove.

use anyhow::{Context, Result, bail, ensure};
use ipckit::pubsub::{Publisher, Subscriber};
use ipckit::{Endpoint, Options, Receiver, Sender};

use super::catalogue::{Experiment, Mode, Role};
use super::link::{Buffer, Sample, time_rounds};
use super::meeting::{Meeting, SETUP_TIMEOUT};
use super::plan::MAX_MESSAGE;
use super::process::{self, Peer};
use super::runner::Bench;
use super::shm::{ShmRow, await_senders, plain_trial};

/// Bytes in every message.
pub(super) const SIZE: usize = 64;

/// The plain round trip: the `shm:` channel in the same waiting mode.
pub(super) const PLAIN: ShmRow = ShmRow::Spin;

/// The endpoint options of every topic and channel: [`PLAIN`]'s.
const QUERY: &str = "wait=block";

/// A row of the publish-subscribe table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PubsubRow {
    OneSubscriber,
    FourSubscribers,
    TwoTopics,
}

impl PubsubRow {
    pub(super) const ALL: [PubsubRow; 3] = [PubsubRow::OneSubscriber, PubsubRow::FourSubscribers, PubsubRow::TwoTopics];

    /// The name in tables, `--filter` and the JSON document.
    pub(super) fn name(self) -> &'static str {
        match self {
            PubsubRow::OneSubscriber => "pubsub-shm-1sub",
            PubsubRow::FourSubscribers => "pubsub-shm-4sub",
            PubsubRow::TwoTopics => "pubsub-shm-2topics",
        }
    }

    pub(super) fn mode(self) -> Mode {
        match self {
            PubsubRow::OneSubscriber => Mode::Pubsub1,
            PubsubRow::FourSubscribers => Mode::Pubsub4,
            PubsubRow::TwoTopics => Mode::PubsubTopics,
        }
    }

    /// The row a mode measures.
    pub(super) fn of(mode: Mode) -> Option<PubsubRow> {
        PubsubRow::ALL.into_iter().find(|row| row.mode() == mode)
    }

    /// Subscriber processes.
    pub(super) fn subscribers(self) -> usize {
        match self {
            PubsubRow::FourSubscribers => 4,
            _ => 1,
        }
    }

    /// How each message comes back, in a word.
    pub(super) fn back(self) -> &'static str {
        match self {
            PubsubRow::TwoTopics => "topic",
            _ => "shm-channel",
        }
    }
}

/// The rows wanted, measured in the same trials as the plain round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PubsubGroup {
    /// At least one.
    pub(super) rows: Vec<PubsubRow>,
}

impl PubsubGroup {
    /// The group of the rows `wanted` (by name), if any is.
    pub(super) fn new(wanted: impl Fn(&str) -> bool) -> Option<PubsubGroup> {
        let rows: Vec<PubsubRow> = PubsubRow::ALL.into_iter().filter(|row| wanted(row.name())).collect();
        (!rows.is_empty()).then_some(PubsubGroup { rows })
    }

    /// The modes whose trials rotate: the plain round trip (ipckit) first.
    pub(super) fn modes(&self) -> Vec<Mode> {
        std::iter::once(Mode::Ipckit).chain(self.rows.iter().map(|row| row.mode())).collect()
    }
}

/// Options of the channels back: the plain round trip's.
fn options() -> Options {
    Options::new().max_message(MAX_MESSAGE)
}

/// `shm:ipckit-bench-PID-TAG-WHICH?wait=block`: a topic or a channel.
fn endpoint(tag: &str, which: &str) -> Result<Endpoint> {
    Ok(format!("shm:ipckit-bench-{}-{tag}-{which}?{QUERY}", std::process::id()).parse()?)
}

/// One trial in `mode`: the plain round trip (`Ipckit`) or a row's.
pub(super) fn trial(bench: &Bench, mode: Mode, n: usize) -> Result<Sample> {
    let rounds = bench.plan.rounds(SIZE);
    let tag = format!("pubsub-{}-{n}", mode.name());
    if mode == Mode::Ipckit {
        return plain_trial(bench, PLAIN, SIZE, &tag, rounds);
    }
    let row = PubsubRow::of(mode).with_context(|| format!("mode {} does not apply to pubsub", mode.name()))?;
    let mut publisher = Publisher::bind_with(&endpoint(&tag, "topic")?, &Options::new())?;
    let back = endpoint(&tag, "back")?;
    let payload = Buffer::payload(SIZE);
    let peer_command = || {
        let mut cmd = bench.peer_command(Role::Experiment(Experiment::PubsubSubscriber), mode, SIZE, rounds.total());
        cmd.args(Meeting { objects: vec![publisher.name().to_owned(), back.to_string()], ..Meeting::default() }.args());
        cmd
    };
    match row {
        PubsubRow::OneSubscriber | PubsubRow::FourSubscribers => {
            let count = row.subscribers();
            let mut rx = Receiver::bind_with(&back, &options())?;
            // Each peer is killed and reaped on drop, whatever fails.
            let mut peers = Vec::with_capacity(count);
            for _ in 0..count {
                peers.push(Peer::spawn(&mut peer_command(), Some(process::wake_inbox(back.clone())))?);
            }
            let outcome = (|| {
                await_senders(&mut rx, count)?;
                publisher.wait_for_subscribers(count, Some(SETUP_TIMEOUT))?;
                let mut buf = Buffer::zeroed(MAX_MESSAGE);
                time_rounds(rounds, |i| {
                    publisher.publish(&payload)?;
                    for _ in 0..count {
                        let (len, _) = rx.recv_into(&mut buf)?;
                        ensure!(len == SIZE, "round {i}: a {len}-byte echo, not {SIZE} (did a subscriber fail?)");
                    }
                    Ok(())
                })
            })();
            drop((rx, publisher));
            peers.into_iter().fold(outcome, |outcome, peer| peer.finish(outcome))
        }
        PubsubRow::TwoTopics => {
            // No alarm: if the peer dies, its topic is gone, and the
            // subscriber here is `Disconnected`.
            let peer = Peer::spawn(&mut peer_command(), None)?;
            let outcome = (|| {
                let mut sub = Subscriber::connect_timeout(&back, &Options::new(), SETUP_TIMEOUT)
                    .context("subscribe to the peer's topic")?;
                publisher.wait_for_subscribers(1, Some(SETUP_TIMEOUT))?;
                time_rounds(rounds, |i| {
                    publisher.publish(&payload)?;
                    let len = sub.recv()?.data.len();
                    ensure!(len == SIZE, "round {i}: a {len}-byte echo, not {SIZE}");
                    Ok(())
                })
            })();
            drop(publisher);
            peer.finish(outcome)
        }
    }
}

/// The peer of a row: subscribes to the first `--object` (a topic) and
/// sends each of `iterations` messages of `size` bytes back: to the
/// `shm:` channel of the second, or (`pubsub-2topics`) publishes it on the
/// topic of the second, once the parent has subscribed.
pub(super) fn peer(mode: Mode, size: usize, iterations: usize, meeting: &Meeting) -> Result<()> {
    let [topic, back] = &meeting.objects[..] else {
        bail!("--object TOPIC --object BACK is required for a pubsub subscriber");
    };
    let (topic, back): (Endpoint, Endpoint) = (topic.parse()?, back.parse()?);
    let row = PubsubRow::of(mode).with_context(|| format!("mode {} does not apply to pubsub", mode.name()))?;
    let mut sub = Subscriber::connect_timeout(&topic, &Options::new(), SETUP_TIMEOUT)
        .with_context(|| format!("subscribe to {topic}"))?;
    let mut send_back = match row {
        PubsubRow::TwoTopics => {
            let mut publisher = Publisher::bind_with(&back, &Options::new())?;
            publisher.wait_for_subscribers(1, Some(SETUP_TIMEOUT))?;
            Back::Topic(publisher)
        }
        _ => Back::Channel(Box::new(Sender::connect_timeout(&back, &options(), SETUP_TIMEOUT)?)),
    };
    for i in 1..=iterations {
        let msg = sub.recv().with_context(|| format!("receive message {i}"))?;
        ensure!(msg.data.len() == size, "message {i}: expected {size} bytes, got {}", msg.data.len());
        send_back.send(&msg.data).with_context(|| format!("send message {i} back"))?;
    }
    Ok(())
}

/// Where a subscriber sends each message back.
#[derive(Debug)]
enum Back {
    Channel(Box<Sender>),
    Topic(Publisher),
}

impl Back {
    fn send(&mut self, msg: &[u8]) -> ipckit::Result<()> {
        match self {
            Back::Channel(tx) => tx.send(msg),
            Back::Topic(publisher) => publisher.publish(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_select_by_filter() {
        let all = PubsubGroup::new(|name| name.contains("pubsub")).expect("every row");
        assert_eq!(all.rows, PubsubRow::ALL);
        assert_eq!(all.modes(), [Mode::Ipckit, Mode::Pubsub1, Mode::Pubsub4, Mode::PubsubTopics]);
        let four = PubsubGroup::new(|name| name.contains("4sub")).expect("one row");
        assert_eq!(four.rows, [PubsubRow::FourSubscribers]);
        assert!(PubsubGroup::new(|name| name.contains("rpc")).is_none());
    }
}
