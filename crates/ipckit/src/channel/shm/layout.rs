//! The shared memory of one ring: a sealed memfd the receiver creates for
//! each sender, and the copies in and out of memory a peer may write.
//!
//! # Layout
//!
//! All offsets in bytes; every multi-byte field little-endian (the native
//! order of every target ipckit builds for); `#[repr(C)]` [`RingHeader`].
//!
//! | offset | size | field | written by |
//! | --- | --- | --- | --- |
//! | 0 | 64 | ipckit object header: magic, version 2 (1 had no release ring), state ready, kind 6 (`ObjectKind::ChannelRing`), `size` = the memfd's size | receiver, before handing the memfd over |
//! | 64 | 8 | `tail`: bytes published (bit 63: the receiver is parked) | sender (bit 63: receiver) |
//! | 72 | 8 | `release head`: release records consumed | sender |
//! | 80 | 48 | reserved, 0 | |
//! | 128 | 8 | `head`: bytes consumed (bit 63: the sender is parked) | receiver (bit 63: sender) |
//! | 136 | 8 | `release tail`: release records published (bit 63: the sender waits for pool room) | receiver (bit 63: sender) |
//! | 144 | 48 | reserved, 0 | |
//! | 192 | 8 | `capacity`: the data area's size, a power of two | receiver, before handing over |
//! | 200 | 4 | `closed`: 1 once the receiver has stopped serving this sender | receiver |
//! | 204 | 4 | reserved, 0 | |
//! | 208 | 8 | `release capacity`: the release ring's size, a power of two | receiver, before handing over |
//! | 216 | 40 | reserved, 0 | |
//! | 256 | `capacity` | data: the records (see `ring`) | sender |
//! | 256 + `capacity` | `release capacity` | the release ring: records whose 8-byte payload (`u32` first chunk, `u32` chunks) gives pool chunks back | receiver |
//!
//! The release ring runs the same protocol as the message ring (see
//! `ring`), the other way: the receiver produces, a record per pool message
//! it is done with; the sender consumes, before it lends from its pool.
//! It holds a record for every chunk of the sender's pool (16 bytes each,
//! at least 4 KiB), so it can never be full while the sender keeps the
//! protocol: every record stands for a message whose chunks the sender
//! still counts as lent.
//!
//! `tail` and `head` are on cache lines of their own, so that publishing
//! and consuming do not contend for a line; `capacity` and `closed` share a
//! line that is written once (and once more at the end), which the sender
//! reads on every send at no cost. The memfd is sealed against shrinking,
//! growing and further seals before it is handed over: neither side can
//! make the other's accesses fault.
//!
//! # The receiver's liveness page
//!
//! One more memfd, `ipckit-shm:NAME:receiver`, one page, shared by every
//! sender of the channel and mapped read-only by them (sealed with
//! `F_SEAL_FUTURE_WRITE` after the receiver mapped it):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 64 | ipckit object header, kind 7 (`ObjectKind::ChannelReceiver`) |
//! | 64 | 40 | a robust, process-shared `pthread_mutex_t`, locked by the receiver's service thread for as long as the receiver lives |
//!
//! When that thread ends (the receiver dropped, or its process killed at
//! any instruction), the kernel's robust-futex cleanup marks the mutex's
//! lock word `FUTEX_OWNER_DIED`. A sender loads that word on every send:
//! it learns that its receiver is gone at its very next send, with no
//! system call. Only the receiver can write the page, so a hostile sender
//! cannot touch the list pointers glibc keeps in the mutex.
//!
//! # Copies from memory a peer may write
//!
//! An honest peer never writes the bytes this side is reading (the ring
//! protocol hands them over with release/acquire), but a hostile one may,
//! and a plain `copy_nonoverlapping` racing with a write is undefined
//! behaviour in Rust's memory model even where the hardware copies the
//! bytes faithfully. The copies here are therefore made outside the
//! language: on x86-64 with one `rep movsb` in inline assembly (which the
//! compiler treats as an opaque access to the bytes; with `FSRM`/`ERMSB`,
//! which every recent x86-64 has, it is as fast as `memcpy` at every size),
//! elsewhere word by word with relaxed atomic loads and stores. Either way
//! a racing writer gives wrong bytes, never undefined behaviour, and the
//! bytes are checked after they are copied.

use crate::shm::{HEADER_SIZE, ObjectKind, ObjectSpec};

/// Byte offset of `tail`.
pub(crate) const TAIL: usize = 64;
/// Byte offset of the release ring's head (the sender's).
pub(crate) const RELEASE_HEAD: usize = 72;
/// Byte offset of the release ring's tail (the receiver's).
pub(crate) const RELEASE_TAIL: usize = 136;
/// Byte offset of `release capacity`.
pub(crate) const RELEASE_CAPACITY: usize = 208;
/// The smallest release ring.
pub(crate) const MIN_RELEASE: usize = 4096;
/// A release record: the header and the 8-byte payload.
pub(crate) const RELEASE_RECORD: usize = 16;

/// The release ring for a pool of `chunks` chunks: one record each.
pub(crate) fn release_capacity(chunks: usize) -> usize {
    (chunks * RELEASE_RECORD).next_power_of_two().max(MIN_RELEASE)
}
/// Byte offset of `head`.
pub(crate) const HEAD: usize = 128;
/// Byte offset of `closed`.
pub(crate) const CLOSED: usize = 200;
/// Byte offset of the liveness page's mutex.
pub(crate) const LIVE_MUTEX: usize = HEADER_SIZE;
/// The liveness page's size.
pub(crate) const LIVE_PAGE: usize = 4096;
/// Byte offset of `capacity`.
pub(crate) const CAPACITY: usize = 192;
/// Byte offset of the data area.
pub(crate) const DATA: usize = 256;

