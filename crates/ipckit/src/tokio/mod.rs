//! Async IPC on tokio (cargo feature `tokio`): every transport's sends and
//! receives as futures, and request-response with async handlers.
//!
//! ```no_run
//! # async fn f() -> ipckit::Result<()> {
//! use ipckit::tokio::{AsyncReceiver, AsyncSender};
//!
//! let ep = "shm:jobs".parse()?;
//! let mut rx = AsyncReceiver::bind(&ep)?;
//! let mut tx = AsyncSender::connect(&ep)?;
//! tx.send(b"job 1").await?;
//! let msg = rx.recv().await?;
//! assert_eq!(msg.data, b"job 1");
//! # Ok(()) }
//! ```
//!
//! 1. `reactor`: the one loop under every future here: a non-blocking
//!    attempt (`try_send`, `try_recv`), and between attempts a wait in
//!    tokio's reactor on the end's descriptor (`poll_fd`), or a short
//!    timer where there is none (System V queues).
//! 2. `channel`: [`AsyncSender`] and [`AsyncReceiver`], over any
//!    [`Sender`](crate::Sender) and [`Receiver`](crate::Receiver).
//! 3. `rpc`: [`AsyncClient`] and [`AsyncServer`], over the links of
//!    [`rpc`](crate::rpc) (the same envelope, the same transports).
//! 4. `pubsub`: [`AsyncSubscriber`], over a
//!    [`pubsub::Subscriber`](crate::pubsub::Subscriber) (`shm:`, `unix:`,
//!    `tcp:`).
//!
//! # How each transport waits
//!
//! | transport | what the task waits on |
//! | --- | --- |
//! | pipes, FIFOs, `unix-dgram:`, `mq:` | the descriptor itself (a FIFO receiver's is registered anew before each wait: it reopens its FIFO when the writers leave) |
//! | `unix:`, `unix-seqpacket:`, `tcp:` receivers | the receiver's epoll set of the listener and every connection |
//! | `shm:` receivers | the receiver's epoll set, which holds its doorbell (an eventfd): an attempt that finds nothing leaves `PARKED` set on every ring, and a sender that publishes onto a parked ring rings the doorbell; new senders and departures ring it too. No thread per channel, no spinning |
//! | `shm:` senders | the control connection, readable when the receiver made room after a `Full` attempt (which announced the wait on the ring) |
//! | `shm:` subscribers | the subscriber's epoll set of its doorbell and its control connection: a `try_recv` that finds nothing leaves `PARKED` set on its cursor page's `published` word, and the publisher's swap that finds it rings the doorbell; the publisher's end shows on the control connection |
//! | `unix:`, `tcp:` subscribers | the connection; whole messages already read from it are returned before any wait |
//! | `sysv-mq:` | nothing to wait on: a timer, 1 ms doubling up to 4 ms, then another attempt |
//!
//! ## The `shm:` wake-up
//!
//! A sender wakes a receiver only if the receiver announced that it
//! sleeps: the receiver sets `PARKED` on a ring's `tail` word with a
//! `fetch_or`, the sender's publishing swap returns that bit and rings
//! the doorbell (see the ring protocol in `channel/shm/ring.rs`). A
//! blocking receive announces it just before `epoll_wait`. A
//! [`Receiver::try_recv`](crate::Receiver::try_recv) that is `Empty`
//! announces it too, and leaves it set when it returns: that is what
//! makes the receiver's descriptor turn readable for the next message.
//! The async receiver therefore always attempts (and so announces) before
//! it waits, and the next attempt withdraws it. A message published
//! between the last look and the announcement is seen by the
//! announcement itself (the `fetch_or` returns the new index, and the
//! attempt looks again), so no wake-up is lost.
//!
//! # Cancel safety
//!
//! Every attempt is synchronous and whole, and the futures wait only
//! between attempts, so dropping one loses nothing:
//! [`AsyncReceiver::recv`] (and `recv_into`, `recv_sample`) and
//! [`AsyncServer::recv`] and [`AsyncSubscriber::recv`] are cancel safe: a
//! message (a request) is either returned or stays there for the next
//! call. [`AsyncSender::send`] is
//! cancel safe: a dropped send sent nothing. [`AsyncClient::call`]
//! abandons only its own call when dropped: the other calls in flight get
//! their replies.
//!
//! # System V queues
//!
//! They have no descriptor to hand to a reactor. Their futures attempt,
//! then sleep on tokio's timer (1 ms, doubling up to 4 ms, back to 1 ms
//! after each success), then attempt again: a message waits up to 4 ms to
//! be seen, and an idle queue costs about 250 wake-ups a second, timers
//! and no thread. A blocking thread per waiting call would see messages
//! at once but would take a message inside `msgrcv` for a future that may
//! have been dropped meanwhile, and a thousand idle queues would be a
//! thousand threads.

mod channel;
mod pubsub;
mod reactor;
mod rpc;

pub use channel::{AsyncReceiver, AsyncSender};
pub use pubsub::AsyncSubscriber;
pub use reactor::BACKOFF_MAX;
pub use rpc::{AsyncClient, AsyncServer, MAX_IN_FLIGHT};

/// The async ends can move between tasks and threads: checked at compile
/// time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send::<AsyncSender>();
    send::<AsyncReceiver>();
    send::<AsyncSubscriber>();
    send_sync::<AsyncClient>();
    send_sync::<AsyncServer>();
};
