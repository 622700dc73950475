//! The lock-free protocol of a `shm:` topic: one writer (the publisher),
//! any number of readers (the subscribers), each with its own position,
//! and the parked announcements that let either side sleep.
//!
//! # Publishing
//!
//! Message `m` goes into slot `m % slots` under the slot's seqlock
//! ([`Writer::write`]): `seq = 2m + 1` (release), a release fence, `len`
//! and the bytes, `seq = 2m + 2` (release), then `head = m + 1` (release).
//! Then, for every subscriber, the publisher swaps `published` in its
//! cursor page to the new head ([`announce`]); the swap returns the old
//! word, and a `PARKED` bit in it means that subscriber sleeps: wake it.
//!
//! # Reading
//!
//! A subscriber's position `next` is its own: the publisher never reads it
//! back except, under `overflow=block`, to know how far it may go. To read
//! message `next` ([`Reader::read`]) it loads `head` (acquire); if it is
//! ahead by more than the slots, the oldest messages are gone: it counts
//! them as lost and moves on to the oldest message still held. Then it
//! loads the slot's `seq` (acquire): `2·next + 2` is its message, copied
//! out, then checked again after an acquire fence (a different `seq`: it
//! was overwritten while being copied). A larger `seq` names the message
//! `m'` that took the slot, so everything up to `m' - slots` is lost. A
//! smaller one, for a message `head` says is published, is impossible.
//! After each message it swaps its `cursor` to `next` ([`Reader::progress`]);
//! a `PARKED` bit in the old word means the publisher sleeps waiting for
//! it: wake it.
//!
//! # Room under `overflow=block`
//!
//! Publishing message `h` overwrites message `h - slots`: it may go ahead
//! only when every subscriber's `cursor` is past that (`h - cursor <
//! slots`). The publisher checks a cursor ([`Watch::load`]) only when the
//! slowest one it saw would be overtaken, so cursors cross between caches
//! about once per `slots` messages. Under drop-oldest it never waits.
//!
//! # Parking without a lost wake-up
//!
//! As in the `shm:` channel's ring: the side about to sleep sets `PARKED`
//! with a read-modify-write on the word the other side swaps when it moves.
//! Both are RMWs of one word, so one comes first: either the sleeper's
//! RMW sees the move (then it does not sleep), or the mover's swap sees
//! `PARKED` (then it wakes the sleeper). A subscriber announces on
//! `published` and then loads `head`: the publisher stores `head` before
//! its swap, so a swap the announcement follows carries the new `head`
//! with it. The publisher announces on `cursor`, which is itself the
//! index it waits on. loom checks both directions (`loom_tests`).
//!
//! # A peer is not trusted
//!
//! A reader loads `head`, `seq` and `len` once each per use and checks
//! them: `head` never goes back and stays below 2^62, `len` fits a slot, a
//! `seq` is consistent with `head`. Anything else is an error string
//! (`Corrupt` for the caller), never a panic, never an allocation larger
//! than a slot. The publisher checks a cursor likewise: it never goes back
//! and never passes `head` (else that subscriber is dropped).

use crate::atomic::{Atomic, Ordering};

/// Bit 63 of `published` and `cursor`: the other side sleeps.
pub(crate) const PARKED: u64 = 1 << 63;
/// Bits 0-62: the index.
pub(crate) const INDEX: u64 = PARKED - 1;
/// `head` stays below this (so that `2m + 2` never overflows).
pub(crate) const HEAD_LIMIT: u64 = 1 << 62;

/// A topic's memory: `head` and the slots. Production memory is a shared
/// mapping (`memory.rs`); the loom models use loom's atomics.
pub(crate) trait TopicMemory {
    type Word: Atomic<Value = u64>;
    /// Messages published.
    fn head(&self) -> &Self::Word;
    /// The number of slots, a power of two.
    fn slots(&self) -> usize;
    /// The largest message a slot holds.
    fn max_message(&self) -> usize;
    /// Slot `slot`'s seqlock.
    fn seq(&self, slot: usize) -> &Self::Word;
    /// Slot `slot`'s length word.
    fn len(&self, slot: usize) -> &Self::Word;
    /// Copies `data` (at most [`max_message`](Self::max_message) bytes) into
    /// slot `slot`.
    fn write(&self, slot: usize, data: &[u8]);
    /// Copies the first `buf.len()` bytes of slot `slot` out.
    fn read(&self, slot: usize, buf: &mut [u8]);
    /// A memory fence.
    fn fence(order: Ordering);
}

