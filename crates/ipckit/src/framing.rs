//! Message framing for byte streams (pipes, FIFOs, Unix stream sockets,
//! TCP).
//!
//! # `len32` (the default)
//!
//! Each message is a frame: its length as a 32-bit little-endian unsigned
//! integer, then that many payload bytes. No padding, no trailer, no
//! checksum (the kernel's byte stream is reliable and ordered).
//!
//! ```text
//! +----+----+----+----+--------------------+
//! | length (u32, LE)  | payload (length B) |
//! +----+----+----+----+--------------------+
//! ```
//!
//! A receiver has a maximum message size ([`DEFAULT_MAX_MESSAGE`] unless
//! configured). A frame announcing more is rejected with `TooLarge` before
//! anything is allocated, and its payload is skipped so that the stream stays
//! in step. A sender never leaves a frame half-written: a timeout applies
//! only to waiting for room before the first byte.
//!
//! # `lines`
//!
//! For shell tools: each message is the bytes of one line, without its
//! terminating `\n`. A message may therefore not contain `\n`. A last line
//! without `\n` before end-of-stream is still a message.

use std::fmt;

use crate::sys::Errno;

/// The maximum message size when none is configured: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;

/// The largest payload a `len32` frame can announce.
pub const LEN32_MAX: usize = u32::MAX as usize;

/// How messages are delimited on a byte stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Framing {
    /// A u32 little-endian length, then the payload.
    #[default]
    Len32,
    /// One message per line (`\n`-terminated).
    Lines,
}

impl Framing {
    /// The name used by the CLI (`len32`, `lines`).
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Len32 => "len32",
            Framing::Lines => "lines",
        }
    }
}

impl std::str::FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Framing, String> {
        match s {
            "len32" => Ok(Framing::Len32),
            "lines" => Ok(Framing::Lines),
            other => Err(format!("unknown framing {other:?} (expected len32 or lines)")),
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one read from a byte source gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// This many bytes were read (never 0).
    Data(usize),
    /// The writer closed the stream.
    Eof,
    /// Nothing is available within the caller's wait.
    WouldBlock,
}

/// A byte stream the decoder reads from.
pub trait ByteSource {
    /// Reads at most `buf.len()` bytes (`buf` is never empty).
    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk, Errno>;
}

/// A [`ByteSource`] over a slice, handing out at most `step` bytes a read
/// (to exercise every split of a frame), then end-of-stream.
#[derive(Debug)]
pub struct SliceSource<'a> {
    data: &'a [u8],
    step: usize,
}

impl<'a> SliceSource<'a> {
    /// A source over `data` that returns at most `step` bytes a read.
    pub fn new(data: &'a [u8], step: usize) -> Self {
        SliceSource { data, step: step.max(1) }
    }
}

impl ByteSource for SliceSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk, Errno> {
        if self.data.is_empty() {
            return Ok(Chunk::Eof);
        }
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(Chunk::Data(n))
    }
}

/// The outcome of one decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole message of this many bytes (in the caller's buffer, or, from
    /// [`Decoder::next_len`], waiting to be read).
    Message(usize),
    /// The stream ended cleanly between messages.
    Eof,
    /// The source would block; the decoder kept everything it has read and
    /// resumes where it stopped on the next call.
    NotYet,
}

/// Why a frame could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame announces `len` bytes, over the maximum `max`. The payload
    /// is skipped; the stream stays usable.
    TooLarge {
        /// Announced length.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The caller's buffer (`cap` bytes) is smaller than the message
    /// (`len` bytes). Nothing is lost: call again with a larger buffer.
    BufferTooSmall {
        /// Message length.
        len: usize,
        /// Buffer length.
        cap: usize,
    },
    /// The stream ended inside a frame: `got` of `want` bytes arrived.
    EofMidFrame {
        /// Bytes of the frame that arrived.
        got: usize,
        /// Bytes the frame should have had.
        want: usize,
    },
    /// The source failed.
    Os(Errno),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the maximum of {max} bytes")
            }
            DecodeError::BufferTooSmall { len, cap } => {
                write!(f, "message of {len} bytes does not fit the {cap}-byte buffer")
            }
            DecodeError::EofMidFrame { got, want } => {
                write!(f, "peer closed the stream in the middle of a frame ({got} of {want} bytes)")
            }
            DecodeError::Os(e) => write!(f, "{}", crate::error::errno_name(e)),
        }
    }
}

