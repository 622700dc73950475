//! `ipckit` queues with a program that was not written with ipckit: a C
//! program (`c/mq.c`) that calls `mq_open`/`mq_send`/`mq_receive` and
//! `msgget`/`msgsnd`/`msgrcv`/`msgctl` directly, in both directions, with
//! priorities, types and type rules, byte-exact payloads (an empty message,
//! non-UTF-8 ones, the largest the queue takes), attributes and modes as
//! the kernel reports them, and receivers blocked before the sender runs.
//!
//! Every queue is a `Scratch` queue or a [`NumericKey`], removed on drop;
//! every process has the 30 s hang guard.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::c::{build_c, pattern};
use ipckit_testkit::cli::{Ipckit, json_payload};
use ipckit_testkit::data::Rng;
use ipckit_testkit::procfs::{blocked_in_syscall, mq_receive_syscall, sysv_msg_syscalls};
use ipckit_testkit::program::{Bg, Out, run};
use ipckit_testkit::scratch::{NumericKey, Scratch};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// The C peer (see the comment at its top for its arguments).
const MQ_C: &str = include_str!("c/mq.c");

fn mq_bin(scratch: &Scratch) -> PathBuf {
    build_c(scratch, "mq", MQ_C, &["-lrt"])
}

/// The bytes of a C `SPEC` (`s:TEXT` or `p:SIZE:SEED`).
fn spec_bytes(spec: &str) -> Vec<u8> {
    if let Some(text) = spec.strip_prefix("s:") {
        return text.as_bytes().to_vec();
    }
    let (size, seed) = spec.strip_prefix("p:").and_then(|r| r.split_once(':')).expect("s: or p: spec");
    pattern(size.parse().unwrap(), seed.parse().unwrap())
}

/// Runs the C program to completion; it must succeed.
#[track_caller]
fn c_run(bin: &PathBuf, args: &[&str]) -> Out {
    let out = run(Command::new(bin).args(args), None);
    out.expect_code(0, &format!("C mq {args:?}"));
    out
}

/// The `META LEN HEX` lines the C receiver prints, as (meta, payload).
#[track_caller]
fn c_messages(out: &Out) -> Vec<(i64, Vec<u8>)> {
    out.text()
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let meta: i64 = parts.next().unwrap().parse().expect("meta");
            let len: usize = parts.next().expect("len").parse().expect("len");
            let hex = parts.next().expect("hex");
            assert_eq!(hex.len(), 2 * len, "hex of {len} bytes in {line:?}");
            let data = (0..len).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex")).collect();
            (meta, data)
        })
        .collect()
}

/// `ipckit recv --count N --json` with extra arguments: (meta, payload)
/// with meta the value of `field` (`priority` or `type`).
#[track_caller]
fn ipk_recv(ep: &str, n: usize, field: &str, extra: &[&str]) -> Vec<(i64, Vec<u8>)> {
    let count = n.to_string();
    let mut args = vec!["recv", ep, "--count", &count, "--json", "--timeout", "20s"];
    args.extend_from_slice(extra);
    let out = IPCKIT.run_ok(&args, None);
    let lines = out.json_lines();
    assert_eq!(lines.len(), n, "{n} messages: {}", out.text());
    lines.iter().map(|v| (v[field].as_i64().unwrap_or_else(|| panic!("{field} in {v}")), json_payload(v))).collect()
}

/// The queue is empty: `ipckit recv --timeout 100ms` times out.
#[track_caller]
fn assert_empty(ep: &str) {
    let out = run(IPCKIT.command().args(["recv", ep, "--timeout", "100ms"]), None);
    out.expect_code(3, &format!("recv from {ep}, which should be empty"));
    assert!(out.stdout.is_empty(), "received {}", out.text());
}

/// Compares message lists one by one, without printing 8 KiB payloads.
#[track_caller]
fn assert_messages(got: &[(i64, Vec<u8>)], want: &[(i64, Vec<u8>)], what: &str) {
    let short = |m: &[(i64, Vec<u8>)]| -> Vec<(i64, usize)> { m.iter().map(|(k, d)| (*k, d.len())).collect() };
    assert_eq!(short(got), short(want), "{what}: (meta, length) of every message");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.1 == w.1, "{what}: message {i} (meta {}, {} bytes) differs", w.0, w.1.len());
    }
}

