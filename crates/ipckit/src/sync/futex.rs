//! Futex-based events and semaphores in shared memory: the fast path.
//!
//! No system call when uncontended: setting an event or posting a
//! semaphore calls `FUTEX_WAKE` only when a waiter has announced itself, and
//! a waiter spins (bounded, [`DEFAULT_SPIN`] by default) before it sleeps
//! in `FUTEX_WAIT`: on this class of machine a kernel wake-up costs 10 to
//! 45 µs, a cache line a few hundred nanoseconds. Futexes are shared (never
//! `FUTEX_PRIVATE_FLAG`), so waiters in different processes meet on the
//! same physical word.
//!
//! # A peer that dies
//!
//! A futex has no owner, so the kernel cannot tell a waiter that the
//! process that would set the event died. Waiters that must not hang use
//! the `_timeout` forms and decide on expiry (ipckit's channels check the
//! peer's liveness between timed waits); nothing here blocks without a way
//! out but the plain blocking forms, which are for peers you trust to live.
//!
//! # Layout
//!
//! ```text
//! offset  size  Event                      FutexSemaphore
//!      0    64  ipckit object header (kind 4 / 5, version 1)
//!     64     4  state: 0 unset, 1 set      count
//!     68     4  waiters                    waiters
//!     72     4  mode: 0 auto, 1 manual     0
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{INIT_TIMEOUT, kind};
use crate::error::{Error, ErrorKind, Result};
use crate::shm::{HEADER_SIZE, Object, ObjectSpec, Opened, Region, Segment, ShmName};
use crate::sys::Errno;
use crate::sys::sync as raw;

/// How long a waiter spins before sleeping, unless configured.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

const WORD: usize = HEADER_SIZE;
const WAITERS: usize = HEADER_SIZE + 4;
const MODE: usize = HEADER_SIZE + 8;

/// Whether an event resets itself when a waiter takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventMode {
    /// One `set` releases one waiter, and the event is unset again.
    AutoReset,
    /// A `set` releases every waiter until `reset`.
    ManualReset,
}

/// Spins up to `spin` calling `ready`, then sleeps on `word` while it holds
/// `sleeping_value`, announcing itself in `waiters`. Returns whether `ready`
/// succeeded before the deadline.
fn wait_on(
    word: &AtomicU32,
    waiters: &AtomicU32,
    sleeping_value: u32,
    spin: Duration,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> bool,
) -> std::result::Result<bool, Errno> {
    if ready() {
        return Ok(true);
    }
    // Read the clock every 32 spins, not every spin: a clock read costs
    // more than the check it bounds.
    let spin_until = Instant::now().checked_add(spin);
    'spin: while !spin.is_zero() {
        for _ in 0..32 {
            std::hint::spin_loop();
            if ready() {
                return Ok(true);
            }
        }
        if spin_until.is_none_or(|t| Instant::now() >= t) {
            break 'spin;
        }
    }
    waiters.fetch_add(1, Ordering::SeqCst);
    let result = loop {
        if ready() {
            break Ok(true);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            break Ok(false);
        }
        match raw::futex_wait(word, sleeping_value, left) {
            Ok(()) | Err(Errno::TIMEDOUT) => {}
            Err(e) => break Err(e),
        }
    };
    waiters.fetch_sub(1, Ordering::SeqCst);
    result
}

/// A process-shared event: waiters sleep until it is set.
#[derive(Debug)]
pub struct Event {
    obj: Arc<Object>,
    spin: Duration,
    /// The mode, fixed at creation: read once at open, so that `set` and
    /// `wait` touch only the words they must.
    mode: EventMode,
}

const EVENT_SPEC: ObjectSpec = ObjectSpec { kind: kind::EVENT, version: 1, abi: 0, payload: 64 };
const SEM_SPEC: ObjectSpec = ObjectSpec { kind: kind::FUTEX_SEMAPHORE, version: 1, abi: 0, payload: 64 };

#[inline]
fn words(region: &Region) -> (&AtomicU32, &AtomicU32) {
    (
        region.atomic_u32(WORD).expect("objects are checked to hold their words at open"),
        region.atomic_u32(WAITERS).expect("objects are checked to hold their words at open"),
    )
}

impl Event {
    /// Opens the event `name`, creating it (unset, in `mode`) if needed. An
    /// existing event keeps the mode it was created with.
    pub fn open_or_create(name: &ShmName, mode: EventMode) -> Result<(Event, Opened)> {
        Event::open_or_create_with(&Segment::new(name.clone()), mode)
    }

    /// As [`open_or_create`](Self::open_or_create), with segment options.
    pub fn open_or_create_with(seg: &Segment, mode: EventMode) -> Result<(Event, Opened)> {
        let (obj, opened) = Object::create_or_open(seg, EVENT_SPEC, INIT_TIMEOUT, |region| {
            region.write::<u32>(MODE, &u32::from(mode == EventMode::ManualReset))
        })?;
        Event::from_object(obj).map(|e| (e, opened))
    }

    /// Opens an existing event.
    pub fn open(name: &ShmName) -> Result<Event> {
        Event::from_object(Object::open(&Segment::new(name.clone()), EVENT_SPEC, INIT_TIMEOUT)?)
    }

    fn from_object(obj: Object) -> Result<Event> {
        let mode = if obj.region().read::<u32>(MODE)? == 1 { EventMode::ManualReset } else { EventMode::AutoReset };
        Ok(Event { obj: Arc::new(obj), spin: DEFAULT_SPIN, mode })
    }

