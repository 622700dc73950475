//! `ipckit`: send, receive, remove and benchmark Linux IPC from the shell.
//!
//! Exit codes: 0 success, 1 error, 2 usage (bad arguments or endpoint),
//! 3 timed out. Every command checks its arguments before it opens or
//! creates anything: a usage error leaves nothing behind.

mod bench;
mod call;
mod lock;
mod ls;
mod pubsub;
mod recv;
mod sem;
mod send;
mod serve;
mod shm;
mod units;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ipckit::{Endpoint, ErrorKind, Framing};

/// What `ipckit --help` says after the commands: the units every option
/// takes, and the exit codes.
const AFTER_HELP: &str = "Durations (--timeout): 250us, 500ms, 2s, 1.5m, 1h; a bare number is seconds. A duration \
        too long for the clock (e.g. 99999999999999999999s) means no limit. Sizes (--max-size, --size): 4096, 64KiB, \
        1MiB, 2kB. Negative values are usage errors.\n\n\
        Exit codes: 0 success, 1 error, 2 usage (bad arguments, malformed endpoint or option; checked before \
        anything is created), 3 timed out.";

/// Inter-process communication for Linux: every mechanism, one command.
#[derive(Parser, Debug)]
#[command(name = "ipckit", version, about, long_about = None, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send messages: each argument is one message; with none, each line of
    /// standard input is one, sent as it is read.
    #[command(long_about = send::LONG_HELP)]
    Send(send::SendArgs),
    /// Receive messages and print them, one per line.
    Recv(recv::RecvArgs),
    /// Remove a named object: an endpoint's FIFO, socket file or queue, or
    /// a shared-memory segment (`/name`, `sysv:KEY`, `file:/path`).
    Rm {
        /// The endpoint or object name.
        endpoint: String,
    },
    /// Shared memory: create, write, read, info, rm.
    Shm(shm::ShmArgs),
    /// List the IPC objects visible here (POSIX shared memory, semaphores
    /// and queues; System V queues, segments and semaphore sets), marking
    /// ipckit objects and whether any process still uses them.
    Ls(ls::LsArgs),
    /// Remove this user's stale ipckit objects: those no process holds (no
    /// participant's flock; System V: nothing attached). A NAME that is
    /// not removed (no such object, not an ipckit object, another user's,
    /// in use) is reported, and the exit status is 1.
    Clean(ls::CleanArgs),
    /// Run a command while holding a robust lock (`/name`, `sysv:KEY`,
    /// `file:/path`); exit with its status, 3 on --timeout.
    #[command(long_about = lock::LONG_HELP)]
    Lock(lock::LockArgs),
    /// Semaphores, POSIX (`/name`) and System V (`sysv:KEY`): create, post,
    /// wait, value, rm.
    #[command(long_about = sem::LONG_HELP)]
    Sem(sem::SemArgs),
    /// Answer requests by running a command once per request: the request
    /// on its standard input, its standard output the reply.
    #[command(long_about = serve::LONG_HELP)]
    Serve(serve::ServeArgs),
    /// Make one request-response call and print the reply exactly.
    #[command(long_about = call::LONG_HELP)]
    Call(call::CallArgs),
    /// Publish messages to a topic's subscribers: each argument, or each
    /// line of standard input as it is read.
    #[command(long_about = pubsub::PUB_LONG_HELP)]
    Pub(pubsub::PubArgs),
    /// Subscribe to a topic and print its messages, one per line.
    #[command(long_about = pubsub::SUB_LONG_HELP)]
    Sub(pubsub::SubArgs),
    /// Measure every mechanism on this machine: round-trip latency beside
    /// a raw loop of the same system calls.
    Bench(bench::BenchArgs),
    /// Internal: the peer process of `ipckit bench`.
    #[command(hide = true)]
    BenchPeer(bench::PeerArgs),
}

/// Options shared by `send` and `recv`.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Create the named object (FIFO, queue) if it does not exist, with the
    /// endpoint's attributes (`?mode=`, `?maxmsg=`, ...).
    #[arg(long)]
    pub create: bool,
    /// Create the named object, failing if it exists already.
    #[arg(long)]
    pub exclusive: bool,
    /// Message framing on byte streams.
    #[arg(long, default_value = "len32", value_parser = parse_framing)]
    pub framing: Framing,
    /// Largest message accepted or sent (e.g. 64KiB).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = units::parse_size)]
    pub max_size: usize,
    /// Socket receivers: the most bytes held for unfinished frames across
    /// all connections; past it, the connection with the largest unfinished
    /// frame is dropped (with a warning).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = units::parse_size)]
    pub max_buffered: usize,
}

fn parse_framing(s: &str) -> Result<Framing, String> {
    s.parse()
}

impl Common {
    pub fn options(&self) -> ipckit::Options {
        ipckit::Options::new()
            .create(self.create || self.exclusive)
            .exclusive(self.exclusive)
            .framing(self.framing)
            .max_message(self.max_size)
            .max_buffered(self.max_buffered)
    }
}

/// A usage error (exit 2) when `misused`: `flag` applies only to `scheme`
/// endpoints. Checked before anything is opened or created.
pub fn only_for(misused: bool, flag: &str, scheme: &str, ep: &Endpoint) -> ipckit::Result<()> {
    if misused {
        return Err(ipckit::Error::new(
            ErrorKind::Invalid,
            flag.to_string(),
            ep,
            format!("applies only to {scheme} endpoints"),
        ));
    }
    Ok(())
}

/// Parses an endpoint argument.
pub fn endpoint(text: &str) -> ipckit::Result<Endpoint> {
    text.parse()
}

