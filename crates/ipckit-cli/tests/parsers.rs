//! No duration, size or count makes a command panic: a duration too long
//! for the clock means no deadline (on every transport, for `send` and
//! `recv`), a negative value is an error that names the option (exit 2),
//! and the real binary, given arbitrary option values, exits 0 to 3, never
//! 101 (a panic) or by a signal.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::procfs::wait_until_retrying;
use ipckit_testkit::program::{Bg, Out, run};
use ipckit_testkit::scratch::{Scratch, SemName};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// Longer than `Instant` can add (`overflow when adding duration to
/// instant` before), shorter than `Duration::MAX`.
const HUGE: &str = "9999999999999999999s";

/// Beyond `Duration::MAX` (u64::MAX seconds): saturates to it.
const BEYOND: &str = "99999999999999999999999999s";

/// A System V semaphore set (`sysv:<scratch>?id=N`), removed on drop.
struct SysvSet<'a> {
    name: String,
    _scratch: &'a Scratch,
}

impl<'a> SysvSet<'a> {
    fn new(s: &'a Scratch, id: u8) -> SysvSet<'a> {
        SysvSet { name: format!("sysv:{}?id={id}", s.dir().display()), _scratch: s }
    }
}

impl Drop for SysvSet<'_> {
    fn drop(&mut self) {
        if let Ok(ipckit::shm::ShmName::Sysv(key)) = self.name.parse() {
            let _ = ipckit::sync::SemaphoreSet::remove(&key);
        }
    }
}

#[track_caller]
fn no_panic(out: &Out, what: &str) {
    assert!(!out.stderr.contains("panicked"), "{what}: panicked:\n{}", out.stderr);
}

/// `--timeout` longer than the clock can represent: `recv` and `send` on
/// every transport run as if there were no timeout (before: exit 101,
/// "overflow when adding duration to instant").
#[test]
fn timeouts_too_long_for_the_clock_mean_no_deadline() {
    let s = Scratch::new("huge-timeout");
    let mut endpoints = s.endpoints();
    endpoints.push(s.mq("q", ""));
    endpoints.push(s.sysv_mq(1, ""));
    for ep in &endpoints {
        for t in [HUGE, BEYOND] {
            let mut recv = Bg::spawn(IPCKIT.command().args(["recv", ep, "--create", "--count", "2", "--timeout", t]));
            let announced = recv.ready();
            let out = IPCKIT.run(&["send", &announced, "--timeout", t, "argument"]);
            no_panic(&out, ep);
            out.expect_code(0, &format!("send {ep} --timeout {t}"));
            let out = IPCKIT.run_stdin(&["send", &announced, "--timeout", t], b"streamed\n");
            out.expect_code(0, &format!("send {ep} --timeout {t}, streaming"));
            let out = recv.finish();
            no_panic(&out, ep);
            out.expect_code(0, &format!("recv {ep} --timeout {t}"));
            assert_eq!(out.text(), "argument\nstreamed\n", "{ep}");
        }
    }
}

/// A huge `--timeout` is no deadline, not no wait: a sender whose receiver
/// is not there yet keeps retrying, and delivers once it comes.
#[test]
fn a_huge_send_timeout_waits_for_the_receiver() {
    let s = Scratch::new("huge-wait");
    let ep = format!("unix:{}", s.path("late.sock").display());
    let mut sender = Bg::spawn(IPCKIT.command().args(["send", &ep, "--timeout", HUGE, "late"]));
    wait_until_retrying(&mut sender);
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "1"]));
    recv.ready();
    sender.finish().expect_code(0, "the sender, once the receiver is there");
    let out = recv.finish();
    out.expect_code(0, "recv");
    assert_eq!(out.text(), "late\n");
}

/// `sem wait` and `lock` with a huge `--timeout` on a free object: done at
/// once.
#[test]
fn huge_timeouts_on_semaphores_and_locks() {
    let s = Scratch::new("huge-sync");
    let sem = SemName::new(&s, "sem");
    let set = SysvSet::new(&s, 1);
    let lock = s.shm("lock");
    IPCKIT.run_ok(&["sem", "create", &sem.0, "--value", "2"], None);
    IPCKIT.run_ok(&["sem", "create", &set.name, "--value", "2"], None);
    for t in [HUGE, BEYOND] {
        for name in [&sem.0, &set.name] {
            let out = IPCKIT.run(&["sem", "wait", name, "--timeout", t]);
            no_panic(&out, name);
            out.expect_code(0, &format!("sem wait {name} --timeout {t}"));
        }
        let out = IPCKIT.run(&["lock", &lock, "--timeout", t, "--", "true"]);
        no_panic(&out, "lock");
        out.expect_code(0, &format!("lock --timeout {t}"));
    }
}

