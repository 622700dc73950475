//! A robust, process-shared mutex with its data, in shared memory.
//!
//! # Layout (for C programs that lock the same mutex)
//!
//! ```text
//! offset  size  content
//!      0    64  ipckit object header (kind 1, version 1; see shm::Header)
//!     64    64  pthread_mutex_t: PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST,
//!               PTHREAD_MUTEX_ERRORCHECK (40 bytes on x86_64 glibc; rest 0)
//!    128     n  the data, T
//! ```
//!
//! A C program maps the object (`shm_open` of the name, `mmap`), waits for
//! the header's state word (offset 12) to read 2, and calls
//! `pthread_mutex_lock((pthread_mutex_t *)(base + 64))`, handling
//! `EOWNERDEAD` with `pthread_mutex_consistent`.
//!
//! # What a damaged object does
//!
//! - Scribbled on between uses (nobody holding the lock): before every lock,
//!   the `pthread_mutex_t` words glibc trusts and ipckit wrote (its kind
//!   word, and the shape of its lock word) are checked against what
//!   `pthread_mutex_init` left (the layout and the check are documented in
//!   `sys/sync.rs`), so a damaged mutex is `Corrupt` ("the lock object is
//!   corrupt"), never one of glibc's assertions; an `EINVAL` from glibc is
//!   `Corrupt` too. A damaged header is `Corrupt` or `Invalid` at open.
//! - The trust model's one exception: scribbling while a process holds the
//!   lock. glibc keeps robust-list pointers inside the mutex and follows
//!   them at unlock, so the mutex is safe against peers that crash, not
//!   against peers that scribble on it while it is held.
//! - Truncated (a POSIX object or a file): glibc and the kernel access the
//!   mutex in place, so a lock or unlock after a truncation faults with
//!   `SIGBUS`. A program that must survive it catches `SIGBUS` and tells
//!   its own faults by [`Mutex::mapped_range`] (as `ipckit lock` does).

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::INIT_TIMEOUT;
use crate::error::{Error, ErrorKind, Result};
use crate::shm::{HEADER_SIZE, Object, ObjectKind, ObjectSpec, Opened, Region, Segment, ShmName, View, abi_tag};
use crate::sys::Errno;
use crate::sys::sync::{self as raw, LockFailure, LockWait, PTHREAD_MUTEX_SIZE};

/// Offset of the `pthread_mutex_t` in a mutex object.
pub const MUTEX_OFFSET: usize = HEADER_SIZE;
/// Offset of the data in a mutex object.
pub const MUTEX_DATA_OFFSET: usize = HEADER_SIZE + 64;

const _: () = assert!(PTHREAD_MUTEX_SIZE <= 64);

/// A process-shared robust mutex protecting a `T` in shared memory.
///
/// `T` must be plain data that any bytes make valid (`FromBytes`), because
/// another process shares it.
///
/// ```
/// use ipckit::sync::Mutex;
/// let name = format!("/ipckit-doc-mutex-{}", std::process::id()).parse()?;
/// let (counter, _) = Mutex::<u64>::open_or_create(&name, 0)?;
/// // A holder that died is repaired here (the counter is fine as it is).
/// *counter.lock_or_recover(|_| {})? += 1;
/// assert_eq!(*counter.lock_or_recover(|_| {})?, 1);
/// ipckit::shm::remove(&name)?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug)]
pub struct Mutex<T> {
    /// Always `Some` until `Drop`, which forgets it (keeping it mapped for
    /// good) if this process still holds the lock.
    obj: Option<Object>,
    /// The `pthread_mutex_t` and the data, resolved once at open.
    mutex: View,
    data: View,
    _data: PhantomData<fn() -> T>,
}

/// A held lock, borrowing its [`Mutex`]. It is not `Send`: a pthread mutex
/// is unlocked by the thread that locked it. A guard that is forgotten
/// (`mem::forget`) keeps the lock held; the mutex's mapping is then never
/// unmapped, so the kernel's robust list can never point at unmapped
/// memory.
#[derive(Debug)]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    recovering: bool,
    _data: PhantomData<*mut T>,
}

/// Why [`Mutex::lock`] did not simply succeed.
#[derive(Debug)]
pub enum LockError<'a, T> {
    /// The previous holder died holding the lock. The lock is now held by
    /// the caller: repair the data, then call
    /// [`MutexGuard::mark_consistent`]. A guard dropped without it leaves the
    /// mutex permanently unusable (`NotRecoverable`), as the kernel does.
    OwnerDied(MutexGuard<'a, T>),
    /// The lock was not taken.
    Failed(Error),
}

impl<T> LockError<'_, T> {
    /// The error kind: `OwnerDied`, or the failure's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LockError::OwnerDied(_) => ErrorKind::OwnerDied,
            LockError::Failed(e) => e.kind(),
        }
    }
}

impl<T> std::fmt::Display for LockError<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::OwnerDied(g) => write!(f, "lock {}: the previous owner died holding it", g.mutex.name()),
            LockError::Failed(e) => e.fmt(f),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for LockError<'_, T> {}

