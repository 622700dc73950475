//! Names and keys of IPC objects, and the one way ipckit creates or opens
//! a named object.
//!
//! - POSIX names, `/name`: one slash, then 1 to N characters without
//!   another slash, N as the kernel and glibc allow for the kind of object
//!   ([`PosixKind`], [`check_posix_name`]): 255 (`NAME_MAX`) for queues
//!   (`mq:/name`) and shared-memory objects, 251 for named semaphores.
//! - System V keys, [`SysvKey`]: a nonzero decimal or `0x` hex number, or
//!   an absolute path and a project id for `ftok` ([`resolve_key`]).
//! - Shared-memory object names, [`ShmName`]: `/name`, `sysv:KEY` or
//!   `file:/path`.
//!
//! Every named object is opened through one helper, `create_or_open`: create
//! exclusively (`O_EXCL`, `IPC_EXCL`, `mkfifo`), and, where the caller allows
//! it, open the existing object when creating finds one. Callers then check
//! that an existing object belongs to the caller's user.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, Errno};

/// A System V IPC key, as written in an endpoint or object name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SysvKey {
    text: String,
    source: SysvKeySource,
}

/// Where a System V key comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SysvKeySource {
    /// A literal key (nonzero).
    Number(i32),
    /// `ftok(path, id)`.
    Path(PathBuf, u8),
}

impl SysvKey {
    /// How the key is derived.
    pub fn source(&self) -> &SysvKeySource {
        &self.source
    }

    /// The key as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Parses a key: a nonzero decimal or `0x` hex number, or an absolute
    /// path (for `ftok`) with project id `id`.
    pub fn parse(text: &str, id: u8) -> Result<SysvKey> {
        let invalid = |why: &str| Error::new(ErrorKind::Invalid, "parse key", text, why.to_string());
        let source = if text.starts_with('/') {
            SysvKeySource::Path(PathBuf::from(text), id)
        } else {
            let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                u32::from_str_radix(hex, 16).map_err(|_| invalid("not a hexadecimal number"))?
            } else {
                text.parse::<u32>().map_err(|_| invalid("expected a nonzero number, 0xHEX, or an absolute path"))?
            };
            if value == 0 {
                return Err(invalid("key 0 is IPC_PRIVATE, which cannot be named"));
            }
            SysvKeySource::Number(value as i32)
        };
        Ok(SysvKey { text: text.to_string(), source })
    }

    /// Whether the key is derived from a path with `ftok`.
    pub fn is_path(&self) -> bool {
        matches!(self.source, SysvKeySource::Path(..))
    }
}

impl fmt::Display for SysvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The operation an error of [`resolve_key`] names: a key path that does
/// not exist is `NotFound` from this operation.
pub(crate) const FTOK: &str = "ftok";

/// The numeric key `key` stands for (`ftok` of its path and id, for a path
/// key). `object` names the object in the error.
pub fn resolve_key(key: &SysvKey, object: &dyn fmt::Display) -> Result<i32> {
    match key.source() {
        SysvKeySource::Number(n) => Ok(*n),
        SysvKeySource::Path(path, id) => sys::mq::ftok(path, *id)
            .map_err(|e| Error::os(FTOK, object, e).with_detail(format!("key path {}", path.display()))),
    }
}

/// The kinds of POSIX named object: each has its own limit on the length of
/// a name, measured on Linux 6.x with glibc 2.36 (the first length that
/// fails is `ENAMETOOLONG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PosixKind {
    /// A message queue (`mq_open`): a file in the mqueue file system, so
    /// a name of at most `NAME_MAX` (255) bytes.
    Queue,
    /// A shared-memory object (`shm_open`): the file `/dev/shm/NAME`, so
    /// at most `NAME_MAX` (255) bytes.
    SharedMemory,
    /// A named semaphore (`sem_open`): glibc keeps it in
    /// `/dev/shm/sem.NAME`, so at most `NAME_MAX` less 4 (251) bytes.
    Semaphore,
}

impl PosixKind {
    /// The longest name after the slash, in bytes.
    pub fn max_len(self) -> usize {
        match self {
            PosixKind::Queue | PosixKind::SharedMemory => 255,
            PosixKind::Semaphore => 251,
        }
    }

    /// What the name is called in messages.
    fn what(self) -> &'static str {
        match self {
            PosixKind::Queue => "queue name",
            PosixKind::SharedMemory => "name",
            PosixKind::Semaphore => "semaphore name",
        }
    }

    /// Where the limit comes from.
    fn why(self) -> &'static str {
        match self {
            PosixKind::Queue => "NAME_MAX",
            PosixKind::SharedMemory => "NAME_MAX: the object is the file /dev/shm/NAME",
            PosixKind::Semaphore => "NAME_MAX less 4: glibc keeps it as /dev/shm/sem.NAME",
        }
    }
}

/// Checks a POSIX IPC name for an object of `kind`: `/name`, one slash, 1
/// to [`kind.max_len()`](PosixKind::max_len) bytes after it, not `.` or
/// `..`. Refuses exactly what the kernel or glibc would refuse for its
/// length, before they see it.
pub fn check_posix_name(name: &str, kind: PosixKind) -> std::result::Result<(), String> {
    let what = kind.what();
    let Some(rest) = name.strip_prefix('/') else {
        return Err(format!("{what} {name:?} must start with '/'"));
    };
    if rest.is_empty() {
        return Err(format!("{what} is empty after '/'"));
    }
    if rest.contains('/') {
        return Err(format!("{what} {name:?} has a second '/'"));
    }
    if rest.len() > kind.max_len() {
        let unit = if rest.is_ascii() { "characters" } else { "bytes" };
        return Err(format!("{what} is {} {unit}, the limit is {} ({})", rest.len(), kind.max_len(), kind.why()));
    }
    if rest == "." || rest == ".." {
        return Err(format!("{what} {name:?} is reserved"));
    }
    Ok(())
}

