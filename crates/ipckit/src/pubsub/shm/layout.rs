//! A topic's shared memory, as tables: the topic memfd (the publisher
//! writes, every subscriber maps it read-only) and one cursor page per
//! subscriber (shared read-write by the publisher and that subscriber).
//!
//! # The topic memfd, `ipckit-topic:NAME`
//!
//! All offsets in bytes, every field little-endian; `#[repr(C)]`
//! [`TopicHeader`]. Sealed against shrinking, growing and further seals,
//! and with `F_SEAL_FUTURE_WRITE` once the publisher has mapped it: every
//! later mapping (the subscribers') is read-only, so a subscriber cannot
//! change what the others read.
//!
//! | offset | size | field | written by |
//! | --- | --- | --- | --- |
//! | 0 | 64 | ipckit object header: magic, version 1, state ready, kind 8 (`ObjectKind::Topic`), `size` = the memfd's size | publisher, before sealing |
//! | 64 | 8 | `head`: messages ever published; message `m` is in slot `m % slots` | publisher |
//! | 72 | 56 | reserved, 0 | |
//! | 128 | 8 | `slots`: a power of two, at least 64 and at least `history` | publisher, before sealing |
//! | 136 | 8 | `slot size`: bytes per slot, a power of two from 64 B to 16 MiB; the largest message is `slot size - 16` | publisher, before sealing |
//! | 144 | 8 | `history`: the most messages a late subscriber may ask for | publisher, before sealing |
//! | 152 | 4 | `overflow`: 0 block, 1 drop-oldest | publisher, before sealing |
//! | 156 | 4 | `closed`: 1 once the publisher was dropped (its clean end) | publisher |
//! | 160 | 96 | reserved, 0 | |
//! | 256 | `slots × slot size` | the slots | publisher |
//!
//! A slot (`slot size` bytes, 64-aligned):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | `seq`, a seqlock: `2m + 1` while message `m` is written into the slot, `2m + 2` once it is there; 0: never written |
//! | 8 | 8 | `len`: the message's length, at most `slot size - 16` |
//! | 16 | `slot size - 16` | the message's bytes (`len` of them) |
//!
//! `head` is on a cache line of its own: it is the one word every
//! subscriber polls. The seqlock lets a subscriber read a message in place
//! while, under drop-oldest, the publisher may be overwriting it: it copies
//! the bytes out, then checks that `seq` did not change (see `protocol`).
//!
//! # A subscriber's cursor page, `ipckit-topic:NAME:cursor`
//!
//! One page, made by the publisher for each subscriber and handed to that
//! subscriber only; both map it read-write (sealed against shrinking and
//! growing). Each word on a cache line of its own:
//!
//! | offset | size | field | written by |
//! | --- | --- | --- | --- |
//! | 0 | 64 | ipckit object header, kind 9 (`ObjectKind::TopicCursor`) | publisher, before handing over |
//! | 64 | 8 | `published`: bits 0-62 the publisher's `head` (swapped in at every publish); bit 63 `PARKED`: the subscriber sleeps, waiting for a message | publisher (bit 63: subscriber) |
//! | 72 | 56 | reserved, 0 | |
//! | 128 | 8 | `cursor`: bits 0-62 the next message the subscriber will read (swapped in after every message); bit 63 `PARKED`: the publisher sleeps, waiting for this subscriber (`overflow=block`) | subscriber (bit 63: publisher) |
//! | 136 | 3960 | reserved, 0 | |
//!
//! A subscriber can write only its own page: the worst it can do is give
//! the publisher a nonsense `cursor` (the publisher then drops it) or a
//! `PARKED` bit that is not true (a wasted wake-up, which it pays for).

use crate::shm::{HEADER_SIZE, ObjectKind, ObjectSpec};

