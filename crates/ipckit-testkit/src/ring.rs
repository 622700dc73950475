//! The invariants of the `shm:` ring protocol against a hostile peer,
//! checked on one input: the consumer (what the receiver runs on each
//! sender's ring) against a producer that writes anything into the ring,
//! and the producer (what a sender runs) against a consumer that does.
//!
//! Shared by the `shm_ring` fuzz target (`fuzz/`) and by the deterministic
//! smoke test `crates/ipckit/tests/ring_smoke.rs`, so that a stable
//! `cargo test` compiles and runs it. The ring is `ipckit::fuzzing::Ring`,
//! ordinary memory behind the protocol's memory trait, so a run takes
//! microseconds and needs no mapping.
//!
//! # Input
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | bits 0-3: the capacity, `16 << (n % 9)` (16 B to 4 KiB); bit 4: the side under test (0: consumer, 1: producer) |
//! | 1.. | a script: steps, each an opcode byte and its operands (little-endian; missing bytes read as 0) |
//!
//! Consumer side, opcode `% 16` (the peer is the producer):
//!
//! | op | step | operands |
//! | --- | --- | --- |
//! | 0 | peer publishes a message honestly (if there is room) | `len: u16` |
//! | 1 | the same with a tag | `len: u16, tag: u32` |
//! | 2 | peer stores a `tail` word | `kind: u8, value: u64` (raw, relative, near 2^63, near the consumer, near `u64::MAX`, `PARKED` flipped) |
//! | 3 | peer writes bytes into the data area | `at: u16, n: u8, n bytes` |
//! | 4 | peer writes a header at the consumer's or its own position | `where: u8, kind: u8, len: u32, tag: u8` |
//! | 5 | peer sets, clears (honest) or overwrites (hostile) `head` | `kind: u8, value: u64` |
//! | 6, 7, 8 | `peek`; `read` (the last record peeked); `pop` (it) | |
//! | 9 | the receiver's `recv_into` with a buffer of `z % (capacity + 1)` bytes | `z: u16` |
//! | 10 | the receiver's `recv` with a maximum (`0xffff`: none) | `max: u16` |
//! | 11, 12 | `park`; `unpark` | |
//! | 13 | receive until the ring is empty | |
//! | 14 | arm a peer step (ops 0-5, 15; others `% 6`) to run before the consumer's data access number `after % 4` | `after: u8`, then the step |
//! | 15 | peer publishes up to 15 messages | `n: u8, len: u8` |
//!
//! Producer side, opcode `% 12` (the peer is the consumer):
//!
//! | op | step | operands |
//! | --- | --- | --- |
//! | 0 | `try_push` of a message in 1-3 parts | `len: u16, split: u8` |
//! | 1 | the same with a tag | `len: u16, split: u8, tag: u32` |
//! | 2, 3, 4 | `room(need)`; `park(need)`; `unpark` | `need: u16` (not for 4) |
//! | 5, 6 | peer consumes one record; all of them (honestly) | |
//! | 7 | peer stores a `head` word | `kind: u8, value: u64` (raw, relative, near 2^63, ahead of `tail`, backwards, near `u64::MAX`, `PARKED`, a skip) |
//! | 8 | peer sets, clears (honest) or overwrites (hostile) `tail` | `kind: u8, value: u64` |
//! | 9 | peer writes bytes into the data area | `at: u16, n: u8, n bytes` |
//! | 10 | arm a peer step (op `5 + n % 4`: 5-8) before the producer's data access number `after % 4` | `after: u8`, then the step |
//! | 11 | up to 15 `try_push`es | `n: u8, len: u8` |
//!
//! # Checked
//!
//! Against any peer, whatever it writes and whenever (between calls, or in
//! the middle of one):
//! - no panic (an out-of-bounds copy panics in the ring memory), no
//!   arithmetic overflow (in a debug build), and a bounded run: the work
//!   is bounded by the input, and a receive loop by the published bytes;
//! - consumer: a record is at most `capacity - 8` bytes and lies within
//!   bytes the peer published; its header is the bytes at the consumer's
//!   index and its payload the bytes after it; `read` writes nothing past
//!   the record; `pop` stores exactly the old index plus the record (the
//!   index only grows, and is never read back from the peer's scribbles)
//!   and reports a parked producer; `peek` says empty only when `tail` is
//!   the consumer's index; `park` sleeps only then, and leaves `PARKED`
//!   set exactly when it sleeps; records received never outnumber the
//!   published bytes / 8; the receiver's allocation is within the capacity
//!   and its maximum;
//! - producer: a push publishes exactly its record (header and payload at
//!   its index, `tail` advanced by the record, `PARKED` cleared and
//!   reported) and never past bytes the consumer released; `Full`,
//!   `room` and `park` agree with the free space the consumer left;
//!   nothing is published on `Full` or an error;
//! - `Corrupt` is a one-line message, and only a hostile peer causes it;
//!   after it the side is dropped (the run stops), as the channel does.
//!
//! Against an honest peer (also one acting in the middle of a call): every
//! message arrives whole and in order, and nothing is left at the end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipckit::fuzzing::{
    Consumer, HEADER, INDEX, PARKED, Producer, Push, Record, Ring, TAG_INLINE, max_message, record_size,
};

