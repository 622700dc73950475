//! What arrives with a message, for every transport.

use std::os::fd::OwnedFd;

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
