//! Framed messages over a byte stream: pipe, FIFO, Unix stream socket, TCP.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::Base;
use super::sealed::{self, SealedState};
use crate::error::{Error, ErrorKind, Result};
use crate::framing::{ByteSource, Chunk, DecodeError, Decoded, DecodedOwned, Decoder, Framing, len32_header};
use crate::meta::{Limit, Message, Meta, check_len};
use crate::shm::sealed_memfd;
use crate::sys::io::Ready;
use crate::sys::{self, Errno};
use crate::wait::Wait;
use crate::wait::{Got, not_yet};

/// What kind of descriptor carries the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// Pipe or FIFO: `read`/`writev`.
    Pipe,
    /// Unix stream socket: `recvmsg`/`sendmsg`, with fds.
    Unix,
    /// TCP: `recvmsg`/`sendmsg`.
    Tcp,
}

/// One end of a framed byte stream.
#[derive(Debug)]
pub(crate) struct StreamIo {
    base: Base,
    kind: StreamKind,
    framing: Framing,
    decoder: Decoder,
    /// A send failed after its first byte: the stream is out of step.
    broken: bool,
    /// Descriptors that arrived with the message being received.
    fds: Vec<OwnedFd>,
    /// Ancillary data of the message being received was truncated.
    control_truncated: bool,
    /// The peer attached more than [`sys::net::MAX_FDS`] descriptors to one
    /// frame: they were closed, and the stream is out of step for good.
    too_many_fds: bool,
    /// Bytes read ahead of the decoder; `None` on Unix streams.
    ahead: Option<Ahead>,
    /// Sealed memfd messages (Unix streams with `len32` framing).
    sealed: SealedState,
}

/// The most bytes read ahead of the decoder.
///
/// A small read (a frame header) asks the kernel for up to this much, so
/// that a small message costs one system call instead of two; the payload
/// of a large one still goes straight into the caller's buffer. Not on Unix
/// streams: bytes read ahead could include a later frame that carries
/// descriptors, and descriptors must arrive with their own frame.
const READ_AHEAD: usize = 4096;

/// Read-ahead bytes: `buf[pos..len]` are not yet consumed.
#[derive(Debug)]
struct Ahead {
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

extends_base!(StreamIo);

impl StreamIo {
    /// A second engine over a duplicate of the descriptor, with the same
    /// framing and maximum: one end sends while the other receives (the
    /// request-response server's replies).
    pub(crate) fn duplicate(&self) -> Result<StreamIo> {
        let fd = self
            .base
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Error::new(ErrorKind::Io, "dup", self.name(), e.to_string()))?;
        let mut io = StreamIo::new(fd, self.kind, self.framing, self.decoder.max(), self.base.name.clone());
        io.base.creds = self.base.creds;
        Ok(io)
    }

    pub(crate) fn new(fd: OwnedFd, kind: StreamKind, framing: Framing, max: usize, name: Arc<str>) -> StreamIo {
        StreamIo {
            base: Base::new(fd, name, kind == StreamKind::Unix),
            kind,
            framing,
            decoder: Decoder::new(framing, max),
            broken: false,
            fds: Vec::new(),
            control_truncated: false,
            too_many_fds: false,
            ahead: (kind != StreamKind::Unix).then(|| Ahead { buf: vec![0; READ_AHEAD].into(), pos: 0, len: 0 }),
            sealed: SealedState::default(),
        }
    }

    /// Whether this stream carries sealed memfd messages: Unix streams
    /// with `len32` framing (a marker is binary, and only Unix sockets pass
    /// descriptors).
    fn carries_sealed(&self) -> bool {
        self.kind == StreamKind::Unix && self.framing == Framing::Len32
    }

    /// The length a received payload announces, if it is a sealed-message
    /// marker on a stream that carries them.
    fn sealed_marker(&self, payload: &[u8]) -> Option<u64> {
        if self.carries_sealed() { sealed::announced(payload) } else { None }
    }

    /// Whether the last receive's error refused one sealed message and left
    /// the stream in step (the frame was consumed whole).
    pub(crate) fn refused_one(&self) -> bool {
        self.sealed.refused()
    }

