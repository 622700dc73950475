//! File-descriptor passing and peer credentials between real processes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

use ipckit::{Endpoint, Options, Receiver, SendMeta, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, rerun};
use ipckit_testkit::scratch::Scratch;

/// Child: creates a memfd, writes into it, and sends it with a message.
#[test]
#[ignore = "child process entry point"]
fn child_memfd_sender() {
    let Some(_) = child_role() else { return };
    let text = std::env::var("IPCKIT_EP").unwrap();
    let ep: Endpoint = text.parse().unwrap();
    let memfd = rustix::fs::memfd_create("ipckit-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let mut file = std::fs::File::from(memfd);
    write!(file, "written by {}", std::process::id()).unwrap();
    let mut tx = Sender::connect_timeout(&ep, &Options::new(), HANG_GUARD).unwrap();
    tx.send_with(b"here is a memfd", &SendMeta::new().fds(&[file.as_fd()])).unwrap();
    drop(file);
    // Stay until the parent has read it, so that credentials name a live pid.
    tx.send(b"bye").unwrap();
}

#[test]
fn memfd_sent_over_each_unix_socket_type_is_readable_by_the_receiver() {
    let s = Scratch::new("memfd");
    for text in [
        format!("unix:{}", s.path("s.sock").display()),
        format!("unix-seqpacket:{}", s.path("q.sock").display()),
        format!("unix-dgram:{}", s.path("d.sock").display()),
    ] {
        let mut rx = Receiver::bind(&text.parse().unwrap()).unwrap();
        let child = Guarded::spawn(rerun("child_memfd_sender", "memfd").env("IPCKIT_EP", &text));
        let pid = child.0.as_ref().unwrap().id() as i32;
        let mut msg = rx.recv_timeout(HANG_GUARD).unwrap();
        assert_eq!(msg.data, b"here is a memfd", "{text}");
        assert_eq!(msg.meta.fds.len(), 1, "{text}");
        let creds = msg.meta.creds.expect("credentials");
        assert_eq!(creds.pid, pid, "{text}: credentials name the sender");
        assert_eq!(creds.uid, rustix::process::geteuid().as_raw(), "{text}");
        let mut file = std::fs::File::from(msg.meta.fds.pop().unwrap());
        // Close-on-exec, as received with MSG_CMSG_CLOEXEC.
        let flags = rustix::io::fcntl_getfd(&file).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC), "{text}");
        let mut content = String::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_string(&mut content).unwrap();
        assert_eq!(content, format!("written by {pid}"), "{text}");
        assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"bye", "{text}");
        let status = child.wait();
        assert!(status.success(), "{text}: {status}");
    }
}

#[test]
fn descriptors_are_refused_where_they_cannot_travel() {
    let (_r, w) = ipckit::pipe::pipe().unwrap();
    let mut tx = Sender::from(w);
    let e = tx.send_with(b"x", &SendMeta::new().fds(&[std::io::stdin().as_fd()])).unwrap_err();
    assert_eq!(e.kind(), ipckit::ErrorKind::Unsupported, "{e}");
    // Nor does a socket carry a priority or a type: refused, not dropped.
    let e = tx.send_with(b"x", &SendMeta::new().priority(3)).unwrap_err();
    assert_eq!(e.kind(), ipckit::ErrorKind::Unsupported, "{e}");
}

/// Descriptors made non-blocking by their owner (for poll/epoll or an
/// async runtime) keep every form working: blocking forms wait with poll.
#[test]
fn non_blocking_descriptors_keep_the_blocking_forms_working() {
    let s = Scratch::new("nonblock");
    for text in [
        format!("unix:{}", s.path("s.sock").display()),
        "tcp:127.0.0.1:0".into(),
        format!("unix-seqpacket:@{}", s.name("q")),
    ] {
        let listener = ipckit::socket::Listener::bind(&text.parse().unwrap()).unwrap();
        let real = listener.local_endpoint().clone();
        // Seqpacket messages must fit the socket buffer; streams need not.
        let size = if text.starts_with("unix-seqpacket") { 64 << 10 } else { 4 << 20 };
        let client = std::thread::spawn(move || {
            let mut c = ipckit::socket::Connection::connect(&real).unwrap();
            c.set_nonblocking(true).unwrap();
            // Larger than the socket buffers: the blocking send must wait for
            // room with poll, not fail with EAGAIN.
            let big = vec![7u8; 4 << 20];
            for _ in 0..4 {
                c.send(&big[..size]).unwrap();
            }
            c.recv().unwrap().data
        });
        let mut conn = listener.accept_timeout(HANG_GUARD).unwrap();
        conn.set_nonblocking(true).unwrap();
        for _ in 0..4 {
            let m = conn.recv().unwrap();
            assert!(m.data.iter().all(|&b| b == 7), "{text}");
        }
        assert_eq!(conn.try_recv().unwrap_err().kind(), ipckit::ErrorKind::Empty, "{text}");
        conn.send(b"done").unwrap();
        assert_eq!(client.join().unwrap(), b"done", "{text}");
    }
}

/// A socket receiver's poll descriptor turns readable for a message on an
/// already accepted connection, not only for new connections.
#[test]
fn receiver_poll_fd_reports_messages_on_accepted_connections() {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let s = Scratch::new("pollfd");
    let readable = |rx: &Receiver, secs: i64| {
        let mut fds = [PollFd::from_borrowed_fd(rx.poll_fd().unwrap(), PollFlags::IN)];
        rustix::event::poll(&mut fds, Some(&Timespec { tv_sec: secs, tv_nsec: 0 })).unwrap() == 1
    };
    for text in [format!("unix:@{}", s.name("u")), "tcp:127.0.0.1:0".into()] {
        let mut rx = Receiver::bind(&text.parse().unwrap()).unwrap();
        let mut tx = Sender::connect(&rx.name().parse().unwrap()).unwrap();
        tx.send(b"first").unwrap();
        assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"first", "{text}");
        assert!(!readable(&rx, 0), "{text}: nothing pending");
        tx.send(b"second").unwrap();
        assert!(readable(&rx, 30), "{text}: a message on the accepted connection");
        assert_eq!(rx.try_recv().unwrap().data, b"second", "{text}");
        // Two at once: the second may be read ahead, and is then buffered.
        tx.send(b"x").unwrap();
        tx.send(b"y").unwrap();
        assert!(readable(&rx, 30), "{text}");
        assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"x", "{text}");
        assert!(rx.has_buffered_message() || readable(&rx, 30), "{text}: y is buffered or readable");
        assert_eq!(rx.try_recv().unwrap().data, b"y", "{text}");
    }
}
