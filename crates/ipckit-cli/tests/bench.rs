//! `ipckit bench --quick --json`, end to end: it exits 0 with a result for
//! every mechanism at every size, and leaves nothing behind. Nothing about
//! time is asserted but that latencies are positive.

#[path = "../../ipckit/tests/common/mod.rs"]
mod common;
mod support;

use serde_json::Value;
use support::{ipckit, run};

const MECHANISMS: [&str; 6] = ["pipe", "fifo", "unix-stream", "unix-seqpacket", "unix-dgram", "tcp"];
const SIZES: [u64; 2] = [64, 65536];

/// Checks one mode's summary of a measured row: positive percentiles, one
/// entry per trial.
#[track_caller]
fn check_summary(summary: &Value, trials: u64, what: &str) {
    let p50 = summary["p50_ns"].as_u64().unwrap_or_else(|| panic!("{what}: no p50_ns in {summary}"));
    let p99 = summary["p99_ns"].as_u64().unwrap_or_else(|| panic!("{what}: no p99_ns in {summary}"));
    assert!(p50 > 0 && p99 >= p50, "{what}: p50 {p50} ns, p99 {p99} ns");
    let each = summary["trials"].as_array().unwrap_or_else(|| panic!("{what}: no trials in {summary}"));
    assert_eq!(each.len() as u64, trials, "{what}: trials");
    assert!(each.iter().all(|t| t["p50_ns"].as_u64() > Some(0)), "{what}: a trial without a positive p50: {summary}");
}

#[test]
fn quick_json_has_every_mechanism_and_size() {
    let out = run(ipckit().args(["bench", "--quick", "--json"]), None);
    out.expect_code(0, "ipckit bench --quick --json");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    let rows = doc["results"].as_array().expect("results");
    assert_eq!(rows.len(), MECHANISMS.len() * SIZES.len(), "one row per mechanism and size: {doc:#}");
    for mechanism in MECHANISMS {
        for size in SIZES {
            let what = format!("{mechanism} {size} B");
            let row = rows
                .iter()
                .find(|r| r["mechanism"] == mechanism && r["size"] == size)
                .unwrap_or_else(|| panic!("{what}: no row in {doc:#}"));
            match row["status"].as_str() {
                Some("ok") => {
                    let trials = row["trials"].as_u64().unwrap_or_else(|| panic!("{what}: no trials in {row}"));
                    assert!(trials > 0, "{what}: {trials} trials");
                    check_summary(&row["ipckit"], trials, &format!("{what} ipckit"));
                    check_summary(&row["raw"], trials, &format!("{what} raw"));
                    assert!(row["ratio_p50"].as_f64() > Some(0.0), "{what}: ratio in {row}");
                }
                // A kernel limit is a fact, not a failure; only a datagram
                // can meet one (SO_SNDBUF) at these sizes.
                Some("n/a (limit)") => assert_eq!(mechanism, "unix-dgram", "{what}: {row}"),
                other => panic!("{what}: status {other:?} in {row}"),
            }
        }
    }
    let scratch = std::env::temp_dir().join(format!("ipckit-bench-{}", out.pid));
    assert!(!scratch.exists(), "{} was left behind", scratch.display());
}
