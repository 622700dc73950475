//! `ipckit bench --report DIR`: `DIR/index.html`, made from the JSON
//! document `--json` prints (and nothing else, so that the two never
//! disagree): the answer (the document's reading, the fastest way per
//! size), three plots as inline SVG (plotters' SVG backend), the tables,
//! the catalogue (every record of every table), and how and where the
//! numbers were measured. A field an older document lacks (the answer,
//! the catalogue, the method, ...) leaves its section out. The page has no
//! link, script, font or style sheet of its own outside it: it opens
//! offline. The SVG text names a font family (`sans-serif`), which the
//! browser draws with a font of its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

use super::report::{duration, size};

/// The page in the report directory.
const PAGE: &str = "index.html";

/// Checks that `dir` can hold the report before anything is measured:
/// creates it if missing and creates (and removes) a file in it.
pub(super) fn prepare(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("--report {}: create the directory", dir.display()))?;
    let probe = dir.join(format!(".ipckit-report-{}.tmp", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("--report {}: cannot write in it", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("--report: remove {}", probe.display()))?;
    Ok(dir.to_owned())
}

/// Writes the page of `doc` (the `--json` document) to `dir/index.html`,
/// whole or not at all (a temporary file renamed), and returns its path.
pub(super) fn write(dir: &Path, doc: &Value) -> Result<PathBuf> {
    let page = dir.join(PAGE);
    let tmp = dir.join(format!(".{PAGE}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, render(doc)?).with_context(|| format!("--report: write {}", tmp.display()))?;
    std::fs::rename(&tmp, &page).with_context(|| format!("--report: write {}", page.display()))?;
    Ok(page)
}

/// The whole page.
fn render(doc: &Value) -> Result<String> {
    let mut html = String::new();
    html.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>ipckit bench report</title>\n",
    );
    html.push_str(STYLE);
    html.push_str("</head>\n<body>\n<h1>ipckit bench report</h1>\n");
    html.push_str(&answer(doc));
    html.push_str(&honesty(doc));
    html.push_str("<h2>Plots</h2>\n");
    for (title, svg) in [
        (
            "(1) Round-trip latency: the p50 of every message mechanism (through ipckit) and of the shared-memory \
             round-trip rows, per message size. A line with one point is a row measured at one size.",
            latency_plot(doc)?,
        ),
        (
            if catalogue_streams(doc) {
                "(2) Throughput: one-way streaming in GiB per second of every row the run also streamed, per \
                 message size, a line per mechanism and variant (a dashed line: a variant other than ipckit)."
            } else {
                "(2) Throughput: one-way streaming in messages per second (ipckit beside the fixed-slot ring) if the \
                 run has streaming rows, else each copy-vs-map row's bytes per second (size / round trip p50)."
            },
            throughput_plot(doc)?,
        ),
        (
            "(3) Copy or map: each row's round trip p50 (N bytes one way, 8 back) per size; the red line is the \
             crossover, the size from which map-pool fill-and-read beats copy-shm at every larger size.",
            copy_map_plot(doc)?,
        ),
    ] {
        let _ = writeln!(html, "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>", esc(title));
    }
    html.push_str("<h2>Tables</h2>\n");
    html.push_str(&tables(doc));
    html.push_str(&catalogue(doc));
    let json = serde_json::to_string_pretty(doc).context("--report: the JSON document")?;
    let _ = writeln!(
        html,
        "<details>\n<summary>The JSON document this page was made from (<code>--json</code>)</summary>\n<pre>{}</pre>\n\
         </details>",
        esc(&json)
    );
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

const STYLE: &str = "<style>\n\
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }\n\
h1, h2, h3 { font-weight: 600; }\n\
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }\n\
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }\n\
th { background: #eee; }\n\
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }\n\
td.na { color: #a33; }\n\
table.catalogue { width: 100%; }\n\
p.reading { font-size: 1.1em; line-height: 1.4; }\n\
figure { margin: 1em 0 2em; }\n\
figure svg { max-width: 100%; height: auto; border: 1px solid #ddd; }\n\
figcaption { font-size: 0.9em; color: #555; }\n\
.honesty { background: #f6f6f0; border: 1px solid #ccc; padding: 0.5em 1em; }\n\
.warn { color: #a33; }\n\
pre { font-size: 0.8em; overflow-x: auto; }\n\
</style>\n";

/// HTML-escaped text.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The array at `key`, or none.
fn array<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    doc[key].as_array().map_or(&[], Vec::as_slice)
}

/// A number at a JSON pointer (`/ipckit/p50_ns`).
fn num(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// A row's name: its mechanism, and its variant if it has one.
fn row_name(v: &Value) -> String {
    match v["variant"].as_str() {
        Some(variant) => format!("{} {variant}", text(v, "mechanism")),
        None => text(v, "mechanism").to_owned(),
    }
}

fn ns_cell(v: &Value, pointer: &str) -> String {
    num(v, pointer).map_or_else(|| "-".to_owned(), duration)
}

fn ratio_cell(v: &Value, key: &str) -> String {
    v[key].as_f64().map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

fn size_cell(v: &Value) -> String {
    v["size"].as_u64().map_or_else(|| "-".to_owned(), |s| size(s as usize))
}

/// `12.3 M`, `850 k`: a rate for people.
fn rate(per_s: Option<f64>) -> String {
    match per_s {
        Some(r) if r >= 1e6 => format!("{:.1} M", r / 1e6),
        Some(r) => format!("{:.0} k", r / 1e3),
        None => "-".to_owned(),
    }
}

/// `1.2 GB/s`: bytes per second for people.
fn bytes_rate(per_s: f64) -> String {
    match per_s {
        r if r >= 1e9 => format!("{:.1} GB/s", r / 1e9),
        r if r >= 1e6 => format!("{:.0} MB/s", r / 1e6),
        r if r >= 1e3 => format!("{:.0} kB/s", r / 1e3),
        r => format!("{r:.0} B/s"),
    }
}

// ---------------------------------------------------------------------
// The answer, and the catalogue (fields an older document lacks: each
// section is left out when its field is absent or null).

/// "The answer": the document's reading of the run, and per size the
/// fastest way and the next.
fn answer(doc: &Value) -> String {
    let a = &doc["answer"];
    if !a.is_object() {
        return String::new();
    }
    let mut out = String::from("<section class=\"answer\">\n<h2>The answer</h2>\n");
    if let Some(reading) = a["reading"].as_str().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "<p class=\"reading\">{}</p>", esc(reading));
    }
    let rows: Vec<Vec<Cell>> = array(a, "per_size")
        .iter()
        .map(|z| {
            vec![
                Cell::Text(size_cell(z)),
                Cell::Text(text(z, "fastest").to_owned()),
                Cell::Num(ns_cell(z, "/fastest_p50_ns")),
                Cell::Text(text(z, "next").to_owned()),
                Cell::Num(ns_cell(z, "/next_p50_ns")),
                Cell::Num(z["lead"].as_f64().map_or_else(|| "-".to_owned(), |l| format!("{l:.2}×"))),
            ]
        })
        .collect();
    let mut notes = vec![];
    let mut line = Vec::new();
    if let Some(c) = a["crossover"].as_u64() {
        line.push(format!(
            "copy or map: the crossover is {} (map-pool fill-and-read beats copy-shm from there on)",
            size(c as usize)
        ));
    }
    if let Some(t) = a["threshold"].as_u64() {
        line.push(format!("the threshold is {t} bytes (?inline=auto copies up to it and pools above)"));
    }
    if !line.is_empty() {
        notes.push(format!("{}.", line.join("; ")));
    }
    if !rows.is_empty() {
        notes.insert(0, "lead = next p50 / fastest p50.".to_owned());
        out.push_str(&table_of(
            "answer",
            "The fastest way per message size, and the next",
            &["size", "fastest", "fastest p50", "next", "next p50", "lead"],
            &rows,
            &notes,
        ));
    } else {
        out.extend(notes.iter().map(|n| format!("<p>{}</p>\n", esc(n))));
    }
    out.push_str("</section>\n");
    out
}

/// The catalogue's tables, in the order they first appear.
fn catalogue_groups(doc: &Value) -> Vec<(&str, Vec<&Value>)> {
    let mut groups: Vec<(&str, Vec<&Value>)> = Vec::new();
    for r in array(doc, "catalogue").iter().filter(|r| r.is_object()) {
        let t = text(r, "table");
        match groups.iter_mut().find(|(g, _)| *g == t) {
            Some((_, rows)) => rows.push(r),
            None => groups.push((t, vec![r])),
        }
    }
    groups
}

/// A catalogue record's name: its name, and its variant if it has one.
fn record_name(r: &Value) -> String {
    match text(r, "variant") {
        "" => text(r, "name").to_owned(),
        variant => format!("{} {variant}", text(r, "name")),
    }
}

/// `3.52`, `0.041`: GiB per second for people.
fn gib(g: f64) -> String {
    match g {
        g if g >= 100.0 => format!("{g:.0}"),
        g if g >= 10.0 => format!("{g:.1}"),
        g if g >= 1.0 => format!("{g:.2}"),
        g => format!("{g:.3}"),
    }
}

/// The catalogue's number columns (after name, variant and size).
const CATALOGUE_NUMBERS: usize = 10;

/// "Catalogue": every record of every table, a table per table.
fn catalogue(doc: &Value) -> String {
    let groups = catalogue_groups(doc);
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Catalogue</h2>\n<p>Every mechanism, variant and size of the run, from every table: the percentiles of \
         its round trip (each the median over its trials of that trial's percentile), the spread of its trials' \
         p50 (least – greatest) and, for a row that was also streamed one way, its messages and bytes per \
         second.</p>\n",
    );
    for (group, records) in groups {
        let rows: Vec<Vec<Cell>> = records
            .iter()
            .map(|r| {
                let sz = match r["size"].as_u64() {
                    Some(0) | None => "-".to_owned(),
                    Some(s) => size(s as usize),
                };
                let mut cells = vec![
                    Cell::Text(text(r, "name").to_owned()),
                    Cell::Text(text(r, "variant").to_owned()),
                    Cell::Text(sz),
                ];
                let detail = r["detail"].as_str().unwrap_or("no reason given");
                match text(r, "status") {
                    "ok" | "" => {
                        for p in ["/p50_ns", "/p90_ns", "/p99_ns", "/p999_ns", "/max_ns"] {
                            cells.push(Cell::Num(ns_cell(r, p)));
                        }
                        cells.push(Cell::Num(match (num(r, "/spread/min_p50_ns"), num(r, "/spread/max_p50_ns")) {
                            (Some(lo), Some(hi)) => format!("{} – {}", duration(lo), duration(hi)),
                            _ => "-".to_owned(),
                        }));
                        cells.push(Cell::Num(rate(num(r, "/stream/msgs_per_s"))));
                        cells.push(Cell::Num(num(r, "/stream/gib_per_s").map_or_else(|| "-".to_owned(), gib)));
                        // A stream-only row (shm-stream) counts its stream's trials.
                        let trials = [&r["trials"], &r["stream"]["trials_msgs_per_s"]]
                            .into_iter()
                            .filter_map(Value::as_array)
                            .map(Vec::len)
                            .max();
                        cells.push(Cell::Num(trials.map_or_else(|| "-".to_owned(), |t| t.to_string())));
                    }
                    "failed" => cells.push(Cell::Span(format!("failed: {detail}"), CATALOGUE_NUMBERS)),
                    status => cells.push(Cell::Span(format!("{status} ({detail})"), CATALOGUE_NUMBERS)),
                }
                cells
            })
            .collect();
        let caption = match group {
            "" => "Catalogue".to_owned(),
            g => format!("Catalogue: {}", g.replace('_', " ")),
        };
        out.push_str(&table_of(
            "catalogue",
            &caption,
            &[
                "name",
                "variant",
                "size",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max",
                "spread (trial p50)",
                "stream msg/s",
                "stream GiB/s",
                "trials",
            ],
            &rows,
            &[],
        ));
    }
    out
}

// ---------------------------------------------------------------------
// The honesty block.

/// Where, how and under what load the numbers were measured, and what was
/// not measured and why.
fn honesty(doc: &Value) -> String {
    let mut h = String::from("<section class=\"honesty\">\n<h2>How these numbers were made</h2>\n<ul>\n");
    let m = &doc["machine"];
    let cpus = m["cpus"].as_u64().map_or_else(|| "unknown".to_owned(), |c| c.to_string());
    let _ = writeln!(
        h,
        "<li><b>Machine</b>: {}, {cpus} CPUs, {}.</li>",
        esc(m["cpu_model"].as_str().unwrap_or("unknown CPU")),
        esc(m["kernel"].as_str().unwrap_or("unknown kernel"))
    );
    let p = &doc["placement"];
    let pinning = match (m["pinning"].as_str().filter(|s| !s.is_empty()), p["pinned"].as_bool()) {
        (Some(pinning), _) => esc(pinning),
        (None, Some(true)) => format!(
            "pinned: this process on CPU {}, the peer on CPU {}",
            p["parent_cpu"].as_u64().unwrap_or(0),
            p["peer_cpu"].as_u64().unwrap_or(0)
        ),
        (None, _) => "unpinned: only one CPU is allowed, so both processes share it".to_owned(),
    };
    let _ = writeln!(h, "<li><b>Pinning</b>: {pinning}.</li>");
    let _ = writeln!(h, "<li><b>Load average</b> {}.</li>", load_average(doc));
    let quick = if doc["quick"].as_bool() == Some(true) { " (--quick: fewer trials and round trips)" } else { "" };
    match method(doc) {
        Some(fields) => {
            let _ = writeln!(
                h,
                "<li><b>Method</b>: at most {} trials per mode{quick}; each row's own count of trials, warm-up and \
                 round trips is in the JSON document below. Latencies are round trips (send, then receive the \
                 answer) unless a table says otherwise.<ul>\n{fields}</ul></li>",
                doc["max_trials"].as_u64().unwrap_or(0)
            );
        }
        None => {
            let _ = writeln!(
                h,
                "<li><b>Method</b>: every two-process row is a series of trials, each a fresh pair of \
                 processes (this one and a peer that answers), the modes of a row interleaved trial by trial; a \
                 trial times every round trip after a warm-up and yields its p50 and p99; a value here is the \
                 median over the trials of each. At most {} trials per mode{quick}; each row's own count of \
                 trials, warm-up and round trips is in the JSON document below. Latencies are round trips (send, \
                 then receive the answer) unless a table says otherwise.</li>",
                doc["max_trials"].as_u64().unwrap_or(0)
            );
        }
    }
    let _ = writeln!(h, "<li><b>Not measured</b>:<ul>\n{}</ul></li>", not_measured(doc));
    h.push_str("</ul>\n</section>\n");
    h
}

/// The load average: at the start, the end and the greatest seen if the
/// document has them, else at the start; marked when other work ran.
fn load_average(doc: &Value) -> String {
    let l = &doc["load_average"];
    let seen = [("at the start", "start"), ("at the end", "end"), ("at most", "max")]
        .into_iter()
        .filter_map(|(words, key)| l[key].as_f64().map(|v| (words, v)))
        .collect::<Vec<_>>();
    let (said, worst) = if seen.is_empty() {
        match doc["load_average_at_start"].as_f64() {
            Some(v) => (format!("at the start: {v:.2}"), v),
            None => return "at the start: unknown (/proc/loadavg unreadable)".to_owned(),
        }
    } else {
        let said = seen.iter().map(|(w, v)| format!("{w} {v:.2}")).collect::<Vec<_>>().join(", ");
        (said, seen.iter().map(|&(_, v)| v).fold(f64::MIN, f64::max))
    };
    if worst >= 1.0 {
        format!(
            "<span class=\"warn\">{said}: other work was running, the numbers are noisier than on an idle \
             machine</span>"
        )
    } else {
        said
    }
}

/// The document's `method` fields, as list items (none if it has none).
fn method(doc: &Value) -> Option<String> {
    let m = doc["method"].as_object().filter(|m| !m.is_empty())?;
    const ORDER: [&str; 7] = ["histogram", "trials", "warmup", "summary", "stream", "budget_s", "rounds"];
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by_key(|k| (ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()), k.as_str()));
    let mut items = String::new();
    for key in keys {
        let v = &m[key.as_str()];
        let said = match (key.as_str(), v) {
            ("budget_s", Value::Null) => "none".to_owned(),
            ("budget_s", Value::Number(n)) => format!("{n} s"),
            (_, Value::String(s)) => s.clone(),
            (_, Value::Null) => "-".to_owned(),
            (_, v) => v.to_string(),
        };
        let name = match key.as_str() {
            "budget_s" => "time budget",
            "warmup" => "warm-up",
            k => k,
        };
        let _ = writeln!(items, "<li><i>{}</i>: {}</li>", esc(name), esc(&said));
    }
    Some(items)
}

/// The rows given as n/a, with their reasons, and the tables this run
/// left out.
fn not_measured(doc: &Value) -> String {
    let mut items = Vec::new();
    for r in array(doc, "results").iter().filter(|r| r["status"] != "ok") {
        items.push(format!("{} {}: {} ({})", text(r, "mechanism"), size_cell(r), text(r, "status"), text(r, "detail")));
    }
    for r in array(&doc["copy_vs_map"], "results").iter().filter(|r| r["status"] != "ok") {
        items.push(format!(
            "copy or map, {} {}: {} ({})",
            row_name(r),
            size_cell(r),
            text(r, "status"),
            text(r, "detail")
        ));
    }
    for u in array(doc, "unavailable") {
        items.push(format!("not measured: {} — {}", text(u, "rows"), text(u, "why")));
    }
    for f in array(doc, "failed") {
        items.push(format!("failed: {} — {}", text(f, "row"), text(f, "why")));
    }
    for w in array(&doc["copy_vs_map"]["hybrid_threshold"], "warnings") {
        items.push(format!("warning: ?inline=auto: {}", w.as_str().unwrap_or("")));
    }
    let tables = [
        ("results", "the message table"),
        ("synchronization", "the synchronization table"),
        ("shm", "the shared-memory tables"),
        ("rpc", "the request-response table"),
        ("pubsub", "the publish-subscribe table"),
        ("async", "the async table"),
    ];
    let mut left_out: Vec<&str> = tables.iter().filter(|(k, _)| array(doc, k).is_empty()).map(|(_, n)| *n).collect();
    if doc["copy_vs_map"].is_null() {
        left_out.insert(1, "the copy-vs-map table");
    }
    if !left_out.is_empty() {
        items.push(format!("{}: not in this run (left out by --filter)", left_out.join(", ")));
    }
    let iceoryx2 = array(doc, "shm").iter().any(|r| r["mechanism"] == "iceoryx2-busy")
        || array(&doc["copy_vs_map"], "results").iter().any(|r| r["mechanism"] == "iceoryx2");
    if !iceoryx2 {
        items.push("iceoryx2: not built in (the compare-iceoryx2 feature is off by default)".to_owned());
    }
    if items.is_empty() {
        return "<li>nothing: every row asked for was measured</li>\n".to_owned();
    }
    items.iter().map(|i| format!("<li>{}</li>\n", esc(i))).collect()
}

// ---------------------------------------------------------------------
// The tables.

/// A cell: its text, and whether it is a number (aligned right).
enum Cell {
    Text(String),
    Num(String),
    /// Text across this many columns (a row that has no numbers: n/a, failed).
    Span(String, usize),
}

fn table(caption: &str, header: &[&str], rows: &[Vec<Cell>], notes: &[String]) -> String {
    table_of("", caption, header, rows, notes)
}

/// A table whose `<table>` element has the class `class` (none if empty):
/// the tables made from the fields a document may lack (the answer, the
/// catalogue) have one, so that a count of `<table>` counts the others.
fn table_of(class: &str, caption: &str, header: &[&str], rows: &[Vec<Cell>], notes: &[String]) -> String {
    let open = if class.is_empty() { "<table>".to_owned() } else { format!("<table class=\"{class}\">") };
    let mut t = format!("<h3>{}</h3>\n{open}\n<thead><tr>", esc(caption));
    for h in header {
        let _ = write!(t, "<th>{}</th>", esc(h));
    }
    t.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        t.push_str("<tr>");
        for cell in row {
            let _ = match cell {
                Cell::Num(s) if s.starts_with("n/a") => write!(t, "<td class=\"n na\">{}</td>", esc(s)),
                Cell::Num(s) => write!(t, "<td class=\"n\">{}</td>", esc(s)),
                Cell::Text(s) => write!(t, "<td>{}</td>", esc(s)),
                Cell::Span(s, n) => write!(t, "<td class=\"na\" colspan=\"{n}\">{}</td>", esc(s)),
            };
        }
        t.push_str("</tr>\n");
    }
    t.push_str("</tbody>\n</table>\n");
    for note in notes {
        let _ = writeln!(t, "<p>{}</p>", esc(note));
    }
    t
}