    /// How long a waiter spins before sleeping (0: never spin).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The event's mode (fixed when it was created).
    pub fn mode(&self) -> EventMode {
        self.mode
    }

    /// Sets the event: releases one waiter (auto-reset) or all (manual).
    /// No system call when nobody sleeps on it.
    pub fn set(&self) -> Result<()> {
        let (state, waiters) = words(self.obj.region());
        state.store(1, Ordering::SeqCst);
        if waiters.load(Ordering::SeqCst) > 0 {
            let n = if self.mode == EventMode::ManualReset { u32::MAX } else { 1 };
            raw::futex_wake(state, n).map_err(|e| Error::os("futex wake", self.obj.region().name(), e))?;
        }
        Ok(())
    }

    /// Unsets the event.
    pub fn reset(&self) {
        let (state, _) = words(self.obj.region());
        state.store(0, Ordering::SeqCst);
    }

    /// Whether the event is set now.
    pub fn is_set(&self) -> bool {
        words(self.obj.region()).0.load(Ordering::SeqCst) == 1
    }

    fn take(&self, state: &AtomicU32, manual: bool) -> bool {
        if manual {
            state.load(Ordering::Acquire) == 1
        } else {
            state.compare_exchange(1, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        }
    }

    fn wait_until(&self, deadline: Option<Instant>, spin: Duration) -> Result<bool> {
        let manual = self.mode == EventMode::ManualReset;
        let (state, waiters) = words(self.obj.region());
        wait_on(state, waiters, 0, spin, deadline, || self.take(state, manual))
            .map_err(|e| Error::os("futex wait", self.obj.region().name(), e))
    }

    /// Waits until the event is set (and, auto-reset, takes it).
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None, self.spin).map(drop)
    }

    /// Takes the event if it is set now; `Busy` otherwise.
    pub fn try_wait(&self) -> Result<()> {
        let (state, _) = words(self.obj.region());
        if self.take(state, self.mode == EventMode::ManualReset) {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::Busy, "wait", self.obj.region().name(), "the event is not set"))
        }
    }

    /// Waits at most `timeout`; `TimedOut` otherwise.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        if self.wait_until(Instant::now().checked_add(timeout), self.spin.min(timeout))? {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::TimedOut, "wait", self.obj.region().name(), "the event was not set in time"))
        }
    }
}

/// A process-shared counting semaphore on a futex.
#[derive(Debug)]
pub struct FutexSemaphore {
    obj: Arc<Object>,
    spin: Duration,
}

impl FutexSemaphore {
    /// Opens the semaphore `name`, creating it with `value` if needed.
    pub fn open_or_create(name: &ShmName, value: u32) -> Result<(FutexSemaphore, Opened)> {
        FutexSemaphore::open_or_create_with(&Segment::new(name.clone()), value)
    }

    /// As [`open_or_create`](Self::open_or_create), with segment options.
    pub fn open_or_create_with(seg: &Segment, value: u32) -> Result<(FutexSemaphore, Opened)> {
        let (obj, opened) =
            Object::create_or_open(seg, SEM_SPEC, INIT_TIMEOUT, |region| region.write::<u32>(WORD, &value))?;
        Ok((FutexSemaphore { obj: Arc::new(obj), spin: DEFAULT_SPIN }, opened))
    }

    /// Opens an existing one.
    pub fn open(name: &ShmName) -> Result<FutexSemaphore> {
        let obj = Object::open(&Segment::new(name.clone()), SEM_SPEC, INIT_TIMEOUT)?;
        Ok(FutexSemaphore { obj: Arc::new(obj), spin: DEFAULT_SPIN })
    }

    /// How long a waiter spins before sleeping.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The value now.
    pub fn value(&self) -> u32 {
        words(self.obj.region()).0.load(Ordering::SeqCst)
    }

    /// Adds one, waking a sleeper if there is one. `Invalid` at `u32::MAX`.
    pub fn post(&self) -> Result<()> {
        let (count, waiters) = words(self.obj.region());
        count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_add(1)).map_err(|_| {
            Error::new(ErrorKind::Invalid, "post", self.obj.region().name(), "the value is at its maximum")
        })?;
        if waiters.load(Ordering::SeqCst) > 0 {
            raw::futex_wake(count, 1).map_err(|e| Error::os("futex wake", self.obj.region().name(), e))?;
        }
        Ok(())
    }

    fn take(count: &AtomicU32) -> bool {
        count.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| v.checked_sub(1)).is_ok()
    }

    fn wait_until(&self, deadline: Option<Instant>, spin: Duration) -> Result<bool> {
        let (count, waiters) = words(self.obj.region());
        wait_on(count, waiters, 0, spin, deadline, || FutexSemaphore::take(count))
            .map_err(|e| Error::os("futex wait", self.obj.region().name(), e))
    }

    /// Takes one, waiting until the value is positive.
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None, self.spin).map(drop)
    }

    /// Takes one if the value is positive; `Busy` otherwise.
    pub fn try_wait(&self) -> Result<()> {
        if FutexSemaphore::take(words(self.obj.region()).0) {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::Busy, "wait", self.obj.region().name(), "the value is 0"))
        }
    }

    /// Waits at most `timeout`; `TimedOut` otherwise.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        if self.wait_until(Instant::now().checked_add(timeout), self.spin.min(timeout))? {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::TimedOut,
                "wait",
                self.obj.region().name(),
                "the value stayed 0 until the timeout",
            ))
        }
    }
}
