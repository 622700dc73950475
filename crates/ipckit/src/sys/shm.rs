//! Shared memory: POSIX objects, System V segments, memfd, file mappings,
//! and the one type that owns a mapping.

// libc field types differ between architectures; the casts are needed on some.
#![allow(clippy::unnecessary_cast)]
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;

use rustix::fs::{FallocateFlags, Mode, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MsyncFlags, ProtFlags};

use super::io::retry;

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

/// How a [`Mapping`] is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unmap {
    Munmap,
    Shmdt,
}

/// A shared mapping of `len` bytes at `ptr`, undone on drop.
///
/// The memory may be written by other processes at any time: the mapping
/// hands out only a raw pointer, never a reference to its bytes.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    unmap: Unmap,
}

// SAFETY: a Mapping is an owned address range; it can be moved to and used
// from any thread (every access goes through raw pointers and atomics).
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` gives out only a raw pointer.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(len, PROT_READ[|PROT_WRITE], MAP_SHARED, fd, 0)`.
    pub(crate) fn map_fd(fd: BorrowedFd<'_>, len: usize, writable: bool) -> Result<Mapping, Errno> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        let prot = if writable { ProtFlags::READ | ProtFlags::WRITE } else { ProtFlags::READ };
        // SAFETY: a fresh mapping at an address the kernel chooses (null
        // hint) cannot overlap any existing Rust object; the result is owned
        // by the returned Mapping and unmapped exactly once, on drop.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0)? };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::NOMEM)?;
        Ok(Mapping { ptr, len, unmap: Unmap::Munmap })
    }

    /// `mmap(len, PROT_READ, MAP_PRIVATE, fd, 0)`: a read-only view of a
    /// file whose contents cannot change (a memfd sealed with
    /// `F_SEAL_WRITE`). Never written, a private mapping shows the file's
    /// own pages; kernels before 6.7 refuse a shared mapping of a
    /// write-sealed memfd even read-only (`EPERM`), a private one never.
    pub(crate) fn map_fd_read_private(fd: BorrowedFd<'_>, len: usize) -> Result<Mapping, Errno> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        // SAFETY: as in `map_fd`: a fresh mapping at an address the kernel
        // chooses, owned by the returned Mapping and unmapped once, on drop.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, ProtFlags::READ, MapFlags::PRIVATE, fd, 0)? };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::NOMEM)?;
        Ok(Mapping { ptr, len, unmap: Unmap::Munmap })
    }

    /// `madvise(MADV_POPULATE_WRITE)` (or `_READ` for a read-only
    /// mapping): fault every page in now, so that the first use of each is
    /// not a page fault later (Linux 5.14; older kernels ignore it).
    pub(crate) fn populate(&self, writable: bool) {
        use rustix::mm::Advice;
        let advice = if writable { Advice::LinuxPopulateWrite } else { Advice::LinuxPopulateRead };
        // SAFETY: the range is this mapping, owned by `self`; populating
        // changes no contents.
        let _ = unsafe { rustix::mm::madvise(self.ptr.as_ptr().cast(), self.len, advice) };
    }

    /// `shmat(id, NULL, 0 or SHM_RDONLY)`.
    pub(crate) fn attach_sysv(id: i32, len: usize, writable: bool) -> Result<Mapping, Errno> {
        let flags = if writable { 0 } else { libc::SHM_RDONLY };
        // SAFETY: a null address lets the kernel choose a free range, so no
        // existing object is overlapped; the attachment is owned by the
        // returned Mapping and detached exactly once, on drop.
        let ptr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        if ptr as isize == -1 {
            return Err(last_errno());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::NOMEM)?;
        Ok(Mapping { ptr, len, unmap: Unmap::Shmdt })
    }

    /// The first byte.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `msync(MS_SYNC)` of `offset..offset+len` (rounded out to pages).
    pub(crate) fn flush(&self, offset: usize, len: usize) -> Result<(), Errno> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(Errno::INVAL);
        }
        let page = rustix::param::page_size();
        let start = offset / page * page;
        let end = offset + len;
        // SAFETY: `start..end` lies within this mapping (checked above, and
        // `start` rounds down to the page that contains `offset`, which the
        // page-aligned mapping also contains); msync does not change memory.
        unsafe { rustix::mm::msync(self.ptr.as_ptr().add(start).cast(), end - start, MsyncFlags::SYNC) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.unmap {
            Unmap::Munmap => {
                // SAFETY: `ptr..ptr+len` is exactly the range mmap returned,
                // and nothing can use it after this (the Mapping is gone and
                // every borrow of it has ended).
                let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
            Unmap::Shmdt => {
                // SAFETY: `ptr` is the address shmat returned; as above.
                let _ = unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
            }
        }
    }
}

/// `shm_open(name, O_RDWR or O_RDONLY [| O_CREAT | O_EXCL], mode)`,
/// close-on-exec: creates exclusively with mode `create` when given.
pub(crate) fn shm_open(name: &str, writable: bool, create: Option<u32>) -> Result<OwnedFd, Errno> {
    use rustix::shm::OFlags;
    let mut flags = if writable { OFlags::RDWR } else { OFlags::RDONLY };
    if create.is_some() {
        flags |= OFlags::CREATE | OFlags::EXCL;
    }
    retry(|| rustix::shm::open(shm_file_name(name), flags, Mode::from_raw_mode(create.unwrap_or(0))))
}

