//! Shared words: the one place lock-free protocol code gets its atomics,
//! futex operations and spin hints from, so that loom can model-check it.
//!
//! Protocol code (the futex [`Event`](crate::sync::Event) and
//! [`FutexSemaphore`](crate::sync::FutexSemaphore) today, the shared-memory
//! rings later) is written once, generic over [`Words`]: numbered 32- and
//! 64-bit atomic words, a futex wait and wake on the 32-bit ones, and a
//! bounded spin. It never names `std::sync::atomic` types, `fence`,
//! `spin_loop` or `sys` futex calls itself. Two implementations exist:
//!
//! 1. [`Mapped`]: words in an ipckit object's mapping, the production one.
//!    Their offsets are resolved and checked (range, alignment, writable)
//!    once, when the object is opened; wait and wake are shared futexes
//!    (`sys::sync`), so waiters in other processes meet on the same word.
//! 2. `model::LoomWords` (only under `cfg(all(test, ipckit_loom))`): words
//!    owned by loom, with a futex emulated on a loom `Mutex` and `Condvar`.
//!
//! # Why a trait, not a `cfg` that swaps the types
//!
//! crossbeam (`cfg(crossbeam_loom)`) and iceoryx2-pal (`atomic.rs`) swap
//! std's atomic types for loom's crate-wide. That cannot work here: loom's
//! atomics are handles into loom's scheduler, not 4 bytes, so they cannot
//! live inside a mapping another process shares. A swap would leave every
//! type that holds mapped words (`Event`, `FutexSemaphore`, the channels,
//! the CLI built on them) without an implementation under the cfg, and
//! spread `cfg(ipckit_loom)` through modules that have nothing to do with
//! loom. With the trait, `--cfg ipckit_loom` only *adds* the loom
//! implementation and the models: production code is the same in both
//! builds, and the whole workspace still builds under the cfg.
//!
//! # What loom models, and what the protocols must therefore do
//!
//! loom models acquire/release atomics, read-modify-writes (an RMW always
//! reads the latest value of its word) and `SeqCst` fences, but treats
//! `SeqCst` loads and stores as acquire/release (tokio-rs/loom#180). A
//! protocol's argument must therefore not rest on `SeqCst` loads or stores:
//! the futex protocols use an RMW where a Dekker-style "either I see your
//! announcement or you see my store" is needed (see `sync/futex.rs`).
//!
//! The emulated futex checks the word and queues the waiter under one lock,
//! and a wake dequeues under the same lock: "sleep only if the word still
//! holds the expected value, atomically with respect to wake", as
//! `futex(2)` promises. A wake-up the protocol loses therefore leaves a
//! model thread asleep for ever, which loom reports as a deadlock. The
//! model's clock does not move: a timed wait is an untimed one, and models
//! pass no deadline. A non-zero spin is two spin rounds (loom's
//! `spin_loop` yields to the other threads), not a duration.
//!
//! # Running the models
//!
//! ```text
//! RUSTFLAGS="--cfg ipckit_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p ipckit --release --lib loom
//! ```
//!
//! The separate target directory keeps the normal build cache. Each model
//! bounds preemptions at 3 unless `LOOM_MAX_PREEMPTIONS` says otherwise;
//! `LOOM_LOG=1 LOOM_LOCATION=1` explains a failure.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::shm::Object;
use crate::sys::Errno;

