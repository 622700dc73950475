//! A topic's memory in shared mappings: the production [`TopicMemory`] and
//! [`CursorMemory`].

use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::layout::{
    self, CLOSED, CURSOR, CURSOR_PAGE, DATA, HEAD, OVERFLOW_BLOCK, OVERFLOW_DROP_OLDEST, PUBLISHED, SLOT_HEADER,
    SLOT_LEN, TopicHeader,
};
use super::protocol::{CursorMemory, HEAD_LIMIT, TopicMemory};
use crate::channel::shm::layout::{copy_from_shared, copy_to_shared};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Overflow;
use crate::shm::{Header, MAGIC, Region, STATE_READY, Trust};

/// The header of a new object of `spec`, `size` bytes in all, ready.
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

/// A topic's memfd, mapped: writable by the publisher, read-only for
/// subscribers.
#[derive(Debug)]
pub(crate) struct MappedTopic {
    // Invariant: the pointers point into `region`'s mapping (checked when
    // made), which stays at its address while `region` lives; the slots are
    // `slots * slot_size` bytes at `data`, 64-aligned.
    head: NonNull<AtomicU64>,
    closed: NonNull<AtomicU32>,
    data: NonNull<u8>,
    slots: usize,
    slot_size: usize,
    history: u64,
    region: Region,
}

// SAFETY: a MappedTopic owns its mapping (Region is Send and Sync) and
// hands out only atomics and copies through pointers into it.
unsafe impl Send for MappedTopic {}
// SAFETY: as above.
unsafe impl Sync for MappedTopic {}

impl MappedTopic {
    /// The publisher's side: a new memfd `ipckit-topic:NAME`, its header
    /// written, sealed so that every later mapping is read-only.
    pub(crate) fn create(
        topic: &str,
        slots: usize,
        slot_size: usize,
        history: u64,
        overflow: Overflow,
    ) -> Result<MappedTopic> {
        layout::check_geometry(slots, slot_size).map_err(|why| Error::new(ErrorKind::Invalid, "bind", topic, why))?;
        let size = DATA + slots * slot_size;
        let region = Region::memfd(&format!("ipckit-topic:{topic}"), size)?;
        let header = TopicHeader {
            object: ready_header(layout::topic_spec(slots, slot_size), size),
            head: 0,
            reserved1: [0; 7],
            slots: slots as u64,
            slot_size: slot_size as u64,
            history,
            overflow: match overflow {
                Overflow::Block => OVERFLOW_BLOCK,
                _ => OVERFLOW_DROP_OLDEST,
            },
            closed: 0,
            reserved2: [0; 12],
        };
        region.write(0, &header)?;
        region.populate();
        region.seal_writes()?;
        region.seal_seals()?;
        MappedTopic::from_region(region, slots, slot_size, history)
    }

    /// A subscriber's side: maps the memfd the publisher handed over
    /// (sealed against shrinking and growing, else refused before mapping;
    /// read-only when sealed against writes, as the publisher's is) and
    /// checks its header. `label` names the topic in errors.
    pub(crate) fn open(fd: OwnedFd, label: &str) -> Result<MappedTopic> {
        let corrupt = |why: String| Error::new(ErrorKind::Corrupt, "subscribe", label, why);
        let size = crate::sys::fs::fstat(&fd).map_err(|e| Error::os("fstat", label, e))?.size;
        let len = usize::try_from(size).map_err(|_| corrupt(format!("topic memory of {size} bytes")))?;
        if len < DATA + layout::MIN_SLOTS * layout::MIN_SLOT {
            return Err(corrupt(format!("topic memory of {len} bytes is too small")));
        }
        // The mapping is sized by the peer: bounded before it is made.
        if len > DATA + layout::MAX_DATA {
            return Err(corrupt(format!(
                "topic memory of {len} bytes is larger than a topic's slots may take ({} bytes); refused before \
                 mapping",
                layout::MAX_DATA
            )));
        }
        let region = Region::from_received_fd(fd, len, Trust::SealedOnly)?;
        let header: TopicHeader = region.read(0)?;
        let spec = layout::topic_spec(0, 0);
        let slots = usize::try_from(header.slots).unwrap_or(0);
        let slot_size = usize::try_from(header.slot_size).unwrap_or(0);
        let overflow = match header.overflow {
            OVERFLOW_BLOCK => Some(Overflow::Block),
            OVERFLOW_DROP_OLDEST => Some(Overflow::DropOldest),
            _ => None,
        };
        let ok = header.object.magic == MAGIC
            && header.object.kind == spec.kind
            && header.object.version == spec.version
            && header.object.state == STATE_READY
            && header.object.size == size
            && layout::check_geometry(slots, slot_size).is_ok()
            && header.history <= slots as u64
            && DATA.checked_add(slots * slot_size) == Some(len);
        let (true, Some(_)) = (ok, overflow) else {
            return Err(corrupt(format!(
                "the publisher's topic memory is not an ipckit topic (kind {}, version {}, {} slots of {} bytes, \
                 {len} bytes)",
                header.object.kind, header.object.version, header.slots, header.slot_size
            )));
        };
        MappedTopic::from_region(region, slots, slot_size, header.history)
    }

