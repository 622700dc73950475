//! The results: tables for people, a JSON document for programs.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use serde_json::{Value, json};

use super::catalogue::Mechanism;
use super::floor;
use super::link::{Rounds, Sample, median};
use super::placement::Placement;
use super::plan::{Job, MAX_MESSAGE, Plan, SIZES};
use super::shm::{STREAM_BATCH, ShmJob, ShmRow};
use super::sync::{BATCH, SyncOp};

/// The version of the JSON document's layout: raised when a name or a
/// meaning changes, not when something is added.
const SCHEMA: u32 = 1;

/// One mode's trials of a row.
#[derive(Debug)]
pub(super) struct Summary {
    /// Median of the trials' p50, nanoseconds.
    pub(super) p50: f64,
    /// Median of the trials' p99, nanoseconds.
    pub(super) p99: f64,
    pub(super) trials: Vec<Sample>,
}

/// How a JSON document writes nanoseconds.
#[derive(Clone, Copy, Debug)]
enum Ns {
    /// Whole nanoseconds (round trips).
    Whole,
    /// Tenths (operations of a few nanoseconds).
    Tenths,
}

impl Ns {
    fn value(self, ns: f64) -> Value {
        match self {
            Ns::Whole => json!(ns.round() as u64),
            Ns::Tenths => json!((ns * 10.0).round() / 10.0),
        }
    }
}

impl Summary {
    fn of(trials: Vec<Sample>) -> Summary {
        let p50 = median(trials.iter().map(|s| s.p50).collect());
        let p99 = median(trials.iter().map(|s| s.p99).collect());
        Summary { p50, p99, trials }
    }

    fn json(&self, ns: Ns) -> Value {
        let trials: Vec<Value> =
            self.trials.iter().map(|s| json!({ "p50_ns": ns.value(s.p50), "p99_ns": ns.value(s.p99) })).collect();
        json!({ "p50_ns": ns.value(self.p50), "p99_ns": ns.value(self.p99), "trials": trials })
    }
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
}

impl Row {
    /// Trials of each mode, for a measured row.
    fn trials(&self) -> Option<usize> {
        match &self.outcome {
            Outcome::Measured { ipckit, .. } => Some(ipckit.trials.len()),
            Outcome::Limit { .. } => None,
        }
    }

    /// ipckit p50 / raw p50.
    fn ratio(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Measured { ipckit, raw } => ratio(ipckit, raw),
            Outcome::Limit { .. } => None,
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
        }
        cells
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
        }
        row
    }
}

/// One size of the copy-vs-map table.
#[derive(Debug)]
pub(super) struct CopyMapRow {
    size: usize,
    rounds: Rounds,
    copy: Summary,
    map: Summary,
}

impl CopyMapRow {
    pub(super) fn new(size: usize, rounds: Rounds, copy: Vec<Sample>, map: Vec<Sample>) -> CopyMapRow {
        CopyMapRow { size, rounds, copy: Summary::of(copy), map: Summary::of(map) }
    }

    /// copy p50 / map p50: above 1, mapping is faster.
    fn ratio(&self) -> Option<f64> {
        ratio(&self.copy, &self.map)
    }

    fn cells(&self) -> Vec<String> {
        let mut cells = vec![size(self.size)];
        cells.extend([self.copy.p50, self.copy.p99, self.map.p50, self.map.p99].map(duration));
        cells.push(ratio_cell(self.ratio()));
        cells
    }

    fn json(&self) -> Value {
        json!({
            "size": self.size,
            "warmup": self.rounds.warmup,
            "exchanges": self.rounds.timed,
            "trials": self.copy.trials.len(),
            "copy": self.copy.json(Ns::Whole),
            "map": self.map.json(Ns::Whole),
            "ratio_copy_over_map": self.ratio(),
        })
    }
}

/// The smallest size from which mapping is faster (map p50 below copy p50)
/// at that size and every larger one measured; `None` if it is not faster
/// at the largest.
fn crossover(rows: &[CopyMapRow]) -> Option<usize> {
    let faster = |r: &CopyMapRow| r.map.p50 < r.copy.p50;
    let from = rows.iter().rposition(|r| !faster(r)).map_or(0, |i| i + 1);
    rows.get(from).map(|r| r.size)
}

/// The sizes at which mapping was faster, as runs of consecutive sizes:
/// (first, last).
fn map_faster_runs(rows: &[CopyMapRow]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut previous_faster = false;
    for r in rows {
        let faster = r.map.p50 < r.copy.p50;
        match runs.last_mut() {
            Some(run) if faster && previous_faster => run.1 = r.size,
            _ if faster => runs.push((r.size, r.size)),
            _ => {}
        }
        previous_faster = faster;
    }
    runs
}

/// One row of the synchronization table.
#[derive(Debug)]
pub(super) struct SyncRow {
    op: SyncOp,
    rounds: Rounds,
    ipckit: Summary,
    raw: Summary,
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
    job: ShmJob,
    rounds: Rounds,
    ipckit: Summary,
    raw: Summary,
    iceoryx2: Option<Summary>,
}

