//! What a trial can run: the message mechanisms and how each joins two
//! processes, the other experiments, and the modes (ipckit or raw, copy or
//! map, request-response, publish-subscribe, async, iceoryx2), with the
//! dispatch of a message trial to `api` or `raw`.

use std::process::Command;

use anyhow::{Result, bail};
use clap::ValueEnum;

use super::link::Link;
use super::meeting::{Meeting, Pending, Spot};
use super::{api, raw};

/// A message mechanism under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Mechanism {
    Pipe,
    Fifo,
    UnixStream,
    UnixSeqpacket,
    UnixDgram,
    Tcp,
    Mq,
    SysvMq,
}

/// How the two processes of a trial are joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// Two anonymous pipes, one each way, inherited by the peer.
    Pipes,
    /// Each side owns an inbox the other sends to (FIFO, datagram socket).
    Mailboxes,
    /// The parent listens, the peer connects; one socket both ways.
    Connection,
    /// Two message queues, one each way, both created by the parent.
    Queues,
}

impl Mechanism {
    pub(super) const ALL: [Mechanism; 8] = [
        Mechanism::Pipe,
        Mechanism::Fifo,
        Mechanism::UnixStream,
        Mechanism::UnixSeqpacket,
        Mechanism::UnixDgram,
        Mechanism::Tcp,
        Mechanism::Mq,
        Mechanism::SysvMq,
    ];

    /// The name in tables, `--filter` and `--mechanism`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Mechanism::Pipe => "pipe",
            Mechanism::Fifo => "fifo",
            Mechanism::UnixStream => "unix-stream",
            Mechanism::UnixSeqpacket => "unix-seqpacket",
            Mechanism::UnixDgram => "unix-dgram",
            Mechanism::Tcp => "tcp",
            Mechanism::Mq => "mq",
            Mechanism::SysvMq => "sysv-mq",
        }
    }

    /// How the two processes of a trial are joined.
    pub(super) fn shape(self) -> Shape {
        match self {
            Mechanism::Pipe => Shape::Pipes,
            Mechanism::Fifo | Mechanism::UnixDgram => Shape::Mailboxes,
            Mechanism::UnixStream | Mechanism::UnixSeqpacket | Mechanism::Tcp => Shape::Connection,
            Mechanism::Mq | Mechanism::SysvMq => Shape::Queues,
        }
    }
}

/// A peer that is not a message echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Experiment {
    /// Copy or map: receives N bytes one of the table's ways and
    /// acknowledges them.
    CopyMap,
    /// Takes its turns of a mutex-protected turn word.
    MutexHandoff,
    /// Answers each event with the other.
    EventPingpong,
    /// Shared memory (`shm`): echoes every message, both sides
    /// busy-polling.
    ShmBusy,
    /// Echoes every message, blocking mode (spin, then park).
    ShmSpin,
    /// Echoes every message, parking at once (no spin).
    ShmPark,
    /// Streams records one way.
    ShmStream,
    /// Request-response (`rpc`): serves the parent's calls.
    RpcServer,
    /// Publish-subscribe (`pubsub`): subscribes to the parent's topic and
    /// sends every message back.
    PubsubSubscriber,
    /// Async (`async_io`): echoes every message through
    /// `ipckit::tokio`.
    AsyncEcho,
}

impl Experiment {
    pub(super) fn name(self) -> &'static str {
        match self {
            Experiment::CopyMap => "copy-map",
            Experiment::MutexHandoff => "mutex-handoff",
            Experiment::EventPingpong => "event-pingpong",
            Experiment::ShmBusy => "shm-busy",
            Experiment::ShmSpin => "shm-spin",
            Experiment::ShmPark => "shm-park",
            Experiment::ShmStream => "shm-stream",
            Experiment::RpcServer => "rpc-server",
            Experiment::PubsubSubscriber => "pubsub-subscriber",
            Experiment::AsyncEcho => "async-echo",
        }
    }
}

/// What a peer does: echo messages, or another experiment.
#[derive(Clone, Copy, Debug)]
pub(super) enum Role {
    Echo(Mechanism),
    Experiment(Experiment),
}

