//! Shared memory: every kind Linux offers, behind one [`Region`] type.
//!
//! 1. `segment`: named segments, [`Segment::new`] with a [`ShmName`]:
//!    POSIX objects (`/name`, `shm_open`), System V segments (`sysv:KEY`,
//!    `shmget`/`shmat`), and mapped files (`file:/path`).
//! 2. `memfd`: anonymous sealed memfds ([`Region::memfd`]), mapping a
//!    received descriptor ([`Region::from_received_fd`]), and the payload of
//!    a sealed memfd message ([`Sealed`]).
//! 3. `region`: [`Region`], the mapping, with copy-in/copy-out access,
//!    typed access for zerocopy types, and shared atomics.
//! 4. `object`: ipckit's own objects: the header, the [`ObjectKind`]
//!    registry, race-free [`Object::create_or_open`], staleness.
//! 5. `view`: places of C objects inside an object (a `pthread_mutex_t`,
//!    a `sem_t`), checked once at open.
//!
//! # Safety of the defaults
//!
//! POSIX objects and files are created exclusively with mode 0600 (exactly,
//! whatever the umask), their pages reserved at creation with
//! `posix_fallocate` (a full `/dev/shm` is `ENOSPC` then, not `SIGBUS` on a
//! later store). Opening checks that the object belongs to the caller's user
//! (`PermissionDenied` otherwise), that it is at least the expected size
//! (`Corrupt` otherwise, before mapping), and warns of permissions wider
//! than 0600 ([`Region::warnings`], [`Region::deny_warnings`]). System V
//! segments have no descriptor, hence no reservation: the kernel allocates
//! their pages on first touch, and an exhausted `shmall` shows at `shmget`.
//!
//! # Trust model
//!
//! - **A crashing peer** can leave data half-written and locks held: ipckit
//!   reports it (`Disconnected`, `OwnerDied`, `Corrupt` for an object whose
//!   creator died initialising it), never more.
//! - **A hostile peer of the same user** can do what its permissions allow:
//!   - scribble on the bytes: readers get wrong data. ipckit's safe API
//!     never hands out references into shared memory, only copies and
//!     atomics, and every index or length a peer could write is read once
//!     and checked, so scribbling is never undefined behaviour in ipckit;
//!   - truncate an unsealed POSIX object, file or memfd. Opening checks the
//!     size before mapping, but a truncation after that cannot be prevented
//!     for these kinds. The safe copies ([`Region::read_at`],
//!     [`Region::write_at`], [`Region::read`], [`Region::write`]) then go
//!     through the descriptor (`pread`/`pwrite`, a system call each), so a
//!     truncation is a `Corrupt` error naming the object and its sizes,
//!     never `SIGBUS`; a write refused for a truncation does not grow the
//!     object back. The documented exception: what works on the mapping
//!     itself (atomics; the mutexes, semaphores, events and condvars of
//!     [`sync`](crate::sync), which glibc and the kernel access in place;
//!     raw pointers and slices; a write past the process's `RLIMIT_FSIZE`
//!     or on an `O_APPEND` descriptor) faults with `SIGBUS` on the lost
//!     pages. A program that must survive that catches `SIGBUS` itself
//!     (`ipckit lock` does, see
//!     [`Mutex::mapped_range`](crate::sync::Mutex::mapped_range));
//!   - scribble on the `pthread_mutex_t` of a lock: between uses, the words
//!     glibc trusts are checked before every lock (`Corrupt`, never glibc's
//!     abort); while a process holds the lock, scribbling stays the
//!     exception (glibc keeps robust-list pointers in the mutex and follows
//!     them at unlock);
//!   - a memfd sealed against shrinking and growing cannot be resized
//!     (`EPERM`), which is why [`Region::from_received_fd`] refuses unsealed
//!     descriptors unless the caller trusts the sender;
//!   - remove a System V segment (`IPC_RMID`): attached processes keep
//!     their mapping until they detach.
//! - **Another user** cannot open the objects ipckit creates (0600), and an
//!   object another user planted under an expected name is refused.

mod memfd;
mod object;
mod region;
mod segment;
mod view;

pub(crate) use memfd::sealed_memfd;
pub use memfd::{Sealed, Trust};
pub use object::{
    HEADER_SIZE, Header, MAGIC, Object, ObjectKind, ObjectSpec, STATE_EMPTY, STATE_INITIALISING, STATE_OFFSET,
    STATE_READY, abi_tag, is_stale, remove_if_stale,
};
pub use region::Region;
pub use segment::{Info, Segment, info, remove};
pub(crate) use view::View;

pub use crate::name::{Opened, ShmName};

pub use crate::sys::shm::ShmStat;
