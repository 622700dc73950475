//! 10,000 messages of log-uniform random sizes from 1 byte to 4 MiB, so
//! that they cross the copy-or-map threshold both ways, through one sender
//! and through four: each arrives exactly once, intact (checksums), in its
//! sender's order, by every receive form; afterwards every pool chunk is
//! back with its sender.
//!
//! Senders mix the ways in: `send(&[u8])` (inline or pool by size, the
//! threshold from `?inline=` or from `IPCKIT_INLINE_MAX`) and loans.

use ipckit::{Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::{Rng, digest};
use ipckit_testkit::scratch::Scratch;

use super::support::{channel, ep};

const TOTAL: u32 = 10_000;
const LARGEST: usize = 4 << 20;

/// Message `seq` of sender `id`: log-uniform in 1..=4 MiB, its bytes from
/// the seed.
fn message(id: u64, seq: u32) -> Vec<u8> {
    let mut rng = Rng(id << 32 | seq as u64);
    let bits = rng.below(22) as u32;
    let len = ((1usize << bits) + rng.below(1 << bits) as usize).min(LARGEST);
    let mut m = vec![0u8; len];
    rng.fill(&mut m);
    m
}

/// Child: sends `IPCKIT_COUNT` messages as sender `IPCKIT_ID` (every
/// third as a loan), then waits until the receiver gave every chunk back.
#[test]
#[ignore = "child process entry point"]
fn child_exchange_sender() {
    let Some(_) = child_role() else { return };
    let id: u64 = env("IPCKIT_ID").parse().unwrap();
    let count: u32 = env("IPCKIT_COUNT").parse().unwrap();
    let mut tx = Sender::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    for seq in 0..count {
        let m = message(id, seq);
        if seq % 3 == 0 {
            let mut loan = tx.loan(m.len()).unwrap();
            loan.copy_from_slice(&m);
            loan.send().unwrap();
        } else {
            tx.send(&m).unwrap();
        }
    }
    // The receiver drops what it received as it goes: every chunk comes
    // back (bounded by the hang guard, not timed).
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while tx.pool_in_use().unwrap() != Some(0) {
        assert!(std::time::Instant::now() < deadline, "chunks never came back: {:?}", tx.pool_in_use());
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn exchange(senders: u64, tag: &str) {
    let s = Scratch::new(tag);
    let text = channel(&s, "exchange", "");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let per = TOTAL / senders as u32;
    let children: Vec<(i32, Guarded)> = (0..senders)
        .map(|id| {
            // Half the senders set the threshold on the endpoint, half take
            // `auto` from the environment.
            let mut cmd = rerun("exchange::child_exchange_sender", "sender");
            if id % 2 == 0 {
                cmd.env("IPCKIT_EP", format!("{text}?inline=64KiB"));
            } else {
                cmd.env("IPCKIT_EP", &text).env("IPCKIT_INLINE_MAX", "16KiB").env("XDG_CONFIG_HOME", s.path("cfg"));
            }
            let g = Guarded::spawn(cmd.env("IPCKIT_ID", id.to_string()).env("IPCKIT_COUNT", per.to_string()));
            (g.0.as_ref().unwrap().id() as i32, g)
        })
        .collect();
    let mut next = vec![0u32; senders as usize];
    let mut buf = vec![0u8; LARGEST];
    let (mut in_place, mut copied) = (0, 0);
    for i in 0..per * senders as u32 {
        // Every receive form, in turn.
        let (pid, data): (i32, Vec<u8>) = match i % 3 {
            0 => {
                let m = rx.recv_timeout(HANG_GUARD).expect("a message within the hang guard");
                (m.meta.creds.unwrap().pid, m.data)
            }
            1 => {
                let (n, meta) = rx.recv_into_timeout(&mut buf, HANG_GUARD).expect("a message within the hang guard");
                (meta.creds.unwrap().pid, buf[..n].to_vec())
            }
            _ => {
                let sample = rx.recv_sample_timeout(HANG_GUARD).expect("a message within the hang guard");
                if sample.is_in_place() {
                    in_place += 1;
                } else {
                    copied += 1;
                }
                (sample.meta().creds.unwrap().pid, sample.to_vec().unwrap())
            }
        };
        let id = children.iter().position(|(p, _)| *p == pid).expect("one of our senders");
        let expect = message(id as u64, next[id]);
        assert_eq!(data.len(), expect.len(), "sender {id} message #{}: length", next[id]);
        assert_eq!(digest(&data), digest(&expect), "sender {id} message #{}: bytes", next[id]);
        next[id] += 1;
    }
    assert!(next.iter().all(|&c| c == per), "every message exactly once: {next:?}");
    assert!(in_place > 0 && copied > 0, "samples both in place ({in_place}) and copied ({copied})");
    for (_, c) in children {
        assert!(c.wait().success(), "a sender failed (its stderr is above)");
    }
    assert!(rx.try_recv().is_err(), "nothing more");
}

#[test]
fn ten_thousand_messages_up_to_4_mib_one_sender() {
    exchange(1, "shm-xchg1");
}

#[test]
fn ten_thousand_messages_up_to_4_mib_four_senders() {
    exchange(4, "shm-xchg4");
}
