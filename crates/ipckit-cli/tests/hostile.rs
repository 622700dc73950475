//! Hostile local clients against a socket receiver (`ipckit recv`): none
//! of them can stop it serving the others.
//!
//! - descriptors run out (`ulimit -n 32`, 40 clients): the connections it
//!   has are served on, new ones are accepted and closed (not left in the
//!   backlog), one warning;
//! - a client attaching 16 descriptors to every byte of an unfinished
//!   frame: dropped, its descriptors closed, the receiver holds few;
//! - many idle connections: a new sender's message is delivered at once;
//! - unfinished frames: bounded in total (`--max-buffered`), the largest
//!   dropped with a warning.
//!
//! The receiver is the real `ipckit recv` with `--count 1`: it exits once
//! the one message the test expects has arrived, and the test asserts what
//! it printed. Every wait has the hang guard.

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

use ipckit::socket::Connection;
use ipckit::{Endpoint, ErrorKind};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::Bg;
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

fn ep(text: &str) -> Endpoint {
    text.parse().expect("endpoint")
}

/// The receiver's open descriptors now.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// A field of `/proc/PID/status` in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB")
}

/// Whether a connection was ended by the receiver: a receive sees the end
/// (or a reset) within the hang guard instead of blocking.
fn ended(conn: &mut Connection) -> bool {
    match conn.recv_timeout(HANG_GUARD) {
        Err(e) => e.kind() == ErrorKind::Disconnected,
        Ok(m) => panic!("the receiver sent {:?}", m.data),
    }
}

/// Out of descriptors: `ulimit -n 32` and 40 clients. The first clients'
/// connections keep working, the last ones are ended at once (not left in
/// the backlog), and the receiver says so once.
fn out_of_descriptors(endpoint: &str, tag: &str) {
    let s = Scratch::new(tag);
    let text = endpoint.replace("PATH", &s.path("r.sock").display().to_string());
    let script = format!("ulimit -n 32 && exec \"$0\" recv '{text}' --count 1");
    let mut recv = Bg::spawn(std::process::Command::new("sh").args(["-c", &script, IPCKIT.path()]));
    let announced = recv.ready();
    let mut clients: Vec<Connection> =
        (0..40).map(|_| Connection::connect(&ep(&announced)).expect("connect")).collect();
    // The last client was accepted and closed: it sees the end.
    let last = clients.last_mut().expect("40 clients");
    assert!(ended(last), "{text}: a connection beyond the limit must be ended, not left hanging");
    // The first one is served.
    clients[0].send(b"served on").expect("send on an early connection");
    let out = recv.finish();
    out.expect_code(0, &format!("{text}: recv at the descriptor limit"));
    assert_eq!(out.text(), "served on\n");
    let warnings = out.stderr.matches("out of file descriptors").count();
    assert_eq!(warnings, 1, "{text}: one warning, not {warnings}: {}", out.stderr);
}

#[test]
fn out_of_descriptors_unix() {
    out_of_descriptors("unix:PATH", "fds-unix");
}

#[test]
fn out_of_descriptors_seqpacket() {
    out_of_descriptors("unix-seqpacket:PATH", "fds-seq");
}

#[test]
fn out_of_descriptors_tcp() {
    out_of_descriptors("tcp:127.0.0.1:0", "fds-tcp");
}

/// `sendmsg` of `data` with `fds` attached (SCM_RIGHTS).
fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(16))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    Ok(sendmsg(sock, &[IoSlice::new(data)], &mut control, SendFlags::NOSIGNAL)?)
}

