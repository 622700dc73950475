//! Opening named segments: POSIX objects, System V segments, mapped files.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustix::io::Errno;

use super::region::{Backing, Region};
use crate::endpoint::SysvKey;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self};

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
        crate::endpoint::check_mq_name(text)
            .map_err(|why| invalid(why.replace("queue name", "name")))
            .map(|()| ShmName::Posix(text.to_string()))
    }
}

impl fmt::Display for ShmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmName::Posix(n) => f.write_str(n),
            ShmName::Sysv(k) => match k.source() {
                crate::endpoint::SysvKeySource::Path(_, id) if *id != 1 => write!(f, "sysv:{k}?id={id}"),
                _ => write!(f, "sysv:{k}"),
            },
            ShmName::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// How to open a segment: `Segment::new(name).size(n).create()`.
///
/// ```
/// use ipckit::shm::Segment;
/// let name = format!("/ipckit-doc-{}", std::process::id());
/// let region = Segment::new(name.parse()?).size(4096).unlink_on_drop(true).create()?;
/// region.write_at(0, b"hello")?;
/// let mut buf = [0u8; 5];
/// region.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Segment {
    name: ShmName,
    size: Option<usize>,
    mode: u32,
    writable: bool,
    remove_on_drop: bool,
}

/// Whether [`Segment::open_or_create`] created the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// This call created it.
    Created,
    /// It existed.
    Existing,
}

impl Segment {
    /// A segment named `name`, mode 0600, read-write.
    pub fn new(name: ShmName) -> Segment {
        Segment { name, size: None, mode: 0o600, writable: true, remove_on_drop: false }
    }

    /// The object's name.
    pub fn name(&self) -> &ShmName {
        &self.name
    }

    /// The size to create with (required to create; checked when opening).
    pub fn size(mut self, bytes: usize) -> Segment {
        self.size = Some(bytes);
        self
    }

    /// Permission bits to create with (default 0600), applied exactly.
    pub fn mode(mut self, mode: u32) -> Segment {
        self.mode = mode & 0o777;
        self
    }

    /// Map read-only.
    pub fn read_only(mut self) -> Segment {
        self.writable = false;
        self
    }

    /// Remove the object when the region is dropped.
    pub fn unlink_on_drop(mut self, yes: bool) -> Segment {
        self.remove_on_drop = yes;
        self
    }

    /// Creates the object, failing with `AlreadyExists` if it exists.
    pub fn create(&self) -> Result<Region> {
        self.open_inner(Some(true)).map(|(r, _)| r)
    }

    /// Opens an existing object: `NotFound` if there is none.
    pub fn open(&self) -> Result<Region> {
        self.open_inner(None).map(|(r, _)| r)
    }

    /// Opens the object, creating it if it does not exist.
    pub fn open_or_create(&self) -> Result<(Region, Opened)> {
        self.open_inner(Some(false))
    }

    /// `create`: None = open only; Some(true) = exclusive; Some(false) =
    /// open or create.
    fn open_inner(&self, create: Option<bool>) -> Result<(Region, Opened)> {
        let label = self.name.to_string();
        if create.is_some() {
            self.check_size(&label)?;
        }
        match &self.name {
            ShmName::Posix(name) => self.open_posix(name, create, label),
            ShmName::File(path) => self.open_file(path, create, label),
            ShmName::Sysv(key) => self.open_sysv(key, create, label),
        }
    }

    fn create_size(&self, label: &str) -> Result<usize> {
        self.size.ok_or_else(|| Error::new(ErrorKind::Invalid, "create", label, "a size is needed to create"))
    }

    fn check_size(&self, label: &str) -> Result<()> {
        let size = self.create_size(label)?;
        let invalid = |why: String| Error::new(ErrorKind::Invalid, "create", label, why);
        if size == 0 {
            return Err(invalid("size 0: a segment needs at least one byte".into()));
        }
        if size > isize::MAX as usize {
            return Err(invalid(format!("size {size} exceeds the address space")));
        }
        match &self.name {
            ShmName::Sysv(_) => {
                if let Some(max) = sys::proc_limit("/proc/sys/kernel/shmmax") {
                    if size as u64 > max {
                        return Err(invalid(format!(
                            "size {size} exceeds the kernel limit shmmax={max} (/proc/sys/kernel/shmmax)"
                        )));
                    }
                }
            }
            _ => {
                let limit = rustix::process::getrlimit(rustix::process::Resource::Fsize);
                if let Some(max) = limit.current {
                    if size as u64 > max {
                        return Err(invalid(format!("size {size} exceeds RLIMIT_FSIZE={max}")));
                    }
                }
            }
        }
        Ok(())
    }

