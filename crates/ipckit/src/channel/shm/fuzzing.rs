//! **Not a stable API.** The `shm:` ring protocol (`ring.rs`) over a ring
//! in ordinary memory, for ipckit's fuzz target `shm_ring` and its stable
//! smoke test (the checks are in the test kit's `ring` module). Hidden from
//! the documentation; it changes whenever the protocol does.
//!
//! A [`Ring`] is one ring's memory: the `tail` and `head` words (std
//! atomics) and the data area (bytes), shared by the protocol side under
//! test and the test's peer. The peer writes anything it likes at any time:
//! [`Ring::set_tail`], [`Ring::set_head`], [`Ring::write_at`], and, to act
//! in the middle of a call, [`Ring::on_access`]. [`Consumer`] and
//! [`Producer`] are the two sides exactly as the channel runs them (the
//! receiver consumes, a sender produces), over this memory instead of a
//! shared mapping; the types here only translate to public ones.

use std::io::IoSlice;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::layout;
use super::ring::{self, RingMemory};

/// Bit 63 of `tail` and `head`: the other side is parked.
pub const PARKED: u64 = ring::PARKED;
/// Bits 0-62 of `tail` and `head`: the index.
pub const INDEX: u64 = ring::INDEX;
/// A record's header: `len: u32`, `tag: u32`, little-endian.
pub const HEADER: usize = ring::HEADER;
/// The tag of a message copied into the ring (any other is refused by the
/// receiver).
pub const TAG_INLINE: u32 = ring::TAG_INLINE;
/// The smallest ring the protocol runs on (a channel's is larger).
pub const MIN_CAPACITY: usize = 16;
/// The largest ring here: a channel's largest.
pub const MAX_CAPACITY: usize = layout::MAX_CAPACITY;

/// Bytes a record of a `len`-byte payload takes.
pub fn record_size(len: usize) -> usize {
    ring::record_size(len)
}

/// The largest message a ring of `capacity` bytes holds.
pub fn max_message(capacity: usize) -> usize {
    ring::max_message(capacity)
}

type Action = Box<dyn FnOnce(&Ring) + Send>;

struct Memory {
    tail: AtomicU64,
    head: AtomicU64,
    data: Box<[AtomicU8]>,
    /// The peer's action due before the side's data access number `.0`
    /// from now.
    trap: Mutex<Option<(usize, Action)>>,
}

/// One ring's memory, in ordinary memory. Clones share it.
#[derive(Clone)]
pub struct Ring(Arc<Memory>);

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("tail", &self.tail())
            .field("head", &self.head())
            .field("capacity", &self.0.data.len())
            .field("armed", &self.armed())
            .finish()
    }
}

