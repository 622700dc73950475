//! ipckit's own shared-memory objects: the header every one starts with,
//! the registry of object kinds, the race-free create-or-open, and
//! staleness (an object that no process holds any more).
//!
//! ```text
//! offset  size  field
//!      0     8  magic     b"IPCKIT\0\x01"
//!      8     4  version   layout version of the object kind
//!     12     4  state     0 empty, 1 initialising, 2 ready (atomic)
//!     16     8  abi       ABI tag (e.g. the pthread layout a lock uses)
//!     24     4  kind      what the object is (lock, channel, ...)
//!     28     4  reserved  0
//!     32     8  size      total size of the object in bytes
//!     40    24  reserved  0
//!     64        payload
//! ```
//!
//! Creating is exclusive (`O_EXCL`/`IPC_EXCL`): of any number of processes
//! racing to create-or-open one object, exactly one creates it. The creator
//! holds a shared `flock` on the object (as every participant does), marks
//! it initialising, writes the header and the payload, and publishes it by
//! storing "ready" with release ordering. An opener waits (bounded) for
//! "ready" with acquire ordering, then checks magic, version, ABI and kind.
//! If the creator died while initialising, nobody holds a lock on the
//! object any more: the opener's exclusive `flock` succeeds, and it reports
//! `Corrupt` at once instead of waiting out the deadline. (System V
//! segments have no descriptor to lock: an opener of a half-initialised one
//! waits out the deadline, then reports `Corrupt`.)

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::region::Region;
use super::segment::Segment;
use crate::error::{Error, ErrorKind, Result};
use crate::name::{Opened, ShmName};
use crate::sys;

/// The magic bytes at offset 0.
pub const MAGIC: [u8; 8] = *b"IPCKIT\0\x01";
/// The header's size; the payload starts here.
pub const HEADER_SIZE: usize = 64;
/// Byte offset of the state word.
pub const STATE_OFFSET: usize = 12;

/// `state`: fresh, zero-filled.
pub const STATE_EMPTY: u32 = 0;
/// `state`: the creator is writing the header and payload.
pub const STATE_INITIALISING: u32 = 1;
/// `state`: published; the header and payload are valid.
pub const STATE_READY: u32 = 2;

/// The header, as copied out of an object.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// Layout version of the object kind.
    pub version: u32,
    /// One of the `STATE_*` values.
    pub state: u32,
    /// ABI tag.
    pub abi: u64,
    /// Object kind.
    pub kind: u32,
    /// Zero.
    pub reserved: u32,
    /// Total size in bytes.
    pub size: u64,
    /// Zero.
    pub reserved2: [u64; 3],
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);

/// The kinds of ipckit object: the header's `kind` word. The numbers are
/// part of the layout (C programs and `ipckit ls` read them) and never
/// change; new kinds take new numbers.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A robust mutex with its data ([`sync::Mutex`](crate::sync::Mutex)), kind 1.
    Mutex,
    /// A condition variable ([`sync::Condvar`](crate::sync::Condvar)), kind 2.
    Condvar,
    /// An unnamed POSIX semaphore ([`sync::SharedSemaphore`](crate::sync::SharedSemaphore)), kind 3.
    Semaphore,
    /// A futex event ([`sync::Event`](crate::sync::Event)), kind 4.
    Event,
    /// A futex semaphore ([`sync::FutexSemaphore`](crate::sync::FutexSemaphore)), kind 5.
    FutexSemaphore,
    /// One sender's ring of a `shm:` channel (an anonymous memfd, never
    /// named), kind 6.
    ChannelRing,
    /// A `shm:` receiver's liveness page (an anonymous memfd the senders
    /// map read-only), kind 7.
    ChannelReceiver,
    /// A publish-subscribe topic's messages on `shm:` (an anonymous memfd
    /// the subscribers map read-only), kind 8.
    Topic,
    /// One subscriber's cursor page of a `shm:` topic (an anonymous memfd
    /// shared by the publisher and that subscriber only), kind 9.
    TopicCursor,
}

