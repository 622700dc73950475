//! One two-way message link, and the two loops that run over it: the
//! parent's timed round trips and the peer's echo.
//!
//! Both modes implement [`Link`], so the loop that times ipckit is the loop
//! that times the raw system calls: nothing but the link differs.

use std::ops::{Deref, DerefMut};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use hdrhistogram::Histogram;

/// A two-way message link between the parent and its peer.
pub(super) trait Link {
    /// Sends `msg` as one message.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Receives one message into `buf` (as large as the largest message);
    /// returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize>;
}

/// How many round trips a trial makes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rounds {
    /// Round trips before timing starts (page faults, caches, wake-up paths).
    pub(super) warmup: usize,
    /// Round trips timed.
    pub(super) timed: usize,
}

impl Rounds {
    /// Every round trip: what the peer echoes before it exits.
    pub(super) fn total(self) -> usize {
        self.warmup + self.timed
    }
}

/// The result of one trial: percentiles of its round-trip times (or, for
/// batched operations and streams, of its batches' time per operation).
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    /// Median, nanoseconds.
    pub(super) p50: f64,
    /// 90th percentile, nanoseconds.
    pub(super) p90: f64,
    /// 99th percentile, nanoseconds.
    pub(super) p99: f64,
    /// 99.9th percentile, nanoseconds.
    pub(super) p999: f64,
    /// The slowest, nanoseconds.
    pub(super) max: f64,
}

/// The quantiles a [`Sample`] holds, in its order.
const QUANTILES: [f64; 4] = [0.50, 0.90, 0.99, 0.999];

impl Sample {
    /// The percentiles (nearest rank) of `values`, nanoseconds; 0 for none.
    pub(super) fn of_values(mut values: Vec<f64>) -> Sample {
        values.sort_unstable_by(f64::total_cmp);
        let rank = |q: f64| match values.len() {
            0 => 0.0,
            n => values[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
        };
        let [p50, p90, p99, p999] = QUANTILES.map(rank);
        Sample { p50, p90, p99, p999, max: values.last().copied().unwrap_or(0.0) }
    }

    /// Every value divided by `by` (a round trip of `by` hand-offs).
    pub(super) fn per(self, by: f64) -> Sample {
        Sample { p50: self.p50 / by, p90: self.p90 / by, p99: self.p99 / by, p999: self.p999 / by, max: self.max / by }
    }

    /// The percentiles in order: p50, p90, p99, p99.9, max.
    pub(super) fn values(self) -> [f64; 5] {
        [self.p50, self.p90, self.p99, self.p999, self.max]
    }

    /// A sample of `values` in the order of [`values`](Self::values).
    pub(super) fn from_values([p50, p90, p99, p999, max]: [f64; 5]) -> Sample {
        Sample { p50, p90, p99, p999, max }
    }
}

/// Where every buffer of the bench starts within a 4 KiB span: 256 bytes
/// in, in both modes and both processes.
///
/// A copy's speed can depend on where its source and destination lie
/// relative to each other, modulo 4 KiB, more than on anything measured
/// here: on AMD Zen 3 with glibc 2.36, for instance, `memcpy` (and the
/// kernel's copies to and from user memory, the same `rep movsb`) runs at
/// about 2 GB/s instead of 30 to 50 when the destination is 1 to 31 bytes
/// past the source, and vector copies of a megabyte or more slow down 3×
/// when the two are at the same offset. A `Vec` lands wherever the
/// allocator puts it (a large one 16 bytes into a page, right in the slow
/// case when the other side is page-aligned), which differs between
/// modes and processes: fixing the offset makes the modes comparable and
/// keeps every copy from and into page-aligned memory (pipe pages, shared
/// segments) off both slow cases.
const BUFFER_OFFSET: usize = 256;

/// The span [`BUFFER_OFFSET`] is within.
const SPAN: usize = 4096;

/// A heap buffer that starts [`BUFFER_OFFSET`] bytes into a 4 KiB span.
#[derive(Debug)]
pub(super) struct Buffer {
    store: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buffer {
    /// `len` zero bytes.
    pub(super) fn zeroed(len: usize) -> Buffer {
        let store = vec![0u8; len + SPAN];
        let start = (SPAN + BUFFER_OFFSET - store.as_ptr() as usize % SPAN) % SPAN;
        Buffer { store, start, len }
    }

    /// The payload every round trip carries, in both modes: a fixed pattern
    /// of `len` bytes.
    pub(super) fn payload(len: usize) -> Buffer {
        let mut buf = Buffer::zeroed(len);
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
        buf
    }
}

impl Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.store[self.start..self.start + self.len]
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.store[self.start..self.start + self.len]
    }
}

/// Sends `buf[..size]` and receives the echo back into `buf`.
#[inline]
fn round_trip(link: &mut dyn Link, buf: &mut [u8], size: usize) -> Result<()> {
    link.send(&buf[..size])?;
    let got = link.recv(buf)?;
    if got != size {
        bail!("expected a {size}-byte echo, got {got} bytes (did the peer fail?)");
    }
    Ok(())
}

/// The times of a trial's timed rounds: a histogram of nanoseconds, 1 ns
/// to 60 s, 3 significant digits (longer rounds saturate).
#[derive(Debug)]
pub(super) struct Timings {
    hist: Histogram<u64>,
}

