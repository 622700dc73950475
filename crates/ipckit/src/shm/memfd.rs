//! Anonymous shared memory: sealed memfds, passed over Unix sockets.
//!
//! A memfd made here is sealed against shrinking and growing
//! (`F_SEAL_SHRINK | F_SEAL_GROW`), so a receiver that maps it can never be
//! hit by `SIGBUS` from a truncation. [`Region::seal_writes`] adds
//! `F_SEAL_FUTURE_WRITE` for read-only sharing: the creator's own mapping
//! stays writable, every later mapping is read-only.

use std::os::fd::{AsFd, OwnedFd};

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
