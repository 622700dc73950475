//! The arguments of `ipckit bench` that shape a run (`--iters`, `--sizes`,
//! `--filter`) and `--compare OLD.json`: each usage error is exit 2 with a
//! one-line message naming the bad value, before anything is measured
//! (nothing on standard output); a tiny run takes the flags as asked; a
//! second tiny run compares itself with the first's document, row by row.
//! Nothing about speed is asserted.

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::{Out, run};
use ipckit_testkit::scratch::Scratch;
use serde_json::{Value, json};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// The layout of the JSON document.
const SCHEMA: u64 = 2;

/// A tiny run: a few rows of different tables (the message table, a
/// shm round trip and the streaming row, a synchronization row), 20 round
/// trips, 2 trials, 64 B only.
const TINY: [&str; 16] = [
    "bench",
    "--quick",
    "--iters",
    "20",
    "--trials",
    "2",
    "--sizes",
    "64",
    "--filter",
    "pipe",
    "--filter",
    "shm-park",
    "--filter",
    "shm-stream",
    "--filter",
    "mutex-handoff",
];

fn bench(args: &[&str]) -> Out {
    run(IPCKIT.command().args(args), None)
}

/// A usage error: exit 2, nothing measured (no output), one line on
/// standard error that contains `needle`.
#[track_caller]
fn usage_error(args: &[&str], needle: &str) {
    let what = format!("ipckit {}", args.join(" "));
    let out = bench(args);
    out.expect_code(2, &what);
    assert!(out.stdout.is_empty(), "{what}: measured something: {}", out.text());
    assert!(out.stderr.contains(needle), "{what}: {needle:?} not in {:?}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty() && !l.contains("--help")).collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {:?}", out.stderr);
}

#[test]
fn iters_must_be_positive() {
    usage_error(&["bench", "--iters", "0"], "'0'");
    usage_error(&["bench", "--iters", "-5"], "negative");
    usage_error(&["bench", "--iters", "many"], "not a whole number");
    usage_error(&["bench", "--iters", "100000001"], "not in 1..=100000000");
}

#[test]
fn sizes_name_the_bad_entry() {
    usage_error(&["bench", "--sizes", "64,0,1MiB"], "'0'");
    usage_error(&["bench", "--sizes", "64,17MiB"], "'17MiB'");
    usage_error(&["bench", "--sizes", "64,-1"], "-1 is negative");
    usage_error(&["bench", "--sizes", "-4KiB"], "negative");
    usage_error(&["bench", "--sizes", "64,4KB!"], "'4KB!'");
    usage_error(&["bench", "--sizes", "64,,1MiB"], "''");
    // Only copy-vs-map takes a size over 64 KiB.
    usage_error(&["bench", "--sizes", "1MiB", "--filter", "pipe"], "no row selected takes these sizes");
}

#[test]
fn filter_matching_no_row_lists_the_names() {
    usage_error(&["bench", "--filter", "no-such-row"], "there are: pipe, fifo");
    // Even beside a filter that matches: it would silently run less.
    usage_error(&["bench", "--filter", "pipe", "--filter", "piep"], "--filter \"piep\": matches no row");
}

#[test]
fn compare_needs_a_document_of_this_schema() {
    let s = Scratch::new("bench-compare-usage");
    let missing = s.path("missing.json");
    let missing = missing.to_str().unwrap();
    usage_error(&["bench", "--compare", missing], missing);
    usage_error(&["bench", "--compare", missing], "cannot be read");

    let not_json = s.path("not.json");
    std::fs::write(&not_json, "pipe 64 B 12 µs\n").unwrap();
    usage_error(&["bench", "--compare", not_json.to_str().unwrap()], "is not JSON");

    for (doc, needle) in [
        (json!({ "schema": SCHEMA + 1, "results": [] }), format!("schema {}", SCHEMA + 1)),
        (json!({ "schema": 1 }), "schema 1".to_owned()),
        (json!({ "results": [] }), "has no \"schema\"".to_owned()),
        (json!({ "schema": "2" }), "not a number".to_owned()),
    ] {
        let old = s.path("old.json");
        std::fs::write(&old, doc.to_string()).unwrap();
        usage_error(&["bench", "--compare", old.to_str().unwrap()], &needle);
        // Before anything runs, whatever else is asked.
        usage_error(&["bench", "--quick", "--filter", "pipe", "--compare", old.to_str().unwrap()], &needle);
    }
}

/// The rows of a document: (section, name, size).
fn rows(doc: &Value) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for key in ["results", "synchronization", "shm"] {
        for row in doc[key].as_array().unwrap_or_else(|| panic!("no {key} in {doc:#}")) {
            let name = row["mechanism"].as_str().or(row["operation"].as_str()).expect("a name");
            out.push((key.to_owned(), name.to_owned(), row["size"].as_u64().unwrap_or(0)));
        }
    }
    out
}

