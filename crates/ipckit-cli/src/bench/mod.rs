//! `ipckit bench`: what ipckit costs over the system calls it makes, and
//! what copying costs against mapping.
//!
//! Three tables:
//!
//! - **Messages**: the round-trip latency of every message mechanism
//!   (pipes, FIFOs, sockets, POSIX and System V queues), through ipckit and
//!   through a raw loop of the same system calls, side by side. For each
//!   mechanism and message size, trials alternate between the two modes:
//!   ipckit, raw, ipckit, raw, ... A trial is a fresh pair of processes on
//!   different CPUs: this one, and a peer (`ipckit bench-peer`, this
//!   executable run again) that echoes every message back. The parent times
//!   each round trip (send N bytes, receive the N-byte echo) after a
//!   warm-up; a trial yields the p50 and p99 of its round trips. A row shows,
//!   per mode, the median over trials of each, and the ratio of the medians
//!   of p50, ipckit / raw: what the wrapper costs. Queue rows include the
//!   largest message the kernel's limits allow, and say "n/a (limit N)" for
//!   a size over it.
//! - **Copy vs map**: N bytes sent through a Unix socket against N bytes
//!   written to a shared segment with a small note through the same kind of
//!   socket, the two modes interleaved the same way; the ratio copy / map,
//!   and the crossover size (`copymap`).
//! - **Synchronization**: ipckit's mutex (uncontended, and handed between
//!   two processes) and futex event (ping-pong between two processes),
//!   beside raw pthread and futex loops (`sync`).
//!
//! Modules:
//!
//! 1. `link`: the [`Link`](link::Link) trait, the timed loops and the
//!    peer's echo loop.
//! 2. `api`: message links through ipckit's public API.
//! 3. `raw`: message links of direct rustix calls: per message, the same
//!    system calls with the same bytes as ipckit makes.
//! 4. `queue`: the queue rows' kernel limits, names, and raw links.
//! 5. `copymap`: the copy-vs-map table.
//! 6. `sync`: the synchronization table.
//! 7. `raw_ffi`: the raw loops' `unsafe` calls (libc where rustix has
//!    nothing: queues, pthread mutexes; a shared mapping).
//! 8. `process`: the peer process (spawn, watchdog, reap) and the scratch
//!    directory.
//! 9. `report`: the tables and the JSON document.

mod api;
mod copymap;
mod link;
mod process;
mod queue;
mod raw;
mod raw_ffi;
mod report;
mod sync;

use std::fmt;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ipckit::process::{allowed_cpus, pin_to_cpu};
use ipckit::shm::ShmName;
use ipckit::{Endpoint, ErrorKind};

use link::{Link, Rounds, Sample};
use process::{Alarm, Peer, Scratch};
use report::{CopyMapRow, Outcome, Report, Row, SyncRow};
use sync::SyncOp;

/// The message sizes of the socket rows; queue rows add the largest
/// message the kernel allows.
const SIZES: [usize; 2] = [64, 64 * 1024];

/// The largest message of the message table: every link's configured
/// maximum and the size of every receive buffer.
const MAX_MESSAGE: usize = 64 * 1024;

/// The time a default run aims to spend measuring each table (46 s in
/// all, so that a run with set-up and the last trials of each job stays
/// under a minute): on an idle machine it needs about half; on a loaded
/// one, jobs stop after their share.
const BUDGET_MESSAGES: Duration = Duration::from_secs(26);
const BUDGET_COPY_MAP: Duration = Duration::from_secs(15);
const BUDGET_SYNC: Duration = Duration::from_secs(5);

/// The fewest trials of each mode a job runs, whatever the budget.
const MIN_TRIALS: usize = 5;

/// Trials of each mode per size of the copy-vs-map table, by default:
/// fewer than elsewhere, as its large sizes take long.
const COPY_MAP_TRIALS: usize = 15;

/// How long setting up a link may wait for the other side.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A few seconds instead of up to a minute: fewer trials and round
    /// trips (for smoke tests; the ratios are rougher).
    #[arg(long)]
    pub quick: bool,
    /// Print the results as one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
    /// Only rows whose name contains this text (repeatable): pipe, fifo,
    /// unix-stream, unix-seqpacket, unix-dgram, tcp, mq, sysv-mq,
    /// copy-vs-map, mutex-uncontended, mutex-handoff, event-pingpong.
    #[arg(long, value_name = "TEXT")]
    pub filter: Vec<String>,
    /// Trials of each mode per row [default: 21 (15 for copy vs map),
    /// fewer (at least 5) where a loaded machine makes them slow; 3 with
    /// --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub trials: Option<u32>,
}

