//! POSIX and System V message queues: priorities, type rules, truncation,
//! limits, ownership, and the bad-input table at the library level.

use std::time::Duration;

use ipckit::mq::{PosixQueue, SysvQueue};
use ipckit::{Endpoint, ErrorKind, Options, Receiver, SendMeta, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, rerun};
use ipckit_testkit::scratch::Scratch;

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn create() -> Options {
    Options::new().create(true)
}

#[test]
fn posix_priority_order_with_fifo_within_a_priority() {
    let s = Scratch::new("mqprio");
    let q = s.mq("q", "");
    // Filled before the receiver exists.
    let mut tx = Sender::connect_with(&ep(&q), &create()).unwrap();
    for (prio, text) in [(1, "one"), (5, "five-a"), (3, "three"), (5, "five-b"), (0, "zero")] {
        tx.send_with(text.as_bytes(), &SendMeta::new().priority(prio)).unwrap();
    }
    drop(tx);
    let mut rx = Receiver::bind(&ep(&q)).unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = rx.recv_timeout(HANG_GUARD).unwrap();
        got.push((m.meta.priority.unwrap(), String::from_utf8(m.data).unwrap()));
    }
    let want = [(5, "five-a"), (5, "five-b"), (3, "three"), (1, "one"), (0, "zero")];
    assert_eq!(got, want.map(|(p, t)| (p, t.to_string())));
    let e = rx.try_recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Empty, "{e}");
}

#[test]
fn sysv_type_rules() {
    let s = Scratch::new("sysvtypes");
    let q = s.sysv_mq(1, "");
    let mut tx = Sender::connect_with(&ep(&q), &create()).unwrap();
    for (ty, text) in [(3, "3a"), (1, "1a"), (2, "2a"), (1, "1b"), (5, "5a")] {
        tx.send_with(text.as_bytes(), &SendMeta::new().msg_type(ty)).unwrap();
    }
    let by_type = |rule: i64| {
        let mut rx = Receiver::bind_with(&ep(&q), &Options::new().msg_type(rule)).unwrap();
        let m = rx.recv_timeout(HANG_GUARD).unwrap();
        (m.meta.msg_type.unwrap(), String::from_utf8(m.data).unwrap())
    };
    // Positive: the first of that type.
    assert_eq!(by_type(2), (2, "2a".into()));
    // Negative: the first of the lowest type at most |n|.
    assert_eq!(by_type(-4), (1, "1a".into()));
    assert_eq!(by_type(-4), (1, "1b".into()));
    assert_eq!(by_type(-4), (3, "3a".into()));
    // Zero: the first.
    assert_eq!(by_type(0), (5, "5a".into()));
    // Nothing of a type: Empty for try, TimedOut for timeout.
    let mut rx = Receiver::bind_with(&ep(&q), &Options::new().msg_type(9)).unwrap();
    assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty);
    assert_eq!(rx.recv_timeout(Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::TimedOut);
    // Types must be positive; priorities and descriptors do not travel.
    assert_eq!(tx.send_with(b"x", &SendMeta::new().msg_type(0)).unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(tx.send_with(b"x", &SendMeta::new().priority(1)).unwrap_err().kind(), ErrorKind::Unsupported);
}

#[test]
fn small_buffers_lose_nothing_and_noerror_truncation_is_reported() {
    let s = Scratch::new("mqsmall");
    // A POSIX queue takes buffers of at least its message size (16 here).
    for q in [s.mq("q", "?maxmsg=1&msgsize=16"), s.sysv_mq(1, "")] {
        let mut tx = Sender::connect_with(&ep(&q), &create()).unwrap();
        let mut rx = Receiver::bind(&ep(&q)).unwrap();
        tx.send(b"0123456789").unwrap();
        let mut small = [0u8; 4];
        let e = rx.recv_into_timeout(&mut small, HANG_GUARD).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{q}: {e}");
        assert!(e.to_string().contains("stays queued"), "{e}");
        let mut big = [0u8; 16];
        let (n, meta) = rx.recv_into_timeout(&mut big, HANG_GUARD).unwrap();
        assert_eq!(&big[..n], b"0123456789", "{q}");
        assert!(!meta.truncated);
    }
    let q = s.sysv_mq(2, "");
    let mut tx = Sender::connect_with(&ep(&q), &create()).unwrap();
    let mut rx = Receiver::bind_with(&ep(&q), &Options::new().noerror(true)).unwrap();
    tx.send(b"0123456789").unwrap();
    tx.send(b"0123").unwrap();
    let mut small = [0u8; 4];
    let (n, meta) = rx.recv_into_timeout(&mut small, HANG_GUARD).unwrap();
    assert_eq!((&small[..n], meta.truncated), (&b"0123"[..], true), "a cut message is reported");
    let (n, meta) = rx.recv_into_timeout(&mut small, HANG_GUARD).unwrap();
    assert_eq!((&small[..n], meta.truncated), (&b"0123"[..], false), "an exact fit is not cut");
}

/// The number of messages in a queue, as the kernel counts them, through a
/// handle of its own: `mq_getattr` (`mq_curmsgs`) or `msgctl(IPC_STAT)`
/// (`msg_qnum`, what /proc/sysvipc/msg shows as qnum).
fn queued(q: &str) -> u64 {
    if q.starts_with("mq:") {
        PosixQueue::open(&ep(q), &Options::new()).unwrap().attributes().unwrap().curmsgs as u64
    } else {
        SysvQueue::open(&ep(q), &Options::new()).unwrap().status().unwrap().stat.messages
    }
}

/// A POSIX receiver whose maximum or buffer is under the queue's message
/// size (mq_msgsize, 8192 by default) is refused before `mq_receive`,
/// naming both sizes: the message stays in the kernel's queue, and a
/// receiver that can take it whole gets it.
#[test]
fn posix_receive_never_destroys_a_message() {
    let s = Scratch::new("mqkeep");
    let q = s.mq("q", "");
    let msg = [b'm'; 200];
    let mut tx = Sender::connect_with(&ep(&q), &create()).unwrap();
    tx.send(&msg).unwrap();
    tx.send(b"0123456789").unwrap();
    let msgsize = PosixQueue::open(&ep(&q), &Options::new()).unwrap().attributes().unwrap().msgsize;
    let mut small = Receiver::bind_with(&ep(&q), &Options::new().max_message(100)).unwrap();
    for e in [small.recv_timeout(HANG_GUARD).unwrap_err(), small.try_recv().unwrap_err()] {
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
        assert!(e.to_string().contains(&format!("{msgsize} bytes")), "names the queue's message size: {e}");
        assert!(e.to_string().contains("maximum of 100 bytes"), "names the maximum: {e}");
        assert!(e.to_string().contains("stays queued"), "{e}");
    }
    assert_eq!(queued(&q), 2, "a refused recv took nothing");
    // A buffer under the message size: refused too, even for a short message.
    let mut rx = Receiver::bind(&ep(&q)).unwrap();
    let mut buf = vec![0u8; msgsize as usize - 1];
    let e = rx.recv_into_timeout(&mut buf, HANG_GUARD).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.to_string().contains(&format!("{msgsize} bytes")), "{e}");
    assert!(e.to_string().contains(&format!("{}-byte buffer", msgsize - 1)), "{e}");
    assert_eq!(queued(&q), 2, "a refused recv_into took nothing");
    // Whole, in order, for a receiver that can take them.
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, msg);
    let mut buf = vec![0u8; msgsize as usize];
    let (n, _) = rx.recv_into_timeout(&mut buf, HANG_GUARD).unwrap();
    assert_eq!(&buf[..n], b"0123456789");
    assert_eq!(queued(&q), 0);
}

