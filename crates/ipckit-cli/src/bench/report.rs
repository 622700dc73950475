//! The results: tables for people, a JSON document for programs.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use serde_json::{Value, json};

use std::path::PathBuf;

use ipckit::threshold::{Source, Threshold};

use super::catalogue::{Mechanism, Mode};
use super::copymap::{self, Variant, Way};
use super::floor;
use super::link::{Rounds, Sample, median};
use super::placement::Placement;
use super::plan::{Job, MAX_MESSAGE, Plan, SIZES};
use super::rpc::{self, Transport};
use super::runner::Load;
use super::shm::{STREAM_BATCH, ShmJob, ShmRow};
use super::sync::{BATCH, SyncOp};
use super::{async_io, overview, pubsub};

/// The version of the JSON document's layout: raised when a name or a
/// meaning changes, not when something is added.
pub(super) const SCHEMA: u32 = 2;

/// One mode's trials of a row.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    /// Median of the trials' p50, nanoseconds.
    pub(super) p50: f64,
    /// Median of the trials' p99, nanoseconds.
    pub(super) p99: f64,
    /// The median over the trials of each percentile (p50, p90, p99,
    /// p99.9, max).
    pub(super) all: Sample,
    pub(super) trials: Vec<Sample>,
}

/// How a JSON document writes nanoseconds.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ns {
    /// Whole nanoseconds (round trips).
    Whole,
    /// Tenths (operations of a few nanoseconds).
    Tenths,
}

impl Ns {
    pub(super) fn value(self, ns: f64) -> Value {
        match self {
            Ns::Whole => json!(ns.round() as u64),
            Ns::Tenths => json!((ns * 10.0).round() / 10.0),
        }
    }
}

impl Summary {
    pub(super) fn of(trials: Vec<Sample>) -> Summary {
        let column = |i: usize| median(trials.iter().map(|s| s.values()[i]).collect());
        let all = Sample::from_values([0, 1, 2, 3, 4].map(column));
        Summary { p50: all.p50, p99: all.p99, all, trials }
    }

    /// The least and greatest trial p50.
    pub(super) fn spread(&self) -> Option<(f64, f64)> {
        let p50s = self.trials.iter().map(|s| s.p50);
        Some((p50s.clone().reduce(f64::min)?, p50s.reduce(f64::max)?))
    }

    fn json(&self, ns: Ns) -> Value {
        let trials: Vec<Value> = self.trials.iter().map(|s| percentiles_json(*s, ns)).collect();
        let mut v = percentiles_json(self.all, ns);
        v["trials"] = trials.into();
        v["spread"] =
            self.spread().map(|(lo, hi)| json!({ "min_p50_ns": ns.value(lo), "max_p50_ns": ns.value(hi) })).into();
        v
    }
}

/// A sample's percentiles: `p50_ns`, `p90_ns`, `p99_ns`, `p999_ns`,
/// `max_ns`.
pub(super) fn percentiles_json(s: Sample, ns: Ns) -> Value {
    json!({
        "p50_ns": ns.value(s.p50),
        "p90_ns": ns.value(s.p90),
        "p99_ns": ns.value(s.p99),
        "p999_ns": ns.value(s.p999),
        "max_ns": ns.value(s.max),
    })
}

/// `a / b`, if `b` is positive.
fn ratio(a: &Summary, b: &Summary) -> Option<f64> {
    (b.p50 > 0.0).then(|| a.p50 / b.p50)
}

fn ratio_cell(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

/// What a row of the message table found.
#[derive(Debug)]
pub(super) enum Outcome {
    Measured {
        ipckit: Summary,
        raw: Summary,
    },
    /// The message is over a kernel limit: the limit, if known in advance
    /// (queues), and why.
    Limit {
        limit: Option<usize>,
        why: String,
    },
    /// A trial failed: which and why (the run went on).
    Failed {
        why: String,
    },
}

impl Outcome {
    pub(super) fn measured(ipckit: Vec<Sample>, raw: Vec<Sample>) -> Outcome {
        Outcome::Measured { ipckit: Summary::of(ipckit), raw: Summary::of(raw) }
    }
}

/// One mechanism at one size.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) job: Job,
    pub(super) rounds: Rounds,
    pub(super) outcome: Outcome,
    /// One-way streaming at the same size (times per message), if it ran.
    pub(super) stream: Option<Outcome>,
}

impl Row {
    /// Trials of each mode, for a measured row.
    fn trials(&self) -> Option<usize> {
        match &self.outcome {
            Outcome::Measured { ipckit, .. } => Some(ipckit.trials.len()),
            Outcome::Limit { .. } | Outcome::Failed { .. } => None,
        }
    }

    /// ipckit p50 / raw p50.
    fn ratio(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Measured { ipckit, raw } => ratio(ipckit, raw),
            Outcome::Limit { .. } | Outcome::Failed { .. } => None,
        }
    }

    fn cells(&self) -> Vec<String> {
        let size = match self.job.kernel_max {
            true => format!("{} (max)", size(self.job.size)),
            false => size(self.job.size),
        };
        let mut cells = vec![self.job.mechanism.name().to_owned(), size];
        match &self.outcome {
            Outcome::Measured { ipckit, raw } => {
                cells.extend([ipckit.p50, ipckit.p99, raw.p50, raw.p99].map(duration));
                cells.push(ratio_cell(self.ratio()));
            }
            // The limit once, in the last column, so that it does not
            // widen every other one.
            Outcome::Limit { limit, .. } => {
                cells.extend(std::iter::repeat_n("n/a".to_owned(), 4));
                cells.push(limit.map_or_else(|| "n/a (limit)".to_owned(), |l| format!("n/a (limit {l})")));
            }
            Outcome::Failed { .. } => {
                cells.extend(std::iter::repeat_n("-".to_owned(), 4));
                cells.push("failed (below)".to_owned());
            }
        }
        cells
    }

    /// The stream table's cells, if the stream ran.
    fn stream_cells(&self) -> Option<Vec<String>> {
        let mut cells = vec![self.job.mechanism.name().to_owned(), size(self.job.size)];
        match self.stream.as_ref()? {
            Outcome::Measured { ipckit, raw } => {
                for s in [ipckit, raw] {
                    cells.push(rate(per_second(s.p50)));
                    cells.push(gib_rate(per_second(s.p50), self.job.size));
                }
                cells.push(ratio_cell((ipckit.p50 > 0.0).then(|| raw.p50 / ipckit.p50)));
            }
            Outcome::Limit { .. } => {
                cells.extend(std::iter::repeat_n("n/a".to_owned(), 4));
                cells.push("n/a (limit)".to_owned());
            }
            Outcome::Failed { .. } => {
                cells.extend(std::iter::repeat_n("-".to_owned(), 4));
                cells.push("failed (below)".to_owned());
            }
        }
        Some(cells)
    }

    /// Why the round trips or the stream failed, if one did.
    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Outcome::Failed { why } = &self.outcome {
            out.push(format!("{}: {why}", self.job));
        }
        if let Some(Outcome::Failed { why }) = &self.stream {
            out.push(format!("{} stream: {why}", self.job));
        }
        out
    }

    fn json(&self) -> Value {
        let mut row = json!({
            "mechanism": self.job.mechanism.name(),
            "size": self.job.size,
            "kernel_max": self.job.kernel_max,
            "warmup": self.rounds.warmup,
            "round_trips": self.rounds.timed,
        });
        match &self.outcome {
            Outcome::Measured { ipckit, raw } => {
                row["status"] = "ok".into();
                row["trials"] = self.trials().into();
                row["ipckit"] = ipckit.json(Ns::Whole);
                row["raw"] = raw.json(Ns::Whole);
                row["ratio_p50"] = self.ratio().into();
            }
            Outcome::Limit { limit, why } => {
                row["status"] = "n/a (limit)".into();
                row["limit"] = (*limit).into();
                row["detail"] = why.as_str().into();
            }
            Outcome::Failed { why } => {
                row["status"] = "failed".into();
                row["detail"] = why.as_str().into();
            }
        }
        row["stream"] = match &self.stream {
            Some(Outcome::Measured { ipckit, raw }) => json!({
                "status": "ok",
                "ipckit": ipckit.json(Ns::Tenths),
                "raw": raw.json(Ns::Tenths),
                "ipckit_msgs_per_s": per_second(ipckit.p50).map(f64::round),
                "raw_msgs_per_s": per_second(raw.p50).map(f64::round),
                "ratio_msgs_per_s": (ipckit.p50 > 0.0).then(|| raw.p50 / ipckit.p50),
            }),
            Some(Outcome::Limit { why, .. }) => json!({ "status": "n/a (limit)", "detail": why }),
            Some(Outcome::Failed { why }) => json!({ "status": "failed", "detail": why }),
            None => Value::Null,
        };
        row
    }
}

