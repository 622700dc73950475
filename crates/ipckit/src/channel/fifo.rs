//! `fifo:/path`: a sender opens the FIFO for writing (a FIFO with no
//! reader is `Disconnected`); a receiver opens it for reading and, when
//! every writer has gone, reopens it for the next (see
//! [`pipe::fifo`](crate::pipe::fifo)).

use std::io::IoSlice;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use super::{Open, Transfer};
use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::options::Options;
use crate::pipe::fifo::{self, FifoReader};
use crate::transport::stream::{StreamIo, StreamKind};
use crate::wait::{Got, Wait};

/// An open FIFO: the writing end of a sender or the reading end of a
/// receiver.
#[derive(Debug)]
pub(crate) enum Fifo {
    Writer(StreamIo),
    Reader(FifoReader),
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
        Ok(Fifo::Writer(StreamIo::new(fd, StreamKind::Pipe, opts.framing, opts.max_message, name)))
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
            Fifo::Writer(io) => io.send(parts, meta.only_fds("send", io.name())?, wait),
            Fifo::Reader(r) => Err(wrong_end("send", r.name())),
        }
    }

    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        match self {
            Fifo::Reader(r) => r.recv_into(buf, wait),
            Fifo::Writer(io) => Err(wrong_end("recv", io.name())),
        }
    }

    fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        match self {
            Fifo::Reader(r) => r.recv(wait),
            Fifo::Writer(io) => Err(wrong_end("recv", io.name())),
        }
    }

    fn name(&self) -> &str {
        match self {
            Fifo::Writer(io) => io.name(),
            Fifo::Reader(r) => r.name(),
        }
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Fifo::Writer(io) => Some(io.fd()),
            Fifo::Reader(r) => Some(r.fd()),
        }
    }

    fn has_buffered_message(&self) -> bool {
        match self {
            Fifo::Writer(_) => false,
            Fifo::Reader(r) => r.has_buffered_message(),
        }
    }
}
