//! Message queues: POSIX (`mq_*`, a file descriptor on Linux) and System V
//! (`msgget`/`msgsnd`/`msgrcv`/`msgctl`, an integer id and no descriptor).
//! Neither is in rustix: these wrap libc.

// libc field types differ between architectures; the casts are needed on some.
#![allow(clippy::unnecessary_cast)]
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;

use super::io::retry;

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

fn c_string(text: &[u8]) -> Result<CString, Errno> {
    CString::new(text).map_err(|_| Errno::INVAL)
}

/// The attributes of a POSIX queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqAttr {
    /// Most messages the queue holds.
    pub maxmsg: i64,
    /// Largest message, in bytes.
    pub msgsize: i64,
    /// Messages in the queue now.
    pub curmsgs: i64,
    /// Whether this descriptor is non-blocking.
    pub nonblocking: bool,
}

/// How [`mq_open`] creates a queue: `O_CREAT | O_EXCL` with this mode and,
/// if given, these attributes (`maxmsg`, `msgsize`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MqCreate {
    pub(crate) mode: u32,
    pub(crate) attr: Option<(i64, i64)>,
}

/// `mq_open(name, O_RDWR [| O_NONBLOCK] [| O_CREAT | O_EXCL], mode, attr)`,
/// close-on-exec (glibc opens queues with `O_CLOEXEC`): creates the queue
/// exclusively when `create` is given, else opens an existing one.
pub(crate) fn mq_open(name: &str, create: Option<MqCreate>, nonblocking: bool) -> Result<OwnedFd, Errno> {
    let cname = c_string(name.as_bytes())?;
    let mut flags = libc::O_RDWR;
    if nonblocking {
        flags |= libc::O_NONBLOCK;
    }
    let (mode, attr) = match create {
        Some(c) => {
            flags |= libc::O_CREAT | libc::O_EXCL;
            (c.mode, c.attr)
        }
        None => (0, None),
    };
    let mut raw_attr: libc::mq_attr = mq_attr_zeroed();
    let attr_ptr = match attr {
        Some((maxmsg, msgsize)) => {
            raw_attr.mq_maxmsg = maxmsg as _;
            raw_attr.mq_msgsize = msgsize as _;
            &mut raw_attr as *mut libc::mq_attr
        }
        None => std::ptr::null_mut(),
    };
    let fd = retry(|| {
        // SAFETY: `cname` is a valid NUL-terminated string; the variadic
        // arguments are the mode (as c_uint, the promoted mode_t) and a
        // pointer that is null or points to a live mq_attr, as mq_open(3)
        // expects when O_CREAT is given (and ignores otherwise).
        let fd = unsafe { libc::mq_open(cname.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint, attr_ptr) };
        if fd < 0 { Err(last_errno()) } else { Ok(fd) }
    })?;
    // SAFETY: mq_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mq_attr_zeroed() -> libc::mq_attr {
    // SAFETY: mq_attr is plain integers (and private padding); all-zero is a
    // valid value.
    unsafe { std::mem::zeroed() }
}

/// `mq_unlink(name)`.
pub(crate) fn mq_unlink(name: &str) -> Result<(), Errno> {
    let cname = c_string(name.as_bytes())?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    if unsafe { libc::mq_unlink(cname.as_ptr()) } < 0 { Err(last_errno()) } else { Ok(()) }
}

/// `mq_getattr`.
pub(crate) fn mq_getattr(fd: BorrowedFd<'_>) -> Result<MqAttr, Errno> {
    let mut attr = mq_attr_zeroed();
    // SAFETY: `fd` is an open descriptor (a queue, or the call fails with
    // EBADF/EINVAL) and `attr` is a valid out-pointer.
    if unsafe { libc::mq_getattr(fd.as_raw_fd(), &mut attr) } < 0 {
        return Err(last_errno());
    }
    Ok(MqAttr {
        maxmsg: attr.mq_maxmsg as i64,
        msgsize: attr.mq_msgsize as i64,
        curmsgs: attr.mq_curmsgs as i64,
        nonblocking: attr.mq_flags as i64 & libc::O_NONBLOCK as i64 != 0,
    })
}

/// `mq_send`, retrying `EINTR`.
pub(crate) fn mq_send(fd: BorrowedFd<'_>, msg: &[u8], priority: u32) -> Result<(), Errno> {
    retry(|| {
        // SAFETY: `msg` is valid for reads of `msg.len()` bytes.
        let r = unsafe { libc::mq_send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), priority) };
        if r < 0 { Err(last_errno()) } else { Ok(()) }
    })
}

/// `mq_receive`, retrying `EINTR`: the length and priority of the message.
pub(crate) fn mq_receive(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, u32), Errno> {
    retry(|| {
        let mut priority = 0u32;
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes and
        // `priority` is a valid out-pointer.
        let n = unsafe { libc::mq_receive(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), &mut priority) };
        if n < 0 { Err(last_errno()) } else { Ok((n as usize, priority)) }
    })
}

/// `ftok(path, id)`.
pub(crate) fn ftok(path: &Path, id: u8) -> Result<i32, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = c_string(path.as_os_str().as_bytes())?;
    // SAFETY: `cpath` is a valid NUL-terminated string.
    let key = unsafe { libc::ftok(cpath.as_ptr(), id as libc::c_int) };
    if key == -1 { Err(last_errno()) } else { Ok(key) }
}