fn tables(doc: &Value) -> String {
    let mut out = String::new();
    out.push_str(&messages_table(doc));
    out.push_str(&copy_map_table(doc));
    out.push_str(&sync_table(doc));
    out.push_str(&shm_tables(doc));
    out.push_str(&beside_table(
        array(doc, "rpc"),
        "Request-response: a call beside the plain round trip of the same transport",
        ["call p50", "call p99", "call / plain"],
        "call",
        true,
    ));
    out.push_str(&beside_table(
        array(doc, "pubsub"),
        "Publish-subscribe on shm:, beside the shm: channel round trip that waits the same way",
        ["pubsub p50", "pubsub p99", "pubsub / plain"],
        "pubsub",
        false,
    ));
    out.push_str(&beside_table(
        array(doc, "async"),
        "Async: a round trip through ipckit::tokio, beside the blocking round trip that waits the same way",
        ["async p50", "async p99", "async / plain"],
        "async",
        true,
    ));
    out
}

fn messages_table(doc: &Value) -> String {
    let results = array(doc, "results");
    if results.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<Cell>> = results
        .iter()
        .map(|r| {
            let size = match r["kernel_max"].as_bool() {
                Some(true) => format!("{} (max)", size_cell(r)),
                _ => size_cell(r),
            };
            let mut cells = vec![Cell::Text(text(r, "mechanism").to_owned()), Cell::Text(size)];
            if r["status"] == "ok" {
                for p in ["/ipckit/p50_ns", "/ipckit/p99_ns", "/raw/p50_ns", "/raw/p99_ns"] {
                    cells.push(Cell::Num(ns_cell(r, p)));
                }
                cells.push(Cell::Num(ratio_cell(r, "ratio_p50")));
            } else {
                cells.extend((0..4).map(|_| Cell::Num("n/a".to_owned())));
                cells.push(Cell::Num(match r["limit"].as_u64() {
                    Some(l) => format!("n/a (limit {l})"),
                    None => "n/a (limit)".to_owned(),
                }));
            }
            cells
        })
        .collect();
    table(
        "Messages: round trip (send N bytes, receive the echo), ipckit vs raw",
        &["mechanism", "size", "ipckit p50", "ipckit p99", "raw p50", "raw p99", "ratio (p50)"],
        &rows,
        &["ratio = ipckit p50 / raw p50. raw = the same system calls with the same bytes on plain descriptors."
            .to_owned()],
    )
}