use crate::data::Rng;

/// What a run did (or runs, added up), for a smoke test to see that its
/// inputs reach every path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Steps run.
    pub steps: usize,
    /// Records received (consumer) or published (producer).
    pub records: usize,
    /// Runs that ended with `Corrupt`.
    pub corrupt: usize,
    /// Runs that ended with a record of an unknown tag (the receiver drops
    /// the ring).
    pub unknown_tag: usize,
    /// The peer's armed steps that ran in the middle of a call.
    pub fired: usize,
    /// `Full`, or `room` saying no.
    pub full: usize,
    /// Wake-ups a side reported (a `pop` or a push that found the other
    /// side parked).
    pub wakes: usize,
    /// `park` said to sleep.
    pub sleeps: usize,
    /// The receiver's `TooLarge` (a message over the buffer or maximum).
    pub too_large: usize,
    /// Runs whose peer stayed honest to the end.
    pub honest: usize,
}

impl Stats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Stats) {
        self.steps += other.steps;
        self.records += other.records;
        self.corrupt += other.corrupt;
        self.unknown_tag += other.unknown_tag;
        self.fired += other.fired;
        self.full += other.full;
        self.wakes += other.wakes;
        self.sleeps += other.sleeps;
        self.too_large += other.too_large;
        self.honest += other.honest;
    }
}

/// Checks every invariant on one fuzz input; what the run did.
pub fn check(input: &[u8]) -> Stats {
    let Some((&config, script)) = input.split_first() else {
        return Stats::default();
    };
    let capacity = 16usize << ((config & 0x0f) % 9);
    let script = Script { data: script, pos: 0 };
    if config & 0x10 == 0 { ConsumerRun::new(capacity, script).run() } else { ProducerRun::new(capacity, script).run() }
}

/// The operands of a step, read from the input; 0 past its end.
struct Script<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Script<'_> {
    fn op(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += 1;
        b
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.data.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
        }
        out
    }

    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }

    fn vec(&mut self, n: usize) -> Vec<u8> {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        let mut v = self.data[start..end].to_vec();
        v.resize(n, 0);
        v
    }
}

fn header(len: u32, tag: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&len.to_le_bytes());
    h[4..].copy_from_slice(&tag.to_le_bytes());
    h
}

/// The payload of the `seq`-th message: different for every message and
/// every byte, so that a misplaced copy shows.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq.wrapping_mul(131) ^ (i as u64).wrapping_mul(7) ^ (i as u64 >> 8)) as u8).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `Corrupt` is a one-line message, and only a hostile peer causes it.
fn check_corrupt(why: &str, hostile: bool, call: &str) {
    assert!(hostile, "{call}: Corrupt though the peer was honest: {why}");
    assert!(!why.is_empty() && !why.contains('\n'), "{call}: the Corrupt message is not one line: {why:?}");
}

// ---------------------------------------------------------------------------
// The consumer against a hostile producer.

/// A step of the producer the consumer is up against.
#[derive(Clone, Debug)]
enum ProducerStep {
    Publish { len: u16, tag: u32 },
    Burst { n: u8, len: u8 },
    Tail { kind: u8, value: u64 },
    Write { at: u16, bytes: Vec<u8> },
    Header { at_consumer: bool, kind: u8, len: u32, tag: u8 },
    Head { kind: u8, value: u64 },
}

impl ProducerStep {
    /// Reads the step `op` (0-5, 15) from the script.
    fn parse(op: u8, s: &mut Script<'_>) -> ProducerStep {
        match op {
            0 => ProducerStep::Publish { len: s.u16(), tag: TAG_INLINE },
            1 => ProducerStep::Publish { len: s.u16(), tag: s.u32() },
            2 => ProducerStep::Tail { kind: s.u8(), value: s.u64() },
            3 => {
                let at = s.u16();
                let n = usize::from(s.u8() % 64);
                ProducerStep::Write { at, bytes: s.vec(n) }
            }
            4 => {
                let at_consumer = s.u8() & 1 == 0;
                ProducerStep::Header { at_consumer, kind: s.u8(), len: s.u32(), tag: s.u8() }
            }
            5 => ProducerStep::Head { kind: s.u8(), value: s.u64() },
            _ => ProducerStep::Burst { n: s.u8(), len: s.u8() },
        }
    }
}

/// The state the peer's steps and the checks share (armed steps run in the
/// middle of a consumer call, so it is behind a lock).
#[derive(Debug)]
struct ConsumerWorld {
    capacity: usize,
    /// The peer did something an honest producer does not.
    hostile: bool,
    /// Messages published so far.
    seq: u64,
    /// Messages published and not yet received, oldest first (meaningful
    /// while the peer is honest).
    queue: VecDeque<(u32, Vec<u8>)>,
    /// The largest index `tail` ever held.
    max_published: u64,
    /// The consumer's index, as the model has it.
    head: u64,
    /// Armed steps that ran.
    fired: usize,
}