    fn open_posix(&self, name: &str, create: Option<bool>, label: String) -> Result<(Region, Opened)> {
        use rustix::shm::OFlags;
        let access = if self.writable { OFlags::RDWR } else { OFlags::RDONLY };
        let (fd, opened) = match create {
            None => {
                (sys::shm::shm_open(name, access, 0).map_err(|e| open_error("shm_open", &label, e))?, Opened::Existing)
            }
            Some(exclusive) => match sys::shm::shm_open(name, access | OFlags::CREATE | OFlags::EXCL, self.mode) {
                Ok(fd) => (fd, Opened::Created),
                Err(Errno::EXIST) if !exclusive => (
                    sys::shm::shm_open(name, access, 0).map_err(|e| open_error("shm_open", &label, e))?,
                    Opened::Existing,
                ),
                Err(e) => return Err(open_error("shm_open", &label, e)),
            },
        };
        let unlink = |e: Error| {
            if opened == Opened::Created {
                let _ = sys::shm::shm_unlink(name);
            }
            e
        };
        let len = self.prepare(&fd, opened, &label).map_err(unlink)?;
        let map = sys::shm::Mapping::map_fd(fd.as_fd(), len, self.writable)
            .map_err(|e| unlink(Error::os("mmap", &label, e)))?;
        let backing = Backing::Posix { name: name.to_string(), fd, unlink_on_drop: self.remove_on_drop };
        let mut region = Region::new(map, backing, self.writable, label);
        if opened == Opened::Existing {
            warn_mode(&mut region)?;
        }
        Ok((region, opened))
    }

    fn open_file(&self, path: &Path, create: Option<bool>, label: String) -> Result<(Region, Opened)> {
        use rustix::fs::OFlags;
        let access = if self.writable { OFlags::RDWR } else { OFlags::RDONLY };
        let (fd, opened) = match create {
            None => {
                (sys::shm::open_file(path, access, 0).map_err(|e| open_error("open", &label, e))?, Opened::Existing)
            }
            Some(exclusive) => match sys::shm::open_file(path, access | OFlags::CREATE | OFlags::EXCL, self.mode) {
                Ok(fd) => (fd, Opened::Created),
                Err(Errno::EXIST) if !exclusive => {
                    (sys::shm::open_file(path, access, 0).map_err(|e| open_error("open", &label, e))?, Opened::Existing)
                }
                Err(e) => return Err(open_error("open", &label, e)),
            },
        };
        let unlink = |e: Error| {
            if opened == Opened::Created {
                let _ = std::fs::remove_file(path);
            }
            e
        };
        let len = self.prepare(&fd, opened, &label).map_err(unlink)?;
        let map = sys::shm::Mapping::map_fd(fd.as_fd(), len, self.writable)
            .map_err(|e| unlink(Error::os("mmap", &label, e)))?;
        let backing = Backing::File { path: path.to_path_buf(), fd, unlink_on_drop: self.remove_on_drop };
        let mut region = Region::new(map, backing, self.writable, label);
        if opened == Opened::Existing {
            warn_mode(&mut region)?;
        }
        Ok((region, opened))
    }

    /// For a new object: exact mode, size, and reserved pages. For an
    /// existing one: the owner check and its size. Returns the length to
    /// map.
    fn prepare(&self, fd: &OwnedFd, opened: Opened, label: &str) -> Result<usize> {
        if opened == Opened::Created {
            let size = self.create_size(label)?;
            sys::shm::fchmod(fd.as_fd(), self.mode).map_err(|e| Error::os("fchmod", label, e))?;
            sys::shm::set_len(fd.as_fd(), size as u64).map_err(|e| Error::os("ftruncate", label, e))?;
            sys::shm::reserve(fd.as_fd(), size as u64)
                .map_err(|e| Error::os("posix_fallocate", label, e).with_detail(format!("reserving {size} bytes")))?;
            return Ok(size);
        }
        let (len, uid, _) = sys::shm::fstat(fd).map_err(|e| Error::os("fstat", label, e))?;
        check_owner(uid, label)?;
        let len =
            usize::try_from(len).map_err(|_| Error::new(ErrorKind::Invalid, "open", label, "too large to map"))?;
        if len == 0 {
            return Err(Error::new(ErrorKind::Corrupt, "open", label, "the object is empty (size 0)"));
        }
        if let Some(want) = self.size {
            if len < want {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "open",
                    label,
                    format!("the object has {len} bytes, fewer than the {want} expected (truncated?)"),
                ));
            }
        }
        Ok(len)
    }

    fn open_sysv(&self, key: &SysvKey, create: Option<bool>, label: String) -> Result<(Region, Opened)> {
        let key = crate::mq::sysv::resolve_key(key, &label)?;
        let size = self.size.unwrap_or(0);
        let (id, opened) = match create {
            None => (sys::shm::shmget(key, 0, 0).map_err(|e| open_error("shmget", &label, e))?, Opened::Existing),
            Some(exclusive) => match sys::shm::shmget(key, size, self.mode as i32 | libc::IPC_CREAT | libc::IPC_EXCL) {
                Ok(id) => (id, Opened::Created),
                Err(Errno::EXIST) if !exclusive => {
                    (sys::shm::shmget(key, 0, 0).map_err(|e| open_error("shmget", &label, e))?, Opened::Existing)
                }
                Err(e @ (Errno::NOMEM | Errno::INVAL | Errno::NOSPC)) => {
                    let limit = |p: &str| sys::proc_limit(p).map_or("?".into(), |v| v.to_string());
                    return Err(Error::os("shmget", &label, e).with_kind(ErrorKind::Invalid).with_detail(format!(
                        "size {size} is beyond what the kernel grants (shmmax={}, shmall={} pages, memory)",
                        limit("/proc/sys/kernel/shmmax"),
                        limit("/proc/sys/kernel/shmall"),
                    )));
                }
                Err(e) => return Err(open_error("shmget", &label, e)),
            },
        };
        let remove = |e: Error| {
            if opened == Opened::Created {
                let _ = sys::shm::shm_remove(id);
            }
            e
        };
        let stat = sys::shm::shm_stat(id).map_err(|e| remove(Error::os("shmctl IPC_STAT", &label, e)))?;
        if opened == Opened::Existing {
            check_owner(stat.uid, &label)?;
            if let Some(want) = self.size {
                if (stat.size as usize) < want {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        "shmget",
                        &label,
                        format!("the segment has {} bytes, fewer than the {want} expected", stat.size),
                    ));
                }
            }
        }
        let len = stat.size as usize;
        let map = sys::shm::Mapping::attach_sysv(id, len, self.writable)
            .map_err(|e| remove(Error::os("shmat", &label, e)))?;
        let backing = Backing::Sysv { key, id, remove_on_drop: self.remove_on_drop };
        let mut region = Region::new(map, backing, self.writable, label);
        if opened == Opened::Existing && stat.mode & 0o077 != 0 {
            region.push_warning(format!("mode {:04o} lets other users in (0600 expected)", stat.mode));
        }
        Ok((region, opened))
    }
}

