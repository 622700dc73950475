//! A process-shared condition variable on a futex sequence word.
//!
//! # Why not `pthread_cond_t`
//!
//! glibc's condition variable (since 2.25) can lose a wake-up: a signal may
//! be consumed by a group of waiters that no longer contains a waiter
//! (glibc bug 25847, fixed upstream in 2.41). This machine runs glibc 2.36,
//! which has it. A condition variable on a futex sequence word cannot lose
//! one: a waiter reads the sequence while holding the mutex, and a notifier
//! changes it before waking, so the waiter either sees the change or is
//! asleep on the old value when the wake comes. It also works with any
//! clock (the wait is relative, measured on the monotonic clock) and
//! reports a mutex holder's death on the relock.
//!
//! # Layout
//!
//! ```text
//! offset  size  content
//!      0    64  ipckit object header (kind 2, version 1)
//!     64     4  sequence (u32, incremented by every notify)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::INIT_TIMEOUT;
use super::mutex::{LockError, MutexGuard};
use crate::error::{Error, Result};
use crate::shm::{HEADER_SIZE, Object, ObjectKind, ObjectSpec, Opened, Segment, ShmName};
use crate::sys::sync as raw;

const SEQ_OFFSET: usize = HEADER_SIZE;

const SPEC: ObjectSpec = ObjectSpec { kind: ObjectKind::Condvar.code(), version: 1, abi: 0, payload: 64 };

/// A process-shared condition variable, used with a [`Mutex`](super::Mutex).
#[derive(Debug)]
pub struct Condvar {
    obj: Arc<Object>,
}

impl Condvar {
    /// Opens the condition variable `name`, creating it if needed.
    pub fn open_or_create(name: &ShmName) -> Result<(Condvar, Opened)> {
        Condvar::open_or_create_with(&Segment::new(name.clone()))
    }

    /// As [`open_or_create`](Self::open_or_create), with segment options.
    pub fn open_or_create_with(seg: &Segment) -> Result<(Condvar, Opened)> {
        let (obj, opened) = Object::create_or_open(seg, SPEC, INIT_TIMEOUT, |_| Ok(()))?;
        Ok((Condvar { obj: Arc::new(obj) }, opened))
    }

    /// Opens an existing condition variable.
    pub fn open(name: &ShmName) -> Result<Condvar> {
        Ok(Condvar { obj: Arc::new(Object::open(&Segment::new(name.clone()), SPEC, INIT_TIMEOUT)?) })
    }

    fn seq(&self) -> &AtomicU32 {
        self.obj.region().atomic_u32(SEQ_OFFSET).expect("the object has its sequence word (size checked at open)")
    }

    /// Unlocks `guard`'s mutex, sleeps until notified (or spuriously), and
    /// locks it again. The relock reports a holder's death as
    /// [`LockError::OwnerDied`].
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> std::result::Result<MutexGuard<'a, T>, LockError<'a, T>> {
        self.wait_until(guard, None).map(|(g, _)| g)
    }

    /// As [`wait`](Self::wait), for at most `timeout`; the flag is true when
    /// the time ran out.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> std::result::Result<(MutexGuard<'a, T>, bool), LockError<'a, T>> {
        // A timeout past the end of time is no timeout.
        self.wait_until(guard, Instant::now().checked_add(timeout))
    }

    fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> std::result::Result<(MutexGuard<'a, T>, bool), LockError<'a, T>> {
        let seq = self.seq();
        // Read under the mutex: a notify after the unlock changes it.
        let seen = seq.load(Ordering::Acquire);
        let mutex = guard.unlock_for_wait().map_err(LockError::Failed)?;
        let mut timed_out = false;
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                timed_out = true;
                break;
            }
            match raw::futex_wait(seq, seen, left) {
                Ok(()) => {}
                Err(crate::sys::Errno::TIMEDOUT) => {
                    timed_out = true;
                    break;
                }
                Err(e) => {
                    let err = Error::os("futex wait", self.obj.region().name(), e);
                    // Relock before reporting, so the caller's state is as
                    // it was.
                    return match MutexGuard::relock(mutex) {
                        Ok(g) => {
                            drop(g);
                            Err(LockError::Failed(err))
                        }
                        Err(le) => Err(le),
                    };
                }
            }
            // Woken, spuriously or not: a changed sequence means notified.
            if seq.load(Ordering::Acquire) != seen {
                break;
            }
        }
        MutexGuard::relock(mutex).map(|g| (g, timed_out))
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) -> Result<()> {
        self.notify(1)
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }

    fn notify(&self, n: u32) -> Result<()> {
        let seq = self.seq();
        seq.fetch_add(1, Ordering::Release);
        raw::futex_wake(seq, n).map(drop).map_err(|e| Error::os("futex wake", self.obj.region().name(), e))
    }
}
