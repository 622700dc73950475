//! Zero-copy sending and receiving: a [`Loan`] is a message written in
//! place in the sender's pool, a [`Sample`] the message as the receiver
//! gets it, in place.
//!
//! The API reads as iceoryx2's: loan, write, send.
//!
//! ```no_run
//! use ipckit::{Endpoint, Receiver, Sender};
//! let ep: Endpoint = "shm:frames".parse()?;
//! let mut rx = Receiver::bind(&ep)?;
//! let mut tx = Sender::connect(&ep)?;
//! let mut loan = tx.loan(1 << 20)?;
//! loan.fill(7);
//! loan.send()?;
//! let sample = rx.recv_sample()?;
//! let mut first = [0u8; 16];
//! sample.read_at(0, &mut first)?;
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! On every other transport a loan is a buffer of the sending process,
//! sent by copy, and a sample holds a message received by copy: the same
//! code works everywhere, and is zero-copy where the transport is.

use std::io::IoSlice;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::pool::PeerPool;
use crate::channel::Sender;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::wait::Wait;

/// A message received in place, or by copy where the transport copies.
///
/// A message in a `shm:` sender's pool stays there, mapped read-only,
/// until the sample is dropped; then its chunks go back to the sender. The
/// sending process can still write that memory (an honest sender never
/// does once it published), so the safe reads copy, and the borrowed view
/// is `unsafe`.
#[derive(Debug)]
pub struct Sample {
    data: Data,
    meta: Meta,
    name: Arc<str>,
}

#[derive(Debug)]
enum Data {
    Owned(Vec<u8>),
    Pool(Pooled),
    /// A sealed memfd message (`unix:`): in place, and nobody can change it.
    Sealed(crate::shm::Sealed),
}

/// A message in a sender's pool, held by the receiver.
#[derive(Debug)]
pub(crate) struct Pooled {
    pool: Arc<PeerPool>,
    first: usize,
    count: usize,
    offset: usize,
    len: usize,
    /// The receiver's maximum message: the most a copy out allocates.
    max: usize,
}

impl Pooled {
    /// A message held in `pool`: `len` bytes at `offset`, chunks
    /// `first..first + count` marked held by the caller.
    pub(crate) fn new(
        pool: Arc<PeerPool>,
        (first, count): (usize, usize),
        (offset, len): (usize, usize),
        max: usize,
    ) -> Pooled {
        Pooled { pool, first, count, offset, len, max }
    }

    /// The message copied out: bounded by the receiver's maximum (the
    /// sender chose the length), and by what can be allocated.
    fn copy_out(&self, name: &str) -> Result<Vec<u8>> {
        let too_large = |what: String| {
            Error::new(
                ErrorKind::TooLarge,
                "copy sample",
                name,
                format!("the message of {} bytes is over {what}; read it in parts with read_at", self.len),
            )
        };
        if self.len > self.max {
            return Err(too_large(format!("the maximum of {} bytes (Options::max_message)", self.max)));
        }
        let mut out = Vec::new();
        out.try_reserve_exact(self.len).map_err(|_| too_large("what this process can allocate".into()))?;
        out.resize(self.len, 0);
        self.pool.view().read(self.offset, &mut out);
        Ok(out)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(self.first, self.count);
    }
}

impl Sample {
    /// A message received by copy.
    pub(crate) fn owned(message: Message, name: &str) -> Sample {
        let Message { data, mut meta } = message;
        let data = match meta.sealed.take() {
            Some(sealed) => Data::Sealed(sealed),
            None => Data::Owned(data),
        };
        Sample { data, meta, name: name.into() }
    }

    /// A message held in a sender's pool.
    pub(crate) fn pooled(pooled: Pooled, meta: Meta, name: Arc<str>) -> Sample {
        Sample { data: Data::Pool(pooled), meta, name }
    }

