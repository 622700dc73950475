//! [`Region`]: a mapped shared-memory segment of any kind, with access that
//! is safe although other processes write the same bytes.
//!
//! # How the safe copies reach the bytes
//!
//! A segment that another process can shrink (a POSIX object, a file, a
//! memfd not sealed against shrinking) makes every access through the
//! mapping past its new end raise `SIGBUS`, which a library cannot catch.
//! So on those, [`Region::read_at`], [`write_at`](Region::write_at),
//! [`read`](Region::read) and [`write`](Region::write) copy through the
//! descriptor instead, with `pread`/`pwrite` at the same offset: the kernel
//! reads and writes the same page-cache pages the mapping shows, and a
//! truncated object gives a short count instead of a fault, reported as
//! `Corrupt` ("the object was truncated", with the object's size now). A
//! write checks the size first, so that it never grows a truncated object
//! back. The price is a system call per copy, two for a write (measured by
//! `benches/region_copy.rs` on the 2-vCPU VM: a 64-byte read takes about
//! 170 ns instead of 3.5 ns, 50 times a memory copy, a 4 KiB read 250 ns
//! instead of 33 ns, 8 times; writes about 110 and 18 times). Code that
//! needs memory speed on such a segment uses a sealed memfd, or raw access
//! with its promises.
//!
//! Segments that cannot shrink keep the memory copy: System V segments
//! (the kernel keeps the pages until the last detach) and memfds sealed
//! with `F_SEAL_SHRINK` ([`Region::memfd`] makes those).
//!
//! Two exceptions keep the mapping on a shrinkable segment, and a
//! truncation can then raise `SIGBUS`: what has no descriptor form
//! (atomics, and the mutexes, semaphores and events built on them; raw
//! pointers and slices), and a write past this process's `RLIMIT_FSIZE` or
//! on an `O_APPEND` descriptor (`pwrite` would raise `SIGXFSZ` or ignore
//! the offset), which go through the mapping as before.

use std::mem::{MaybeUninit, align_of, size_of};
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
///
/// On a segment another process can shrink (POSIX objects, files, memfds
/// not sealed with `F_SEAL_SHRINK`), these copies go through the descriptor
/// (`pread`/`pwrite`), so a truncation is a `Corrupt` error ("the object
/// was truncated"), never `SIGBUS`; on System V segments and sealed memfds
/// they are memory copies. A copy through the descriptor costs a system
/// call: a 64-byte read about 50 times a memory copy, a 4 KiB read about 8
/// times. Atomics and raw access use the mapping everywhere, so on a
/// shrinkable segment a truncation can still fault them.
#[derive(Debug)]
pub struct Region {
    // Field order: unmap before the descriptor closes (either order is
    // valid for the kernel; this one reads naturally).
    map: Mapping,
    backing: Backing,
    writable: bool,
    label: String,
    warnings: Vec<String>,
    copies: Copies,
}

/// How the safe copies reach the bytes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Copies {
    /// Through the mapping: the backing cannot shrink.
    Memory,
    /// Through the descriptor: the backing can shrink. Writes ending past
    /// `write_limit` (`RLIMIT_FSIZE` at open; 0 for an `O_APPEND`
    /// descriptor) go through the mapping.
    Descriptor { write_limit: u64 },
}

