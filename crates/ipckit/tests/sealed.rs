//! Sealed memfd messages (`Sender::send_sealed`, `Meta::sealed`) between
//! real processes, and with a Python peer written only from the wire
//! format in the README (`tests/py/sealed_peer.py`).

use std::os::fd::AsFd;
use std::process::Command;

use ipckit::socket::{Connection, Listener};
use ipckit::{Endpoint, ErrorKind, Framing, Message, Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::c::pattern;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::procfs::open_fds;
use ipckit_testkit::program::Bg;
use ipckit_testkit::scratch::Scratch;
use rustix::fs::SealFlags;
use rustix::io::Errno;

/// The Python peer.
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/sealed_peer.py");

/// Sizes up to the default maximum message (16 MiB): only the 24-byte
/// marker travels through the socket, so datagram sockets take them all.
const SIZES: &[usize] = &[0, 1, 24, 4095, 4096, 4097, 100_000, 1 << 20, 16 << 20];

/// The payload of a given size, as the Python peer makes it too.
fn payload(size: usize) -> Vec<u8> {
    pattern(size, size % 251)
}

/// One endpoint of each Unix socket type, with the peer's name for it.
fn endpoints(s: &Scratch) -> Vec<(&'static str, String)> {
    vec![
        ("stream", format!("unix:{}", s.path("s.sock").display())),
        ("seqpacket", format!("unix-seqpacket:{}", s.path("q.sock").display())),
        ("dgram", format!("unix-dgram:{}", s.path("d.sock").display())),
    ]
}

/// The socket path of an endpoint.
fn path_of(text: &str) -> &str {
    text.split_once(':').expect("endpoint has a kind").1
}

fn sizes_env(sizes: &[usize]) -> String {
    sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
}

fn parse_sizes(text: &str) -> Vec<usize> {
    text.split(',').map(|s| s.parse().unwrap()).collect()
}

/// Checks a received sealed message of `size` bytes: no copy in `data`,
/// the payload in place, and seals that refuse every change (a memfd
/// cannot be grown after it was sealed).
#[track_caller]
fn check_sealed(msg: Message, size: usize, what: &str) {
    assert!(msg.data.is_empty(), "{what}: recv leaves data empty for a sealed message");
    assert!(msg.meta.fds.is_empty(), "{what}: the memfd is the sealed part, not an ordinary fd");
    let sealed = msg.meta.sealed.expect("a sealed message");
    assert_eq!(sealed.len(), size, "{what}");
    assert!(sealed.as_bytes() == payload(size), "{what}: the payload read in place");
    let fd = sealed.as_fd();
    let seals = rustix::fs::fcntl_get_seals(fd).unwrap();
    assert!(seals.contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW), "{what}: {seals:?}");
    assert_eq!(rustix::fs::ftruncate(fd, size as u64 + 4096), Err(Errno::PERM), "{what}: growing is refused");
    assert_eq!(rustix::io::pwrite(fd, b"x", 0), Err(Errno::PERM), "{what}: writing is refused");
    if let Some(region) = sealed.into_region() {
        assert!(!region.is_writable(), "{what}: mapped read-only");
        let mut first = [0u8; 1];
        region.read_at(0, &mut first).unwrap();
        assert_eq!(first[0], payload(size)[0], "{what}");
    } else {
        assert_eq!(size, 0, "{what}: only an empty payload has no region");
    }
}

/// Child: sends a sealed message of each size in `IPCKIT_SIZES` to
/// `IPCKIT_EP`, then the ordinary message "done".
#[test]
#[ignore = "child process entry point"]
fn child_sealed_sender() {
    let Some(_) = child_role() else { return };
    let ep: Endpoint = env("IPCKIT_EP").parse().unwrap();
    let mut tx = Sender::connect_timeout(&ep, &Options::new(), HANG_GUARD).unwrap();
    for size in parse_sizes(&env("IPCKIT_SIZES")) {
        tx.send_sealed(&payload(size)).unwrap();
    }
    tx.send(b"done").unwrap();
}

