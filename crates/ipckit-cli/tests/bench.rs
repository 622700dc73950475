//! `ipckit bench --quick --json`, end to end: it exits 0 with a result for
//! every mechanism at every size, every size of the copy-vs-map table,
//! every synchronization row and every shared-memory row, says which
//! layout the document has (`schema`), and leaves nothing behind. Nothing
//! about time is asserted but that latencies and rates are positive.

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::run;
use serde_json::Value;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

const SOCKETS: [&str; 6] = ["pipe", "fifo", "unix-stream", "unix-seqpacket", "unix-dgram", "tcp"];
const QUEUES: [&str; 2] = ["mq", "sysv-mq"];
const SIZES: [u64; 2] = [64, 65536];
const COPY_MAP_SIZES: [u64; 9] = [64, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];
const SYNC: [&str; 3] = ["mutex-uncontended", "mutex-handoff", "event-pingpong"];
/// The shared-memory rows: (mechanism, size).
const SHM: [(&str, u64); 6] =
    [("shm-busy", 64), ("shm-busy", 4096), ("shm-busy", 65536), ("shm-spin", 64), ("shm-park", 64), ("shm-stream", 64)];
/// The layout of the JSON document.
const SCHEMA: u64 = 1;

/// Checks one mode's summary: positive percentiles, one entry per trial.
#[track_caller]
fn check_summary(summary: &Value, trials: u64, what: &str) {
    let p50 = summary["p50_ns"].as_f64().unwrap_or_else(|| panic!("{what}: no p50_ns in {summary}"));
    let p99 = summary["p99_ns"].as_f64().unwrap_or_else(|| panic!("{what}: no p99_ns in {summary}"));
    assert!(p50 > 0.0 && p99 >= p50, "{what}: p50 {p50} ns, p99 {p99} ns");
    let each = summary["trials"].as_array().unwrap_or_else(|| panic!("{what}: no trials in {summary}"));
    assert_eq!(each.len() as u64, trials, "{what}: trials");
    assert!(
        each.iter().all(|t| t["p50_ns"].as_f64().is_some_and(|p| p > 0.0)),
        "{what}: a trial without a positive p50: {summary}"
    );
}

/// Checks a measured row's trial count and its two modes' summaries.
#[track_caller]
fn check_measured(row: &Value, modes: [&str; 2], ratio: &str, what: &str) {
    let trials = row["trials"].as_u64().unwrap_or_else(|| panic!("{what}: no trials in {row}"));
    assert!(trials > 0, "{what}: {trials} trials");
    for mode in modes {
        check_summary(&row[mode], trials, &format!("{what} {mode}"));
    }
    assert!(row[ratio].as_f64() > Some(0.0), "{what}: {ratio} in {row}");
}

/// The message rows: the socket mechanisms at 64 B and 64 KiB; the queues
/// also at the kernel's largest message, and at 64 KiB over it as "n/a".
fn check_messages(doc: &Value) {
    let rows = doc["results"].as_array().expect("results");
    let find = |mechanism: &str, size: u64| {
        rows.iter()
            .find(|r| r["mechanism"] == mechanism && r["size"] == size)
            .unwrap_or_else(|| panic!("{mechanism} {size} B: no row in {doc:#}"))
    };
    for mechanism in SOCKETS {
        for size in SIZES {
            let what = format!("{mechanism} {size} B");
            let row = find(mechanism, size);
            match row["status"].as_str() {
                Some("ok") => check_measured(row, ["ipckit", "raw"], "ratio_p50", &what),
                // A kernel limit is a fact, not a failure; only a datagram
                // can meet one (SO_SNDBUF) at these sizes.
                Some("n/a (limit)") => assert_eq!(mechanism, "unix-dgram", "{what}: {row}"),
                other => panic!("{what}: status {other:?} in {row}"),
            }
        }
    }
    let mut queue_rows = 0;
    for mechanism in QUEUES {
        let max = doc["queue_limits"][mechanism]["max_message"]
            .as_u64()
            .unwrap_or_else(|| panic!("{mechanism}: no queue_limits in {doc:#}"));
        assert!(max > 0, "{mechanism}: kernel limit {max}");
        let largest = max.min(65536);
        let mut sizes = vec![64, largest, 65536];
        sizes.dedup();
        queue_rows += sizes.len();
        for size in sizes {
            let what = format!("{mechanism} {size} B");
            let row = find(mechanism, size);
            assert_eq!(row["kernel_max"], size == max && size < 65536, "{what}: kernel_max in {row}");
            if size <= max {
                assert_eq!(row["status"], "ok", "{what}: {row}");
                check_measured(row, ["ipckit", "raw"], "ratio_p50", &what);
            } else {
                assert_eq!(row["status"], "n/a (limit)", "{what}: {row}");
                assert_eq!(row["limit"].as_u64(), Some(max), "{what}: the limit in {row}");
            }
        }
    }
    assert_eq!(rows.len(), SOCKETS.len() * SIZES.len() + queue_rows, "one row per mechanism and size: {doc:#}");
}

