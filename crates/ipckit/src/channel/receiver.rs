//! The receiving view of any endpoint: a mailbox that takes messages from
//! every sender that comes.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags};

use crate::endpoint::{Endpoint, EndpointKind, UnixType};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta};
use crate::mq::{PosixQueue, Queue, SysvQueue};
use crate::options::Options;
use crate::pipe::{PipeReader, fifo};
use crate::socket::{Listener, unix};
use crate::sys;
use crate::transport::packet::{PacketIo, PacketKind};
use crate::transport::stream::{StreamIo, StreamKind};
use crate::transport::{Got, Io, finish, not_yet, recv_ops};
use crate::wait::Wait;

/// The most connections a socket receiver serves at once; further senders
/// wait in the listen backlog until one leaves.
pub const MAX_CONNECTIONS: usize = 256;

/// Receives messages on an endpoint it owns, from every sender that comes.
///
/// - Sockets (`unix`, `unix-seqpacket`, `tcp`): binds, listens, and serves
///   all connected senders at once, each message whole (a sender's
///   messages arrive in order). A sender that closes is dropped; one that
///   breaks off inside a frame is reported as `Disconnected` once.
/// - `unix-dgram`: binds; each datagram carries the sender's credentials.
/// - `fifo`: opens the FIFO for reading (`create` makes it); when the last
///   writer closes, it reopens and waits for the next.
/// - Anonymous pipe (`From<PipeReader>`): when every writer is gone,
///   `Disconnected`.
#[derive(Debug)]
pub struct Receiver {
    flavor: Flavor,
    name: Arc<str>,
    /// A path this receiver created and removes on drop (`unlink_on_drop`).
    unlink: Option<PathBuf>,
}

#[derive(Debug)]
enum Flavor {
    Pipe(Io),
    Dgram(Io),
    Fifo {
        io: Io,
        endpoint: Endpoint,
        path: PathBuf,
        opts: Options,
        /// Just (re)opened: no writer may have come yet, so wait for data
        /// before reading (a read would see end-of-file at once).
        fresh: bool,
    },
    Listen {
        listener: Listener,
        conns: Vec<Io>,
        next: usize,
        /// Readable when the listener or any connection is: what
        /// `poll_fd` hands out.
        epoll: OwnedFd,
    },
    Queue(Queue),
}

impl Receiver {
    /// Binds with default [`Options`].
    pub fn bind(ep: &Endpoint) -> Result<Receiver> {
        Receiver::bind_with(ep, &Options::default())
    }

    /// Takes the endpoint: binds a socket or opens a FIFO for reading.
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<Receiver> {
        let name: Arc<str> = ep.to_string().into();
        let mut unlink = None;
        let flavor = match ep.kind() {
            EndpointKind::Fifo(path) => {
                let created = fifo::ensure(ep, path, opts)?;
                if created && opts.unlink_on_drop {
                    unlink = Some(path.clone());
                }
                let fd = fifo::open_read(ep, path)?;
                Flavor::Fifo {
                    io: Io::Stream(StreamIo::new(fd, StreamKind::Pipe, opts.framing, opts.max_message, name.clone())),
                    endpoint: ep.clone(),
                    path: path.clone(),
                    opts: opts.clone(),
                    fresh: true,
                }
            }
            EndpointKind::Unix(UnixType::Dgram, addr) => {
                let (fd, created) = unix::bind_dgram(ep, addr)?;
                if opts.unlink_on_drop {
                    unlink = created;
                }
                sys::net::set_passcred(fd.as_fd()).map_err(|e| Error::os("setsockopt SO_PASSCRED", ep, e))?;
                Flavor::Dgram(Io::Packet(PacketIo::new(fd, PacketKind::Dgram, opts.max_message, name.clone())))
            }
            EndpointKind::Unix(..) | EndpointKind::Tcp { .. } => {
                let listener = Listener::bind_with(ep, opts)?;
                let epoll = sys::io::epoll_create().map_err(|e| Error::os("epoll_create", ep, e))?;
                sys::io::epoll_add(epoll.as_fd(), listener.as_fd()).map_err(|e| Error::os("epoll_ctl", ep, e))?;
                Flavor::Listen { listener, conns: Vec::new(), next: 0, epoll }
            }
            EndpointKind::Mq(_) => Flavor::Queue(Queue::Posix(PosixQueue::open(ep, opts)?)),
            EndpointKind::SysvMq(_) => Flavor::Queue(Queue::Sysv(SysvQueue::open(ep, opts)?)),
            EndpointKind::Shm(_) => {
                return Err(Error::new(ErrorKind::Unsupported, "bind", ep, "this transport is not implemented yet"));
            }
        };
        let name = match &flavor {
            Flavor::Listen { listener, .. } => listener.local_endpoint().to_string().into(),
            _ => name,
        };
        Ok(Receiver { flavor, name, unlink })
    }