#[test]
fn sealed_messages_round_trip_between_processes_on_every_unix_socket_type() {
    let s = Scratch::new("sealed-rt");
    for (_, text) in endpoints(&s) {
        let mut rx = Receiver::bind(&text.parse().unwrap()).unwrap();
        let child = Guarded::spawn(
            rerun("child_sealed_sender", "sealed").env("IPCKIT_EP", &text).env("IPCKIT_SIZES", sizes_env(SIZES)),
        );
        let pid = child.0.as_ref().unwrap().id() as i32;
        for &size in SIZES {
            let what = format!("{text}, {size} bytes");
            let msg = rx.recv_timeout(HANG_GUARD).unwrap();
            assert_eq!(msg.meta.creds.map(|c| c.pid), Some(pid), "{what}: credentials name the sender");
            check_sealed(msg, size, &what);
        }
        let done = rx.recv_timeout(HANG_GUARD).unwrap();
        assert_eq!(done.data, b"done", "{text}");
        assert!(done.meta.sealed.is_none(), "{text}: an ordinary message is not sealed");
        let status = child.wait();
        assert!(status.success(), "{text}: {status}");
    }
}

#[test]
fn recv_into_copies_a_sealed_message_and_keeps_one_that_does_not_fit() {
    let s = Scratch::new("sealed-into");
    for (_, text) in endpoints(&s) {
        let mut rx = Receiver::bind(&text.parse().unwrap()).unwrap();
        let child = Guarded::spawn(
            rerun("child_sealed_sender", "sealed").env("IPCKIT_EP", &text).env("IPCKIT_SIZES", "5000,10"),
        );
        let mut small = [0u8; 4096];
        for _ in 0..2 {
            let e = rx.recv_into_timeout(&mut small, HANG_GUARD).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TooLarge, "{text}: {e}");
            assert!(e.to_string().contains("5000"), "{text}: names the size: {e}");
            assert!(rx.has_buffered_message(), "{text}: the message is kept");
        }
        let mut big = vec![0u8; 8192];
        let (n, meta) = rx.try_recv_into(&mut big).unwrap();
        assert_eq!(n, 5000, "{text}");
        assert!(big[..n] == payload(5000), "{text}: copied into the buffer");
        assert_eq!(meta.sealed.map(|s| s.len()), Some(5000), "{text}: the sealed part comes too");
        assert!(!rx.has_buffered_message(), "{text}");
        let (n, _) = rx.recv_into_timeout(&mut small, HANG_GUARD).unwrap();
        assert!(small[..n] == payload(10), "{text}");
        let (n, meta) = rx.recv_into_timeout(&mut small, HANG_GUARD).unwrap();
        assert_eq!(&small[..n], b"done", "{text}");
        assert!(meta.sealed.is_none(), "{text}");
        assert!(child.wait().success(), "{text}");
    }
}

/// Child: a connection that sends a sealed message and receives one back.
#[test]
#[ignore = "child process entry point"]
fn child_sealed_connection() {
    let Some(_) = child_role() else { return };
    let ep: Endpoint = env("IPCKIT_EP").parse().unwrap();
    let mut c = Connection::connect_timeout(&ep, &Options::new(), HANG_GUARD).unwrap();
    c.send_sealed(&payload(70_000)).unwrap();
    check_sealed(c.recv_timeout(HANG_GUARD).unwrap(), 3000, "reply");
}

#[test]
fn connections_send_sealed_messages_both_ways() {
    let s = Scratch::new("sealed-conn");
    for (_, text) in endpoints(&s).into_iter().take(2) {
        let listener = Listener::bind(&text.parse().unwrap()).unwrap();
        let child = Guarded::spawn(rerun("child_sealed_connection", "conn").env("IPCKIT_EP", &text));
        let mut conn = listener.accept_timeout(HANG_GUARD).unwrap();
        check_sealed(conn.recv_timeout(HANG_GUARD).unwrap(), 70_000, &text);
        conn.send_sealed_timeout(&payload(3000), HANG_GUARD).unwrap();
        assert!(child.wait().success(), "{text}");
    }
}

