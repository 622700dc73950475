//! `ipckit send`/`recv`/`rm` on POSIX (`mq:/NAME`) and System V
//! (`sysv-mq:KEY`) message queues, end to end through the binary: the
//! bad-input table with its exit codes (0 ok, 1 error, 2 usage, 3 timed
//! out) and messages, priorities and the type rules, truncation, removal.
//!
//! Queues persist, so a sender can run to completion before the receiver
//! starts: no readiness wait is needed. Every process has the 30 s hang
//! guard; every queue is a `Scratch` queue (or a [`NumericKey`]) removed on
//! drop, also when a test fails.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use ipckit_testkit::cli::{Ipckit, json_payload};
use ipckit_testkit::data::Rng;
use ipckit_testkit::procfs::{sysv_msg_syscalls, wait_until_blocked};
use ipckit_testkit::program::{Bg, assert_stderr, run};
use ipckit_testkit::scratch::{NumericKey, Scratch};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// Creates the queue (with the endpoint's attributes) and sends nothing:
/// `send --create` with an empty standard input.
#[track_caller]
fn create(ep: &str) {
    IPCKIT.run(&["send", ep, "--create"]).expect_code(0, &format!("create {ep}"));
}

/// Asserts that the queue holds no message:
/// `recv --timeout 100ms` times out (exit 3) and prints nothing.
#[track_caller]
fn assert_empty(ep: &str) {
    let out = IPCKIT.run(&["recv", ep, "--timeout", "100ms", "--json"]);
    out.expect_code(3, &format!("recv from {ep}, which should be empty"));
    assert!(out.stdout.is_empty(), "nothing received: {}", out.text());
}

/// `recv --count N --json` with extra arguments; exactly N JSON lines.
#[track_caller]
fn recv_json(ep: &str, n: usize, extra: &[&str]) -> Vec<serde_json::Value> {
    let count = n.to_string();
    let mut args = vec!["recv", ep, "--count", &count, "--json", "--timeout", "20s"];
    args.extend_from_slice(extra);
    let out = IPCKIT.run(&args);
    out.expect_code(0, &format!("recv {args:?}"));
    let lines = out.json_lines();
    assert_eq!(lines.len(), n, "{n} messages: {}", out.text());
    lines
}

/// The payloads and one metadata field (`priority` or `type`) of JSON lines.
fn payloads_and(lines: &[serde_json::Value], field: &str) -> Vec<(Vec<u8>, i64)> {
    lines.iter().map(|v| (json_payload(v), v[field].as_i64().unwrap_or_else(|| panic!("{field} in {v}")))).collect()
}

