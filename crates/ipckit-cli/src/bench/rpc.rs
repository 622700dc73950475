//! Request-response: a call through `ipckit::rpc` (a 64-byte request, a
//! 64-byte reply), and a typed one through `ipckit::typed` (a [`Tick`] each
//! way, 64 bytes encoded), beside the plain round trip of the same
//! transport, in the same interleaved trials.
//!
//! | row | call | plain |
//! | --- | --- | --- |
//! | `rpc-TRANSPORT` | `rpc::Client::call` of 64 bytes; the peer's `rpc::Server` echoes the body | the message table's ipckit round trip of 64 bytes (`shm`: the `shm-spin` row's, two `shm:` channels in blocking mode) |
//! | `rpc-typed-TRANSPORT` | `typed::Client::<Tick, Tick>::call`; the peer's `typed::Server` answers the next tick | the same |
//!
//! For each transport, the trials of the plain round trip and of every
//! call row wanted rotate (plain, rpc, ...; then rpc, ..., plain), each a
//! fresh peer on the other CPU, and every mode makes the same round trips
//! (the message table's count for 64 bytes). The server is the peer; the
//! parent is the client and times each call.
//!
//! What the server would leave behind if it were killed is the parent's:
//! the request queue (`mq`, `sysv-mq`) is created by the parent,
//! exclusively under a fresh name, and removed once the peer is reaped;
//! a socket file lies in the scratch directory; `shm:` channels and the
//! queue servers' presence sockets have abstract names, gone with their
//! process.

use std::fmt;

use anyhow::{Context, Result, bail, ensure};
use ipckit::mq::{PosixQueue, SysvQueue};
use ipckit::rpc::{Client, Server};
use ipckit::{Endpoint, ErrorKind, Options, typed};
use serde::{Deserialize, Serialize};

use super::catalogue::{Experiment, Mechanism, Mode, Role};
use super::link::{Rounds, Sample, time_rounds};
use super::meeting::{Meeting, SETUP_TIMEOUT, Spot};
use super::plan::{Job, MAX_MESSAGE};
use super::process::Peer;
use super::queue;
use super::runner::Bench;
use super::shm::{ShmRow, plain_trial};

/// Bytes in every request and every reply.
pub(super) const SIZE: usize = 64;

/// The options of every client and server: the plain round trip's (see
/// `api`), so that only the API differs: a maximum message size, so that a
/// message socket needs no `MSG_PEEK` to learn a length first.
fn options() -> Options {
    Options::new().max_message(MAX_MESSAGE)
}

/// The transports request-response runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transport {
    UnixStream,
    UnixSeqpacket,
    Tcp,
    Shm,
    Mq,
    SysvMq,
}

impl Transport {
    pub(super) const ALL: [Transport; 6] = [
        Transport::UnixStream,
        Transport::UnixSeqpacket,
        Transport::Tcp,
        Transport::Shm,
        Transport::Mq,
        Transport::SysvMq,
    ];

    /// The name in row names (`rpc-NAME`) and the JSON document.
    pub(super) fn name(self) -> &'static str {
        match self {
            Transport::UnixStream => "unix-stream",
            Transport::UnixSeqpacket => "unix-seqpacket",
            Transport::Tcp => "tcp",
            Transport::Shm => "shm",
            Transport::Mq => "mq",
            Transport::SysvMq => "sysv-mq",
        }
    }

    /// The message mechanism of the plain round trip (`shm:` has none in
    /// the message table: its plain round trip is `shm-spin`'s).
    pub(super) fn mechanism(self) -> Option<Mechanism> {
        match self {
            Transport::UnixStream => Some(Mechanism::UnixStream),
            Transport::UnixSeqpacket => Some(Mechanism::UnixSeqpacket),
            Transport::Tcp => Some(Mechanism::Tcp),
            Transport::Shm => None,
            Transport::Mq => Some(Mechanism::Mq),
            Transport::SysvMq => Some(Mechanism::SysvMq),
        }
    }

    /// The row the plain round trip is, in a word.
    pub(super) fn plain_row(self) -> &'static str {
        match self {
            Transport::Shm => "shm-spin",
            other => other.name(),
        }
    }
}

/// The modes of the call rows.
pub(super) const CALLS: [Mode; 2] = [Mode::Rpc, Mode::RpcTyped];

/// The value of every typed request and reply: a market tick, 64 bytes in
/// postcard (a 2-byte varint `seq`, 8 bytes of `price`, a 1-byte length
/// and [`NAME`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Tick {
    pub(super) seq: u64,
    pub(super) price: f64,
    pub(super) name: String,
}

/// The instrument of every tick: 53 characters.
const NAME: &str = "XNAS:IPCKIT-BENCH-REQUEST-RESPONSE-TYPED-TICK-0000064";

/// The first tick's `seq`: every `seq` of a trial (fewer than 15,000 calls)
/// is a 2-byte varint.
const FIRST_SEQ: u64 = 1000;