/// One row of the copy-vs-map table at one size: measured, or "n/a" (a
/// message the largest ring cannot hold).
#[derive(Debug)]
pub(super) struct CopyMapCell {
    pub(super) way: Way,
    rounds: Rounds,
    pub(super) result: Option<Summary>,
}

impl CopyMapCell {
    fn json(&self, size: usize, inline_max: usize) -> Value {
        let mut row = json!({ "mechanism": self.way.name() });
        if let Some(variant) = self.way.variant() {
            row["variant"] = variant.into();
        }
        row["size"] = size.into();
        row["how"] = self.way.how(size, inline_max).into();
        match &self.result {
            Some(summary) => {
                row["status"] = "ok".into();
                row["warmup"] = self.rounds.warmup.into();
                row["round_trips"] = self.rounds.timed.into();
                row["trials"] = summary.trials.len().into();
                row["round_trip"] = summary.json(Ns::Whole);
            }
            None => {
                row["status"] = "n/a (ring)".into();
                row["detail"] = format!(
                    "a {size}-byte message does not fit the largest ring of the table ({} bytes)",
                    copymap::RING_MAX
                )
                .into();
            }
        }
        row
    }
}

/// One size of the copy-vs-map table: every row wanted.
#[derive(Debug)]
pub(super) struct CopyMapSize {
    pub(super) size: usize,
    pub(super) cells: Vec<CopyMapCell>,
}

impl CopyMapSize {
    /// The rows `wanted` at `size`, with the samples of those `measured`
    /// (the others are "n/a"), each measured with `rounds(way)`.
    pub(super) fn new(
        size: usize,
        wanted: &[Way],
        measured: impl Iterator<Item = (Way, Vec<Sample>)>,
        rounds: impl Fn(Way) -> Rounds,
    ) -> CopyMapSize {
        let mut measured: Vec<(Way, Vec<Sample>)> = measured.collect();
        let mut cells: Vec<CopyMapCell> = wanted
            .iter()
            .map(|&way| {
                let result = measured.iter().position(|(w, _)| *w == way).map(|i| Summary::of(measured.remove(i).1));
                CopyMapCell { way, rounds: rounds(way), result }
            })
            .collect();
        // Rows measured only at some sizes (iceoryx2).
        cells.extend(measured.into_iter().map(|(way, samples)| CopyMapCell {
            way,
            rounds: rounds(way),
            result: Some(Summary::of(samples)),
        }));
        CopyMapSize { size, cells }
    }

    fn cell(&self, way: Way) -> Option<&CopyMapCell> {
        self.cells.iter().find(|c| c.way == way)
    }

    /// The p50 of `way`, if measured here.
    fn p50(&self, way: Way) -> Option<f64> {
        self.cell(way)?.result.as_ref().map(|s| s.p50)
    }

    /// The fastest row (p50) of those that deliver every byte to the reader.
    fn fastest(&self) -> Option<Way> {
        self.cells
            .iter()
            .filter(|c| c.way.delivers())
            .filter_map(|c| Some((c.way, c.result.as_ref()?.p50)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(way, _)| way)
    }

    /// Whether `map-pool fill-and-read` beats `copy-shm` here (a size
    /// `copy-shm` cannot carry counts as a win); `None` without both rows.
    fn map_wins(&self) -> Option<bool> {
        let map = self.p50(FILL_AND_READ)?;
        match self.cell(Way::CopyShm)?.result.as_ref() {
            Some(copy) => Some(map < copy.p50),
            None => Some(true),
        }
    }

    /// The faster of `copy-shm` and `map-pool fill-and-read`: what
    /// `hybrid` should match.
    fn best_of_two(&self) -> Option<f64> {
        let map = self.p50(FILL_AND_READ)?;
        self.cell(Way::CopyShm)?;
        Some(self.p50(Way::CopyShm).map_or(map, |copy| copy.min(map)))
    }

    /// hybrid p50 / the faster of `copy-shm` and `map-pool fill-and-read`.
    fn hybrid_over_best(&self) -> Option<f64> {
        let best = self.best_of_two().filter(|&b| b > 0.0)?;
        Some(self.p50(Way::Hybrid)? / best)
    }
}

/// `map-pool fill-and-read`, the row the crossover compares with `copy-shm`.
const FILL_AND_READ: Way = Way::MapPool(Variant::FillAndRead);

/// Where `map-pool fill-and-read` starts to beat `copy-shm` for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Crossover {
    /// From this size on, at every larger size measured.
    From(usize),
    /// Not even at the largest size.
    None,
}

/// The copy-vs-map table.
#[derive(Debug)]
pub(super) struct CopyMapTable {
    pub(super) sizes: Vec<CopyMapSize>,
    /// The `auto` threshold `hybrid` ran with.
    hybrid: Threshold,
    /// Where `--save-threshold` saved the threshold.
    pub(super) saved: Option<PathBuf>,
}

impl CopyMapTable {
    pub(super) fn new(sizes: Vec<CopyMapSize>, hybrid: Threshold) -> CopyMapTable {
        CopyMapTable { sizes, hybrid, saved: None }
    }

    /// The crossover, if both of its rows were measured.
    pub(super) fn crossover(&self) -> Option<Crossover> {
        let wins = self.sizes.iter().map(CopyMapSize::map_wins).collect::<Option<Vec<bool>>>()?;
        let from = wins.iter().rposition(|&w| !w).map_or(0, |i| i + 1);
        Some(self.sizes.get(from).map_or(Crossover::None, |s| Crossover::From(s.size)))
    }