impl Region {
    pub(crate) fn new(map: Mapping, backing: Backing, writable: bool, label: String) -> Region {
        let copies = match &backing {
            Backing::Sysv { .. } => Copies::Memory,
            Backing::Posix { fd, .. } | Backing::Memfd { fd } | Backing::File { fd, .. } => {
                match sys::shm::seals(fd.as_fd()) {
                    Ok(seals) if seals.contains(sys::shm::Seals::SHRINK) => Copies::Memory,
                    _ => {
                        let append = sys::io::is_append(fd.as_fd()).unwrap_or(true);
                        let limit = sys::process::file_size_limit().unwrap_or(u64::MAX);
                        Copies::Descriptor { write_limit: if append { 0 } else { limit } }
                    }
                }
            }
        };
        Region { map, backing, writable, label, warnings: Vec::new(), copies }
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

    /// Faults every page of the mapping in now (no first-touch faults on
    /// a hot path later).
    pub(crate) fn populate(&self) {
        self.map.populate(self.writable);
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

    /// Copies `buf.len()` bytes at `offset` out of the region. On a segment
    /// another process can shrink, through the descriptor (`pread`): a
    /// truncated object is `Corrupt`, never `SIGBUS` (see the module docs).
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.range("read", offset, buf.len())?;
        let len = buf.len();
        // SAFETY: u8 and MaybeUninit<u8> have the same layout, and the copy
        // below only stores initialised bytes into the slice.
        let out = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), len) };
        self.copy_out(offset, out)
    }

    /// Copies `out.len()` bytes at `offset` (in range: checked by the
    /// caller) into `out`, initialising all of it or failing.
    #[inline]
    fn copy_out(&self, offset: usize, out: &mut [MaybeUninit<u8>]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        match (self.copies, self.fd()) {
            (Copies::Descriptor { .. }, Some(fd)) => {
                let n = sys::io::pread_full(fd, out, offset as u64).map_err(|e| Error::os("pread", &self.label, e))?;
                if n < out.len() {
                    return Err(self.truncated("read", fd, offset, out.len(), Some(n)));
                }
            }
            _ => {
                // SAFETY: the source range is inside the live mapping
                // (checked by the caller) of a backing that cannot shrink,
                // and the destination is a distinct local buffer. No
                // reference to the shared bytes is created: they are copied
                // through a raw pointer, and bytes another process changes
                // meanwhile are copied as whatever value they hold (the
                // caller validates copies; u8 has no invalid values).
                unsafe {
                    std::ptr::copy_nonoverlapping(self.map.as_ptr().add(offset), out.as_mut_ptr().cast(), out.len())
                };
            }
        }
        Ok(())
    }

    /// The error for a copy of `len` bytes at `offset` that met the end of
    /// a truncated object: a read after `read` bytes, or a write refused
    /// before writing (`None`).
    #[cold]
    fn truncated(&self, op: &'static str, fd: BorrowedFd<'_>, offset: usize, len: usize, read: Option<usize>) -> Error {
        let now = match sys::fs::fstat(fd) {
            Ok(st) => format!("{} bytes", st.size),
            Err(_) => "an unknown size".to_string(),
        };
        let what = match read {
            Some(n) => format!("the copy of {len} bytes at offset {offset} met its end after {n}"),
            None => format!("it ends before offset {offset} + length {len}; nothing was written"),
        };
        Error::new(
            ErrorKind::Corrupt,
            op,
            &self.label,
            format!("the object was truncated: {what} (it had {} bytes when mapped, {now} now)", self.len()),
        )
    }

    /// Copies `data` into the region at `offset`. On a segment another
    /// process can shrink, through the descriptor (`pwrite`), after checking
    /// that the object still reaches that far: a truncated object is
    /// `Corrupt` (and is not grown back), never `SIGBUS`.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable("write")?;
        self.range("write", offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        let end = (offset + data.len()) as u64;
        match (self.copies, self.fd()) {
            (Copies::Descriptor { write_limit }, Some(fd)) if end <= write_limit => {
                let size = sys::fs::fstat(fd).map_err(|e| Error::os("fstat", &self.label, e))?.size;
                if size < end {
                    return Err(self.truncated("write", fd, offset, data.len(), None));
                }
                sys::io::pwrite_all(fd, data, offset as u64).map_err(|e| Error::os("pwrite", &self.label, e))
            }
            _ => {
                // SAFETY: the destination range is inside the live, writable
                // mapping (checked) and never referenced by Rust code; the
                // source is a distinct caller buffer. (A shrinkable backing
                // lands here only past RLIMIT_FSIZE or with O_APPEND: the
                // documented exception.)
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_ptr().add(offset), data.len()) };
                Ok(())
            }
        }
    }

    /// Copies a `T` out of the region. `T: FromBytes` means any bytes a
    /// peer wrote are a valid `T`. `offset` must be aligned for `T`. Goes
    /// through the descriptor where [`read_at`](Self::read_at) does.
    pub fn read<T: FromBytes>(&self, offset: usize) -> Result<T> {
        self.range("read", offset, size_of::<T>())?;
        self.aligned("read", offset, align_of::<T>(), std::any::type_name::<T>())?;
        let mut value = MaybeUninit::<T>::uninit();
        // SAFETY: the bytes of `value`, seen as possibly uninitialised
        // bytes (which any memory may be), for the copy to fill.
        let out =
            unsafe { std::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<MaybeUninit<u8>>(), size_of::<T>()) };
        self.copy_out(offset, out)?;
        // SAFETY: `copy_out` succeeded, so all size_of::<T>() bytes are
        // initialised, and every bit pattern is a valid `T` (FromBytes).
        Ok(unsafe { value.assume_init() })
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
