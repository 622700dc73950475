//! Process-shared synchronization, both ways the OS offers it.
//!
//! 1. `mutex`: [`Mutex<T>`], a robust process-shared pthread mutex with its
//!    data, in an ipckit object; a holder's death is reported
//!    ([`LockError::OwnerDied`]) and recoverable.
//! 2. `condvar`: [`Condvar`], process-shared, on a futex sequence word.
//! 3. `semaphore`: POSIX named ([`NamedSemaphore`]) and unnamed-in-shared-
//!    memory ([`SharedSemaphore`]) semaphores.
//! 4. `sysv`: System V semaphore sets ([`SemaphoreSet`]), with `SEM_UNDO`.
//! 5. `futex`: futex-based [`Event`] and [`FutexSemaphore`] for the fast path:
//!    no system call when uncontended, a bounded spin before sleeping.
//!
//! All waits have blocking, `try_` and `_timeout` forms on the monotonic
//! clock.

mod condvar;
mod futex;
mod mutex;
mod semaphore;
mod sysv;

pub use condvar::Condvar;
pub use futex::{DEFAULT_SPIN, Event, EventMode, FutexSemaphore};
pub use mutex::{LockError, MUTEX_DATA_OFFSET, MUTEX_OFFSET, Mutex, MutexGuard};
pub use semaphore::{NamedSemaphore, SEM_VALUE_MAX, SharedSemaphore};
pub use sysv::{SEMVMX, SemOp, SemStat, SemaphoreSet};

use std::time::Duration;

/// How long openers wait for a creator still initialising an object.
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(5);
