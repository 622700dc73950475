//! `ipckit serve ENDPOINT -- COMMAND`: answers requests by running a
//! command once per request, the way `inetd` runs one per connection.
//!
//! The request body is the command's standard input, its standard output
//! the reply; a command that fails sends an error reply (see
//! [`command`]). `--jobs N` worker threads each receive a request, run the
//! command and reply, so that N commands run at once; with `--count`, a
//! worker takes one of the N places before it receives, so exactly N
//! requests are answered.
//!
//! Ending: `--count` reached, a fatal receive error, or SIGINT/SIGTERM. On
//! a signal the workers stop receiving, the commands still running get
//! SIGTERM (their process group: each runs in its own), their callers an
//! error reply; then what serve created is removed (a socket file, a
//! request queue that did not exist before it started; an existing queue
//! is left as it was) and serve dies of the same signal. A second signal
//! kills at once.

mod command;

use std::ffi::OsString;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use ipckit::rpc::Server;
use ipckit::{Endpoint, EndpointKind, Error, ErrorKind, Options, UnixAddr, UnixType};

use crate::units;
use command::Handler;

/// The long help of `ipckit serve` (`--help`).
pub const LONG_HELP: &str = "Answer requests on ENDPOINT by running COMMAND once per request.\n\n\
        The request body is COMMAND's standard input; its standard output, exactly, is the reply. If it \
        exits non-zero, the caller gets an error carrying the last non-empty line of its standard error, or \
        \"exit status N\" (\"killed by signal N\") when it wrote none. Its standard error is also passed \
        through to serve's, line by line.\n\n\
        Endpoints: unix:, unix-seqpacket:, tcp: (port 0: the kernel picks one), shm:, mq:, sysv-mq: (the \
        request queue is created if missing). Once ready, serve writes \"ipckit: ready ENDPOINT\" on \
        standard error, with the real endpoint.\n\n\
        --jobs N runs up to N commands at once. --count N exits 0 once N requests have been answered.\n\n\
        On SIGINT or SIGTERM serve stops receiving, sends SIGTERM to the commands still running (each runs \
        in its own process group, which gets the signal; their callers get an error reply), removes what it \
        created (a socket file; a request queue that did not exist before it started, so that callers find \
        no server rather than a queue nobody reads), then dies of that signal. A second signal kills it at \
        once. If serve is killed, the running commands get SIGKILL.\n\n\
        Exit status: 0 after --count requests, 1 error, 2 usage (bad endpoint or option; checked before \
        anything is created); killed by the signal that stopped it.";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where to serve: unix:, unix-seqpacket:, tcp:, shm:, mq: or sysv-mq:.
    pub endpoint: String,
    /// Requests handled at once (COMMAND runs up to N times in parallel).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = units::jobs)]
    pub jobs: usize,
    /// Exit 0 once this many requests have been answered (default: serve
    /// until killed).
    #[arg(long, value_name = "N", value_parser = units::count)]
    pub count: Option<u64>,
    /// Largest request accepted and reply sent (e.g. 64KiB); a longer
    /// output of COMMAND is an error reply.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = units::parse_size)]
    pub max_size: usize,
    /// The command to run for each request and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// How often workers and the supervisor look whether to stop.
const POLL: Duration = Duration::from_millis(50);

/// The endpoints request-response runs on, as a usage error (exit 2) for
/// the others: checked before anything is created.
pub fn check_rpc_endpoint(op: &'static str, ep: &Endpoint) -> ipckit::Result<()> {
    match ep.kind() {
        EndpointKind::Unix(UnixType::Stream | UnixType::Seqpacket, _)
        | EndpointKind::Tcp { .. }
        | EndpointKind::Shm(_)
        | EndpointKind::Mq(_)
        | EndpointKind::SysvMq(_) => Ok(()),
        _ => Err(Error::new(
            ErrorKind::Invalid,
            op,
            ep,
            "request-response runs on unix:, unix-seqpacket:, tcp:, shm:, mq: and sysv-mq:",
        )),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ep = crate::endpoint(&args.endpoint)?;
    check_rpc_endpoint("serve", &ep)?;
    signals::install()?;
    let (server, created) = bind(&ep, args.max_size)?;
    crate::print_warnings(server.take_warnings());
    // Not `eprintln!`, which panics when standard error cannot be written.
    let _ = writeln!(std::io::stderr(), "{}{}", crate::recv::READY_PREFIX, server.name());

    let serving = Serving {
        server: &server,
        handler: Handler::new(&args.command, args.max_size),
        count: args.count,
        taken: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        failed: std::sync::Mutex::new(None),
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.jobs).map(|_| s.spawn(|| serving.work())).collect();
        // The supervisor: signals, the library's warnings (here, not in
        // the workers: taking them waits for the receive in progress), and
        // the end of every worker.
        let mut polls = 0u32;
        while !workers.iter().all(|w| w.is_finished()) {
            if signals::received().is_some() && !serving.stop.swap(true, Ordering::AcqRel) {
                serving.handler.stop();
            }
            polls = polls.wrapping_add(1);
            if polls % 5 == 0 {
                crate::print_warnings(server.take_warnings());
            }
            std::thread::sleep(POLL / 5);
        }
    });
    let Serving { failed, .. } = serving;
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    crate::print_warnings(server.take_warnings());
    drop(server);
    if created {
        if let Err(e) = ipckit::remove(&ep) {
            crate::errln(format_args!("warning: {e}"));
        }
    }
    if let Some(sig) = signals::received() {
        signals::die_of(sig);
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Binds the server and says whether this process created the request
/// queue (`mq:`, `sysv-mq:`), which it then removes at the end: it
/// creates the queue itself, exclusively, before the server opens it. A
/// socket file it creates goes with the server (`unlink_on_drop`).
fn bind(ep: &Endpoint, max: usize) -> ipckit::Result<(Server, bool)> {
    let exclusive = Options::new().create(true).exclusive(true);
    let create = match ep.kind() {
        EndpointKind::Mq(_) => Some(ipckit::mq::PosixQueue::open(ep, &exclusive).map(drop)),
        EndpointKind::SysvMq(_) => Some(ipckit::mq::SysvQueue::open(ep, &exclusive).map(drop)),
        _ => None,
    };
    let created = match create {
        None => false,
        Some(Ok(())) => true,
        Some(Err(e)) if e.kind() == ErrorKind::AlreadyExists => false,
        Some(Err(e)) => return Err(e),
    };
    let owns_file = matches!(ep.kind(), EndpointKind::Unix(_, UnixAddr::Path(_)));
    // Not `unlink_on_drop` for queues: every handle the server opens on
    // them (reply queues, System V sweeps) would remove its queue.
    let opts = Options::new().max_message(max).unlink_on_drop(owns_file);
    match Server::bind_with(ep, &opts) {
        Ok(server) => Ok((server, created)),
        Err(e) => {
            if created {
                let _ = ipckit::remove(ep);
            }
            Err(e)
        }
    }
}

/// What the workers share.
#[derive(Debug)]
struct Serving<'a> {
    server: &'a Server,
    handler: Handler,
    /// `--count`.
    count: Option<u64>,
    /// Places taken of `--count`: by workers receiving, and by requests
    /// answered.
    taken: AtomicU64,
    /// Stop receiving (a signal, or a fatal error).
    stop: AtomicBool,
    /// The fatal error that stopped serving.
    failed: std::sync::Mutex<Option<Error>>,
}

