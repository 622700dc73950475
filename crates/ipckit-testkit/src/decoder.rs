//! The invariants of `ipckit::framing::Decoder`, checked on one input.
//!
//! Shared by the `frame_decoder` fuzz target (`fuzz/`) and by the
//! deterministic smoke test `crates/ipckit-cli/tests/decoder_smoke.rs`, so
//! that a stable `cargo test` compiles and runs it.
//!
//! The first bytes of the input choose the configuration, the rest is the
//! byte stream a peer wrote:
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | bit 0: framing (`len32`/`lines`); bit 1: ask `next_len` first; bits 2-3: `max` is small / `u32::MAX` / `usize::MAX` / zero; bits 4-7: how often the source blocks |
//! | 1-2 | small `max` (u16, little-endian) |
//! | 3 | read step (1 to 256 bytes a read) |
//! | 4 | buffer size (a fraction of the data length) |
//!
//! Checked, for every configuration:
//! - no panic, and the decoder finishes: `Eof` within a bounded number of
//!   calls;
//! - a message is never longer than the maximum, the caller's buffer, or
//!   the data;
//! - `BufferTooSmall` loses nothing: the same message arrives with a
//!   larger buffer; `next_len` announces exactly what `decode_into` gives;
//! - `NotYet` only when the source blocked;
//! - `decode_owned` (a buffer of the message's own) gives the same outcome,
//!   and holds at most twice the bytes received plus one growth chunk: a
//!   frame announcing more than arrives never costs what it announces;
//! - the outcome (messages and errors, in order) is the same for every
//!   read step, buffer size and blocking pattern, and equals a reference
//!   decoder written from the documented format.

use ipckit::Errno;
use ipckit::Framing;
use ipckit::framing::{
    ByteSource, Chunk, DecodeError, Decoded, DecodedOwned, Decoder, GROW_CHUNK, LEN32_MAX, SliceSource,
};

/// What one configuration of the decoder made of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message.
    Msg(Vec<u8>),
    /// A message over the maximum was skipped (`len` as announced for
    /// `len32`; for `lines` how much had arrived, which depends on reads).
    TooLarge(Option<u64>),
    /// The stream ended inside a frame.
    EofMidFrame { got: usize, want: usize },
    /// A message longer than the whole input was announced: it cannot be
    /// complete, and no caller should allocate for it. The run stops.
    Unfinishable(usize),
}

/// One way to read the stream.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub framing: Framing,
    pub max: usize,
    pub step: usize,
    pub buf: usize,
    pub next_len_first: bool,
    /// Block before every `block_every`-th read (0: never).
    pub block_every: usize,
}

/// A source that hands out at most `step` bytes a read and sometimes
/// reports `WouldBlock` first, as a socket with a timeout does (but not
/// after end-of-stream: a closed socket reads end-of-stream at once).
struct Stutter<'a> {
    inner: SliceSource<'a>,
    block_every: usize,
    reads: usize,
    blocked: bool,
    eof: bool,
    len: usize,
}

impl<'a> Stutter<'a> {
    fn new(data: &'a [u8], cfg: Config) -> Stutter<'a> {
        Stutter {
            inner: SliceSource::new(data, cfg.step),
            block_every: cfg.block_every,
            reads: 0,
            blocked: false,
            eof: false,
            len: 0,
        }
    }
}

impl ByteSource for Stutter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<Chunk, Errno> {
        assert!(!buf.is_empty(), "the decoder never reads into an empty buffer");
        self.reads += 1;
        // `checked_rem`: 0 means never (and `is_multiple_of` is newer than
        // the workspace's minimum Rust).
        let due = self.reads.checked_rem(self.block_every) == Some(0);
        if due && !self.blocked && !self.eof {
            self.blocked = true;
            return Ok(Chunk::WouldBlock);
        }
        self.blocked = false;
        let r = self.inner.read(buf)?;
        match r {
            Chunk::Data(n) => {
                assert!(n <= buf.len() && n > 0);
                self.len += n;
            }
            Chunk::Eof => self.eof = true,
            Chunk::WouldBlock => unreachable!("a slice never blocks"),
        }
        Ok(r)
    }
}

