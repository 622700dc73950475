//! `ipckit send` with no message arguments streams standard input: each
//! line goes out as soon as it is read, memory stays bounded by
//! `--max-size`, and `--timeout` applies to each message, not to the
//! whole command. Commands that read stdin whole (`send --stdin-whole`,
//! `shm write`) refuse too much input before sending or writing anything,
//! without waiting for the end of it.
//!
//! The sender's standard input is a pipe the test holds open, so that
//! "delivered while the input is still open" is observed, not timed. The
//! receiving end is the library's `Receiver` in the test process.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use ipckit::{ErrorKind, Options, Receiver};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::procfs::wait_until_blocked;
use ipckit_testkit::program::{Bg, assert_stderr};
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// `ipckit ARGS` in the background, its standard input a pipe whose write
/// end the test holds.
fn fed(args: &[&str]) -> (Bg, File) {
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    let bg = Bg::spawn(IPCKIT.command().args(args).stdin(reader));
    (bg, File::from(writer))
}

/// A receiver in this process, creating what needs creating.
fn bind(ep: &str) -> Receiver {
    let ep: ipckit::Endpoint = ep.parse().unwrap_or_else(|e| panic!("{ep}: {e}"));
    Receiver::bind_with(&ep, &Options::new().create(true)).unwrap_or_else(|e| panic!("bind {ep}: {e}"))
}

/// The next message, within the hang guard.
#[track_caller]
fn next(rx: &mut Receiver, what: &str) -> Vec<u8> {
    match rx.recv_timeout(HANG_GUARD) {
        Ok(m) => m.data,
        Err(e) => panic!("{what}: nothing received within the hang guard: {e}"),
    }
}

#[track_caller]
fn still_running(bg: &mut Bg, what: &str) {
    assert_eq!(bg.try_wait().expect("try_wait"), None, "{what}: the sender exited while its input was open");
}

/// Each line is delivered while standard input is still open, on every
/// kind of endpoint; an empty line is an empty message, and a last line
/// without a newline is sent at the end of the input.
#[test]
fn send_streams_each_line_as_it_is_read() {
    let s = Scratch::new("stream-lines");
    let endpoints = [
        format!("unix:@{}", s.name("stream")),
        format!("unix-seqpacket:@{}", s.name("seq")),
        format!("unix-dgram:@{}", s.name("dgram")),
        format!("fifo:{}", s.path("fifo").display()),
        "tcp:127.0.0.1:0".to_string(),
        s.mq("q", ""),
        s.sysv_mq(1, ""),
    ];
    for ep in &endpoints {
        let mut rx = bind(ep);
        let target = rx.name().to_string();
        let (mut sender, mut stdin) = fed(&["send", &target]);
        stdin.write_all(b"first\n").expect("write line 1");
        assert_eq!(next(&mut rx, ep), b"first", "{ep}");
        still_running(&mut sender, ep);
        stdin.write_all(b"second\n\nlast, without a newline").expect("write the rest");
        assert_eq!(next(&mut rx, ep), b"second", "{ep}");
        assert_eq!(next(&mut rx, ep), b"", "{ep}: an empty line is an empty message");
        still_running(&mut sender, ep);
        drop(stdin);
        assert_eq!(next(&mut rx, ep), b"last, without a newline", "{ep}");
        sender.finish().expect_code(0, &format!("send {ep} at the end of its input"));
    }
}

/// `--timeout` bounds the connect and each message, not the command: a
/// sender whose input stays open longer than the timeout keeps going, and
/// a message that has to wait for room (a queue of one) still waits, up to
/// the timeout, after the command has run for longer than that.
#[test]
fn send_timeout_applies_to_each_message_when_streaming() {
    let s = Scratch::new("stream-timeout");
    let ep = s.mq("one", "?maxmsg=1");
    let mut rx = bind(&ep);
    let (mut sender, mut stdin) = fed(&["send", &ep, "--timeout", "2s"]);
    stdin.write_all(b"1\n").expect("write");
    assert_eq!(next(&mut rx, "line 1"), b"1");
    // The behaviour under test: the command outlives its --timeout.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    still_running(&mut sender, "after the timeout, input open");
    // "2" fills the queue; "3" waits for room.
    stdin.write_all(b"2\n3\n").expect("write");
    // Waiting for room is a ppoll on the queue descriptor.
    let ppoll = if cfg!(target_arch = "x86_64") { Some("271") } else { Some("73") };
    wait_until_blocked(&mut sender, "poll", ppoll);
    assert_eq!(next(&mut rx, "line 2"), b"2");
    assert_eq!(next(&mut rx, "line 3"), b"3");
    still_running(&mut sender, "after line 3, input open");
    drop(stdin);
    sender.finish().expect_code(0, "send at the end of its input");
}

