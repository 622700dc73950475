//! What a run measures, from the arguments: the rows of each table (and
//! those this machine cannot run), the trials and round trips per row,
//! the streams' batches, and the run's time budget.

use std::fmt;
use std::time::Duration;

use anyhow::Result;
use ipckit::ErrorKind;
use ipckit::threshold::Threshold;

use super::args::BenchArgs;
use super::async_io::AsyncRow;
use super::catalogue::Mechanism;
use super::copymap::{Variant, Way};
use super::link::Rounds;
use super::pubsub::{PubsubGroup, PubsubRow};
use super::rpc::RpcGroup;
use super::shm::{ShmJob, ShmRow};
use super::sync::SyncOp;
use super::{copymap, queue, report};

/// The message sizes of the socket rows; queue rows add the largest
/// message the kernel allows.
pub(super) const SIZES: [usize; 2] = [64, 64 * 1024];

/// The largest message of the message table: every link's configured
/// maximum and the size of every receive buffer.
pub(super) const MAX_MESSAGE: usize = 64 * 1024;

/// The message sizes of the socket rows (and of `shm-busy`) with
/// `--full`; queue rows stop at the largest message the kernel allows.
pub(super) const SIZES_FULL: [usize; 5] = [64, 1 << 10, 4 << 10, 16 << 10, 64 << 10];

/// The copy-vs-map table's sizes by default: five of
/// [`copymap::SIZES`], closer together where the crossover usually is.
pub(super) const COPY_MAP_SIZES: [usize; 5] = [64, 4 << 10, 256 << 10, 4 << 20, 16 << 20];

/// The time a default run may spend measuring: it stops after the round
/// of trials that passes it, once [`MIN_TRIALS`] rounds have run. About
/// 4 s a round on an idle 2-CPU machine, so that the rounds fit and the
/// run, with its set-up, stays under a minute.
pub(super) const BUDGET: Duration = Duration::from_secs(40);

/// The budget of `--full`.
pub(super) const BUDGET_FULL: Duration = Duration::from_secs(600);

/// The fewest rounds of trials a budgeted run makes, whatever the budget.
pub(super) const MIN_TRIALS: usize = 5;

/// Trials of each mode per row by default, and of the copy-vs-map table:
/// fewer, as its large sizes take long.
const TRIALS: usize = 21;
const COPY_MAP_TRIALS: usize = 15;

/// Trials with `--full`.
const TRIALS_FULL: usize = 31;
const COPY_MAP_TRIALS_FULL: usize = 21;

/// What a run measures.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// The message table's rows.
    pub(super) jobs: Vec<Job>,
    /// The copy-vs-map table's rows (none: no table).
    pub(super) copy_map: Vec<Way>,
    /// The copy-vs-map table's sizes, ascending (`--sizes`, or
    /// [`copymap::SIZES`]).
    pub(super) copy_map_sizes: Vec<usize>,
    /// The `auto` threshold in force for the `hybrid` row, and where it
    /// comes from.
    pub(super) hybrid_threshold: Threshold,
    /// The synchronization table's rows.
    pub(super) sync: Vec<SyncOp>,
    /// The shared-memory table's rows.
    pub(super) shm: Vec<ShmJob>,
    /// The request-response rows, by transport.
    pub(super) rpc: Vec<RpcGroup>,
    /// The publish-subscribe rows, if any.
    pub(super) pubsub: Option<PubsubGroup>,
    /// The async rows.
    pub(super) async_rows: Vec<AsyncRow>,
    /// Trials of each mode per row (copy vs map: `copy_map_trials`).
    pub(super) trials: usize,
    pub(super) copy_map_trials: usize,
    /// The time the run may spend measuring, if it stops early (after at
    /// least [`MIN_TRIALS`] rounds). Not with `--trials` or `--quick`.
    budget: Option<Duration>,
    pub(super) quick: bool,
    pub(super) full: bool,
    /// `--iters`: timed round trips per trial, instead of each row's own.
    pub(super) iters: Option<usize>,
    /// The kernel's limits on queue messages.
    pub(super) limits: queue::Limits,
    /// Rows left out as this machine cannot run them: which, and why.
    pub(super) unavailable: Vec<(String, String)>,
}

/// The name of the copy-vs-map table in `--filter` (each of its rows has
/// its own too).
pub(super) const COPY_MAP_NAME: &str = "copy-vs-map";

