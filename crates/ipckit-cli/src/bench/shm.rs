//! Shared memory: ipckit's `shm:` channel beside the floors of `floor`
//! (and, built with `compare-iceoryx2`, beside iceoryx2).
//!
//! | row | ipckit | floor |
//! | --- | --- | --- |
//! | shm-busy (64 B, 4 KiB, 64 KiB) | a round trip over two channels, one each way (`?wait=busy`: both sides busy-poll) | the busy ping-pong: a turn word and a buffer per direction, copies in and out |
//! | shm-spin (64 B) | the same in blocking mode (`?wait=block`, the default spin window): the echo comes within the window, so nobody parks | the busy ping-pong |
//! | shm-park (64 B) | the same with `?spin=0`: every receive parks (a wake-up over the control connection) | the futex ping-pong: `FUTEX_WAIT` at once, no spin |
//! | shm-stream (64 B) | the peer streams records one way (`?wait=busy`), each with a sequence stamp the parent checks; the parent times batches | a ring of fixed slots, head and tail atomics, the same records and checks |
//!
//! The parent binds the channel it receives on (`...-up`), the peer the
//! one it receives on (`...-down`); each connects to the other's. Every
//! ping-pong trial runs in the loops of `link`, as the message table's do:
//! only the [`Link`] differs.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ipckit::{Endpoint, ErrorKind, Options, Receiver, Sender};

use super::api::Duplex;
use super::catalogue::{Experiment, Mode, Role};
use super::floor::{self, End, PingPong, Stream, Waiting};
use super::link::{self, Buffer, Link, Rounds, Sample, time_round_trips};
use super::meeting::{Meeting, SETUP_TIMEOUT};
use super::plan::{MAX_MESSAGE, Plan};
use super::process::{self, Alarm, Peer};
use super::report;
use super::runner::Bench;
use super::sync::{pass_page, peer_page};

/// A kind of row of the shared-memory table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ShmRow {
    Busy,
    Spin,
    Park,
    Stream,
}

impl ShmRow {
    pub(super) const ALL: [ShmRow; 4] = [ShmRow::Busy, ShmRow::Spin, ShmRow::Park, ShmRow::Stream];

    /// The name in tables, `--filter` and the JSON document (`mechanism`).
    pub(super) fn name(self) -> &'static str {
        self.experiment().name()
    }

    /// The peer's experiment.
    pub(super) fn experiment(self) -> Experiment {
        match self {
            ShmRow::Busy => Experiment::ShmBusy,
            ShmRow::Spin => Experiment::ShmSpin,
            ShmRow::Park => Experiment::ShmPark,
            ShmRow::Stream => Experiment::ShmStream,
        }
    }

    /// The row of a peer's experiment, if it is one of this table's.
    pub(super) fn of(e: Experiment) -> Option<ShmRow> {
        ShmRow::ALL.into_iter().find(|row| row.experiment() == e)
    }

    /// The message sizes measured.
    fn sizes(self) -> &'static [usize] {
        match self {
            ShmRow::Busy => &[64, 4 << 10, 64 << 10],
            ShmRow::Spin | ShmRow::Park => &[64],
            ShmRow::Stream => &[floor::RECORD],
        }
    }

    /// The endpoint options of the row's channels (both sides).
    pub(super) fn query(self) -> &'static str {
        match self {
            ShmRow::Busy | ShmRow::Stream => "wait=busy",
            ShmRow::Spin => "wait=block",
            ShmRow::Park => "spin=0",
        }
    }

    /// How the floor's receiver waits.
    fn waiting(self) -> Waiting {
        match self {
            ShmRow::Park => Waiting::Futex,
            _ => Waiting::Busy,
        }
    }

    /// What one measured value is the time of.
    pub(super) fn unit(self) -> &'static str {
        match self {
            ShmRow::Stream => "message",
            _ => "round trip",
        }
    }
}

/// Messages per timed batch of the stream row.
pub(super) const STREAM_BATCH: usize = 10_000;

/// One row of the shared-memory table: a kind of row at one size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ShmJob {
    pub(super) row: ShmRow,
    pub(super) size: usize,
}

