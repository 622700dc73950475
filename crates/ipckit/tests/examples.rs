//! The examples (`crates/ipckit/examples/`), run as the programs they are:
//! each on several endpoints, its exit status and output checked, and
//! nothing of what it created left behind.
//!
//! A plain `cargo test` builds the examples next to the test binaries
//! (`target/<profile>/examples/`); a run of this test alone (`cargo test
//! --test examples`) does not, so [`example`] asks cargo to build the one
//! it needs first (a no-op when it is up to date).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ipckit::{Endpoint, ErrorKind};
use ipckit_testkit::child::Guarded;
use ipckit_testkit::scratch::Scratch;

/// The example `name`, built for this test binary's profile and target
/// directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<this test>
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test binary is in <profile>/deps");
    let target_dir = profile_dir.parent().expect("the profile directory is in the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("{}: no profile directory", profile_dir.display()),
    };
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "ipckit", "--example", name, "--profile", profile, "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --example {name}: {status}");
    let path = profile_dir.join("examples").join(name);
    assert!(path.is_file(), "{}: not built", path.display());
    path
}

/// Runs `program` with `args` to its end (30 s hang guard), its output
/// collected.
fn run(program: &Path, args: &[&str]) -> Output {
    let out = Guarded::spawn(
        Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()),
    )
    .output();
    eprintln!(
        "{} {args:?}: {}\n--- stdout\n{}--- stderr\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// What the example left of `text`'s object: a queue (`mq:`, `sysv-mq:`,
/// found by removing it, which also cleans up after a failure), a socket
/// file or FIFO, or anything in `/dev/shm` named with `tag`.
fn left_behind(text: &str, tag: &str) -> Vec<String> {
    let mut left = Vec::new();
    let e = ep(text);
    if text.starts_with("mq:") || text.starts_with("sysv-mq:") {
        match ipckit::remove(&e) {
            Ok(()) => left.push(format!("{text} (removed now)")),
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => left.push(format!("{text}: {err}")),
        }
    }
    if let Some(path) = e.path().filter(|p| p.exists()) {
        left.push(path.display().to_string());
    }
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        left.extend(dir.flatten().map(|f| f.file_name().to_string_lossy().into_owned()).filter(|n| n.contains(tag)));
    }
    left
}

/// The endpoints the examples run on, named for the test.
fn endpoints(s: &Scratch) -> Vec<String> {
    vec![
        format!("unix:{}", s.path("rr.sock").display()),
        format!("unix:@{}", s.name("rr")),
        format!("unix-seqpacket:@{}", s.name("rrseq")),
        "tcp:127.0.0.1:0".to_string(),
        format!("shm:{}", s.name("rrshm")),
        s.mq("rrq", ""),
        s.sysv_mq(3, ""),
    ]
}