#[test]
fn a_tiny_run_compares_with_the_last() {
    let s = Scratch::new("bench-compare");
    let out = bench(&[&TINY[..], &["--json"]].concat());
    out.expect_code(0, "ipckit bench (tiny) --json");
    let first: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    assert_eq!(first["schema"].as_u64(), Some(SCHEMA), "{first:#}");
    assert!(first["comparison"].is_null(), "a comparison without --compare: {first:#}");
    // The flags as asked: 64 B only, 20 round trips, these rows only.
    let found = rows(&first);
    let expected: Vec<(String, String, u64)> = [
        ("results", "pipe", 64),
        ("synchronization", "mutex-handoff", 0),
        ("shm", "shm-park", 64),
        ("shm", "shm-stream", 64),
    ]
    .iter()
    .map(|&(k, n, size)| (k.to_owned(), n.to_owned(), size))
    .collect();
    assert_eq!(found, expected, "{first:#}");
    for (key, name) in [("results", "pipe"), ("synchronization", "mutex-handoff"), ("shm", "shm-park")] {
        let row = doc_row(&first, key, name);
        assert_eq!(row["round_trips"].as_u64(), Some(20), "{name}: --iters 20: {row}");
        assert_eq!(row["warmup"].as_u64(), Some(2), "{name}: a tenth of --iters: {row}");
        assert_eq!(row["trials"].as_u64(), Some(2), "{name}: {row}");
    }
    let old = s.path("old.json");
    std::fs::write(&old, &out.stdout).unwrap();

    // Again, compared with the first: every row, each with a finite
    // positive ratio, and the streaming rows' msg/s too.
    let out = bench(&[&TINY[..], &["--json", "--compare", old.to_str().unwrap()]].concat());
    out.expect_code(0, "ipckit bench (tiny) --json --compare");
    let second: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    let comparison = &second["comparison"];
    assert_eq!(comparison["old"].as_str(), old.to_str(), "{comparison:#}");
    assert_eq!(comparison["schema"].as_u64(), Some(SCHEMA), "{comparison:#}");
    let compared = comparison["rows"].as_array().unwrap_or_else(|| panic!("no comparison rows in {second:#}"));
    let names: Vec<&str> = compared.iter().filter_map(|r| r["row"].as_str()).collect();
    assert_eq!(names, ["pipe 64 B", "mutex-handoff", "shm-park 64 B", "shm-stream 64 B"], "{comparison:#}");
    for row in compared {
        assert_eq!(row["status"], "compared", "{row}");
        let ratio = row["ratio_p50"].as_f64().unwrap_or_else(|| panic!("no ratio_p50 in {row}"));
        assert!(ratio.is_finite() && ratio > 0.0, "{row}");
        assert!(row["old_p50_ns"].as_u64() > Some(0) && row["new_p50_ns"].as_u64() > Some(0), "{row}");
        let verdict = match ratio {
            r if r > 1.10 => "slower",
            r if r < 0.90 => "faster",
            _ => "same",
        };
        assert_eq!(row["verdict"], verdict, "{row}");
        // shm-stream, and pipe's one-way stream.
        if row["row"] == "shm-stream 64 B" || row["row"] == "pipe 64 B" {
            let rate = row["ratio_msgs_per_s"].as_f64().unwrap_or_else(|| panic!("no ratio_msgs_per_s in {row}"));
            assert!(rate.is_finite() && rate > 0.0, "{row}");
        } else {
            assert!(row["ratio_msgs_per_s"].is_null(), "{row}");
        }
    }

    // For people: the table after the others, ratios on each row; a row
    // of the old document that this run lacks says so.
    let out = bench(&[&TINY[..4], &["--trials", "1", "--filter", "pipe", "--compare", old.to_str().unwrap()]].concat());
    out.expect_code(0, "ipckit bench --filter pipe --compare");
    let text = out.text();
    let at = text.find("Compared with ").unwrap_or_else(|| panic!("no comparison in {text}"));
    let table = &text[at..];
    let pipe = table.lines().find(|l| l.contains("pipe 64 B")).unwrap_or_else(|| panic!("no pipe row in {table}"));
    // The p50's ratio, and the stream's messages/s.
    let ratios: Vec<f64> = pipe.split('┆').filter_map(|c| c.trim().parse().ok()).collect();
    assert!(ratios.len() == 2 && ratios.iter().all(|&r| r > 0.0), "two ratios in {pipe}");
    for name in ["mutex-handoff", "shm-park 64 B", "shm-stream 64 B"] {
        let line = table.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("no {name} row in {table}"));
        assert!(line.contains("missing in new"), "{line}");
    }
}

/// The row named `name` of section `key`.
fn doc_row<'a>(doc: &'a Value, key: &str, name: &str) -> &'a Value {
    doc[key]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["mechanism"] == name || r["operation"] == name))
        .unwrap_or_else(|| panic!("no {name} in {key} of {doc:#}"))
}
