//! `ipckit::tokio::AsyncSubscriber` on `shm:`, `unix:` and `tcp:` topics,
//! the publisher in another process (this binary re-run): receives
//! dropped at random points (a `select!` that lost, a `timeout`), every
//! message received exactly once and in order under `block`, and under
//! `drop-oldest` every message received or counted in `Meta::lost`.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use ipckit::pubsub::{Publisher, Subscriber};
use ipckit::tokio::AsyncSubscriber;
use ipckit::{Endpoint, ErrorKind, Options};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::Rng;
use ipckit_testkit::scratch::Scratch;

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The three pub-sub transports, without the publisher's options.
fn topics(s: &Scratch) -> Vec<String> {
    vec![
        // 64 slots of 2 KiB: a subscriber 64 messages behind holds the
        // publisher back (or loses the oldest).
        format!("shm:{}?size=2KiB", s.name("shm")),
        format!("unix:@{}", s.name("unix")),
        "tcp:127.0.0.1:0".to_string(),
    ]
}

/// `base` with the publisher's `overflow=` (and more options after `&`).
fn with(base: &str, query: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

/// Message `seq`: the number, then `len - 8` bytes derived from it; 16
/// bytes to 1 KiB.
fn message(seq: u64) -> Vec<u8> {
    let len = 16 + (seq.wrapping_mul(7919) % 1009) as usize;
    let mut m = seq.to_le_bytes().to_vec();
    m.extend((0..len - 8).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8));
    m
}

/// The number of a message made by [`message`], checking its bytes.
#[track_caller]
fn seq_of(data: &[u8]) -> u64 {
    assert!(data.len() >= 16, "a message of {} bytes", data.len());
    let seq = u64::from_le_bytes(data[..8].try_into().unwrap());
    assert!(data == message(seq), "message {seq} damaged");
    seq
}

/// Waits (hang guard) for `file` to appear, and reads it.
fn wait_for_file(file: &Path, child: &mut Guarded) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            return text;
        }
        if let Some(status) = child.child().try_wait().unwrap() {
            panic!("the publisher exited early: {status} (its stderr is above)");
        }
        assert!(start.elapsed() < HANG_GUARD, "{} did not appear within {HANG_GUARD:?}", file.display());
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn write_file(file: &str, text: &str) {
    std::fs::write(format!("{file}.tmp"), text).unwrap();
    std::fs::rename(format!("{file}.tmp"), file).unwrap();
}

/// The publisher: binds `IPCKIT_EP`, writes the name subscribers use to
/// `IPCKIT_NAME_FILE`, waits for `IPCKIT_SUBS` subscribers, publishes
/// messages 0 to `IPCKIT_N - 1` (with short random pauses, so that the
/// subscribers often wait), writes `IPCKIT_DONE_FILE`, and ends the topic
/// (dropped: a fan-out publisher writes its backlogs first).
#[test]
#[ignore = "child process entry point"]
fn child_publisher() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let n: u64 = env("IPCKIT_N").parse().unwrap();
    let subs: usize = env("IPCKIT_SUBS").parse().unwrap();
    let mut p = Publisher::bind(&ep(&text)).unwrap_or_else(|e| panic!("bind {text}: {e}"));
    write_file(&env("IPCKIT_NAME_FILE"), p.name());
    p.wait_for_subscribers(subs, Some(HANG_GUARD)).expect("subscribers");
    let pauses = std::env::var("IPCKIT_PAUSES").is_ok();
    let mut rng = Rng(n ^ 0x9ab);
    for seq in 0..n {
        p.publish_timeout(&message(seq), HANG_GUARD).unwrap_or_else(|e| panic!("{text}: publish {seq}: {e}"));
        if pauses && rng.below(16) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(1500)));
        }
    }
    write_file(&env("IPCKIT_DONE_FILE"), "done");
    drop(p);
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    received: u64,
    lost: u64,
    /// Receives dropped before they completed.
    dropped: u64,
}