#[test]
fn request_response_serves_every_client_on_every_transport() {
    let program = example("request_response");
    let s = Scratch::new("ex-rr");
    for text in endpoints(&s) {
        let out = run(&program, &[&text, "--clients", "4", "--calls", "25"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}: {} (output above)", out.status);
        for i in 0..4 {
            assert!(stdout.contains(&format!("client {i}: 25 calls, every reply right")), "{text}: client {i}");
        }
        assert!(stdout.contains("server: 100 requests from 4 clients, every reply right"), "{text}: {stdout}");
        let left = left_behind(&text, &s.name(""));
        assert!(left.is_empty(), "{text}: left behind: {left:?}");
    }
}

#[test]
fn request_response_fails_on_a_wrong_reply_and_still_cleans_up() {
    let program = example("request_response");
    let s = Scratch::new("ex-rr-bad");
    for text in [s.mq("rrq", ""), s.sysv_mq(4, ""), format!("shm:{}", s.name("rrshm"))] {
        let out = run(&program, &[&text, "--clients", "2", "--calls", "8", "--corrupt"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: a wrong reply must fail the example");
        assert!(stderr.contains("want Ok(\""), "{text}: the client names the wrong reply: {stderr}");
        assert!(stderr.contains("clients failed: client 0"), "{text}: the server reports it: {stderr}");
        let left = left_behind(&text, &s.name(""));
        assert!(left.is_empty(), "{text}: left behind: {left:?}");
    }
}

#[test]
fn request_response_default_endpoint_is_unique_per_pid() {
    let mut child = Guarded::spawn(
        Command::new(example("request_response")).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()),
    );
    let pid = child.child().id();
    let out = child.output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}", out.status);
    assert!(stdout.contains(&format!("server: unix:@ipckit-example-rr-{pid}, 3 clients x 20 calls")), "{stdout}");
    assert!(stdout.contains("server: 60 requests from 3 clients, every reply right"), "{stdout}");
}

/// The endpoints the typed pipeline runs on: every kind of endpoint a
/// `typed::Sender`/`Receiver` pair takes.
fn pipeline_endpoints(s: &Scratch) -> Vec<String> {
    vec![
        format!("unix:{}", s.path("tp.sock").display()),
        format!("unix-seqpacket:@{}", s.name("tpseq")),
        format!("unix-dgram:@{}", s.name("tpdgram")),
        "tcp:127.0.0.1:0".to_string(),
        format!("fifo:{}", s.path("tp.fifo").display()),
        format!("shm:{}", s.name("tpshm")),
        s.mq("tpq", ""),
        s.sysv_mq(5, ""),
    ]
}

#[test]
fn typed_pipeline_carries_every_frame_on_every_transport() {
    let program = example("typed_pipeline");
    let s = Scratch::new("ex-tp");
    for text in pipeline_endpoints(&s) {
        let out = run(&program, &[&text, "--count", "300"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}: {} (output above)", out.status);
        assert!(stdout.contains("producer: 300 frames sent"), "{text}: {stdout}");
        assert!(stdout.contains("consumer: 300 frames (") && stdout.contains("), every one right"), "{text}: {stdout}");
        let left = left_behind(&text, &s.name(""));
        assert!(left.is_empty(), "{text}: left behind: {left:?}");
    }
}

#[test]
fn typed_pipeline_fails_on_a_wrong_frame_and_still_cleans_up() {
    let program = example("typed_pipeline");
    let s = Scratch::new("ex-tp-bad");
    for text in [s.mq("tpq", ""), format!("fifo:{}", s.path("tp.fifo").display()), format!("shm:{}", s.name("tpshm"))] {
        let out = run(&program, &[&text, "--count", "40", "--corrupt"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: a wrong frame must fail the example");
        assert!(
            stderr.contains("frame 20: got Frame { seq: 20"),
            "{text}: the consumer names the wrong frame: {stderr}"
        );
        let left = left_behind(&text, &s.name(""));
        assert!(left.is_empty(), "{text}: left behind: {left:?}");
    }
}

#[test]
fn typed_pipeline_default_endpoint_is_unique_per_pid() {
    let mut child = Guarded::spawn(
        Command::new(example("typed_pipeline")).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()),
    );
    let pid = child.child().id();
    let out = child.output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}", out.status);
    assert!(stdout.contains(&format!("consumer: shm:ipckit-example-tp-{pid}, 200 frames")), "{stdout}");
    assert!(stdout.contains("consumer: 200 frames (") && stdout.contains("every one right"), "{stdout}");
}

/// `pubsub`: a publisher and three subscriber processes, one slow, on
/// every transport publish-subscribe runs on, under both policies: each
/// subscriber got every message in order (block) or was told exactly what
/// it lost (drop-oldest); nothing is left behind.
#[test]
fn pubsub_reaches_every_subscriber_under_both_policies() {
    let program = example("pubsub");
    let s = Scratch::new("ex-ps");
    for base in [
        format!("shm:{}", s.name("psshm")),
        format!("unix:{}", s.path("ps.sock").display()),
        "tcp:127.0.0.1:0".to_string(),
    ] {
        for policy in ["block", "drop-oldest"] {
            let text = format!("{base}?overflow={policy}");
            let out = run(&program, &[&text]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}: {} (output above)", out.status);
            assert!(stdout.contains("published 20000 messages"), "{text}: {stdout}");
            for role in ["fast-1", "fast-2", "slow"] {
                let line = stdout
                    .lines()
                    .find(|l| l.starts_with(&format!("{role}: received")))
                    .unwrap_or_else(|| panic!("{text}: no summary from {role}"));
                if policy == "block" {
                    assert_eq!(line, format!("{role}: received 20000, lost 0"), "{text}");
                }
            }
            let left = left_behind(&base, &s.name(""));
            assert!(left.is_empty(), "{text}: left behind: {left:?}");
        }
    }
}
