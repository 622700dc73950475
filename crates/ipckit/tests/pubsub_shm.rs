//! Publish-subscribe on `shm:` between real processes: every subscriber
//! sees every message once and in order (block), or counts what it lost
//! (drop-oldest); history for late subscribers; subscribers and
//! publishers killed; a hostile publisher; names that do not clash;
//! another user's crowd of silent connections, to a topic and to a
//! channel, locks no one out.

use std::time::Duration;

use ipckit::pubsub::{Publisher, Subscriber};
use ipckit::{Endpoint, ErrorKind, Options};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::checksum;
use ipckit_testkit::scratch::Scratch;
use rustix::process::{Pid, Signal, kill_process};

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn topic(s: &Scratch, name: &str, query: &str) -> String {
    format!("shm:{}{query}", s.name(name))
}

fn sub(text: &str) -> Subscriber {
    Subscriber::connect_timeout(&ep(text), &Options::new(), HANG_GUARD).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A message: sequence number, checksum, some bytes that depend on it.
fn message(seq: u64) -> Vec<u8> {
    let len = 16 + (seq % 48) as usize;
    let mut m = vec![0u8; len];
    for (i, b) in m[16..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let sum = checksum(&m[16..]);
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m[8..16].copy_from_slice(&sum.to_le_bytes());
    m
}

fn check(m: &[u8]) -> u64 {
    assert!(m.len() >= 16, "message of {} bytes", m.len());
    let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert_eq!(u64::from_le_bytes(m[8..16].try_into().unwrap()), checksum(&m[16..]), "message #{seq} intact");
    seq
}

fn sigkill(child: &mut Guarded) {
    let pid = Pid::from_raw(child.child().id() as i32).unwrap();
    kill_process(pid, Signal::KILL).unwrap();
}

/// Whether an abstract socket whose name contains `name` exists.
fn socket_exists(name: &str) -> bool {
    std::fs::read_to_string("/proc/net/unix").unwrap_or_default().lines().any(|l| l.contains(name))
}

/// Whether /dev/shm holds anything named with `name`.
fn dev_shm_has(name: &str) -> bool {
    std::fs::read_dir("/dev/shm").is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().contains(name)))
}

fn assert_clean(s: &Scratch, name: &str) {
    let full = s.name(name);
    assert!(!socket_exists(&full), "a control socket of {full} is left");
    assert!(!dev_shm_has(&full), "/dev/shm holds something of {full}");
}

#[test]
fn one_thread_publish_and_receive() {
    let s = Scratch::new("ps-basic");
    let text = topic(&s, "t", "");
    {
        let mut p = Publisher::bind(&ep(&text)).unwrap();
        // No subscriber under block: publishing does not block.
        for i in 0..1000 {
            p.try_publish(&message(i)).unwrap();
        }
        let mut a = sub(&text);
        let mut b = sub(&text);
        assert_eq!(p.subscribers(), 2);
        assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::Empty);
        for i in 0..200 {
            p.publish(&message(i)).unwrap();
            assert_eq!(check(&a.recv_timeout(HANG_GUARD).unwrap().data), i);
            let m = b.recv_timeout(HANG_GUARD).unwrap();
            assert_eq!(check(&m.data), i);
            assert_eq!(m.meta.lost, 0);
        }
        // 64 slots: the 65th is held back by the subscribers.
        for i in 0..64 {
            p.try_publish(&message(i)).unwrap();
        }
        assert_eq!(p.try_publish(b"x").unwrap_err().kind(), ErrorKind::Full);
        assert_eq!(p.publish_timeout(b"x", Duration::from_millis(10)).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_eq!(check(&a.recv().unwrap().data), 0);
        // Still held back by b.
        assert_eq!(p.try_publish(b"x").unwrap_err().kind(), ErrorKind::Full);
        drop(b);
        // b forgotten once the service thread sees its end.
        p.publish_timeout(b"x", HANG_GUARD).unwrap();
        assert_eq!(p.try_publish(b"x").unwrap_err().kind(), ErrorKind::Full);
        let big = vec![0u8; 64 << 10];
        assert_eq!(p.publish(&big).unwrap_err().kind(), ErrorKind::TooLarge);
        drop(p);
        for i in 1..64 {
            assert_eq!(check(&a.recv().unwrap().data), i);
        }
        assert_eq!(a.recv().unwrap().data, b"x");
        assert_eq!(a.recv().unwrap_err().kind(), ErrorKind::Disconnected);
    }
    assert_clean(&s, "t");
}

/// Child: subscribes (the parent waits for the subscriber count), then
/// takes `IPCKIT_COUNT` messages as received or lost (or stops at
/// `Disconnected`), checking each, optionally slowed (`IPCKIT_SLOW`: a
/// pause every 1000 messages); prints "received lost" on stderr last.
#[test]
#[ignore = "child process entry point"]
fn child_subscriber() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let count: u64 = std::env::var("IPCKIT_COUNT").map_or(u64::MAX, |c| c.parse().unwrap());
    let slow = std::env::var("IPCKIT_SLOW").is_ok();
    let mut s = sub(&text);
    let (mut received, mut lost, mut expect) = (0u64, 0u64, None::<u64>);
    while received + lost < count {
        let m = match s.recv() {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => panic!("{e}"),
        };
        let seq = check(&m.data);
        if let Some(want) = expect {
            assert_eq!(seq, want + m.meta.lost, "in order, losses counted exactly");
        }
        lost += m.meta.lost;
        received += 1;
        expect = Some(seq + 1);
        if slow && received % 1000 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    eprintln!("{received} {lost}");
}