#[test]
fn sealed_messages_are_refused_where_they_cannot_travel() {
    let s = Scratch::new("sealed-where");
    let unsupported = |tx: &mut Sender, what: &str| {
        let e = tx.send_sealed(b"payload").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{what}: {e}");
        assert!(e.to_string().starts_with("send_sealed "), "{what}: names the operation: {e}");
    };
    // TCP cannot pass descriptors.
    let mut tcp_rx = Receiver::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
    let mut tx = Sender::connect(&tcp_rx.name().parse().unwrap()).unwrap();
    unsupported(&mut tx, "tcp");
    // Lines framing has no room for a binary marker.
    let text = format!("unix:{}", s.path("lines.sock").display());
    let lines = Options::new().framing(Framing::Lines);
    let mut lines_rx = Receiver::bind_with(&text.parse().unwrap(), &lines).unwrap();
    let mut tx_lines = Sender::connect_with(&text.parse().unwrap(), &lines).unwrap();
    unsupported(&mut tx_lines, "lines framing");
    // Nothing was sent on either: the next ordinary message is the first.
    tx.send(b"plain").unwrap();
    assert_eq!(tcp_rx.recv_timeout(HANG_GUARD).unwrap().data, b"plain");
    tx_lines.send(b"plain").unwrap();
    assert_eq!(lines_rx.recv_timeout(HANG_GUARD).unwrap().data, b"plain");
    // A FIFO has no descriptors to pass.
    let fifo = format!("fifo:{}", s.path("f").display());
    let _fifo_rx = Receiver::bind_with(&fifo.parse().unwrap(), &Options::new().create(true)).unwrap();
    unsupported(&mut Sender::connect(&fifo.parse().unwrap()).unwrap(), "fifo");
    // Over the sender's maximum: TooLarge, nothing sent.
    for (_, text) in endpoints(&s) {
        let mut rx = Receiver::bind(&text.parse().unwrap()).unwrap();
        let mut tx = Sender::connect_with(&text.parse().unwrap(), &Options::new().max_message(1000)).unwrap();
        let e = tx.send_sealed(&[0u8; 1001]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{text}: {e}");
        tx.send_sealed(&payload(1000)).unwrap();
        check_sealed(rx.recv_timeout(HANG_GUARD).unwrap(), 1000, &text);
    }
}

#[test]
fn python_sends_sealed_memfds_that_ipckit_reads_in_place() {
    let s = Scratch::new("sealed-py-in");
    let sizes = [0, 1, 4096, 100_000, 4 << 20];
    for (kind, text) in endpoints(&s) {
        let mut rx = Receiver::bind(&text.parse().unwrap()).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(PEER).args(["send", kind, path_of(&text)]).args(sizes.iter().map(|s| s.to_string()));
        let peer = Bg::spawn(&mut cmd);
        for size in sizes {
            check_sealed(rx.recv_timeout(HANG_GUARD).unwrap(), size, &format!("{text}, {size} bytes from Python"));
        }
        assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"done", "{text}");
        let out = peer.finish();
        assert!(out.status.success(), "{text}: the Python peer failed: {}", out.stderr);
    }
}

#[test]
fn ipckit_sends_sealed_memfds_that_python_checks() {
    let s = Scratch::new("sealed-py-out");
    let sizes = [0, 1, 4096, 100_000, 4 << 20];
    for (kind, text) in endpoints(&s) {
        let mut cmd = Command::new("python3");
        cmd.arg(PEER).args(["recv", kind, path_of(&text), &sizes.len().to_string()]);
        let mut peer = Bg::spawn(&mut cmd);
        peer.wait_line("ready");
        let mut tx = Sender::connect_timeout(&text.parse().unwrap(), &Options::new(), HANG_GUARD).unwrap();
        for size in sizes {
            tx.send_sealed_timeout(&payload(size), HANG_GUARD).unwrap();
        }
        tx.send(b"done").unwrap();
        let out = peer.finish();
        assert!(out.status.success(), "{text}: the Python peer refused what ipckit sent: {}", out.stderr);
        let want: Vec<String> = sizes.iter().map(|s| format!("ok {s}")).collect();
        assert_eq!(out.text().lines().collect::<Vec<_>>(), want, "{text}");
    }
}

