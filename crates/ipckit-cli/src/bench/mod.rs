//! `ipckit bench`: round-trip latency of every mechanism, through ipckit
//! and through a raw loop of the same system calls, side by side.
//!
//! For each mechanism and message size, trials alternate between the two
//! modes: ipckit, raw, ipckit, raw, ... A trial is a fresh pair of
//! processes on different CPUs: this one, and a peer (`ipckit bench-peer`,
//! this executable run again) that echoes every message back. The parent
//! times each round trip (send N bytes, receive the N-byte echo) after a
//! warm-up; a trial yields the p50 and p99 of its round trips. A row of the
//! report shows, per mode, the median over trials of each, and the ratio
//! of the medians of p50, ipckit / raw: what the wrapper costs.
//!
//! 1. `link`: the [`Link`](link::Link) trait, the timed round-trip loop
//!    and the peer's echo loop.
//! 2. `api`: links through ipckit's public API.
//! 3. `raw`: links of direct rustix calls: per message, the same system
//!    calls with the same bytes as ipckit makes.
//! 4. `process`: the peer process (spawn, watchdog, reap) and the scratch
//!    directory.
//! 5. `report`: the table and the JSON document.

mod api;
mod link;
mod process;
mod raw;
mod report;

use std::fmt;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ipckit::sys::process::{allowed_cpus, pin_to_cpu};
use ipckit::{Endpoint, ErrorKind};

use link::{Link, Rounds, Sample};
use process::{Peer, Scratch};
use report::{Outcome, Report, Row};

/// The message sizes measured.
const SIZES: [usize; 2] = [64, 64 * 1024];

/// The largest message: every link's configured maximum and the size of
/// every receive buffer.
const MAX_MESSAGE: usize = 64 * 1024;

/// The time a default run aims to spend measuring: on an idle machine it
/// needs about half of this; on a loaded one, jobs stop after their share.
const BUDGET: Duration = Duration::from_secs(40);

/// The fewest trials of each mode a job runs, whatever the budget.
const MIN_TRIALS: usize = 5;

/// How long setting up a link may wait for the other side.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// About a second instead of up to a minute: fewer trials and round
    /// trips (for smoke tests; the ratios are rougher).
    #[arg(long)]
    pub quick: bool,
    /// Print the results as one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
    /// Only mechanisms whose name contains this text (repeatable): pipe,
    /// fifo, unix-stream, unix-seqpacket, unix-dgram, tcp.
    #[arg(long, value_name = "TEXT")]
    pub filter: Vec<String>,
    /// Trials of each mode per mechanism and size [default: 21, fewer
    /// (at least 5) where a loaded machine makes them slow; 3 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub trials: Option<u32>,
}

/// Internal: the peer of one trial. It opens its side of the link, echoes
/// `iterations` messages of `size` bytes, and exits.
#[derive(Args, Debug)]
pub struct PeerArgs {
    #[arg(long, value_enum)]
    mechanism: Mechanism,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Bytes in every message.
    #[arg(long)]
    size: usize,
    /// Messages to echo.
    #[arg(long)]
    iterations: usize,
    /// The CPU to run on.
    #[arg(long)]
    cpu: Option<usize>,
    #[command(flatten)]
    meeting: Meeting,
}

/// A mechanism under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mechanism {
    Pipe,
    Fifo,
    UnixStream,
    UnixSeqpacket,
    UnixDgram,
    Tcp,
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
}

impl Mechanism {
    const ALL: [Mechanism; 6] = [
        Mechanism::Pipe,
        Mechanism::Fifo,
        Mechanism::UnixStream,
        Mechanism::UnixSeqpacket,
        Mechanism::UnixDgram,
        Mechanism::Tcp,
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
        }
    }

    /// How the two processes of a trial are joined.
    fn shape(self) -> Shape {
        match self {
            Mechanism::Pipe => Shape::Pipes,
            Mechanism::Fifo | Mechanism::UnixDgram => Shape::Mailboxes,
            Mechanism::UnixStream | Mechanism::UnixSeqpacket | Mechanism::Tcp => Shape::Connection,
        }
    }
}