fn proc_limit(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every malformed name and key is a usage error (exit 2) whose message
/// quotes what is wrong, for send, recv and rm alike, and nothing is
/// created.
#[test]
fn bad_names_and_keys_are_usage_errors() {
    let s = Scratch::new("mq-bad");
    let name = s.name("q");
    let long = format!("mq:/{}", "n".repeat(256));
    let rows: Vec<(String, &str)> = vec![
        (format!("mq:{name}"), "must start with '/'"),
        (format!("mq:/{name}/second"), "has a second '/'"),
        (long, "256 characters, the limit is 255"),
        ("mq:/".to_string(), "empty"),
        ("mq:/..".to_string(), "reserved"),
        (format!("mq:/{name}?maxmsg=0"), "maxmsg"),
        (format!("mq:/{name}?bogus=1"), "unknown option \"bogus\""),
        ("sysv-mq:0".to_string(), "key 0 is IPC_PRIVATE"),
        ("sysv-mq:0x0".to_string(), "key 0 is IPC_PRIVATE"),
        ("sysv-mq:0xZZ".to_string(), "not a hexadecimal number"),
        ("sysv-mq:abc".to_string(), "expected a nonzero number"),
        ("sysv-mq:-5".to_string(), "expected a nonzero number"),
        ("sysv-mq:4294967296".to_string(), "expected a nonzero number"),
        ("sysv-mq:12?id=3".to_string(), "unknown option \"id\""),
        (format!("sysv-mq:{}?id=0", s.dir().display()), "must be 1 to 255"),
        (format!("sysv-mq:{}?id=256", s.dir().display()), "must be 1 to 255"),
    ];
    for (ep, why) in &rows {
        for args in [
            vec!["send", ep.as_str(), "--create", "--type", "1", "x"],
            vec!["send", ep.as_str(), "x"],
            vec!["recv", ep.as_str(), "--timeout", "100ms"],
            vec!["rm", ep.as_str()],
        ] {
            let out = IPCKIT.run(&args);
            out.expect_code(2, &format!("{args:?}"));
            assert_stderr(&out, why, &format!("{args:?}"));
            assert!(out.stdout.is_empty(), "{args:?} printed {}", out.text());
        }
    }
    // The --create above created nothing: the valid spelling of the name is
    // not there.
    let out = IPCKIT.run(&["rm", &format!("mq:/{name}")]);
    out.expect_code(1, "rm of the never-created queue");
}

/// The longest name (255 characters after the slash) is accepted, and
/// one more is refused before the kernel sees it.
#[test]
fn longest_queue_name_is_accepted() {
    let s = Scratch::new("mq-long");
    let pad = 255 - s.name("").len();
    let ep = s.mq(&"l".repeat(pad), "?maxmsg=1&msgsize=64");
    let name = ep.strip_prefix("mq:/").unwrap().split('?').next().unwrap();
    assert_eq!(name.len(), 255);
    IPCKIT.run(&["send", &ep, "--create", "at the limit"]).expect_code(0, "send to a 255-character name");
    let lines = recv_json(&ep, 1, &[]);
    assert_eq!(json_payload(&lines[0]), b"at the limit");
    let too_long = format!("mq:/{name}x");
    let out = IPCKIT.run(&["send", &too_long, "--create", "x"]);
    out.expect_code(2, "256 characters");
    assert_stderr(&out, "256 characters, the limit is 255 (NAME_MAX)", "256 characters");
}

/// Opening a queue that does not exist without --create: exit 1, naming
/// the queue, and the queue is still not there afterwards.
#[test]
fn missing_queue_without_create_is_an_error() {
    let s = Scratch::new("mq-missing");
    let posix = s.mq("absent", "");
    let sysv = s.sysv_mq(1, "");
    for ep in [&posix, &sysv] {
        let send: Vec<&str> =
            if ep.starts_with("mq:") { vec!["send", ep, "x"] } else { vec!["send", ep, "--type", "1", "x"] };
        for args in [send, vec!["recv", ep.as_str(), "--count", "1"]] {
            let out = IPCKIT.run(&args);
            out.expect_code(1, &format!("{args:?}"));
            assert_stderr(&out, ep, &format!("{args:?}"));
            assert_stderr(&out, "ENOENT", &format!("{args:?}"));
            assert_stderr(&out, "--create", &format!("{args:?}"));
        }
        // Neither attempt created it.
        let out = IPCKIT.run(&["rm", ep]);
        out.expect_code(1, &format!("rm {ep}"));
    }
    // A key path that does not exist cannot be turned into a key.
    let nowhere = format!("sysv-mq:{}", s.path("no-such-file").display());
    let out = IPCKIT.run(&["send", &nowhere, "--create", "x"]);
    out.expect_code(1, "ftok of a missing path");
    assert_stderr(&out, "ftok", "ftok of a missing path");
    assert_stderr(&out, "no-such-file", "ftok of a missing path");
}

/// A key path that does not exist is a mistake in the endpoint, not a
/// peer that is still starting: `send --timeout` fails at once (exit 1,
/// naming ftok and the key path) instead of retrying until the timeout
/// (exit 3, "peer not ready").
#[test]
fn missing_key_path_with_timeout_fails_at_once() {
    let s = Scratch::new("mq-ftok");
    let path = s.path("no-such-file");
    let nowhere = format!("sysv-mq:{}", path.display());
    for args in [
        vec!["send", nowhere.as_str(), "--timeout", "20s", "x"],
        vec!["send", nowhere.as_str(), "--create", "--timeout", "20s", "x"],
    ] {
        let out = IPCKIT.run(&args);
        out.expect_code(1, &format!("{args:?}"));
        let what = format!("{args:?}");
        assert_stderr(&out, "ftok", &what);
        assert_stderr(&out, &format!("key path {}", path.display()), &what);
        assert!(!out.stderr.contains("peer not ready"), "{what}: {}", out.stderr);
    }
}

/// `--exclusive` creates a new queue, and refuses one that exists (exit 1,
/// "exists") without sending anything to it.
#[test]
fn exclusive_on_existing_queue_fails() {
    let s = Scratch::new("mq-excl");
    let posix = s.mq("q", "?maxmsg=2&msgsize=64");
    let sysv = s.sysv_mq(1, "&maxbytes=256");
    for ep in [&posix, &sysv] {
        IPCKIT.run(&["send", ep, "--exclusive", "first"]).expect_code(0, &format!("--exclusive creates {ep}"));
        let out = IPCKIT.run(&["send", ep, "--exclusive", "second"]);
        out.expect_code(1, &format!("--exclusive on the existing {ep}"));
        assert_stderr(&out, "exists", "--exclusive");
        assert_stderr(&out, ep.split('?').next().unwrap(), "--exclusive");
        // Only the first message is there.
        let lines = recv_json(ep, 1, &[]);
        assert_eq!(json_payload(&lines[0]), b"first");
        assert_empty(ep);
    }
}

/// A message larger than the queue's msgsize is refused (exit 1) and the
/// queue stays empty; one of exactly msgsize goes through.
#[test]
fn posix_message_over_msgsize_is_refused() {
    let s = Scratch::new("mq-big");
    let ep = s.mq("q", "?msgsize=64&maxmsg=2");
    create(&ep);
    let over = "o".repeat(65);
    let out = IPCKIT.run(&["send", &ep, &over]);
    out.expect_code(1, "65 bytes into msgsize 64");
    assert_stderr(&out, "65 bytes", "65 bytes into msgsize 64");
    assert_stderr(&out, "64 bytes", "65 bytes into msgsize 64");
    assert_stderr(&out, ep.split('?').next().unwrap(), "65 bytes into msgsize 64");
    assert_empty(&ep);

    let exact: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x80).collect();
    IPCKIT.run_stdin(&["send", &ep, "--stdin-whole"], &exact).expect_code(0, "64 bytes into msgsize 64");
    let lines = recv_json(&ep, 1, &[]);
    assert_eq!(json_payload(&lines[0]), exact);
    assert_empty(&ep);
}