/// A System V message over the receiver's maximum or buffer is left
/// queued (msgrcv's E2BIG), reported as over the maximum (the kernel does
/// not say its size); `noerror` cuts it instead.
#[test]
fn sysv_receive_never_destroys_a_message() {
    let s = Scratch::new("sysvkeep");
    let q = s.sysv_mq(1, "");
    let msg: Vec<u8> = (0..200u8).collect();
    let mut tx = Sender::connect_with(&ep(&q), &create()).unwrap();
    tx.send(&msg).unwrap();
    let mut small = Receiver::bind_with(&ep(&q), &Options::new().max_message(100)).unwrap();
    for e in [small.recv_timeout(HANG_GUARD).unwrap_err(), small.try_recv().unwrap_err()] {
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
        assert!(e.to_string().contains("over the maximum of 100 bytes"), "{e}");
        assert!(e.to_string().contains("stays queued"), "{e}");
    }
    assert_eq!(queued(&q), 1, "a refused recv took nothing");
    let mut rx = Receiver::bind(&ep(&q)).unwrap();
    let mut buf = [0u8; 199];
    let e = rx.recv_into_timeout(&mut buf, HANG_GUARD).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.to_string().contains("199-byte buffer"), "{e}");
    assert_eq!(queued(&q), 1, "a refused recv_into took nothing");
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, msg);
    // Asked to cut: the first 100 bytes, reported as truncated.
    tx.send(&msg).unwrap();
    let mut cut = Receiver::bind_with(&ep(&q), &Options::new().max_message(100).noerror(true)).unwrap();
    let m = cut.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!((&m.data[..], m.meta.truncated), (&msg[..100], true));
    assert_eq!(queued(&q), 0);
}

