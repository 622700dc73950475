//! `ipckit pub` and `ipckit sub`, end to end, on every transport
//! publish-subscribe runs on (shm:, unix:, tcp:): readiness lines, never a
//! sleep; the hang guard bounds every wait.

use std::io::Write;
use std::process::Stdio;

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::{Bg, assert_stderr};
use ipckit_testkit::scratch::Scratch;
use rustix::process::Signal;

const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

fn topic(s: &Scratch, transport: &str, query: &str) -> String {
    match transport {
        "shm" => format!("shm:{}{query}", s.name("topic")),
        "unix" => format!("unix:{}{query}", s.path("topic.sock").display()),
        "tcp" => format!("tcp:127.0.0.1:0{query}"),
        other => panic!("unknown transport {other}"),
    }
}

const TRANSPORTS: &[&str] = &["shm", "unix", "tcp"];

/// `ipckit pub EP ARGS` in the background with a piped standard input,
/// once ready: the process and the endpoint it announced.
fn publisher(ep: &str, args: &[&str]) -> (Bg, String) {
    let mut cmd = IPCKIT.command();
    cmd.arg("pub").arg(ep).args(args).stdin(Stdio::piped());
    let mut bg = Bg::spawn(&mut cmd);
    let announced = bg.ready();
    (bg, announced)
}

/// `ipckit sub EP ARGS` in the background, once subscribed.
fn subscriber(ep: &str, args: &[&str]) -> Bg {
    let mut cmd = IPCKIT.command();
    cmd.arg("sub").arg(ep).args(args);
    let mut bg = Bg::spawn(&mut cmd);
    bg.ready();
    bg
}

/// Lines of standard input are published as they are read, to two
/// subscribers; at the end of the input pub ends the topic and each `sub`
/// exits 0 after printing every line, in order.
#[test]
fn lines_stream_to_every_subscriber_and_sub_ends_with_the_publisher() {
    for transport in TRANSPORTS {
        let s = Scratch::new(&format!("pubsub-lines-{transport}"));
        let (mut publisher, ep) = publisher(&topic(&s, transport, ""), &["--subscribers", "2"]);
        let a = subscriber(&ep, &[]);
        let b = subscriber(&ep, &["--json"]);
        let lines: Vec<String> = (0..500).map(|i| format!("line {i}")).collect();
        for l in &lines {
            writeln!(publisher.stdin(), "{l}").unwrap();
        }
        publisher.close_stdin();
        publisher.finish().expect_code(0, "pub");
        let a = a.finish();
        a.expect_code(0, "sub");
        assert_eq!(a.text(), lines.iter().map(|l| format!("{l}\n")).collect::<String>(), "{ep}");
        let b = b.finish();
        b.expect_code(0, "sub --json");
        let got: Vec<String> = b.json_lines().iter().map(|v| v["data"].as_str().unwrap().to_string()).collect();
        assert_eq!(got, lines, "{ep}");
        assert!(b.json_lines().iter().all(|v| v.get("lost").is_none()), "{ep}: nothing lost under block");
    }
}

/// `--count N` ends sub with exit 0 after N messages; a publisher that
/// ends before N arrived is exit 1, saying how many did.
#[test]
fn count_reached_and_not_reached() {
    for transport in TRANSPORTS {
        let s = Scratch::new(&format!("pubsub-count-{transport}"));
        let (mut publisher, ep) = publisher(&topic(&s, transport, ""), &["--subscribers", "2"]);
        let enough = subscriber(&ep, &["--count", "3"]);
        let short = subscriber(&ep, &["--count", "10"]);
        for i in 0..5 {
            writeln!(publisher.stdin(), "m{i}").unwrap();
        }
        publisher.close_stdin();
        publisher.finish().expect_code(0, "pub");
        let enough = enough.finish();
        enough.expect_code(0, "sub --count 3");
        assert_eq!(enough.text(), "m0\nm1\nm2\n");
        let short = short.finish();
        short.expect_code(1, "sub --count 10");
        assert_stderr(&short, "after 5 of the 10 messages", "sub says how many arrived");
    }
}