fn last_line(out: &std::process::Output) -> (u64, u64) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "subscriber failed: {err}");
    let line = err.lines().last().unwrap_or_default().to_string();
    let mut it = line.split(' ').map(|n| n.parse::<u64>().unwrap_or_else(|_| panic!("{line:?}")));
    (it.next().unwrap(), it.next().unwrap())
}

fn spawn_subs(text: &str, n: usize, count: u64, slow: impl Fn(usize) -> bool) -> Vec<Guarded> {
    (0..n)
        .map(|i| {
            let mut cmd = rerun("child_subscriber", "subscriber");
            cmd.env("IPCKIT_EP", text).env("IPCKIT_COUNT", count.to_string()).stderr(std::process::Stdio::piped());
            if slow(i) {
                cmd.env("IPCKIT_SLOW", "1");
            }
            Guarded::spawn(&mut cmd)
        })
        .collect()
}

/// 1 publisher, 8 subscriber processes, 1,000,000 messages under block:
/// every subscriber sees every message once, in order.
#[test]
fn eight_subscribers_a_million_messages_block() {
    const N: u64 = 1_000_000;
    let s = Scratch::new("ps-8x1m");
    let text = topic(&s, "t", "?size=128");
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    let subs = spawn_subs(&topic(&s, "t", ""), 8, N, |_| false);
    p.wait_for_subscribers(8, Some(HANG_GUARD)).unwrap();
    for i in 0..N {
        p.publish(&message(i)).unwrap();
    }
    for child in subs {
        assert_eq!(last_line(&child.output()), (N, 0));
    }
    drop(p);
    assert_clean(&s, "t");
}

/// Under drop-oldest with some subscribers slowed: received + lost =
/// published for each, and a slow one lost some.
#[test]
fn drop_oldest_slow_subscribers_count_their_losses() {
    const N: u64 = 300_000;
    let s = Scratch::new("ps-drop");
    let text = topic(&s, "t", "?size=128&overflow=drop-oldest");
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    let subs = spawn_subs(&topic(&s, "t", ""), 4, N, |i| i % 2 == 0);
    p.wait_for_subscribers(4, Some(HANG_GUARD)).unwrap();
    for i in 0..N {
        p.try_publish(&message(i)).unwrap();
    }
    // The fast ones may have lost some too: what matters is that nothing
    // is lost silently.
    drop(p);
    for (i, child) in subs.into_iter().enumerate() {
        let (received, lost) = last_line(&child.output());
        if i % 2 == 0 {
            assert!(lost > 0, "slow subscriber {i} lost nothing");
        }
        // Each drains before its `Disconnected`: every message was received
        // or counted lost.
        assert_eq!(received + lost, N, "subscriber {i}");
    }
    assert_clean(&s, "t");
}

#[test]
fn history_for_late_subscribers() {
    let s = Scratch::new("ps-hist");
    let text = topic(&s, "t", "?history=10");
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    for i in 0..100 {
        p.publish(&message(i)).unwrap();
    }
    let base = topic(&s, "t", "");
    let mut late = Subscriber::connect_timeout(&ep(&format!("{base}?history=4")), &Options::new(), HANG_GUARD).unwrap();
    let mut all = Subscriber::connect_timeout(&ep(&base), &Options::new().history(10), HANG_GUARD).unwrap();
    let mut none = sub(&base);
    p.publish(&message(100)).unwrap();
    for i in 96..=100 {
        assert_eq!(check(&late.recv_timeout(HANG_GUARD).unwrap().data), i);
    }
    for i in 90..=100 {
        assert_eq!(check(&all.recv_timeout(HANG_GUARD).unwrap().data), i);
    }
    assert_eq!(check(&none.recv_timeout(HANG_GUARD).unwrap().data), 100);
    let e = Subscriber::connect_timeout(&ep(&base), &Options::new().history(11), HANG_GUARD).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.to_string().contains("keeps the last 10"), "{e}");
    // Fewer published than asked for: what there is.
    let t2 = topic(&s, "t2", "?history=50");
    let mut p2 = Publisher::bind(&ep(&t2)).unwrap();
    p2.publish(&message(0)).unwrap();
    let mut s2 =
        Subscriber::connect_timeout(&ep(&topic(&s, "t2", "")), &Options::new().history(50), HANG_GUARD).unwrap();
    assert_eq!(check(&s2.recv_timeout(HANG_GUARD).unwrap().data), 0);
    assert_eq!(s2.try_recv().unwrap_err().kind(), ErrorKind::Empty);
}

