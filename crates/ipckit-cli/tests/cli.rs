//! The `ipckit` command, end to end: real `ipckit recv` and `ipckit send`
//! processes on every transport, the exit codes (0 ok, 1 error, 2 usage,
//! 3 timed out) and the messages that go with them.
//!
//! Readiness is the `ipckit: ready ENDPOINT` line (or `--ready-fd`), never a
//! sleep; every wait has the 30 s hang guard; every file lives in a
//! `Scratch` directory and every process is killed if the test fails.

use std::collections::BTreeSet;
use std::os::unix::fs::FileTypeExt;
use std::process::Command;
use std::sync::mpsc;

use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::cli::{Ipckit, check_announced, json_payload};
use ipckit_testkit::procfs::wait_until_retrying;
use ipckit_testkit::program::{Bg, assert_stderr, mkfifo, run};
use ipckit_testkit::scratch::Scratch;
use rustix::process::Signal;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// A non-UTF-8 payload with a newline, a NUL and bytes over 0x7f.
const BINARY: &[u8] = b"\xff\x00bin\nary\xfe";

fn endpoint(scratch: &Scratch, transport: &str) -> String {
    match transport {
        "fifo" => format!("fifo:{}", scratch.path("fifo").display()),
        "unix" => format!("unix:{}", scratch.path("stream.sock").display()),
        "unix-abstract" => format!("unix:@{}", scratch.name("stream")),
        "unix-seqpacket" => format!("unix-seqpacket:{}", scratch.path("seq.sock").display()),
        "unix-seqpacket-abstract" => format!("unix-seqpacket:@{}", scratch.name("seq")),
        "unix-dgram" => format!("unix-dgram:{}", scratch.path("dgram.sock").display()),
        "unix-dgram-abstract" => format!("unix-dgram:@{}", scratch.name("dgram")),
        "tcp4" => "tcp:127.0.0.1:0".to_string(),
        "tcp6" => "tcp:[::1]:0".to_string(),
        other => panic!("unknown transport {other}"),
    }
}

/// Whether `recv --json` reports the sender's credentials on this endpoint.
fn has_credentials(ep: &str) -> bool {
    ep.starts_with("unix")
}

/// `ipckit recv --count 3 --json` in the background; two senders: one with
/// two arguments, one with a non-UTF-8 payload on stdin (`--stdin-whole`).
fn three_messages(transport: &str) {
    let scratch = Scratch::new(&format!("three-{transport}"));
    let ep = endpoint(&scratch, transport);
    let mut recv =
        Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "3", "--json", "--create", "--timeout", "20s"]));
    let announced = recv.ready();
    check_announced(&ep, &announced);

    let out = run(IPCKIT.command().args(["send", &announced, "one", "two words"]), None);
    out.expect_code(0, "send with arguments");
    let pid1 = out.pid;
    let out = run(IPCKIT.command().args(["send", &announced, "--stdin-whole"]), Some(BINARY));
    out.expect_code(0, "send --stdin-whole");
    let pid2 = out.pid;

    let out = recv.finish();
    out.expect_code(0, "recv --count 3");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 3, "three JSON lines: {}", out.text());
    let me = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    let mut got = Vec::new();
    for v in &lines {
        let data = json_payload(v);
        if has_credentials(&ep) {
            assert_eq!(v["uid"].as_u64(), Some(me.0 as u64), "{v}");
            assert_eq!(v["gid"].as_u64(), Some(me.1 as u64), "{v}");
            let pid = v["pid"].as_u64().expect("pid") as u32;
            let want = if data == BINARY { pid2 } else { pid1 };
            assert_eq!(pid, want, "pid of the sender of {v}");
        } else {
            for key in ["pid", "uid", "gid"] {
                assert!(v.get(key).is_none(), "{ep} has no credentials, got {v}");
            }
        }
        assert!(v.get("fds").is_none(), "no fds were passed: {v}");
        got.push(data);
    }
    // One sender's messages arrive in order; two senders may interleave.
    let one = got.iter().position(|m| m == b"one").expect("\"one\" received");
    let two = got.iter().position(|m| m == b"two words").expect("\"two words\" received");
    assert!(one < two, "messages of one sender in order: {got:?}");
    assert!(got.iter().any(|m| m == BINARY), "binary message received: {got:?}");
    assert_eq!(out.stderr.lines().count(), 1, "only the ready line on stderr: {}", out.stderr);
}