/// System V: a message over the kernel's msgmax is refused (exit 1) and
/// nothing is queued; one of exactly msgmax goes through.
#[test]
fn sysv_message_over_msgmax_is_refused() {
    let s = Scratch::new("mq-sysv-big");
    let ep = s.sysv_mq(1, "");
    create(&ep);
    let msgmax = proc_limit("/proc/sys/kernel/msgmax") as usize;
    let mut rng = Rng(0x5eed_0001);
    let mut over = vec![0u8; msgmax + 1];
    rng.fill(&mut over);
    let out = IPCKIT.run_stdin(&["send", &ep, "--stdin-whole", "--type", "4"], &over);
    out.expect_code(1, "msgmax + 1 bytes");
    assert_stderr(&out, &format!("{} bytes", msgmax + 1), "msgmax + 1 bytes");
    assert_stderr(&out, "msgmax", "msgmax + 1 bytes");
    assert_empty(&ep);

    let exact = &over[..msgmax];
    IPCKIT.run_stdin(&["send", &ep, "--stdin-whole", "--type", "4"], exact).expect_code(0, "msgmax bytes");
    let lines = recv_json(&ep, 1, &[]);
    assert_eq!(json_payload(&lines[0]), exact);
    assert_eq!(lines[0]["type"], 4);
    assert_empty(&ep);
}

/// `send --timeout` to a full queue: exit 3 after the timeout, naming the
/// queue, and nothing extra is queued.
#[test]
fn send_to_full_queue_times_out() {
    let s = Scratch::new("mq-full");
    // One message fills a POSIX queue of maxmsg=1 and a System V queue of
    // maxbytes=16 with a 16-byte message.
    let posix = s.mq("q", "?maxmsg=1&msgsize=64");
    let sysv = s.sysv_mq(1, "&maxbytes=16");
    for (ep, first) in [(&posix, "only one"), (&sysv, "sixteen bytes..!")] {
        IPCKIT.run(&["send", ep, "--create", first]).expect_code(0, "fill the queue");
        let start = Instant::now();
        let out = IPCKIT.run(&["send", ep, "--timeout", "100ms", "x"]);
        let took = start.elapsed();
        out.expect_code(3, &format!("send to the full {ep}"));
        assert_stderr(&out, ep.split('?').next().unwrap(), "send to the full queue");
        assert_stderr(&out, "timeout", "send to the full queue");
        assert!(took >= Duration::from_millis(100), "gave up after {took:?}, before the timeout");
        assert!(took < Duration::from_secs(10), "took {took:?} for a 100 ms timeout");
        // Exactly the first message is there.
        let out = IPCKIT.run(&["recv", ep, "--count", "2", "--timeout", "100ms", "--json"]);
        out.expect_code(3, "the second receive times out");
        let lines = out.json_lines();
        assert_eq!(lines.len(), 1, "one message: {}", out.text());
        assert_eq!(json_payload(&lines[0]), first.as_bytes());
    }
}

