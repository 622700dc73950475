//! One thread and two processes; the three forms; readiness.

use std::io::IoSlice;
use std::time::Duration;

use ipckit::{ErrorKind, Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;

use super::support::{channel, ep, pair};

/// Bind, connect, send and receive in one thread: the receiver's service
/// thread welcomes the sender.
#[test]
fn one_thread_round_trip_and_the_three_forms() {
    let s = Scratch::new("shm-basic");
    let text = channel(&s, "basic", "");
    let (mut rx, mut tx) = pair(&text);
    assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty);
    assert_eq!(rx.recv_timeout(Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::TimedOut);
    tx.send(b"hello").unwrap();
    tx.send_vectored(&[IoSlice::new(b"gath"), IoSlice::new(b""), IoSlice::new(b"ered")]).unwrap();
    tx.try_send(b"").unwrap();
    let m = rx.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(m.data, b"hello");
    assert_eq!(m.meta.creds.map(|c| c.pid), Some(std::process::id() as i32), "the sender's pid");
    // A buffer too small keeps the message for the next call.
    let mut small = [0u8; 3];
    let e = rx.recv_into(&mut small).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    let mut buf = [0u8; 16];
    let (n, _) = rx.recv_into_timeout(&mut buf, HANG_GUARD).unwrap();
    assert_eq!(&buf[..n], b"gathered");
    assert_eq!(rx.try_recv().unwrap().data, b"");
    assert_eq!(rx.connections(), 1);
    assert_eq!(rx.name(), text);
}

/// Child: connects to `IPCKIT_EP` and sends `IPCKIT_COUNT` numbered
/// messages.
#[test]
#[ignore = "child process entry point"]
fn child_numbered_sender() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let count: u32 = env("IPCKIT_COUNT").parse().unwrap();
    let mut tx = Sender::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
    for i in 0..count {
        tx.send(&i.to_le_bytes()).unwrap();
    }
}

/// After `try_recv` says `Empty`, `poll_fd` turns readable when a sender
/// in another process publishes: the receiver said it would wait.
#[test]
fn receiver_poll_fd_turns_readable_after_empty() {
    let s = Scratch::new("shm-pollrx");
    let text = channel(&s, "pollrx", "");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let child = Guarded::spawn(
        rerun("basics::child_numbered_sender", "sender").env("IPCKIT_EP", &text).env("IPCKIT_COUNT", "3"),
    );
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while got.len() < 3 {
        match rx.try_recv() {
            Ok(m) => got.push(u32::from_le_bytes(m.data[..4].try_into().unwrap())),
            Err(e) if e.kind() == ErrorKind::Empty => {
                assert!(std::time::Instant::now() < deadline, "no message within the hang guard");
                let fd = rx.poll_fd().expect("shm: has a descriptor");
                let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
                let guard = rustix::event::Timespec { tv_sec: HANG_GUARD.as_secs() as i64, tv_nsec: 0 };
                let n = rustix::event::poll(&mut fds, Some(&guard)).unwrap();
                assert_eq!(n, 1, "poll_fd never turned readable");
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, [0, 1, 2]);
    assert!(child.wait().success());
}

/// After `try_send` says `Full`, the sender's `poll_fd` turns readable
/// when the receiver makes room.
#[test]
fn sender_poll_fd_turns_readable_after_full() {
    let s = Scratch::new("shm-polltx");
    let text = channel(&s, "polltx", "?size=4KiB");
    let (mut rx, mut tx) = pair(&text);
    let mut sent = 0u32;
    loop {
        match tx.try_send(&[7u8; 500]) {
            Ok(()) => sent += 1,
            Err(e) if e.kind() == ErrorKind::Full => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent >= 7, "a 4 KiB ring holds 7 records of 508 bytes; sent {sent}");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let m = rx.recv_timeout(HANG_GUARD).unwrap();
            assert_eq!(m.data, [7u8; 500]);
        });
        let fd = tx.poll_fd().expect("shm: has a descriptor");
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        let guard = rustix::event::Timespec { tv_sec: HANG_GUARD.as_secs() as i64, tv_nsec: 0 };
        let n = rustix::event::poll(&mut fds, Some(&guard)).unwrap();
        assert_eq!(n, 1, "the sender's poll_fd never turned readable");
    });
    tx.try_send(&[8u8; 500]).expect("room after the receiver took one");
}

/// A receiver serves several senders, each in order, and says how many
/// are connected.
#[test]
fn several_senders_each_in_order() {
    let s = Scratch::new("shm-many");
    let text = channel(&s, "many", "");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let children: Vec<Guarded> = (0..4)
        .map(|_| {
            Guarded::spawn(
                rerun("basics::child_numbered_sender", "sender").env("IPCKIT_EP", &text).env("IPCKIT_COUNT", "1000"),
            )
        })
        .collect();
    let mut next = std::collections::HashMap::new();
    for _ in 0..4000 {
        let m = rx.recv_timeout(HANG_GUARD).unwrap();
        let pid = m.meta.creds.unwrap().pid;
        let seq = u32::from_le_bytes(m.data[..4].try_into().unwrap());
        let expect = next.entry(pid).or_insert(0u32);
        assert_eq!(seq, *expect, "sender {pid}: order kept");
        *expect += 1;
    }
    assert_eq!(next.len(), 4);
    for c in children {
        assert!(c.wait().success());
    }
}
