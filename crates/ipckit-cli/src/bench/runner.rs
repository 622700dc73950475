//! The runner: spawns the peer of each trial, alternates the modes of a
//! row until it has enough trials or its share of the budget is spent, and
//! collects the rows of every table.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::async_io::{self, AsyncRow};
use super::catalogue::{Mode, Role, Shape};
use super::copymap::{self, Way};
use super::link::{self, Sample};
use super::meeting::Spot;
use super::placement::Placement;
use super::plan::{COPY_MAP_NAME, Job, MAX_MESSAGE, MIN_TRIALS, Plan, Table};
use super::process::{self, Alarm, Peer, Scratch};
use super::pubsub::{self, PubsubGroup};
use super::queue;
use super::report::{
    self, Beside, BesideRow, CopyMapSize, CopyMapTable, Outcome, Report, Row, RpcResult, ShmResult, SyncRow,
};
use super::rpc::{self, RpcGroup};
use super::shm::{self, ShmJob};
use super::sync::{self, SyncOp};

/// What the trials of one job found.
enum Trials<T> {
    /// The samples of each mode.
    Done(T),
    /// A message over a kernel limit (`EMSGSIZE`); why.
    Limit(String),
}

impl<T> Trials<T> {
    /// The samples of a job that meets no kernel limit.
    fn done(self, label: &str) -> Result<T> {
        match self {
            Trials::Done(samples) => Ok(samples),
            Trials::Limit(why) => bail!("{label}: over a kernel limit ({why})"),
        }
    }
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

    /// Runs the trials of one job, `modes` alternating, until it has had
    /// enough: `trials` of each, or (budgeted) at least [`MIN_TRIALS`] once
    /// `share` is spent. A message over a kernel limit (`EMSGSIZE`) ends
    /// the job as [`Trials::Limit`].
    fn interleave<const N: usize>(
        &self,
        label: &str,
        modes: [Mode; N],
        trials: usize,
        share: Option<Duration>,
        trial: impl FnMut(Mode, usize) -> Result<Sample>,
    ) -> Result<Trials<[Vec<Sample>; N]>> {
        Ok(match self.interleave_all(label, &modes, Order::Fixed, trials, share, trial)? {
            Trials::Done(samples) => Trials::Done(samples.try_into().expect("one list of samples per mode")),
            Trials::Limit(why) => Trials::Limit(why),
        })
    }

