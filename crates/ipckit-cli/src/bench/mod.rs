//! `ipckit bench`: what ipckit costs over the system calls it makes, and
//! what copying costs against mapping.
//!
//! Every row of every table is measured in the same rounds: each round
//! runs one trial of each mode of every row, so that drift on a noisy
//! machine falls on all rows alike (`runner`). Each trial records every
//! timed round trip in an HDR histogram (p50, p90, p99, p99.9, max). After
//! the tables come the catalogue of every row, the answer per size and a
//! reading in plain words (`overview`).
//!
//! Eight tables (and a ninth with `compare-iceoryx2`):
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
//! - **Streaming**: the message mechanisms one way, the peer sending as
//!   fast as it can, in messages and bytes per second, ipckit beside raw.
//! - **Copy or map**: a round trip of N bytes (64 B to 16 MiB) one way and
//!   an 8-byte acknowledgement back, every way ipckit moves bytes: through
//!   a Unix socket (`copy-kernel`), copied through a `shm:` ring
//!   (`copy-shm`), a sealed memfd per message (`map-each`), a pool loan
//!   (`map-pool`: untouched, writer-fills, fill-and-read) and `send` with
//!   the `auto` threshold (`hybrid`), interleaved the same way; the fastest
//!   per size, and the crossover of pool over ring: the threshold
//!   `--save-threshold` saves (`copymap`).
//! - **Synchronization**: ipckit's mutex (uncontended, and handed between
//!   two processes) and futex event (ping-pong between two processes),
//!   beside raw pthread and futex loops (`sync`).
//! - **Shared memory**: ipckit's `shm:` channel beside a floor of the least
//!   two processes can do in shared memory (`shm`, `floor`): the round trip
//!   busy-polling (64 B, 4 KiB, 64 KiB), in blocking mode within the spin
//!   window, and parking every time (beside a futex ping-pong without
//!   spin); and one-way streaming of 64-byte records, in messages per
//!   second. Built with the `compare-iceoryx2` feature, iceoryx2 0.10's
//!   busy ping-pong joins the busy rows' trials (`iceoryx`).
//! - **Request-response**: a 64-byte call through `ipckit::rpc` to a server
//!   in the peer, on every transport it runs on, beside the plain round
//!   trip of the same transport (the message table's, `shm-spin`'s for
//!   `shm:`) in the same interleaved trials, and the ratio of the two
//!   (`rpc`).
//! - **Publish-subscribe**: 64 bytes through `ipckit::pubsub` on a `shm:`
//!   topic, to 1 and to 4 subscriber processes that send each message
//!   back on a `shm:` channel, and a round trip over two topics, timed by
//!   the publisher, beside `shm-spin`'s round trip in the same rotating
//!   trials (`pubsub`).
//! - **Async**: a 64-byte round trip through `ipckit::tokio` in both
//!   processes on `shm:` (parking, and spinning first), `unix:` and
//!   `tcp:`, each beside the blocking round trip that waits the same way
//!   in the same interleaved trials (`async_io`).
//!
//! Modules:
//!
//! 1. `args`: the command-line arguments of `bench` and `bench-peer`.
//! 2. `catalogue`: the message mechanisms and how each joins two
//!    processes, the other experiments, and the modes (ipckit or raw, copy
//!    or map).
//! 3. `plan`: what a run measures: the rows, the trials and round trips per
//!    row, the time budget.
//! 4. `runner`: the [`Bench`](runner::Bench) that runs the trials of each
//!    row, the modes alternating, and collects the tables.
//! 5. `meeting`: the rendezvous of a trial: the peer's meeting arguments,
//!    the names of the trial's objects.
//! 6. `placement`: the CPUs the two processes run on.
//! 7. `link`: the [`Link`](link::Link) trait, the timed loops and the
//!    peer's echo loop.
//! 8. `api`: message links through ipckit's public API.
//! 9. `raw`: message links of direct rustix calls: per message, the same
//!    system calls with the same bytes as ipckit makes.
//! 10. `queue`: the queue rows' kernel limits, names, and raw links.
//! 11. `copymap`: the copy-vs-map table: its rows, trials and peers.
//! 12. `sync`: the synchronization table.
//! 13. `shm`: the shared-memory table: its rows, trials and peers.
//! 14. `floor`: the shared-memory floors: the ping-pongs and the
//!     fixed-slot ring.
//! 15. `iceoryx` (`compare-iceoryx2` only): iceoryx2's ping-pong.
//! 16. `raw_ffi`: the raw loops' `unsafe` calls (libc where rustix has
//!     nothing: queues, pthread mutexes; a shared mapping, its atomics and
//!     copies).
//! 17. `process`: the peer process (spawn, watchdog, reap) and the scratch
//!     directory.
//! 18. `report`: the tables and the JSON document.
//! 19. `rpc`: the request-response rows: calls beside the plain round trip
//!     of the same transport.
//! 20. `pubsub`: the publish-subscribe rows and their subscriber peers.
//! 21. `async_io`: the async rows and their echo peer.
//! 22. `compare`: `--compare OLD.json`, this run's rows beside an earlier
//!     document's.
//! 23. `html`: `--report DIR`, the JSON document as a page: plots as
//!     inline SVG, the tables, and how the numbers were made.
//! 24. `overview`: the catalogue of every row, the answer per size, the
//!     reading in plain words, the method.

