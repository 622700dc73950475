//! `unix-dgram:`: a sender's socket is connected to the receiver's address;
//! the receiver's is bound, with `SO_PASSCRED` so that each datagram
//! carries its sender's credentials.

use std::io::IoSlice;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Open, Transfer};
use crate::endpoint::{Endpoint, EndpointKind, UnixAddr, UnixType};
use crate::error::Result;
use crate::meta::{Message, Meta, SendMeta};
use crate::options::Options;
use crate::socket::unix;
use crate::sys;
use crate::transport::packet::{PacketIo, PacketKind};
use crate::wait::{Got, Wait};

/// A datagram socket: connected (a sender) or bound (a receiver).
#[derive(Debug)]
pub(crate) struct Dgram {
    io: PacketIo,
    /// The socket file this receiver created, removed on drop
    /// (`unlink_on_drop`).
    unlink: Option<PathBuf>,
}

fn addr(ep: &Endpoint) -> &UnixAddr {
    match ep.kind() {
        EndpointKind::Unix(UnixType::Dgram, addr) => addr,
        _ => unreachable!("the transport table routes only unix-dgram: endpoints here"),
    }
}

impl Open for Dgram {
    type End = Dgram;

    fn connect(ep: &Endpoint, opts: &Options, _wait: Wait) -> Result<Dgram> {
        let fd = unix::connect(ep, UnixType::Dgram, addr(ep))?;
        let name: Arc<str> = ep.to_string().into();
        Ok(Dgram { io: PacketIo::new(fd, PacketKind::Dgram, opts.max_message, name), unlink: None })
    }

    fn bind(ep: &Endpoint, opts: &Options) -> Result<Dgram> {
        let (fd, created) = unix::bind_dgram(ep, addr(ep))?;
        let name: Arc<str> = ep.to_string().into();
        let unlink = if opts.unlink_on_drop { created } else { None };
        Ok(Dgram { io: PacketIo::new(fd, PacketKind::Dgram, opts.max_message, name), unlink })
    }

    fn remove(ep: &Endpoint) -> Result<()> {
        unix::remove(ep, addr(ep))
    }
}

impl Transfer for Dgram {
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        self.io.send(parts, meta.only_fds("send", self.io.name())?, wait)
    }

    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        self.io.recv_into(buf, wait)
    }

    fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        self.io.recv(wait)
    }

    fn name(&self) -> &str {
        self.io.name()
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.io.fd())
    }

    fn has_buffered_message(&self) -> bool {
        self.io.has_buffered_message()
    }

    fn send_sealed(&mut self, payload: &[u8], wait: Wait) -> Result<()> {
        self.io.send_sealed(payload, wait)
    }
}

impl Drop for Dgram {
    fn drop(&mut self) {
        if let Some(path) = &self.unlink {
            let _ = sys::fs::unlink(path);
        }
    }
}