/// Byte offset of `head`.
pub(crate) const HEAD: usize = 64;
/// Byte offset of `slots`.
pub(crate) const SLOTS: usize = 128;
/// Byte offset of `closed`.
pub(crate) const CLOSED: usize = 156;
/// Byte offset of the first slot.
pub(crate) const DATA: usize = 256;
/// A slot's header: `seq`, `len`.
pub(crate) const SLOT_HEADER: usize = 16;
/// Byte offset of `len` in a slot.
pub(crate) const SLOT_LEN: usize = 8;

/// The fewest slots.
pub(crate) const MIN_SLOTS: usize = 64;
/// The smallest slot.
pub(crate) const MIN_SLOT: usize = 64;
/// The largest slot.
pub(crate) const MAX_SLOT: usize = 16 << 20;
/// The default slot, `?size=`: messages up to 64 KiB - 16 bytes.
pub(crate) const DEFAULT_SLOT: usize = 64 << 10;
/// The most memory the slots may take.
pub(crate) const MAX_DATA: usize = 1 << 30;

/// `overflow` values.
pub(crate) const OVERFLOW_BLOCK: u32 = 0;
pub(crate) const OVERFLOW_DROP_OLDEST: u32 = 1;

/// Byte offset of `published` in the cursor page.
pub(crate) const PUBLISHED: usize = 64;
/// Byte offset of `cursor` in the cursor page.
pub(crate) const CURSOR: usize = 128;
/// The cursor page's size.
pub(crate) const CURSOR_PAGE: usize = 4096;

/// The header of a topic's memory, as a C program would declare it.
#[repr(C)]
#[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
pub(crate) struct TopicHeader {
    pub(crate) object: crate::shm::Header,
    pub(crate) head: u64,
    pub(crate) reserved1: [u64; 7],
    pub(crate) slots: u64,
    pub(crate) slot_size: u64,
    pub(crate) history: u64,
    pub(crate) overflow: u32,
    pub(crate) closed: u32,
    pub(crate) reserved2: [u64; 12],
}

const _: () = assert!(std::mem::size_of::<TopicHeader>() == DATA);
const _: () = assert!(std::mem::offset_of!(TopicHeader, head) == HEAD);
const _: () = assert!(std::mem::offset_of!(TopicHeader, slots) == SLOTS);
const _: () = assert!(std::mem::offset_of!(TopicHeader, closed) == CLOSED);
const _: () = assert!(HEAD == HEADER_SIZE && DATA % 64 == 0 && MIN_SLOT % 64 == 0);

/// What a topic memfd's object header says.
pub(crate) fn topic_spec(slots: usize, slot_size: usize) -> ObjectSpec {
    ObjectSpec { kind: ObjectKind::Topic.code(), version: 1, abi: 0, payload: DATA - HEADER_SIZE + slots * slot_size }
}

/// What a cursor page's object header says.
pub(crate) fn cursor_spec() -> ObjectSpec {
    ObjectSpec { kind: ObjectKind::TopicCursor.code(), version: 1, abi: 0, payload: CURSOR_PAGE - HEADER_SIZE }
}

/// The slots for a history of `history` messages: at least 64, at least
/// `history`, a power of two.
pub(crate) fn slots_for(history: u64) -> Option<usize> {
    usize::try_from(history).ok()?.max(MIN_SLOTS).checked_next_power_of_two()
}

/// Whether a topic of `slots` slots of `slot_size` bytes is one ipckit
/// makes (and a subscriber accepts).
pub(crate) fn check_geometry(slots: usize, slot_size: usize) -> std::result::Result<(), String> {
    if !slot_size.is_power_of_two() || !(MIN_SLOT..=MAX_SLOT).contains(&slot_size) {
        return Err(format!("slot size {slot_size} must be a power of two from {MIN_SLOT} to {MAX_SLOT} bytes"));
    }
    if !slots.is_power_of_two() || slots < MIN_SLOTS || slots.checked_mul(slot_size).is_none_or(|n| n > MAX_DATA) {
        return Err(format!(
            "{slots} slots of {slot_size} bytes: the slots may take at most {MAX_DATA} bytes (a smaller ?history= or \
             ?size= fits)"
        ));
    }
    Ok(())
}