/// The copy-vs-map rows (name order as in the document) and sizes.
fn copy_map_series(doc: &Value) -> (Vec<String>, Vec<u64>) {
    let mut names: Vec<String> = Vec::new();
    let mut sizes: Vec<u64> = Vec::new();
    for r in array(&doc["copy_vs_map"], "results") {
        let name = row_name(r);
        if !names.contains(&name) {
            names.push(name);
        }
        if let Some(s) = r["size"].as_u64().filter(|s| !sizes.contains(s)) {
            sizes.push(s);
        }
    }
    (names, sizes)
}

fn copy_map_table(doc: &Value) -> String {
    let table_doc = &doc["copy_vs_map"];
    if table_doc.is_null() {
        return String::new();
    }
    let (names, sizes) = copy_map_series(doc);
    let results = array(table_doc, "results");
    let hybrid = names.iter().any(|n| n == "hybrid");
    let mut header: Vec<&str> = vec!["size"];
    header.extend(names.iter().map(String::as_str));
    if hybrid {
        header.push("hybrid / best");
    }
    header.push("fastest");
    let rows: Vec<Vec<Cell>> = sizes
        .iter()
        .map(|&s| {
            let mut cells = vec![Cell::Text(size(s as usize))];
            for name in &names {
                let cell = results.iter().find(|r| r["size"].as_u64() == Some(s) && row_name(r) == *name);
                cells.push(Cell::Num(match cell {
                    Some(r) if r["status"] == "ok" => ns_cell(r, "/round_trip/p50_ns"),
                    Some(r) => text(r, "status").to_owned(),
                    None => "-".to_owned(),
                }));
            }
            let at = array(table_doc, "sizes").iter().find(|z| z["size"].as_u64() == Some(s));
            if hybrid {
                cells.push(Cell::Num(at.map_or_else(|| "-".to_owned(), |z| ratio_cell(z, "hybrid_over_best"))));
            }
            let fastest = at.map(|z| &z["fastest"]).filter(|f| !f.is_null()).map_or_else(|| "-".to_owned(), row_name);
            cells.push(Cell::Text(fastest));
            cells
        })
        .collect();
    let mut notes = vec![
        "Round trip p50: N bytes to another process, an 8-byte acknowledgement back. fastest = of the rows that \
         deliver every byte to the reader (not map-pool untouched, not writer-fills). hybrid / best = hybrid p50 / \
         the faster of copy-shm and map-pool fill-and-read."
            .to_owned(),
    ];
    let threshold = &table_doc["hybrid_threshold"];
    if let Some(inline_max) = threshold["inline_max"].as_u64() {
        let source = match (text(threshold, "source"), threshold["path"].as_str()) {
            (_, Some(path)) => format!("from {path}"),
            ("environment", None) => format!("from {}", ipckit::threshold::ENV),
            (source, None) => format!("the {source}"),
        };
        notes.push(format!("hybrid ran with ?inline=auto: copied up to {inline_max} bytes, pooled above ({source})."));
    }
    notes.push(match table_doc["crossover_size"].as_u64() {
        Some(c) => format!(
            "Crossover: {} (map-pool fill-and-read beats copy-shm from this size on, at every larger size measured).",
            size(c as usize)
        ),
        None => "Crossover: none measured (copy-shm beat map-pool fill-and-read at the largest size, or one of the \
                 two rows was left out)."
            .to_owned(),
    });
    if let Some(t) = table_doc["threshold"]["inline_max"].as_u64() {
        notes.push(match table_doc["threshold"]["saved_to"].as_str() {
            Some(path) => format!("threshold: {t} bytes, saved to {path}"),
            None => format!("threshold: {t} bytes (would save with --save-threshold)"),
        });
    }
    table("Copy or map: round trip p50", &header, &rows, &notes)
}