impl Ring {
    /// A fresh ring of `capacity` data bytes, all zero (both indices 0).
    ///
    /// # Panics
    ///
    /// Unless `capacity` is a power of two from [`MIN_CAPACITY`] to
    /// [`MAX_CAPACITY`] (the test chooses it, not the peer).
    pub fn new(capacity: usize) -> Ring {
        assert!(
            capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity),
            "ring capacity {capacity} is not a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}"
        );
        Ring(Arc::new(Memory {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            data: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            trap: Mutex::new(None),
        }))
    }

    /// The data area's size.
    pub fn capacity(&self) -> usize {
        self.0.data.len()
    }

    /// The `tail` word as it is now (index and `PARKED`).
    pub fn tail(&self) -> u64 {
        self.0.tail.load(Ordering::SeqCst)
    }

    /// Stores any value in the `tail` word.
    pub fn set_tail(&self, word: u64) {
        self.0.tail.store(word, Ordering::SeqCst);
    }

    /// The `head` word as it is now (index and `PARKED`).
    pub fn head(&self) -> u64 {
        self.0.head.load(Ordering::SeqCst)
    }

    /// Stores any value in the `head` word.
    pub fn set_head(&self, word: u64) {
        self.0.head.store(word, Ordering::SeqCst);
    }

    /// Writes `bytes` into the data area from ring index `at`, wrapping
    /// around its end (any `at`; at most the capacity's worth of bytes
    /// count, later ones overwrite earlier ones).
    pub fn write_at(&self, at: u64, bytes: &[u8]) {
        let mask = self.capacity() - 1;
        for (i, &b) in bytes.iter().enumerate() {
            self.0.data[(at as usize).wrapping_add(i) & mask].store(b, Ordering::Relaxed);
        }
    }

    /// Reads `len` bytes of the data area from ring index `at`, wrapping
    /// around its end.
    pub fn read_at(&self, at: u64, len: usize) -> Vec<u8> {
        let mask = self.capacity() - 1;
        (0..len).map(|i| self.0.data[(at as usize).wrapping_add(i) & mask].load(Ordering::Relaxed)).collect()
    }

    /// Arms `action`, run by the peer just before the protocol side's data
    /// access number `after` from now (0: the next), counting each copy in
    /// or out of the data area (a record's header, each piece of a
    /// payload). Replaces an action not yet run.
    pub fn on_access(&self, after: usize, action: impl FnOnce(&Ring) + Send + 'static) {
        *self.0.trap.lock().unwrap_or_else(PoisonError::into_inner) = Some((after, Box::new(action)));
    }

    /// Whether an action is armed and has not run yet.
    pub fn armed(&self) -> bool {
        self.0.trap.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// Counts one access by the protocol side; runs the armed action when
    /// it is due (outside the lock: it may arm another).
    fn access(&self) {
        let due = {
            let mut trap = self.0.trap.lock().unwrap_or_else(PoisonError::into_inner);
            match trap.as_mut() {
                Some((0, _)) => trap.take().map(|(_, action)| action),
                Some((n, _)) => {
                    *n -= 1;
                    None
                }
                None => None,
            }
        };
        if let Some(action) = due {
            action(self);
        }
    }
}

impl RingMemory for Ring {
    type Word = AtomicU64;

    fn tail(&self) -> &AtomicU64 {
        &self.0.tail
    }

    fn head(&self) -> &AtomicU64 {
        &self.0.head
    }

    fn capacity(&self) -> usize {
        self.0.data.len()
    }

    fn write(&self, at: usize, data: &[u8]) {
        self.access();
        let capacity = self.capacity();
        assert!(
            at <= capacity && data.len() <= capacity - at,
            "ring write of {} bytes at {at} out of bounds",
            data.len()
        );
        for (cell, &b) in self.0.data[at..at + data.len()].iter().zip(data) {
            cell.store(b, Ordering::Relaxed);
        }
    }

    fn read(&self, at: usize, buf: &mut [u8]) {
        self.access();
        let capacity = self.capacity();
        assert!(at <= capacity && buf.len() <= capacity - at, "ring read of {} bytes at {at} out of bounds", buf.len());
        let len = buf.len();
        for (b, cell) in buf.iter_mut().zip(&self.0.data[at..at + len]) {
            *b = cell.load(Ordering::Relaxed);
        }
    }
}

/// The record at the head of the ring, as [`Consumer::peek`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub len: usize,
    pub tag: u32,
}

impl From<Record> for ring::Record {
    fn from(r: Record) -> ring::Record {
        ring::Record { len: r.len, tag: r.tag }
    }
}

fn why(e: ring::RingError) -> String {
    let ring::RingError::Corrupt(why) = e;
    why
}

/// The consumer side, as the receiver runs it on each sender's ring.
/// An `Err` is the protocol's `Corrupt` (its message): the receiver then
/// drops the ring, and so should the caller.
#[derive(Debug)]
pub struct Consumer(ring::Consumer<Ring>);

impl Consumer {
    /// The consumer of a fresh ring (it assumes both indices 0).
    pub fn new(ring: &Ring) -> Consumer {
        Consumer(ring::Consumer::new(ring.clone()))
    }

    /// The next record, if one is published.
    pub fn peek(&mut self) -> Result<Option<Record>, String> {
        Ok(self.0.peek().map_err(why)?.map(|r| Record { len: r.len, tag: r.tag }))
    }