impl ShmJob {
    /// Every job of the rows `wanted` (by name); `shm-busy` at `busy`
    /// (`--sizes`) instead of its own sizes, if given.
    pub(super) fn all(wanted: impl Fn(&str) -> bool, busy: Option<&[usize]>) -> Vec<ShmJob> {
        ShmRow::ALL
            .into_iter()
            .filter(|row| wanted(row.name()))
            .flat_map(|row| {
                let sizes = match (row, busy) {
                    (ShmRow::Busy, Some(sizes)) => sizes,
                    _ => row.sizes(),
                };
                sizes.iter().map(move |&size| ShmJob { row, size })
            })
            .collect()
    }

    /// How much a trial does: round trips; for the stream, messages of
    /// warm-up (`warmup`) and batches of [`STREAM_BATCH`] (`timed`).
    /// `--iters` sets the round trips, not the stream's batches.
    pub(super) fn rounds(self, plan: &Plan) -> Rounds {
        let (warmup, timed) = match (self.row, self.size) {
            (ShmRow::Stream, _) => (20_000, 40),
            // Each round trip is two wake-ups of tens of microseconds.
            (ShmRow::Park, _) => (100, 1000),
            (_, size) if size <= 4 << 10 => (1000, 10_000),
            _ => (200, 2000),
        };
        let rounds = match plan.quick {
            false => Rounds { warmup, timed },
            true => Rounds { warmup: warmup.div_ceil(4), timed: timed.div_ceil(4) },
        };
        match self.row {
            ShmRow::Stream => rounds,
            _ => plan.iters_or(rounds),
        }
    }

    /// What the peer takes part in: round trips, or messages streamed.
    fn iterations(self, plan: &Plan) -> usize {
        let rounds = self.rounds(plan);
        match self.row {
            ShmRow::Stream => rounds.warmup + rounds.timed * STREAM_BATCH,
            _ => rounds.total(),
        }
    }

    /// The modes measured, in the order trials alternate: ipckit and the
    /// floor; with `compare-iceoryx2`, iceoryx2 too on the busy rows.
    pub(super) fn modes(self) -> &'static [Mode] {
        #[cfg(feature = "compare-iceoryx2")]
        if self.row == ShmRow::Busy {
            return &[Mode::Ipckit, Mode::Raw, Mode::Iceoryx2];
        }
        &Mode::PAIR
    }
}

impl fmt::Display for ShmJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.row.name(), report::size(self.size))
    }
}

/// The options of every channel: room for the largest message.
fn options() -> Options {
    Options::new().max_message(MAX_MESSAGE)
}

/// A channel of a trial: `shm:ipckit-bench-PID-ROW-SIZE-N-WHICH?QUERY`
/// (an abstract name: nothing to remove afterwards).
fn endpoint(job: ShmJob, n: usize, which: &str) -> Result<Endpoint> {
    let (pid, row, size, query) = (std::process::id(), job.row.name(), job.size, job.row.query());
    let text = format!("shm:ipckit-bench-{pid}-{row}-{size}-{n}-{which}?{query}");
    Ok(text.parse()?)
}