#[test]
fn no_publisher() {
    let s = Scratch::new("ps-none");
    let text = topic(&s, "t", "");
    assert_eq!(Subscriber::try_connect(&ep(&text), &Options::new()).unwrap_err().kind(), ErrorKind::NotFound);
    let e = Subscriber::connect_timeout(&ep(&text), &Options::new(), Duration::from_millis(50)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
}

/// A channel `shm:X` and a topic `shm:X` coexist.
#[test]
fn topic_and_channel_names_do_not_clash() {
    let s = Scratch::new("ps-names");
    let text = topic(&s, "x", "");
    let mut rx = ipckit::Receiver::bind(&ep(&text)).unwrap();
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    let mut tx = ipckit::Sender::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
    let mut sb = sub(&text);
    tx.send(b"channel").unwrap();
    p.publish(b"topic").unwrap();
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"channel");
    assert_eq!(sb.recv_timeout(HANG_GUARD).unwrap().data, b"topic");
    // A second publisher is AlreadyExists.
    assert_eq!(Publisher::bind(&ep(&text)).unwrap_err().kind(), ErrorKind::AlreadyExists);
}

/// Child: subscribes and then does nothing (it is killed).
#[test]
#[ignore = "child process entry point"]
fn child_idle_subscriber() {
    let Some(_) = child_role() else { return };
    let mut s = sub(&env("IPCKIT_EP"));
    let reads: u64 = env("IPCKIT_READS").parse().unwrap();
    for _ in 0..reads {
        check(&s.recv().unwrap().data);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A subscriber SIGKILLed while the publisher waits on it (block): the
/// publisher is released.
#[test]
fn killed_subscriber_releases_a_blocked_publisher() {
    let s = Scratch::new("ps-killwait");
    let text = topic(&s, "t", "");
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    let mut child =
        Guarded::spawn(rerun("child_idle_subscriber", "idle").env("IPCKIT_EP", &text).env("IPCKIT_READS", "0"));
    p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
    for i in 0..64 {
        p.publish(&message(i)).unwrap();
    }
    assert_eq!(p.try_publish(b"x").unwrap_err().kind(), ErrorKind::Full);
    let pid = child.child().id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::KILL).unwrap();
    });
    p.publish_timeout(b"x", HANG_GUARD).unwrap();
    killer.join().unwrap();
    child.wait();
    assert_eq!(p.subscribers(), 0);
}

