//! loom models of the ring protocol (`ring.rs`) over loom's memory: every
//! byte of the data area is a loom cell, so a record read while it is being
//! written is a reported race, and a wake-up the protocol loses leaves a
//! model thread asleep for ever, which loom reports as a deadlock. Run
//! them with the command in `crate::atomic`'s docs.
//!
//! The wake-up is a doorbell that stays rung until the sleeper takes it,
//! as the byte a real side sends over the control socket stays readable.

use std::io::IoSlice;

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU64;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::ring::{Consumer, Producer, Push, RingMemory, TAG_INLINE, max_message};

const DEFAULT_PREEMPTIONS: usize = 3;

fn check(model: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(DEFAULT_PREEMPTIONS);
    builder.check(model);
}

/// A ring in loom's memory.
struct LoomRing {
    tail: AtomicU64,
    head: AtomicU64,
    data: Vec<UnsafeCell<u8>>,
}

impl LoomRing {
    fn new(capacity: usize) -> Arc<LoomRing> {
        Arc::new(LoomRing {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            data: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
        })
    }
}

impl RingMemory for Arc<LoomRing> {
    type Word = AtomicU64;

    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }

    fn head(&self) -> &AtomicU64 {
        &self.head
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }

    fn write(&self, at: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: loom checks that no other thread accesses the cell
            // concurrently (that is what the model tests).
            self.data[at + i].with_mut(|p| unsafe { *p = b });
        }
    }

    fn read(&self, at: usize, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: as in `write`.
            *b = self.data[at + i].with(|p| unsafe { *p });
        }
    }
}

/// A doorbell: `ring` sets it, `sleep` waits for it and takes it.
#[derive(Default)]
struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Doorbell {
    fn ring(&self) {
        *self.rung.lock().unwrap() = true;
        self.cv.notify_one();
    }

    fn sleep(&self) {
        let mut rung = self.rung.lock().unwrap();
        while !*rung {
            rung = self.cv.wait(rung).unwrap();
        }
        *rung = false;
    }
}

/// Sends `msg`, parking (and being woken through `bell_tx`) while full;
/// rings `bell_rx` when the consumer had parked.
fn send(p: &mut Producer<Arc<LoomRing>>, msg: &[u8], to_consumer: &Doorbell, for_room: &Doorbell) {
    loop {
        match p.try_push(&[IoSlice::new(msg)], msg.len(), TAG_INLINE).expect("an honest consumer") {
            Push::Done { wake } => {
                if wake {
                    to_consumer.ring();
                }
                return;
            }
            Push::Full => {
                if p.park(super::ring::record_size(msg.len())).expect("an honest consumer") {
                    for_room.sleep();
                    p.unpark();
                }
            }
        }
    }
}

/// Receives one message, parking while empty.
fn recv(c: &mut Consumer<Arc<LoomRing>>, to_producer: &Doorbell, for_data: &Doorbell) -> Vec<u8> {
    loop {
        if let Some(rec) = c.peek().expect("an honest producer") {
            let mut buf = vec![0u8; rec.len];
            c.read(rec, &mut buf);
            if c.pop(rec) {
                to_producer.ring();
            }
            return buf;
        }
        if c.park().expect("an honest producer") {
            for_data.sleep();
            c.unpark();
        }
    }
}

/// One producer thread sending `msgs`, the consumer receiving them on the
/// model's main thread: each arrives once, whole and in order.
fn exchange(capacity: usize, msgs: &'static [&'static [u8]]) {
    check(move || {
        let ring = LoomRing::new(capacity);
        let to_consumer = Arc::new(Doorbell::default());
        let to_producer = Arc::new(Doorbell::default());
        let mut producer = Producer::new(ring.clone());
        let (tc, tp) = (to_consumer.clone(), to_producer.clone());
        let t = thread::spawn(move || {
            for m in msgs {
                send(&mut producer, m, &tc, &tp);
            }
        });
        let mut consumer = Consumer::new(ring);
        for m in msgs {
            assert_eq!(recv(&mut consumer, &to_producer, &to_consumer), *m);
        }
        t.join().unwrap();
    });
}

/// Publish and consume, with the consumer parking on an empty ring.
#[test]
fn loom_ring_publish_consume() {
    exchange(64, &[b"one", b"two"]);
}

/// A ring that holds one record at a time: the producer parks on a full
/// ring and is woken by the consumer's pop (no lost wake-up either way).
#[test]
fn loom_ring_full_and_empty() {
    // 8-byte header + 8-byte payload: one record fills a 16-byte ring.
    exchange(16, &[b"12345678", b"abcdefgh"]);
}

/// Records that wrap around the end of the ring: the payload is copied in
/// two pieces and comes back whole.
#[test]
fn loom_ring_wrap_around() {
    // 32 bytes: "a"(16) then "wrap-around!"(24) starts at 16 and wraps.
    exchange(32, &[b"a", b"wrap-around!", b"xyz"]);
}

/// The largest message fills the ring exactly.
#[test]
fn loom_ring_largest_message() {
    const BIG: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij";
    assert_eq!(BIG.len(), max_message(64));
    exchange(64, &[BIG, b"x"]);
}