/// The copy-vs-map table: every size measured both ways, and a crossover
/// that is one of the sizes (or none).
fn check_copy_map(doc: &Value) {
    let table = &doc["copy_vs_map"];
    let rows = table["results"].as_array().unwrap_or_else(|| panic!("no copy_vs_map results in {doc:#}"));
    let sizes: Vec<u64> = rows.iter().filter_map(|r| r["size"].as_u64()).collect();
    assert_eq!(sizes, COPY_MAP_SIZES, "copy vs map sizes: {table:#}");
    for row in rows {
        let what = format!("copy vs map {} B", row["size"]);
        check_measured(row, ["copy", "map"], "ratio_copy_over_map", &what);
    }
    let crossover = &table["crossover_size"];
    assert!(
        crossover.is_null() || crossover.as_u64().is_some_and(|s| COPY_MAP_SIZES.contains(&s)),
        "crossover_size {crossover} is none of the sizes"
    );
    let faster = table["map_faster_sizes"].as_array().unwrap_or_else(|| panic!("no map_faster_sizes in {table:#}"));
    assert!(faster.iter().all(|s| s.as_u64().is_some_and(|s| COPY_MAP_SIZES.contains(&s))), "{table:#}");
}

/// The synchronization table: every row, ipckit beside raw.
fn check_sync(doc: &Value) {
    let rows = doc["synchronization"].as_array().unwrap_or_else(|| panic!("no synchronization in {doc:#}"));
    assert_eq!(rows.len(), SYNC.len(), "one row per operation: {doc:#}");
    for op in SYNC {
        let row = rows.iter().find(|r| r["operation"] == op).unwrap_or_else(|| panic!("{op}: no row in {doc:#}"));
        assert!(row["per"].as_str().is_some_and(|p| !p.is_empty()), "{op}: what a value is per, in {row}");
        check_measured(row, ["ipckit", "raw"], "ratio_p50", op);
    }
}

/// The shared-memory rows: every row at every size, ipckit beside the
/// floor; the streaming row in messages per second too, and the spin row's
/// speedup over the pipe (measured in the same run when `pipe` is). With
/// `compare-iceoryx2`, an iceoryx2 row beside every busy one, and only
/// then.
fn check_shm(doc: &Value, pipe: bool) {
    let rows = doc["shm"].as_array().unwrap_or_else(|| panic!("no shm rows in {doc:#}"));
    let find = |mechanism: &str, size: u64| {
        rows.iter()
            .find(|r| r["mechanism"] == mechanism && r["size"] == size)
            .unwrap_or_else(|| panic!("{mechanism} {size} B: no row in {doc:#}"))
    };
    for (mechanism, size) in SHM {
        let what = format!("{mechanism} {size} B");
        let row = find(mechanism, size);
        check_measured(row, ["ipckit", "raw"], "ratio_p50", &what);
        assert!(row["endpoint_options"].as_str().is_some_and(|o| !o.is_empty()), "{what}: endpoint_options in {row}");
        match mechanism {
            "shm-stream" => {
                for key in ["ipckit_msgs_per_s", "raw_msgs_per_s", "ratio_msgs_per_s"] {
                    assert!(row[key].as_f64() > Some(0.0), "{what}: {key} in {row}");
                }
                assert!(row["batch"].as_u64() > Some(0) && row["batches"].as_u64() > Some(0), "{what}: {row}");
            }
            "shm-spin" if pipe => assert!(row["speedup_over_pipe"].as_f64() > Some(0.0), "{what}: {row}"),
            _ => assert!(row["round_trips"].as_u64() > Some(0), "{what}: round_trips in {row}"),
        }
    }
    let iceoryx2: Vec<&Value> = rows.iter().filter(|r| r["mechanism"] == "iceoryx2-busy").collect();
    if cfg!(feature = "compare-iceoryx2") {
        for (_, size) in SHM.iter().filter(|(m, _)| *m == "shm-busy") {
            let what = format!("iceoryx2-busy {size} B");
            let row = find("iceoryx2-busy", *size);
            check_measured(row, ["iceoryx2", "raw"], "ratio_p50", &what);
            assert!(row["ratio_ipckit_over_iceoryx2"].as_f64() > Some(0.0), "{what}: {row}");
        }
        assert_eq!(rows.len(), SHM.len() + 3, "one row per shm row and size, three of iceoryx2: {doc:#}");
    } else {
        assert!(iceoryx2.is_empty(), "iceoryx2 rows without the compare-iceoryx2 feature: {iceoryx2:?}");
        assert_eq!(rows.len(), SHM.len(), "one row per shm row and size: {doc:#}");
    }
}

