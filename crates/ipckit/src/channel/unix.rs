//! `unix:` and `unix-seqpacket:`: a sender is a connection; a receiver is
//! a server that accepts every sender and serves them in turn
//! ([`socket::server`](crate::socket::server)). TCP (`tcp.rs`) opens the
//! same [`Socket`] over another address family.

use std::io::IoSlice;
use std::os::fd::BorrowedFd;

use super::{Open, Transfer};
use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::options::Options;
use crate::socket::server::Server;
use crate::socket::{Connection, Listener, unix};
use crate::transport::Io;
use crate::wait::{Got, Wait};

/// A connection-oriented socket: a sender's connection, or a receiver's
/// server.
#[derive(Debug)]
pub(crate) enum Socket {
    Connection(Io),
    Server(Server),
}

impl Socket {
    /// Connects to a listening Unix stream, seqpacket or TCP socket.
    pub(crate) fn connect(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Socket> {
        Connection::connect_wait(ep, opts, wait).map(|c| Socket::Connection(c.into_io()))
    }

    /// Listens, and serves every sender that connects.
    pub(crate) fn bind(ep: &Endpoint, opts: &Options) -> Result<Socket> {
        Server::new(Listener::bind_with(ep, opts)?, opts).map(Socket::Server)
    }
}

/// The connection-oriented socket families: opened the same way
/// ([`Socket::connect`], [`Socket::bind`]), each removing its own kind of
/// name.
pub(crate) trait SocketFamily {
    /// Removes the named object the endpoint refers to (`ipckit rm`).
    fn remove_name(ep: &Endpoint) -> Result<()>;
}

impl<F: SocketFamily> Open for F {
    type End = Socket;

    fn connect(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Socket> {
        Socket::connect(ep, opts, wait)
    }

    fn bind(ep: &Endpoint, opts: &Options) -> Result<Socket> {
        Socket::bind(ep, opts)
    }

    fn remove(ep: &Endpoint) -> Result<()> {
        F::remove_name(ep)
    }
}

/// Opens `unix:` and `unix-seqpacket:` endpoints.
#[derive(Debug)]
pub(crate) struct Unix;

impl SocketFamily for Unix {
    fn remove_name(ep: &Endpoint) -> Result<()> {
        match ep.kind() {
            EndpointKind::Unix(_, addr) => unix::remove(ep, addr),
            _ => unreachable!("the transport table routes only unix endpoints here"),
        }
    }
}

fn not_a_sender(name: &str) -> Error {
    Error::new(ErrorKind::Unsupported, "send", name, "a receiver's server does not send")
}

impl Transfer for Socket {
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        match self {
            Socket::Connection(io) => io.send(parts, meta, wait),
            Socket::Server(s) => Err(not_a_sender(s.name())),
        }
    }

    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        match self {
            Socket::Connection(io) => io.recv_into(buf, wait),
            Socket::Server(s) => s.next(wait, |io, w| io.recv_into(buf, w)),
        }
    }

    fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        match self {
            Socket::Connection(io) => io.recv(wait),
            Socket::Server(s) => s.next(wait, |io, w| io.recv(w)),
        }
    }

    fn name(&self) -> &str {
        match self {
            Socket::Connection(io) => io.name(),
            Socket::Server(s) => s.name(),
        }
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Socket::Connection(io) => Some(io.fd()),
            Socket::Server(s) => Some(s.poll_fd()),
        }
    }

    fn has_buffered_message(&self) -> bool {
        match self {
            Socket::Connection(io) => io.has_buffered_message(),
            Socket::Server(s) => s.has_buffered_message(),
        }
    }

    fn connections(&self) -> usize {
        match self {
            Socket::Connection(_) => 0,
            Socket::Server(s) => s.connections(),
        }
    }

    fn take_warnings(&mut self) -> Vec<String> {
        match self {
            Socket::Connection(_) => Vec::new(),
            Socket::Server(s) => s.take_warnings(),
        }
    }

    fn send_sealed(&mut self, payload: &[u8], wait: Wait) -> Result<()> {
        match self {
            // TCP connections and lines framing refuse it there.
            Socket::Connection(io) => io.send_sealed(payload, wait),
            Socket::Server(s) => {
                Err(Error::new(ErrorKind::Unsupported, "send_sealed", s.name(), "a receiver's server does not send"))
            }
        }
    }
}
