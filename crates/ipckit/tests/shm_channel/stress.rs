//! A million messages of log-uniform random sizes, from 1 byte to the
//! largest the ring holds (log-uniform keeps a debug build fast): through
//! one sender and through four, every message arrives exactly once, intact
//! (checksums), and each sender's order is kept.

use ipckit::{Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::{Rng, checksum};
use ipckit_testkit::scratch::Scratch;

use super::support::{channel, ep};

const TOTAL: u32 = 1_000_000;
/// A 4 KiB ring: the largest message is 4088 bytes.
const LARGEST: usize = 4088;

/// Message `seq` of sender `id`: its size log-uniform in 1..=LARGEST, its
/// bytes from the seed.
fn message(id: u64, seq: u32) -> Vec<u8> {
    let mut rng = Rng(id << 32 | seq as u64);
    let bits = rng.below(12) as u32;
    let len = (1usize << bits) + rng.below(1 << bits) as usize;
    let mut m = vec![0u8; len.min(LARGEST)];
    rng.fill(&mut m);
    m
}

/// Child: sends `IPCKIT_COUNT` messages as sender `IPCKIT_ID`.
#[test]
#[ignore = "child process entry point"]
fn child_stress_sender() {
    let Some(_) = child_role() else { return };
    let id: u64 = env("IPCKIT_ID").parse().unwrap();
    let count: u32 = env("IPCKIT_COUNT").parse().unwrap();
    let mut tx = Sender::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    for seq in 0..count {
        tx.send(&message(id, seq)).unwrap();
    }
}

fn stress(senders: u64, tag: &str) {
    let s = Scratch::new(tag);
    let text = channel(&s, "stress", "?size=4KiB");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let per = TOTAL / senders as u32;
    let children: Vec<(i32, Guarded)> = (0..senders)
        .map(|id| {
            let g = Guarded::spawn(
                rerun("stress::child_stress_sender", "sender")
                    .env("IPCKIT_EP", &text)
                    .env("IPCKIT_ID", id.to_string())
                    .env("IPCKIT_COUNT", per.to_string()),
            );
            (g.0.as_ref().unwrap().id() as i32, g)
        })
        .collect();
    let mut next = vec![0u32; senders as usize];
    let mut buf = vec![0u8; LARGEST];
    for _ in 0..per * senders as u32 {
        let (n, meta) = rx.recv_into_timeout(&mut buf, HANG_GUARD).expect("a message within the hang guard");
        let pid = meta.creds.expect("the sender's credentials").pid;
        let id = children.iter().position(|(p, _)| *p == pid).expect("one of our senders");
        let expect = message(id as u64, next[id]);
        assert_eq!(n, expect.len(), "sender {id} message #{}: length", next[id]);
        assert_eq!(checksum(&buf[..n]), checksum(&expect), "sender {id} message #{}: bytes", next[id]);
        next[id] += 1;
    }
    assert!(next.iter().all(|&c| c == per), "every message exactly once: {next:?}");
    for (_, c) in children {
        assert!(c.wait().success());
    }
    assert!(rx.try_recv().is_err(), "nothing more");
}

#[test]
fn a_million_messages_one_sender() {
    stress(1, "shm-stress1");
}

#[test]
fn a_million_messages_four_senders() {
    stress(4, "shm-stress4");
}