fn sync_table(doc: &Value) -> String {
    let sync = array(doc, "synchronization");
    if sync.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<Cell>> = sync
        .iter()
        .map(|r| {
            let mut cells = vec![Cell::Text(text(r, "operation").to_owned()), Cell::Text(text(r, "per").to_owned())];
            for p in ["/ipckit/p50_ns", "/ipckit/p99_ns", "/raw/p50_ns", "/raw/p99_ns"] {
                cells.push(Cell::Num(ns_cell(r, p)));
            }
            cells.push(Cell::Num(ratio_cell(r, "ratio_p50")));
            cells
        })
        .collect();
    table(
        "Synchronization: ipckit vs raw",
        &["operation", "per", "ipckit p50", "ipckit p99", "raw p50", "raw p99", "ratio (p50)"],
        &rows,
        &["ratio = ipckit p50 / raw p50 (raw: pthread mutexes and futex loops).".to_owned()],
    )
}

fn is_stream(r: &Value) -> bool {
    r["per"] == "message"
}

fn shm_tables(doc: &Value) -> String {
    let shm = array(doc, "shm");
    let mut out = String::new();
    let ping_pong: Vec<Vec<Cell>> = shm
        .iter()
        .filter(|r| !is_stream(r))
        .map(|r| {
            let own = if r["iceoryx2"].is_object() { "iceoryx2" } else { "ipckit" };
            let mut cells = vec![Cell::Text(text(r, "mechanism").to_owned()), Cell::Text(size_cell(r))];
            for p in [format!("/{own}/p50_ns"), format!("/{own}/p99_ns"), "/raw/p50_ns".into(), "/raw/p99_ns".into()] {
                cells.push(Cell::Num(ns_cell(r, &p)));
            }
            cells.push(Cell::Num(ratio_cell(r, "ratio_p50")));
            cells.push(Cell::Text(text(r, "floor").to_owned()));
            cells
        })
        .collect();
    if !ping_pong.is_empty() {
        out.push_str(&table(
            "Shared memory: round trip over two shm: channels, ipckit vs the floor",
            &["row", "size", "p50", "p99", "floor p50", "floor p99", "ratio (p50)", "floor"],
            &ping_pong,
            &["ratio = p50 / floor p50 (iceoryx2-busy: iceoryx2's; the other rows: ipckit's). floor = the least two \
               processes can do in shared memory the same way."
                .to_owned()],
        ));
    }
    let stream: Vec<Vec<Cell>> = shm
        .iter()
        .filter(|r| is_stream(r))
        .map(|r| {
            vec![
                Cell::Text(text(r, "mechanism").to_owned()),
                Cell::Text(size_cell(r)),
                Cell::Num(rate(r["ipckit_msgs_per_s"].as_f64())),
                Cell::Num(ns_cell(r, "/ipckit/p50_ns")),
                Cell::Num(rate(r["raw_msgs_per_s"].as_f64())),
                Cell::Num(ns_cell(r, "/raw/p50_ns")),
                Cell::Num(ratio_cell(r, "ratio_msgs_per_s")),
            ]
        })
        .collect();
    if !stream.is_empty() {
        out.push_str(&table(
            "Shared memory: streaming one way (SPSC)",
            &["row", "size", "ipckit msg/s", "ipckit per msg", "floor msg/s", "floor per msg", "ratio (msg/s)"],
            &stream,
            &["ratio = ipckit messages/s / floor messages/s; floor = a ring of fixed slots in a memfd.".to_owned()],
        ));
    }
    out
}

