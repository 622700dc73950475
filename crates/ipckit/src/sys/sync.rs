//! Synchronization: pthread robust mutexes in shared memory, POSIX and
//! System V semaphores, futexes.

// libc field types differ between architectures; the casts are needed on some.
#![allow(clippy::unnecessary_cast)]

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

fn rc(r: libc::c_int) -> Result<(), Errno> {
    if r == 0 { Ok(()) } else { Err(Errno::from_raw_os_error(r)) }
}

// glibc has these since 2.30; the libc crate does not declare them.
unsafe extern "C" {
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
    fn sem_clockwait(sem: *mut libc::sem_t, clock: libc::clockid_t, abstime: *const libc::timespec) -> libc::c_int;
    fn semtimedop(
        semid: libc::c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

/// `CLOCK_MONOTONIC` now plus `d`, as an absolute `timespec`.
fn monotonic_deadline(d: Duration) -> libc::timespec {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let mut sec = now.tv_sec.saturating_add(d.as_secs().min(i64::MAX as u64) as i64);
    let mut nsec = now.tv_nsec as i64 + d.subsec_nanos() as i64;
    if nsec >= 1_000_000_000 {
        sec = sec.saturating_add(1);
        nsec -= 1_000_000_000;
    }
    libc::timespec { tv_sec: sec as _, tv_nsec: nsec as _ }
}

/// Size of `pthread_mutex_t` on this target.
pub const PTHREAD_MUTEX_SIZE: usize = std::mem::size_of::<libc::pthread_mutex_t>();
/// Size of `sem_t` on this target.
pub const SEM_SIZE: usize = std::mem::size_of::<libc::sem_t>();

/// What glibc trusts in a `pthread_mutex_t`, and what ipckit checks before
/// every lock.
///
/// glibc picks its locking algorithm from the mutex's *kind* word and reads
/// the *lock* word as a futex. A kind word with the priority-protection bit
/// (`PTHREAD_MUTEX_PRIO_PROTECT_NP`, 64) makes it read a priority ceiling
/// out of the lock word and `assert` on it (`tpp.c`): an abort, not an
/// error. So before handing a mutex to glibc, ipckit checks the two words
/// it wrote itself.
///
/// The layout is glibc's `struct __pthread_mutex_s` (`bits/struct_mutex.h`;
/// glibc 2.36, x86_64, 40 bytes; every 64-bit glibc target starts the same
/// way):
///
/// ```text
/// offset  type  field      what ipckit requires
///      0  int   __lock     0, or a thread id (below 2^22, the kernel's
///                          PID_MAX_LIMIT) with FUTEX_WAITERS (1 << 31) and
///                          FUTEX_OWNER_DIED (1 << 30) possibly set; bits
///                          22..29 never
///      4  uint  __count    anything (only recursive mutexes count)
///      8  int   __owner    anything (glibc reports ENOTRECOVERABLE for
///                          0x7fffffff)
///     12  uint  __nusers   anything (a statistic)
///     16  int   __kind     exactly what pthread_mutex_init wrote for
///                          PTHREAD_PROCESS_SHARED | PTHREAD_MUTEX_ROBUST |
///                          PTHREAD_MUTEX_ERRORCHECK: 0x92 = PSHARED bit
///                          (128) | PTHREAD_MUTEX_ROBUST_NORMAL_NP (16) |
///                          PTHREAD_MUTEX_ERRORCHECK_NP (2); no
///                          priority-inheritance (32) or -protection (64)
///                          bits, no ceiling
///     20  int   __spins    anything (only adaptive mutexes spin)
///     24  list  __list     anything while nobody holds the lock: a lock
///                          overwrites it before glibc reads it
/// ```
///
/// The expected kind word is learned once per process from a mutex
/// initialised the way [`mutex_init`] does (a unit test pins it to 0x92).
/// The check is tied to the header's ABI tag ([`crate::shm::abi_tag`]: the
/// architecture and the size of `pthread_mutex_t`): an object made for
/// another layout is refused by the tag before any of this is read.
///
/// What the check cannot cover: a peer that scribbles while a process holds
/// the lock (glibc then follows the `__list` pointers at unlock), or in the
/// instant between the check and glibc's read. That is the trust model's
/// documented exception.
mod glibc_mutex {
    /// Byte offset of `__lock`.
    pub(super) const LOCK: usize = 0;
    /// Byte offset of `__kind`.
    #[cfg(target_pointer_width = "64")]
    pub(super) const KIND: usize = 16;
    /// Byte offset of `__kind` (32-bit glibc puts it before `__nusers`).
    #[cfg(target_pointer_width = "32")]
    pub(super) const KIND: usize = 12;
    /// The thread-id bits of the lock word (`FUTEX_TID_MASK`).
    pub(super) const TID_MASK: u32 = 0x3fff_ffff;
    /// Thread ids are below the kernel's `PID_MAX_LIMIT`: 2^22 on 64-bit
    /// kernels, 2^15 on 32-bit ones.
    pub(super) const TID_LIMIT: u32 = if cfg!(target_pointer_width = "64") { 1 << 22 } else { 1 << 15 };
}

const _: () = assert!(glibc_mutex::KIND + 4 <= PTHREAD_MUTEX_SIZE);

/// What is wrong with a mutex's words: it is not what ipckit initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MutexDefect {
    /// `__kind` is not what `pthread_mutex_init` wrote.
    Kind { found: u32, expected: u32 },
    /// `__lock` holds bits no thread id has.
    LockWord(u32),
}

impl std::fmt::Display for MutexDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            MutexDefect::Kind { found, expected } => write!(
                f,
                "its pthread_mutex_t kind word is {found:#x}, not the {expected:#x} of a process-shared robust \
                 error-checking mutex"
            ),
            MutexDefect::LockWord(w) => write!(
                f,
                "its pthread_mutex_t lock word {w:#010x} is neither free nor a thread id (below {:#x})",
                glibc_mutex::TID_LIMIT
            ),
        }
    }
}

