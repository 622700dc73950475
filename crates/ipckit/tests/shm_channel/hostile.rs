//! A hostile sender: it joins like any sender, then writes random bytes
//! over its whole ring (header, indices, records), sets parked bits and
//! floods wake-ups, 10,000 rounds, rejoining whenever the receiver drops
//! it. The receiver meanwhile serves an honest sender: every honest
//! message arrives, in order; the hostile one costs only `Corrupt` errors.
//! The receiver is this test process: a signal would kill the test.

use std::time::Duration;

use ipckit::shm::{Region, Trust};
use ipckit::socket::Connection;
use ipckit::{ErrorKind, Receiver};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::Rng;
use ipckit_testkit::scratch::Scratch;

use super::support::{channel, ep};

const ROUNDS: usize = 10_000;
const HONEST: u32 = 20_000;

/// Joins `name` by hand, as the protocol says (see
/// `channel/shm/control.rs`): the control connection and the ring.
fn join(name: &str) -> Option<(Connection, Region)> {
    let control: ipckit::Endpoint = format!("unix-seqpacket:@ipckit/shm/{name}").parse().unwrap();
    let mut conn = Connection::connect(&control).ok()?;
    let mut hello = b"IPCKIT-SHM\x02".to_vec();
    // No size asked for, no pool.
    hello.extend_from_slice(&[0u8; 16]);
    conn.send(&hello).ok()?;
    let welcome = conn.recv_timeout(HANG_GUARD).ok()?;
    assert_eq!(welcome.data[..12], *b"IPCKIT-SHM\x02W", "a welcome");
    let fd = welcome.meta.fds.into_iter().next().expect("the ring");
    let len = rustix::fs::fstat(&fd).unwrap().st_size as usize;
    let ring = Region::from_received_fd(fd, len, Trust::SealedOnly).expect("map the ring");
    Some((conn, ring))
}

/// Child: scribbles over its ring for `ROUNDS` rounds.
#[test]
#[ignore = "child process entry point"]
fn child_scribbler() {
    let Some(_) = child_role() else { return };
    let name = env("IPCKIT_NAME");
    let mut rng = Rng(env("IPCKIT_SEED").parse().unwrap());
    let mut joined = join(&name);
    let mut joins = 1;
    for round in 0..ROUNDS {
        let Some((conn, ring)) = joined.as_mut() else {
            joined = join(&name);
            continue;
        };
        let len = ring.len();
        let mut scribble = [0u8; 64];
        match rng.below(6) {
            // Random bytes anywhere.
            0 | 1 => {
                let n = 1 + rng.below(64) as usize;
                rng.fill(&mut scribble[..n]);
                let at = rng.below((len - n) as u64) as usize;
                let _ = ring.write_at(at, &scribble[..n]);
            }
            // A random tail (published bytes), parked bit and all.
            2 => {
                let _ = ring.write_at(64, &rng.next_u64().to_le_bytes());
            }
            // A plausible tail with a record header of a random length.
            3 => {
                let tail = 8 * rng.below(64);
                let _ = ring.write_at(256, &(rng.next_u64() as u32).to_le_bytes());
                let _ = ring.write_at(64, &tail.to_le_bytes());
            }
            // A random head (the receiver's word) and parked bits.
            4 => {
                let _ = ring.write_at(128, &(rng.next_u64() | 1 << 63).to_le_bytes());
            }
            // A flood of wake-ups.
            _ => {
                for _ in 0..16 {
                    let _ = conn.try_send(b"w");
                }
            }
        }
        let _ = conn.try_send(b"w");
        // Dropped by the receiver (its wake-ups read first): join again.
        let dropped = loop {
            match conn.try_recv() {
                Ok(_) => {}
                Err(e) => break e.kind() == ErrorKind::Disconnected,
            }
        };
        if dropped {
            joined = join(&name);
            joins += 1;
        }
        let _ = round;
    }
    eprintln!("scribbler joined {joins} times in {ROUNDS} rounds");
}

/// Child: sends `HONEST` numbered messages.
#[test]
#[ignore = "child process entry point"]
fn child_honest() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let mut tx = ipckit::Sender::connect_timeout(&ep(&text), &ipckit::Options::new(), HANG_GUARD).unwrap();
    for i in 0..HONEST {
        tx.send(&i.to_le_bytes()).unwrap();
    }
}

#[test]
fn a_scribbling_sender_cannot_hurt_the_receiver_or_the_honest_ones() {
    let s = Scratch::new("shm-hostile");
    let name = s.name("hostile");
    let text = channel(&s, "hostile", "?size=4KiB");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let mut scribbler = Guarded::spawn(
        rerun("hostile::child_scribbler", "scribbler").env("IPCKIT_NAME", &name).env("IPCKIT_SEED", "2026"),
    );
    let honest = Guarded::spawn(rerun("hostile::child_honest", "honest").env("IPCKIT_EP", &text));
    let honest_pid = honest.0.as_ref().unwrap().id() as i32;
    let (mut next, mut corrupt) = (0u32, 0usize);
    let mut scribbler_done = false;
    let deadline = std::time::Instant::now() + 4 * HANG_GUARD;
    while next < HONEST || !scribbler_done {
        assert!(std::time::Instant::now() < deadline, "the receiver made no progress");
        if !scribbler_done {
            scribbler_done = scribbler.child().try_wait().unwrap().is_some();
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) if m.meta.creds.map(|c| c.pid) == Some(honest_pid) => {
                assert_eq!(m.data, next.to_le_bytes(), "honest message #{next}");
                next += 1;
            }
            // What the scribbler published, whatever it is.
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                assert!(e.to_string().contains(&text), "{e}");
                corrupt += 1;
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            Err(e) => panic!("the receiver failed: {e}"),
        }
    }
    assert!(scribbler.wait().success(), "the scribbler itself failed");
    assert!(honest.wait().success());
    assert!(corrupt > 0, "the scribbling was noticed ({corrupt} Corrupt)");
}

