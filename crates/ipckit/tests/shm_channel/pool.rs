//! Zero-copy: loans written in a sender's pool, samples received in place,
//! copy or map by size, and the pool's bad-input table.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use ipckit::shm::Region;
use ipckit::socket::Connection;
use ipckit::{ErrorKind, Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::{Rng, digest};
use ipckit_testkit::procfs::open_fds;
use ipckit_testkit::scratch::Scratch;
use rustix::process::{Pid, Signal, kill_process};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::support::{channel, ep, pair};

const CHUNK: usize = 64 * 1024;

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut m = vec![0u8; len];
    Rng(seed).fill(&mut m);
    m
}

#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Frame {
    seq: u64,
    values: [u32; 2000],
}

/// Loan → write → send, and the sample in place: the copying reads, the
/// borrowed view, the typed loan; chunks come back when samples drop.
#[test]
fn loans_and_samples_in_place() {
    let s = Scratch::new("shm-loan");
    let text = channel(&s, "loan", "?inline=4096");
    let (mut rx, mut tx) = pair(&text);
    assert_eq!(tx.pool_in_use().unwrap(), Some(0));

    let payload = pattern(100_000, 1);
    let mut loan = tx.loan(payload.len()).unwrap();
    assert!(loan.is_in_place());
    assert_eq!(loan.len(), payload.len());
    loan.copy_from_slice(&payload);
    loan.send().unwrap();
    let sample = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    assert!(sample.is_in_place(), "a pool message is received in place");
    assert_eq!(sample.len(), payload.len());
    assert_eq!(sample.meta().creds.map(|c| c.pid), Some(std::process::id() as i32));
    let mut part = [0u8; 100];
    sample.read_at(99_900, &mut part).unwrap();
    assert_eq!(part[..], payload[99_900..]);
    assert_eq!(sample.read_at(99_901, &mut part).unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(sample.to_vec().unwrap(), payload);
    // SAFETY: the sender is this test; it does not write published chunks.
    assert_eq!(unsafe { sample.as_slice() }, &payload[..]);
    assert_eq!(sample.read::<u64>().unwrap(), u64::from_le_bytes(payload[..8].try_into().unwrap()));
    // Two chunks held by the receiver until the sample drops.
    assert_eq!(tx.pool_in_use().unwrap(), Some(2 * CHUNK));
    drop(sample);
    assert_eq!(tx.pool_in_use().unwrap(), Some(0));

    // A typed loan.
    let mut frame = tx.loan_typed::<Frame>().unwrap();
    frame.seq = 42;
    for (i, v) in frame.values.iter_mut().enumerate() {
        *v = i as u32 * 3;
    }
    let sent = *frame;
    frame.send().unwrap();
    let sample = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    assert!(sample.is_in_place());
    assert_eq!(sample.read::<Frame>().unwrap(), sent);
    let e = sample.read::<[Frame; 2]>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    drop(sample);

    // A loan dropped unsent gives its chunks back.
    let loan = tx.loan(3 * CHUNK).unwrap();
    drop(loan);
    assert_eq!(tx.pool_in_use().unwrap(), Some(0));
    assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty, "nothing was sent");
}

/// `send(&[u8])`: up to `?inline=` copied through the ring, above it
/// placed in the pool; every receive form takes both.
#[test]
fn copy_or_map_by_size() {
    let s = Scratch::new("shm-hybrid");
    let text = channel(&s, "hybrid", "?inline=4096");
    let (mut rx, mut tx) = pair(&text);
    let small = pattern(4096, 2);
    let big = pattern(4097, 3);
    tx.send(&small).unwrap();
    tx.send(&big).unwrap();
    let a = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    let b = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    assert!(!a.is_in_place(), "4096 bytes are copied inline");
    assert!(b.is_in_place(), "4097 bytes go through the pool");
    assert_eq!((a.to_vec().unwrap(), b.to_vec().unwrap()), (small, big.clone()));
    drop((a, b));
    // recv and recv_into copy pool messages out, and give the chunks back.
    tx.send(&big).unwrap();
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, big);
    tx.send(&big).unwrap();
    let mut short = vec![0u8; 4096];
    assert_eq!(rx.recv_into(&mut short).unwrap_err().kind(), ErrorKind::TooLarge, "stays queued");
    let mut buf = vec![0u8; 8192];
    let (n, _) = rx.recv_into_timeout(&mut buf, HANG_GUARD).unwrap();
    assert_eq!(buf[..n], big[..]);
    // Larger than the ring: through the pool whatever the threshold.
    let huge = pattern(3 << 20, 4);
    tx.send(&huge).unwrap();
    assert_eq!(digest(&rx.recv_timeout(HANG_GUARD).unwrap().data), digest(&huge));
    assert_eq!(tx.pool_in_use().unwrap(), Some(0));
}