/// Why a lock failed: glibc's errno, or a mutex ipckit refused to hand to
/// glibc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockFailure {
    Os(Errno),
    Defect(MutexDefect),
}

/// The kind word [`mutex_init`] leaves, learned once from a private mutex.
fn expected_kind() -> u32 {
    static KIND: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *KIND.get_or_init(|| {
        let mut template = std::mem::MaybeUninit::<libc::pthread_mutex_t>::zeroed();
        let p = template.as_mut_ptr().cast::<u8>();
        // SAFETY: `template` is PTHREAD_MUTEX_SIZE writable bytes, aligned
        // for pthread_mutex_t, used by this thread only.
        match unsafe { mutex_init(p) } {
            // SAFETY: the kind word lies inside the initialised mutex, 4-byte
            // aligned; nobody else has the template.
            Ok(()) => unsafe { p.add(glibc_mutex::KIND).cast::<u32>().read() },
            // Then no mutex can be made here: refuse every kind word.
            Err(_) => u32::MAX,
        }
        // The template is plain memory: a robust mutex never locked needs
        // no pthread_mutex_destroy.
    })
}

/// Checks the words glibc trusts (see [`glibc_mutex`]) before a lock.
///
/// # Safety
///
/// `m` points to `PTHREAD_MUTEX_SIZE` bytes that stay mapped during the
/// call.
unsafe fn mutex_check(m: *mut u8) -> Result<(), MutexDefect> {
    use std::sync::atomic::Ordering::Relaxed;
    // SAFETY: both words are aligned ints inside the mutex; other processes
    // may change them at any time, so they are read atomically.
    let (lock, kind) = unsafe {
        (
            AtomicU32::from_ptr(m.add(glibc_mutex::LOCK).cast()).load(Relaxed),
            AtomicU32::from_ptr(m.add(glibc_mutex::KIND).cast()).load(Relaxed),
        )
    };
    let expected = expected_kind();
    if kind != expected {
        return Err(MutexDefect::Kind { found: kind, expected });
    }
    if lock & glibc_mutex::TID_MASK >= glibc_mutex::TID_LIMIT {
        return Err(MutexDefect::LockWord(lock));
    }
    Ok(())
}

