//! TCP: the same listener, connection and message API as Unix sockets, for
//! other machines. Connections set `TCP_NODELAY` (messages are sent as
//! whole frames; Nagle's delay would only add latency); listeners set
//! `SO_REUSEADDR`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, Errno};
use crate::wait::Wait;

fn resolve(ep: &Endpoint, host: &str, port: u16, op: &'static str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::new(ErrorKind::NotFound, op, ep, format!("cannot resolve host {host:?}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::new(ErrorKind::NotFound, op, ep, format!("host {host:?} has no address")));
    }
    Ok(addrs)
}

fn family(addr: &SocketAddr) -> sys::net::Family {
    if addr.is_ipv4() { sys::net::Family::INET } else { sys::net::Family::INET6 }
}

/// Binds and listens on the first address of `host` that works.
pub(crate) fn bind(ep: &Endpoint, host: &str, port: u16) -> Result<(OwnedFd, SocketAddr)> {
    let mut last = None;
    for addr in resolve(ep, host, port, "bind")? {
        let attempt = (|| {
            let fd = sys::net::socket(family(&addr), sys::net::Type::STREAM)?;
            sys::net::set_reuseaddr(fd.as_fd())?;
            sys::net::bind_inet(fd.as_fd(), &addr)?;
            sys::net::listen(fd.as_fd(), 128)?;
            let local = sys::net::local_inet_addr(fd.as_fd())?;
            Ok::<_, Errno>((fd, local))
        })();
        match attempt {
            Ok(ok) => return Ok(ok),
            Err(e) => last = Some(Error::os("bind", ep, e)),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

/// Connects to the first address of `host` that accepts, waiting at most
/// `wait` for each attempt.
pub(crate) fn connect(ep: &Endpoint, host: &str, port: u16, wait: Wait) -> Result<OwnedFd> {
    let mut last = None;
    for addr in resolve(ep, host, port, "connect")? {
        let attempt = (|| {
            let fd = sys::net::socket(family(&addr), sys::net::Type::STREAM)?;
            sys::io::set_nonblocking(&fd, true)?;
            sys::net::connect(fd.as_fd(), &addr, wait)?;
            sys::io::set_nonblocking(&fd, false)?;
            sys::net::set_nodelay(fd.as_fd())?;
            Ok::<_, Errno>(fd)
        })();
        match attempt {
            Ok(fd) => return Ok(fd),
            Err(Errno::CONNREFUSED) => {
                last = Some(Error::os("connect", ep, Errno::CONNREFUSED).with_detail("nothing is listening"))
            }
            Err(e) => last = Some(Error::os("connect", ep, e)),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

/// Prepares an accepted TCP connection.
pub(crate) fn accepted(fd: &OwnedFd) -> std::result::Result<(), Errno> {
    sys::net::set_nodelay(fd.as_fd())
}