    fn from_region(region: Region, slots: usize, slot_size: usize, history: u64) -> Result<MappedTopic> {
        // Views, not `atomic_u64`: a subscriber's mapping is read-only, and
        // it only loads these words.
        let head = NonNull::new(region.ptr(region.view(HEAD, 8, 8)?).cast::<AtomicU64>());
        let closed = NonNull::new(region.ptr(region.view(CLOSED, 4, 4)?).cast::<AtomicU32>());
        let data = NonNull::new(region.ptr(region.view(DATA, slots * slot_size, 64)?));
        let (Some(head), Some(closed), Some(data)) = (head, closed, data) else {
            unreachable!("a mapping is never at address 0")
        };
        Ok(MappedTopic { head, closed, data, slots, slot_size, history, region })
    }

    /// The descriptor to hand to a subscriber.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.region.fd().expect("a topic is a memfd")
    }

    /// The most messages a late subscriber may ask for.
    pub(crate) fn history(&self) -> u64 {
        self.history
    }

    /// `head` as the publisher last stored it (the publisher's own view;
    /// a subscriber reads it through `protocol`, checked).
    pub(crate) fn head_now(&self) -> u64 {
        TopicMemory::head(self).load(Ordering::Acquire)
    }

    /// Whether `head` is a value a subscriber may start from.
    pub(crate) fn sane_head(head: u64) -> bool {
        head < HEAD_LIMIT
    }

    /// Marks the topic closed: the publisher is gone (its clean end).
    pub(crate) fn close(&self) {
        self.closed_word().store(1, Ordering::Release);
    }

    /// Whether the publisher marked the topic closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed_word().load(Ordering::Acquire) != 0
    }

    fn closed_word(&self) -> &AtomicU32 {
        // SAFETY: points into the mapping, which lives as long as `self`.
        unsafe { self.closed.as_ref() }
    }

    /// The start of slot `slot`.
    fn slot(&self, slot: usize) -> *mut u8 {
        assert!(slot < self.slots, "slot {slot} out of {}", self.slots);
        // SAFETY: inside the slots (asserted), inside the mapping.
        unsafe { self.data.as_ptr().add(slot * self.slot_size) }
    }
}

impl TopicMemory for MappedTopic {
    type Word = AtomicU64;

    #[inline]
    fn head(&self) -> &AtomicU64 {
        // SAFETY: points into the mapping, which lives as long as `self`.
        unsafe { self.head.as_ref() }
    }

    #[inline]
    fn slots(&self) -> usize {
        self.slots
    }

    #[inline]
    fn max_message(&self) -> usize {
        self.slot_size - SLOT_HEADER
    }