    /// The threshold the table measured (the `inline_max` that
    /// `--save-threshold` saves): every message below the crossover is
    /// copied, so one byte less than it; without a crossover, the largest
    /// size measured (copying won everywhere).
    pub(super) fn threshold(&self) -> Option<usize> {
        match self.crossover()? {
            Crossover::From(size) => Some(size - 1),
            Crossover::None => self.sizes.last().map(|s| s.size),
        }
    }

    /// The rows wanted (every size has the same), iceoryx2 left out.
    fn ways(&self) -> Vec<Way> {
        let mut ways: Vec<Way> = self.sizes.iter().flat_map(|s| s.cells.iter().map(|c| c.way)).collect();
        ways.retain(|w| Way::ALL.contains(w));
        let mut seen = Vec::new();
        ways.retain(|w| {
            let new = !seen.contains(w);
            seen.push(*w);
            new
        });
        ways
    }

    /// Where the `auto` threshold `hybrid` ran with comes from, in words.
    fn hybrid_source(&self) -> String {
        match &self.hybrid.source {
            Source::Environment => format!("from {}", ipckit::threshold::ENV),
            Source::File(path) => format!("from {}", path.display()),
            Source::Default => format!(
                "the default, ipckit::threshold::DEFAULT_INLINE_MAX: neither {} nor {} set one",
                ipckit::threshold::ENV,
                ipckit::threshold::path().map_or_else(|| "threshold.json".to_owned(), |p| p.display().to_string())
            ),
        }
    }

    fn source_json(&self) -> Value {
        let (source, path) = match &self.hybrid.source {
            Source::Environment => ("environment", None),
            Source::File(path) => ("file", Some(path.display().to_string())),
            Source::Default => ("default", None),
        };
        json!({ "inline_max": self.hybrid.inline_max, "source": source, "path": path, "warnings": self.hybrid.warnings })
    }

    fn cells(&self, size: &CopyMapSize, ways: &[Way]) -> Vec<String> {
        let mut cells = vec![self::size(size.size)];
        cells.extend(ways.iter().map(|&way| match size.cell(way).map(|c| c.result.as_ref()) {
            Some(Some(summary)) => duration(summary.p50),
            Some(None) => "n/a (ring)".to_owned(),
            None => "-".to_owned(),
        }));
        if ways.contains(&Way::Hybrid) {
            cells.push(ratio_cell(size.hybrid_over_best()));
        }
        cells.push(size.fastest().map_or_else(|| "-".to_owned(), |w| w.to_string()));
        cells
    }

    /// The table and what it means. `shm_busy_64` is the ipckit p50 of
    /// the `shm-busy` 64 B row, if measured in the same run.
    fn text(&self, trials_max: usize, shm_busy_64: Option<f64>) -> String {
        let ways = self.ways();
        let mut header: Vec<String> = vec!["size".to_owned()];
        header.extend(ways.iter().map(|w| match w.variant() {
            Some(v) => format!("{}\n{v}", w.name()),
            None => w.name().to_owned(),
        }));
        if ways.contains(&Way::Hybrid) {
            header.push("hybrid\n/ best".to_owned());
        }
        header.push("fastest".to_owned());
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let numbers = header.len() - 1;
        let mut table = table(&header, self.sizes.iter().map(|s| self.cells(s, &ways)), 1);
        if let Some(column) = table.column_mut(numbers) {
            column.set_cell_alignment(CellAlignment::Left);
        }
        let trials = count_range(
            self.sizes.iter().flat_map(|s| s.cells.iter()).filter_map(|c| c.result.as_ref().map(|r| r.trials.len())),
        );
        let inline_max = self.hybrid.inline_max;
        let mut text = format!(
            "Copy or map: round trip p50 (N bytes to another process, an 8-byte acknowledgement back)\n{table}\n\
             Each value the median of {trials} interleaved trials' p50 (fresh processes, the rows' order rotating; at \
             most {trials_max}).\n\
             copy-kernel = a Unix stream socket (ipckit Connection, len32). map-each = a sealed memfd per message \
             (send_sealed), the receiver copies it out of its mapping.\n\
             copy-shm = copied through a shm: ring (?inline=N&pool=0; the ring the next power of two that holds N, \
             at least 1 MiB, at most {}), out with recv_into.\n\
             map-pool = a loan from the sender's pool (64 MiB), only its reference through the ring: untouched = \
             loan, send, the receiver drops the sample unread; writer-fills = the sender copies the N bytes into the \
             loan; fill-and-read = and the receiver copies them out (read_at).\n\
             hybrid = send(&[u8]) with ?inline=auto, recv_into: copied up to {} bytes, pooled above ({}).\n\
             Every shm: channel ?wait=busy, both sides; the acknowledgement comes back through a second one.\n\
             hybrid / best = hybrid p50 / the faster of copy-shm and map-pool fill-and-read. fastest = of the rows \
             that deliver every byte to the reader (not untouched, not writer-fills).",
            size(copymap::RING_MAX),
            inline_max,
            self.hybrid_source(),
        );
        for warning in &self.hybrid.warnings {
            text.push_str(&format!("\nwarning: ?inline=auto: {warning}"));
        }
        match self.crossover() {
            Some(Crossover::From(s)) if self.sizes.first().is_some_and(|f| f.size == s) => text.push_str(&format!(
                "\nCrossover: {} (map-pool fill-and-read beat copy-shm at every size measured).",
                size(s)
            )),
            Some(Crossover::From(s)) => text.push_str(&format!(
                "\nCrossover: {} (map-pool fill-and-read beats copy-shm from this size on, at every larger size \
                 measured).",
                size(s)
            )),
            Some(Crossover::None) => {
                text.push_str("\nCrossover: none (copy-shm beat map-pool fill-and-read at the largest size measured).")
            }
            None => {}
        }
        if let Some(threshold) = self.threshold() {
            match &self.saved {
                Some(path) => text.push_str(&format!("\nthreshold: {threshold} bytes, saved to {}", path.display())),
                None => text.push_str(&format!("\nthreshold: {threshold} bytes (would save with --save-threshold)")),
            }
        }
        if let Some((r, pool, busy)) = self.untouched_over_shm_busy(shm_busy_64) {
            text.push_str(&format!(
                "\nmap-pool untouched 1 MiB / shm-busy 64 B (ipckit): {r:.2} ({} vs {}).",
                duration(pool),
                duration(busy)
            ));
        }
        #[cfg(feature = "compare-iceoryx2")]
        if let Some((r, ipckit, iceoryx2)) = self.writer_fills_over_iceoryx2() {
            text.push_str(&format!(
                "\niceoryx2 writer-fills {} (a loaned slice, write_from_slice; the reader drops it unread): {}; \
                 map-pool writer-fills / iceoryx2: {r:.2} ({} vs {}).",
                size(copymap::ICEORYX2_SIZE),
                duration(iceoryx2),
                duration(ipckit),
                duration(iceoryx2)
            ));
        }
        text
    }

