//! A sender's payload pool: large messages written in place once, then
//! passed by reference through the ring.
//!
//! The sender creates the pool when it connects (`ipckit-shm:NAME:pool`, a
//! memfd of `?pool=` bytes, sparse: a page costs memory only once
//! written), maps it read-write, seals it against shrinking, growing,
//! further writable mappings (`F_SEAL_FUTURE_WRITE`, which also forbids
//! punching holes) and further seals, and hands it to the receiver in its
//! hello. The receiver can only map it read-only: the sender alone can
//! write its pool, so a loan is a sound `&mut [u8]` for it.
//!
//! The sender reserves (`fallocate`) and writes every page of a chunk the
//! first time it lends it, so that memory running out is an error there,
//! and so that the pages are data, not holes: the receiver refuses a
//! reference that reaches a hole (`SEEK_HOLE`, once each time the part of
//! the pool known to be written grows), since reading a hole of a shared
//! mapping would allocate memory the sender never paid for.
//!
//! The pool is cut into chunks of [`CHUNK`] bytes; a message takes a run of
//! consecutive chunks (first fit). A message in the pool travels as a ring
//! record with tag [`TAG_POOL`](super::ring::TAG_POOL) whose 8-byte
//! payload is the message's byte offset in the pool; the record's length
//! is the message's. The receiver checks the reference (chunk-aligned,
//! inside the pool, not overlapping chunks it still holds) and, when it is
//! done with the message, gives the chunks back through the release ring
//! (see `layout`). A receiver that never gives them back makes the sender
//! wait for room (or `Full`), never reuse a chunk the receiver holds.

use std::ptr::NonNull;
use std::sync::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::shm::{Region, Trust};

/// The pool's unit of allocation: 64 KiB.
pub(crate) const CHUNK: usize = 64 * 1024;
/// The default pool, `?pool=`: 64 MiB. Sparse: only the pages written cost
/// memory. It holds the bench's 16 MiB messages.
pub(crate) const DEFAULT_POOL: usize = 64 << 20;
/// The largest pool a receiver maps: 16 GiB.
pub(crate) const MAX_POOL: usize = 16 << 30;

/// Whether `size` is a pool size ipckit accepts (0: no pool).
pub(crate) fn check_size(size: usize) -> std::result::Result<(), String> {
    if size != 0 && (size % CHUNK != 0 || size > MAX_POOL) {
        return Err(format!("pool size {size} must be a multiple of {CHUNK} bytes, at most {MAX_POOL}"));
    }
    Ok(())
}

/// Chunks a message of `len` bytes takes (at least one).
pub(crate) fn chunks_for(len: usize) -> usize {
    len.div_ceil(CHUNK).max(1)
}

/// A bitmap of chunks: set bits are in use.
#[derive(Debug)]
struct Bitmap {
    words: Vec<u64>,
    chunks: usize,
}

impl Bitmap {
    fn new(chunks: usize) -> Bitmap {
        Bitmap { words: vec![0; chunks.div_ceil(64)], chunks }
    }

    fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, first: usize, count: usize, on: bool) {
        for i in first..first + count {
            if on {
                self.words[i / 64] |= 1 << (i % 64);
            } else {
                self.words[i / 64] &= !(1 << (i % 64));
            }
        }
    }

    /// Whether `first..first + count` is inside and every chunk is `on`.
    fn all(&self, first: usize, count: usize, on: bool) -> bool {
        first.checked_add(count).is_some_and(|end| end <= self.chunks)
            && (first..first + count).all(|i| self.get(i) == on)
    }

    /// The first run of `count` free chunks in `from..to`.
    fn find_free_in(&self, from: usize, to: usize, count: usize) -> Option<usize> {
        let mut run = 0;
        let mut i = from;
        while i < to {
            // A whole word in use: skip it.
            if run == 0 && i % 64 == 0 && self.words[i / 64] == u64::MAX {
                i += 64;
                continue;
            }
            if self.get(i) {
                run = 0;
            } else {
                run += 1;
                if run == count {
                    return Some(i + 1 - count);
                }
            }
            i += 1;
        }
        None
    }

    fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The sender's book of its pool: which chunks are lent (to a loan, or to
/// the receiver until it gives them back). First fit: the lowest free run,
/// so that the pool's footprint (chunks ever reserved) is what its busiest
/// moment needed, and recently used chunks, still in cache, are used again.
#[derive(Debug)]
pub(crate) struct Lender {
    lent: Bitmap,
}