impl Tick {
    /// The `i`th request of a trial.
    fn request(i: usize) -> Tick {
        Tick { seq: FIRST_SEQ + i as u64, price: 101.25, name: NAME.to_owned() }
    }

    /// What the server answers: the next tick of the same instrument.
    fn answer(self) -> Tick {
        Tick { seq: self.seq + 1, price: self.price + 0.25, ..self }
    }
}

/// The name of a call row: `rpc-TRANSPORT`.
pub(super) fn row_name(transport: Transport, call: Mode) -> String {
    format!("{}-{}", call.name(), transport.name())
}

/// The targets: the most a call may cost, as a multiple of the
/// plain round trip.
pub(super) fn target(call: Mode) -> f64 {
    match call {
        Mode::RpcTyped => 1.2,
        _ => 1.1,
    }
}

/// The call rows of one transport, measured in the same trials as its
/// plain round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RpcGroup {
    pub(super) transport: Transport,
    /// The call modes wanted (at least one).
    pub(super) calls: Vec<Mode>,
}

impl RpcGroup {
    /// A group for every transport with a call row `wanted` (by name).
    pub(super) fn all(wanted: impl Fn(&str) -> bool) -> Vec<RpcGroup> {
        Transport::ALL
            .into_iter()
            .filter_map(|transport| {
                let calls: Vec<Mode> = CALLS.into_iter().filter(|&c| wanted(&row_name(transport, c))).collect();
                (!calls.is_empty()).then_some(RpcGroup { transport, calls })
            })
            .collect()
    }

    /// Every row name there can be.
    pub(super) fn names() -> Vec<String> {
        Transport::ALL.into_iter().flat_map(|t| CALLS.map(|c| row_name(t, c))).collect()
    }

    /// The modes whose trials rotate: the plain round trip (ipckit) first.
    pub(super) fn modes(&self) -> Vec<Mode> {
        std::iter::once(Mode::Ipckit).chain(self.calls.iter().copied()).collect()
    }
}

impl fmt::Display for RpcGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rpc {}", self.transport.name())
    }
}

/// One trial of `transport` in `mode`: the plain round trip (`Ipckit`) or
/// calls.
pub(super) fn trial(bench: &Bench, transport: Transport, mode: Mode, n: usize) -> Result<Sample> {
    let rounds = bench.plan.rounds(SIZE);
    let tag = format!("rpc-{}-{}-{n}", transport.name(), mode.name());
    match (mode, transport.mechanism()) {
        (Mode::Ipckit, Some(mechanism)) => {
            let job = Job { mechanism, size: SIZE, kernel_max: false, limit: None };
            bench.echo_trial(job, Mode::Ipckit, tag)
        }
        (Mode::Ipckit, None) => plain_trial(bench, ShmRow::Spin, SIZE, &tag, rounds),
        (Mode::Rpc | Mode::RpcTyped, _) => {
            let queue_msgsize =
                transport.mechanism().and_then(|m| bench.plan.limits.of(m)).map_or(0, queue::queue_msgsize);
            let spot = Spot { scratch: &bench.scratch, tag, queue_msgsize };
            // Declared before the peer: dropped (the queue removed) only
            // once the peer is reaped, so that no server of a failed trial
            // can create it again.
            let (ep, _queue) = server_endpoint(transport, &spot)?;
            let mut cmd = bench.peer_command(Role::Experiment(Experiment::RpcServer), mode, SIZE, rounds.total());
            cmd.args(Meeting { inbox: Some(ep.to_string()), ..Meeting::default() }.args());
            let peer = Peer::spawn(&mut cmd, None)?;
            // The client is closed when this returns, before the peer is
            // awaited.
            let outcome = match mode {
                Mode::Rpc => time_calls(&ep, rounds),
                _ => time_typed_calls(&ep, rounds),
            };
            peer.finish(outcome)
        }
        (other, _) => bail!("mode {} does not apply to rpc-{}", other.name(), transport.name()),
    }
}

/// The body of every untyped request: a fixed pattern.
const PAYLOAD: [u8; SIZE] = {
    let mut bytes = [0u8; SIZE];
    let mut i = 0;
    while i < SIZE {
        bytes[i] = i as u8;
        i += 1;
    }
    bytes
};

/// Connects to the peer's server at `ep` and times `rounds` calls of
/// [`PAYLOAD`].
fn time_calls(ep: &Endpoint, rounds: Rounds) -> Result<Sample> {
    let client = Client::connect_timeout(ep, &options(), SETUP_TIMEOUT).context("connect to the peer's server")?;
    time_rounds(rounds, |_| {
        let got = client.call(&PAYLOAD)?.len();
        ensure!(got == SIZE, "expected a {SIZE}-byte reply, got {got} bytes");
        Ok(())
    })
}