    /// `map-pool untouched` at 1 MiB / `shm-busy` at 64 B: the ratio and
    /// the two p50s.
    fn untouched_over_shm_busy(&self, shm_busy_64: Option<f64>) -> Option<(f64, f64, f64)> {
        let busy = shm_busy_64.filter(|&b| b > 0.0)?;
        let pool = self.sizes.iter().find(|s| s.size == 1 << 20)?.p50(Way::MapPool(Variant::Untouched))?;
        Some((pool / busy, pool, busy))
    }

    /// `map-pool writer-fills` / iceoryx2's writer-fills, at the size
    /// iceoryx2 is measured: the ratio and the two p50s.
    #[cfg(feature = "compare-iceoryx2")]
    fn writer_fills_over_iceoryx2(&self) -> Option<(f64, f64, f64)> {
        let at = self.sizes.iter().find(|s| s.size == copymap::ICEORYX2_SIZE)?;
        let iceoryx2 = at.p50(Way::Iceoryx2WriterFills).filter(|&i| i > 0.0)?;
        let ipckit = at.p50(Way::MapPool(Variant::WriterFills))?;
        Some((ipckit / iceoryx2, ipckit, iceoryx2))
    }

    fn json(&self, trials_max: usize, shm_busy_64: Option<f64>) -> Value {
        let inline_max = self.hybrid.inline_max;
        let results: Vec<Value> =
            self.sizes.iter().flat_map(|s| s.cells.iter().map(|c| c.json(s.size, inline_max))).collect();
        let sizes: Vec<Value> = self
            .sizes
            .iter()
            .map(|s| {
                let fastest = s.fastest().map(|w| json!({ "mechanism": w.name(), "variant": w.variant() }));
                json!({
                    "size": s.size,
                    "fastest": fastest,
                    "map_pool_beats_copy_shm": s.map_wins(),
                    "best_of_copy_shm_and_fill_and_read_ns": s.best_of_two().map(|ns| ns.round() as u64),
                    "hybrid_over_best": s.hybrid_over_best(),
                })
            })
            .collect();
        let crossover = match self.crossover() {
            Some(Crossover::From(s)) => json!(s),
            _ => Value::Null,
        };
        let threshold = self
            .threshold()
            .map(|t| json!({ "inline_max": t, "saved_to": self.saved.as_ref().map(|p| p.display().to_string()) }));
        let untouched = self.untouched_over_shm_busy(shm_busy_64).map(|(r, ..)| r);
        #[allow(unused_mut)]
        let mut ratios = json!({ "map_pool_untouched_1m_over_shm_busy_64": untouched });
        #[cfg(feature = "compare-iceoryx2")]
        {
            ratios["map_pool_writer_fills_over_iceoryx2_writer_fills_1m"] =
                self.writer_fills_over_iceoryx2().map(|(r, ..)| r).into();
        }
        json!({
            "max_trials": trials_max,
            "wait": "busy",
            "ring_max": copymap::RING_MAX,
            "hybrid_threshold": self.source_json(),
            "results": results,
            "sizes": sizes,
            "crossover_size": crossover,
            "threshold": threshold,
            "ratios": ratios,
        })
    }
}

/// One row of the synchronization table.
#[derive(Debug)]
pub(super) struct SyncRow {
    pub(super) op: SyncOp,
    rounds: Rounds,
    pub(super) ipckit: Summary,
    pub(super) raw: Summary,
}

impl SyncRow {
    pub(super) fn new(op: SyncOp, rounds: Rounds, ipckit: Vec<Sample>, raw: Vec<Sample>) -> SyncRow {
        SyncRow { op, rounds, ipckit: Summary::of(ipckit), raw: Summary::of(raw) }
    }

    /// ipckit p50 / raw p50.
    fn ratio(&self) -> Option<f64> {
        ratio(&self.ipckit, &self.raw)
    }

    fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.op.name().to_owned(), self.op.unit().to_owned()];
        cells.extend([self.ipckit.p50, self.ipckit.p99, self.raw.p50, self.raw.p99].map(duration));
        cells.push(ratio_cell(self.ratio()));
        cells
    }

    fn json(&self) -> Value {
        let mut row = json!({
            "operation": self.op.name(),
            "per": self.op.unit(),
            "warmup": self.rounds.warmup,
            "trials": self.ipckit.trials.len(),
            "ipckit": self.ipckit.json(Ns::Tenths),
            "raw": self.raw.json(Ns::Tenths),
            "ratio_p50": self.ratio(),
        });
        match self.op {
            SyncOp::Uncontended => {
                row["batches"] = self.rounds.timed.into();
                row["batch"] = BATCH.into();
            }
            _ => row["round_trips"] = self.rounds.timed.into(),
        }
        row
    }
}

/// One row of the shared-memory table: a round trip (or, streaming, a
/// message) through ipckit's `shm:` channel beside the floor, and with
/// `compare-iceoryx2`, iceoryx2 beside the same floor.
#[derive(Debug)]
pub(super) struct ShmResult {
    pub(super) job: ShmJob,
    rounds: Rounds,
    pub(super) ipckit: Summary,
    pub(super) raw: Summary,
    pub(super) iceoryx2: Option<Summary>,
}

/// Messages per second at `ns_per_message`.
pub(super) fn per_second(ns_per_message: f64) -> Option<f64> {
    (ns_per_message > 0.0).then(|| 1e9 / ns_per_message)
}

/// `1.23 GiB/s`, `850 MiB/s`: `per_s` messages of `size` bytes a second.
pub(super) fn gib_rate(per_s: Option<f64>, size: usize) -> String {
    match per_s.map(|r| r * size as f64 / (1u64 << 30) as f64) {
        Some(g) if g >= 1.0 => format!("{g:.2} GiB/s"),
        Some(g) => format!("{:.0} MiB/s", g * 1024.0),
        None => "-".to_owned(),
    }
}

/// `12.3 M`, `850 k`: a rate for people.
pub(super) fn rate(per_s: Option<f64>) -> String {
    match per_s {
        Some(r) if r >= 1e6 => format!("{:.1} M", r / 1e6),
        Some(r) => format!("{:.0} k", r / 1e3),
        None => "-".to_owned(),
    }
}

impl ShmResult {
    pub(super) fn new(
        job: ShmJob,
        rounds: Rounds,
        ipckit: Vec<Sample>,
        raw: Vec<Sample>,
        iceoryx2: Option<Vec<Sample>>,
    ) -> ShmResult {
        ShmResult {
            job,
            rounds,
            ipckit: Summary::of(ipckit),
            raw: Summary::of(raw),
            iceoryx2: iceoryx2.map(Summary::of),
        }
    }

    /// ipckit p50 / floor p50.
    fn ratio(&self) -> Option<f64> {
        ratio(&self.ipckit, &self.raw)
    }

    /// Streaming: ipckit's messages per second / the floor's.
    fn rate_ratio(&self) -> Option<f64> {
        (self.ipckit.p50 > 0.0).then(|| self.raw.p50 / self.ipckit.p50)
    }

