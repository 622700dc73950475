//! The rendezvous of a trial: where the peer finds the parent (its
//! command-line arguments), where the trial's objects are named, and the
//! parent's link until the peer has joined.

use std::os::fd::RawFd;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ipckit::Endpoint;
use ipckit::shm::ShmName;

use super::catalogue::Mechanism;
use super::link::Link;
use super::process::Scratch;

/// How long setting up a link may wait for the other side.
pub(super) const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A link under construction on the parent's side: finishes setting up once
/// the peer runs.
pub(super) type Pending = Box<dyn FnOnce() -> Result<Box<dyn Link>>>;

/// Where the peer of a trial finds the parent: its command-line arguments.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct Meeting {
    /// Where the peer connects (sockets), or sends (fifo, unix-dgram,
    /// queues: the parent's inbox).
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) connect: Option<String>,
    /// fifo, unix-dgram: the peer's own inbox, which it creates; queues:
    /// the queue it receives from, which the parent created.
    #[arg(long, value_name = "ENDPOINT")]
    pub(super) inbox: Option<String>,
    /// pipe: the inherited descriptors the peer reads from and writes to.
    #[arg(long, num_args = 2, value_names = ["READ", "WRITE"])]
    pub(super) fds: Vec<RawFd>,
    /// Synchronization, ipckit mode: the objects to open; iceoryx2: the
    /// services (repeatable).
    #[arg(long = "object", value_name = "NAME")]
    pub(super) objects: Vec<String>,
    /// Synchronization and shared memory, raw mode: the inherited shared
    /// page.
    #[arg(long, value_name = "FD")]
    pub(super) shared_fd: Option<RawFd>,
}

impl Meeting {
    /// A connection mechanism: `ep` is the parent's listener.
    pub(super) fn listener(ep: &Endpoint) -> Meeting {
        Meeting { connect: Some(ep.to_string()), ..Meeting::default() }
    }

    /// `parent` is the parent's inbox, `peer` the peer's.
    pub(super) fn mailboxes(parent: &Endpoint, peer: &Endpoint) -> Meeting {
        Meeting { connect: Some(parent.to_string()), inbox: Some(peer.to_string()), ..Meeting::default() }
    }

    pub(super) fn pipes(read: RawFd, write: RawFd) -> Meeting {
        Meeting { fds: vec![read, write], ..Meeting::default() }
    }

    /// Named shared-memory objects.
    pub(super) fn objects(names: &[&ShmName]) -> Meeting {
        Meeting { objects: names.iter().map(ToString::to_string).collect(), ..Meeting::default() }
    }

    /// The command-line arguments that say this.
    pub(super) fn args(&self) -> Vec<String> {
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
    pub(super) fn connect(&self) -> Result<Endpoint> {
        Meeting::parsed(self.connect.as_ref(), "--connect")
    }

    /// The endpoint of `--inbox`.
    pub(super) fn inbox(&self) -> Result<Endpoint> {
        Meeting::parsed(self.inbox.as_ref(), "--inbox")
    }

    /// The descriptors of `--fds`: (read, write).
    pub(super) fn fds(&self) -> Result<(RawFd, RawFd)> {
        match self.fds[..] {
            [read, write] => Ok((read, write)),
            _ => bail!("--fds READ WRITE is required for pipes"),
        }
    }
}

/// The names of one trial's objects, in the scratch directory (or, for
/// queues, in the kernel's namespaces).
#[derive(Debug)]
pub(super) struct Spot<'a> {
    pub(super) scratch: &'a Scratch,
    /// Unique in the run: `mechanism-size-mode-trial`.
    pub(super) tag: String,
    /// Queues: the message size to create them with.
    pub(super) queue_msgsize: usize,
}

impl Spot<'_> {
    /// `scheme:` and a file in the scratch directory.
    fn endpoint(&self, scheme: &str, suffix: &str) -> Result<Endpoint> {
        let path = self.scratch.dir().join(format!("{}{suffix}", self.tag));
        let text = format!("{scheme}:{}", path.display());
        text.parse().with_context(|| format!("endpoint in the scratch directory {}", self.scratch.dir().display()))
    }

    /// The two inboxes of a mailbox mechanism: (the parent's, the peer's).
    pub(super) fn mailboxes(&self, mech: Mechanism) -> Result<(Endpoint, Endpoint)> {
        let scheme = if mech == Mechanism::Fifo { "fifo" } else { "unix-dgram" };
        Ok((self.endpoint(scheme, ".up")?, self.endpoint(scheme, ".down")?))
    }

    /// Where the parent of a connection mechanism listens: a socket file,
    /// or for TCP the loopback address with a port the kernel chooses.
    pub(super) fn listen_at(&self, mech: Mechanism) -> Result<Endpoint> {
        match mech {
            Mechanism::Tcp => Ok("tcp:127.0.0.1:0".parse()?),
            Mechanism::UnixSeqpacket => self.endpoint("unix-seqpacket", ".sock"),
            _ => self.endpoint("unix", ".sock"),
        }
    }
}