#[test]
fn three_messages_fifo() {
    three_messages("fifo");
}

#[test]
fn three_messages_unix_path() {
    three_messages("unix");
}

#[test]
fn three_messages_unix_abstract() {
    three_messages("unix-abstract");
}

#[test]
fn three_messages_unix_seqpacket() {
    three_messages("unix-seqpacket");
}

#[test]
fn three_messages_unix_seqpacket_abstract() {
    three_messages("unix-seqpacket-abstract");
}

#[test]
fn three_messages_unix_dgram() {
    three_messages("unix-dgram");
}

#[test]
fn three_messages_unix_dgram_abstract() {
    three_messages("unix-dgram-abstract");
}

#[test]
fn three_messages_tcp_v4() {
    three_messages("tcp4");
}

#[test]
fn three_messages_tcp_v6() {
    three_messages("tcp6");
}

/// The receiver is stopped (SIGSTOP) while a sender connects, sends an
/// empty message and another one, and exits: everything must still be
/// there when the receiver continues.
fn empty_message_then_sender_exits(transport: &str) {
    let scratch = Scratch::new(&format!("empty-{transport}"));
    let ep = endpoint(&scratch, transport);
    let mut recv =
        Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "2", "--json", "--create", "--timeout", "10s"]));
    let ep = recv.ready();
    recv.signal(Signal::STOP);
    let out = run(IPCKIT.command().args(["send", &ep, "", "after"]), None);
    recv.signal(Signal::CONT);
    out.expect_code(0, "send an empty message");
    let out = recv.finish();
    out.expect_code(0, "recv both messages");
    let got: Vec<Vec<u8>> = out.json_lines().iter().map(json_payload).collect();
    assert_eq!(got, vec![b"".to_vec(), b"after".to_vec()]);
}

#[test]
fn empty_message_fifo() {
    empty_message_then_sender_exits("fifo");
}

#[test]
fn empty_message_unix_path() {
    empty_message_then_sender_exits("unix");
}

#[test]
fn empty_message_unix_seqpacket() {
    empty_message_then_sender_exits("unix-seqpacket");
}

#[test]
fn empty_message_unix_dgram() {
    empty_message_then_sender_exits("unix-dgram");
}

#[test]
fn empty_message_tcp() {
    empty_message_then_sender_exits("tcp4");
}

/// One sender that breaks off inside a frame (a crash, a bug, a hostile
/// peer) must not stop the receiver that serves every other sender: the
/// library reports it once as `Disconnected` and keeps serving.
#[test]
fn recv_survives_a_sender_that_breaks_off_mid_frame() {
    use std::io::Write;
    let scratch = Scratch::new("broken-sender");
    let path = scratch.path("mailbox.sock");
    let ep = format!("unix:{}", path.display());
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "1", "--timeout", "10s"]));
    recv.ready();
    // Stopped, so that both senders are queued before it reads anything.
    recv.signal(Signal::STOP);
    let mut broken = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    broken.write_all(&[10, 0, 0, 0, b'a', b'b', b'c']).expect("write a partial frame");
    drop(broken);
    let good = run(IPCKIT.command().args(["send", &ep, "ok"]), None);
    recv.signal(Signal::CONT);
    good.expect_code(0, "the well-behaved sender");
    let out = recv.finish();
    assert!(out.stderr.contains("middle of a frame"), "the broken frame is reported: {}", out.stderr);
    out.expect_code(0, "recv after a broken sender");
    assert_eq!(out.text(), "ok\n");
}