    /// Sends `payload` as a sealed memfd: the memfd, sealed, behind a
    /// marker frame (see `transport::sealed`).
    pub(crate) fn send_sealed(&mut self, payload: &[u8], wait: Wait) -> Result<()> {
        if !self.carries_sealed() {
            let why = match self.kind {
                StreamKind::Unix => "sealed memfd messages need len32 framing (their marker is binary)",
                StreamKind::Pipe | StreamKind::Tcp => "sealed memfd messages travel over unix: sockets only",
            };
            return Err(Error::new(ErrorKind::Unsupported, "send_sealed", self.name(), why));
        }
        if self.broken {
            return Err(Error::new(
                ErrorKind::Disconnected,
                "send_sealed",
                self.name(),
                "an earlier send broke off in the middle of a frame",
            ));
        }
        check_len(&[IoSlice::new(payload)], self.decoder.max(), Limit::Maximum, "send_sealed", self.name())?;
        let fd = sealed_memfd(payload, self.name())?;
        self.send(&[IoSlice::new(&sealed::marker(payload.len()))], &[fd.as_fd()], wait)
    }

    /// True when bytes are buffered that may complete a message without
    /// reading the descriptor (callers must not wait for readiness first).
    pub(crate) fn has_buffered_message(&self) -> bool {
        self.sealed.has_pending()
            || self.decoder.has_buffered_message()
            || self.ahead.as_ref().is_some_and(|a| a.pos < a.len)
    }