/// A client keeps one frame unfinished while attaching 16 descriptors to
/// each byte: the receiver drops it and closes them, holding at most a
/// frame's worth at any time, and serves the next sender.
#[test]
fn descriptors_are_capped_per_frame() {
    let s = Scratch::new("fd-flood");
    let text = format!("unix:{}", s.path("r.sock").display());
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &text, "--count", "1"]));
    recv.ready();
    let devnull: Vec<OwnedFd> = (0..16).map(|_| std::fs::File::open("/dev/null").unwrap().into()).collect();
    let fds: Vec<BorrowedFd<'_>> = devnull.iter().map(AsFd::as_fd).collect();
    let mut flood = UnixStream::connect(s.path("r.sock")).expect("connect");
    // A frame of 1,000 bytes, of which 200 arrive, one at a time.
    flood.write_all(&1000u32.to_le_bytes()).unwrap();
    let mut most = 0;
    for _ in 0..200 {
        if send_with_fds(flood.as_fd(), b"x", &fds).is_err() {
            break; // dropped already
        }
        most = most.max(fds_of(recv.pid()));
    }
    flood.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut byte = [0u8; 1];
    let n = flood.read(&mut byte).unwrap_or(0);
    assert_eq!(n, 0, "the flooding connection is dropped");
    assert!(most < 64, "the receiver held {most} descriptors at once");
    let out = IPCKIT.run(&["send", &text, "after the flood"]);
    out.expect_code(0, "a sender after the flood");
    let out = recv.finish();
    out.expect_code(0, "recv");
    assert_eq!(out.text(), "after the flood\n");
    assert!(out.stderr.contains("more than 16 file descriptors"), "{}", out.stderr);
}

/// More idle connections than a fixed cap (256) and than the listen
/// backlog (128): a new sender's message is delivered at once, and no idle
/// connection is evicted.
#[test]
fn idle_connections_do_not_starve_a_receiver() {
    ipckit::process::raise_fd_limit().expect("raise the test's descriptor limit");
    let s = Scratch::new("idle");
    let text = format!("unix:{}", s.path("r.sock").display());
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &text, "--count", "2"]));
    recv.ready();
    // Connecting blocks when a receiver leaves its backlog full: the hang
    // guard turns that into a failure.
    let path = s.path("r.sock");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let conns: Vec<UnixStream> =
            (0..600).map(|i| UnixStream::connect(&path).unwrap_or_else(|e| panic!("idle {i}: {e}"))).collect();
        let _ = tx.send(conns);
    });
    let mut idle = rx.recv_timeout(HANG_GUARD).expect("600 connections accepted within the hang guard");
    let out = IPCKIT.run(&["send", &text, "--timeout", "30s", "hello"]);
    out.expect_code(0, "send past 600 idle connections");
    // The first idle connection was never evicted: it can still send.
    idle[0].write_all(&[3, 0, 0, 0, b'o', b'l', b'd']).unwrap();
    let out = recv.finish();
    out.expect_code(0, "recv");
    let text = out.text();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["hello", "old"]);
    drop(idle);
}

/// Clients that each announce 8 MiB and send all but one byte: the
/// receiver holds at most `--max-buffered` for them (plus its own memory),
/// drops the largest, warns, and serves the next sender.
#[test]
fn unfinished_frames_are_bounded_in_total() {
    let s = Scratch::new("buffered");
    let text = format!("unix:{}", s.path("r.sock").display());
    let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &text, "--count", "1", "--max-buffered", "16MiB"]));
    recv.ready();
    const FRAME: usize = 8 << 20;
    let pid = recv.pid();
    let baseline = status_kb(pid, "VmRSS");
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let mut c = UnixStream::connect(s.path("r.sock")).expect("connect");
            std::thread::spawn(move || {
                c.set_write_timeout(Some(HANG_GUARD)).unwrap();
                let mut frame = (FRAME as u32).to_le_bytes().to_vec();
                frame.resize(4 + FRAME - 1, 0x5a);
                // A dropped connection fails the write: that is expected.
                let _ = c.write_all(&frame);
                c
            })
        })
        .collect();
    let mut held: Vec<UnixStream> = clients.into_iter().map(|t| t.join().expect("client")).collect();
    let peak = status_kb(pid, "VmHWM");
    let out = IPCKIT.run(&["send", &text, "still serving"]);
    out.expect_code(0, "a sender after the hoarders");
    let out = recv.finish();
    out.expect_code(0, "recv");
    assert_eq!(out.text(), "still serving\n");
    let dropped = out.stderr.matches("dropped the connection").count();
    assert!(dropped >= 13, "16 frames of 8 MiB cannot fit 16 MiB: {dropped} dropped; {}", out.stderr);
    // 16 MiB of frames, and some slack for buffers in flight: never the
    // 128 MiB the clients sent.
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    assert!(grown_mib < 48, "the receiver grew by {grown_mib} MiB for 16 MiB of unfinished frames");
    held.clear();
}