    /// Copies the payload of `record` (as the last [`peek`](Self::peek)
    /// returned it) into `buf[..record.len]` (`buf` is at least that long).
    pub fn read(&self, record: Record, buf: &mut [u8]) {
        self.0.read(record.into(), buf);
    }

    /// Releases `record` (as the last [`peek`](Self::peek) returned it);
    /// whether the producer had parked.
    pub fn pop(&mut self, record: Record) -> bool {
        // Released at once, as the harness's invariants expect.
        let batched = self.0.pop(record.into());
        self.0.release() || batched
    }

    /// Announces a sleep on `tail`; whether to sleep.
    pub fn park(&mut self) -> Result<bool, String> {
        self.0.park().map_err(why)
    }

    /// Withdraws the announcement.
    pub fn unpark(&self) {
        self.0.unpark();
    }
}

/// What [`Producer::try_push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// Published; `wake`: the consumer had parked.
    Done { wake: bool },
    /// No room; nothing was written.
    Full,
}

/// The producer side, as a sender runs it. An `Err` is the protocol's
/// `Corrupt` (its message): the sender then fails, and so should the caller.
#[derive(Debug)]
pub struct Producer(ring::Producer<Ring>);

impl Producer {
    /// The producer of a fresh ring (it assumes both indices 0).
    pub fn new(ring: &Ring) -> Producer {
        Producer(ring::Producer::new(ring.clone()))
    }

    /// Publishes one message gathered from `parts`, if there is room.
    ///
    /// # Panics
    ///
    /// If the message is longer than [`max_message`]: a sender checks
    /// that before it pushes.
    pub fn try_push(&mut self, parts: &[&[u8]], tag: u32) -> Result<Push, String> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let max = max_message(self.0.memory().capacity());
        assert!(len <= max, "a message of {len} bytes is over the ring's maximum of {max}: the caller checks that");
        let parts: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        match self.0.try_push(&parts, len, tag).map_err(why)? {
            ring::Push::Done { wake } => Ok(Push::Done { wake }),
            ring::Push::Full => Ok(Push::Full),
        }
    }

    /// Whether `need` bytes are free.
    pub fn room(&mut self, need: usize) -> Result<bool, String> {
        self.0.room(need).map_err(why)
    }

    /// Announces a sleep for `need` bytes on `head`; whether to sleep.
    pub fn park(&mut self, need: usize) -> Result<bool, String> {
        self.0.park(need).map_err(why)
    }

    /// Withdraws the announcement.
    pub fn unpark(&self) {
        self.0.unpark();
    }
}

