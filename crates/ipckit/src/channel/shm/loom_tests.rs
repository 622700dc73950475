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
        if c.release() {
            to_producer.ring();
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

/// Records smaller than the release batch: the consumer releases every
/// other one, at once when the producer parked, and whatever it holds
/// before it looks for more and finds none; ten in a ring of eight make
/// the producer wait for room that only a batched release gives.
#[test]
fn loom_ring_batched_release() {
    exchange(64, &[b"", b"", b"", b"", b"", b"", b"", b"", b"", b""]);
}

/// A small record then one that needs the whole ring: the consumer, finding
/// the ring empty, must release the small one before it parks, or both
/// sides sleep for ever.
#[test]
fn loom_ring_release_before_parking() {
    const WHOLE: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij";
    exchange(64, &[b"", WHOLE]);
}

/// The largest message fills the ring exactly.
#[test]
fn loom_ring_largest_message() {
    const BIG: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij";
    assert_eq!(BIG.len(), max_message(64));
    exchange(64, &[BIG, b"x"]);
}

// The receiver's and the sender's loops over the protocol (the shape of
// `ShmReceiver::next` and `ShmSender::send`), model-checked.

/// A level-triggered readiness flag, as an epoll set over control sockets:
/// `poll` waits until rung and leaves it rung; `drain` clears it.
#[derive(Default)]
struct Level {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Level {
    fn ring(&self) {
        *self.rung.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn poll(&self) {
        let mut rung = self.rung.lock().unwrap();
        while !*rung {
            rung = self.cv.wait(rung).unwrap();
        }
    }
    fn drain(&self) {
        *self.rung.lock().unwrap() = false;
    }
}

/// `ShmReceiver::take`: one round over the rings.
fn take_any(rings: &mut [Consumer<Arc<LoomRing>>]) -> Option<Vec<u8>> {
    for c in rings.iter_mut() {
        if let Some(rec) = c.peek().expect("honest") {
            let mut buf = vec![0u8; rec.len];
            c.read(rec, &mut buf);
            let _ = c.pop(rec); // producers never wait for room here
            return Some(buf);
        }
    }
    None
}

/// `ShmReceiver::arm`.
fn arm(rings: &mut [Consumer<Arc<LoomRing>>]) -> bool {
    let mut sleep = true;
    for c in rings.iter_mut() {
        if !c.park().expect("honest") {
            sleep = false;
        }
    }
    sleep
}

fn disarm(rings: &[Consumer<Arc<LoomRing>>]) {
    for c in rings {
        c.unpark();
    }
}

/// Two producer threads, one message each, ringing `level` when the
/// consumer had parked; the consumers of their rings.
fn two_producers(level: &Arc<Level>) -> (Vec<Consumer<Arc<LoomRing>>>, Vec<thread::JoinHandle<()>>) {
    let mut rings = Vec::new();
    let mut threads = Vec::new();
    for i in 0..2u8 {
        let ring = LoomRing::new(64);
        let mut p = Producer::new(ring.clone());
        rings.push(Consumer::new(ring));
        let level = level.clone();
        threads.push(thread::spawn(move || {
            if let Push::Done { wake: true } = p.try_push(&[IoSlice::new(&[i])], 1, TAG_INLINE).unwrap() {
                level.ring();
            }
        }));
    }
    (rings, threads)
}

/// Two producers, one message each, the receiver's blocking loop
/// (`ShmReceiver::next`, spin 0): take, arm every ring, sleep in "epoll",
/// drain, disarm.
#[test]
fn loom_ring_receiver_blocking_two_rings() {
    check(|| {
        let level = Arc::new(Level::default());
        let (mut rings, threads) = two_producers(&level);
        let mut got = 0;
        while got < 2 {
            if take_any(&mut rings).is_some() {
                got += 1;
                continue;
            }
            if arm(&mut rings) {
                level.poll();
                level.drain();
            }
            disarm(&rings);
        }
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// The `try_recv` + `poll_fd` contract: try_recv (take; drain; take; arm
/// and say Empty, rings left armed), then poll the epoll set until
/// readable, then try again.
#[test]
fn loom_ring_receiver_try_recv_and_poll_fd() {
    check(|| {
        let level = Arc::new(Level::default());
        let (mut rings, threads) = two_producers(&level);
        let try_recv = |rings: &mut Vec<Consumer<Arc<LoomRing>>>| -> Option<Vec<u8>> {
            let mut looked = false;
            loop {
                if let Some(m) = take_any(rings) {
                    return Some(m);
                }
                if looked {
                    if arm(rings) {
                        return None;
                    }
                    disarm(rings);
                    looked = false;
                    continue;
                }
                looked = true;
                level.drain(); // events(Wait::Never)
            }
        };
        let mut got = 0;
        while got < 2 {
            match try_recv(&mut rings) {
                Some(_) => got += 1,
                None => level.poll(),
            }
        }
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// The `try_send` + `poll_fd` contract as sender.rs implements it: Full,
/// take the wake-ups already there, park, report Full; the caller polls
/// the control socket and tries again. The consumer is the blocking
/// receiver. Without the drain, `poll_fd` stays readable and the loop
/// spins (loom: a livelock).
fn try_send_model() {
    check(|| {
        let ring = LoomRing::new(16);
        let to_consumer = Arc::new(Doorbell::default());
        let room = Arc::new(Level::default());
        let mut p = Producer::new(ring.clone());
        let (tc, rm) = (to_consumer.clone(), room.clone());
        let t = thread::spawn(move || {
            for m in [b"12345678", b"abcdefgh", b"ABCDEFGH"] {
                loop {
                    match p.try_push(&[IoSlice::new(m)], 8, TAG_INLINE).unwrap() {
                        Push::Done { wake } => {
                            if wake {
                                tc.ring();
                            }
                            break;
                        }
                        Push::Full => {
                            rm.drain();
                            if p.park(16).unwrap() {
                                rm.poll(); // the user's poll(poll_fd)
                            }
                        }
                    }
                }
            }
        });
        let mut c = Consumer::new(ring);
        for _ in 0..3 {
            loop {
                if let Some(rec) = c.peek().unwrap() {
                    let mut buf = vec![0u8; rec.len];
                    c.read(rec, &mut buf);
                    if c.pop(rec) {
                        room.ring();
                    }
                    break;
                }
                if c.release() {
                    room.ring();
                }
                if c.park().unwrap() {
                    to_consumer.sleep();
                    c.unpark();
                }
            }
        }
        t.join().unwrap();
    });
}

#[test]
fn loom_ring_try_send_and_poll_fd() {
    try_send_model();
}

/// The release ring as the pool runs it (`pool.rs`, `sender.rs`): two
/// samples dropped on two threads give their chunks back through one
/// producer behind a lock (`PeerPool::give_back`), ringing the sender when
/// it had parked; the sender takes back whatever is there, releases the
/// space, and parks until chunks come back (`ShmSender::lend`). Both
/// chunks come back, and nobody sleeps for ever.
#[test]
fn loom_release_ring_two_droppers_and_a_parked_lender() {
    check(|| {
        // One 16-byte record per chunk: two chunks, never full.
        let ring = LoomRing::new(32);
        let producer = Arc::new(Mutex::new(Producer::new(ring.clone())));
        let bell = Arc::new(Doorbell::default());
        let droppers: Vec<_> = [0u32, 1]
            .into_iter()
            .map(|chunk| {
                let (producer, bell) = (producer.clone(), bell.clone());
                thread::spawn(move || {
                    let record = (1u64 << 32 | chunk as u64).to_le_bytes();
                    let pushed =
                        producer.lock().unwrap().try_push(&[IoSlice::new(&record)], 8, super::ring::TAG_RELEASE);
                    match pushed.expect("an honest sender") {
                        Push::Done { wake } => {
                            if wake {
                                bell.ring();
                            }
                        }
                        Push::Full => panic!("the release ring holds a record for every chunk"),
                    }
                })
            })
            .collect();
        let mut lender = Consumer::new(ring);
        let mut back = [false; 2];
        while back != [true; 2] {
            while let Some(rec) = lender.peek().expect("an honest receiver") {
                let mut word = [0u8; 8];
                lender.read(rec, &mut word);
                lender.pop(rec);
                let chunk = u64::from_le_bytes(word) as u32 as usize;
                assert!(!back[chunk], "a chunk given back twice");
                back[chunk] = true;
            }
            lender.release();
            if back != [true; 2] && lender.park().expect("an honest receiver") {
                bell.sleep();
                lender.unpark();
            }
        }
        for d in droppers {
            d.join().unwrap();
        }
    });
}