fn spec<T>() -> ObjectSpec {
    ObjectSpec {
        kind: ObjectKind::Mutex.code(),
        version: 1,
        abi: abi_tag(PTHREAD_MUTEX_SIZE),
        payload: 64 + size_of::<T>(),
    }
}

/// The mutex's place in an object.
fn mutex_view(region: &Region) -> Result<View> {
    region.view(MUTEX_OFFSET, PTHREAD_MUTEX_SIZE, 8)
}

impl<T> Mutex<T> {
    /// The object's name.
    pub fn name(&self) -> &str {
        self.region().name()
    }

    fn region(&self) -> &Region {
        self.obj.as_ref().expect("the object lives until drop").region()
    }

    /// The addresses at which the object is mapped in this process. If
    /// another process truncates the object (a POSIX object or a file), a
    /// lock or unlock faults there with `SIGBUS`: the one thing this type
    /// cannot turn into an error, since glibc and the kernel access the
    /// mutex in place. A program that must survive that installs a `SIGBUS`
    /// handler and tells its own faults by these addresses (`ipckit lock`
    /// does).
    pub fn mapped_range(&self) -> std::ops::Range<usize> {
        let start = self.region().as_ptr() as usize;
        start..start + self.region().len()
    }

    fn raw(&self) -> *mut u8 {
        self.region().ptr(self.mutex)
    }

    fn from_object(obj: Object) -> Result<Mutex<T>> {
        let mutex = mutex_view(obj.region())?;
        let data = obj.region().view(MUTEX_DATA_OFFSET, size_of::<T>(), align_of::<T>())?;
        Ok(Mutex { obj: Some(obj), mutex, data, _data: PhantomData })
    }
}

impl<T: FromBytes + IntoBytes + Immutable> Mutex<T> {
    fn check_type(name: &ShmName) -> Result<()> {
        if align_of::<T>() > 64 {
            return Err(Error::new(ErrorKind::Invalid, "mutex", name, "data aligned to more than 64 bytes"));
        }
        Ok(())
    }

    /// Opens the mutex object `name` (`/name`, `sysv:KEY`, `file:/path`),
    /// creating it with `init` as its data if it does not exist (mode 0600).
    pub fn open_or_create(name: &ShmName, init: T) -> Result<(Mutex<T>, Opened)> {
        Mutex::open_or_create_with(&Segment::new(name.clone()), init)
    }

    /// As [`open_or_create`](Self::open_or_create), with the segment's
    /// options (mode, removal on drop).
    pub fn open_or_create_with(seg: &Segment, init: T) -> Result<(Mutex<T>, Opened)> {
        Mutex::<T>::check_type(seg.name())?;
        let (obj, opened) = Object::create_or_open(seg, spec::<T>(), INIT_TIMEOUT, |region| {
            // SAFETY: the creator has the object to itself until it is
            // published: nobody else uses these 64 bytes yet; the mapping is
            // page-aligned, so offset 64 is aligned for pthread_mutex_t.
            unsafe { raw::mutex_init(region.ptr(mutex_view(region)?)) }
                .map_err(|e| Error::os("pthread_mutex_init", region.name(), e))?;
            region.write(MUTEX_DATA_OFFSET, &init)
        })?;
        Ok((Mutex::from_object(obj)?, opened))
    }

    /// Opens an existing mutex object.
    pub fn open(name: &ShmName) -> Result<Mutex<T>> {
        Mutex::<T>::check_type(name)?;
        Mutex::from_object(Object::open(&Segment::new(name.clone()), spec::<T>(), INIT_TIMEOUT)?)
    }

    fn lock_wait(&self, wait: LockWait) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        // SAFETY: the mutex was initialised by the object's creator (the
        // header is ready) and stays mapped while this thread may hold it:
        // the guard borrows `self`, and `Drop` never unmaps a mutex this
        // process still holds.
        match unsafe { raw::mutex_lock(self.raw(), wait) } {
            Ok(owner_died) => {
                let guard = MutexGuard { mutex: self, recovering: owner_died, _data: PhantomData };
                if owner_died { Err(LockError::OwnerDied(guard)) } else { Ok(guard) }
            }
            Err(e) => Err(LockError::Failed(lock_error(self.name(), e))),
        }
    }

    /// Locks, waiting as long as it takes.
    pub fn lock(&self) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_wait(LockWait::Block)
    }

    /// Locks; if the previous holder died, runs `repair` on the data and
    /// marks the mutex consistent. Other failures are errors, so `?` works:
    /// the plain [`lock`](Self::lock) makes a holder's death impossible to
    /// overlook (there is no conversion of [`LockError`] into an error, which
    /// would drop an unrepaired guard and make the mutex unusable for good).
    pub fn lock_or_recover(&self, repair: impl FnOnce(&mut T)) -> Result<MutexGuard<'_, T>> {
        match self.lock() {
            Ok(g) => Ok(g),
            Err(LockError::OwnerDied(mut g)) => {
                repair(&mut g);
                g.mark_consistent()?;
                Ok(g)
            }
            Err(LockError::Failed(e)) => Err(e),
        }
    }

    /// Locks if free now; `Busy` otherwise.
    pub fn try_lock(&self) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_wait(LockWait::Try)
    }

    /// Locks, waiting at most `timeout` (`pthread_mutex_clocklock` on
    /// `CLOCK_MONOTONIC`); `TimedOut` otherwise.
    pub fn lock_timeout(&self, timeout: Duration) -> std::result::Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_wait(LockWait::For(timeout))
    }
}

