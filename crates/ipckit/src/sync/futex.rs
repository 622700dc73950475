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
//!
//! # The protocol
//!
//! Written once (`EventCore`, `SemCore`), generic over [`Words`]: [`Event`]
//! and [`FutexSemaphore`] run it over their mapping, the loom models
//! (`futex/loom_tests.rs`) over loom's memory; `crate::atomic` has the
//! command that runs them.
//!
//! - A waiter checks (`take`), spins, then announces itself with an RMW on
//!   `waiters`, checks again, and sleeps in `FUTEX_WAIT` while the word
//!   holds 0; it leaves `waiters` when it returns.
//! - `set`/`post` stores (releases) the word, then reads `waiters` with an
//!   RMW (`fetch_add(0)`), and calls `FUTEX_WAKE` only if it is not 0.
//! - No wake-up is lost because RMWs on one word are totally ordered. If the
//!   setter's RMW on `waiters` comes first, the waiter's announcement
//!   acquires it, so the waiter's check (and the futex's) sees the stored
//!   word; if the announcement comes first, the setter sees it and wakes.
//!   With a `SeqCst` load in place of the setter's RMW, the argument would
//!   also need the waiter's check to be `SeqCst` (a failed CAS is a relaxed
//!   load) or the barrier inside `FUTEX_WAIT`; loom, which treats `SeqCst`
//!   loads and stores as acquire/release, reports a lost wake-up for it.
//!   The RMW is one locked instruction on x86, as was the `SeqCst` store
//!   that `set` used before (now a plain release store): an uncontended
//!   `set` + `try_wait` went from 16 to 13 ns on the 2-vCPU VM. `post`,
//!   whose count update was already locked, pays one more: 18 to 21 ns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::INIT_TIMEOUT;
use crate::atomic::{Atomic, Mapped, Ordering, Words};
use crate::error::{Error, ErrorKind, Result};
use crate::shm::{HEADER_SIZE, Object, ObjectKind, ObjectSpec, Opened, Segment, ShmName};
use crate::sys::Errno;

/// How long a waiter spins before sleeping, unless configured.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// The layout: offsets of the words (see the table).
const STATE_OFFSET: usize = HEADER_SIZE;
const WAITERS_OFFSET: usize = HEADER_SIZE + 4;
const MODE_OFFSET: usize = HEADER_SIZE + 8;

/// Word numbers in the protocol: the state (event) or count (semaphore),
/// and the number of announced waiters.
const STATE: usize = 0;
const WAITERS: usize = 1;

/// The protocol's words in a mapped object.
type ObjectWords = Mapped<2>;

fn object_words(obj: Object) -> Result<ObjectWords> {
    Mapped::new(Arc::new(obj), [STATE_OFFSET, WAITERS_OFFSET], [])
}

/// Whether an event resets itself when a waiter takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventMode {
    /// One `set` releases one waiter, and the event is unset again.
    AutoReset,
    /// A `set` releases every waiter until `reset`.
    ManualReset,
}

/// Reads `waiters` as an RMW, after the caller's store to the word: see
/// "The protocol" in the module docs for why not a load.
#[inline]
fn anyone_waiting<W: Words>(w: &W) -> bool {
    w.u32(WAITERS).fetch_add(0, Ordering::AcqRel) > 0
}

/// Spins up to `spin` calling `ready`, then sleeps on the word `STATE` while
/// it holds 0, announcing itself in `WAITERS`. Returns whether `ready`
/// succeeded before the deadline.
fn wait_on<W: Words>(
    w: &W,
    spin: Duration,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> bool,
) -> std::result::Result<bool, Errno> {
    if ready() || w.spin(spin, &mut ready) {
        return Ok(true);
    }
    // Acquire: a setter whose RMW on `waiters` came first stored the word
    // before it; the re-check below sees that store.
    w.u32(WAITERS).fetch_add(1, Ordering::AcqRel);
    let result = loop {
        if ready() {
            break Ok(true);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            break Ok(false);
        }
        match w.wait(STATE, 0, left) {
            Ok(()) | Err(Errno::TIMEDOUT) => {}
            Err(e) => break Err(e),
        }
    };
    w.u32(WAITERS).fetch_sub(1, Ordering::Relaxed);
    result
}