/// Receives until `Disconnected`, each receive raced against a short
/// random sleep, under a short random timeout, or awaited: checks that
/// each message is the next one (after what `Meta::lost` says was lost).
async fn receive_all(sub: &mut AsyncSubscriber, seed: u64) -> Seen {
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let mut next = 0;
    loop {
        let got = match rng.below(3) {
            0 => tokio::select! {
                m = sub.recv() => Some(m),
                () = tokio::time::sleep(Duration::from_micros(rng.below(800))) => None,
            },
            1 => tokio::time::timeout(Duration::from_micros(rng.below(1200)), sub.recv()).await.ok(),
            _ => Some(sub.recv().await),
        };
        let Some(m) = got else {
            seen.dropped += 1;
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::Disconnected => return seen,
            Err(e) => panic!("{}: recv after {next}: {e}", sub.name()),
        };
        next += m.meta.lost;
        assert_eq!(seq_of(&m.data), next, "{}: out of order, or lost and not counted", sub.name());
        next += 1;
        seen.lost += m.meta.lost;
        seen.received += 1;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn guarded<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(HANG_GUARD * 2, f).await.expect("hung") })
}

/// Starts the publisher child on `text` for `subs` subscribers, connects
/// them, and hands them to `body` with the file that says the publisher
/// published everything.
fn with_publisher<T>(
    s: &Scratch,
    label: &str,
    text: &str,
    n: u64,
    subs: usize,
    pauses: bool,
    body: impl FnOnce(Vec<AsyncSubscriber>, &Path) -> T,
) -> T {
    let (name_file, done_file) = (s.path(&format!("{label}.name")), s.path(&format!("{label}.done")));
    let mut cmd = rerun("child_publisher", "publisher");
    cmd.env("IPCKIT_EP", text)
        .env("IPCKIT_N", n.to_string())
        .env("IPCKIT_SUBS", subs.to_string())
        .env("IPCKIT_NAME_FILE", &name_file)
        .env("IPCKIT_DONE_FILE", &done_file);
    if pauses {
        cmd.env("IPCKIT_PAUSES", "1");
    }
    let mut child = Guarded::spawn(&mut cmd);
    let name = wait_for_file(&name_file, &mut child);
    let subscribers = (0..subs)
        .map(|_| {
            let sub = Subscriber::connect_timeout(&ep(&name), &Options::new(), HANG_GUARD)
                .unwrap_or_else(|e| panic!("{text}: subscribe to {name}: {e}"));
            AsyncSubscriber::new(sub)
        })
        .collect();
    let out = body(subscribers, &done_file);
    let status = child.wait();
    assert!(status.success(), "{text}: the publisher failed: {status} (its stderr is above)");
    out
}

/// Under `block`: two async subscribers, receives dropped at random
/// points, every message exactly once and in order.
#[test]
fn block_every_message_once_in_order_with_receives_dropped() {
    const N: u64 = 3000;
    let s = Scratch::new("tps-block");
    let rt = runtime();
    for (i, base) in topics(&s).iter().enumerate() {
        let text = with(base, "overflow=block");
        let seen = with_publisher(&s, &format!("block{i}"), &text, N, 2, true, |subs, _| {
            guarded(&rt, async {
                let tasks: Vec<_> = subs
                    .into_iter()
                    .enumerate()
                    .map(|(k, mut sub)| tokio::spawn(async move { receive_all(&mut sub, (i * 10 + k) as u64).await }))
                    .collect();
                let mut seen = Vec::new();
                for t in tasks {
                    seen.push(t.await.expect("a subscriber task failed"));
                }
                seen
            })
        });
        for (k, seen) in seen.iter().enumerate() {
            eprintln!("{text}: subscriber {k}: {seen:?}");
            assert_eq!((seen.received, seen.lost), (N, 0), "{text}: subscriber {k}");
            assert!(seen.dropped > 0, "{text}: subscriber {k}: no receive was dropped");
        }
    }
}

/// Under `drop-oldest`: one subscriber keeps up, one reads only after
/// everything was published; both see every message or count it lost,
/// and the slow one lost some.
#[test]
fn drop_oldest_losses_are_counted_with_receives_dropped() {
    // Up to 1 KiB each: about 10 MiB, more than loopback TCP buffers hold.
    const N: u64 = 20_000;
    let s = Scratch::new("tps-drop");
    let rt = runtime();
    for (i, base) in topics(&s).iter().enumerate() {
        let text = with(base, "overflow=drop-oldest");
        let seen = with_publisher(&s, &format!("drop{i}"), &text, N, 2, false, |subs, done| {
            let done = done.to_path_buf();
            guarded(&rt, async move {
                let mut subs = subs.into_iter();
                let (mut fast, mut slow) = (subs.next().unwrap(), subs.next().unwrap());
                let fast = tokio::spawn(async move { receive_all(&mut fast, i as u64).await });
                let slow = tokio::spawn(async move {
                    while !done.exists() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    receive_all(&mut slow, 100 + i as u64).await
                });
                vec![fast.await.expect("fast subscriber"), slow.await.expect("slow subscriber")]
            })
        });
        for (k, seen) in seen.iter().enumerate() {
            eprintln!("{text}: subscriber {k}: {seen:?}");
            assert_eq!(seen.received + seen.lost, N, "{text}: subscriber {k}: received + lost = published");
        }
        assert!(seen[1].lost > 0, "{text}: the slow subscriber lost nothing");
    }
}

