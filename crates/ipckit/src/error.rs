//! One error type for every operation: what failed, on which object, and why.
//!
//! The message reads `OPERATION OBJECT: cause (ERRNO)`, for example
//! `connect unix:/run/app.sock: no such file or directory (ENOENT)`.

use std::borrow::Cow;
use std::fmt;
use std::io;

use crate::sys::Errno;

/// A specialised `Result` for ipckit operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of an [`Error`]: what a program can act on.
///
/// New kinds may be added; match with a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object (queue, FIFO, socket path, segment) does not exist.
    NotFound,
    /// The object exists already, or a live listener owns the address.
    AlreadyExists,
    /// The caller may not use the object (EACCES, EPERM, wrong owner).
    PermissionDenied,
    /// A non-blocking send found no room.
    Full,
    /// A non-blocking receive found no message.
    Empty,
    /// A non-blocking lock or wait found the resource taken.
    Busy,
    /// A deadline passed while waiting.
    TimedOut,
    /// The peer is gone: closed, crashed, or nobody is listening.
    Disconnected,
    /// A message is larger than the configured or kernel maximum, or than
    /// the caller's buffer.
    TooLarge,
    /// An argument, endpoint string or option is malformed.
    Invalid,
    /// A lock's previous owner died while holding it.
    OwnerDied,
    /// A lock whose owner died was never repaired.
    NotRecoverable,
    /// Data a peer wrote breaks the protocol (bad frame, bad header).
    Corrupt,
    /// A typed payload that does not decode as its type (wrong type on the
    /// wire, truncated, or over the decoding bounds).
    Decode,
    /// The remote handler of a request failed; the error carries its
    /// message.
    Remote,
    /// The operation or mechanism is not available (yet, or on this kernel).
    Unsupported,
    /// Any other operating-system error; see [`Error::errno`].
    Io,
}