/// `recv --timeout` on an empty queue: exit 3 after the timeout, nothing
/// printed, the queue named.
#[test]
fn recv_on_empty_queue_times_out() {
    let s = Scratch::new("mq-empty");
    let posix = s.mq("q", "?maxmsg=1&msgsize=64");
    let sysv = s.sysv_mq(1, "");
    for ep in [&posix, &sysv] {
        create(ep);
        let start = Instant::now();
        let out = IPCKIT.run(&["recv", ep, "--timeout", "100ms"]);
        let took = start.elapsed();
        out.expect_code(3, &format!("recv from the empty {ep}"));
        assert!(out.stdout.is_empty(), "printed {}", out.text());
        assert_stderr(&out, "no message within the timeout", "recv from the empty queue");
        assert_stderr(&out, ep.split('?').next().unwrap(), "recv from the empty queue");
        assert!(took >= Duration::from_millis(100), "gave up after {took:?}, before the timeout");
        assert!(took < Duration::from_secs(10), "took {took:?} for a 100 ms timeout");
    }
}

/// Attributes beyond the kernel's limits are usage errors (exit 2) naming
/// the limit and its value, and nothing is created; at the limit they are
/// accepted.
#[test]
fn attributes_beyond_kernel_limits_are_usage_errors() {
    let s = Scratch::new("mq-limits");
    let msg_max = proc_limit("/proc/sys/fs/mqueue/msg_max");
    let msgsize_max = proc_limit("/proc/sys/fs/mqueue/msgsize_max");
    let msgmnb = proc_limit("/proc/sys/kernel/msgmnb");
    let rows = [
        (s.mq("a", &format!("?maxmsg={}&msgsize=64", msg_max + 1)), "maxmsg", msg_max, "/proc/sys/fs/mqueue/msg_max"),
        (
            s.mq("b", &format!("?maxmsg=1&msgsize={}", msgsize_max + 1)),
            "msgsize",
            msgsize_max,
            "/proc/sys/fs/mqueue/msgsize_max",
        ),
        (s.sysv_mq(1, &format!("&maxbytes={}", msgmnb + 1)), "maxbytes", msgmnb, "/proc/sys/kernel/msgmnb"),
    ];
    for (ep, option, limit, path) in &rows {
        for args in [vec!["send", ep.as_str(), "--create", "x"], vec!["recv", ep.as_str(), "--create", "--count", "1"]]
        {
            let out = IPCKIT.run(&args);
            out.expect_code(2, &format!("{args:?}"));
            let what = format!("{args:?}");
            assert_stderr(&out, &format!("{option}={}", limit + 1), &what);
            assert_stderr(&out, &format!("kernel limit {limit}"), &what);
            assert_stderr(&out, path, &what);
        }
        // Nothing was created.
        let bare = ep.split('?').next().unwrap();
        let bare = if ep.starts_with("sysv-mq:") { format!("{bare}?id=1") } else { bare.to_string() };
        IPCKIT.run(&["rm", &bare]).expect_code(1, &format!("rm {bare}, never created"));
    }
    // At the limits: accepted.
    for ep in [
        s.mq("c", &format!("?maxmsg={msg_max}&msgsize=64")),
        s.mq("d", &format!("?maxmsg=1&msgsize={msgsize_max}")),
        s.sysv_mq(2, &format!("&maxbytes={msgmnb}")),
    ] {
        IPCKIT.run(&["send", &ep, "--create", "at the limit"]).expect_code(0, &format!("{ep} at the limit"));
        let lines = recv_json(&ep, 1, &[]);
        assert_eq!(json_payload(&lines[0]), b"at the limit");
    }
}

