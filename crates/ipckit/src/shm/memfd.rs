//! Anonymous shared memory: sealed memfds, passed over Unix sockets.
//!
//! A memfd made here is sealed against shrinking and growing
//! (`F_SEAL_SHRINK | F_SEAL_GROW`), so a receiver that maps it can never be
//! hit by `SIGBUS` from a truncation. [`Region::seal_writes`] adds
//! `F_SEAL_FUTURE_WRITE` for read-only sharing: the creator's own mapping
//! stays writable, every later mapping is read-only.
//!
//! A sealed message ([`Sealed`], from
//! [`Sender::send_sealed`](crate::Sender::send_sealed)) goes further: its
//! memfd is sealed with `F_SEAL_WRITE` as well, so that nobody can change
//! it any more, and its bytes can be read in place as a safe `&[u8]`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::region::{Backing, Region};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::shm::{Mapping, Seals};
use crate::sys::{self, Errno};

/// What a receiver demands of a descriptor before mapping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Only a memfd sealed against shrinking and growing (the default
    /// choice: a sender cannot make the mapping fault later).
    SealedOnly,
    /// Any shared-memory descriptor: the caller trusts the sender not to
    /// truncate it (the safe copies then report `Corrupt`, through the
    /// descriptor; atomics and raw access on the mapping raise `SIGBUS`).
    TrustSender,
}

impl Region {
    /// `memfd_create` + `ftruncate` + seals: a new anonymous region of
    /// `size` bytes, sealed against shrinking and growing, to pass to other
    /// processes with [`SendMeta::fds`](crate::SendMeta::fds).
    pub fn memfd(name: &str, size: usize) -> Result<Region> {
        Region::memfd_with(name, size, true)
    }

    /// A memfd region whose pages are not reserved: sparse, a page costs
    /// memory only once written (a payload pool, which reserves its chunks
    /// the first time it lends them).
    pub(crate) fn memfd_sparse(name: &str, size: usize) -> Result<Region> {
        Region::memfd_with(name, size, false)
    }

