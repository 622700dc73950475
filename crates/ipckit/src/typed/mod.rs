//! Typed messages: values of a serde type on any endpoint, plain-old-data
//! values in place on `shm:`, and typed request-response.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use ipckit::typed;
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Job { id: u64, path: String }
//!
//! let ep = "unix:@jobs".parse()?;
//! let mut rx = typed::Receiver::<Job>::bind(&ep)?;
//! let mut tx = typed::Sender::<Job>::connect(&ep)?;
//! tx.send(&Job { id: 1, path: "/tmp/a".into() })?;
//! assert_eq!(rx.recv()?.id, 1);
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # The wire
//!
//! One message per value, and each message is the postcard 1.x encoding of
//! the value, nothing else (no type tag, no length: the transport keeps
//! the message's bounds). A program in another language reads and writes
//! them with any postcard implementation, or by the postcard wire format's
//! specification (varints, zigzag for signed integers, length-prefixed
//! sequences and strings).
//!
//! # Bad input
//!
//! A message that is not a valid encoding of the type, is truncated, or
//! has bytes left over after the value, is a [`Decode`](ErrorKind::Decode)
//! error naming the endpoint and the type; the receiver goes on with the
//! next message. Decoding is bounded (see [`Limits`]): in bytes by the
//! receiver's maximum message size, in elements and in nesting by the
//! limits, so that a `Vec<()>` announcing 2^60 elements is refused after
//! the limit, not looped over, and nothing is allocated by a length the
//! peer wrote.
//!
//! # Plain old data in place
//!
//! [`PodSender`] and [`PodReceiver`] carry `zerocopy` types without
//! serialization: on `shm:` the sender writes the value into a pool loan
//! and only a reference travels; elsewhere its bytes are copied. The
//! message is exactly the value's bytes (native byte order and layout:
//! for processes of the same build on one machine).

mod bounded;
mod rpc;

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use self::rpc::{Client, Server};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::Meta;
use crate::options::Options;
use crate::{Receiver as RawReceiver, Sample, Sender as RawSender};

/// The bounds of one decode beyond its bytes.
///
/// ```
/// use ipckit::typed::{Limits, decode};
/// // postcard: a Vec<()> whose length prefix says 2^60 (a varint).
/// let hostile = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
/// let e = decode::<Vec<()>>(&hostile, &Limits::default(), "unix:@demo").unwrap_err();
/// assert_eq!(e.kind(), ipckit::ErrorKind::Decode);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    elements: Option<u64>,
    depth: u32,
}

/// The default nesting limit: values nested more than this deep (a
/// recursive type, `Option<Box<…>>` chains) do not decode.
pub const DEFAULT_MAX_DEPTH: u32 = 128;

/// Elements allowed beyond the payload's length by default (see
/// [`Limits::max_elements`]).
pub const DEFAULT_EXTRA_ELEMENTS: u64 = 4096;

impl Default for Limits {
    fn default() -> Limits {
        Limits { elements: None, depth: DEFAULT_MAX_DEPTH }
    }
}

impl Limits {
    /// At most `n` elements of sequences and maps in one value, counted
    /// over all of them. The default is the payload's length in bytes plus
    /// [`DEFAULT_EXTRA_ELEMENTS`]: every element but a zero-sized one takes
    /// at least a byte, so honest payloads stay within it, and a sequence
    /// of zero-sized values longer than that is refused.
    pub fn max_elements(mut self, n: u64) -> Limits {
        self.elements = Some(n);
        self
    }

    /// At most `depth` levels of nesting (default [`DEFAULT_MAX_DEPTH`]).
    pub fn max_depth(mut self, depth: u32) -> Limits {
        self.depth = depth;
        self
    }

    fn elements_for(&self, len: usize) -> u64 {
        self.elements.unwrap_or((len as u64).saturating_add(DEFAULT_EXTRA_ELEMENTS))
    }
}

/// Encodes `value` as its message (postcard 1.x), appended to `out`.
/// `Invalid` if serde refuses the value (a map of unknown length, a
/// serializer error of the type's own).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>, endpoint: &str) -> Result<()> {
    let buf = std::mem::take(out);
    match postcard::to_extend(value, buf) {
        Ok(buf) => {
            *out = buf;
            Ok(())
        }
        Err(e) => Err(Error::new(
            ErrorKind::Invalid,
            "encode",
            endpoint,
            format!("a {} does not encode: {e}", std::any::type_name::<T>()),
        )),
    }
}

/// Encodes `value` as its message (postcard 1.x).
pub fn encode<T: Serialize + ?Sized>(value: &T, endpoint: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, &mut out, endpoint)?;
    Ok(out)
}