/// Subscribers SIGKILLed 100 times at random points while the publisher
/// publishes to them and to two that stay: everyone goes on, and the
/// publisher holds no descriptor more than before.
#[test]
fn subscribers_killed_at_random_points() {
    let s = Scratch::new("ps-kill100");
    let text = topic(&s, "t", "?size=128");
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    let fds_before = ipckit_testkit::procfs::open_fds();
    let mut stay_a = sub(&text);
    let mut stay_b = sub(&text);
    let mut rng = ipckit_testkit::data::Rng(0x5eed);
    let mut seq = 0u64;
    for round in 0..100 {
        let reads = rng.below(100);
        let mut child = Guarded::spawn(
            rerun("child_idle_subscriber", "idle").env("IPCKIT_EP", &text).env("IPCKIT_READS", reads.to_string()),
        );
        p.wait_for_subscribers(3, Some(HANG_GUARD)).unwrap();
        let burst = rng.below(150);
        for _ in 0..burst {
            // The child may hold the publisher back (it stops reading):
            // its death releases it.
            if p.try_publish(&message(seq)).is_err() {
                break;
            }
            seq += 1;
            while let Ok(m) = stay_a.try_recv() {
                check(&m.data);
            }
            while let Ok(m) = stay_b.try_recv() {
                check(&m.data);
            }
        }
        sigkill(&mut child);
        child.wait();
        p.publish_timeout(&message(seq), HANG_GUARD).unwrap_or_else(|e| panic!("round {round}: {e}"));
        seq += 1;
        while let Ok(m) = stay_a.try_recv() {
            check(&m.data);
        }
        while let Ok(m) = stay_b.try_recv() {
            check(&m.data);
        }
        // Forgotten within the hang guard (at once, in fact).
        let deadline = std::time::Instant::now() + HANG_GUARD;
        while p.subscribers() != 2 {
            assert!(std::time::Instant::now() < deadline, "round {round}: the dead subscriber is remembered");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(stay_a);
    drop(stay_b);
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while p.subscribers() != 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(ipckit_testkit::procfs::open_fds(), fds_before, "the publisher's descriptors");
    drop(p);
    assert_clean(&s, "t");
}

/// Child: publishes `IPCKIT_COUNT` messages, then waits to be killed.
#[test]
#[ignore = "child process entry point"]
fn child_publisher() {
    let Some(_) = child_role() else { return };
    let count: u64 = env("IPCKIT_COUNT").parse().unwrap();
    let mut p = Publisher::bind(&ep(&env("IPCKIT_EP"))).unwrap();
    p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
    for i in 0..count {
        p.publish(&message(i)).unwrap();
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The publisher killed: its subscribers read what it published, then get
/// `Disconnected`.
#[test]
fn killed_publisher_is_disconnected_after_the_drain() {
    let s = Scratch::new("ps-killpub");
    let text = topic(&s, "t", "?overflow=drop-oldest&history=64");
    let mut child =
        Guarded::spawn(rerun("child_publisher", "publisher").env("IPCKIT_EP", &text).env("IPCKIT_COUNT", "50"));
    let base = topic(&s, "t", "");
    let mut a = sub(&base);
    let first = a.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(check(&first.data), 0);
    // All 50 are out once the 50th is.
    let mut got = 1;
    while got < 50 {
        assert_eq!(check(&a.recv_timeout(HANG_GUARD).unwrap().data), got);
        got += 1;
    }
    let mut late = Subscriber::connect_timeout(&ep(&base), &Options::new().history(64), HANG_GUARD).unwrap();
    sigkill(&mut child);
    child.wait();
    for i in 0..50 {
        assert_eq!(check(&late.recv_timeout(HANG_GUARD).unwrap().data), i);
    }
    assert_eq!(late.recv_timeout(HANG_GUARD).unwrap_err().kind(), ErrorKind::Disconnected);
    assert_eq!(a.recv_timeout(HANG_GUARD).unwrap_err().kind(), ErrorKind::Disconnected);
    assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::Disconnected);
    assert_clean(&s, "t");
}

/// Not a check: prints the round trip of a 16-byte message over two
/// topics (publish → subscriber → publish back) beside the same over two
/// `shm:` channels, two threads. `cargo test --release --test pubsub_shm
/// round_trip_ratio -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn round_trip_ratio() {
    const N: u32 = 20_000;
    let s = Scratch::new("ps-ratio");
    let (there, back) = (topic(&s, "there", ""), topic(&s, "back", ""));
    let topics = {
        let mut p = Publisher::bind(&ep(&there)).unwrap();
        let (b1, t1) = (back.clone(), there.clone());
        let echo = std::thread::spawn(move || {
            let mut pb = Publisher::bind(&ep(&b1)).unwrap();
            let mut sub_there = sub(&t1);
            pb.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
            for _ in 0..N {
                let m = sub_there.recv().unwrap();
                pb.publish(&m.data).unwrap();
            }
        });
        let mut sub_back = sub(&back);
        p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
        let start = std::time::Instant::now();
        for i in 0..N {
            p.publish(&[i as u8; 16]).unwrap();
            sub_back.recv().unwrap();
        }
        let t = start.elapsed() / N;
        echo.join().unwrap();
        t
    };
    let channels = {
        let (c1, c2) = (topic(&s, "c1", ""), topic(&s, "c2", ""));
        let mut rx2 = ipckit::Receiver::bind(&ep(&c2)).unwrap();
        let mut rx1 = ipckit::Receiver::bind(&ep(&c1)).unwrap();
        let c2b = c2.clone();
        let mut tx1 = ipckit::Sender::connect_timeout(&ep(&c1), &Options::new(), HANG_GUARD).unwrap();
        let echo = std::thread::spawn(move || {
            let mut tx2 = ipckit::Sender::connect_timeout(&ep(&c2b), &Options::new(), HANG_GUARD).unwrap();
            for _ in 0..N {
                let m = rx1.recv().unwrap();
                tx2.send(&m.data).unwrap();
            }
        });
        let start = std::time::Instant::now();
        for i in 0..N {
            tx1.send(&[i as u8; 16]).unwrap();
            rx2.recv().unwrap();
        }
        let t = start.elapsed() / N;
        echo.join().unwrap();
        t
    };
    eprintln!(
        "round trip, 16 bytes: topic {topics:?}, channel {channels:?}, ratio {:.2}",
        topics.as_secs_f64() / channels.as_secs_f64()
    );
}

/// The handshake's version (`pubsub::shm::control`).
const PROTOCOL: u8 = 2;

/// A subscriber doing the handshake by hand: the welcome's `start` and
/// the descriptors that came with it; the connection stays open.
fn raw_join(text: &str, history: u64) -> (ipckit::socket::Connection, u64, Vec<std::os::fd::OwnedFd>) {
    let name = text.strip_prefix("shm:").unwrap().split('?').next().unwrap();
    let control = ep(&format!("unix-seqpacket:@ipckit/topic/{name}"));
    let mut conn = ipckit::socket::Connection::connect_timeout(&control, &Options::new(), HANG_GUARD).unwrap();
    let mut hello = b"IPCKIT-TOPIC".to_vec();
    hello.push(PROTOCOL);
    hello.push(b'H');
    hello.extend_from_slice(&history.to_le_bytes());
    conn.send(&hello).unwrap();
    let welcome = conn.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(&welcome.data[..14], b"IPCKIT-TOPIC\x00W".map(|b| if b == 0 { PROTOCOL } else { b }).as_slice());
    let start = u64::from_le_bytes(welcome.data[14..22].try_into().unwrap());
    (conn, start, welcome.meta.fds)
}

/// Whether `fd` is an eventfd.
fn is_eventfd(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|l| l.to_string_lossy().contains("eventfd"))
}

/// Runs `f` on a thread; panics if it takes longer than `limit` (the thread
/// is left hanging: the test has failed).
fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| panic!("{what} hangs"))
}