impl ErrorKind {
    /// A short lower-case name, as used in messages and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Full => "full",
            ErrorKind::Empty => "empty",
            ErrorKind::Busy => "busy",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::TooLarge => "too large",
            ErrorKind::Invalid => "invalid",
            ErrorKind::OwnerDied => "owner died",
            ErrorKind::NotRecoverable => "not recoverable",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Decode => "decode",
            ErrorKind::Remote => "remote",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "i/o error",
        }
    }

    /// The kind an errno value most naturally belongs to.
    pub fn from_errno(errno: Errno) -> ErrorKind {
        match errno {
            Errno::NOENT | Errno::NXIO | Errno::IDRM => ErrorKind::NotFound,
            Errno::EXIST | Errno::ADDRINUSE => ErrorKind::AlreadyExists,
            Errno::ACCESS | Errno::PERM => ErrorKind::PermissionDenied,
            Errno::TIMEDOUT => ErrorKind::TimedOut,
            Errno::PIPE
            | Errno::CONNRESET
            | Errno::CONNREFUSED
            | Errno::NOTCONN
            | Errno::CONNABORTED
            | Errno::SHUTDOWN => ErrorKind::Disconnected,
            Errno::MSGSIZE | Errno::TOOBIG => ErrorKind::TooLarge,
            Errno::INVAL | Errno::NAMETOOLONG | Errno::BADF | Errno::NOTSOCK => ErrorKind::Invalid,
            Errno::OWNERDEAD => ErrorKind::OwnerDied,
            Errno::NOTRECOVERABLE => ErrorKind::NotRecoverable,
            Errno::NOSYS | Errno::OPNOTSUPP | Errno::PROTONOSUPPORT | Errno::AFNOSUPPORT => ErrorKind::Unsupported,
            _ => ErrorKind::Io,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ipckit error: the operation, the object it was applied to, and the
/// cause (an errno, a description, or both).
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    op: Cow<'static, str>,
    object: String,
    errno: Option<Errno>,
    detail: Option<Cow<'static, str>>,
}

impl Error {
    /// An error from a failed system call.
    pub fn os(op: impl Into<Cow<'static, str>>, object: impl fmt::Display, errno: Errno) -> Error {
        Error {
            kind: ErrorKind::from_errno(errno),
            op: op.into(),
            object: object.to_string(),
            errno: Some(errno),
            detail: None,
        }
    }

    /// An error of a given kind with a description of the cause.
    pub fn new(
        kind: ErrorKind,
        op: impl Into<Cow<'static, str>>,
        object: impl fmt::Display,
        detail: impl Into<Cow<'static, str>>,
    ) -> Error {
        Error { kind, op: op.into(), object: object.to_string(), errno: None, detail: Some(detail.into()) }
    }

    /// Replaces the kind, keeping everything else (e.g. `EAGAIN` is `Full`
    /// for a send and `Empty` for a receive).
    pub fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }

    /// Adds a description to the cause.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    /// What class of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed, e.g. `connect`, `recv`, `mkfifo`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The object the operation was applied to (an endpoint or a path).
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The errno, when a system call failed.
    pub fn errno(&self) -> Option<Errno> {
        self.errno
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        if !self.object.is_empty() {
            write!(f, " {}", self.object)?;
        }
        f.write_str(": ")?;
        match (&self.detail, self.errno) {
            (Some(d), Some(e)) => write!(f, "{d}: {} ({})", describe(e), errno_name(e)),
            (Some(d), None) => f.write_str(d),
            (None, Some(e)) => write!(f, "{} ({})", describe(e), errno_name(e)),
            (None, None) => f.write_str(self.kind.as_str()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}: {self})", self.kind)
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.kind {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::Full | ErrorKind::Empty | ErrorKind::Busy => io::ErrorKind::WouldBlock,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::Disconnected => io::ErrorKind::BrokenPipe,
            ErrorKind::Invalid => io::ErrorKind::InvalidInput,
            ErrorKind::Corrupt => io::ErrorKind::InvalidData,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// The strerror text, lower-cased as in ipckit's messages.
fn describe(errno: Errno) -> String {
    let text = io::Error::from_raw_os_error(errno.raw_os_error()).to_string();
    // std appends " (os error N)"; ipckit prints the symbolic name instead.
    let text = text.split(" (os error").next().unwrap_or("").to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The symbolic name of an errno value, e.g. `ENOENT`.
pub fn errno_name(errno: Errno) -> Cow<'static, str> {
    let name = match errno {
        Errno::PERM => "EPERM",
        Errno::NOENT => "ENOENT",
        Errno::SRCH => "ESRCH",
        Errno::INTR => "EINTR",
        Errno::IO => "EIO",
        Errno::NXIO => "ENXIO",
        Errno::TOOBIG => "E2BIG",
        Errno::BADF => "EBADF",
        Errno::CHILD => "ECHILD",
        Errno::AGAIN => "EAGAIN",
        Errno::NOMEM => "ENOMEM",
        Errno::ACCESS => "EACCES",
        Errno::FAULT => "EFAULT",
        Errno::BUSY => "EBUSY",
        Errno::EXIST => "EEXIST",
        Errno::NOTDIR => "ENOTDIR",
        Errno::ISDIR => "EISDIR",
        Errno::INVAL => "EINVAL",
        Errno::NFILE => "ENFILE",
        Errno::MFILE => "EMFILE",
        Errno::FBIG => "EFBIG",
        Errno::NOSPC => "ENOSPC",
        Errno::SPIPE => "ESPIPE",
        Errno::ROFS => "EROFS",
        Errno::PIPE => "EPIPE",
        Errno::RANGE => "ERANGE",
        Errno::NAMETOOLONG => "ENAMETOOLONG",
        Errno::NOSYS => "ENOSYS",
        Errno::IDRM => "EIDRM",
        Errno::NOMSG => "ENOMSG",
        Errno::NOTSOCK => "ENOTSOCK",
        Errno::MSGSIZE => "EMSGSIZE",
        Errno::PROTOTYPE => "EPROTOTYPE",
        Errno::PROTONOSUPPORT => "EPROTONOSUPPORT",
        Errno::OPNOTSUPP => "EOPNOTSUPP",
        Errno::AFNOSUPPORT => "EAFNOSUPPORT",
        Errno::ADDRINUSE => "EADDRINUSE",
        Errno::ADDRNOTAVAIL => "EADDRNOTAVAIL",
        Errno::NETUNREACH => "ENETUNREACH",
        Errno::CONNABORTED => "ECONNABORTED",
        Errno::CONNRESET => "ECONNRESET",
        Errno::ISCONN => "EISCONN",
        Errno::NOTCONN => "ENOTCONN",
        Errno::SHUTDOWN => "ESHUTDOWN",
        Errno::TIMEDOUT => "ETIMEDOUT",
        Errno::CONNREFUSED => "ECONNREFUSED",
        Errno::HOSTUNREACH => "EHOSTUNREACH",
        Errno::ALREADY => "EALREADY",
        Errno::INPROGRESS => "EINPROGRESS",
        Errno::OWNERDEAD => "EOWNERDEAD",
        Errno::OVERFLOW => "EOVERFLOW",
        Errno::DEADLK => "EDEADLK",
        Errno::NOTRECOVERABLE => "ENOTRECOVERABLE",
        other => return Cow::Owned(format!("errno {}", other.raw_os_error())),
    };
    Cow::Borrowed(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_operation_object_and_cause() {
        let e = Error::os("mq_open", "/jobs", Errno::NOENT);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "mq_open /jobs: no such file or directory (ENOENT)");
        let e = Error::new(ErrorKind::TooLarge, "recv", "unix:/x", "frame of 9 bytes exceeds maximum 8");
        assert_eq!(e.to_string(), "recv unix:/x: frame of 9 bytes exceeds maximum 8");
    }

    #[test]
    fn errno_kinds() {
        assert_eq!(ErrorKind::from_errno(Errno::PIPE), ErrorKind::Disconnected);
        assert_eq!(ErrorKind::from_errno(Errno::ACCESS), ErrorKind::PermissionDenied);
        assert_eq!(ErrorKind::from_errno(Errno::ADDRINUSE), ErrorKind::AlreadyExists);
        assert_eq!(errno_name(Errno::from_raw_os_error(4095)), "errno 4095");
    }
}
