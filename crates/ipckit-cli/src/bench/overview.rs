//! The run at a glance: the catalogue (every row of every table as one
//! record: mechanism, variant, size, all percentiles, the spread of its
//! trials, its one-way throughput), the answer (per size, the fastest
//! mechanism and its lead over the next; the copy-vs-map crossover) and a
//! reading of it in plain words.
//!
//! Everything here is made of what the tables measured: nothing is
//! estimated or carried over from one size to another.

use serde_json::{Value, json};

use super::copymap::Way;
use super::plan::Plan;
use super::report::{
    Crossover, Ns, Outcome, Report, Summary, duration, gib_rate, per_second, percentiles_json, rate, size, table,
};
use super::shm::{STREAM_BATCH, ShmRow};

/// What a record found.
#[derive(Clone, Debug)]
pub(super) enum Status {
    /// Measured: the latency (a round trip, or for a stream-only row
    /// none) and the time per message streaming one way, if that ran.
    Ok { latency: Option<Summary>, stream: Option<Summary> },
    /// Not measured here (a kernel limit, a ring too small); why.
    NotAvailable(String),
    /// Its trials failed; why.
    Failed(String),
}

/// One row of one table: a mechanism, a variant, a size.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// The table's key in the JSON document.
    pub(super) table: &'static str,
    pub(super) name: String,
    /// `ipckit`, `raw`, `floor`, a copy-vs-map variant, `call`, ...; ""
    /// for none.
    pub(super) variant: &'static str,
    /// Bytes per message (0: no message, a synchronization operation).
    pub(super) size: usize,
    pub(super) status: Status,
    /// Messages per timed batch of the stream, if it ran.
    pub(super) batch: Option<usize>,
    /// A size only some rows of its table have (a queue's largest
    /// message): left out of the answer, which compares every mechanism.
    pub(super) partial: bool,
}

impl Entry {
    fn ok(table: &'static str, name: String, variant: &'static str, size: usize, latency: &Summary) -> Entry {
        let status = Status::Ok { latency: Some(latency.clone()), stream: None };
        Entry { table, name, variant, size, status, batch: None, partial: false }
    }

    /// The median round trip (or operation), if measured.
    pub(super) fn p50(&self) -> Option<f64> {
        match &self.status {
            Status::Ok { latency: Some(l), .. } => Some(l.p50).filter(|&p| p > 0.0),
            _ => None,
        }
    }

