//! Synchronization: ipckit's process-shared objects beside raw loops of the
//! same primitives.
//!
//! | row | ipckit | raw |
//! | --- | --- | --- |
//! | mutex-uncontended | `Mutex<u64>::lock` and dropping the guard, in batches of [`BATCH`] in this process | `pthread_mutex_lock`/`unlock` of a mutex with the same attributes (process-shared, robust, error-checking) in a memfd page |
//! | mutex-handoff | two processes take turns through a turn word under the mutex: each locks, reads the word, and if it is its turn, advances it; the parent times a round of two hand-offs | the same over the pthread mutex, the word an atomic beside it |
//! | event-pingpong | two auto-reset `Event`s, one each way: the parent sets one and waits on the other, the peer the reverse | the same algorithm on words of a memfd (a page per event): spin for [`DEFAULT_SPIN`] taking the event with a compare-exchange, then announce a waiter and `FUTEX_WAIT`; setting stores 1 and calls `FUTEX_WAKE` only if a waiter announced itself |
//!
//! The two-process rows use a fresh peer per trial, as the message rows
//! do. A peer that dies raises the trial's alarm: a flag that the parent's
//! wait loops check (and, for events, a wake-up), so that the parent never
//! waits for it forever.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipckit::process::{pass_fd, take_inherited_fd};
use ipckit::shm::{Opened, Segment, ShmName};
use ipckit::sync::{DEFAULT_SPIN, Event, EventMode, Mutex, MutexGuard};
use rustix::io::Errno;
use rustix::thread::futex;

use super::catalogue::{Experiment, Mode, Role};
use super::link::{Rounds, Sample, time_rounds};
use super::meeting::Meeting;
use super::plan::Plan;
use super::process::{Alarm, Peer};
use super::raw_ffi::{PthreadMutex, SharedPage};
use super::runner::Bench;

/// Lock+unlock pairs per timed batch of the uncontended row.
pub(super) const BATCH: usize = 10_000;

/// The raw shared memory, laid out as ipckit's objects are: the mutex after
/// a 64-byte header's worth of space, the turn word 64 bytes further (where
/// ipckit keeps the data); each event on a page of its own at offset 64
/// (ipckit's events are two objects), state then waiters.
const PAGE: usize = 4096;
const MUTEX_AT: usize = 64;
const TURN_AT: usize = 128;
const PING_AT: usize = 64;
const PONG_AT: usize = PAGE + 64;

/// A row of the synchronization table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SyncOp {
    /// Lock and unlock, nobody else trying.
    Uncontended,
    /// The lock passed between two processes.
    Handoff,
    /// Two events set and awaited between two processes.
    PingPong,
}

impl SyncOp {
    pub(super) const ALL: [SyncOp; 3] = [SyncOp::Uncontended, SyncOp::Handoff, SyncOp::PingPong];

    /// The name in `--filter` and in the JSON document.
    pub(super) fn name(self) -> &'static str {
        match self {
            SyncOp::Uncontended => "mutex-uncontended",
            SyncOp::Handoff => "mutex-handoff",
            SyncOp::PingPong => "event-pingpong",
        }
    }

    /// What one measured value is the time of.
    pub(super) fn unit(self) -> &'static str {
        match self {
            SyncOp::Uncontended => "lock+unlock",
            SyncOp::Handoff => "hand-off",
            SyncOp::PingPong => "round trip",
        }
    }

    /// How much each trial does: batches of [`BATCH`] (uncontended) or
    /// rounds.
    /// `--iters` sets the round trips, not the uncontended batches.
    pub(super) fn rounds(self, plan: &Plan) -> Rounds {
        let (warmup, timed) = match self {
            SyncOp::Uncontended => (2, 40),
            SyncOp::Handoff => (200, 2000),
            SyncOp::PingPong => (1000, 10_000),
        };
        let rounds = match plan.quick {
            false => Rounds { warmup, timed },
            true => Rounds { warmup: warmup.div_ceil(4), timed: timed.div_ceil(4) },
        };
        match self {
            SyncOp::Uncontended => rounds,
            _ => plan.iters_or(rounds),
        }
    }
}

