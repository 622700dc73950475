//! Async (`async`): a 64-byte round trip through
//! `ipckit::tokio::{AsyncSender, AsyncReceiver}` in both processes, each
//! with a current-thread runtime, beside the blocking round trip that
//! waits the same way, each pair in the same interleaved trials.
//!
//! | row | async | plain |
//! | --- | --- | --- |
//! | `async-shm` | two `shm:` channels, `?spin=0`; every receive attempts once, then awaits the receiver's descriptor in the reactor | `shm-park`: the same channels, blocking, parking at once |
//! | `async-shm-spin` | two `shm:` channels, `?wait=block`; every receive first spins for the spin window (50 µs), then awaits as above | `shm-spin`: blocking, within the spin window |
//! | `async-unix-stream`, `async-tcp` | a `unix:` socket file (a TCP port on the loopback) each way: a `Receiver` bound by each process, a `Sender` to the other's | the message table's plain round trip: one `Connection` both ways |
//!
//! `AsyncReceiver` has no spin of its own: `async-shm-spin` spins in the
//! bench, with the blocking receive of the receiver inside
//! (`get_mut().recv_into_timeout(window)`, the channel's own spin on its
//! rings, bounded by the window and never parking), then awaits
//! `recv_into`. Not a loop of `try_recv_into`: an empty `try_recv` on
//! `shm:` makes an `epoll_wait` call and announces that the receiver
//! sleeps (`PARKED` on every ring, so that its descriptor turns
//! readable), so every look would be a system call and every message the
//! sender's doorbell.
//!
//! The parent binds its receiver, the peer its own and connects to the
//! parent's, then sends its receiver's name (a TCP port the kernel chose)
//! as the first message; the parent connects to it. `shm:` channels have
//! abstract names; socket files lie in the scratch directory.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ipckit::tokio::{AsyncReceiver, AsyncSender};
use ipckit::{DEFAULT_CHANNEL_SPIN, Endpoint, ErrorKind, Options, Sender};

use super::catalogue::{Experiment, Mechanism, Mode, Role};
use super::link::{Buffer, Rounds, Sample, Timings};
use super::meeting::{Meeting, SETUP_TIMEOUT};
use super::plan::{Job, MAX_MESSAGE};
use super::process::{self, Peer};
use super::runner::Bench;
use super::shm::{ShmRow, plain_trial};

/// Bytes in every message.
pub(super) const SIZE: usize = 64;

/// The target: the most an async round trip may cost, as a
/// multiple of the blocking one.
pub(super) const TARGET: f64 = 1.5;

/// A row of the async table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AsyncRow {
    Shm,
    ShmSpin,
    UnixStream,
    Tcp,
}

impl AsyncRow {
    pub(super) const ALL: [AsyncRow; 4] = [AsyncRow::Shm, AsyncRow::ShmSpin, AsyncRow::UnixStream, AsyncRow::Tcp];

    /// The name in tables, `--filter` and the JSON document.
    pub(super) fn name(self) -> &'static str {
        match self {
            AsyncRow::Shm => "async-shm",
            AsyncRow::ShmSpin => "async-shm-spin",
            AsyncRow::UnixStream => "async-unix-stream",
            AsyncRow::Tcp => "async-tcp",
        }
    }

    /// The rows `wanted` (by name).
    pub(super) fn all(wanted: impl Fn(&str) -> bool) -> Vec<AsyncRow> {
        AsyncRow::ALL.into_iter().filter(|row| wanted(row.name())).collect()
    }

    /// The transport, in a word.
    pub(super) fn transport(self) -> &'static str {
        match self {
            AsyncRow::Shm | AsyncRow::ShmSpin => "shm",
            AsyncRow::UnixStream => "unix-stream",
            AsyncRow::Tcp => "tcp",
        }
    }

    /// The async mode.
    pub(super) fn mode(self) -> Mode {
        match self {
            AsyncRow::ShmSpin => Mode::AsyncSpin,
            _ => Mode::Async,
        }
    }

    /// The row the plain round trip is.
    pub(super) fn plain_row(self) -> &'static str {
        match self {
            AsyncRow::Shm => ShmRow::Park.name(),
            AsyncRow::ShmSpin => ShmRow::Spin.name(),
            AsyncRow::UnixStream => Mechanism::UnixStream.name(),
            AsyncRow::Tcp => Mechanism::Tcp.name(),
        }
    }

    /// The endpoint options of the `shm:` channels (the plain row's).
    pub(super) fn query(self) -> Option<&'static str> {
        match self {
            AsyncRow::Shm => Some(ShmRow::Park.query()),
            AsyncRow::ShmSpin => Some(ShmRow::Spin.query()),
            _ => None,
        }
    }

    /// How long a receive spins before it awaits.
    pub(super) fn spin(self) -> Option<Duration> {
        (self == AsyncRow::ShmSpin).then_some(DEFAULT_CHANNEL_SPIN)
    }
}

/// The options of every end: the plain round trips'.
fn options() -> Options {
    Options::new().max_message(MAX_MESSAGE)
}

/// A current-thread runtime with the reactor and the timer.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("build a tokio runtime")
}

