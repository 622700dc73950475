//! loom models of the topic protocol (`protocol.rs`): one publisher and a
//! subscriber, each parking when it must wait and woken through a doorbell
//! that stays rung until taken (as an eventfd does). A lost wake-up leaves
//! a model thread asleep for ever, which loom reports as a deadlock; a
//! message read torn, twice or out of order fails an assertion. Run them
//! with the command in `crate::atomic`'s docs.
//!
//! The mutation models replace one read-modify-write of the protocol with
//! a load and a plain store, and must fail: they show that the models can
//! see the lost wake-up the RMWs prevent. loom reports a deadlock by
//! aborting the process, so each runs in a child process (this test binary
//! again, the mutant's ignored test alone), which must fail with loom's
//! "deadlock".

use loom::sync::atomic::AtomicU64;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::protocol::{self, CursorMemory, INDEX, PARKED, Reader, TopicMemory, Watch, Writer};
use crate::atomic::{Atomic, Ordering};

const DEFAULT_PREEMPTIONS: usize = 3;

fn check(model: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(DEFAULT_PREEMPTIONS);
    builder.check(model);
}

/// A topic in loom's memory: messages of up to 8 bytes, one atomic word
/// each (a racing copy is the seqlock's business, not a data race).
struct LoomTopic {
    head: AtomicU64,
    seq: Vec<AtomicU64>,
    len: Vec<AtomicU64>,
    data: Vec<AtomicU64>,
    published: AtomicU64,
    cursor: AtomicU64,
}

impl LoomTopic {
    fn new(slots: usize) -> Arc<LoomTopic> {
        let words = || (0..slots).map(|_| AtomicU64::new(0)).collect();
        Arc::new(LoomTopic {
            head: AtomicU64::new(0),
            seq: words(),
            len: words(),
            data: words(),
            published: AtomicU64::new(0),
            cursor: AtomicU64::new(0),
        })
    }
}

impl TopicMemory for Arc<LoomTopic> {
    type Word = AtomicU64;
    fn head(&self) -> &AtomicU64 {
        &self.head
    }
    fn slots(&self) -> usize {
        self.seq.len()
    }
    fn max_message(&self) -> usize {
        8
    }
    fn seq(&self, slot: usize) -> &AtomicU64 {
        &self.seq[slot]
    }
    fn len(&self, slot: usize) -> &AtomicU64 {
        &self.len[slot]
    }
    fn write(&self, slot: usize, data: &[u8]) {
        let mut word = [0u8; 8];
        word[..data.len()].copy_from_slice(data);
        self.data[slot].store(u64::from_le_bytes(word), Ordering::Relaxed);
    }
    fn read(&self, slot: usize, buf: &mut [u8]) {
        let word = self.data[slot].load(Ordering::Relaxed).to_le_bytes();
        buf.copy_from_slice(&word[..buf.len()]);
    }
    fn fence(order: Ordering) {
        loom::sync::atomic::fence(order)
    }
}

