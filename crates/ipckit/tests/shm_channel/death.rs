//! Dead peers are normal: senders and receivers SIGKILLed at random
//! points, 200 rounds. A sender whose receiver died gets `Disconnected`
//! (never a hang, also while it waits for room); a receiver whose sender
//! died delivers everything that sender published, in order, and serves
//! the others on. Nothing of a channel outlives its processes.

use std::time::Duration;

use ipckit::{ErrorKind, Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::{Rng, checksum};
use ipckit_testkit::scratch::Scratch;
use rustix::process::{Pid, Signal, kill_process};

use super::support::{channel, control_socket_exists, ep};

const ROUNDS: u64 = 200;

fn sigkill(child: &mut Guarded) {
    let pid = Pid::from_raw(child.child().id() as i32).unwrap();
    kill_process(pid, Signal::KILL).unwrap();
}

/// A message: its sequence number, a checksum, random bytes.
fn message(rng: &mut Rng, seq: u32, max: usize) -> Vec<u8> {
    let len = 12 + rng.below((max - 12) as u64) as usize;
    let mut m = vec![0u8; len];
    rng.fill(&mut m[12..]);
    let sum = checksum(&m[12..]);
    m[..4].copy_from_slice(&seq.to_le_bytes());
    m[4..12].copy_from_slice(&sum.to_le_bytes());
    m
}

fn check(m: &[u8]) -> u32 {
    let seq = u32::from_le_bytes(m[..4].try_into().unwrap());
    assert_eq!(u64::from_le_bytes(m[4..12].try_into().unwrap()), checksum(&m[12..]), "message #{seq} intact");
    seq
}

/// Child: sends numbered messages of random sizes until killed (or until
/// `IPCKIT_COUNT`).
#[test]
#[ignore = "child process entry point"]
fn child_sender() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let count: u32 = std::env::var("IPCKIT_COUNT").map_or(u32::MAX, |c| c.parse().unwrap());
    let mut rng = Rng(env("IPCKIT_SEED").parse().unwrap());
    let mut tx = Sender::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
    for seq in 0..count {
        tx.send(&message(&mut rng, seq, 4000)).unwrap();
    }
}

/// Child: receives and checks until killed.
#[test]
#[ignore = "child process entry point"]
fn child_receiver() {
    let Some(_) = child_role() else { return };
    let mut rx = Receiver::bind(&ep(&env("IPCKIT_EP"))).unwrap();
    loop {
        check(&rx.recv().unwrap().data);
    }
}

/// The receiver killed: the sender (this process) gets `Disconnected`
/// within the hang guard, whether it is sending or waiting for room.
fn kill_the_receiver(s: &Scratch, round: u64, rng: &mut Rng) {
    let text = channel(s, &format!("rx{round}"), "?size=4KiB");
    let mut receiver = Guarded::spawn(rerun("death::child_receiver", "receiver").env("IPCKIT_EP", &text));
    let mut tx = Sender::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
    let before = rng.below(40) as u32;
    let mut seq = 0;
    while seq < before {
        tx.send_timeout(&message(rng, seq, 4000), HANG_GUARD).unwrap();
        seq += 1;
    }
    sigkill(&mut receiver);
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        match tx.send_timeout(&message(rng, seq, 4000), HANG_GUARD) {
            Ok(()) => seq += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Disconnected, "round {round}: {e}");
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "round {round}: sends to a dead receiver kept succeeding");
    }
    let status = receiver.wait();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
}

/// A sender killed (often in the middle of a message): everything it
/// published arrives whole and in order, and the receiver (this process)
/// serves the next sender.
fn kill_a_sender(s: &Scratch, round: u64, rng: &mut Rng) {
    let text = channel(s, &format!("tx{round}"), "?size=4KiB");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let mut sender = Guarded::spawn(
        rerun("death::child_sender", "sender").env("IPCKIT_EP", &text).env("IPCKIT_SEED", round.to_string()),
    );
    let before = rng.below(30);
    for expect in 0..before as u32 {
        assert_eq!(check(&rx.recv_timeout(HANG_GUARD).unwrap().data), expect, "round {round}");
    }
    sigkill(&mut sender);
    let mut expect = before as u32;
    // What it published before it died.
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(m) => {
                assert_eq!(check(&m.data), expect, "round {round}: lost or reordered");
                expect += 1;
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => break,
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    let status = sender.wait();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    // The receiver serves on.
    let mut next = Sender::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
    next.send(b"after").unwrap();
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap().data, b"after", "round {round}");
}

#[test]
fn peers_killed_at_random_points() {
    let s = Scratch::new("shm-kill");
    let mut rng = Rng(0xdead);
    for round in 0..ROUNDS {
        if rng.below(2) == 0 {
            kill_the_receiver(&s, round, &mut rng);
        } else {
            kill_a_sender(&s, round, &mut rng);
        }
    }
    let prefix = s.name("");
    assert!(!control_socket_exists(&prefix), "a channel's control socket outlived its processes");
}

/// A sender killed while it writes its messages, beside three others:
/// every one of their messages arrives; the receiver never stalls.
#[test]
fn a_sender_killed_mid_message_does_not_stall_the_others() {
    let s = Scratch::new("shm-midmsg");
    let text = channel(&s, "mid", "?size=64KiB");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let honest: Vec<Guarded> = (0..3)
        .map(|i| {
            Guarded::spawn(
                rerun("death::child_sender", "sender")
                    .env("IPCKIT_EP", &text)
                    .env("IPCKIT_SEED", (100 + i).to_string())
                    .env("IPCKIT_COUNT", "2000"),
            )
        })
        .collect();
    let pids: Vec<i32> = honest.iter().map(|g| g.0.as_ref().unwrap().id() as i32).collect();
    let mut victim =
        Guarded::spawn(rerun("death::child_sender", "sender").env("IPCKIT_EP", &text).env("IPCKIT_SEED", "7"));
    let mut counts = std::collections::HashMap::new();
    let mut received = 0;
    while counts.values().sum::<u32>() < 6000 {
        let m = rx.recv_timeout(HANG_GUARD).expect("the receiver stalled");
        let pid = m.meta.creds.unwrap().pid;
        let seq = check(&m.data);
        if pids.contains(&pid) {
            let c = counts.entry(pid).or_insert(0u32);
            assert_eq!(seq, *c, "sender {pid} in order");
            *c += 1;
        }
        received += 1;
        if received == 500 {
            sigkill(&mut victim);
        }
    }
    for h in honest {
        assert!(h.wait().success());
    }
    let _ = victim.wait();
}