/// Decodes `data` with `cfg`, checking the per-call invariants; returns the
/// outcome.
pub fn decode(data: &[u8], cfg: Config) -> Vec<Event> {
    let mut d = Decoder::new(cfg.framing, cfg.max);
    assert_eq!(d.max(), cfg.max.min(LEN32_MAX), "the maximum is clamped to what len32 can announce");
    let mut src = Stutter::new(data, cfg);
    let mut events = Vec::new();
    // Every call consumes input, reports an error once, or blocks once per
    // read: this bound is generous, and a decoder that loops fails it.
    let limit = 8 * (data.len() + 2) + 64;
    let mut calls = 0;
    // A capacity from the configuration, never past the data: a message
    // cannot be longer than everything the peer wrote.
    let cap = cfg.buf.min(data.len());
    let mut announced: Option<usize> = None;
    loop {
        calls += 1;
        assert!(calls <= limit, "decoder did not finish within {limit} calls on {} bytes", data.len());
        let reads_before = src.reads;
        if cfg.next_len_first && announced.is_none() {
            match d.next_len(&mut src) {
                Ok(Decoded::Message(n)) => {
                    assert!(n <= d.max(), "next_len announced {n} over the maximum {}", d.max());
                    if n > data.len() {
                        events.push(Event::Unfinishable(n));
                        return events;
                    }
                    announced = Some(n);
                    // Asking again changes nothing.
                    assert_eq!(d.next_len(&mut src), Ok(Decoded::Message(n)), "next_len is idempotent");
                    continue;
                }
                Ok(Decoded::Eof) => return finish_eof(&mut d, &mut src, events),
                Ok(Decoded::NotYet) => {
                    assert!(src.reads > reads_before && src.blocked, "NotYet without a blocking read");
                    continue;
                }
                Err(e) => {
                    record_error(&mut events, e, &d, cfg.framing);
                    continue;
                }
            }
        }
        // A fresh buffer each call, full of junk: the decoder must not keep
        // anything in the caller's buffer between calls.
        let size = announced.unwrap_or(cap);
        let mut buf = vec![0xA5u8; size];
        match d.decode_into(&mut src, &mut buf) {
            Ok(Decoded::Message(n)) => {
                assert!(n <= buf.len(), "message of {n} bytes in a {}-byte buffer", buf.len());
                assert!(n <= d.max(), "message of {n} bytes over the maximum {}", d.max());
                assert!(n <= src.len, "message of {n} bytes, but only {} bytes were read", src.len);
                if let Some(a) = announced.take() {
                    assert_eq!(n, a, "decode_into gave another length than next_len announced");
                }
                events.push(Event::Msg(buf[..n].to_vec()));
            }
            Ok(Decoded::Eof) => {
                assert!(announced.is_none(), "Eof after next_len announced a message");
                return finish_eof(&mut d, &mut src, events);
            }
            Ok(Decoded::NotYet) => {
                assert!(src.reads > reads_before && src.blocked, "NotYet without a blocking read");
            }
            Err(DecodeError::BufferTooSmall { len, cap: c }) => {
                assert_eq!(c, buf.len());
                assert!(len > c, "BufferTooSmall for {len} bytes in a {c}-byte buffer");
                assert!(len <= d.max(), "BufferTooSmall for {len} bytes, over the maximum {}", d.max());
                assert!(announced.is_none(), "next_len announced a length that then did not fit");
                if len > data.len() {
                    events.push(Event::Unfinishable(len));
                    return events;
                }
                // Nothing lost: the next call, with room, gets this message.
                announced = Some(len);
            }
            Err(e) => {
                announced = None;
                record_error(&mut events, e, &d, cfg.framing);
            }
        }
    }
}

/// Decodes `data` with `cfg` through `decode_owned`, checking that what the
/// decoder holds grows with the bytes read, not with announced lengths.
pub fn decode_owned(data: &[u8], cfg: Config) -> Vec<Event> {
    let mut d = Decoder::new(cfg.framing, cfg.max);
    let mut src = Stutter::new(data, cfg);
    let mut events = Vec::new();
    let limit = 8 * (data.len() + 2) + 64;
    // The lines buffer reads a chunk at a time (64 KiB) up to max + 1.
    let slack = 2 * GROW_CHUNK + 64 * 1024 + 1;
    for _ in 0..limit {
        let reads_before = src.reads;
        let r = d.decode_owned(&mut src);
        assert!(
            d.buffered() <= 2 * src.len + slack,
            "the decoder holds {} bytes after {} bytes arrived",
            d.buffered(),
            src.len
        );
        match r {
            Ok(DecodedOwned::Message(m)) => {
                assert!(m.len() <= d.max(), "message of {} bytes over the maximum {}", m.len(), d.max());
                assert!(m.len() <= src.len, "message of {} bytes, but only {} bytes were read", m.len(), src.len);
                events.push(Event::Msg(m));
            }
            Ok(DecodedOwned::Eof) => return events,
            Ok(DecodedOwned::NotYet) => {
                assert!(src.reads > reads_before && src.blocked, "NotYet without a blocking read");
            }
            Err(DecodeError::BufferTooSmall { .. }) => panic!("decode_owned has no caller's buffer to be too small"),
            Err(e) => record_error(&mut events, e, &d, cfg.framing),
        }
    }
    panic!("decode_owned did not finish within {limit} calls on {} bytes", data.len());
}