/// Initialises a process-shared, robust, error-checking mutex at `m`.
///
/// # Safety
///
/// `m` must point to `PTHREAD_MUTEX_SIZE` writable bytes, suitably aligned,
/// that no other thread or process uses until this returns.
pub(crate) unsafe fn mutex_init(m: *mut u8) -> Result<(), Errno> {
    // SAFETY: a zeroed attribute object is then initialised by
    // pthread_mutexattr_init before any other use.
    let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a valid attribute object for all calls below, and is
    // destroyed once, at the end; `m` is valid per this function's contract.
    unsafe {
        rc(libc::pthread_mutexattr_init(&mut attr))?;
        let r = (|| {
            rc(libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED))?;
            rc(libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST))?;
            rc(libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK))?;
            rc(libc::pthread_mutex_init(m.cast(), &attr))
        })();
        libc::pthread_mutexattr_destroy(&mut attr);
        r
    }
}

/// How to wait for a lock.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LockWait {
    Block,
    Try,
    For(Duration),
}

/// Locks the mutex at `m`: `Ok(false)` locked, `Ok(true)` locked but its
/// previous owner died (`EOWNERDEAD`), `Err(Os(EBUSY))` for a try that
/// failed, `Err(Os(ETIMEDOUT))`, `Err(Os(ENOTRECOVERABLE))`; `Err(Defect)`
/// when the mutex's words are not what ipckit initialised (see
/// [`glibc_mutex`]), checked before glibc sees them.
///
/// # Safety
///
/// `m` must point to a mutex initialised by [`mutex_init`] (possibly
/// scribbled on since, while nobody held it) in memory that stays mapped
/// for as long as the calling thread may hold it.
#[inline]
pub(crate) unsafe fn mutex_lock(m: *mut u8, wait: LockWait) -> Result<bool, LockFailure> {
    // SAFETY: `m` points to a mapped mutex, per this function's contract.
    unsafe { mutex_check(m) }.map_err(LockFailure::Defect)?;
    let m = m.cast::<libc::pthread_mutex_t>();
    // SAFETY: `m` is a valid robust mutex per this function's contract, and
    // its kind and lock words are of the shapes glibc handles (checked).
    let r = unsafe {
        match wait {
            LockWait::Block => libc::pthread_mutex_lock(m),
            // Not pthread_mutex_trylock: on a not-recoverable mutex glibc
            // 2.36's trylock returns ENOTRECOVERABLE yet leaves the caller's
            // id in the lock word, locking everyone out. A clock lock with a
            // deadline already passed takes a free mutex, reports a dead
            // owner and not-recoverable correctly, and fails at once
            // otherwise.
            LockWait::Try => {
                let past = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                match pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &past) {
                    libc::ETIMEDOUT => libc::EBUSY,
                    r => r,
                }
            }
            LockWait::For(d) => {
                let abs = monotonic_deadline(d);
                pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &abs)
            }
        }
    };
    match r {
        0 => Ok(false),
        libc::EOWNERDEAD => Ok(true),
        e => Err(LockFailure::Os(Errno::from_raw_os_error(e))),
    }
}

/// Unlocks the mutex at `m`.
///
/// # Safety
///
/// As for [`mutex_lock`]; the calling thread holds the mutex.
#[inline]
pub(crate) unsafe fn mutex_unlock(m: *mut u8) -> Result<(), Errno> {
    // SAFETY: per this function's contract.
    rc(unsafe { libc::pthread_mutex_unlock(m.cast()) })
}

/// The thread id that holds a robust mutex (0 if free): glibc keeps it in
/// the low 30 bits of the lock word, the first `int` of `pthread_mutex_t`
/// (the futex the kernel's robust-list code writes).
///
/// # Safety
///
/// `m` points to an initialised mutex that stays mapped during the call.
pub(crate) unsafe fn mutex_owner_tid(m: *mut u8) -> u32 {
    const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
    // SAFETY: the lock word is an aligned int inside the mutex, accessed
    // atomically by glibc and the kernel; an atomic load is sound.
    unsafe { AtomicU32::from_ptr(m.cast()) }.load(std::sync::atomic::Ordering::Acquire) & FUTEX_TID_MASK
}

/// Marks a mutex whose owner died consistent again.
///
/// # Safety
///
/// As for [`mutex_unlock`], after a lock that reported `EOWNERDEAD`.
pub(crate) unsafe fn mutex_consistent(m: *mut u8) -> Result<(), Errno> {
    // SAFETY: per this function's contract.
    rc(unsafe { libc::pthread_mutex_consistent(m.cast()) })
}