/// Rows measured beside a plain round trip (request-response,
/// publish-subscribe, async): `own` is the key of the rows' own summary.
fn beside_table(rows: &[Value], caption: &str, own_header: [&str; 3], own: &str, targets: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut header = vec!["row", "plain", "plain p50"];
    header.extend(own_header);
    if targets {
        header.push("target");
    }
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                Cell::Text(text(r, "mechanism").to_owned()),
                Cell::Text(text(r, "plain_row").to_owned()),
                Cell::Num(ns_cell(r, "/plain/p50_ns")),
                Cell::Num(ns_cell(r, &format!("/{own}/p50_ns"))),
                Cell::Num(ns_cell(r, &format!("/{own}/p99_ns"))),
                Cell::Num(ratio_cell(r, "ratio_p50")),
            ];
            if targets {
                cells.push(Cell::Num(
                    r["target_ratio"].as_f64().map_or_else(|| "-".to_owned(), |t| format!("≤ {t:.1}")),
                ));
            }
            cells
        })
        .collect();
    table(caption, &header, &cells, &[format!("{} = {own} p50 / plain p50, in the same trials.", own_header[2])])
}

// ---------------------------------------------------------------------
// The plots.

/// One line of a plot: its name and its points (x, y), x ascending.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    /// Its colour and whether it is dashed (with another marker), if not
    /// by its place among the series: the variants of one mechanism share a
    /// colour, a variant other than ipckit is dashed.
    look: Option<(usize, bool)>,
}