fn record_error(events: &mut Vec<Event>, e: DecodeError, d: &Decoder, framing: Framing) {
    match e {
        DecodeError::TooLarge { len, max } => {
            assert_eq!(max, d.max());
            assert!(len > max as u64, "TooLarge for {len} bytes, within the maximum {max}");
            events.push(Event::TooLarge((framing == Framing::Len32).then_some(len)));
        }
        DecodeError::EofMidFrame { got, want } => {
            assert!(got < want, "EofMidFrame with {got} of {want} bytes");
            events.push(Event::EofMidFrame { got, want });
        }
        DecodeError::BufferTooSmall { .. } => unreachable!("handled by the caller"),
        DecodeError::Os(e) => panic!("the slice source never fails, got {e:?}"),
    }
}

/// After `Eof`, the decoder stays at end-of-stream.
fn finish_eof(d: &mut Decoder, src: &mut Stutter<'_>, events: Vec<Event>) -> Vec<Event> {
    for _ in 0..3 {
        let mut buf = [0u8; 8];
        match d.decode_into(src, &mut buf) {
            Ok(Decoded::Eof) => {}
            Ok(Decoded::NotYet) if src.blocked => {}
            other => panic!("after Eof the decoder gave {other:?}"),
        }
    }
    assert!(!d.in_frame(), "nothing pending after Eof");
    events
}

/// The documented formats, decoded the obvious way.
pub fn reference(data: &[u8], framing: Framing, max: usize) -> Vec<Event> {
    let max = max.min(LEN32_MAX);
    let mut events = Vec::new();
    match framing {
        Framing::Len32 => {
            let mut rest = data;
            loop {
                if rest.is_empty() {
                    return events;
                }
                if rest.len() < 4 {
                    events.push(Event::EofMidFrame { got: rest.len(), want: 4 });
                    return events;
                }
                let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                rest = &rest[4..];
                if len > max {
                    events.push(Event::TooLarge(Some(len as u64)));
                    rest = &rest[len.min(rest.len())..];
                } else if len > data.len() {
                    events.push(Event::Unfinishable(len));
                    return events;
                } else if rest.len() < len {
                    events.push(Event::EofMidFrame { got: rest.len() + 4, want: len + 4 });
                    return events;
                } else {
                    events.push(Event::Msg(rest[..len].to_vec()));
                    rest = &rest[len..];
                }
            }
        }
        Framing::Lines => {
            let body = data.strip_suffix(b"\n").unwrap_or(data);
            if data.is_empty() {
                return events;
            }
            for line in body.split(|&b| b == b'\n') {
                if line.len() > max {
                    events.push(Event::TooLarge(None));
                } else {
                    events.push(Event::Msg(line.to_vec()));
                }
            }
            events
        }
    }
}

/// The configuration the first bytes of a fuzz input choose, and the rest.
pub fn split_input(input: &[u8]) -> Option<(Config, &[u8])> {
    if input.len() < 5 {
        return None;
    }
    let flags = input[0];
    let framing = if flags & 1 == 0 { Framing::Len32 } else { Framing::Lines };
    let small = u16::from_le_bytes([input[1], input[2]]) as usize;
    let max = match (flags >> 2) & 3 {
        0 => small,
        1 => LEN32_MAX,
        2 => usize::MAX,
        _ => 0,
    };
    let data = &input[5..];
    let step = input[3] as usize + 1;
    let buf = if input[4] == 255 { usize::MAX } else { data.len() * input[4] as usize / 254 };
    let cfg = Config { framing, max, step, buf, next_len_first: flags & 2 != 0, block_every: (flags >> 4) as usize };
    Some((cfg, data))
}

/// Normalises what may legitimately differ between reads: nothing, except
/// that a `lines` decoder reports how much of an overlong line had arrived.
fn normalise(mut events: Vec<Event>, framing: Framing) -> Vec<Event> {
    if framing == Framing::Lines {
        for e in &mut events {
            if let Event::TooLarge(len) = e {
                *len = None;
            }
        }
    }
    events
}

/// Checks every invariant on one fuzz input.
pub fn check(input: &[u8]) {
    let Some((cfg, data)) = split_input(input) else {
        return;
    };
    let got = normalise(decode(data, cfg), cfg.framing);
    // The reference reads the whole stream at once with a buffer of the
    // whole data: reads, buffers and blocking must not change the outcome.
    let plain = Config { step: data.len().max(1), buf: usize::MAX, next_len_first: false, block_every: 0, ..cfg };
    let base = normalise(decode(data, plain), cfg.framing);
    assert_eq!(got, base, "outcome depends on how the stream is read ({cfg:?})");
    let owned = normalise(decode_owned(data, cfg), cfg.framing);
    if !base.iter().any(|e| matches!(e, Event::Unfinishable(_))) {
        assert_eq!(owned, base, "decode_owned disagrees with decode_into ({cfg:?})");
    }
    assert_eq!(base, reference(data, cfg.framing, cfg.max), "decoder disagrees with the documented format ({cfg:?})");
}