/// A hostile subscriber with every descriptor of its welcome: it clears
/// `O_NONBLOCK` on each eventfd (a flag of the open file description,
/// shared with the publisher) and fills its counter, so that a blocking
/// write would wait for ever; it announces that it sleeps (`PARKED` on
/// `published`), so that the publisher wakes it at every message, and it
/// never reads its connection. The publisher goes on publishing, honest
/// subscribers go on receiving and waking the publisher, and new
/// subscribers still join.
#[test]
fn hostile_subscriber_cannot_block_a_wake_up() {
    use std::os::fd::AsFd;
    use std::sync::atomic::{AtomicU64, Ordering};
    let s = Scratch::new("ps-hostile-bell");
    let text = topic(&s, "t", "?size=128");
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    let (mut conn, _, fds) = raw_join(&text, 0);
    for fd in fds.iter().filter(|fd| is_eventfd(fd)) {
        rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::empty()).unwrap();
        rustix::io::write(fd, &(u64::MAX - 1).to_ne_bytes()).unwrap();
    }
    // Its cursor page: PARKED on `published` (offset 64), and a cursor
    // (offset 128) that keeps up and wakes the publisher as the protocol
    // says, so that it never holds the publisher back itself (that it may
    // do, for as long as the block policy lets it).
    let page = fds.iter().find(|fd| rustix::fs::fstat(fd).is_ok_and(|st| st.st_size == 4096)).expect("a cursor page");
    // SAFETY: a fresh shared mapping of the page, used through atomics only.
    let map = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            page.as_fd(),
            0,
        )
    }
    .unwrap();
    // SAFETY: 8-aligned words inside the mapping, which is never unmapped.
    let (published, cursor) =
        unsafe { (AtomicU64::from_ptr(map.cast::<u64>().add(8)), AtomicU64::from_ptr(map.cast::<u64>().add(16))) };
    let keep_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let k = keep_up.clone();
    let cheater = std::thread::spawn(move || {
        while k.load(Ordering::Relaxed) {
            published.fetch_or(1 << 63, Ordering::AcqRel);
            if cursor.swap(published.load(Ordering::Acquire) & !(1 << 63), Ordering::AcqRel) & (1 << 63) != 0 {
                let _ = conn.try_send(b"w");
            }
            std::hint::spin_loop();
        }
        conn
    });
    let mut honest = sub(&text);
    // 64 slots: an honest subscriber that waits makes the publisher park
    // on it, and its reads wake the publisher.
    let reader = std::thread::spawn(move || {
        for i in 0..2000 {
            let m = honest.recv_timeout(HANG_GUARD).unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert_eq!(check(&m.data), i);
        }
        honest
    });
    let mut p = within(HANG_GUARD, "publishing beside the hostile subscriber", move || {
        for i in 0..2000 {
            p.publish_timeout(&message(i), HANG_GUARD)
                .unwrap_or_else(|e| panic!("message {i}: {e} {:?}", p.take_warnings()));
        }
        p
    });
    let _honest = within(HANG_GUARD, "an honest subscriber beside the hostile one", move || reader.join().unwrap());
    let late = within(HANG_GUARD, "joining beside the hostile subscriber", {
        let text = text.clone();
        move || sub(&text)
    });
    p.wait_for_subscribers(3, Some(HANG_GUARD)).unwrap();
    keep_up.store(false, Ordering::Relaxed);
    drop(cheater.join().unwrap());
    drop(late);
}

/// A memfd of `size` bytes holding `bytes` at offset 0, sealed with
/// `seals`.
fn memfd(size: u64, bytes: &[u8], seals: rustix::fs::SealFlags) -> std::os::fd::OwnedFd {
    use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
    let fd = memfd_create("fake-topic", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    ftruncate(&fd, size).unwrap();
    rustix::io::pwrite(&fd, bytes, 0).unwrap();
    rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    fd
}

/// An ipckit object header (`shm::Header`): magic, version, state,
/// kind, size.
fn object_header(kind: u32, version: u32, size: u64) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..8].copy_from_slice(b"IPCKIT\0\x01");
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&2u32.to_le_bytes());
    h[24..28].copy_from_slice(&kind.to_le_bytes());
    h[32..40].copy_from_slice(&size.to_le_bytes());
    h
}

/// What a fake publisher hands over in one case.
struct Fake {
    what: &'static str,
    /// The welcome's bytes after `W` (None: the packet is garbage).
    start: Option<u64>,
    fds: Vec<std::os::fd::OwnedFd>,
    /// The error kinds the subscriber may end with.
    expect: &'static [ErrorKind],
}

/// A topic memfd as a C program would lay it out (`pubsub::shm::layout`),
/// with the fields a case changes: 64 slots of 64 bytes unless told.
#[derive(Clone, Copy)]
struct Topic {
    kind: u32,
    version: u32,
    slots: u64,
    slot_size: u64,
    head: u64,
    /// Slot 0's `seq` and `len`.
    seq0: u64,
    len0: u64,
    /// The memfd's size (0: what the geometry says).
    size: u64,
}

