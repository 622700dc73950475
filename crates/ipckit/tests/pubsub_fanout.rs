//! Publish-subscribe over `unix:` and `tcp:` (fan-out from the
//! publisher), between real processes: many subscribers under both loss
//! policies, history, subscribers killed, publishers killed, no publisher,
//! a Python subscriber speaking the documented wire, hostile clients.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipckit::pubsub::{Publisher, Subscriber};
use ipckit::{Endpoint, ErrorKind, Options};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::Rng;
use ipckit_testkit::program::Bg;
use ipckit_testkit::scratch::Scratch;

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Message `seq` of 16 bytes: the number, then a pattern derived from it.
fn msg(seq: u64) -> Vec<u8> {
    msg_sized(seq, 16)
}

/// Message `seq` of `len` bytes (at least 8).
fn msg_sized(seq: u64, len: usize) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend((0..len - 8).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8));
    m
}

/// The number of a message made by [`msg_sized`], checking the pattern.
#[track_caller]
fn seq_of(data: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(data[..8].try_into().unwrap());
    assert_eq!(data[..], msg_sized(seq, data.len())[..], "message {seq} damaged");
    seq
}

/// Every abstract socket or socket file named with `tag` still open.
fn leftover_sockets(tag: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(tag))
        .map(String::from)
        .collect()
}