/// The malformed sealed messages the Python peer sends (`bad`), in order,
/// with the error each must get.
const BAD_ROWS: &[(&str, ErrorKind)] = &[
    ("unsealed", ErrorKind::Corrupt),
    ("future-write", ErrorKind::Corrupt),
    ("no-shrink", ErrorKind::Corrupt),
    ("short", ErrorKind::Corrupt),
    ("long", ErrorKind::Corrupt),
    ("two-fds", ErrorKind::Corrupt),
    ("no-fd", ErrorKind::Corrupt),
    ("not-memfd", ErrorKind::Corrupt),
    ("over-max", ErrorKind::TooLarge),
];

/// Whether this process maps a memfd the Python peer named `ipckit-t-bad-*`.
fn maps_a_bad_memfd() -> bool {
    std::fs::read_to_string("/proc/self/maps").unwrap().contains("memfd:ipckit-t-bad")
}

/// Child (alone in its process, so that its descriptors can be counted):
/// receives the Python peer's malformed sealed messages on each socket
/// type in `IPCKIT_DIR`.
#[test]
#[ignore = "child process entry point"]
fn child_refuses_bad_sealed_messages() {
    let Some(_) = child_role() else { return };
    let dir = env("IPCKIT_DIR");
    for (kind, text) in [
        ("stream", format!("unix:{dir}/s.sock")),
        ("seqpacket", format!("unix-seqpacket:{dir}/q.sock")),
        ("dgram", format!("unix-dgram:{dir}/d.sock")),
    ] {
        let opts = Options::new().max_message(64 << 10);
        let mut rx = Receiver::bind_with(&text.parse().unwrap(), &opts).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(PEER).args(["bad", kind, path_of(&text)]);
        let peer = Bg::spawn(&mut cmd);
        // The connection is accepted and counted from here on.
        assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"hello", "{text}");
        let fds = open_fds();
        for &(row, kind) in BAD_ROWS {
            let what = format!("{text}, {row}");
            let e = rx.recv_timeout(HANG_GUARD).unwrap_err();
            assert_eq!(e.kind(), kind, "{what}: {e}");
            assert!(e.to_string().starts_with(&format!("recv {text}: ")), "{what}: names the endpoint: {e}");
            assert_eq!(open_fds(), fds, "{what}: every descriptor that came with it was closed");
            assert!(!maps_a_bad_memfd(), "{what}: nothing of it stays mapped");
            let next = rx.recv_timeout(HANG_GUARD).unwrap();
            assert_eq!(next.data, format!("next {row}").as_bytes(), "{what}: the next message still arrives");
            assert!(next.meta.fds.is_empty() && next.meta.sealed.is_none(), "{what}");
        }
        let good = rx.recv_timeout(HANG_GUARD).unwrap();
        assert_eq!(good.meta.sealed.as_ref().map(|s| s.as_bytes()), Some(&b"good".repeat(1024)[..]), "{text}");
        drop(good);
        assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"done", "{text}");
        assert_eq!(open_fds(), fds, "{text}: the good one's memfd was closed with its message");
        let out = peer.finish();
        assert!(out.status.success(), "{text}: the Python peer failed: {}", out.stderr);
    }
}

#[test]
fn malformed_sealed_messages_are_refused_with_their_descriptors_closed() {
    let s = Scratch::new("sealed-bad");
    let out = Guarded::spawn(
        rerun("child_refuses_bad_sealed_messages", "bad")
            .env("IPCKIT_DIR", s.dir())
            .stderr(std::process::Stdio::piped()),
    )
    .output();
    assert!(out.status.success(), "the receiver failed:\n{}", String::from_utf8_lossy(&out.stderr));
}