    /// Sends one framed message. The wait applies to room for the first
    /// byte; once a frame has started it is finished, or the stream is
    /// reported broken.
    pub(crate) fn send(&mut self, payload: &[IoSlice<'_>], fds: &[BorrowedFd<'_>], wait: Wait) -> Result<()> {
        let err = |kind, why: String| Error::new(kind, "send", self.name(), why);
        if self.broken {
            return Err(err(ErrorKind::Disconnected, "an earlier send broke off in the middle of a frame".into()));
        }
        if !fds.is_empty() && self.kind != StreamKind::Unix {
            return Err(err(ErrorKind::Unsupported, "only Unix sockets can pass file descriptors".into()));
        }
        if fds.len() > sys::net::MAX_FDS {
            return Err(err(
                ErrorKind::Invalid,
                format!("{} file descriptors, the limit is {} a message", fds.len(), sys::net::MAX_FDS),
            ));
        }
        let len = check_len(payload, self.decoder.max(), Limit::Maximum, "send", self.name())?;
        let header = len32_header(len).expect("max is at most u32::MAX");
        let (before, after): (&[u8], &[u8]) = match self.framing {
            Framing::Len32 => (&header, &[]),
            Framing::Lines => {
                if payload.iter().any(|s| s.contains(&b'\n')) {
                    return Err(err(
                        ErrorKind::Invalid,
                        "a message sent with lines framing cannot contain '\\n'".into(),
                    ));
                }
                (&[], b"\n")
            }
        };
        let total = before.len() + len + after.len();
        // The frame as one gather list, on the stack for the common case.
        let mut stack = [IoSlice::new(&[]); 8];
        let mut heap = Vec::new();
        // Empty slices are left out: len32 sends [header, payload...],
        // lines sends [payload..., "\n"].
        let parts = (!before.is_empty()).then_some(IoSlice::new(before)).into_iter().chain(payload.iter().copied());
        let parts = parts.chain((!after.is_empty()).then_some(IoSlice::new(after)));
        let count = payload.len() + 1;
        let iov: &mut [IoSlice<'_>] = if count <= stack.len() {
            for (slot, part) in stack.iter_mut().zip(parts) {
                *slot = part;
            }
            &mut stack[..count]
        } else {
            heap.extend(parts);
            &mut heap
        };
        let mut rest: &mut [IoSlice<'_>] = iov;
        let mut written = 0;
        loop {
            let first = written == 0;
            let r = self.write_once(rest, if first { fds } else { &[] }, first && !wait.is_forever());
            match r {
                Ok(n) => {
                    written += n;
                    if written == total {
                        return Ok(());
                    }
                    IoSlice::advance_slices(&mut rest, n);
                }
                Err(Errno::AGAIN) if first => {
                    if matches!(wait, Wait::Never) {
                        return Err(not_yet(wait, "send", self.name()));
                    }
                    let ready = sys::io::poll(self.fd(), Ready::Write, wait).map_err(|e| self.os("send", e))?;
                    if !ready {
                        return Err(not_yet(wait, "send", self.name()));
                    }
                }
                // The descriptor was made non-blocking by its owner; the
                // frame has started, so wait for room whatever the deadline.
                Err(Errno::AGAIN) => {
                    sys::io::poll(self.fd(), Ready::Write, Wait::Forever).map_err(|e| self.os("send", e))?;
                }
                Err(e) if first => return Err(self.os("send", e)),
                Err(e) => {
                    self.broken = true;
                    return Err(self
                        .os("send", e)
                        .with_detail(format!("connection broken after {written} of {total} bytes of a frame")));
                }
            }
        }
    }

    fn write_once(&self, iov: &[IoSlice<'_>], fds: &[BorrowedFd<'_>], nowait: bool) -> Result<usize, Errno> {
        match self.kind {
            StreamKind::Pipe => {
                if nowait && !sys::io::poll(self.fd(), Ready::Write, Wait::Never)? {
                    return Err(Errno::AGAIN);
                }
                sys::io::writev(self.fd(), iov)
            }
            StreamKind::Unix | StreamKind::Tcp => sys::net::send(self.fd(), iov, fds, nowait),
        }
    }

    fn decode_error(&mut self, e: DecodeError) -> Error {
        if self.too_many_fds {
            return self.fd_flood();
        }
        // A message that did not fit the buffer stays pending, with its
        // descriptors; every other error ends the message.
        if !matches!(e, DecodeError::BufferTooSmall { .. }) {
            self.fds.clear();
            self.control_truncated = false;
        }
        let kind = match e {
            DecodeError::TooLarge { .. } | DecodeError::BufferTooSmall { .. } => ErrorKind::TooLarge,
            DecodeError::EofMidFrame { .. } => ErrorKind::Disconnected,
            DecodeError::Os(errno) => return self.os("recv", errno),
        };
        Error::new(kind, "recv", self.name(), e.to_string())
    }

    fn source(&mut self, wait: Wait) -> (&mut Decoder, FdSource<'_>) {
        let raw = RawSource {
            fd: self.base.fd.as_fd(),
            kind: self.kind,
            wait,
            fds: &mut self.fds,
            control_truncated: &mut self.control_truncated,
            too_many_fds: &mut self.too_many_fds,
        };
        (&mut self.decoder, FdSource { raw, ahead: self.ahead.as_mut() })
    }

    fn complete(&mut self) -> Result<Meta> {
        let fds = std::mem::take(&mut self.fds);
        if std::mem::take(&mut self.control_truncated) {
            drop(fds);
            return Err(Error::new(
                ErrorKind::TooLarge,
                "recv",
                self.name(),
                format!(
                    "file descriptors with the message were lost (MSG_CTRUNC: more than {} or over the \
                     file limit); every one received was closed and the message dropped",
                    sys::net::MAX_FDS
                ),
            ));
        }
        Ok(Meta { fds, creds: self.base.creds, ..Meta::default() })
    }

    /// The bytes held for a message not yet complete.
    pub(crate) fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    fn fd_flood(&mut self) -> Error {
        self.fds.clear();
        Error::new(
            ErrorKind::Corrupt,
            "recv",
            self.name(),
            format!(
                "the peer attached more than {} file descriptors to one frame; they were closed and the \
                 connection is out of step",
                sys::net::MAX_FDS
            ),
        )
    }

    pub(crate) fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        if let Some(meta) = self.sealed.begin() {
            return self.sealed.copy_into(buf, meta, &self.base).map(Got::Msg);
        }
        if self.too_many_fds {
            return Err(self.fd_flood());
        }
        let (decoder, mut src) = self.source(wait);
        match decoder.decode_into(&mut src, buf) {
            Ok(Decoded::Message(n)) => {
                let meta = self.complete()?;
                let Some(len) = self.sealed_marker(&buf[..n]) else {
                    return Ok(Got::Msg((n, meta)));
                };
                let meta = self.sealed.open(len, meta, self.decoder.max(), &self.base)?;
                self.sealed.copy_into(buf, meta, &self.base).map(Got::Msg)
            }
            Ok(Decoded::Eof) => Ok(Got::Eof),
            Ok(Decoded::NotYet) => Ok(Got::NotYet),
            Err(e) => Err(self.decode_error(e)),
        }
    }