/// Runs `f` with the publisher serving until `done` says so (hang guard).
fn serve_until(p: &mut Publisher, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        p.subscribers();
        assert!(start.elapsed() < HANG_GUARD, "hung");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Receives until the publisher is gone: (messages, lost), checking that
/// each message is the next one, counting what was lost.
fn drain(s: &mut Subscriber, mut next: u64) -> (u64, u64) {
    let (mut got, mut lost) = (0, 0);
    loop {
        match s.recv_timeout(HANG_GUARD) {
            Ok(m) => {
                next += m.meta.lost;
                lost += m.meta.lost;
                assert_eq!(seq_of(&m.data), next, "order (lost {} before it)", m.meta.lost);
                next += 1;
                got += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
                return (got, lost);
            }
        }
    }
}

#[test]
#[ignore = "child process entry point"]
fn child_subscriber() {
    let Some(role) = child_role() else { return };
    let sub_ep = ep(&env("IPCKIT_EP"));
    let n: u64 = env("IPCKIT_N").parse().unwrap();
    let mut s = Subscriber::connect_timeout(&sub_ep, &Options::new(), HANG_GUARD).expect("subscribe");
    eprintln!("subscribed");
    match role.as_str() {
        "count" | "slow" => {
            if role == "slow" {
                // Reads nothing until the parent has published everything.
                let mut sink = Vec::new();
                std::io::stdin().read_to_end(&mut sink).unwrap();
            }
            let (got, lost) = drain(&mut s, 0);
            eprintln!("got {got} lost {lost}");
            assert_eq!(got + lost, n, "received + lost = published");
            if role == "slow" {
                assert!(lost > 0, "the slow subscriber lost nothing");
            }
        }
        "idle" => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        "history" => {
            // `IPCKIT_N` kept messages from `IPCKIT_FIRST` on, said on
            // stderr; then the live ones, to the end of the topic.
            let first: u64 = env("IPCKIT_FIRST").parse().unwrap();
            for i in 0..n {
                let m = s.recv_timeout(HANG_GUARD).expect("a kept message");
                assert_eq!((seq_of(&m.data), m.meta.lost), (first + i, 0), "kept message {i}");
            }
            eprintln!("got history");
            let (got, lost) = drain(&mut s, first + n);
            eprintln!("got live {got} lost {lost}");
        }
        "behind" => {
            // Reads nothing until the parent writes, on stdin, how many
            // messages it published; then reads exactly that many.
            let mut count = String::new();
            std::io::stdin().read_to_string(&mut count).unwrap();
            let count: u64 = count.trim().parse().unwrap();
            for i in 0..count {
                let m = s.recv_timeout(HANG_GUARD).expect("a message of the backlog");
                assert_eq!((seq_of(&m.data), m.meta.lost), (i, 0), "message {i}");
            }
            eprintln!("got all {count}");
            assert_eq!(drain(&mut s, count), (0, 0), "nothing more, then the end");
        }
        "churn" => loop {
            if s.recv().is_err() {
                return;
            }
        },
        other => panic!("unknown role {other}"),
    }
}

#[test]
#[ignore = "child process entry point"]
fn child_publisher() {
    let Some(_) = child_role() else { return };
    let mut p = Publisher::bind(&ep(&env("IPCKIT_EP"))).expect("bind");
    p.wait_for_subscribers(2, Some(HANG_GUARD)).expect("two subscribers");
    for i in 0..100 {
        p.publish(&msg(i)).unwrap();
    }
    eprintln!("published");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn spawn_subscriber(role: &str, sub_ep: &str, n: u64) -> Bg {
    let mut cmd = rerun("child_subscriber", role);
    cmd.env("IPCKIT_EP", sub_ep).env("IPCKIT_N", n.to_string());
    if role == "slow" || role == "behind" {
        cmd.stdin(Stdio::piped());
    }
    Bg::spawn(&mut cmd)
}

/// `n` messages of `size` bytes to a subscriber process per role.
fn fan_out(topic: &str, n: u64, size: usize, roles: &[&str]) {
    let mut p = Publisher::bind(&ep(topic)).expect("bind");
    let name = p.name().to_string();
    let mut children: Vec<Bg> = roles.iter().map(|r| spawn_subscriber(r, &name, n)).collect();
    p.wait_for_subscribers(roles.len(), Some(HANG_GUARD)).expect("subscribers");
    for i in 0..n {
        p.publish_timeout(&msg_sized(i, size), HANG_GUARD).expect("publish");
    }
    for (c, role) in children.iter_mut().zip(roles) {
        if *role == "slow" {
            c.close_stdin();
        }
    }
    drop(p);
    for (c, role) in children.into_iter().zip(roles) {
        let out = c.finish();
        assert!(out.status.success(), "{role} subscriber: {}", out.stderr);
    }
}

#[test]
fn eight_subscribers_block_every_message_in_order() {
    let s = Scratch::new("fan-block");
    fan_out(&format!("unix:@{}?overflow=block", s.name("t")), 100_000, 16, &["count"; 8]);
    fan_out("tcp:127.0.0.1:0", 20_000, 16, &["count"; 8]);
    assert!(leftover_sockets(&s.name("")).is_empty());
}

#[test]
fn drop_oldest_counts_what_each_subscriber_lost() {
    let s = Scratch::new("fan-drop");
    let roles = ["count", "count", "count", "count", "count", "count", "slow", "slow"];
    fan_out(&format!("unix:@{}?overflow=drop-oldest", s.name("t")), 100_000, 16, &roles);
    // Larger messages: loopback TCP buffers hold megabytes.
    fan_out("tcp:127.0.0.1:0?overflow=drop-oldest", 20_000, 1024, &roles);
    assert!(leftover_sockets(&s.name("")).is_empty());
}

#[test]
fn late_subscribers_get_the_history_they_ask_for() {
    let s = Scratch::new("fan-history");
    for topic in [format!("unix:{}?history=5", s.path("h.sock").display()), "tcp:[::1]:0?history=5".to_string()] {
        let topic = if topic.starts_with("tcp:[::1]") && std::net::TcpListener::bind("[::1]:0").is_err() {
            "tcp:127.0.0.1:0?history=5".to_string()
        } else {
            topic
        };
        let mut p = Publisher::bind_with(&ep(&topic), &Options::new().unlink_on_drop(true)).expect("bind");
        for i in 0..10 {
            p.publish(&msg(i)).unwrap();
        }
        let name = p.name().to_string();
        assert!(!name.contains("?history"), "{name}");
        // K = 3 from the endpoint; K = 5 (all) from Options::history.
        let by_endpoint = std::thread::spawn({
            let name = name.clone();
            move || {
                let mut s = Subscriber::connect(&ep(&format!("{name}?history=3"))).expect("subscribe");
                drain(&mut s, 7)
            }
        });
        p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
        let by_options = std::thread::spawn({
            let name = name.clone();
            move || {
                let mut s = Subscriber::connect_with(&ep(&name), &Options::new().history(5)).expect("subscribe");
                drain(&mut s, 5)
            }
        });
        p.wait_for_subscribers(2, Some(HANG_GUARD)).unwrap();
        // More than the topic keeps: Invalid, naming the limit.
        let too_many = std::thread::spawn({
            let name = name.clone();
            move || Subscriber::connect(&ep(&format!("{name}?history=6"))).map(|_| ())
        });
        serve_until(&mut p, || too_many.is_finished());
        let e = too_many.join().unwrap().expect_err("history 6 of 5");
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.to_string().contains("at most 5"), "{e}");
        p.publish(&msg(10)).unwrap();
        drop(p);
        assert_eq!(by_endpoint.join().unwrap(), (4, 0), "messages 7, 8, 9, 10");
        assert_eq!(by_options.join().unwrap(), (6, 0), "messages 5 to 10");
    }
}

#[test]
fn a_subscriber_killed_while_the_publisher_waits_for_it_releases_it() {
    let s = Scratch::new("fan-killed-sub");
    let mut p = Publisher::bind(&ep(&format!("unix:@{}", s.name("t")))).expect("bind");
    let mut child = spawn_subscriber("idle", p.name(), 0);
    p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
    child.wait_line("subscribed");
    // Fill its backlog and its socket: the publisher is held back.
    let mut sent = 0u64;
    loop {
        match p.try_publish(&msg(sent)) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Full, "{e}");
                break;
            }
        }
        assert!(sent < 10_000_000, "never full");
    }
    let killer = std::thread::spawn(move || {
        child.signal(rustix::process::Signal::KILL);
        child.finish()
    });
    p.publish_timeout(&msg(sent), HANG_GUARD).expect("released by the subscriber's death");
    assert_eq!(p.subscribers(), 0);
    killer.join().unwrap();
}