impl Lender {
    pub(crate) fn new(chunks: usize) -> Lender {
        Lender { lent: Bitmap::new(chunks) }
    }

    /// Lends chunks for `len` bytes: the first, if a run of them is free.
    pub(crate) fn lend(&mut self, len: usize) -> Option<usize> {
        let count = chunks_for(len);
        let first = self.lent.find_free_in(0, self.lent.chunks, count)?;
        self.lent.set(first, count, true);
        Some(first)
    }

    /// Takes chunks back; `false` (and nothing changes) when they were not
    /// all lent: a receiver breaking the protocol.
    pub(crate) fn take_back(&mut self, first: usize, count: usize) -> bool {
        if count == 0 || !self.lent.all(first, count, true) {
            return false;
        }
        self.lent.set(first, count, false);
        true
    }

    pub(crate) fn is_lent(&self, chunk: usize) -> bool {
        chunk < self.lent.chunks && self.lent.get(chunk)
    }

    /// Chunks lent now.
    pub(crate) fn lent(&self) -> usize {
        self.lent.count_ones()
    }
}

/// The receiver's book of a sender's pool: which chunks it holds.
#[derive(Debug)]
pub(crate) struct Holder {
    held: Bitmap,
    size: usize,
}

impl Holder {
    pub(crate) fn new(size: usize) -> Holder {
        Holder { held: Bitmap::new(size / CHUNK), size }
    }

    /// Checks a reference a sender published: `len` bytes at `offset`,
    /// chunk-aligned, inside the pool, not overlapping a message held.
    /// Returns its first chunk and chunk count.
    pub(crate) fn check(&self, offset: u64, len: u64) -> std::result::Result<(usize, usize), String> {
        // A message takes at least one chunk, also an empty one.
        let fits = offset < self.size as u64 && offset.checked_add(len).is_some_and(|end| end <= self.size as u64);
        if offset % CHUNK as u64 != 0 || !fits {
            return Err(format!(
                "a pool reference of {len} bytes at offset {offset} is not inside the {}-byte pool in whole chunks",
                self.size
            ));
        }
        let (first, count) = ((offset / CHUNK as u64) as usize, chunks_for(len as usize));
        if !self.held.all(first, count, false) {
            return Err(format!("a pool reference at offset {offset} overlaps a message still held"));
        }
        Ok((first, count))
    }

    pub(crate) fn hold(&mut self, first: usize, count: usize) {
        self.held.set(first, count, true);
    }

    pub(crate) fn give_back(&mut self, first: usize, count: usize) {
        self.held.set(first, count, false);
    }

    pub(crate) fn held(&self) -> usize {
        self.held.count_ones()
    }
}

/// The sender's pool.
#[derive(Debug)]
pub(crate) struct Pool {
    // Invariant: `base` is the start of `region`'s writable mapping of
    // `size` bytes, which no other process can write (sealed) and which
    // lives as long as `self`.
    base: NonNull<u8>,
    size: usize,
    lent: Lender,
    /// Bytes from the start already reserved (`fallocate`): chunks are
    /// reserved the first time they are lent.
    reserved: usize,
    region: Region,
}

// SAFETY: a Pool owns its mapping; the pointer is used only through `&mut
// self` (loans) or to copy.
unsafe impl Send for Pool {}
// SAFETY: `&self` methods only read plain fields (the pointer's value, the
// books); the memory behind the pointer is reached through `&mut self`.
unsafe impl Sync for Pool {}

impl Pool {
    /// A new pool of `size` bytes (a multiple of [`CHUNK`]), sealed so that
    /// every later mapping is read-only.
    pub(crate) fn create(channel: &str, size: usize) -> Result<Pool> {
        check_size(size).map_err(|why| Error::new(ErrorKind::Invalid, "connect", channel, why))?;
        let region = Region::memfd_sparse(&format!("ipckit-shm:{channel}:pool"), size)?;
        region.seal_writes()?;
        region.seal_seals()?;
        let base = NonNull::new(region.as_ptr()).expect("a mapping is never at address 0");
        Ok(Pool { base, size, lent: Lender::new(size / CHUNK), reserved: 0, region })
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The descriptor to hand to the receiver.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.region.fd().expect("a memfd")
    }

