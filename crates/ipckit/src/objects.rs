//! Every IPC object on this machine, listed and removed: what `ipckit ls`,
//! `ipckit clean` and `ipckit rm` print and do.
//!
//! The sources are the kernel's own listings: `/dev/shm` (POSIX shared
//! memory and, as `sem.NAME`, POSIX named semaphores), `/dev/mqueue` (POSIX
//! queues, where the mqueue file system is mounted) and `/proc/sysvipc`
//! (System V queues, segments and semaphore sets). Shared-memory objects
//! that start with an ipckit header are marked with their
//! [`ObjectKind`] and whether they are stale: no participant holds their
//! `flock` (System V: nothing attached). [`clean`] removes exactly this
//! user's stale ipckit objects, each checked again under its exclusive lock.
//!
//! ```
//! for o in ipckit::objects::list() {
//!     println!("{} {} {} bytes", o.kind, o.name, o.size);
//! }
//! ```

use std::fmt;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::name::ShmName;
use crate::shm::{self, Header, MAGIC, ObjectKind, STATE_READY, Segment};
use crate::sys;

/// The families of objects [`list`] finds.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// POSIX shared memory (`/dev/shm/NAME`), named `/NAME`.
    PosixShm,
    /// A POSIX named semaphore (`/dev/shm/sem.NAME`), named `/NAME`.
    PosixSemaphore,
    /// A POSIX message queue (`/dev/mqueue/NAME`), named `mq:/NAME`.
    PosixQueue,
    /// A System V message queue, named `sysv-mq:0xKEY`.
    SysvQueue,
    /// A System V shared-memory segment, named `sysv:0xKEY`.
    SysvShm,
    /// A System V semaphore set, named `sysv:0xKEY`.
    SysvSemaphores,
    /// A `shm:` channel, named `shm:NAME`: its receiver's control socket
    /// (an abstract name, so nothing is left of it once its processes
    /// are gone).
    ShmChannel,
}

impl Family {
    /// The short name `ipckit ls` prints: `shm`, `sem`, `mq`, `sysv-mq`,
    /// `sysv-shm`, `sysv-sem`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::PosixShm => "shm",
            Family::PosixSemaphore => "sem",
            Family::PosixQueue => "mq",
            Family::SysvQueue => "sysv-mq",
            Family::SysvShm => "sysv-shm",
            Family::SysvSemaphores => "sysv-sem",
            Family::ShmChannel => "shm-channel",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ipckit object, as its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpckitObject {
    /// What it is (`None`: a kind this build does not know).
    pub kind: Option<ObjectKind>,
    /// No process holds it any more: [`clean`] may remove it.
    pub stale: bool,
}

impl IpckitObject {
    /// The kind's name, `object` for a kind this build does not know.
    pub fn kind_name(&self) -> &'static str {
        self.kind.map_or("object", ObjectKind::as_str)
    }
}

/// One object found by [`list`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its family.
    pub kind: Family,
    /// Its name as ipckit spells it (an endpoint or a shared-memory name).
    pub name: String,
    /// Bytes (queues: bytes queued now; semaphore sets: semaphores).
    pub size: u64,
    /// The owner's user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// For ipckit's own objects: the kind, and whether it is stale.
    pub ipckit: Option<IpckitObject>,
    /// For a `shm:` channel: its receiver's pid (when this user may see
    /// it) and how many senders are connected.
    pub channel: Option<ChannelInfo>,
}

/// A `shm:` channel's receiver and senders, as `/proc/net/unix` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The receiver's process, if its descriptors can be read here.
    pub receiver_pid: Option<i32>,
    /// Senders connected now (accepted control connections).
    pub senders: usize,
}

/// Every object visible here: POSIX ones first, then System V ones.
/// Objects that disappear while listing are left out.
pub fn list() -> Vec<ObjectInfo> {
    let mut out = posix_objects();
    out.extend(sysv_objects());
    out.extend(shm_channels());
    out
}

/// `shm:` channels: listening sockets named `@ipckit/shm/NAME` in
/// `/proc/net/unix`, with the connections accepted on them.
fn shm_channels() -> Vec<ObjectInfo> {
    const PREFIX: &str = "@ipckit/shm/";
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else { return Vec::new() };
    // (name, listener inode, connected count)
    let mut found: Vec<(String, Option<u64>, usize)> = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(flags), Some(state), Some(inode), Some(path)) = (cols.get(3), cols.get(5), cols.get(6), cols.get(7))
        else {
            continue;
        };
        let Some(name) = path.strip_prefix(PREFIX) else { continue };
        let listening = u32::from_str_radix(flags, 16).is_ok_and(|f| f & 0x10000 != 0);
        let entry = match found.iter_mut().find(|(n, _, _)| n == name) {
            Some(e) => e,
            None => {
                found.push((name.to_string(), None, 0));
                found.last_mut().expect("just pushed")
            }
        };
        if listening {
            entry.1 = inode.parse().ok();
        } else if *state == "03" {
            entry.2 += 1;
        }
    }
    found
        .into_iter()
        .filter_map(|(name, inode, senders)| {
            let inode = inode?;
            let receiver_pid = socket_owner(inode);
            let uid = receiver_pid.and_then(|p| sys::fs::stat(std::path::Path::new(&format!("/proc/{p}"))).ok());
            Some(ObjectInfo {
                kind: Family::ShmChannel,
                name: format!("shm:{name}"),
                size: 0,
                uid: uid.map_or(u32::MAX, |st| st.uid),
                mode: 0,
                ipckit: None,
                channel: Some(ChannelInfo { receiver_pid, senders }),
            })
        })
        .collect()
}