/// Malformed command lines: exit 2, and the message names what was wrong.
#[test]
fn usage_errors_exit_2_and_name_the_text() {
    let scratch = Scratch::new("usage");
    let sock = format!("unix:{}", scratch.path("s").display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["recv".into(), "carrier-pigeon:/x".into()], "carrier-pigeon"),
        (vec!["send".into(), "carrier-pigeon:/x".into(), "m".into()], "carrier-pigeon"),
        (vec!["rm".into(), "carrier-pigeon:/x".into()], "carrier-pigeon"),
        (vec!["recv".into(), "nope".into()], "\"nope\""),
        (vec!["recv".into(), "unix:".into()], "\"unix:\""),
        (vec!["send".into(), "tcp:127.0.0.1".into(), "m".into()], "tcp:127.0.0.1"),
        (vec!["send".into(), "tcp:localhost:70000".into(), "m".into()], "70000"),
        (vec!["recv".into(), "tcp:::1:80".into()], "tcp:::1:80"),
        (vec!["recv".into(), "fifo:/x?color=red".into()], "color"),
        (vec!["recv".into(), sock.clone(), "--bogus".into()], "--bogus"),
        (vec!["send".into(), sock.clone(), "--bogus".into()], "--bogus"),
        (vec!["recv".into(), sock.clone(), "--timeout".into(), "5parsecs".into()], "5parsecs"),
        (vec!["recv".into(), sock.clone(), "--framing".into(), "morse".into()], "morse"),
        (vec!["send".into(), sock.clone(), "--max-size".into(), "lots".into()], "lots"),
        (vec!["recv".into(), sock.clone(), "--count".into(), "many".into()], "many"),
        (vec!["recv".into(), sock.clone(), "--json".into(), "--raw".into()], "--raw"),
        (vec!["recv".into(), sock.clone(), "--ready-fd".into(), "1".into()], "--ready-fd"),
        (vec!["recv".into(), sock.clone(), "--ready-fd".into(), "917".into()], "--ready-fd"),
        (vec!["frobnicate".into()], "frobnicate"),
        (vec!["rm".into(), format!("unix:@{}", scratch.name("x"))], "abstract"),
    ];
    for (args, needle) in cases {
        let out = run(IPCKIT.command().args(&args), None);
        out.expect_code(2, &format!("{args:?}"));
        assert!(out.stderr.contains(needle), "{args:?}: stderr should name {needle:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    // Nothing was created for the rejected receivers.
    assert!(!scratch.path("s").exists());
}

/// Nobody at the other end: exit 1 at once (one attempt without
/// `--timeout`), with a message that names the endpoint.
#[test]
fn nothing_listening_exits_1() {
    let scratch = Scratch::new("nobody");
    let fifo = scratch.path("fifo");
    mkfifo(&fifo);
    // A socket file nobody listens on any more.
    let stale = scratch.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let cases = [
        (format!("unix:{}", scratch.path("missing.sock").display()), "no socket"),
        (format!("unix-seqpacket:{}", scratch.path("missing.sock").display()), "no socket"),
        (format!("unix-dgram:{}", scratch.path("missing.sock").display()), "no socket"),
        (format!("unix:{}", stale.display()), "nothing is listening"),
        (format!("unix:@{}", scratch.name("nobody")), "refused"),
        (format!("fifo:{}", scratch.path("missing-fifo").display()), "--create"),
        (format!("fifo:{}", fifo.display()), "no reader"),
    ];
    for (ep, why) in &cases {
        let out = run(IPCKIT.command().args(["send", ep, "hello"]), None);
        out.expect_code(1, ep);
        assert!(out.stderr.contains(ep.as_str()), "{ep}: message names the endpoint: {}", out.stderr);
        assert!(out.stderr.contains(why), "{ep}: message says {why:?}: {}", out.stderr);
    }
    // Sending did not create the missing FIFO (no --create).
    assert!(!scratch.path("missing-fifo").exists());
    // Receiving from a FIFO that does not exist, without --create.
    let missing = format!("fifo:{}", scratch.path("missing-fifo").display());
    let out = run(IPCKIT.command().args(["recv", &missing]), None);
    out.expect_code(1, "recv from a missing FIFO");
    assert!(out.stderr.contains(&missing), "{}", out.stderr);
    assert!(!scratch.path("missing-fifo").exists());
}

/// A Unix socket path with something else there is "not a socket" (exit
/// 1 at once, also with `--timeout`: no receiver can ever bind there), not
/// "nothing is listening"; a path in a directory that does not exist says
/// so, naming the user's path, never the temporary name a receiver binds
/// first.
#[test]
fn unix_paths_that_are_not_sockets_or_lack_a_directory() {
    let scratch = Scratch::new("notsock");
    let file = scratch.path("regular");
    std::fs::write(&file, b"not a socket").unwrap();
    let dir = scratch.path("dir");
    std::fs::create_dir(&dir).unwrap();
    let missing_dir = scratch.path("no-such-dir");
    for scheme in ["unix", "unix-seqpacket", "unix-dgram"] {
        for (path, kind) in [(&file, "regular file"), (&dir, "directory")] {
            let ep = format!("{scheme}:{}", path.display());
            for extra in [&[][..], &["--timeout", "20s"][..]] {
                let mut args = vec!["send", ep.as_str()];
                args.extend_from_slice(extra);
                args.push("hello");
                let out = IPCKIT.run(&args);
                out.expect_code(1, &format!("{args:?}"));
                let what = format!("{args:?}");
                assert_stderr(&out, &ep, &what);
                assert_stderr(&out, &format!("not a socket ({} is a {kind})", path.display()), &what);
                assert!(!out.stderr.contains("listening"), "{what}: {}", out.stderr);
            }
        }
        assert_eq!(std::fs::read(&file).unwrap(), b"not a socket", "the file is untouched");
        let ep = format!("{scheme}:{}", missing_dir.join("x.sock").display());
        let says = format!("the directory {} does not exist", missing_dir.display());
        for args in [vec!["recv", ep.as_str(), "--count", "1"], vec!["send", ep.as_str(), "hello"]] {
            let out = IPCKIT.run(&args);
            out.expect_code(1, &format!("{args:?}"));
            let what = format!("{args:?}");
            assert_stderr(&out, &ep, &what);
            assert_stderr(&out, &says, &what);
            assert!(!out.stderr.contains(".ipckit-"), "{what}: names a temporary file: {}", out.stderr);
        }
    }
    assert!(!missing_dir.exists());
}

/// A frame over PIPE_BUF (4096 bytes) on a FIFO is not written atomically,
/// so another writer's frames can interleave with it: `send` warns, once
/// per sender, and sends it. A frame of exactly 4096 bytes (a 4092-byte
/// payload and its 4-byte length) draws no warning.
#[test]
fn fifo_frames_over_pipe_buf_are_warned_about_once() {
    let scratch = Scratch::new("pipebuf");
    let ep = format!("fifo:{}", scratch.path("fifo").display());
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--create", "--count", "4", "--json"]));
    recv.ready();
    let fits = "f".repeat(4092);
    let out = IPCKIT.run(&["send", &ep, &fits]);
    out.expect_code(0, "a 4096-byte frame");
    assert!(!out.stderr.contains("warning"), "a 4096-byte frame is atomic: {}", out.stderr);
    let (a, b) = ("a".repeat(5000), "b".repeat(4093));
    let out = IPCKIT.run(&["send", &ep, &a, &b, &fits]);
    out.expect_code(0, "two frames over PIPE_BUF");
    assert_eq!(out.stderr.matches("ipckit: warning:").count(), 1, "one warning per sender:\n{}", out.stderr);
    assert_stderr(&out, &ep, "the warning");
    assert_stderr(&out, "5004 bytes", "the warning names the frame");
    assert_stderr(&out, "PIPE_BUF (4096 bytes)", "the warning");
    assert_stderr(&out, "interleave", "the warning");
    let out = recv.finish();
    out.expect_code(0, "recv");
    let got: Vec<Vec<u8>> = out.json_lines().iter().map(json_payload).collect();
    assert_eq!(got, [fits.as_bytes(), a.as_bytes(), b.as_bytes(), fits.as_bytes()]);
    // And `send --help` says so.
    let help = IPCKIT.run_ok(&["send", "--help"], None).text();
    assert!(help.contains("frames over 4 KiB (PIPE_BUF) can interleave"), "{help}");
}

/// `recv --timeout` with nobody sending: exit 3 on every transport.
#[test]
fn recv_timeout_exits_3() {
    let scratch = Scratch::new("recv-timeout");
    for transport in ["fifo", "unix", "unix-abstract", "unix-seqpacket", "unix-dgram", "tcp4", "tcp6"] {
        let ep = endpoint(&scratch, transport);
        let out = run(IPCKIT.command().args(["recv", &ep, "--create", "--timeout", "200ms"]), None);
        out.expect_code(3, &ep);
        assert!(out.stdout.is_empty(), "{ep}: no message printed");
        assert!(out.stderr.contains("ipckit: ready "), "{ep}: it was ready first: {}", out.stderr);
        assert!(out.stderr.contains("timeout"), "{ep}: says it timed out: {}", out.stderr);
    }
    // The socket files the receivers created are gone again.
    for name in ["stream.sock", "seq.sock", "dgram.sock"] {
        assert!(!scratch.path(name).exists(), "{name} removed by the receiver that made it");
    }
}

/// `send --timeout` with nobody ever there: exit 3.
#[test]
fn send_timeout_with_nobody_exits_3() {
    let scratch = Scratch::new("send-timeout");
    for ep in [
        format!("unix:{}", scratch.path("missing.sock").display()),
        format!("fifo:{}", scratch.path("missing-fifo").display()),
    ] {
        let out = run(IPCKIT.command().args(["send", &ep, "--timeout", "200ms", "hello"]), None);
        out.expect_code(3, &ep);
        assert!(out.stderr.contains(&ep), "{ep}: {}", out.stderr);
    }
}

/// `send --timeout 5s` waits for a receiver that starts after it.
#[test]
fn send_with_timeout_waits_for_a_late_receiver() {
    let scratch = Scratch::new("late-recv");
    for ep in [
        format!("unix:{}", scratch.path("late.sock").display()),
        format!("unix-dgram:@{}", scratch.name("late")),
        format!("fifo:{}", scratch.path("late-fifo").display()),
    ] {
        let mut send = Bg::spawn(IPCKIT.command().args(["send", &ep, "--timeout", "20s", "--create", "early bird"]));
        if !wait_until_retrying(&mut send) {
            eprintln!("note: this kernel does not show whether the sender is retrying");
        }
        let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "1", "--create"]));
        recv.ready();
        send.finish().expect_code(0, &format!("late send to {ep}"));
        let out = recv.finish();
        out.expect_code(0, &format!("late recv on {ep}"));
        assert_eq!(out.text(), "early bird\n", "{ep}");
    }
}