/// A `--timeout` for a whole command, fixed when the command starts so
/// that each step gets what is left of it.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Option<Option<Instant>>);

impl Deadline {
    /// `timeout` from now; no `--timeout`, no deadline. A timeout too long
    /// for the clock to represent its deadline is no deadline either.
    pub fn after(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|t| Instant::now().checked_add(t)))
    }

    /// What is left, for a `_timeout` form of the library (`None`: no
    /// `--timeout`, use the blocking form). A deadline past what the clock
    /// represents is `Duration::MAX`, which the library's timeout forms
    /// take as "as long as it takes".
    pub fn left(self) -> Option<Duration> {
        self.0.map(|d| d.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now())))
    }
}

/// The exit code for an error, per DESIGN.md.
fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(reported) = e.downcast_ref::<Reported>() {
        return reported.0;
    }
    match e.downcast_ref::<ipckit::Error>().map(ipckit::Error::kind) {
        Some(ErrorKind::TimedOut) => 3,
        Some(ErrorKind::Invalid) => 2,
        _ => 1,
    }
}

/// A failure already told on standard error, one line per cause (e.g.
/// several names `clean` did not remove): exit with this code, print
/// nothing more.
#[derive(Debug)]
pub struct Reported(pub u8);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed (exit {}), reported above", self.0)
    }
}

impl std::error::Error for Reported {}

/// An I/O error as an ipckit error naming the operation and the object
/// (`write stdout: no space left on device (ENOSPC)`).
pub fn io_error(op: &'static str, object: &str, e: &std::io::Error) -> ipckit::Error {
    match ipckit::Errno::from_io_error(e) {
        Some(errno) => ipckit::Error::os(op, object, errno),
        None => ipckit::Error::new(ErrorKind::Io, op, object, e.to_string()),
    }
}

/// A failed write to standard output.
pub fn stdout_error(e: std::io::Error) -> ipckit::Error {
    io_error("write", "stdout", &e)
}

/// Writes one line to standard output: `println!`, except that a failed
/// write is an error naming stdout, not a panic.
pub fn outln(line: std::fmt::Arguments<'_>) -> ipckit::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()).map_err(stdout_error)
}

/// Writes one line to standard error, `ipckit: ` first. Standard error
/// that cannot be written to is not a reason to stop (or to panic, as
/// `eprintln!` would).
pub fn errln(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "ipckit: {line}");
}

/// Prints the library's warnings, one line each.
pub fn print_warnings(warnings: Vec<String>) {
    for w in warnings {
        errln(format_args!("warning: {w}"));
    }
}

/// Options whose values are numbers, durations or sizes. Their values may
/// start with `-`, so that `--timeout -1s` is reported as a negative
/// `--timeout` (exit 2) instead of clap's "unexpected argument '-1'".
const NUMBER_OPTIONS: &[&str] = &[
    "timeout",
    "max_size",
    "max_buffered",
    "count",
    "priority",
    "msg_type",
    "value",
    "index",
    "ready_fd",
    "trials",
    "iters",
    "sizes",
    "size",
    "offset",
    "len",
    "mode",
    "jobs",
    "subscribers",
    "history",
];

/// `cmd` and all its subcommands with [`NUMBER_OPTIONS`] taking values
/// that start with `-`. Done here, once, for every command: the value
/// parsers then say what is wrong with the number and clap names the
/// option.
fn numbers_may_be_negative(mut cmd: clap::Command) -> clap::Command {
    for id in NUMBER_OPTIONS {
        let takes_value =
            cmd.get_arguments().any(|a| a.get_id() == id && !a.is_positional() && a.get_action().takes_values());
        if takes_value {
            cmd = cmd.mut_arg(id, |a| a.allow_hyphen_values(true));
        }
    }
    let subcommands: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, numbers_may_be_negative);
    }
    cmd
}

fn main() -> ExitCode {
    let matches = numbers_may_be_negative(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // A receiver serves as many connections as the hard limit allows.
    let _ = ipckit::process::raise_fd_limit();
    let result = match cli.command {
        Command::Send(args) => send::run(args),
        Command::Recv(args) => recv::run(args),
        Command::Rm { endpoint } => ipckit::objects::remove(&endpoint).map_err(Into::into),
        Command::Shm(args) => shm::run(args),
        Command::Ls(args) => ls::ls(args),
        Command::Clean(args) => ls::clean(args),
        Command::Lock(args) => lock::run(args),
        Command::Sem(args) => sem::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Call(args) => call::run(args),
        Command::Pub(args) => pubsub::run_pub(args),
        Command::Sub(args) => pubsub::run_sub(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchPeer(args) => bench::peer(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<ipckit::Error>().and_then(hint) {
                _ if e.is::<Reported>() => {}
                Some(hint) => errln(format_args!("{e:#} ({hint})")),
                None => errln(format_args!("{e:#}")),
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

/// What the user can do about an error, in this command's terms (the
/// library names no command-line flags).
fn hint(e: &ipckit::Error) -> Option<&'static str> {
    let endpoint = ["fifo:", "mq:", "sysv-mq:"].iter().any(|s| e.object().starts_with(s));
    match e.kind() {
        ErrorKind::NotFound if endpoint && matches!(e.op(), "open" | "mq_open" | "msgget") => {
            Some("create it with --create")
        }
        ErrorKind::AlreadyExists if endpoint && matches!(e.op(), "mkfifo" | "mq_open" | "msgget") => {
            Some("it exists, and --exclusive asks for a new one")
        }
        _ => None,
    }
}