impl Plan {
    pub(super) fn new(args: &BenchArgs) -> Result<Plan> {
        let wanted = |name: &str| args.filter.is_empty() || args.filter.iter().any(|f| name.contains(f.as_str()));
        // A queue this machine cannot create: its rows (and the calls over
        // it) are "n/a", the rest of the run goes on.
        let missing: Vec<(Mechanism, String)> =
            Mechanism::ALL.into_iter().filter_map(|m| Some((m, queue::unavailable(m)?))).collect();
        let absent = |m: Mechanism| missing.iter().any(|(gone, _)| *gone == m);
        let mechanisms: Vec<Mechanism> =
            Mechanism::ALL.into_iter().filter(|&m| wanted(m.name()) && !absent(m)).collect();
        let copy_map: Vec<Way> = Way::ALL.into_iter().filter(|w| wanted(COPY_MAP_NAME) || wanted(w.name())).collect();
        let sync: Vec<SyncOp> = SyncOp::ALL.into_iter().filter(|op| wanted(op.name())).collect();
        // --sizes: sorted, once each; the message and shm-busy rows take
        // those up to their largest message, copy-vs-map all of them.
        let sizes: Option<Vec<usize>> = args.sizes.as_ref().map(|s| {
            let mut s = s.clone();
            s.sort_unstable();
            s.dedup();
            s
        });
        let small: Option<Vec<usize>> =
            sizes.as_ref().map(|s| s.iter().copied().filter(|&n| n <= MAX_MESSAGE).collect());
        let copy_map_sizes = sizes.clone().unwrap_or_else(|| match args.full {
            true => copymap::SIZES.to_vec(),
            false => COPY_MAP_SIZES.to_vec(),
        });
        // --full: every size, where --sizes does not say.
        let small = small.or_else(|| args.full.then(|| SIZES_FULL.to_vec()));
        let shm = ShmJob::all(wanted, small.as_deref());
        let mut rpc = RpcGroup::all(wanted);
        let mut unavailable = Vec::new();
        for (mech, why) in &missing {
            let calls: Vec<String> = rpc
                .iter()
                .filter(|g| g.transport.name() == mech.name())
                .flat_map(|g| g.calls.iter().map(|&call| super::rpc::row_name(g.transport, call)))
                .collect();
            rpc.retain(|g| g.transport.name() != mech.name());
            let rows: Vec<String> =
                wanted(mech.name()).then(|| mech.name().to_owned()).into_iter().chain(calls).collect();
            if !rows.is_empty() {
                unavailable.push((rows.join(", "), why.clone()));
            }
        }
        let pubsub = PubsubGroup::new(wanted);
        let async_rows = AsyncRow::all(wanted);
        // A usage error (exit code 2), like a malformed endpoint: a
        // --filter that matches no row, even beside others that do.
        let names = known_names();
        if let Some(bad) = args.filter.iter().find(|f| !names.iter().any(|name| name.contains(f.as_str()))) {
            let why = format!("matches no row (there are: {})", names.join(", "));
            return Err(ipckit::Error::new(ErrorKind::Invalid, "bench", format!("--filter {bad:?}"), why).into());
        }
        if args.save_threshold && !crossover_rows(&copy_map) {
            let why = "measures the crossover of copy-shm and map-pool fill-and-read: a --filter must keep both rows \
                       (copy-shm and map-pool, or copy-vs-map)";
            return Err(ipckit::Error::new(ErrorKind::Invalid, "bench", "--save-threshold", why).into());
        }
        let (trials, copy_map_trials, budget) = match (args.trials, args.quick, args.full) {
            (Some(t), _, _) => (t as usize, t as usize, None),
            (None, true, _) => (3, 3, None),
            (None, false, false) => (TRIALS, COPY_MAP_TRIALS, Some(BUDGET)),
            (None, false, true) => (TRIALS_FULL, COPY_MAP_TRIALS_FULL, Some(BUDGET_FULL)),
        };
        let limits = queue::Limits::read();
        let jobs: Vec<Job> = mechanisms.iter().flat_map(|&m| Job::all(m, &limits, small.as_deref())).collect();
        if let Some(sizes) = &sizes
            && jobs.is_empty()
            && shm.is_empty()
            && copy_map.is_empty()
            && sync.is_empty()
            && rpc.is_empty()
            && pubsub.is_none()
            && async_rows.is_empty()
        {
            let list: Vec<String> = sizes.iter().map(|&s| report::size(s)).collect();
            let why = format!(
                "no row selected takes these sizes (the message and shm-busy rows take up to {}, copy-vs-map up \
                 to {})",
                report::size(MAX_MESSAGE),
                report::size(copymap::MAX)
            );
            return Err(
                ipckit::Error::new(ErrorKind::Invalid, "bench", format!("--sizes {}", list.join(",")), why).into()
            );
        }
        Ok(Plan {
            jobs,
            copy_map,
            copy_map_sizes,
            hybrid_threshold: ipckit::threshold::auto(),
            sync,
            shm,
            rpc,
            pubsub,
            async_rows,
            trials,
            copy_map_trials,
            budget,
            quick: args.quick,
            full: args.full,
            iters: args.iters,
            limits,
            unavailable,
        })
    }

