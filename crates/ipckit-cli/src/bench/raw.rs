//! Raw mode: every mechanism with direct rustix calls, making per message
//! the same system calls with the same bytes as ipckit (see
//! `transport/stream.rs` and `transport/packet.rs` in the library):
//!
//! | mechanism | send | receive |
//! | --- | --- | --- |
//! | pipe, fifo | `writev` of [len32 header, payload] | `read` of up to 4 KiB (header and, for a small message, its payload), then `read` of the rest of a larger payload |
//! | tcp | `sendmsg` of [header, payload], `MSG_NOSIGNAL` | as pipes, with `recvmsg` (room for fds and credentials) |
//! | unix-stream | `sendmsg` of [header, payload], `MSG_NOSIGNAL` | `recvmsg` of the header, then of the payload (no read-ahead: a later frame may carry descriptors) |
//! | unix-seqpacket, unix-dgram | `sendmsg`, `MSG_NOSIGNAL` | one `recvmsg`, with the same control buffer |
//! | mq, sysv-mq | see `queue.rs` | |
//!
//! Each call is repeated while it moves fewer bytes than asked, as ipckit's
//! are. Read-ahead is ipckit's (`transport/stream.rs`): when nothing is
//! buffered, a read smaller than [`READ_AHEAD`] asks the kernel for that
//! much into the read-ahead buffer and is served from it; a larger one goes
//! straight into the caller's buffer. The sockets are plain: `TCP_NODELAY`
//! on TCP (what any request-response loop sets), but not the `SO_PASSCRED`
//! that ipckit turns on for seqpacket and datagram sockets, so that the
//! ratio includes what the kernel then does per message (attach the
//! sender's credentials, write them into the control buffer): that is a
//! cost of the wrapper too.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ipckit::process::{pass_fd, take_inherited_fd};
use ipckit::socket::MAX_FDS;
use ipckit::{Endpoint, EndpointKind};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType, sockopt,
};

use super::catalogue::{Mechanism, Shape};
use super::link::Link;
use super::meeting::{Meeting, Pending, SETUP_TIMEOUT, Spot};
use super::queue;

/// Which family of calls moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Calls {
    /// `read` / `writev` (pipes, FIFOs).
    ReadWrite,
    /// `recvmsg` / `sendmsg` (sockets).
    MsgSocket,
}

/// A len32-framed byte stream: pipe, FIFO, Unix stream socket, TCP.
#[derive(Debug)]
struct RawStream {
    rx: OwnedFd,
    tx: OwnedFd,
    calls: Calls,
    /// A FIFO inbox may be read before its writer has opened it, and a
    /// FIFO without writers reads as end-of-file: wait for data once
    /// first (as ipckit's FIFO receiver does; setup, not timed).
    await_writer: bool,
    /// Bytes read ahead (pipes, FIFOs, TCP); `None` on Unix streams.
    ahead: Option<Ahead>,
}

/// The most bytes read ahead, as in ipckit.
///
/// This constant, [`Ahead`] and [`RawStream::read_some`] copy ipckit's
/// read-ahead (`READ_AHEAD`, `Ahead` and `FdSource::read` in
/// `transport/stream.rs`) on purpose: the raw baseline must make the same
/// reads of the same sizes without calling the library code it is measured
/// against (which is private to the library anyway). A change there
/// belongs here too.
const READ_AHEAD: usize = 4096;

/// Read-ahead bytes: `buf[pos..len]` are not yet consumed (ipckit's
/// `Ahead`, copied: see [`READ_AHEAD`]).
#[derive(Debug)]
struct Ahead {
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

/// A message socket that keeps boundaries: Unix seqpacket or datagram.
#[derive(Debug)]
struct RawPacket {
    rx: OwnedFd,
    tx: OwnedFd,
}

/// Runs `f` again while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

/// `sendmsg` with `MSG_NOSIGNAL` and no ancillary data, as ipckit sends.
fn sendmsg(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> rustix::io::Result<usize> {
    retry(|| rustix::net::sendmsg(fd, iov, &mut SendAncillaryBuffer::default(), SendFlags::NOSIGNAL))
}

/// What one `recvmsg` brought: bytes, and whether the message was longer
/// than the buffer.
struct Received {
    bytes: usize,
    truncated: bool,
}

/// `recvmsg` as ipckit receives: `MSG_CMSG_CLOEXEC`, with a control buffer
/// of room for [`MAX_FDS`] descriptors and one set of credentials, drained
/// after each call (closing any descriptor that came).
fn recvmsg(fd: BorrowedFd<'_>, buf: &mut [u8]) -> rustix::io::Result<Received> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS), ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = retry(|| rustix::net::recvmsg(fd, &mut [IoSliceMut::new(buf)], &mut control, RecvFlags::CMSG_CLOEXEC))?;
    control.drain().for_each(drop);
    Ok(Received { bytes: msg.bytes, truncated: msg.flags.intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC) })
}

impl RawStream {
    /// A stream; `read_ahead` for pipes, FIFOs and TCP.
    fn new(rx: OwnedFd, tx: OwnedFd, calls: Calls, read_ahead: bool) -> RawStream {
        let ahead = read_ahead.then(|| Ahead { buf: vec![0; READ_AHEAD].into(), pos: 0, len: 0 });
        RawStream { rx, tx, calls, await_writer: false, ahead }
    }

