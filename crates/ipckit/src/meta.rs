//! What arrives with a message, for every transport.

use std::os::fd::{BorrowedFd, OwnedFd};

/// Metadata of one received message. Each transport fills what applies:
/// priority (POSIX queues), type (System V queues), passed file
/// descriptors and sender credentials (Unix sockets).
#[non_exhaustive]
#[derive(Debug, Default)]
pub struct Meta {
    /// POSIX message-queue priority.
    pub priority: Option<u32>,
    /// System V message type.
    pub msg_type: Option<i64>,
    /// File descriptors passed with the message (`SCM_RIGHTS`), received
    /// close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// The sending process, as the kernel reports it (`SO_PEERCRED` for
    /// connections, `SCM_CREDENTIALS` for datagrams).
    pub creds: Option<Credentials>,
    /// The payload of a sealed memfd message
    /// ([`Sender::send_sealed`](crate::Sender::send_sealed), on `unix:`,
    /// `unix-seqpacket:` and `unix-dgram:`): a memfd nobody can change any
    /// more, mapped read-only, whose bytes are a safe `&[u8]`
    /// ([`Sealed::as_bytes`](crate::shm::Sealed::as_bytes)). `recv` leaves
    /// [`Message::data`] empty then (the payload is read in place);
    /// `recv_into` copies the payload into the buffer as well (`TooLarge`,
    /// and the message kept, when it does not fit; a buffer shorter than
    /// the 24-byte marker cannot tell, and names 24 bytes). `None` for every
    /// other message.
    pub sealed: Option<crate::shm::Sealed>,
    /// The message was cut to the buffer's size (System V queues opened
    /// with `MSG_NOERROR` only; everywhere else a message that does not fit
    /// is `TooLarge` and stays queued).
    pub truncated: bool,
    /// Publish-subscribe under `?overflow=drop-oldest`: how many messages
    /// this subscriber lost just before this one, because it fell behind
    /// by more than the topic holds (0 everywhere else).
    pub lost: u64,
}

/// A process's identity as checked by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// Process id.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

impl From<crate::sys::net::UCred> for Credentials {
    fn from(c: crate::sys::net::UCred) -> Self {
        Credentials { pid: c.pid.as_raw_nonzero().get(), uid: c.uid.as_raw(), gid: c.gid.as_raw() }
    }
}

/// A received message with its metadata (the allocating `recv` forms).
#[derive(Debug, Default)]
pub struct Message {
    /// The payload.
    pub data: Vec<u8>,
    /// What came with it.
    pub meta: Meta,
}

/// What travels with an outgoing message, where the transport carries it:
/// a priority (POSIX queues), a type (System V queues), file descriptors
/// (Unix sockets). A transport that cannot carry what is asked refuses the
/// send (`Unsupported`) rather than drop it silently.
///
/// ```
/// use ipckit::SendMeta;
/// let meta = SendMeta::new().priority(7);
/// assert_eq!(meta.priority_value(), Some(7));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SendMeta<'a> {
    pub(crate) priority: Option<u32>,
    pub(crate) msg_type: Option<i64>,
    pub(crate) fds: &'a [BorrowedFd<'a>],
}

impl<'a> SendMeta<'a> {
    /// Nothing but the message.
    pub fn new() -> SendMeta<'a> {
        SendMeta::default()
    }

    /// A POSIX message-queue priority (0 to 32767; higher is received first).
    pub fn priority(mut self, priority: u32) -> SendMeta<'a> {
        self.priority = Some(priority);
        self
    }

    /// A System V message type (positive).
    pub fn msg_type(mut self, msg_type: i64) -> SendMeta<'a> {
        self.msg_type = Some(msg_type);
        self
    }

    /// File descriptors to pass (Unix sockets; at most
    /// [`MAX_FDS`](crate::socket::MAX_FDS)).
    pub fn fds(mut self, fds: &'a [BorrowedFd<'a>]) -> SendMeta<'a> {
        self.fds = fds;
        self
    }

    /// The priority asked for.
    pub fn priority_value(&self) -> Option<u32> {
        self.priority
    }

    /// The message type asked for.
    pub fn msg_type_value(&self) -> Option<i64> {
        self.msg_type
    }

    /// Refuses a priority or a type: for transports that carry neither.
    pub(crate) fn only_fds(&self, op: &'static str, name: &str) -> crate::Result<&'a [BorrowedFd<'a>]> {
        let what = match (self.priority, self.msg_type) {
            (Some(_), _) => "a priority",
            (_, Some(_)) => "a message type",
            _ => return Ok(self.fds),
        };
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            op,
            name,
            format!("this transport cannot carry {what} (POSIX queues carry priorities, System V queues types)"),
        ))
    }
}

/// The limit a message is checked against, as error messages name it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Limit {
    /// The configured maximum (`Options::max_message`).
    Maximum,
    /// A POSIX queue's `mq_msgsize`.
    QueueMessageSize,
    /// The System V `msgmax`.
    Msgmax,
    /// The largest message a `shm:` ring holds.
    Ring {
        /// The ring's size.
        capacity: usize,
    },
    /// The largest message a `shm:` sender's pool holds.
    Pool {
        /// The pool's size.
        size: usize,
    },
}

/// The length of a message gathered from `parts`: `TooLarge`, naming the
/// operation, the object and both sizes, if it is over `max`. Checked
/// before anything is sent.
pub(crate) fn check_len(
    parts: &[std::io::IoSlice<'_>],
    max: usize,
    limit: Limit,
    op: &'static str,
    object: &str,
) -> crate::Result<usize> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len <= max {
        return Ok(len);
    }
    let what = match limit {
        Limit::Maximum => format!("the maximum of {max} bytes"),
        Limit::QueueMessageSize => format!("the queue's message size of {max} bytes"),
        Limit::Msgmax => format!("the limit of {max} bytes (msgmax)"),
        Limit::Ring { capacity } => {
            format!("the largest message of {max} bytes that the channel's ring of {capacity} bytes holds")
        }
        Limit::Pool { size } => format!("this sender's pool of {size} bytes (?pool=)"),
    };
    Err(crate::Error::new(crate::ErrorKind::TooLarge, op, object, format!("message of {len} bytes exceeds {what}")))
}
