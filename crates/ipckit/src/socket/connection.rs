//! A two-way message channel over a Unix stream, Unix seqpacket or TCP
//! socket.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::{tcp, unix};
use crate::endpoint::{Endpoint, EndpointKind, UnixType};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::SendMeta;
use crate::meta::{Credentials, Message, Meta};
use crate::options::Options;
use crate::sys;
use crate::transport::Io;
use crate::transport::packet::{PacketIo, PacketKind};
use crate::transport::stream::{StreamIo, StreamKind};
use crate::wait::{Got, Wait, message_ops, until_peer_ready};

/// A connected socket carrying messages both ways: from
/// [`Listener::accept`](super::Listener::accept) or
/// [`Connection::connect`].
///
/// On stream sockets messages are framed (see [`Framing`](crate::Framing));
/// on seqpacket sockets the kernel keeps boundaries. The peer closing the
/// connection is `Disconnected`. Sending never raises `SIGPIPE`
/// (`MSG_NOSIGNAL`).
#[derive(Debug)]
pub struct Connection {
    io: Io,
}

impl Connection {
    pub(crate) fn from_io(io: Io) -> Connection {
        Connection { io }
    }

    /// Connects once with default [`Options`]: `NotFound` if there is no
    /// such socket, `Disconnected` if nothing listens.
    pub fn connect(ep: &Endpoint) -> Result<Connection> {
        Connection::connect_with(ep, &Options::default())
    }

    /// Connects once.
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<Connection> {
        Connection::connect_wait(ep, opts, Wait::Forever)
    }

    /// Connects, retrying while nothing listens yet, for at most `timeout`.
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<Connection> {
        until_peer_ready(Wait::timeout(timeout), "connect", ep, |w| Connection::connect_wait(ep, opts, w))
    }

    pub(crate) fn connect_wait(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Connection> {
        let name: Arc<str> = ep.to_string().into();
        let max = opts.max_message;
        let io = match ep.kind() {
            EndpointKind::Unix(UnixType::Stream, addr) => Io::Stream(StreamIo::new(
                unix::connect(ep, UnixType::Stream, addr)?,
                StreamKind::Unix,
                opts.framing,
                max,
                name,
            )),
            EndpointKind::Unix(UnixType::Seqpacket, addr) => Io::Packet(PacketIo::new(
                unix::connect(ep, UnixType::Seqpacket, addr)?,
                PacketKind::Seqpacket,
                max,
                name,
            )),
            EndpointKind::Tcp { host, port } => Io::Stream(StreamIo::new(
                tcp::connect(ep, host, *port, wait)?,
                StreamKind::Tcp,
                opts.framing,
                max,
                name,
            )),
            _ => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "connect",
                    ep,
                    "only unix, unix-seqpacket and tcp endpoints make connections (see Sender for the others)",
                ));
            }
        };
        Ok(Connection { io })
    }

    fn send_wait(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        self.io.send(parts, meta, wait)
    }

    fn recv_into_got(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        self.io.recv_into(buf, wait)
    }

    fn recv_got(&mut self, wait: Wait) -> Result<Got<Message>> {
        self.io.recv(wait)
    }

    fn object(&self) -> &str {
        self.io.name()
    }

    message_ops!();

    /// Sends `payload` as a sealed memfd (Unix stream and seqpacket
    /// connections): written into a fresh memfd, sealed with `F_SEAL_WRITE |
    /// F_SEAL_SHRINK | F_SEAL_GROW`, passed with `SCM_RIGHTS` behind a small
    /// marker (the wire format is in the README). The peer reads it in
    /// place, safely, from [`Meta::sealed`](crate::Meta::sealed). TCP
    /// connections and `lines` framing refuse it (`Unsupported`).
    pub fn send_sealed(&mut self, payload: &[u8]) -> Result<()> {
        self.io.send_sealed(payload, Wait::Forever)
    }

    /// Non-blocking form of [`send_sealed`](Self::send_sealed): `Full`, with
    /// nothing sent, when there is no room now.
    pub fn try_send_sealed(&mut self, payload: &[u8]) -> Result<()> {
        self.io.send_sealed(payload, Wait::Never)
    }

    /// Timed form of [`send_sealed`](Self::send_sealed).
    pub fn send_sealed_timeout(&mut self, payload: &[u8], timeout: Duration) -> Result<()> {
        self.io.send_sealed(payload, Wait::timeout(timeout))
    }

    /// The peer process (`SO_PEERCRED`, as it was when it connected), for
    /// Unix sockets.
    pub fn peer_credentials(&self) -> Option<Credentials> {
        self.io.peer_credentials()
    }

    /// Tells the peer no more messages follow (it reads `Disconnected` after
    /// the last one); receiving still works.
    pub fn shutdown_send(&self) -> Result<()> {
        sys::net::shutdown_write(self.io.fd()).map_err(|e| Error::os("shutdown", self.io.name(), e))
    }

    /// Whether bytes already read may hold a message: a TCP connection
    /// reads ahead, so a `try_recv` can succeed although the descriptor is
    /// not readable. Event loops receive until `Empty` before they wait.
    pub fn has_buffered_message(&self) -> bool {
        self.io.has_buffered_message()
    }

    /// Sets `O_NONBLOCK`, for use with poll/epoll or an async runtime. The
    /// blocking forms keep working (they wait with `poll`).
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        sys::io::set_nonblocking(self.io.fd(), on).map_err(|e| Error::os("fcntl", self.io.name(), e))
    }

    pub(crate) fn into_io(self) -> Io {
        self.io
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.fd()
    }
}

impl From<Connection> for OwnedFd {
    fn from(c: Connection) -> OwnedFd {
        c.io.into_fd()
    }
}
