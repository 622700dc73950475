//! The wrapper's own cost per message, without the scheduler.
//!
//! One thread holds both ends of each mechanism and sends a message, then
//! receives it: nothing ever blocks, so no wake-up (tens of microseconds on
//! some machines, and noisy) hides the user-space work. Each mechanism is
//! timed through ipckit and through direct rustix calls on the very same
//! descriptors, making the same system calls with the same bytes; trials
//! alternate. The difference is what ipckit adds per message.
//!
//! `ipckit bench` measures the two-process round trip, which is what users
//! see; this isolates the part ipckit can change.
//!
//! Run with `cargo test --release -p ipckit --bench overhead -- --nocapture`
//! (a plain test in a bench target: no nightly `#[bench]`, no criterion).
//! It prints nanoseconds per message and asserts nothing about time.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use ipckit::pipe::{PipeReader, PipeWriter};
use ipckit::socket::{Connection, Listener, MAX_FDS};
use ipckit::{Endpoint, Options, Receiver, Sender};
use rustix::net::{RecvAncillaryBuffer, RecvFlags, SendAncillaryBuffer, SendFlags};

/// Messages per trial, and trials per mode.
const MESSAGES: usize = 20_000;
const TRIALS: usize = 7;
/// The message size: small, so that copying does not dominate.
const SIZE: usize = 64;

/// How the raw loop moves bytes on a descriptor, as ipckit does there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Calls {
    /// Pipes and FIFOs: `writev` [len32 header, payload]; `read` header, payload.
    Pipe,
    /// Stream sockets: the same with `sendmsg` / `recvmsg`.
    Stream,
    /// Message sockets: one `sendmsg`, one `recvmsg`.
    Packet,
}

/// The two ends of a mechanism, through ipckit.
trait Pair {
    fn send(&mut self, msg: &[u8]);
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// (sending descriptor, receiving descriptor).
    fn fds(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>);
}

/// A [`Pair`] of an ipckit sending end and receiving end, each with the
/// same `send` and `recv_into` (ipckit gives them one macro, not a trait);
/// `|tx, rx| fds` borrows their descriptors.
macro_rules! pair {
    ($name:ident($tx:ty, $rx:ty), |$t:ident, $r:ident| $fds:expr) => {
        struct $name($tx, $rx);

        impl Pair for $name {
            fn send(&mut self, msg: &[u8]) {
                self.0.send(msg).expect("send");
            }
            fn recv(&mut self, buf: &mut [u8]) -> usize {
                self.1.recv_into(buf).expect("recv").0
            }
            fn fds(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
                let ($t, $r) = (&self.0, &self.1);
                $fds
            }
        }
    };
}

pair!(Conns(Connection, Connection), |tx, rx| (tx.as_fd(), rx.as_fd()));
pair!(Channel(Sender, Receiver), |tx, rx| (tx.poll_fd().expect("sender fd"), rx.poll_fd().expect("receiver fd")));
pair!(Pipe(PipeWriter, PipeReader), |tx, rx| (tx.as_fd(), rx.as_fd()));

fn opts() -> Options {
    Options::new().max_message(64 * 1024)
}

/// A connected pair over a listener at `ep`.
fn conns(ep: &str) -> Conns {
    let listener = Listener::bind_with(&ep.parse().expect("endpoint"), &opts()).expect("bind");
    let client = Connection::connect_with(listener.local_endpoint(), &opts()).expect("connect");
    Conns(client, listener.accept().expect("accept"))
}

/// A sender and receiver on `ep`.
fn channel(ep: &str) -> Channel {
    let ep: Endpoint = ep.parse().expect("endpoint");
    let rx = Receiver::bind_with(&ep, &opts().create(true)).expect("bind");
    Channel(Sender::connect_with(&ep, &opts()).expect("connect"), rx)
}

