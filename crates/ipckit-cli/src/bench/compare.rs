//! `--compare OLD.json`: this run's rows beside those of an earlier
//! `--json` document of the same schema, as ratios new / old, so that a
//! regression shows at a glance.
//!
//! A row is known by its table, its name (mechanism or operation, and the
//! variant of a `map-pool` row) and its size. Its value is the p50 of its
//! own mode (ipckit's, the call's, the pubsub or async round trip's; a
//! copy-vs-map row's round trip), and for the streaming rows (shm-stream,
//! and each message row's one-way stream) its messages per second too.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ipckit::ErrorKind;
use serde_json::{Value, json};

use super::report::{self, SCHEMA};

/// A p50 ratio new / old above this is "slower".
pub(super) const SLOWER: f64 = 1.10;
/// A p50 ratio new / old below this is "faster".
pub(super) const FASTER: f64 = 0.90;

/// The earlier document, read and checked before anything runs.
#[derive(Debug)]
pub(super) struct Old {
    path: PathBuf,
    doc: Value,
}

/// A usage error (exit code 2) about the file of `--compare`.
fn usage(path: &Path, why: String) -> anyhow::Error {
    ipckit::Error::new(ErrorKind::Invalid, "bench", format!("--compare {}", path.display()), why).into()
}

impl Old {
    /// Reads `path`: a usage error if it cannot be read, is not JSON, or
    /// has another schema than this run's.
    pub(super) fn load(path: &Path) -> Result<Old> {
        let bytes = std::fs::read(path).map_err(|e| usage(path, format!("cannot be read ({e})")))?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| usage(path, format!("is not JSON ({e})")))?;
        match doc.get("schema").map(|s| (s, s.as_u64())) {
            Some((_, Some(n))) if n == u64::from(SCHEMA) => Ok(Old { path: path.to_owned(), doc }),
            Some((_, Some(n))) => Err(usage(
                path,
                format!("is a document of schema {n}; this ipckit writes and compares schema {SCHEMA}"),
            )),
            Some((s, None)) => Err(usage(path, format!("has schema {s}, not a number"))),
            None => Err(usage(path, "has no \"schema\": not the document of `ipckit bench --json`".to_owned())),
        }
    }
}

/// One row of a document.
#[derive(Clone, Debug)]
struct Entry {
    table: &'static str,
    name: String,
    /// The p50 of the row's own mode, nanoseconds; `None` if the row was
    /// not measured ("n/a").
    p50: Option<f64>,
    /// Messages per second (the streaming row).
    per_s: Option<f64>,
}

/// The sections of the document that hold rows, and their tables' names.
const SECTIONS: [(&str, &str); 7] = [
    ("results", "messages"),
    ("copy_vs_map", "copy-vs-map"),
    ("synchronization", "synchronization"),
    ("shm", "shm"),
    ("rpc", "rpc"),
    ("pubsub", "pubsub"),
    ("async", "async"),
];

/// The keys of a row's own summary, in the sections that have one.
const OWN: [&str; 6] = ["ipckit", "round_trip", "iceoryx2", "call", "pubsub", "async"];

/// Every row of `doc`, in its order.
fn entries(doc: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    for (key, table) in SECTIONS {
        let section = match key {
            "copy_vs_map" => &doc[key]["results"],
            _ => &doc[key],
        };
        for row in section.as_array().into_iter().flatten() {
            let Some(what) = row["mechanism"].as_str().or(row["operation"].as_str()) else { continue };
            let mut name = what.to_owned();
            if let Some(variant) = row["variant"].as_str() {
                name.push_str(&format!(" {variant}"));
            }
            if let Some(size) = row["size"].as_u64() {
                name.push_str(&format!(" {}", report::size(size as usize)));
            }
            let p50 = OWN.iter().find_map(|k| row[*k]["p50_ns"].as_f64()).filter(|p| *p > 0.0);
            // shm-stream's rate, or a message row's stream.
            let per_s =
                row["ipckit_msgs_per_s"].as_f64().or(row["stream"]["ipckit_msgs_per_s"].as_f64()).filter(|r| *r > 0.0);
            out.push(Entry { table, name, p50, per_s });
        }
    }
    out
}

/// One row of either document, beside its namesake in the other.
#[derive(Debug)]
struct Compared {
    table: &'static str,
    name: String,
    old: Option<Entry>,
    new: Option<Entry>,
}

impl Compared {
    /// new p50 / old p50, if both were measured.
    fn ratio(&self) -> Option<f64> {
        Some(self.new.as_ref()?.p50? / self.old.as_ref()?.p50?)
    }

    /// new messages/s / old messages/s, if both have them.
    fn rate_ratio(&self) -> Option<f64> {
        Some(self.new.as_ref()?.per_s? / self.old.as_ref()?.per_s?)
    }

    /// `compared`, `missing in old`, `missing in new`, `not measured in
    /// old` (or new, or both: an "n/a" row).
    fn status(&self) -> &'static str {
        match (&self.old, &self.new) {
            (None, _) => "missing in old",
            (_, None) => "missing in new",
            (Some(o), Some(n)) => match (o.p50, n.p50) {
                (Some(_), Some(_)) => "compared",
                (None, Some(_)) => "not measured in old",
                (Some(_), None) => "not measured in new",
                (None, None) => "not measured in either",
            },
        }
    }

    /// `slower`, `faster` or `same`, by the p50 ratio.
    fn verdict(&self) -> Option<&'static str> {
        self.ratio().map(|r| match r {
            r if r > SLOWER => "slower",
            r if r < FASTER => "faster",
            _ => "same",
        })
    }
}