/// `IPCKIT_INLINE_MAX` sets the `auto` threshold (read at connect).
#[test]
#[ignore = "child process entry point"]
fn child_auto_threshold() {
    let Some(_) = child_role() else { return };
    let (mut rx, mut tx) = pair(&env("IPCKIT_EP"));
    tx.send(&[1u8; 1000]).unwrap();
    tx.send(&[2u8; 1001]).unwrap();
    assert!(!rx.recv_sample_timeout(HANG_GUARD).unwrap().is_in_place());
    assert!(rx.recv_sample_timeout(HANG_GUARD).unwrap().is_in_place());
}

#[test]
fn the_environment_sets_the_auto_threshold() {
    let s = Scratch::new("shm-auto");
    let text = channel(&s, "auto", "");
    let status = Guarded::spawn(
        rerun("pool::child_auto_threshold", "auto")
            .env("IPCKIT_EP", &text)
            .env("IPCKIT_INLINE_MAX", "1000")
            .env("XDG_CONFIG_HOME", s.path("config")),
    )
    .wait();
    assert!(status.success(), "the child's checks failed (its stderr is above)");
}

/// Runs the ignored test `test` in a process of its own (descriptor and
/// mapping counts are per process, and tests run in threads), for at most
/// `guard`.
fn isolated(test: &str, guard: std::time::Duration) {
    let mut child = Guarded::spawn(&mut rerun(test, "isolated"));
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.child().try_wait().unwrap() {
            child.0 = None;
            assert!(status.success(), "{test} failed in its own process (its stderr is above)");
            return;
        }
        assert!(start.elapsed() < guard, "{test} hung for {guard:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Bad input: a loan larger than the pool; a pool that is exhausted (no
/// chunk handed out twice); none at all.
#[test]
fn loans_too_large_and_an_exhausted_pool() {
    let s = Scratch::new("shm-exhaust");
    let text = channel(&s, "exhaust", "?pool=256KiB&inline=1024&size=64KiB");
    let (mut rx, mut tx) = pair(&text);
    let e = tx.loan(256 * 1024 + 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(e.to_string().contains("262145") && e.to_string().contains("262144"), "both sizes: {e}");
    let e = tx.send(&vec![0u8; 256 * 1024 + 1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");

    // Four chunks, each held by a sample.
    let held: Vec<_> = (0..4)
        .map(|i| {
            tx.send(&pattern(CHUNK, 10 + i)).unwrap();
            rx.recv_sample_timeout(HANG_GUARD).unwrap()
        })
        .collect();
    let e = tx.try_loan(1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Full, "{e}");
    assert_eq!(tx.loan_timeout(1, std::time::Duration::from_millis(20)).unwrap_err().kind(), ErrorKind::TimedOut);
    assert_eq!(tx.try_send(&[0u8; 2000]).unwrap_err().kind(), ErrorKind::Full);
    // Inline messages still go.
    tx.try_send(&[7u8; 100]).unwrap();
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, [7u8; 100]);
    // The sender's poll_fd turns readable when a chunk comes back.
    let mut held = held;
    let freed = held.remove(1);
    drop(freed);
    let ready = rustix::event::poll(
        &mut [rustix::event::PollFd::new(&tx.poll_fd().unwrap(), rustix::event::PollFlags::IN)],
        Some(&rustix::time::Timespec { tv_sec: HANG_GUARD.as_secs() as i64, tv_nsec: 0 }),
    )
    .unwrap();
    assert_eq!(ready, 1, "poll_fd readable once the receiver gave a chunk back");
    let mut loan = tx.try_loan(CHUNK).unwrap();
    loan.fill(0xee);
    loan.send().unwrap();
    let fresh = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    assert_eq!(fresh.to_vec().unwrap(), vec![0xee; CHUNK]);
    // The samples still held were never written over.
    for (sample, seed) in held.iter().zip([10, 12, 13]) {
        assert_eq!(sample.to_vec().unwrap(), pattern(CHUNK, seed), "a held chunk handed out again");
    }
    drop((held, fresh));
    assert_eq!(tx.pool_in_use().unwrap(), Some(0));

    // Without a pool: loans are refused, everything goes inline.
    let text = channel(&s, "nopool", "?pool=0");
    let (mut rx, mut tx) = pair(&text);
    assert_eq!(tx.pool_in_use().unwrap(), None);
    assert_eq!(tx.loan(10).unwrap_err().kind(), ErrorKind::TooLarge);
    tx.send(&[1u8; 100_000]).unwrap();
    assert!(!rx.recv_sample_timeout(HANG_GUARD).unwrap().is_in_place());
    for bad in ["?pool=1000", "?pool=32GiB", "?inline=lots", "?pool=x"] {
        let text = channel(&s, "bad", bad);
        let e = text.parse::<ipckit::Endpoint>().err().or_else(|| Sender::connect(&ep(&text)).err()).unwrap();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}: {e}");
    }
}

/// Joins `name` by hand as a sender with `pool` as its pool (see
/// `channel/shm/control.rs`): the control connection and the welcome (or
/// the refusal).
fn join_with_pool(name: &str, pool: &rustix::fd::OwnedFd, size: u64) -> (Connection, ipckit::Message) {
    use std::os::fd::AsFd;
    let control: ipckit::Endpoint = format!("unix-seqpacket:@ipckit/shm/{name}").parse().unwrap();
    let mut conn = Connection::connect(&control).unwrap();
    let mut hello = b"IPCKIT-SHM\x02".to_vec();
    hello.extend_from_slice(&0u64.to_le_bytes());
    hello.extend_from_slice(&size.to_le_bytes());
    conn.send_with(&hello, &ipckit::SendMeta::new().fds(&[pool.as_fd()])).unwrap();
    let answer = conn.recv_timeout(HANG_GUARD).unwrap();
    (conn, answer)
}

fn memfd(size: u64, seals: rustix::fs::SealFlags) -> rustix::fd::OwnedFd {
    let fd = rustix::fs::memfd_create("ipckit-t-pool", rustix::fs::MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    // The first two chunks written, as a sender writes what it lends
    // (references to holes are refused).
    let written = vec![0u8; (2 * CHUNK).min(size as usize)];
    rustix::io::pwrite(&fd, &written, 0).unwrap();
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    }
    fd
}

/// A received pool that is unsealed, writable by others or shorter than
/// announced is refused before mapping, and its descriptor closed.
#[test]
fn a_bad_pool_is_refused_before_mapping() {
    isolated("pool::isolated_bad_pool", HANG_GUARD);
}

#[test]
#[ignore = "child process entry point"]
fn isolated_bad_pool() {
    let Some(_) = child_role() else { return };
    use rustix::fs::SealFlags;
    let s = Scratch::new("shm-badpool");
    let text = channel(&s, "badpool", "");
    let name = text.trim_start_matches("shm:").to_string();
    let rx = Receiver::bind(&ep(&text)).unwrap();
    let base = open_fds();
    let sealed = SealFlags::SHRINK | SealFlags::GROW | SealFlags::FUTURE_WRITE;
    for (why, fd, size) in [
        ("unsealed", memfd(1 << 20, SealFlags::empty()), 1 << 20),
        ("growable", memfd(1 << 20, SealFlags::SHRINK | SealFlags::FUTURE_WRITE), 1 << 20),
        ("writable by others", memfd(1 << 20, SealFlags::SHRINK | SealFlags::GROW), 1 << 20),
        ("short", memfd(1 << 20, sealed), 2 << 20),
        ("not whole chunks", memfd(1 << 20, sealed), 1000),
    ] {
        let (conn, answer) = join_with_pool(&name, &fd, size);
        assert_eq!(answer.data[..13], *b"IPCKIT-SHM\x02R\x03", "{why}: a refusal for the protocol");
        assert!(String::from_utf8_lossy(&answer.data).contains("pool"), "{why}: says why");
        assert!(answer.meta.fds.is_empty());
        drop((conn, fd));
    }
    // The service thread closes each connection right after its refusal
    // went out: wait for the last one.
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while open_fds() != base && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(open_fds(), base, "every received descriptor closed");
    drop(rx);
}

/// A hostile sender publishing references outside its pool, of a wrong
/// length, or to chunks the receiver still holds: `Corrupt` for that
/// message, and the receiver keeps serving (that sender too).
#[test]
fn hostile_pool_references_are_corrupt_and_the_receiver_keeps_serving() {
    use rustix::fs::SealFlags;
    let s = Scratch::new("shm-hostref");
    let text = channel(&s, "hostref", "?size=4KiB");
    let name = text.trim_start_matches("shm:").split('?').next().unwrap().to_string();
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let pool = memfd(4 * CHUNK as u64, SealFlags::SHRINK | SealFlags::GROW | SealFlags::FUTURE_WRITE);
    let (_conn, welcome) = join_with_pool(&name, &pool, 4 * CHUNK as u64);
    assert_eq!(welcome.data[..12], *b"IPCKIT-SHM\x02W");
    let ring_fd = welcome.meta.fds.into_iter().next().unwrap();
    let len = rustix::fs::fstat(&ring_fd).unwrap().st_size as usize;
    let ring = Region::from_received_fd(ring_fd, len, ipckit::shm::Trust::SealedOnly).unwrap();
    let mut tail = 0u64;
    // Publishes one pool record (offset, len) of `record_len` bytes.
    let mut publish = |offset: u64, msg_len: u64, record_len: u32| {
        let at = 256 + (tail as usize % 4096);
        ring.write_at(at, &(record_len as u64 | 1 << 32).to_le_bytes()).unwrap();
        ring.write_at(at + 8, &offset.to_le_bytes()).unwrap();
        ring.write_at(at + 16, &msg_len.to_le_bytes()).unwrap();
        tail += 8 + (record_len as u64).next_multiple_of(8);
        ring.atomic_u64(64).unwrap().store(tail, std::sync::atomic::Ordering::Release);
    };
    let cases: [(&str, u64, u64, u32); 5] = [
        ("outside the pool", 4 * CHUNK as u64, 10, 16),
        ("running past its end", 3 * CHUNK as u64, CHUNK as u64 + 1, 16),
        ("not chunk-aligned", 100, 10, 16),
        ("a record of the wrong length", 0, 10, 24),
        ("an offset that overflows", u64::MAX - 5, 10, 16),
    ];
    for (why, offset, msg_len, record_len) in cases {
        publish(offset, msg_len, record_len);
        let e = rx.recv_sample_timeout(HANG_GUARD).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{why}: {e}");
    }
    // A good reference from the same sender is served...
    publish(0, 10, 16);
    let held = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    assert!(held.is_in_place() && held.len() == 10);
    // ...and one to a chunk the receiver still holds is not.
    publish(0, 10, 16);
    let e = rx.recv_sample_timeout(HANG_GUARD).unwrap_err();
    assert!(e.kind() == ErrorKind::Corrupt && e.to_string().contains("held"), "{e}");
    assert_eq!(rx.connections(), 1, "the hostile sender is still served");
    // An honest sender is served all along.
    let mut honest = Sender::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
    honest.send(&[5u8; 100_000]).unwrap();
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, vec![5u8; 100_000]);
}

/// Child: binds `IPCKIT_EP`, takes three samples, says so, and holds them
/// until it is killed.
#[test]
#[ignore = "child process entry point"]
fn child_holding_receiver() {
    let Some(_) = child_role() else { return };
    let mut rx = Receiver::bind(&ep(&env("IPCKIT_EP"))).unwrap();
    println!("bound");
    let held: Vec<_> = (0..3).map(|_| rx.recv_sample_timeout(HANG_GUARD).unwrap()).collect();
    assert!(held.iter().all(|s| s.is_in_place()));
    println!("held");
    std::thread::sleep(HANG_GUARD);
}

fn pool_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().filter(|l| l.contains("ipckit-shm:")).count()
}

/// A receiver SIGKILLed while it holds pool chunks, 100 times: the sender
/// gets `Disconnected`, and once it is dropped no descriptor or mapping of
/// the channel is left in this process.
#[test]
fn a_receiver_killed_holding_chunks() {
    isolated("pool::isolated_killed_holding", 6 * HANG_GUARD);
}

#[test]
#[ignore = "child process entry point"]
fn isolated_killed_holding() {
    let Some(_) = child_role() else { return };
    let s = Scratch::new("shm-killhold");
    let (fds, maps) = (open_fds(), pool_mappings());
    for round in 0..100 {
        let text = channel(&s, &format!("k{round}"), "?inline=0");
        let mut child = Guarded::spawn(
            rerun("pool::child_holding_receiver", "receiver").env("IPCKIT_EP", &text).stdout(Stdio::piped()),
        );
        let mut lines = BufReader::new(child.child().stdout.take().unwrap()).lines();
        let mut expect = |word: &str| {
            // The harness prints its own words first (`running 1 test`,
            // `test NAME ... ` on the same line).
            assert!(lines.any(|l| l.is_ok_and(|l| l.ends_with(word))), "round {round}: the receiver never said {word}");
        };
        expect("bound");
        let mut tx = Sender::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
        for i in 0..3 {
            tx.send(&pattern(1000 + i, round)).unwrap();
        }
        expect("held");
        let _ = expect;
        assert!(tx.pool_in_use().unwrap().unwrap() >= 3 * CHUNK, "round {round}: the receiver holds three chunks");
        kill_process(Pid::from_raw(child.child().id() as i32).unwrap(), Signal::KILL).unwrap();
        let status = child.wait();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        let e = tx.send(&pattern(5000, round)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "round {round}: {e}");
        let e = tx.loan(10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "round {round}: {e}");
        drop((tx, lines));
        assert_eq!((open_fds(), pool_mappings()), (fds, maps), "round {round}: nothing left behind");
    }
}