fn raw_send(calls: Calls, fd: BorrowedFd<'_>, msg: &[u8]) {
    let header = (msg.len() as u32).to_le_bytes();
    let framed = [IoSlice::new(&header), IoSlice::new(msg)];
    let iov = if calls == Calls::Packet { &framed[1..] } else { &framed[..] };
    let n = match calls {
        Calls::Pipe => rustix::io::writev(fd, iov),
        _ => rustix::net::sendmsg(fd, iov, &mut SendAncillaryBuffer::default(), SendFlags::NOSIGNAL),
    }
    .expect("write");
    assert_eq!(n, iov.iter().map(|s| s.len()).sum::<usize>(), "a short write in a benchmark that never fills a buffer");
}

fn raw_read(calls: Calls, fd: BorrowedFd<'_>, buf: &mut [u8]) -> usize {
    if calls == Calls::Pipe {
        return rustix::io::read(fd, buf).expect("read");
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS), ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg =
        rustix::net::recvmsg(fd, &mut [IoSliceMut::new(buf)], &mut control, RecvFlags::CMSG_CLOEXEC).expect("recvmsg");
    control.drain().for_each(drop);
    msg.bytes
}

fn raw_recv(calls: Calls, fd: BorrowedFd<'_>, buf: &mut [u8]) -> usize {
    if calls == Calls::Packet {
        return raw_read(calls, fd, buf);
    }
    let mut header = [0u8; 4];
    assert_eq!(raw_read(calls, fd, &mut header), 4, "whole header");
    let len = u32::from_le_bytes(header) as usize;
    assert_eq!(raw_read(calls, fd, &mut buf[..len]), len, "whole payload");
    len
}

/// Nanoseconds per message of `MESSAGES` send-then-receive steps.
fn trial(mut step: impl FnMut(&mut [u8]) -> usize) -> f64 {
    let mut buf = vec![7u8; 64 * 1024];
    let start = Instant::now();
    for _ in 0..MESSAGES {
        assert_eq!(step(&mut buf), SIZE);
    }
    start.elapsed().as_nanos() as f64 / MESSAGES as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `pair` both ways, trials alternating; prints one line.
fn compare(name: &str, calls: Calls, pair: &mut dyn Pair) {
    let (mut wrapped, mut raw) = (Vec::new(), Vec::new());
    let msg = [7u8; SIZE];
    for _ in 0..TRIALS {
        wrapped.push(trial(|buf| {
            pair.send(&msg);
            pair.recv(buf)
        }));
        let (tx, rx) = pair.fds();
        raw.push(trial(|buf| {
            raw_send(calls, tx, &msg);
            raw_recv(calls, rx, buf)
        }));
    }
    let (w, r) = (median(wrapped), median(raw));
    println!("{name:15} ipckit {w:7.0} ns   raw {r:7.0} ns   ipckit adds {:5.0} ns ({:.3}x)", w - r, w / r);
}

#[test]
fn overhead() {
    let dir = std::env::temp_dir().join(format!("ipckit-bench-overhead-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("scratch dir");
    let tag = format!("ipckit-bench-overhead-{}", std::process::id());
    println!("{SIZE}-byte messages, send then receive in one thread; median of {TRIALS} trials of {MESSAGES}");
    let (r, w) = ipckit::pipe::pipe_with(&opts()).expect("pipe");
    compare("pipe", Calls::Pipe, &mut Pipe(w, r));
    compare("fifo", Calls::Pipe, &mut channel(&format!("fifo:{}", dir.join("fifo").display())));
    compare("unix-stream", Calls::Stream, &mut conns(&format!("unix:@{tag}-stream")));
    compare("unix-seqpacket", Calls::Packet, &mut conns(&format!("unix-seqpacket:@{tag}-seq")));
    compare("unix-dgram", Calls::Packet, &mut channel(&format!("unix-dgram:@{tag}-dgram")));
    compare("tcp", Calls::Stream, &mut conns("tcp:127.0.0.1:0"));
    std::fs::remove_dir_all(&dir).expect("remove scratch dir");
}