/// Root creates queues; `ipckit send` and `recv` as uid 65534 are refused
/// (exit 1, "permission denied" naming the queue) and send nothing.
#[test]
fn other_users_queues_are_permission_denied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run ipckit as uid 65534");
        return;
    }
    let s = Scratch::new("mq-perm");
    // uid 65534 must reach the scratch directory to compute the ftok key.
    std::fs::set_permissions(s.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let posix = s.mq("q", "?maxmsg=2&msgsize=64&mode=0600");
    let sysv = s.sysv_mq(1, "&mode=0600");
    // Open for everyone by mode, but root's: refused by ipckit's owner check
    // (or by the kernel, if the umask took the write bits away).
    let posix_open = s.mq("open", "?maxmsg=2&msgsize=64&mode=0666");
    let sysv_open = s.sysv_mq(2, "&mode=0666");
    let rows = [
        (&posix, &["permission denied (EACCES)"][..]),
        (&sysv, &["permission denied (EACCES)"][..]),
        (&posix_open, &["belongs to uid 0, not to this user (uid 65534)", "permission denied (EACCES)"][..]),
        (&sysv_open, &["belongs to uid 0, not to this user (uid 65534)"][..]),
    ];
    for (ep, texts) in rows {
        create(ep);
        for args in
            [vec!["send", ep.as_str(), "intruder"], vec!["recv", ep.as_str(), "--count", "1", "--timeout", "100ms"]]
        {
            let mut cmd = IPCKIT.command();
            cmd.args(&args).uid(65534).gid(65534);
            let out = run(&mut cmd, None);
            out.expect_code(1, &format!("{args:?} as uid 65534"));
            assert!(
                texts.iter().any(|t| out.stderr.contains(t)),
                "{args:?} as uid 65534: expected one of {texts:?}:\n{}",
                out.stderr
            );
            assert_stderr(&out, ep, &format!("{args:?} as uid 65534"));
        }
        // The refused sender sent nothing.
        assert_empty(ep);
    }
}

/// Five messages with priorities 1, 5, 3, 5, 0 come out 5, 5, 3, 1, 0,
/// the two of priority 5 in the order they were sent.
#[test]
fn priorities_come_out_highest_first() {
    let s = Scratch::new("mq-prio");
    let ep = s.mq("q", "?maxmsg=5&msgsize=64");
    create(&ep);
    let sent = [(1, "one"), (5, "five first"), (3, "three"), (5, "five second"), (0, "zero")];
    for (prio, text) in sent {
        IPCKIT.run(&["send", &ep, "--priority", &prio.to_string(), text]).expect_code(0, &format!("send {text}"));
    }
    let got = payloads_and(&recv_json(&ep, 5, &[]), "priority");
    let want: Vec<(Vec<u8>, i64)> = [(5, "five first"), (5, "five second"), (3, "three"), (1, "one"), (0, "zero")]
        .iter()
        .map(|&(p, t)| (t.as_bytes().to_vec(), p))
        .collect();
    assert_eq!(got, want);
    assert_empty(&ep);
}

/// Several messages in one `send` keep their order within one priority,
/// and the extreme priorities 0 and 32767 are carried exactly.
#[test]
fn one_send_many_messages_and_extreme_priorities() {
    let s = Scratch::new("mq-prio2");
    let ep = s.mq("q", "?maxmsg=5&msgsize=64");
    IPCKIT.run(&["send", &ep, "--create", "--priority", "0", "a", "", "c"]).expect_code(0, "send three at 0");
    IPCKIT.run(&["send", &ep, "--priority", "32767", "top"]).expect_code(0, "send at 32767");
    let got = payloads_and(&recv_json(&ep, 4, &[]), "priority");
    let want = vec![(b"top".to_vec(), 32767), (b"a".to_vec(), 0), (Vec::new(), 0), (b"c".to_vec(), 0)];
    assert_eq!(got, want);
    assert_empty(&ep);
}

/// A queue with types 3, 1, 2, 1, 5: `--type 2` takes the type-2 one,
/// `--type -2` the first type-1 one, `--type 0` the first remaining one;
/// a rule that matches nothing waits (and times out) even though messages
/// of other types are queued.
#[test]
fn type_rules_select_messages() {
    let s = Scratch::new("mq-types");
    let ep = s.sysv_mq(1, "");
    create(&ep);
    for (ty, text) in [(3, "three"), (1, "one first"), (2, "two"), (1, "one second"), (5, "five")] {
        IPCKIT.run(&["send", &ep, "--type", &ty.to_string(), text]).expect_code(0, &format!("send {text}"));
    }
    let take = |rule: &str| -> (Vec<u8>, i64) {
        let lines = recv_json(&ep, 1, &["--type", rule]);
        payloads_and(&lines, "type").remove(0)
    };
    assert_eq!(take("2"), (b"two".to_vec(), 2));
    assert_eq!(take("-2"), (b"one first".to_vec(), 1));
    assert_eq!(take("0"), (b"three".to_vec(), 3));
    // Left: "one second" (1), "five" (5). Nothing of type 4, nor at most 0.
    let out = IPCKIT.run(&["recv", &ep, "--type", "4", "--timeout", "100ms"]);
    out.expect_code(3, "--type 4 with types 1 and 5 queued");
    assert!(out.stdout.is_empty(), "printed {}", out.text());
    assert_eq!(take("-10"), (b"one second".to_vec(), 1));
    assert_eq!(take("5"), (b"five".to_vec(), 5));
    assert_empty(&ep);
}