/// An atomic integer, std's or loom's: the operations protocol code may use.
/// Each forwards to the inherent method of the same name.
pub(crate) trait Atomic: Sync {
    /// `u32` or `u64`.
    type Value: Copy + Eq;
    fn load(&self, order: Ordering) -> Self::Value;
    fn store(&self, value: Self::Value, order: Ordering);
    fn swap(&self, value: Self::Value, order: Ordering) -> Self::Value;
    fn compare_exchange(
        &self,
        current: Self::Value,
        new: Self::Value,
        success: Ordering,
        failure: Ordering,
    ) -> std::result::Result<Self::Value, Self::Value>;
    fn fetch_add(&self, value: Self::Value, order: Ordering) -> Self::Value;
    fn fetch_sub(&self, value: Self::Value, order: Ordering) -> Self::Value;
    fn fetch_or(&self, value: Self::Value, order: Ordering) -> Self::Value;
    fn fetch_and(&self, value: Self::Value, order: Ordering) -> Self::Value;
    fn fetch_update(
        &self,
        set: Ordering,
        fetch: Ordering,
        f: impl FnMut(Self::Value) -> Option<Self::Value>,
    ) -> std::result::Result<Self::Value, Self::Value>;
}

/// Forwards read-modify-writes of the shape `fn(&self, value, order) ->
/// value` to the inherent methods of the same name.
macro_rules! forward_rmw {
    ($atomic:ty, $value:ty: $($name:ident),*) => {$(
        #[inline]
        fn $name(&self, value: $value, order: Ordering) -> $value {
            <$atomic>::$name(self, value, order)
        }
    )*};
}

/// Forwards compare-and-exchanges to the inherent methods of the same name.
macro_rules! forward_cas {
    ($atomic:ty, $value:ty: $($name:ident),*) => {$(
        #[inline]
        fn $name(
            &self,
            current: $value,
            new: $value,
            success: Ordering,
            failure: Ordering,
        ) -> std::result::Result<$value, $value> {
            <$atomic>::$name(self, current, new, success, failure)
        }
    )*};
}

macro_rules! impl_atomic {
    ($($atomic:ty => $value:ty),* $(,)?) => {$(
        impl Atomic for $atomic {
            type Value = $value;
            #[inline]
            fn load(&self, order: Ordering) -> $value {
                <$atomic>::load(self, order)
            }
            #[inline]
            fn store(&self, value: $value, order: Ordering) {
                <$atomic>::store(self, value, order)
            }
            forward_rmw!($atomic, $value: swap);
            forward_cas!($atomic, $value: compare_exchange);
            forward_rmw!($atomic, $value: fetch_add, fetch_sub, fetch_or, fetch_and);
            #[inline]
            fn fetch_update(
                &self,
                set: Ordering,
                fetch: Ordering,
                f: impl FnMut($value) -> Option<$value>,
            ) -> std::result::Result<$value, $value> {
                <$atomic>::fetch_update(self, set, fetch, f)
            }
        }
    )*};
}

impl_atomic!(std::sync::atomic::AtomicU32 => u32, std::sync::atomic::AtomicU64 => u64);
#[cfg(all(test, ipckit_loom))]
impl_atomic!(loom::sync::atomic::AtomicU32 => u32, loom::sync::atomic::AtomicU64 => u64);

/// Numbered shared words and the ways to wait on them: what a lock-free
/// protocol runs on. Word numbers are the implementation's (a protocol's
/// constants); an implementation maps them to offsets in its memory.
///
/// Indexing a word that does not exist panics: the numbers are constants of
/// the protocol, fixed when the words are set up, never peer data.
pub(crate) trait Words: Sync {
    /// A 32-bit word (futexes are 32-bit).
    type U32: Atomic<Value = u32>;
    /// A 64-bit word.
    type U64: Atomic<Value = u64>;

    /// The 32-bit word number `i`.
    fn u32(&self, i: usize) -> &Self::U32;

    /// The 64-bit word number `i`.
    #[allow(dead_code, reason = "for the shared-memory rings to come")]
    fn u64(&self, i: usize) -> &Self::U64;

    /// A memory fence (never call `std::sync::atomic::fence` directly: loom
    /// would not see it).
    #[allow(dead_code, reason = "for the shared-memory rings to come")]
    fn fence(order: Ordering);