/// This run beside the earlier one.
#[derive(Debug)]
pub(super) struct Comparison {
    path: PathBuf,
    rows: Vec<Compared>,
}

/// Compares the document of this run, `new`, with `old`: every row of
/// `new` in its order, then those only in `old`.
pub(super) fn compare(old: &Old, new: &Value) -> Comparison {
    let mut olds = entries(&old.doc);
    let mut rows: Vec<Compared> = entries(new)
        .into_iter()
        .map(|n| {
            let found = olds.iter().position(|o| o.table == n.table && o.name == n.name).map(|i| olds.remove(i));
            Compared { table: n.table, name: n.name.clone(), old: found, new: Some(n) }
        })
        .collect();
    rows.extend(olds.into_iter().map(|o| Compared { table: o.table, name: o.name.clone(), old: Some(o), new: None }));
    Comparison { path: old.path.clone(), rows }
}

fn ns(p50: Option<f64>) -> Value {
    p50.map(|p| json!(p.round() as u64)).unwrap_or(Value::Null)
}

impl Comparison {
    /// The `comparison` field of the JSON document.
    pub(super) fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|c| {
                let old = c.old.as_ref();
                let new = c.new.as_ref();
                json!({
                    "table": c.table,
                    "row": c.name,
                    "status": c.status(),
                    "old_p50_ns": ns(old.and_then(|e| e.p50)),
                    "new_p50_ns": ns(new.and_then(|e| e.p50)),
                    "ratio_p50": c.ratio(),
                    "old_msgs_per_s": old.and_then(|e| e.per_s).map(f64::round),
                    "new_msgs_per_s": new.and_then(|e| e.per_s).map(f64::round),
                    "ratio_msgs_per_s": c.rate_ratio(),
                    "verdict": c.verdict(),
                })
            })
            .collect();
        json!({
            "old": self.path.display().to_string(),
            "schema": SCHEMA,
            "slower_above": SLOWER,
            "faster_below": FASTER,
            "rows": rows,
        })
    }

    /// The table for people, and a count of each verdict.
    pub(super) fn text(&self) -> String {
        let header = ["table", "row", "old p50", "new p50", "new / old", "msg/s new / old", "verdict"];
        let cells = self.rows.iter().map(|c| {
            let p50 =
                |e: &Option<Entry>| e.as_ref().and_then(|e| e.p50).map_or_else(|| "-".to_owned(), report::duration);
            let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
            let verdict = match c.verdict() {
                Some("same") => String::new(),
                Some(v) => v.to_owned(),
                None => c.status().to_owned(),
            };
            vec![
                c.table.to_owned(),
                c.name.clone(),
                p50(&c.old),
                p50(&c.new),
                ratio(c.ratio()),
                ratio(c.rate_ratio()),
                verdict,
            ]
        });
        let mut table = report::table(&header, cells, 2);
        if let Some(column) = table.column_mut(header.len() - 1) {
            column.set_cell_alignment(comfy_table::CellAlignment::Left);
        }
        let count = |v: &str| self.rows.iter().filter(|c| c.verdict() == Some(v)).count();
        let unmatched = self.rows.iter().filter(|c| c.ratio().is_none()).count();
        format!(
            "Compared with {}: p50 new / old (msg/s new / old for streaming: above 1 is faster)\n{table}\n\
             slower = new / old above {SLOWER:.2}, faster = below {FASTER:.2}: {} slower, {} faster, {} within, {} \
             not compared (missing or n/a on one side).",
            self.path.display(),
            count("slower"),
            count("faster"),
            count("same"),
            unmatched,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(pipe_p50: u64, extra: bool) -> Value {
        let mut results = vec![json!({ "mechanism": "pipe", "size": 64, "ipckit": { "p50_ns": pipe_p50 } })];
        if extra {
            results.push(json!({ "mechanism": "fifo", "size": 64, "ipckit": { "p50_ns": 1000 } }));
        }
        json!({
            "schema": SCHEMA,
            "results": results,
            "shm": [{ "mechanism": "shm-stream", "size": 64, "ipckit": { "p50_ns": 50.0 }, "ipckit_msgs_per_s": 2e7 }],
        })
    }

    #[test]
    fn rows_are_matched_by_table_name_and_size() {
        let old = Old { path: "old.json".into(), doc: doc(1000, true) };
        let c = compare(&old, &doc(1200, false));
        let pipe = c.rows.iter().find(|r| r.name == "pipe 64 B").expect("pipe");
        assert!((pipe.ratio().unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(pipe.verdict(), Some("slower"));
        let fifo = c.rows.iter().find(|r| r.name == "fifo 64 B").expect("fifo");
        assert_eq!(fifo.status(), "missing in new");
        let stream = c.rows.iter().find(|r| r.table == "shm").expect("stream");
        assert_eq!((stream.ratio(), stream.rate_ratio(), stream.verdict()), (Some(1.0), Some(1.0), Some("same")));
        let json = c.json();
        assert_eq!(json["rows"].as_array().map(Vec::len), Some(3), "{json}");
        assert!(c.text().contains("1 slower, 0 faster, 1 within, 1 not compared"), "{}", c.text());
    }
}