/// `(meta, spec)` pairs as (meta, bytes), in the order given.
fn expect(items: &[(i64, &str)]) -> Vec<(i64, Vec<u8>)> {
    items.iter().map(|&(m, s)| (m, spec_bytes(s))).collect()
}

/// What the POSIX queue order is: highest priority first, FIFO within one.
fn priority_order(sent: &[(i64, Vec<u8>)]) -> Vec<(i64, Vec<u8>)> {
    let mut v = sent.to_vec();
    v.sort_by_key(|m| std::cmp::Reverse(m.0)); // stable: FIFO within a priority
    v
}

/// The queue name (`/NAME`) of a `mq:` endpoint.
fn mq_name(ep: &str) -> &str {
    ep.strip_prefix("mq:").unwrap().split('?').next().unwrap()
}

/// The key text the C program takes (the endpoint after `sysv-mq:`,
/// without options other than `id`).
fn sysv_key_text(ep: &str) -> String {
    let rest = ep.strip_prefix("sysv-mq:").unwrap();
    match rest.split_once('?') {
        Some((key, query)) => match query.split('&').find(|o| o.starts_with("id=")) {
            Some(id) => format!("{key}?{id}"),
            None => key.to_string(),
        },
        None => rest.to_string(),
    }
}

/// (a) C creates a POSIX queue and sends messages with various priorities
/// (an empty one, 8192 bytes of non-UTF-8 pattern = msgsize, priority
/// 32767); `ipckit recv --json` gets them in priority order with the right
/// priorities, byte for byte.
#[test]
fn c_posix_sender_to_ipckit_recv() {
    let s = Scratch::new("mqi-c2i");
    let bin = mq_bin(&s);
    let ep = s.mq("q", "");
    let name = mq_name(&ep);
    c_run(&bin, &["posix-create", name, "10", "8192"]);
    let sent: &[(i64, &str)] = &[
        (0, "s:first at 0"),
        (7, "p:8192:5"),
        (32767, "s:top"),
        (3, "s:"),
        (7, "s:second at 7"),
        (0, "p:1:200"),
        (1, "s:h\u{e9}llo, \u{4e16}\u{754c}"),
        (7, "p:300:1"),
    ];
    let args: Vec<String> = sent.iter().map(|(p, spec)| format!("{p}:{spec}")).collect();
    let mut c_args = vec!["posix-send", name];
    c_args.extend(args.iter().map(String::as_str));
    c_run(&bin, &c_args);
    let attr = c_run(&bin, &["posix-attr", name]);
    assert_eq!(attr.text().trim(), format!("maxmsg=10 msgsize=8192 curmsgs={} mode=600", sent.len()));

    let got = ipk_recv(&ep, sent.len(), "priority", &[]);
    assert_messages(&got, &priority_order(&expect(sent)), "ipckit recv from C");
    assert_empty(&ep);
    let attr = c_run(&bin, &["posix-attr", name]);
    assert!(attr.text().contains("curmsgs=0"), "{}", attr.text());
}

/// (b) `ipckit send --priority` into a queue ipckit creates with
/// attributes; C sees the attributes and mode, and receives the messages
/// in priority order (an empty one, msgsize bytes of binary, priority
/// 32767); a message over msgsize is refused and never reaches C.
#[test]
fn ipckit_send_priorities_to_c_receiver() {
    let s = Scratch::new("mqi-i2c");
    let bin = mq_bin(&s);
    let ep = s.mq("q", "?maxmsg=8&msgsize=256&mode=0600");
    let name = mq_name(&ep);
    let mut rng = Rng(0x6d71_0002);
    let mut binary = vec![0u8; 256];
    rng.fill(&mut binary);
    binary[0] = 0; // a NUL and a newline: nothing is a C string or a line
    binary[1] = b'\n';
    binary[2] = 0xff;
    IPCKIT.run_ok(&["send", &ep, "--create", "--priority", "2", "two a"], None);
    IPCKIT.run_ok(&["send", &ep, "--priority", "9", ""], None);
    IPCKIT.run_ok(&["send", &ep, "--priority", "2", "two b", "two c"], None);
    IPCKIT.run_ok(&["send", &ep, "--priority", "0", "--stdin-whole"], Some(&binary));
    IPCKIT.run_ok(&["send", &ep, "--priority", "32767", "max"], None);
    let mut over = binary.clone();
    over.push(1);
    let out = run(IPCKIT.command().args(["send", &ep, "--priority", "1", "--stdin-whole"]), Some(&over));
    out.expect_code(1, "257 bytes into msgsize 256");
    assert!(out.stderr.contains("257 bytes"), "{}", out.stderr);

    let attr = c_run(&bin, &["posix-attr", name]);
    assert_eq!(attr.text().trim(), "maxmsg=8 msgsize=256 curmsgs=6 mode=600");
    let got = c_messages(&c_run(&bin, &["posix-recv", name, "6"]));
    let want = vec![
        (32767, b"max".to_vec()),
        (9, Vec::new()),
        (2, b"two a".to_vec()),
        (2, b"two b".to_vec()),
        (2, b"two c".to_vec()),
        (0, binary),
    ];
    assert_messages(&got, &want, "C receives from ipckit send");
    let attr = c_run(&bin, &["posix-attr", name]);
    assert!(attr.text().contains("curmsgs=0"), "{}", attr.text());
}

