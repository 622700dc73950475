//! The synchronization primitives between real processes: exact counts
//! under the robust mutex, owner death by SIGKILL and its recovery, condvar
//! hand-offs, System V `SEM_UNDO`, POSIX named and unnamed semaphores, futex
//! events and semaphores, a C peer using libc directly, other users'
//! objects, and objects that are not ipckit locks.
//!
//! Children are this test binary re-run (`child_*` entry points, ignored
//! when run directly) or a C program built at test time. A child reports its
//! progress as frames on a pipe it inherits (`IPCKIT_REPORT_FD`), so the
//! parent never sleeps to wait for readiness; every wait has the 30 s hang
//! guard, and no assertion depends on timing other than that guard (a wait
//! that only its timeout ended is a lost wake-up, hence a failure).
//!
//! One module per section:
//! 1. [`mutex_counts`]: exact counts under the mutex.
//! 2. [`owner_death`]: owner death by SIGKILL, and its recovery.
//! 3. [`condvar`]: condvar hand-offs.
//! 4. [`sysv_semaphores`]: System V semaphore sets.
//! 5. [`posix_semaphores`]: POSIX semaphores, named and unnamed in shared
//!    memory.
//! 6. [`futex`]: futex events and semaphores.
//! 7. [`c_peer`]: a C peer.
//! 8. [`foreign_objects`]: other users' objects, and objects that are not
//!    ipckit locks.
//! 9. [`corruption`]: lock objects scribbled on between uses: errors, never
//!    signals.
//!
//! [`support`] has the report pipe and what several sections use.

mod support;

mod c_peer;
mod condvar;
mod corruption;
mod foreign_objects;
mod futex;
mod mutex_counts;
mod owner_death;
mod posix_semaphores;
mod sysv_semaphores;