/// Adds `(x, y)` to the series `name`, made if new.
fn push(series: &mut Vec<Series>, name: &str, x: f64, y: f64) {
    if !(x > 0.0 && y > 0.0) {
        return;
    }
    match series.iter_mut().find(|s| s.name == name) {
        Some(s) => s.points.push((x, y)),
        None => series.push(Series { name: name.to_owned(), points: vec![(x, y)], look: None }),
    }
}

/// Plot (1): the p50 round trip of every message mechanism (the message
/// table, ipckit) and of the shared-memory round-trip rows, per size.
fn latency_plot(doc: &Value) -> Result<String> {
    let mut series = Vec::new();
    for r in array(doc, "results").iter().filter(|r| r["status"] == "ok") {
        if let (Some(s), Some(p50)) = (r["size"].as_f64(), num(r, "/ipckit/p50_ns")) {
            push(&mut series, text(r, "mechanism"), s, p50);
        }
    }
    for r in array(doc, "shm").iter().filter(|r| !is_stream(r)) {
        let own = if r["iceoryx2"].is_object() { "/iceoryx2/p50_ns" } else { "/ipckit/p50_ns" };
        if let (Some(s), Some(p50)) = (r["size"].as_f64(), num(r, own)) {
            push(&mut series, text(r, "mechanism"), s, p50);
        }
    }
    plot(Plot {
        title: "Round trip p50 vs message size (ipckit, log-log)",
        y_desc: "round trip p50",
        y_label: duration,
        series,
        mark_x: None,
        empty: "no message or shared-memory round-trip rows in this run (--filter)",
    })
}

/// Whether the document's catalogue has a row streamed one way.
fn catalogue_streams(doc: &Value) -> bool {
    array(doc, "catalogue").iter().any(|r| num(r, "/stream/gib_per_s").is_some())
}

/// Plot (2): the streaming GiB per second of every catalogue record that
/// has one, a line per name and variant, if the document has them; else
/// streaming messages per second per size if the run has streaming rows;
/// else the bytes per second of each copy-vs-map row (size / round trip
/// p50).
fn throughput_plot(doc: &Value) -> Result<String> {
    let mut series = Vec::new();
    if catalogue_streams(doc) {
        let mut names: Vec<&str> = Vec::new();
        for r in array(doc, "catalogue") {
            let (Some(s), Some(g)) = (r["size"].as_f64(), num(r, "/stream/gib_per_s")) else { continue };
            let (name, variant) = (text(r, "name"), text(r, "variant"));
            let colour = names.iter().position(|n| *n == name).unwrap_or_else(|| {
                names.push(name);
                names.len() - 1
            });
            let other = !matches!(variant, "ipckit" | "");
            let label = record_name(r);
            push(&mut series, &label, s, g);
            if let Some(last) = series.iter_mut().find(|x| x.name == label) {
                last.look = Some((colour, other));
            }
        }
        return plot(Plot {
            title: "Streaming one way: GiB per second vs message size (log-log)",
            y_desc: "GiB per second",
            y_label: |g| format!("{} GiB/s", tick(g)),
            series,
            mark_x: None,
            empty: "",
        });
    }
    let stream: Vec<&Value> = array(doc, "shm").iter().filter(|r| is_stream(r)).collect();
    if !stream.is_empty() {
        for r in stream {
            let s = r["size"].as_f64().unwrap_or(0.0);
            for (key, who) in [("ipckit_msgs_per_s", "ipckit"), ("raw_msgs_per_s", "floor")] {
                if let Some(rate) = r[key].as_f64() {
                    push(&mut series, &format!("{} {who}", text(r, "mechanism")), s, rate);
                }
            }
        }
        return plot(Plot {
            title: "Streaming one way: messages per second vs message size (log-log)",
            y_desc: "messages per second",
            y_label: |r| format!("{}/s", rate(Some(r)).replace(' ', "")),
            series,
            mark_x: None,
            empty: "",
        });
    }
    for r in array(&doc["copy_vs_map"], "results").iter().filter(|r| r["status"] == "ok") {
        if let (Some(s), Some(p50)) = (r["size"].as_f64(), num(r, "/round_trip/p50_ns")) {
            push(&mut series, &row_name(r), s, s / (p50 * 1e-9));
        }
    }
    plot(Plot {
        title: "Copy or map: bytes per second (size / round trip p50) vs message size (log-log)",
        y_desc: "throughput",
        y_label: bytes_rate,
        series,
        mark_x: None,
        empty: "no streaming or copy-vs-map rows in this run (--filter)",
    })
}

/// Plot (3): the copy-vs-map rows' p50 per size, the crossover marked.
fn copy_map_plot(doc: &Value) -> Result<String> {
    let mut series = Vec::new();
    for r in array(&doc["copy_vs_map"], "results").iter().filter(|r| r["status"] == "ok") {
        if let (Some(s), Some(p50)) = (r["size"].as_f64(), num(r, "/round_trip/p50_ns")) {
            push(&mut series, &row_name(r), s, p50);
        }
    }
    let mark_x =
        doc["copy_vs_map"]["crossover_size"].as_u64().map(|c| (c as f64, format!("crossover: {}", size(c as usize))));
    plot(Plot {
        title: "Copy or map: round trip p50 vs message size (log-log)",
        y_desc: "round trip p50",
        y_label: duration,
        series,
        mark_x,
        empty: "the copy-vs-map table is not in this run (--filter)",
    })
}

struct Plot {
    title: &'static str,
    y_desc: &'static str,
    y_label: fn(f64) -> String,
    series: Vec<Series>,
    /// A vertical line at this x, and its label.
    mark_x: Option<(f64, String)>,
    /// What an empty plot says.
    empty: &'static str,
}

/// Line colours (a colour-blind-friendly set), then markers vary.
const COLOURS: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 600;
/// The width of the legend, right of the plot.
const LEGEND: u32 = 210;
const FONT: &str = "sans-serif";

/// A log-log plot as an SVG element for inline use (without the XML
/// namespace attribute, which HTML does not need and which would be the
/// page's only URL).
fn plot(p: Plot) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, &p).map_err(|e| anyhow!("--report: draw {:?}: {e}", p.title))?;
        root.present().map_err(|e| anyhow!("--report: draw {:?}: {e}", p.title))?;
    }
    let svg = svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "");
    let svg = svg.trim_start_matches(|c| c != '<').to_owned();
    Ok(svg)
}

