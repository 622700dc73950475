//! `ipckit::tokio`: async send and receive on every transport, and one
//! runtime (current-thread, and multi-thread with 2 workers) receiving on
//! 1,000 channels from another process while pending receives are dropped
//! at random points (none lost, none duplicated, order kept per channel).
#![cfg(feature = "tokio")]

use std::future::Future;
use std::time::Duration;

use ipckit::tokio::{AsyncReceiver, AsyncSender};
use ipckit::{Endpoint, Options, Receiver, Sender, pipe};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::Rng;
use ipckit_testkit::scratch::Scratch;

/// Every transport: (label, endpoint or `None` for an anonymous pipe).
fn endpoints(scratch: &Scratch) -> Vec<Option<String>> {
    let mut all: Vec<Option<String>> = vec![None];
    all.extend(scratch.endpoints().into_iter().map(Some));
    all.push(Some(scratch.mq("q", "?maxmsg=8&msgsize=1024")));
    all.push(Some(scratch.sysv_mq(1, "")));
    all.push(Some(format!("shm:{}?size=8KiB&pool=0", scratch.name("shm"))));
    all.push(Some(format!("shm:{}?size=64KiB&inline=256", scratch.name("shmpool"))));
    all
}

fn opts(ep: &str) -> Options {
    Options::new().create(!ep.starts_with("shm:"))
}

/// A bound receiver and a connected sender on `ep`.
fn pair(ep: &Option<String>) -> (Receiver, Sender) {
    match ep {
        None => {
            let (r, w) = pipe::pipe().expect("pipe");
            (Receiver::from(r), Sender::from(w))
        }
        Some(text) => {
            let ep: Endpoint = text.parse().expect("endpoint");
            let rx = Receiver::bind_with(&ep, &opts(text)).unwrap_or_else(|e| panic!("bind {text}: {e}"));
            let real: Endpoint = rx.name().parse().expect("name parses");
            let tx = Sender::connect_with(&real, &opts(text)).unwrap_or_else(|e| panic!("connect {text}: {e}"));
            (rx, tx)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // Two workers: a stream sender finishes a frame it has started by
    // blocking its thread, so its reader must be able to run elsewhere.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Runs `f` under the hang guard.
fn guarded<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(HANG_GUARD, f).await.expect("hung") })
}

fn message(i: usize) -> Vec<u8> {
    let mut m = format!("message {i} ").into_bytes();
    // Up to 700 bytes: more than a queue's or a small ring's worth in all.
    m.resize(m.len() + (i * 37) % 700, b'a' + (i % 26) as u8);
    m
}

#[test]
fn round_trip_on_every_transport() {
    let scratch = Scratch::new("tokio-rt");
    let rt = runtime();
    const N: usize = 300;
    for ep in endpoints(&scratch) {
        let label = ep.clone().unwrap_or_else(|| "pipe".into());
        let (rx, tx) = pair(&ep);
        let (mut rx, mut tx) = (AsyncReceiver::new(rx), AsyncSender::new(tx));
        guarded(&rt, async {
            // The receiver waits first: the first messages wake it.
            let receiving = tokio::spawn(async move {
                for i in 0..N {
                    let m = rx.recv().await.unwrap_or_else(|e| panic!("recv {i}: {e}"));
                    assert_eq!(m.data, message(i), "message {i}");
                }
                rx
            });
            for i in 0..N {
                tx.send(&message(i)).await.unwrap_or_else(|e| panic!("{label}: send {i}: {e}"));
            }
            let rx = receiving.await.unwrap_or_else(|e| panic!("{label}: receiver: {e}"));
            // Into a caller's buffer, and in place.
            let mut tx = tx;
            let mut rx = rx;
            tx.send(b"into").await.unwrap();
            let mut buf = [0u8; 1024];
            let (n, _) = rx.recv_into(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"into", "{label}");
            tx.send(b"sample").await.unwrap();
            let s = rx.recv_sample().await.unwrap();
            assert_eq!(s.to_vec().unwrap(), b"sample", "{label}");
        });
        if let Some(text) = &ep {
            let ep: Endpoint = text.parse().unwrap();
            if ep.path().is_some_and(|p| p.exists()) {
                ipckit::remove(&ep).unwrap();
            }
        }
    }
}