impl Serving<'_> {
    /// A worker: receives, runs the command, replies, until told to stop
    /// or until every place of `--count` is taken.
    fn work(&self) {
        while !self.stop.load(Ordering::Acquire) && self.take_place() {
            let request = match self.server.recv_timeout(POLL) {
                Ok(r) => r,
                Err(e) => {
                    self.give_back();
                    self.not_received(e);
                    continue;
                }
            };
            let outcome = self.handler.run(request.body());
            let sent = match &outcome {
                Ok(reply) => self.server.reply(request, Ok(reply)),
                Err(why) => self.server.reply(request, Err(why)),
            };
            // One client's trouble: the others are served on.
            if let Err(e) = sent {
                crate::errln(format_args!("warning: {e}"));
            }
        }
    }

    /// A receive that brought no request: nothing yet, one client's fault
    /// (reported, serving goes on), or the end.
    fn not_received(&self, e: Error) {
        let name = self.server.name();
        let queue = name.starts_with("mq:") || name.starts_with("sysv-mq:");
        match e.kind() {
            ErrorKind::TimedOut => {}
            // On a queue, Disconnected is the queue removed under serve.
            ErrorKind::Disconnected if queue => self.fail(e),
            ErrorKind::Corrupt
            | ErrorKind::TooLarge
            | ErrorKind::Disconnected
            | ErrorKind::NotFound
            | ErrorKind::Full
            | ErrorKind::Busy
            | ErrorKind::PermissionDenied => crate::errln(format_args!("{e}")),
            _ => self.fail(e),
        }
    }

    fn fail(&self, e: Error) {
        self.stop.store(true, Ordering::Release);
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get_or_insert(e);
    }

    /// Takes a place of `--count` (always, without one).
    fn take_place(&self) -> bool {
        let Some(count) = self.count else { return true };
        self.taken.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| (t < count).then_some(t + 1)).is_ok()
    }

    /// Gives back a place taken for a receive that brought no request.
    fn give_back(&self) {
        if self.count.is_some() {
            self.taken.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// SIGINT and SIGTERM, caught: the handler only records the signal.
mod signals {
    use std::sync::atomic::{AtomicI32, Ordering};

    static RECEIVED: AtomicI32 = AtomicI32::new(0);

    extern "C" fn on_signal(sig: libc::c_int) {
        RECEIVED.store(sig, Ordering::Release);
    }

    /// Installs the handler for SIGINT and SIGTERM, once each
    /// (`SA_RESETHAND`: a second signal has the default action).
    pub fn install() -> ipckit::Result<()> {
        for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
            // SAFETY: a zeroed sigaction is a valid value to fill in; the
            // handler has the plain signature and does one atomic store
            // (async-signal-safe); sigemptyset and sigaction get valid
            // pointers.
            let failed = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut()) != 0
            };
            if failed {
                let e = std::io::Error::last_os_error();
                return Err(crate::io_error("sigaction", name, &e));
            }
        }
        Ok(())
    }

    /// The signal received, if any.
    pub fn received() -> Option<i32> {
        Some(RECEIVED.load(Ordering::Acquire)).filter(|&s| s != 0)
    }

    /// Dies of `sig`, as if it had not been caught, so that the parent
    /// sees what ended serve; `128 + sig` if the signal does not kill.
    pub fn die_of(sig: i32) -> ! {
        // SAFETY: signal() with SIG_DFL and raise() take plain integers.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        std::process::exit(128 + sig)
    }
}
