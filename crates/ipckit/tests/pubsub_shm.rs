//! Publish-subscribe on `shm:` between real processes: every subscriber
//! sees every message once and in order (block), or counts what it lost
//! (drop-oldest); history for late subscribers; subscribers and
//! publishers killed; a hostile publisher; names that do not clash.

use std::time::Duration;

use ipckit::pubsub::{Publisher, Subscriber};
use ipckit::{Endpoint, ErrorKind, Options};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::checksum;
use ipckit_testkit::scratch::Scratch;
use rustix::process::{Pid, Signal, kill_process};

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn topic(s: &Scratch, name: &str, query: &str) -> String {
    format!("shm:{}{query}", s.name(name))
}

fn sub(text: &str) -> Subscriber {
    Subscriber::connect_timeout(&ep(text), &Options::new(), HANG_GUARD).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A message: sequence number, checksum, some bytes that depend on it.
fn message(seq: u64) -> Vec<u8> {
    let len = 16 + (seq % 48) as usize;
    let mut m = vec![0u8; len];
    for (i, b) in m[16..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let sum = checksum(&m[16..]);
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m[8..16].copy_from_slice(&sum.to_le_bytes());
    m
}

fn check(m: &[u8]) -> u64 {
    assert!(m.len() >= 16, "message of {} bytes", m.len());
    let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert_eq!(u64::from_le_bytes(m[8..16].try_into().unwrap()), checksum(&m[16..]), "message #{seq} intact");
    seq
}

fn sigkill(child: &mut Guarded) {
    let pid = Pid::from_raw(child.child().id() as i32).unwrap();
    kill_process(pid, Signal::KILL).unwrap();
}

/// Whether an abstract socket whose name contains `name` exists.
fn socket_exists(name: &str) -> bool {
    std::fs::read_to_string("/proc/net/unix").unwrap_or_default().lines().any(|l| l.contains(name))
}

/// Whether /dev/shm holds anything named with `name`.
fn dev_shm_has(name: &str) -> bool {
    std::fs::read_dir("/dev/shm").map_or(false, |d| d.flatten().any(|e| e.file_name().to_string_lossy().contains(name)))
}

fn assert_clean(s: &Scratch, name: &str) {
    let full = s.name(name);
    assert!(!socket_exists(&full), "a control socket of {full} is left");
    assert!(!dev_shm_has(&full), "/dev/shm holds something of {full}");
}

#[test]
fn one_thread_publish_and_receive() {
    let s = Scratch::new("ps-basic");
    let text = topic(&s, "t", "");
    {
        let mut p = Publisher::bind(&ep(&text)).unwrap();
        // No subscriber under block: publishing does not block.
        for i in 0..1000 {
            p.try_publish(&message(i)).unwrap();
        }
        let mut a = sub(&text);
        let mut b = sub(&text);
        assert_eq!(p.subscribers(), 2);
        assert_eq!(a.try_recv().unwrap_err().kind(), ErrorKind::Empty);
        for i in 0..200 {
            p.publish(&message(i)).unwrap();
            assert_eq!(check(&a.recv_timeout(HANG_GUARD).unwrap().data), i);
            let m = b.recv_timeout(HANG_GUARD).unwrap();
            assert_eq!(check(&m.data), i);
            assert_eq!(m.meta.lost, 0);
        }
        // 64 slots: the 65th is held back by the subscribers.
        for i in 0..64 {
            p.try_publish(&message(i)).unwrap();
        }
        assert_eq!(p.try_publish(b"x").unwrap_err().kind(), ErrorKind::Full);
        assert_eq!(p.publish_timeout(b"x", Duration::from_millis(10)).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_eq!(check(&a.recv().unwrap().data), 0);
        // Still held back by b.
        assert_eq!(p.try_publish(b"x").unwrap_err().kind(), ErrorKind::Full);
        drop(b);
        // b forgotten once the service thread sees its end.
        p.publish_timeout(b"x", HANG_GUARD).unwrap();
        assert_eq!(p.try_publish(b"x").unwrap_err().kind(), ErrorKind::Full);
        let big = vec![0u8; 64 << 10];
        assert_eq!(p.publish(&big).unwrap_err().kind(), ErrorKind::TooLarge);
        drop(p);
        for i in 1..64 {
            assert_eq!(check(&a.recv().unwrap().data), i);
        }
        assert_eq!(a.recv().unwrap().data, b"x");
        assert_eq!(a.recv().unwrap_err().kind(), ErrorKind::Disconnected);
    }
    assert_clean(&s, "t");
}