/// The name of a shared-memory object: `/name` (POSIX), `sysv:KEY`
/// (System V; KEY as in endpoints, `sysv:/path?id=N` for ftok), or
/// `file:/path` (a mapped file).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ShmName {
    /// A POSIX shared-memory object, `/name`.
    Posix(String),
    /// A System V segment.
    Sysv(SysvKey),
    /// A file to map.
    File(PathBuf),
}

impl FromStr for ShmName {
    type Err = Error;

    fn from_str(text: &str) -> Result<ShmName> {
        let invalid = |why: String| Error::new(ErrorKind::Invalid, "parse shm name", format!("{text:?}"), why);
        if let Some(rest) = text.strip_prefix("sysv:") {
            let (key, id) = match rest.split_once("?id=") {
                Some((k, id)) => match id.parse::<u8>() {
                    Ok(n) if n > 0 && !id.starts_with('0') => (k, n),
                    _ => return Err(invalid(format!("id {id:?} must be 1 to 255"))),
                },
                None => (rest, 1),
            };
            if rest.contains("?id=") && !key.starts_with('/') {
                return Err(invalid("?id= applies only to a path key".into()));
            }
            let key = SysvKey::parse(key, id)
                .map_err(|e| invalid(e.to_string().rsplit(": ").next().unwrap_or_default().to_string()))?;
            return Ok(ShmName::Sysv(key));
        }
        if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err(invalid("empty file path".into()));
            }
            return Ok(ShmName::File(PathBuf::from(path)));
        }
        check_posix_name(text, PosixKind::SharedMemory).map_err(invalid).map(|()| ShmName::Posix(text.to_string()))
    }
}

impl fmt::Display for ShmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmName::Posix(n) => f.write_str(n),
            ShmName::Sysv(k) => match k.source() {
                SysvKeySource::Path(_, id) if *id != 1 => write!(f, "sysv:{k}?id={id}"),
                _ => write!(f, "sysv:{k}"),
            },
            ShmName::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// Whether opening created the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// This call created it.
    Created,
    /// It existed.
    Existing,
}

/// Whether opening a named object may create it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Open an existing object only.
    No,
    /// Create it if it does not exist, else open it.
    IfMissing,
    /// Create it; fail (`EEXIST`) if it exists.
    Exclusive,
}

impl Create {
    /// From the `create` and `exclusive` flags of [`Options`](crate::Options).
    pub(crate) fn from_flags(create: bool, exclusive: bool) -> Create {
        match (create, exclusive) {
            (_, true) => Create::Exclusive,
            (true, false) => Create::IfMissing,
            (false, false) => Create::No,
        }
    }
}

/// Which attempt of [`create_or_open`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The exclusive create.
    Create,
    /// Opening the existing object.
    Open,
}

/// Creates or opens a named object as `how` says: `attempt(Attempt::Create)`
/// must create exclusively (failing with `EEXIST` if the object exists);
/// `attempt(Attempt::Open)` opens the existing object. Of any number of
/// processes racing, exactly one creates. The error says which attempt
/// failed, so that callers name the cause precisely.
pub(crate) fn create_or_open<T>(
    how: Create,
    mut attempt: impl FnMut(Attempt) -> std::result::Result<T, Errno>,
) -> std::result::Result<(T, Opened), (Attempt, Errno)> {
    if how != Create::No {
        match attempt(Attempt::Create) {
            Ok(v) => return Ok((v, Opened::Created)),
            Err(Errno::EXIST) if how == Create::IfMissing => {}
            Err(e) => return Err((Attempt::Create, e)),
        }
    }
    attempt(Attempt::Open).map(|v| (v, Opened::Existing)).map_err(|e| (Attempt::Open, e))
}

/// Refuses an existing named object that belongs to another user: ipckit
/// never talks to an object someone else planted under an expected name.
/// `what` names the kind of object ("queue", "FIFO", ...).
pub(crate) fn check_owner(op: &'static str, object: impl fmt::Display, what: &str, uid: u32) -> Result<()> {
    let me = sys::process::geteuid();
    if uid == me {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::PermissionDenied,
        op,
        object,
        format!("the {what} belongs to uid {uid}, not to this user (uid {me})"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_names_up_to_each_kinds_limit() {
        for (kind, max) in [(PosixKind::Queue, 255), (PosixKind::SharedMemory, 255), (PosixKind::Semaphore, 251)] {
            assert_eq!(check_posix_name(&format!("/{}", "a".repeat(max)), kind), Ok(()), "{kind:?}");
            let e = check_posix_name(&format!("/{}", "a".repeat(max + 1)), kind).unwrap_err();
            assert!(e.contains(&format!("is {} characters, the limit is {max} (NAME_MAX", max + 1)), "{kind:?}: {e}");
            let e = check_posix_name(&format!("/{}", "é".repeat(max / 2 + 1)), kind).unwrap_err();
            assert!(e.contains("bytes, the limit"), "counted in bytes: {e}");
        }
    }
}