/// Which implementation a trial runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// ipckit's public API.
    Ipckit,
    /// Direct system calls, the same ones ipckit makes.
    Raw,
}

impl Mode {
    /// The order of trials within each pair.
    const ALL: [Mode; 2] = [Mode::Ipckit, Mode::Raw];

    fn name(self) -> &'static str {
        match self {
            Mode::Ipckit => "ipckit",
            Mode::Raw => "raw",
        }
    }

    /// The parent's side, before the peer is spawned.
    fn prepare(self, mech: Mechanism, spot: &Spot<'_>, cmd: &mut Command) -> Result<(Meeting, Pending)> {
        match self {
            Mode::Ipckit => api::prepare(mech, spot, cmd),
            Mode::Raw => raw::prepare(mech, spot, cmd),
        }
    }

    /// The peer's side.
    fn open_peer(self, mech: Mechanism, meeting: &Meeting) -> Result<Box<dyn Link>> {
        match self {
            Mode::Ipckit => api::open_peer(mech, meeting),
            Mode::Raw => raw::open_peer(mech, meeting),
        }
    }
}

/// A link under construction on the parent's side: finishes setting up once
/// the peer runs.
type Pending = Box<dyn FnOnce() -> Result<Box<dyn Link>>>;

/// Where the peer of a trial finds the parent: its command-line arguments.
#[derive(Args, Debug, Clone, Default)]
struct Meeting {
    /// Where the peer connects (sockets), or sends (fifo, unix-dgram: the
    /// parent's inbox).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Option<String>,
    /// fifo, unix-dgram: the peer's own inbox, which it creates.
    #[arg(long, value_name = "ENDPOINT")]
    inbox: Option<String>,
    /// pipe: the inherited descriptors the peer reads from and writes to.
    #[arg(long, num_args = 2, value_names = ["READ", "WRITE"])]
    fds: Vec<RawFd>,
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

/// The names of one trial's objects, in the scratch directory.
#[derive(Debug)]
struct Spot<'a> {
    scratch: &'a Scratch,
    /// Unique in the run: `mechanism-size-mode-trial`.
    tag: String,
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

/// What a run measures.
#[derive(Clone, Debug)]
struct Plan {
    mechanisms: Vec<Mechanism>,
    /// Trials of each mode per job.
    trials: usize,
    /// Fewer trials are enough once a job has used its share of this (a
    /// loaded machine), but never fewer than [`MIN_TRIALS`]. `None`: always
    /// `trials` (`--trials`, `--quick`).
    budget: Option<Duration>,
    quick: bool,
}

impl Plan {
    fn new(args: &BenchArgs) -> Result<Plan> {
        let wanted =
            |m: &Mechanism| args.filter.is_empty() || args.filter.iter().any(|f| m.name().contains(f.as_str()));
        let mechanisms: Vec<Mechanism> = Mechanism::ALL.into_iter().filter(wanted).collect();
        if mechanisms.is_empty() {
            // A usage error (exit code 2), like a malformed endpoint.
            let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
            let why = format!("matches no mechanism (there are: {})", names.join(", "));
            return Err(
                ipckit::Error::new(ErrorKind::Invalid, "bench", format!("--filter {:?}", args.filter), why).into()
            );
        }
        let (trials, budget) = match (args.trials, args.quick) {
            (Some(t), _) => (t as usize, None),
            (None, true) => (3, None),
            (None, false) => (21, Some(BUDGET)),
        };
        Ok(Plan { mechanisms, trials, budget, quick: args.quick })
    }

    /// Whether a job that has run `done` trials of each mode in `spent` has
    /// had enough.
    fn enough(&self, done: usize, spent: Duration) -> bool {
        let jobs = (self.mechanisms.len() * SIZES.len()) as u32;
        match self.budget {
            _ if done >= self.trials => true,
            Some(budget) => done >= MIN_TRIALS && spent >= budget / jobs,
            None => false,
        }
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

    /// Every (mechanism, size), in order.
    fn jobs(&self) -> impl Iterator<Item = Job> + '_ {
        self.mechanisms.iter().flat_map(|&mechanism| SIZES.map(|size| Job { mechanism, size }))
    }