/// `--noerror`: a message over `--max-size` is cut to it and reported
/// with `"truncated": true`; one of exactly `--max-size` is not.
/// Without it, the oversized message is reported on stderr, not printed.
#[test]
fn noerror_cuts_and_reports_truncation() {
    let s = Scratch::new("mq-noerror");
    let ep = s.sysv_mq(1, "");
    IPCKIT.run(&["send", &ep, "--create", "--type", "7", "0123456789", "abcd", "abcde"]).expect_code(0, "send");
    let lines = recv_json(&ep, 3, &["--noerror", "--max-size", "4"]);
    assert_eq!(payloads_and(&lines, "type"), vec![(b"0123".to_vec(), 7), (b"abcd".to_vec(), 7), (b"abcd".to_vec(), 7)]);
    assert_eq!(lines[0]["truncated"], true, "{}", lines[0]);
    assert!(lines[1].get("truncated").is_none(), "exactly --max-size is not cut: {}", lines[1]);
    assert_eq!(lines[2]["truncated"], true, "{}", lines[2]);
    assert_empty(&ep);

    IPCKIT.run(&["send", &ep, "--type", "7", "0123456789"]).expect_code(0, "send");
    let out = IPCKIT.run(&["recv", &ep, "--max-size", "4", "--count", "1", "--timeout", "300ms", "--json"]);
    out.expect_code(1, "recv --max-size 4 without --noerror");
    assert!(out.stdout.is_empty(), "an oversized message is not printed: {}", out.text());
    assert_stderr(&out, "over the maximum of 4 bytes", "recv --max-size 4");
    // It is still there, whole.
    let lines = recv_json(&ep, 1, &[]);
    assert_eq!(payloads_and(&lines, "type"), vec![(b"0123456789".to_vec(), 7)]);
    assert_empty(&ep);
}

/// A message over `recv --max-size` is never destroyed: `recv` stops at it
/// (exit 1, naming the sizes it knows) without receiving it or anything
/// behind it, and a receiver with a large enough `--max-size` gets both.
/// POSIX refuses before `mq_receive` (which always takes the message)
/// whenever the queue's message size is over the maximum; System V
/// leaves it queued (E2BIG).
#[test]
fn message_over_max_size_stays_queued() {
    let s = Scratch::new("mq-keep");
    let posix = s.mq("q", "");
    let sysv = s.sysv_mq(1, "");
    let big = "b".repeat(200);
    for ep in [&posix, &sysv] {
        IPCKIT.run(&["send", ep, "--create", &big, "small"]).expect_code(0, &format!("send to {ep}"));
        let out = IPCKIT.run(&["recv", ep, "--max-size", "100", "--count", "2", "--timeout", "20s", "--json"]);
        out.expect_code(1, &format!("recv --max-size 100 from {ep}"));
        assert!(out.stdout.is_empty(), "{ep}: nothing received: {}", out.text());
        assert_stderr(&out, "maximum of 100 bytes", ep);
        assert_stderr(&out, "stays queued", ep);
        assert!(!out.stderr.contains("dropped"), "{ep}: {}", out.stderr);
        // Large enough: POSIX, the queue's message size; System V, the
        // message's.
        let enough = if ep.starts_with("mq:") {
            let msgsize = proc_limit("/proc/sys/fs/mqueue/msgsize_default");
            assert_stderr(&out, &format!("{msgsize} bytes"), "the queue's message size");
            assert_eq!(posix_qsize(ep), 205, "both still queued");
            msgsize.to_string()
        } else {
            assert_eq!(sysv_qnum(ep), 2, "both still queued");
            "200".to_string()
        };
        let lines = recv_json(ep, 2, &["--max-size", &enough]);
        let got: Vec<Vec<u8>> = lines.iter().map(json_payload).collect();
        assert_eq!(got, [big.as_bytes(), b"small"], "{ep}");
        assert_empty(ep);
    }
}

/// The bytes queued in a POSIX queue, as its file in the mqueue file
/// system says (`QSIZE:N`).
fn posix_qsize(ep: &str) -> u64 {
    let name = ep.strip_prefix("mq:/").unwrap().split('?').next().unwrap();
    let text = std::fs::read_to_string(format!("/dev/mqueue/{name}")).expect("the queue's file in /dev/mqueue");
    let field = text.split_whitespace().find_map(|f| f.strip_prefix("QSIZE:")).expect("QSIZE");
    field.parse().unwrap_or_else(|e| panic!("QSIZE {field:?}: {e}"))
}

