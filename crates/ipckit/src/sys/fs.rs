//! File-system objects: FIFOs, socket files.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{CWD, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use super::io::retry;

/// `mkfifo(path, mode)` followed by `chmod(path, mode)`: the result has
/// exactly `mode`, whatever the umask.
pub(crate) fn mkfifo(path: &Path, mode: u32) -> Result<(), Errno> {
    rustix::fs::mkfifoat(CWD, path, Mode::from_raw_mode(mode))?;
    rustix::fs::chmod(path, Mode::from_raw_mode(mode))
}

/// Opens `path` with `flags` plus `O_CLOEXEC`, retrying `EINTR`.
fn open(path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    retry(|| rustix::fs::open(path, flags | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty()))
}

/// Opens a FIFO (or whatever is at `path`) for reading or writing without
/// waiting: `O_NONBLOCK`, so that opening for writing with no reader fails
/// with `ENXIO` instead of blocking. The caller clears `O_NONBLOCK` after.
pub(crate) fn open_nonblocking(path: &Path, write: bool) -> Result<OwnedFd, Errno> {
    open(path, if write { OFlags::WRONLY } else { OFlags::RDONLY } | OFlags::NONBLOCK)
}

/// What `stat` says of a file, as ipckit uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) uid: u32,
    /// Permission bits (with set-id and sticky bits).
    pub(crate) mode: u32,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) nlink: u64,
}

impl Stat {
    fn from_raw(st: rustix::fs::Stat) -> Stat {
        Stat {
            kind: FileType::from_raw_mode(st.st_mode),
            size: st.st_size as u64,
            uid: st.st_uid,
            mode: st.st_mode & 0o7777,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
        }
    }

    /// Whether `other` is the same file (device and inode).
    pub(crate) fn same_file(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// `fstat`.
/// `lseek(fd, offset, SEEK_HOLE)`: where the first hole at or after
/// `offset` starts (the file's size when there is none).
pub(crate) fn next_hole(fd: impl AsFd, offset: u64) -> Result<u64, Errno> {
    rustix::fs::seek(fd, rustix::fs::SeekFrom::Hole(offset))
}

pub(crate) fn fstat(fd: impl AsFd) -> Result<Stat, Errno> {
    rustix::fs::fstat(fd).map(Stat::from_raw)
}

/// `stat` (following symlinks).
pub(crate) fn stat(path: &Path) -> Result<Stat, Errno> {
    rustix::fs::stat(path).map(Stat::from_raw)
}

/// `fchmod`: the exact mode, whatever the umask was at creation.
pub(crate) fn fchmod(fd: impl AsFd, mode: u32) -> Result<(), Errno> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
}

/// Whether the descriptor was opened for reading and writing (`O_RDWR`).
pub(crate) fn is_read_write(fd: impl AsFd) -> Result<bool, Errno> {
    Ok(rustix::fs::fcntl_getfl(fd)? & OFlags::ACCMODE == OFlags::RDWR)
}

/// `unlink(path)`.
pub(crate) fn unlink(path: &Path) -> Result<(), Errno> {
    rustix::fs::unlink(path)
}

/// `chmod(path, mode)`.
pub(crate) fn chmod(path: &Path, mode: u32) -> Result<(), Errno> {
    rustix::fs::chmod(path, Mode::from_raw_mode(mode))
}

/// `renameat2(from, to, RENAME_NOREPLACE)`: fails with `EEXIST` rather than
/// replace `to`.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> Result<(), Errno> {
    rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE)
}

/// The type of the file at `path` (not following a final symlink).
pub(crate) fn file_type(path: &Path) -> Result<FileType, Errno> {
    Ok(FileType::from_raw_mode(rustix::fs::lstat(path)?.st_mode))
}

/// The type of an open file.
pub(crate) fn fd_file_type(fd: impl AsFd) -> Result<FileType, Errno> {
    Ok(FileType::from_raw_mode(rustix::fs::fstat(fd)?.st_mode))
}

pub(crate) use rustix::fs::FileType as Kind;

/// The most bytes a write to a pipe or FIFO puts in it atomically, never
/// interleaved with another writer's (`PIPE_BUF`, pipe(7)).
pub(crate) const PIPE_BUF: usize = rustix::pipe::PIPE_BUF;

/// What a file of `kind` is called in messages ("a regular file").
pub(crate) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::RegularFile => "regular file",
        Kind::Directory => "directory",
        Kind::Symlink => "symbolic link",
        Kind::Fifo => "FIFO",
        Kind::Socket => "socket",
        Kind::CharacterDevice => "character device",
        Kind::BlockDevice => "block device",
        _ => "file of unknown type",
    }
}

/// Opens directory `dir` and takes an exclusive `flock` on it, released
/// when the returned descriptor is closed. Serialises check-then-replace
/// sequences among ipckit processes working in the same directory.
pub(crate) fn lock_dir(dir: &Path) -> Result<OwnedFd, Errno> {
    let fd = open(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
    retry(|| rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive))?;
    Ok(fd)
}

/// `/dev/null`, opened close-on-exec: a descriptor held in reserve, to be
/// given up when descriptors run out.
pub(crate) fn open_reserve() -> Result<OwnedFd, Errno> {
    open(Path::new("/dev/null"), OFlags::RDONLY)
}