    /// Lends chunks for a message of `len` bytes: its first chunk, if there
    /// is room (`Ok(None)`: none now). Memory the system cannot give is an
    /// error here, not a fault at a later store.
    pub(crate) fn alloc(&mut self, len: usize) -> Result<Option<usize>> {
        let Some(first) = self.lent.lend(len) else { return Ok(None) };
        let end = (first + chunks_for(len)) * CHUNK;
        if end > self.reserved {
            if let Err(e) = self.region.reserve_range(self.reserved, end - self.reserved) {
                self.lent.take_back(first, chunks_for(len));
                return Err(e);
            }
            // Written, so that the pages are data to the receiver's check,
            // not holes (see the module docs).
            for page in (self.reserved..end).step_by(4096) {
                // SAFETY: inside the writable mapping (`end` is at most the
                // pool's size); the chunks from `reserved` on were never
                // lent before, so nothing reads them.
                unsafe { self.base.as_ptr().add(page).write_volatile(0) };
            }
            self.reserved = end;
        }
        Ok(Some(first))
    }

    /// The writable start of chunk `first` (lent).
    pub(crate) fn chunk_ptr(&self, first: usize) -> NonNull<u8> {
        assert!(self.lent.is_lent(first), "a lent chunk");
        // SAFETY: inside the mapping (asserted: `first` is a chunk of it).
        unsafe { self.base.add(first * CHUNK) }
    }

    /// Takes back chunks: the receiver is done with them, or a loan was
    /// dropped. `false` when they were not lent (a receiver breaking the
    /// protocol): nothing changes then.
    pub(crate) fn free(&mut self, first: usize, count: usize) -> bool {
        self.lent.take_back(first, count)
    }

    /// Copies `parts` (`len` bytes in all) into the chunks lent from
    /// `first`.
    pub(crate) fn fill(&mut self, first: usize, parts: &[std::io::IoSlice<'_>], len: usize) {
        let offset = first * CHUNK;
        assert!(self.lent.is_lent(first) && offset + len <= self.size, "a lent range");
        // SAFETY: the range is inside the mapping (asserted), which is
        // writable and lives as long as `self`; no other process can write
        // the pool (sealed: every other mapping is read-only), and the
        // receiver reads these chunks only once they are published, after
        // this copy (release, with the ring record).
        let dst = unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(offset), len) };
        let mut at = 0;
        for part in parts {
            dst[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
    }

    /// Bytes of the pool lent now (in whole chunks).
    pub(crate) fn lent_bytes(&self) -> usize {
        self.lent.lent() * CHUNK
    }
}

/// The receiver's view of a sender's pool: read-only, and which chunks the
/// receiver holds now.
#[derive(Debug)]
pub(crate) struct PoolView {
    // Invariant: `base` is the start of `region`'s read-only mapping of
    // `size` bytes, alive as long as `self`.
    base: NonNull<u8>,
    size: usize,
    held: Mutex<Holder>,
    /// Bytes from the start known to be written (no hole): references
    /// within them need no look.
    written: std::sync::atomic::AtomicUsize,
    region: Region,
}

// SAFETY: the mapping is owned; it is only copied from (through the asm or
// atomic copies) or lent out by `unsafe fn as_slice`.
unsafe impl Send for PoolView {}
// SAFETY: as above; `held` is behind a Mutex.
unsafe impl Sync for PoolView {}

impl PoolView {
    /// Maps the pool a sender handed over: `size` bytes as it announced,
    /// sealed against shrinking, growing and writes (else refused before
    /// mapping).
    pub(crate) fn open(fd: std::os::fd::OwnedFd, size: usize, label: &str) -> Result<PoolView> {
        use crate::sys::shm::Seals;
        let refuse = |why: String| Error::new(ErrorKind::Corrupt, "accept", label, why);
        check_size(size).map_err(refuse)?;
        if size == 0 {
            return Err(refuse("a pool of 0 bytes".into()));
        }
        // The seals themselves, not how the descriptor was opened: a
        // read-only descriptor of a memfd others can write would pass a
        // look at the mapping.
        let seals = crate::sys::shm::seals(std::os::fd::AsFd::as_fd(&fd)).unwrap_or(Seals::empty());
        if !seals.contains(Seals::SHRINK | Seals::GROW) || !seals.intersects(Seals::WRITE | Seals::FUTURE_WRITE) {
            return Err(refuse(format!(
                "the sender's pool is not sealed against shrinking, growing and writes by others (seals {seals:?})"
            )));
        }
        let region = Region::from_received_fd(fd, size, Trust::SealedOnly)?;
        if region.is_writable() {
            return Err(refuse("the sender's pool is mapped writable".into()));
        }
        let base = NonNull::new(region.as_ptr()).expect("a mapping is never at address 0");
        let written = std::sync::atomic::AtomicUsize::new(0);
        Ok(PoolView { base, size, held: Mutex::new(Holder::new(size)), written, region })
    }

