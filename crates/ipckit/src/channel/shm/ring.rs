//! The ring protocol: one producer (a sender), one consumer (the
//! receiver), variable-length records in a power-of-two byte ring, and the
//! "parked" announcements that let either side sleep.
//!
//! # The words
//!
//! Two 64-bit words, each on its own cache line (see `layout`):
//!
//! | word | bits 0-62 | bit 63 (`PARKED`) |
//! | --- | --- | --- |
//! | `tail` | bytes ever published by the producer (it alone writes them) | the consumer is parked: the producer must wake it |
//! | `head` | bytes ever consumed by the consumer (it alone writes them) | the producer is parked: the consumer must wake it |
//!
//! Indices only grow; the position of byte `i` is `i & (capacity - 1)`.
//! `tail - head` is the bytes in the ring, from 0 (empty) to `capacity`
//! (full). Every record starts 8-aligned: a header of 8 bytes (`len`, a
//! `u32`, then `tag`, a `u32`, both little-endian), then `len` bytes of
//! payload, padded to 8. A record is `8 + round_up(len, 8)` bytes, so the
//! largest message is `capacity - 8` bytes. A header never wraps (it starts
//! 8-aligned in a ring whose size is a multiple of 8); a payload may, and is
//! then copied in two pieces.
//!
//! # Publishing and consuming
//!
//! The producer writes a record into free space, then publishes it by
//! swapping `tail` to the new index (release). The swap also clears
//! `PARKED` and returns the old word: if the consumer had parked, the
//! producer wakes it. The consumer loads `tail` (acquire), reads the
//! record, and releases its space by swapping `head` (release), which
//! likewise tells it whether the producer parked. It releases in batches
//! (every [`RELEASE_BATCH`] bytes, at once when it sees the producer's
//! `PARKED` bit, and always before it looks for more and finds none), so
//! that a streaming producer and consumer do not trade `head`'s cache line
//! for every record.
//!
//! # Parking without a lost wake-up
//!
//! A side about to sleep sets `PARKED` on the *other* side's word with a
//! read-modify-write (`fetch_or`), which returns that word's index: if the
//! other side moved meanwhile, it does not sleep (and clears the bit).
//! Both the announcement and the publication are read-modify-writes of the
//! same word, so they are totally ordered: either the publisher's swap
//! comes first (the announcer sees its index), or the announcement comes
//! first (the publisher's swap returns `PARKED` and it wakes the sleeper).
//! No fence, no `SeqCst`: loom checks this exactly (see `loom_tests`).
//!
//! # A peer is not trusted
//!
//! Each side keeps its own index locally and never reads it back from
//! shared memory; the other side's index and every record header are
//! loaded once and checked (`tail - head` within the capacity and a
//! multiple of 8, a header's length within what is published), and any
//! nonsense is [`RingError::Corrupt`]. A hostile peer can make its own
//! messages wrong, never make this side misbehave.

use std::io::IoSlice;

use crate::atomic::{Atomic, Ordering};

/// Bit 63 of `tail` and `head`: the other side is parked.
pub(crate) const PARKED: u64 = 1 << 63;
/// Bits 0-62: the index.
pub(crate) const INDEX: u64 = PARKED - 1;
/// A record's header: `len: u32`, `tag: u32`.
pub(crate) const HEADER: usize = 8;
/// The tag of a message copied into the ring.
pub(crate) const TAG_INLINE: u32 = 0;
/// The tag of a message in the sender's pool: the 16-byte payload is the
/// message's byte offset in the pool and its length (`u64` each).
pub(crate) const TAG_POOL: u32 = 1;
/// The tag of a release record (the release ring): the 8-byte payload is
/// the first chunk (`u32`) and the number of chunks (`u32`) given back.
pub(crate) const TAG_RELEASE: u32 = 2;
/// The consumer publishes `head` at least every this many bytes (or a
/// quarter of a smaller ring).
pub(crate) const RELEASE_BATCH: usize = 4096;

/// The ring memory a protocol side runs on: the two index words and the
/// data area. Production memory is a shared mapping (`memory.rs`); the loom
/// models use loom's memory, which checks every byte access for races.
pub(crate) trait RingMemory {
    /// The atomic type of the index words.
    type Word: Atomic<Value = u64>;

    /// The producer's word.
    fn tail(&self) -> &Self::Word;

    /// The consumer's word.
    fn head(&self) -> &Self::Word;

    /// The data area's size: a power of two, at least 16.
    fn capacity(&self) -> usize;

    /// Copies `data` into the data area at `at` (`at + data.len()` is at
    /// most the capacity).
    fn write(&self, at: usize, data: &[u8]);

    /// Copies `buf.len()` bytes at `at` out of the data area.
    fn read(&self, at: usize, buf: &mut [u8]);