    /// `FUTEX_WAIT` on word `i`: sleeps while it holds `expected`, at most
    /// `timeout`, checking and sleeping atomically with respect to
    /// [`wake`](Self::wake). `Ok(())` when woken, when the word differed,
    /// or spuriously (`EINTR`): the caller re-checks its condition.
    /// `Err(ETIMEDOUT)` when the time ran out.
    fn wait(&self, i: usize, expected: u32, timeout: Option<Duration>) -> std::result::Result<(), Errno>;

    /// `FUTEX_WAKE` of at most `n` sleepers on word `i` (`u32::MAX`: all);
    /// returns how many were woken.
    fn wake(&self, i: usize, n: u32) -> std::result::Result<usize, Errno>;

    /// Spins for at most `budget` (zero: not at all) calling `ready`, with a
    /// spin hint between calls; returns whether `ready` succeeded.
    fn spin(&self, budget: Duration, ready: impl FnMut() -> bool) -> bool;
}

/// Words in an ipckit object's mapping: `N32` 32-bit words and `N64` 64-bit
/// words at offsets given (and checked) once, when the object is opened.
#[derive(Debug)]
pub(crate) struct Mapped<const N32: usize, const N64: usize = 0> {
    // Invariant: every pointer came from `obj.region().atomic_u32/u64`
    // (inside the mapping, aligned, writable: checked there), and the
    // mapping stays at its address until `obj`, owned here, is dropped.
    u32s: [NonNull<std::sync::atomic::AtomicU32>; N32],
    u64s: [NonNull<std::sync::atomic::AtomicU64>; N64],
    obj: Arc<Object>,
}

// SAFETY: `Mapped` is, in all but the lifetime, `Arc<Object>` with shared
// references into the object's mapping (see the invariant): atomics may be
// used from any thread, and `Object` is `Send` and `Sync`.
unsafe impl<const N32: usize, const N64: usize> Send for Mapped<N32, N64> {}
// SAFETY: as above; `&Mapped` gives out only `&AtomicU32`/`&AtomicU64`.
unsafe impl<const N32: usize, const N64: usize> Sync for Mapped<N32, N64> {}

impl<const N32: usize, const N64: usize> Mapped<N32, N64> {
    /// Resolves the words of `obj`: word `i` is at `u32_offsets[i]`
    /// (4-byte aligned) or `u64_offsets[i]` (8-byte aligned). Fails as
    /// [`Region::atomic_u32`](crate::shm::Region::atomic_u32) does: an offset
    /// outside the mapping, misaligned, or a read-only mapping.
    pub(crate) fn new(obj: Arc<Object>, u32_offsets: [usize; N32], u64_offsets: [usize; N64]) -> Result<Self> {
        let region = obj.region();
        let mut u32s = [NonNull::dangling(); N32];
        for (word, offset) in u32s.iter_mut().zip(u32_offsets) {
            *word = NonNull::from(region.atomic_u32(offset)?);
        }
        let mut u64s = [NonNull::dangling(); N64];
        for (word, offset) in u64s.iter_mut().zip(u64_offsets) {
            *word = NonNull::from(region.atomic_u64(offset)?);
        }
        Ok(Mapped { u32s, u64s, obj })
    }

    /// The object the words live in.
    pub(crate) fn object(&self) -> &Object {
        &self.obj
    }
}

impl<const N32: usize, const N64: usize> Words for Mapped<N32, N64> {
    type U32 = std::sync::atomic::AtomicU32;
    type U64 = std::sync::atomic::AtomicU64;

    #[inline]
    fn u32(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: the pointer is valid for as long as `self.obj` lives, which
        // outlives the borrow of `self` (the type's invariant).
        unsafe { self.u32s[i].as_ref() }
    }

