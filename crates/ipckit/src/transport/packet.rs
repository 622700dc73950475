//! Messages over sockets that keep boundaries: Unix seqpacket and datagram.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::Base;
use super::sealed::{self, SealedState};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Credentials, Limit, Message, Meta, check_len};
use crate::shm::sealed_memfd;
use crate::sys::io::Ready;
use crate::sys::{self, Errno};
use crate::wait::Wait;
use crate::wait::{Got, into_message, not_yet};

/// Which message socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PacketKind {
    Seqpacket,
    Dgram,
}

/// One end of a message socket.
#[derive(Debug)]
pub(crate) struct PacketIo {
    base: Base,
    kind: PacketKind,
    max: usize,
    /// Sealed memfd messages.
    sealed: SealedState,
}

extends_base!(PacketIo);

impl PacketIo {
    pub(crate) fn new(fd: OwnedFd, kind: PacketKind, max: usize, name: Arc<str>) -> PacketIo {
        PacketIo { base: Base::new(fd, name, kind == PacketKind::Seqpacket), kind, max, sealed: SealedState::default() }
    }

    /// A second engine over a duplicate of the descriptor (see
    /// `StreamIo::duplicate`).
    pub(crate) fn duplicate(&self) -> Result<PacketIo> {
        let fd = self
            .base
            .fd()
            .try_clone_to_owned()
            .map_err(|e| crate::Error::new(crate::ErrorKind::Io, "dup", self.name(), e.to_string()))?;
        let mut io = PacketIo::new(fd, self.kind, self.max, self.base.name.clone());
        io.base.creds = self.base.creds;
        Ok(io)
    }

    /// Whether a message is held that a receive returns without reading
    /// the socket (a sealed message that did not fit a `recv_into` buffer).
    pub(crate) fn has_buffered_message(&self) -> bool {
        self.sealed.has_pending()
    }

    /// Whether the last receive's error refused one sealed message (the
    /// socket is in step: the message was consumed whole).
    pub(crate) fn refused_one(&self) -> bool {
        self.sealed.refused()
    }

    /// Sends `payload` as a sealed memfd: the memfd, sealed, with a marker
    /// message (see `transport::sealed`).
    pub(crate) fn send_sealed(&mut self, payload: &[u8], wait: Wait) -> Result<()> {
        check_len(&[IoSlice::new(payload)], self.max, Limit::Maximum, "send_sealed", self.name())?;
        let fd = sealed_memfd(payload, self.name())?;
        self.send(&[IoSlice::new(&sealed::marker(payload.len()))], &[fd.as_fd()], wait)
    }

    /// Waits for `events` after an `EAGAIN`; `false` when the wait ran out.
    fn wait_for(&self, ready: Ready, wait: Wait, op: &'static str) -> Result<bool> {
        if matches!(wait, Wait::Never) {
            return Ok(false);
        }
        sys::io::poll(self.fd(), ready, wait).map_err(|e| self.os(op, e))
    }

    pub(crate) fn send(&mut self, payload: &[IoSlice<'_>], fds: &[BorrowedFd<'_>], wait: Wait) -> Result<()> {
        let len = check_len(payload, self.max, Limit::Maximum, "send", self.name())?;
        if fds.len() > sys::net::MAX_FDS {
            return Err(Error::new(
                ErrorKind::Invalid,
                "send",
                self.name(),
                format!("{} file descriptors, the limit is {} a message", fds.len(), sys::net::MAX_FDS),
            ));
        }
        loop {
            match sys::net::send(self.fd(), payload, fds, !wait.is_forever()) {
                Ok(_) => return Ok(()),
                Err(Errno::AGAIN) => {
                    if !self.wait_for(Ready::Write, wait, "send")? {
                        return Err(not_yet(wait, "send", self.name()));
                    }
                }
                Err(Errno::MSGSIZE) => {
                    return Err(self
                        .os("send", Errno::MSGSIZE)
                        .with_detail(format!("message of {len} bytes is over the socket's limit (SO_SNDBUF)")));
                }
                Err(e) => return Err(self.os("send", e)),
            }
        }
    }

