//! Publish-subscribe between processes: one publisher and three
//! subscribers, one of them slow.
//!
//! ```text
//! cargo run --example pubsub                  # shm:, overflow=block
//! cargo run --example pubsub -- unix:@feed    # any topic endpoint
//! cargo run --example pubsub -- 'shm:feed?overflow=drop-oldest'
//! ```
//!
//! The program runs itself three more times as subscribers. Under
//! `overflow=block` (the default) the slow subscriber holds the publisher
//! back and every subscriber gets every message, in order; under
//! `overflow=drop-oldest` the publisher never waits, and the slow one is
//! told how many messages it lost. Each subscriber checks what it got and
//! prints a summary; the program exits 0 only if all three are right.

use std::process::{Command, ExitCode};
use std::time::Duration;

use ipckit::pubsub::{Publisher, Subscriber};
use ipckit::{ErrorKind, Options};

const MESSAGES: u64 = 20_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("subscriber") => subscriber(&args[2], &args[3]),
        topic => {
            publisher(topic.map_or_else(|| format!("shm:ipckit-example-pubsub-{}", std::process::id()), String::from))
        }
    }
}

fn publisher(topic: String) -> ExitCode {
    let ep: ipckit::Endpoint = topic.parse().expect("a topic endpoint");
    // A socket file this program creates is this program's to remove.
    let file = matches!(ep.kind(), ipckit::EndpointKind::Unix(_, ipckit::UnixAddr::Path(_)));
    let mut publisher = Publisher::bind_with(&ep, &Options::new().unlink_on_drop(file)).expect("bind the topic");
    let name = publisher.name().to_string();
    let exe = std::env::current_exe().expect("this program");
    let mut children: Vec<_> = ["fast-1", "fast-2", "slow"]
        .iter()
        .map(|role| Command::new(&exe).args(["subscriber", &name, role]).spawn().expect("start a subscriber"))
        .collect();
    publisher.wait_for_subscribers(3, Some(Duration::from_secs(30))).expect("three subscribers");
    for seq in 0..MESSAGES {
        let msg = format!("{seq} {}", "tick".repeat((seq % 16) as usize));
        publisher.publish(msg.as_bytes()).expect("publish");
    }
    println!("published {MESSAGES} messages on {name}");
    drop(publisher); // the end of the topic: subscribers drain, then stop
    let ok = children.iter_mut().all(|c| c.wait().is_ok_and(|s| s.success()));
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn subscriber(topic: &str, role: &str) -> ExitCode {
    let ep = topic.parse().expect("a topic endpoint");
    let mut sub = Subscriber::connect_timeout(&ep, &Options::new(), Duration::from_secs(30)).expect("subscribe");
    let (mut received, mut lost, mut next) = (0u64, 0u64, 0u64);
    loop {
        let msg = match sub.recv() {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => {
                eprintln!("{role}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let text = String::from_utf8_lossy(&msg.data);
        let seq: u64 = text.split(' ').next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        // What was lost is counted exactly: the next message says so.
        if seq != next + msg.meta.lost {
            eprintln!("{role}: message {seq} after {next} with {} lost", msg.meta.lost);
            return ExitCode::FAILURE;
        }
        lost += msg.meta.lost;
        received += 1;
        next = seq + 1;
        if role == "slow" && seq % 500 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    println!("{role}: received {received}, lost {lost}");
    if received + lost == MESSAGES { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
