//! The peer process and the scratch directory: everything a run creates is
//! removed, and every child is reaped, on success and on error alike.
//!
//! A peer that dies in the middle of a trial must not leave the parent
//! waiting for an echo forever. Over pipes and connections its exit is
//! end-of-file. A mailbox (FIFO, datagram socket, message queue) has no
//! such signal: a FIFO receiver waits for the next writer, a datagram socket
//! or a queue for the next message; nor has shared memory. So a watchdog
//! thread waits on the peer's pidfd and, if the peer exits unsuccessfully,
//! raises the trial's alarm: for a mailbox (and a `shm:` channel), an
//! empty message to the parent's inbox, which fails the trial at once (an
//! echo of the wrong size); for raw shared memory, a flag the parent's
//! wait loop checks, and a wake-up.

use std::fs::DirBuilder;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipckit::{Endpoint, ErrorKind, Options, Sender};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions};

/// How long a peer may take to exit after its last echo.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a peer may take to exit after a failed trial before it is
/// killed.
const FAILED_EXIT_GRACE: Duration = Duration::from_millis(200);

/// A private directory (mode 0700) for the FIFOs and socket files of one
/// run: `$TMPDIR/ipckit-bench-PID`. Removed, with everything in it, on drop.
#[derive(Debug)]
pub(super) struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Creates the directory (with a numbered suffix if a dead run left one
    /// under the same process id).
    pub(super) fn create() -> Result<Scratch> {
        let base = std::env::temp_dir().join(format!("ipckit-bench-{}", std::process::id()));
        for n in 0..100 {
            let dir = if n == 0 { base.clone() } else { PathBuf::from(format!("{}-{n}", base.display())) };
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Scratch { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
            }
        }
        bail!("cannot create a scratch directory next to {}", base.display())
    }

    /// The directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running peer: killed (if still running) and reaped on drop.
#[derive(Debug)]
pub(super) struct Peer {
    child: Child,
    /// Readable once the peer has exited.
    pidfd: Option<Arc<OwnedFd>>,
    watchdog: Option<JoinHandle<()>>,
}

/// What the watchdog does if the peer exits unsuccessfully: wake the
/// parent from whatever wait it is in.
pub(super) type Alarm = Box<dyn FnOnce() + Send>;

/// The alarm of a mailbox trial: an empty message to the parent's inbox.
/// A full inbox (a queue still holding the dead peer's last echo) is
/// retried for at most [`WAKE_TIMEOUT`]: the parent is about to take that
/// echo, or it is not waiting at all.
pub(super) fn wake_inbox(inbox: Endpoint) -> Alarm {
    Box::new(move || {
        // Bounded: a shm: receiver answers a new sender only while it
        // receives.
        let Ok(mut tx) = Sender::connect_timeout(&inbox, &Options::default(), WAKE_TIMEOUT) else {
            return;
        };
        let deadline = Instant::now() + WAKE_TIMEOUT;
        while tx.try_send(b"").is_err_and(|e| e.kind() == ErrorKind::Full) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// How long the alarm of a mailbox trial waits for room in the inbox.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

impl Peer {
    /// Spawns `cmd` (standard input and output closed; standard error
    /// shared, for the peer's own error messages). `alarm`, if the trial
    /// needs one, is raised if the peer exits unsuccessfully.
    pub(super) fn spawn(cmd: &mut Command, alarm: Option<Alarm>) -> Result<Peer> {
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).spawn().context("spawn the bench peer")?;
        // From here on, Drop kills and reaps it whatever fails.
        let mut peer = Peer { child, pidfd: None, watchdog: None };
        let pidfd = rustix::process::pidfd_open(Pid::from_child(&peer.child), PidfdFlags::empty())
            .context("pidfd_open for the bench peer")?;
        let pidfd = Arc::new(pidfd);
        peer.pidfd = Some(pidfd.clone());
        if let Some(alarm) = alarm {
            let thread = std::thread::Builder::new().name("bench-watchdog".into());
            peer.watchdog = Some(thread.spawn(move || watch(&pidfd, alarm)).context("spawn the watchdog")?);
        }
        Ok(peer)
    }

    /// Ends the trial whose result is `outcome`. After a success, waits for
    /// the peer to exit (at most [`EXIT_TIMEOUT`]) and requires a clean exit;
    /// after a failure, waits at most [`FAILED_EXIT_GRACE`] before killing
    /// it, and adds a failed exit status to the error.
    pub(super) fn finish<T>(mut self, outcome: Result<T>) -> Result<T> {
        match outcome {
            Ok(value) => {
                let status = self.wait(EXIT_TIMEOUT)?;
                if !status.success() {
                    bail!("the peer did not end cleanly ({status})");
                }
                Ok(value)
            }
            // The failure is often the peer's own: give it a moment to
            // exit, so that its status can be told.
            Err(e) => match self.wait(FAILED_EXIT_GRACE) {
                Ok(status) if !status.success() && status.code().is_some() => {
                    Err(e.context(format!("the peer failed ({status})")))
                }
                _ => Err(e),
            },
        }
    }

    /// Waits for the peer to exit, at most `timeout`, then kills it; reaps it.
    fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(pidfd) = &self.pidfd {
            if !poll_readable(pidfd.as_fd(), Some(timeout)) {
                let _ = self.child.kill();
            }
        }
        self.reap()
    }

    /// Joins the watchdog (which returns once the peer has exited), then
    /// reaps the peer: in this order, so that the watchdog sees its status.
    fn reap(&mut self) -> Result<ExitStatus> {
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        self.child.wait().context("wait for the bench peer")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.reap();
    }
}

/// Polls `fd` for input, retrying `EINTR`; whether it became readable
/// within `timeout` (`None`: no limit). Errors count as readable, so that no
/// caller waits on a descriptor that cannot be polled.
pub(super) fn poll_readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
    let ts = timeout.map(|t| Timespec { tv_sec: t.as_secs() as i64, tv_nsec: t.subsec_nanos().into() });
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Err(Errno::INTR) => {}
            Ok(0) => return false,
            _ => return true,
        }
    }
}

/// The watchdog: waits for the peer to exit; if it failed, raises the
/// alarm.
fn watch(pidfd: &OwnedFd, alarm: Alarm) {
    poll_readable(pidfd.as_fd(), None);
    // WNOWAIT: look at the status, leave the reaping to `Peer`.
    let status = rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT);
    let clean = matches!(status, Ok(Some(s)) if s.exited() && s.exit_status() == Some(0));
    if !clean {
        alarm();
    }
}