/// A receive polled once on an empty topic and dropped leaves the
/// subscriber able to wake for the next message: on `shm:` its `try_recv`
/// announced it parked and left it so (the publisher rings the doorbell
/// that `poll_fd` watches); on `unix:`/`tcp:` the socket turns readable.
/// The publisher is a thread here, publishing only when asked.
#[test]
fn a_dropped_receive_loses_no_wake_up() {
    let s = Scratch::new("tps-wake");
    let rt = runtime();
    for base in topics(&s) {
        let mut p = Publisher::bind(&ep(&base)).unwrap_or_else(|e| panic!("bind {base}: {e}"));
        let name = p.name().to_string();
        let (ask, asked) = std::sync::mpsc::channel::<Option<u64>>();
        let publisher = std::thread::spawn(move || {
            p.wait_for_subscribers(1, Some(HANG_GUARD)).expect("a subscriber");
            while let Ok(Some(seq)) = asked.recv() {
                p.publish_timeout(&message(seq), HANG_GUARD).unwrap();
            }
        });
        let mut sub = AsyncSubscriber::new(
            Subscriber::connect_timeout(&ep(&name), &Options::new(), HANG_GUARD)
                .unwrap_or_else(|e| panic!("subscribe {name}: {e}")),
        );
        guarded(&rt, async {
            for seq in 0..50 {
                tokio::select! {
                    biased;
                    m = sub.recv() => panic!("{name}: a message on an empty topic: {m:?}"),
                    () = std::future::ready(()) => {}
                }
                if seq % 2 == 1 {
                    // Wait in the reactor first, then the message comes.
                    let ask = ask.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        ask.send(Some(seq)).unwrap();
                    });
                } else {
                    ask.send(Some(seq)).unwrap();
                }
                let m = sub.recv().await.unwrap_or_else(|e| panic!("{name}: recv {seq}: {e}"));
                assert_eq!(seq_of(&m.data), seq, "{name}");
                assert_eq!(m.meta.lost, 0, "{name}");
            }
            ask.send(None).unwrap();
        });
        publisher.join().expect("publisher thread");
        let e = guarded(&rt, sub.recv()).expect_err("the publisher is gone");
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{name}: {e}");
    }
}

/// Messages a `unix:`/`tcp:` subscriber has already read from its
/// connection (several whole frames arrive in one read) are returned
/// without waiting: the socket is drained, only the buffer holds them.
#[test]
fn buffered_messages_are_returned_before_any_wait() {
    let s = Scratch::new("tps-buf");
    let rt = runtime();
    for base in topics(&s) {
        let mut p = Publisher::bind(&ep(&base)).unwrap();
        let name = p.name().to_string();
        let connecting = std::thread::spawn(move || {
            Subscriber::connect_timeout(&ep(&name), &Options::new(), HANG_GUARD).expect("subscribe")
        });
        p.wait_for_subscribers(1, Some(HANG_GUARD)).unwrap();
        let mut sub = AsyncSubscriber::new(connecting.join().unwrap());
        for seq in 0..40 {
            p.publish_timeout(&message(seq), HANG_GUARD).unwrap();
        }
        // The first receive reads what is there (more than one frame);
        // the others must not wait on a socket that has nothing more.
        let first = guarded(&rt, sub.recv()).unwrap();
        assert_eq!(seq_of(&first.data), 0);
        let mut seq = 1;
        guarded(&rt, async {
            while seq < 40 {
                // No publish happens meanwhile: a receive that waited in
                // the reactor would only wake at the end of the topic.
                let m = tokio::time::timeout(Duration::from_secs(5), sub.recv())
                    .await
                    .unwrap_or_else(|_| panic!("{base}: message {seq} was there but the receive waited"))
                    .unwrap();
                assert_eq!(seq_of(&m.data), seq, "{base}");
                seq += 1;
            }
        });
        drop(p);
        let e = guarded(&rt, sub.recv()).expect_err("the publisher is gone");
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{base}: {e}");
    }
}