/// Internal: the peer of one trial. It opens its side, does its part of
/// `iterations` rounds, and exits.
#[derive(Args, Debug)]
pub struct PeerArgs {
    /// A message mechanism: echo every message.
    #[arg(long, value_enum, required_unless_present = "experiment", conflicts_with = "experiment")]
    mechanism: Option<Mechanism>,
    /// Another experiment's peer.
    #[arg(long, value_enum)]
    experiment: Option<Experiment>,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Bytes in every message.
    #[arg(long, default_value_t = 0)]
    size: usize,
    /// Rounds to take part in.
    #[arg(long)]
    iterations: usize,
    /// The CPU to run on.
    #[arg(long)]
    cpu: Option<usize>,
    #[command(flatten)]
    meeting: Meeting,
}

/// A message mechanism under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mechanism {
    Pipe,
    Fifo,
    UnixStream,
    UnixSeqpacket,
    UnixDgram,
    Tcp,
    Mq,
    SysvMq,
}

/// How the two processes of a trial are joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Two anonymous pipes, one each way, inherited by the peer.
    Pipes,
    /// Each side owns an inbox the other sends to (FIFO, datagram socket).
    Mailboxes,
    /// The parent listens, the peer connects; one socket both ways.
    Connection,
    /// Two message queues, one each way, both created by the parent.
    Queues,
}

impl Mechanism {
    const ALL: [Mechanism; 8] = [
        Mechanism::Pipe,
        Mechanism::Fifo,
        Mechanism::UnixStream,
        Mechanism::UnixSeqpacket,
        Mechanism::UnixDgram,
        Mechanism::Tcp,
        Mechanism::Mq,
        Mechanism::SysvMq,
    ];

    /// The name in tables, `--filter` and `--mechanism`.
    fn name(self) -> &'static str {
        match self {
            Mechanism::Pipe => "pipe",
            Mechanism::Fifo => "fifo",
            Mechanism::UnixStream => "unix-stream",
            Mechanism::UnixSeqpacket => "unix-seqpacket",
            Mechanism::UnixDgram => "unix-dgram",
            Mechanism::Tcp => "tcp",
            Mechanism::Mq => "mq",
            Mechanism::SysvMq => "sysv-mq",
        }
    }

    /// How the two processes of a trial are joined.
    fn shape(self) -> Shape {
        match self {
            Mechanism::Pipe => Shape::Pipes,
            Mechanism::Fifo | Mechanism::UnixDgram => Shape::Mailboxes,
            Mechanism::UnixStream | Mechanism::UnixSeqpacket | Mechanism::Tcp => Shape::Connection,
            Mechanism::Mq | Mechanism::SysvMq => Shape::Queues,
        }
    }
}

/// A peer that is not a message echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Experiment {
    /// Receives payloads (copy) or notes of a shared segment (map).
    CopyMap,
    /// Takes its turns of a mutex-protected turn word.
    MutexHandoff,
    /// Answers each event with the other.
    EventPingpong,
}

impl Experiment {
    fn name(self) -> &'static str {
        match self {
            Experiment::CopyMap => "copy-map",
            Experiment::MutexHandoff => "mutex-handoff",
            Experiment::EventPingpong => "event-pingpong",
        }
    }
}

/// What a peer does: echo messages, or another experiment.
#[derive(Clone, Copy, Debug)]
enum Role {
    Echo(Mechanism),
    Experiment(Experiment),
}

/// Which implementation a trial runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// ipckit's public API.
    Ipckit,
    /// Direct system calls, the same ones ipckit makes.
    Raw,
    /// Copy vs map: the bytes go through the socket.
    Copy,
    /// Copy vs map: the bytes go through a shared segment.
    Map,
}

impl Mode {
    /// The order of trials within each pair of the ipckit-vs-raw tables.
    const PAIR: [Mode; 2] = [Mode::Ipckit, Mode::Raw];

