//! `ipckit bench --quick --json`, end to end: it exits 0 with a result for
//! every mechanism at every size, every row of the copy-vs-map table at
//! every size (and its crossover and threshold), every synchronization row,
//! every shared-memory row, every request-response, publish-subscribe and
//! async row (each beside its plain round trip, with a finite positive
//! ratio), says which layout the document has
//! (`schema`), and leaves nothing behind. `--save-threshold` writes the
//! threshold it prints where `?inline=auto` finds it. Nothing about time
//! is asserted but that latencies and rates are positive.

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::run_within;
use ipckit_testkit::scratch::Scratch;
use serde_json::Value;

/// How long a benchmark run of these tests may take: a debug build's
/// `--quick` run of every row takes tens of seconds on a loaded 2-CPU
/// machine; this bounds a hang, it says nothing about speed.
const BENCH_GUARD: std::time::Duration = std::time::Duration::from_secs(300);

fn bench_run(cmd: &mut std::process::Command, input: Option<&[u8]>) -> ipckit_testkit::program::Out {
    run_within(cmd, input, BENCH_GUARD)
}

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

const SOCKETS: [&str; 6] = ["pipe", "fifo", "unix-stream", "unix-seqpacket", "unix-dgram", "tcp"];
const QUEUES: [&str; 2] = ["mq", "sysv-mq"];
const SIZES: [u64; 2] = [64, 65536];
/// The copy-vs-map table's sizes by default (`--full` has nine).
const COPY_MAP_SIZES: [u64; 5] = [64, 4 << 10, 256 << 10, 4 << 20, 16 << 20];
/// The copy-vs-map rows: (mechanism, variant).
const COPY_MAP_ROWS: [(&str, Option<&str>); 7] = [
    ("copy-kernel", None),
    ("copy-shm", None),
    ("map-each", None),
    ("map-pool", Some("untouched")),
    ("map-pool", Some("writer-fills")),
    ("map-pool", Some("fill-and-read")),
    ("hybrid", None),
];
const SYNC: [&str; 3] = ["mutex-uncontended", "mutex-handoff", "event-pingpong"];
/// The shared-memory rows: (mechanism, size).
const SHM: [(&str, u64); 6] =
    [("shm-busy", 64), ("shm-busy", 4096), ("shm-busy", 65536), ("shm-spin", 64), ("shm-park", 64), ("shm-stream", 64)];
/// The request-response rows' transports, and the plain row each is
/// measured beside.
const RPC: [(&str, &str); 6] = [
    ("unix-stream", "unix-stream"),
    ("unix-seqpacket", "unix-seqpacket"),
    ("tcp", "tcp"),
    ("shm", "shm-spin"),
    ("mq", "mq"),
    ("sysv-mq", "sysv-mq"),
];
/// The request-response APIs: (row prefix, target ratio).
const RPC_APIS: [(&str, f64); 2] = [("rpc", 1.1), ("rpc-typed", 1.2)];
/// The publish-subscribe rows: (mechanism, subscribers, how each message
/// comes back), all beside `shm-spin`.
const PUBSUB: [(&str, u64, &str); 3] =
    [("pubsub-shm-1sub", 1, "shm-channel"), ("pubsub-shm-4sub", 4, "shm-channel"), ("pubsub-shm-2topics", 1, "topic")];
/// The async rows: (mechanism, transport, plain row), each with the
/// target ratio [`ASYNC_TARGET`].
const ASYNC: [(&str, &str, &str); 4] = [
    ("async-shm", "shm", "shm-park"),
    ("async-shm-spin", "shm", "shm-spin"),
    ("async-unix-stream", "unix-stream", "unix-stream"),
    ("async-tcp", "tcp", "tcp"),
];
const ASYNC_TARGET: f64 = 1.5;
/// The layout of the JSON document.
const SCHEMA: u64 = 2;

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

