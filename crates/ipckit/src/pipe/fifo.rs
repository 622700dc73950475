//! Named pipes (FIFOs): `fifo:/path`.
//!
//! Created with mode 0600 (or the endpoint's `mode`), exactly, whatever the
//! umask. Opening checks that the path is a FIFO and belongs to the caller's
//! user, so that a FIFO planted by someone else is refused
//! (`PermissionDenied`).

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::OFlags;

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::sys::{self, Errno};

/// `mkfifo(path, mode)`, exclusive: `AlreadyExists` if the path exists.
pub fn create(path: &Path, mode: u32) -> Result<()> {
    sys::fs::mkfifo(path, mode).map_err(|e| Error::os("mkfifo", path.display(), e))
}

/// Removes a FIFO (refusing other kinds of file).
pub fn remove(path: &Path) -> Result<()> {
    match sys::fs::file_type(path) {
        Ok(sys::fs::Kind::Fifo) => sys::fs::unlink(path).map_err(|e| Error::os("unlink", path.display(), e)),
        Ok(_) => Err(Error::new(ErrorKind::Invalid, "rm", path.display(), "not a FIFO")),
        Err(e) => Err(Error::os("rm", path.display(), e)),
    }
}

/// Creates the FIFO if `opts` say so. Returns whether this call created it.
pub(crate) fn ensure(ep: &Endpoint, path: &Path, opts: &Options) -> Result<bool> {
    if !opts.create {
        return Ok(false);
    }
    let mode = ep.mode()?.unwrap_or(0o600);
    match sys::fs::mkfifo(path, mode) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST) if !opts.exclusive => Ok(false),
        Err(e) => Err(Error::os("mkfifo", ep, e)),
    }
}

/// Opens the FIFO for reading without waiting for a writer.
pub(crate) fn open_read(ep: &Endpoint, path: &Path) -> Result<OwnedFd> {
    open(ep, path, OFlags::RDONLY)
}

/// Opens the FIFO for writing: `Disconnected` when no reader has it open.
pub(crate) fn open_write(ep: &Endpoint, path: &Path) -> Result<OwnedFd> {
    open(ep, path, OFlags::WRONLY)
}

fn open(ep: &Endpoint, path: &Path, access: OFlags) -> Result<OwnedFd> {
    let fd = sys::fs::open(path, access | OFlags::NONBLOCK).map_err(|e| match e {
        Errno::NXIO => Error::new(ErrorKind::Disconnected, "open", ep, "no reader has the FIFO open"),
        Errno::NOENT => Error::os("open", ep, e).with_detail("no such FIFO (create it with --create)"),
        e => Error::os("open", ep, e),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::os("fstat", ep, e))?;
    if sys::fs::Kind::from_raw_mode(st.st_mode) != sys::fs::Kind::Fifo {
        return Err(Error::new(ErrorKind::Invalid, "open", ep, "not a FIFO"));
    }
    crate::error::check_owner("open", ep, "FIFO", st.st_uid)?;
    // Blocking from here on: waits use poll, and a started frame finishes.
    sys::io::set_nonblocking(&fd, false).map_err(|e| Error::os("fcntl", ep, e))?;
    Ok(fd)
}