    fn name(self) -> &'static str {
        match self {
            Mode::Ipckit => "ipckit",
            Mode::Raw => "raw",
            Mode::Copy => "copy",
            Mode::Map => "map",
        }
    }

    /// The parent's side of a message trial, before the peer is spawned.
    fn prepare(self, mech: Mechanism, spot: &Spot<'_>, cmd: &mut Command) -> Result<(Meeting, Pending)> {
        match self {
            Mode::Ipckit => api::prepare(mech, spot, cmd),
            Mode::Raw => raw::prepare(mech, spot, cmd),
            other => bail!("mode {} does not apply to {}", other.name(), mech.name()),
        }
    }

    /// The peer's side of a message trial.
    fn open_peer(self, mech: Mechanism, meeting: &Meeting) -> Result<Box<dyn Link>> {
        match self {
            Mode::Ipckit => api::open_peer(mech, meeting),
            Mode::Raw => raw::open_peer(mech, meeting),
            other => bail!("mode {} does not apply to {}", other.name(), mech.name()),
        }
    }
}

/// A link under construction on the parent's side: finishes setting up once
/// the peer runs.
type Pending = Box<dyn FnOnce() -> Result<Box<dyn Link>>>;

/// Where the peer of a trial finds the parent: its command-line arguments.
#[derive(Args, Debug, Clone, Default)]
struct Meeting {
    /// Where the peer connects (sockets), or sends (fifo, unix-dgram,
    /// queues: the parent's inbox).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Option<String>,
    /// fifo, unix-dgram: the peer's own inbox, which it creates; queues:
    /// the queue it receives from, which the parent created.
    #[arg(long, value_name = "ENDPOINT")]
    inbox: Option<String>,
    /// pipe: the inherited descriptors the peer reads from and writes to.
    #[arg(long, num_args = 2, value_names = ["READ", "WRITE"])]
    fds: Vec<RawFd>,
    /// Synchronization, ipckit mode: the objects to open (repeatable).
    #[arg(long = "object", value_name = "NAME")]
    objects: Vec<String>,
    /// Synchronization, raw mode: the inherited shared page.
    #[arg(long, value_name = "FD")]
    shared_fd: Option<RawFd>,
}

impl Meeting {
    /// A connection mechanism: `ep` is the parent's listener.
    fn listener(ep: &Endpoint) -> Meeting {
        Meeting { connect: Some(ep.to_string()), ..Meeting::default() }
    }

    /// `parent` is the parent's inbox, `peer` the peer's.
    fn mailboxes(parent: &Endpoint, peer: &Endpoint) -> Meeting {
        Meeting { connect: Some(parent.to_string()), inbox: Some(peer.to_string()), ..Meeting::default() }
    }

    fn pipes(read: RawFd, write: RawFd) -> Meeting {
        Meeting { fds: vec![read, write], ..Meeting::default() }
    }

    /// Named shared-memory objects.
    fn objects(names: &[&ShmName]) -> Meeting {
        Meeting { objects: names.iter().map(ToString::to_string).collect(), ..Meeting::default() }
    }

    /// The command-line arguments that say this.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(c) = &self.connect {
            args.extend(["--connect".to_owned(), c.clone()]);
        }
        if let Some(i) = &self.inbox {
            args.extend(["--inbox".to_owned(), i.clone()]);
        }
        if !self.fds.is_empty() {
            args.push("--fds".to_owned());
            args.extend(self.fds.iter().map(RawFd::to_string));
        }
        for o in &self.objects {
            args.extend(["--object".to_owned(), o.clone()]);
        }
        if let Some(fd) = self.shared_fd {
            args.extend(["--shared-fd".to_owned(), fd.to_string()]);
        }
        args
    }

    fn parsed(text: Option<&String>, flag: &str) -> Result<Endpoint> {
        let text = text.with_context(|| format!("{flag} is required for this mechanism"))?;
        Ok(text.parse()?)
    }

    /// The endpoint of `--connect`.
    fn connect(&self) -> Result<Endpoint> {
        Meeting::parsed(self.connect.as_ref(), "--connect")
    }

    /// The endpoint of `--inbox`.
    fn inbox(&self) -> Result<Endpoint> {
        Meeting::parsed(self.inbox.as_ref(), "--inbox")
    }

    /// The descriptors of `--fds`: (read, write).
    fn fds(&self) -> Result<(RawFd, RawFd)> {
        match self.fds[..] {
            [read, write] => Ok((read, write)),
            _ => bail!("--fds READ WRITE is required for pipes"),
        }
    }
}