impl From<Errno> for DecodeError {
    fn from(e: Errno) -> Self {
        DecodeError::Os(e)
    }
}

/// Incremental frame decoder. It keeps its place across [`Decoded::NotYet`]
/// (a timeout) and [`DecodeError::BufferTooSmall`], so a message is never
/// lost or torn; it allocates at most the configured maximum.
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    max: usize,
    // len32
    header: [u8; 4],
    header_got: usize,
    body_len: Option<usize>,
    /// The received part of the current frame's payload: `partial[..got]`.
    /// Its length grows with the bytes that arrive (doubling, from
    /// [`GROW_CHUNK`]), never with the length a frame announces.
    partial: Vec<u8>,
    got: usize,
    skip: u64,
    // lines
    line: Vec<u8>,
    start: usize,
    end: usize,
    discarding: bool,
}

/// The read size of the `lines` decoder's buffer.
const LINE_CHUNK: usize = 64 * 1024;

/// The first allocation for a frame's payload received in pieces; it then
/// doubles with the bytes received, up to the announced length.
pub const GROW_CHUNK: usize = 64 * 1024;

/// A message decoded into a buffer of its own.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodedOwned {
    /// A whole message.
    Message(Vec<u8>),
    /// The stream ended cleanly between messages.
    Eof,
    /// The source would block; what arrived is kept.
    NotYet,
}

impl Decoder {
    /// A decoder for `framing` that rejects messages over `max` bytes.
    pub fn new(framing: Framing, max: usize) -> Decoder {
        Decoder {
            framing,
            max: max.min(LEN32_MAX),
            header: [0; 4],
            header_got: 0,
            body_len: None,
            partial: Vec::new(),
            got: 0,
            skip: 0,
            line: Vec::new(),
            start: 0,
            end: 0,
            discarding: false,
        }
    }

    /// The maximum message size.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The bytes this decoder holds for a message not yet complete (what a
    /// receiver serving many streams bounds in total).
    pub fn buffered(&self) -> usize {
        self.partial.capacity() + self.line.capacity()
    }

    /// True when a partly received frame (or buffered data) is pending.
    pub fn in_frame(&self) -> bool {
        match self.framing {
            Framing::Len32 => self.header_got > 0 || self.body_len.is_some() || self.skip > 0,
            Framing::Lines => self.end > self.start,
        }
    }

    /// True when a whole message is already buffered (`lines` only), so a
    /// caller must not wait for the source to become readable first.
    pub fn has_buffered_message(&self) -> bool {
        self.framing == Framing::Lines && self.line[self.start..self.end].contains(&b'\n')
    }

    /// Decodes the next message into `buf`.
    pub fn decode_into(&mut self, src: &mut impl ByteSource, buf: &mut [u8]) -> Result<Decoded, DecodeError> {
        match self.framing {
            Framing::Len32 => self.len32_into(src, buf),
            Framing::Lines => self.line_into(src, Some(buf)),
        }
    }

