//! Sockets: creation, addresses, connection set-up, and message transfer
//! with ancillary data (fds, credentials).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
pub(crate) use rustix::net::UCred;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, Shutdown, SocketAddrUnix, SocketFlags, SocketType,
};

use super::io::{Ready, poll, retry};
use crate::wait::Wait;

/// The most file descriptors one message may carry. The receive buffer
/// has room for exactly this many; a peer that sends more makes the kernel
/// truncate (`MSG_CTRUNC`), which ipckit reports as an error after closing
/// every descriptor that did arrive.
pub const MAX_FDS: usize = 16;

/// Creates a close-on-exec socket.
pub(crate) fn socket(family: AddressFamily, ty: SocketType) -> Result<OwnedFd, Errno> {
    rustix::net::socket_with(family, ty, SocketFlags::CLOEXEC, None)
}

/// A Unix socket address for a path.
pub(crate) fn unix_path(path: &std::path::Path) -> Result<SocketAddrUnix, Errno> {
    SocketAddrUnix::new(path)
}

/// A Unix socket address in the abstract namespace.
pub(crate) fn unix_abstract(name: &[u8]) -> Result<SocketAddrUnix, Errno> {
    SocketAddrUnix::new_abstract_name(name)
}

pub(crate) fn bind(fd: BorrowedFd<'_>, addr: &impl SocketAddrArg) -> Result<(), Errno> {
    rustix::net::bind(fd, addr)
}

pub(crate) fn bind_inet(fd: BorrowedFd<'_>, addr: &SocketAddr) -> Result<(), Errno> {
    rustix::net::bind(fd, addr)
}

pub(crate) fn listen(fd: BorrowedFd<'_>, backlog: i32) -> Result<(), Errno> {
    rustix::net::listen(fd, backlog)
}

/// Connects, waiting at most `wait` for a connection that is in progress
/// (TCP). `EINTR` during a blocking connect leaves the connection going on
/// in the background; it is awaited the same way.
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: &impl SocketAddrArg, wait: Wait) -> Result<(), Errno> {
    match rustix::net::connect(fd, addr) {
        Ok(()) => Ok(()),
        Err(Errno::INPROGRESS | Errno::INTR | Errno::ALREADY) => match poll(fd, Ready::Write, wait)? {
            false => Err(Errno::TIMEDOUT),
            true => rustix::net::sockopt::socket_error(fd)?,
        },
        Err(e) => Err(e),
    }
}