/// The names of one trial's objects, in the scratch directory (or, for
/// queues, in the kernel's namespaces).
#[derive(Debug)]
struct Spot<'a> {
    scratch: &'a Scratch,
    /// Unique in the run: `mechanism-size-mode-trial`.
    tag: String,
    /// Queues: the message size to create them with.
    queue_msgsize: usize,
}

impl Spot<'_> {
    /// `scheme:` and a file in the scratch directory.
    fn endpoint(&self, scheme: &str, suffix: &str) -> Result<Endpoint> {
        let path = self.scratch.dir().join(format!("{}{suffix}", self.tag));
        let text = format!("{scheme}:{}", path.display());
        text.parse().with_context(|| format!("endpoint in the scratch directory {}", self.scratch.dir().display()))
    }

    /// The two inboxes of a mailbox mechanism: (the parent's, the peer's).
    fn mailboxes(&self, mech: Mechanism) -> Result<(Endpoint, Endpoint)> {
        let scheme = if mech == Mechanism::Fifo { "fifo" } else { "unix-dgram" };
        Ok((self.endpoint(scheme, ".up")?, self.endpoint(scheme, ".down")?))
    }

    /// Where the parent of a connection mechanism listens: a socket file,
    /// or for TCP the loopback address with a port the kernel chooses.
    fn listen_at(&self, mech: Mechanism) -> Result<Endpoint> {
        match mech {
            Mechanism::Tcp => Ok("tcp:127.0.0.1:0".parse()?),
            Mechanism::UnixSeqpacket => self.endpoint("unix-seqpacket", ".sock"),
            _ => self.endpoint("unix", ".sock"),
        }
    }
}

/// Where the two processes run.
#[derive(Clone, Copy, Debug)]
enum Placement {
    /// Each pinned to its own CPU.
    Pinned { parent: usize, peer: usize },
    /// Fewer than two CPUs allowed: wherever the scheduler puts them.
    Unpinned,
}

impl Placement {
    /// Pins this thread to the first allowed CPU and picks the second for
    /// the peer; unpinned if only one is allowed.
    fn choose() -> Result<Placement> {
        match allowed_cpus()[..] {
            [parent, peer, ..] => {
                pin_to_cpu(parent).with_context(|| format!("pin to CPU {parent}"))?;
                Ok(Placement::Pinned { parent, peer })
            }
            _ => Ok(Placement::Unpinned),
        }
    }

    fn peer_cpu(self) -> Option<usize> {
        match self {
            Placement::Pinned { peer, .. } => Some(peer),
            Placement::Unpinned => None,
        }
    }
}

/// The tables, each with its own share of the time budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Messages,
    CopyMap,
    Sync,
}

/// What a run measures.
#[derive(Clone, Debug)]
struct Plan {
    /// The message table's rows.
    jobs: Vec<Job>,
    /// Whether the copy-vs-map table is wanted.
    copy_map: bool,
    /// The synchronization table's rows.
    sync: Vec<SyncOp>,
    /// Trials of each mode per row (copy vs map: `copy_map_trials`).
    trials: usize,
    copy_map_trials: usize,
    /// Whether a job stops early once it has used its share of its table's
    /// budget (a loaded machine), after at least [`MIN_TRIALS`]. Not with
    /// `--trials` or `--quick`.
    budgeted: bool,
    quick: bool,
    /// The kernel's limits on queue messages.
    limits: queue::Limits,
}

/// The name of the copy-vs-map table in `--filter`.
const COPY_MAP_NAME: &str = "copy-vs-map";