    /// Decodes the next message into a buffer of its own: as big as the
    /// message, grown with the bytes that arrive, never with what a frame
    /// announces (a peer announcing the maximum and sending little holds
    /// little).
    pub fn decode_owned(&mut self, src: &mut impl ByteSource) -> Result<DecodedOwned, DecodeError> {
        if self.framing == Framing::Lines {
            // A line's length is known once it is buffered whole.
            let len = match self.line_into(src, None)? {
                Decoded::Message(len) => len,
                Decoded::Eof => return Ok(DecodedOwned::Eof),
                Decoded::NotYet => return Ok(DecodedOwned::NotYet),
            };
            let mut data = vec![0u8; len];
            return match self.line_into(src, Some(&mut data))? {
                Decoded::Message(n) => {
                    data.truncate(n);
                    Ok(DecodedOwned::Message(data))
                }
                Decoded::Eof => Ok(DecodedOwned::Eof),
                Decoded::NotYet => Ok(DecodedOwned::NotYet),
            };
        }
        let len = match self.len32_header(src)? {
            Decoded::Message(len) => len,
            Decoded::Eof => return Ok(DecodedOwned::Eof),
            Decoded::NotYet => return Ok(DecodedOwned::NotYet),
        };
        while self.got < len {
            let target = len.min((2 * self.got).max(GROW_CHUNK));
            if self.partial.len() < target {
                // Exact: amortised doubling would overshoot the frame.
                self.partial.reserve_exact(target - self.partial.len());
                self.partial.resize(target, 0);
            }
            match src.read(&mut self.partial[self.got..target])? {
                Chunk::Data(n) => self.got += n,
                Chunk::Eof => {
                    let got = std::mem::take(&mut self.got);
                    self.end_frame();
                    return Err(DecodeError::EofMidFrame { got: got + 4, want: len + 4 });
                }
                Chunk::WouldBlock => return Ok(DecodedOwned::NotYet),
            }
        }
        let mut data = std::mem::take(&mut self.partial);
        data.truncate(len);
        self.got = 0;
        self.body_len = None;
        Ok(DecodedOwned::Message(data))
    }

    fn end_frame(&mut self) {
        self.body_len = None;
        self.got = 0;
        self.partial = Vec::new();
    }

    /// Reads until the length of the next message is known, without
    /// consuming it (so that a caller can size a buffer).
    pub fn next_len(&mut self, src: &mut impl ByteSource) -> Result<Decoded, DecodeError> {
        match self.framing {
            Framing::Len32 => self.len32_header(src),
            Framing::Lines => self.line_into(src, None),
        }
    }

    fn len32_header(&mut self, src: &mut impl ByteSource) -> Result<Decoded, DecodeError> {
        loop {
            if self.skip > 0 {
                let mut scratch = [0u8; 4096];
                let want = scratch.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                match src.read(&mut scratch[..want])? {
                    Chunk::Data(n) => self.skip -= n as u64,
                    Chunk::Eof => {
                        self.skip = 0;
                        return Ok(Decoded::Eof);
                    }
                    Chunk::WouldBlock => return Ok(Decoded::NotYet),
                }
                continue;
            }
            if let Some(len) = self.body_len {
                return Ok(Decoded::Message(len));
            }
            match src.read(&mut self.header[self.header_got..])? {
                Chunk::Data(n) => self.header_got += n,
                Chunk::Eof if self.header_got == 0 => return Ok(Decoded::Eof),
                Chunk::Eof => {
                    let got = std::mem::take(&mut self.header_got);
                    return Err(DecodeError::EofMidFrame { got, want: 4 });
                }
                Chunk::WouldBlock => return Ok(Decoded::NotYet),
            }
            if self.header_got == 4 {
                self.header_got = 0;
                let len = u32::from_le_bytes(self.header) as usize;
                if len > self.max {
                    self.skip = len as u64;
                    return Err(DecodeError::TooLarge { len: len as u64, max: self.max });
                }
                self.body_len = Some(len);
            }
        }
    }

    fn len32_into(&mut self, src: &mut impl ByteSource, buf: &mut [u8]) -> Result<Decoded, DecodeError> {
        let len = match self.len32_header(src)? {
            Decoded::Message(len) => len,
            other => return Ok(other),
        };
        if len > buf.len() {
            return Err(DecodeError::BufferTooSmall { len, cap: buf.len() });
        }
        // What arrived before goes first; the rest is read in place.
        let kept = self.got;
        buf[..kept].copy_from_slice(&self.partial[..kept]);
        let mut got = kept;
        while got < len {
            match src.read(&mut buf[got..len])? {
                Chunk::Data(n) => got += n,
                Chunk::Eof => {
                    self.end_frame();
                    return Err(DecodeError::EofMidFrame { got: got + 4, want: len + 4 });
                }
                Chunk::WouldBlock => {
                    // Keep only what is new; the buffer grows with it.
                    if self.partial.len() < got {
                        self.partial.reserve_exact(got - self.partial.len());
                        self.partial.resize(got, 0);
                    }
                    self.partial[kept..got].copy_from_slice(&buf[kept..got]);
                    self.got = got;
                    return Ok(Decoded::NotYet);
                }
            }
        }
        self.end_frame();
        Ok(Decoded::Message(len))
    }