    /// The length of the next message without consuming it, waiting per
    /// `wait`. `None`: nothing within the wait.
    fn peek_len(&self, wait: Wait) -> Result<Option<usize>> {
        loop {
            match sys::net::recv(self.fd(), &mut [], !wait.is_forever(), true) {
                Ok(r) => return Ok(Some(r.bytes)),
                Err(Errno::AGAIN) => {
                    if !self.wait_for(Ready::Read, wait, "recv")? {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(self.os("recv", e)),
            }
        }
    }

    pub(crate) fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        if let Some(meta) = self.sealed.begin() {
            return self.sealed.copy_into(buf, meta, &self.base).map(Got::Msg);
        }
        let (n, meta) = match self.recv_message_into(buf, wait)? {
            Got::Msg(m) => m,
            other => return Ok(other),
        };
        let Some(len) = sealed::announced(&buf[..n]) else {
            return Ok(Got::Msg((n, meta)));
        };
        let meta = self.sealed.open(len, meta, self.max, &self.base)?;
        self.sealed.copy_into(buf, meta, &self.base).map(Got::Msg)
    }

    /// One message into `buf`, as it travelled (a sealed message's marker
    /// as it is).
    fn recv_message_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        // A buffer smaller than the largest allowed message could truncate:
        // learn the length first so that nothing is lost. A buffer of the
        // maximum size needs no extra system call.
        if buf.len() < self.max {
            match self.peek_len(wait)? {
                None => return Ok(Got::NotYet),
                Some(len) if len > buf.len() && len <= self.max => {
                    return Err(Error::new(
                        ErrorKind::TooLarge,
                        "recv",
                        self.name(),
                        format!("message of {len} bytes does not fit the {}-byte buffer", buf.len()),
                    ));
                }
                Some(_) => {}
            }
        }
        loop {
            match sys::net::recv(self.fd(), &mut [IoSliceMut::new(buf)], !wait.is_forever(), false) {
                Ok(r) => {
                    if r.control_truncated {
                        return Err(Error::new(
                            ErrorKind::TooLarge,
                            "recv",
                            self.name(),
                            format!(
                                "file descriptors with the message were lost (MSG_CTRUNC: more than {} or over \
                                 the file limit); every one received was closed and the message dropped",
                                sys::net::MAX_FDS
                            ),
                        ));
                    }
                    if r.truncated {
                        return Err(Error::new(
                            ErrorKind::TooLarge,
                            "recv",
                            self.name(),
                            format!(
                                "message over the {}-byte buffer was discarded (maximum {} bytes)",
                                buf.len(),
                                self.max
                            ),
                        ));
                    }
                    // Seqpacket sockets have SO_PASSCRED on (see
                    // `socket::unix`): every message, even an empty one,
                    // carries credentials; the peer's close carries none.
                    if r.bytes == 0 && self.kind == PacketKind::Seqpacket && r.creds.is_none() {
                        return Ok(Got::Eof);
                    }
                    let creds = r.creds.map(Credentials::from).or(self.base.creds);
                    return Ok(Got::Msg((r.bytes, Meta { fds: r.fds, creds, ..Meta::default() })));
                }
                Err(Errno::AGAIN) => {
                    if !self.wait_for(Ready::Read, wait, "recv")? {
                        return Ok(Got::NotYet);
                    }
                }
                Err(e) => return Err(self.os("recv", e)),
            }
        }
    }

    pub(crate) fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        if let Some(meta) = self.sealed.begin() {
            return Ok(Got::Msg(Message { data: Vec::new(), meta }));
        }
        let Some(len) = self.peek_len(wait)? else {
            return Ok(Got::NotYet);
        };
        // Never more than the maximum: a longer message is received into a
        // maximum-sized buffer and reported (and dropped) as too large.
        let mut data = vec![0u8; len.min(self.max)];
        let got = self.recv_message_into(&mut data, wait)?;
        let msg = match got.map(|m| into_message(data, m)) {
            Got::Msg(msg) => msg,
            other => return Ok(other),
        };
        let Some(len) = sealed::announced(&msg.data) else {
            return Ok(Got::Msg(msg));
        };
        // The payload is read in place: `data` stays empty.
        let meta = self.sealed.open(len, msg.meta, self.max, &self.base)?;
        Ok(Got::Msg(Message { data: Vec::new(), meta }))
    }
}
