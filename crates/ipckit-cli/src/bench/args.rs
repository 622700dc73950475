//! The command-line arguments of `ipckit bench` and of its peer,
//! `ipckit bench-peer`.

use std::path::PathBuf;

use clap::Args;

use super::catalogue::{Experiment, Mechanism, Mode};
use super::meeting::Meeting;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A few seconds instead of up to a minute: fewer trials and round
    /// trips (for smoke tests; the ratios are rougher).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Every size (the message and shm-busy rows at 64 B, 1 KiB, 4 KiB,
    /// 16 KiB and 64 KiB, copy-vs-map at nine sizes to 16 MiB) and more
    /// trials (31, copy-vs-map 21), within a budget of 10 minutes (it says
    /// so before it starts).
    #[arg(long)]
    pub full: bool,
    /// Print the results as one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
    /// Only rows whose name contains this text (repeatable): pipe, fifo,
    /// unix-stream, unix-seqpacket, unix-dgram, tcp, mq, sysv-mq,
    /// copy-vs-map (the whole table) or its rows copy-kernel, copy-shm,
    /// map-each, map-pool, hybrid; mutex-uncontended, mutex-handoff,
    /// event-pingpong, shm-busy (with compare-iceoryx2, iceoryx2 too),
    /// shm-spin, shm-park, shm-stream; rpc-unix-stream, rpc-unix-seqpacket,
    /// rpc-tcp, rpc-shm, rpc-mq, rpc-sysv-mq and rpc-typed-unix-stream, ...
    /// (rpc: all of them, rpc-typed: the typed ones); pubsub-shm-1sub,
    /// pubsub-shm-4sub, pubsub-shm-2topics (pubsub: all three);
    /// async-shm, async-shm-spin, async-unix-stream, async-tcp (async: all
    /// four).
    #[arg(long, value_name = "TEXT")]
    pub filter: Vec<String>,
    /// Trials of each mode per row [default: 21 (15 for copy vs map),
    /// fewer (at least 5) where a loaded machine makes them outlast the
    /// run's 40 s budget; 3 with --quick; 31 (21) with --full].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub trials: Option<u32>,
    /// Save the threshold the copy-vs-map table measured (the largest
    /// message copy-shm still wins) as the `auto` threshold of shm:
    /// senders, in $XDG_CONFIG_HOME/ipckit/threshold.json, and print
    /// where. Needs the copy-shm and map-pool rows.
    #[arg(long)]
    pub save_threshold: bool,
    /// Round trips timed per trial, for every row (after a tenth as many
    /// of warm-up) [default: each row's own, e.g. 1000 for a 64 B message;
    /// fewer with --quick]. Not the batches of shm-stream and
    /// mutex-uncontended.
    #[arg(long, value_name = "N", value_parser = crate::units::bench_iters)]
    pub iters: Option<usize>,
    /// Message sizes, comma-separated (e.g. 64,4KiB,1MiB; 1 B to 16 MiB),
    /// instead of each table's own: the message rows and shm-busy take
    /// those up to 64 KiB, copy-vs-map all of them [default: 64 B and 64
    /// KiB; shm-busy 64 B, 4 KiB, 64 KiB; copy-vs-map 64 B to 16 MiB].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = crate::units::bench_size)]
    pub sizes: Option<Vec<usize>>,
    /// After the run, each row's p50 (and messages/s where there are)
    /// beside those of an earlier --json document, as new / old: above
    /// 1.10 slower, below 0.90 faster; with --json, as "comparison". The
    /// file must be of this version's schema (else exit 2, before
    /// anything runs).
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,
    /// Also write DIR/index.html: the plots (inline SVG) and tables of the
    /// --json document, and how and where it was measured; a page that
    /// opens offline. DIR is created if missing, and checked before
    /// anything is measured.
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,
}

/// Internal: the peer of one trial. It opens its side, does its part of
/// `iterations` rounds, and exits.
#[derive(Args, Debug)]
pub struct PeerArgs {
    /// A message mechanism: echo every message.
    #[arg(long, value_enum, required_unless_present = "experiment", conflicts_with = "experiment")]
    pub(super) mechanism: Option<Mechanism>,
    /// Another experiment's peer.
    #[arg(long, value_enum)]
    pub(super) experiment: Option<Experiment>,
    #[arg(long, value_enum)]
    pub(super) mode: Mode,
    /// Bytes in every message.
    #[arg(long, default_value_t = 0)]
    pub(super) size: usize,
    /// Rounds to take part in.
    #[arg(long)]
    pub(super) iterations: usize,
    /// A message mechanism: send `iterations` messages one way instead of
    /// echoing.
    #[arg(long, requires = "mechanism")]
    pub(super) stream: bool,
    /// The CPU to run on.
    #[arg(long)]
    pub(super) cpu: Option<usize>,
    #[command(flatten)]
    pub(super) meeting: Meeting,
}
