//! Copy or map? Sending N bytes to another process, every way ipckit
//! offers, each a round trip: the parent sends the N bytes, the peer
//! takes them and answers with an 8-byte acknowledgement (the length it
//! got), and the parent times the whole exchange.
//!
//! | row | the N bytes | the acknowledgement |
//! | --- | --- | --- |
//! | `copy-kernel` | a message on a Unix stream socket (ipckit [`Connection`], `len32`); the kernel copies them in and out | the same socket |
//! | `map-each` | a sealed memfd per message ([`Connection::send_sealed`]); the receiver copies them out of its mapping | the same socket |
//! | `copy-shm` | copied through a `shm:` ring (`?inline=N&pool=0`, a ring large enough: [`ring_for`]) and out with `recv_into` | a second `shm:` channel |
//! | `map-pool` | a loan from the sender's pool (`Sender::loan`), only its reference through the ring (variants below) | a second `shm:` channel |
//! | `hybrid` | `send(&[u8])` with `?inline=auto`, as a user would: copied up to the threshold in force, through the pool above it; `recv_into` | a second `shm:` channel |
//!
//! The `map-pool` variants: `untouched` (loan, send; the receiver takes the
//! sample and drops it unread: what the reference costs), `writer-fills`
//! (the sender copies the N bytes into the loan; the receiver does not
//! read), `fill-and-read` (the receiver also copies every byte out with
//! `read_at`, as `copy-shm` does with `recv_into`). Built with
//! `compare-iceoryx2`, iceoryx2's own writer-fills loan joins the 1 MiB
//! trials (`iceoryx`).
//!
//! Every `shm:` channel of the table busy-polls (`?wait=busy`) on both
//! sides, as the `shm-busy` rows do: the rows differ in how the bytes
//! travel, not in how the processes wait. The sender does not touch what
//! it sent again before the acknowledgement, so the receiver never reads
//! bytes being written.
//!
//! Trials of the rows alternate, as elsewhere, in an order that rotates
//! from one round to the next (the runner). From the medians: the
//! fastest row per size (among those that deliver every byte to the
//! reader), and the crossover: the smallest size from which `map-pool
//! fill-and-read` beats `copy-shm` at that size and every larger one (a
//! size the ring cannot hold counts as a win for the pool). The threshold
//! `ipckit bench --save-threshold` saves is the largest message below it
//! (one byte less; without a crossover, the largest size: copying won).

use std::fmt;

use anyhow::{Context, Result, bail, ensure};
use ipckit::socket::{Connection, Listener};
use ipckit::{Endpoint, Options, Receiver, Sender, Unsent};

use super::catalogue::{Experiment, Mode, Role};
use super::link::{Buffer, Rounds, Sample, time_rounds};
use super::meeting::{Meeting, SETUP_TIMEOUT};
use super::plan::Plan;
use super::process::{self, Peer};
use super::runner::Bench;
use super::shm::await_sender;

/// The sizes compared.
pub(super) const SIZES: [usize; 9] = [64, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];

/// The largest message: every link's maximum.
pub(super) const MAX: usize = 16 << 20;

/// The largest ring `copy-shm` uses: 32 MiB, which holds the 16 MiB
/// messages (a ring of `size` bytes holds messages up to `size - 8`).
pub(super) const RING_MAX: usize = 32 << 20;

/// The smallest ring: the receiver's default, 1 MiB.
const RING_MIN: usize = 1 << 20;

/// A ring record's header: a ring of `size` bytes holds messages of up
/// to `size - RECORD_HEADER` bytes.
const RECORD_HEADER: usize = 8;

/// The acknowledgement: the length received, `u64` little-endian.
const ACK: usize = 8;

/// The size at which iceoryx2's writer-fills loan is measured.
#[cfg(feature = "compare-iceoryx2")]
pub(super) const ICEORYX2_SIZE: usize = 1 << 20;

