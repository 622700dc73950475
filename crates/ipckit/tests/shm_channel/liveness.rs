//! A receiver's end is seen at a sender's very next send (its liveness
//! page), also on the `try_` path that an event loop drives; a busy
//! receiver still notices departures; a message too big for the caller's
//! buffer does not starve the other senders; `has_buffered_message` says
//! when a ring holds a message although `poll_fd` is not readable.

use std::time::Duration;

use ipckit::{ErrorKind, Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;
use rustix::process::{Pid, Signal, kill_process};

use super::support::{channel, ep, pair};

/// Child: binds `IPCKIT_EP`, says so on stderr, and sleeps until killed
/// (it never receives).
#[test]
#[ignore = "child process entry point"]
fn child_idle_receiver() {
    let Some(_) = child_role() else { return };
    let _rx = Receiver::bind(&ep(&env("IPCKIT_EP"))).unwrap();
    eprintln!("bound");
    std::thread::sleep(HANG_GUARD * 2);
}

fn receiver_child(text: &str) -> (Guarded, Sender) {
    let child = Guarded::spawn(rerun("liveness::child_idle_receiver", "receiver").env("IPCKIT_EP", text));
    let tx = Sender::connect_timeout(&ep(text), &Options::new(), HANG_GUARD).unwrap();
    (child, tx)
}

fn kill_and_reap(mut child: Guarded) {
    kill_process(Pid::from_raw(child.child().id() as i32).unwrap(), Signal::KILL).unwrap();
    let _ = child.wait();
}

/// With room in the ring, the first send after the receiver was SIGKILLed
/// is `Disconnected`: nothing is accepted into a ring nobody will read.
#[test]
fn the_next_send_after_a_killed_receiver_is_disconnected() {
    let s = Scratch::new("shm-live-send");
    let text = channel(&s, "send", "");
    let (child, mut tx) = receiver_child(&text);
    tx.send(b"before").unwrap();
    kill_and_reap(child);
    let e = tx.send(b"after").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    assert_eq!(tx.try_send(b"again").unwrap_err().kind(), ErrorKind::Disconnected);
}

/// An event loop on a full ring (`try_send` → `Full`, poll `poll_fd`,
/// again) learns that the receiver was killed: `Disconnected`, not `Full`
/// for ever.
#[test]
fn try_send_on_a_full_ring_sees_a_killed_receiver() {
    let s = Scratch::new("shm-live-try");
    let text = channel(&s, "try", "?size=4KiB");
    let (child, mut tx) = receiver_child(&text);
    while tx.try_send(&[1u8; 1000]).is_ok() {}
    kill_and_reap(child);
    let fd = tx.poll_fd().unwrap();
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    let guard = rustix::event::Timespec { tv_sec: HANG_GUARD.as_secs() as i64, tv_nsec: 0 };
    assert_eq!(rustix::event::poll(&mut fds, Some(&guard)).unwrap(), 1, "poll_fd readable: the receiver is gone");
    let e = tx.try_send(&[1u8; 1000]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
}

/// After `Full` and a pop, the wake-up is read by the next `try_send`: the
/// sender's `poll_fd` is not left readable when there is no room.
#[test]
fn the_senders_poll_fd_is_not_stale() {
    let s = Scratch::new("shm-live-stale");
    let text = channel(&s, "stale", "?size=4KiB");
    let (mut rx, mut tx) = pair(&text);
    while tx.try_send(&[1u8; 1000]).is_ok() {}
    rx.recv_timeout(HANG_GUARD).unwrap(); // room for one, and a wake-up
    tx.try_send(&[1u8; 1000]).unwrap();
    assert_eq!(tx.try_send(&[1u8; 1000]).unwrap_err().kind(), ErrorKind::Full);
    let fd = tx.poll_fd().unwrap();
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
    assert_eq!(rustix::event::poll(&mut fds, Some(&zero)).unwrap(), 0, "readable with no room: a stale wake-up");
}

/// Child: sends `IPCKIT_COUNT` messages (`u32::MAX`: until killed).
#[test]
#[ignore = "child process entry point"]
fn child_streamer() {
    let Some(_) = child_role() else { return };
    let mut tx = Sender::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    let count: u32 = env("IPCKIT_COUNT").parse().unwrap();
    for i in 0..count {
        tx.send(&i.to_le_bytes()).unwrap();
    }
}

/// With `?senders=2`, one sender streaming and the other gone, a new
/// sender gets the free place: the busy receiver noticed the departure.
#[test]
fn a_busy_receiver_notices_departures() {
    let s = Scratch::new("shm-live-dep");
    let text = channel(&s, "dep", "?senders=2");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let streamer = Guarded::spawn(
        rerun("liveness::child_streamer", "streamer").env("IPCKIT_EP", &text).env("IPCKIT_COUNT", "4000000000"),
    );
    let streamer_pid = streamer.0.as_ref().unwrap().id() as i32;
    // The streamer holds one place and keeps the receiver busy.
    while rx.recv_timeout(HANG_GUARD).unwrap().meta.creds.unwrap().pid != streamer_pid {}
    let mut leaver =
        Guarded::spawn(rerun("liveness::child_streamer", "leaver").env("IPCKIT_EP", &text).env("IPCKIT_COUNT", "1"));
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while leaver.child().try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the leaver did not finish");
        rx.recv_timeout(HANG_GUARD).unwrap();
    }
    assert!(leaver.wait().success());
    // Gone: its place is free once the receiver, busy with the streamer,
    // has noticed.
    let joined = loop {
        assert!(std::time::Instant::now() < deadline, "the departure was never noticed");
        rx.recv_timeout(HANG_GUARD).unwrap();
        match Sender::connect(&ep(&text)) {
            Ok(tx) => break tx,
            Err(e) if e.kind() == ErrorKind::Busy => {}
            Err(e) => panic!("{e}"),
        }
    };
    drop(joined);
    drop(streamer);
}

/// A message too big for the caller's buffer stays queued, and the other
/// senders are served meanwhile.
#[test]
fn a_message_too_big_for_the_buffer_does_not_starve_the_others() {
    let s = Scratch::new("shm-live-starve");
    let text = channel(&s, "starve", "");
    let (mut rx, mut big) = pair(&text);
    let mut small = Sender::connect(&ep(&text)).unwrap();
    big.send(&[0u8; 100]).unwrap();
    for i in 0..5u8 {
        small.send(&[i]).unwrap();
    }
    let mut buf = [0u8; 10];
    let mut got = Vec::new();
    for _ in 0..20 {
        match rx.recv_into_timeout(&mut buf, Duration::from_millis(100)) {
            Ok((n, _)) => got.push(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::TooLarge => {}
            Err(e) if e.kind() == ErrorKind::TimedOut => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, (0..5u8).map(|i| vec![i]).collect::<Vec<_>>(), "the small sender was served");
    let mut large = [0u8; 100];
    assert_eq!(rx.recv_into_timeout(&mut large, HANG_GUARD).unwrap().0, 100, "the big one stayed queued");
}

/// A message in a ring is "buffered": `poll_fd` need not be readable for
/// it, and `has_buffered_message` says so.
#[test]
fn has_buffered_message_sees_a_waiting_message() {
    let s = Scratch::new("shm-live-buf");
    let text = channel(&s, "buf", "");
    let (mut rx, mut tx) = pair(&text);
    tx.send(b"one").unwrap();
    tx.send(b"two").unwrap();
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"one");
    assert!(rx.has_buffered_message(), "\"two\" waits in the ring");
    assert_eq!(rx.try_recv().unwrap().data, b"two");
    assert!(!rx.has_buffered_message());
}