/// A receive that is dropped after one look, on an empty channel, leaves
/// the channel able to wake the next receive (the `shm:` receiver stays
/// announced as parked; it must not lose the next message).
#[test]
fn a_dropped_receive_loses_no_wake_up() {
    let scratch = Scratch::new("tokio-drop");
    let rt = runtime();
    for ep in endpoints(&scratch) {
        let label = ep.clone().unwrap_or_else(|| "pipe".into());
        let (rx, tx) = pair(&ep);
        let (mut rx, mut tx) = (AsyncReceiver::new(rx), AsyncSender::new(tx));
        guarded(&rt, async {
            for i in 0..20 {
                let polled_once = tokio::select! {
                    biased;
                    m = rx.recv() => panic!("{label}: a message on an empty channel: {m:?}"),
                    () = std::future::ready(()) => true,
                };
                assert!(polled_once);
                tx.send(&message(i)).await.unwrap();
                let m = rx.recv().await.unwrap_or_else(|e| panic!("{label}: recv {i}: {e}"));
                assert_eq!(m.data, message(i), "{label}");
            }
        });
        if let Some(text) = &ep {
            let ep: Endpoint = text.parse().unwrap();
            if ep.path().is_some_and(|p| p.exists()) {
                ipckit::remove(&ep).unwrap();
            }
        }
    }
}

/// Messages per channel in the 1,000-channel test.
const PER_CHANNEL: usize = 20;

/// The 1,000 channels: mostly `shm:` and `unix:`, some of every other
/// transport with an endpoint.
fn thousand(scratch: &Scratch) -> Vec<String> {
    let mut all = Vec::new();
    for i in 0..560 {
        all.push(format!("shm:{}?size=4KiB&pool=0", scratch.name(&format!("s{i}"))));
    }
    for i in 0..360 {
        all.push(format!("unix:@{}", scratch.name(&format!("u{i}"))));
    }
    for i in 0..15 {
        all.push(format!("unix-seqpacket:@{}", scratch.name(&format!("p{i}"))));
        all.push(format!("unix-dgram:@{}", scratch.name(&format!("d{i}"))));
        all.push(format!("fifo:{}", scratch.path(&format!("f{i}")).display()));
        all.push("tcp:127.0.0.1:0".to_string());
    }
    for i in 0..10 {
        all.push(scratch.mq(&format!("q{i}"), "?maxmsg=4&msgsize=64"));
    }
    for i in 0..10 {
        all.push(scratch.sysv_mq(i + 1, ""));
    }
    assert_eq!(all.len(), 1000);
    all
}

/// Raises the soft descriptor limit to the hard one (children inherit it).
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[test]
fn one_runtime_receives_on_1000_channels_with_receives_dropped() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    thousand_channels("tokio-1000", rt);
}

/// The same on a multi-thread runtime (2 workers): the receiving tasks
/// move between threads, and wake-ups come to whichever thread polls the
/// reactor.
#[test]
fn multi_thread_runtime_receives_on_1000_channels_with_receives_dropped() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    thousand_channels("tokio-1000mt", rt);
}