#[test]
fn subscribers_killed_at_random_points_do_not_stop_the_others() {
    let s = Scratch::new("fan-churn");
    let mut p = Publisher::bind(&ep(&format!("unix:@{}", s.name("t")))).expect("bind");
    let name = p.name().to_string();
    let steady: Vec<_> = (0..2)
        .map(|_| {
            let name = name.clone();
            std::thread::spawn(move || {
                let mut s = Subscriber::connect(&ep(&name)).expect("subscribe");
                drain(&mut s, 0)
            })
        })
        .collect();
    p.wait_for_subscribers(2, Some(HANG_GUARD)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                p.publish_timeout(&msg(n), HANG_GUARD).expect("publish");
                n += 1;
            }
            (n, p.take_warnings())
        }
    });
    let mut rng = Rng(7);
    for _ in 0..100 {
        let mut c = Guarded::spawn(rerun("child_subscriber", "churn").env("IPCKIT_EP", &name).env("IPCKIT_N", "0"));
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        c.child().kill().unwrap();
        c.wait();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (published, warnings) = publisher.join().unwrap();
    for t in steady {
        assert_eq!(t.join().unwrap(), (published, 0), "every message, once, in order");
    }
    // Killed subscribers are not faults.
    assert!(warnings.iter().all(|w| !w.contains("malformed")), "{warnings:?}");
    assert!(leftover_sockets(&s.name("")).is_empty());
}

#[test]
fn subscribing_with_no_publisher() {
    let s = Scratch::new("fan-none");
    let free_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for topic in [
        format!("unix:@{}", s.name("nobody")),
        format!("unix:{}", s.path("nobody.sock").display()),
        format!("tcp:127.0.0.1:{free_port}"),
    ] {
        let e = Subscriber::try_connect(&ep(&topic), &Options::new()).expect_err(&topic);
        assert!(matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Disconnected), "{topic}: {e}");
        let e =
            Subscriber::connect_timeout(&ep(&topic), &Options::new(), Duration::from_millis(100)).expect_err(&topic);
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{topic}: {e}");
    }
}

