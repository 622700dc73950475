//! `ipckit bench`'s catalogue, answer and honesty fields, end to end: a
//! tiny run (`--iters 3 --trials 1`) of every row completes, and its
//! document goes through the documented schema (typed records below, no
//! field unknown to them) and back unchanged; every record has every
//! percentile in order, the message rows a one-way stream; the answer
//! names a fastest mechanism per size. A queue this machine cannot create
//! makes its rows "n/a" and the run goes on, exit 0. `--full` says how
//! long it takes and measures every size. Nothing about speed is
//! asserted.

use std::process::Command;

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::{Out, run_within};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

const EXE: &str = env!("CARGO_BIN_EXE_ipckit");
const IPCKIT: Ipckit = Ipckit::new(EXE);

/// Bounds a hang of a debug build's run; says nothing about speed.
const GUARD: std::time::Duration = std::time::Duration::from_secs(300);

fn bench(cmd: &mut Command) -> Out {
    run_within(cmd, None, GUARD)
}

/// The percentiles of a record or a trial (nanoseconds).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Percentiles {
    p50_ns: Option<Number>,
    p90_ns: Option<Number>,
    p99_ns: Option<Number>,
    p999_ns: Option<Number>,
    max_ns: Option<Number>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Spread {
    min_p50_ns: Number,
    max_p50_ns: Number,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Stream {
    msgs_per_s: Number,
    gib_per_s: Number,
    trials_msgs_per_s: Vec<Number>,
    batch: Option<u64>,
}

/// One record of `catalogue`, as the README documents it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Record {
    table: String,
    name: String,
    variant: String,
    size: u64,
    status: String,
    detail: Option<String>,
    #[serde(flatten)]
    percentiles: Percentiles,
    spread: Option<Spread>,
    trials: Vec<Percentiles>,
    stream: Option<Stream>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Pick {
    size: u64,
    basis: String,
    fastest: String,
    fastest_p50_ns: Number,
    next: Option<String>,
    next_p50_ns: Option<Number>,
    lead: Option<Number>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    per_size: Vec<Pick>,
    crossover: Option<u64>,
    threshold: Option<u64>,
    reading: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Method {
    histogram: String,
    trials: String,
    warmup: String,
    summary: String,
    stream: String,
    budget_s: Option<u64>,
    rounds: u64,
    max_trials: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Load {
    start: Option<Number>,
    end: Option<Number>,
    max: Option<Number>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Machine {
    cpu_model: String,
    cpus: u64,
    kernel: String,
    pinning: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Unavailable {
    rows: String,
    why: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Failed {
    row: String,
    why: String,
}

/// The document's fields this file types; the rest (the tables, each
/// checked by tests/bench.rs) pass through as they are.
#[derive(Debug, Deserialize, Serialize)]
struct Document {
    schema: u64,
    catalogue: Vec<Record>,
    answer: Answer,
    method: Method,
    load_average: Load,
    machine: Machine,
    unavailable: Vec<Unavailable>,
    failed: Vec<Failed>,
    rounds: u64,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

/// The document of `out`, through the schema and back: it must come out
/// as it went in.
#[track_caller]
fn document(out: &Out) -> Document {
    let raw: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    let doc: Document = serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("not of the schema: {e}"));
    let back = serde_json::to_value(&doc).expect("serialize");
    assert!(back == raw, "the document changed through its schema: {}", out.text());
    assert_eq!(doc.schema, 2);
    doc
}

/// A JSON number as f64.
fn f(n: &Number) -> f64 {
    n.as_f64().expect("a finite number")
}

#[track_caller]
fn check_record(r: &Record) {
    let what = format!("{} {} {} {} B", r.table, r.name, r.variant, r.size);
    match r.status.as_str() {
        "ok" => {
            let p = &r.percentiles;
            match &p.p50_ns {
                Some(p50) => {
                    let p50 = f(p50);
                    let all = [&p.p50_ns, &p.p90_ns, &p.p99_ns, &p.p999_ns, &p.max_ns]
                        .map(|v| v.as_ref().map(f).unwrap_or_else(|| panic!("{what}: a percentile missing")));
                    assert!(
                        p50 > 0.0 && all.windows(2).all(|w| w[0] <= w[1]),
                        "{what}: percentiles out of order: {p:?}"
                    );
                    assert!(!r.trials.is_empty(), "{what}: no trials");
                    let spread = r.spread.as_ref().unwrap_or_else(|| panic!("{what}: no spread"));
                    assert!(f(&spread.min_p50_ns) <= f(&spread.max_p50_ns), "{what}: {spread:?}");
                }
                // A stream-only row (shm-stream): its figure is the stream.
                None => assert!(r.stream.is_some(), "{what}: neither a latency nor a stream"),
            }
            if let Some(s) = &r.stream {
                assert!(f(&s.msgs_per_s) > 0.0 && f(&s.gib_per_s) > 0.0, "{what}: stream {s:?}");
                assert!(!s.trials_msgs_per_s.is_empty(), "{what}: stream without trials");
            }
            assert!(r.detail.is_none(), "{what}: detail on a measured row");
        }
        "n/a" => assert!(r.detail.as_ref().is_some_and(|d| !d.is_empty()), "{what}: n/a without why"),
        other => panic!("{what}: status {other} ({:?})", r.detail),
    }
}

#[test]
fn tiny_run_of_every_row_goes_through_the_schema() {
    let out = bench(IPCKIT.command().args(["bench", "--iters", "3", "--trials", "1", "--json"]));
    out.expect_code(0, "ipckit bench --iters 3 --trials 1 --json");
    // Not a terminal: no progress bar.
    assert!(!out.stderr.contains("trials, "), "a progress bar on a pipe: {}", out.stderr);
    let doc = document(&out);
    assert!(doc.failed.is_empty(), "failed rows: {:?}", doc.failed);
    assert!(doc.unavailable.is_empty(), "unavailable on this machine: {:?}", doc.unavailable);
    doc.catalogue.iter().for_each(check_record);
    let has = |table: &str, name: &str| doc.catalogue.iter().any(|r| r.table == table && r.name == name);
    for name in ["pipe", "fifo", "unix-stream", "unix-seqpacket", "unix-dgram", "tcp", "mq", "sysv-mq"] {
        assert!(has("messages", name), "no {name} in the catalogue");
        for variant in ["ipckit", "raw"] {
            let r = doc
                .catalogue
                .iter()
                .find(|r| r.table == "messages" && r.name == name && r.variant == variant && r.size == 64)
                .unwrap_or_else(|| panic!("no {name} {variant} 64 B"));
            assert!(r.stream.is_some(), "{name} {variant} 64 B: no stream");
        }
    }
    for name in ["shm-busy", "shm-spin", "shm-park", "shm-stream"] {
        assert!(has("shm", name), "no {name}");
    }
    for name in ["copy-kernel", "copy-shm", "map-each", "map-pool", "hybrid"] {
        assert!(has("copy_vs_map", name), "no {name}");
    }
    for name in ["mutex-uncontended", "mutex-handoff", "event-pingpong"] {
        assert!(has("sync", name), "no {name}");
    }
    for name in ["rpc-unix-stream", "rpc-typed-shm", "rpc-sysv-mq"] {
        assert!(has("rpc", name), "no {name}");
    }
    assert!(has("pubsub", "pubsub-shm-1sub") && has("async", "async-tcp"), "no pubsub or async rows");
    // The answer: a fastest and a next per size, the lead at least 1.
    assert!(!doc.answer.per_size.is_empty(), "no answer");
    for p in &doc.answer.per_size {
        assert!(f(&p.fastest_p50_ns) > 0.0 && p.lead.as_ref().is_some_and(|l| f(l) >= 1.0), "{p:?}");
    }
    let reading = doc.answer.reading.as_deref().unwrap_or_default();
    assert!(reading.starts_with("On this machine"), "the reading: {reading:?}");
    assert!(doc.rounds == 1 && doc.method.rounds == 1 && doc.method.budget_s.is_none(), "{:?}", doc.method);
    assert!(doc.machine.cpus > 0 && !doc.machine.pinning.is_empty(), "{:?}", doc.machine);
}

/// The rows of the catalogue named `name` in the messages table.
fn message_rows<'d>(doc: &'d Document, name: &str) -> Vec<&'d Record> {
    doc.catalogue.iter().filter(|r| r.table == "messages" && r.name == name).collect()
}

#[test]
fn a_queue_this_machine_cannot_create_is_na_and_the_run_goes_on() {
    // RLIMIT_MSGQUEUE 0: no POSIX queue can be created, whoever asks.
    let mut cmd = Command::new("prlimit");
    cmd.args(["--msgqueue=0:0", "--", EXE, "bench", "--iters", "3", "--trials", "1", "--json", "--filter", "mq"]);
    let out = bench(&mut cmd);
    out.expect_code(0, "ipckit bench --filter mq under RLIMIT_MSGQUEUE 0");
    let doc = document(&out);
    let gone = doc.unavailable.iter().find(|u| u.rows.split(", ").any(|r| r == "mq")).expect("mq unavailable");
    assert!(gone.why.contains("mq_open"), "why: {gone:?}");
    assert!(gone.rows.contains("rpc-mq") && gone.rows.contains("rpc-typed-mq"), "{gone:?}");
    assert!(message_rows(&doc, "mq").is_empty(), "mq measured anyway");
    assert!(message_rows(&doc, "sysv-mq").iter().any(|r| r.status == "ok"), "the other queue did not run");
    assert!(!doc.catalogue.iter().any(|r| r.name == "rpc-mq"), "rpc-mq measured anyway");
    // And in the terminal.
    let mut cmd = Command::new("prlimit");
    cmd.args(["--msgqueue=0:0", "--", EXE, "bench", "--iters", "3", "--trials", "1", "--filter", "mq"]);
    let out = bench(&mut cmd);
    out.expect_code(0, "ipckit bench --filter mq under RLIMIT_MSGQUEUE 0, as text");
    let text = out.text();
    let block = text.split("Not measured (n/a on this machine):").nth(1).unwrap_or_else(|| panic!("{text}"));
    assert!(block.trim_start().starts_with("mq, rpc-mq"), "{block}");
}

#[test]
fn a_system_v_queue_this_machine_cannot_create_is_na() {
    if !rustix::process::geteuid().is_root() {
        // Setting msgmni in an IPC namespace of one's own needs root; CI
        // runs as root.
        eprintln!("skipped: not root");
        return;
    }
    // A new IPC namespace with msgmni 0: msgget fails with ENOSPC.
    let mut cmd = Command::new("unshare");
    cmd.args(["--ipc", "--", "sh", "-c", "echo 0 > /proc/sys/kernel/msgmni && exec \"$0\" \"$@\""]);
    cmd.args([EXE, "bench", "--iters", "3", "--trials", "1", "--json", "--filter", "sysv-mq"]);
    let out = bench(&mut cmd);
    out.expect_code(0, "ipckit bench --filter sysv-mq with msgmni 0");
    let doc = document(&out);
    let gone = doc.unavailable.iter().find(|u| u.rows.starts_with("sysv-mq")).expect("sysv-mq unavailable");
    assert!(gone.why.contains("msgget"), "why: {gone:?}");
    assert!(message_rows(&doc, "sysv-mq").is_empty(), "sysv-mq measured anyway");
}

#[test]
fn full_says_how_long_and_measures_every_size() {
    let out = bench(IPCKIT.command().args([
        "bench", "--full", "--iters", "2", "--trials", "1", "--json", "--filter", "pipe", "--filter", "copy-shm",
    ]));
    out.expect_code(0, "ipckit bench --full");
    assert!(out.stderr.contains("ipckit bench --full: every size"), "{}", out.stderr);
    let doc = document(&out);
    let mut sizes: Vec<u64> =
        message_rows(&doc, "pipe").iter().filter(|r| r.variant == "ipckit").map(|r| r.size).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [64, 1 << 10, 4 << 10, 16 << 10, 64 << 10]);
    let copy: Vec<u64> = doc.catalogue.iter().filter(|r| r.name == "copy-shm").map(|r| r.size).collect();
    assert_eq!(copy.len(), 9, "copy-shm at {copy:?}");
    let out = bench(IPCKIT.command().args(["bench", "--full", "--quick"]));
    out.expect_code(2, "ipckit bench --full --quick");
}