/// A socket path owned by a live receiver is refused; one left by a
/// receiver killed with SIGKILL is stale and replaced.
#[test]
fn live_socket_is_refused_stale_socket_is_replaced() {
    let scratch = Scratch::new("stale");
    for scheme in ["unix", "unix-seqpacket", "unix-dgram"] {
        let path = scratch.path(&format!("{scheme}.sock"));
        let ep = format!("{scheme}:{}", path.display());

        // Live: the second receiver fails and leaves the first one working.
        let mut first = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "1"]));
        first.ready();
        let out = run(IPCKIT.command().args(["recv", &ep, "--count", "1"]), None);
        out.expect_code(1, &format!("second recv on {ep}"));
        assert!(out.stderr.contains(&ep), "{}", out.stderr);
        assert!(out.stderr.contains("live"), "says a live receiver owns it: {}", out.stderr);
        run(IPCKIT.command().args(["send", &ep, "still mine"]), None).expect_code(0, "send to the first receiver");
        let out = first.finish();
        out.expect_code(0, "first recv");
        assert_eq!(out.text(), "still mine\n");
        assert!(!path.exists(), "{ep}: the receiver removes the socket file it made");

        // Stale: killed receivers leave the file behind.
        let mut doomed = Bg::spawn(IPCKIT.command().args(["recv", &ep]));
        doomed.ready();
        doomed.signal(Signal::KILL);
        let out = doomed.finish();
        assert_eq!(out.status.code(), None, "killed by a signal");
        let meta = std::fs::symlink_metadata(&path).expect("a killed receiver leaves its socket file");
        assert!(meta.file_type().is_socket());
        let mut next = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "1"]));
        assert_eq!(next.ready(), ep);
        run(IPCKIT.command().args(["send", &ep, "fresh"]), None).expect_code(0, "send to the replacement");
        let out = next.finish();
        out.expect_code(0, "recv on a replaced stale socket");
        assert_eq!(out.text(), "fresh\n");
    }
}