    /// `lines`: with `out`, consume the next line into it; without, report
    /// its length and leave it buffered.
    fn line_into(&mut self, src: &mut impl ByteSource, mut out: Option<&mut [u8]>) -> Result<Decoded, DecodeError> {
        loop {
            if let Some(i) = self.line[self.start..self.end].iter().position(|&b| b == b'\n') {
                let (from, to) = (self.start, self.start + i);
                if self.discarding {
                    self.discarding = false;
                    self.start = to + 1;
                    continue;
                }
                let len = to - from;
                let Some(buf) = out.as_deref_mut() else {
                    return Ok(Decoded::Message(len));
                };
                if len > buf.len() {
                    return Err(DecodeError::BufferTooSmall { len, cap: buf.len() });
                }
                buf[..len].copy_from_slice(&self.line[from..to]);
                self.start = to + 1;
                return Ok(Decoded::Message(len));
            }
            let pending = self.end - self.start;
            if self.discarding {
                self.start = 0;
                self.end = 0;
            } else if pending > self.max {
                // The line is already longer than any message may be: drop
                // what arrived and the rest of the line.
                self.discarding = true;
                self.start = 0;
                self.end = 0;
                return Err(DecodeError::TooLarge { len: pending as u64, max: self.max });
            } else if self.start > 0 {
                self.line.copy_within(self.start..self.end, 0);
                self.start = 0;
                self.end = pending;
            }
            // Room for one more chunk, never more than max + 1 bytes kept.
            let cap = (self.end + LINE_CHUNK).min(self.max + 1).max(self.end + 1);
            if self.line.len() < cap {
                // Exact: amortised doubling would overshoot the maximum.
                self.line.reserve_exact(cap - self.line.len());
                self.line.resize(cap, 0);
            }
            match src.read(&mut self.line[self.end..cap])? {
                Chunk::Data(n) => self.end += n,
                Chunk::Eof => {
                    if self.discarding || self.end == self.start {
                        self.discarding = false;
                        return Ok(Decoded::Eof);
                    }
                    // A last line without '\n' is still a message.
                    let len = self.end - self.start;
                    let Some(buf) = out.as_deref_mut() else {
                        return Ok(Decoded::Message(len));
                    };
                    if len > buf.len() {
                        return Err(DecodeError::BufferTooSmall { len, cap: buf.len() });
                    }
                    buf[..len].copy_from_slice(&self.line[self.start..self.end]);
                    self.start = 0;
                    self.end = 0;
                    return Ok(Decoded::Message(len));
                }
                Chunk::WouldBlock => return Ok(Decoded::NotYet),
            }
        }
    }
}