    /// The message's length.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::Owned(v) => v.len(),
            Data::Pool(p) => p.len,
            Data::Sealed(s) => s.len(),
        }
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What came with the message (the sender's credentials on `shm:`).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Whether the message is in shared memory, in place (a `shm:`
    /// sender's pool, or a sealed memfd), rather than a copy in this
    /// process.
    pub fn is_in_place(&self) -> bool {
        matches!(self.data, Data::Pool(_) | Data::Sealed(_))
    }

    /// The message's bytes where nobody can change them: a copy in this
    /// process, or a sealed memfd (the kernel forbids every write). `None`
    /// for a message in a `shm:` pool, which its sender could still write
    /// (see [`as_slice`](Self::as_slice)).
    pub fn as_stable(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Owned(v) => Some(v),
            Data::Sealed(s) => Some(s.as_bytes()),
            Data::Pool(_) => None,
        }
    }

    /// Copies `buf.len()` bytes from `offset` of the message into `buf`.
    /// `Invalid` if the range is not inside the message.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let len = self.len();
        if offset > len || buf.len() > len - offset {
            return Err(Error::new(
                ErrorKind::Invalid,
                "read sample",
                &*self.name,
                format!("{} bytes at offset {offset} are not inside the message of {len} bytes", buf.len()),
            ));
        }
        match &self.data {
            Data::Owned(v) => buf.copy_from_slice(&v[offset..offset + buf.len()]),
            Data::Sealed(s) => buf.copy_from_slice(&s.as_bytes()[offset..offset + buf.len()]),
            Data::Pool(p) => p.pool.view().read(p.offset + offset, buf),
        }
        Ok(())
    }

    /// Copies a `T` out of the start of the message. `Corrupt` if the
    /// message is shorter than a `T` (any bytes are a valid `T`: it is
    /// `FromBytes`).
    pub fn read<T: FromBytes + IntoBytes>(&self) -> Result<T> {
        let mut value = T::new_zeroed();
        let need = std::mem::size_of::<T>();
        if self.len() < need {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "read sample",
                &*self.name,
                format!(
                    "the message of {} bytes is shorter than a {} of {need}",
                    self.len(),
                    std::any::type_name::<T>()
                ),
            ));
        }
        self.read_at(0, value.as_mut_bytes())?;
        Ok(value)
    }

    /// The message in place, borrowed.
    ///
    /// # Safety
    ///
    /// For a message in a `shm:` pool the sending process can still write
    /// these bytes. The caller must ensure that it does not while the slice
    /// lives: an honest sender never writes a message it has published, so
    /// this is for senders the caller trusts (a `&[u8]` whose bytes change
    /// under it is undefined behaviour). Use [`read_at`](Self::read_at),
    /// [`to_vec`](Self::to_vec) or [`as_stable`](Self::as_stable) when the
    /// sender is not trusted.
    pub unsafe fn as_slice(&self) -> &[u8] {
        match &self.data {
            Data::Owned(v) => v,
            Data::Sealed(s) => s.as_bytes(),
            // SAFETY: the caller ensures that the sender does not write the
            // bytes meanwhile (see above); the chunks are held until `self`
            // drops.
            Data::Pool(p) => unsafe { p.pool.view().slice(p.offset, p.len) },
        }
    }

    /// The message, copied out. A message in a `shm:` pool is copied only
    /// up to the receiver's [`Options::max_message`](crate::Options)
    /// (else `TooLarge`: its sender chose its length; read it in parts with
    /// [`read_at`](Self::read_at)).
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        match &self.data {
            Data::Owned(v) => Ok(v.clone()),
            Data::Sealed(s) => Ok(s.as_bytes().to_vec()),
            Data::Pool(p) => p.copy_out(&self.name),
        }
    }

    /// The message as a [`Message`]: copied out of a pool (which gets its
    /// chunks back at once; bounded as [`to_vec`](Self::to_vec) is),
    /// moved otherwise (a sealed memfd goes back to `meta.sealed`).
    pub fn into_message(self) -> Result<Message> {
        let Sample { data: held, mut meta, name } = self;
        match held {
            Data::Owned(data) => Ok(Message { data, meta }),
            Data::Sealed(sealed) => {
                meta.sealed = Some(sealed);
                Ok(Message { data: Vec::new(), meta })
            }
            Data::Pool(p) => Ok(Message { data: p.copy_out(&name)?, meta }),
        }
    }
}