/// A negative number, duration or size is a usage error (exit 2) whose
/// message names the option, for every command, and creates nothing.
/// Before, clap took `-1` for an unknown flag ("unexpected argument").
#[test]
fn negative_values_are_usage_errors_naming_the_option() {
    let s = Scratch::new("negative");
    let unix = format!("unix:{}", s.path("s.sock").display());
    let fifo = format!("fifo:{}", s.path("fifo").display());
    let mq = s.mq("q", "");
    let sysv = s.sysv_mq(1, "");
    let sem = SemName::new(&s, "sem");
    let set = SysvSet::new(&s, 2);
    let seg = s.shm("seg");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["recv", &unix, "--timeout", "-1s"], "--timeout", "-1s is negative"),
        (vec!["recv", &unix, "--timeout", "-0.5"], "--timeout", "is negative"),
        (vec!["send", &unix, "--timeout", "-1s", "x"], "--timeout", "-1s is negative"),
        (vec!["send", &fifo, "--create", "--timeout", "-250ms"], "--timeout", "-250ms is negative"),
        (vec!["sem", "wait", &sem.0, "--timeout", "-1s"], "--timeout", "is negative"),
        (vec!["lock", &seg, "--timeout", "-1s", "--", "true"], "--timeout", "is negative"),
        (vec!["recv", &unix, "--count", "-1"], "--count", "negative"),
        (vec!["recv", &fifo, "--create", "--max-size", "-1"], "--max-size", "-1 is negative"),
        (vec!["recv", &unix, "--max-buffered", "-1KiB"], "--max-buffered", "-1KiB is negative"),
        (vec!["send", &unix, "--max-size", "-5", "x"], "--max-size", "-5 is negative"),
        (vec!["send", &mq, "--create", "--priority", "-1", "x"], "--priority", "out of range"),
        (vec!["send", &sysv, "--create", "--type", "-1", "x"], "--type", "must be positive"),
        (vec!["recv", &unix, "--ready-fd", "-1"], "--ready-fd", "negative"),
        (vec!["sem", "create", &set.name, "--count", "-1"], "--count", "negative"),
        (vec!["sem", "post", &set.name, "--index", "-1"], "--index", "negative"),
        (vec!["shm", "create", &seg, "--size", "-1"], "--size", "-1 is negative"),
        (vec!["shm", "read", &seg, "--offset", "-1"], "--offset", "-1 is negative"),
        (vec!["shm", "read", &seg, "--len", "-1"], "--len", "-1 is negative"),
        (vec!["bench", "--trials", "-1"], "--trials", "-1"),
    ];
    for (args, option, why) in &cases {
        let out = IPCKIT.run(args);
        out.expect_code(2, &format!("{args:?}"));
        assert!(out.stderr.contains(option), "{args:?}: the message names {option}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{args:?}: the message says {why:?}: {}", out.stderr);
        assert!(!out.stderr.contains("unexpected argument"), "{args:?}: {}", out.stderr);
    }
    for gone in [s.path("s.sock"), s.path("fifo")] {
        assert!(!gone.exists(), "{} was created", gone.display());
    }
    for obj in [&mq, &sysv, &*seg, &sem.0, &set.name] {
        assert_eq!(IPCKIT.run(&["rm", obj]).status.code(), Some(1), "{obj} was created");
    }
}

/// Values that look like numbers and values that do not: huge, signed,
/// with exponents, NaN, unicode, empty, option-like, and the edges of the
/// integer types and of the clock.
const PICKS: &[&str] = &[
    "",
    " ",
    "0",
    "1",
    "2",
    "3",
    "-0",
    "-1",
    "-1s",
    "+1",
    "0x10",
    "1e400s",
    "1e3",
    "NaN",
    "inf",
    "-inf",
    "nan s",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "-9223372036854775809",
    "4294967295",
    "4294967296",
    "2147483647",
    "2147483648",
    "32767",
    "32768",
    "65535",
    "65536",
    "9223372036854775808s",
    "9999999999999999999s",
    "18446744073709551615.999999999",
    "99999999999999999999999999s",
    "9999999999999999999999h",
    "99999999999999999999G",
    "16777216TiB",
    "16EiB",
    "1.5KiB",
    ".",
    "..",
    "1..2s",
    "µs",
    "１２",
    "٣",
    "5\u{0301}s",
    "\u{1F600}",
    "--json",
    "-",
    "--",
    "1 s",
    "0.000000000000000000001s",
    "1.5",
    "1m",
    "1h",
    "0ms",
    "10ms",
];

/// Random values of the same kinds as [`PICKS`].
fn tricky() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::sample::select(PICKS).prop_map(String::from),
        2 => "[-+]?[0-9]{0,25}(\\.[0-9]{0,12})?(e[-+]?[0-9]{1,3})?(ns|us|ms|s|m|h|B|K|KiB|MiB|GiB|TiB|kB|x)?",
        // Around where a deadline leaves the clock (i64::MAX seconds) and a
        // duration leaves Duration (u64::MAX seconds).
        2 => "(9[2-9]|1[0-8])[0-9]{17}(s|)",
        1 => any::<String>().prop_map(|s| s.replace('\0', "")),
    ]
}