/// A line longer than `--max-size` is refused (`TooLarge`, exit 1, both
/// sizes named) as soon as `--max-size + 1` bytes of it are read: the
/// sender does not wait for the end of the line, and sends none of it.
/// The lines before it were sent.
#[test]
fn send_refuses_a_line_over_max_size_without_reading_all_of_it() {
    let s = Scratch::new("stream-long");
    let ep = format!("unix:@{}", s.name("u"));
    let mut rx = bind(&ep);
    let (sender, mut stdin) = fed(&["send", &ep, "--max-size", "1KiB"]);
    stdin.write_all(b"short\n").expect("write");
    stdin.write_all(&[b'x'; 3000]).expect("write a long line, no newline, input kept open");
    assert_eq!(next(&mut rx, "the line before"), b"short");
    let out = sender.finish();
    out.expect_code(1, "a line over --max-size");
    for needle in ["--max-size", "1024", "1025", "line 2", &ep] {
        assert_stderr(&out, needle, "a line over --max-size");
    }
    drop(stdin);
    match rx.try_recv() {
        Err(e) if e.kind() == ErrorKind::Empty || e.kind() == ErrorKind::Disconnected => {}
        other => panic!("nothing of the long line may arrive: {other:?}"),
    }
}

/// `--stdin-whole`: input over `--max-size` is refused (`TooLarge`, exit
/// status 1) after reading `--max-size + 1` bytes, before connecting: the
/// queue that `--create` would make is not made. Exactly `--max-size`
/// bytes go through.
#[test]
fn send_stdin_whole_refuses_input_over_max_size_before_anything() {
    let s = Scratch::new("whole-long");
    let ep = s.mq("q", "");
    let queue_file = format!("/dev/mqueue/{}", ep.trim_start_matches("mq:/"));
    let (sender, mut stdin) = fed(&["send", &ep, "--create", "--stdin-whole", "--max-size", "100"]);
    stdin.write_all(&[7u8; 300]).expect("write 300 bytes, input kept open");
    let out = sender.finish();
    out.expect_code(1, "--stdin-whole over --max-size");
    for needle in ["--max-size", "100 bytes", "101"] {
        assert_stderr(&out, needle, "--stdin-whole over --max-size");
    }
    assert!(!Path::new(&queue_file).exists(), "nothing was created: {}", out.stderr);
    drop(stdin);

    let exact = [9u8; 100];
    let out = IPCKIT.run_stdin(&["send", &ep, "--create", "--stdin-whole", "--max-size", "100"], &exact);
    out.expect_code(0, "exactly --max-size bytes");
    let mut rx = bind(&ep);
    assert_eq!(next(&mut rx, "the whole input"), exact);
}

/// `shm write`: input longer than the room from the offset to the end of
/// the segment is refused after reading one byte more than fits, without
/// waiting for the end of the input, and nothing is written.
#[test]
fn shm_write_refuses_input_past_the_end_without_reading_all_of_it() {
    let s = Scratch::new("shm-write-long");
    let seg = s.shm("seg");
    IPCKIT.run_ok(&["shm", "create", &seg, "--size", "64"], None);
    let (writer, mut stdin) = fed(&["shm", "write", &seg, "--offset", "16"]);
    stdin.write_all(&[0xab; 1000]).expect("write 1000 bytes, input kept open");
    let out = writer.finish();
    assert!(out.status.code().is_some_and(|c| c == 1 || c == 2), "refused: {:?} {}", out.status, out.stderr);
    assert_stderr(&out, "64-byte segment", "input past the end");
    drop(stdin);
    let read = IPCKIT.run_ok(&["shm", "read", &seg], None);
    assert_eq!(read.stdout, vec![0u8; 64], "nothing was written");
}