/// A heap block of a loan on a transport without a pool: 64-aligned, so
/// that a typed loan of any ordinary alignment fits.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct Block([u8; 64]);

/// The largest alignment a typed loan supports.
const MAX_ALIGN: usize = 64;

#[derive(Debug)]
enum Lent {
    /// Chunks of a `shm:` sender's pool, from `first`.
    Pool { first: usize },
    /// A buffer of this process, sent by copy.
    Heap(Vec<Block>),
    /// Sent (or given back).
    Gone,
}

/// A message being written in place: in a `shm:` sender's pool, which only
/// this process can write (the receiver maps it read-only), so the bytes
/// are a plain `&mut [u8]`. [`send`](Self::send) publishes it (only a
/// reference travels); dropping it unsent gives the chunks back.
///
/// The bytes start as whatever the pool held (an earlier message of this
/// sender), not zeroes.
#[derive(Debug)]
pub struct Loan<'a> {
    sender: &'a mut Sender,
    lent: Lent,
    len: usize,
}

impl<'a> Loan<'a> {
    /// Lends `len` bytes of `sender`'s pool (or a heap buffer), waiting
    /// within `wait` for room.
    pub(crate) fn new(sender: &'a mut Sender, len: usize, wait: Wait) -> Result<Loan<'a>> {
        let name: Arc<str> = sender.name().into();
        let Some(shm) = sender.shm_sender() else {
            let mut blocks = Vec::new();
            if blocks.try_reserve_exact(len.div_ceil(64)).is_err() {
                return Err(too_large(&name, len, "the memory this process can allocate".into()));
            }
            blocks.resize(len.div_ceil(64), Block([0; 64]));
            return Ok(Loan { sender, lent: Lent::Heap(blocks), len });
        };
        match shm.pool_size() {
            Some(size) if len <= size => {}
            Some(size) => return Err(too_large(&name, len, format!("this sender's pool of {size} bytes (?pool=)"))),
            None => return Err(too_large(&name, len, "this sender's pool: it has none (?pool=0)".into())),
        }
        let first = shm.lend(len, wait, "loan")?;
        Ok(Loan { sender, lent: Lent::Pool { first }, len })
    }

    /// The loan's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the loan is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the loan is in a `shm:` pool (else a heap buffer, sent by
    /// copy).
    pub fn is_in_place(&self) -> bool {
        matches!(self.lent, Lent::Pool { .. })
    }

    /// The bytes to write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.lent {
            Lent::Pool { first } => {
                let ptr = self.sender.shm_sender_ref().expect("a pool loan is from a shm: sender").chunk_ptr(*first);
                // SAFETY: `len` bytes from `ptr` are chunks of the sender's
                // pool lent to this loan alone (the pool lends a chunk once,
                // and the receiver reads it only after `send` publishes it);
                // the loan borrows the sender mutably, whose pool mapping
                // outlives it; nobody else can write the pool (sealed
                // against other writable mappings).
                unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), self.len) }
            }
            Lent::Heap(blocks) => &mut blocks.as_mut_bytes()[..self.len],
            Lent::Gone => &mut [],
        }
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        match &self.lent {
            Lent::Pool { first } => {
                let ptr = self.sender.shm_sender_ref().expect("a pool loan is from a shm: sender").chunk_ptr(*first);
                // SAFETY: as in `as_mut_slice`; shared access through `&self`
                // (the mutable borrow of the sender excludes every writer).
                unsafe { std::slice::from_raw_parts(ptr.as_ptr(), self.len) }
            }
            Lent::Heap(blocks) => &blocks.as_bytes()[..self.len],
            Lent::Gone => &[],
        }
    }

    /// Publishes the message, waiting for room in the ring.
    pub fn send(self) -> std::result::Result<(), Unsent<'a>> {
        self.publish(Wait::Forever)
    }

    /// Publishes the message if the ring has room now (else `Full`, and
    /// the loan comes back in the error).
    pub fn try_send(self) -> std::result::Result<(), Unsent<'a>> {
        self.publish(Wait::Never)
    }

    /// Publishes the message, waiting at most `timeout` for room.
    pub fn send_timeout(self, timeout: Duration) -> std::result::Result<(), Unsent<'a>> {
        self.publish(Wait::timeout(timeout))
    }

    fn publish(mut self, wait: Wait) -> std::result::Result<(), Unsent<'a>> {
        let sent = match &self.lent {
            Lent::Pool { first, .. } => {
                let first = *first;
                let shm = self.sender.shm_sender().expect("a pool loan is from a shm: sender");
                shm.publish_lent(first, self.len, wait)
            }
            Lent::Heap(blocks) => {
                let bytes = &blocks.as_bytes()[..self.len];
                self.sender.send_parts(&[IoSlice::new(bytes)], &SendMeta::new(), wait)
            }
            Lent::Gone => Ok(()),
        };
        match sent {
            Ok(()) => {
                // Now the receiver's: never given back from here.
                self.lent = Lent::Gone;
                Ok(())
            }
            Err(error) => Err(Unsent { error, loan: self }),
        }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if let Lent::Pool { first, .. } = self.lent {
            if let Some(shm) = self.sender.shm_sender() {
                shm.unlend(first, self.len);
            }
        }
    }
}