/// The process holding socket `inode`, from `/proc/PID/fd` (only processes
/// this user may look into).
fn socket_owner(inode: u64) -> Option<i32> {
    let target = format!("socket:[{inode}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// The ipckit header of a segment, if it is an initialised ipckit object.
fn ipckit_header(name: &ShmName) -> Option<Header> {
    let region = Segment::new(name.clone()).read_only().open().ok()?;
    let header: Header = region.read(0).ok()?;
    (header.magic == MAGIC && header.state == STATE_READY).then_some(header)
}

fn classify(name: &ShmName) -> Option<IpckitObject> {
    let header = ipckit_header(name)?;
    let stale = shm::is_stale(name).unwrap_or(false);
    Some(IpckitObject { kind: ObjectKind::from_code(header.kind), stale })
}

fn posix_objects() -> Vec<ObjectInfo> {
    let mut out = Vec::new();
    for dir in ["/dev/shm", "/dev/mqueue"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Ok(st) = sys::fs::stat(&e.path()) else { continue };
            let (kind, name) = match (dir, file.strip_prefix("sem.")) {
                ("/dev/mqueue", _) => (Family::PosixQueue, format!("mq:/{file}")),
                (_, Some(sem)) => (Family::PosixSemaphore, format!("/{sem}")),
                _ => (Family::PosixShm, format!("/{file}")),
            };
            let ipckit = if kind == Family::PosixShm { name.parse().ok().and_then(|n| classify(&n)) } else { None };
            out.push(ObjectInfo {
                kind,
                name,
                size: st.size,
                uid: st.uid,
                mode: st.mode & 0o777,
                ipckit,
                channel: None,
            });
        }
    }
    out
}

fn sysv_objects() -> Vec<ObjectInfo> {
    let mut out = Vec::new();
    for (file, kind) in [("msg", Family::SysvQueue), ("shm", Family::SysvShm), ("sem", Family::SysvSemaphores)] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{file}")) else { continue };
        let mut lines = text.lines();
        let Some(head) = lines.next() else { continue };
        let cols: Vec<&str> = head.split_whitespace().collect();
        fn col<'a>(cols: &[&str], row: &[&'a str], name: &str) -> Option<&'a str> {
            cols.iter().position(|c| *c == name).and_then(|i| row.get(i).copied())
        }
        for line in lines {
            let row: Vec<&str> = line.split_whitespace().collect();
            let key: i32 = col(&cols, &row, "key").and_then(|k| k.parse().ok()).unwrap_or(0);
            let size = match kind {
                Family::SysvShm => col(&cols, &row, "size"),
                Family::SysvQueue => col(&cols, &row, "cbytes"),
                _ => col(&cols, &row, "nsems"),
            };
            let name = match kind {
                Family::SysvQueue => format!("sysv-mq:{:#x}", key as u32),
                _ => format!("sysv:{:#x}", key as u32),
            };
            let ipckit =
                if kind == Family::SysvShm && key != 0 { name.parse().ok().and_then(|n| classify(&n)) } else { None };
            out.push(ObjectInfo {
                kind,
                name,
                size: size.and_then(|s| s.parse().ok()).unwrap_or(0),
                uid: col(&cols, &row, "uid").and_then(|u| u.parse().ok()).unwrap_or(0),
                mode: col(&cols, &row, "perms").and_then(|p| u32::from_str_radix(p, 8).ok()).unwrap_or(0) & 0o777,
                ipckit,
                channel: None,
            });
        }
    }
    out
}

/// This user's stale ipckit objects: what [`clean`] would remove. With
/// `names` not empty, only objects of those names.
pub fn stale(names: &[String]) -> Vec<ObjectInfo> {
    let me = sys::process::geteuid();
    list()
        .into_iter()
        .filter(|o| o.uid == me && o.ipckit.is_some_and(|i| i.stale))
        .filter(|o| names.is_empty() || names.contains(&o.name))
        .collect()
}

/// What [`clean`] did with one stale object.
#[derive(Debug)]
pub enum Cleaned {
    /// Removed.
    Removed(String),
    /// A process took it since it was listed: left alone.
    InUse(String),
    /// Removing it failed.
    Failed(Error),
}

/// Removes this user's stale ipckit objects (only those named, if `names`
/// is not empty). Each is checked again and removed under its exclusive
/// lock, so that a process that joined since the listing keeps it.
pub fn clean(names: &[String]) -> Vec<Cleaned> {
    stale(names)
        .into_iter()
        .map(|o| match o.name.parse::<ShmName>().and_then(|n| shm::remove_if_stale(&n)) {
            Ok(true) => Cleaned::Removed(o.name),
            Ok(false) => Cleaned::InUse(o.name),
            Err(e) => Cleaned::Failed(e),
        })
        .collect()
}

/// Removes what `text` names: an endpoint's object (see
/// [`remove`](crate::remove)), or a shared-memory object (`/name`,
/// `sysv:KEY`, `file:/path`).
pub fn remove(text: &str) -> Result<()> {
    match text.parse::<Endpoint>() {
        Ok(ep) => crate::remove(&ep),
        // No endpoint starts with these: they are shared-memory names.
        Err(_) if text.starts_with('/') || text.starts_with("sysv:") || text.starts_with("file:") => {
            shm::remove(&text.parse::<ShmName>()?)
        }
        Err(e) => Err(e),
    }
}
