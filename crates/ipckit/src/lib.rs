//! # ipckit: inter-process communication for Linux
//!
//! Every mechanism the kernel offers, behind one safe message API. Pick a
//! mechanism with an [`Endpoint`] string, then send and receive messages;
//! the same code runs over a FIFO, a Unix socket or TCP.
//!
//! ```
//! use ipckit::{Endpoint, Receiver, Sender};
//!
//! let ep: Endpoint = format!("unix:@ipckit-doc-{}", std::process::id()).parse()?;
//! let mut rx = Receiver::bind(&ep)?;
//! let mut tx = Sender::connect(&ep)?;
//! tx.send(b"hello")?;
//! let msg = rx.recv()?;
//! assert_eq!(msg.data, b"hello");
//! assert_eq!(msg.meta.creds.unwrap().pid, std::process::id() as i32);
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! ## The shape of every transport
//!
//! - Receiving fills the caller's buffer ([`Receiver::recv_into`]) and
//!   returns the length and one [`Meta`] (priority, message type, passed
//!   fds, credentials: whichever apply). [`Receiver::recv`] allocates a
//!   buffer of exactly the message's size, never more than the maximum.
//! - Every blocking call has three forms: blocking, `try_` (never waits:
//!   `Full`/`Empty`) and `_timeout` (monotonic clock: `TimedOut`).
//!   `EINTR` is retried with the deadline recomputed.
//! - Connection-oriented transports have a [`socket::Listener`] yielding
//!   two-way [`socket::Connection`]s; [`Sender`] and [`Receiver`] are the
//!   one-direction views every transport offers.
//! - A peer is not trusted: a frame length over the maximum is `TooLarge`
//!   before anything is allocated; a dead peer is `Disconnected`, never a
//!   hang and never `SIGPIPE` on sockets (see [`pipe`] for pipes).
//! - Errors name the operation, the object and the cause:
//!   `connect unix:/run/app.sock: no such socket at this path: no such file
//!   or directory (ENOENT)`.
//!
//! ## Modules
//!
//! The mechanisms, one concept per file:
//!
//! 1. [`pipe`]: anonymous pipes and FIFOs.
//! 2. [`socket`]: Unix (stream, seqpacket, datagram) and TCP sockets.
//! 3. [`mq`]: POSIX and System V message queues.
//! 4. [`shm`]: shared memory of every kind, with safe access; ipckit's own
//!    objects (header, kinds, create-or-open, staleness).
//! 5. [`sync`]: robust mutexes, condition variables, semaphores, futex
//!    events.
//!
//! What ties them together:
//!
//! 6. [`channel`]: [`Sender`] and [`Receiver`] over any endpoint, one file
//!    per transport behind one private contract.
//! 7. [`endpoint`]: the endpoint grammar; [`name`]: object names and keys
//!    (`/name`, `sysv:KEY`, `ftok`) and the one create-or-open.
//! 8. [`framing`]: the `len32` and `lines` frame formats for byte streams.
//! 9. [`objects`]: every IPC object on the machine, listed and removed.
//! 10. [`process`]: handing descriptors to children, CPU placement.
//! 11. [`units`]: durations and sizes as text (`500ms`, `64KiB`).
//!
//! Data flows one way: an [`Endpoint`] parsed from a string, a
//! [`Sender`]/[`Receiver`] that dispatches over its transports, the
//! mechanism module, and `sys`, the one private module that calls the
//! kernel (rustix first, libc where rustix has nothing). Errors flow back
//! as [`Error`]. Private modules: `sys`; `transport` (the stream and packet
//! engines every descriptor-based transport runs on); `wait` (the blocking,
//! `try_` and `_timeout` forms).

mod atomic;
pub mod channel;
pub mod endpoint;
mod error;
pub mod framing;
mod meta;
pub mod mq;
pub mod name;
pub mod objects;
mod options;
pub mod pipe;
pub mod process;
pub mod pubsub;
pub mod rpc;
pub mod shm;
pub mod socket;
pub mod sync;
pub(crate) mod sys;
pub mod threshold;
#[cfg(feature = "tokio")]
pub mod tokio;
mod transport;
pub mod typed;
pub mod units;
mod wait;

pub use channel::remove;
pub use channel::{Loan, Receiver, Sample, Sender, TypedLoan, Unsent};
pub use endpoint::{Endpoint, EndpointKind, UnixAddr, UnixType};
pub use error::{Error, ErrorKind, Result, errno_name};
pub use framing::Framing;
pub use meta::{Credentials, Message, Meta, SendMeta};
pub use options::{DEFAULT_CHANNEL_SPIN, DEFAULT_MAX_BUFFERED, Options, Overflow, WaitMode};
pub use sys::Errno;

/// Not a stable API: the `shm:` ring protocol over ordinary memory, for the
/// fuzz target `shm_ring` and its smoke test.
#[doc(hidden)]
pub use channel::fuzzing;
