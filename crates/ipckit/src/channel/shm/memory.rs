//! A ring's memory in a shared mapping: the production [`RingMemory`].

use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::layout::{
    self, CAPACITY, CLOSED, DATA, HEAD, LIVE_MUTEX, LIVE_PAGE, MAX_CAPACITY, MIN_CAPACITY, MIN_RELEASE,
    RELEASE_CAPACITY, RELEASE_HEAD, RELEASE_TAIL, RingHeader, TAIL,
};
use super::ring::RingMemory;
use crate::error::{Error, ErrorKind, Result};
use crate::shm::{Header, MAGIC, Region, STATE_READY, Trust};

/// A ring in a shared mapping, with its words and data area resolved
/// once: the message ring, or the release ring that shares its memfd.
#[derive(Debug)]
pub(crate) struct MappedRing {
    // Invariant: the pointers point into `region`'s mapping (checked when
    // made), which stays at its address while `region` (shared with the
    // other ring of the memfd) lives; the data area is `capacity` bytes at
    // `data`.
    tail: NonNull<AtomicU64>,
    head: NonNull<AtomicU64>,
    closed: NonNull<AtomicU32>,
    data: NonNull<u8>,
    capacity: usize,
    /// The release ring's capacity (after this ring's data area).
    release: usize,
    region: std::sync::Arc<Region>,
}

// SAFETY: a MappedRing owns its mapping (the Region is Send and Sync) and
// hands out only atomics and copies through raw pointers into it, which
// any thread may use.
unsafe impl Send for MappedRing {}
// SAFETY: as above; `&MappedRing` allows atomics and copies only.
unsafe impl Sync for MappedRing {}

/// The header of a new object of `spec`, `size` bytes in all, ready (the
/// object is private to its creator until it hands it over).
fn ready_header(spec: crate::shm::ObjectSpec, size: usize) -> Header {
    Header {
        magic: MAGIC,
        version: spec.version,
        state: STATE_READY,
        abi: spec.abi,
        kind: spec.kind,
        reserved: 0,
        size: size as u64,
        reserved2: [0; 3],
    }
}

/// Whether `capacity` is a ring size ipckit accepts.
pub(crate) fn check_capacity(capacity: usize) -> std::result::Result<(), String> {
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(format!("ring size {capacity} must be a power of two from {MIN_CAPACITY} to {MAX_CAPACITY} bytes"));
    }
    Ok(())
}

impl MappedRing {
    /// The receiver's side: a new memfd named `ipckit-shm:NAME` of
    /// `capacity` data bytes and a release ring of `release` bytes, sealed
    /// against shrinking and growing, its header written. Returns the ring
    /// and the descriptor to hand over.
    pub(crate) fn create(channel: &str, capacity: usize, release: usize) -> Result<MappedRing> {
        check_capacity(capacity).map_err(|why| Error::new(ErrorKind::Invalid, "bind", channel, why))?;
        debug_assert!(release.is_power_of_two() && release >= MIN_RELEASE);
        let size = DATA + capacity + release;
        let region = Region::memfd(&format!("ipckit-shm:{channel}"), size)?;
        region.write(0, &ready_header(layout::spec(capacity, release), size))?;
        region.write(CAPACITY, &(capacity as u64))?;
        region.write(RELEASE_CAPACITY, &(release as u64))?;
        region.seal_seals()?;
        MappedRing::from_region(region, capacity, release)
    }

    /// The sender's side: maps the memfd the receiver handed over (sealed
    /// against shrinking and growing, else refused before mapping) and
    /// checks its header. `label` names the channel in errors.
    pub(crate) fn open(fd: OwnedFd, label: &str) -> Result<MappedRing> {
        let corrupt = |why: String| Error::new(ErrorKind::Corrupt, "connect", label, why);
        let size = crate::sys::fs::fstat(&fd).map_err(|e| Error::os("fstat", label, e))?.size;
        let len = usize::try_from(size).map_err(|_| corrupt(format!("ring memory of {size} bytes")))?;
        if len < DATA + MIN_CAPACITY + MIN_RELEASE {
            return Err(corrupt(format!("ring memory of {len} bytes is too small")));
        }
        let region = Region::from_received_fd(fd, len, Trust::SealedOnly)?;
        let header: RingHeader = region.read(0)?;
        let spec = layout::spec(0, 0);
        let capacity = usize::try_from(header.capacity).unwrap_or(0);
        let release = usize::try_from(header.release_capacity).unwrap_or(0);
        let ok = header.object.magic == MAGIC
            && header.object.kind == spec.kind
            && header.object.version == spec.version
            && header.object.state == STATE_READY
            && header.object.size == size
            && check_capacity(capacity).is_ok()
            && release.is_power_of_two()
            && release >= MIN_RELEASE
            && DATA.checked_add(capacity).and_then(|n| n.checked_add(release)) == Some(len);
        if !ok {
            return Err(corrupt(format!(
                "the receiver's ring memory is not an ipckit ring (kind {}, version {}, capacity {}, release ring {}, \
                 {len} bytes)",
                header.object.kind, header.object.version, header.capacity, header.release_capacity
            )));
        }
        MappedRing::from_region(region, capacity, release)
    }