/// The event protocol over any words: `STATE` is 0 (unset) or 1 (set).
#[derive(Debug)]
struct EventCore<W> {
    words: W,
    /// Fixed at creation: read once at open, so that `set` and `wait` touch
    /// only the words they must.
    mode: EventMode,
}

impl<W: Words> EventCore<W> {
    fn set(&self) -> std::result::Result<(), Errno> {
        self.words.u32(STATE).store(1, Ordering::Release);
        if anyone_waiting(&self.words) {
            let n = if self.mode == EventMode::ManualReset { u32::MAX } else { 1 };
            self.words.wake(STATE, n)?;
        }
        Ok(())
    }

    fn reset(&self) {
        self.words.u32(STATE).store(0, Ordering::Release);
    }

    fn is_set(&self) -> bool {
        self.words.u32(STATE).load(Ordering::Acquire) == 1
    }

    /// Takes the event if it is set (auto-reset: unsets it).
    fn take(&self) -> bool {
        match self.mode {
            EventMode::ManualReset => self.words.u32(STATE).load(Ordering::Acquire) == 1,
            EventMode::AutoReset => {
                self.words.u32(STATE).compare_exchange(1, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            }
        }
    }

    fn wait_until(&self, spin: Duration, deadline: Option<Instant>) -> std::result::Result<bool, Errno> {
        wait_on(&self.words, spin, deadline, || self.take())
    }
}

/// The counting semaphore protocol over any words: `STATE` is the count.
#[derive(Debug)]
struct SemCore<W> {
    words: W,
}

impl<W: Words> SemCore<W> {
    fn value(&self) -> u32 {
        self.words.u32(STATE).load(Ordering::Acquire)
    }

    /// Adds one and wakes a sleeper if there is one; `Ok(false)` when the
    /// count is at `u32::MAX`.
    fn post(&self) -> std::result::Result<bool, Errno> {
        if self.words.u32(STATE).fetch_update(Ordering::Release, Ordering::Relaxed, |v| v.checked_add(1)).is_err() {
            return Ok(false);
        }
        if anyone_waiting(&self.words) {
            self.words.wake(STATE, 1)?;
        }
        Ok(true)
    }

    /// Takes one if the count is positive.
    fn take(&self) -> bool {
        self.words.u32(STATE).fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| v.checked_sub(1)).is_ok()
    }

    fn wait_until(&self, spin: Duration, deadline: Option<Instant>) -> std::result::Result<bool, Errno> {
        wait_on(&self.words, spin, deadline, || self.take())
    }
}

/// A process-shared event: waiters sleep until it is set.
#[derive(Debug)]
pub struct Event {
    core: EventCore<ObjectWords>,
    spin: Duration,
}

const EVENT_SPEC: ObjectSpec = ObjectSpec { kind: ObjectKind::Event.code(), version: 1, abi: 0, payload: 64 };
const SEM_SPEC: ObjectSpec = ObjectSpec { kind: ObjectKind::FutexSemaphore.code(), version: 1, abi: 0, payload: 64 };

impl Event {
    /// Opens the event `name`, creating it (unset, in `mode`) if needed. An
    /// existing event keeps the mode it was created with.
    pub fn open_or_create(name: &ShmName, mode: EventMode) -> Result<(Event, Opened)> {
        Event::open_or_create_with(&Segment::new(name.clone()), mode)
    }

    /// As [`open_or_create`](Self::open_or_create), with segment options.
    pub fn open_or_create_with(seg: &Segment, mode: EventMode) -> Result<(Event, Opened)> {
        let (obj, opened) = Object::create_or_open(seg, EVENT_SPEC, INIT_TIMEOUT, |region| {
            region.write::<u32>(MODE_OFFSET, &u32::from(mode == EventMode::ManualReset))
        })?;
        Event::from_object(obj).map(|e| (e, opened))
    }

    /// Opens an existing event.
    pub fn open(name: &ShmName) -> Result<Event> {
        Event::from_object(Object::open(&Segment::new(name.clone()), EVENT_SPEC, INIT_TIMEOUT)?)
    }