    /// The name with its variant, for people: `map-pool fill-and-read`,
    /// `pipe raw`; the name alone where the variant is the row's only one
    /// (`pipe` through ipckit, an rpc call).
    pub(super) fn label(&self) -> String {
        match self.variant {
            "" | "ipckit" | "call" | "pubsub" | "async" => self.name.clone(),
            v => format!("{} {v}", self.name),
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "table": self.table,
            "name": self.name,
            "variant": self.variant,
            "size": self.size,
        });
        let none = || json!({ "p50_ns": null, "p90_ns": null, "p99_ns": null, "p999_ns": null, "max_ns": null });
        let (status, detail, latency, stream) = match &self.status {
            Status::Ok { latency, stream } => ("ok", None, latency.as_ref(), stream.as_ref()),
            Status::NotAvailable(why) => ("n/a", Some(why.as_str()), None, None),
            Status::Failed(why) => ("failed", Some(why.as_str()), None, None),
        };
        v["status"] = status.into();
        v["detail"] = detail.into();
        let ns = if self.table == "sync" { Ns::Tenths } else { Ns::Whole };
        let fields = latency.map_or_else(none, |l| percentiles_json(l.all, ns));
        if let (Some(v), Some(fields)) = (v.as_object_mut(), fields.as_object()) {
            v.extend(fields.clone());
        }
        v["spread"] = latency
            .and_then(Summary::spread)
            .map(|(lo, hi)| json!({ "min_p50_ns": ns.value(lo), "max_p50_ns": ns.value(hi) }))
            .into();
        v["trials"] =
            latency.map_or_else(Vec::new, |l| l.trials.iter().map(|s| percentiles_json(*s, ns)).collect()).into();
        v["stream"] = stream
            .and_then(|s| {
                let per_s = per_second(s.p50)?;
                let trials: Vec<Value> =
                    s.trials.iter().filter_map(|t| per_second(t.p50)).map(|r| r.round().into()).collect();
                Some(json!({
                    "msgs_per_s": per_s.round(),
                    "gib_per_s": per_s * self.size as f64 / (1u64 << 30) as f64,
                    "trials_msgs_per_s": trials,
                    "batch": self.batch,
                }))
            })
            .into();
        v
    }

    /// The catalogue table's cells.
    fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.label(), if self.size == 0 { "-".to_owned() } else { size(self.size) }];
        match &self.status {
            Status::Ok { latency, stream } => {
                match latency {
                    Some(l) => {
                        cells.extend(l.all.values().map(duration));
                        cells.push(spread_cell(l));
                    }
                    None => cells.extend(std::iter::repeat_n("-".to_owned(), 6)),
                }
                let per_s = stream.as_ref().and_then(|s| per_second(s.p50));
                cells.push(stream.as_ref().map_or_else(|| "-".to_owned(), |_| rate(per_s)));
                cells.push(stream.as_ref().map_or_else(|| "-".to_owned(), |_| gib_rate(per_s, self.size)));
            }
            Status::NotAvailable(_) => {
                cells.extend(std::iter::repeat_n("n/a".to_owned(), 8));
            }
            Status::Failed(_) => {
                cells.extend(std::iter::repeat_n("failed".to_owned(), 8));
            }
        }
        cells
    }
}

/// The spread of a row's trials: half the range of their p50s, as a share
/// of the median (`±3%`).
fn spread_cell(l: &Summary) -> String {
    match l.spread() {
        Some((lo, hi)) if l.p50 > 0.0 && l.trials.len() > 1 => format!("±{:.0}%", (hi - lo) / 2.0 / l.p50 * 100.0),
        _ => "-".to_owned(),
    }
}

/// A message table outcome as a record's status (`stream`: the stream's
/// summary for the same variant).
fn status_of(outcome: &Outcome, pick: impl Fn(&Summary, &Summary) -> Summary, stream: Option<Summary>) -> Status {
    match outcome {
        Outcome::Measured { ipckit, raw } => Status::Ok { latency: Some(pick(ipckit, raw)), stream },
        Outcome::Limit { why, .. } => Status::NotAvailable(why.clone()),
        Outcome::Failed { why } => Status::Failed(why.clone()),
    }
}