    fn from_region(region: Region, capacity: usize, release: usize) -> Result<MappedRing> {
        // Both sides touch every page of the ring in turn: fault them in
        // once, here, rather than one every few dozen messages.
        region.populate();
        MappedRing::view(std::sync::Arc::new(region), [TAIL, HEAD, DATA], capacity, release)
    }

    fn view(
        region: std::sync::Arc<Region>,
        [tail, head, data]: [usize; 3],
        capacity: usize,
        release: usize,
    ) -> Result<MappedRing> {
        let tail = NonNull::from(region.atomic_u64(tail)?);
        let head = NonNull::from(region.atomic_u64(head)?);
        let closed = NonNull::from(region.atomic_u32(CLOSED)?);
        // In bounds: the region holds both rings (checked by the callers),
        // and the view checks it again.
        let data = region.ptr(region.view(data, capacity, 64)?);
        let data = NonNull::new(data).expect("a mapping is never at address 0");
        Ok(MappedRing { tail, head, closed, data, capacity, release, region })
    }

    /// The release ring of the same memfd: the receiver produces into it,
    /// the sender consumes (see `layout`).
    pub(crate) fn release_ring(&self) -> Result<MappedRing> {
        let words = [RELEASE_TAIL, RELEASE_HEAD, DATA + self.capacity];
        MappedRing::view(self.region.clone(), words, self.release, self.release)
    }

    /// The release ring's capacity.
    pub(crate) fn release_capacity(&self) -> usize {
        self.release
    }

    /// The descriptor to hand to the sender.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.region.fd().expect("a ring is a memfd")
    }

    /// Marks the ring closed: the receiver stopped receiving.
    pub(crate) fn close(&self) {
        self.closed_word().store(1, Ordering::Release);
    }

    /// Whether the receiver marked the ring closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed_word().load(Ordering::Acquire) != 0
    }

    fn closed_word(&self) -> &AtomicU32 {
        // SAFETY: points into the mapping, which lives as long as `self`.
        unsafe { self.closed.as_ref() }
    }
}

impl RingMemory for MappedRing {
    type Word = AtomicU64;

    #[inline]
    fn tail(&self) -> &AtomicU64 {
        // SAFETY: points into the mapping, which lives as long as `self`.
        unsafe { self.tail.as_ref() }
    }

    #[inline]
    fn head(&self) -> &AtomicU64 {
        // SAFETY: as in `tail`.
        unsafe { self.head.as_ref() }
    }

    #[inline]
    fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn write(&self, at: usize, data: &[u8]) {
        assert!(at <= self.capacity && data.len() <= self.capacity - at, "ring write out of bounds");
        // SAFETY: `at..at + len` is inside the data area (asserted), which is
        // inside the writable mapping (the invariant).
        unsafe { layout::copy_to_shared(self.data.as_ptr().add(at), data) }
    }

    #[inline]
    fn read(&self, at: usize, buf: &mut [u8]) {
        assert!(at <= self.capacity && buf.len() <= self.capacity - at, "ring read out of bounds");
        // SAFETY: as in `write`; a read only.
        unsafe { layout::copy_from_shared(self.data.as_ptr().add(at), buf) }
    }

    #[inline]
    fn write_word(&self, at: usize, word: u64) {
        assert!(at % 8 == 0 && at + 8 <= self.capacity, "ring word out of bounds");
        // SAFETY: 8 aligned bytes inside the data area (asserted; the data
        // area is 64-aligned), inside the mapping; atomics permit
        // concurrent access.
        unsafe { AtomicU64::from_ptr(self.data.as_ptr().add(at).cast()) }.store(word, Ordering::Relaxed)
    }

