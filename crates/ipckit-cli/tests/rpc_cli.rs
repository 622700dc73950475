//! `ipckit serve` and `ipckit call`, end to end: real processes on every
//! transport request-response runs on (unix:, unix-seqpacket:, tcp:,
//! shm:, mq:, sysv-mq:), with shell commands as handlers.
//!
//! Readiness is the `ipckit: ready ENDPOINT` line, never a sleep; every
//! wait has the 30 s hang guard; concurrency is shown by behaviour (a
//! handler that can finish only while another one runs), not by time.
//! Every object is named for its test and checked to be gone at the end.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use ipckit::Options;
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::cli::{Ipckit, check_announced};
use ipckit_testkit::data::Rng;
use ipckit_testkit::program::{Bg, Out, assert_stderr, mkfifo};
use ipckit_testkit::scratch::Scratch;
use rustix::process::Signal;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// Every byte value, a newline and a NUL among them.
fn all_bytes() -> Vec<u8> {
    (0..=255u8).rev().collect()
}

/// The endpoint of `transport`, named for the test. Queues are small:
/// the tests of a machine share one user's `RLIMIT_MSGQUEUE`.
fn endpoint(s: &Scratch, transport: &str) -> String {
    match transport {
        "unix" => format!("unix:{}", s.path("rpc.sock").display()),
        "unix-seqpacket" => format!("unix-seqpacket:@{}", s.name("rpcseq")),
        "tcp" => "tcp:127.0.0.1:0".to_string(),
        "shm" => format!("shm:{}", s.name("rpcshm")),
        "mq" => s.mq("rpcq", "?maxmsg=2&msgsize=2048"),
        "sysv-mq" => s.sysv_mq(9, ""),
        other => panic!("unknown transport {other}"),
    }
}

const TRANSPORTS: &[&str] = &["unix", "unix-seqpacket", "tcp", "shm", "mq", "sysv-mq"];

/// `ipckit serve EP ARGS -- COMMAND` in the background, once ready: the
/// process and the endpoint it announced.
fn serve(ep: &str, args: &[&str], command: &[&str]) -> (Bg, String) {
    let mut cmd = IPCKIT.command();
    cmd.arg("serve").arg(ep).args(args).arg("--").args(command);
    let mut bg = Bg::spawn(&mut cmd);
    let announced = bg.ready();
    check_announced(ep, &announced);
    (bg, announced)
}

/// `sh -c SCRIPT sh ARGS...`
fn sh<'a>(script: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["sh", "-c", script, "sh"];
    v.extend_from_slice(args);
    v
}

/// `ipckit call EP ARGS...`
fn call(ep: &str, args: &[&str]) -> Out {
    IPCKIT.run(&[&["call", ep], args].concat())
}

/// What of a test is left on the machine: POSIX queues, sockets (abstract
/// or in the scratch directory), and the System V queue of `sysv` if it
/// still exists.
fn leftovers(s: &Scratch, sysv: Option<&str>) -> Vec<String> {
    let tag = s.name("");
    let mut left: Vec<String> = std::fs::read_dir("/dev/mqueue")
        .map(|d| {
            d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.contains(&tag)).collect()
        })
        .unwrap_or_default();
    left.extend(
        std::fs::read_to_string("/proc/net/unix")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&tag))
            .map(String::from),
    );
    left.extend(
        std::fs::read_dir(s.dir())
            .unwrap()
            .flatten()
            .map(|e| e.path().display().to_string())
            .filter(|p| p.ends_with(".sock")),
    );
    if let Some(ep) = sysv {
        let opened = ipckit::mq::SysvQueue::open(&ep.parse().unwrap(), &Options::new());
        if opened.is_ok() {
            left.push(ep.to_string());
        }
    }
    left
}

/// The System V endpoint among `ep`, for [`leftovers`].
fn sysv(ep: &str) -> Option<&str> {
    ep.starts_with("sysv-mq:").then_some(ep)
}

