//! The raw baselines' `unsafe` code, all in one place: the libc calls
//! rustix does not have (POSIX message queues, System V message queues,
//! pthread mutexes) and a shared mapping handed out as atomics and copies
//! in and out. Every other raw loop is safe rustix.
//!
//! Each wrapper makes exactly one system call (or one pthread call) per
//! use, retrying `EINTR` as ipckit's `sys` layer does, so that what the raw
//! loops time is the call, not a wrapper.

use std::ffi::CString;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use rustix::io::Errno;

/// The `errno` of the last failed libc call.
fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

/// Runs `f` again while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

fn c_string(text: &str) -> Result<CString, Errno> {
    CString::new(text).map_err(|_| Errno::INVAL)
}

/// One descriptor of a POSIX message queue, blocking (as the descriptor
/// ipckit's blocking forms use). With `unlink`, the queue's name is removed
/// on drop.
#[derive(Debug)]
pub(super) struct PosixQueue {
    fd: OwnedFd,
    name: CString,
    unlink: bool,
}

impl PosixQueue {
    /// `mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, {maxmsg,
    /// msgsize})`: a new queue, removed on drop.
    pub(super) fn create(name: &str, maxmsg: i64, msgsize: i64) -> Result<PosixQueue, Errno> {
        let cname = c_string(name)?;
        // SAFETY: mq_attr is plain integers; all-zero is a valid value.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = maxmsg as _;
        attr.mq_msgsize = msgsize as _;
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
        let fd = retry(|| {
            // SAFETY: `cname` is NUL-terminated; the variadic arguments are
            // the mode (as the promoted c_uint) and a pointer to a live
            // mq_attr, as mq_open(3) reads them with O_CREAT.
            let fd = unsafe { libc::mq_open(cname.as_ptr(), flags, 0o600 as libc::c_uint, &mut attr as *mut _) };
            if fd < 0 { Err(last_errno()) } else { Ok(fd) }
        })?;
        // SAFETY: mq_open returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PosixQueue { fd, name: cname, unlink: true })
    }