/// What a `map-pool` receiver and sender do with the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Variant {
    /// Only the reference travels; nobody touches the bytes.
    Untouched,
    /// The sender fills the loan; the receiver does not read.
    WriterFills,
    /// The sender fills the loan; the receiver reads every byte.
    FillAndRead,
}

impl Variant {
    /// The name in the JSON document's `variant`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Variant::Untouched => "untouched",
            Variant::WriterFills => "writer-fills",
            Variant::FillAndRead => "fill-and-read",
        }
    }
}

/// A row of the table: one way to get the bytes across.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    CopyKernel,
    CopyShm,
    MapEach,
    MapPool(Variant),
    Hybrid,
    /// iceoryx2 0.10's loan, filled by the writer, not read.
    #[cfg(feature = "compare-iceoryx2")]
    Iceoryx2WriterFills,
}

impl Way {
    /// The rows, in the order of the table and of the trials.
    pub(super) const ALL: [Way; 7] = [
        Way::CopyKernel,
        Way::CopyShm,
        Way::MapEach,
        Way::MapPool(Variant::Untouched),
        Way::MapPool(Variant::WriterFills),
        Way::MapPool(Variant::FillAndRead),
        Way::Hybrid,
    ];

    /// The row's name: in the table, `--filter` and the JSON document
    /// (`mechanism`).
    pub(super) fn name(self) -> &'static str {
        match self {
            Way::CopyKernel => "copy-kernel",
            Way::CopyShm => "copy-shm",
            Way::MapEach => "map-each",
            Way::MapPool(_) => "map-pool",
            Way::Hybrid => "hybrid",
            #[cfg(feature = "compare-iceoryx2")]
            Way::Iceoryx2WriterFills => "iceoryx2",
        }
    }

    /// The JSON document's `variant`: `map-pool`'s (and iceoryx2's).
    pub(super) fn variant(self) -> Option<&'static str> {
        match self {
            Way::MapPool(v) => Some(v.name()),
            #[cfg(feature = "compare-iceoryx2")]
            Way::Iceoryx2WriterFills => Some(Variant::WriterFills.name()),
            _ => None,
        }
    }

    /// Whether every byte reaches the reader (the rows the fastest is
    /// chosen from).
    pub(super) fn delivers(self) -> bool {
        match self {
            Way::MapPool(Variant::Untouched | Variant::WriterFills) => false,
            #[cfg(feature = "compare-iceoryx2")]
            Way::Iceoryx2WriterFills => false,
            _ => true,
        }
    }

    /// The peer's mode.
    pub(super) fn mode(self) -> Mode {
        match self {
            Way::CopyKernel => Mode::CopyKernel,
            Way::CopyShm => Mode::CopyShm,
            Way::MapEach => Mode::MapEach,
            Way::MapPool(Variant::Untouched) => Mode::MapPoolUntouched,
            Way::MapPool(Variant::WriterFills) => Mode::MapPoolWriterFills,
            Way::MapPool(Variant::FillAndRead) => Mode::MapPoolFillAndRead,
            Way::Hybrid => Mode::Hybrid,
            #[cfg(feature = "compare-iceoryx2")]
            Way::Iceoryx2WriterFills => Mode::Iceoryx2,
        }
    }

    /// The row of a peer's mode.
    pub(super) fn of(mode: Mode) -> Option<Way> {
        #[cfg(feature = "compare-iceoryx2")]
        if mode == Mode::Iceoryx2 {
            return Some(Way::Iceoryx2WriterFills);
        }
        Way::ALL.into_iter().find(|w| w.mode() == mode)
    }

    /// How the row moves the bytes, for the JSON document: the endpoint
    /// options of both sides of the channel that carries them (for
    /// `hybrid`, with `inline_max` the threshold in force).
    pub(super) fn how(self, size: usize, inline_max: usize) -> String {
        match self {
            Way::CopyKernel => "unix: stream socket: send, recv_into".to_owned(),
            Way::MapEach => "unix: stream socket: send_sealed, recv (meta.sealed)".to_owned(),
            Way::CopyShm | Way::MapPool(_) | Way::Hybrid => match self.queries(size, inline_max) {
                Some((receiver, sender)) => format!("shm: receiver ?{receiver}, sender ?{sender}"),
                None => "shm: (n/a)".to_owned(),
            },
            #[cfg(feature = "compare-iceoryx2")]
            Way::Iceoryx2WriterFills => "iceoryx2 ipc::Service publish-subscribe: loan_slice_uninit".to_owned(),
        }
    }

    /// The endpoint options of a `shm:` row's channel that carries the N
    /// bytes: (the receiver's, the sender's); `None` for a `copy-shm`
    /// message over the largest ring, and for the other rows.
    fn queries(self, size: usize, inline_max: usize) -> Option<(String, String)> {
        let receiver = |ring: usize| format!("wait=busy&size={ring}");
        match self {
            Way::CopyShm => Some((receiver(ring_for(size)?), format!("wait=busy&inline={size}&pool=0"))),
            Way::MapPool(_) => Some((receiver(RING_MIN), "wait=busy".to_owned())),
            Way::Hybrid => Some((receiver(hybrid_ring(size, inline_max)), "wait=busy&inline=auto".to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variant() {
            Some(v) => write!(f, "{} {v}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// The ring `copy-shm` copies a `size`-byte message through: the next
/// power of two that holds it, at least the default 1 MiB; `None` over
/// [`RING_MAX`] (the row is "n/a" there).
pub(super) fn ring_for(size: usize) -> Option<usize> {
    let ring = (size + RECORD_HEADER).next_power_of_two().max(RING_MIN);
    (ring <= RING_MAX).then_some(ring)
}

/// The ring of `hybrid` at `size`: the one `copy-shm` has where hybrid
/// copies (up to the threshold), so that what it copies fits.
fn hybrid_ring(size: usize, inline_max: usize) -> usize {
    ring_for(size.min(inline_max)).unwrap_or(RING_MAX)
}

/// The rows measured at `size`, of those `wanted`: all but `copy-shm` over
/// the largest ring; with `compare-iceoryx2`, iceoryx2 at 1 MiB.
pub(super) fn measured_at(wanted: &[Way], size: usize) -> Vec<Way> {
    #[allow(unused_mut)]
    let mut ways: Vec<Way> =
        wanted.iter().copied().filter(|&w| w != Way::CopyShm || ring_for(size).is_some()).collect();
    #[cfg(feature = "compare-iceoryx2")]
    if size == ICEORYX2_SIZE && wanted.contains(&Way::MapPool(Variant::WriterFills)) {
        ways.push(Way::Iceoryx2WriterFills);
    }
    ways
}

/// Every link's options: room for the largest size.
fn options() -> Options {
    Options::new().max_message(MAX)
}

/// Exchanges per trial: a few dozen milliseconds of work at every size, so
/// that a round of every row's trials stays short. An untouched
/// loan costs the same at every size: as many as the smallest.
pub(super) fn rounds(way: Way, size: usize, plan: &Plan) -> Rounds {
    let size = if way == Way::MapPool(Variant::Untouched) { SIZES[0] } else { size };
    let (warmup, timed) = match size {
        s if s <= 4 << 10 => (30, 300),
        s if s <= 64 << 10 => (20, 200),
        s if s <= 256 << 10 => (10, 80),
        s if s <= 1 << 20 => (5, 30),
        s if s <= 4 << 20 => (3, 12),
        _ => (2, 6),
    };
    plan.iters_or(match plan.quick {
        false => Rounds { warmup, timed },
        true => Rounds { warmup: warmup.div_ceil(4), timed: timed.div_ceil(4) },
    })
}

/// The 8-byte acknowledgement of `len` bytes.
fn ack(len: usize) -> [u8; ACK] {
    (len as u64).to_le_bytes()
}

/// Checks an acknowledgement of `size` bytes: `got` bytes received into
/// `ack_buf`.
fn check_ack(got: usize, ack_buf: &[u8; ACK], size: usize) -> Result<()> {
    ensure!(got == ACK && *ack_buf == ack(size), "a wrong acknowledgement (did the peer fail?)");
    Ok(())
}

/// One trial of `way`: a fresh peer, `rounds(way, size)` exchanges of
/// `payload` (the size's bytes), timed by this side. `inline_max` is the
/// `auto` threshold in force (for `hybrid`'s ring).
pub(super) fn trial(bench: &Bench, way: Way, payload: &[u8], inline_max: usize, n: usize) -> Result<Sample> {
    let size = payload.len();
    let rounds = rounds(way, size, &bench.plan);
    let cmd = bench.peer_command(Role::Experiment(Experiment::CopyMap), way.mode(), size, rounds.total());
    match way {
        Way::CopyKernel | Way::MapEach => kernel_trial(bench, cmd, way, payload, rounds, n),
        Way::CopyShm | Way::MapPool(_) | Way::Hybrid => shm_trial(cmd, way, payload, inline_max, rounds, n),
        #[cfg(feature = "compare-iceoryx2")]
        Way::Iceoryx2WriterFills => super::iceoryx::writer_fills_trial(cmd, payload, rounds, n),
    }
}

/// A trial over a Unix stream socket: the parent listens, the peer
/// connects.
fn kernel_trial(
    bench: &Bench,
    mut cmd: std::process::Command,
    way: Way,
    payload: &[u8],
    rounds: Rounds,
    n: usize,
) -> Result<Sample> {
    let size = payload.len();
    let path = bench.scratch.dir().join(format!("copy-map-{size}-{}-{n}.sock", way.mode().name()));
    let ep: Endpoint = format!("unix:{}", path.display()).parse().context("socket path in the scratch directory")?;
    let listener = Listener::bind_with(&ep, &options())?;
    cmd.args(Meeting::listener(listener.local_endpoint()).args());
    let peer = Peer::spawn(&mut cmd, None)?;
    let outcome = (|| {
        let mut conn = listener.accept_timeout(SETUP_TIMEOUT).context("wait for the peer to connect")?;
        let mut got = [0u8; ACK];
        time_rounds(rounds, |_| {
            match way {
                Way::MapEach => conn.send_sealed(payload)?,
                _ => conn.send(payload)?,
            }
            let (len, _) = conn.recv_into(&mut got)?;
            check_ack(len, &got, size)
        })
    })();
    peer.finish(outcome)
}

/// A `shm:` channel of a trial: `shm:ipckit-bench-PID-copymap-SIZE-MODE-N-WHICH?QUERY`
/// (an abstract name: nothing to remove afterwards).
fn endpoint(way: Way, size: usize, n: usize, which: &str, query: &str) -> Result<Endpoint> {
    let (pid, mode) = (std::process::id(), way.mode().name());
    Ok(format!("shm:ipckit-bench-{pid}-copymap-{size}-{mode}-{n}-{which}?{query}").parse()?)
}

/// A trial over two `shm:` channels: the N bytes down (the peer's ring),
/// the acknowledgement up (the parent's).
fn shm_trial(
    mut cmd: std::process::Command,
    way: Way,
    payload: &[u8],
    inline_max: usize,
    rounds: Rounds,
    n: usize,
) -> Result<Sample> {
    let size = payload.len();
    let (receiver, sender) = way.queries(size, inline_max).context("not a row that fits a shm: channel")?;
    let up = endpoint(way, size, n, "up", "wait=busy")?;
    let down = endpoint(way, size, n, "down", &receiver)?;
    let to_peer = endpoint(way, size, n, "down", &sender)?;
    let mut rx = Receiver::bind_with(&up, &options())?;
    cmd.args(Meeting::mailboxes(&up, &down).args());
    let peer = Peer::spawn(&mut cmd, Some(process::wake_inbox(up)))?;
    // The channels are closed when this returns, before the peer is
    // awaited.
    let outcome = (|| {
        await_sender(&mut rx)?;
        let mut tx = Sender::connect_timeout(&to_peer, &options(), SETUP_TIMEOUT)?;
        let mut got = [0u8; ACK];
        time_rounds(rounds, |_| {
            match way {
                Way::MapPool(Variant::Untouched) => tx.loan(size)?.send().map_err(Unsent::into_error)?,
                Way::MapPool(_) => {
                    let mut loan = tx.loan(size)?;
                    loan.copy_from_slice(payload);
                    loan.send().map_err(Unsent::into_error)?;
                }
                _ => tx.send(payload)?,
            }
            let (len, _) = rx.recv_into(&mut got)?;
            check_ack(len, &got, size)
        })
    })();
    drop(rx);
    peer.finish(outcome)
}

/// The peer: receives `iterations` messages of `size` bytes the way of
/// `mode`, and acknowledges each.
pub(super) fn peer(mode: Mode, size: usize, iterations: usize, meeting: &Meeting) -> Result<()> {
    ensure!((1..=MAX).contains(&size), "--size {size} is not 1 to {MAX}");
    let Some(way) = Way::of(mode) else {
        bail!("mode {} does not apply to copy-map", mode.name());
    };
    let mut buf = Buffer::zeroed(size);
    let check = |i: usize, len: usize| -> Result<()> {
        ensure!(len == size, "message {}: {len} bytes, expected {size}", i + 1);
        Ok(())
    };
    match way {
        Way::CopyKernel | Way::MapEach => {
            let mut conn = Connection::connect_timeout(&meeting.connect()?, &options(), SETUP_TIMEOUT)?;
            for i in 0..iterations {
                let what = || format!("receive message {}", i + 1);
                let len = match way {
                    Way::MapEach => {
                        let msg = conn.recv().with_context(what)?;
                        let sealed = msg.meta.sealed.with_context(|| format!("message {}: not sealed", i + 1))?;
                        check(i, sealed.len())?;
                        // Read out of the mapping; the memfd is unmapped
                        // and closed when `sealed` drops.
                        buf.copy_from_slice(sealed.as_bytes());
                        sealed.len()
                    }
                    _ => conn.recv_into(&mut buf).with_context(what)?.0,
                };
                check(i, len)?;
                std::hint::black_box(&mut buf);
                conn.send(&ack(len))?;
            }
        }
        Way::CopyShm | Way::MapPool(_) | Way::Hybrid => {
            // The inbox first: the parent connects to it once this has
            // joined the parent's.
            let mut rx = Receiver::bind_with(&meeting.inbox()?, &options())?;
            let mut tx = Sender::connect_timeout(&meeting.connect()?, &options(), SETUP_TIMEOUT)?;
            for i in 0..iterations {
                let what = || format!("receive message {}", i + 1);
                let len = match way {
                    Way::MapPool(variant) => {
                        let sample = rx.recv_sample().with_context(what)?;
                        ensure!(sample.is_in_place(), "message {}: a loan that is not in the pool", i + 1);
                        check(i, sample.len())?;
                        if variant == Variant::FillAndRead {
                            sample.read_at(0, &mut buf)?;
                        }
                        // Dropping the sample gives its chunks back.
                        sample.len()
                    }
                    _ => rx.recv_into(&mut buf).with_context(what)?.0,
                };
                check(i, len)?;
                std::hint::black_box(&mut buf);
                tx.send(&ack(len))?;
            }
        }
        #[cfg(feature = "compare-iceoryx2")]
        Way::Iceoryx2WriterFills => {
            let mut link = super::iceoryx::open_peer(meeting, ACK)?;
            for i in 0..iterations {
                let len = link.recv_untouched().with_context(|| format!("receive message {}", i + 1))?;
                check(i, len)?;
                super::link::Link::send(&mut link, &ack(len))?;
            }
        }
    }
    Ok(())
}