/// `tr a-z A-Z` on each transport: a request as an argument, one as
/// standard input (every byte value); the replies exact, with nothing
/// added; `--count 3` ends serve, which leaves nothing behind.
fn round_trip(transport: &str) {
    let s = Scratch::new(&format!("rpc-trip-{}", transport.replace('-', "_")));
    let ep = endpoint(&s, transport);
    let (serve, ep) = serve(&ep, &["--count", "3"], &["tr", "a-z", "A-Z"]);
    let out = call(&ep, &["hello"]);
    out.expect_code(0, "call hello");
    assert_eq!(out.stdout, b"HELLO", "{ep}: the reply exactly");
    let bytes = all_bytes();
    let out = IPCKIT.run_stdin(&["call", &ep], &bytes);
    out.expect_code(0, "call with standard input");
    assert_eq!(out.stdout, bytes.to_ascii_uppercase(), "{ep}: every byte value through tr");
    let out = call(&ep, &[""]);
    out.expect_code(0, "call with an empty message");
    assert_eq!(out.stdout, b"", "{ep}: an empty reply");
    let out = serve.finish();
    out.expect_code(0, "serve --count 3");
    assert_eq!(out.stderr.lines().count(), 1, "{ep}: nothing on stderr but the ready line: {}", out.stderr);
    assert_eq!(leftovers(&s, sysv(&ep)), Vec::<String>::new(), "{ep}: serve removed what it created");
    let out = call(&ep, &["again"]);
    out.expect_code(1, "call after serve ended");
    assert_stderr(&out, "no server there", &ep);
}

#[test]
fn round_trip_unix() {
    round_trip("unix");
}

#[test]
fn round_trip_unix_seqpacket() {
    round_trip("unix-seqpacket");
}

#[test]
fn round_trip_tcp() {
    round_trip("tcp");
}

#[test]
fn round_trip_shm() {
    round_trip("shm");
}

#[test]
fn round_trip_mq() {
    round_trip("mq");
}

#[test]
fn round_trip_sysv_mq() {
    round_trip("sysv-mq");
}

/// A handler that fails: the caller gets its last stderr line, exit 1;
/// the other lines are on serve's stderr. Then exit statuses and signals
/// without stderr.
fn handler_errors(transport: &str) {
    let s = Scratch::new(&format!("rpc-err-{}", transport.replace('-', "_")));
    let ep = endpoint(&s, transport);
    let script = "case $(cat) in \
        oops) echo first line >&2; echo oops >&2; echo >&2; exit 1;; \
        seven) exit 7;; \
        killed) kill -9 $$;; \
        esac";
    let (serve, ep) = serve(&ep, &["--count", "3"], &sh(script, &[]));
    let out = call(&ep, &["oops"]);
    out.expect_code(1, "a handler that fails");
    assert_eq!(out.stdout, b"", "no reply on stdout");
    assert_eq!(out.stderr, format!("ipckit: call {ep}: oops\n"), "the last non-empty line, one line");
    let out = call(&ep, &["seven"]);
    out.expect_code(1, "exit 7");
    assert_stderr(&out, "exit status 7", &ep);
    let out = call(&ep, &["killed"]);
    out.expect_code(1, "killed");
    assert_stderr(&out, "killed by signal 9", &ep);
    let out = serve.finish();
    out.expect_code(0, "serve");
    assert!(out.stderr.contains("first line\noops\n"), "{ep}: the handler's stderr passed through: {}", out.stderr);
    assert_eq!(leftovers(&s, sysv(&ep)), Vec::<String>::new(), "{ep}");
}

#[test]
fn handler_errors_unix() {
    handler_errors("unix");
}

#[test]
fn handler_errors_unix_seqpacket() {
    handler_errors("unix-seqpacket");
}

#[test]
fn handler_errors_tcp() {
    handler_errors("tcp");
}

#[test]
fn handler_errors_shm() {
    handler_errors("shm");
}

#[test]
fn handler_errors_mq() {
    handler_errors("mq");
}

#[test]
fn handler_errors_sysv_mq() {
    handler_errors("sysv-mq");
}

/// `call --timeout 200ms` to a handler that sleeps: exit 3; serve goes on,
/// and the next caller gets its own reply (the late one went nowhere).
fn timeout(transport: &str) {
    let s = Scratch::new(&format!("rpc-timeout-{}", transport.replace('-', "_")));
    let ep = endpoint(&s, transport);
    let (serve, ep) = serve(&ep, &["--count", "2"], &sh("sleep 1; cat", &[]));
    let out = call(&ep, &["--timeout", "200ms", "late"]);
    out.expect_code(3, "call --timeout 200ms");
    assert_stderr(&out, "no reply within the timeout", &ep);
    assert_eq!(out.stdout, b"");
    let out = call(&ep, &["next"]);
    out.expect_code(0, "the next call");
    assert_eq!(out.stdout, b"next", "{ep}: its own reply, not the late one");
    let out = serve.finish();
    out.expect_code(0, "serve");
    assert_eq!(leftovers(&s, sysv(&ep)), Vec::<String>::new(), "{ep}");
}