    #[inline]
    fn read_word(&self, at: usize) -> u64 {
        assert!(at % 8 == 0 && at + 8 <= self.capacity, "ring word out of bounds");
        // SAFETY: as in `write_word`; a load only.
        unsafe { AtomicU64::from_ptr(self.data.as_ptr().add(at).cast()) }.load(Ordering::Relaxed)
    }
}

/// The receiver's liveness page (see `layout`): written only by the
/// receiver, whose service thread holds its robust mutex while it lives.
#[derive(Debug)]
pub(crate) struct LivePage {
    // Invariant: points to the mutex's lock word inside `region`'s mapping,
    // which lives as long as `self`.
    word: NonNull<AtomicU32>,
    region: Region,
}

// SAFETY: as for MappedRing: an owned mapping, used through an atomic load.
unsafe impl Send for LivePage {}
// SAFETY: as above.
unsafe impl Sync for LivePage {}

/// `FUTEX_OWNER_DIED` in a robust mutex's lock word.
const OWNER_DIED: u32 = 0x4000_0000;
/// The owner's thread id in a robust mutex's lock word.
const TID_MASK: u32 = 0x3fff_ffff;

impl LivePage {
    /// The receiver's side: the page, its mutex initialised (not locked:
    /// [`hold`](Self::hold) does that, in the thread that must live),
    /// sealed so that every later mapping is read-only.
    pub(crate) fn create(channel: &str) -> Result<LivePage> {
        let region = Region::memfd(&format!("ipckit-shm:{channel}:receiver"), LIVE_PAGE)?;
        region.write(0, &ready_header(layout::live_spec(), LIVE_PAGE))?;
        let view = region.view(LIVE_MUTEX, crate::sys::sync::PTHREAD_MUTEX_SIZE, 8)?;
        // SAFETY: the page is new and private to this process until it is
        // handed over; the view is inside the mapping and aligned.
        unsafe { crate::sys::sync::mutex_init(region.ptr(view)) }
            .map_err(|e| Error::os("pthread_mutex_init", region.name(), e))?;
        region.seal_writes()?;
        region.seal_seals()?;
        LivePage::from_region(region)
    }

    /// Locks the page's mutex in the calling thread, for as long as that
    /// thread lives: its end (however it comes) is what senders see.
    pub(crate) fn hold(&self) -> Result<()> {
        let view = self.region.view(LIVE_MUTEX, crate::sys::sync::PTHREAD_MUTEX_SIZE, 8)?;
        // SAFETY: the mutex was initialised by `create` and the mapping
        // lives as long as `self`; no other process can write the page.
        match unsafe { crate::sys::sync::mutex_lock(self.region.ptr(view), crate::sys::sync::LockWait::Try) } {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::new(ErrorKind::Busy, "lock", self.region.name(), "the liveness mutex is taken")),
        }
    }

    /// The sender's side: maps the page the receiver handed over (read-only,
    /// sealed) and checks its header.
    pub(crate) fn open(fd: OwnedFd, label: &str) -> Result<LivePage> {
        let region = Region::from_received_fd(fd, LIVE_PAGE, Trust::SealedOnly)?;
        let header: Header = region.read(0)?;
        let spec = layout::live_spec();
        if header.magic != MAGIC || header.kind != spec.kind || header.version != spec.version {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "connect",
                label,
                format!("the receiver's liveness page is not one (kind {}, version {})", header.kind, header.version),
            ));
        }
        LivePage::from_region(region)
    }

    fn from_region(region: Region) -> Result<LivePage> {
        let view = region.view(LIVE_MUTEX, 4, 4)?;
        let word = NonNull::new(region.ptr(view).cast::<AtomicU32>()).expect("a mapping is never at address 0");
        Ok(LivePage { word, region })
    }

    /// The descriptor to hand to a sender.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.region.fd().expect("a memfd")
    }

    /// Whether the receiver's service thread still holds the mutex.
    #[inline]
    pub(crate) fn alive(&self) -> bool {
        // SAFETY: the invariant; a load only (the page may be read-only).
        let word = unsafe { self.word.as_ref() }.load(Ordering::Acquire);
        word & TID_MASK != 0 && word & OWNER_DIED == 0
    }
}