/// Arguments are the messages; history: a subscriber that comes later
/// gets the last K kept messages; K above what the topic keeps is a usage
/// error naming the limit.
#[test]
fn history_for_late_subscribers_and_its_limit() {
    for transport in TRANSPORTS {
        let s = Scratch::new(&format!("pubsub-hist-{transport}"));
        let (mut publisher, ep) = publisher(&topic(&s, transport, "?history=4"), &["--subscribers", "1"]);
        let first = subscriber(&ep, &["--count", "10"]);
        for i in 0..10 {
            writeln!(publisher.stdin(), "h{i}").unwrap();
        }
        // Once the first subscriber has all ten, they were all published.
        first.finish().expect_code(0, "the first subscriber");
        let late = {
            let out = IPCKIT.run(&["sub", &ep, "--history", "3", "--count", "3"]);
            out.expect_code(0, "sub --history 3");
            out.text()
        };
        assert_eq!(late, "h7\nh8\nh9\n", "{ep}");
        let out = IPCKIT.run(&["sub", &ep, "--history", "5", "--count", "1"]);
        out.expect_code(2, "sub --history 5 on a topic of 4");
        assert_stderr(&out, "4", "the limit is named");
        publisher.close_stdin();
        publisher.finish().expect_code(0, "pub");
    }
}

/// Under drop-oldest, a subscriber that fell behind learns how many it
/// lost (`lost` in --json), and received + lost = published.
#[test]
fn drop_oldest_reports_what_was_lost() {
    for transport in TRANSPORTS {
        let s = Scratch::new(&format!("pubsub-lost-{transport}"));
        let (mut publisher, ep) = publisher(&topic(&s, transport, "?overflow=drop-oldest"), &["--subscribers", "1"]);
        // A subscriber stopped while everything is published: it falls
        // behind by far more than the topic and the socket buffers hold.
        let slow = subscriber(&ep, &["--json"]);
        slow.signal(Signal::STOP);
        let published = 50_000u64;
        for i in 0..published {
            writeln!(publisher.stdin(), "{i:06} {}", "x".repeat(100)).unwrap();
        }
        // Resumed before the topic ends: a fan-out publisher's backlog
        // goes with its process.
        slow.signal(Signal::CONT);
        publisher.close_stdin();
        publisher.finish().expect_code(0, "pub");
        let slow = slow.finish();
        slow.expect_code(0, "sub");
        let rows = slow.json_lines();
        let lost: u64 = rows.iter().map(|v| v.get("lost").and_then(|l| l.as_u64()).unwrap_or(0)).sum();
        assert_eq!(rows.len() as u64 + lost, published, "{ep}: received + lost = published");
        assert!(lost > 0, "{ep}: a subscriber stopped for 50,000 messages lost some");
        // Order is kept among what arrived.
        let seqs: Vec<u64> = rows.iter().map(|v| v["data"].as_str().unwrap()[..6].parse().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{ep}: in order");
    }
}

/// Usage errors before anything is created: a transport pub-sub does not
/// run on, the publisher's option on a subscriber.
#[test]
fn usage_errors_exit_2() {
    for args in [
        &["pub", "mq:/x", "m"][..],
        &["sub", "fifo:/tmp/x"],
        &["sub", "shm:x?overflow=block"],
        &["pub", "unix-dgram:@x", "m"],
        &["sub", "shm:x", "--count", "-1"],
    ] {
        IPCKIT.run(args).expect_code(2, &args.join(" "));
    }
}

/// No publisher: sub waits for one, and --timeout ends the wait (exit 3).
#[test]
fn sub_with_no_publisher_times_out() {
    let s = Scratch::new("pubsub-none");
    for transport in ["shm", "unix"] {
        let ep = topic(&s, transport, "");
        IPCKIT.run(&["sub", &ep, "--timeout", "200ms"]).expect_code(3, "sub with nobody there");
    }
}