#[test]
fn timeout_unix() {
    timeout("unix");
}

#[test]
fn timeout_unix_seqpacket() {
    timeout("unix-seqpacket");
}

#[test]
fn timeout_tcp() {
    timeout("tcp");
}

#[test]
fn timeout_shm() {
    timeout("shm");
}

#[test]
fn timeout_mq() {
    timeout("mq");
}

#[test]
fn timeout_sysv_mq() {
    timeout("sysv-mq");
}

/// No server: exit 1 at once, saying so, on every transport.
#[test]
fn no_server_exits_1_at_once() {
    let s = Scratch::new("rpc-none");
    for transport in TRANSPORTS {
        let ep = match *transport {
            "tcp" => {
                // A port nobody listens on: bound, never listened.
                let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let port = sock.local_addr().unwrap().port();
                drop(sock);
                format!("tcp:127.0.0.1:{port}")
            }
            t => endpoint(&s, t),
        };
        let started = Instant::now();
        let out = call(&ep, &["--timeout", "20s", "hi"]);
        out.expect_code(1, &format!("call {ep} with no server"));
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
        assert_stderr(&out, &format!("ipckit: call {ep}: no server there ("), &ep);
        assert!(started.elapsed() < Duration::from_secs(10), "{ep}: no waiting for a server");
    }
    assert_eq!(leftovers(&s, None), Vec::<String>::new(), "call creates nothing");
}

/// Usage errors: exit 2, nothing created.
#[test]
fn usage_errors_exit_2() {
    let s = Scratch::new("rpc-usage");
    let dgram = format!("unix-dgram:{}", s.path("d.sock").display());
    let fifo = format!("fifo:{}", s.path("f").display());
    let mq = s.mq("usage", "");
    for (args, needle) in [
        (vec!["serve", &dgram, "--", "cat"], "request-response runs on unix:"),
        (vec!["serve", &fifo, "--", "cat"], "request-response runs on unix:"),
        (vec!["serve", &mq], "COMMAND"),
        (vec!["serve", &mq, "--jobs", "0", "--", "cat"], "0 is not in 1..=1024"),
        (vec!["serve", &mq, "--count", "-1", "--", "cat"], "negative"),
        (vec!["serve", "mq:nope", "--", "cat"], "mq:nope"),
        (vec!["call", &dgram, "hi"], "request-response runs on unix:"),
        (vec!["call", &mq, "--timeout", "-1s", "hi"], "negative"),
        (vec!["call", &mq, "a", "b"], "unexpected argument"),
    ] {
        let out = IPCKIT.run(&args);
        out.expect_code(2, &format!("{args:?}"));
        assert_stderr(&out, needle, &format!("{args:?}"));
    }
    assert_eq!(leftovers(&s, None), Vec::<String>::new());
    assert!(!std::path::Path::new("/dev/mqueue").join(&mq["mq:/".len()..]).exists(), "no queue created");
}

/// `--count 3`: three calls answered, then serve exits 0 and the socket
/// file is gone.
#[test]
fn count_ends_serve() {
    let s = Scratch::new("rpc-count");
    let (serve, ep) = serve(&endpoint(&s, "unix"), &["--count", "3", "--jobs", "2"], &["cat"]);
    for i in 0..3 {
        let msg = format!("call {i}");
        let out = call(&ep, &[&msg]);
        out.expect_code(0, &msg);
        assert_eq!(out.stdout, msg.as_bytes());
    }
    serve.finish().expect_code(0, "serve --count 3");
    assert!(!s.path("rpc.sock").exists(), "the socket file removed");
    call(&ep, &["a fourth"]).expect_code(1, "a fourth call");
}