/// One subscriber's cursor page: `published` and `cursor`.
pub(crate) trait CursorMemory {
    type Word: Atomic<Value = u64>;
    fn published(&self) -> &Self::Word;
    fn cursor(&self) -> &Self::Word;
}

/// The publisher's side of the slots.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Messages published; only this side writes `head`.
    head: u64,
}

impl Writer {
    /// The writer of a fresh topic.
    pub(crate) fn new() -> Writer {
        Writer { head: 0 }
    }

    /// Messages published.
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// Writes `msg` (at most the memory's `max_message`) as the next
    /// message and publishes it (`head`). The caller then announces it to
    /// every subscriber.
    pub(crate) fn write<M: TopicMemory>(&mut self, mem: &M, msg: &[u8]) {
        debug_assert!(msg.len() <= mem.max_message());
        let m = self.head;
        let slot = (m as usize) & (mem.slots() - 1);
        // Release: whoever sees the odd value sees `head = m` before it.
        mem.seq(slot).store(2 * m + 1, Ordering::Release);
        // The bytes below are not seen before the odd value by a reader
        // that copies them and then fences (the seqlock's re-check).
        M::fence(Ordering::Release);
        mem.len(slot).store(msg.len() as u64, Ordering::Relaxed);
        mem.write(slot, msg);
        mem.seq(slot).store(2 * m + 2, Ordering::Release);
        self.head = m + 1;
        mem.head().store(self.head, Ordering::Release);
    }
}

/// After publishing: tells one subscriber the new `head`. `true`: it
/// sleeps, wake it.
#[inline]
pub(crate) fn announce<C: CursorMemory>(page: &C, head: u64) -> bool {
    page.published().swap(head, Ordering::AcqRel) & PARKED != 0
}

/// What the publisher knows of one subscriber (`overflow=block`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Watch {
    /// Its cursor as last loaded and checked.
    pub(crate) cursor: u64,
}

impl Watch {
    /// A subscriber starting at message `start`.
    pub(crate) fn new(start: u64) -> Watch {
        Watch { cursor: start }
    }

    fn check(&mut self, word: u64, head: u64) -> Result<u64, String> {
        let cursor = word & INDEX;
        if cursor < self.cursor || cursor > head {
            return Err(format!(
                "its cursor {cursor} is impossible (it was {} before, {head} messages are published)",
                self.cursor
            ));
        }
        self.cursor = cursor;
        Ok(cursor)
    }

    /// Loads and checks its cursor (never back, never past `head`).
    pub(crate) fn load<C: CursorMemory>(&mut self, page: &C, head: u64) -> Result<u64, String> {
        self.check(page.cursor().load(Ordering::Acquire), head)
    }

    /// Whether message `head` may overwrite a slot as far as this
    /// subscriber is concerned (as last loaded).
    pub(crate) fn has_room(&self, head: u64, slots: usize) -> bool {
        head - self.cursor < slots as u64
    }

    /// Before sleeping for it: announces it on its `cursor`; `Ok(false)`:
    /// it moved on far enough meanwhile (the announcement is withdrawn).
    pub(crate) fn park<C: CursorMemory>(&mut self, page: &C, head: u64, slots: usize) -> Result<bool, String> {
        let word = page.cursor().fetch_or(PARKED, Ordering::AcqRel);
        let checked = self.check(word, head);
        if checked.is_err() || self.has_room(head, slots) {
            Watch::unpark(page);
        }
        checked.map(|_| !self.has_room(head, slots))
    }

    /// Withdraws the announcement.
    pub(crate) fn unpark<C: CursorMemory>(page: &C) {
        page.cursor().fetch_and(INDEX, Ordering::AcqRel);
    }
}

/// A subscriber's side.
#[derive(Debug)]
pub(crate) struct Reader {
    /// The next message to read.
    next: u64,
    /// `head` as last loaded and checked.
    head: u64,
    /// Messages lost and not yet told: a loss is told with the message
    /// after it, which may not be published yet (the slot of the lost one
    /// is being overwritten by the message at `head`).
    lost: u64,
}

/// The most times in a row the same message may be found torn (an honest
/// publisher tears it once at most) before the reader calls it `Corrupt`.
const TORN_LIMIT: u32 = 3;

/// Why [`Reader::read`] failed: the publisher broke the protocol.
pub(crate) type Corrupt = String;

impl Reader {
    /// A reader starting at message `start`, of which `head` are published
    /// (checked by the caller: `start <= head < HEAD_LIMIT`).
    pub(crate) fn new(start: u64, head: u64) -> Reader {
        Reader { next: start, head, lost: 0 }
    }

