//! Typed messages between two processes: a producer sends serde values
//! through `ipckit::typed::Sender<T>`, a consumer receives them through
//! `ipckit::typed::Receiver<T>` and checks each one.
//!
//! ```text
//! cargo run --example typed_pipeline [ENDPOINT] [--count N] [--corrupt]
//! ```
//!
//! The consumer binds `ENDPOINT` (by default `shm:ipckit-example-tp-<pid>`,
//! which leaves nothing behind), starts the producer (this program again,
//! as `typed_pipeline produce ENDPOINT N`), and receives `N` frames, then
//! the producer's `Done`. Every frame must be the one the producer makes
//! for its number, in order. It exits 0 only if all `N` frames came right
//! and the producer exited 0. A queue (`mq:`, `sysv-mq:`), FIFO or socket
//! file the consumer created is removed, also on failure. `--corrupt` makes
//! the producer send one frame wrong, to see the consumer notice (the
//! example then exits 1).

use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::time::Duration;

use ipckit::typed::{Receiver, Sender};
use ipckit::{Endpoint, EndpointKind, ErrorKind, Options};
use serde::{Deserialize, Serialize};

/// How long either side waits for the other.
const PATIENCE: Duration = Duration::from_secs(30);

/// One unit of work.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Frame {
    seq: u64,
    source: String,
    samples: Vec<f32>,
    labels: BTreeMap<String, i64>,
    kind: Kind,
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Kind {
    Raw,
    Scaled { factor: f64 },
    Dropped(u32),
}

/// What travels: frames, then the end.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Msg {
    Frame(Frame),
    Done { sent: u64 },
}

/// The frame number `seq`, as the producer makes it and the consumer
/// expects it.
fn frame(seq: u64) -> Frame {
    Frame {
        seq,
        source: format!("sensor-{}", seq % 5),
        samples: (0..seq % 17).map(|i| i as f32 * 0.25 - seq as f32).collect(),
        labels: (0..seq % 4).map(|i| (format!("l{i}"), i as i64 - seq as i64)).collect(),
        kind: match seq % 3 {
            0 => Kind::Raw,
            1 => Kind::Scaled { factor: seq as f64 / 8.0 },
            _ => Kind::Dropped(seq as u32 * 3),
        },
        note: (seq % 7 == 0).then(|| "every seventh".to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("produce") => produce(&args[1..]),
        _ => consume(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("typed_pipeline: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Removes the named object the consumer created (a queue, a FIFO, a
/// socket file) when dropped, whatever happened before.
struct Remove(Option<Endpoint>);

impl Drop for Remove {
    fn drop(&mut self) {
        if let Some(ep) = self.0.take() {
            if let Err(e) = ipckit::remove(&ep) {
                if e.kind() != ErrorKind::NotFound {
                    eprintln!("typed_pipeline: remove {ep}: {e}");
                }
            }
        }
    }
}

/// The producer process, killed and reaped if the consumer gives up first.
struct Producer(Option<std::process::Child>);

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn consume(args: &[String]) -> Result<(), String> {
    let mut endpoint = format!("shm:ipckit-example-tp-{}", std::process::id());
    let (mut count, mut corrupt) = (200u64, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--count" => {
                let v = it.next().ok_or("--count needs a number")?;
                count = v.parse().map_err(|e| format!("--count {v:?}: {e}"))?;
            }
            "--corrupt" => corrupt = true,
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            a => endpoint = a.to_string(),
        }
    }
    let ep: Endpoint = endpoint.parse().map_err(|e| format!("{endpoint}: {e}"))?;
    let named = match ep.kind() {
        EndpointKind::Mq(_) | EndpointKind::SysvMq(_) | EndpointKind::Fifo(_) => true,
        EndpointKind::Unix(..) => ep.path().is_some(),
        _ => false,
    };
    // Queues and FIFOs are created if missing (`shm:` always is).
    let create = !matches!(ep.kind(), EndpointKind::Shm(_));
    let mut rx = Receiver::<Msg>::bind_with(&ep, &Options::new().create(create)).map_err(|e| format!("bind: {e}"))?;
    let _remove = Remove(named.then(|| ep.clone()));
    // The name the producer uses (for tcp: port 0, the real port).
    let name = rx.name().to_string();
    println!("consumer: {name}, {count} frames");

    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["produce", &name, &count.to_string()]);
    if corrupt {
        cmd.arg("--corrupt");
    }
    let mut producer = Producer(Some(cmd.spawn().map_err(|e| format!("spawn the producer: {e}"))?));

    let mut bytes = 0usize;
    for seq in 0..count {
        let got = rx.recv_timeout(PATIENCE).map_err(|e| format!("frame {seq}: {e}"))?;
        match got {
            Msg::Frame(f) if f == frame(seq) => bytes += f.samples.len() * 4 + f.source.len(),
            Msg::Frame(f) => return Err(format!("frame {seq}: got {f:?}, want {:?}", frame(seq))),
            Msg::Done { sent } => return Err(format!("the producer was done after {sent} frames, want {count}")),
        }
    }
    match rx.recv_timeout(PATIENCE).map_err(|e| format!("the end: {e}"))? {
        Msg::Done { sent } if sent == count => {}
        other => return Err(format!("after {count} frames: got {other:?}, want Done {{ sent: {count} }}")),
    }
    let status = producer.0.take().expect("the producer").wait().map_err(|e| format!("wait: {e}"))?;
    if !status.success() {
        return Err(format!("the producer failed: {status}"));
    }
    println!("consumer: {count} frames ({bytes} bytes of samples and names), every one right");
    Ok(())
}

fn produce(args: &[String]) -> Result<(), String> {
    let (endpoint, count, corrupt) = match args {
        [ep, n] => (ep, n, false),
        [ep, n, c] if c == "--corrupt" => (ep, n, true),
        _ => return Err("usage: typed_pipeline produce ENDPOINT COUNT [--corrupt]".into()),
    };
    let count: u64 = count.parse().map_err(|e| format!("count {count:?}: {e}"))?;
    let ep: Endpoint = endpoint.parse().map_err(|e| format!("{endpoint}: {e}"))?;
    let mut tx = Sender::<Msg>::connect_timeout(&ep, &Options::new(), PATIENCE)
        .map_err(|e| format!("producer: connect: {e}"))?;
    for seq in 0..count {
        let mut f = frame(seq);
        if corrupt && seq == count / 2 {
            f.labels.insert("corrupted".into(), 1);
        }
        tx.send(&Msg::Frame(f)).map_err(|e| format!("producer: frame {seq}: {e}"))?;
    }
    tx.send(&Msg::Done { sent: count }).map_err(|e| format!("producer: done: {e}"))?;
    println!("producer: {count} frames sent");
    Ok(())
}