impl ObjectKind {
    /// Every kind, in the order of their numbers.
    pub const ALL: [ObjectKind; 9] = [
        ObjectKind::Mutex,
        ObjectKind::Condvar,
        ObjectKind::Semaphore,
        ObjectKind::Event,
        ObjectKind::FutexSemaphore,
        ObjectKind::ChannelRing,
        ObjectKind::ChannelReceiver,
        ObjectKind::Topic,
        ObjectKind::TopicCursor,
    ];

    /// The number in the header's `kind` word.
    pub const fn code(self) -> u32 {
        match self {
            ObjectKind::Mutex => 1,
            ObjectKind::Condvar => 2,
            ObjectKind::Semaphore => 3,
            ObjectKind::Event => 4,
            ObjectKind::FutexSemaphore => 5,
            ObjectKind::ChannelRing => 6,
            ObjectKind::ChannelReceiver => 7,
            ObjectKind::Topic => 8,
            ObjectKind::TopicCursor => 9,
        }
    }

    /// The kind a header's `kind` word names, if any.
    pub fn from_code(code: u32) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The kind's name as `ipckit ls` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Mutex => "mutex",
            ObjectKind::Condvar => "condvar",
            ObjectKind::Semaphore => "semaphore",
            ObjectKind::Event => "event",
            ObjectKind::FutexSemaphore => "futex-semaphore",
            ObjectKind::ChannelRing => "channel-ring",
            ObjectKind::ChannelReceiver => "channel-receiver",
            ObjectKind::Topic => "topic",
            ObjectKind::TopicCursor => "topic-cursor",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ABI tag from the target and the size of the C type an object
/// embeds: processes built for another layout refuse the object.
pub const fn abi_tag(c_type_size: usize) -> u64 {
    let arch: &[u8] = std::env::consts::ARCH.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < arch.len() {
        h = (h ^ arch[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    (h ^ c_type_size as u64).wrapping_mul(0x0100_0000_01b3)
}

/// What an object is: checked by every opener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Object kind (an ipckit-wide number per kind of object).
    pub kind: u32,
    /// Layout version of that kind.
    pub version: u32,
    /// ABI tag (e.g. a hash of the pthread layout it embeds).
    pub abi: u64,
    /// Payload bytes after the header.
    pub payload: usize,
}

/// An initialised ipckit object: a region whose header is ready.
#[derive(Debug)]
pub struct Object {
    region: Region,
}

impl Object {
    /// The mapped object, header included; the payload starts at
    /// [`HEADER_SIZE`].
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The header as it is now.
    pub fn header(&self) -> Result<Header> {
        self.region.read::<Header>(0)
    }

    /// Creates the object `seg` names (mode and removal from `seg`), or
    /// opens it if another process created it. `init` fills the payload of
    /// a new object before it is published. Waits at most `timeout` for a
    /// creator that is still initialising.
    pub fn create_or_open(
        seg: &Segment,
        spec: ObjectSpec,
        timeout: Duration,
        init: impl FnOnce(&Region) -> Result<()>,
    ) -> Result<(Object, Opened)> {
        let total = HEADER_SIZE + spec.payload;
        // Opened without a size requirement, so that an object of another
        // kind is named by its header (Invalid), not by its size.
        let opener = seg.clone();
        let seg = seg.clone().size(total);
        let deadline = deadline_after(timeout);
        let mut pause = Duration::from_micros(10);
        loop {
            match seg.create() {
                Ok(mut region) => {
                    return match Object::initialise(&region, spec, total, init) {
                        Ok(()) => Ok((Object { region }, Opened::Created)),
                        Err(e) => {
                            // Leave nothing half-made behind for others to
                            // trip on: unlink it while it is still ours under
                            // the name, and make sure dropping the region
                            // does not unlink a newer object of that name.
                            let _ = super::segment::remove(seg.name());
                            region.keep_name();
                            Err(e)
                        }
                    };
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            match opener.open() {
                // Created but not yet sized past its header: wait.
                Ok(region) if region.len() < HEADER_SIZE && Instant::now() < deadline => {}
                Ok(region) => match Object::await_ready(region, spec, deadline) {
                    Ok(object) => return Ok((object, Opened::Existing)),
                    // Removed as stale while we opened it: create anew.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    // Left half-made by a creator that died: remove it (if
                    // it is still that object, and still abandoned) and
                    // create anew.
                    Err(e) if e.kind() == ErrorKind::Corrupt => {
                        if !remove_locked(opener.name(), |h| h.state == STATE_INITIALISING).unwrap_or(false) {
                            return Err(e);
                        }
                    }
                    Err(e) => return Err(e),
                },
                // Removed between our create and open (a failed creator
                // cleans up): try to create again.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                // Created but not yet sized: the creator is between open
                // and ftruncate.
                Err(e) if e.kind() == ErrorKind::Corrupt && Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(Error::new(ErrorKind::Corrupt, "open", seg_label(&seg), "never became ready"));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// Opens an existing object (`NotFound` if there is none), waiting at
    /// most `timeout` for a creator that is still initialising it.
    pub fn open(seg: &Segment, spec: ObjectSpec, timeout: Duration) -> Result<Object> {
        let deadline = deadline_after(timeout);
        let mut pause = Duration::from_micros(10);
        loop {
            match seg.open() {
                Ok(region) if region.len() < HEADER_SIZE && Instant::now() < deadline => {}
                Ok(region) => return Object::await_ready(region, spec, deadline),
                Err(e) if e.kind() == ErrorKind::Corrupt && Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    fn initialise(
        region: &Region,
        spec: ObjectSpec,
        total: usize,
        init: impl FnOnce(&Region) -> Result<()>,
    ) -> Result<()> {
        if let Some(fd) = region.fd() {
            sys::shm::lock_shared(fd).map_err(|e| Error::os("flock", region.name(), e))?;
        }
        region.atomic_u32(STATE_OFFSET)?.store(STATE_INITIALISING, Ordering::Relaxed);
        let header = Header {
            magic: MAGIC,
            version: spec.version,
            state: STATE_INITIALISING,
            abi: spec.abi,
            kind: spec.kind,
            reserved: 0,
            size: total as u64,
            reserved2: [0; 3],
        };
        region.write_at(0, &header.as_bytes()[..STATE_OFFSET])?;
        region.write_at(STATE_OFFSET + 4, &header.as_bytes()[STATE_OFFSET + 4..])?;
        init(region)?;
        // Publish: everything written above happens-before an opener's
        // acquire load that sees READY.
        region.atomic_u32(STATE_OFFSET)?.store(STATE_READY, Ordering::Release);
        Ok(())
    }

    fn await_ready(region: Region, spec: ObjectSpec, deadline: Instant) -> Result<Object> {
        let corrupt = |why: String| Error::new(ErrorKind::Corrupt, "open", region.name(), why);
        if region.len() < HEADER_SIZE {
            return Err(corrupt(format!("{} bytes is too small for an ipckit object", region.len())));
        }
        let state = region.atomic_u32(STATE_OFFSET)?;
        let mut pause = Duration::from_micros(10);
        loop {
            match state.load(Ordering::Acquire) {
                STATE_READY => break,
                STATE_EMPTY | STATE_INITIALISING => {}
                other => return Err(corrupt(format!("state word {other} is not a valid state"))),
            }
            if state.load(Ordering::Acquire) == STATE_INITIALISING && creator_gone(&region)? {
                // The creator may have published and let go between the two
                // reads: only a state still not ready means it died.
                if state.load(Ordering::Acquire) != STATE_READY {
                    return Err(corrupt("its creator died while initialising it".into()));
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err(corrupt("not initialised before the deadline (did its creator die?)".into()));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
        let h = region.read::<Header>(0)?;
        if h.magic != MAGIC {
            return Err(corrupt(format!("not an ipckit object (magic {:02x?})", h.magic)));
        }
        let invalid = |why: String| Error::new(ErrorKind::Invalid, "open", region.name(), why);
        if h.kind != spec.kind {
            return Err(invalid(format!("object kind {} is not the expected {}", h.kind, spec.kind)));
        }
        if h.version != spec.version {
            return Err(invalid(format!("layout version {} is not the supported {}", h.version, spec.version)));
        }
        if h.abi != spec.abi {
            return Err(invalid(format!("ABI tag {:#x} does not match this build's {:#x}", h.abi, spec.abi)));
        }
        let total = (HEADER_SIZE + spec.payload) as u64;
        if h.size != total || (region.len() as u64) < total {
            return Err(corrupt(format!("size {} (mapped {}) is not the expected {total}", h.size, region.len())));
        }
        if let Some(fd) = region.fd() {
            sys::shm::lock_shared(fd).map_err(|e| Error::os("flock", region.name(), e))?;
            // `ipckit clean` unlinks a stale object while holding it
            // exclusively: one whose name went while we waited for the
            // shared lock is gone for everyone else.
            if sys::fs::fstat(fd).map(|st| st.nlink == 0).unwrap_or(false) {
                return Err(Error::new(ErrorKind::NotFound, "open", region.name(), "removed as stale while opening"));
            }
        }
        Ok(Object { region })
    }
}

/// Now plus `timeout`, or about a century from now for timeouts past the
/// end of the clock.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86400))
}

/// True when nobody holds a lock on the object: its creator is gone.
fn creator_gone(region: &Region) -> Result<bool> {
    let Some(fd) = region.fd() else { return Ok(false) };
    match sys::shm::try_lock_exclusive(fd) {
        Ok(true) => {
            let _ = sys::shm::unlock(fd);
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(e) => Err(Error::os("flock", region.name(), e)),
    }
}

fn seg_label(seg: &Segment) -> String {
    seg.name().to_string()
}

/// Removes a named ipckit object if it is stale, race-free: it is unlinked
/// while this call holds its exclusive `flock` (so no participant can join
/// meanwhile; one that was waiting for its shared lock then sees the object
/// unlinked and starts afresh), and only if the name still refers to it.
/// Returns whether it was removed. System V segments are removed when
/// nothing is attached.
pub fn remove_if_stale(name: &ShmName) -> Result<bool> {
    if let ShmName::Sysv(_) = name {
        if !is_stale(name)? {
            return Ok(false);
        }
        return super::segment::remove(name).map(|()| true);
    }
    remove_locked(name, |h| h.magic == MAGIC)
}

/// Unlinks the POSIX or file object `name` if nobody holds its `flock`,
/// its header satisfies `accept`, and the name still refers to it, all
/// checked while holding its exclusive lock. A creator holds its shared
/// lock from before it marks the object initialising, so "initialising
/// and unlocked" means the creator died.
fn remove_locked(name: &ShmName, accept: impl Fn(&Header) -> bool) -> Result<bool> {
    if let ShmName::Sysv(_) = name {
        return Ok(false);
    }
    let region = Segment::new(name.clone()).read_only().open()?;
    let Some(fd) = region.fd() else { return Ok(false) };
    match sys::shm::try_lock_exclusive(fd) {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(e) => return Err(Error::os("flock", region.name(), e)),
    }
    if region.len() < HEADER_SIZE {
        return Ok(false);
    }
    let header: Header = region.read(0)?;
    if !accept(&header) {
        return Ok(false);
    }
    // The same file still under the name (not one created since)?
    let path = match name {
        ShmName::Posix(n) => std::path::PathBuf::from(format!("/dev/shm{n}")),
        ShmName::File(p) => p.clone(),
        ShmName::Sysv(_) => return Ok(false),
    };
    let ours = sys::fs::fstat(fd).map_err(|e| Error::os("fstat", region.name(), e))?;
    match sys::fs::stat(&path) {
        Ok(st) if st.same_file(&ours) => {}
        _ => return Ok(false),
    }
    super::segment::remove(name)?;
    Ok(true)
}

/// Whether a named ipckit object is stale: no participant holds its
/// `flock` (System V segments: no process attached). `ipckit clean`
/// removes exactly these.
pub fn is_stale(name: &ShmName) -> Result<bool> {
    match name {
        ShmName::Sysv(_) => Ok(super::segment::info(name)?.sysv.is_some_and(|(attached, _, _)| attached == 0)),
        _ => {
            let region = Segment::new(name.clone()).read_only().open()?;
            creator_gone(&region)
        }
    }
}
