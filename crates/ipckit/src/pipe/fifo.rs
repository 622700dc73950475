//! Named pipes (FIFOs): `fifo:/path`.
//!
//! Created with mode 0600 (or the endpoint's `mode`), exactly, whatever the
//! umask. Opening checks that the path is a FIFO and belongs to the caller's
//! user, so that a FIFO planted by someone else is refused
//! (`PermissionDenied`).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta};
use crate::name::{self, Attempt, Create, Opened};
use crate::options::Options;
use crate::sys::{self, Errno};
use crate::transport::stream::{StreamIo, StreamKind};
use crate::wait::{Got, Wait};

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

/// Creates the FIFO if `opts` say so (exclusively with `opts.exclusive`).
/// Returns whether this call created it.
pub(crate) fn ensure(ep: &Endpoint, path: &Path, opts: &Options) -> Result<bool> {
    let how = Create::from_flags(opts.create, opts.exclusive);
    if how == Create::No {
        return Ok(false);
    }
    let mode = ep.mode()?.unwrap_or(0o600);
    // Opening is done by the caller, for reading or writing: "open" here
    // only accepts the existing FIFO.
    let (_, opened) = name::create_or_open(how, |attempt| match attempt {
        Attempt::Create => sys::fs::mkfifo(path, mode),
        Attempt::Open => Ok(()),
    })
    .map_err(|(_, e)| Error::os("mkfifo", ep, e))?;
    Ok(opened == Opened::Created)
}

/// Opens the FIFO for reading without waiting for a writer.
pub(crate) fn open_read(ep: &Endpoint, path: &Path) -> Result<OwnedFd> {
    open(ep, path, false)
}

/// Opens the FIFO for writing: `Disconnected` when no reader has it open.
pub(crate) fn open_write(ep: &Endpoint, path: &Path) -> Result<OwnedFd> {
    open(ep, path, true)
}

fn open(ep: &Endpoint, path: &Path, write: bool) -> Result<OwnedFd> {
    let fd = sys::fs::open_nonblocking(path, write).map_err(|e| match e {
        Errno::NXIO => Error::new(ErrorKind::Disconnected, "open", ep, "no reader has the FIFO open"),
        Errno::NOENT => Error::os("open", ep, e).with_detail("no such FIFO"),
        e => Error::os("open", ep, e),
    })?;
    let st = sys::fs::fstat(&fd).map_err(|e| Error::os("fstat", ep, e))?;
    if st.kind != sys::fs::Kind::Fifo {
        return Err(Error::new(ErrorKind::Invalid, "open", ep, "not a FIFO"));
    }
    name::check_owner("open", ep, "FIFO", st.uid)?;
    // Blocking from here on: waits use poll, and a started frame finishes.
    sys::io::set_nonblocking(&fd, false).map_err(|e| Error::os("fcntl", ep, e))?;
    Ok(fd)
}

/// The reading end of a FIFO that outlives its writers: when the last
/// writer closes, it reopens the FIFO and waits for the next one, so that
/// a receiver on a FIFO serves one writer after another.
#[derive(Debug)]
pub(crate) struct FifoReader {
    io: StreamIo,
    endpoint: Endpoint,
    path: PathBuf,
    opts: Options,
    /// Just (re)opened: no writer may have come yet, so wait for data
    /// before reading (a read would see end-of-file at once).
    fresh: bool,
    /// The FIFO this reader created, removed on drop (`unlink_on_drop`).
    unlink: Option<PathBuf>,
}

impl FifoReader {
    /// Opens (with `opts.create`, makes) the FIFO for reading.
    pub(crate) fn open(ep: &Endpoint, path: &Path, opts: &Options) -> Result<FifoReader> {
        let created = ensure(ep, path, opts)?;
        let unlink = (created && opts.unlink_on_drop).then(|| path.to_path_buf());
        let io = FifoReader::stream(ep, path, opts)?;
        Ok(FifoReader { io, endpoint: ep.clone(), path: path.to_path_buf(), opts: opts.clone(), fresh: true, unlink })
    }

    fn stream(ep: &Endpoint, path: &Path, opts: &Options) -> Result<StreamIo> {
        let name: Arc<str> = ep.to_string().into();
        Ok(StreamIo::new(open_read(ep, path)?, StreamKind::Pipe, opts.framing, opts.max_message, name))
    }

    /// The FIFO's endpoint.
    pub(crate) fn name(&self) -> &str {
        self.io.name()
    }

    /// The descriptor; it changes when the reader reopens.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.io.fd()
    }

    pub(crate) fn has_buffered_message(&self) -> bool {
        self.io.has_buffered_message()
    }

    /// One receive attempt by `f` within `wait`, reopening when every
    /// writer has closed.
    fn next<T>(&mut self, wait: Wait, mut f: impl FnMut(&mut StreamIo, Wait) -> Result<Got<T>>) -> Result<Got<T>> {
        loop {
            if self.fresh && !self.io.has_buffered_message() {
                let readable =
                    sys::net::wait_readable(self.io.fd(), wait).map_err(|e| Error::os("poll", self.io.name(), e))?;
                if !readable {
                    return Ok(Got::NotYet);
                }
                self.fresh = false;
            }
            match f(&mut self.io, wait)? {
                Got::Eof => {
                    // Every writer closed: wait for the next one.
                    self.io = FifoReader::stream(&self.endpoint, &self.path, &self.opts)?;
                    self.fresh = true;
                }
                other => return Ok(other),
            }
        }
    }

    pub(crate) fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        self.next(wait, |io, w| io.recv_into(buf, w))
    }

    pub(crate) fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        self.next(wait, |io, w| io.recv(w))
    }
}

impl Drop for FifoReader {
    fn drop(&mut self) {
        if let Some(path) = &self.unlink {
            let _ = sys::fs::unlink(path);
        }
    }
}