    #[inline]
    fn u64(&self, i: usize) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: as in `u32`.
        unsafe { self.u64s[i].as_ref() }
    }

    #[inline]
    fn fence(order: Ordering) {
        std::sync::atomic::fence(order)
    }

    fn wait(&self, i: usize, expected: u32, timeout: Option<Duration>) -> std::result::Result<(), Errno> {
        crate::sys::sync::futex_wait(self.u32(i), expected, timeout)
    }

    fn wake(&self, i: usize, n: u32) -> std::result::Result<usize, Errno> {
        crate::sys::sync::futex_wake(self.u32(i), n)
    }

    fn spin(&self, budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
        if budget.is_zero() {
            return false;
        }
        // Read the clock every 32 spins, not every spin: a clock read costs
        // more than the check it bounds.
        let until = Instant::now().checked_add(budget);
        loop {
            for _ in 0..32 {
                std::hint::spin_loop();
                if ready() {
                    return true;
                }
            }
            if until.is_none_or(|t| Instant::now() >= t) {
                return false;
            }
        }
    }
}

/// Words owned by loom, for the models.
#[cfg(all(test, ipckit_loom))]
pub(crate) mod model {
    use std::time::Duration;

    use loom::sync::atomic::{AtomicU32, AtomicU64};
    use loom::sync::{Condvar, Mutex};

    use super::{Ordering, Words};
    use crate::sys::Errno;

    /// Spin rounds for a non-zero spin budget: each is a yield to the other
    /// model threads and one `ready` check.
    const SPIN_ROUNDS: usize = 2;

    /// Words in loom's memory, with an emulated futex.
    pub(crate) struct LoomWords {
        u32s: Vec<AtomicU32>,
        u64s: Vec<AtomicU64>,
        /// The futex queue: sleepers as (word, ticket), oldest first.
        queue: Mutex<Queue>,
        /// Notified (all) when sleepers leave the queue.
        dequeued: Condvar,
    }

    #[derive(Default)]
    struct Queue {
        next_ticket: u64,
        sleepers: Vec<(usize, u64)>,
    }

    impl LoomWords {
        /// Words with these initial values.
        pub(crate) fn new(u32s: &[u32], u64s: &[u64]) -> LoomWords {
            LoomWords {
                u32s: u32s.iter().map(|&v| AtomicU32::new(v)).collect(),
                u64s: u64s.iter().map(|&v| AtomicU64::new(v)).collect(),
                queue: Mutex::new(Queue::default()),
                dequeued: Condvar::new(),
            }
        }
    }

    impl Words for LoomWords {
        type U32 = AtomicU32;
        type U64 = AtomicU64;

        fn u32(&self, i: usize) -> &AtomicU32 {
            &self.u32s[i]
        }

        fn u64(&self, i: usize) -> &AtomicU64 {
            &self.u64s[i]
        }

        fn fence(order: Ordering) {
            loom::sync::atomic::fence(order)
        }

        /// The check and the enqueue happen under the queue lock, as the
        /// kernel does them under its hash-bucket lock. The check is a
        /// relaxed load: the lock orders it after an earlier wake (and the
        /// store before that wake), and the model claims no more ordering
        /// than that. `timeout` is ignored: the model's clock stands still.
        fn wait(&self, i: usize, expected: u32, _timeout: Option<Duration>) -> Result<(), Errno> {
            let mut q = self.queue.lock().unwrap();
            if self.u32s[i].load(Ordering::Relaxed) != expected {
                return Ok(()); // EAGAIN
            }
            let ticket = q.next_ticket;
            q.next_ticket += 1;
            q.sleepers.push((i, ticket));
            while q.sleepers.contains(&(i, ticket)) {
                q = self.dequeued.wait(q).unwrap();
            }
            Ok(())
        }

        fn wake(&self, i: usize, n: u32) -> Result<usize, Errno> {
            let mut q = self.queue.lock().unwrap();
            let mut woken = 0;
            q.sleepers.retain(|&(word, _)| {
                let wake = word == i && woken < n as usize;
                woken += usize::from(wake);
                !wake
            });
            if woken > 0 {
                self.dequeued.notify_all();
            }
            Ok(woken)
        }

        fn spin(&self, budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
            if budget.is_zero() {
                return false;
            }
            (0..SPIN_ROUNDS).any(|_| {
                loom::hint::spin_loop();
                ready()
            })
        }
    }
}
