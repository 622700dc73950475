//! `ipckit`: send, receive, remove and benchmark Linux IPC from the shell.
//!
//! Exit codes: 0 success, 1 error, 2 usage (bad arguments or endpoint),
//! 3 timed out.

mod bench;
mod lock;
mod ls;
mod recv;
mod sem;
mod send;
mod shm;
mod units;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipckit::{Endpoint, ErrorKind, Framing};

/// Inter-process communication for Linux: every mechanism, one command.
#[derive(Parser, Debug)]
#[command(name = "ipckit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send messages: each argument is one message; with none, each line of
    /// standard input is one.
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
    /// participant's flock; System V: nothing attached).
    Clean(ls::CleanArgs),
    /// Run a command while holding a robust lock (`/name`, `sysv:KEY`,
    /// `file:/path`); exit with its status, 3 on --timeout.
    #[command(long_about = lock::LONG_HELP)]
    Lock(lock::LockArgs),
    /// Semaphores, POSIX (`/name`) and System V (`sysv:KEY`): create, post,
    /// wait, value, rm.
    #[command(long_about = sem::LONG_HELP)]
    Sem(sem::SemArgs),
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
    /// Give up after this long (e.g. 500ms, 2s); exit 3.
    #[arg(long, value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,
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
    #[arg(long, default_value = "16MiB", value_parser = units::parse_size)]
    pub max_size: usize,
    /// Socket receivers: the most bytes held for unfinished frames across
    /// all connections; past it, the connection with the largest unfinished
    /// frame is dropped (with a warning).
    #[arg(long, default_value = "64MiB", value_parser = units::parse_size)]
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

/// The exit code for an error, per DESIGN.md.
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<ipckit::Error>().map(ipckit::Error::kind) {
        Some(ErrorKind::TimedOut) => 3,
        Some(ErrorKind::Invalid) => 2,
        _ => 1,
    }
}

/// Prints the library's warnings, one line each.
pub fn print_warnings(warnings: Vec<String>) {
    for w in warnings {
        eprintln!("ipckit: warning: {w}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Bench(args) => bench::run(args),
        Command::BenchPeer(args) => bench::peer(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<ipckit::Error>().and_then(hint) {
                Some(hint) => eprintln!("ipckit: {e:#} ({hint})"),
                None => eprintln!("ipckit: {e:#}"),
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