const TOPIC: Topic = Topic { kind: 8, version: 1, slots: 64, slot_size: 64, head: 0, seq0: 0, len0: 0, size: 0 };

fn topic_fd(t: Topic) -> std::os::fd::OwnedFd {
    use rustix::fs::SealFlags;
    let size = if t.size != 0 { t.size } else { 256 + t.slots.saturating_mul(t.slot_size).min(1 << 30) };
    let mut bytes = object_header(t.kind, t.version, size);
    bytes.resize(256 + 16, 0);
    bytes[64..72].copy_from_slice(&t.head.to_le_bytes());
    bytes[128..136].copy_from_slice(&t.slots.to_le_bytes());
    bytes[136..144].copy_from_slice(&t.slot_size.to_le_bytes());
    bytes[256..264].copy_from_slice(&t.seq0.to_le_bytes());
    bytes[264..272].copy_from_slice(&t.len0.to_le_bytes());
    memfd(size, &bytes, SealFlags::SHRINK | SealFlags::GROW | SealFlags::FUTURE_WRITE | SealFlags::SEAL)
}

fn cursor_fd(size: u64) -> std::os::fd::OwnedFd {
    use rustix::fs::SealFlags;
    memfd(size, &object_header(9, 1, 4096), SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
}

fn fakes() -> Vec<Fake> {
    use ErrorKind::{Corrupt, PermissionDenied};
    let case = |what, start, fds, expect| Fake { what, start: Some(start), fds, expect };
    let with = |what, t: Topic, start, expect| case(what, start, vec![topic_fd(t), cursor_fd(4096)], expect);
    let unsealed = {
        let fd = rustix::fs::memfd_create("fake", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 256 + 64 * 64).unwrap();
        fd
    };
    let (pipe_r, _pipe_w) = rustix::pipe::pipe().unwrap();
    vec![
        with("an honest empty topic (the control case)", TOPIC, 0, &[]),
        with("wrong kind", Topic { kind: 7, ..TOPIC }, 0, &[Corrupt]),
        with("wrong version", Topic { version: 9, ..TOPIC }, 0, &[Corrupt]),
        with("65 slots", Topic { slots: 65, ..TOPIC }, 0, &[Corrupt]),
        with("a slot of 2^40 bytes", Topic { slot_size: 1 << 40, ..TOPIC }, 0, &[Corrupt]),
        with("a slot of 100 bytes", Topic { slot_size: 100, ..TOPIC }, 0, &[Corrupt]),
        with("a memfd of 2^40 bytes", Topic { size: 1 << 40, ..TOPIC }, 0, &[Corrupt]),
        with("a memfd just over the largest topic", Topic { size: 256 + (1 << 30) + 1, ..TOPIC }, 0, &[Corrupt]),
        with("a memfd smaller than its slots", Topic { size: 256 + 64 * 32, ..TOPIC }, 0, &[Corrupt]),
        with("head at 2^62", Topic { head: 1 << 62, ..TOPIC }, 0, &[Corrupt]),
        with("start past head", Topic { head: 3, ..TOPIC }, 4, &[Corrupt]),
        with("head far ahead, slots never written", Topic { head: 1 << 40, ..TOPIC }, 0, &[Corrupt]),
        with("seq of another message", Topic { head: 1, seq0: 7, ..TOPIC }, 0, &[Corrupt]),
        with("seq of a message not published", Topic { head: 1, seq0: 2 * 64 + 2 + 2 * 64, ..TOPIC }, 0, &[Corrupt]),
        with("len past the slot", Topic { head: 1, seq0: 2, len0: 49, ..TOPIC }, 0, &[Corrupt]),
        with("len of 2^63", Topic { head: 1, seq0: 2, len0: 1 << 63, ..TOPIC }, 0, &[Corrupt]),
        case("a cursor page of 0 bytes", 0, vec![topic_fd(TOPIC), cursor_fd(0)], &[Corrupt]),
        case("the topic as its cursor page", 0, vec![topic_fd(TOPIC), topic_fd(TOPIC)], &[Corrupt]),
        case("an unsealed memfd", 0, vec![unsealed, cursor_fd(4096)], &[PermissionDenied, Corrupt]),
        case("a pipe for the topic", 0, vec![pipe_r, cursor_fd(4096)], &[PermissionDenied, Corrupt]),
        case("one descriptor", 0, vec![topic_fd(TOPIC)], &[Corrupt]),
        case("no descriptor", 0, vec![], &[Corrupt]),
        Fake { what: "a garbage welcome", start: None, fds: vec![], expect: &[Corrupt] },
    ]
}

/// Child: subscribes `IPCKIT_COUNT` times to a fake publisher; each time
/// receives (within 200 ms) until an error, and prints the error kind
/// (`none`: no error) on stderr, a line per case.
#[test]
#[ignore = "child process entry point"]
fn child_fake_publisher_subscriber() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let count: usize = env("IPCKIT_COUNT").parse().unwrap();
    for i in 0..count {
        let kind = match Subscriber::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD) {
            Err(e) => format!("{:?} {e}", e.kind()),
            Ok(mut s) => loop {
                match s.recv_timeout(Duration::from_millis(200)) {
                    Ok(m) => assert!(m.data.len() <= 48, "case {i}: a message larger than a slot"),
                    Err(e) if e.kind() == ErrorKind::TimedOut => break "none".to_string(),
                    Err(e) => break format!("{:?} {e}", e.kind()),
                }
            },
        };
        eprintln!("case {i}: {kind}");
    }
}