fn draw(root: &DrawingArea<SVGBackend<'_>, Shift>, p: &Plot) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let points = p.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if p.series.is_empty() {
        (x0, x1, y0, y1) = (64.0, 16.0 * 1024.0 * 1024.0, 100.0, 1e6);
    }
    // Room around the points: a factor each way on a log scale.
    let (x0, x1, y0, y1) = (x0 / 1.6, x1 * 1.6, y0 / 2.0, y1 * 2.0);
    // The legend beside the plot, not over its lines.
    let (area, legend) = root.split_horizontally(WIDTH - LEGEND);
    let mut chart = ChartBuilder::on(&area)
        .caption(p.title, (FONT, 22))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(90)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(size_ticks(x0, x1)),
            (y0..y1).log_scale().with_key_points(decade_ticks(y0, y1)),
        )?;
    chart
        .configure_mesh()
        .x_desc("message size (log scale)")
        .y_desc(format!("{} (log scale)", p.y_desc))
        .x_label_formatter(&|x| size(x.round() as usize))
        .y_label_formatter(&|y| (p.y_label)(*y))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .draw()?;
    if p.series.is_empty() {
        area.draw(&Text::new(p.empty, (120, (HEIGHT / 2) as i32), (FONT, 18)))?;
        return Ok(());
    }
    // The legend's lines: closer together when there are many.
    let step = (24).min((HEIGHT as i32 - 70) / p.series.len().max(1) as i32);
    for (i, s) in p.series.iter().enumerate() {
        let (colour, shape, dashed) = match s.look {
            Some((c, other)) => (COLOURS[c % COLOURS.len()], usize::from(other) + 3 * (c / COLOURS.len()), other),
            None => (COLOURS[i % COLOURS.len()], i / COLOURS.len(), false),
        };
        let style = ShapeStyle::from(&colour).stroke_width(2);
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Its legend entry: a line with the series' marker, and its name.
        let y = 50 + step * i as i32;
        if dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))?;
            legend.draw(&DashedPathElement::new(vec![(8, y), (40, y)], 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style))?;
            legend.draw(&PathElement::new(vec![(8, y), (40, y)], style))?;
        }
        legend_marker(&legend, (24, y), shape, colour)?;
        legend.draw(&Text::new(s.name.as_str(), (48, y - 8), (FONT, if step < 20 { 13 } else { 15 })))?;
        // The markers: circles, then triangles, then squares (more series
        // than colours).
        match shape % 3 {
            0 => chart.draw_series(pts.iter().map(|&c| Circle::new(c, 4, colour.filled())))?,
            1 => chart.draw_series(pts.iter().map(|&c| TriangleMarker::new(c, 6, colour.filled())))?,
            _ => chart.draw_series(
                pts.iter().map(|&c| EmptyElement::at(c) + Rectangle::new([(-4, -4), (4, 4)], colour.filled())),
            )?,
        };
    }
    if let Some((x, label)) = &p.mark_x {
        let red = RGBColor(0xc0, 0, 0);
        chart.draw_series(LineSeries::new([(*x, y0), (*x, y1)], red.stroke_width(2)))?;
        // The label on the side of the line with more room.
        let right_half = *x > (x0 * x1).sqrt();
        let (at, h) = if right_half { (*x / 1.1, HPos::Right) } else { (*x * 1.1, HPos::Left) };
        let style = TextStyle::from((FONT, 15).into_font()).color(&red).pos(Pos::new(h, VPos::Top));
        chart.draw_series(std::iter::once(Text::new(label.clone(), (at, y1 / 1.2), style)))?;
    }
    Ok(())
}

/// A legend entry's marker at `c` (pixels), as [`draw`] draws the series.
fn legend_marker(
    legend: &DrawingArea<SVGBackend<'_>, Shift>,
    c: (i32, i32),
    shape: usize,
    colour: RGBColor,
) -> Result<(), Box<dyn std::error::Error>> {
    match shape % 3 {
        0 => legend.draw(&Circle::new(c, 4, colour.filled()))?,
        1 => legend.draw(&TriangleMarker::new(c, 6, colour.filled()))?,
        _ => legend.draw(&Rectangle::new([(c.0 - 4, c.1 - 4), (c.0 + 4, c.1 + 4)], colour.filled()))?,
    }
    Ok(())
}

/// A tick's value (1, 2 or 5 times a power of ten) without trailing digits:
/// `0.05`, `2`, `500`.
fn tick(v: f64) -> String {
    let decimals = if v >= 1.0 { 0 } else { (-v.log10()).ceil() as usize };
    format!("{v:.decimals$}")
}

/// The y axis's ticks: 1, 2 and 5 times the powers of ten within
/// `y0..y1`, only the powers of ten when they span more than three decades.
fn decade_ticks(y0: f64, y1: f64) -> Vec<f64> {
    let (low, high) = (y0.log10().floor() as i32, y1.log10().ceil() as i32);
    let steps: &[f64] = if high - low > 3 { &[1.0] } else { &[1.0, 2.0, 5.0] };
    let ticks: Vec<f64> = (low..=high)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|&t| t >= y0 && t <= y1)
        .collect();
    if ticks.is_empty() { vec![(y0 * y1).sqrt()] } else { ticks }
}