impl ConsumerWorld {
    fn set_tail(&mut self, ring: &Ring, word: u64) {
        self.max_published = self.max_published.max(word & INDEX);
        ring.set_tail(word);
    }

    /// An honest producer's publication, if there is room after what the
    /// consumer released.
    fn publish(&mut self, ring: &Ring, len: usize, tag: u32) {
        let cap = self.capacity as u64;
        let len = len % (max_message(self.capacity) + 1);
        let tail = ring.tail() & INDEX;
        let head = ring.head() & INDEX;
        if head > tail || tail - head > cap || cap - (tail - head) < record_size(len) as u64 {
            return;
        }
        let data = payload(self.seq, len);
        self.seq += 1;
        ring.write_at(tail, &header(len as u32, tag));
        ring.write_at(tail + HEADER as u64, &data);
        // A swap, as the producer's: it clears the consumer's `PARKED`.
        self.set_tail(ring, tail + record_size(len) as u64);
        self.queue.push_back((tag, data));
    }

    fn act(&mut self, ring: &Ring, step: &ProducerStep) {
        let cap = self.capacity as u64;
        match *step {
            ProducerStep::Publish { len, tag } => self.publish(ring, len.into(), tag),
            ProducerStep::Burst { n, len } => {
                for _ in 0..n % 16 {
                    self.publish(ring, len.into(), TAG_INLINE);
                }
            }
            ProducerStep::Tail { kind, value } => {
                self.hostile = true;
                let now = ring.tail();
                let word = match kind % 6 {
                    0 => value,
                    1 => (now & INDEX).wrapping_add(value as i16 as i64 as u64),
                    2 => INDEX - value % 64,
                    3 => self.head.wrapping_add(value % (2 * cap + 1)),
                    4 => u64::MAX - value % 64,
                    _ => now ^ PARKED,
                };
                self.set_tail(ring, word);
            }
            ProducerStep::Write { at, ref bytes } => {
                self.hostile = true;
                ring.write_at(at.into(), bytes);
            }
            ProducerStep::Header { at_consumer, kind, len, tag } => {
                self.hostile = true;
                let at = if at_consumer { self.head } else { ring.tail() & INDEX };
                let max = max_message(self.capacity) as u32;
                let len = match kind % 4 {
                    0 => len,
                    1 => len % (self.capacity as u32 + 16),
                    2 => (max + len % 3).wrapping_sub(1),
                    _ => u32::MAX - len % 4,
                };
                let tag = if tag == 0 { TAG_INLINE } else { u32::from(tag) };
                ring.write_at(at, &header(len, tag));
            }
            ProducerStep::Head { kind, value } => match kind % 3 {
                // What a producer does when it parks and wakes.
                0 => ring.set_head(ring.head() | PARKED),
                1 => ring.set_head(ring.head() & INDEX),
                _ => {
                    self.hostile = true;
                    ring.set_head(value);
                }
            },
        }
    }
}

/// Why a consumer run stops early: the receiver drops the ring.
struct Dropped;

struct ConsumerRun<'a> {
    ring: Ring,
    world: Arc<Mutex<ConsumerWorld>>,
    consumer: Consumer,
    /// The record the last `peek` returned, not yet popped.
    peeked: Option<Record>,
    script: Script<'a>,
    stats: Stats,
}

impl<'a> ConsumerRun<'a> {
    fn new(capacity: usize, script: Script<'a>) -> ConsumerRun<'a> {
        let ring = Ring::new(capacity);
        let world = ConsumerWorld {
            capacity,
            hostile: false,
            seq: 0,
            queue: VecDeque::new(),
            max_published: 0,
            head: 0,
            fired: 0,
        };
        let consumer = Consumer::new(&ring);
        ConsumerRun {
            ring,
            world: Arc::new(Mutex::new(world)),
            consumer,
            peeked: None,
            script,
            stats: Stats::default(),
        }
    }

    fn world(&self) -> MutexGuard<'_, ConsumerWorld> {
        lock(&self.world)
    }

    fn run(mut self) -> Stats {
        if self.steps().is_err() {
            return self.finish();
        }
        // An honest peer's messages all arrive, and nothing else (unless
        // an armed step, run in this last drain, turned the peer hostile).
        if !self.world().hostile {
            self.peeked = None;
            if self.drain().is_ok() && !self.world().hostile {
                let w = self.world();
                assert!(w.queue.is_empty(), "{} honest messages were published and not received", w.queue.len());
                assert_eq!(self.ring.tail() & INDEX, w.head, "the consumer stopped before what was published");
            }
        }
        self.finish()
    }

    fn finish(mut self) -> Stats {
        let w = lock(&self.world);
        self.stats.fired = w.fired;
        self.stats.honest = usize::from(!w.hostile);
        self.stats
    }