impl Plan {
    fn new(args: &BenchArgs) -> Result<Plan> {
        let wanted = |name: &str| args.filter.is_empty() || args.filter.iter().any(|f| name.contains(f.as_str()));
        let mechanisms: Vec<Mechanism> = Mechanism::ALL.into_iter().filter(|m| wanted(m.name())).collect();
        let copy_map = wanted(COPY_MAP_NAME);
        let sync: Vec<SyncOp> = SyncOp::ALL.into_iter().filter(|op| wanted(op.name())).collect();
        if mechanisms.is_empty() && !copy_map && sync.is_empty() {
            // A usage error (exit code 2), like a malformed endpoint.
            let names: Vec<&str> = Mechanism::ALL
                .iter()
                .map(|m| m.name())
                .chain([COPY_MAP_NAME])
                .chain(SyncOp::ALL.iter().map(|op| op.name()))
                .collect();
            let why = format!("matches no row (there are: {})", names.join(", "));
            return Err(
                ipckit::Error::new(ErrorKind::Invalid, "bench", format!("--filter {:?}", args.filter), why).into()
            );
        }
        let (trials, copy_map_trials, budgeted) = match (args.trials, args.quick) {
            (Some(t), _) => (t as usize, t as usize, false),
            (None, true) => (3, 3, false),
            (None, false) => (21, COPY_MAP_TRIALS, true),
        };
        let limits = queue::Limits::read();
        let jobs = mechanisms.iter().flat_map(|&m| Job::all(m, &limits)).collect();
        Ok(Plan { jobs, copy_map, sync, trials, copy_map_trials, budgeted, quick: args.quick, limits })
    }

    /// The time a job of `table` may take before it has had enough (after
    /// [`MIN_TRIALS`]), if the run is budgeted.
    fn share(&self, table: Table) -> Option<Duration> {
        let (budget, jobs) = match table {
            Table::Messages => (BUDGET_MESSAGES, self.jobs.iter().filter(|j| j.limit.is_none()).count()),
            Table::CopyMap => (BUDGET_COPY_MAP, copymap::SIZES.len()),
            Table::Sync => (BUDGET_SYNC, self.sync.len()),
        };
        self.budgeted.then(|| budget / jobs.max(1) as u32)
    }

    /// Round trips per trial for messages of `size` bytes: enough for a
    /// stable median, few enough that the default run stays under a minute
    /// on two cores (large messages take several times longer).
    fn rounds(&self, size: usize) -> Rounds {
        match (self.quick, size <= 4096) {
            (false, true) => Rounds { warmup: 100, timed: 1000 },
            (false, false) => Rounds { warmup: 40, timed: 400 },
            (true, true) => Rounds { warmup: 50, timed: 300 },
            (true, false) => Rounds { warmup: 20, timed: 100 },
        }
    }

    /// Trials in the whole run.
    fn trial_count(&self) -> u64 {
        let pairs = self.jobs.len() * self.trials
            + usize::from(self.copy_map) * copymap::SIZES.len() * self.copy_map_trials
            + self.sync.len() * self.trials;
        (pairs * 2) as u64
    }
}

/// One row of the message table: a mechanism at one message size.
#[derive(Clone, Copy, Debug)]
struct Job {
    mechanism: Mechanism,
    size: usize,
    /// The largest message the kernel allows for this mechanism (a queue).
    kernel_max: bool,
    /// The kernel's limit, when `size` is over it: the row is "n/a".
    limit: Option<usize>,
}

impl Job {
    /// The rows of `mech`: 64 B and 64 KiB; for a queue, the kernel's
    /// largest message between them, and 64 KiB only if it fits.
    fn all(mech: Mechanism, limits: &queue::Limits) -> Vec<Job> {
        let job = |size| Job { mechanism: mech, size, kernel_max: false, limit: None };
        let Some(limit) = limits.of(mech) else {
            return SIZES.map(job).to_vec();
        };
        let mut jobs = vec![job(SIZES[0])];
        let largest = queue::queue_msgsize(limit);
        if largest > SIZES[0] && largest < MAX_MESSAGE {
            jobs.push(Job { kernel_max: true, ..job(largest) });
        }
        let over = (limit.max < MAX_MESSAGE).then_some(limit.max);
        jobs.push(Job { limit: over, ..job(MAX_MESSAGE) });
        jobs
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.mechanism.name(), report::size(self.size))
    }
}

/// What the trials of one job found.
enum Trials {
    /// The samples of the two modes.
    Done([Vec<Sample>; 2]),
    /// A message over a kernel limit (`EMSGSIZE`); why.
    Limit(String),
}

/// Everything a trial needs from the run.
#[derive(Debug)]
struct Bench {
    plan: Plan,
    placement: Placement,
    scratch: Scratch,
    exe: PathBuf,
    bar: ProgressBar,
}