/// `--jobs 2`: handler A can finish only once handler B has run (a FIFO
/// rendezvous: A reads it, B writes it, each open blocks until the other
/// end is open), so both complete only if they run at once.
fn two_at_once(transport: &str) {
    let s = Scratch::new(&format!("rpc-jobs-{}", transport.replace('-', "_")));
    let fifo = s.path("barrier");
    mkfifo(&fifo);
    let script = r#"if [ "$(cat)" = A ]; then read x < "$1"; echo "A after $x"; else echo B > "$1"; echo B; fi"#;
    let fifo_text = fifo.display().to_string();
    let (serve, ep) = serve(&endpoint(&s, transport), &["--jobs", "2", "--count", "2"], &sh(script, &[&fifo_text]));
    let a = Bg::spawn(IPCKIT.command().args(["call", &ep, "A"]));
    let b = call(&ep, &["B"]);
    b.expect_code(0, "call B");
    assert_eq!(b.stdout, b"B\n");
    let a = a.finish();
    a.expect_code(0, "call A");
    assert_eq!(a.stdout, b"A after B\n");
    serve.finish().expect_code(0, "serve --jobs 2 --count 2");
    assert_eq!(leftovers(&s, sysv(&ep)), Vec::<String>::new(), "{ep}");
}

#[test]
fn two_at_once_unix() {
    two_at_once("unix");
}

#[test]
fn two_at_once_shm() {
    two_at_once("shm");
}

#[test]
fn two_at_once_mq() {
    two_at_once("mq");
}

#[test]
fn two_at_once_sysv_mq() {
    two_at_once("sysv-mq");
}

/// `--jobs 3 --count 4` with five callers at once, the handlers held
/// until three run at once: exactly four are answered, then serve exits
/// (the fifth caller's connection closes with it).
#[test]
fn count_is_exact_with_jobs() {
    let s = Scratch::new("rpc-exact");
    let dir = s.dir().display().to_string();
    // Each handler leaves a mark, then waits for three marks: three run at
    // once, the fourth after them.
    let script = r#"n=$(cat); touch "$1/mark.$n"; while [ $(ls "$1" | grep -c '^mark\.') -lt 3 ]; do sleep 0.01; done; echo "$n""#;
    let (serve, ep) = serve(&endpoint(&s, "unix"), &["--jobs", "3", "--count", "4"], &sh(script, &[&dir]));
    let callers: Vec<Bg> = (0..5).map(|i| Bg::spawn(IPCKIT.command().args(["call", &ep, &i.to_string()]))).collect();
    let out = serve.finish();
    out.expect_code(0, "serve --count 4");
    let outs: Vec<Out> = callers.into_iter().map(Bg::finish).collect();
    let answered: Vec<&Out> = outs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(answered.len(), 4, "exactly four answered: {outs:?}");
    for o in answered {
        assert_eq!(o.stdout.len(), 2, "a reply of its own: {o:?}");
    }
    let unanswered = outs.iter().find(|o| !o.status.success()).expect("one unanswered");
    unanswered.expect_code(1, "the fifth caller");
    assert_stderr(unanswered, "the server is gone", "the fifth caller");
}

/// 4 MiB each way through `cat`: the request is written while the reply
/// is read (no deadlock on pipe buffers), and both arrive exactly.
#[test]
fn large_request_and_reply() {
    let s = Scratch::new("rpc-large");
    let mut data = vec![0u8; 4 << 20];
    Rng(7).fill(&mut data);
    let (serve, ep) = serve(&endpoint(&s, "unix"), &["--count", "1"], &["cat"]);
    let out = IPCKIT.run_stdin(&["call", &ep], &data);
    out.expect_code(0, "call with 4 MiB");
    assert!(out.stdout == data, "4 MiB back exactly ({} bytes)", out.stdout.len());
    serve.finish().expect_code(0, "serve");
}

/// A reply over serve's `--max-size`: an error reply naming it.
#[test]
fn reply_over_max_size_is_an_error_reply() {
    let s = Scratch::new("rpc-max");
    let (serve, ep) =
        serve(&endpoint(&s, "unix"), &["--count", "1", "--max-size", "1KiB"], &sh("head -c 5000 /dev/zero", &[]));
    let out = call(&ep, &["x"]);
    out.expect_code(1, "a reply of 5000 bytes");
    assert_stderr(&out, "the command's output exceeds the maximum of 1024 bytes (--max-size)", &ep);
    serve.finish().expect_code(0, "serve");
}

