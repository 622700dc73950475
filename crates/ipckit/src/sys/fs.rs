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
pub(crate) fn open(path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    retry(|| rustix::fs::open(path, flags | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty()))
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

/// Opens directory `dir` and takes an exclusive `flock` on it, released
/// when the returned descriptor is closed. Serialises check-then-replace
/// sequences among ipckit processes working in the same directory.
pub(crate) fn lock_dir(dir: &Path) -> Result<OwnedFd, Errno> {
    let fd = open(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
    retry(|| rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive))?;
    Ok(fd)
}
