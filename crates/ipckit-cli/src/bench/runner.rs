//! The runner: every row of every table is a task; the tasks run round
//! by round, each round one trial of each mode of every row (a fresh peer
//! each), until each row has its trials or the run's budget is spent; then
//! the rows are collected into their tables. A row whose trial fails is
//! reported and left out; the run goes on.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::async_io::{self, AsyncRow};
use super::catalogue::{Mode, Role, Shape};
use super::copymap::{self, Way};
use super::link::{self, Link, Sample};
use super::meeting::Spot;
use super::placement::Placement;
use super::plan::{COPY_MAP_NAME, Job, MAX_MESSAGE, MIN_TRIALS, Plan};
use super::process::{self, Alarm, Peer, Scratch};
use super::pubsub::{self, PubsubGroup};
use super::queue;
use super::report::{
    self, Beside, BesideRow, CopyMapSize, CopyMapTable, Outcome, Report, Row, RpcResult, ShmResult, SyncRow,
};
use super::rpc::{self, RpcGroup};
use super::shm::{self, ShmJob};
use super::sync::{self, SyncOp};

/// What the trials of one row found.
pub(super) enum Found {
    /// The samples of each mode, in the order of the row's modes.
    Done(Vec<Vec<Sample>>),
    /// A message over a kernel limit (`EMSGSIZE`); why.
    Limit(String),
    /// A trial failed; which and why. The run goes on without the row.
    Failed(String),
}

/// The order of the modes within each round of trials.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// Always the same: A, B, A, B, ...
    Fixed,
    /// Round `n` starts with the `n`th mode (A B C, B C A, C A B, ...), so
    /// that no mode always follows the same one: with many modes, whatever
    /// a trial leaves behind (memory being freed, caches) falls on each
    /// in turn.
    Rotating,
}

/// A trial of a row: one mode, the trial's number.
type TrialFn<'a> = Box<dyn FnMut(Mode, usize) -> Result<Sample> + 'a>;

/// One row of some table being measured: its modes, its trial, and what
/// its trials found so far.
struct Task<'a> {
    label: String,
    modes: Vec<Mode>,
    order: Order,
    /// Trials of each mode wanted.
    trials: usize,
    trial: TrialFn<'a>,
    samples: Vec<Vec<Sample>>,
    /// Why the row ended before its trials were done.
    end: Option<Found>,
}

impl<'a> Task<'a> {
    fn new(label: String, modes: Vec<Mode>, order: Order, trials: usize, trial: TrialFn<'a>) -> Task<'a> {
        let samples = vec![Vec::new(); modes.len()];
        Task { label, modes, order, trials, trial, samples, end: None }
    }

    /// Whether round `n` has a trial of this row.
    fn runs_in(&self, n: usize) -> bool {
        self.end.is_none() && n < self.trials
    }

    /// Round `n`: one trial of each mode.
    fn round(&mut self, bar: &ProgressBar, n: usize) {
        let count = self.modes.len();
        for k in 0..count {
            let i = match self.order {
                Order::Fixed => k,
                Order::Rotating => (k + n) % count,
            };
            let mode = self.modes[i];
            bar.set_message(format!("{} {}", self.label, mode.name()));
            match (self.trial)(mode, n) {
                Ok(sample) => self.samples[i].push(sample),
                Err(e) if is_limit(&e) => {
                    self.end = Some(Found::Limit(format!("{e:#}")));
                    return;
                }
                Err(e) => {
                    self.end = Some(Found::Failed(format!("{} trial {}: {e:#}", mode.name(), n + 1)));
                    return;
                }
            }
            bar.inc(1);
        }
    }

    fn found(self) -> Found {
        self.end.unwrap_or(Found::Done(self.samples))
    }
}

/// The load average over a run: at the start, at the end, the highest
/// seen at the start of each round of trials.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Load {
    pub(super) start: Option<f64>,
    pub(super) end: Option<f64>,
    pub(super) max: Option<f64>,
}

impl Load {
    pub(super) fn begin() -> Load {
        let now = load_average();
        Load { start: now, end: now, max: now }
    }