    fn memfd_with(name: &str, size: usize, reserve: bool) -> Result<Region> {
        let label = format!("memfd:{name}");
        if size == 0 {
            return Err(Error::new(
                ErrorKind::Invalid,
                "memfd_create",
                &label,
                "size 0: a segment needs at least one byte",
            ));
        }
        // ftruncate past RLIMIT_FSIZE raises SIGXFSZ: refuse first.
        if let Some(max) = sys::process::file_size_limit() {
            if size as u64 > max {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "memfd_create",
                    &label,
                    format!("size {size} exceeds RLIMIT_FSIZE={max}"),
                ));
            }
        }
        let fd = sys::shm::memfd(name).map_err(|e| Error::os("memfd_create", &label, e))?;
        sys::shm::set_len(fd.as_fd(), size as u64).map_err(|e| Error::os("ftruncate", &label, e))?;
        if reserve {
            sys::shm::reserve(fd.as_fd(), size as u64).map_err(|e| Error::os("fallocate", &label, e))?;
        }
        sys::shm::add_seals(fd.as_fd(), Seals::SHRINK | Seals::GROW)
            .map_err(|e| Error::os("F_ADD_SEALS", &label, e))?;
        let map = Mapping::map_fd(fd.as_fd(), size, true).map_err(|e| Error::os("mmap", &label, e))?;
        Ok(Region::new(map, Backing::Memfd { fd }, true, label))
    }

    /// Adds `F_SEAL_FUTURE_WRITE` to a memfd region: from now on nobody can
    /// map it writable or write it with `write(2)`; this region's own mapping
    /// stays writable.
    pub fn seal_writes(&self) -> Result<()> {
        let Backing::Memfd { fd } = self.backing() else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "F_ADD_SEALS",
                self.name(),
                "only memfd regions can be sealed",
            ));
        };
        sys::shm::add_seals(fd.as_fd(), Seals::FUTURE_WRITE).map_err(|e| Error::os("F_ADD_SEALS", self.name(), e))
    }

    /// Reserves `len` bytes at `offset` of a sparse memfd region now, so
    /// that no memory shows as `ENOSPC` here rather than as `SIGBUS` at a
    /// later store.
    pub(crate) fn reserve_range(&self, offset: usize, len: usize) -> Result<()> {
        let Backing::Memfd { fd } = self.backing() else {
            return Err(Error::new(ErrorKind::Unsupported, "fallocate", self.name(), "not a memfd"));
        };
        sys::shm::reserve_range(fd.as_fd(), offset as u64, len as u64)
            .map_err(|e| Error::os("fallocate", self.name(), e))
    }

    /// Where the first hole (a page never written) at or after `offset`
    /// of a memfd region starts.
    pub(crate) fn next_hole(&self, offset: usize) -> Result<usize> {
        let Backing::Memfd { fd } = self.backing() else {
            return Err(Error::new(ErrorKind::Unsupported, "lseek", self.name(), "not a memfd"));
        };
        let at = sys::fs::next_hole(fd, offset as u64).map_err(|e| Error::os("lseek", self.name(), e))?;
        Ok(usize::try_from(at).unwrap_or(usize::MAX))
    }

    /// Adds `F_SEAL_SEAL` to a memfd region: no seal can be added or
    /// removed any more.
    pub(crate) fn seal_seals(&self) -> Result<()> {
        let Backing::Memfd { fd } = self.backing() else {
            return Err(Error::new(ErrorKind::Unsupported, "F_ADD_SEALS", self.name(), "not a memfd"));
        };
        sys::shm::add_seals(fd.as_fd(), Seals::SEAL).map_err(|e| Error::os("F_ADD_SEALS", self.name(), e))
    }

    /// Maps a descriptor received from another process, announced as
    /// `len` bytes. Before mapping, checks that it is at least `len` bytes
    /// and, with [`Trust::SealedOnly`], that it is a memfd sealed against
    /// shrinking and growing; anything else is refused and closed. A memfd
    /// sealed against writes is mapped read-only.
    pub fn from_received_fd(fd: OwnedFd, len: usize, trust: Trust) -> Result<Region> {
        let label = "received memfd".to_string();
        let refuse = |why: String| Error::new(ErrorKind::PermissionDenied, "map", &label, why);
        if len == 0 {
            return Err(Error::new(ErrorKind::Invalid, "map", &label, "announced length 0"));
        }
        let seals = match sys::shm::seals(fd.as_fd()) {
            Ok(s) => s,
            Err(Errno::INVAL) => Seals::empty(),
            Err(e) => return Err(Error::os("F_GET_SEALS", &label, e)),
        };
        let sealed = seals.contains(Seals::SHRINK | Seals::GROW);
        if trust == Trust::SealedOnly && !sealed {
            return Err(refuse(format!(
                "not sealed against shrinking and growing (seals {seals:?}): a sender could truncate it and \
                 make access fault; refused before mapping (use Trust::TrustSender to accept it)"
            )));
        }
        // Only now: once SHRINK is sealed, the size can no longer drop
        // below what fstat reports.
        let size = sys::fs::fstat(&fd).map_err(|e| Error::os("fstat", &label, e))?.size;
        if size < len as u64 {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "map",
                &label,
                format!("the descriptor has {size} bytes, fewer than the {len} announced; refused before mapping"),
            ));
        }
        // Read-only when sealed against writes or opened read-only.
        let opened_rw = sys::fs::is_read_write(&fd).map_err(|e| Error::os("fcntl", &label, e))?;
        let writable = opened_rw && !seals.intersects(Seals::WRITE | Seals::FUTURE_WRITE);
        let map = Mapping::map_fd(fd.as_fd(), len, writable).map_err(|e| Error::os("mmap", &label, e))?;
        Ok(Region::new(map, Backing::Memfd { fd }, writable, label))
    }
}

/// The seals a sealed message's memfd must carry: nobody can write,
/// shrink or grow it any more.
const SEALED_MESSAGE: Seals = Seals::WRITE.union(Seals::SHRINK).union(Seals::GROW);