/// `shm_unlink(name)`.
pub(crate) fn shm_unlink(name: &str) -> Result<(), Errno> {
    rustix::shm::unlink(shm_file_name(name))
}

/// The name without its leading slash: rustix opens `/dev/shm/` plus the
/// name as given, but counts the slash against `NAME_MAX`, so that with
/// it a 255-byte name (which glibc's `shm_open` takes) would be
/// `ENAMETOOLONG`.
fn shm_file_name(name: &str) -> &str {
    name.trim_start_matches('/')
}

/// `posix_fallocate(fd, 0, len)`: reserves the pages now, so that a full
/// file system is `ENOSPC` here and not `SIGBUS` on a later store.
pub(crate) fn reserve(fd: BorrowedFd<'_>, len: u64) -> Result<(), Errno> {
    retry(|| rustix::fs::fallocate(fd, FallocateFlags::empty(), 0, len))
}

/// `fallocate(fd, 0, offset, len)`: reserves part of a file now (a pool's
/// chunks, the first time they are lent).
pub(crate) fn reserve_range(fd: BorrowedFd<'_>, offset: u64, len: u64) -> Result<(), Errno> {
    retry(|| rustix::fs::fallocate(fd, FallocateFlags::empty(), offset, len))
}

/// `ftruncate(fd, len)`.
pub(crate) fn set_len(fd: BorrowedFd<'_>, len: u64) -> Result<(), Errno> {
    retry(|| rustix::fs::ftruncate(fd, len))
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`.
pub(crate) fn memfd(name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING)
}

/// Adds seals to a memfd.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: SealFlags) -> Result<(), Errno> {
    rustix::fs::fcntl_add_seals(fd, seals)
}

/// The seals of a memfd (`EINVAL` for files that cannot be sealed).
pub(crate) fn seals(fd: BorrowedFd<'_>) -> Result<SealFlags, Errno> {
    rustix::fs::fcntl_get_seals(fd)
}

pub(crate) use rustix::fs::SealFlags as Seals;

/// `open(path, O_RDWR or O_RDONLY [| O_CREAT | O_EXCL], mode)` for a
/// mapped file, close-on-exec: creates exclusively with mode `create` when
/// given.
pub(crate) fn open_file(path: &Path, writable: bool, create: Option<u32>) -> Result<OwnedFd, Errno> {
    use rustix::fs::OFlags;
    let mut flags = if writable { OFlags::RDWR } else { OFlags::RDONLY };
    if create.is_some() {
        flags |= OFlags::CREATE | OFlags::EXCL;
    }
    retry(|| rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::from_raw_mode(create.unwrap_or(0))))
}

/// `flock(fd, LOCK_SH)`, waiting, retrying `EINTR`: a participant's hold.
pub(crate) fn lock_shared(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    retry(|| rustix::fs::flock(fd, rustix::fs::FlockOperation::LockShared))
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: `false` when another holder has it
/// (`EWOULDBLOCK`).
pub(crate) fn try_lock_exclusive(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    match retry(|| rustix::fs::flock(fd, rustix::fs::FlockOperation::NonBlockingLockExclusive)) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `flock(fd, LOCK_UN)`.
pub(crate) fn unlock(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    retry(|| rustix::fs::flock(fd, rustix::fs::FlockOperation::Unlock))
}

/// `shmget(key, size, 0)`, or with `create` `shmget(key, size, mode |
/// IPC_CREAT | IPC_EXCL)`.
pub(crate) fn shmget(key: i32, size: usize, create: Option<u32>) -> Result<i32, Errno> {
    let flags = create.map_or(0, |mode| (mode & 0o777) as i32 | libc::IPC_CREAT | libc::IPC_EXCL);
    // SAFETY: shmget takes plain integers.
    let id = unsafe { libc::shmget(key, size, flags) };
    if id < 0 { Err(last_errno()) } else { Ok(id) }
}

/// The status of a System V segment (`shmctl(IPC_STAT)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmStat {
    /// Size in bytes.
    pub size: u64,
    /// Processes attached now.
    pub attached: u64,
    /// The creating process.
    pub creator_pid: i32,
    /// The process that attached or detached last.
    pub last_pid: i32,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// `shmctl(IPC_STAT)`.
pub(crate) fn shm_stat(id: i32) -> Result<ShmStat, Errno> {
    // SAFETY: shmid_ds is plain integers; all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid out-pointer for IPC_STAT.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } < 0 {
        return Err(last_errno());
    }
    Ok(ShmStat {
        size: ds.shm_segsz as u64,
        attached: ds.shm_nattch as u64,
        creator_pid: ds.shm_cpid,
        last_pid: ds.shm_lpid,
        uid: ds.shm_perm.uid,
        mode: ds.shm_perm.mode as u32 & 0o777,
    })
}

/// `shmctl(IPC_RMID)`: the segment goes when the last process detaches.
pub(crate) fn shm_remove(id: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID ignores the buffer argument.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 { Err(last_errno()) } else { Ok(()) }
}