const _: () = assert!(TAIL == HEADER_SIZE && HEAD - TAIL == 64 && DATA % 64 == 0);

/// The smallest ring: 4 KiB.
pub(crate) const MIN_CAPACITY: usize = 4096;
/// The largest ring: 1 GiB.
pub(crate) const MAX_CAPACITY: usize = 1 << 30;
/// The default ring, `?size=`: 1 MiB, so that the bench's 64 KiB messages
/// and bursts of them fit. The ring's pages are reserved when it is made
/// (so that a full memory never shows up later as a fault), so each sender
/// costs its receiver `size` bytes of memory.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;

/// The header of a ring's memory, as a C program would declare it.
#[repr(C)]
#[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout)]
pub(crate) struct RingHeader {
    pub(crate) object: crate::shm::Header,
    pub(crate) tail: u64,
    pub(crate) release_head: u64,
    pub(crate) reserved1: [u64; 6],
    pub(crate) head: u64,
    pub(crate) release_tail: u64,
    pub(crate) reserved2: [u64; 6],
    pub(crate) capacity: u64,
    pub(crate) closed: u32,
    pub(crate) reserved3: u32,
    pub(crate) release_capacity: u64,
    pub(crate) reserved4: [u64; 5],
}

const _: () = assert!(std::mem::size_of::<RingHeader>() == DATA);
const _: () = assert!(std::mem::offset_of!(RingHeader, tail) == TAIL);
const _: () = assert!(std::mem::offset_of!(RingHeader, head) == HEAD);
const _: () = assert!(std::mem::offset_of!(RingHeader, closed) == CLOSED);
const _: () = assert!(std::mem::offset_of!(RingHeader, capacity) == CAPACITY);
const _: () = assert!(std::mem::offset_of!(RingHeader, release_head) == RELEASE_HEAD);
const _: () = assert!(std::mem::offset_of!(RingHeader, release_tail) == RELEASE_TAIL);
const _: () = assert!(std::mem::offset_of!(RingHeader, release_capacity) == RELEASE_CAPACITY);

/// What the liveness page's object header says.
pub(crate) fn live_spec() -> ObjectSpec {
    ObjectSpec { kind: ObjectKind::ChannelReceiver.code(), version: 1, abi: 0, payload: LIVE_PAGE - HEADER_SIZE }
}

/// What a ring's object header says.
pub(crate) fn spec(capacity: usize, release: usize) -> ObjectSpec {
    ObjectSpec {
        kind: ObjectKind::ChannelRing.code(),
        version: 2,
        abi: 0,
        payload: DATA - HEADER_SIZE + capacity + release,
    }
}

/// Copies `src` into memory at `dst` that another process may read or
/// write at the same time.
///
/// # Safety
///
/// `dst..dst + src.len()` lies inside one live, writable mapping.
#[inline]
pub(crate) unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `rep movsb` copies rcx bytes from rsi to rdi, forward (the
    // direction flag is clear at every function boundary, per the ABI);
    // both ranges are valid (the caller's promise for `dst`; `src` is a
    // slice) and they do not overlap (`src` is private memory). The asm
    // touches only those bytes and the three registers it declares.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") src.len() => _,
            inout("rsi") src.as_ptr() => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as promised by the caller.
    unsafe {
        words::copy_to(dst, src)
    }
}

/// Copies `dst.len()` bytes out of memory at `src` that another process
/// may write at the same time.
///
/// # Safety
///
/// `src..src + dst.len()` lies inside one live mapping.
#[inline]
pub(crate) unsafe fn copy_from_shared(src: *const u8, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `copy_to_shared`, with the roles of the ranges swapped:
    // `src` is valid for reads (the caller's promise), `dst` is a private
    // slice.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") dst.len() => _,
            inout("rsi") src => _,
            inout("rdi") dst.as_mut_ptr() => _,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as promised by the caller.
    unsafe {
        words::copy_from(src, dst)
    }
}

/// Word-wise copies with relaxed atomics, for targets without the asm
/// copy.
#[cfg(not(target_arch = "x86_64"))]
mod words {
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

    /// # Safety
    ///
    /// As [`super::copy_to_shared`].
    pub(super) unsafe fn copy_to(dst: *mut u8, src: &[u8]) {
        let mut i = 0;
        while i < src.len() {
            let p = dst.wrapping_add(i);
            if (p as usize) % 8 == 0 && src.len() - i >= 8 {
                let word = u64::from_ne_bytes(src[i..i + 8].try_into().expect("8 bytes"));
                // SAFETY: 8 aligned bytes inside the mapping (the caller's
                // promise); atomics permit concurrent access.
                unsafe { AtomicU64::from_ptr(p.cast()) }.store(word, Ordering::Relaxed);
                i += 8;
            } else {
                // SAFETY: one byte inside the mapping.
                unsafe { AtomicU8::from_ptr(p) }.store(src[i], Ordering::Relaxed);
                i += 1;
            }
        }
    }

    /// # Safety
    ///
    /// As [`super::copy_from_shared`].
    pub(super) unsafe fn copy_from(src: *const u8, dst: &mut [u8]) {
        let mut i = 0;
        while i < dst.len() {
            let p = src.wrapping_add(i) as *mut u8;
            if (p as usize) % 8 == 0 && dst.len() - i >= 8 {
                // SAFETY: 8 aligned bytes inside the mapping; a load only.
                let word = unsafe { AtomicU64::from_ptr(p.cast()) }.load(Ordering::Relaxed);
                dst[i..i + 8].copy_from_slice(&word.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: one byte inside the mapping; a load only.
                dst[i] = unsafe { AtomicU8::from_ptr(p) }.load(Ordering::Relaxed);
                i += 1;
            }
        }
    }
}