mod api;
mod args;
mod async_io;
mod catalogue;
mod compare;
mod copymap;
mod floor;
mod html;
#[cfg(feature = "compare-iceoryx2")]
mod iceoryx;
mod link;
mod meeting;
mod overview;
mod placement;
mod plan;
mod process;
mod pubsub;
mod queue;
mod raw;
mod raw_ffi;
mod report;
mod rpc;
mod runner;
mod shm;
mod sync;

use anyhow::{Context, Result, bail};
use ipckit::process::pin_to_cpu;

pub use args::{BenchArgs, PeerArgs};
use catalogue::Experiment;
use placement::Placement;
use plan::{MAX_MESSAGE, Plan};
use process::Scratch;
use runner::{Bench, Load, progress_bar};
use shm::ShmRow;

/// `ipckit bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let old = args.compare.as_deref().map(compare::Old::load).transpose()?;
    let load = Load::begin();
    let plan = Plan::new(&args)?;
    // A report that could not be written fails now, not after the run.
    let report_dir = args.report.as_deref().map(html::prepare).transpose()?;
    let placement = Placement::choose()?;
    let exe = std::env::current_exe().context("find this executable, to run the peer")?;
    if plan.full {
        eprintln!("ipckit bench --full: {}", plan.how_long());
    }
    let bar = progress_bar();
    let bench = Bench { plan, placement, scratch: Scratch::create()?, exe, bar };
    let report = bench.measure(load);
    bench.bar.finish_and_clear();
    let mut report = report?;
    if args.save_threshold {
        save_threshold(&mut report)?;
    }
    let comparison = old.as_ref().map(|old| compare::compare(old, &report.json()));
    let mut doc = report.json();
    doc["machine"] = machine_json();
    doc["machine"]["pinning"] = report::pinning(bench.placement).into();
    doc["comparison"] = comparison.as_ref().map(compare::Comparison::json).into();
    if let Some(dir) = &report_dir {
        let page = html::write(dir, &doc)?;
        eprintln!("ipckit: report written to {}", page.display());
    }
    if args.json {
        crate::outln(format_args!("{doc}"))?;
    } else {
        let mut text = report.text();
        if let Some(comparison) = &comparison {
            text.push_str("\n\n");
            text.push_str(&comparison.text());
        }
        crate::outln(format_args!("{text}"))?;
    }
    Ok(())
}

/// `--save-threshold`: saves the threshold the copy-vs-map table measured
/// where `?inline=auto` finds it, and notes where in the report.
fn save_threshold(report: &mut report::Report<'_>) -> Result<()> {
    let table = report.copy_map.as_mut().context("--save-threshold: the copy-vs-map table was not measured")?;
    let threshold = table.threshold().context("--save-threshold: the crossover was not measured")?;
    let path = ipckit::threshold::save(threshold, &machine())?;
    table.saved = Some(path);
    Ok(())
}

/// This machine: host name, CPUs, CPU model, Linux release (the host name
/// and release are uname's, from /proc/sys/kernel).
fn machine_facts() -> (String, usize, String, String) {
    let read =
        |path: &str| std::fs::read_to_string(path).map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    let host = read("/proc/sys/kernel/hostname");
    let release = read("/proc/sys/kernel/osrelease");
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU")
        .to_owned();
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    (host, cpus, model, release)
}

/// This machine, for people: `host, 2 CPUs, model, Linux release`.
fn machine() -> String {
    let (host, cpus, model, release) = machine_facts();
    format!("{host}, {cpus} CPUs, {model}, Linux {release}")
}

/// This machine in the JSON document (`"machine"`): the CPU model, the
/// CPUs online (/proc/cpuinfo's processors), the kernel release.
fn machine_json() -> serde_json::Value {
    let (_, cpus, model, release) = machine_facts();
    serde_json::json!({ "cpu_model": model, "cpus": cpus, "kernel": format!("Linux {release}") })
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
            if args.stream {
                let payload = link::Buffer::payload(args.size);
                return link::source(&mut *link, &payload, args.size, args.iterations).context("bench-peer");
            }
            let mut buf = link::Buffer::zeroed(MAX_MESSAGE);
            link::echo(&mut *link, &mut buf, args.size, args.iterations).context("bench-peer")
        }
        (None, Some(Experiment::RpcServer)) => {
            rpc::peer(args.mode, args.iterations, &args.meeting).context("bench-peer")
        }
        (None, Some(Experiment::PubsubSubscriber)) => {
            pubsub::peer(args.mode, args.size, args.iterations, &args.meeting).context("bench-peer")
        }
        (None, Some(Experiment::AsyncEcho)) => {
            async_io::peer(args.mode, args.size, args.iterations, &args.meeting).context("bench-peer")
        }
        (None, Some(Experiment::CopyMap)) => {
            copymap::peer(args.mode, args.size, args.iterations, &args.meeting).context("bench-peer")
        }
        (None, Some(e)) => match ShmRow::of(e) {
            Some(row) => {
                if args.size > MAX_MESSAGE {
                    bail!("--size {} is over the {MAX_MESSAGE}-byte maximum", args.size);
                }
                shm::peer(row, args.mode, args.size, args.iterations, &args.meeting).context("bench-peer")
            }
            None => sync::peer(e, args.mode, args.iterations, &args.meeting).context("bench-peer"),
        },
        (None, None) => bail!("--mechanism or --experiment is required"),
    }
}