impl CursorMemory for Arc<LoomTopic> {
    type Word = AtomicU64;
    fn published(&self) -> &AtomicU64 {
        &self.published
    }
    fn cursor(&self) -> &AtomicU64 {
        &self.cursor
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

/// How the subscriber announces that it sleeps (the real one, or a
/// mutation).
type SubPark = fn(&Reader, &Arc<LoomTopic>) -> bool;
/// How the publisher tells the subscriber of a message.
type Announce = fn(&Arc<LoomTopic>, u64) -> bool;

fn real_park(r: &Reader, t: &Arc<LoomTopic>) -> bool {
    r.park(t, t)
}

fn real_announce(t: &Arc<LoomTopic>, head: u64) -> bool {
    protocol::announce(t, head)
}

/// The publisher's loop under `overflow=block` (`ShmPublisher::publish`,
/// spin 0): room, else park on the cursor and sleep; write; announce.
fn publisher(t: &Arc<LoomTopic>, msgs: &[u8], announce: Announce, to_sub: &Doorbell, for_room: &Doorbell) {
    let mut w = Writer::new();
    let mut watch = Watch::new(0);
    for &m in msgs {
        let h = w.head();
        loop {
            watch.load(t, h).expect("an honest subscriber");
            if watch.has_room(h, t.slots()) {
                break;
            }
            if watch.park(t, h, t.slots()).expect("an honest subscriber") {
                for_room.sleep();
                Watch::unpark(t);
            }
        }
        w.write(t, &[m]);
        if announce(t, h + 1) {
            to_sub.ring();
        }
    }
}

/// The subscriber's loop (`ShmSubscriber::recv`, spin 0): read, tell the
/// publisher, else park on `published` and sleep.
fn subscriber(t: &Arc<LoomTopic>, n: usize, park: SubPark, for_msg: &Doorbell, to_pub: &Doorbell) -> Vec<u8> {
    let mut r = Reader::new(0, 0);
    let mut got = Vec::new();
    let mut buf = Vec::new();
    while got.len() < n {
        match r.read(t, &mut buf).expect("an honest publisher") {
            Some(lost) => {
                assert_eq!(lost, 0, "nothing is lost under block");
                got.push(buf[0]);
                if r.progress(t) {
                    to_pub.ring();
                }
            }
            None => {
                if park(&r, t) {
                    for_msg.sleep();
                    Reader::unpark(t);
                }
            }
        }
    }
    got
}

fn exchange(slots: usize, msgs: &'static [u8], park: SubPark, announce: Announce) {
    check(move || {
        let t = LoomTopic::new(slots);
        let to_sub = Arc::new(Doorbell::default());
        let to_pub = Arc::new(Doorbell::default());
        let (tp, ts, tpub) = (t.clone(), to_sub.clone(), to_pub.clone());
        let p = thread::spawn(move || publisher(&tp, msgs, announce, &ts, &tpub));
        let got = subscriber(&t, msgs.len(), park, &to_sub, &to_pub);
        assert_eq!(got, msgs, "every message once, in order");
        p.join().unwrap();
    });
}

/// The subscriber sleeps for messages and is woken: no lost wake-up.
#[test]
fn loom_topic_subscriber_parks() {
    exchange(2, &[1, 2], real_park, real_announce);
}

/// One slot: the publisher waits for the subscriber before every message
/// but the first, the subscriber for the publisher: both directions.
#[test]
fn loom_topic_both_park_one_slot() {
    exchange(1, &[1, 2, 3], real_park, real_announce);
}

/// Under drop-oldest the publisher never waits: a subscriber reads each
/// message or counts it lost, exactly (received + lost = published), and
/// never a torn one.
#[test]
fn loom_topic_drop_oldest_counts_exactly() {
    check(|| {
        let t = LoomTopic::new(1);
        let tp = t.clone();
        let p = thread::spawn(move || {
            let mut w = Writer::new();
            for m in [1u8, 2, 3] {
                w.write(&tp, &[m]);
                protocol::announce(&tp, w.head());
            }
        });
        let mut r = Reader::new(0, 0);
        let (mut seen, mut buf, mut last) = (0u64, Vec::new(), 0u8);
        while seen < 3 {
            match r.read(&t, &mut buf).expect("an honest publisher") {
                Some(lost) => {
                    seen += lost + 1;
                    assert_eq!(u64::from(buf[0]), seen, "the message after {lost} lost is the right one");
                    assert!(buf[0] > last);
                    last = buf[0];
                }
                None => thread::yield_now(),
            }
        }
        assert_eq!(r.next(), 3);
        p.join().unwrap();
    });
}

/// Runs the ignored test `mutant` in a child process: it must fail, with
/// loom's report of a deadlock (a lost wake-up).
fn expect_caught(mutant: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([mutant, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the mutant {mutant} passed: the model does not see the lost wake-up");
    assert!(stderr.contains("deadlock"), "the mutant {mutant} failed for another reason: {stderr}");
}

#[test]
fn loom_topic_mutations_are_caught() {
    expect_caught("pubsub::shm::loom_tests::mutant_subscriber_plain_store");
    expect_caught("pubsub::shm::loom_tests::mutant_publisher_plain_store");
}

/// Mutation: the subscriber announces with a load and a plain store
/// instead of `fetch_or`. The publisher's swap can fall between the two
/// and miss the announcement: the subscriber sleeps for ever.
#[test]
#[ignore = "a mutant: run by loom_topic_mutations_are_caught"]
fn mutant_subscriber_plain_store() {
    fn park(r: &Reader, t: &Arc<LoomTopic>) -> bool {
        let old = t.published.load(Ordering::Acquire);
        t.published.store(old | PARKED, Ordering::Release);
        if r.ready(t) {
            Reader::unpark(t);
            return false;
        }
        true
    }
    exchange(2, &[1, 2], park, real_announce);
}

/// Mutation: the publisher tells the subscriber with a load of the parked
/// bit and a plain store instead of `swap`: an announcement between the
/// two is overwritten and never answered.
#[test]
#[ignore = "a mutant: run by loom_topic_mutations_are_caught"]
fn mutant_publisher_plain_store() {
    fn announce(t: &Arc<LoomTopic>, head: u64) -> bool {
        let old = t.published.load(Ordering::Acquire);
        t.published.store(head & INDEX, Ordering::Release);
        old & PARKED != 0
    }
    exchange(2, &[1, 2], real_park, announce);
}