/// The messages in a System V queue, as /proc/sysvipc/msg says (`qnum`).
fn sysv_qnum(ep: &str) -> u64 {
    let parsed: ipckit::Endpoint = ep.parse().unwrap();
    let ipckit::EndpointKind::SysvMq(key) = parsed.kind() else { panic!("{ep}") };
    let key = ipckit::mq::sysv::resolve_key(key, &parsed).unwrap();
    let table = std::fs::read_to_string("/proc/sysvipc/msg").unwrap();
    let row = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first().and_then(|k| k.parse::<i32>().ok()) == Some(key))
        .unwrap_or_else(|| panic!("key {key} in /proc/sysvipc/msg:\n{table}"));
    // key msqid perms cbytes qnum ...
    row[4].parse().unwrap()
}

/// `rm` removes either kind (exit 0); afterwards the queue is gone, and a
/// second `rm` is exit 1 naming it.
#[test]
fn rm_removes_both_kinds() {
    let s = Scratch::new("mq-rm");
    let posix = s.mq("q", "?maxmsg=1&msgsize=64");
    let sysv = s.sysv_mq(1, "");
    let numeric = NumericKey::new(1);
    let numeric_ep = numeric.endpoint();
    for ep in [&posix, &sysv, &numeric_ep] {
        IPCKIT.run(&["send", ep, "--create", "left behind"]).expect_code(0, "send");
        let bare = if ep.starts_with("mq:") { ep.split('?').next().unwrap() } else { ep.as_str() };
        let out = IPCKIT.run(&["rm", bare]);
        out.expect_code(0, &format!("rm {bare}"));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "rm is silent: {out:?}");
        // Gone: opening it fails, and so does a second rm.
        let out = IPCKIT.run(&["recv", ep, "--count", "1"]);
        out.expect_code(1, &format!("recv from the removed {ep}"));
        assert_stderr(&out, "ENOENT", "recv from the removed queue");
        let out = IPCKIT.run(&["rm", bare]);
        out.expect_code(1, &format!("second rm {bare}"));
        assert_stderr(&out, bare, "second rm");
        assert_stderr(&out, "ENOENT", "second rm");
    }
}

/// A numeric key written in hex and in decimal is the same queue.
#[test]
fn numeric_key_in_hex_and_decimal() {
    let key = NumericKey::new(2);
    let hex = key.endpoint();
    let decimal = format!("sysv-mq:{}", key.key());
    IPCKIT
        .run(&["send", &format!("{hex}?maxbytes=1024"), "--create", "--exclusive", "--type", "9", "by hex"])
        .expect_code(0, "send by hex");
    let lines = recv_json(&decimal, 1, &[]);
    assert_eq!(payloads_and(&lines, "type"), vec![(b"by hex".to_vec(), 9)]);
    assert_empty(&hex);
}

/// The metadata of the other kind of queue is refused and nothing is sent:
/// a type on a POSIX queue, a priority on a System V queue; values out of
/// range are usage errors.
#[test]
fn wrong_metadata_is_refused() {
    let s = Scratch::new("mq-meta");
    let posix = s.mq("q", "?maxmsg=2&msgsize=64");
    let sysv = s.sysv_mq(1, "");
    create(&posix);
    create(&sysv);
    let rows: [(&str, &[&str], Option<i32>, &str); 5] = [
        // Flags for the other kind of queue are usage errors, found before
        // anything is opened.
        (&posix, &["--type", "3"], Some(2), "--type"),
        (&sysv, &["--priority", "3"], Some(2), "--priority"),
        (&posix, &["--priority", "32768"], Some(2), "priority 32768 is out of range (0 to 32767)"),
        (&sysv, &["--type", "0"], Some(2), "message type 0 must be positive"),
        (&sysv, &["--type=-3"], Some(2), "message type -3 must be positive"),
    ];
    for (ep, extra, code, text) in rows {
        let mut args = vec!["send", ep];
        args.extend_from_slice(extra);
        args.push("x");
        let out = IPCKIT.run(&args);
        match code {
            Some(code) => {
                out.expect_code(code, &format!("{args:?}"));
            }
            None => assert!(
                matches!(out.status.code(), Some(1 | 2)),
                "{args:?}: expected an error exit, got {:?}: {}",
                out.status,
                out.stderr
            ),
        }
        assert_stderr(&out, text, &format!("{args:?}"));
        assert_empty(ep);
    }
}