/// Child: sends `n` numbered messages (`IPCKIT_N`), a pause before each,
/// so that the receiver (`?spin=0`) has parked and each one must wake it.
#[test]
#[ignore = "child process entry point"]
fn child_paced() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let n: u32 = env("IPCKIT_N").parse().unwrap();
    let mut tx = ipckit::Sender::connect_timeout(&ep(&text), &ipckit::Options::new(), HANG_GUARD).unwrap();
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(3));
        tx.send_timeout(&i.to_le_bytes(), HANG_GUARD).unwrap();
    }
}

/// A sender that spoils the doorbell of its welcome: it clears
/// `O_NONBLOCK` on it (a flag of the open file description, shared with
/// whoever holds the same one) and fills its counter to the maximum, so
/// that any further write to it would wait for ever. Honest senders
/// (already joined, and joining after) still wake the parked receiver,
/// every message arrives, and the hostile one spoiled only its own
/// wake-ups.
#[test]
fn a_sender_that_spoils_its_doorbell_spoils_only_its_own_wake_ups() {
    let s = Scratch::new("shm-doorbell");
    let name = s.name("doorbell");
    let text = channel(&s, "doorbell", "?spin=0");
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    const N: u32 = 40;
    let paced = |what: &str| {
        Guarded::spawn(rerun("hostile::child_paced", what).env("IPCKIT_EP", &text).env("IPCKIT_N", N.to_string()))
    };
    // An honest sender that joined before the hostile one.
    let first = paced("first");
    let first_pid = first.0.as_ref().unwrap().id() as i32;
    let mut got = std::collections::HashMap::<i32, u32>::new();
    let receive = |rx: &mut Receiver, got: &mut std::collections::HashMap<i32, u32>| {
        let m = rx.recv_timeout(HANG_GUARD).unwrap_or_else(|e| panic!("an honest message did not come: {e}"));
        let pid = m.meta.creds.expect("credentials").pid;
        let next = got.entry(pid).or_default();
        assert_eq!(m.data, next.to_le_bytes(), "message #{next} of pid {pid}");
        *next += 1;
    };
    receive(&mut rx, &mut got);
    // The hostile sender joins by hand and spoils the doorbell it got.
    let control: ipckit::Endpoint = format!("unix-seqpacket:@ipckit/shm/{name}").parse().unwrap();
    let mut conn = Connection::connect(&control).unwrap();
    let mut hello = b"IPCKIT-SHM\x02".to_vec();
    hello.extend_from_slice(&[0u8; 16]);
    conn.send(&hello).unwrap();
    let welcome = conn.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(welcome.data[..12], *b"IPCKIT-SHM\x02W", "a welcome");
    let fds = welcome.meta.fds;
    assert_eq!(fds.len(), 3, "a ring, a liveness page, a doorbell");
    let doorbell = &fds[2];
    // Filled while still non-blocking (a count already there would make
    // the blocking write wait), then made blocking.
    let full = (0..1000).any(|_| {
        let _ = rustix::io::read(doorbell, &mut [0u8; 8]);
        rustix::io::write(doorbell, &(u64::MAX - 1).to_ne_bytes()).is_ok()
    });
    assert!(full, "the doorbell could not be filled");
    rustix::fs::fcntl_setfl(doorbell, rustix::fs::OFlags::empty()).unwrap();
    // Should this test fail, a write blocked on that doorbell (the
    // receiver's service thread's, before the fix) would hang the
    // receiver's drop: its count is taken first (dropped before `rx`).
    let _unspoil = Unspoil(doorbell.try_clone().unwrap());
    // An honest sender that joins after.
    let second = paced("second");
    let second_pid = second.0.as_ref().unwrap().id() as i32;
    while got.values().sum::<u32>() < 2 * N {
        receive(&mut rx, &mut got);
    }
    assert_eq!(got.get(&first_pid), Some(&N));
    assert_eq!(got.get(&second_pid), Some(&N));
    assert!(first.wait().success(), "the first honest sender failed");
    assert!(second.wait().success(), "the second honest sender failed");
    drop((conn, fds));
}

/// Takes an eventfd's count when dropped (a blocked writer goes on).
struct Unspoil(std::os::fd::OwnedFd);

impl Drop for Unspoil {
    fn drop(&mut self) {
        let _ = rustix::fs::fcntl_setfl(&self.0, rustix::fs::OFlags::NONBLOCK);
        let _ = rustix::io::read(&self.0, &mut [0u8; 8]);
    }
}