    /// One `writev` or `sendmsg`; bytes written.
    fn write_once(&self, iov: &[IoSlice<'_>]) -> rustix::io::Result<usize> {
        match self.calls {
            Calls::ReadWrite => retry(|| rustix::io::writev(&self.tx, iov)),
            Calls::MsgSocket => sendmsg(self.tx.as_fd(), iov),
        }
    }

    /// One `read` or `recvmsg` into `buf`, through the read-ahead buffer
    /// where there is one; bytes read.
    fn read_some(&mut self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        let (fd, calls) = (self.rx.as_fd(), self.calls);
        let Some(ahead) = self.ahead.as_mut() else {
            return read_once(fd, calls, buf);
        };
        if ahead.pos == ahead.len {
            if buf.len() >= READ_AHEAD {
                return read_once(fd, calls, buf);
            }
            match read_once(fd, calls, &mut ahead.buf)? {
                0 => return Ok(0),
                n => (ahead.pos, ahead.len) = (0, n),
            }
        }
        let n = buf.len().min(ahead.len - ahead.pos);
        buf[..n].copy_from_slice(&ahead.buf[ahead.pos..ahead.pos + n]);
        ahead.pos += n;
        Ok(n)
    }

    /// Fills `buf` completely; end-of-file first is an error.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.read_some(&mut buf[got..]).context("read")? {
                0 => bail!("the peer closed the stream"),
                n => got += n,
            }
        }
        Ok(())
    }
}

/// One `read` or `recvmsg`; bytes read.
fn read_once(fd: BorrowedFd<'_>, calls: Calls, buf: &mut [u8]) -> rustix::io::Result<usize> {
    match calls {
        Calls::ReadWrite => retry(|| rustix::io::read(fd, &mut *buf)),
        Calls::MsgSocket => recvmsg(fd, buf).map(|r| r.bytes),
    }
}

impl Link for RawStream {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let header = u32::try_from(msg.len()).context("message over 4 GiB")?.to_le_bytes();
        let mut iov = [IoSlice::new(&header), IoSlice::new(msg)];
        let mut rest: &mut [IoSlice<'_>] = &mut iov;
        let total = header.len() + msg.len();
        let mut written = 0;
        loop {
            let n = self.write_once(rest).context("write")?;
            written += n;
            if written == total {
                return Ok(());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        if std::mem::take(&mut self.await_writer) {
            wait_readable(self.rx.as_fd(), SETUP_TIMEOUT)?;
        }
        let mut header = [0u8; 4];
        self.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header) as usize;
        ensure!(len <= buf.len(), "frame of {len} bytes is over the {}-byte buffer", buf.len());
        self.read_exact(&mut buf[..len])?;
        Ok(len)
    }
}

impl Link for RawPacket {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let n = sendmsg(self.tx.as_fd(), &[IoSlice::new(msg)]).context("sendmsg")?;
        ensure!(n == msg.len(), "sendmsg sent {n} of {} bytes", msg.len());
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let r = recvmsg(self.rx.as_fd(), buf).context("recvmsg")?;
        ensure!(!r.truncated, "message or its control data truncated");
        Ok(r.bytes)
    }
}

/// Waits until `fd` is readable, at most `timeout`.
fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<()> {
    let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: timeout.subsec_nanos().into() };
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    match retry(|| rustix::event::poll(&mut fds, Some(&ts))).context("poll")? {
        0 => bail!("nothing arrived within {timeout:?}"),
        _ => Ok(()),
    }
}

/// Repeats `attempt` while the other side is not there yet (no such file,
/// no reader, nothing bound), for at most [`SETUP_TIMEOUT`].
fn until_there<T>(what: &str, mut attempt: impl FnMut() -> rustix::io::Result<T>) -> Result<T> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        match attempt() {
            Err(Errno::NOENT | Errno::NXIO | Errno::CONNREFUSED) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other.with_context(|| format!("{what} (waited up to {SETUP_TIMEOUT:?})")),
        }
    }
}

