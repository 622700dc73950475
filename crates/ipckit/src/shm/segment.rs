//! Opening named segments: POSIX objects, System V segments, mapped files.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::region::{Backing, Region};
use crate::error::{Error, ErrorKind, Result};
use crate::name::{self, Attempt, Create, Opened, ShmName, SysvKey, resolve_key};
use crate::sys::{self, Errno};

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
        self.open_inner(Create::Exclusive).map(|(r, _)| r)
    }

    /// Opens an existing object: `NotFound` if there is none.
    pub fn open(&self) -> Result<Region> {
        self.open_inner(Create::No).map(|(r, _)| r)
    }

    /// Opens the object, creating it if it does not exist.
    pub fn open_or_create(&self) -> Result<(Region, Opened)> {
        self.open_inner(Create::IfMissing)
    }

    fn open_inner(&self, create: Create) -> Result<(Region, Opened)> {
        let label = self.name.to_string();
        if create != Create::No {
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
                if let Some(max) = sys::process::file_size_limit() {
                    if size as u64 > max {
                        return Err(invalid(format!("size {size} exceeds RLIMIT_FSIZE={max}")));
                    }
                }
            }
        }
        Ok(())
    }

    fn open_posix(&self, name: &str, create: Create, label: String) -> Result<(Region, Opened)> {
        let (fd, opened) = name::create_or_open(create, |attempt| {
            sys::shm::shm_open(name, self.writable, (attempt == Attempt::Create).then_some(self.mode))
        })
        .map_err(|(_, e)| open_error("shm_open", &label, e))?;
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

    fn open_file(&self, path: &Path, create: Create, label: String) -> Result<(Region, Opened)> {
        let (fd, opened) = name::create_or_open(create, |attempt| {
            sys::shm::open_file(path, self.writable, (attempt == Attempt::Create).then_some(self.mode))
        })
        .map_err(|(_, e)| open_error("open", &label, e))?;
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
            sys::fs::fchmod(fd, self.mode).map_err(|e| Error::os("fchmod", label, e))?;
            sys::shm::set_len(fd.as_fd(), size as u64).map_err(|e| Error::os("ftruncate", label, e))?;
            sys::shm::reserve(fd.as_fd(), size as u64)
                .map_err(|e| Error::os("posix_fallocate", label, e).with_detail(format!("reserving {size} bytes")))?;
            return Ok(size);
        }
        let st = sys::fs::fstat(fd).map_err(|e| Error::os("fstat", label, e))?;
        check_owner(st.uid, label)?;
        let len =
            usize::try_from(st.size).map_err(|_| Error::new(ErrorKind::Invalid, "open", label, "too large to map"))?;
        if len == 0 {
            return Err(Error::new(ErrorKind::Corrupt, "open", label, "the object is empty (size 0: truncated?)"));
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

    fn open_sysv(&self, key: &SysvKey, create: Create, label: String) -> Result<(Region, Opened)> {
        let key = resolve_key(key, &label)?;
        let size = self.size.unwrap_or(0);
        let (id, opened) = name::create_or_open(create, |attempt| match attempt {
            Attempt::Create => sys::shm::shmget(key, size, Some(self.mode)),
            Attempt::Open => sys::shm::shmget(key, 0, None),
        })
        .map_err(|(attempt, e)| match (attempt, e) {
            (Attempt::Create, Errno::NOMEM | Errno::INVAL | Errno::NOSPC) => {
                let limit = |p: &str| sys::proc_limit(p).map_or("?".into(), |v| v.to_string());
                Error::os("shmget", &label, e).with_kind(ErrorKind::Invalid).with_detail(format!(
                    "size {size} is beyond what the kernel grants (shmmax={}, shmall={} pages, memory)",
                    limit("/proc/sys/kernel/shmmax"),
                    limit("/proc/sys/kernel/shmall"),
                ))
            }
            (_, e) => open_error("shmget", &label, e),
        })?;
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
    name::check_owner("open", label, "object", uid)
}

fn warn_mode(region: &mut Region) -> Result<()> {
    let Some(fd) = region.fd() else { return Ok(()) };
    let st = sys::fs::fstat(fd).map_err(|e| Error::os("fstat", region.name(), e))?;
    if st.mode & 0o077 != 0 {
        region.push_warning(format!("mode {:04o} lets other users in (0600 expected)", st.mode & 0o777));
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
            let key = resolve_key(key, &label)?;
            let id = sys::shm::shmget(key, 0, None).map_err(|e| Error::os("rm", &label, e))?;
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
            let fd = sys::shm::shm_open(n, false, None).map_err(|e| open_error("shm_open", &label, e))?;
            let st = sys::fs::fstat(&fd).map_err(|e| Error::os("fstat", &label, e))?;
            Ok(Info { size: st.size, uid: st.uid, mode: st.mode & 0o777, sysv: None })
        }
        ShmName::File(p) => {
            let fd = sys::shm::open_file(p, false, None).map_err(|e| open_error("open", &label, e))?;
            let st = sys::fs::fstat(&fd).map_err(|e| Error::os("fstat", &label, e))?;
            Ok(Info { size: st.size, uid: st.uid, mode: st.mode & 0o777, sysv: None })
        }
        ShmName::Sysv(key) => {
            let key = resolve_key(key, &label)?;
            let id = sys::shm::shmget(key, 0, None).map_err(|e| open_error("shmget", &label, e))?;
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