/// `FUTEX_WAIT` (shared: no `FUTEX_PRIVATE_FLAG`) while `*word == expected`,
/// at most `timeout`. `Ok(())` when woken (or the value differed),
/// `Err(ETIMEDOUT)` when the time ran out; `EINTR` is returned to the
/// caller, which re-checks its condition.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<(), Errno> {
    let ts = timeout.map(|d| rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: d.subsec_nanos() as _,
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `FUTEX_WAKE` (shared) of at most `n` waiters.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> Result<usize, Errno> {
    // The kernel reads the count as an int: u32::MAX would be -1, which
    // wakes one.
    futex::wake(word, futex::Flags::empty(), n.min(i32::MAX as u32))
}

/// A POSIX named semaphore opened with `sem_open`; closed on drop.
#[derive(Debug)]
pub(crate) struct NamedSem(NonNull<libc::sem_t>);

// SAFETY: a sem_t is designed for use from any thread (and process).
unsafe impl Send for NamedSem {}
// SAFETY: as above; every operation goes through the sem_* functions.
unsafe impl Sync for NamedSem {}

impl NamedSem {
    /// `sem_open(name, 0)`, or with `create = Some((mode, value))`
    /// `sem_open(name, O_CREAT | O_EXCL, mode, value)`.
    pub(crate) fn open(name: &str, create: Option<(u32, u32)>) -> Result<NamedSem, Errno> {
        let cname = CString::new(name).map_err(|_| Errno::INVAL)?;
        let (flags, mode, value) = match create {
            Some((mode, value)) => (libc::O_CREAT | libc::O_EXCL, mode, value),
            None => (0, 0, 0),
        };
        // SAFETY: `cname` is NUL-terminated; the variadic mode and value are
        // passed as the promoted types sem_open(3) reads with O_CREAT.
        let p = unsafe { libc::sem_open(cname.as_ptr(), flags, mode as libc::c_uint, value as libc::c_uint) };
        if p == libc::SEM_FAILED {
            return Err(last_errno());
        }
        NonNull::new(p).map(NamedSem).ok_or(Errno::NOMEM)
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.0.as_ptr().cast()
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: the pointer came from sem_open and is closed once.
        unsafe { libc::sem_close(self.0.as_ptr()) };
    }
}

/// `sem_unlink(name)`.
pub(crate) fn sem_unlink(name: &str) -> Result<(), Errno> {
    let cname = CString::new(name).map_err(|_| Errno::INVAL)?;
    // SAFETY: `cname` is NUL-terminated.
    if unsafe { libc::sem_unlink(cname.as_ptr()) } < 0 { Err(last_errno()) } else { Ok(()) }
}

/// `sem_init(s, pshared = 1, value)`.
///
/// # Safety
///
/// `s` must point to `SEM_SIZE` writable, suitably aligned bytes that no
/// other thread or process uses until this returns.
pub(crate) unsafe fn sem_init_shared(s: *mut u8, value: u32) -> Result<(), Errno> {
    // SAFETY: per this function's contract.
    if unsafe { libc::sem_init(s.cast(), 1, value) } < 0 { Err(last_errno()) } else { Ok(()) }
}

/// `sem_post`.
///
/// # Safety
///
/// `s` points to an initialised or opened semaphore that stays mapped.
pub(crate) unsafe fn sem_post(s: *mut u8) -> Result<(), Errno> {
    // SAFETY: per this function's contract.
    if unsafe { libc::sem_post(s.cast()) } < 0 { Err(last_errno()) } else { Ok(()) }
}

/// `sem_wait` / `sem_trywait` / `sem_clockwait(CLOCK_MONOTONIC)`;
/// `EINTR` is retried with the deadline kept.
///
/// # Safety
///
/// As for [`sem_post`].
pub(crate) unsafe fn sem_wait(s: *mut u8, wait: LockWait) -> Result<(), Errno> {
    let s = s.cast::<libc::sem_t>();
    // Computed once, so that a retry after EINTR keeps the deadline.
    let abs = monotonic_deadline(match wait {
        LockWait::For(d) => d,
        _ => Duration::ZERO,
    });
    loop {
        // SAFETY: per this function's contract.
        let r = unsafe {
            match wait {
                LockWait::Block => libc::sem_wait(s),
                LockWait::Try => libc::sem_trywait(s),
                LockWait::For(_) => sem_clockwait(s, libc::CLOCK_MONOTONIC, &abs),
            }
        };
        if r == 0 {
            return Ok(());
        }
        match last_errno() {
            Errno::INTR => continue,
            e => return Err(e),
        }
    }
}

/// `sem_getvalue`.
///
/// # Safety
///
/// As for [`sem_post`].
pub(crate) unsafe fn sem_value(s: *mut u8) -> Result<i32, Errno> {
    let mut v = 0;
    // SAFETY: per this function's contract; `v` is a valid out-pointer.
    if unsafe { libc::sem_getvalue(s.cast(), &mut v) } < 0 { Err(last_errno()) } else { Ok(v) }
}

/// `semget(key, nsems, 0)`, or with `create` `semget(key, nsems, mode |
/// IPC_CREAT | IPC_EXCL)`.
pub(crate) fn semget(key: i32, nsems: i32, create: Option<u32>) -> Result<i32, Errno> {
    let flags = create.map_or(0, |mode| (mode & 0o777) as i32 | libc::IPC_CREAT | libc::IPC_EXCL);
    // SAFETY: semget takes plain integers.
    let id = unsafe { libc::semget(key, nsems, flags) };
    if id < 0 { Err(last_errno()) } else { Ok(id) }
}

/// One operation of a `semop` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemOp {
    /// Index of the semaphore in the set.
    pub index: u16,
    /// Added to the value (negative: wait until it can be subtracted; zero:
    /// wait until the value is zero).
    pub delta: i16,
    /// Undo this operation when the process exits (`SEM_UNDO`).
    pub undo: bool,
}