/// A name for one trial's ipckit object, unique in the run.
fn object_name(op: SyncOp, n: usize, what: &str) -> Result<ShmName> {
    Ok(format!("/ipckit-bench-{}-{}-{n}{what}", std::process::id(), op.name()).parse()?)
}

/// `Mutex::lock`, with a dead owner as an error (the bench's processes
/// never die holding it).
fn lock(m: &Mutex<u64>) -> Result<MutexGuard<'_, u64>> {
    m.lock().map_err(|e| anyhow!("{e}"))
}

/// Creates an ipckit mutex object, removed on drop; one left by a dead run
/// under the same name is an error.
fn new_mutex(name: &ShmName) -> Result<Mutex<u64>> {
    let (m, opened) = Mutex::open_or_create_with(&Segment::new(name.clone()).unlink_on_drop(true), 0)?;
    ensure!(opened == Opened::Created, "{name} exists already");
    Ok(m)
}

/// Creates an ipckit auto-reset event, removed on drop.
fn new_event(name: &ShmName) -> Result<Event> {
    let seg = Segment::new(name.clone()).unlink_on_drop(true);
    let (e, opened) = Event::open_or_create_with(&seg, EventMode::AutoReset)?;
    ensure!(opened == Opened::Created, "{name} exists already");
    Ok(e)
}

/// The raw form of an auto-reset event: a state word (1: set) and a count
/// of sleeping waiters, as in ipckit's `Event`.
struct RawEvent<'a> {
    state: &'a AtomicU32,
    waiters: &'a AtomicU32,
}