    fn is_stream(&self) -> bool {
        self.job.row == ShmRow::Stream
    }

    /// The floor of the row, in a word.
    fn floor(&self) -> &'static str {
        match self.job.row {
            ShmRow::Busy | ShmRow::Spin => "busy ping-pong",
            ShmRow::Park => "futex ping-pong",
            ShmRow::Stream => "fixed-slot ring",
        }
    }

    fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.job.row.name().to_owned(), size(self.job.size)];
        cells.extend([self.ipckit.p50, self.ipckit.p99, self.raw.p50, self.raw.p99].map(duration));
        cells.push(ratio_cell(self.ratio()));
        cells
    }

    fn stream_cells(&self) -> Vec<String> {
        vec![
            self.job.row.name().to_owned(),
            size(self.job.size),
            rate(per_second(self.ipckit.p50)),
            duration(self.ipckit.p50),
            rate(per_second(self.raw.p50)),
            duration(self.raw.p50),
            ratio_cell(self.rate_ratio()),
        ]
    }

    fn iceoryx2_cells(&self, iceoryx2: &Summary) -> Vec<String> {
        let mut cells = vec![size(self.job.size)];
        cells.extend([iceoryx2.p50, iceoryx2.p99, self.raw.p50].map(duration));
        cells.push(ratio_cell(ratio(iceoryx2, &self.raw)));
        cells.push(duration(self.ipckit.p50));
        cells.push(ratio_cell(ratio(&self.ipckit, iceoryx2)));
        cells
    }

    /// The row's entries in the JSON document: its own, and iceoryx2's
    /// beside the same floor (`iceoryx2-busy`). `pipe` is the ipckit p50 of
    /// the pipe row at 64 B, if measured.
    fn json(&self, pipe: Option<f64>) -> Vec<Value> {
        let mut row = json!({
            "mechanism": self.job.row.name(),
            "size": self.job.size,
            "endpoint_options": self.job.row.query(),
            "per": self.job.row.unit(),
            "floor": self.floor(),
            "warmup": self.rounds.warmup,
            "trials": self.ipckit.trials.len(),
        });
        if self.is_stream() {
            row["batches"] = self.rounds.timed.into();
            row["batch"] = STREAM_BATCH.into();
            row["ipckit"] = self.ipckit.json(Ns::Tenths);
            row["raw"] = self.raw.json(Ns::Tenths);
            row["ipckit_msgs_per_s"] = per_second(self.ipckit.p50).map(f64::round).into();
            row["raw_msgs_per_s"] = per_second(self.raw.p50).map(f64::round).into();
            row["ratio_msgs_per_s"] = self.rate_ratio().into();
        } else {
            row["round_trips"] = self.rounds.timed.into();
            row["ipckit"] = self.ipckit.json(Ns::Whole);
            row["raw"] = self.raw.json(Ns::Whole);
        }
        row["ratio_p50"] = self.ratio().into();
        if self.job.row == ShmRow::Spin {
            row["speedup_over_pipe"] = pipe.filter(|_| self.ipckit.p50 > 0.0).map(|p| p / self.ipckit.p50).into();
        }
        let mut rows = vec![row];
        if let Some(iceoryx2) = &self.iceoryx2 {
            rows.push(json!({
                "mechanism": "iceoryx2-busy",
                "size": self.job.size,
                "per": self.job.row.unit(),
                "floor": self.floor(),
                "warmup": self.rounds.warmup,
                "round_trips": self.rounds.timed,
                "trials": iceoryx2.trials.len(),
                "iceoryx2": iceoryx2.json(Ns::Whole),
                "raw": self.raw.json(Ns::Whole),
                "ratio_p50": ratio(iceoryx2, &self.raw),
                "ratio_ipckit_over_iceoryx2": ratio(&self.ipckit, iceoryx2),
            }));
        }
        rows
    }
}

/// The request-response rows of one transport: the plain round trip and
/// each call row, measured in the same trials.
#[derive(Debug)]
pub(super) struct RpcResult {
    pub(super) transport: Transport,
    rounds: Rounds,
    plain: Summary,
    pub(super) calls: Vec<(Mode, Summary)>,
}

impl RpcResult {
    pub(super) fn new(
        transport: Transport,
        rounds: Rounds,
        plain: Vec<Sample>,
        calls: Vec<(Mode, Vec<Sample>)>,
    ) -> RpcResult {
        let calls = calls.into_iter().map(|(mode, samples)| (mode, Summary::of(samples))).collect();
        RpcResult { transport, rounds, plain: Summary::of(plain), calls }
    }

    fn cells(&self) -> Vec<Vec<String>> {
        self.calls
            .iter()
            .map(|(mode, call)| {
                let mut cells = vec![rpc::row_name(self.transport, *mode), self.transport.plain_row().to_owned()];
                cells.extend([self.plain.p50, call.p50, call.p99].map(duration));
                cells.push(ratio_cell(ratio(call, &self.plain)));
                cells.push(format!("≤ {:.1}", rpc::target(*mode)));
                cells
            })
            .collect()
    }

    fn json(&self) -> Vec<Value> {
        self.calls
            .iter()
            .map(|(mode, call)| {
                json!({
                    "mechanism": rpc::row_name(self.transport, *mode),
                    "transport": self.transport.name(),
                    "api": mode.name(),
                    "size": rpc::SIZE,
                    "reply_size": rpc::SIZE,
                    "plain_row": self.transport.plain_row(),
                    "warmup": self.rounds.warmup,
                    "round_trips": self.rounds.timed,
                    "trials": call.trials.len(),
                    "call": call.json(Ns::Whole),
                    "plain": self.plain.json(Ns::Whole),
                    "ratio_p50": ratio(call, &self.plain),
                    "target_ratio": rpc::target(*mode),
                })
            })
            .collect()
    }
}

/// Rows measured beside one plain round trip, in the same trials
/// (publish-subscribe, async).
#[derive(Debug)]
pub(super) struct Beside {
    /// The row the plain round trip is.
    pub(super) plain_row: &'static str,
    /// The key of the rows' own summaries in the JSON document (`pubsub`,
    /// `async`).
    key: &'static str,
    rounds: Rounds,
    plain: Summary,
    rows: Vec<BesideRow>,
}

/// One row of a [`Beside`].
#[derive(Debug)]
pub(super) struct BesideRow {
    pub(super) name: &'static str,
    /// The most `ratio_p50` should be, if there is a target.
    pub(super) target: Option<f64>,
    /// The row's own fields in the JSON document (after `mechanism`).
    pub(super) fields: Value,
    pub(super) samples: Vec<Sample>,
}

impl Beside {
    pub(super) fn new(
        plain_row: &'static str,
        key: &'static str,
        rounds: Rounds,
        plain: Vec<Sample>,
        rows: Vec<BesideRow>,
    ) -> Beside {
        Beside { plain_row, key, rounds, plain: Summary::of(plain), rows }
    }

    pub(super) fn summaries(&self) -> impl Iterator<Item = (&BesideRow, Summary)> {
        self.rows.iter().map(|row| (row, Summary::of(row.samples.clone())))
    }

