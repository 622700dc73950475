//! Anonymous pipes.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::meta::SendMeta;
use crate::meta::{Message, Meta};
use crate::options::Options;
use crate::sys;
use crate::transport::stream::{StreamIo, StreamKind};
use crate::wait::{Got, Wait, recv_ops, send_ops};

/// The reading end of a pipe, receiving framed messages.
#[derive(Debug)]
pub struct PipeReader {
    pub(crate) io: StreamIo,
}

/// The writing end of a pipe, sending framed messages. When every reader is
/// gone, sending is `Disconnected` (see the module docs on `SIGPIPE`).
#[derive(Debug)]
pub struct PipeWriter {
    pub(crate) io: StreamIo,
}

/// `pipe2(O_CLOEXEC)`: a connected pair with default [`Options`].
///
/// ```
/// let (mut rx, mut tx) = ipckit::pipe::pipe()?;
/// tx.send(b"hello")?;
/// assert_eq!(rx.recv()?.data, b"hello");
/// # Ok::<(), ipckit::Error>(())
/// ```
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    pipe_with(&Options::default())
}

/// `pipe2(O_CLOEXEC)` with the given framing and maximum message size.
pub fn pipe_with(opts: &Options) -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = sys::io::pipe().map_err(|e| Error::os("pipe", "", e))?;
    Ok((PipeReader::from_fd(r, opts), PipeWriter::from_fd(w, opts)))
}

fn check_pipe(fd: &OwnedFd, what: &str) -> Result<()> {
    match sys::fs::fd_file_type(fd) {
        Ok(sys::fs::Kind::Fifo) => Ok(()),
        Ok(_) => Err(Error::new(ErrorKind::Invalid, "open", what, "descriptor is not a pipe")),
        Err(e) => Err(Error::os("fstat", what, e)),
    }
}

fn take(raw: RawFd, what: &str) -> Result<OwnedFd> {
    let fd = sys::process::take_inherited_fd(raw).map_err(|e| {
        Error::os("take inherited fd", format!("{what} {raw}"), e).with_detail("not passed with pass_to")
    })?;
    check_pipe(&fd, what)?;
    Ok(fd)
}

impl PipeReader {
    fn from_fd(fd: OwnedFd, opts: &Options) -> PipeReader {
        let name: Arc<str> = "pipe (read end)".into();
        PipeReader { io: StreamIo::new(fd, StreamKind::Pipe, opts.framing, opts.max_message, name) }
    }

    /// Wraps a descriptor that is the read end of a pipe or FIFO.
    pub fn from_owned_fd(fd: OwnedFd, opts: &Options) -> Result<PipeReader> {
        check_pipe(&fd, "pipe")?;
        Ok(PipeReader::from_fd(fd, opts))
    }

    /// In a child: claims the read end its parent passed with
    /// [`pass_to`](Self::pass_to) (descriptor number `raw`).
    pub fn from_inherited(raw: RawFd, opts: &Options) -> Result<PipeReader> {
        Ok(PipeReader::from_fd(take(raw, "pipe")?, opts))
    }

    /// Lets the child that `cmd` spawns inherit this end; returns the
    /// descriptor number to tell the child (it calls
    /// [`from_inherited`](Self::from_inherited)). Keep this end open until
    /// the child is spawned, then drop it in the parent.
    pub fn pass_to(&self, cmd: &mut Command) -> RawFd {
        sys::process::pass_fd(cmd, self.io.fd())
    }

    fn recv_into_got(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        self.io.recv_into(buf, wait)
    }

    fn recv_got(&mut self, wait: Wait) -> Result<Got<Message>> {
        self.io.recv(wait)
    }

    fn object(&self) -> &str {
        "pipe"
    }

    recv_ops!();

    /// Whether bytes already read (read-ahead) may hold a message, so a
    /// `try_recv` can succeed although the descriptor is not readable.
    pub fn has_buffered_message(&self) -> bool {
        self.io.has_buffered_message()
    }

    /// Sets `O_NONBLOCK` (shared with every process holding this end).
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        sys::io::set_nonblocking(self.io.fd(), on).map_err(|e| Error::os("fcntl", "pipe", e))
    }
}

impl PipeWriter {
    fn from_fd(fd: OwnedFd, opts: &Options) -> PipeWriter {
        let name: Arc<str> = "pipe (write end)".into();
        PipeWriter { io: StreamIo::new(fd, StreamKind::Pipe, opts.framing, opts.max_message, name) }
    }

    /// Wraps a descriptor that is the write end of a pipe or FIFO.
    pub fn from_owned_fd(fd: OwnedFd, opts: &Options) -> Result<PipeWriter> {
        check_pipe(&fd, "pipe")?;
        Ok(PipeWriter::from_fd(fd, opts))
    }

    /// In a child: claims the write end its parent passed with
    /// [`pass_to`](Self::pass_to).
    pub fn from_inherited(raw: RawFd, opts: &Options) -> Result<PipeWriter> {
        Ok(PipeWriter::from_fd(take(raw, "pipe")?, opts))
    }

    /// Lets the child that `cmd` spawns inherit this end (see
    /// [`PipeReader::pass_to`]).
    pub fn pass_to(&self, cmd: &mut Command) -> RawFd {
        sys::process::pass_fd(cmd, self.io.fd())
    }

    fn send_wait(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        self.io.send(parts, meta.only_fds("send", self.io.name())?, wait)
    }

    send_ops!();

    /// Sets `O_NONBLOCK` (shared with every process holding this end).
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        sys::io::set_nonblocking(self.io.fd(), on).map_err(|e| Error::os("fcntl", "pipe", e))
    }
}

impl AsFd for PipeReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.fd()
    }
}

impl AsFd for PipeWriter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.fd()
    }
}