fn check_owner(uid: u32, label: &str) -> Result<()> {
    crate::error::check_owner("open", label, "object", uid)
}

fn warn_mode(region: &mut Region) -> Result<()> {
    let Some(fd) = region.fd() else { return Ok(()) };
    let (_, _, mode) = sys::shm::fstat(fd).map_err(|e| Error::os("fstat", region.name(), e))?;
    if mode & 0o077 != 0 {
        region.push_warning(format!("mode {:04o} lets other users in (0600 expected)", mode & 0o777));
    }
    Ok(())
}

fn open_error(op: &'static str, label: &str, e: Errno) -> Error {
    let err = Error::os(op, label, e);
    match e {
        Errno::NOENT => err.with_detail("no such object"),
        Errno::EXIST => err.with_detail("it exists already"),
        Errno::NOSPC => err.with_detail("no space left for the segment"),
        _ => err,
    }
}

/// Removes a named object: `shm_unlink`, `shmctl(IPC_RMID)`, or unlinking
/// the file.
pub fn remove(name: &ShmName) -> Result<()> {
    let label = name.to_string();
    match name {
        ShmName::Posix(n) => sys::shm::shm_unlink(n).map_err(|e| Error::os("rm", &label, e)),
        ShmName::Sysv(key) => {
            let key = crate::mq::sysv::resolve_key(key, &label)?;
            let id = sys::shm::shmget(key, 0, 0).map_err(|e| Error::os("rm", &label, e))?;
            sys::shm::shm_remove(id).map_err(|e| Error::os("rm", &label, e))
        }
        ShmName::File(p) => std::fs::remove_file(p).map_err(|e| {
            let errno = Errno::from_io_error(&e).unwrap_or(Errno::IO);
            Error::os("rm", &label, errno)
        }),
    }
}

/// What `ipckit shm info` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// Size in bytes.
    pub size: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// System V: processes attached, creator pid, last pid.
    pub sysv: Option<(u64, i32, i32)>,
}

/// Size, owner and mode of a named object (and, for System V, the attach
/// count and pids), without mapping it.
pub fn info(name: &ShmName) -> Result<Info> {
    let label = name.to_string();
    match name {
        ShmName::Posix(n) => {
            let fd =
                sys::shm::shm_open(n, rustix::shm::OFlags::RDONLY, 0).map_err(|e| open_error("shm_open", &label, e))?;
            let (size, uid, mode) = sys::shm::fstat(&fd).map_err(|e| Error::os("fstat", &label, e))?;
            Ok(Info { size, uid, mode: mode & 0o777, sysv: None })
        }
        ShmName::File(p) => {
            let fd =
                sys::shm::open_file(p, rustix::fs::OFlags::RDONLY, 0).map_err(|e| open_error("open", &label, e))?;
            let (size, uid, mode) = sys::shm::fstat(&fd).map_err(|e| Error::os("fstat", &label, e))?;
            Ok(Info { size, uid, mode: mode & 0o777, sysv: None })
        }
        ShmName::Sysv(key) => {
            let key = crate::mq::sysv::resolve_key(key, &label)?;
            let id = sys::shm::shmget(key, 0, 0).map_err(|e| open_error("shmget", &label, e))?;
            let st = sys::shm::shm_stat(id).map_err(|e| Error::os("shmctl IPC_STAT", &label, e))?;
            Ok(Info {
                size: st.size,
                uid: st.uid,
                mode: st.mode,
                sysv: Some((st.attached, st.creator_pid, st.last_pid)),
            })
        }
    }
}