    /// Checks a reference the sender published (see [`Holder::check`]);
    /// nothing is marked yet (see [`hold`](Self::hold)).
    pub(crate) fn check(&self, offset: u64, len: u64) -> std::result::Result<(usize, usize), String> {
        use std::sync::atomic::Ordering::Relaxed;
        let found = self.held.lock().unwrap_or_else(|p| p.into_inner()).check(offset, len)?;
        // Inside the pool (checked), so both fit a usize.
        let (offset, end) = (offset as usize, (offset + len) as usize);
        let written = self.written.load(Relaxed);
        if end > written {
            // One look each time the written part grows (no hole can come
            // back: the pool is sealed against writes by others, which
            // forbids punching holes).
            let hole = self.region.next_hole(offset).map_err(|e| e.to_string())?;
            if hole < end {
                return Err(format!(
                    "a pool reference of {len} bytes at offset {offset} reaches memory the sender never wrote (at \
                     {hole})"
                ));
            }
            if offset <= written {
                self.written.fetch_max(hole, Relaxed);
            }
        }
        Ok(found)
    }

    /// Marks chunks (checked by [`check`](Self::check), by the one thread
    /// that receives: other threads only give chunks back) held.
    pub(crate) fn hold(&self, first: usize, count: usize) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).hold(first, count);
    }

    /// The receiver is done with a message's chunks.
    pub(crate) fn give_back(&self, first: usize, count: usize) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).give_back(first, count);
    }

    /// The pool's size.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Copies `buf.len()` bytes at `offset` of the pool out.
    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset <= self.size && buf.len() <= self.size - offset, "a pool read inside the pool");
        // SAFETY: inside the mapping (asserted), which lives as long as
        // `self`; the copy is made outside the memory model (see layout).
        unsafe { super::layout::copy_from_shared(self.base.as_ptr().add(offset), buf) }
    }

    /// The bytes at `offset`.
    ///
    /// # Safety
    ///
    /// The sender can still write them: the caller must ensure that it
    /// does not while the slice lives (an honest sender never writes a
    /// chunk it has published; only a trusted sender may be taken at its
    /// word).
    pub(crate) unsafe fn slice(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset <= self.size && len <= self.size - offset, "a pool slice inside the pool");
        // SAFETY: inside the live mapping (asserted); that nobody writes the
        // bytes meanwhile is the caller's promise.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(offset), len) }
    }
}

/// A sender's pool as its receiver holds it: the read-only view, and the
/// release ring through which chunks go back. Shared (an `Arc`) by the
/// receiver and every sample it lent out, so that a sample dropped on any
/// thread, also after its sender left, gives its chunks back.
#[derive(Debug)]
pub(crate) struct PeerPool {
    view: PoolView,
    release: Mutex<super::ring::Producer<super::memory::MappedRing>>,
    /// A descriptor of the sender's control connection, to wake a sender
    /// that waits for chunks.
    wake: std::os::fd::OwnedFd,
}

impl PeerPool {
    pub(crate) fn new(view: PoolView, release: super::memory::MappedRing, wake: std::os::fd::OwnedFd) -> PeerPool {
        PeerPool { view, release: Mutex::new(super::ring::Producer::new(release)), wake }
    }

    pub(crate) fn view(&self) -> &PoolView {
        &self.view
    }

    /// The receiver is done with a message: its chunks go back to the
    /// sender (and a sender waiting for them is woken).
    pub(crate) fn give_back(&self, first: usize, count: usize) {
        use super::ring::Push;
        self.view.give_back(first, count);
        let record = ((count as u64) << 32 | first as u64).to_le_bytes();
        let mut release = self.release.lock().unwrap_or_else(|p| p.into_inner());
        // Full or nonsense only when the sender broke the protocol (the
        // ring holds a record for each of its chunks): it loses its own
        // chunks, nothing else.
        if let Ok(Push::Done { wake: true }) =
            release.try_push(&[std::io::IoSlice::new(&record)], 8, super::ring::TAG_RELEASE)
        {
            use std::os::fd::AsFd;
            let _ = crate::sys::net::send(self.wake.as_fd(), &[std::io::IoSlice::new(b"w")], &[], true);
        }
    }
}
