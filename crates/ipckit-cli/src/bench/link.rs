//! One two-way message link, and the two loops that run over it: the
//! parent's timed round trips and the peer's echo.
//!
//! Both modes implement [`Link`], so the loop that times ipckit is the loop
//! that times the raw system calls: nothing but the link differs.

use std::time::Instant;

use anyhow::{Context, Result, bail};
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

/// The result of one trial: percentiles of its round-trip times.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    /// Median round trip, nanoseconds.
    pub(super) p50: u64,
    /// 99th percentile round trip, nanoseconds.
    pub(super) p99: u64,
}

/// The payload every round trip carries, in both modes: a fixed pattern.
pub(super) fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
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

/// The parent's side of a trial: `rounds.warmup` untimed round trips of
/// `size` bytes, then `rounds.timed` timed ones. `buf` holds the payload and
/// is the receive buffer (the largest message size).
pub(super) fn time_round_trips(link: &mut dyn Link, buf: &mut [u8], size: usize, rounds: Rounds) -> Result<Sample> {
    for _ in 0..rounds.warmup {
        round_trip(link, buf, size).context("warm-up round trip")?;
    }
    // 1 ns to 60 s, 3 significant digits; longer round trips saturate.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("histogram")?;
    for _ in 0..rounds.timed {
        let start = Instant::now();
        round_trip(link, buf, size)?;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        hist.saturating_record(ns.max(1));
    }
    Ok(Sample { p50: hist.value_at_quantile(0.50), p99: hist.value_at_quantile(0.99) })
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

/// The median of `values` (the mean of the middle two for an even count);
/// 0 for none.
pub(super) fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => 0,
        _ if n % 2 == 1 => values[n / 2],
        _ => values[n / 2 - 1].midpoint(values[n / 2]),
    }
}