/// The file-system path of a FIFO or Unix-socket endpoint.
fn path_of(ep: &Endpoint) -> Result<&Path> {
    ep.path().with_context(|| format!("{ep} has no path"))
}

/// Clears `O_NONBLOCK`: the loop blocks in the kernel, as ipckit's does.
fn set_blocking(fd: &OwnedFd) -> rustix::io::Result<()> {
    rustix::fs::fcntl_setfl(fd, rustix::fs::fcntl_getfl(fd)? - OFlags::NONBLOCK)
}

/// A Unix socket of type `ty`, close-on-exec.
fn unix_socket(ty: SocketType) -> rustix::io::Result<OwnedFd> {
    rustix::net::socket_with(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None)
}

/// Creates and opens this side's inbox: a FIFO to read, or a bound datagram
/// socket.
fn open_inbox(mech: Mechanism, ep: &Endpoint) -> Result<OwnedFd> {
    let path = path_of(ep)?;
    let fd = match mech {
        Mechanism::Fifo => {
            rustix::fs::mkfifoat(CWD, path, Mode::from_raw_mode(0o600)).context("mkfifo")?;
            let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
                .context("open")?;
            set_blocking(&fd).context("fcntl")?;
            fd
        }
        _ => {
            let fd = unix_socket(SocketType::DGRAM).context("socket")?;
            rustix::net::bind(&fd, &SocketAddrUnix::new(path)?).context("bind")?;
            fd
        }
    };
    Ok(fd)
}

/// Opens the other side's inbox for sending, waiting for it to exist.
fn open_outbox(mech: Mechanism, ep: &Endpoint) -> Result<OwnedFd> {
    let path = path_of(ep)?;
    match mech {
        Mechanism::Fifo => {
            let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let fd = until_there("open", || rustix::fs::open(path, flags, Mode::empty()))?;
            set_blocking(&fd).context("fcntl")?;
            Ok(fd)
        }
        _ => {
            let fd = unix_socket(SocketType::DGRAM).context("socket")?;
            let addr = SocketAddrUnix::new(path)?;
            until_there("connect", || rustix::net::connect(&fd, &addr))?;
            Ok(fd)
        }
    }
}

/// The link over an inbox and an outbox.
fn mailbox_link(mech: Mechanism, rx: OwnedFd, tx: OwnedFd) -> Box<dyn Link> {
    match mech {
        Mechanism::Fifo => Box::new(RawStream { await_writer: true, ..RawStream::new(rx, tx, Calls::ReadWrite, true) }),
        _ => Box::new(RawPacket { rx, tx }),
    }
}

/// The link over a connected socket (one descriptor, duplicated so that
/// each direction owns one).
fn connection_link(mech: Mechanism, fd: OwnedFd) -> Result<Box<dyn Link>> {
    let tx = fd.try_clone().context("dup")?;
    Ok(match mech {
        Mechanism::UnixSeqpacket => Box::new(RawPacket { rx: fd, tx }),
        _ => Box::new(RawStream::new(fd, tx, Calls::MsgSocket, mech == Mechanism::Tcp)),
    })
}

/// The socket type of a connection mechanism.
fn connection_type(mech: Mechanism) -> SocketType {
    match mech {
        Mechanism::UnixSeqpacket => SocketType::SEQPACKET,
        _ => SocketType::STREAM,
    }
}

/// The loopback address of a TCP endpoint.
fn tcp_addr(ep: &Endpoint) -> Result<SocketAddr> {
    match ep.kind() {
        EndpointKind::Tcp { host, port } => Ok(SocketAddr::new(host.parse().context("host")?, *port)),
        _ => bail!("{ep} is not a TCP endpoint"),
    }
}

/// Binds and listens at `ep`; returns the listener and the endpoint the
/// peer connects to (for TCP, with the port the kernel chose).
fn listen(mech: Mechanism, ep: &Endpoint) -> Result<(OwnedFd, Endpoint)> {
    if mech == Mechanism::Tcp {
        let addr = tcp_addr(ep)?;
        let fd = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None)
            .context("socket")?;
        sockopt::set_socket_reuseaddr(&fd, true).context("setsockopt SO_REUSEADDR")?;
        rustix::net::bind(&fd, &addr).context("bind")?;
        rustix::net::listen(&fd, 128).context("listen")?;
        let local = SocketAddr::try_from(rustix::net::getsockname(&fd).context("getsockname")?)
            .map_err(|_| anyhow::anyhow!("getsockname: not an IP address"))?;
        return Ok((fd, format!("tcp:{local}").parse()?));
    }
    let fd = unix_socket(connection_type(mech)).context("socket")?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path_of(ep)?)?).context("bind")?;
    rustix::net::listen(&fd, 128).context("listen")?;
    Ok((fd, ep.clone()))
}