    pub(crate) fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        if let Some(meta) = self.sealed.begin() {
            return Ok(Got::Msg(Message { data: Vec::new(), meta }));
        }
        if self.too_many_fds {
            return Err(self.fd_flood());
        }
        let (decoder, mut src) = self.source(wait);
        // The buffer grows with the bytes that arrive, bounded by the
        // maximum: never by what a frame announces.
        match decoder.decode_owned(&mut src) {
            Ok(DecodedOwned::Message(data)) => {
                let meta = self.complete()?;
                let Some(len) = self.sealed_marker(&data) else {
                    return Ok(Got::Msg(Message { data, meta }));
                };
                // The payload is read in place: `data` stays empty.
                let meta = self.sealed.open(len, meta, self.decoder.max(), &self.base)?;
                Ok(Got::Msg(Message { data: Vec::new(), meta }))
            }
            Ok(DecodedOwned::Eof) => Ok(Got::Eof),
            Ok(DecodedOwned::NotYet) => Ok(Got::NotYet),
            Err(e) => Err(self.decode_error(e)),
        }
    }
}

/// The descriptor as a [`ByteSource`] for the decoder, honouring a wait,
/// with read-ahead where the transport allows it.
struct FdSource<'a> {
    raw: RawSource<'a>,
    ahead: Option<&'a mut Ahead>,
}

/// The descriptor itself.
struct RawSource<'a> {
    fd: BorrowedFd<'a>,
    kind: StreamKind,
    wait: Wait,
    fds: &'a mut Vec<OwnedFd>,
    control_truncated: &'a mut bool,
    too_many_fds: &'a mut bool,
}

impl RawSource<'_> {
    fn read_once(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        let nowait = !self.wait.is_forever();
        match self.kind {
            StreamKind::Pipe => {
                if nowait && !sys::io::poll(self.fd, Ready::Read, Wait::Never)? {
                    return Err(Errno::AGAIN);
                }
                sys::io::read(self.fd, buf)
            }
            StreamKind::Unix | StreamKind::Tcp => {
                let r = sys::net::recv(self.fd, &mut [IoSliceMut::new(buf)], nowait, false)?;
                if self.fds.len() + r.fds.len() > sys::net::MAX_FDS {
                    // A frame carries at most MAX_FDS: close these at once
                    // and stop reading, so that a peer attaching descriptors
                    // to every byte cannot make this process hold them.
                    drop(r.fds);
                    *self.too_many_fds = true;
                    return Err(Errno::TOOMANYREFS);
                }
                self.fds.extend(r.fds);
                *self.control_truncated |= r.control_truncated;
                Ok(r.bytes)
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk, Errno> {
        loop {
            match self.read_once(buf) {
                Ok(0) => return Ok(Chunk::Eof),
                Ok(n) => return Ok(Chunk::Data(n)),
                // A reset connection ends the stream like a close does; the
                // decoder tells a clean end from one inside a frame.
                Err(Errno::CONNRESET) => return Ok(Chunk::Eof),
                Err(Errno::AGAIN) => {
                    if matches!(self.wait, Wait::Never) {
                        return Ok(Chunk::WouldBlock);
                    }
                    if !sys::io::poll(self.fd, Ready::Read, self.wait)? {
                        return Ok(Chunk::WouldBlock);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl ByteSource for FdSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk, Errno> {
        let Some(ahead) = self.ahead.as_deref_mut() else {
            return self.raw.read(buf);
        };
        if ahead.pos == ahead.len {
            if buf.len() >= READ_AHEAD {
                return self.raw.read(buf);
            }
            match self.raw.read(&mut ahead.buf)? {
                Chunk::Data(n) => (ahead.pos, ahead.len) = (0, n),
                other => return Ok(other),
            }
        }
        let n = buf.len().min(ahead.len - ahead.pos);
        buf[..n].copy_from_slice(&ahead.buf[ahead.pos..ahead.pos + n]);
        ahead.pos += n;
        Ok(Chunk::Data(n))
    }
}