    fn cells(&self, targets: bool) -> Vec<Vec<String>> {
        self.summaries()
            .map(|(row, own)| {
                let mut cells = vec![row.name.to_owned(), self.plain_row.to_owned()];
                cells.extend([self.plain.p50, own.p50, own.p99].map(duration));
                cells.push(ratio_cell(ratio(&own, &self.plain)));
                if targets {
                    cells.push(row.target.map_or_else(|| "-".to_owned(), |t| format!("≤ {t:.1}")));
                }
                cells
            })
            .collect()
    }

    fn trials(&self) -> impl Iterator<Item = usize> + Clone + '_ {
        self.rows.iter().map(|row| row.samples.len())
    }

    fn json(&self) -> Vec<Value> {
        self.summaries()
            .map(|(row, own)| {
                let mut record = json!({ "mechanism": row.name });
                if let (Some(record), Some(fields)) = (record.as_object_mut(), row.fields.as_object()) {
                    record.extend(fields.clone());
                }
                record["plain_row"] = self.plain_row.into();
                record["warmup"] = self.rounds.warmup.into();
                record["round_trips"] = self.rounds.timed.into();
                record["trials"] = own.trials.len().into();
                record[self.key] = own.json(Ns::Whole);
                record["plain"] = self.plain.json(Ns::Whole);
                record["ratio_p50"] = ratio(&own, &self.plain).into();
                record["target_ratio"] = row.target.into();
                record
            })
            .collect()
    }
}

/// The whole run.
#[derive(Debug)]
pub(super) struct Report<'a> {
    pub(super) plan: &'a Plan,
    pub(super) placement: Placement,
    /// The load average over the run.
    pub(super) load: Load,
    /// The rounds of trials that ran.
    pub(super) rounds: usize,
    pub(super) rows: Vec<Row>,
    pub(super) copy_map: Option<CopyMapTable>,
    pub(super) sync: Vec<SyncRow>,
    pub(super) shm: Vec<ShmResult>,
    pub(super) rpc: Vec<RpcResult>,
    pub(super) pubsub: Option<Beside>,
    pub(super) async_rows: Vec<Beside>,
    /// The rows of the other tables that failed, and why: they are not in
    /// their tables.
    pub(super) failed: Vec<(String, String)>,
}