    /// Stores the 8 bytes at `at` (8-aligned) as one word: a record header.
    fn write_word(&self, at: usize, word: u64) {
        self.write(at, &word.to_le_bytes());
    }

    /// Loads the 8 bytes at `at` (8-aligned) as one word.
    fn read_word(&self, at: usize) -> u64 {
        let mut bytes = [0u8; 8];
        self.read(at, &mut bytes);
        u64::from_le_bytes(bytes)
    }
}

/// Bytes a record of a `len`-byte payload takes.
#[inline]
pub(crate) fn record_size(len: usize) -> usize {
    HEADER + len.next_multiple_of(8)
}

/// The largest message a ring of `capacity` bytes holds.
pub(crate) fn max_message(capacity: usize) -> usize {
    capacity - HEADER
}

/// What the other side did that breaks the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RingError {
    /// The index or a header is nonsense; the ring cannot be used any more.
    Corrupt(String),
}

/// The record at the head of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) len: usize,
    pub(crate) tag: u32,
}

/// Copies `len` bytes starting at ring index `index` with `copy`, in two
/// pieces when they wrap.
#[inline]
fn wrapping(capacity: usize, index: u64, len: usize, mut copy: impl FnMut(usize, std::ops::Range<usize>)) {
    let pos = (index as usize) & (capacity - 1);
    let first = len.min(capacity - pos);
    copy(pos, 0..first);
    if first < len {
        copy(0, first..len);
    }
}

/// The producer side.
#[derive(Debug)]
pub(crate) struct Producer<M> {
    mem: M,
    /// Bytes published; only this side writes `tail`.
    tail: u64,
    /// The last `head` seen (checked): space up to `head + capacity` is free.
    head: u64,
}

/// What [`Producer::try_push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Published; `wake`: the consumer had parked and must be woken.
    Done { wake: bool },
    /// No room now; nothing was written.
    Full,
}

impl<M: RingMemory> Producer<M> {
    /// The producer of a fresh ring (both indices 0).
    pub(crate) fn new(mem: M) -> Producer<M> {
        Producer { mem, tail: 0, head: 0 }
    }

    pub(crate) fn memory(&self) -> &M {
        &self.mem
    }

    /// Reads `head`, checks it against what this side knows, and returns
    /// the free bytes.
    fn refresh(&mut self) -> Result<usize, RingError> {
        let head = self.mem.head().load(Ordering::Acquire) & INDEX;
        let capacity = self.mem.capacity() as u64;
        if head < self.head || head > self.tail || self.tail - head > capacity || head % 8 != 0 {
            return Err(RingError::Corrupt(format!(
                "the receiver's index {head} is impossible (published {}, consumed {} before, capacity {capacity})",
                self.tail, self.head
            )));
        }
        self.head = head;
        Ok((capacity - (self.tail - head)) as usize)
    }

    /// Whether `need` bytes are free now.
    #[inline]
    pub(crate) fn room(&mut self, need: usize) -> Result<bool, RingError> {
        if self.mem.capacity() - (self.tail - self.head) as usize >= need {
            return Ok(true);
        }
        Ok(self.refresh()? >= need)
    }

    /// Copies one message gathered from `parts` (`len` bytes in all, at most
    /// [`max_message`]) into the ring and publishes it, if there is room.
    pub(crate) fn try_push(&mut self, parts: &[IoSlice<'_>], len: usize, tag: u32) -> Result<Push, RingError> {
        let need = record_size(len);
        let capacity = self.mem.capacity();
        debug_assert!(need <= capacity, "the caller checks the length against max_message");
        let mut free = capacity - (self.tail - self.head) as usize;
        if free < need {
            free = self.refresh()?;
            if free < need {
                return Ok(Push::Full);
            }
        }
        // Little-endian: `len` in the low half, `tag` in the high half.
        self.mem.write_word((self.tail as usize) & (capacity - 1), len as u64 | (tag as u64) << 32);
        let mut at = self.tail + HEADER as u64;
        for part in parts {
            wrapping(capacity, at, part.len(), |pos, range| self.mem.write(pos, &part[range]));
            at += part.len() as u64;
        }
        self.tail += need as u64;
        let old = self.mem.tail().swap(self.tail, Ordering::AcqRel);
        Ok(Push::Done { wake: old & PARKED != 0 })
    }

    /// Before sleeping for room: announces it on `head` and says whether to
    /// sleep (`false`: room for `need` bytes appeared meanwhile; the
    /// announcement is withdrawn).
    pub(crate) fn park(&mut self, need: usize) -> Result<bool, RingError> {
        // The read-modify-write orders this announcement with the
        // consumer's swap of `head`; the load in `refresh` then sees at
        // least what it returned.
        self.mem.head().fetch_or(PARKED, Ordering::AcqRel);
        if self.refresh()? >= need {
            self.unpark();
            return Ok(false);
        }
        Ok(true)
    }

    /// Withdraws a parked announcement (after waking for any reason).
    pub(crate) fn unpark(&self) {
        self.mem.head().fetch_and(INDEX, Ordering::AcqRel);
    }
}

/// The consumer side.
#[derive(Debug)]
pub(crate) struct Consumer<M> {
    mem: M,
    /// Bytes consumed; only this side writes `head`.
    head: u64,
    /// Bytes released: the last value stored in `head`.
    released: u64,
    /// Release at least this often.
    batch: u64,
    /// The last `tail` seen (checked): bytes up to it are published.
    tail: u64,
}

impl<M: RingMemory> Consumer<M> {
    /// The consumer of a fresh ring (both indices 0).
    pub(crate) fn new(mem: M) -> Consumer<M> {
        let batch = RELEASE_BATCH.min(mem.capacity() / 4) as u64;
        Consumer { mem, head: 0, released: 0, batch, tail: 0 }
    }