/// `msgget(key, 0)`, or with `create` `msgget(key, mode | IPC_CREAT |
/// IPC_EXCL)`: the queue id.
pub(crate) fn msgget(key: i32, create: Option<u32>) -> Result<i32, Errno> {
    let flags = create.map_or(0, |mode| (mode & 0o777) as i32 | libc::IPC_CREAT | libc::IPC_EXCL);
    // SAFETY: msgget takes plain integers.
    let id = unsafe { libc::msgget(key, flags) };
    if id < 0 { Err(last_errno()) } else { Ok(id) }
}

/// The status of a System V queue (`msgctl(IPC_STAT)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsqStat {
    /// Messages in the queue.
    pub messages: u64,
    /// Bytes in the queue.
    pub bytes: u64,
    /// Most bytes the queue may hold.
    pub max_bytes: u64,
    /// Process that sent last.
    pub last_sender: i32,
    /// Process that received last.
    pub last_receiver: i32,
    /// Owner's user id.
    pub uid: u32,
    /// Creator's user id.
    pub cuid: u32,
    /// Permission bits.
    pub mode: u32,
}

fn msqid_zeroed() -> libc::msqid_ds {
    // SAFETY: msqid_ds is plain integers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `msgctl(IPC_STAT)`.
pub(crate) fn msg_stat(id: i32) -> Result<MsqStat, Errno> {
    let mut ds = msqid_zeroed();
    // SAFETY: `ds` is a valid out-pointer for msgctl(IPC_STAT).
    if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } < 0 {
        return Err(last_errno());
    }
    Ok(MsqStat {
        messages: ds.msg_qnum as u64,
        bytes: ds.__msg_cbytes as u64,
        max_bytes: ds.msg_qbytes as u64,
        last_sender: ds.msg_lspid,
        last_receiver: ds.msg_lrpid,
        uid: ds.msg_perm.uid,
        cuid: ds.msg_perm.cuid,
        mode: ds.msg_perm.mode as u32 & 0o777,
    })
}

/// `msgctl(IPC_SET)` of the queue's byte limit.
pub(crate) fn msg_set_max_bytes(id: i32, max_bytes: u64) -> Result<(), Errno> {
    let mut ds = msqid_zeroed();
    // SAFETY: `ds` is a valid out-pointer for msgctl(IPC_STAT).
    if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } < 0 {
        return Err(last_errno());
    }
    ds.msg_qbytes = max_bytes as _;
    // SAFETY: `ds` holds the queue's own status with one field changed.
    if unsafe { libc::msgctl(id, libc::IPC_SET, &mut ds) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// `msgctl(IPC_RMID)`.
pub(crate) fn msg_remove(id: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID ignores the buffer argument.
    if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 { Err(last_errno()) } else { Ok(()) }
}

/// Size of the `long mtype` that precedes every System V message.
pub(crate) const MTYPE_SIZE: usize = std::mem::size_of::<libc::c_long>();

/// Appends a message type as the `long mtype` that starts a `struct msgbuf`.
pub(crate) fn push_mtype(buf: &mut Vec<u8>, msg_type: i64) {
    buf.extend_from_slice(&(msg_type as libc::c_long).to_ne_bytes());
}

/// The message type at the start of a `struct msgbuf` (at least
/// [`MTYPE_SIZE`] bytes).
pub(crate) fn read_mtype(buf: &[u8]) -> i64 {
    let mut raw = [0u8; MTYPE_SIZE];
    raw.copy_from_slice(&buf[..MTYPE_SIZE]);
    // c_long is i64 on 64-bit Linux, i32 elsewhere.
    libc::c_long::from_ne_bytes(raw) as i64
}

/// `msgsnd`: `buf` is the whole `struct msgbuf` (type, then text); sends
/// `buf.len() - MTYPE_SIZE` text bytes. Retries `EINTR`.
pub(crate) fn msgsnd(id: i32, buf: &[u8], nowait: bool) -> Result<(), Errno> {
    if buf.len() < MTYPE_SIZE {
        return Err(Errno::INVAL);
    }
    let flags = if nowait { libc::IPC_NOWAIT } else { 0 };
    retry(|| {
        // SAFETY: `buf` holds a message type followed by `len - MTYPE_SIZE`
        // bytes of text, the layout msgsnd reads; msgsnd only reads it (the
        // kernel copies with copy_from_user, so alignment is not required).
        let r = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), buf.len() - MTYPE_SIZE, flags) };
        if r < 0 { Err(last_errno()) } else { Ok(()) }
    })
}

/// `msgrcv`: receives into `buf` (type, then at most
/// `buf.len() - MTYPE_SIZE` text bytes). Returns the text length. Retries
/// `EINTR`.
pub(crate) fn msgrcv(id: i32, buf: &mut [u8], msgtyp: i64, nowait: bool, noerror: bool) -> Result<usize, Errno> {
    if buf.len() < MTYPE_SIZE {
        return Err(Errno::INVAL);
    }
    let mut flags = 0;
    if nowait {
        flags |= libc::IPC_NOWAIT;
    }
    if noerror {
        flags |= libc::MSG_NOERROR;
    }
    retry(|| {
        // SAFETY: `buf` is valid for writes of its length: the type and at
        // most `len - MTYPE_SIZE` text bytes, which is what msgrcv writes.
        let n = unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), buf.len() - MTYPE_SIZE, msgtyp as _, flags) };
        if n < 0 { Err(last_errno()) } else { Ok(n as usize) }
    })
}