/// Decodes one message as a `T`, within `limits`. Anything but exactly one
/// valid encoding of a `T` is `Decode`, naming `endpoint` (the object the
/// message came from) and the type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limits: &Limits, endpoint: &str) -> Result<T> {
    let fail = |why: String| {
        Error::new(
            ErrorKind::Decode,
            "decode",
            endpoint,
            format!("the message of {} bytes is not a {}: {why}", bytes.len(), std::any::type_name::<T>()),
        )
    };
    let budget = bounded::Budget::new(limits.elements_for(bytes.len()), limits.depth);
    let mut de = postcard::Deserializer::from_bytes(bytes);
    let value = T::deserialize(bounded::De { inner: &mut de, budget: &budget })
        .map_err(|e| fail(budget.why().unwrap_or_else(|| e.to_string())))?;
    let rest = de.finalize().map_err(|e| fail(e.to_string()))?;
    if !rest.is_empty() {
        return Err(fail(format!("{} bytes are left over after the value", rest.len())));
    }
    Ok(value)
}

/// Sends values of `T`, one message each, on any endpoint.
#[derive(Debug)]
pub struct Sender<T> {
    inner: RawSender,
    buf: Vec<u8>,
    _type: PhantomData<fn(&T)>,
}

impl<T: Serialize> Sender<T> {
    /// Connects once with default [`Options`] (as [`crate::Sender::connect`]).
    pub fn connect(ep: &Endpoint) -> Result<Sender<T>> {
        RawSender::connect(ep).map(Sender::new)
    }

    /// Connects once.
    pub fn connect_with(ep: &Endpoint, opts: &Options) -> Result<Sender<T>> {
        RawSender::connect_with(ep, opts).map(Sender::new)
    }

    /// Connects, retrying while the receiver is not there yet, for at most
    /// `timeout`.
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<Sender<T>> {
        RawSender::connect_timeout(ep, opts, timeout).map(Sender::new)
    }

    /// Sends typed values on an untyped sender.
    pub fn new(inner: RawSender) -> Sender<T> {
        Sender { inner, buf: Vec::new(), _type: PhantomData }
    }

    /// Encodes `value` into the reused buffer.
    fn encode(&mut self, value: &T) -> Result<()> {
        self.buf.clear();
        encode_into(value, &mut self.buf, self.inner.name())
    }

    /// Sends `value`, waiting for room.
    pub fn send(&mut self, value: &T) -> Result<()> {
        self.encode(value)?;
        self.inner.send(&self.buf)
    }

    /// Sends `value` if there is room now (else `Full`).
    pub fn try_send(&mut self, value: &T) -> Result<()> {
        self.encode(value)?;
        self.inner.try_send(&self.buf)
    }

    /// Sends `value`, waiting at most `timeout` for room (else `TimedOut`).
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<()> {
        self.encode(value)?;
        self.inner.send_timeout(&self.buf, timeout)
    }

    /// The endpoint, as errors name it.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The untyped sender.
    pub fn into_inner(self) -> RawSender {
        self.inner
    }
}

/// Receives values of `T`, one message each, on any endpoint.
#[derive(Debug)]
pub struct Receiver<T> {
    inner: RawReceiver,
    limits: Limits,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Receiver<T> {
    /// Binds with default [`Options`] (as [`crate::Receiver::bind`]).
    pub fn bind(ep: &Endpoint) -> Result<Receiver<T>> {
        RawReceiver::bind(ep).map(Receiver::new)
    }

    /// Binds.
    pub fn bind_with(ep: &Endpoint, opts: &Options) -> Result<Receiver<T>> {
        RawReceiver::bind_with(ep, opts).map(Receiver::new)
    }

    /// Receives typed values on an untyped receiver.
    pub fn new(inner: RawReceiver) -> Receiver<T> {
        Receiver { inner, limits: Limits::default(), _type: PhantomData }
    }

    /// Decodes within `limits` from now on.
    pub fn with_limits(mut self, limits: Limits) -> Receiver<T> {
        self.limits = limits;
        self
    }

    fn decoded(&self, data: &[u8]) -> Result<T> {
        decode(data, &self.limits, self.inner.name())
    }

    /// The next value. One that does not decode is `Decode` (and is gone:
    /// the next call receives the message after it).
    pub fn recv(&mut self) -> Result<T> {
        let m = self.inner.recv()?;
        self.decoded(&m.data)
    }

    /// The next value if one is there (else `Empty`).
    pub fn try_recv(&mut self) -> Result<T> {
        let m = self.inner.try_recv()?;
        self.decoded(&m.data)
    }

    /// The next value within `timeout` (else `TimedOut`).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        let m = self.inner.recv_timeout(timeout)?;
        self.decoded(&m.data)
    }