    pub(crate) fn memory(&self) -> &M {
        &self.mem
    }

    /// Reads `tail` and checks it; returns the published bytes not yet
    /// consumed.
    fn refresh(&mut self) -> Result<u64, RingError> {
        let tail = self.mem.tail().load(Ordering::Acquire) & INDEX;
        let capacity = self.mem.capacity() as u64;
        if tail < self.tail || tail < self.head || tail - self.head > capacity || tail % 8 != 0 {
            return Err(RingError::Corrupt(format!(
                "the sender's index {tail} is impossible (consumed {}, published {} before, capacity {capacity})",
                self.head, self.tail
            )));
        }
        self.tail = tail;
        Ok(tail - self.head)
    }

    /// Whether the producer has published bytes not consumed yet (or
    /// written nonsense, which the next [`peek`](Self::peek) reports): a
    /// look that changes nothing.
    pub(crate) fn published(&self) -> bool {
        self.mem.tail().load(Ordering::Acquire) & INDEX != self.head
    }

    /// The next record, if one is published: its header, checked against
    /// what is published.
    #[inline]
    pub(crate) fn peek(&mut self) -> Result<Option<Record>, RingError> {
        let mut ready = self.tail - self.head;
        if ready == 0 {
            ready = self.refresh()?;
            if ready == 0 {
                return Ok(None);
            }
        }
        let capacity = self.mem.capacity();
        let header = self.mem.read_word((self.head as usize) & (capacity - 1));
        let (len, tag) = ((header & 0xffff_ffff) as usize, (header >> 32) as u32);
        if len > max_message(capacity) || record_size(len) as u64 > ready {
            return Err(RingError::Corrupt(format!(
                "a record announces {len} bytes, but {} are published (capacity {capacity})",
                ready.saturating_sub(HEADER as u64)
            )));
        }
        Ok(Some(Record { len, tag }))
    }

    /// Copies the payload of `record` (from [`peek`](Self::peek)) into
    /// `buf[..record.len]`.
    #[inline]
    pub(crate) fn read(&self, record: Record, buf: &mut [u8]) {
        let capacity = self.mem.capacity();
        let at = self.head + HEADER as u64;
        wrapping(capacity, at, record.len, |pos, range| self.mem.read(pos, &mut buf[range]));
    }

    /// Consumes `record`; its space is released now or in a batch (see the
    /// module docs). Returns whether the producer had parked and must be
    /// woken.
    #[inline]
    pub(crate) fn pop(&mut self, record: Record) -> bool {
        self.head += record_size(record.len) as u64;
        // A plain load: a parked bit missed here is seen by the next
        // release's swap, which always comes (before looking for more).
        if self.head - self.released >= self.batch || self.mem.head().load(Ordering::Relaxed) & PARKED != 0 {
            return self.release();
        }
        false
    }

    /// Releases everything consumed; returns whether the producer had
    /// parked and must be woken. Called before looking for more and finding
    /// none, and before parking.
    #[inline]
    pub(crate) fn release(&mut self) -> bool {
        if self.released == self.head {
            return false;
        }
        self.released = self.head;
        let old = self.mem.head().swap(self.head, Ordering::AcqRel);
        old & PARKED != 0
    }

    /// Before sleeping for a message: announces it on `tail` and says
    /// whether to sleep (`false`: a message was published meanwhile; the
    /// announcement is withdrawn).
    pub(crate) fn park(&mut self) -> Result<bool, RingError> {
        let old = self.mem.tail().fetch_or(PARKED, Ordering::AcqRel) & INDEX;
        if old != self.head {
            self.unpark();
            // Checked as any index is, on the next peek.
            return Ok(false);
        }
        Ok(true)
    }

    /// Withdraws a parked announcement.
    pub(crate) fn unpark(&self) {
        self.mem.tail().fetch_and(INDEX, Ordering::AcqRel);
    }
}