    /// Trials in the whole run.
    fn trial_count(&self) -> u64 {
        (self.mechanisms.len() * SIZES.len() * Mode::ALL.len() * self.trials) as u64
    }
}

/// One row: a mechanism at one message size.
#[derive(Clone, Copy, Debug)]
struct Job {
    mechanism: Mechanism,
    size: usize,
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.mechanism.name(), report::size(self.size))
    }
}

/// Everything a trial needs from the run.
#[derive(Debug)]
struct Bench {
    plan: Plan,
    placement: Placement,
    scratch: Scratch,
    exe: PathBuf,
}

impl Bench {
    /// One trial: spawn a peer, set up the link, time the round trips, end
    /// the peer.
    fn trial(&self, job: Job, mode: Mode, n: usize) -> Result<Sample> {
        let rounds = self.plan.rounds(job.size);
        let mut cmd = self.peer_command(job, mode, rounds);
        let tag = format!("{}-{}-{}-{n}", job.mechanism.name(), job.size, mode.name());
        let spot = Spot { scratch: &self.scratch, tag };
        let (meeting, pending) = mode.prepare(job.mechanism, &spot, &mut cmd)?;
        cmd.args(meeting.args());
        let wake = match job.mechanism.shape() {
            Shape::Mailboxes => Some(meeting.connect()?),
            _ => None,
        };
        let peer = Peer::spawn(&mut cmd, wake)?;
        let mut buf = link::payload(MAX_MESSAGE);
        // The link is closed when this returns, before the peer is awaited.
        let outcome = pending().and_then(|mut link| link::time_round_trips(&mut *link, &mut buf, job.size, rounds));
        peer.finish(outcome)
    }

    /// `ipckit bench-peer` for a trial, without the meeting arguments.
    fn peer_command(&self, job: Job, mode: Mode, rounds: Rounds) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("bench-peer");
        cmd.args(["--mechanism", job.mechanism.name(), "--mode", mode.name()]);
        cmd.args(["--size", &job.size.to_string(), "--iterations", &rounds.total().to_string()]);
        if let Some(cpu) = self.placement.peer_cpu() {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        cmd
    }

    /// All trials of one job, the modes interleaved. A message over a
    /// kernel limit (`EMSGSIZE`) makes the row "n/a (limit)".
    fn job(&self, job: Job, bar: &ProgressBar) -> Result<Row> {
        let rounds = self.plan.rounds(job.size);
        let start = Instant::now();
        let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        let mut n = 0;
        while !self.plan.enough(n, start.elapsed()) {
            for (i, mode) in Mode::ALL.into_iter().enumerate() {
                bar.set_message(format!("{job} {}", mode.name()));
                match self.trial(job, mode, n) {
                    Ok(sample) => samples[i].push(sample),
                    Err(e) if is_limit(&e) => {
                        bar.inc(((self.plan.trials - n) * Mode::ALL.len() - i) as u64);
                        return Ok(Row { job, rounds, outcome: Outcome::Limit(format!("{e:#}")) });
                    }
                    Err(e) => return Err(e.context(format!("{job}, {} trial {}", mode.name(), n + 1))),
                }
                bar.inc(1);
            }
            n += 1;
        }
        // Trials the budget saved, so that the bar ends full.
        bar.inc(((self.plan.trials - n) * Mode::ALL.len()) as u64);
        let [ipckit, raw] = samples;
        Ok(Row { job, rounds, outcome: Outcome::measured(ipckit, raw) })
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
    let bench = Bench { plan, placement, scratch: Scratch::create()?, exe };
    let bar = progress_bar(bench.plan.trial_count());
    let rows = bench.plan.jobs().map(|job| bench.job(job, &bar)).collect::<Result<Vec<Row>>>();
    bar.finish_and_clear();
    let report = Report { plan: &bench.plan, placement, load, rows: rows? };
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
    if args.size > MAX_MESSAGE {
        bail!("--size {} is over the {MAX_MESSAGE}-byte maximum", args.size);
    }
    let mut link = args.mode.open_peer(args.mechanism, &args.meeting).context("bench-peer: set up")?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    link::echo(&mut *link, &mut buf, args.size, args.iterations).context("bench-peer")
}
