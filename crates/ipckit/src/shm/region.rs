//! [`Region`]: a mapped shared-memory segment of any kind, with access that
//! is safe although other processes write the same bytes.

use std::mem::{align_of, size_of};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::{Error, ErrorKind, Result};
use crate::sys::shm::Mapping;
use crate::sys::{self};

/// What backs a region, and what dropping it removes.
#[derive(Debug)]
pub(crate) enum Backing {
    /// A POSIX shared-memory object (`/dev/shm/NAME`).
    Posix { name: String, fd: OwnedFd, unlink_on_drop: bool },
    /// A System V segment.
    Sysv { key: i32, id: i32, remove_on_drop: bool },
    /// An anonymous memfd.
    Memfd { fd: OwnedFd },
    /// A file in the file system.
    File { path: PathBuf, fd: OwnedFd, unlink_on_drop: bool },
}

/// A mapped shared-memory segment: POSIX, System V, memfd or file.
///
/// The bytes may change at any moment (another process can write them), so
/// a `Region` never hands out `&[u8]` or `&T` over them: reads copy out
/// ([`read_at`](Self::read_at), [`read`](Self::read)), writes copy in
/// ([`write_at`](Self::write_at), [`write`](Self::write)), and shared words
/// are atomics ([`atomic_u32`](Self::atomic_u32)). What is copied out can be
/// checked, once, before it is used: a peer that scribbles causes wrong
/// data, never undefined behaviour. See the module docs for the trust model.
#[derive(Debug)]
pub struct Region {
    // Field order: unmap before the descriptor closes (either order is
    // valid for the kernel; this one reads naturally).
    map: Mapping,
    backing: Backing,
    writable: bool,
    label: String,
    warnings: Vec<String>,
}

impl Region {
    pub(crate) fn new(map: Mapping, backing: Backing, writable: bool, label: String) -> Region {
        Region { map, backing, writable, label, warnings: Vec::new() }
    }

    /// Drops the region without removing its name (even if asked to on
    /// drop): the name may belong to another object by then.
    pub(crate) fn keep_name(&mut self) {
        match &mut self.backing {
            Backing::Posix { unlink_on_drop, .. } | Backing::File { unlink_on_drop, .. } => *unlink_on_drop = false,
            Backing::Sysv { remove_on_drop, .. } => *remove_on_drop = false,
            Backing::Memfd { .. } => {}
        }
    }

