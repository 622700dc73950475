//! `ipckit bench --report DIR`: a tiny run writes `DIR/index.html` (DIR
//! created if missing) with one inline `<svg` per plot, the tables, and
//! the same JSON document `--json` prints; nothing in it reaches out (no
//! URL, script, link or font). A report directory that cannot be written
//! is exit 1 before anything is measured.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::{assert_stderr, run};
use ipckit_testkit::scratch::Scratch;
use serde_json::Value;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// The plots of a page: latency, throughput, copy or map.
const PLOTS: usize = 3;

/// The text of the `<pre>` that holds the JSON document, unescaped.
fn embedded_json(page: &str) -> Value {
    let start = page.find("<pre>").expect("a <pre> with the JSON document") + "<pre>".len();
    let end = start + page[start..].find("</pre>").expect("</pre>");
    let text = page[start..end].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&");
    serde_json::from_str(&text).expect("the embedded document is JSON")
}

#[test]
fn report_writes_a_self_contained_page() {
    let scratch = Scratch::new("bench-report");
    // A directory that does not exist yet, two levels down.
    let dir = scratch.path("new/report");
    let out = run(
        IPCKIT
            .command()
            .args([
                "bench",
                "--quick",
                "--json",
                "--trials",
                "1",
                "--filter",
                "pipe",
                "--filter",
                "sysv-mq",
                "--filter",
                "copy-vs-map",
                "--filter",
                "shm-stream",
            ])
            .arg("--report")
            .arg(&dir),
        None,
    );
    out.expect_code(0, "ipckit bench --report");
    assert_stderr(&out, "report written to", "ipckit bench --report");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("standard output is one JSON document");
    assert!(doc["machine"]["cpus"].as_u64().is_some_and(|c| c > 0), "machine in {doc:#}");
    assert!(doc["machine"]["kernel"].as_str().is_some_and(|k| k.starts_with("Linux ")), "machine in {doc:#}");

    let page = std::fs::read_to_string(dir.join("index.html")).expect("DIR/index.html");
    assert_eq!(page.matches("<svg").count(), PLOTS, "one <svg per plot");
    assert_eq!(page.matches("</svg>").count(), PLOTS, "each plot closed");
    for needle in ["http:", "https:", "<script", "<link", "@import", "url(", "src="] {
        assert!(!page.contains(needle), "the page contains {needle:?}");
    }
    // The tables, and the honesty block.
    for needle in [
        "Messages: round trip",
        "Copy or map: round trip p50",
        "Shared memory: streaming one way",
        "Request-response",
        "<table>",
        "Machine",
        "Pinning",
        "Load average",
        "Method",
        "Not measured",
        "not in this run",
        "message size (log scale)",
    ] {
        assert!(page.contains(needle), "the page does not contain {needle:?}");
    }
    // (--filter sysv-mq keeps rpc-sysv-mq and rpc-typed-sysv-mq too.)
    assert_eq!(page.matches("<table>").count(), 4, "messages, copy or map, streaming, request-response");
    // sysv-mq at 64 KiB is over the kernel's default limit (8 KiB): its
    // reason is in the page, as in the document.
    for row in doc["results"].as_array().expect("results").iter().filter(|r| r["status"] != "ok") {
        let detail = row["detail"].as_str().expect("an n/a row's detail");
        assert!(page.contains(detail), "the page does not give the reason {detail:?}");
    }
    // The fields a newer bench adds (the answer, the catalogue, ...): shown
    // when the document has them; their tables have a class, so the count
    // of `<table>` above stays the tables every document has.
    if let Some(reading) = doc["answer"]["reading"].as_str() {
        assert!(page.contains("The answer"), "the page has no answer");
        let first = reading.split(['&', '<', '>', '"']).next().unwrap_or("");
        assert!(page.contains(first), "the page does not give the reading {reading:?}");
    }
    if doc["catalogue"].as_array().is_some_and(|c| !c.is_empty()) {
        assert!(page.contains("<h2>Catalogue</h2>") && page.contains("<th>p99.9</th>"), "the page has no catalogue");
    }
    for failed in doc["failed"].as_array().into_iter().flatten() {
        let row = failed["row"].as_str().expect("a failed row's name");
        assert!(page.contains(&format!("failed: {row}")), "the page does not say {row} failed");
    }
    // Made from the document --json printed, and nothing else.
    assert_eq!(embedded_json(&page), doc, "the page's JSON document is --json's");
    // Nothing but the page is left in DIR.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read DIR")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["index.html"]);
}

/// Runs a whole (not --quick) bench with `--report DIR`, which must fail
/// at once: exit 1, nothing on standard output, long before a measured
/// run would end.
#[track_caller]
fn refused(dir: &std::path::Path, what: &str) {
    let started = Instant::now();
    let out = run(IPCKIT.command().args(["bench", "--json", "--report"]).arg(dir), None);
    out.expect_code(1, what);
    assert_stderr(&out, "--report", what);
    assert!(out.stdout.is_empty(), "{what}: printed {:?}", String::from_utf8_lossy(&out.stdout));
    assert!(started.elapsed() < Duration::from_secs(5), "{what}: took {:?}: it measured", started.elapsed());
    let scratch = std::env::temp_dir().join(format!("ipckit-bench-{}", out.pid));
    assert!(!scratch.exists(), "{what}: the bench made {}", scratch.display());
}

#[test]
fn unwritable_report_dir_fails_before_measuring() {
    let scratch = Scratch::new("bench-report-refused");
    let file = scratch.path("a-file");
    std::fs::write(&file, "not a directory").expect("write a file");
    refused(&file, "--report FILE");
    refused(&file.join("sub"), "--report FILE/sub");
    assert_eq!(std::fs::read_to_string(&file).expect("the file"), "not a directory", "the file was left alone");
    // Without write permission (root may write anywhere: not checked then).
    if !rustix::process::geteuid().is_root() {
        let ro = scratch.path("read-only");
        std::fs::create_dir(&ro).expect("mkdir");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        refused(&ro, "--report READ-ONLY-DIR");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}