/// The real binary, with arbitrary values for the options that take
/// numbers, durations and sizes, on endpoints that answer at once (live
/// receivers that drain, fresh abstract sockets with `--count 0`, a
/// posted semaphore, a free lock): it exits 0, 1, 2 or 3, never 101 (a
/// panic) and never by a signal.
#[test]
fn arbitrary_option_values_never_crash_a_command() {
    let s = Scratch::new("fuzz-args");
    let unix = format!("unix:@{}", s.name("drain"));
    let mq = s.mq("drain", "");
    let sysv = s.sysv_mq(1, "");
    let empty_sysv = s.sysv_mq(2, "");
    let sem = SemName::new(&s, "posted");
    let new_sem = SemName::new(&s, "new");
    let set = SysvSet::new(&s, 3);
    let new_set = SysvSet::new(&s, 4);
    let seg = s.shm("seg");
    let lock = s.shm("lock");
    let mut drains = Vec::new();
    for ep in [&unix, &mq, &sysv] {
        let mut bg = Bg::spawn(IPCKIT.command().args(["recv", ep, "--create"]));
        bg.ready();
        drains.push(bg);
    }
    IPCKIT.run_ok(&["recv", &empty_sysv, "--create", "--count", "0"], None);
    IPCKIT.run_ok(&["sem", "create", &sem.0, "--value", "1000000"], None);
    IPCKIT.run_ok(&["sem", "create", &set.name, "--count", "3"], None);
    IPCKIT.run_ok(&["shm", "create", &seg, "--size", "64"], None);
    let fresh = AtomicUsize::new(0);
    let ran = AtomicUsize::new(0);
    let exits = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let fresh_unix = || format!("unix:@{}", s.name(&format!("fresh-{}", fresh.fetch_add(1, Ordering::Relaxed))));

    let templates = 19usize;
    let check = |template: usize, v: &str| -> Result<(), String> {
        let f = fresh_unix();
        let args: Vec<&str> = match template {
            0 => vec!["recv", &f, "--count", "0", "--timeout", v],
            1 => vec!["recv", &f, "--count", "0", "--max-size", v],
            2 => vec!["recv", &f, "--count", "0", "--max-buffered", v],
            3 => vec!["recv", &f, "--timeout", "0", "--count", v],
            4 => vec!["recv", &empty_sysv, "--timeout", "0", "--count", "1", "--type", v],
            5 => vec!["recv", &f, "--count", "0", "--ready-fd", v],
            6 => vec!["send", &unix, "--timeout", v, "x"],
            7 => vec!["send", &unix, "--max-size", v, "x"],
            8 => vec!["send", &mq, "--priority", v, "x"],
            9 => vec!["send", &sysv, "--type", v, "x"],
            10 => vec!["send", &unix, "--timeout", v],
            11 => vec!["sem", "wait", &sem.0, "--timeout", v],
            12 => vec!["sem", "create", &new_sem.0, "--value", v],
            13 => vec!["sem", "create", &new_set.name, "--value", v],
            14 => vec!["sem", "post", &set.name, "--index", v],
            15 => vec!["shm", "read", &seg, "--offset", v],
            16 => vec!["shm", "read", &seg, "--len", v],
            17 => vec!["lock", &lock, "--timeout", v, "--", "true"],
            _ => vec!["bench", "--trials", v, "--filter", "no-such-row"],
        };
        // A descriptor this process may have inherited (a jobserver pipe)
        // is not for writing "ready" into.
        if template == 5 && v.trim().parse::<i64>().is_ok_and(|n| (3..=4096).contains(&n)) {
            return Ok(());
        }
        let mut cmd = Command::new(IPCKIT.path());
        cmd.args(&args).env("RUST_BACKTRACE", "0");
        let input: Option<&[u8]> = if template == 10 { Some(b"a\n\nb") } else { None };
        let out = run(&mut cmd, input);
        ran.fetch_add(1, Ordering::Relaxed);
        exits.lock().unwrap().insert(out.status.code());
        if !matches!(out.status.code(), Some(0..=3)) || out.stderr.contains("panicked") {
            return Err(format!("ipckit {args:?}: exit {:?} (0 to 3 expected)\n{}", out.status, out.stderr));
        }
        Ok(())
    };
    // Every template with every pick, then random values.
    for template in 0..templates {
        for v in PICKS {
            check(template, v).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let config = Config { cases: 200, failure_persistence: None, ..Config::default() };
    TestRunner::new(config)
        .run(&(0..templates, tricky()), |(template, v)| check(template, &v).map_err(TestCaseError::fail))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(drains);
    // The cases ran the binary, and both outcomes came up: commands that
    // ran, and values refused.
    let exits = exits.into_inner().unwrap();
    let expected = templates * PICKS.len() * 9 / 10;
    assert!(ran.load(Ordering::Relaxed) >= expected, "only {} cases ran", ran.load(Ordering::Relaxed));
    assert!(exits.contains(&Some(0)) && exits.contains(&Some(2)), "exit codes seen: {exits:?}");
}