/// One runtime receives on the 1,000 channels from a child process's
/// senders, dropping receives at random points: none lost, none
/// duplicated, order kept per channel.
fn thousand_channels(test: &str, rt: tokio::runtime::Runtime) {
    // One at a time: each needs about 16,000 descriptors of this process.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let nofile = raise_nofile();
    if nofile < 16384 {
        eprintln!("skipped: the descriptor limit is {nofile}, the test needs about 16,000");
        return;
    }
    let scratch = Scratch::new(test);
    let mut receivers = Vec::new();
    let mut names = Vec::new();
    for text in thousand(&scratch) {
        let ep: Endpoint = text.parse().unwrap();
        let rx = Receiver::bind_with(&ep, &opts(&text)).unwrap_or_else(|e| panic!("bind {text}: {e}"));
        names.push(rx.name().to_string());
        receivers.push(AsyncReceiver::new(rx));
    }
    let list = scratch.path("endpoints");
    std::fs::write(&list, names.join("\n")).unwrap();

    let (dropped_at_once, dropped_later) = rt.block_on(async {
        // Every channel is empty now (the senders have not started): a
        // receive polled once and dropped leaves each one waiting.
        let mut at_once = 0;
        for rx in &mut receivers {
            tokio::select! {
                biased;
                m = rx.recv() => panic!("{}: a message before any sender: {m:?}", rx.name()),
                () = std::future::ready(()) => at_once += 1,
            }
        }
        let child = Guarded::spawn(rerun("child_senders", "senders").env("IPCKIT_LIST", &list));
        let mut tasks = tokio::task::JoinSet::new();
        for (ch, mut rx) in receivers.into_iter().enumerate() {
            tasks.spawn(async move {
                let mut rng = Rng(ch as u64 + 1);
                let mut dropped = 0u64;
                let mut seq = 0;
                while seq < PER_CHANNEL {
                    let got = match rng.below(3) {
                        // Raced against a short random sleep.
                        0 => tokio::select! {
                            m = rx.recv() => Some(m),
                            () = tokio::time::sleep(Duration::from_micros(rng.below(2000))) => None,
                        },
                        // Under a timeout.
                        1 => tokio::time::timeout(Duration::from_micros(rng.below(3000)), rx.recv()).await.ok(),
                        _ => Some(rx.recv().await),
                    };
                    let Some(m) = got else {
                        dropped += 1;
                        continue;
                    };
                    let m = m.unwrap_or_else(|e| panic!("{}: recv {seq}: {e}", rx.name()));
                    assert_eq!(
                        String::from_utf8_lossy(&m.data),
                        format!("{ch} {seq}"),
                        "{}: out of order, lost or duplicated",
                        rx.name()
                    );
                    seq += 1;
                }
                // Nothing more: the sender sent exactly PER_CHANNEL.
                match rx.get_mut().try_recv() {
                    Err(e) if matches!(e.kind(), ipckit::ErrorKind::Empty | ipckit::ErrorKind::Disconnected) => {}
                    other => panic!("{}: one more message: {other:?}", rx.name()),
                }
                dropped
            });
        }
        let mut later = 0;
        let all = async {
            while let Some(done) = tasks.join_next().await {
                later += done.expect("a receiving task failed");
            }
        };
        tokio::time::timeout(HANG_GUARD * 2, all).await.expect("channels hung");
        let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();
        assert!(status.success(), "senders: {status}");
        (at_once, later)
    });
    assert_eq!(dropped_at_once, 1000);
    eprintln!("receives dropped while pending: {dropped_at_once} at once, {dropped_later} at random points");
}

/// The senders of the 1,000-channel test: one task per channel in one
/// current-thread runtime, interleaving their sends.
#[test]
#[ignore = "child process entry point"]
fn child_senders() {
    let Some(_) = child_role() else { return };
    let list = std::fs::read_to_string(env("IPCKIT_LIST")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (ch, text) in list.lines().enumerate() {
            let ep: Endpoint = text.parse().unwrap();
            let mut tx =
                AsyncSender::connect_with(&ep, &Options::new()).unwrap_or_else(|e| panic!("connect {text}: {e}"));
            tasks.spawn(async move {
                for seq in 0..PER_CHANNEL {
                    tx.send(format!("{ch} {seq}").as_bytes()).await.unwrap_or_else(|e| panic!("send {ch}: {e}"));
                    if seq % 4 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                tx
            });
        }
        // Every message is sent; what the receiver has not read yet stays
        // in the kernel's buffers, queues and rings when the senders go.
        let mut senders = Vec::new();
        while let Some(done) = tasks.join_next().await {
            senders.push(done.expect("a sending task failed"));
        }
        drop(senders);
    });
}