/// `semop`/`semtimedop` of several operations, applied atomically.
/// `EINTR` is retried (with the full relative timeout: System V offers no
/// absolute form).
pub(crate) fn semop(id: i32, ops: &[SemOp], nowait: bool, timeout: Option<Duration>) -> Result<(), Errno> {
    let mut bufs: Vec<libc::sembuf> = ops
        .iter()
        .map(|o| {
            let mut flg = 0;
            if o.undo {
                flg |= libc::SEM_UNDO;
            }
            if nowait {
                flg |= libc::IPC_NOWAIT;
            }
            libc::sembuf { sem_num: o.index, sem_op: o.delta, sem_flg: flg as libc::c_short }
        })
        .collect();
    let deadline = timeout.map(|t| std::time::Instant::now().checked_add(t));
    loop {
        let r = match deadline.flatten() {
            None => {
                // SAFETY: `bufs` is a valid array of `len` sembuf structs.
                unsafe { libc::semop(id, bufs.as_mut_ptr(), bufs.len()) }
            }
            Some(deadline) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let ts = libc::timespec { tv_sec: left.as_secs() as _, tv_nsec: left.subsec_nanos() as _ };
                // SAFETY: as above; `ts` is a valid relative timeout.
                unsafe { semtimedop(id, bufs.as_mut_ptr(), bufs.len(), &ts) }
            }
        };
        if r == 0 {
            return Ok(());
        }
        match last_errno() {
            Errno::INTR => continue,
            e => return Err(e),
        }
    }
}

/// `semctl(GETVAL)`.
pub(crate) fn sem_getval(id: i32, index: u16) -> Result<i32, Errno> {
    // SAFETY: GETVAL takes no fourth argument.
    let v = unsafe { libc::semctl(id, index as libc::c_int, libc::GETVAL) };
    if v < 0 { Err(last_errno()) } else { Ok(v) }
}

/// `semctl(SETVAL, value)`.
pub(crate) fn sem_setval(id: i32, index: u16, value: i32) -> Result<(), Errno> {
    // SAFETY: SETVAL reads the `val` member of `union semun`, an int, passed
    // as the variadic fourth argument.
    if unsafe { libc::semctl(id, index as libc::c_int, libc::SETVAL, value as libc::c_int) } < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// What [`sem_query`] asks of one semaphore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SemQuery {
    /// `GETPID`: the last process that operated on it.
    LastPid,
    /// `GETNCNT`: how many processes wait for it to increase.
    Waiting,
}

/// `semctl(GETPID / GETNCNT)`.
pub(crate) fn sem_query(id: i32, index: u16, query: SemQuery) -> Result<i32, Errno> {
    let cmd = match query {
        SemQuery::LastPid => libc::GETPID,
        SemQuery::Waiting => libc::GETNCNT,
    };
    // SAFETY: these commands take no fourth argument.
    let v = unsafe { libc::semctl(id, index as libc::c_int, cmd) };
    if v < 0 { Err(last_errno()) } else { Ok(v) }
}

