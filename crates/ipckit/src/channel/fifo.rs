//! `fifo:/path`: a sender opens the FIFO for writing (a FIFO with no
//! reader is `Disconnected`); a receiver opens it for reading and, when
//! every writer has gone, reopens it for the next (see
//! [`pipe::fifo`](crate::pipe::fifo)).
//!
//! The kernel writes at most `PIPE_BUF` (4096) bytes to a pipe atomically:
//! a larger frame can interleave with another writer's frames, which
//! garbles both. A sender warns once (`take_warnings`) when it writes one.

use std::io::IoSlice;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use super::{Open, Transfer};
use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, ErrorKind, Result};
use crate::framing::Framing;
use crate::meta::{Message, Meta, SendMeta};
use crate::options::Options;
use crate::pipe::fifo::{self, FifoReader};
use crate::sys;
use crate::transport::stream::{StreamIo, StreamKind};
use crate::wait::{Got, Wait};

/// An open FIFO: the writing end of a sender or the reading end of a
/// receiver.
#[derive(Debug)]
pub(crate) enum Fifo {
    Writer(Writer),
    Reader(FifoReader),
}

/// The writing end, and whether it has said that it writes frames over
/// `PIPE_BUF`.
#[derive(Debug)]
pub(crate) struct Writer {
    io: StreamIo,
    /// The bytes a frame adds to its payload: the length, or the newline.
    overhead: usize,
    warned: bool,
    warnings: Vec<String>,
}

impl Writer {
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        self.io.send(parts, meta.only_fds("send", self.io.name())?, wait)?;
        let frame = parts.iter().map(|p| p.len()).sum::<usize>() + self.overhead;
        if frame > sys::fs::PIPE_BUF && !self.warned {
            self.warned = true;
            self.warnings.push(format!(
                "{}: a frame of {frame} bytes is over PIPE_BUF ({} bytes), the most a FIFO takes atomically: \
                 frames of other writers on this FIFO can interleave with it and garble both (said once \
                 per sender)",
                self.io.name(),
                sys::fs::PIPE_BUF
            ));
        }
        Ok(())
    }
}

fn path(ep: &Endpoint) -> &std::path::Path {
    match ep.kind() {
        EndpointKind::Fifo(path) => path,
        _ => unreachable!("the transport table routes only fifo: endpoints here"),
    }
}

impl Open for Fifo {
    type End = Fifo;

    fn connect(ep: &Endpoint, opts: &Options, _wait: Wait) -> Result<Fifo> {
        let path = path(ep);
        fifo::ensure(ep, path, opts)?;
        let fd = fifo::open_write(ep, path)?;
        let name: Arc<str> = ep.to_string().into();
        let io = StreamIo::new(fd, StreamKind::Pipe, opts.framing, opts.max_message, name);
        let overhead = match opts.framing {
            Framing::Len32 => 4,
            Framing::Lines => 1,
        };
        Ok(Fifo::Writer(Writer { io, overhead, warned: false, warnings: Vec::new() }))
    }

    fn bind(ep: &Endpoint, opts: &Options) -> Result<Fifo> {
        FifoReader::open(ep, path(ep), opts).map(Fifo::Reader)
    }

    fn remove(ep: &Endpoint) -> Result<()> {
        fifo::remove(path(ep)).map_err(|e| match e.errno() {
            Some(errno) => Error::os("rm", ep, errno),
            None => Error::new(e.kind(), "rm", ep, e.to_string().rsplit(": ").next().unwrap_or("").to_string()),
        })
    }
}

fn wrong_end(op: &'static str, name: &str) -> Error {
    Error::new(ErrorKind::Unsupported, op, name, "this end of the FIFO does not do that")
}

impl Transfer for Fifo {
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        match self {
            Fifo::Writer(w) => w.send(parts, meta, wait),
            Fifo::Reader(r) => Err(wrong_end("send", r.name())),
        }
    }

    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        match self {
            Fifo::Reader(r) => r.recv_into(buf, wait),
            Fifo::Writer(w) => Err(wrong_end("recv", w.io.name())),
        }
    }

    fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        match self {
            Fifo::Reader(r) => r.recv(wait),
            Fifo::Writer(w) => Err(wrong_end("recv", w.io.name())),
        }
    }

    fn name(&self) -> &str {
        match self {
            Fifo::Writer(w) => w.io.name(),
            Fifo::Reader(r) => r.name(),
        }
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Fifo::Writer(w) => Some(w.io.fd()),
            Fifo::Reader(r) => Some(r.fd()),
        }
    }

    fn has_buffered_message(&self) -> bool {
        match self {
            Fifo::Writer(_) => false,
            Fifo::Reader(r) => r.has_buffered_message(),
        }
    }

    fn take_warnings(&mut self) -> Vec<String> {
        match self {
            Fifo::Writer(w) => std::mem::take(&mut w.warnings),
            Fifo::Reader(_) => Vec::new(),
        }
    }
}