#[test]
fn full_and_empty_queues() {
    let s = Scratch::new("mqfull");
    for q in [s.mq("q", "?maxmsg=2&msgsize=64"), s.sysv_mq(1, "&maxbytes=128")] {
        let mut tx = Sender::connect_with(&ep(&q), &create().max_message(64)).unwrap();
        let mut rx = Receiver::bind(&ep(&q)).unwrap();
        assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty, "{q}");
        assert_eq!(rx.recv_timeout(Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::TimedOut, "{q}");
        let mut sent = 0;
        let e = loop {
            match tx.try_send(&[7u8; 64]) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 100, "{q}: never full");
        };
        assert_eq!(e.kind(), ErrorKind::Full, "{q}: {e}");
        let e = tx.send_timeout(&[8u8; 64], Duration::from_millis(20)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{q}: {e}");
        // Exactly what was accepted is there.
        for _ in 0..sent {
            assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, [7u8; 64], "{q}");
        }
        assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty, "{q}");
        // Larger than the queue's message size: refused, nothing sent.
        let e = tx.send(&[0u8; 65]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{q}: {e}");
        assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty, "{q}");
    }
}

#[test]
fn missing_existing_and_removed_queues() {
    let s = Scratch::new("mqexist");
    for q in [s.mq("q", ""), s.sysv_mq(1, "")] {
        let e = Sender::connect(&ep(&q)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{q}: {e}");
        assert!(e.to_string().contains(&q), "{e}");
        let _made = Receiver::bind_with(&ep(&q), &create().exclusive(true)).unwrap();
        let e = Sender::connect_with(&ep(&q), &create().exclusive(true)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{q}: {e}");
        // Open-or-create finds the existing one.
        let mut tx = Sender::connect_with(&ep(&q), &create()).unwrap();
        tx.send(b"kept").unwrap();
        ipckit::remove(&ep(&q)).unwrap();
        assert_eq!(ipckit::remove(&ep(&q)).unwrap_err().kind(), ErrorKind::NotFound, "{q}");
        assert_eq!(Sender::connect(&ep(&q)).unwrap_err().kind(), ErrorKind::NotFound, "{q}");
    }
    // A removed System V queue wakes its users with Disconnected.
    let q = s.sysv_mq(2, "");
    let mut rx = Receiver::bind_with(&ep(&q), &create()).unwrap();
    ipckit::remove(&ep(&q)).unwrap();
    let e = rx.recv_timeout(HANG_GUARD).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
}

#[test]
fn attributes_beyond_kernel_limits_are_invalid_and_name_the_limit() {
    let s = Scratch::new("mqlimits");
    let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().parse::<u64>().unwrap();
    let msg_max = read("/proc/sys/fs/mqueue/msg_max");
    let msgsize_max = read("/proc/sys/fs/mqueue/msgsize_max");
    let msgmnb = read("/proc/sys/kernel/msgmnb");
    for (q, limit) in [
        (s.mq("a", &format!("?maxmsg={}", msg_max + 1)), msg_max),
        (s.mq("b", &format!("?msgsize={}", msgsize_max + 1)), msgsize_max),
        (s.sysv_mq(1, &format!("&maxbytes={}", msgmnb + 1)), msgmnb),
    ] {
        let e = Receiver::bind_with(&ep(&q), &create()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{q}: {e}");
        assert!(e.to_string().contains(&format!("limit {limit}")), "{q}: {e}");
    }
    // Within the limits, the attributes are applied.
    let q = s.mq("c", "?maxmsg=3&msgsize=100");
    let queue = PosixQueue::open(&ep(&q), &create()).unwrap();
    let attr = queue.attributes().unwrap();
    assert_eq!((attr.maxmsg, attr.msgsize, attr.curmsgs), (3, 100, 0));
    let q = s.sysv_mq(2, "&maxbytes=1000");
    let queue = SysvQueue::open(&ep(&q), &create()).unwrap();
    let status = queue.status().unwrap();
    assert_eq!(status.stat.max_bytes, 1000);
    assert_eq!(status.stat.mode, 0o600);
    assert_eq!(status.max_message, read("/proc/sys/kernel/msgmax"));
}

/// Attributes an existing queue does not have are not applied: the handle
/// says so in its warnings (naming the real ones), once, through
/// `take_warnings` of the queue and of a `Sender`/`Receiver`.
#[test]
fn attributes_an_existing_queue_ignores_are_warnings() {
    let s = Scratch::new("mqwarn");
    let posix = s.mq("q", "?maxmsg=3&msgsize=64");
    let sysv = s.sysv_mq(1, "&maxbytes=1000");
    let _made = (PosixQueue::open(&ep(&posix), &create()).unwrap(), SysvQueue::open(&ep(&sysv), &create()).unwrap());
    let same = PosixQueue::open(&ep(&posix), &create()).unwrap();
    assert!(same.warnings().is_empty(), "{:?}", same.warnings());
    let mut other = PosixQueue::open(&ep(&format!("{}?msgsize=128&mode=0640", s.mq("q", ""))), &create()).unwrap();
    assert_eq!(other.warnings().len(), 1, "{:?}", other.warnings());
    let w = &other.warnings()[0];
    assert!(w.contains("exists with maxmsg=3, msgsize=64, mode=0600"), "{w}");
    assert!(w.contains("msgsize=128, mode=0640 was ignored"), "{w}");
    assert_eq!(other.take_warnings().len(), 1);
    assert!(other.take_warnings().is_empty(), "taken once");
    assert_eq!(other.attributes().unwrap().msgsize, 64, "not applied");
    let mut rx = Receiver::bind(&ep(&format!("{sysv}&mode=0644"))).unwrap();
    let w = rx.take_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("exists with maxbytes=1000, mode=0600") && w[0].contains("mode=0644 was ignored"), "{w:?}");
    assert!(rx.take_warnings().is_empty(), "taken once");
    let mut tx = Sender::connect(&ep(&format!("{}?maxmsg=4", s.mq("q", "")))).unwrap();
    let w = tx.take_warnings();
    assert!(w.len() == 1 && w[0].contains("maxmsg=4 was ignored"), "{w:?}");
}

#[test]
fn sysv_status_names_the_last_sender() {
    let s = Scratch::new("sysvstat");
    let q = s.sysv_mq(1, "");
    let queue = SysvQueue::open(&ep(&q), &create()).unwrap();
    let child = Guarded::spawn(rerun("child_queue_sender", "sender").env("IPCKIT_EP", &q));
    let pid = child.0.as_ref().unwrap().id() as i32;
    assert!(child.wait().success());
    let st = queue.status().unwrap().stat;
    assert_eq!((st.messages, st.bytes, st.last_sender), (1, 5, pid));
}

/// Child: sends one message to the queue in `IPCKIT_EP`.
#[test]
#[ignore = "child process entry point"]
fn child_queue_sender() {
    let Some(_) = child_role() else { return };
    let q = std::env::var("IPCKIT_EP").unwrap();
    Sender::connect(&ep(&q)).unwrap().send(b"hello").unwrap();
}

/// Child running as uid 65534: root's queues are refused.
#[test]
#[ignore = "child process entry point"]
fn child_unprivileged_queues() {
    let Some(_) = child_role() else { return };
    for q in std::env::var("IPCKIT_QUEUES").unwrap().split(' ') {
        let e = Sender::connect(&ep(q)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{q}: {e}");
        assert!(e.to_string().contains(q), "{e}");
    }
}

#[test]
fn other_users_queues_are_permission_denied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to start a child as uid 65534");
        return;
    }
    let s = Scratch::new("mqperm");
    std::fs::set_permissions(s.dir(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // 0600 (the kernel refuses) and 0666 (ipckit's owner check refuses).
    let queues = [s.mq("a", ""), s.mq("b", "?mode=0666"), s.sysv_mq(1, ""), s.sysv_mq(2, "&mode=0666")];
    let _held: Vec<Receiver> = queues.iter().map(|q| Receiver::bind_with(&ep(q), &create()).unwrap()).collect();
    let status = Guarded::spawn(
        std::os::unix::process::CommandExt::gid(
            std::os::unix::process::CommandExt::uid(&mut rerun("child_unprivileged_queues", "nobody"), 65534),
            65534,
        )
        .env("IPCKIT_QUEUES", queues.join(" ")),
    )
    .wait();
    assert!(status.success(), "unprivileged child failed: {status}");
}

#[test]
fn posix_queue_is_pollable() {
    let s = Scratch::new("mqpoll");
    let q = s.mq("q", "");
    let mut queue = PosixQueue::open(&ep(&q), &create()).unwrap();
    let readable = |queue: &PosixQueue| {
        let mut fds = [rustix::event::PollFd::new(queue, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 })).unwrap() == 1
    };
    assert!(!readable(&queue));
    queue.send(b"ping").unwrap();
    assert!(readable(&queue));
    assert_eq!(queue.recv().unwrap().data, b"ping");
}