    /// How long the run will take, as far as the plan says: its budget, or
    /// the trials it runs to.
    pub(super) fn how_long(&self) -> String {
        match self.budget {
            Some(budget) => format!(
                "every size, up to {} trials of each row; this takes up to about {} minutes (it stops after the round \
                 of trials that passes that budget, once {MIN_TRIALS} rounds have run)",
                self.trials,
                budget.as_secs().div_ceil(60)
            ),
            None => format!(
                "every size, {} trials of each row (with --trials there is no time budget: it runs them all)",
                self.trials
            ),
        }
    }

    /// The time the run may spend measuring, if it stops early.
    pub(super) fn budget(&self) -> Option<Duration> {
        self.budget
    }

    /// Round trips per trial for messages of `size` bytes: enough for a
    /// stable median, few enough that the default run stays under a minute
    /// on two cores (large messages take several times longer).
    pub(super) fn rounds(&self, size: usize) -> Rounds {
        self.iters_or(match (self.quick, size <= 4096) {
            (false, true) => Rounds { warmup: 100, timed: 1000 },
            (false, false) => Rounds { warmup: 40, timed: 400 },
            (true, true) => Rounds { warmup: 50, timed: 300 },
            (true, false) => Rounds { warmup: 20, timed: 100 },
        })
    }

    /// `rounds`, or with `--iters N`: N timed round trips after a tenth of
    /// N (at least 1) of warm-up.
    pub(super) fn iters_or(&self, rounds: Rounds) -> Rounds {
        match self.iters {
            Some(n) => Rounds { warmup: n.div_ceil(10), timed: n },
            None => rounds,
        }
    }

    /// A stream trial of `size`-byte messages: messages of warm-up, and
    /// messages timed (`timed`, a whole number of batches); and the
    /// messages per timed batch. With `--iters N`: N messages timed.
    pub(super) fn stream_rounds(&self, size: usize) -> (Rounds, usize) {
        let (warmup, timed, batch) = match (self.quick, size <= 4096) {
            (false, true) => (1000, 10_000, 1000),
            (false, false) => (32, 320, 32),
            (true, true) => (500, 2000, 500),
            (true, false) => (16, 64, 16),
        };
        let (warmup, timed, batch) = match self.iters {
            Some(n) => (n.div_ceil(10), n.div_ceil(batch.min(n)) * batch.min(n), batch.min(n)),
            None => (warmup, timed, batch),
        };
        (Rounds { warmup, timed }, batch)
    }
}

/// Every name a `--filter` can match part of: each row's, and the
/// copy-vs-map table's.
pub(super) fn known_names() -> Vec<String> {
    let mut names: Vec<String> = Mechanism::ALL
        .iter()
        .map(|m| m.name())
        .chain([COPY_MAP_NAME])
        .chain(Way::ALL.iter().map(|w| w.name()))
        .chain(SyncOp::ALL.iter().map(|op| op.name()))
        .chain(ShmRow::ALL.iter().map(|row| row.name()))
        .map(str::to_owned)
        .chain(RpcGroup::names())
        .chain(PubsubRow::ALL.iter().map(|row| row.name().to_owned()))
        .chain(AsyncRow::ALL.iter().map(|row| row.name().to_owned()))
        .collect();
    // map-pool once, not once per variant.
    names.dedup();
    names
}

/// Whether `ways` has the two rows the crossover compares.
pub(super) fn crossover_rows(ways: &[Way]) -> bool {
    ways.contains(&Way::CopyShm) && ways.contains(&Way::MapPool(Variant::FillAndRead))
}

/// One row of the message table: a mechanism at one message size.
#[derive(Clone, Copy, Debug)]
pub(super) struct Job {
    pub(super) mechanism: Mechanism,
    pub(super) size: usize,
    /// The largest message the kernel allows for this mechanism (a queue).
    pub(super) kernel_max: bool,
    /// The kernel's limit, when `size` is over it: the row is "n/a".
    pub(super) limit: Option<usize>,
}

impl Job {
    /// The rows of `mech`: 64 B and 64 KiB; for a queue, the kernel's
    /// largest message between them, and 64 KiB only if it fits. With
    /// `sizes` (`--sizes`), at those sizes only, a queue's over its limit
    /// "n/a".
    fn all(mech: Mechanism, limits: &queue::Limits, sizes: Option<&[usize]>) -> Vec<Job> {
        let job = |size| Job { mechanism: mech, size, kernel_max: false, limit: None };
        let limit = limits.of(mech);
        if let Some(sizes) = sizes {
            let over = |size: usize| limit.and_then(|l| (size > l.max).then_some(l.max));
            return sizes.iter().map(|&size| Job { limit: over(size), ..job(size) }).collect();
        }
        let Some(limit) = limit else {
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
