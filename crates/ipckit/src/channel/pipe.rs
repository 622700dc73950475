//! Anonymous pipe ends as a transport: no endpoint names them, so they are
//! never connected or bound, only made from a
//! [`PipeReader`](crate::pipe::PipeReader) or
//! [`PipeWriter`](crate::pipe::PipeWriter).

use std::io::IoSlice;
use std::os::fd::BorrowedFd;

use super::Transfer;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::transport::stream::StreamIo;
use crate::wait::{Got, Wait};

/// One end of an anonymous pipe.
#[derive(Debug)]
pub(crate) struct Pipe {
    io: StreamIo,
    /// The read end: a receiver, named `pipe`.
    reader: bool,
}

impl Pipe {
    pub(crate) fn reader(io: StreamIo) -> Pipe {
        Pipe { io, reader: true }
    }

    pub(crate) fn writer(io: StreamIo) -> Pipe {
        Pipe { io, reader: false }
    }

    /// A receive attempt: when every writer is gone, `Disconnected`.
    fn got<T>(&self, got: Result<Got<T>>) -> Result<Got<T>> {
        match got? {
            Got::Eof => Err(Error::new(ErrorKind::Disconnected, "recv", self.name(), "every writer closed the pipe")),
            other => Ok(other),
        }
    }
}

impl Transfer for Pipe {
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        self.io.send(parts, meta.only_fds("send", self.io.name())?, wait)
    }

    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        let got = self.io.recv_into(buf, wait);
        self.got(got)
    }

    fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        let got = self.io.recv(wait);
        self.got(got)
    }

    fn name(&self) -> &str {
        if self.reader { "pipe" } else { self.io.name() }
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.io.fd())
    }

    fn has_buffered_message(&self) -> bool {
        self.io.has_buffered_message()
    }
}