/// Connects a typed client to the peer's server at `ep` and times
/// `rounds` calls, each with its own [`Tick`] (built before the clock
/// starts), each answer checked.
fn time_typed_calls(ep: &Endpoint, rounds: Rounds) -> Result<Sample> {
    let client = typed::Client::<Tick, Tick>::connect_timeout(ep, &options(), SETUP_TIMEOUT)
        .context("connect to the peer's server")?;
    let requests: Vec<Tick> = (0..rounds.total()).map(Tick::request).collect();
    time_rounds(rounds, |i| {
        let reply = client.call(&requests[i])?;
        ensure!(reply.seq == requests[i].seq + 1, "the answer to tick {} is tick {}", requests[i].seq, reply.seq);
        Ok(())
    })
}

/// A queue the parent owns for a trial, removed on drop.
#[derive(Debug)]
enum Owned {
    Posix(#[allow(dead_code)] PosixQueue),
    Sysv(#[allow(dead_code)] SysvQueue),
}

/// Where the peer's server binds: a socket file in the scratch directory,
/// a loopback port, an abstract `shm:` name, or a request queue that this
/// creates (returned with it: removed when dropped).
fn server_endpoint(transport: Transport, spot: &Spot<'_>) -> Result<(Endpoint, Option<Owned>)> {
    let create = Options::new().create(true).exclusive(true).unlink_on_drop(true);
    Ok(match transport {
        Transport::UnixStream | Transport::UnixSeqpacket => {
            let mechanism = transport.mechanism().expect("a socket mechanism");
            (spot.listen_at(mechanism)?, None)
        }
        // The kernel picks a free port; the peer binds it right away (with
        // SO_REUSEADDR): another program could take it in between, which
        // fails the trial, not the measure.
        Transport::Tcp => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("find a free loopback port")?
                .port();
            (format!("tcp:127.0.0.1:{port}").parse()?, None)
        }
        Transport::Shm => (format!("shm:ipckit-bench-{}-{}", std::process::id(), spot.tag).parse()?, None),
        Transport::Mq => {
            let (ep, q) = queue::create_unique(Mechanism::Mq, spot, "rpc", spot.queue_msgsize, |ep: &Endpoint| {
                unless_taken(PosixQueue::open(ep, &create))
            })?;
            (ep, Some(Owned::Posix(q)))
        }
        Transport::SysvMq => {
            let (ep, q) = queue::create_unique(Mechanism::SysvMq, spot, "rpc", spot.queue_msgsize, |ep: &Endpoint| {
                unless_taken(SysvQueue::open(ep, &create))
            })?;
            (ep, Some(Owned::Sysv(q)))
        }
    })
}

/// `Ok(None)` for a queue name that is taken.
fn unless_taken<T>(r: ipckit::Result<T>) -> Result<Option<T>> {
    match r {
        Ok(q) => Ok(Some(q)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The peer of a call trial: serves `iterations` requests at the endpoint
/// of `--inbox`, then exits.
pub(super) fn peer(mode: Mode, iterations: usize, meeting: &Meeting) -> Result<()> {
    let ep = meeting.inbox()?;
    match mode {
        Mode::Rpc => {
            let server = Server::bind_with(&ep, &options()).with_context(|| format!("bind the server at {ep}"))?;
            server.serve_count(iterations as u64, |req| Ok::<_, String>(req.body().to_vec()))?;
            Ok(())
        }
        Mode::RpcTyped => {
            let server = typed::Server::<Tick, Tick>::bind_with(&ep, &options())
                .with_context(|| format!("bind the server at {ep}"))?;
            server.serve_count(iterations as u64, |tick: Tick| Ok::<_, String>(tick.answer()))?;
            Ok(())
        }
        other => bail!("mode {} does not apply to the rpc server", other.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_select_by_filter() {
        let all = RpcGroup::all(|_| true);
        assert_eq!(all.len(), Transport::ALL.len());
        assert_eq!(RpcGroup::names()[0], "rpc-unix-stream");
        let tcp = RpcGroup::all(|name| name.contains("-tcp"));
        assert_eq!(tcp, vec![RpcGroup { transport: Transport::Tcp, calls: vec![Mode::Rpc, Mode::RpcTyped] }]);
        assert_eq!(tcp[0].modes(), [Mode::Ipckit, Mode::Rpc, Mode::RpcTyped]);
        let typed = RpcGroup::all(|name| name.contains("rpc-typed"));
        assert!(typed.len() == Transport::ALL.len() && typed.iter().all(|g| g.calls == [Mode::RpcTyped]));
        assert!(RpcGroup::all(|name| name.contains("pipe")).is_empty());
    }

    /// Every tick of a trial is as large as the untyped rows' body, both
    /// ways.
    #[test]
    fn ticks_are_64_bytes() {
        for i in [0, 1, 14_000] {
            let request = Tick::request(i);
            assert_eq!(typed::encode(&request, "test").unwrap().len(), SIZE, "{request:?}");
            let answer = request.answer();
            assert_eq!(typed::encode(&answer, "test").unwrap().len(), SIZE, "{answer:?}");
        }
    }
}