/// The copy-vs-map table: each of `rows` at every size (copy-shm may be
/// "n/a" over its largest ring), `variant` on map-pool rows only; per
/// size, the fastest row and hybrid's ratio; the crossover, one of the
/// sizes or none, and the threshold, when both of its rows are there; and
/// the threshold `hybrid` ran with.
fn check_copy_map(doc: &Value, rows: &[(&str, Option<&str>)]) {
    let table = &doc["copy_vs_map"];
    let results = table["results"].as_array().unwrap_or_else(|| panic!("no copy_vs_map results in {doc:#}"));
    for size in COPY_MAP_SIZES {
        for &(mechanism, variant) in rows {
            let what = format!("{mechanism} {} {size} B", variant.unwrap_or(""));
            let row = results
                .iter()
                .find(|r| r["mechanism"] == mechanism && r["size"] == size && r["variant"].as_str() == variant)
                .unwrap_or_else(|| panic!("{what}: no row in {table:#}"));
            assert!(row["how"].as_str().is_some_and(|h| !h.is_empty()), "{what}: how in {row}");
            match row["status"].as_str() {
                Some("ok") => {
                    let trials = row["trials"].as_u64().unwrap_or_else(|| panic!("{what}: no trials in {row}"));
                    assert!(trials > 0 && row["round_trips"].as_u64() > Some(0), "{what}: {row}");
                    check_summary(&row["round_trip"], trials, &what);
                }
                Some("n/a (ring)") => assert_eq!(mechanism, "copy-shm", "{what}: {row}"),
                other => panic!("{what}: status {other:?} in {row}"),
            }
        }
    }
    let iceoryx2 = results.iter().filter(|r| r["mechanism"] == "iceoryx2").count();
    let expected = if cfg!(feature = "compare-iceoryx2") && rows.contains(&("map-pool", Some("writer-fills"))) {
        let row = results
            .iter()
            .find(|r| r["mechanism"] == "iceoryx2" && r["size"] == 1 << 20 && r["variant"] == "writer-fills")
            .unwrap_or_else(|| panic!("no iceoryx2 writer-fills 1 MiB row in {table:#}"));
        check_summary(&row["round_trip"], row["trials"].as_u64().unwrap_or(0), "iceoryx2 writer-fills 1 MiB");
        1
    } else {
        0
    };
    assert_eq!(iceoryx2, expected, "iceoryx2 rows: {table:#}");
    assert_eq!(results.len(), COPY_MAP_SIZES.len() * rows.len() + expected, "one entry per row and size: {table:#}");
    assert!(
        results
            .iter()
            .all(|r| r["variant"].is_null() == (r["mechanism"] != "map-pool" && r["mechanism"] != "iceoryx2")),
        "variant on map-pool (and iceoryx2) rows only: {table:#}"
    );

    let sizes = table["sizes"].as_array().unwrap_or_else(|| panic!("no copy_vs_map sizes in {table:#}"));
    assert_eq!(sizes.iter().filter_map(|s| s["size"].as_u64()).collect::<Vec<u64>>(), COPY_MAP_SIZES, "{table:#}");
    let both = rows.contains(&("copy-shm", None)) && rows.contains(&("map-pool", Some("fill-and-read")));
    for s in sizes {
        let fastest = &s["fastest"];
        assert!(
            rows.iter().any(|&(m, v)| fastest["mechanism"] == m && fastest["variant"].as_str() == v),
            "fastest {fastest} is none of the rows: {s}"
        );
        assert!(!matches!(fastest["variant"].as_str(), Some("untouched" | "writer-fills")), "fastest reads: {s}");
        if both && rows.contains(&("hybrid", None)) {
            assert!(s["hybrid_over_best"].as_f64() > Some(0.0), "hybrid_over_best in {s}");
        }
    }
    let crossover = &table["crossover_size"];
    assert!(
        crossover.is_null() || crossover.as_u64().is_some_and(|s| COPY_MAP_SIZES.contains(&s)),
        "crossover_size {crossover} is none of the sizes"
    );
    let threshold = &table["threshold"];
    if both {
        let inline_max = threshold["inline_max"].as_u64().unwrap_or_else(|| panic!("no threshold in {table:#}"));
        match crossover.as_u64() {
            Some(c) => assert_eq!(inline_max, c - 1, "every message below the crossover is copied: {table:#}"),
            None => assert_eq!(
                inline_max,
                COPY_MAP_SIZES[COPY_MAP_SIZES.len() - 1],
                "no crossover: copy everything: {table:#}"
            ),
        }
    } else {
        assert!(threshold.is_null() && crossover.is_null(), "a threshold without its rows: {table:#}");
    }
    let hybrid = &table["hybrid_threshold"];
    assert!(hybrid["inline_max"].as_u64().is_some(), "hybrid_threshold in {table:#}");
    assert!(["environment", "file", "default"].iter().any(|s| hybrid["source"] == *s), "{hybrid}");
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

/// The request-response rows: every API on every transport, each beside
/// the plain round trip measured in the same trials, with a finite positive
/// ratio and its target.
fn check_rpc(doc: &Value) {
    let rows = doc["rpc"].as_array().unwrap_or_else(|| panic!("no rpc rows in {doc:#}"));
    for (transport, plain) in RPC {
        for (api, target) in RPC_APIS {
            let name = format!("{api}-{transport}");
            let row =
                rows.iter().find(|r| r["mechanism"] == name).unwrap_or_else(|| panic!("{name}: no row in {doc:#}"));
            check_measured(row, ["call", "plain"], "ratio_p50", &name);
            let ratio = row["ratio_p50"].as_f64().unwrap_or(f64::NAN);
            assert!(ratio.is_finite() && ratio > 0.0, "{name}: ratio_p50 {ratio} in {row}");
            assert_eq!(row["transport"], transport, "{name}: {row}");
            assert_eq!(row["api"], api, "{name}: {row}");
            assert_eq!(row["plain_row"], plain, "{name}: {row}");
            assert_eq!(row["target_ratio"].as_f64(), Some(target), "{name}: {row}");
            assert_eq!((row["size"].as_u64(), row["reply_size"].as_u64()), (Some(64), Some(64)), "{name}: {row}");
            assert!(row["round_trips"].as_u64() > Some(0), "{name}: round_trips in {row}");
        }
    }
    assert_eq!(rows.len(), RPC.len() * RPC_APIS.len(), "one row per API and transport: {doc:#}");
}

/// A row measured beside a plain round trip (`key`: its own summary): both
/// summaries, a finite positive ratio, 64 bytes, the plain row named.
#[track_caller]
fn check_beside(row: &Value, key: &str, plain: &str, what: &str) {
    check_measured(row, [key, "plain"], "ratio_p50", what);
    let ratio = row["ratio_p50"].as_f64().unwrap_or(f64::NAN);
    assert!(ratio.is_finite() && ratio > 0.0, "{what}: ratio_p50 {ratio} in {row}");
    assert_eq!(row["plain_row"], plain, "{what}: {row}");
    assert_eq!(row["size"].as_u64(), Some(64), "{what}: {row}");
    assert!(row["round_trips"].as_u64() > Some(0), "{what}: round_trips in {row}");
}

/// The publish-subscribe rows: every one, beside `shm-spin`, no target.
fn check_pubsub(doc: &Value) {
    let rows = doc["pubsub"].as_array().unwrap_or_else(|| panic!("no pubsub rows in {doc:#}"));
    for (name, subscribers, back) in PUBSUB {
        let row = rows.iter().find(|r| r["mechanism"] == name).unwrap_or_else(|| panic!("{name}: no row in {doc:#}"));
        check_beside(row, "pubsub", "shm-spin", name);
        assert_eq!(row["subscribers"].as_u64(), Some(subscribers), "{name}: {row}");
        assert_eq!(row["back"], back, "{name}: {row}");
        assert_eq!(row["transport"], "shm", "{name}: {row}");
        assert_eq!(row["endpoint_options"], "wait=block", "{name}: {row}");
        assert!(row["target_ratio"].is_null(), "{name}: {row}");
    }
    assert_eq!(rows.len(), PUBSUB.len(), "one record per pubsub row: {doc:#}");
}

/// The async rows: every one, beside its blocking round trip, with the
/// target; the spin row says its window.
fn check_async(doc: &Value) {
    let rows = doc["async"].as_array().unwrap_or_else(|| panic!("no async rows in {doc:#}"));
    for (name, transport, plain) in ASYNC {
        let row = rows.iter().find(|r| r["mechanism"] == name).unwrap_or_else(|| panic!("{name}: no row in {doc:#}"));
        check_beside(row, "async", plain, name);
        assert_eq!(row["transport"], transport, "{name}: {row}");
        assert_eq!(row["target_ratio"].as_f64(), Some(ASYNC_TARGET), "{name}: {row}");
        assert_eq!(row["spin_ns"].as_u64().is_some(), name == "async-shm-spin", "{name}: spin_ns in {row}");
        assert_eq!(row["endpoint_options"].is_string(), transport == "shm", "{name}: endpoint_options in {row}");
    }
    assert_eq!(rows.len(), ASYNC.len(), "one record per async row: {doc:#}");
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
    let out = bench_run(IPCKIT.command().args(["bench", "--quick", "--json"]), None);
    out.expect_code(0, "ipckit bench --quick --json");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    assert_eq!(doc["schema"].as_u64(), Some(SCHEMA), "schema in {doc:#}");
    check_messages(&doc);
    check_copy_map(&doc, &COPY_MAP_ROWS);
    check_sync(&doc);
    check_shm(&doc, true);
    check_rpc(&doc);
    check_pubsub(&doc);
    check_async(&doc);

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
    // Nor shm: topics (theirs are @ipckit/topic/NAME).
    let left = mentions(sockets.lines().map(str::to_owned).collect(), &format!("@ipckit/topic/ipckit-bench-{pid}-"));
    assert!(left.is_empty(), "shm: topics left behind: {left:?}");
    // Nor the presence socket of a request queue's server.
    let left = mentions(sockets.lines().map(str::to_owned).collect(), &format!("@ipckit/rpc/mq/ipckit-bench-{pid}-"));
    assert!(left.is_empty(), "rpc servers left behind: {left:?}");
}

#[test]
fn filter_selects_tables() {
    let out =
        bench_run(IPCKIT.command().args(["bench", "--quick", "--json", "--trials", "1", "--filter", "sysv-mq"]), None);
    out.expect_code(0, "ipckit bench --filter sysv-mq");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    let rows = doc["results"].as_array().expect("results");
    assert!(!rows.is_empty() && rows.iter().all(|r| r["mechanism"] == "sysv-mq"), "{doc:#}");
    assert!(doc["copy_vs_map"].is_null(), "{doc:#}");
    assert_eq!(doc["synchronization"].as_array().map(Vec::len), Some(0), "{doc:#}");

    assert_eq!(doc["shm"].as_array().map(Vec::len), Some(0), "{doc:#}");
    assert_eq!(doc["pubsub"].as_array().map(Vec::len), Some(0), "{doc:#}");
    assert_eq!(doc["async"].as_array().map(Vec::len), Some(0), "{doc:#}");

    // The shared-memory rows alone, and all of them (copy-shm of the
    // copy-vs-map table too: its name has "shm" in it).
    let out =
        bench_run(IPCKIT.command().args(["bench", "--quick", "--json", "--trials", "1", "--filter", "shm"]), None);
    out.expect_code(0, "ipckit bench --filter shm");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    assert_eq!(doc["schema"].as_u64(), Some(SCHEMA), "schema in {doc:#}");
    assert_eq!(doc["results"].as_array().map(Vec::len), Some(0), "{doc:#}");
    check_copy_map(&doc, &[("copy-shm", None)]);
    assert_eq!(doc["synchronization"].as_array().map(Vec::len), Some(0), "{doc:#}");
    check_shm(&doc, false);

    // One row of the copy-vs-map table: no crossover, so no threshold,
    // and nothing to save.
    let out =
        bench_run(IPCKIT.command().args(["bench", "--quick", "--json", "--trials", "1", "--filter", "map-pool"]), None);
    out.expect_code(0, "ipckit bench --filter map-pool");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    assert_eq!(doc["results"].as_array().map(Vec::len), Some(0), "{doc:#}");
    assert_eq!(doc["shm"].as_array().map(Vec::len), Some(0), "{doc:#}");
    let pool: Vec<(&str, Option<&str>)> = COPY_MAP_ROWS.into_iter().filter(|(m, _)| *m == "map-pool").collect();
    check_copy_map(&doc, &pool);
    let out = bench_run(IPCKIT.command().args(["bench", "--quick", "--filter", "map-pool", "--save-threshold"]), None);
    out.expect_code(2, "ipckit bench --filter map-pool --save-threshold");

    // The request-response rows alone: "rpc" is in no other row's name.
    let out =
        bench_run(IPCKIT.command().args(["bench", "--quick", "--json", "--trials", "1", "--filter", "rpc"]), None);
    out.expect_code(0, "ipckit bench --filter rpc");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    assert_eq!(doc["results"].as_array().map(Vec::len), Some(0), "{doc:#}");
    assert!(doc["copy_vs_map"].is_null(), "{doc:#}");
    assert_eq!(doc["synchronization"].as_array().map(Vec::len), Some(0), "{doc:#}");
    assert_eq!(doc["shm"].as_array().map(Vec::len), Some(0), "{doc:#}");
    check_rpc(&doc);
    assert_eq!(doc["pubsub"].as_array().map(Vec::len), Some(0), "{doc:#}");
    assert_eq!(doc["async"].as_array().map(Vec::len), Some(0), "{doc:#}");
    // And one of them, in the terminal table with its ratio.
    let out = bench_run(IPCKIT.command().args(["bench", "--quick", "--trials", "1", "--filter", "rpc-sysv"]), None);
    out.expect_code(0, "ipckit bench --filter rpc-sysv");
    let text = out.text();
    let line = text.lines().find(|l| l.contains("rpc-sysv-mq")).unwrap_or_else(|| panic!("no rpc-sysv-mq in {text}"));
    assert!(!text.contains("rpc-mq") && !text.contains("rpc-tcp"), "other rpc rows: {text}");
    let ratio: Vec<f64> = line.split('┆').filter_map(|c| c.trim().parse().ok()).collect();
    assert!(ratio.len() == 1 && ratio[0] > 0.0, "one ratio in {line}");

    // The publish-subscribe rows and the async rows alone: "pubsub" and
    // "async" are in no other row's name.
    let out = bench_run(
        IPCKIT
            .command()
            .args(["bench", "--quick", "--json", "--trials", "1", "--filter", "pubsub", "--filter", "async"]),
        None,
    );
    out.expect_code(0, "ipckit bench --filter pubsub --filter async");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    for key in ["results", "synchronization", "shm", "rpc"] {
        assert_eq!(doc[key].as_array().map(Vec::len), Some(0), "{key}: {doc:#}");
    }
    assert!(doc["copy_vs_map"].is_null(), "{doc:#}");
    check_pubsub(&doc);
    check_async(&doc);
    // One of each, in the terminal tables with their ratios.
    let out = bench_run(
        IPCKIT.command().args([
            "bench",
            "--quick",
            "--trials",
            "1",
            "--filter",
            "pubsub-shm-4",
            "--filter",
            "async-tcp",
        ]),
        None,
    );
    out.expect_code(0, "ipckit bench --filter pubsub-shm-4 --filter async-tcp");
    let text = out.text();
    for row in ["pubsub-shm-4sub", "async-tcp"] {
        let line = text.lines().find(|l| l.contains(row)).unwrap_or_else(|| panic!("no {row} in {text}"));
        let numbers: Vec<f64> = line.split(['┆', '│']).filter_map(|c| c.trim().parse().ok()).collect();
        assert!(numbers.len() == 1 && numbers[0] > 0.0, "one ratio in {line}");
    }
    let rows: Vec<&str> = text.lines().filter(|l| l.contains('┆')).collect();
    assert!(!rows.iter().any(|l| l.contains("pubsub-shm-1sub") || l.contains("async-shm")), "other rows: {text}");

    let out = bench_run(IPCKIT.command().args(["bench", "--filter", "no-such-row"]), None);
    out.expect_code(2, "ipckit bench --filter no-such-row");
}

/// `--save-threshold` saves the threshold it prints, in
/// `$XDG_CONFIG_HOME/ipckit/threshold.json`, with the machine it was
/// measured on; the next run's `hybrid` row (`?inline=auto`) runs with it.
#[test]
fn save_threshold_writes_what_it_prints() {
    let s = Scratch::new("bench-threshold");
    let config = s.path("config");
    let bench = |args: &[&str]| {
        let mut cmd = IPCKIT.command();
        cmd.env("XDG_CONFIG_HOME", &config).env_remove("IPCKIT_INLINE_MAX");
        bench_run(cmd.args(["bench", "--quick", "--trials", "1"]).args(args), None)
    };
    let out = bench(&["--filter", "copy-shm", "--filter", "map-pool", "--save-threshold"]);
    out.expect_code(0, "ipckit bench --save-threshold");
    let text = out.text();
    let line = text.lines().find(|l| l.starts_with("threshold: ")).unwrap_or_else(|| panic!("no threshold in {text}"));
    let (printed, path) = line
        .strip_prefix("threshold: ")
        .and_then(|rest| rest.split_once(" bytes, saved to "))
        .unwrap_or_else(|| panic!("not 'threshold: N bytes, saved to PATH': {line}"));
    let printed: u64 = printed.parse().unwrap_or_else(|_| panic!("not a number of bytes: {line}"));
    let file = config.join("ipckit").join("threshold.json");
    assert_eq!(std::path::Path::new(path), file, "{line}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&file).expect("the threshold file")).expect("JSON");
    assert_eq!(saved["inline_max"].as_u64(), Some(printed), "{saved}");
    assert!(saved["machine"].as_str().is_some_and(|m| m.contains("CPUs")), "machine in {saved}");

    let out = bench(&["--json", "--filter", "hybrid"]);
    out.expect_code(0, "ipckit bench --filter hybrid");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    let hybrid = &doc["copy_vs_map"]["hybrid_threshold"];
    assert_eq!(hybrid["source"], "file", "{hybrid}");
    assert_eq!(hybrid["path"].as_str(), Some(file.to_str().unwrap()), "{hybrid}");
    assert_eq!(hybrid["inline_max"].as_u64(), Some(printed), "{hybrid}");
}