impl Bench {
    /// `ipckit bench-peer` for a trial, without the meeting arguments.
    fn peer_command(&self, role: Role, mode: Mode, size: usize, iterations: usize) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("bench-peer");
        match role {
            Role::Echo(mech) => cmd.args(["--mechanism", mech.name()]),
            Role::Experiment(e) => cmd.args(["--experiment", e.name()]),
        };
        cmd.args(["--mode", mode.name(), "--size", &size.to_string(), "--iterations", &iterations.to_string()]);
        if let Some(cpu) = self.placement.peer_cpu() {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        cmd
    }

    /// Runs the trials of one job, `modes` alternating, until it has had
    /// enough: `trials` of each, or (budgeted) at least [`MIN_TRIALS`] once
    /// `share` is spent. A message over a kernel limit (`EMSGSIZE`) ends
    /// the job as [`Trials::Limit`].
    fn interleave(
        &self,
        label: &str,
        modes: [Mode; 2],
        trials: usize,
        share: Option<Duration>,
        mut trial: impl FnMut(Mode, usize) -> Result<Sample>,
    ) -> Result<Trials> {
        let start = Instant::now();
        let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        let mut n = 0;
        let enough = |n: usize| n >= trials || share.is_some_and(|s| n >= MIN_TRIALS && start.elapsed() >= s);
        while !enough(n) {
            for (i, mode) in modes.into_iter().enumerate() {
                self.bar.set_message(format!("{label} {}", mode.name()));
                match trial(mode, n) {
                    Ok(sample) => samples[i].push(sample),
                    Err(e) if is_limit(&e) => {
                        self.bar.inc(((trials - n) * 2 - i) as u64);
                        return Ok(Trials::Limit(format!("{e:#}")));
                    }
                    Err(e) => return Err(e.context(format!("{label}, {} trial {}", mode.name(), n + 1))),
                }
                self.bar.inc(1);
            }
            n += 1;
        }
        // Trials the budget saved, so that the bar ends full.
        self.bar.inc(((trials - n) * 2) as u64);
        Ok(Trials::Done(samples))
    }

    /// One trial of the message table: spawn a peer, set up the link, time
    /// the round trips, end the peer.
    fn message_trial(&self, job: Job, mode: Mode, n: usize) -> Result<Sample> {
        let rounds = self.plan.rounds(job.size);
        let mut cmd = self.peer_command(Role::Echo(job.mechanism), mode, job.size, rounds.total());
        let tag = format!("{}-{}-{}-{n}", job.mechanism.name(), job.size, mode.name());
        let queue_msgsize = self.plan.limits.of(job.mechanism).map_or(0, queue::queue_msgsize);
        let spot = Spot { scratch: &self.scratch, tag, queue_msgsize };
        let (meeting, pending) = mode.prepare(job.mechanism, &spot, &mut cmd)?;
        cmd.args(meeting.args());
        let alarm: Option<Alarm> = match job.mechanism.shape() {
            Shape::Mailboxes | Shape::Queues => Some(process::wake_inbox(meeting.connect()?)),
            _ => None,
        };
        let peer = Peer::spawn(&mut cmd, alarm)?;
        let mut buf = link::Buffer::payload(MAX_MESSAGE);
        // The link is closed when this returns, before the peer is awaited.
        let outcome = pending().and_then(|mut link| link::time_round_trips(&mut *link, &mut buf, job.size, rounds));
        peer.finish(outcome)
    }

    /// A row of the message table.
    fn message_row(&self, job: Job) -> Result<Row> {
        let rounds = self.plan.rounds(job.size);
        if let Some(limit) = job.limit {
            self.bar.inc((self.plan.trials * 2) as u64);
            let why = format!(
                "{} is over the kernel's limit of {limit} bytes per message ({})",
                report::size(job.size),
                self.plan.limits.of(job.mechanism).map_or("", |l| l.source.as_str())
            );
            return Ok(Row { job, rounds, outcome: Outcome::Limit { limit: Some(limit), why } });
        }
        let share = self.plan.share(Table::Messages);
        let trials = self.interleave(&job.to_string(), Mode::PAIR, self.plan.trials, share, |mode, n| {
            self.message_trial(job, mode, n)
        })?;
        let outcome = match trials {
            Trials::Done([ipckit, raw]) => Outcome::measured(ipckit, raw),
            Trials::Limit(why) => Outcome::Limit { limit: None, why },
        };
        Ok(Row { job, rounds, outcome })
    }