/// A table with `header`, its columns from the `first_number`th on aligned
/// right.
pub(super) fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>, first_number: usize) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(header);
    for row in rows {
        table.add_row(row);
    }
    for i in first_number..header.len() {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// "5" or "5 to 21".
fn count_range(counts: impl Iterator<Item = usize> + Clone) -> String {
    match (counts.clone().min(), counts.max()) {
        (Some(least), Some(most)) if least < most => format!("{least} to {most}"),
        (_, most) => most.unwrap_or(0).to_string(),
    }
}

impl Report<'_> {
    /// The tables and the notes that explain them.
    pub(super) fn text(&self) -> String {
        let mut parts = Vec::new();
        if !self.rows.is_empty() {
            parts.push(self.messages_text());
        }
        if self.rows.iter().any(|r| r.stream.is_some()) {
            parts.push(self.stream_text());
        }
        if let Some(table) = &self.copy_map {
            parts.push(table.text(self.plan.copy_map_trials, self.shm_busy_64()));
        }
        if !self.sync.is_empty() {
            parts.push(self.sync_text());
        }
        parts.extend(self.shm_text());
        if !self.rpc.is_empty() {
            parts.push(self.rpc_text());
        }
        if let Some(pubsub) = &self.pubsub {
            parts.push(self.pubsub_text(pubsub));
        }
        if !self.async_rows.is_empty() {
            parts.push(self.async_text());
        }
        let failed: Vec<String> = self
            .rows
            .iter()
            .flat_map(Row::failures)
            .chain(self.failed.iter().map(|(row, why)| format!("{row}: {why}")))
            .collect();
        let entries = overview::catalogue(self);
        parts.extend(overview::catalogue_text(&entries));
        let picks = overview::picks(&entries);
        parts.extend(overview::picks_text(&picks));
        if !failed.is_empty() {
            parts.push(format!("Failed (the run went on without them):\n  {}", failed.join("\n  ")));
        }
        if !self.plan.unavailable.is_empty() {
            let lines: Vec<String> = self.plan.unavailable.iter().map(|(rows, why)| format!("{rows}: {why}")).collect();
            parts.push(format!("Not measured (n/a on this machine):\n  {}", lines.join("\n  ")));
        }
        if let Some(reading) = overview::reading(self, &entries, &picks) {
            parts.push(format!("In plain words: {reading}"));
        }
        let mut tail = placement(self.placement);
        if let Some(l) = self.load.max.filter(|&l| l >= BUSY) {
            tail.push_str(&format!(
                "\nOther work was running (load average {} at the start, {} at most, {} at the end): the ratios are \
                 noisier than on an idle machine.",
                load_cell(self.load.start),
                load_cell(Some(l)),
                load_cell(self.load.end)
            ));
        }
        parts.push(tail);
        parts.join("\n\n")
    }

    fn messages_text(&self) -> String {
        let header = ["mechanism", "size", "ipckit p50", "ipckit p99", "raw p50", "raw p99", "ratio (p50)"];
        let table = table(&header, self.rows.iter().map(Row::cells), 1);
        let rounds: Vec<String> = [SIZES[0], MAX_MESSAGE]
            .iter()
            .map(|&s| {
                let r = self.plan.rounds(s);
                let class = if s <= 4096 { "up to 4 KiB" } else { "above" };
                format!("{} round trips after {} warm-up {class}", r.timed, r.warmup)
            })
            .collect();
        let trials = count_range(self.rows.iter().filter_map(Row::trials));
        let mut text = format!(
            "Messages: round trip (send N bytes, receive the echo), ipckit vs raw\n{table}\n\
             ratio = ipckit p50 / raw p50, each the median of {trials} interleaved trials (fresh processes; {}).\n\
             raw = the same system calls with the same bytes (len32 framing on byte streams) on plain descriptors.",
            rounds.join(", "),
        );
        let queues: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.job.kernel_max)
            .filter_map(|r| {
                let limit = self.plan.limits.of(r.job.mechanism)?;
                Some(format!("{} {} ({})", r.job.mechanism.name(), size(r.job.size), limit.source))
            })
            .collect();
        if !queues.is_empty() {
            text.push_str(&format!(
                "\n(max) = the largest message the kernel allows: {}. Each queue row uses two queues, one each way.",
                queues.join(", ")
            ));
        }
        text
    }

    fn stream_text(&self) -> String {
        let header = ["mechanism", "size", "ipckit msg/s", "ipckit GiB/s", "raw msg/s", "raw GiB/s", "ratio (msg/s)"];
        let table = table(&header, self.rows.iter().filter_map(Row::stream_cells), 1);
        let trials = count_range(self.rows.iter().filter_map(|r| match &r.stream {
            Some(Outcome::Measured { ipckit, .. }) => Some(ipckit.trials.len()),
            _ => None,
        }));
        let (small, small_batch) = self.plan.stream_rounds(SIZES[0]);
        let (large, large_batch) = self.plan.stream_rounds(MAX_MESSAGE);
        format!(
            "Messages: streaming one way (the peer sends, this side receives), ipckit vs raw\n{table}\n\
             ratio = ipckit messages/s / raw messages/s, from the median of {trials} interleaved trials of the p50 \
             time per message over timed batches ({} messages in batches of {small_batch} after {} of warm-up up to \
             4 KiB, {} in batches of {large_batch} after {} above).",
            small.timed, small.warmup, large.timed, large.warmup
        )
    }

    fn sync_text(&self) -> String {
        let header = ["operation", "per", "ipckit p50", "ipckit p99", "raw p50", "raw p99", "ratio (p50)"];
        let table = table(&header, self.sync.iter().map(SyncRow::cells), 2);
        let trials = count_range(self.sync.iter().map(|r| r.ipckit.trials.len()));
        format!(
            "Synchronization: ipckit vs raw\n{table}\n\
             ratio = ipckit p50 / raw p50, each the median of {trials} interleaved trials.\n\
             mutex-uncontended: Mutex<u64> lock and guard drop vs pthread_mutex_lock/unlock (process-shared, robust, \
             error-checking, in a memfd page), in batches of {BATCH}, one process.\n\
             mutex-handoff: two processes take turns through a word under the mutex (a round trip / 2).\n\
             event-pingpong: two auto-reset futex events between two processes vs the same spin-then-FUTEX_WAIT loop \
             on plain words."
        )
    }

    fn rpc_text(&self) -> String {
        let header = ["row", "plain", "plain p50", "call p50", "call p99", "call / plain", "target"];
        let table = table(&header, self.rpc.iter().flat_map(RpcResult::cells), 2);
        let trials = count_range(self.rpc.iter().flat_map(|r| r.calls.iter().map(|(_, c)| c.trials.len())));
        let r = self.plan.rounds(rpc::SIZE);
        format!(
            "Request-response: a call ({} B request, {} B reply) to a server in the other process, beside the plain \
             round trip of the same transport\n{table}\n\
             call / plain = call p50 / plain p50, each the median of {trials} interleaved trials (fresh processes; {} \
             round trips after {} warm-up).\n\
             rpc = ipckit::rpc::Client::call, the peer's rpc::Server echoing the body (serve_count). rpc-typed = \
             ipckit::typed::Client::<Tick, Tick>::call, a serde struct (u64, f64, String) of {} B in postcard each \
             way, the peer's typed::Server answering the next tick. plain = the \
             message table's ipckit round trip of {} B on the same transport (shm: shm-spin's, two shm: channels, \
             ?wait=block), with Options::max_message(64 KiB) and recv_into.",
            rpc::SIZE,
            rpc::SIZE,
            r.timed,
            r.warmup,
            rpc::SIZE,
            rpc::SIZE,
        )
    }

    fn pubsub_text(&self, pubsub: &Beside) -> String {
        let header = ["row", "plain", "plain p50", "pubsub p50", "pubsub p99", "pubsub / plain"];
        let table = table(&header, pubsub.cells(false).into_iter(), 2);
        let r = self.plan.rounds(pubsub::SIZE);
        format!(
            "Publish-subscribe on shm: ({} B), beside the shm: channel round trip that waits the same way\n{table}\n\
             pubsub / plain = pubsub p50 / plain p50, each the median of {} rotating trials (fresh processes; {} \
             round trips after {} warm-up).\n\
             Timed by the publisher: 1sub = publish to 1 subscriber process, which sends it back on a shm: channel; \
             4sub = publish to 4 subscriber processes (all on the peer's CPU), each sending it back on the same \
             channel, until the 4th echo; 2topics = publish to 1 subscriber, which publishes it back on a second \
             topic. plain = shm-spin's: two shm: channels. Every topic and channel ?wait=block (spin 50 µs, then \
             park).",
            pubsub::SIZE,
            count_range(pubsub.trials()),
            r.timed,
            r.warmup,
        )
    }

    fn async_text(&self) -> String {
        let header = ["row", "plain", "plain p50", "async p50", "async p99", "async / plain", "target"];
        let table = table(&header, self.async_rows.iter().flat_map(|b| b.cells(true)), 2);
        let trials = count_range(self.async_rows.iter().flat_map(Beside::trials));
        let r = self.plan.rounds(async_io::SIZE);
        format!(
            "Async: a round trip ({} B) through ipckit::tokio in both processes (a current_thread runtime each), \
             beside the blocking round trip that waits the same way\n{table}\n\
             async / plain = async p50 / plain p50, each the median of {trials} interleaved trials (fresh processes; \
             {} round trips after {} warm-up).\n\
             async-shm: ?spin=0, each receive awaits in the reactor, beside shm-park. async-shm-spin: each receive \
             spins for the spin window (50 µs; in the bench: the blocking recv_into_timeout, AsyncReceiver has no \
             spin) before it awaits, beside shm-spin. async-unix-stream, async-tcp: a socket each way (AsyncReceiver \
             and AsyncSender), beside the message table's round trip over one Connection.",
            async_io::SIZE,
            r.timed,
            r.warmup,
        )
    }

    /// The ipckit p50 of the pipe row at 64 B, if it was measured.
    fn pipe_64(&self) -> Option<f64> {
        self.rows.iter().find(|r| r.job.mechanism == Mechanism::Pipe && r.job.size == 64).and_then(|r| {
            match &r.outcome {
                Outcome::Measured { ipckit, .. } => Some(ipckit.p50),
                Outcome::Limit { .. } | Outcome::Failed { .. } => None,
            }
        })
    }

    /// The ipckit p50 of the `shm-busy` row at 64 B, if it was measured.
    fn shm_busy_64(&self) -> Option<f64> {
        self.shm.iter().find(|r| r.job.row == ShmRow::Busy && r.job.size == 64).map(|r| r.ipckit.p50)
    }

    /// The shared-memory tables: round trips, streaming, and iceoryx2.
    fn shm_text(&self) -> Vec<String> {
        let mut parts = Vec::new();
        let (stream, ping_pong): (Vec<&ShmResult>, Vec<&ShmResult>) = self.shm.iter().partition(|r| r.is_stream());
        if !ping_pong.is_empty() {
            let header = ["row", "size", "ipckit p50", "ipckit p99", "floor p50", "floor p99", "ratio (p50)"];
            let table = table(&header, ping_pong.iter().map(|r| r.cells()), 1);
            let trials = count_range(ping_pong.iter().map(|r| r.ipckit.trials.len()));
            let mut text = format!(
                "Shared memory: round trip (send N bytes, receive the echo) over two shm: channels, ipckit vs the \
                 floor\n{table}\n\
                 ratio = ipckit p50 / floor p50, each the median of {trials} interleaved trials (fresh processes).\n\
                 shm-busy: ?wait=busy, both sides busy-poll. shm-spin: ?wait=block with the default spin window; the \
                 echo comes within it. shm-park: ?spin=0, every receive parks.\n\
                 floor = a turn word and a buffer per direction in a memfd, the payload copied in and out: shm-busy, \
                 shm-spin: both sides spin on the word (a cache-line ping-pong); shm-park: FUTEX_WAIT at once, no \
                 spin, and FUTEX_WAKE when the other side sleeps."
            );
            let spin = ping_pong.iter().find(|r| r.job.row == ShmRow::Spin && r.ipckit.p50 > 0.0);
            if let (Some(spin), Some(pipe)) = (spin, self.pipe_64()) {
                text.push_str(&format!(
                    "\nshm-spin 64 B is {:.0}× faster than pipe 64 B (ipckit p50 {} vs {}).",
                    pipe / spin.ipckit.p50,
                    duration(spin.ipckit.p50),
                    duration(pipe)
                ));
            }
            parts.push(text);
        }
        if !stream.is_empty() {
            let header =
                ["row", "size", "ipckit msg/s", "ipckit per msg", "floor msg/s", "floor per msg", "ratio (msg/s)"];
            let table = table(&header, stream.iter().map(|r| r.stream_cells()), 1);
            let trials = count_range(stream.iter().map(|r| r.ipckit.trials.len()));
            parts.push(format!(
                "Shared memory: streaming one way (SPSC), {}-byte records with a sequence stamp\n{table}\n\
                 ratio = ipckit messages/s / floor messages/s, from the median of {trials} interleaved trials of the \
                 p50 time per message over batches of {STREAM_BATCH}.\n\
                 ipckit = a shm: channel, ?wait=busy; floor = a ring of fixed slots in a memfd, head and tail \
                 atomics; both check every stamp.",
                floor::RECORD
            ));
        }
        let iceoryx2: Vec<(&ShmResult, &Summary)> =
            self.shm.iter().filter_map(|r| r.iceoryx2.as_ref().map(|i| (r, i))).collect();
        if !iceoryx2.is_empty() {
            let header = [
                "size",
                "iceoryx2 p50",
                "iceoryx2 p99",
                "floor p50",
                "iceoryx2 / floor",
                "ipckit p50",
                "ipckit / iceoryx2",
            ];
            let table = table(&header, iceoryx2.iter().map(|(r, i)| r.iceoryx2_cells(i)), 0);
            parts.push(format!(
                "iceoryx2 0.10 (compare-iceoryx2): round trip, busy-polling, in the same trials as shm-busy\n{table}\n\
                 iceoryx2 = two publish-subscribe services of byte slices (ipc::Service), the payload copied into a \
                 loaned sample and out of the received one."
            ));
        }
        parts
    }

    /// The JSON document.
    pub(super) fn json(&self) -> Value {
        let placement = match self.placement {
            Placement::Pinned { parent, peer } => json!({ "pinned": true, "parent_cpu": parent, "peer_cpu": peer }),
            Placement::Unpinned => json!({ "pinned": false }),
        };
        let limits = json!({
            "mq": { "max_message": self.plan.limits.mq.max, "source": self.plan.limits.mq.source },
            "sysv-mq": { "max_message": self.plan.limits.sysv.max, "source": self.plan.limits.sysv.source },
        });
        let copy_map = self.copy_map.as_ref().map(|t| t.json(self.plan.copy_map_trials, self.shm_busy_64()));
        let pipe = self.pipe_64();
        let shm: Vec<Value> = self.shm.iter().flat_map(|r| r.json(pipe)).collect();
        let failed: Vec<Value> = self
            .rows
            .iter()
            .flat_map(|r| {
                let trip = match &r.outcome {
                    Outcome::Failed { why } => Some(json!({ "row": r.job.to_string(), "why": why })),
                    _ => None,
                };
                let stream = match &r.stream {
                    Some(Outcome::Failed { why }) => Some(json!({ "row": format!("{} stream", r.job), "why": why })),
                    _ => None,
                };
                trip.into_iter().chain(stream)
            })
            .chain(self.failed.iter().map(|(row, why)| json!({ "row": row, "why": why })))
            .collect();
        let entries = overview::catalogue(self);
        let picks = overview::picks(&entries);
        let answer = json!({
            "per_size": overview::picks_json(&picks),
            "crossover": self.copy_map.as_ref().and_then(|t| match t.crossover()? {
                Crossover::From(size) => Some(size),
                Crossover::None => None,
            }),
            "threshold": self.copy_map.as_ref().and_then(CopyMapTable::threshold),
            "reading": overview::reading(self, &entries, &picks),
        });
        let unavailable: Vec<Value> =
            self.plan.unavailable.iter().map(|(rows, why)| json!({ "rows": rows, "why": why })).collect();
        json!({
            "catalogue": overview::catalogue_json(&entries),
            "answer": answer,
            "method": overview::method_json(self.plan, self.rounds),
            "unavailable": unavailable,
            "schema": SCHEMA,
            "max_trials": self.plan.trials,
            "quick": self.plan.quick,
            "placement": placement,
            "load_average_at_start": self.load.start,
            "load_average": { "start": self.load.start, "end": self.load.end, "max": self.load.max },
            "rounds": self.rounds,
            "failed": failed,
            "queue_limits": limits,
            "results": self.rows.iter().map(Row::json).collect::<Vec<Value>>(),
            "copy_vs_map": copy_map,
            "synchronization": self.sync.iter().map(SyncRow::json).collect::<Vec<Value>>(),
            "shm": shm,
            "rpc": self.rpc.iter().flat_map(RpcResult::json).collect::<Vec<Value>>(),
            "pubsub": self.pubsub.iter().flat_map(Beside::json).collect::<Vec<Value>>(),
            "async": self.async_rows.iter().flat_map(Beside::json).collect::<Vec<Value>>(),
        })
    }
}