/// An abstract name owned by a live receiver is refused too.
#[test]
fn live_abstract_name_is_refused() {
    let scratch = Scratch::new("abstract-live");
    let ep = format!("unix:@{}", scratch.name("taken"));
    let mut first = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "1"]));
    first.ready();
    let out = run(IPCKIT.command().args(["recv", &ep]), None);
    out.expect_code(1, "second recv on an abstract name");
    assert!(out.stderr.contains(&ep), "{}", out.stderr);
    run(IPCKIT.command().args(["send", &ep, "ok"]), None).expect_code(0, "send");
    let out = first.finish();
    out.expect_code(0, "first recv");
    assert_eq!(out.text(), "ok\n");
}

/// `--raw` writes the payload bytes exactly; without `--stdin-whole`,
/// each stdin line (whatever its bytes) is one message.
#[test]
fn raw_output_is_exact() {
    let scratch = Scratch::new("raw");
    let input: &[u8] = b"\xff\x00a\r\n\nzz\xfe\n \t\n";
    let lines: [&[u8]; 4] = [b"\xff\x00a\r", b"", b"zz\xfe", b" \t"];
    // Not unix-seqpacket: see empty_message_unix_seqpacket (an empty
    // message may be taken for the sender's close).
    for transport in ["fifo", "unix", "unix-dgram", "tcp4"] {
        let ep = endpoint(&scratch, transport);
        let mut recv =
            Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "4", "--raw", "--create", "--timeout", "20s"]));
        let ep = recv.ready();
        run(IPCKIT.command().args(["send", &ep]), Some(input)).expect_code(0, "send stdin lines");
        let out = recv.finish();
        out.expect_code(0, &format!("recv --raw on {ep}"));
        assert_eq!(out.stdout, lines.concat(), "{ep}: raw output");
    }
    // The same lines with --json: one object each, in order.
    let ep = endpoint(&scratch, "unix-abstract");
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "4", "--json"]));
    recv.ready();
    run(IPCKIT.command().args(["send", &ep]), Some(input)).expect_code(0, "send stdin lines");
    let out = recv.finish();
    out.expect_code(0, "recv --json");
    let got: Vec<Vec<u8>> = out.json_lines().iter().map(json_payload).collect();
    assert_eq!(got, lines.iter().map(|l| l.to_vec()).collect::<Vec<_>>());
}