/// The status of a semaphore set (`semctl(IPC_STAT)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemStat {
    /// Semaphores in the set.
    pub count: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Time of the last semop (seconds since the epoch, 0 if none).
    pub last_op_time: i64,
}

/// `semctl(IPC_STAT)`.
pub(crate) fn sem_stat(id: i32) -> Result<SemStat, Errno> {
    // SAFETY: semid_ds is plain integers; all-zero is valid.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes a semid_ds through the `buf` member of
    // `union semun`, a pointer, passed as the variadic fourth argument.
    if unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) } < 0 {
        return Err(last_errno());
    }
    Ok(SemStat {
        count: ds.sem_nsems as u64,
        uid: ds.sem_perm.uid,
        mode: ds.sem_perm.mode as u32 & 0o777,
        last_op_time: ds.sem_otime as i64,
    })
}

/// `semctl(IPC_RMID)`.
pub(crate) fn sem_remove(id: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID takes no fourth argument.
    if unsafe { libc::semctl(id, 0, libc::IPC_RMID) } < 0 { Err(last_errno()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mutex as ipckit makes it, in 8-byte aligned private memory.
    fn fresh() -> Box<[u64; 8]> {
        let mut m = Box::new([0u64; 8]);
        // SAFETY: 64 writable, aligned bytes used by this thread only.
        unsafe { mutex_init(m.as_mut_ptr().cast()) }.unwrap();
        m
    }

    fn word(m: &mut [u64; 8], offset: usize) -> &mut u32 {
        // SAFETY: an aligned u32 inside the array, borrowed from it.
        unsafe { &mut *m.as_mut_ptr().cast::<u8>().add(offset).cast::<u32>() }
    }

    #[test]
    fn the_kind_word_is_what_the_layout_table_says() {
        let mut m = fresh();
        // PSHARED bit | PTHREAD_MUTEX_ROBUST_NORMAL_NP | ERRORCHECK.
        assert_eq!(expected_kind(), 128 | 16 | 2);
        assert_eq!(*word(&mut m, glibc_mutex::KIND), 0x92);
        assert_eq!(*word(&mut m, glibc_mutex::LOCK), 0);
    }

    #[test]
    fn the_check_passes_what_glibc_writes_and_refuses_the_rest() {
        let mut m = fresh();
        let p: *mut u8 = m.as_mut_ptr().cast();
        // SAFETY: `m` is an initialised mutex that outlives every call.
        unsafe {
            assert_eq!(mutex_lock(p, LockWait::Try), Ok(false));
            assert_eq!(mutex_owner_tid(p), rustix::thread::gettid().as_raw_nonzero().get() as u32);
            mutex_check(p).unwrap();
            mutex_unlock(p).unwrap();
            mutex_check(p).unwrap();
        }
        // The kernel's owner-died and waiters bits on a thread id.
        for lock in [0x4000_0000, 0xc000_0000, 0x8000_0000 | 1234, (1 << 22) - 1] {
            *word(&mut m, glibc_mutex::LOCK) = lock;
            // SAFETY: as above.
            assert_eq!(unsafe { mutex_check(p) }, Ok(()), "{lock:#x}");
        }
        for lock in [200 << 19, 1 << 22, 0x3fff_ffff, u32::MAX] {
            *word(&mut m, glibc_mutex::LOCK) = lock;
            // SAFETY: as above.
            assert_eq!(unsafe { mutex_check(p) }, Err(MutexDefect::LockWord(lock)), "{lock:#x}");
            // SAFETY: as above; refused before glibc reads it.
            assert_eq!(unsafe { mutex_lock(p, LockWait::Try) }, Err(LockFailure::Defect(MutexDefect::LockWord(lock))));
        }
        *word(&mut m, glibc_mutex::LOCK) = 0;
        for kind in [0x40, 0x92 | 0x20, 0x92 | 0x40, 0x12, 0x90, 0] {
            *word(&mut m, glibc_mutex::KIND) = kind;
            let want = MutexDefect::Kind { found: kind, expected: 0x92 };
            // SAFETY: as above.
            assert_eq!(unsafe { mutex_lock(p, LockWait::Try) }, Err(LockFailure::Defect(want)), "{kind:#x}");
        }
    }
}