    /// The copy-vs-map table's rows.
    fn copy_map_rows(&self) -> Result<Vec<CopyMapRow>> {
        let share = self.plan.share(Table::CopyMap);
        let mut rows = Vec::new();
        for size in copymap::SIZES {
            let payload = link::Buffer::payload(size);
            let label = format!("{COPY_MAP_NAME} {}", report::size(size));
            let trials = self.interleave(&label, copymap::MODES, self.plan.copy_map_trials, share, |mode, n| {
                copymap::trial(self, mode, &payload, n)
            })?;
            let Trials::Done([copy, map]) = trials else {
                bail!("{label}: over a kernel limit");
            };
            rows.push(CopyMapRow::new(size, copymap::rounds(size, self.plan.quick), copy, map));
        }
        Ok(rows)
    }

    /// Every table of the plan, in order.
    fn measure(&self, load: Option<f64>) -> Result<Report<'_>> {
        let rows = self.plan.jobs.iter().map(|&job| self.message_row(job)).collect::<Result<Vec<Row>>>()?;
        let copy_map = if self.plan.copy_map { Some(self.copy_map_rows()?) } else { None };
        let sync = self.plan.sync.iter().map(|&op| self.sync_row(op)).collect::<Result<Vec<SyncRow>>>()?;
        Ok(Report { plan: &self.plan, placement: self.placement, load, rows, copy_map, sync })
    }

    /// A row of the synchronization table.
    fn sync_row(&self, op: SyncOp) -> Result<SyncRow> {
        let share = self.plan.share(Table::Sync);
        let trials =
            self.interleave(op.name(), Mode::PAIR, self.plan.trials, share, |mode, n| sync::trial(self, op, mode, n))?;
        let Trials::Done([ipckit, raw]) = trials else {
            bail!("{}: over a kernel limit", op.name());
        };
        Ok(SyncRow::new(op, op.rounds(self.plan.quick), ipckit, raw))
    }
}

/// Whether `e` is a message over a kernel limit (`EMSGSIZE`), from ipckit or
/// from a raw call.
fn is_limit(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<ipckit::Error>().is_some_and(|e| e.errno() == Some(rustix::io::Errno::MSGSIZE))
            || cause.downcast_ref::<rustix::io::Errno>() == Some(&rustix::io::Errno::MSGSIZE)
    })
}

/// A progress bar on standard error (drawn only on a terminal).
fn progress_bar(len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} trials, {elapsed} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style)
}

/// The 1-minute load average (`/proc/loadavg`): how much other work
/// competes for the CPUs.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// `ipckit bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let load = load_average();
    let plan = Plan::new(&args)?;
    let placement = Placement::choose()?;
    let exe = std::env::current_exe().context("find this executable, to run the peer")?;
    let bar = progress_bar(plan.trial_count());
    let bench = Bench { plan, placement, scratch: Scratch::create()?, exe, bar };
    let report = bench.measure(load);
    bench.bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", report.json());
    } else {
        println!("{}", report.text());
    }
    Ok(())
}

/// `ipckit bench-peer`: the other end of one trial.
pub fn peer(args: PeerArgs) -> Result<()> {
    // If the parent dies, so does the peer, instead of waiting forever.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context("prctl PR_SET_PDEATHSIG")?;
    if let Some(cpu) = args.cpu {
        pin_to_cpu(cpu).with_context(|| format!("pin to CPU {cpu}"))?;
    }
    match (args.mechanism, args.experiment) {
        (Some(mech), _) => {
            if args.size > MAX_MESSAGE {
                bail!("--size {} is over the {MAX_MESSAGE}-byte maximum", args.size);
            }
            let mut link = args.mode.open_peer(mech, &args.meeting).context("bench-peer: set up")?;
            let mut buf = link::Buffer::zeroed(MAX_MESSAGE);
            link::echo(&mut *link, &mut buf, args.size, args.iterations).context("bench-peer")
        }
        (None, Some(Experiment::CopyMap)) => {
            copymap::peer(args.mode, args.size, args.iterations, &args.meeting).context("bench-peer")
        }
        (None, Some(e)) => sync::peer(e, args.mode, args.iterations, &args.meeting).context("bench-peer"),
        (None, None) => bail!("--mechanism or --experiment is required"),
    }
}