/// One trial of `job` in `mode`: a fresh peer on the other CPU.
pub(super) fn trial(bench: &Bench, job: ShmJob, mode: Mode, n: usize) -> Result<Sample> {
    let rounds = job.rounds(&bench.plan);
    let mut cmd =
        bench.peer_command(Role::Experiment(job.row.experiment()), mode, job.size, job.iterations(&bench.plan));
    match (job.row, mode) {
        (ShmRow::Stream, Mode::Ipckit) => {
            let ep = endpoint(job, n, "stream")?;
            let mut rx = Receiver::bind_with(&ep, &options())?;
            cmd.args(Meeting { connect: Some(ep.to_string()), ..Meeting::default() }.args());
            let peer = Peer::spawn(&mut cmd, Some(process::wake_inbox(ep)))?;
            let mut buf = Buffer::zeroed(MAX_MESSAGE);
            let outcome = time_stream(rounds, |seq| {
                let (len, _) = rx.recv_into(&mut buf)?;
                ensure!(len == floor::RECORD, "message {seq}: {len} bytes, not {} (did the peer fail?)", floor::RECORD);
                floor::check_stamp(&buf, seq)
            });
            drop(rx);
            peer.finish(outcome)
        }
        (ShmRow::Stream, Mode::Raw) => {
            let page = Stream::page()?;
            pass_page(&mut cmd, &page);
            let alarm: Alarm = Box::new(Stream::alarm(page.clone()));
            let peer = Peer::spawn(&mut cmd, Some(alarm))?;
            let mut ring = Stream::new(page)?;
            let mut buf = Buffer::zeroed(floor::RECORD);
            let outcome = time_stream(rounds, |seq| {
                ring.pop(&mut buf)?;
                floor::check_stamp(&buf, seq)
            });
            peer.finish(outcome)
        }
        (_, Mode::Ipckit) => {
            let (up, down) = (endpoint(job, n, "up")?, endpoint(job, n, "down")?);
            let mut rx = Receiver::bind_with(&up, &options())?;
            cmd.args(Meeting::mailboxes(&up, &down).args());
            let peer = Peer::spawn(&mut cmd, Some(process::wake_inbox(up)))?;
            // The link is closed when this returns, before the peer is
            // awaited.
            let outcome = (|| {
                await_sender(&mut rx)?;
                let tx = Sender::connect_timeout(&down, &options(), SETUP_TIMEOUT)?;
                ping_pong(&mut Duplex { rx, tx }, job.size, rounds)
            })();
            peer.finish(outcome)
        }
        (_, Mode::Raw) => {
            let page = PingPong::page()?;
            pass_page(&mut cmd, &page);
            let alarm: Alarm = Box::new(PingPong::alarm(page.clone()));
            let peer = Peer::spawn(&mut cmd, Some(alarm))?;
            let outcome = PingPong::new(page, End::Parent, job.row.waiting())
                .and_then(|mut link| ping_pong(&mut link, job.size, rounds));
            peer.finish(outcome)
        }
        #[cfg(feature = "compare-iceoryx2")]
        (ShmRow::Busy, Mode::Iceoryx2) => super::iceoryx::trial(cmd, job, rounds, n),
        (_, other) => bail!("mode {} does not apply to {}", other.name(), job.row.name()),
    }
}

/// The parent's round trips of `size` bytes over `link`.
fn ping_pong(link: &mut dyn Link, size: usize, rounds: Rounds) -> Result<Sample> {
    let mut buf = Buffer::payload(MAX_MESSAGE);
    time_round_trips(link, &mut buf, size, rounds)
}

/// The ipckit round trip of `row` (`shm-spin` or `shm-park`) at `size`
/// bytes, as the plain round trip of another table: two channels named
/// after `tag` (unique in the run) with the row's endpoint options, the
/// row's echo peer, `rounds` round trips.
pub(super) fn plain_trial(bench: &Bench, row: ShmRow, size: usize, tag: &str, rounds: Rounds) -> Result<Sample> {
    let name = |which: &str| -> Result<Endpoint> {
        Ok(format!("shm:ipckit-bench-{}-{tag}-{which}?{}", std::process::id(), row.query()).parse()?)
    };
    let (up, down) = (name("up")?, name("down")?);
    let mut cmd = bench.peer_command(Role::Experiment(row.experiment()), Mode::Ipckit, size, rounds.total());
    let mut rx = Receiver::bind_with(&up, &options())?;
    cmd.args(Meeting::mailboxes(&up, &down).args());
    let peer = Peer::spawn(&mut cmd, Some(process::wake_inbox(up)))?;
    // The link is closed when this returns, before the peer is awaited.
    let outcome = (|| {
        await_sender(&mut rx)?;
        let tx = Sender::connect_timeout(&down, &options(), SETUP_TIMEOUT)?;
        ping_pong(&mut Duplex { rx, tx }, size, rounds)
    })();
    peer.finish(outcome)
}