/// Every row of the run, as records, in the order of the tables.
pub(super) fn catalogue(report: &Report<'_>) -> Vec<Entry> {
    let mut out = Vec::new();
    for row in &report.rows {
        let batch = report.plan.stream_rounds(row.job.size).1;
        for (variant, ipckit) in [("ipckit", true), ("raw", false)] {
            let pick = |a: &Summary, b: &Summary| if ipckit { a.clone() } else { b.clone() };
            let stream = match &row.stream {
                Some(Outcome::Measured { ipckit: a, raw: b }) => Some(pick(a, b)),
                _ => None,
            };
            let has_stream = stream.is_some();
            out.push(Entry {
                table: "messages",
                name: row.job.mechanism.name().to_owned(),
                variant,
                size: row.job.size,
                status: status_of(&row.outcome, pick, stream),
                batch: has_stream.then_some(batch),
                partial: row.job.kernel_max,
            });
        }
    }
    for r in &report.shm {
        let name = r.job.row.name().to_owned();
        let mut push = |variant: &'static str, s: &Summary| {
            let entry = match r.job.row {
                ShmRow::Stream => Entry {
                    table: "shm",
                    name: name.clone(),
                    variant,
                    size: r.job.size,
                    status: Status::Ok { latency: None, stream: Some(s.clone()) },
                    batch: Some(STREAM_BATCH),
                    partial: false,
                },
                _ => Entry::ok("shm", name.clone(), variant, r.job.size, s),
            };
            out.push(entry);
        };
        push("ipckit", &r.ipckit);
        push("floor", &r.raw);
        if let Some(i) = &r.iceoryx2 {
            push("iceoryx2", i);
        }
    }
    if let Some(t) = &report.copy_map {
        for s in &t.sizes {
            for cell in &s.cells {
                let status = match &cell.result {
                    Some(summary) => Status::Ok { latency: Some(summary.clone()), stream: None },
                    None => Status::NotAvailable(format!(
                        "a {}-byte message does not fit the largest ring of the table",
                        s.size
                    )),
                };
                let variant = cell.way.variant().unwrap_or("");
                let name = cell.way.name().to_owned();
                out.push(Entry {
                    table: "copy_vs_map",
                    name,
                    variant,
                    size: s.size,
                    status,
                    batch: None,
                    partial: false,
                });
            }
        }
    }
    for r in &report.sync {
        out.push(Entry::ok("sync", r.op.name().to_owned(), "ipckit", 0, &r.ipckit));
        out.push(Entry::ok("sync", r.op.name().to_owned(), "raw", 0, &r.raw));
    }
    for r in &report.rpc {
        for (mode, summary) in &r.calls {
            out.push(Entry::ok("rpc", super::rpc::row_name(r.transport, *mode), "call", super::rpc::SIZE, summary));
        }
    }
    for (key, beside) in
        report.pubsub.iter().map(|b| ("pubsub", b)).chain(report.async_rows.iter().map(|b| ("async", b)))
    {
        let size = if key == "pubsub" { super::pubsub::SIZE } else { super::async_io::SIZE };
        for (row, summary) in beside.summaries() {
            out.push(Entry::ok(key, row.name.to_owned(), key, size, &summary));
        }
    }
    out
}

/// The catalogue in the JSON document.
pub(super) fn catalogue_json(entries: &[Entry]) -> Value {
    entries.iter().map(Entry::json).collect::<Vec<Value>>().into()
}

/// The catalogue in the terminal: the rows through ipckit of the message,
/// shared-memory, request-response, publish-subscribe and async tables
/// (the raw and floor rows, the copy-vs-map and synchronization rows are
/// in their own tables, and in `--json`).
pub(super) fn catalogue_text(entries: &[Entry]) -> Option<String> {
    let shown: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(e.table, "messages" | "shm" | "rpc" | "pubsub" | "async"))
        .filter(|e| matches!(e.variant, "ipckit" | "call" | "pubsub" | "async"))
        .collect();
    if shown.is_empty() {
        return None;
    }
    let header = ["row", "size", "p50", "p90", "p99", "p99.9", "max", "spread", "stream msg/s", "stream GiB/s"];
    // Each the row's only variant here: the name alone.
    let t = table(&header, shown.iter().map(|e| e.cells()), 1);
    Some(format!(
        "Every mechanism through ipckit: round trip percentiles (HDR histogram of every timed round trip) and \
         one-way streaming\n{t}\n\
         Each percentile the median over the row's trials of that trial's percentile; spread = half the range of \
         the trials' p50, of the median. stream = messages/s (and bytes/s) streaming one way at that size, where \
         measured (the message rows; shm-stream, 64-byte records). The raw and floor rows, copy-vs-map and \
         synchronization are in the tables below and in --json (\"catalogue\")."
    ))
}

/// For one size: the fastest way to move a message of it, and the next.
#[derive(Clone, Debug)]
pub(super) struct Pick {
    pub(super) size: usize,
    /// What was compared: `round trip` (an echo of N bytes), or `N bytes
    /// and an 8-byte ack` (the copy-vs-map table, where no echo row has
    /// the size).
    pub(super) basis: &'static str,
    pub(super) fastest: (String, f64),
    pub(super) next: (String, f64),
}