/// The `len32` header for a payload of `len` bytes.
pub fn len32_header(len: usize) -> Option<[u8; 4]> {
    u32::try_from(len).ok().map(u32::to_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(&len32_header(m.len()).unwrap());
            out.extend_from_slice(m);
        }
        out
    }

    fn decode_all(framing: Framing, max: usize, data: &[u8], step: usize) -> Vec<Result<Vec<u8>, DecodeError>> {
        let mut d = Decoder::new(framing, max);
        let mut src = SliceSource::new(data, step);
        let mut out = Vec::new();
        let mut buf = vec![0u8; max];
        loop {
            match d.decode_into(&mut src, &mut buf) {
                Ok(Decoded::Message(n)) => out.push(Ok(buf[..n].to_vec())),
                Ok(Decoded::Eof) => return out,
                Ok(Decoded::NotYet) => unreachable!("slice sources never block"),
                Err(e @ DecodeError::EofMidFrame { .. }) => {
                    out.push(Err(e));
                    return out;
                }
                Err(e) => out.push(Err(e)),
            }
        }
    }

    #[test]
    fn len32_every_split() {
        let data = frames(&[b"", b"hello", &[7u8; 300]]);
        for step in 1..10 {
            let got = decode_all(Framing::Len32, 1024, &data, step);
            assert_eq!(got, vec![Ok(vec![]), Ok(b"hello".to_vec()), Ok(vec![7u8; 300])], "step {step}");
        }
    }

    #[test]
    fn len32_oversized_frame_is_skipped_and_stream_stays_in_step() {
        let data = frames(&[b"ok", &[1u8; 100], b"after"]);
        let got = decode_all(Framing::Len32, 50, &data, 7);
        assert_eq!(
            got,
            vec![Ok(b"ok".to_vec()), Err(DecodeError::TooLarge { len: 100, max: 50 }), Ok(b"after".to_vec())]
        );
    }

    #[test]
    fn len32_eof_mid_frame() {
        let mut data = frames(&[b"abcdef"]);
        data.truncate(7);
        assert_eq!(decode_all(Framing::Len32, 64, &data, 3), vec![Err(DecodeError::EofMidFrame { got: 7, want: 10 })]);
        assert_eq!(decode_all(Framing::Len32, 64, &[1, 0], 3), vec![Err(DecodeError::EofMidFrame { got: 2, want: 4 })]);
    }

    #[test]
    fn small_buffer_loses_nothing() {
        let data = frames(&[b"0123456789"]);
        let mut d = Decoder::new(Framing::Len32, 64);
        let mut src = SliceSource::new(&data, 64);
        let mut small = [0u8; 4];
        assert_eq!(d.decode_into(&mut src, &mut small), Err(DecodeError::BufferTooSmall { len: 10, cap: 4 }));
        let mut big = [0u8; 16];
        assert_eq!(d.decode_into(&mut src, &mut big), Ok(Decoded::Message(10)));
        assert_eq!(&big[..10], b"0123456789");
    }

    /// A source that blocks after every chunk, as a socket with a timeout.
    struct Stuttering<'a> {
        inner: SliceSource<'a>,
        block_next: bool,
    }

    impl ByteSource for Stuttering<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<Chunk, Errno> {
            self.block_next = !self.block_next;
            if self.block_next {
                return Ok(Chunk::WouldBlock);
            }
            self.inner.read(buf)
        }
    }

    #[test]
    fn not_yet_resumes_in_place() {
        for framing in [Framing::Len32, Framing::Lines] {
            let data = match framing {
                Framing::Len32 => frames(&[b"first message", b"second"]),
                Framing::Lines => b"first message\nsecond\n".to_vec(),
            };
            let mut src = Stuttering { inner: SliceSource::new(&data, 3), block_next: false };
            let mut d = Decoder::new(framing, 64);
            let mut got = Vec::new();
            for _ in 0..200 {
                // A fresh buffer each call: the decoder must not rely on it.
                let mut buf = [0xAAu8; 64];
                match d.decode_into(&mut src, &mut buf).unwrap() {
                    Decoded::Message(n) => got.push(buf[..n].to_vec()),
                    Decoded::Eof => break,
                    Decoded::NotYet => {}
                }
            }
            assert_eq!(got, vec![b"first message".to_vec(), b"second".to_vec()], "{framing}");
        }
    }

    #[test]
    fn lines_with_overlong_line_and_unterminated_tail() {
        let data = b"a\nthis line is far too long\nb\nlast";
        for step in [1, 2, 5, 100] {
            let got = decode_all(Framing::Lines, 8, data, step);
            assert_eq!(got[0], Ok(b"a".to_vec()), "step {step}");
            assert!(matches!(got[1], Err(DecodeError::TooLarge { max: 8, .. })), "step {step}: {got:?}");
            assert_eq!(got[2..], [Ok(b"b".to_vec()), Ok(b"last".to_vec())], "step {step}");
        }
    }

    #[test]
    fn next_len_then_decode() {
        for (framing, data) in [(Framing::Len32, frames(&[b"xyz"])), (Framing::Lines, b"xyz\n".to_vec())] {
            let mut d = Decoder::new(framing, 16);
            let mut src = SliceSource::new(&data, 1);
            assert_eq!(d.next_len(&mut src), Ok(Decoded::Message(3)));
            let mut buf = [0u8; 3];
            assert_eq!(d.decode_into(&mut src, &mut buf), Ok(Decoded::Message(3)));
            assert_eq!(&buf, b"xyz");
            assert_eq!(d.decode_into(&mut src, &mut buf), Ok(Decoded::Eof));
        }
    }
}