/// (c) C creates a System V queue (the same ftok key as ipckit's
/// `sysv-mq:PATH?id=N`) and sends messages with types (an empty one,
/// msgmax bytes); `ipckit recv --type RULE --json` takes them by the
/// kernel's rules with the right types, byte for byte.
#[test]
fn c_sysv_sender_to_ipckit_recv_by_type() {
    let s = Scratch::new("mqi-sysv-c2i");
    let bin = mq_bin(&s);
    let ep = s.sysv_mq(3, "");
    let key = sysv_key_text(&ep);
    assert!(key.ends_with("?id=3"), "{key}");
    let msgmax: usize = std::fs::read_to_string("/proc/sys/kernel/msgmax").unwrap().trim().parse().unwrap();
    let msgmnb: usize = std::fs::read_to_string("/proc/sys/kernel/msgmnb").unwrap().trim().parse().unwrap();
    let big = format!("p:{msgmax}:9");
    c_run(&bin, &["sysv-create", &key, "0"]);
    let sent: Vec<(i64, &str)> =
        vec![(3, "s:three"), (1, big.as_str()), (2, "s:"), (1, "s:one b"), (5, "s:five"), (2, "s:two b")];
    let args: Vec<String> = sent.iter().map(|(t, spec)| format!("{t}:{spec}")).collect();
    let mut c_args = vec!["sysv-send", key.as_str()];
    c_args.extend(args.iter().map(String::as_str));
    c_run(&bin, &c_args);
    let stat = c_run(&bin, &["sysv-stat", &key]);
    assert_eq!(stat.text().trim(), format!("qnum=6 qbytes={msgmnb} mode=600"));

    assert_messages(&ipk_recv(&ep, 2, "type", &["--type", "2"]), &expect(&[(2, "s:"), (2, "s:two b")]), "--type 2");
    assert_messages(&ipk_recv(&ep, 1, "type", &["--type", "-2"]), &expect(&[(1, big.as_str())]), "--type -2");
    assert_messages(
        &ipk_recv(&ep, 2, "type", &["--type", "-4"]),
        &expect(&[(1, "s:one b"), (3, "s:three")]),
        "--type -4",
    );
    assert_messages(&ipk_recv(&ep, 1, "type", &["--type", "0"]), &expect(&[(5, "s:five")]), "--type 0");
    assert_empty(&ep);
    let stat = c_run(&bin, &["sysv-stat", &key]);
    assert!(stat.text().starts_with("qnum=0 "), "{}", stat.text());
}