/// A raw client that sends an envelope shorter than its header (a len32
/// frame of 3 bytes): its connection is dropped, serve says so, and other
/// callers are served.
#[test]
fn short_envelope_drops_that_connection() {
    let s = Scratch::new("rpc-shortenv");
    let (mut serve, ep) = serve(&endpoint(&s, "unix"), &["--count", "1"], &["cat"]);
    let mut raw = std::os::unix::net::UnixStream::connect(s.path("rpc.sock")).unwrap();
    raw.write_all(&[3, 0, 0, 0, 1, 2, 3]).unwrap();
    raw.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest).expect("the server closes the connection");
    assert_eq!(rest, b"", "nothing comes back on it");
    let line = serve.wait_line("ipckit: recv request");
    assert!(line.contains("shorter than its 8-byte header; its connection was dropped"), "{line}");
    let out = call(&ep, &["still served"]);
    out.expect_code(0, "another caller");
    assert_eq!(out.stdout, b"still served");
    serve.finish().expect_code(0, "serve");
}

/// The same on the queues: a 3-byte message is dropped, reported, and
/// the next caller is served.
fn short_message_on_a_queue(transport: &str) {
    let s = Scratch::new(&format!("rpc-short-{}", transport.replace('-', "_")));
    let (mut serve, ep) = serve(&endpoint(&s, transport), &["--count", "1"], &["cat"]);
    let mut send = vec!["send", ep.as_str(), "abc"];
    if transport == "sysv-mq" {
        send.extend(["--type", "1"]);
    }
    IPCKIT.run_ok(&send, None);
    let line = serve.wait_line("ipckit: recv request");
    assert!(line.contains("shorter than its 16-byte header"), "{line}");
    let out = call(&ep, &["still served"]);
    out.expect_code(0, "another caller");
    assert_eq!(out.stdout, b"still served");
    serve.finish().expect_code(0, "serve");
    assert_eq!(leftovers(&s, sysv(&ep)), Vec::<String>::new(), "{ep}");
}

#[test]
fn short_message_on_mq() {
    short_message_on_a_queue("mq");
}

#[test]
fn short_message_on_sysv_mq() {
    short_message_on_a_queue("sysv-mq");
}

/// SIGTERM and SIGINT while a handler runs (a shell whose child sleeps):
/// the caller gets an error reply, the handler and its child are gone,
/// serve dies of the signal and leaves nothing it created.
fn signal_ends_serve(transport: &str, sig: Signal) {
    let s = Scratch::new(&format!("rpc-sig-{transport}-{}", sig.as_raw()));
    let pidfile = s.path("pid").display().to_string();
    let script = r#"echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; sleep 60; cat"#;
    let (serve, ep) = serve(&endpoint(&s, transport), &[], &sh(script, &[&pidfile]));
    let caller = Bg::spawn(IPCKIT.command().args(["call", &ep, "hi"]));
    let deadline = Instant::now() + HANG_GUARD;
    let pid: i32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile) {
            break text.trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "the handler never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    serve.signal(sig);
    let out = caller.finish();
    out.expect_code(1, "the caller of a handler stopped by the signal");
    assert_stderr(&out, "killed by signal 15", &ep);
    let out = serve.finish();
    assert_eq!(out.status.signal(), Some(sig.as_raw()), "serve dies of the signal: {out:?}");
    // The handler's process group is gone: the shell and its sleep.
    let deadline = Instant::now() + HANG_GUARD;
    while let Some(alive) = live_member_of(pid) {
        assert!(Instant::now() < deadline, "process {alive} of the handler's group outlived serve");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(leftovers(&s, sysv(&ep)), Vec::<String>::new(), "{ep}: what serve created is gone");
}

/// A process of process group `pgid` that has not exited (zombies, which
/// init reaps when it does, do not count).
fn live_member_of(pgid: i32) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp ...: comm may hold spaces.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            return Some(pid);
        }
    }
    None
}

#[test]
fn sigterm_ends_serve_unix() {
    signal_ends_serve("unix", Signal::TERM);
}

#[test]
fn sigint_ends_serve_mq() {
    signal_ends_serve("mq", Signal::INT);
}

#[test]
fn sigterm_ends_serve_sysv_mq() {
    signal_ends_serve("sysv-mq", Signal::TERM);
}