    fn steps(&mut self) -> Result<(), Dropped> {
        let cap = self.ring.capacity();
        while let Some(op) = self.script.op() {
            self.stats.steps += 1;
            match op % 16 {
                op @ (0..=5 | 15) => {
                    let step = ProducerStep::parse(op, &mut self.script);
                    let ring = self.ring.clone();
                    self.world().act(&ring, &step);
                }
                6 => {
                    self.peeked = self.peek()?;
                }
                7 => {
                    if let Some(r) = self.peeked {
                        let mut buf = vec![0xa5; r.len];
                        self.read(r, &mut buf);
                    }
                }
                8 => {
                    if let Some(r) = self.peeked.take() {
                        self.pop(r);
                    }
                }
                9 => {
                    let z = usize::from(self.script.u16()) % (cap + 1);
                    self.recv_into(z)?;
                }
                10 => {
                    let max = match self.script.u16() {
                        u16::MAX => usize::MAX,
                        m => usize::from(m),
                    };
                    self.recv(max)?;
                }
                11 => self.park()?,
                12 => {
                    let before = self.ring.tail();
                    self.consumer.unpark();
                    assert_eq!(self.ring.tail(), before & INDEX, "unpark changed more than PARKED");
                }
                13 => {
                    self.peeked = None;
                    self.drain()?;
                }
                _ => {
                    let after = usize::from(self.script.u8() % 4);
                    let op = match self.script.u8() % 16 {
                        op @ (0..=5 | 15) => op,
                        op => op % 6,
                    };
                    let step = ProducerStep::parse(op, &mut self.script);
                    let world = self.world.clone();
                    self.ring.on_access(after, move |ring| {
                        let mut w = lock(&world);
                        w.fired += 1;
                        w.act(ring, &step);
                    });
                }
            }
        }
        Ok(())
    }

    fn fired(&self) -> usize {
        self.world().fired
    }

    /// `peek`, checked.
    fn peek(&mut self) -> Result<Option<Record>, Dropped> {
        let fired = self.fired();
        let got = self.consumer.peek();
        let fired = self.fired() != fired;
        let w = self.world();
        let cap = self.ring.capacity();
        match got {
            Err(why) => {
                check_corrupt(&why, w.hostile, "peek");
                drop(w);
                self.stats.corrupt = 1;
                Err(Dropped)
            }
            Ok(None) => {
                assert!(!fired, "peek found nothing, without reading a header");
                assert_eq!(
                    self.ring.tail() & INDEX,
                    w.head,
                    "peek found nothing, but tail is not the consumer's index"
                );
                Ok(None)
            }
            Ok(Some(r)) => {
                assert!(r.len <= max_message(cap), "a record of {} bytes in a {cap}-byte ring", r.len);
                let end = w.head + record_size(r.len) as u64;
                assert!(
                    end <= w.max_published,
                    "a record of {} bytes at {} ends past every index published ({})",
                    r.len,
                    w.head,
                    w.max_published
                );
                if !fired {
                    let at = self.ring.read_at(w.head, HEADER);
                    assert_eq!(
                        at,
                        header(r.len as u32, r.tag),
                        "peek returned another header than the one at its index"
                    );
                }
                if !w.hostile {
                    let (tag, data) = w.queue.front().expect("an honest peer published this record");
                    assert_eq!((r.len, r.tag), (data.len(), *tag), "peek returned another record than published");
                }
                Ok(Some(r))
            }
        }
    }

    /// `read` into `buf` (at least `r.len` bytes), checked.
    fn read(&mut self, r: Record, buf: &mut [u8]) {
        let spare = buf[r.len..].to_vec();
        let fired = self.fired();
        self.consumer.read(r, buf);
        let fired = self.fired() != fired;
        assert_eq!(&buf[r.len..], &spare[..], "read wrote past the record");
        let w = self.world();
        if !fired {
            let at = self.ring.read_at(w.head + HEADER as u64, r.len);
            assert!(buf[..r.len] == at[..], "read copied other bytes than the record's at the consumer's index");
        }
        if !w.hostile {
            let (_, data) = w.queue.front().expect("an honest peer published this record");
            assert!(buf[..r.len] == data[..], "an honest message arrived changed");
        }
    }

    /// `pop`, checked.
    fn pop(&mut self, r: Record) {
        let before = self.ring.head();
        let wake = self.consumer.pop(r);
        let mut w = self.world();
        w.head += record_size(r.len) as u64;
        assert_eq!(self.ring.head(), w.head, "pop stored another index than its own plus the record");
        assert_eq!(wake, before & PARKED != 0, "pop misreported the producer's PARKED");
        assert!(w.head <= w.max_published, "the consumer consumed past what was published");
        if !w.hostile {
            w.queue.pop_front();
        }
        drop(w);
        self.stats.records += 1;
        self.stats.wakes += usize::from(wake);
        assert!(
            self.stats.records as u64 * 8 <= self.world().max_published,
            "{} records out of {} published bytes",
            self.stats.records,
            self.world().max_published
        );
    }

    /// The receiver's turn at the ring: the record, if its tag is known.
    fn take(&mut self) -> Result<Option<Record>, Dropped> {
        match self.peek()? {
            Some(r) if r.tag != TAG_INLINE => {
                self.stats.unknown_tag = 1;
                Err(Dropped)
            }
            got => Ok(got),
        }
    }