fn lock_error(name: &str, e: LockFailure) -> Error {
    let e = match e {
        LockFailure::Defect(d) => {
            return Error::new(ErrorKind::Corrupt, "lock", name, format!("the lock object is corrupt: {d}"));
        }
        LockFailure::Os(e) => e,
    };
    match e {
        Errno::BUSY => Error::new(ErrorKind::Busy, "lock", name, "held by another thread or process"),
        Errno::TIMEDOUT => Error::new(ErrorKind::TimedOut, "lock", name, "not acquired within the timeout"),
        Errno::NOTRECOVERABLE => {
            Error::os("lock", name, e).with_detail("an owner died holding it and it was never marked consistent")
        }
        Errno::DEADLK => {
            Error::os("lock", name, e).with_kind(ErrorKind::Invalid).with_detail("already held by this thread")
        }
        // The arguments are ipckit's and valid: glibc refused the mutex
        // itself, which no longer is what ipckit initialised.
        Errno::INVAL => Error::os("lock", name, e)
            .with_kind(ErrorKind::Corrupt)
            .with_detail("the lock object is corrupt: glibc refused its pthread_mutex_t"),
        e => Error::os("lock", name, e),
    }
}

impl<'a, T> MutexGuard<'a, T> {
    fn data(&self) -> *mut T {
        self.mutex.region().ptr(self.mutex.data).cast()
    }

    /// After [`LockError::OwnerDied`]: declares the data repaired, so the
    /// mutex works normally again.
    pub fn mark_consistent(&mut self) -> Result<()> {
        if self.recovering {
            // SAFETY: this thread holds the mutex, which reported EOWNERDEAD.
            unsafe { raw::mutex_consistent(self.mutex.raw()) }
                .map_err(|e| Error::os("pthread_mutex_consistent", self.mutex.name(), e))?;
            self.recovering = false;
        }
        Ok(())
    }

    /// Unlocks, giving back the mutex (for [`Condvar`](super::Condvar)).
    pub(crate) fn unlock_for_wait(self) -> Result<&'a Mutex<T>> {
        let mutex = self.mutex;
        std::mem::forget(self);
        // SAFETY: this thread holds the mutex (the guard, now forgotten,
        // said so), and `mutex` keeps it mapped.
        unsafe { raw::mutex_unlock(mutex.raw()) }.map_err(|e| Error::os("pthread_mutex_unlock", mutex.name(), e))?;
        Ok(mutex)
    }

    /// Relocks after a wait (for [`Condvar`](super::Condvar)).
    pub(crate) fn relock(mutex: &'a Mutex<T>) -> std::result::Result<MutexGuard<'a, T>, LockError<'a, T>> {
        // SAFETY: as in `Mutex::lock_wait`.
        match unsafe { raw::mutex_lock(mutex.raw(), LockWait::Block) } {
            Ok(owner_died) => {
                let guard = MutexGuard { mutex, recovering: owner_died, _data: PhantomData };
                if owner_died { Err(LockError::OwnerDied(guard)) } else { Ok(guard) }
            }
            Err(e) => Err(LockError::Failed(lock_error(mutex.name(), e))),
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the data lies inside the mapping at an offset aligned for
        // T (checked at open: align <= 64, offset 128 of a page-aligned
        // mapping), the mapping lives as long as the guard, any bytes are a
        // valid T (FromBytes, required by every constructor), and while this
        // guard holds the lock no process following the protocol writes it.
        unsafe { &*self.data() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; the lock makes this access exclusive.
        unsafe { &mut *self.data() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this thread holds the mutex, kept mapped by `self.mutex`.
        let _ = unsafe { raw::mutex_unlock(self.mutex.raw()) };
    }
}

impl<T> Drop for Mutex<T> {
    fn drop(&mut self) {
        // A guard of this process that was forgotten still holds the lock,
        // and its thread's robust list points into this mapping: keep the
        // mapping for good rather than let the kernel write into whatever
        // is mapped there later.
        // SAFETY: the mutex is initialised and mapped (the object is alive).
        let owner = unsafe { raw::mutex_owner_tid(self.raw()) };
        if owner != 0 && std::path::Path::new(&format!("/proc/self/task/{owner}")).exists() {
            std::mem::forget(self.obj.take());
        }
    }
}