/// Messages per second at `ns_per_message`.
fn per_second(ns_per_message: f64) -> Option<f64> {
    (ns_per_message > 0.0).then(|| 1e9 / ns_per_message)
}

/// `12.3 M`, `850 k`: a rate for people.
fn rate(per_s: Option<f64>) -> String {
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

/// The whole run.
#[derive(Debug)]
pub(super) struct Report<'a> {
    pub(super) plan: &'a Plan,
    pub(super) placement: Placement,
    /// The load average when the run began.
    pub(super) load: Option<f64>,
    pub(super) rows: Vec<Row>,
    pub(super) copy_map: Option<Vec<CopyMapRow>>,
    pub(super) sync: Vec<SyncRow>,
    pub(super) shm: Vec<ShmResult>,
}

/// A table with `header`, its columns from the `first_number`th on aligned
/// right.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>, first_number: usize) -> Table {
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
        if let Some(rows) = &self.copy_map {
            parts.push(copy_map_text(rows));
        }
        if !self.sync.is_empty() {
            parts.push(self.sync_text());
        }
        parts.extend(self.shm_text());
        let mut tail = placement(self.placement);
        if let Some(l) = self.load.filter(|&l| l >= BUSY) {
            tail.push_str(&format!(
                "\nOther work was running (load average {l:.1} at the start): the ratios are noisier than on an idle \
                 machine."
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

    /// The ipckit p50 of the pipe row at 64 B, if it was measured.
    fn pipe_64(&self) -> Option<f64> {
        self.rows.iter().find(|r| r.job.mechanism == Mechanism::Pipe && r.job.size == 64).and_then(|r| {
            match &r.outcome {
                Outcome::Measured { ipckit, .. } => Some(ipckit.p50),
                Outcome::Limit { .. } => None,
            }
        })
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
        let copy_map = self.copy_map.as_ref().map(|rows| {
            let faster: Vec<usize> = rows.iter().filter(|r| r.map.p50 < r.copy.p50).map(|r| r.size).collect();
            json!({
                "max_trials": self.plan.copy_map_trials,
                "results": rows.iter().map(CopyMapRow::json).collect::<Vec<Value>>(),
                "crossover_size": crossover(rows),
                "map_faster_sizes": faster,
            })
        });
        let pipe = self.pipe_64();
        let shm: Vec<Value> = self.shm.iter().flat_map(|r| r.json(pipe)).collect();
        json!({
            "schema": SCHEMA,
            "max_trials": self.plan.trials,
            "quick": self.plan.quick,
            "placement": placement,
            "load_average_at_start": self.load,
            "queue_limits": limits,
            "results": self.rows.iter().map(Row::json).collect::<Vec<Value>>(),
            "copy_vs_map": copy_map,
            "synchronization": self.sync.iter().map(SyncRow::json).collect::<Vec<Value>>(),
            "shm": shm,
        })
    }
}

fn copy_map_text(rows: &[CopyMapRow]) -> String {
    let header = ["size", "copy p50", "copy p99", "map p50", "map p99", "copy / map"];
    let table = table(&header, rows.iter().map(CopyMapRow::cells), 1);
    let trials = count_range(rows.iter().map(|r| r.copy.trials.len()));
    let crossover = match crossover(rows) {
        Some(s) if rows.first().is_some_and(|r| r.size == s) => {
            format!("{} (map was faster at every size measured)", size(s))
        }
        Some(s) => format!("{} (map is faster from this size on, at every larger size measured)", size(s)),
        None => match map_faster_runs(rows)[..] {
            [] => "none (map was faster at no size measured)".to_owned(),
            ref runs => format!(
                "none (map was faster at {}, but not at the largest size)",
                runs.iter()
                    .map(|&(a, b)| if a == b { size(a) } else { format!("{} to {}", size(a), size(b)) })
                    .collect::<Vec<String>>()
                    .join(", ")
            ),
        },
    };
    format!(
        "Copy vs map: N bytes to another process, an 8-byte acknowledgement back\n{table}\n\
         copy = the N bytes through a Unix stream socket (ipckit Connection, len32).\n\
         map = the N bytes written to a sealed memfd Region (passed once), an 8-byte note through the same kind of \
         socket, the receiver reads them out with read_at.\n\
         copy / map = copy p50 / map p50 (above 1: mapping is faster), each the median of {trials} interleaved \
         trials.\n\
         Crossover: {crossover}."
    )
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
fn duration(ns: f64) -> String {
    match ns {
        n if n < 100.0 => format!("{n:.1} ns"),
        n if n < 1e3 => format!("{n:.0} ns"),
        n if n < 1e6 => format!("{:.1} µs", n / 1e3),
        n => format!("{:.2} ms", n / 1e6),
    }
}