    /// The receiver's `recv_into` with a `z`-byte buffer.
    fn recv_into(&mut self, z: usize) -> Result<(), Dropped> {
        self.peeked = None;
        let Some(r) = self.take()? else { return Ok(()) };
        if r.len > z {
            // TooLarge; the message stays queued.
            self.stats.too_large += 1;
            self.peeked = Some(r);
            return Ok(());
        }
        let mut buf = vec![0xa5; z];
        self.read(r, &mut buf);
        self.pop(r);
        Ok(())
    }

    /// The receiver's `recv` with a maximum; the message's length.
    fn recv(&mut self, max: usize) -> Result<Option<usize>, Dropped> {
        self.peeked = None;
        let Some(r) = self.take()? else { return Ok(None) };
        if r.len > max {
            // TooLarge; the message is dropped.
            self.stats.too_large += 1;
            self.pop(r);
            return Ok(Some(r.len));
        }
        // The receiver allocates the message's size: bounded by the ring
        // and by the maximum, never by what the peer announces beyond them.
        assert!(r.len <= max_message(self.ring.capacity()) && r.len <= max);
        let mut data = vec![0u8; r.len];
        self.read(r, &mut data);
        self.pop(r);
        Ok(Some(r.len))
    }

    /// Receives until the ring is empty, as a receiver does when messages
    /// keep coming: it ends.
    fn drain(&mut self) -> Result<(), Dropped> {
        // Every record is 8 bytes or more, at most a ring's worth is
        // published at a time, and an armed step adds at most one record.
        let limit = 2 * self.ring.capacity() / 8 + 2;
        for _ in 0..limit {
            if self.recv(usize::MAX)?.is_none() {
                return Ok(());
            }
        }
        panic!("the consumer received {limit} records without emptying a {}-byte ring", self.ring.capacity());
    }