impl Pick {
    fn lead(&self) -> f64 {
        self.next.1 / self.fastest.1
    }
}

/// The answer, per size: of the ways through ipckit that deliver a message
/// (the message mechanisms, the `shm:` round trips; where neither has the
/// size, the copy-vs-map rows that deliver every byte), the fastest p50
/// and the next.
pub(super) fn picks(entries: &[Entry]) -> Vec<Pick> {
    let echo = |e: &&Entry| {
        (e.table == "messages" || (e.table == "shm" && e.name != ShmRow::Stream.name()))
            && e.variant == "ipckit"
            && !e.partial
    };
    let copy_map = |e: &&Entry| {
        e.table == "copy_vs_map"
            && Way::ALL.iter().any(|w| w.name() == e.name && w.variant().unwrap_or("") == e.variant && w.delivers())
    };
    let mut sizes: Vec<usize> =
        entries.iter().filter(|e| echo(e) || copy_map(e)).filter(|e| e.p50().is_some()).map(|e| e.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
        .into_iter()
        .filter_map(|size| {
            let at = |f: &dyn Fn(&&Entry) -> bool| -> Vec<(String, f64)> {
                let mut v: Vec<(String, f64)> = entries
                    .iter()
                    .filter(|e| e.size == size && f(e))
                    .filter_map(|e| Some((e.label(), e.p50()?)))
                    .collect();
                v.sort_by(|a, b| a.1.total_cmp(&b.1));
                v
            };
            let (basis, ranked) = match at(&echo) {
                v if !v.is_empty() => ("round trip", v),
                _ => ("N bytes and an 8-byte ack", at(&copy_map)),
            };
            // A size with one way only answers nothing.
            let mut ranked = ranked.into_iter();
            let fastest = ranked.next()?;
            Some(Pick { size, basis, fastest, next: ranked.next()? })
        })
        .collect()
}

pub(super) fn picks_json(picks: &[Pick]) -> Value {
    picks
        .iter()
        .map(|p| {
            json!({
                "size": p.size,
                "basis": p.basis,
                "fastest": p.fastest.0,
                "fastest_p50_ns": p.fastest.1.round(),
                "next": p.next.0,
                "next_p50_ns": p.next.1.round(),
                "lead": p.lead(),
            })
        })
        .collect::<Vec<Value>>()
        .into()
}

pub(super) fn picks_text(picks: &[Pick]) -> Option<String> {
    if picks.is_empty() {
        return None;
    }
    let header = ["size", "fastest", "p50", "next", "next p50", "lead", "compared"];
    let rows = picks.iter().map(|p| {
        vec![
            size(p.size),
            p.fastest.0.clone(),
            duration(p.fastest.1),
            p.next.0.clone(),
            duration(p.next.1),
            format!("{:.2}×", p.lead()),
            p.basis.to_owned(),
        ]
    });
    Some(format!(
        "The answer: the fastest way through ipckit per size (p50), and its lead over the next\n{}\n\
         Of the message mechanisms and the shm: round trips (an echo of N bytes); at sizes only the copy-vs-map \
         table has, of its rows that deliver every byte (N bytes one way, an 8-byte acknowledgement back). \
         shm-busy busy-polls on both sides: it burns a CPU each to win.",
        table(&header, rows, 2)
    ))
}

/// The fastest kernel mechanism (the message table, through ipckit) at
/// `size`: its name and p50.
fn fastest_kernel(entries: &[Entry], size: usize) -> Option<(String, f64)> {
    entries
        .iter()
        .filter(|e| e.table == "messages" && e.variant == "ipckit" && e.size == size)
        .filter_map(|e| Some((e.name.clone(), e.p50()?)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

fn find(entries: &[Entry], table: &str, name: &str, variant: &str, size: usize) -> Option<f64> {
    entries.iter().find(|e| e.table == table && e.name == name && e.variant == variant && e.size == size)?.p50()
}

/// The reading: one paragraph in plain words, of what was measured only.
pub(super) fn reading(report: &Report<'_>, entries: &[Entry], picks: &[Pick]) -> Option<String> {
    let mut says: Vec<String> = Vec::new();
    let small = picks.first()?;
    let kernel_small = fastest_kernel(entries, small.size);
    let spin = find(entries, "shm", ShmRow::Spin.name(), "ipckit", 64);
    let park = find(entries, "shm", ShmRow::Park.name(), "ipckit", 64);
    match (&kernel_small, spin) {
        (Some((kernel, k)), Some(spin)) if small.size == 64 => says.push(format!(
            "On this machine, between two processes, shared memory is the fastest way for small messages: a 64 B \
             round trip through a shm: channel takes {} in blocking mode within the spin window (shm-spin){}, {:.0}× \
             less than the fastest kernel mechanism, {kernel} ({}).",
            duration(spin),
            find(entries, "shm", ShmRow::Busy.name(), "ipckit", 64)
                .map_or_else(String::new, |b| format!(" and {} busy-polling (shm-busy)", duration(b))),
            k / spin,
            duration(*k)
        )),
        _ => says.push(format!(
            "On this machine, between two processes, the fastest way for {} messages is {} ({}).",
            size(small.size),
            small.fastest.0,
            duration(small.fastest.1)
        )),
    }
    if let (Some(park), Some(spin)) = (park, spin) {
        says.push(format!(
            "A receiver that sleeps instead pays a kernel wake-up each time: shm-park (?spin=0) takes {}, {:.0}× \
             shm-spin.",
            duration(park),
            park / spin
        ));
    }
    let sizes: Vec<usize> = entries.iter().filter(|e| e.table == "messages").map(|e| e.size).collect();
    if let (Some(&lo), Some(&hi)) = (sizes.iter().min(), sizes.iter().max())
        && lo < hi
        && let (Some((a, _)), Some((b, _))) = (fastest_kernel(entries, lo), fastest_kernel(entries, hi))
    {
        match a == b {
            true => {
                says.push(format!("Of the kernel mechanisms, {a} is the fastest at {} and at {}.", size(lo), size(hi)))
            }
            false => says.push(format!(
                "Of the kernel mechanisms, {a} is the fastest at {} and {b} at {}.",
                size(lo),
                size(hi)
            )),
        }
    }
    if let Some(t) = &report.copy_map {
        match (t.crossover(), t.threshold()) {
            (Some(Crossover::From(from)), Some(threshold)) => says.push(format!(
                "For large messages, below {} copy them through the shm: ring (copy-shm); from {} on lend them from \
                 the sender's pool (map-pool), which beats the ring there: ?inline=auto does this once \
                 ipckit bench --save-threshold has saved the threshold {threshold}.",
                size(from),
                size(from)
            )),
            (Some(Crossover::None), _) => says.push(
                "For large messages, copying through the shm: ring (copy-shm) won at every size measured: the pool \
                 did not beat it here."
                    .to_owned(),
            ),
            _ => {}
        }
        let each_loses = t.sizes.iter().all(|s| {
            let p50 = |w: Way| s.cells.iter().find(|c| c.way == w).and_then(|c| c.result.as_ref()).map(|r| r.p50);
            p50(Way::MapEach).zip(p50(Way::CopyKernel)).is_some_and(|(each, kernel)| each > kernel)
        });
        if each_loses && !t.sizes.is_empty() {
            says.push("A new sealed memfd per message (map-each) lost to the plain socket at every size.".to_owned());
        }
    }
    if let Some(max) = report.load.max.filter(|&l| l >= 1.0) {
        says.push(format!(
            "Other work was running (load average up to {max:.1}), so the figures are noisier than on an idle machine."
        ));
    }
    Some(says.join(" "))
}

/// The method, as the JSON document's `"method"`.
pub(super) fn method_json(plan: &Plan, rounds: usize) -> Value {
    json!({
        "histogram": "every timed round trip recorded in an HDR histogram (1 ns to 60 s, 3 significant digits); a \
                      trial yields its p50, p90, p99, p99.9 and max",
        "trials": "each trial a fresh pair of processes (the parent and a peer, this executable run again), pinned to \
                   CPUs of their own where there are two or more; trials interleaved across every row of the run, \
                   round by round (one trial of each mode of every row per round), the modes of a row alternating \
                   or rotating",
        "warmup": "each trial's warm-up rounds (about a tenth of the timed ones) run first and are discarded",
        "summary": "a row's figure is the median over its trials of each percentile; spread = the least and the \
                    greatest trial p50",
        "stream": "one-way streaming: the peer sends messages as fast as it can, this side receives them in timed \
                   batches after a warm-up; messages/s = 1e9 / the median over trials of the p50 batch time per \
                   message",
        "budget_s": plan.budget().map(|b| b.as_secs()),
        "rounds": rounds,
        "max_trials": plan.trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::link::Sample;

    fn summary(p50: f64) -> Summary {
        let s = |f: f64| Sample {
            p50: p50 * f,
            p90: p50 * f * 1.2,
            p99: p50 * f * 2.0,
            p999: p50 * f * 3.0,
            max: p50 * f * 9.0,
        };
        Summary::of(vec![s(0.9), s(1.0), s(1.1)])
    }

    fn entry(table: &'static str, name: &str, variant: &'static str, size: usize, p50: f64) -> Entry {
        Entry::ok(table, name.to_owned(), variant, size, &summary(p50))
    }

    #[test]
    fn picks_rank_by_p50_within_each_size() {
        let entries = vec![
            entry("messages", "pipe", "ipckit", 64, 12_000.0),
            entry("messages", "pipe", "raw", 64, 1.0),
            entry("shm", "shm-spin", "ipckit", 64, 600.0),
            entry("messages", "tcp", "ipckit", 64, 30_000.0),
            entry("copy_vs_map", "copy-shm", "", 64, 500.0),
            entry("copy_vs_map", "copy-shm", "", 1 << 20, 100_000.0),
            entry("copy_vs_map", "map-pool", "fill-and-read", 1 << 20, 90_000.0),
            entry("copy_vs_map", "map-pool", "untouched", 1 << 20, 1_000.0),
        ];
        let picks = picks(&entries);
        assert_eq!(picks.len(), 2);
        // 64 B: the echo rows only (raw does not count, copy-vs-map has an
        // echo row at this size so is left out).
        assert_eq!(picks[0].fastest.0, "shm-spin");
        assert_eq!(picks[0].next.0, "pipe");
        assert!((picks[0].lead() - 20.0).abs() < 1e-9);
        // 1 MiB: copy-vs-map, untouched does not deliver.
        assert_eq!(picks[1].fastest.0, "map-pool fill-and-read");
        assert_eq!(picks[1].basis, "N bytes and an 8-byte ack");
        assert_eq!(summary(2.0).all.p50, 2.0);
    }

    #[test]
    fn records_carry_every_percentile_and_the_spread() {
        let e = entry("messages", "pipe", "ipckit", 64, 1000.0);
        let v = e.json();
        assert_eq!(v["p50_ns"], 1000);
        assert_eq!(v["p90_ns"], 1200);
        assert_eq!(v["p999_ns"], 3000);
        assert_eq!(v["max_ns"], 9000);
        assert_eq!(v["spread"]["min_p50_ns"], 900);
        assert_eq!(v["spread"]["max_p50_ns"], 1100);
        assert_eq!(v["trials"].as_array().map(Vec::len), Some(3));
        assert!(v["stream"].is_null());
        let failed = Entry { status: Status::Failed("the peer died".into()), ..e };
        let v = failed.json();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["detail"], "the peer died");
        assert!(v["p50_ns"].is_null());
    }
}
