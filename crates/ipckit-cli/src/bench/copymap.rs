//! Copy or map? Sending N bytes to another process, two ways, over the same
//! kind of connection (a Unix stream socket, `len32` framing, ipckit's
//! [`Connection`]):
//!
//! - **copy**: the N bytes are the message. The kernel copies them into the
//!   socket and out again; the receiver gets them with `recv_into`.
//! - **map**: the sender writes the N bytes into a shared segment (a sealed
//!   memfd [`Region`], passed once over the socket when the trial starts)
//!   and sends an 8-byte note (offset and length, `u32` little-endian
//!   each). The receiver checks the note and reads the N bytes out of the
//!   segment with `read_at` into its own buffer (a copy in user space, no
//!   kernel copy).
//!
//! Either way the receiver then acknowledges with an 8-byte message (the
//! length it got), and the sender times the whole exchange. The sender does
//! not touch the segment again before the acknowledgement, so the receiver
//! never reads bytes being written.
//!
//! Trials of the two modes alternate, as elsewhere; the ratio is copy p50 /
//! map p50 (above 1: mapping is faster), and the crossover is the smallest
//! size from which mapping is faster at every larger size measured.

use anyhow::{Context, Result, bail, ensure};
use ipckit::shm::{Region, Trust};
use ipckit::socket::{Connection, Listener};
use ipckit::{Endpoint, Options, SendMeta};

use super::catalogue::{Experiment, Mode, Role};
use super::link::{Buffer, Rounds, Sample, time_rounds};
use super::meeting::{Meeting, SETUP_TIMEOUT};
use super::process::Peer;
use super::runner::Bench;

/// The sizes compared.
pub(super) const SIZES: [usize; 9] = [64, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];

/// The largest message: the connection's maximum.
pub(super) const MAX: usize = 16 << 20;

/// The note of the map mode: offset and length.
const NOTE: usize = 8;

/// The acknowledgement: the length received, `u64` little-endian.
const ACK: usize = 8;

/// The two modes, in the order trials alternate.
pub(super) const MODES: [Mode; 2] = [Mode::Copy, Mode::Map];

/// The connection's options: `len32` framing, room for the largest size.
fn options() -> Options {
    Options::new().max_message(MAX)
}

/// Exchanges per trial: a few dozen milliseconds of work at every size, so
/// that the whole table fits its share of the time budget.
pub(super) fn rounds(size: usize, quick: bool) -> Rounds {
    let (warmup, timed) = match size {
        s if s <= 4 << 10 => (30, 300),
        s if s <= 64 << 10 => (20, 200),
        s if s <= 256 << 10 => (10, 80),
        s if s <= 1 << 20 => (5, 30),
        s if s <= 4 << 20 => (3, 12),
        _ => (2, 6),
    };
    match quick {
        false => Rounds { warmup, timed },
        true => Rounds { warmup: warmup.div_ceil(4), timed: timed.div_ceil(4) },
    }
}

/// The 8-byte acknowledgement of `len` bytes.
fn ack(len: usize) -> [u8; ACK] {
    (len as u64).to_le_bytes()
}

/// One trial: a fresh peer, `rounds(size)` exchanges of `payload` (the
/// size's bytes), timed by this side.
pub(super) fn trial(bench: &Bench, mode: Mode, payload: &[u8], n: usize) -> Result<Sample> {
    let size = payload.len();
    let rounds = rounds(size, bench.plan.quick);
    let path = bench.scratch.dir().join(format!("copy-map-{size}-{}-{n}.sock", mode.name()));
    let ep: Endpoint = format!("unix:{}", path.display()).parse().context("socket path in the scratch directory")?;
    let listener = Listener::bind_with(&ep, &options())?;
    // The map mode's segment, made before the peer starts (not timed).
    let region = match mode {
        Mode::Map => Some(Region::memfd("ipckit-bench", size)?),
        _ => None,
    };
    let mut cmd = bench.peer_command(Role::Experiment(Experiment::CopyMap), mode, size, rounds.total());
    cmd.args(Meeting::listener(listener.local_endpoint()).args());
    let peer = Peer::spawn(&mut cmd, None)?;
    let outcome = (|| {
        let mut conn = listener.accept_timeout(SETUP_TIMEOUT).context("wait for the peer to connect")?;
        let mut got = [0u8; ACK];
        let mut check_ack = |conn: &mut Connection| -> Result<()> {
            let (n, _) = conn.recv_into(&mut got)?;
            ensure!(n == ACK && got == ack(size), "a wrong acknowledgement (did the peer fail?)");
            Ok(())
        };
        match &region {
            None => time_rounds(rounds, |_| {
                conn.send(payload)?;
                check_ack(&mut conn)
            }),
            Some(region) => {
                let fd = region.fd().context("a memfd region has a descriptor")?;
                conn.send_with(&(size as u64).to_le_bytes(), &SendMeta::new().fds(&[fd]))?;
                let mut note = [0u8; NOTE];
                note[4..].copy_from_slice(&u32::try_from(size).context("size over 4 GiB")?.to_le_bytes());
                time_rounds(rounds, |_| {
                    region.write_at(0, payload)?;
                    conn.send(&note)?;
                    check_ack(&mut conn)
                })
            }
        }
    })();
    peer.finish(outcome)
}

/// The peer: connects, then receives `iterations` payloads of `size` bytes
/// (copy), or notes and reads the bytes out of the segment (map), and
/// acknowledges each.
pub(super) fn peer(mode: Mode, size: usize, iterations: usize, meeting: &Meeting) -> Result<()> {
    ensure!((1..=MAX).contains(&size), "--size {size} is not 1 to {MAX}");
    let mut conn = Connection::connect_timeout(&meeting.connect()?, &options(), SETUP_TIMEOUT)?;
    let mut buf = Buffer::zeroed(size);
    match mode {
        Mode::Copy => {
            for i in 0..iterations {
                let (n, _) = conn.recv_into(&mut buf).with_context(|| format!("receive payload {}", i + 1))?;
                ensure!(n == size, "payload {}: {n} bytes, expected {size}", i + 1);
                std::hint::black_box(&mut buf);
                conn.send(&ack(n))?;
            }
        }
        Mode::Map => {
            let hello = conn.recv().context("receive the segment")?;
            let len = <[u8; 8]>::try_from(&hello.data[..]).map(u64::from_le_bytes).context("the segment's length")?;
            let fd = hello.meta.fds.into_iter().next().context("no descriptor came with the segment")?;
            ensure!(len == size as u64, "a segment of {len} bytes, expected {size}");
            let region = Region::from_received_fd(fd, size, Trust::SealedOnly)?;
            let mut note = [0u8; NOTE];
            for i in 0..iterations {
                let (n, _) = conn.recv_into(&mut note).with_context(|| format!("receive note {}", i + 1))?;
                ensure!(n == NOTE, "note {}: {n} bytes, expected {NOTE}", i + 1);
                // What the peer wrote is checked before use (read_at checks
                // the range against the segment too).
                let offset = u32::from_le_bytes(note[..4].try_into().expect("4 bytes")) as usize;
                let len = u32::from_le_bytes(note[4..].try_into().expect("4 bytes")) as usize;
                ensure!(len <= buf.len(), "note {}: {len} bytes, more than the {size} expected", i + 1);
                region.read_at(offset, &mut buf[..len])?;
                std::hint::black_box(&mut buf);
                conn.send(&ack(len))?;
            }
        }
        other => bail!("mode {} does not apply to copy-map", other.name()),
    }
    Ok(())
}