/// Receives on `rx` until the peer has joined as its sender (a `shm:`
/// receiver welcomes a sender only while it receives); a message before
/// that is an error. At most [`SETUP_TIMEOUT`].
pub(super) fn await_sender(rx: &mut Receiver) -> Result<()> {
    await_senders(rx, 1)
}

/// [`await_sender`] for `n` senders.
pub(super) fn await_senders(rx: &mut Receiver, n: usize) -> Result<()> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut buf = [0u8; 8];
    loop {
        match rx.try_recv_into(&mut buf) {
            Err(e) if e.kind() == ErrorKind::Empty => {}
            Ok((len, _)) => bail!("a {len}-byte message before the first round trip (did the peer fail?)"),
            Err(e) => return Err(e.into()),
        }
        if rx.connections() >= n {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let joined = rx.connections();
        ensure!(!left.is_zero(), "{joined} of {n} peers joined {} within {SETUP_TIMEOUT:?}", rx.name());
        // Readable when a sender connects or says hello.
        let fd = rx.poll_fd().context("a shm: receiver has a descriptor to poll")?;
        process::poll_readable(fd, Some(left.min(Duration::from_millis(100))));
    }
}

/// Receives `rounds.warmup` messages untimed, then `rounds.timed` batches of
/// [`STREAM_BATCH`], each by `next` with its sequence number (from 0 on);
/// the p50 and p99 of the batches' nanoseconds per message.
fn time_stream(rounds: Rounds, mut next: impl FnMut(u64) -> Result<()>) -> Result<Sample> {
    let mut seq = 0u64;
    for _ in 0..rounds.warmup {
        next(seq).context("warm-up message")?;
        seq += 1;
    }
    let mut per_message = Vec::with_capacity(rounds.timed);
    for _ in 0..rounds.timed {
        let start = Instant::now();
        for _ in 0..STREAM_BATCH {
            next(seq)?;
            seq += 1;
        }
        per_message.push(start.elapsed().as_nanos() as f64 / STREAM_BATCH as f64);
    }
    Ok(Sample::of_values(per_message))
}

/// The peer of a row: echoes `iterations` messages of `size` bytes, or
/// streams `iterations` records.
pub(super) fn peer(row: ShmRow, mode: Mode, size: usize, iterations: usize, meeting: &Meeting) -> Result<()> {
    let mut buf = Buffer::zeroed(MAX_MESSAGE);
    match (row, mode) {
        (ShmRow::Stream, Mode::Ipckit) => {
            let mut tx = Sender::connect_timeout(&meeting.connect()?, &options(), SETUP_TIMEOUT)?;
            for seq in 0..iterations as u64 {
                floor::stamp(&mut buf, seq);
                tx.send(&buf[..floor::RECORD]).with_context(|| format!("send record {seq}"))?;
            }
            Ok(())
        }
        (ShmRow::Stream, Mode::Raw) => {
            let mut ring = Stream::new(Arc::new(peer_page(meeting)?))?;
            for seq in 0..iterations as u64 {
                floor::stamp(&mut buf, seq);
                ring.push(&buf[..floor::RECORD]);
            }
            Ok(())
        }
        (_, Mode::Ipckit) => {
            // The inbox first: the parent connects to it once this has
            // joined the parent's.
            let rx = Receiver::bind_with(&meeting.inbox()?, &options())?;
            let tx = Sender::connect_timeout(&meeting.connect()?, &options(), SETUP_TIMEOUT)?;
            link::echo(&mut Duplex { rx, tx }, &mut buf, size, iterations)
        }
        (_, Mode::Raw) => {
            let mut link = PingPong::new(Arc::new(peer_page(meeting)?), End::Peer, row.waiting())?;
            link::echo(&mut link, &mut buf, size, iterations)
        }
        #[cfg(feature = "compare-iceoryx2")]
        (ShmRow::Busy, Mode::Iceoryx2) => {
            let mut link = super::iceoryx::open_peer(meeting, size)?;
            link::echo(&mut link, &mut buf, size, iterations)
        }
        (row, mode) => bail!("mode {} does not apply to {}", mode.name(), row.name()),
    }
}