    /// The endpoint senders should use (for TCP port 0, the real port).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many senders are connected now (socket receivers).
    pub fn connections(&self) -> usize {
        match &self.flavor {
            Flavor::Listen { conns, .. } => conns.len(),
            _ => 0,
        }
    }

    fn recv_into_wait(&mut self, buf: &mut [u8], wait: Wait) -> Result<(usize, Meta)> {
        if let Flavor::Queue(q) = &mut self.flavor {
            return finish(q.recv_into(buf, wait), wait, "recv", &self.name);
        }
        self.next(wait, |io, w| io.recv_into(buf, w))
    }

    fn recv_wait(&mut self, wait: Wait) -> Result<Message> {
        if let Flavor::Queue(q) = &mut self.flavor {
            return finish(q.recv(wait), wait, "recv", &self.name);
        }
        self.next(wait, |io, w| io.recv(w))
    }

    recv_ops!();

    fn next<T>(&mut self, wait: Wait, mut f: impl FnMut(&mut Io, Wait) -> Result<Got<T>>) -> Result<T> {
        let got = match &mut self.flavor {
            Flavor::Pipe(io) | Flavor::Dgram(io) => f(io, wait)?,
            Flavor::Fifo { io, endpoint, path, opts, fresh } => loop {
                if *fresh && !io.has_buffered_message() {
                    let readable =
                        sys::net::wait_readable(io.fd(), wait).map_err(|e| Error::os("poll", &*self.name, e))?;
                    if !readable {
                        break Got::NotYet;
                    }
                    *fresh = false;
                }
                match f(io, wait)? {
                    Got::Eof => {
                        // Every writer closed: wait for the next one.
                        let fd = fifo::open_read(endpoint, path)?;
                        *io = Io::Stream(StreamIo::new(
                            fd,
                            StreamKind::Pipe,
                            opts.framing,
                            opts.max_message,
                            self.name.clone(),
                        ));
                        *fresh = true;
                    }
                    other => break other,
                }
            },
            Flavor::Listen { listener, conns, next, epoll } => {
                serve(listener, conns, next, epoll.as_fd(), wait, &self.name, f)?
            }
            Flavor::Queue(_) => unreachable!("queues are served by recv_into_wait and recv_wait"),
        };
        match got {
            Got::Msg(m) => Ok(m),
            Got::NotYet => Err(not_yet(wait, "recv", &self.name)),
            Got::Eof => Err(Error::new(ErrorKind::Disconnected, "recv", &*self.name, "every writer closed the pipe")),
        }
    }
}