/// Accepts the peer's connection, waiting at most [`SETUP_TIMEOUT`].
fn accept(mech: Mechanism, listener: &OwnedFd) -> Result<OwnedFd> {
    wait_readable(listener.as_fd(), SETUP_TIMEOUT).context("wait for the peer to connect")?;
    let fd = retry(|| rustix::net::accept_with(listener, SocketFlags::CLOEXEC)).context("accept")?;
    if mech == Mechanism::Tcp {
        sockopt::set_tcp_nodelay(&fd, true).context("setsockopt TCP_NODELAY")?;
    }
    Ok(fd)
}

/// Connects to the parent's listener.
fn connect(mech: Mechanism, ep: &Endpoint) -> Result<OwnedFd> {
    if mech == Mechanism::Tcp {
        let addr = tcp_addr(ep)?;
        let fd = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None)
            .context("socket")?;
        until_there("connect", || rustix::net::connect(&fd, &addr))?;
        sockopt::set_tcp_nodelay(&fd, true).context("setsockopt TCP_NODELAY")?;
        return Ok(fd);
    }
    let fd = unix_socket(connection_type(mech)).context("socket")?;
    let addr = SocketAddrUnix::new(path_of(ep)?)?;
    until_there("connect", || rustix::net::connect(&fd, &addr))?;
    Ok(fd)
}

/// Claims a descriptor the parent passed with [`pass_fd`].
fn inherited(raw: RawFd) -> Result<OwnedFd> {
    take_inherited_fd(raw).with_context(|| format!("claim inherited descriptor {raw}"))
}

/// The parent's side, before the peer is spawned (see `api::prepare`).
pub(super) fn prepare(mech: Mechanism, spot: &Spot<'_>, cmd: &mut Command) -> Result<(Meeting, Pending)> {
    match mech.shape() {
        Shape::Pipes => {
            let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe");
            let (down_rx, down_tx) = pipe()?;
            let (up_rx, up_tx) = pipe()?;
            let meeting = Meeting::pipes(pass_fd(cmd, &down_rx), pass_fd(cmd, &up_tx));
            let finish = move || -> Result<Box<dyn Link>> {
                drop((down_rx, up_tx));
                Ok(Box::new(RawStream::new(up_rx, down_tx, Calls::ReadWrite, true)))
            };
            Ok((meeting, Box::new(finish)))
        }
        Shape::Mailboxes => {
            let (mine, theirs) = spot.mailboxes(mech)?;
            let rx = open_inbox(mech, &mine).with_context(|| format!("inbox {mine}"))?;
            let meeting = Meeting::mailboxes(&mine, &theirs);
            let finish = move || -> Result<Box<dyn Link>> {
                let tx = open_outbox(mech, &theirs).with_context(|| format!("outbox {theirs}"))?;
                Ok(mailbox_link(mech, rx, tx))
            };
            Ok((meeting, Box::new(finish)))
        }
        Shape::Connection => {
            let at = spot.listen_at(mech)?;
            let (listener, ep) = listen(mech, &at).with_context(|| format!("listen {at}"))?;
            let finish = move || -> Result<Box<dyn Link>> { connection_link(mech, accept(mech, &listener)?) };
            Ok((Meeting::listener(&ep), Box::new(finish)))
        }
        Shape::Queues => queue::prepare_raw(mech, spot, spot.queue_msgsize),
    }
}

/// The peer's side: opens its link to the parent.
pub(super) fn open_peer(mech: Mechanism, meeting: &Meeting) -> Result<Box<dyn Link>> {
    match mech.shape() {
        Shape::Pipes => {
            let (read, write) = meeting.fds()?;
            Ok(Box::new(RawStream::new(inherited(read)?, inherited(write)?, Calls::ReadWrite, true)))
        }
        Shape::Mailboxes => {
            let (inbox, outbox) = (meeting.inbox()?, meeting.connect()?);
            let rx = open_inbox(mech, &inbox).with_context(|| format!("inbox {inbox}"))?;
            let tx = open_outbox(mech, &outbox).with_context(|| format!("outbox {outbox}"))?;
            Ok(mailbox_link(mech, rx, tx))
        }
        Shape::Connection => {
            let ep = meeting.connect()?;
            connection_link(mech, connect(mech, &ep).with_context(|| format!("connect {ep}"))?)
        }
        Shape::Queues => queue::open_peer_raw(meeting),
    }
}