/// Accepts one waiting connection (close-on-exec) from a non-blocking
/// listener; `Ok(None)` when none is waiting. A connection reset while it
/// waited is skipped.
pub(crate) fn accept_now(fd: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    loop {
        match rustix::net::accept_with(fd, SocketFlags::CLOEXEC) {
            Ok(c) => return Ok(Some(c)),
            Err(Errno::AGAIN) => return Ok(None),
            Err(Errno::INTR | Errno::CONNABORTED) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Accepts one connection (close-on-exec), waiting at most `wait`.
/// `Ok(None)` means the wait ran out.
pub(crate) fn accept(fd: BorrowedFd<'_>, wait: Wait) -> Result<Option<OwnedFd>, Errno> {
    loop {
        if !wait.is_forever() && !poll(fd, Ready::Read, wait)? {
            return Ok(None);
        }
        match rustix::net::accept_with(fd, SocketFlags::CLOEXEC) {
            Ok(c) => return Ok(Some(c)),
            // Another process took the connection first, or it was reset
            // while in the queue: wait for the next one.
            Err(Errno::INTR | Errno::AGAIN | Errno::CONNABORTED) => {
                if matches!(wait, Wait::Never) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

pub(crate) fn shutdown_write(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::net::shutdown(fd, Shutdown::Write)
}

/// `shutdown(fd, SHUT_RDWR)`: the peer sees the end although another
/// descriptor of the socket is still open.
pub(crate) fn shutdown_both(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::net::shutdown(fd, Shutdown::Both)
}

pub(crate) fn peer_credentials(fd: BorrowedFd<'_>) -> Result<UCred, Errno> {
    rustix::net::sockopt::socket_peercred(fd)
}

pub(crate) fn set_passcred(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::net::sockopt::set_socket_passcred(fd, true)
}

pub(crate) fn set_nodelay(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::net::sockopt::set_tcp_nodelay(fd, true)
}

pub(crate) fn set_reuseaddr(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::net::sockopt::set_socket_reuseaddr(fd, true)
}

/// The bound address of an IP socket.
pub(crate) fn local_inet_addr(fd: BorrowedFd<'_>) -> Result<SocketAddr, Errno> {
    let any = rustix::net::getsockname(fd)?;
    SocketAddr::try_from(any).map_err(|_| Errno::AFNOSUPPORT)
}

/// `sendmsg` with `MSG_NOSIGNAL` (a dead reader is `EPIPE`, never
/// `SIGPIPE`), optional fds, retrying `EINTR`.
pub(crate) fn send(
    fd: BorrowedFd<'_>,
    iov: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    dontwait: bool,
) -> Result<usize, Errno> {
    let mut flags = SendFlags::NOSIGNAL;
    if dontwait {
        flags |= SendFlags::DONTWAIT;
    }
    if fds.is_empty() {
        return retry(|| rustix::net::sendmsg(fd, iov, &mut SendAncillaryBuffer::default(), flags));
    }
    if fds.len() > MAX_FDS {
        return Err(Errno::TOOMANYREFS);
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::NOBUFS);
    }
    retry(|| rustix::net::sendmsg(fd, iov, &mut control, flags))
}

/// What one `recvmsg` brought.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Bytes received (for datagrams with `peek_len`, the full length).
    pub(crate) bytes: usize,
    /// The datagram was longer than the buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
    /// Ancillary data was lost (`MSG_CTRUNC`); every fd that did arrive has
    /// been closed already.
    pub(crate) control_truncated: bool,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) creds: Option<UCred>,
}

/// `recvmsg` with room for [`MAX_FDS`] descriptors (received
/// close-on-exec) and credentials, retrying `EINTR`.
///
/// `dontwait` adds `MSG_DONTWAIT`; `peek` adds `MSG_PEEK | MSG_TRUNC`, so
/// that `bytes` is the full length of the next datagram.
pub(crate) fn recv(
    fd: BorrowedFd<'_>,
    iov: &mut [IoSliceMut<'_>],
    dontwait: bool,
    peek: bool,
) -> Result<Received, Errno> {
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if dontwait {
        flags |= RecvFlags::DONTWAIT;
    }
    if peek {
        flags |= RecvFlags::PEEK | RecvFlags::TRUNC;
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS), ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = retry(|| rustix::net::recvmsg(fd, iov, &mut control, flags))?;
    let mut out = Received {
        bytes: msg.bytes,
        truncated: msg.flags.contains(ReturnFlags::TRUNC),
        control_truncated: msg.flags.contains(ReturnFlags::CTRUNC),
        ..Received::default()
    };
    for cmsg in control.drain() {
        match cmsg {
            RecvAncillaryMessage::ScmRights(fds) => out.fds.extend(fds),
            RecvAncillaryMessage::ScmCredentials(c) => out.creds = Some(c),
            _ => {}
        }
    }
    // The buffer has slack beyond MAX_FDS (credentials space, alignment):
    // hold peers to the documented limit.
    if out.fds.len() > MAX_FDS {
        out.control_truncated = true;
    }
    if out.control_truncated {
        // Closing them here means no error path can leak them.
        out.fds.clear();
    }
    Ok(out)
}

/// Waits until `fd` is readable (or hung up), at most `wait`.
/// `Ok(false)` means the wait ran out.
pub(crate) fn wait_readable(fd: impl AsFd, wait: Wait) -> Result<bool, Errno> {
    poll(fd.as_fd(), Ready::Read, wait)
}

pub(crate) use rustix::net::{AddressFamily as Family, SocketAddrUnix as UnixAddress, SocketType as Type};