    pub(crate) fn push_warning(&mut self, w: String) {
        self.warnings.push(w);
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: regions have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Whether this mapping may be written.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The object's name as ipckit prints it (`/name`, `sysv:KEY`,
    /// `memfd:NAME`, a path).
    pub fn name(&self) -> &str {
        &self.label
    }

    /// Concerns found when opening (e.g. permissions wider than 0600). Call
    /// [`deny_warnings`](Self::deny_warnings) to make them errors.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Turns the warnings found at open into a `PermissionDenied` error.
    pub fn deny_warnings(self) -> Result<Region> {
        match self.warnings.first() {
            None => Ok(self),
            Some(w) => Err(Error::new(ErrorKind::PermissionDenied, "open", &self.label, w.clone())),
        }
    }

    /// Checks that `offset..offset+len` lies inside the region.
    #[inline]
    fn range(&self, op: &'static str, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::new(
                ErrorKind::Invalid,
                op,
                &self.label,
                format!("offset {offset} + length {len} is past the end of the {}-byte region", self.len()),
            )),
        }
    }

    #[inline]
    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::PermissionDenied, op, &self.label, "the region is mapped read-only"))
        }
    }

    #[inline]
    fn aligned(&self, op: &'static str, offset: usize, align: usize, what: &str) -> Result<()> {
        // The mapping is page-aligned, so offset alignment is address
        // alignment.
        // Alignments are powers of two: a mask, not a division.
        if offset & (align - 1) == 0 {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Invalid,
                op,
                &self.label,
                format!("offset {offset} is not aligned to {align} bytes for {what}"),
            ))
        }
    }

    /// Copies `buf.len()` bytes at `offset` out of the region.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.range("read", offset, buf.len())?;
        // SAFETY: the source range is inside the live mapping (checked) and
        // the destination is a distinct local buffer. No reference to the
        // shared bytes is created: they are copied through a raw pointer,
        // and bytes another process changes meanwhile are copied as whatever
        // value they hold (the caller validates copies; u8 has no invalid
        // values).
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(offset), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `data` into the region at `offset`.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable("write")?;
        self.range("write", offset, data.len())?;
        // SAFETY: the destination range is inside the live, writable mapping
        // (checked) and never referenced by Rust code; the source is a
        // distinct caller buffer.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_ptr().add(offset), data.len()) };
        Ok(())
    }

    /// Copies a `T` out of the region. `T: FromBytes` means any bytes a
    /// peer wrote are a valid `T`. `offset` must be aligned for `T`.
    pub fn read<T: FromBytes>(&self, offset: usize) -> Result<T> {
        self.range("read", offset, size_of::<T>())?;
        self.aligned("read", offset, align_of::<T>(), std::any::type_name::<T>())?;
        let mut value = T::new_zeroed();
        // SAFETY: as in `read_at`: a raw copy of size_of::<T>() bytes from
        // inside the mapping into a local `T`; every bit pattern is a valid
        // `T` (FromBytes).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(offset),
                (&mut value as *mut T).cast::<u8>(),
                size_of::<T>(),
            )
        };
        Ok(value)
    }

    /// Copies a `T` into the region. `offset` must be aligned for `T`.
    pub fn write<T: IntoBytes + Immutable>(&self, offset: usize, value: &T) -> Result<()> {
        self.aligned("write", offset, align_of::<T>(), std::any::type_name::<T>())?;
        self.write_at(offset, value.as_bytes())
    }

    /// A shared 32-bit atomic at `offset` (4-byte aligned). Atomics are
    /// sound on memory other processes access; they are what locks, rings
    /// and futexes are built from.
    /// The region must be writable: a store through an atomic on a
    /// read-only mapping would fault. Read-only regions use
    /// [`load_u32`](Self::load_u32).
    #[inline]
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.check_writable("atomic")?;
        self.range("atomic", offset, 4)?;
        self.aligned("atomic", offset, 4, "AtomicU32")?;
        // SAFETY: the 4 bytes are inside the mapping, which lives as long as
        // the returned borrow of `self`, and aligned (checked). AtomicU32 has
        // the layout of u32 and permits concurrent access from anywhere,
        // including other processes; any bit pattern is a valid u32.
        Ok(unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(offset).cast()) })
    }

    /// A shared 64-bit atomic at `offset` (8-byte aligned).
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.check_writable("atomic")?;
        self.range("atomic", offset, 8)?;
        self.aligned("atomic", offset, 8, "AtomicU64")?;
        // SAFETY: as for `atomic_u32`, with 8 bytes and 8-byte alignment.
        Ok(unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(offset).cast()) })
    }

    /// An atomic load of the 32-bit word at `offset` (4-byte aligned), for
    /// read-only regions too.
    pub fn load_u32(&self, offset: usize, order: std::sync::atomic::Ordering) -> Result<u32> {
        self.range("atomic load", offset, 4)?;
        self.aligned("atomic load", offset, 4, "u32")?;
        // SAFETY: as in `atomic_u32`; only a load is performed, which a
        // read-only mapping permits.
        Ok(unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(offset).cast()) }.load(order))
    }

    /// An atomic load of the 64-bit word at `offset` (8-byte aligned).
    pub fn load_u64(&self, offset: usize, order: std::sync::atomic::Ordering) -> Result<u64> {
        self.range("atomic load", offset, 8)?;
        self.aligned("atomic load", offset, 8, "u64")?;
        // SAFETY: as in `load_u32`, with 8 bytes and 8-byte alignment.
        Ok(unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(offset).cast()) }.load(order))
    }

    /// The first byte of the mapping. Using the pointer is `unsafe`; see
    /// [`as_slice`](Self::as_slice) for what a caller must promise.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// The whole region as a byte slice, for code that must hand shared
    /// memory to an API taking `&[u8]` (e.g. a parser) without copying.
    ///
    /// # Safety
    ///
    /// The caller promises that no process writes the region while the slice
    /// lives (for example: the region is a memfd sealed against writes, or a
    /// protocol hands the bytes over and the writer waits), and, for a region
    /// that is not sealed against shrinking, that no process truncates the
    /// backing object (an access past its end raises `SIGBUS`).
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is valid for reads of `len` bytes for the
        // lifetime of `&self`; freedom from concurrent writes is the
        // caller's promise.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.len()) }
    }

    /// The whole region as a mutable byte slice.
    ///
    /// # Safety
    ///
    /// As for [`as_slice`](Self::as_slice), and moreover no other process
    /// reads or writes the region, and no other slice or reference from this
    /// region is alive, while the returned slice lives; the region is
    /// writable.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: valid for writes of `len` bytes while `&self` lives;
        // exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr(), self.len()) }
    }

    /// `msync(MS_SYNC)`: writes changes of a file mapping back to the file.
    pub fn flush(&self) -> Result<()> {
        self.flush_range(0, self.len())
    }

    /// `msync(MS_SYNC)` of part of the region.
    pub fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
        self.range("msync", offset, len)?;
        self.map.flush(offset, len).map_err(|e| Error::os("msync", &self.label, e))
    }

    /// The backing descriptor (POSIX, memfd, file; not System V).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backing {
            Backing::Posix { fd, .. } | Backing::Memfd { fd } | Backing::File { fd, .. } => Some(fd.as_fd()),
            Backing::Sysv { .. } => None,
        }
    }

    /// The System V key and id, for a System V segment.
    pub fn sysv_key_and_id(&self) -> Option<(i32, i32)> {
        match self.backing {
            Backing::Sysv { key, id, .. } => Some((key, id)),
            _ => None,
        }
    }

    pub(crate) fn backing(&self) -> &Backing {
        &self.backing
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        match &self.backing {
            Backing::Posix { name, unlink_on_drop: true, .. } => {
                let _ = sys::shm::shm_unlink(name);
            }
            Backing::Sysv { id, remove_on_drop: true, .. } => {
                let _ = sys::shm::shm_remove(*id);
            }
            Backing::File { path, unlink_on_drop: true, .. } => {
                let _ = std::fs::remove_file(path);
            }
            _ => {}
        }
    }
}