impl<'a> RawEvent<'a> {
    fn at(page: &'a SharedPage, offset: usize) -> RawEvent<'a> {
        RawEvent { state: page.atomic_u32(offset), waiters: page.atomic_u32(offset + 4) }
    }

    fn set(&self) -> Result<()> {
        self.state.store(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            futex::wake(self.state, futex::Flags::empty(), 1).context("FUTEX_WAKE")?;
        }
        Ok(())
    }

    fn take(&self) -> bool {
        self.state.compare_exchange(1, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    /// Spins for `spin` trying to take the event, then sleeps on the
    /// state word until it is taken.
    fn wait(&self, spin: Duration) -> Result<()> {
        let spin_until = Instant::now() + spin;
        loop {
            if self.take() {
                return Ok(());
            }
            if Instant::now() >= spin_until {
                break;
            }
            std::hint::spin_loop();
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if self.take() {
                break Ok(());
            }
            match futex::wait(self.state, futex::Flags::empty(), 0, None) {
                Ok(()) | Err(Errno::AGAIN | Errno::INTR) => {}
                Err(e) => break Err(e),
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result.context("FUTEX_WAIT")
    }
}

/// The peer's exit, as the parent's wait loops see it.
#[derive(Clone, Debug, Default)]
struct Dead(Arc<AtomicBool>);

impl Dead {
    /// Fails if the peer has died.
    #[inline]
    fn check(&self) -> Result<()> {
        if self.0.load(Ordering::Relaxed) {
            bail!("the peer died");
        }
        Ok(())
    }

    /// The alarm that marks the peer dead, then runs `wake`.
    fn alarm(&self, wake: impl FnOnce() + Send + 'static) -> Alarm {
        let flag = self.0.clone();
        Box::new(move || {
            flag.store(true, Ordering::Relaxed);
            wake();
        })
    }
}

/// One trial of `op` in `mode`.
pub(super) fn trial(bench: &Bench, op: SyncOp, mode: Mode, n: usize) -> Result<Sample> {
    let rounds = op.rounds(&bench.plan);
    let tag = format!("-{}", mode.name());
    match (op, mode) {
        (SyncOp::Uncontended, Mode::Ipckit) => {
            let m = new_mutex(&object_name(op, n, &tag)?)?;
            time_batches(rounds, || {
                for _ in 0..BATCH {
                    drop(std::hint::black_box(lock(&m)?));
                }
                Ok(())
            })
        }
        (SyncOp::Uncontended, Mode::Raw) => {
            let page = SharedPage::create(PAGE).context("memfd page")?;
            let m = PthreadMutex::init(&page, MUTEX_AT).context("pthread_mutex_init")?;
            time_batches(rounds, || {
                for _ in 0..BATCH {
                    m.lock().context("pthread_mutex_lock")?;
                    m.unlock().context("pthread_mutex_unlock")?;
                }
                Ok(())
            })
        }
        (SyncOp::Handoff, Mode::Ipckit) => {
            let name = object_name(op, n, &tag)?;
            let m = new_mutex(&name)?;
            let mut cmd = bench.peer_command(Role::Experiment(Experiment::MutexHandoff), mode, 0, rounds.total());
            cmd.args(Meeting::objects(&[&name]).args());
            let dead = Dead::default();
            let peer = Peer::spawn(&mut cmd, Some(dead.alarm(|| {})))?;
            let outcome = time_rounds(rounds, |i| {
                let (mine, theirs) = (2 * i as u64, 2 * i as u64 + 1);
                {
                    let mut turn = lock(&m)?;
                    ensure!(*turn == mine, "turn {} where {mine} was expected", *turn);
                    *turn = theirs;
                }
                loop {
                    if *lock(&m)? == theirs + 1 {
                        return Ok(());
                    }
                    dead.check()?;
                    std::hint::spin_loop();
                }
            });
            peer.finish(outcome.map(|s| s.per(2.0)))
        }
        (SyncOp::Handoff, Mode::Raw) => {
            let page = SharedPage::create(PAGE).context("memfd page")?;
            let m = PthreadMutex::init(&page, MUTEX_AT).context("pthread_mutex_init")?;
            let turn = page.atomic_u64(TURN_AT);
            let mut cmd = bench.peer_command(Role::Experiment(Experiment::MutexHandoff), mode, 0, rounds.total());
            pass_page(&mut cmd, &page);
            let dead = Dead::default();
            let peer = Peer::spawn(&mut cmd, Some(dead.alarm(|| {})))?;
            let outcome = time_rounds(rounds, |i| {
                let (mine, theirs) = (2 * i as u64, 2 * i as u64 + 1);
                m.lock().context("pthread_mutex_lock")?;
                let now = turn.load(Ordering::Relaxed);
                if now == mine {
                    turn.store(theirs, Ordering::Relaxed);
                }
                m.unlock().context("pthread_mutex_unlock")?;
                ensure!(now == mine, "turn {now} where {mine} was expected");
                loop {
                    m.lock().context("pthread_mutex_lock")?;
                    let now = turn.load(Ordering::Relaxed);
                    m.unlock().context("pthread_mutex_unlock")?;
                    if now == theirs + 1 {
                        return Ok(());
                    }
                    dead.check()?;
                    std::hint::spin_loop();
                }
            });
            peer.finish(outcome.map(|s| s.per(2.0)))
        }
        (SyncOp::PingPong, Mode::Ipckit) => {
            let (ping_name, pong_name) =
                (object_name(op, n, &format!("{tag}-ping"))?, object_name(op, n, &format!("{tag}-pong"))?);
            let (ping, pong) = (new_event(&ping_name)?, new_event(&pong_name)?);
            let mut cmd = bench.peer_command(Role::Experiment(Experiment::EventPingpong), mode, 0, rounds.total());
            cmd.args(Meeting::objects(&[&ping_name, &pong_name]).args());
            let dead = Dead::default();
            let wake = move || {
                if let Ok(pong) = Event::open(&pong_name) {
                    let _ = pong.set();
                }
            };
            let peer = Peer::spawn(&mut cmd, Some(dead.alarm(wake)))?;
            let outcome = time_rounds(rounds, |_| {
                ping.set()?;
                pong.wait()?;
                dead.check()
            });
            peer.finish(outcome)
        }
        (SyncOp::PingPong, Mode::Raw) => {
            let page = Arc::new(SharedPage::create(2 * PAGE).context("memfd pages")?);
            let (ping, pong) = (RawEvent::at(&page, PING_AT), RawEvent::at(&page, PONG_AT));
            let mut cmd = bench.peer_command(Role::Experiment(Experiment::EventPingpong), mode, 0, rounds.total());
            pass_page(&mut cmd, &page);
            let dead = Dead::default();
            let shared = page.clone();
            let wake = move || {
                let _ = RawEvent::at(&shared, PONG_AT).set();
            };
            let peer = Peer::spawn(&mut cmd, Some(dead.alarm(wake)))?;
            let outcome = time_rounds(rounds, |_| {
                ping.set()?;
                pong.wait(DEFAULT_SPIN)?;
                dead.check()
            });
            peer.finish(outcome)
        }
        (_, other) => bail!("mode {} does not apply to {}", other.name(), op.name()),
    }
}

/// Times `rounds.warmup` untimed and `rounds.timed` timed calls of `batch`
/// ([`BATCH`] operations each); the p50 and p99 of nanoseconds per
/// operation.
fn time_batches(rounds: Rounds, mut batch: impl FnMut() -> Result<()>) -> Result<Sample> {
    for _ in 0..rounds.warmup {
        batch().context("warm-up batch")?;
    }
    let mut per_op = Vec::with_capacity(rounds.timed);
    for _ in 0..rounds.timed {
        let start = Instant::now();
        batch()?;
        per_op.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    Ok(Sample::of_values(per_op))
}

/// Lets the peer inherit the page's memfd (`--shared-fd`).
pub(super) fn pass_page(cmd: &mut Command, page: &SharedPage) {
    let fd = pass_fd(cmd, page.fd());
    cmd.args(Meeting { shared_fd: Some(fd), ..Meeting::default() }.args());
}

/// The peer's page, passed with [`pass_page`].
pub(super) fn peer_page(meeting: &Meeting) -> Result<SharedPage> {
    let raw = meeting.shared_fd.context("--shared-fd is required in raw mode")?;
    let fd = take_inherited_fd(raw).with_context(|| format!("claim inherited descriptor {raw}"))?;
    SharedPage::from_fd(fd).context("map the shared page")
}

/// The peer's names of ipckit objects.
fn peer_objects(meeting: &Meeting, count: usize) -> Result<Vec<ShmName>> {
    ensure!(meeting.objects.len() == count, "{count} --object names are required in ipckit mode");
    meeting.objects.iter().map(|o| Ok(o.parse::<ShmName>()?)).collect()
}

/// The peer of a two-process row: `iterations` rounds, mirroring the
/// parent's.
pub(super) fn peer(experiment: Experiment, mode: Mode, iterations: usize, meeting: &Meeting) -> Result<()> {
    match (experiment, mode) {
        (Experiment::MutexHandoff, Mode::Ipckit) => {
            let m = Mutex::<u64>::open(&peer_objects(meeting, 1)?[0])?;
            for i in 0..iterations {
                let mine = 2 * i as u64 + 1;
                loop {
                    let mut turn = lock(&m)?;
                    if *turn == mine {
                        *turn += 1;
                        break;
                    }
                    drop(turn);
                    std::hint::spin_loop();
                }
            }
        }
        (Experiment::MutexHandoff, Mode::Raw) => {
            let page = peer_page(meeting)?;
            let m = PthreadMutex::attach(&page, MUTEX_AT);
            let turn = page.atomic_u64(TURN_AT);
            for i in 0..iterations {
                let mine = 2 * i as u64 + 1;
                loop {
                    m.lock().context("pthread_mutex_lock")?;
                    let now = turn.load(Ordering::Relaxed);
                    if now == mine {
                        turn.store(mine + 1, Ordering::Relaxed);
                    }
                    m.unlock().context("pthread_mutex_unlock")?;
                    if now == mine {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        }
        (Experiment::EventPingpong, Mode::Ipckit) => {
            let names = peer_objects(meeting, 2)?;
            let (ping, pong) = (Event::open(&names[0])?, Event::open(&names[1])?);
            for _ in 0..iterations {
                ping.wait()?;
                pong.set()?;
            }
        }
        (Experiment::EventPingpong, Mode::Raw) => {
            let page = peer_page(meeting)?;
            let (ping, pong) = (RawEvent::at(&page, PING_AT), RawEvent::at(&page, PONG_AT));
            for _ in 0..iterations {
                ping.wait(DEFAULT_SPIN)?;
                pong.set()?;
            }
        }
        (experiment, mode) => bail!("mode {} does not apply to {experiment:?}", mode.name()),
    }
    Ok(())
}