/// A sender blocked on a full System V queue wakes when the queue is
/// removed, and fails (exit 1) saying so: never a hang.
#[test]
fn blocked_sysv_sender_fails_when_queue_is_removed() {
    let s = Scratch::new("mq-rm-blocked");
    let ep = s.sysv_mq(1, "&maxbytes=8");
    IPCKIT.run(&["send", &ep, "--create", "8 bytes!"]).expect_code(0, "fill the queue");
    let mut sender = Bg::spawn(IPCKIT.command().args(["send", &ep, "--type", "1", "blocked"]));
    let strict = wait_until_blocked(&mut sender, "msgsnd", sysv_msg_syscalls().0);
    IPCKIT.run(&["rm", &ep]).expect_code(0, "rm under a blocked sender");
    let out = sender.finish();
    out.expect_code(1, "the blocked sender");
    if strict {
        assert_stderr(&out, "the queue was removed", "the blocked sender");
    } else {
        assert!(
            out.stderr.contains("the queue was removed") || out.stderr.contains("ENOENT"),
            "the blocked sender: {}",
            out.stderr
        );
    }
}

/// A receiver blocked on a System V queue wakes when the queue is removed
/// and exits (exit 1) saying so, once: it does not go on trying to receive
/// from a queue that is gone.
#[test]
fn blocked_sysv_receiver_exits_when_queue_is_removed() {
    let s = Scratch::new("mq-rm-recv");
    let ep = s.sysv_mq(1, "");
    create(&ep);
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep]));
    recv.ready();
    let _ = wait_until_blocked(&mut recv, "msgrcv", sysv_msg_syscalls().1);
    IPCKIT.run(&["rm", &ep]).expect_code(0, "rm under a blocked receiver");
    let first = recv.next_line().expect("an error line, not a silent exit");
    assert!(first.contains("the queue was removed"), "first line: {first}");
    if let Some(more) = recv.next_line() {
        panic!("recv went on after the queue was removed: {more}");
    }
    let out = recv.finish();
    out.expect_code(1, "the blocked receiver");
    assert!(out.stdout.is_empty(), "printed {}", out.text());
}

/// Attributes in the endpoint apply only when a queue is created: on an
/// existing queue that has others, `send` and `recv` warn (`ipckit:
/// warning:`, naming the queue's real attributes) and go on; matching
/// attributes draw no warning.
#[test]
fn attributes_an_existing_queue_ignores_are_warned_about() {
    let s = Scratch::new("mq-attrwarn");
    let posix = s.mq("q", "?maxmsg=3&msgsize=64&mode=0600");
    let posix_other = s.mq("q", "?maxmsg=5&msgsize=128&mode=0640");
    let sysv = s.sysv_mq(1, "&maxbytes=1000&mode=0600");
    let sysv_other = s.sysv_mq(1, "&maxbytes=2000&mode=0640");
    let rows = [
        (&posix, &posix_other, "maxmsg=3, msgsize=64, mode=0600", "maxmsg=5, msgsize=128, mode=0640"),
        (&sysv, &sysv_other, "maxbytes=1000, mode=0600", "maxbytes=2000, mode=0640"),
    ];
    for (ep, other, real, asked) in rows {
        create(ep);
        // The same attributes: nothing to say.
        let out = IPCKIT.run(&["send", ep, "--create", "same"]);
        out.expect_code(0, &format!("send to {ep}"));
        assert!(!out.stderr.contains("warning"), "{ep}: {}", out.stderr);
        for args in [
            vec!["send", other.as_str(), "--create", "other"],
            vec!["send", other.as_str(), "other"],
            vec!["recv", other.as_str(), "--count", "2", "--timeout", "20s"],
        ] {
            let out = IPCKIT.run(&args);
            out.expect_code(0, &format!("{args:?}"));
            let what = format!("{args:?}");
            let warning = out.stderr.lines().find(|l| l.starts_with("ipckit: warning:")).unwrap_or_else(|| {
                panic!("{what}: no warning:\n{}", out.stderr);
            });
            assert!(warning.contains(&format!("exists with {real}")), "{what}: {warning}");
            assert!(warning.contains(&format!("endpoint's {asked} was ignored")), "{what}: {warning}");
            assert_eq!(out.stderr.matches("ipckit: warning:").count(), 1, "{what}: once:\n{}", out.stderr);
        }
        let lines = recv_json(ep, 1, &[]);
        assert_eq!(json_payload(&lines[0]), b"other");
        assert_empty(ep);
    }
}