/// (c) `ipckit send --type` into a queue ipckit creates with a numeric key
/// and `?maxbytes=`; C sees the byte limit and mode, and receives with
/// msgrcv's rules (type 2 only; the lowest type <= 3; the first).
#[test]
fn ipckit_send_types_to_c_receiver_by_rule() {
    let s = Scratch::new("mqi-sysv-i2c");
    let bin = mq_bin(&s);
    let key = NumericKey::new(10);
    let ep = format!("{}?maxbytes=12000&mode=0600", key.endpoint());
    let key_text = sysv_key_text(&ep);
    let msgmax: usize = std::fs::read_to_string("/proc/sys/kernel/msgmax").unwrap().trim().parse().unwrap();
    let big = pattern(msgmax, 77);
    IPCKIT.run_ok(&["send", &ep, "--create", "--exclusive", "--type", "4", "four"], None);
    IPCKIT.run_ok(&["send", &ep, "--type", "2", ""], None);
    IPCKIT.run_ok(&["send", &ep, "--type", "2", "--stdin-whole"], Some(&big));
    IPCKIT.run_ok(&["send", &ep, "--type", "7", "seven"], None);
    IPCKIT.run_ok(&["send", &ep, "--type", "1", "one"], None);

    let stat = c_run(&bin, &["sysv-stat", &key_text]);
    assert_eq!(stat.text().trim(), "qnum=5 qbytes=12000 mode=600");
    let got = c_messages(&c_run(&bin, &["sysv-recv", &key_text, "2", "1"]));
    assert_messages(&got, &[(2, Vec::new())], "msgtyp 2");
    let got = c_messages(&c_run(&bin, &["sysv-recv", &key_text, "-3", "2"]));
    assert_messages(&got, &[(1, b"one".to_vec()), (2, big)], "msgtyp -3");
    // The same queue by its decimal key.
    let got = c_messages(&c_run(&bin, &["sysv-recv", &key.key().to_string(), "0", "2"]));
    assert_messages(&got, &[(4, b"four".to_vec()), (7, b"seven".to_vec())], "msgtyp 0");
    let stat = c_run(&bin, &["sysv-stat", &key_text]);
    assert!(stat.text().starts_with("qnum=0 "), "{}", stat.text());
}

/// The C program in the background (standard input closed).
fn c_bg(bin: &PathBuf, args: &[&str]) -> Bg {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    Bg::spawn(&mut cmd)
}