#[test]
fn a_killed_publisher_is_disconnected_after_what_reached_the_subscribers() {
    let s = Scratch::new("fan-killed-pub");
    for topic in [format!("unix:@{}", s.name("t")), format!("tcp:127.0.0.1:{}", free_tcp_port())] {
        let mut publisher = Bg::spawn(rerun("child_publisher", "pub").env("IPCKIT_EP", &topic));
        let subs: Vec<_> = (0..2)
            .map(|_| {
                let topic = topic.clone();
                std::thread::spawn(move || {
                    let mut s =
                        Subscriber::connect_timeout(&ep(&topic), &Options::new(), HANG_GUARD).expect("subscribe");
                    drain(&mut s, 0)
                })
            })
            .collect();
        publisher.wait_line("published");
        publisher.signal(rustix::process::Signal::KILL);
        publisher.finish();
        for t in subs {
            assert_eq!(t.join().unwrap(), (100, 0));
        }
    }
    assert!(leftover_sockets(&s.name("")).is_empty());
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_python_subscriber_speaks_the_documented_wire() {
    let s = Scratch::new("fan-python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/pubsub_sub.py");
    for topic in [format!("unix:{}?history=3", s.path("py.sock").display()), "tcp:127.0.0.1:0?history=3".into()] {
        let mut p = Publisher::bind_with(&ep(&topic), &Options::new().unlink_on_drop(true)).expect("bind");
        for m in ["a", "b", "c", "d"] {
            p.publish(m.as_bytes()).unwrap();
        }
        let name = p.name().to_string();
        let py = |k: &str| {
            let mut cmd = std::process::Command::new("python3");
            cmd.args([script, &name, k]).stdin(Stdio::null());
            Bg::spawn(&mut cmd)
        };
        let refused = py("9");
        serve_until(&mut p, || refused_done(&refused));
        let out = refused.finish();
        assert!(out.status.success(), "{}", out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("refused 1 ") && text.contains("at most 3"), "{text}");

        let accepted = py("2");
        p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
        p.publish(b"e").unwrap();
        p.publish("f \u{e9}t\u{e9}".as_bytes()).unwrap();
        drop(p);
        let out = accepted.finish();
        assert!(out.status.success(), "{}", out.stderr);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "accepted 2\n0 c\n0 d\n0 e\n0 f \u{e9}t\u{e9}\neof\n");
    }
}