    /// [`interleave`](Self::interleave) for any number of modes, in
    /// `order`: the samples of each, in the order of `modes`.
    fn interleave_all(
        &self,
        label: &str,
        modes: &[Mode],
        order: Order,
        trials: usize,
        share: Option<Duration>,
        mut trial: impl FnMut(Mode, usize) -> Result<Sample>,
    ) -> Result<Trials<Vec<Vec<Sample>>>> {
        let start = Instant::now();
        let count = modes.len();
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); count];
        let mut n = 0;
        let enough = |n: usize| n >= trials || share.is_some_and(|s| n >= MIN_TRIALS && start.elapsed() >= s);
        while !enough(n) {
            for k in 0..count {
                let i = match order {
                    Order::Fixed => k,
                    Order::Rotating => (k + n) % count,
                };
                let mode = modes[i];
                self.bar.set_message(format!("{label} {}", mode.name()));
                match trial(mode, n) {
                    Ok(sample) => samples[i].push(sample),
                    Err(e) if is_limit(&e) => {
                        self.bar.inc(((trials - n) * count - k) as u64);
                        return Ok(Trials::Limit(format!("{e:#}")));
                    }
                    Err(e) => return Err(e.context(format!("{label}, {} trial {}", mode.name(), n + 1))),
                }
                self.bar.inc(1);
            }
            n += 1;
        }
        // Trials the budget saved, so that the bar ends full.
        self.bar.inc((trials.saturating_sub(n) * count) as u64);
        Ok(Trials::Done(samples))
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
        let mut cmd = self.peer_command(Role::Echo(job.mechanism), mode, job.size, rounds.total());
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

    /// The copy-vs-map table: every size, its rows interleaved. The
    /// largest sizes first: their trials take longest (and at least
    /// [`MIN_TRIALS`] run whatever the budget), and the smaller sizes share
    /// what they leave of the table's budget.
    fn copy_map_table(&self) -> Result<CopyMapTable> {
        let budget = self.plan.budget(Table::CopyMap);
        let start = Instant::now();
        let inline_max = self.plan.hybrid_threshold.inline_max;
        let mut sizes = Vec::new();
        for (left, &size) in self.plan.copy_map_sizes.iter().enumerate().rev() {
            let share = budget.map(|b| b.saturating_sub(start.elapsed()) / (left + 1) as u32);
            let payload = link::Buffer::payload(size);
            let label = format!("{COPY_MAP_NAME} {}", report::size(size));
            let ways = copymap::measured_at(&self.plan.copy_map, size);
            let modes: Vec<Mode> = ways.iter().map(|w| w.mode()).collect();
            let samples = self
                .interleave_all(&label, &modes, Order::Rotating, self.plan.copy_map_trials, share, |mode, n| {
                    let way = Way::of(mode).expect("a copy-vs-map mode");
                    copymap::trial(self, way, &payload, inline_max, n)
                })?
                .done(&label)?;
            let rounds = |way| copymap::rounds(way, size, &self.plan);
            sizes.push(CopyMapSize::new(size, &self.plan.copy_map, ways.into_iter().zip(samples), rounds));
        }
        sizes.reverse();
        Ok(CopyMapTable::new(sizes, self.plan.hybrid_threshold.clone()))
    }

    /// Every table of the plan, in order.
    pub(super) fn measure(&self, load: Option<f64>) -> Result<Report<'_>> {
        let rows = self.plan.jobs.iter().map(|&job| self.message_row(job)).collect::<Result<Vec<Row>>>()?;
        let copy_map = if self.plan.copy_map.is_empty() { None } else { Some(self.copy_map_table()?) };
        let sync = self.plan.sync.iter().map(|&op| self.sync_row(op)).collect::<Result<Vec<SyncRow>>>()?;
        let shm = self.plan.shm.iter().map(|&job| self.shm_row(job)).collect::<Result<Vec<ShmResult>>>()?;
        let rpc = self.plan.rpc.iter().map(|group| self.rpc_rows(group)).collect::<Result<Vec<RpcResult>>>()?;
        let pubsub = self.plan.pubsub.as_ref().map(|group| self.pubsub_rows(group)).transpose()?;
        let async_rows = self.plan.async_rows.iter().map(|&row| self.async_row(row)).collect::<Result<Vec<_>>>()?;
        Ok(Report {
            plan: &self.plan,
            placement: self.placement,
            load,
            rows,
            copy_map,
            sync,
            shm,
            rpc,
            pubsub,
            async_rows,
        })
    }

    /// The request-response rows of one transport: the plain round trip
    /// and every call row, their trials rotating.
    fn rpc_rows(&self, group: &RpcGroup) -> Result<RpcResult> {
        let share = self.plan.share(Table::Rpc);
        let label = group.to_string();
        let modes = group.modes();
        let mut samples = self
            .interleave_all(&label, &modes, Order::Rotating, self.plan.trials, share, |mode, n| {
                rpc::trial(self, group.transport, mode, n)
            })?
            .done(&label)?
            .into_iter();
        let plain = samples.next().expect("the plain round trip's samples");
        let calls = group.calls.iter().copied().zip(samples).collect();
        Ok(RpcResult::new(group.transport, self.plan.rounds(rpc::SIZE), plain, calls))
    }

    /// The publish-subscribe rows: the plain round trip and every row,
    /// their trials rotating.
    fn pubsub_rows(&self, group: &PubsubGroup) -> Result<Beside> {
        let share = self.plan.share(Table::Pubsub);
        let label = "pubsub";
        let modes = group.modes();
        let mut samples = self
            .interleave_all(label, &modes, Order::Rotating, self.plan.trials, share, |mode, n| {
                pubsub::trial(self, mode, n)
            })?
            .done(label)?
            .into_iter();
        let plain = samples.next().expect("the plain round trip's samples");
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
        Ok(Beside::new(pubsub::PLAIN.name(), "pubsub", self.plan.rounds(pubsub::SIZE), plain, rows))
    }

    /// An async row: the async round trip beside the blocking one,
    /// interleaved.
    fn async_row(&self, row: AsyncRow) -> Result<Beside> {
        let share = self.plan.share(Table::Async);
        let label = row.name();
        let [plain, own] = self
            .interleave(label, [Mode::Ipckit, row.mode()], self.plan.trials, share, |mode, n| {
                async_io::trial(self, row, mode, n)
            })?
            .done(label)?;
        let fields = json!({
            "transport": row.transport(),
            "size": async_io::SIZE,
            "endpoint_options": row.query(),
            "spin_ns": row.spin().map(|d| d.as_nanos() as u64),
        });
        let rows = vec![BesideRow { name: row.name(), target: Some(async_io::TARGET), fields, samples: own }];
        Ok(Beside::new(row.plain_row(), "async", self.plan.rounds(async_io::SIZE), plain, rows))
    }

    /// A row of the shared-memory table: its modes interleaved.
    fn shm_row(&self, job: ShmJob) -> Result<ShmResult> {
        let share = self.plan.share(Table::Shm);
        let label = job.to_string();
        let rounds = job.rounds(&self.plan);
        let trial = |mode, n| shm::trial(self, job, mode, n);
        #[cfg(feature = "compare-iceoryx2")]
        if let [a, b, c] = *job.modes() {
            let trials = self.interleave(&label, [a, b, c], self.plan.trials, share, trial)?;
            let [ipckit, raw, iceoryx2] = trials.done(&label)?;
            return Ok(ShmResult::new(job, rounds, ipckit, raw, Some(iceoryx2)));
        }
        let [ipckit, raw] = self.interleave(&label, Mode::PAIR, self.plan.trials, share, trial)?.done(&label)?;
        Ok(ShmResult::new(job, rounds, ipckit, raw, None))
    }

    /// A row of the synchronization table.
    fn sync_row(&self, op: SyncOp) -> Result<SyncRow> {
        let share = self.plan.share(Table::Sync);
        let trials =
            self.interleave(op.name(), Mode::PAIR, self.plan.trials, share, |mode, n| sync::trial(self, op, mode, n))?;
        let Trials::Done([ipckit, raw]) = trials else {
            bail!("{}: over a kernel limit", op.name());
        };
        Ok(SyncRow::new(op, op.rounds(&self.plan), ipckit, raw))
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
pub(super) fn progress_bar(len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} trials, {elapsed} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style)
}

/// The 1-minute load average (`/proc/loadavg`): how much other work
/// competes for the CPUs.
pub(super) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}