/// The pool's two books (see `pool.rs`) run by a script, with every
/// invariant checked; panics on a violation. For the fuzz target
/// `shm_pool` and its stable smoke test.
///
/// The first byte sets the pool's size (1 to 64 chunks) and who is
/// hostile: nobody, the sender (it also publishes arbitrary references)
/// or the receiver (it also gives back arbitrary chunks). The rest is a
/// script: each byte an operation, some followed by operands.
///
/// - The receiver never holds a chunk twice, and every reference it
///   accepts is inside the pool in whole chunks.
/// - The sender takes back only chunks it lent, whatever it is given.
/// - Both honest: the sender never lends a chunk the receiver holds, every
///   reference is accepted, every give-back taken back.
pub fn pool_script(data: &[u8]) {
    use std::collections::VecDeque;

    use super::pool::{CHUNK, Holder, Lender, chunks_for};

    let Some((&first, mut script)) = data.split_first() else { return };
    let chunks = 1 + (first & 63) as usize;
    let (hostile_sender, hostile_receiver) = (first >> 6 == 1, first >> 6 == 2);
    let honest = !hostile_sender && !hostile_receiver;
    let size = chunks * CHUNK;
    let (mut lender, mut holder) = (Lender::new(chunks), Holder::new(size));
    let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.0 + b.1 && b.0 < a.0 + a.1;
    // Published, not yet taken, as (first chunk, chunks, length); held by
    // the receiver and given back, as (first chunk, chunks, whether the
    // sender lent them).
    let mut published: VecDeque<(usize, usize, usize)> = VecDeque::new();
    let mut held: Vec<(usize, usize, bool)> = Vec::new();
    let mut released: VecDeque<(usize, usize, bool)> = VecDeque::new();
    let mut take = |n: usize| -> Option<u64> {
        let (bytes, rest) = script.split_at_checked(n)?;
        script = rest;
        Some(bytes.iter().fold(0u64, |v, &b| v << 8 | b as u64))
    };
    while let Some(op) = take(1) {
        match op % 6 {
            // The sender lends a message of up to 4 chunks, and publishes it.
            0 => {
                let Some(len) = take(3) else { break };
                let len = (len as usize) % (4 * CHUNK) + 1;
                if let Some(first) = lender.lend(len) {
                    let count = chunks_for(len);
                    assert!(first + count <= chunks, "lent inside the pool");
                    if honest {
                        for &(f, c, _) in &held {
                            assert!(!overlaps((first, count), (f, c)), "lent chunks the receiver holds");
                        }
                    }
                    published.push_back((first, count, len));
                }
            }
            // The receiver takes the next published message.
            1 => {
                if let Some((first, count, len)) = published.pop_front() {
                    match holder.check((first * CHUNK) as u64, len as u64) {
                        Ok(found) => {
                            assert_eq!(found, (first, count));
                            holder.hold(first, count);
                            held.push((first, count, true));
                        }
                        // Refused only for overlapping what it holds: chunks
                        // of a hostile sender's references, or chunks a
                        // hostile receiver gave back while holding them.
                        Err(why) => {
                            assert!(!honest, "an honest reference refused: {why}");
                            assert!(held.iter().any(|&(f, c, _)| overlaps((first, count), (f, c))), "{why}")
                        }
                    }
                }
            }
            // The receiver gives a message back.
            2 => {
                let Some(pick) = take(1) else { break };
                if !held.is_empty() {
                    let (first, count, lent) = held.swap_remove(pick as usize % held.len());
                    holder.give_back(first, count);
                    released.push_back((first, count, lent));
                }
            }
            // The sender takes back what was given back.
            3 => {
                if let Some((first, count, lent)) = released.pop_front() {
                    let ok = lender.take_back(first, count);
                    assert!(ok || !honest || !lent, "an honest give-back refused");
                }
            }
            // A hostile sender publishes anything.
            4 if hostile_sender => {
                // Plausible references mostly (a chunk of the pool or just
                // past it, sometimes misaligned), anything now and then.
                let (offset, len) = if op & 0x80 != 0 {
                    let (Some(offset), Some(len)) = (take(8), take(8)) else { break };
                    (offset, len)
                } else {
                    let (Some(pick), Some(len)) = (take(2), take(3)) else { break };
                    let chunk = (pick & 0xff) % (chunks as u64 + 2);
                    let misaligned = u64::from(pick >> 8 & 3 == 3);
                    (chunk * CHUNK as u64 + misaligned, len % (4 * CHUNK as u64))
                };
                if let Ok((first, count)) = holder.check(offset, len) {
                    assert!(offset % CHUNK as u64 == 0 && offset + len <= size as u64, "accepted outside the pool");
                    assert!(!held.iter().any(|&(f, c, _)| overlaps((first, count), (f, c))), "accepted chunks held");
                    holder.hold(first, count);
                    held.push((first, count, false));
                }
            }
            // A hostile receiver gives back anything.
            5 if hostile_receiver => {
                let (Some(first), Some(count)) = (take(4), take(4)) else { break };
                let (first, count) = (first as usize, count as usize);
                let before = lender.lent();
                let was_lent = count > 0 && (first..first.saturating_add(count)).all(|c| lender.is_lent(c));
                assert_eq!(lender.take_back(first, count), was_lent, "took back only chunks lent");
                assert_eq!(lender.lent(), if was_lent { before - count } else { before });
            }
            _ => {}
        }
        assert_eq!(holder.held(), held.iter().map(|&(_, c, _)| c).sum::<usize>(), "the receiver's book");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The fuzz target's script, over random inputs: a stable smoke
        /// test that `cargo test` runs.
        #[test]
        fn pool_books_keep_their_invariants(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            super::pool_script(&data);
        }
    }
}