/// Which implementation a trial runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Mode {
    /// ipckit's public API.
    Ipckit,
    /// Direct system calls, the same ones ipckit makes (shared memory:
    /// the floor, see `floor`).
    Raw,
    /// Copy or map: through a Unix stream socket.
    CopyKernel,
    /// Copy or map: copied through a `shm:` ring.
    CopyShm,
    /// Copy or map: a sealed memfd per message.
    MapEach,
    /// Copy or map: a pool loan, the reference only.
    MapPoolUntouched,
    /// Copy or map: a pool loan the writer fills.
    MapPoolWriterFills,
    /// Copy or map: a pool loan the writer fills and the reader reads.
    MapPoolFillAndRead,
    /// Copy or map: `send` with `?inline=auto`.
    Hybrid,
    /// Request-response: calls through `ipckit::rpc`.
    Rpc,
    /// Request-response: typed calls through `ipckit::typed` (serde,
    /// postcard).
    RpcTyped,
    /// Publish-subscribe: publish to one subscriber, which sends each
    /// message back on a `shm:` channel.
    #[value(name = "pubsub-1sub")]
    Pubsub1,
    /// Publish-subscribe: publish to four subscribers, each sending each
    /// message back on the same `shm:` channel.
    #[value(name = "pubsub-4sub")]
    Pubsub4,
    /// Publish-subscribe: publish to one subscriber, which publishes each
    /// message back on a second topic.
    #[value(name = "pubsub-2topics")]
    PubsubTopics,
    /// Async: `ipckit::tokio` in both processes, each receive awaited in
    /// the reactor.
    Async,
    /// Async: the same, each receive spinning for the spin window before
    /// it awaits.
    AsyncSpin,
    /// Shared memory: iceoryx2 0.10 (`--features compare-iceoryx2`).
    #[cfg(feature = "compare-iceoryx2")]
    Iceoryx2,
}

impl Mode {
    /// The order of trials within each pair of the ipckit-vs-raw tables.
    pub(super) const PAIR: [Mode; 2] = [Mode::Ipckit, Mode::Raw];

    pub(super) fn name(self) -> &'static str {
        match self {
            Mode::Ipckit => "ipckit",
            Mode::Raw => "raw",
            Mode::CopyKernel => "copy-kernel",
            Mode::CopyShm => "copy-shm",
            Mode::MapEach => "map-each",
            Mode::MapPoolUntouched => "map-pool-untouched",
            Mode::MapPoolWriterFills => "map-pool-writer-fills",
            Mode::MapPoolFillAndRead => "map-pool-fill-and-read",
            Mode::Hybrid => "hybrid",
            Mode::Rpc => "rpc",
            Mode::RpcTyped => "rpc-typed",
            Mode::Pubsub1 => "pubsub-1sub",
            Mode::Pubsub4 => "pubsub-4sub",
            Mode::PubsubTopics => "pubsub-2topics",
            Mode::Async => "async",
            Mode::AsyncSpin => "async-spin",
            #[cfg(feature = "compare-iceoryx2")]
            Mode::Iceoryx2 => "iceoryx2",
        }
    }

    /// The parent's side of a message trial, before the peer is spawned.
    pub(super) fn prepare(self, mech: Mechanism, spot: &Spot<'_>, cmd: &mut Command) -> Result<(Meeting, Pending)> {
        match self {
            Mode::Ipckit => api::prepare(mech, spot, cmd),
            Mode::Raw => raw::prepare(mech, spot, cmd),
            other => bail!("mode {} does not apply to {}", other.name(), mech.name()),
        }
    }

    /// The peer's side of a message trial.
    pub(super) fn open_peer(self, mech: Mechanism, meeting: &Meeting) -> Result<Box<dyn Link>> {
        match self {
            Mode::Ipckit => api::open_peer(mech, meeting),
            Mode::Raw => raw::open_peer(mech, meeting),
            other => bail!("mode {} does not apply to {}", other.name(), mech.name()),
        }
    }
}
