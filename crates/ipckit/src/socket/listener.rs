//! A listening socket that yields [`Connection`]s.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Connection, tcp, unix};
use crate::endpoint::{Endpoint, EndpointKind, UnixType};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::sys;
use crate::transport::Io;
use crate::transport::packet::{PacketIo, PacketKind};
use crate::transport::stream::{StreamIo, StreamKind};
use crate::wait::Wait;

/// A listening Unix stream, Unix seqpacket or TCP socket.
///
/// ```no_run
/// use ipckit::{Endpoint, socket::Listener};
/// let listener = Listener::bind(&"unix:@example".parse()?)?;
/// let mut conn = listener.accept()?;
/// let msg = conn.recv()?;
/// conn.send(&msg.data)?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    kind: ListenKind,
    endpoint: Endpoint,
    name: Arc<str>,
    opts: Options,
    /// The socket file this listener created, removed on drop if asked.
    created: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListenKind {
    Unix(UnixType),
    Tcp,
}

impl Listener {
    /// Binds and listens with default [`Options`].
    pub fn bind(ep: &Endpoint) -> Result<Listener> {
        Listener::bind_with(ep, &Options::default())
    }

    /// Binds and listens. For a Unix path the socket file gets the
    /// endpoint's `mode` (0600 by default) whatever the umask; a stale
    /// file is replaced; a live listener's is `AlreadyExists`. For TCP, port
    /// 0 lets the kernel choose: see [`local_endpoint`](Self::local_endpoint).
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<Listener> {
        let (fd, kind, created, endpoint) = match ep.kind() {
            EndpointKind::Unix(ty @ (UnixType::Stream | UnixType::Seqpacket), addr) => {
                let (fd, created) = unix::bind(ep, *ty, addr)?;
                (fd, ListenKind::Unix(*ty), created, ep.clone())
            }
            EndpointKind::Tcp { host, port } => {
                let (fd, local) = tcp::bind(ep, host, *port)?;
                let text = match local {
                    std::net::SocketAddr::V4(a) => format!("tcp:{a}"),
                    std::net::SocketAddr::V6(a) => format!("tcp:[{}]:{}", a.ip(), a.port()),
                };
                let endpoint = if *port == 0 { text.parse()? } else { ep.clone() };
                (fd, ListenKind::Tcp, None, endpoint)
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "listen",
                    ep,
                    "only unix, unix-seqpacket and tcp endpoints accept connections",
                ));
            }
        };
        let name: Arc<str> = endpoint.to_string().into();
        Ok(Listener { fd, kind, endpoint, name, opts: opts.clone(), created })
    }

    /// The endpoint this listener is bound to (for TCP port 0, with the
    /// port the kernel chose).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// [`local_endpoint`](Self::local_endpoint) as text.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn accept_wait(&self, wait: Wait) -> Result<Option<Connection>> {
        let Some(fd) = sys::net::accept(self.fd.as_fd(), wait).map_err(|e| Error::os("accept", &*self.name, e))? else {
            return Ok(None);
        };
        Ok(Some(self.wrap(fd)?))
    }

    pub(crate) fn wrap(&self, fd: OwnedFd) -> Result<Connection> {
        let max = self.opts.max_message;
        let io = match self.kind {
            ListenKind::Unix(UnixType::Seqpacket) => {
                Io::Packet(PacketIo::new(fd, PacketKind::Seqpacket, max, self.name.clone()))
            }
            ListenKind::Unix(_) => {
                Io::Stream(StreamIo::new(fd, StreamKind::Unix, self.opts.framing, max, self.name.clone()))
            }
            ListenKind::Tcp => {
                tcp::accepted(&fd).map_err(|e| Error::os("accept", &*self.name, e))?;
                Io::Stream(StreamIo::new(fd, StreamKind::Tcp, self.opts.framing, max, self.name.clone()))
            }
        };
        Ok(Connection::from_io(io))
    }

    /// Accepts the next connection, waiting as long as it takes.
    pub fn accept(&self) -> Result<Connection> {
        Ok(self.accept_wait(Wait::Forever)?.expect("an unbounded wait returns a connection"))
    }

    /// Accepts a connection if one is waiting; `Empty` otherwise.
    pub fn try_accept(&self) -> Result<Connection> {
        self.accept_wait(Wait::Never)?
            .ok_or_else(|| Error::new(ErrorKind::Empty, "accept", &*self.name, "no connection waiting"))
    }

    /// Accepts a connection, waiting at most `timeout`.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection> {
        self.accept_wait(Wait::timeout(timeout))?
            .ok_or_else(|| Error::new(ErrorKind::TimedOut, "accept", &*self.name, "no connection within the timeout"))
    }

    /// Sets `O_NONBLOCK`, for use with poll/epoll or an async runtime.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        sys::io::set_nonblocking(&self.fd, on).map_err(|e| Error::os("fcntl", &*self.name, e))
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let (true, Some(path)) = (self.opts.unlink_on_drop, &self.created) {
            let _ = sys::fs::unlink(path);
        }
    }
}