/// `--framing lines` over a FIFO; a message with a newline cannot be sent
/// that way, and its failure leaves nothing half-written.
#[test]
fn lines_framing_over_fifo() {
    let scratch = Scratch::new("lines");
    let ep = endpoint(&scratch, "fifo");
    let mut recv =
        Bg::spawn(IPCKIT.command().args(["recv", &ep, "--create", "--framing", "lines", "--count", "3", "--json"]));
    recv.ready();
    let out = run(IPCKIT.command().args(["send", &ep, "--framing", "lines", "two\nlines"]), None);
    assert!(!out.status.success(), "a newline in a lines message is refused");
    assert!(out.stderr.contains("\\n"), "{}", out.stderr);
    run(IPCKIT.command().args(["send", &ep, "--framing", "lines", "a", "", "c c"]), None).expect_code(0, "send lines");
    let out = recv.finish();
    out.expect_code(0, "recv lines");
    let got: Vec<Vec<u8>> = out.json_lines().iter().map(json_payload).collect();
    assert_eq!(got, vec![b"a".to_vec(), b"".to_vec(), b"c c".to_vec()]);
}

/// `--max-size` on the sending side: a longer message is refused.
#[test]
fn send_max_size() {
    let scratch = Scratch::new("max-size");
    let ep = endpoint(&scratch, "unix");
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "1"]));
    recv.ready();
    let out = run(IPCKIT.command().args(["send", &ep, "--max-size", "4", "hello"]), None);
    out.expect_code(1, "send over --max-size");
    assert!(out.stderr.contains("maximum of 4 bytes"), "{}", out.stderr);
    run(IPCKIT.command().args(["send", &ep, "--max-size", "4", "four"]), None).expect_code(0, "send at --max-size");
    let out = recv.finish();
    out.expect_code(0, "recv");
    assert_eq!(out.text(), "four\n", "only the message that fits arrived");
}