/// The entries of `listing` that mention `needle`.
fn mentions(listing: Vec<String>, needle: &str) -> Vec<String> {
    listing.into_iter().filter(|l| l.contains(needle)).collect()
}

/// The names in directory `dir` (none if it cannot be read).
fn list_dir(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn quick_json_has_every_row() {
    let out = run(IPCKIT.command().args(["bench", "--quick", "--json"]), None);
    out.expect_code(0, "ipckit bench --quick --json");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    assert_eq!(doc["schema"].as_u64(), Some(SCHEMA), "schema in {doc:#}");
    check_messages(&doc);
    check_copy_map(&doc);
    check_sync(&doc);
    check_shm(&doc, true);

    // Nothing left behind: the scratch directory, queues, shared memory.
    let scratch = std::env::temp_dir().join(format!("ipckit-bench-{}", out.pid));
    assert!(!scratch.exists(), "{} was left behind", scratch.display());
    let prefix = format!("ipckit-bench-{}-", out.pid);
    for dir in ["/dev/mqueue", "/dev/shm"] {
        let left = mentions(list_dir(dir), &prefix);
        assert!(left.is_empty(), "left behind in {dir}: {left:?}");
    }
    // System V queues: none that the bench's parent sent to or received
    // from (columns lspid and lrpid of /proc/sysvipc/msg).
    let table = std::fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default();
    let pid = out.pid.to_string();
    let left: Vec<&str> =
        table.lines().skip(1).filter(|l| l.split_whitespace().skip(5).take(2).any(|p| p == pid)).collect();
    assert!(left.is_empty(), "System V queues left behind: {left:?}");
    // shm: channels: their control sockets (abstract names) live only as
    // long as a process holds them: none may remain, not even a peer's.
    let sockets = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let left = mentions(sockets.lines().map(str::to_owned).collect(), &format!("@ipckit/shm/ipckit-bench-{pid}-"));
    assert!(left.is_empty(), "shm: channels left behind: {left:?}");
}

#[test]
fn filter_selects_tables() {
    let out = run(IPCKIT.command().args(["bench", "--quick", "--json", "--trials", "1", "--filter", "sysv-mq"]), None);
    out.expect_code(0, "ipckit bench --filter sysv-mq");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    let rows = doc["results"].as_array().expect("results");
    assert!(!rows.is_empty() && rows.iter().all(|r| r["mechanism"] == "sysv-mq"), "{doc:#}");
    assert!(doc["copy_vs_map"].is_null(), "{doc:#}");
    assert_eq!(doc["synchronization"].as_array().map(Vec::len), Some(0), "{doc:#}");

    assert_eq!(doc["shm"].as_array().map(Vec::len), Some(0), "{doc:#}");

    // The shared-memory rows alone, and all of them.
    let out = run(IPCKIT.command().args(["bench", "--quick", "--json", "--trials", "1", "--filter", "shm"]), None);
    out.expect_code(0, "ipckit bench --filter shm");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    assert_eq!(doc["schema"].as_u64(), Some(SCHEMA), "schema in {doc:#}");
    assert_eq!(doc["results"].as_array().map(Vec::len), Some(0), "{doc:#}");
    assert!(doc["copy_vs_map"].is_null(), "{doc:#}");
    assert_eq!(doc["synchronization"].as_array().map(Vec::len), Some(0), "{doc:#}");
    check_shm(&doc, false);

    let out = run(IPCKIT.command().args(["bench", "--filter", "no-such-row"]), None);
    out.expect_code(2, "ipckit bench --filter no-such-row");
}