    /// The next message it will read.
    #[cfg(test)]
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    fn refresh<M: TopicMemory>(&mut self, mem: &M) -> Result<u64, Corrupt> {
        let head = mem.head().load(Ordering::Acquire);
        if head < self.head || head >= HEAD_LIMIT {
            return Err(format!("the topic's head {head} is impossible (it was {} before)", self.head));
        }
        self.head = head;
        Ok(head)
    }

    /// Whether `head` says there is more to read (a look that changes
    /// nothing; nonsense shows at the next [`read`](Self::read)).
    pub(crate) fn ready<M: TopicMemory>(&self, mem: &M) -> bool {
        mem.head().load(Ordering::Acquire) != self.next
    }

    /// Reads the next message into `buf` (resized to it): `Ok(Some(lost))`
    /// with the messages lost just before it, `Ok(None)` when there is
    /// none yet (a loss found meanwhile is told with the next message).
    pub(crate) fn read<M: TopicMemory>(&mut self, mem: &M, buf: &mut Vec<u8>) -> Result<Option<u64>, Corrupt> {
        let slots = mem.slots() as u64;
        // Copies of the same message torn in a row. An honest publisher
        // tears a message at most once: the slot's sequence only grows, so
        // the next look finds it taken and counts the loss. A publisher
        // that puts the sequence back to make the reader retry for ever is
        // told apart by this.
        let mut torn: (u64, u32) = (u64::MAX, 0);
        loop {
            if self.next == self.head && self.refresh(mem)? == self.next {
                return Ok(None);
            }
            if self.head - self.next > slots {
                let gone = self.head - slots - self.next;
                self.lost += gone;
                self.next += gone;
            }
            let slot = (self.next as usize) & (mem.slots() - 1);
            let want = 2 * self.next + 2;
            let seq = mem.seq(slot).load(Ordering::Acquire);
            if seq == want {
                let len = mem.len(slot).load(Ordering::Relaxed);
                if len <= mem.max_message() as u64 {
                    // Bounded by the slot.
                    buf.resize(len as usize, 0);
                    mem.read(slot, buf);
                }
                M::fence(Ordering::Acquire);
                let again = mem.seq(slot).load(Ordering::Relaxed);
                if again == seq {
                    if len > mem.max_message() as u64 {
                        return Err(format!(
                            "message {} announces {len} bytes, more than a slot holds ({})",
                            self.next,
                            mem.max_message()
                        ));
                    }
                    self.next += 1;
                    return Ok(Some(std::mem::take(&mut self.lost)));
                }
                // Overwritten while it was copied: look again, with an
                // acquire load (a relaxed one does not carry the `head`
                // that goes with it).
                torn = if torn.0 == self.next { (self.next, torn.1 + 1) } else { (self.next, 1) };
                if torn.1 > TORN_LIMIT {
                    return Err(format!(
                        "message {} was torn {} times in a row: its slot's sequence went back to it each time",
                        self.next, torn.1
                    ));
                }
                continue;
            }
            if seq < want {
                return Err(format!(
                    "slot {slot} holds sequence {seq}, but message {} is published ({} are)",
                    self.next, self.head
                ));
            }
            // The slot holds (or is taking) message `taken`: everything up
            // to `taken - slots` is gone.
            let taken = (seq - 1) / 2;
            let head = self.refresh(mem)?;
            if taken < self.next + slots || taken > head {
                return Err(format!(
                    "slot {slot} holds sequence {seq}, impossible for message {} ({head} are published)",
                    self.next
                ));
            }
            let gone = taken - slots + 1 - self.next;
            self.lost += gone;
            self.next += gone;
        }
    }

    /// After reading: tells the publisher the new position. `true`: it
    /// sleeps waiting for this subscriber, wake it.
    #[inline]
    pub(crate) fn progress<C: CursorMemory>(&self, page: &C) -> bool {
        page.cursor().swap(self.next, Ordering::AcqRel) & PARKED != 0
    }

    /// Before sleeping for a message: announces it on `published`, then
    /// looks at `head`; `false`: something came meanwhile (the announcement
    /// is withdrawn).
    pub(crate) fn park<C: CursorMemory, M: TopicMemory>(&self, page: &C, mem: &M) -> bool {
        page.published().fetch_or(PARKED, Ordering::AcqRel);
        if self.ready(mem) {
            Reader::unpark(page);
            return false;
        }
        true
    }

    /// Withdraws the announcement.
    pub(crate) fn unpark<C: CursorMemory>(page: &C) {
        page.published().fetch_and(INDEX, Ordering::AcqRel);
    }
}