    /// `mq_open(name, O_RDWR | O_CLOEXEC)`: an existing queue, left in
    /// place on drop.
    pub(super) fn open(name: &str) -> Result<PosixQueue, Errno> {
        let cname = c_string(name)?;
        let fd = retry(|| {
            // SAFETY: `cname` is NUL-terminated; without O_CREAT mq_open
            // reads no variadic arguments.
            let fd = unsafe { libc::mq_open(cname.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
            if fd < 0 { Err(last_errno()) } else { Ok(fd) }
        })?;
        // SAFETY: mq_open returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PosixQueue { fd, name: cname, unlink: false })
    }

    /// `mq_send(fd, msg, len, 0)`.
    pub(super) fn send(&self, msg: &[u8]) -> Result<(), Errno> {
        retry(|| {
            // SAFETY: `msg` is valid for reads of `msg.len()` bytes.
            let r = unsafe { libc::mq_send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
            if r < 0 { Err(last_errno()) } else { Ok(()) }
        })
    }

    /// `mq_receive(fd, buf, len, &priority)`: the message's length. `buf`
    /// must be at least the queue's message size.
    pub(super) fn receive(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        retry(|| {
            let mut priority = 0u32;
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes and
            // `priority` is a valid out-pointer.
            let n = unsafe { libc::mq_receive(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), &mut priority) };
            if n < 0 { Err(last_errno()) } else { Ok(n as usize) }
        })
    }
}

impl Drop for PosixQueue {
    fn drop(&mut self) {
        if self.unlink {
            // SAFETY: `name` is NUL-terminated.
            unsafe { libc::mq_unlink(self.name.as_ptr()) };
        }
    }
}

/// The size of the `long mtype` before every System V message's text.
pub(super) const MTYPE_SIZE: usize = std::mem::size_of::<libc::c_long>();

/// The message type every raw System V message carries (as ipckit's
/// default).
pub(super) const MTYPE: libc::c_long = 1;

/// A System V message queue. With `remove`, the queue is removed
/// (`IPC_RMID`) on drop.
#[derive(Debug)]
pub(super) struct SysvQueue {
    id: i32,
    remove: bool,
}

impl SysvQueue {
    /// `msgget(key, IPC_CREAT | IPC_EXCL | 0600)`: a new queue, removed on
    /// drop.
    pub(super) fn create(key: i32) -> Result<SysvQueue, Errno> {
        // SAFETY: msgget takes plain integers.
        let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        if id < 0 { Err(last_errno()) } else { Ok(SysvQueue { id, remove: true }) }
    }

    /// `msgget(key, 0)`: an existing queue, left in place on drop.
    pub(super) fn open(key: i32) -> Result<SysvQueue, Errno> {
        // SAFETY: msgget takes plain integers.
        let id = unsafe { libc::msgget(key, 0) };
        if id < 0 { Err(last_errno()) } else { Ok(SysvQueue { id, remove: false }) }
    }

    /// `msgsnd(id, msgbuf, len - MTYPE_SIZE, 0)`: `msgbuf` is the type,
    /// then the text.
    pub(super) fn send(&self, msgbuf: &[u8]) -> Result<(), Errno> {
        assert!(msgbuf.len() >= MTYPE_SIZE, "a System V message starts with its type");
        retry(|| {
            // SAFETY: `msgbuf` holds a message type and `len - MTYPE_SIZE`
            // text bytes, the layout msgsnd reads (it only reads, and copies
            // with copy_from_user, so alignment is not required).
            let r = unsafe { libc::msgsnd(self.id, msgbuf.as_ptr().cast(), msgbuf.len() - MTYPE_SIZE, 0) };
            if r < 0 { Err(last_errno()) } else { Ok(()) }
        })
    }

    /// `msgrcv(id, msgbuf, len - MTYPE_SIZE, 0, 0)`: the first message, its
    /// type and text written to `msgbuf`; returns the text's length.
    pub(super) fn receive(&self, msgbuf: &mut [u8]) -> Result<usize, Errno> {
        assert!(msgbuf.len() >= MTYPE_SIZE, "a System V message starts with its type");
        retry(|| {
            // SAFETY: `msgbuf` is valid for writes of its length: the type
            // and at most `len - MTYPE_SIZE` text bytes, what msgrcv writes.
            let n = unsafe { libc::msgrcv(self.id, msgbuf.as_mut_ptr().cast(), msgbuf.len() - MTYPE_SIZE, 0, 0) };
            if n < 0 { Err(last_errno()) } else { Ok(n as usize) }
        })
    }
}

impl Drop for SysvQueue {
    fn drop(&mut self) {
        if self.remove {
            // SAFETY: IPC_RMID ignores the buffer argument.
            unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

/// A page (or more) of shared memory: a memfd mapped `MAP_SHARED`, to pass
/// to the peer by descriptor. Only atomics and a pthread mutex are made
/// from it, and copies in and out: no reference to plain bytes another
/// process writes.
///
/// Its own on purpose, not ipckit's (the library's `sys::shm::Mapping` is
/// crate-private, and under the ipckit rows it is part of what is measured):
/// the two share only the shape of an owned mapping.
#[derive(Debug)]
pub(super) struct SharedPage {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the page is an owned mapping; every access from any thread goes
// through atomics (or the pthread calls, which are made for sharing).
unsafe impl Send for SharedPage {}
// SAFETY: as above: `&SharedPage` hands out only atomics and pointers used
// by pthread calls.
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// A new zero-filled memfd of `len` bytes, mapped.
    pub(super) fn create(len: usize) -> Result<SharedPage, Errno> {
        let fd = rustix::fs::memfd_create("ipckit-bench", rustix::fs::MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        SharedPage::map(fd, len)
    }

    /// Maps a page the parent created and passed (its whole length).
    pub(super) fn from_fd(fd: OwnedFd) -> Result<SharedPage, Errno> {
        let len = usize::try_from(rustix::fs::fstat(&fd)?.st_size).map_err(|_| Errno::INVAL)?;
        SharedPage::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> Result<SharedPage, Errno> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
        // SAFETY: a new mapping at an address the kernel chooses overlaps no
        // Rust object; it is owned by the returned SharedPage and unmapped
        // once, on drop.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, rustix::mm::MapFlags::SHARED, &fd, 0)? };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::NOMEM)?;
        Ok(SharedPage { ptr, len, fd })
    }

    /// The mapping's length in bytes.
    pub(super) fn size(&self) -> usize {
        self.len
    }

    /// The memfd, to pass to the peer.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Checks that `size` bytes at `offset` are inside and aligned to
    /// `size`; the address.
    fn at(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(offset % size == 0 && offset + size <= self.len, "offset {offset} in a {}-byte page", self.len);
        self.ptr.as_ptr().wrapping_add(offset)
    }

    /// The 32-bit word at `offset` (4-byte aligned, checked).
    pub(super) fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: the 4 bytes are inside the mapping, which lives as long as
        // the borrow of `self`, and aligned (checked). Atomics permit access
        // from other processes at any time; any bits are a valid u32.
        unsafe { AtomicU32::from_ptr(self.at(offset, 4).cast()) }
    }

    /// The 64-bit word at `offset` (8-byte aligned, checked).
    pub(super) fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: as for `atomic_u32`, with 8 bytes.
        unsafe { AtomicU64::from_ptr(self.at(offset, 8).cast()) }
    }

    /// Checks that `len` bytes at `offset` are inside; the address.
    fn span(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(offset <= self.len && len <= self.len - offset, "{len} bytes at {offset} in a {}-byte page", self.len);
        self.ptr.as_ptr().wrapping_add(offset)
    }

    /// Copies `data` into the page at `offset` (inside, checked): a plain
    /// `memcpy`, as a C program would make.
    ///
    /// The raw loops call this only on bytes their protocol has handed to
    /// this side (the other process touches them again only after a
    /// release/acquire hand-off back), and the other process is this
    /// program's own peer: no access races with the copy.
    pub(super) fn write_bytes(&self, offset: usize, data: &[u8]) {
        let dst = self.span(offset, data.len());
        // SAFETY: `dst..dst + len` is inside the mapping (checked), which
        // lives as long as `self`, and cannot overlap `data` (a Rust
        // buffer, not this mapping). Nobody else accesses those bytes
        // during the copy (the raw loops' protocols, see above).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) }
    }

    /// Copies `buf.len()` bytes at `offset` (inside, checked) into `buf`:
    /// a plain `memcpy`, under the same hand-off as
    /// [`write_bytes`](Self::write_bytes).
    pub(super) fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        let src = self.span(offset, buf.len());
        // SAFETY: as in `write_bytes`: inside the live mapping, no overlap
        // with `buf`, and nobody writes those bytes during the copy. Any
        // bytes are a valid `u8`.
        unsafe { std::ptr::copy_nonoverlapping(src.cast_const(), buf.as_mut_ptr(), buf.len()) }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: exactly the range mmap returned; no borrow of it remains
        // (atomics and mutexes borrow `self`).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A pthread mutex in a [`SharedPage`] with ipckit's attributes:
/// process-shared, robust, error-checking.
#[derive(Debug)]
pub(super) struct PthreadMutex<'a> {
    m: *mut libc::pthread_mutex_t,
    _page: PhantomData<&'a SharedPage>,
}

/// An offset aligned for `pthread_mutex_t`, and 64 bytes long (as in
/// ipckit's mutex object).
fn mutex_at(page: &SharedPage, offset: usize) -> *mut libc::pthread_mutex_t {
    const { assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= 64) };
    page.at(offset, 64).cast()
}

fn rc(r: libc::c_int) -> Result<(), Errno> {
    if r == 0 { Ok(()) } else { Err(Errno::from_raw_os_error(r)) }
}

impl<'a> PthreadMutex<'a> {
    /// Initialises a mutex at `offset` of `page` (64-byte aligned), which
    /// nothing uses yet: `pthread_mutexattr_setpshared(PROCESS_SHARED)`,
    /// `setrobust(ROBUST)`, `settype(ERRORCHECK)`, `pthread_mutex_init`.
    pub(super) fn init(page: &'a SharedPage, offset: usize) -> Result<PthreadMutex<'a>, Errno> {
        let m = mutex_at(page, offset);
        // SAFETY: a zeroed attribute object is initialised by
        // pthread_mutexattr_init before any other use, and destroyed once.
        // `m` is inside the live mapping, aligned, and used by nobody until
        // the page is passed on (the caller's promise: a fresh page).
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            rc(libc::pthread_mutexattr_init(&mut attr))?;
            let r = (|| {
                rc(libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED))?;
                rc(libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST))?;
                rc(libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK))?;
                rc(libc::pthread_mutex_init(m, &attr))
            })();
            libc::pthread_mutexattr_destroy(&mut attr);
            r?;
        }
        Ok(PthreadMutex { m, _page: PhantomData })
    }

    /// The mutex another process initialised at `offset` of `page`.
    pub(super) fn attach(page: &'a SharedPage, offset: usize) -> PthreadMutex<'a> {
        PthreadMutex { m: mutex_at(page, offset), _page: PhantomData }
    }

    /// `pthread_mutex_lock`. A dead owner (`EOWNERDEAD`) is an error here:
    /// the bench's processes never die holding it.
    pub(super) fn lock(&self) -> Result<(), Errno> {
        // SAFETY: `m` is inside the page this borrows, which stays mapped
        // while the lock may be held (the borrow outlives every lock). The
        // parent initialises the mutex before passing the page on; even an
        // uninitialised one is all zeros, glibc's PTHREAD_MUTEX_INITIALIZER.
        rc(unsafe { libc::pthread_mutex_lock(self.m) })
    }

    /// `pthread_mutex_unlock`.
    pub(super) fn unlock(&self) -> Result<(), Errno> {
        // SAFETY: as for `lock`; an unlock by a thread that does not hold
        // the (error-checking) mutex fails with EPERM.
        rc(unsafe { libc::pthread_mutex_unlock(self.m) })
    }
}