/// Whether a background process has exited.
fn refused_done(bg: &Bg) -> bool {
    let path = format!("/proc/{}/stat", bg.pid());
    // A zombie (exited, not yet reaped) or gone.
    std::fs::read_to_string(path)
        .map_or(true, |st| st.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}

#[test]
fn hostile_clients_are_dropped_and_the_others_served() {
    let s = Scratch::new("fan-hostile");
    let path = s.path("hostile.sock");
    let mut p =
        Publisher::bind_with(&ep(&format!("unix:{}", path.display())), &Options::new().unlink_on_drop(true)).unwrap();
    let name = p.name().to_string();
    let good = std::thread::spawn(move || {
        let mut s = Subscriber::connect(&ep(&name)).expect("subscribe");
        drain(&mut s, 0)
    });
    p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
    let mut good_frame = vec![19, 0, 0, 0];
    good_frame.extend_from_slice(b"IPCKIT-SUB\x01");
    good_frame.extend_from_slice(&0u64.to_le_bytes());
    let mut wrong_magic = good_frame.clone();
    wrong_magic[4..14].copy_from_slice(b"IPCKIT-BUS");
    let mut then_more = good_frame.clone();
    then_more.extend_from_slice(b"junk");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("huge length", vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
        ("short length", vec![3, 0, 0, 0, 1, 2, 3]),
        ("wrong magic", wrong_magic),
        ("bytes after subscribing", then_more),
        ("nothing at all", Vec::new()),
    ];
    let hostile = std::thread::spawn(move || {
        for (what, bytes) in cases {
            let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
            c.set_read_timeout(Some(HANG_GUARD)).unwrap();
            c.write_all(&bytes).unwrap();
            if bytes.is_empty() {
                continue;
            }
            // Dropped: the publisher closes it (an accepted one may get its
            // answer first).
            let mut rest = Vec::new();
            let r = c.read_to_end(&mut rest);
            assert!(r.is_ok() || r.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset, "{what}");
        }
    });
    serve_until(&mut p, || hostile.is_finished());
    hostile.join().unwrap();
    for i in 0..1000 {
        p.publish(&msg(i)).unwrap();
    }
    let warnings = p.take_warnings();
    assert_eq!(p.subscribers(), 1, "{warnings:?}");
    drop(p);
    assert_eq!(good.join().unwrap(), (1000, 0));
    for needle in ["length 4294967295", "length 3", "no IPCKIT-SUB magic", "after subscribing"] {
        assert!(warnings.iter().any(|w| w.contains(needle)), "{needle}: {warnings:?}");
    }
}

// The publisher's service thread: what happens while the publisher makes
// no call at all (idle between messages, or waiting on its own input).

#[test]
fn a_late_subscriber_of_an_idle_publisher_gets_its_history_then_live_messages() {
    let s = Scratch::new("fan-idle-late");
    for topic in [format!("unix:@{}?history=3", s.name("t")), "tcp:127.0.0.1:0?history=3".to_string()] {
        let mut p = Publisher::bind(&ep(&topic)).expect("bind");
        for i in 0..5 {
            p.publish(&msg(i)).unwrap();
        }
        let mut cmd = rerun("child_subscriber", "history");
        cmd.env("IPCKIT_EP", format!("{}?history=3", p.name())).env("IPCKIT_N", "3").env("IPCKIT_FIRST", "2");
        let mut child = Bg::spawn(&mut cmd);
        // No call on the publisher until the subscriber has its history:
        // the service thread answers it.
        child.wait_line("got history");
        for i in 5..10 {
            p.publish(&msg(i)).unwrap();
        }
        drop(p);
        let out = child.finish();
        assert!(out.status.success(), "{topic}: {}", out.stderr);
        assert!(out.stderr.contains("got live 5 lost 0"), "{topic}: {}", out.stderr);
    }
    assert!(leftover_sockets(&s.name("")).is_empty());
}

#[test]
fn a_backlog_is_written_while_the_publisher_is_idle() {
    let s = Scratch::new("fan-idle-backlog");
    let mut p = Publisher::bind(&ep(&format!("unix:@{}", s.name("t")))).expect("bind");
    let mut child = spawn_subscriber("behind", p.name(), 0);
    p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
    child.wait_line("subscribed");
    // Fill its socket and its backlog (the subscriber reads nothing yet).
    let mut sent = 0u64;
    loop {
        match p.try_publish(&msg(sent)) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Full, "{e}");
                break;
            }
        }
        assert!(sent < 10_000_000, "never full");
    }
    write!(child.stdin(), "{sent}").unwrap();
    child.close_stdin();
    // No call on the publisher: the service thread writes the backlog as
    // the subscriber makes room.
    assert_eq!(child.wait_line("got all "), sent.to_string());
    assert_eq!(p.subscribers(), 1);
    assert!(p.take_warnings().is_empty());
    drop(p);
    let out = child.finish();
    assert!(out.status.success(), "{}", out.stderr);
    assert!(leftover_sockets(&s.name("")).is_empty());
}

#[test]
fn a_subscriber_killed_while_the_publisher_is_idle_is_let_go() {
    let s = Scratch::new("fan-idle-killed");
    let tag = s.name("t");
    let mut p = Publisher::bind(&ep(&format!("unix:@{tag}"))).expect("bind");
    let mut child = spawn_subscriber("idle", p.name(), 0);
    p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
    child.wait_line("subscribed");
    // The listener and the subscriber's connection (an accepted socket
    // carries the listener's name).
    assert_eq!(leftover_sockets(&tag).len(), 2, "{:?}", leftover_sockets(&tag));
    child.signal(rustix::process::Signal::KILL);
    child.finish();
    // No call on the publisher: the service thread sees the hang-up and
    // closes its end, leaving the listener alone.
    let start = Instant::now();
    while leftover_sockets(&tag).len() > 1 {
        assert!(start.elapsed() < HANG_GUARD, "the dead subscriber's connection is still open");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(p.subscribers(), 0);
    // A subscriber that dies is no fault.
    assert!(p.take_warnings().is_empty());
    drop(p);
    assert!(leftover_sockets(&tag).is_empty());
}
