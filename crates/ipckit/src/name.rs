//! Names and keys of IPC objects, and the one way ipckit creates or opens
//! a named object.
//!
//! - POSIX names, `/name`: one slash, then 1 to 255 characters (`NAME_MAX`)
//!   without another slash: queues (`mq:/name`), shared-memory objects and
//!   named semaphores ([`check_posix_name`]).
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

/// Checks a POSIX IPC name: `/name`, one slash, 1 to 255 characters after
/// it, not `.` or `..`. `what` names the object in the reason ("queue
/// name", "name").
pub fn check_posix_name(name: &str, what: &str) -> std::result::Result<(), String> {
    let Some(rest) = name.strip_prefix('/') else {
        return Err(format!("{what} {name:?} must start with '/'"));
    };
    if rest.is_empty() {
        return Err(format!("{what} is empty after '/'"));
    }
    if rest.contains('/') {
        return Err(format!("{what} {name:?} has a second '/'"));
    }
    if rest.len() > 255 {
        return Err(format!("{what} is {} characters, the limit is 255 (NAME_MAX)", rest.len()));
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
        check_posix_name(text, "name").map_err(invalid).map(|()| ShmName::Posix(text.to_string()))
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