/// A load average for people: `1.4`, or `?`.
fn load_cell(load: Option<f64>) -> String {
    load.map_or_else(|| "?".to_owned(), |l| format!("{l:.1}"))
}

/// A load average from which the machine counts as busy.
const BUSY: f64 = 1.0;

/// A line about where the processes ran.
fn placement(p: Placement) -> String {
    match p {
        Placement::Pinned { parent, peer } => format!("Pinned: parent on CPU {parent}, peer on CPU {peer}."),
        Placement::Unpinned => "Unpinned: only one CPU is allowed, so both processes share it.".to_owned(),
    }
}

/// Where the processes ran, as the JSON document's `machine.pinning`.
pub(super) fn pinning(p: Placement) -> String {
    match p {
        Placement::Pinned { parent, peer } => format!("parent on CPU {parent}, peer on CPU {peer}"),
        Placement::Unpinned => "unpinned: only one CPU is allowed, so both processes share it".to_owned(),
    }
}

/// A size for people: `64 B`, `64 KiB`.
pub(super) fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A duration in nanoseconds for people: `23.4 ns`, `850 ns`, `12.3 µs`,
/// `1.25 ms`.
pub(super) fn duration(ns: f64) -> String {
    match ns {
        n if n < 100.0 => format!("{n:.1} ns"),
        n if n < 1e3 => format!("{n:.0} ns"),
        n if n < 1e6 => format!("{:.1} µs", n / 1e3),
        n => format!("{:.2} ms", n / 1e6),
    }
}
