//! Typed messages: serde values and plain old data between processes, the
//! bounded decoder, and typed request-response; the bad-input rows
//! for typed payloads.

use std::collections::BTreeMap;
use std::time::Duration;

use ipckit::typed::{self, Limits, PodReceiver, PodSender, decode, encode};
use ipckit::{Endpoint, ErrorKind, Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Reading {
    seq: u64,
    sensor: String,
    values: Vec<f64>,
    tags: BTreeMap<String, i32>,
    state: State,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum State {
    Ok,
    Degraded { why: String },
    Offline(u32),
}

fn reading(seq: u64) -> Reading {
    Reading {
        seq,
        sensor: format!("sensor-{}", seq % 7),
        values: (0..seq % 5).map(|i| i as f64 * 0.5).collect(),
        tags: (0..seq % 3).map(|i| (format!("t{i}"), -(i as i32))).collect(),
        state: match seq % 3 {
            0 => State::Ok,
            1 => State::Degraded { why: "hot".into() },
            _ => State::Offline(seq as u32),
        },
    }
}

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

const COUNT: u64 = 500;

/// Child: sends `COUNT` readings to `IPCKIT_EP`, with a message of the
/// wrong type (a string) and a truncated one at `IPCKIT_BAD` on the way.
#[test]
#[ignore = "child process entry point"]
fn child_typed_sender() {
    let Some(_) = child_role() else { return };
    let e = ep(&env("IPCKIT_EP"));
    let raw = Sender::connect_timeout(&e, &Options::new(), HANG_GUARD).unwrap();
    let mut tx = typed::Sender::<Reading>::new(raw);
    let bad: u64 = env("IPCKIT_BAD").parse().unwrap();
    for seq in 0..COUNT {
        if seq == bad {
            let mut raw = tx.into_inner();
            raw.send(&encode("not a reading at all", "test").unwrap()).unwrap();
            let whole = encode(&reading(seq), "test").unwrap();
            raw.send(&whole[..whole.len() - 1]).unwrap();
            tx = typed::Sender::new(raw);
        }
        tx.send(&reading(seq)).unwrap();
    }
}

/// A sender process's readings arrive whole and in order on every kind of
/// endpoint; the wrong type and the truncated message in between are
/// `Decode` errors naming the endpoint and the type, and the receiver goes
/// on with the next message.
#[test]
fn typed_values_between_processes_and_bad_payloads_in_between() {
    let s = Scratch::new("typed");
    let endpoints = [
        format!("shm:{}", s.name("tshm")),
        format!("unix:{}", s.path("t.sock").display()),
        format!("unix-seqpacket:@{}", s.name("tseq")),
        s.mq("tq", "?maxmsg=8&msgsize=512"),
        s.sysv_mq(9, ""),
    ];
    for text in endpoints {
        let queue = text.starts_with("mq:") || text.starts_with("sysv-mq:");
        let mut rx = typed::Receiver::<Reading>::bind_with(&ep(&text), &Options::new().create(queue)).unwrap();
        let bad = 123;
        let child = Guarded::spawn(
            rerun("child_typed_sender", "sender").env("IPCKIT_EP", rx.name()).env("IPCKIT_BAD", bad.to_string()),
        );
        for seq in 0..COUNT {
            if seq == bad {
                for what in ["wrong type", "truncated"] {
                    let e = rx.recv_timeout(HANG_GUARD).unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::Decode, "{text}, {what}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(rx.name()) && msg.contains("Reading"), "{text}, {what}: {msg}");
                }
            }
            assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap(), reading(seq), "{text}");
        }
        assert!(child.wait().success(), "{text}: the sender failed");
        drop(rx);
        let _ = ipckit::remove(&ep(&text));
    }
}

/// postcard's length prefix of 2^60 for a `Vec<()>`: refused after the
/// element limit, at once, without allocating by it; honest ones within
/// the limit decode.
#[test]
fn a_vec_of_units_announcing_2_pow_60_elements_is_refused() {
    let mut hostile = Vec::new();
    let mut n: u64 = 1 << 60;
    while n >= 0x80 {
        hostile.push((n as u8) | 0x80);
        n >>= 7;
    }
    hostile.push(n as u8);
    let e = decode::<Vec<()>>(&hostile, &Limits::default(), "unix:@x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(e.to_string().contains("elements"), "{e}");
    // Also inside a map, and for a large announced Vec<u8>.
    let e = decode::<BTreeMap<(), ()>>(&hostile, &Limits::default(), "unix:@x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    let e = decode::<Vec<u8>>(&hostile, &Limits::default(), "unix:@x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");

    let honest = encode(&vec![(); 1000], "x").unwrap();
    assert_eq!(decode::<Vec<()>>(&honest, &Limits::default(), "x").unwrap().len(), 1000);
    let e = decode::<Vec<()>>(&honest, &Limits::default().max_elements(999), "x").unwrap_err();
    assert!(e.to_string().contains("more than 999 elements"), "{e}");
    // A large honest Vec<u8> is within the default (a byte per element).
    let bytes = encode(&vec![7u8; 1 << 20], "x").unwrap();
    assert_eq!(decode::<Vec<u8>>(&bytes, &Limits::default(), "x").unwrap().len(), 1 << 20);
}

#[derive(Serialize, Deserialize, Debug)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

/// A recursive type nested a byte per level: refused at the depth limit,
/// not a stack overflow.
#[test]
fn nesting_is_bounded() {
    let deep = [vec![1u8; 100_000], vec![0]].concat(); // Node(Node(…(Leaf)))
    let e = decode::<Tree>(&deep, &Limits::default(), "shm:t").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(e.to_string().contains("nested more than 128"), "{e}");
    let shallow = [vec![1u8; 100], vec![0]].concat();
    decode::<Tree>(&shallow, &Limits::default(), "shm:t").unwrap();
    let e = decode::<Tree>(&shallow, &Limits::default().max_depth(50), "shm:t").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
}

/// Bytes left over after a value, a truncated value, an unknown variant:
/// `Decode`, naming the type.
#[test]
fn malformed_payloads_are_decode_errors() {
    let whole = encode(&reading(4), "x").unwrap();
    assert_eq!(decode::<Reading>(&whole, &Limits::default(), "x").unwrap(), reading(4));
    for bad in [&[whole.clone(), vec![0]].concat()[..], &whole[..whole.len() - 1], &[], &[0xff; 3]] {
        let e = decode::<Reading>(bad, &Limits::default(), "mq:/q").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{bad:?}");
        assert!(e.to_string().contains("mq:/q") && e.to_string().contains("Reading"), "{e}");
    }
    let e = decode::<State>(&[7], &Limits::default(), "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any bytes: a value or `Decode`, never a panic; a value re-encodes
    /// to the same bytes.
    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(v) = decode::<Reading>(&bytes, &Limits::default(), "x") {
            prop_assert_eq!(encode(&v, "x").unwrap(), bytes.clone());
        }
        if let Ok(v) = decode::<Vec<Option<String>>>(&bytes, &Limits::default(), "x") {
            prop_assert_eq!(encode(&v, "x").unwrap(), bytes.clone());
        }
        let _ = decode::<Tree>(&bytes, &Limits::default(), "x");
        let _ = decode::<BTreeMap<u16, Vec<()>>>(&bytes, &Limits::default(), "x");
    }
}

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct Frame {
    seq: u64,
    pixels: [u8; 4096],
}

/// Child: sends frames as plain old data.
#[test]
#[ignore = "child process entry point"]
fn child_pod_sender() {
    let Some(_) = child_role() else { return };
    let mut tx = PodSender::<Frame>::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    for seq in 0..200u64 {
        let mut loan = tx.loan().unwrap();
        loan.seq = seq;
        loan.pixels = [seq as u8; 4096];
        loan.send().unwrap();
    }
    let mut raw = tx.into_inner();
    raw.send(b"short").unwrap();
    let mut tx = PodSender::<Frame>::new(raw);
    tx.send(&Frame { seq: 999, pixels: [9; 4096] }).unwrap();
}

/// Plain old data on `shm:` travels in place (only a reference: the
/// sample is in the pool with inline messages capped below a frame); a
/// message of another length is `Decode` and the next one is read.
#[test]
fn pod_frames_in_place_between_processes() {
    let s = Scratch::new("typed-pod");
    let text = format!("shm:{}?inline=1024", s.name("pod"));
    let mut rx = PodReceiver::<Frame>::new(Receiver::bind(&ep(&text)).unwrap());
    let child = Guarded::spawn(rerun("child_pod_sender", "sender").env("IPCKIT_EP", &text));
    for seq in 0..200u64 {
        let sample = rx.recv_sample().unwrap();
        assert!(sample.is_in_place(), "frame {seq} was copied");
        let f = sample.read::<Frame>().unwrap();
        assert_eq!((f.seq, f.pixels), (seq, [seq as u8; 4096]));
    }
    let e = rx.recv_timeout(HANG_GUARD).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert!(e.to_string().contains("Frame"), "{e}");
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().seq, 999);
    assert!(child.wait().success());
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Op {
    Add(i64, i64),
    Concat(Vec<String>),
    Fail(String),
}

fn serve_ops(op: Op) -> Result<String, String> {
    match op {
        Op::Add(a, b) => Ok((a + b).to_string()),
        Op::Concat(v) => Ok(v.concat()),
        Op::Fail(why) => Err(why),
    }
}

/// Typed calls: replies decoded, handler errors `Remote`; a request that
/// is not a `Req` gets an error reply naming the type; a reply that is not
/// a `Resp` is `Decode` for the caller.
#[test]
fn typed_calls_and_payloads_of_the_wrong_type() {
    let s = Scratch::new("typed-rpc");
    let text = format!("unix-seqpacket:@{}", s.name("ops"));
    let server = typed::Server::<Op, String>::bind(&ep(&text)).unwrap();
    let client = typed::Client::<Op, String>::connect(&ep(&text)).unwrap();
    std::thread::scope(|sc| {
        let serving = sc.spawn(|| server.serve(serve_ops));
        assert_eq!(client.call(&Op::Add(2, 40)).unwrap(), "42");
        assert_eq!(client.call(&Op::Concat(vec!["a".into(), "b".into()])).unwrap(), "ab");
        let e = client.call(&Op::Fail("no disk".into())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Remote);
        assert!(e.to_string().contains("no disk"), "{e}");
        // A request of the wrong type.
        let wrong = typed::Client::<u8, String>::connect(&ep(&text)).unwrap();
        let e = wrong.call_timeout(&200, HANG_GUARD).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
        assert!(e.to_string().contains("Op"), "{e}");
        // A reply of the wrong type: a String is not a Vec<u64> here.
        let misread = typed::Client::<Op, (u64, u64, u64)>::connect(&ep(&text)).unwrap();
        let e = misread.call_timeout(&Op::Add(1, 1), HANG_GUARD).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert!(e.to_string().contains(&text), "{e}");
        // The server went on.
        assert_eq!(client.call_timeout(&Op::Add(1, 1), Duration::from_secs(5)).unwrap(), "2");
        server.stop();
        serving.join().unwrap().unwrap();
    });
}