    /// The next value and what came with it.
    pub fn recv_with_meta(&mut self) -> Result<(T, Meta)> {
        let m = self.inner.recv()?;
        Ok((self.decoded(&m.data)?, m.meta))
    }

    /// The endpoint, as errors name it.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The untyped receiver.
    pub fn into_inner(self) -> RawReceiver {
        self.inner
    }
}

/// Sends plain-old-data values without serialization: written in place in
/// a `shm:` sender's pool (only a reference travels), copied elsewhere.
#[derive(Debug)]
pub struct PodSender<T> {
    inner: RawSender,
    _type: PhantomData<fn(&T)>,
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> PodSender<T> {
    /// Connects once with default [`Options`].
    pub fn connect(ep: &Endpoint) -> Result<PodSender<T>> {
        RawSender::connect(ep).map(PodSender::new)
    }

    /// Connects, retrying while the receiver is not there yet, for at most
    /// `timeout`.
    pub fn connect_timeout(ep: &Endpoint, opts: &Options, timeout: Duration) -> Result<PodSender<T>> {
        RawSender::connect_timeout(ep, opts, timeout).map(PodSender::new)
    }

    /// Sends values on an untyped sender.
    pub fn new(inner: RawSender) -> PodSender<T> {
        PodSender { inner, _type: PhantomData }
    }

    /// Sends a copy of `value`, waiting for room.
    pub fn send(&mut self, value: &T) -> Result<()> {
        let mut loan = self.inner.loan_typed::<T>()?;
        loan.as_mut_bytes().copy_from_slice(value.as_bytes());
        loan.send().map_err(Error::from)
    }

    /// Sends a copy of `value` if there is room now (else `Full`).
    pub fn try_send(&mut self, value: &T) -> Result<()> {
        let mut loan = self.inner.try_loan_typed::<T>()?;
        loan.as_mut_bytes().copy_from_slice(value.as_bytes());
        loan.try_send().map_err(Error::from)
    }

    /// Lends a `T` to write in place; sent by [`TypedLoan::send`](crate::TypedLoan::send).
    pub fn loan(&mut self) -> Result<crate::TypedLoan<'_, T>> {
        self.inner.loan_typed::<T>()
    }

    /// The untyped sender.
    pub fn into_inner(self) -> RawSender {
        self.inner
    }
}

/// Receives plain-old-data values: copied out of the sender's pool (a
/// hostile sender cannot change a value once it is read), or read in
/// place through [`recv_sample`](Self::recv_sample).
#[derive(Debug)]
pub struct PodReceiver<T> {
    inner: RawReceiver,
    _type: PhantomData<fn() -> T>,
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> PodReceiver<T> {
    /// Binds with default [`Options`].
    pub fn bind(ep: &Endpoint) -> Result<PodReceiver<T>> {
        RawReceiver::bind(ep).map(PodReceiver::new)
    }

    /// Receives values on an untyped receiver.
    pub fn new(inner: RawReceiver) -> PodReceiver<T> {
        PodReceiver { inner, _type: PhantomData }
    }

    fn value(&self, sample: &Sample) -> Result<T> {
        let need = std::mem::size_of::<T>();
        if sample.len() != need {
            return Err(Error::new(
                ErrorKind::Decode,
                "decode",
                self.inner.name(),
                format!(
                    "the message of {} bytes is not a {} of {need} bytes",
                    sample.len(),
                    std::any::type_name::<T>()
                ),
            ));
        }
        sample.read::<T>()
    }

    /// The next value. A message of another length is `Decode`.
    pub fn recv(&mut self) -> Result<T> {
        let s = self.inner.recv_sample()?;
        self.value(&s)
    }

    /// The next value if one is there (else `Empty`).
    pub fn try_recv(&mut self) -> Result<T> {
        let s = self.inner.try_recv_sample()?;
        self.value(&s)
    }

    /// The next value within `timeout` (else `TimedOut`).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        let s = self.inner.recv_sample_timeout(timeout)?;
        self.value(&s)
    }

    /// The next message in place (see [`Sample`]), whatever its length.
    pub fn recv_sample(&mut self) -> Result<Sample> {
        self.inner.recv_sample()
    }

    /// The untyped receiver.
    pub fn into_inner(self) -> RawReceiver {
        self.inner
    }
}