    fn from_object(obj: Object) -> Result<Event> {
        let mode =
            if obj.region().read::<u32>(MODE_OFFSET)? == 1 { EventMode::ManualReset } else { EventMode::AutoReset };
        Ok(Event { core: EventCore { words: object_words(obj)?, mode }, spin: DEFAULT_SPIN })
    }

    fn name(&self) -> &str {
        self.core.words.object().region().name()
    }

    /// How long a waiter spins before sleeping (0: never spin).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The event's mode (fixed when it was created).
    pub fn mode(&self) -> EventMode {
        self.core.mode
    }

    /// Sets the event: releases one waiter (auto-reset) or all (manual).
    /// No system call when nobody sleeps on it.
    pub fn set(&self) -> Result<()> {
        self.core.set().map_err(|e| Error::os("futex wake", self.name(), e))
    }

    /// Unsets the event.
    pub fn reset(&self) {
        self.core.reset()
    }

    /// Whether the event is set now.
    pub fn is_set(&self) -> bool {
        self.core.is_set()
    }

    fn wait_until(&self, deadline: Option<Instant>, spin: Duration) -> Result<bool> {
        self.core.wait_until(spin, deadline).map_err(|e| Error::os("futex wait", self.name(), e))
    }

    /// Waits until the event is set (and, auto-reset, takes it).
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None, self.spin).map(drop)
    }

    /// Takes the event if it is set now; `Busy` otherwise.
    pub fn try_wait(&self) -> Result<()> {
        if self.core.take() {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::Busy, "wait", self.name(), "the event is not set"))
        }
    }

    /// Waits at most `timeout`; `TimedOut` otherwise.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        if self.wait_until(Instant::now().checked_add(timeout), self.spin.min(timeout))? {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::TimedOut, "wait", self.name(), "the event was not set in time"))
        }
    }
}

/// A process-shared counting semaphore on a futex.
#[derive(Debug)]
pub struct FutexSemaphore {
    core: SemCore<ObjectWords>,
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
            Object::create_or_open(seg, SEM_SPEC, INIT_TIMEOUT, |region| region.write::<u32>(STATE_OFFSET, &value))?;
        Ok((FutexSemaphore::from_object(obj)?, opened))
    }

    /// Opens an existing one.
    pub fn open(name: &ShmName) -> Result<FutexSemaphore> {
        FutexSemaphore::from_object(Object::open(&Segment::new(name.clone()), SEM_SPEC, INIT_TIMEOUT)?)
    }

    fn from_object(obj: Object) -> Result<FutexSemaphore> {
        Ok(FutexSemaphore { core: SemCore { words: object_words(obj)? }, spin: DEFAULT_SPIN })
    }

    fn name(&self) -> &str {
        self.core.words.object().region().name()
    }

    /// How long a waiter spins before sleeping.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The value now.
    pub fn value(&self) -> u32 {
        self.core.value()
    }

    /// Adds one, waking a sleeper if there is one. `Invalid` at `u32::MAX`.
    pub fn post(&self) -> Result<()> {
        if self.core.post().map_err(|e| Error::os("futex wake", self.name(), e))? {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::Invalid, "post", self.name(), "the value is at its maximum"))
        }
    }

    fn wait_until(&self, deadline: Option<Instant>, spin: Duration) -> Result<bool> {
        self.core.wait_until(spin, deadline).map_err(|e| Error::os("futex wait", self.name(), e))
    }

    /// Takes one, waiting until the value is positive.
    pub fn wait(&self) -> Result<()> {
        self.wait_until(None, self.spin).map(drop)
    }

    /// Takes one if the value is positive; `Busy` otherwise.
    pub fn try_wait(&self) -> Result<()> {
        if self.core.take() { Ok(()) } else { Err(Error::new(ErrorKind::Busy, "wait", self.name(), "the value is 0")) }
    }

    /// Waits at most `timeout`; `TimedOut` otherwise.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        if self.wait_until(Instant::now().checked_add(timeout), self.spin.min(timeout))? {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::TimedOut, "wait", self.name(), "the value stayed 0 until the timeout"))
        }
    }
}

#[cfg(all(test, ipckit_loom))]
mod loom_tests;
