//! The results: a table for people, a JSON document for programs.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};
use serde_json::{Value, json};

use super::link::{Rounds, Sample, median};
use super::{Job, Placement, Plan, SIZES};

/// One mode's trials of a row.
#[derive(Debug)]
pub(super) struct Summary {
    /// Median of the trials' p50, nanoseconds.
    pub(super) p50: u64,
    /// Median of the trials' p99, nanoseconds.
    pub(super) p99: u64,
    pub(super) trials: Vec<Sample>,
}

impl Summary {
    fn of(trials: Vec<Sample>) -> Summary {
        let p50 = median(trials.iter().map(|s| s.p50).collect());
        let p99 = median(trials.iter().map(|s| s.p99).collect());
        Summary { p50, p99, trials }
    }

    fn json(&self) -> Value {
        let trials: Vec<Value> = self.trials.iter().map(|s| json!({ "p50_ns": s.p50, "p99_ns": s.p99 })).collect();
        json!({ "p50_ns": self.p50, "p99_ns": self.p99, "trials": trials })
    }
}

/// What a row found.
#[derive(Debug)]
pub(super) enum Outcome {
    Measured {
        ipckit: Summary,
        raw: Summary,
    },
    /// The message is over a kernel limit; why.
    Limit(String),
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
            Outcome::Limit(_) => None,
        }
    }

    /// ipckit p50 / raw p50.
    fn ratio(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Measured { ipckit, raw } if raw.p50 > 0 => Some(ipckit.p50 as f64 / raw.p50 as f64),
            _ => None,
        }
    }

    fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.job.mechanism.name().to_owned(), size(self.job.size)];
        match &self.outcome {
            Outcome::Measured { ipckit, raw } => {
                cells.extend([ipckit.p50, ipckit.p99, raw.p50, raw.p99].map(duration));
                cells.push(self.ratio().map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")));
            }
            Outcome::Limit(_) => cells.extend(std::iter::repeat_n("n/a (limit)".to_owned(), 5)),
        }
        cells
    }

    fn json(&self) -> Value {
        let mut row = json!({
            "mechanism": self.job.mechanism.name(),
            "size": self.job.size,
            "warmup": self.rounds.warmup,
            "round_trips": self.rounds.timed,
        });
        match &self.outcome {
            Outcome::Measured { ipckit, raw } => {
                row["status"] = "ok".into();
                row["trials"] = self.trials().into();
                row["ipckit"] = ipckit.json();
                row["raw"] = raw.json();
                row["ratio_p50"] = self.ratio().into();
            }
            Outcome::Limit(why) => {
                row["status"] = "n/a (limit)".into();
                row["detail"] = why.as_str().into();
            }
        }
        row
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
}

impl Report<'_> {
    /// The table and the notes that explain it.
    pub(super) fn text(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["mechanism", "size", "ipckit p50", "ipckit p99", "raw p50", "raw p99", "ratio (p50)"]);
        for row in &self.rows {
            table.add_row(row.cells());
        }
        for i in 1..7 {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let rounds: Vec<String> = SIZES
            .iter()
            .map(|&s| {
                let r = self.plan.rounds(s);
                format!("{} round trips after {} warm-up at {}", r.timed, r.warmup, size(s))
            })
            .collect();
        let counts = self.rows.iter().filter_map(Row::trials);
        let trials = match (counts.clone().min(), counts.max()) {
            (Some(least), Some(most)) if least < most => format!("{least} to {most}"),
            (_, most) => most.unwrap_or(0).to_string(),
        };
        format!(
            "{table}\nratio = ipckit p50 / raw p50, each the median of {trials} interleaved trials (fresh processes; {}).\n\
             raw = the same system calls with the same bytes (len32 framing on byte streams) on plain descriptors.\n{}{}",
            rounds.join(", "),
            placement(self.placement),
            self.load.filter(|&l| l >= BUSY).map_or_else(String::new, |l| format!(
                "\nOther work was running (load average {l:.1} at the start): the ratios are noisier than on an idle \
                 machine."
            )),
        )
    }

    /// The JSON document.
    pub(super) fn json(&self) -> Value {
        let placement = match self.placement {
            Placement::Pinned { parent, peer } => json!({ "pinned": true, "parent_cpu": parent, "peer_cpu": peer }),
            Placement::Unpinned => json!({ "pinned": false }),
        };
        json!({
            "max_trials": self.plan.trials,
            "quick": self.plan.quick,
            "placement": placement,
            "load_average_at_start": self.load,
            "results": self.rows.iter().map(Row::json).collect::<Vec<Value>>(),
        })
    }
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

/// A duration in nanoseconds for people: `850 ns`, `12.3 µs`, `1.25 ms`.
fn duration(ns: u64) -> String {
    match ns {
        n if n < 1_000 => format!("{n} ns"),
        n if n < 1_000_000 => format!("{:.1} µs", n as f64 / 1e3),
        n => format!("{:.2} ms", n as f64 / 1e6),
    }
}