/// `ipckit rm` removes FIFOs and socket files, and nothing else.
#[test]
fn rm_fifo_and_socket_file() {
    let scratch = Scratch::new("rm");
    let fifo = scratch.path("f");
    mkfifo(&fifo);
    let sock = scratch.path("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
    let plain = scratch.path("plain");
    std::fs::write(&plain, b"keep me").unwrap();

    // The wrong kind of file is refused and left alone.
    for (ep, path) in [
        (format!("fifo:{}", sock.display()), &sock),
        (format!("unix:{}", fifo.display()), &fifo),
        (format!("fifo:{}", plain.display()), &plain),
        (format!("unix-dgram:{}", plain.display()), &plain),
    ] {
        let out = run(IPCKIT.command().args(["rm", &ep]), None);
        assert!(!out.status.success(), "rm {ep} must fail");
        assert!(out.stderr.contains(&ep), "{}", out.stderr);
        assert!(path.exists(), "rm {ep} left {} alone", path.display());
    }

    for (ep, path) in [(format!("fifo:{}", fifo.display()), &fifo), (format!("unix:{}", sock.display()), &sock)] {
        run(IPCKIT.command().args(["rm", &ep]), None).expect_code(0, &format!("rm {ep}"));
        assert!(std::fs::symlink_metadata(path).is_err(), "{} removed", path.display());
        let out = run(IPCKIT.command().args(["rm", &ep]), None);
        out.expect_code(1, &format!("rm {ep} again"));
        assert!(out.stderr.contains(&ep), "{}", out.stderr);
    }
    assert_eq!(std::fs::read(&plain).unwrap(), b"keep me");
}

/// `--ready-fd 3`: the shell opens fd 3 (a FIFO the test reads) and execs
/// `ipckit recv`, which writes `ready ENDPOINT` there (with the real TCP
/// port) and closes it.
#[test]
fn ready_fd() {
    let scratch = Scratch::new("ready-fd");
    for ep in ["tcp:127.0.0.1:0".to_string(), format!("unix:{}", scratch.path("r.sock").display())] {
        let ready = scratch.path("ready");
        let _ = std::fs::remove_file(&ready);
        mkfifo(&ready);
        let (tx, rx) = mpsc::channel();
        let reader_path = ready.clone();
        // Opening a FIFO for reading waits for the writer: in a thread, so
        // that the test's wait has a hang guard.
        std::thread::spawn(move || {
            let _ = tx.send(std::fs::read_to_string(&reader_path));
        });
        let mut recv = Bg::spawn(
            Command::new("sh")
                .args(["-c", "exec \"$0\" recv \"$1\" --count 1 --ready-fd 3 3>\"$2\""])
                .arg(IPCKIT.path())
                .arg(&ep)
                .arg(&ready)
                .stdin(std::process::Stdio::null()),
        );
        let text = rx.recv_timeout(HANG_GUARD).expect("ready-fd written within the hang guard").expect("read");
        let announced = text.strip_prefix("ready ").and_then(|t| t.strip_suffix('\n')).unwrap_or_else(|| {
            panic!("ready-fd says {text:?}, expected \"ready ENDPOINT\\n\"");
        });
        check_announced(&ep, announced);
        assert_eq!(recv.ready(), announced, "the stderr line names the same endpoint");
        run(IPCKIT.command().args(["send", announced, "via ready-fd"]), None).expect_code(0, "send");
        let out = recv.finish();
        out.expect_code(0, "recv --ready-fd");
        assert_eq!(out.text(), "via ready-fd\n");
    }
}

/// Several senders at once into one receiver: nothing lost, nothing torn,
/// each sender's messages in order.
#[test]
fn many_senders_one_receiver() {
    let scratch = Scratch::new("many");
    for transport in ["unix", "unix-seqpacket", "unix-dgram", "tcp4", "fifo"] {
        let ep = endpoint(&scratch, transport);
        let (senders, each) = (6, 20);
        let mut recv =
            Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", &(senders * each).to_string(), "--create"]));
        let ep = recv.ready();
        let mut procs = Vec::new();
        for s in 0..senders {
            let msgs: Vec<String> =
                (0..each).map(|i| format!("sender {s} message {i:03} {}", "x".repeat(s * 100))).collect();
            procs.push(Bg::spawn(IPCKIT.command().arg("send").arg(&ep).args(&msgs)));
        }
        for p in procs {
            p.finish().expect_code(0, "sender");
        }
        let out = recv.finish();
        out.expect_code(0, &format!("recv on {ep}"));
        let text = out.text();
        let mut last = vec![None::<usize>; senders];
        let mut seen = BTreeSet::new();
        for line in text.lines() {
            let mut words = line.split(' ');
            assert_eq!(words.next(), Some("sender"), "{line}");
            let s: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(words.next(), Some("message"));
            let i: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(words.next(), Some("x".repeat(s * 100).as_str()), "{ep}: message intact");
            assert!(last[s].is_none_or(|l| l < i), "{ep}: sender {s} in order");
            last[s] = Some(i);
            seen.insert((s, i));
        }
        assert_eq!(seen.len(), senders * each, "{ep}: every message once");
    }
}