/// Waits (hang guard) until `pid` blocks in the system call; false when
/// the kernel does not tell or the process ended first (the message may
/// have been there already: the test is then less strict, not wrong).
fn wait_blocked(pid: u32, wchan: &str, nr: Option<&str>) -> bool {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while std::time::Instant::now() < deadline {
        match blocked_in_syscall(pid, wchan, nr) {
            Some(true) => return true,
            None => return false,
            Some(false) if !std::path::Path::new(&format!("/proc/{pid}")).exists() => return false,
            Some(false) => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
    panic!("process {pid} never blocked in {wchan} within {:?}", HANG_GUARD);
}

/// Receivers that block before anything is sent are woken by a sender in
/// the other language: C `mq_receive` by `ipckit send`, `ipckit recv` by C
/// `mq_send`; C `msgrcv` for type 9 only by `ipckit send --type 9` (a type
/// 1 message sent first stays queued), `ipckit recv --type 5` by C.
#[test]
fn blocked_receivers_are_woken_across_languages() {
    let s = Scratch::new("mqi-wake");
    let bin = mq_bin(&s);
    let posix = s.mq("q", "?maxmsg=4&msgsize=128");
    let name = mq_name(&posix);
    IPCKIT.run_ok(&["send", &posix, "--create"], None);

    let c = c_bg(&bin, &["posix-recv", name, "1"]);
    assert!(wait_blocked(c.pid(), "mq_timedreceive", mq_receive_syscall()), "C blocks in mq_receive");
    IPCKIT.run_ok(&["send", &posix, "--priority", "11", "wake C"], None);
    let out = c.finish();
    out.expect_code(0, "C posix-recv");
    assert_messages(&c_messages(&out), &[(11, b"wake C".to_vec())], "C woken by ipckit");

    let mut r = Bg::spawn(IPCKIT.command().args(["recv", &posix, "--count", "1", "--json"]));
    r.ready();
    assert!(wait_blocked(r.pid(), "mq_timedreceive", mq_receive_syscall()), "ipckit blocks in mq_receive");
    c_run(&bin, &["posix-send", name, "4:s:wake ipckit"]);
    let out = r.finish();
    out.expect_code(0, "ipckit recv");
    let v = out.json_lines();
    assert_eq!(v.len(), 1, "{}", out.text());
    assert_eq!((v[0]["priority"].as_i64(), json_payload(&v[0])), (Some(4), b"wake ipckit".to_vec()));
    assert_empty(&posix);

    let sysv = s.sysv_mq(1, "");
    let key = sysv_key_text(&sysv);
    IPCKIT.run_ok(&["send", &sysv, "--create"], None);
    let msgrcv_nr = sysv_msg_syscalls().1;
    let c = c_bg(&bin, &["sysv-recv", &key, "9", "1"]);
    assert!(wait_blocked(c.pid(), "msgrcv", msgrcv_nr), "C blocks in msgrcv");
    IPCKIT.run_ok(&["send", &sysv, "--type", "1", "not for C"], None);
    IPCKIT.run_ok(&["send", &sysv, "--type", "9", "for C"], None);
    let out = c.finish();
    out.expect_code(0, "C sysv-recv");
    assert_messages(&c_messages(&out), &[(9, b"for C".to_vec())], "C woken by type 9");

    let mut r = Bg::spawn(IPCKIT.command().args(["recv", &sysv, "--type", "5", "--count", "1", "--json"]));
    r.ready();
    assert!(wait_blocked(r.pid(), "msgrcv", msgrcv_nr), "ipckit blocks in msgrcv");
    c_run(&bin, &["sysv-send", &key, "3:s:not for ipckit", "5:s:for ipckit"]);
    let out = r.finish();
    out.expect_code(0, "ipckit recv --type 5");
    let v = out.json_lines();
    assert_eq!(v.len(), 1, "{}", out.text());
    assert_eq!((v[0]["type"].as_i64(), json_payload(&v[0])), (Some(5), b"for ipckit".to_vec()));
    // The others stayed queued, in order.
    assert_messages(
        &ipk_recv(&sysv, 2, "type", &[]),
        &[(1, b"not for C".to_vec()), (3, b"not for ipckit".to_vec())],
        "left over",
    );
    assert_empty(&sysv);
}

/// `ipckit send --create` run under `umask MASK`.
fn create_under_umask(mask: &str, ep: &str) {
    let script = format!("umask {mask} && exec \"$0\" \"$@\"");
    let out = run(Command::new("sh").args(["-c", &script, IPCKIT.path(), "send", ep, "--create"]), None);
    out.expect_code(0, &format!("create {ep} under umask {mask}"));
}

/// The mode C sees on a queue ipckit created: 0600 by default, else the
/// endpoint's `mode` (these modes are not changed by the umasks used).
#[test]
fn created_queues_have_the_endpoint_mode() {
    let s = Scratch::new("mqi-mode");
    let bin = mq_bin(&s);
    let rows = [
        (s.mq("default", "?maxmsg=1&msgsize=64"), "022", "600"),
        (s.mq("m640", "?maxmsg=1&msgsize=64&mode=0640"), "022", "640"),
        (s.sysv_mq(1, ""), "022", "600"),
        (s.sysv_mq(2, "&mode=0666"), "022", "666"),
        (s.sysv_mq(3, "&mode=0640"), "077", "640"),
    ];
    for (ep, mask, mode) in &rows {
        create_under_umask(mask, ep);
        let seen = if ep.starts_with("mq:") {
            c_run(&bin, &["posix-attr", mq_name(ep)]).text()
        } else {
            c_run(&bin, &["sysv-stat", &sysv_key_text(ep)]).text()
        };
        assert!(seen.trim().ends_with(&format!("mode={mode}")), "{ep} under umask {mask}: {seen}");
    }
}

/// A POSIX queue gets exactly the endpoint's mode whatever the umask, like
/// FIFOs and socket files do (`fifo.rs`, `unix.rs`): mq_open applies the
/// umask, so ipckit has to set the mode itself.
#[test]
fn posix_queue_mode_ignores_the_umask() {
    let s = Scratch::new("mqi-umask");
    let bin = mq_bin(&s);
    for (ep, mask, mode) in [
        (s.mq("m666", "?maxmsg=1&msgsize=64&mode=0666"), "022", "666"),
        (s.mq("m640", "?maxmsg=1&msgsize=64&mode=0640"), "077", "640"),
    ] {
        create_under_umask(mask, &ep);
        let seen = c_run(&bin, &["posix-attr", mq_name(&ep)]).text();
        assert!(seen.trim().ends_with(&format!("mode={mode}")), "{ep} under umask {mask}: {seen}");
    }
}