/// One trial of `row` in `mode`: the plain round trip (`Ipckit`) or the
/// async one.
pub(super) fn trial(bench: &Bench, row: AsyncRow, mode: Mode, n: usize) -> Result<Sample> {
    let rounds = bench.plan.rounds(SIZE);
    let tag = format!("{}-{}-{n}", row.name(), mode.name());
    match (mode, row) {
        (Mode::Ipckit, AsyncRow::Shm) => plain_trial(bench, ShmRow::Park, SIZE, &tag, rounds),
        (Mode::Ipckit, AsyncRow::ShmSpin) => plain_trial(bench, ShmRow::Spin, SIZE, &tag, rounds),
        (Mode::Ipckit, AsyncRow::UnixStream | AsyncRow::Tcp) => {
            let mechanism = if row == AsyncRow::Tcp { Mechanism::Tcp } else { Mechanism::UnixStream };
            bench.echo_trial(Job { mechanism, size: SIZE, kernel_max: false, limit: None }, Mode::Ipckit, tag)
        }
        (Mode::Async | Mode::AsyncSpin, _) => async_trial(bench, row, mode, &tag, rounds),
        (other, _) => bail!("mode {} does not apply to {}", other.name(), row.name()),
    }
}

/// The two receivers' endpoints: (the parent's, the peer's).
fn endpoints(bench: &Bench, row: AsyncRow, tag: &str) -> Result<(Endpoint, Endpoint)> {
    let text = |which: &str| match row {
        AsyncRow::Shm | AsyncRow::ShmSpin => {
            let query = row.query().expect("a shm: row");
            format!("shm:ipckit-bench-{}-{tag}-{which}?{query}", std::process::id())
        }
        AsyncRow::UnixStream => format!("unix:{}", bench.scratch.dir().join(format!("{tag}.{which}.sock")).display()),
        AsyncRow::Tcp => "tcp:127.0.0.1:0".to_owned(),
    };
    Ok((text("up").parse()?, text("down").parse()?))
}

/// The async round trip: both ends in this process's runtime, the peer's
/// in its own.
fn async_trial(bench: &Bench, row: AsyncRow, mode: Mode, tag: &str, rounds: Rounds) -> Result<Sample> {
    let (up, down) = endpoints(bench, row, tag)?;
    let rx = AsyncReceiver::bind_with(&up, &options())?;
    // For tcp: port 0, the port the kernel chose.
    let up: Endpoint = rx.name().parse()?;
    let mut cmd = bench.peer_command(Role::Experiment(Experiment::AsyncEcho), mode, SIZE, rounds.total());
    cmd.args(Meeting::mailboxes(&up, &down).args());
    let peer = Peer::spawn(&mut cmd, Some(process::wake_inbox(up)))?;
    // Every end is closed when this returns, before the peer is awaited.
    let outcome = runtime().and_then(|rt| {
        rt.block_on(async {
            let mut buf = Buffer::zeroed(MAX_MESSAGE);
            let mut rx = Spinning { rx, spin: row.spin() };
            let len = rx.recv(&mut buf).await.context("receive the peer's endpoint")?;
            let theirs: Endpoint = std::str::from_utf8(&buf[..len])
                .ok()
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("the peer's first message, {len} bytes, is no endpoint (did it fail?)"))?;
            let mut tx = AsyncSender::new(Sender::connect_timeout(&theirs, &options(), SETUP_TIMEOUT)?);
            let payload = Buffer::payload(SIZE);
            let mut timings = Timings::new()?;
            for i in 0..rounds.total() {
                let start = Instant::now();
                tx.send(&payload).await?;
                let len = rx.recv(&mut buf).await?;
                ensure!(len == SIZE, "round {i}: a {len}-byte echo, not {SIZE} (did the peer fail?)");
                if i >= rounds.warmup {
                    timings.record(start);
                }
            }
            Ok(timings.sample())
        })
    });
    peer.finish(outcome)
}

/// An async receiver that spins for `spin` (if any) before it awaits.
#[derive(Debug)]
struct Spinning {
    rx: AsyncReceiver,
    spin: Option<Duration>,
}

impl Spinning {
    /// Receives one message into `buf`: its length.
    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if let Some(window) = self.spin {
            // The blocking receive, bounded by the window: it spins on the
            // rings and, the window over, returns `TimedOut` without
            // parking.
            match self.rx.get_mut().recv_into_timeout(buf, window) {
                Ok((len, _)) => return Ok(len),
                Err(e) if e.kind() == ErrorKind::TimedOut => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.rx.recv_into(buf).await?.0)
    }
}

/// The peer: binds `--inbox`, connects to `--connect`, sends its
/// receiver's name, then echoes `iterations` messages of `size` bytes.
pub(super) fn peer(mode: Mode, size: usize, iterations: usize, meeting: &Meeting) -> Result<()> {
    let spin = match mode {
        Mode::Async => None,
        Mode::AsyncSpin => Some(DEFAULT_CHANNEL_SPIN),
        other => bail!("mode {} does not apply to the async echo", other.name()),
    };
    runtime()?.block_on(async {
        let rx = AsyncReceiver::bind_with(&meeting.inbox()?, &options())?;
        let mut tx = AsyncSender::new(Sender::connect_timeout(&meeting.connect()?, &options(), SETUP_TIMEOUT)?);
        tx.send(rx.name().as_bytes()).await.context("send this receiver's endpoint")?;
        let mut rx = Spinning { rx, spin };
        let mut buf = Buffer::zeroed(MAX_MESSAGE);
        for i in 1..=iterations {
            let len = rx.recv(&mut buf).await.with_context(|| format!("receive message {i}"))?;
            ensure!(len == size, "message {i}: expected {size} bytes, got {len}");
            tx.send(&buf[..len]).await.with_context(|| format!("echo message {i}"))?;
        }
        Ok(())
    })
}