impl std::ops::Deref for Loan<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

/// A loan sized and aligned for one `T`, written as a `T`.
#[derive(Debug)]
pub struct TypedLoan<'a, T> {
    loan: Loan<'a>,
    _type: PhantomData<T>,
}

impl<'a, T: FromBytes + IntoBytes + Immutable + KnownLayout> TypedLoan<'a, T> {
    pub(crate) fn new(sender: &'a mut Sender, wait: Wait) -> Result<TypedLoan<'a, T>> {
        if std::mem::align_of::<T>() > MAX_ALIGN {
            return Err(Error::new(
                ErrorKind::Invalid,
                "loan",
                sender.name(),
                format!(
                    "{} is aligned to {} bytes; loans are to {MAX_ALIGN}",
                    std::any::type_name::<T>(),
                    std::mem::align_of::<T>()
                ),
            ));
        }
        Ok(TypedLoan { loan: Loan::new(sender, std::mem::size_of::<T>(), wait)?, _type: PhantomData })
    }

    /// Publishes the value.
    pub fn send(self) -> std::result::Result<(), Unsent<'a>> {
        self.loan.send()
    }

    /// Publishes the value if the ring has room now.
    pub fn try_send(self) -> std::result::Result<(), Unsent<'a>> {
        self.loan.try_send()
    }

    /// Publishes the value, waiting at most `timeout` for room.
    pub fn send_timeout(self, timeout: Duration) -> std::result::Result<(), Unsent<'a>> {
        self.loan.send_timeout(timeout)
    }

    /// The loan as bytes.
    pub fn into_bytes(self) -> Loan<'a> {
        self.loan
    }
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> std::ops::Deref for TypedLoan<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Sized and aligned when lent (pool chunks are 64 KiB-aligned, heap
        // blocks 64-aligned); any bytes are a valid T (FromBytes).
        T::ref_from_bytes(self.loan.as_slice()).expect("a typed loan is sized and aligned for its type")
    }
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> std::ops::DerefMut for TypedLoan<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        T::mut_from_bytes(self.loan.as_mut_slice()).expect("a typed loan is sized and aligned for its type")
    }
}

/// A loan that could not be sent: the error, and the loan back (its bytes
/// as written), to send again or drop.
#[derive(Debug)]
pub struct Unsent<'a> {
    error: Error,
    loan: Loan<'a>,
}

impl<'a> Unsent<'a> {
    /// Why it was not sent.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The loan, to send again.
    pub fn into_loan(self) -> Loan<'a> {
        self.loan
    }

    /// The error (the loan is dropped: its chunks go back).
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl std::fmt::Display for Unsent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Unsent<'_> {}

impl From<Unsent<'_>> for Error {
    fn from(u: Unsent<'_>) -> Error {
        u.error
    }
}

fn too_large(name: &str, len: usize, what: String) -> Error {
    Error::new(ErrorKind::TooLarge, "loan", name, format!("a loan of {len} bytes exceeds {what}"))
}
