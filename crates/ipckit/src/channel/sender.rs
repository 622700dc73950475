//! The sending view of any endpoint.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::{Endpoint, EndpointKind, UnixType};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::SendMeta;
use crate::mq::{PosixQueue, Queue, SysvQueue};
use crate::options::Options;
use crate::pipe::{PipeWriter, fifo};
use crate::socket::Connection;
use crate::sys::{self, Errno};
use crate::transport::packet::{PacketIo, PacketKind};
use crate::transport::stream::{StreamIo, StreamKind};
use crate::transport::{Io, send_ops};
use crate::wait::{Wait, until_peer_ready};

/// Sends messages to an endpoint: the writing side of a FIFO, a client of a
/// socket, or the write end of a pipe.
///
/// ```no_run
/// use ipckit::{Endpoint, Sender};
/// let mut tx = Sender::connect(&"unix:/run/app.sock".parse()?)?;
/// tx.send(b"job 1")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug)]
pub struct Sender {
    flavor: Flavor,
}

/// The transports a sender dispatches over.
#[derive(Debug)]
enum Flavor {
    /// Byte streams and message sockets.
    Io(Io),
    /// POSIX and System V queues.
    Queue(Queue),
}

impl Sender {
    /// Connects once with default [`Options`]. Nobody there is `NotFound`
    /// (no such socket or FIFO) or `Disconnected` (nothing listening, no
    /// reader).
    pub fn connect(ep: &Endpoint) -> Result<Sender> {
        Sender::connect_with(ep, &Options::default())
    }

    /// Connects once.
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<Sender> {
        Sender::connect_wait(ep, opts, Wait::Forever)
    }

    /// Connects, retrying while the receiver is not there yet, for at most
    /// `timeout` (then `TimedOut`).
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<Sender> {
        until_peer_ready(Wait::timeout(timeout), "connect", ep, |w| Sender::connect_wait(ep, opts, w))
    }

    fn connect_wait(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Sender> {
        let name: Arc<str> = ep.to_string().into();
        let io = match ep.kind() {
            EndpointKind::Fifo(path) => {
                fifo::ensure(ep, path, opts)?;
                let fd = fifo::open_write(ep, path)?;
                Io::Stream(StreamIo::new(fd, StreamKind::Pipe, opts.framing, opts.max_message, name))
            }
            EndpointKind::Unix(UnixType::Dgram, addr) => {
                let fd = sys::net::socket(sys::net::Family::UNIX, sys::net::Type::DGRAM)
                    .map_err(|e| Error::os("socket", ep, e))?;
                let a = match addr {
                    crate::endpoint::UnixAddr::Path(p) => sys::net::unix_path(p),
                    crate::endpoint::UnixAddr::Abstract(n) => sys::net::unix_abstract(n.as_bytes()),
                }
                .map_err(|e| Error::os("connect", ep, e))?;
                sys::net::connect(fd.as_fd(), &a, wait).map_err(|e| {
                    let err = Error::os("connect", ep, e);
                    match e {
                        Errno::NOENT => err.with_detail("no socket at this path"),
                        Errno::CONNREFUSED => err.with_detail("nothing is receiving"),
                        _ => err,
                    }
                })?;
                Io::Packet(PacketIo::new(fd, PacketKind::Dgram, opts.max_message, name))
            }
            EndpointKind::Unix(..) | EndpointKind::Tcp { .. } => Connection::connect_with(ep, opts)?.into_io(),
            EndpointKind::Mq(_) => {
                return Ok(Sender { flavor: Flavor::Queue(Queue::Posix(PosixQueue::open(ep, opts)?)) });
            }
            EndpointKind::SysvMq(_) => {
                return Ok(Sender { flavor: Flavor::Queue(Queue::Sysv(SysvQueue::open(ep, opts)?)) });
            }
            EndpointKind::Shm(_) => {
                return Err(Error::new(ErrorKind::Unsupported, "connect", ep, "this transport is not implemented yet"));
            }
        };
        Ok(Sender { flavor: Flavor::Io(io) })
    }

    fn send_wait(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        match &mut self.flavor {
            Flavor::Io(io) => io.send(parts, meta, wait),
            Flavor::Queue(q) => q.send(parts, meta, wait),
        }
    }

    send_ops!();

    /// What this sender is connected to.
    pub fn name(&self) -> &str {
        match &self.flavor {
            Flavor::Io(io) => io.name(),
            Flavor::Queue(q) => q.name(),
        }
    }

    /// The descriptor to poll for room (writable), where the transport has
    /// one: every transport but System V queues.
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.flavor {
            Flavor::Io(io) => Some(io.fd()),
            Flavor::Queue(q) => q.fd(),
        }
    }
}

impl From<PipeWriter> for Sender {
    fn from(w: PipeWriter) -> Sender {
        Sender { flavor: Flavor::Io(Io::Stream(w.io)) }
    }
}

impl From<Connection> for Sender {
    fn from(c: Connection) -> Sender {
        Sender { flavor: Flavor::Io(c.into_io()) }
    }
}