    /// `park`, checked: sleeps exactly when nothing is published.
    fn park(&mut self) -> Result<(), Dropped> {
        let before = self.ring.tail();
        let got = self.consumer.park();
        let head = self.world().head;
        match got {
            Err(why) => {
                check_corrupt(&why, self.world().hostile, "park");
                self.stats.corrupt = 1;
                return Err(Dropped);
            }
            Ok(true) => {
                assert_eq!(before & INDEX, head, "park sleeps though tail says more was published");
                assert_eq!(self.ring.tail(), before | PARKED, "park sleeps without PARKED set on tail");
                self.stats.sleeps += 1;
            }
            Ok(false) => {
                assert_ne!(before & INDEX, head, "park does not sleep, though nothing was published");
                assert_eq!(self.ring.tail(), before & INDEX, "park did not withdraw PARKED");
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The producer against a hostile consumer.

/// A step of the consumer the producer is up against.
#[derive(Clone, Debug)]
enum ConsumerStep {
    Consume { all: bool },
    Head { kind: u8, value: u64 },
    Tail { kind: u8, value: u64 },
    Write { at: u16, bytes: Vec<u8> },
}

impl ConsumerStep {
    /// Reads the step `op` (5-9) from the script.
    fn parse(op: u8, s: &mut Script<'_>) -> ConsumerStep {
        match op {
            5 | 6 => ConsumerStep::Consume { all: op == 6 },
            7 => ConsumerStep::Head { kind: s.u8(), value: s.u64() },
            8 => ConsumerStep::Tail { kind: s.u8(), value: s.u64() },
            _ => {
                let at = s.u16();
                let n = usize::from(s.u8() % 64);
                ConsumerStep::Write { at, bytes: s.vec(n) }
            }
        }
    }
}

#[derive(Debug)]
struct ProducerWorld {
    capacity: usize,
    hostile: bool,
    /// The producer's index, as the model has it.
    tail: u64,
    /// The honest consumer's index.
    head: u64,
    /// The largest index `head` held while it was not past `tail`: no
    /// byte past it plus the capacity may be written.
    released: u64,
    /// Records published and not consumed, oldest first.
    queue: VecDeque<(u32, Vec<u8>)>,
    fired: usize,
}

impl ProducerWorld {
    fn set_head(&mut self, ring: &Ring, word: u64) {
        if word & INDEX <= self.tail {
            self.released = self.released.max(word & INDEX);
        }
        ring.set_head(word);
    }

    /// Notes the index `head` holds now (before and after every call).
    fn note_head(&mut self, ring: &Ring) {
        let h = ring.head() & INDEX;
        if h <= self.tail {
            self.released = self.released.max(h);
        }
    }

    /// An honest consumer takes the oldest record: checks it and releases
    /// it (a swap, as the consumer's: it clears the producer's `PARKED`).
    fn consume(&mut self, ring: &Ring) -> bool {
        let Some((tag, data)) = self.queue.pop_front() else { return false };
        if !self.hostile {
            let at = self.head;
            assert_eq!(ring.read_at(at, HEADER), header(data.len() as u32, tag), "a pushed header is not in the ring");
            assert!(ring.read_at(at + HEADER as u64, data.len()) == data, "a pushed payload is not in the ring");
        }
        self.head += record_size(data.len()) as u64;
        let head = self.head;
        self.set_head(ring, head);
        true
    }

    fn act(&mut self, ring: &Ring, step: &ConsumerStep) {
        let cap = self.capacity as u64;
        match *step {
            ConsumerStep::Consume { all } => while self.consume(ring) && all {},
            ConsumerStep::Head { kind, value } => {
                self.hostile = true;
                let word = match kind % 8 {
                    0 => value,
                    1 => self.head.wrapping_add(value as i16 as i64 as u64),
                    2 => INDEX - value % 64,
                    3 => self.tail + 8 * (value % 8 + 1),
                    4 => self.head.wrapping_sub(8 * (value % 4 + 1)),
                    5 => u64::MAX - value % 64,
                    6 => ring.head() | PARKED,
                    // Skips records, staying within what was published.
                    _ => self.head + (value % (cap / 8 + 1)) * 8,
                };
                self.set_head(ring, word);
            }
            ConsumerStep::Tail { kind, value } => match kind % 3 {
                // What a consumer does when it parks and wakes.
                0 => ring.set_tail(ring.tail() | PARKED),
                1 => ring.set_tail(ring.tail() & INDEX),
                _ => {
                    self.hostile = true;
                    ring.set_tail(value);
                }
            },
            ConsumerStep::Write { at, ref bytes } => {
                self.hostile = true;
                ring.write_at(at.into(), bytes);
            }
        }
    }

    /// The free bytes by the index `head` holds now, if the producer would
    /// accept it.
    fn free_now(&self, ring: &Ring) -> Option<u64> {
        let h = ring.head() & INDEX;
        let cap = self.capacity as u64;
        (h <= self.tail && self.tail - h <= cap && h % 8 == 0).then(|| cap - (self.tail - h))
    }
}

struct ProducerRun<'a> {
    ring: Ring,
    world: Arc<Mutex<ProducerWorld>>,
    producer: Producer,
    script: Script<'a>,
    stats: Stats,
    seq: u64,
}

impl<'a> ProducerRun<'a> {
    fn new(capacity: usize, script: Script<'a>) -> ProducerRun<'a> {
        let ring = Ring::new(capacity);
        let world =
            ProducerWorld { capacity, hostile: false, tail: 0, head: 0, released: 0, queue: VecDeque::new(), fired: 0 };
        let producer = Producer::new(&ring);
        ProducerRun { ring, world: Arc::new(Mutex::new(world)), producer, script, stats: Stats::default(), seq: 0 }
    }

    fn world(&self) -> MutexGuard<'_, ProducerWorld> {
        lock(&self.world)
    }

    fn run(mut self) -> Stats {
        let ok = self.steps().is_ok();
        if ok && !self.world().hostile {
            // An honest consumer takes everything; then the whole ring is
            // free again.
            let ring = self.ring.clone();
            self.world().act(&ring, &ConsumerStep::Consume { all: true });
            let cap = self.ring.capacity();
            assert_eq!(self.producer.room(cap), Ok(true), "an emptied ring has no room for {cap} bytes");
        }
        let w = lock(&self.world);
        self.stats.fired = w.fired;
        self.stats.honest = usize::from(!w.hostile);
        drop(w);
        self.stats
    }

    fn steps(&mut self) -> Result<(), Dropped> {
        let cap = self.ring.capacity();
        while let Some(op) = self.script.op() {
            self.stats.steps += 1;
            match op % 12 {
                0 => {
                    let (len, split) = (self.script.u16(), self.script.u8());
                    self.push(len.into(), split, TAG_INLINE)?;
                }
                1 => {
                    let (len, split, tag) = (self.script.u16(), self.script.u8(), self.script.u32());
                    self.push(len.into(), split, tag)?;
                }
                2 => {
                    let need = usize::from(self.script.u16()) % (cap + 1);
                    self.room(need)?;
                }
                3 => {
                    let need = usize::from(self.script.u16()) % (cap + 1);
                    self.park(need)?;
                }
                4 => {
                    let before = self.ring.head();
                    self.producer.unpark();
                    assert_eq!(self.ring.head(), before & INDEX, "unpark changed more than PARKED");
                }
                op @ 5..=9 => {
                    let step = ConsumerStep::parse(op, &mut self.script);
                    let ring = self.ring.clone();
                    self.world().act(&ring, &step);
                }
                10 => {
                    let after = usize::from(self.script.u8() % 4);
                    let op = self.script.u8() % 4 + 5;
                    let step = ConsumerStep::parse(op, &mut self.script);
                    let world = self.world.clone();
                    self.ring.on_access(after, move |ring| {
                        let mut w = lock(&world);
                        w.fired += 1;
                        w.act(ring, &step);
                    });
                }
                _ => {
                    let (n, len) = (self.script.u8(), self.script.u8());
                    for _ in 0..n % 16 {
                        self.push(len.into(), 0, TAG_INLINE)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn fired(&self) -> usize {
        self.world().fired
    }

    /// After `Corrupt`: checked, and nothing was published.
    fn corrupt(&mut self, why: &str, call: &str, tail_before: u64) -> Dropped {
        check_corrupt(why, self.world().hostile, call);
        assert_eq!(self.ring.tail(), tail_before, "{call} failed, but tail changed");
        self.stats.corrupt = 1;
        Dropped
    }

    /// `try_push`, checked.
    fn push(&mut self, len: usize, split: u8, tag: u32) -> Result<(), Dropped> {
        let cap = self.ring.capacity();
        let len = len % (max_message(cap) + 1);
        let data = payload(self.seq, len);
        // 1 to 3 parts, cut where `split` says.
        let (a, b) = (usize::from(split & 0x0f) * len / 15, usize::from(split >> 4) * len / 15);
        let (a, b) = (a.min(b), a.max(b));
        let parts: Vec<&[u8]> = match split % 3 {
            0 => vec![&data],
            1 => vec![&data[..a], &data[a..]],
            _ => vec![&data[..a], &data[a..b], &data[b..]],
        };
        let ring = self.ring.clone();
        self.world().note_head(&ring);
        let before = self.ring.tail();
        let fired = self.fired();
        let got = self.producer.try_push(&parts, tag);
        let fired = self.fired() != fired;
        self.world().note_head(&ring);
        let need = record_size(len) as u64;
        match got {
            Err(why) => return Err(self.corrupt(&why, "try_push", before)),
            Ok(Push::Full) => {
                let w = self.world();
                assert_eq!(self.ring.tail(), before, "try_push was Full, but tail changed");
                let free = w.free_now(&self.ring).expect("try_push accepted an impossible head as Full");
                assert!(free < need, "try_push was Full with {free} bytes free for a {need}-byte record");
                drop(w);
                self.stats.full += 1;
            }
            Ok(Push::Done { wake }) => {
                self.seq += 1;
                let mut w = self.world();
                let at = w.tail;
                w.tail += need;
                assert_eq!(self.ring.tail(), w.tail, "try_push published another index than its own plus the record");
                assert!(
                    w.tail <= w.released + cap as u64,
                    "try_push wrote up to {} though the consumer released only up to {} of {cap} bytes",
                    w.tail,
                    w.released
                );
                if !fired {
                    assert_eq!(wake, before & PARKED != 0, "try_push misreported the consumer's PARKED");
                }
                assert_eq!(self.ring.read_at(at, HEADER), header(len as u32, tag), "try_push wrote another header");
                assert!(self.ring.read_at(at + HEADER as u64, len) == data, "try_push wrote another payload");
                w.queue.push_back((tag, data));
                drop(w);
                self.stats.records += 1;
                self.stats.wakes += usize::from(wake);
            }
        }
        Ok(())
    }

    /// `room`, checked.
    fn room(&mut self, need: usize) -> Result<(), Dropped> {
        let ring = self.ring.clone();
        self.world().note_head(&ring);
        let tail = self.ring.tail();
        match self.producer.room(need) {
            Err(why) => Err(self.corrupt(&why, "room", tail)),
            Ok(true) => {
                let w = self.world();
                assert!(
                    w.tail + need as u64 <= w.released + w.capacity as u64,
                    "room for {need} bytes that are not free"
                );
                Ok(())
            }
            Ok(false) => {
                let w = self.world();
                let free = w.free_now(&self.ring).expect("room accepted an impossible head");
                assert!(free < need as u64, "no room with {free} bytes free for {need}");
                drop(w);
                self.stats.full += 1;
                Ok(())
            }
        }
    }

    /// `park`, checked: sleeps exactly when there is no room.
    fn park(&mut self, need: usize) -> Result<(), Dropped> {
        let ring = self.ring.clone();
        self.world().note_head(&ring);
        let (before, tail) = (self.ring.head(), self.ring.tail());
        match self.producer.park(need) {
            Err(why) => Err(self.corrupt(&why, "park", tail)),
            Ok(sleep) => {
                let w = self.world();
                let free = w.free_now(&self.ring).expect("park accepted an impossible head");
                if sleep {
                    assert!(free < need as u64, "park sleeps with {free} bytes free for {need}");
                    assert_eq!(self.ring.head(), before | PARKED, "park sleeps without PARKED set on head");
                } else {
                    assert!(free >= need as u64, "park does not sleep, with {free} bytes free for {need}");
                    assert_eq!(self.ring.head(), before & INDEX, "park did not withdraw PARKED");
                }
                drop(w);
                self.stats.sleeps += usize::from(sleep);
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Inputs for the smoke test (and a fuzzing corpus).

/// A pseudo-random input in the layout above: mostly honest traffic, with
/// the damage a peer can do now and then, so that deterministic runs reach
/// every path a fuzzer does.
pub fn generate(rng: &mut Rng) -> Vec<u8> {
    let producer = rng.below(2) == 1;
    let mut out = vec![(rng.below(9) as u8) | (u8::from(producer) << 4)];
    // How often the peer misbehaves: never, rarely, often.
    let hostility = [0, 30, 4][rng.below(3) as usize];
    let steps = rng.below(120) + 1;
    for _ in 0..steps {
        let hostile = hostility != 0 && rng.below(hostility) == 0;
        if producer {
            generate_producer_step(rng, hostile, &mut out);
        } else {
            generate_consumer_step(rng, hostile, &mut out);
        }
    }
    out
}

/// A length, mostly small, sometimes near a ring's largest.
fn length(rng: &mut Rng) -> u16 {
    match rng.below(8) {
        0 => 0,
        1..=4 => rng.below(64) as u16,
        5 | 6 => rng.below(600) as u16,
        _ => 4088 - rng.below(4) as u16 * 1020,
    }
}

/// A value for a word, from the far ends of the range as often as not.
fn word(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.next_u64(),
        1 => rng.below(64),
        2 => u64::MAX - rng.below(16),
        _ => (1 << 63) - rng.below(16) * 8,
    }
}

fn generate_consumer_step(rng: &mut Rng, hostile: bool, out: &mut Vec<u8>) {
    let honest_peer = |rng: &mut Rng, out: &mut Vec<u8>| match rng.below(6) {
        0..=2 => {
            out.push(0);
            out.extend(length(rng).to_le_bytes());
        }
        3 => {
            out.extend([15, rng.below(16) as u8, rng.below(64) as u8]);
        }
        _ => {
            out.extend([5, rng.below(2) as u8]);
            out.extend([0; 8]);
        }
    };
    if hostile {
        match rng.below(5) {
            0 => {
                out.extend([2, rng.below(6) as u8]);
                out.extend(word(rng).to_le_bytes());
            }
            1 => {
                out.push(3);
                out.extend((rng.below(8192) as u16).to_le_bytes());
                let mut bytes = vec![0u8; rng.below(20) as usize];
                rng.fill(&mut bytes);
                out.push(bytes.len() as u8);
                out.extend(bytes);
            }
            2 => {
                out.extend([4, rng.below(2) as u8, rng.below(4) as u8]);
                out.extend((rng.next_u64() as u32).to_le_bytes());
                out.push(if rng.below(4) == 0 { rng.below(256) as u8 } else { 0 });
            }
            3 => {
                out.extend([5, 2]);
                out.extend(word(rng).to_le_bytes());
            }
            _ => {
                out.push(1);
                out.extend(length(rng).to_le_bytes());
                out.extend((rng.below(3) as u32).to_le_bytes());
            }
        }
        return;
    }
    match rng.below(14) {
        0..=2 => honest_peer(rng, out),
        3 => out.push(6),
        4 => out.push(7),
        5 => out.push(8),
        6 => {
            out.push(9);
            out.extend(length(rng).to_le_bytes());
        }
        7 => {
            out.push(10);
            let max = if rng.below(3) == 0 { u16::MAX } else { length(rng) };
            out.extend(max.to_le_bytes());
        }
        8 => out.push(11),
        9 => out.push(12),
        10 => out.push(13),
        11 => {
            // An honest publication in the middle of a read.
            out.extend([14, rng.below(4) as u8]);
            honest_peer(rng, out);
        }
        _ => {
            out.push(6);
            out.push(7);
            out.push(8);
        }
    }
}

fn generate_producer_step(rng: &mut Rng, hostile: bool, out: &mut Vec<u8>) {
    if hostile {
        match rng.below(4) {
            0 => {
                out.extend([7, rng.below(8) as u8]);
                out.extend(word(rng).to_le_bytes());
            }
            1 => {
                out.extend([8, 2]);
                out.extend(word(rng).to_le_bytes());
            }
            2 => {
                out.push(9);
                out.extend((rng.below(8192) as u16).to_le_bytes());
                out.push(8);
                out.extend(rng.next_u64().to_le_bytes());
            }
            _ => {
                // A bad head in the middle of a push.
                out.extend([10, rng.below(4) as u8, 2, rng.below(8) as u8]);
                out.extend(word(rng).to_le_bytes());
            }
        }
        return;
    }
    match rng.below(12) {
        0..=3 => {
            out.push(if rng.below(8) == 0 { 1 } else { 0 });
            out.extend(length(rng).to_le_bytes());
            out.push(rng.below(256) as u8);
            if out[out.len() - 4] == 1 {
                out.extend((rng.below(3) as u32).to_le_bytes());
            }
        }
        4 => {
            out.push(2);
            out.extend(length(rng).to_le_bytes());
        }
        5 => {
            out.push(3);
            out.extend(length(rng).to_le_bytes());
        }
        6 => out.push(4),
        7 | 8 => out.push(5 + rng.below(2) as u8),
        9 => {
            out.extend([8, rng.below(2) as u8]);
            out.extend([0; 8]);
        }
        10 => out.extend([11, rng.below(16) as u8, rng.below(256) as u8]),
        _ => {
            // An honest consumer in the middle of a push.
            out.extend([10, rng.below(4) as u8, rng.below(2) as u8]);
        }
    }
}