/// Seals as `fcntl(2)` names them: `F_SEAL_SHRINK | F_SEAL_GROW`, or `none`.
fn seal_names(seals: Seals) -> String {
    let names = [
        (Seals::SEAL, "F_SEAL_SEAL"),
        (Seals::SHRINK, "F_SEAL_SHRINK"),
        (Seals::GROW, "F_SEAL_GROW"),
        (Seals::WRITE, "F_SEAL_WRITE"),
        (Seals::FUTURE_WRITE, "F_SEAL_FUTURE_WRITE"),
    ];
    let named: Vec<&str> = names.iter().filter(|(s, _)| seals.contains(*s)).map(|(_, n)| *n).collect();
    if named.is_empty() { "none".into() } else { named.join(" | ") }
}

/// The payload of a sealed memfd message: a memfd sealed with
/// `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW`, checked and mapped
/// read-only. [`Meta::sealed`](crate::Meta::sealed) holds one for a message
/// sent with [`Sender::send_sealed`](crate::Sender::send_sealed) (or by any
/// program that follows the wire format in the README).
///
/// Unlike every other view of shared memory in ipckit, its bytes are a
/// safe `&[u8]` ([`as_bytes`](Self::as_bytes)): the kernel guarantees that
/// nobody, the sender included, can change them any more. Dropping it
/// unmaps the payload and closes the memfd.
///
/// ```no_run
/// # let mut rx = ipckit::Receiver::bind(&"unix:@app".parse()?)?;
/// let msg = rx.recv()?;
/// if let Some(sealed) = &msg.meta.sealed {
///     let bytes: &[u8] = sealed.as_bytes(); // in place: no copy
///     println!("{} bytes", bytes.len());
/// }
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug)]
pub struct Sealed {
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// The read-only mapping, which owns the memfd.
    Mapped(Region),
    /// An empty payload: nothing to map (a mapping has at least one byte).
    Empty(OwnedFd),
}

impl Sealed {
    /// Takes a memfd received with a sealed-message marker that announced
    /// `announced` bytes. Refused before mapping, with the descriptor
    /// closed: a length over `max` (`TooLarge`); a descriptor that is not a
    /// memfd sealed with `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW`, or
    /// whose size is not exactly the announced length (`Corrupt`). `name`
    /// is the endpoint, for errors.
    pub(crate) fn receive(fd: OwnedFd, announced: u64, max: usize, name: &str) -> Result<Sealed> {
        let refuse = |why: String| {
            Error::new(
                ErrorKind::Corrupt,
                "recv",
                name,
                format!("sealed message refused before mapping, its descriptor closed: {why}"),
            )
        };
        if announced > max as u64 {
            return Err(Error::new(
                ErrorKind::TooLarge,
                "recv",
                name,
                format!(
                    "sealed message of {announced} bytes exceeds the maximum of {max} bytes; its descriptor was \
                     closed"
                ),
            ));
        }
        let seals = match sys::shm::seals(fd.as_fd()) {
            Ok(s) => s,
            Err(Errno::INVAL) => return Err(refuse("the descriptor is not a memfd (F_GET_SEALS: EINVAL)".into())),
            Err(e) => return Err(Error::os("F_GET_SEALS", name, e).with_detail("sealed message")),
        };
        // F_SEAL_FUTURE_WRITE is not enough: it leaves a writable mapping
        // made before it in place, through which the sender could still
        // change the bytes. F_SEAL_WRITE cannot be added while such a
        // mapping exists (the kernel answers EBUSY), so once it is there,
        // none is.
        if !seals.contains(SEALED_MESSAGE) {
            return Err(refuse(format!(
                "the memfd is not sealed against writing, shrinking and growing (its seals: {}; F_SEAL_WRITE | \
                 F_SEAL_SHRINK | F_SEAL_GROW are required, F_SEAL_FUTURE_WRITE is not enough)",
                seal_names(seals)
            )));
        }
        // With F_SEAL_SHRINK and F_SEAL_GROW in place, the size can no longer
        // change after this fstat.
        let size = sys::fs::fstat(&fd).map_err(|e| Error::os("fstat", name, e).with_detail("sealed message"))?.size;
        if size != announced {
            return Err(refuse(format!("the memfd has {size} bytes, the marker announces {announced}")));
        }
        if announced == 0 {
            return Ok(Sealed { held: Held::Empty(fd) });
        }
        // At most `max`, so it fits a usize.
        let len = announced as usize;
        let label = format!("sealed memfd from {name}");
        let map = Mapping::map_fd_read_private(fd.as_fd(), len).map_err(|e| Error::os("mmap", &label, e))?;
        Ok(Sealed { held: Held::Mapped(Region::new(map, Backing::Memfd { fd }, false, label)) })
    }