    fn note(&mut self) {
        let now = load_average();
        self.end = now.or(self.end);
        self.max = match (self.max, now) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Everything a trial needs from the run.
#[derive(Debug)]
pub(super) struct Bench {
    pub(super) plan: Plan,
    pub(super) placement: Placement,
    pub(super) scratch: Scratch,
    pub(super) exe: PathBuf,
    pub(super) bar: ProgressBar,
}

impl Bench {
    /// `ipckit bench-peer` for a trial, without the meeting arguments.
    pub(super) fn peer_command(&self, role: Role, mode: Mode, size: usize, iterations: usize) -> Command {
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

    /// Runs every row's trials round by round: each round one trial of
    /// each mode of every row still running, so that whatever drifts on a
    /// noisy machine falls on every row alike. A run with a budget stops
    /// after the round that spends it, once [`MIN_TRIALS`] rounds have
    /// run. Returns the rounds run.
    fn run_rounds(&self, tasks: &mut [Task<'_>], load: &mut Load) -> usize {
        let start = Instant::now();
        let budget = self.plan.budget();
        let mut n = 0;
        while tasks.iter().any(|t| t.runs_in(n)) {
            load.note();
            for task in tasks.iter_mut().filter(|t| t.runs_in(n)) {
                task.round(&self.bar, n);
            }
            n += 1;
            if budget.is_some_and(|b| n >= MIN_TRIALS && start.elapsed() >= b) {
                break;
            }
        }
        load.note();
        n
    }

    /// One trial of the message table: spawn a peer, set up the link, time
    /// the round trips, end the peer.
    fn message_trial(&self, job: Job, mode: Mode, n: usize) -> Result<Sample> {
        let tag = format!("{}-{}-{}-{n}", job.mechanism.name(), job.size, mode.name());
        self.echo_trial(job, mode, tag)
    }

    /// [`message_trial`](Self::message_trial) with the objects named after
    /// `tag` (unique in the run): the plain round trip of other tables too.
    pub(super) fn echo_trial(&self, job: Job, mode: Mode, tag: String) -> Result<Sample> {
        let rounds = self.plan.rounds(job.size);
        self.link_trial(job, mode, tag, rounds.total(), false, |link, buf| {
            link::time_round_trips(link, buf, job.size, rounds)
        })
    }

    /// One trial of a stream row: spawn a peer that sends messages of
    /// `job.size` bytes one way, time their arrival, end the peer.
    fn stream_trial(&self, job: Job, mode: Mode, n: usize) -> Result<Sample> {
        let tag = format!("{}-{}-{}-s{n}", job.mechanism.name(), job.size, mode.name());
        let (rounds, batch) = self.plan.stream_rounds(job.size);
        self.link_trial(job, mode, tag, rounds.total(), true, |link, buf| {
            link::time_stream(link, buf, job.size, rounds, batch)
        })
    }

    /// A trial over a message link: spawn the peer of `job` in `mode` for
    /// `messages` (streaming them with `stream`, else echoing), set up the
    /// link, run `body` over it and a buffer of the largest message that
    /// holds the payload, end the peer.
    fn link_trial(
        &self,
        job: Job,
        mode: Mode,
        tag: String,
        messages: usize,
        stream: bool,
        body: impl FnOnce(&mut dyn Link, &mut [u8]) -> Result<Sample>,
    ) -> Result<Sample> {
        let mut cmd = self.peer_command(Role::Echo(job.mechanism), mode, job.size, messages);
        if stream {
            cmd.arg("--stream");
        }
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
        let outcome = pending().and_then(|mut link| body(&mut *link, &mut buf));
        peer.finish(outcome)
    }

    /// Every table of the plan: their rows' trials interleaved round by
    /// round ([`run_rounds`](Self::run_rounds)), then each table made of
    /// what its rows found. A row whose trials failed is left out of its
    /// table and listed in the report's `failed`.
    pub(super) fn measure<'s>(&'s self, mut load: Load) -> Result<Report<'s>> {
        let plan = &self.plan;
        let mut tasks: Vec<Task<'s>> = Vec::new();
        let mut add = |label: String, modes: Vec<Mode>, order: Order, trials: usize, trial: TrialFn<'s>| {
            tasks.push(Task::new(label, modes, order, trials, trial));
            tasks.len() - 1
        };
        let pair = || Mode::PAIR.to_vec();
        // Messages: each row's round trips, and its stream.
        let jobs: Vec<(Job, Option<(usize, usize)>)> = plan
            .jobs
            .iter()
            .map(|&job| {
                let ids = job.limit.is_none().then(|| {
                    let trip = add(
                        job.to_string(),
                        pair(),
                        Order::Fixed,
                        plan.trials,
                        Box::new(move |mode, n| self.message_trial(job, mode, n)),
                    );
                    let stream = add(
                        format!("{job} stream"),
                        pair(),
                        Order::Fixed,
                        plan.trials,
                        Box::new(move |mode, n| self.stream_trial(job, mode, n)),
                    );
                    (trip, stream)
                });
                (job, ids)
            })
            .collect();
        // Copy or map: per size, the rows measured there, rotating.
        let inline_max = plan.hybrid_threshold.inline_max;
        let copy_map: Vec<(usize, Vec<Way>, usize)> = plan
            .copy_map_sizes
            .iter()
            .map(|&size| {
                let ways = copymap::measured_at(&plan.copy_map, size);
                let modes: Vec<Mode> = ways.iter().map(|w| w.mode()).collect();
                let payload = link::Buffer::payload(size);
                let label = format!("{COPY_MAP_NAME} {}", report::size(size));
                let id = add(
                    label,
                    modes,
                    Order::Rotating,
                    plan.copy_map_trials,
                    Box::new(move |mode, n| {
                        let way = Way::of(mode).expect("a copy-vs-map mode");
                        copymap::trial(self, way, &payload, inline_max, n)
                    }),
                );
                (size, ways, id)
            })
            .collect();
        let sync: Vec<(SyncOp, usize)> = plan
            .sync
            .iter()
            .map(|&op| {
                (
                    op,
                    add(
                        op.name().to_owned(),
                        pair(),
                        Order::Fixed,
                        plan.trials,
                        Box::new(move |mode, n| sync::trial(self, op, mode, n)),
                    ),
                )
            })
            .collect();
        let shm: Vec<(ShmJob, usize)> = plan
            .shm
            .iter()
            .map(|&job| {
                (
                    job,
                    add(
                        job.to_string(),
                        job.modes().to_vec(),
                        Order::Fixed,
                        plan.trials,
                        Box::new(move |mode, n| shm::trial(self, job, mode, n)),
                    ),
                )
            })
            .collect();
        let rpc: Vec<(&RpcGroup, usize)> = plan
            .rpc
            .iter()
            .map(|group| {
                let transport = group.transport;
                (
                    group,
                    add(
                        group.to_string(),
                        group.modes(),
                        Order::Rotating,
                        plan.trials,
                        Box::new(move |mode, n| rpc::trial(self, transport, mode, n)),
                    ),
                )
            })
            .collect();
        let pubsub: Option<(&PubsubGroup, usize)> = plan.pubsub.as_ref().map(|group| {
            (
                group,
                add(
                    "pubsub".to_owned(),
                    group.modes(),
                    Order::Rotating,
                    plan.trials,
                    Box::new(move |mode, n| pubsub::trial(self, mode, n)),
                ),
            )
        });
        let async_rows: Vec<(AsyncRow, usize)> = plan
            .async_rows
            .iter()
            .map(|&row| {
                let modes = vec![Mode::Ipckit, row.mode()];
                (
                    row,
                    add(
                        row.name().to_owned(),
                        modes,
                        Order::Fixed,
                        plan.trials,
                        Box::new(move |mode, n| async_io::trial(self, row, mode, n)),
                    ),
                )
            })
            .collect();
        let total: usize = tasks.iter().map(|t| t.modes.len() * t.trials).sum();
        self.bar.set_length(total as u64);
        let rounds = self.run_rounds(&mut tasks, &mut load);
        let labels: Vec<String> = tasks.iter().map(|t| t.label.clone()).collect();
        let mut found: Vec<Option<Found>> = tasks.into_iter().map(|t| Some(t.found())).collect();
        let mut failed: Vec<(String, String)> = Vec::new();
        let rows: Vec<Row> = jobs
            .into_iter()
            .map(|(job, ids)| {
                let rounds = plan.rounds(job.size);
                let Some((trip, stream)) = ids else {
                    let limit = job.limit.expect("a row not run is over its limit");
                    let why = format!(
                        "{} is over the kernel's limit of {limit} bytes per message ({})",
                        report::size(job.size),
                        plan.limits.of(job.mechanism).map_or("", |l| l.source.as_str())
                    );
                    return Row { job, rounds, outcome: Outcome::Limit { limit: Some(limit), why }, stream: None };
                };
                let mut outcome = |id: usize| match found[id].take().expect("each row's findings are taken once") {
                    Found::Done(mut s) => {
                        let raw = s.pop().expect("raw samples");
                        Outcome::measured(s.pop().expect("ipckit samples"), raw)
                    }
                    Found::Limit(why) => Outcome::Limit { limit: None, why },
                    Found::Failed(why) => Outcome::Failed { why },
                };
                let (outcome, stream) = (outcome(trip), Some(outcome(stream)));
                Row { job, rounds, outcome, stream }
            })
            .collect();
        // What a row found, if it was measured; a failed row goes to
        // `failed`, a row over a kernel limit where none was expected too.
        let mut take = |id: usize| -> Option<Vec<Vec<Sample>>> {
            match found[id].take().expect("each row's findings are taken once") {
                Found::Done(samples) => Some(samples),
                Found::Limit(why) => {
                    failed.push((labels[id].clone(), format!("over a kernel limit: {why}")));
                    None
                }
                Found::Failed(why) => {
                    failed.push((labels[id].clone(), why));
                    None
                }
            }
        };
        let copy_map_sizes: Vec<CopyMapSize> = copy_map
            .into_iter()
            .filter_map(|(size, ways, id)| {
                let samples = take(id)?;
                let rounds = |way| copymap::rounds(way, size, plan);
                Some(CopyMapSize::new(size, &plan.copy_map, ways.into_iter().zip(samples), rounds))
            })
            .collect();
        let copy_map =
            (!plan.copy_map.is_empty()).then(|| CopyMapTable::new(copy_map_sizes, plan.hybrid_threshold.clone()));
        let sync: Vec<SyncRow> = sync
            .into_iter()
            .filter_map(|(op, id)| {
                let [ipckit, raw]: [Vec<Sample>; 2] = take(id)?.try_into().ok()?;
                Some(SyncRow::new(op, op.rounds(plan), ipckit, raw))
            })
            .collect();
        let shm: Vec<ShmResult> = shm
            .into_iter()
            .filter_map(|(job, id)| {
                let mut samples = take(id)?.into_iter();
                let (ipckit, raw) = (samples.next()?, samples.next()?);
                Some(ShmResult::new(job, job.rounds(plan), ipckit, raw, samples.next()))
            })
            .collect();
        let rpc: Vec<RpcResult> = rpc
            .into_iter()
            .filter_map(|(group, id)| {
                let mut samples = take(id)?.into_iter();
                let plain = samples.next()?;
                let calls = group.calls.iter().copied().zip(samples).collect();
                Some(RpcResult::new(group.transport, plan.rounds(rpc::SIZE), plain, calls))
            })
            .collect();
        let pubsub = pubsub.and_then(|(group, id)| {
            let mut samples = take(id)?.into_iter();
            let plain = samples.next()?;
            let rows = group
                .rows
                .iter()
                .zip(samples)
                .map(|(&row, samples)| BesideRow {
                    name: row.name(),
                    target: None,
                    fields: json!({
                        "transport": "shm",
                        "subscribers": row.subscribers(),
                        "back": row.back(),
                        "size": pubsub::SIZE,
                        "endpoint_options": pubsub::PLAIN.query(),
                    }),
                    samples,
                })
                .collect();
            Some(Beside::new(pubsub::PLAIN.name(), "pubsub", plan.rounds(pubsub::SIZE), plain, rows))
        });
        let async_rows: Vec<Beside> = async_rows
            .into_iter()
            .filter_map(|(row, id)| {
                let [plain, own]: [Vec<Sample>; 2] = take(id)?.try_into().ok()?;
                let fields = json!({
                    "transport": row.transport(),
                    "size": async_io::SIZE,
                    "endpoint_options": row.query(),
                    "spin_ns": row.spin().map(|d| d.as_nanos() as u64),
                });
                let rows = vec![BesideRow { name: row.name(), target: Some(async_io::TARGET), fields, samples: own }];
                Some(Beside::new(row.plain_row(), "async", plan.rounds(async_io::SIZE), plain, rows))
            })
            .collect();
        Ok(Report {
            plan,
            placement: self.placement,
            load,
            rounds,
            rows,
            copy_map,
            sync,
            shm,
            rpc,
            pubsub,
            async_rows,
            failed,
        })
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
pub(super) fn progress_bar() -> ProgressBar {
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} trials, {elapsed} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(0).with_style(style)
}

/// The 1-minute load average (`/proc/loadavg`): how much other work
/// competes for the CPUs.
pub(super) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}