    #[inline]
    fn seq(&self, slot: usize) -> &AtomicU64 {
        // SAFETY: the slot's first 8 bytes, 8-aligned (slots are 64-aligned),
        // inside the mapping, which lives as long as `self`; atomics permit
        // concurrent access (and loads on a read-only mapping).
        unsafe { AtomicU64::from_ptr(self.slot(slot).cast()) }
    }

    #[inline]
    fn len(&self, slot: usize) -> &AtomicU64 {
        // SAFETY: as in `seq`, the next 8 bytes.
        unsafe { AtomicU64::from_ptr(self.slot(slot).add(SLOT_LEN).cast()) }
    }

    #[inline]
    fn write(&self, slot: usize, data: &[u8]) {
        assert!(self.region.is_writable(), "only the publisher writes a topic");
        assert!(data.len() <= self.max_message(), "message larger than a slot");
        // SAFETY: the slot's payload area holds `max_message` bytes
        // (asserted), inside the writable mapping.
        unsafe { copy_to_shared(self.slot(slot).add(SLOT_HEADER), data) }
    }

    #[inline]
    fn read(&self, slot: usize, buf: &mut [u8]) {
        assert!(buf.len() <= self.max_message(), "read larger than a slot");
        // SAFETY: as in `write`; a read only.
        unsafe { copy_from_shared(self.slot(slot).add(SLOT_HEADER), buf) }
    }

    #[inline]
    fn fence(order: Ordering) {
        std::sync::atomic::fence(order)
    }
}

/// One subscriber's cursor page, mapped read-write by the publisher and
/// that subscriber.
#[derive(Debug)]
pub(crate) struct CursorPage {
    // Invariant: as for MappedTopic.
    published: NonNull<AtomicU64>,
    cursor: NonNull<AtomicU64>,
    region: Region,
}

// SAFETY: as for MappedTopic.
unsafe impl Send for CursorPage {}
// SAFETY: as above.
unsafe impl Sync for CursorPage {}

impl CursorPage {
    /// The publisher's side: a new page for a subscriber starting at
    /// message `start` of a topic whose head is `head`.
    pub(crate) fn create(topic: &str, start: u64, head: u64) -> Result<CursorPage> {
        let region = Region::memfd(&format!("ipckit-topic:{topic}:cursor"), CURSOR_PAGE)?;
        region.write(0, &ready_header(layout::cursor_spec(), CURSOR_PAGE))?;
        region.write(PUBLISHED, &head)?;
        region.write(CURSOR, &start)?;
        region.seal_seals()?;
        CursorPage::from_region(region)
    }

    /// The subscriber's side: maps the page (sealed against shrinking and
    /// growing, writable) and checks its header.
    pub(crate) fn open(fd: OwnedFd, label: &str) -> Result<CursorPage> {
        let region = Region::from_received_fd(fd, CURSOR_PAGE, Trust::SealedOnly)?;
        let header: Header = region.read(0)?;
        let spec = layout::cursor_spec();
        if header.magic != MAGIC || header.kind != spec.kind || header.version != spec.version || !region.is_writable()
        {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "subscribe",
                label,
                format!(
                    "the publisher's cursor page is not one (kind {}, version {}, writable {})",
                    header.kind,
                    header.version,
                    region.is_writable()
                ),
            ));
        }
        CursorPage::from_region(region)
    }

    fn from_region(region: Region) -> Result<CursorPage> {
        let published = NonNull::from(region.atomic_u64(PUBLISHED)?);
        let cursor = NonNull::from(region.atomic_u64(CURSOR)?);
        Ok(CursorPage { published, cursor, region })
    }

    /// The descriptor to hand to the subscriber.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.region.fd().expect("a cursor page is a memfd")
    }
}

impl CursorMemory for CursorPage {
    type Word = AtomicU64;

    #[inline]
    fn published(&self) -> &AtomicU64 {
        // SAFETY: points into the mapping, which lives as long as `self`.
        unsafe { self.published.as_ref() }
    }

    #[inline]
    fn cursor(&self) -> &AtomicU64 {
        // SAFETY: as in `published`.
        unsafe { self.cursor.as_ref() }
    }
}