impl Timings {
    pub(super) fn new() -> Result<Timings> {
        Ok(Timings { hist: Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("histogram")? })
    }

    /// Records the time since `start`.
    #[inline]
    pub(super) fn record(&mut self, start: Instant) {
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.max(1));
    }

    /// Records `elapsed` per one of `count` operations.
    pub(super) fn record_per(&mut self, elapsed: std::time::Duration, count: usize) {
        let ns = u64::try_from(elapsed.as_nanos() / count.max(1) as u128).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.max(1));
    }

    /// The percentiles of what was recorded.
    pub(super) fn sample(&self) -> Sample {
        let [p50, p90, p99, p999] = QUANTILES.map(|q| self.hist.value_at_quantile(q) as f64);
        Sample { p50, p90, p99, p999, max: self.hist.max() as f64 }
    }
}

/// Runs `rounds.warmup` untimed rounds, then `rounds.timed` timed ones,
/// numbered from 0 on; the percentiles of the timed ones.
pub(super) fn time_rounds(rounds: Rounds, mut round: impl FnMut(usize) -> Result<()>) -> Result<Sample> {
    for i in 0..rounds.warmup {
        round(i).context("warm-up round")?;
    }
    let mut timings = Timings::new()?;
    for i in rounds.warmup..rounds.total() {
        let start = Instant::now();
        round(i)?;
        timings.record(start);
    }
    Ok(timings.sample())
}

/// The parent's side of a trial: `rounds.warmup` untimed round trips of
/// `size` bytes, then `rounds.timed` timed ones. `buf` holds the payload and
/// is the receive buffer (the largest message size).
pub(super) fn time_round_trips(link: &mut dyn Link, buf: &mut [u8], size: usize, rounds: Rounds) -> Result<Sample> {
    time_rounds(rounds, |_| round_trip(link, buf, size))
}

/// The peer's side of a trial: receives `count` messages of `size` bytes
/// into `buf` and sends each one back.
pub(super) fn echo(link: &mut dyn Link, buf: &mut [u8], size: usize, count: usize) -> Result<()> {
    for i in 0..count {
        let got = link.recv(buf).with_context(|| format!("receive message {}", i + 1))?;
        if got != size {
            bail!("message {}: expected {size} bytes, got {got}", i + 1);
        }
        link.send(&buf[..got]).with_context(|| format!("echo message {}", i + 1))?;
    }
    Ok(())
}

/// The parent's side of a stream trial: receives `rounds.warmup` messages
/// of `size` bytes untimed, then `rounds.timed` more in batches of
/// `batch`, each batch timed from the end of the one before; the
/// percentiles of the batches' time per message.
pub(super) fn time_stream(
    link: &mut dyn Link,
    buf: &mut [u8],
    size: usize,
    rounds: Rounds,
    batch: usize,
) -> Result<Sample> {
    let mut recv = |i: usize| -> Result<()> {
        let got = link.recv(buf).with_context(|| format!("receive message {}", i + 1))?;
        if got != size {
            bail!("message {}: expected {size} bytes, got {got} (did the peer fail?)", i + 1);
        }
        Ok(())
    };
    for i in 0..rounds.warmup {
        recv(i).context("warm-up message")?;
    }
    let mut timings = Timings::new()?;
    let mut i = rounds.warmup;
    let mut start = Instant::now();
    for _ in 0..rounds.timed / batch.max(1) {
        for _ in 0..batch {
            recv(i)?;
            i += 1;
        }
        let now = Instant::now();
        timings.record_per(now - start, batch);
        start = now;
    }
    // Every message is in: the peer may go (it waits for this, so that
    // its side stays open while this side sets up and drains), and says
    // so last, so that this side removes nothing the peer still reads (a
    // System V queue is gone at once).
    link.send(&STREAM_ACK).context("acknowledge the stream")?;
    let got = link.recv(buf).context("the peer's goodbye")?;
    ensure!(buf[..got] == STREAM_ACK, "a wrong goodbye from the peer ({got} bytes)");
    Ok(timings.sample())
}

/// What ends a stream trial: one byte from the parent once it has every
/// message, and the same back from the peer.
const STREAM_ACK: [u8; 1] = [1];

/// The peer's side of a stream trial: sends `count` messages of `size`
/// bytes, waits for the parent's acknowledgement and answers it.
pub(super) fn source(link: &mut dyn Link, buf: &[u8], size: usize, count: usize) -> Result<()> {
    for i in 0..count {
        link.send(&buf[..size]).with_context(|| format!("send message {}", i + 1))?;
    }
    let mut ack = vec![0u8; MAX_ACK];
    let got = link.recv(&mut ack).context("wait for the parent's acknowledgement")?;
    ensure!(ack[..got] == STREAM_ACK, "a wrong acknowledgement of the stream ({got} bytes)");
    link.send(&STREAM_ACK).context("say goodbye")
}

/// Room for an acknowledgement (and for whatever wrong one a failed
/// parent could send).
const MAX_ACK: usize = 64 * 1024;

/// The median of `values` (the mean of the middle two for an even count);
/// 0 for none.
pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