#[test]
fn sigint_ends_serve_shm() {
    signal_ends_serve("shm", Signal::INT);
}

/// A request queue that existed before serve started is left as it was.
#[test]
fn an_existing_queue_is_left() {
    let s = Scratch::new("rpc-existing");
    for transport in ["mq", "sysv-mq"] {
        let ep = endpoint(&s, transport);
        let opts = Options::new().create(true);
        if transport == "mq" {
            drop(ipckit::mq::PosixQueue::open(&ep.parse().unwrap(), &opts).unwrap());
        } else {
            drop(ipckit::mq::SysvQueue::open(&ep.parse().unwrap(), &opts).unwrap());
        }
        let (serve, ep) = serve(&ep, &[], &["cat"]);
        assert_eq!(call(&ep, &["x"]).stdout, b"x");
        serve.signal(Signal::TERM);
        assert_eq!(serve.finish().status.signal(), Some(15));
        let still = match transport {
            "mq" => ipckit::mq::PosixQueue::open(&ep.parse().unwrap(), &Options::new()).map(drop),
            _ => ipckit::mq::SysvQueue::open(&ep.parse().unwrap(), &Options::new()).map(drop),
        };
        assert!(still.is_ok(), "{ep}: the queue serve did not create is still there: {still:?}");
    }
}

/// A command that cannot be run: each caller gets the reason, serve goes
/// on (and says so).
#[test]
fn command_not_found() {
    let s = Scratch::new("rpc-notfound");
    let (mut serve, ep) = serve(&endpoint(&s, "unix"), &["--count", "1"], &["/nonexistent/handler"]);
    let out = call(&ep, &["x"]);
    out.expect_code(1, "a handler that cannot run");
    assert_stderr(&out, "run /nonexistent/handler: no such file or directory (ENOENT)", &ep);
    let line = serve.wait_line("ipckit: run ");
    assert!(line.contains("/nonexistent/handler"), "{line}");
    serve.finish().expect_code(0, "serve");
}

/// `call` reads standard input only when no MESSAGE is given, and all of
/// it, its newline too.
#[test]
fn stdin_only_without_message() {
    let s = Scratch::new("rpc-stdin");
    let (serve, ep) = serve(&endpoint(&s, "unix"), &["--count", "2"], &["cat"]);
    let out = IPCKIT.run_stdin(&["call", &ep, "argument"], b"ignored");
    out.expect_code(0, "call with a MESSAGE");
    assert_eq!(out.stdout, b"argument");
    let out = IPCKIT.run_stdin(&["call", &ep], b"from stdin\n");
    out.expect_code(0, "call from stdin");
    assert_eq!(out.stdout, b"from stdin\n", "standard input exactly");
    serve.finish().expect_code(0, "serve");
}

/// The reply links of callers that are gone. Each `ipckit call` is a new
/// client; on `mq:` the server keeps every one's reply queue open
/// (unlinked, so invisible in /dev/mqueue, but charged to the user's
/// RLIMIT_MSGQUEUE: with default queue sizes about ten callers exhaust
/// it, and every queue of that user then fails with EMFILE); on `shm:` it
/// keeps every one's reply channel (5 descriptors and its mappings). The
/// library drops a link only when a send on it fails, which never happens
/// for a caller that made its one call.
#[test]
fn serve_keeps_no_link_to_callers_that_are_gone() {
    let s = Scratch::new("rpc-gone");
    for transport in ["mq", "shm"] {
        let (serve, ep) = serve(&endpoint(&s, transport), &[], &["cat"]);
        let fds = || std::fs::read_dir(format!("/proc/{}/fd", serve.pid())).unwrap().count();
        call(&ep, &["warm up"]).expect_code(0, "the first call");
        let before = fds();
        for i in 0..20 {
            call(&ep, &[&i.to_string()]).expect_code(0, "a call");
        }
        // The last caller's goodbye may still be on its way: wait for it
        // (bounded by the hang guard), then the descriptors must be back.
        let start = Instant::now();
        while fds() > before + 4 && start.elapsed() < HANG_GUARD {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(fds() <= before + 4, "{ep}: serve holds {} descriptors after 20 callers, {before} before", fds());
        serve.signal(Signal::TERM);
        serve.finish();
    }
}