/// A fake publisher (this test, bound to the topic's control socket)
/// hands a subscriber process nonsense: every case ends in `Corrupt` (or
/// `PermissionDenied` for descriptors that are not sealed memfds), never
/// a panic, a crash, a hang or an allocation sized by the fake.
#[test]
fn fake_publisher_gets_corrupt() {
    let s = Scratch::new("ps-fake");
    let name = s.name("t");
    let listener = ipckit::socket::Listener::bind(&ep(&format!("unix-seqpacket:@ipckit/topic/{name}")))
        .expect("the control socket");
    let cases = fakes();
    let child = Guarded::spawn(
        rerun("child_fake_publisher_subscriber", "subscriber")
            .env("IPCKIT_EP", format!("shm:{name}"))
            .env("IPCKIT_COUNT", cases.len().to_string())
            .stderr(std::process::Stdio::piped()),
    );
    use std::os::fd::AsFd;
    for case in &cases {
        let mut conn = listener.accept_timeout(HANG_GUARD).unwrap_or_else(|e| panic!("{}: {e}", case.what));
        let hello = conn.recv_timeout(HANG_GUARD).unwrap();
        assert_eq!(&hello.data[..14], b"IPCKIT-TOPIC\x00H".map(|b| if b == 0 { PROTOCOL } else { b }).as_slice());
        let mut welcome = b"IPCKIT-TOPIC".to_vec();
        match case.start {
            Some(start) => {
                welcome.extend_from_slice(&[PROTOCOL, b'W']);
                welcome.extend_from_slice(&start.to_le_bytes());
            }
            None => welcome.extend_from_slice(b"\x02Wxyz"),
        }
        let fds: Vec<_> = case.fds.iter().map(|fd| fd.as_fd()).collect();
        conn.send_with(&welcome, &ipckit::SendMeta::new().fds(&fds)).unwrap();
        // Open until the subscriber is done with this case: its errors are
        // its own findings, not the end of the connection.
        loop {
            match conn.recv_timeout(HANG_GUARD) {
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Disconnected => break,
                Err(e) => panic!("{}: {e}", case.what),
            }
        }
    }
    let out = child.output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the subscriber failed: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("case ")).collect();
    assert_eq!(lines.len(), cases.len(), "{err}");
    for (case, line) in cases.iter().zip(lines) {
        let got = line.split_once(": ").unwrap().1;
        let ok = if case.expect.is_empty() {
            got == "none"
        } else {
            case.expect.iter().any(|k| got.starts_with(&format!("{k:?} ")))
        };
        assert!(ok, "{}: expected {:?}, got {got}", case.what, case.expect);
        // A mapping is sized by the peer: bounded before it is made.
        if case.what.starts_with("a memfd of 2^40") || case.what.starts_with("a memfd just over") {
            assert!(got.contains("refused before mapping"), "{}: {got}", case.what);
        }
    }
}

/// Child: joins by hand and tries every way to write the topic memory:
/// a writable shared mapping of the descriptor, `mprotect` of a read-only
/// one, `write`, `ftruncate`, a second descriptor opened read-write
/// through /proc. Each must fail; prints "sealed" last.
#[test]
#[ignore = "child process entry point"]
fn child_topic_writer() {
    use rustix::mm::{MapFlags, MprotectFlags, ProtFlags, mmap, mprotect};
    use std::os::fd::AsRawFd;
    let Some(_) = child_role() else { return };
    let (_conn, _, fds) = raw_join(&env("IPCKIT_EP"), 0);
    let topic = &fds[0];
    let len = rustix::fs::fstat(topic).unwrap().st_size as usize;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    // SAFETY: fresh mappings at addresses the kernel chooses, never used
    // but to be refused.
    let writable = unsafe { mmap(std::ptr::null_mut(), len, rw, MapFlags::SHARED, topic, 0) };
    assert_eq!(writable.unwrap_err(), rustix::io::Errno::PERM, "a writable shared mapping");
    // SAFETY: as above; read-only.
    let ro = unsafe { mmap(std::ptr::null_mut(), len, ProtFlags::READ, MapFlags::SHARED, topic, 0) }.unwrap();
    // SAFETY: a mapping this process owns; changing it must be refused.
    let up = unsafe { mprotect(ro, len, MprotectFlags::READ | MprotectFlags::WRITE) };
    assert_eq!(up.unwrap_err(), rustix::io::Errno::ACCESS, "mprotect of the read-only mapping");
    assert_eq!(rustix::io::pwrite(topic, b"scribble", 64).unwrap_err(), rustix::io::Errno::PERM, "pwrite");
    assert_eq!(rustix::fs::ftruncate(topic, 0).unwrap_err(), rustix::io::Errno::PERM, "ftruncate");
    let again = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/fd/{}", topic.as_raw_fd()))
        .unwrap();
    // SAFETY: as above.
    let writable = unsafe { mmap(std::ptr::null_mut(), len, rw, MapFlags::SHARED, &again, 0) };
    assert_eq!(writable.unwrap_err(), rustix::io::Errno::PERM, "a writable mapping of a reopened descriptor");
    assert_eq!(rustix::io::pwrite(&again, b"scribble", 64).unwrap_err(), rustix::io::Errno::PERM, "pwrite, reopened");
    // Nor can it loosen the seals.
    let seals = rustix::fs::fcntl_add_seals(topic, rustix::fs::SealFlags::WRITE);
    assert_eq!(seals.unwrap_err(), rustix::io::Errno::PERM, "F_ADD_SEALS");
    eprintln!("sealed");
}