/// One message from whichever connection has one, accepting new senders
/// as they come. Round-robin over ready connections, so that no sender
/// starves another.
fn serve<T>(
    listener: &Listener,
    conns: &mut Vec<Io>,
    next: &mut usize,
    epoll: BorrowedFd<'_>,
    wait: Wait,
    name: &str,
    mut f: impl FnMut(&mut Io, Wait) -> Result<Got<T>>,
) -> Result<Got<T>> {
    let mut ready: Vec<bool> = Vec::new();
    loop {
        if let Some(i) = conns.iter().position(Io::has_buffered_message) {
            if let Got::Msg(m) = f(&mut conns[i], Wait::Never)? {
                return Ok(Got::Msg(m));
            }
        }
        let accepting = conns.len() < MAX_CONNECTIONS;
        let (listener_ready, n) = {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(conns.len() + 1);
            fds.push(PollFd::new(listener, if accepting { PollFlags::IN } else { PollFlags::empty() }));
            fds.extend(conns.iter().map(|c| PollFd::from_borrowed_fd(c.fd(), PollFlags::IN)));
            let n = sys::io::poll_many(&mut fds, wait).map_err(|e| Error::os("poll", name, e))?;
            ready.clear();
            ready.extend(fds[1..].iter().map(|p| !p.revents().is_empty()));
            (!fds[0].revents().is_empty(), n)
        };
        if n == 0 {
            return Ok(Got::NotYet);
        }
        if listener_ready {
            match listener.try_accept() {
                Ok(conn) => {
                    let io = conn.into_io();
                    sys::io::epoll_add(epoll, io.fd()).map_err(|e| Error::os("epoll_ctl", name, e))?;
                    conns.push(io);
                    ready.push(true);
                }
                // Taken by another process: nothing to do.
                Err(e) if e.kind() == ErrorKind::Empty => {}
                // Out of descriptors, say: report it rather than spin on a
                // listener that stays readable.
                Err(e) => return Err(e),
            }
        }
        let count = conns.len();
        let start = if count == 0 { 0 } else { *next % count };
        let mut remove: Option<usize> = None;
        for k in 0..count {
            let i = (start + k) % count;
            if !ready[i] {
                continue;
            }
            match f(&mut conns[i], Wait::Never) {
                Ok(Got::Msg(m)) => {
                    *next = i + 1;
                    return Ok(Got::Msg(m));
                }
                Ok(Got::NotYet) => {}
                Ok(Got::Eof) => {
                    remove = Some(i);
                    break;
                }
                // The stream is still in step after these: keep the sender.
                Err(e) if e.kind() == ErrorKind::TooLarge => {
                    *next = i + 1;
                    return Err(e);
                }
                Err(e) => {
                    conns.remove(i);
                    return Err(e);
                }
            }
        }
        if let Some(i) = remove {
            conns.remove(i);
        }
        if matches!(wait, Wait::Never) && remove.is_none() {
            return Ok(Got::NotYet);
        }
    }
}

impl From<PipeReader> for Receiver {
    fn from(r: PipeReader) -> Receiver {
        Receiver { flavor: Flavor::Pipe(Io::Stream(r.io)), name: "pipe".into(), unlink: None }
    }
}

impl Receiver {
    /// The descriptor to poll for readiness, where the transport has one
    /// (every transport but System V queues): for sockets an epoll instance
    /// that is readable when the listener or any connected sender is; the
    /// datagram socket, the pipe or the queue otherwise. A FIFO receiver
    /// reopens its FIFO when every writer has gone, so its descriptor
    /// changes then.
    ///
    /// A receiver may hold whole messages it has already read (read-ahead
    /// on pipes, FIFOs and TCP): before waiting for readiness, receive with
    /// `try_recv` until `Empty`, or check
    /// [`has_buffered_message`](Self::has_buffered_message).
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.flavor {
            Flavor::Pipe(io) | Flavor::Dgram(io) | Flavor::Fifo { io, .. } => Some(io.fd()),
            Flavor::Listen { epoll, .. } => Some(epoll.as_fd()),
            Flavor::Queue(q) => q.fd(),
        }
    }

    /// Whether bytes already read may hold a message (so a `try_recv` can
    /// succeed although the descriptor is not readable).
    pub fn has_buffered_message(&self) -> bool {
        match &self.flavor {
            Flavor::Pipe(io) | Flavor::Dgram(io) | Flavor::Fifo { io, .. } => io.has_buffered_message(),
            Flavor::Listen { conns, .. } => conns.iter().any(Io::has_buffered_message),
            Flavor::Queue(_) => false,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(path) = &self.unlink {
            let _ = sys::fs::unlink(path);
        }
    }
}