/// The x axis's ticks: the powers of 4 from 64 B within `x0..x1` (64 B,
/// 256 B, 1 KiB, ...), every other one when there are many.
fn size_ticks(x0: f64, x1: f64) -> Vec<f64> {
    let mut ticks: Vec<f64> = (0..40).map(|i| 4f64.powi(i)).filter(|&t| t >= x0 && t <= x1).collect();
    if ticks.len() > 10 {
        ticks = ticks.into_iter().step_by(2).collect();
    }
    if ticks.is_empty() {
        ticks.push(((x0 * x1).sqrt()).round());
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `--json` document with the fields the bench gains (the
    /// catalogue, the answer, ...).
    const FIXTURE: &str = include_str!("testdata/report_fixture.json");

    /// The fields an older document lacks.
    const NEW_FIELDS: [&str; 6] = ["catalogue", "answer", "load_average", "method", "unavailable", "failed"];

    fn fixture() -> Value {
        serde_json::from_str(FIXTURE).expect("the fixture is JSON")
    }

    /// The page's HTML before the embedded JSON document (which holds every
    /// string of the document, whatever the page shows).
    fn shown(page: &str) -> &str {
        &page[..page.find("<details>").expect("the JSON document's <details>")]
    }

    #[track_caller]
    fn self_contained(page: &str) {
        assert_eq!(page.matches("<svg").count(), 3, "three plots");
        assert_eq!(page.matches("</svg>").count(), 3, "three plots, closed");
        for needle in ["http:", "https:", "<script", "<link", "@import", "url(", "src="] {
            assert!(!page.contains(needle), "the page contains {needle:?}");
        }
    }

    #[test]
    fn fixture_page_shows_the_new_fields() {
        let doc = fixture();
        let page = render(&doc).expect("render");
        self_contained(&page);
        let shown = shown(&page);
        // The answer: right after the title, before the honesty block.
        let reading = doc["answer"]["reading"].as_str().expect("a reading");
        let at = shown.find(&format!("<p class=\"reading\">{}</p>", esc(reading))).expect("the reading, escaped");
        assert!(at < shown.find("How these numbers were made").expect("the honesty block"));
        assert!(shown.contains("<td>shm-busy</td><td class=\"n\">470 ns</td><td>hybrid</td><td class=\"n\">510 ns</td><td class=\"n\">1.09×</td>"));
        assert!(shown.contains("the crossover is 4 MiB"), "the crossover");
        assert!(shown.contains("the threshold is 4194303 bytes"), "the threshold");
        // The catalogue.
        assert!(shown.contains("<th>p99.9</th>"), "a p99.9 column");
        assert!(shown.contains("<th>stream GiB/s</th>"), "a GiB/s column");
        for group in ["messages", "shm", "copy vs map", "rpc", "pubsub", "async", "sync"] {
            assert!(shown.contains(&format!("<h3>Catalogue: {group}</h3>")), "the catalogue's {group} table");
        }
        // pipe ipckit at 64 B: 12.0 µs, a stream of 1e9 / 1500 msg/s.
        let pipe = 1e9 / 1500.0 * 64.0 / (1u64 << 30) as f64;
        assert!(shown.contains(&format!("<td class=\"n\">{}</td>", gib(pipe))), "pipe's GiB/s cell {}", gib(pipe));
        assert!(shown.contains("<td>pipe</td><td>ipckit</td><td>64 B</td><td class=\"n\">12.0 µs</td>"));
        assert!(shown.contains("11.6 µs – 12.5 µs"), "pipe's spread");
        assert!(
            shown.contains(&esc(
                "n/a (64 KiB is over the kernel's limit of 8192 bytes per message (msgsize_max = 8192))"
            ))
        );
        // The failed row and why, in the catalogue and in the honesty block.
        assert!(shown.contains("colspan=\"10\">failed: rpc-sysv-mq, rpc trial 3: the peer exited"));
        assert!(shown.contains(
            "failed: rpc-sysv-mq — rpc trial 3: the peer exited with status 1: bench-peer: msgrcv: Identifier removed"
        ));
        // What this kernel lacks, and why.
        assert!(shown.contains("not measured: mq — no /dev/mqueue (POSIX message queues are not mounted)"));
        // The honesty block's new fields.
        assert!(shown.contains("at the start 1.36, at the end 1.90, at most 2.10"), "the load average");
        assert!(shown.contains("<b>Pinning</b>: parent on CPU 0, peer on CPU 1."), "the pinning");
        for (key, value) in doc["method"].as_object().expect("method") {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            assert!(shown.contains(&esc(&value)), "method's {key}: {value:?}");
        }
        assert!(shown.contains("<i>time budget</i>: 45 s"));
        // The throughput plot: the catalogue's streams.
        assert!(shown.contains("GiB per second vs message size"), "the streaming plot");
        assert!(shown.contains("unix-seqpacket raw"), "a legend entry per name and variant");
        // The tables every document has still count as before.
        assert_eq!(shown.matches("<table>").count(), page.matches("<table>").count());
        assert!(shown.matches("<table class=\"catalogue\">").count() == 7);
    }

    #[test]
    fn old_document_renders_without_the_new_sections() {
        let mut doc = fixture();
        let fields = doc.as_object_mut().expect("an object");
        for key in NEW_FIELDS {
            fields.remove(key);
        }
        doc["machine"].as_object_mut().expect("machine").remove("pinning");
        let page = render(&doc).expect("render");
        self_contained(&page);
        for gone in ["The answer", "Catalogue", "<th>p99.9</th>", "GiB per second", "<table class="] {
            assert!(!page.contains(gone), "an old document's page has {gone:?}");
        }
        // What an old document says instead.
        assert!(page.contains("<b>Pinning</b>: pinned: this process on CPU 0, the peer on CPU 1."));
        assert!(page.contains("<b>Load average</b> at the start: "));
        assert!(page.contains("messages per second vs message size"), "the shm streaming plot");
        assert!(page.contains("a value here is the median over the trials"), "the old method");
    }

    #[test]
    fn null_or_odd_fields_do_not_panic() {
        for odd in [Value::Null, serde_json::json!("x"), serde_json::json!(3), serde_json::json!([null, 1, {}])] {
            let mut doc = fixture();
            for key in NEW_FIELDS {
                doc[key] = odd.clone();
            }
            doc["machine"]["pinning"] = odd.clone();
            let page = render(&doc).unwrap_or_else(|e| panic!("render with {odd}: {e}"));
            self_contained(&page);
        }
        // Records and answers with every field null.
        let mut doc = fixture();
        let nulls = |v: &Value| {
            Value::Object(v.as_object().expect("an object").keys().map(|k| (k.clone(), Value::Null)).collect())
        };
        let record = nulls(&doc["catalogue"][0]);
        doc["catalogue"] = serde_json::json!([record, {"status": "failed"}, {"status": "n/a", "stream": {}}]);
        let per_size = nulls(&doc["answer"]["per_size"][0]);
        doc["answer"] = serde_json::json!({"per_size": [per_size], "crossover": null, "reading": null});
        doc["load_average"] = serde_json::json!({"start": null, "end": 0.5, "max": null});
        doc["method"] = serde_json::json!({"budget_s": null, "rounds": null, "other": [1]});
        doc["unavailable"] = serde_json::json!([{}]);
        doc["failed"] = serde_json::json!([{"row": null}]);
        let page = render(&doc).expect("render");
        self_contained(&page);
        assert!(page.contains("failed: no reason given"));
        assert!(page.contains("<b>Load average</b> at the end 0.50."));
        assert!(page.contains("<i>time budget</i>: none"));
    }
}