/// A subscriber process cannot write the topic memory by any path: the
/// memfd's seals (`F_SEAL_FUTURE_WRITE`, `F_SEAL_SEAL`) refuse it, and
/// the other subscribers read the messages intact.
#[test]
fn subscribers_cannot_write_the_topic() {
    let s = Scratch::new("ps-sealed");
    let text = topic(&s, "t", "");
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    let mut honest = sub(&text);
    p.publish(&message(0)).unwrap();
    let child = Guarded::spawn(
        rerun("child_topic_writer", "writer").env("IPCKIT_EP", &text).stderr(std::process::Stdio::piped()),
    );
    let out = child.output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.lines().any(|l| l == "sealed"), "the writer: {err}");
    p.publish(&message(1)).unwrap();
    for i in 0..2 {
        assert_eq!(check(&honest.recv_timeout(HANG_GUARD).unwrap().data), i);
    }
}

/// Child running as uid 65534: opens 300 connections to the abstract
/// socket `IPCKIT_SOCK` (a topic's control socket), says how many it
/// holds, and holds them until it is killed.
#[test]
#[ignore = "child process entry point"]
fn child_crowd() {
    let Some(_) = child_role() else { return };
    let name = env("IPCKIT_SOCK");
    let addr = rustix::net::SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap();
    let mut held = Vec::new();
    for _ in 0..300 {
        let fd = rustix::net::socket(rustix::net::AddressFamily::UNIX, rustix::net::SocketType::SEQPACKET, None)
            .expect("a socket");
        if rustix::net::connect(&fd, &addr).is_ok() {
            held.push(fd);
        }
    }
    println!("held {}", held.len());
    std::thread::sleep(HANG_GUARD);
}

/// Starts [`child_crowd`] as uid 65534 against the abstract socket `name`
/// and waits until it holds its connections.
fn crowd(name: &str) -> Guarded {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut cmd = rerun("child_crowd", "crowd");
    cmd.uid(65534).gid(65534).env("IPCKIT_SOCK", name);
    let mut crowd = Guarded::spawn(cmd.stdout(std::process::Stdio::piped()));
    let out = crowd.child().stdout.take().expect("the crowd's standard output");
    let held = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        // The harness writes "test child_crowd ... " before it.
        .find_map(|l| l.split("held ").nth(1).and_then(|n| n.trim().parse::<usize>().ok()))
        .expect("the crowd says how many connections it made");
    assert!(held > 256, "the crowd made only {held} connections");
    crowd
}

/// Another user's crowd of silent connections (any user can connect to an
/// abstract name) does not lock the publisher's own user out: its
/// credentials are checked at accept, so it holds at most a few of the
/// slots that wait for a hello (before: it could hold all 256, renewing
/// them every 10 s, and every subscriber was reset meanwhile).
#[test]
fn another_users_crowd_does_not_lock_subscribers_out() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to start a child as uid 65534");
        return;
    }
    let s = Scratch::new("ps-crowd");
    let text = topic(&s, "t", "");
    let mut p = Publisher::bind(&ep(&text)).unwrap();
    let mut crowd = crowd(&format!("ipckit/topic/{}", s.name("t")));
    // Well within the crowd's 10 s of hello time.
    let mut sub = Subscriber::connect_timeout(&ep(&text), &Options::new(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("a subscriber of the publisher's own user, beside the crowd: {e}"));
    p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
    p.publish(b"through the crowd").unwrap();
    assert_eq!(sub.recv().unwrap().data, b"through the crowd");
    sigkill(&mut crowd);
}

/// The same for a `shm:` channel's receiver and its senders.
#[test]
fn another_users_crowd_does_not_lock_senders_out() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to start a child as uid 65534");
        return;
    }
    let s = Scratch::new("ps-crowd-ch");
    let text = format!("shm:{}", s.name("c"));
    let mut rx = ipckit::Receiver::bind(&ep(&text)).unwrap();
    let mut crowd = crowd(&format!("ipckit/shm/{}", s.name("c")));
    let mut tx = ipckit::Sender::connect_timeout(&ep(&text), &Options::new(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("a sender of the receiver's own user, beside the crowd: {e}"));
    tx.send(b"through the crowd").unwrap();
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"through the crowd");
    sigkill(&mut crowd);
}