    /// The payload, in place (no copy).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.held {
            Held::Empty(_) => &[],
            // SAFETY: `Region::as_slice` asks that no process write the
            // region or truncate its backing while the slice lives. Both
            // hold for as long as the memfd exists: `receive` mapped it only
            // after checking that it carries F_SEAL_WRITE, F_SEAL_SHRINK and
            // F_SEAL_GROW, and seals can never be removed. With F_SEAL_WRITE
            // the kernel refuses every write to the contents (write, pwrite,
            // a writable shared mapping, fallocate's hole punching), and it
            // could only be added when no writable shared mapping and no
            // pinned page of the memfd existed, so no earlier mapping (the
            // sender's) can write either; F_SEAL_SHRINK rules out the
            // truncation that would make the pages fault. The mapping itself
            // is read-only and private to this process, and exactly as long
            // as the memfd (checked with fstat after the size was sealed).
            // The slice borrows `self`, which owns the mapping.
            Held::Mapped(region) => unsafe { region.as_slice() },
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        match &self.held {
            Held::Empty(_) => 0,
            Held::Mapped(region) => region.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The read-only [`Region`] of the memfd, to keep or to read with the
    /// region's API; `None` for an empty payload (a region has at least
    /// one byte).
    pub fn into_region(self) -> Option<Region> {
        match self.held {
            Held::Empty(_) => None,
            Held::Mapped(region) => Some(region),
        }
    }
}

impl AsFd for Sealed {
    /// The sealed memfd (to pass it on with
    /// [`SendMeta::fds`](crate::SendMeta::fds), for example).
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.held {
            Held::Empty(fd) => fd.as_fd(),
            Held::Mapped(region) => region.fd().expect("a memfd region has a descriptor"),
        }
    }
}

/// A fresh memfd holding `payload`, sealed with `F_SEAL_WRITE |
/// F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`: what a sealed message
/// passes. Written with `pwrite` and never mapped, so that `F_SEAL_WRITE`
/// finds no writable mapping. `name` is the endpoint, for errors.
pub(crate) fn sealed_memfd(payload: &[u8], name: &str) -> Result<OwnedFd> {
    let op = "send_sealed";
    // A write past RLIMIT_FSIZE raises SIGXFSZ: refuse first.
    if let Some(max) = sys::process::file_size_limit() {
        if payload.len() as u64 > max {
            return Err(Error::new(
                ErrorKind::TooLarge,
                op,
                name,
                format!("a sealed message of {} bytes exceeds RLIMIT_FSIZE={max}", payload.len()),
            ));
        }
    }
    let fd = sys::shm::memfd("ipckit-sealed").map_err(|e| Error::os(op, name, e).with_detail("memfd_create"))?;
    sys::io::pwrite_all(fd.as_fd(), payload, 0)
        .map_err(|e| Error::os(op, name, e).with_detail("writing the payload into the memfd (pwrite)"))?;
    sys::shm::add_seals(fd.as_fd(), SEALED_MESSAGE | Seals::SEAL)
        .map_err(|e| Error::os(op, name, e).with_detail("sealing the memfd (F_ADD_SEALS)"))?;
    Ok(fd)
}
