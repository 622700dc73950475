//! Message queues in the main table: POSIX (`mq`) and System V (`sysv-mq`).
//!
//! A trial uses two queues, one each way, both created by the parent
//! (exclusively, mode 0600, under names unique to the run and the trial) and
//! removed when its side of the link is dropped, on success and on error
//! alike; the peer only opens them. The queues' message size is the row
//! set's largest message: the kernel's limit ([`Limits`]), at most the bench's
//! [`MAX_MESSAGE`].
//!
//! The raw links make, per message, the calls ipckit's blocking forms make:
//!
//! | mechanism | send | receive |
//! | --- | --- | --- |
//! | mq | `mq_send` on a blocking descriptor, priority 0 | `mq_receive` on a blocking descriptor into the caller's buffer |
//! | sysv-mq | copy into a buffer after the 8-byte type, `msgsnd` | `msgrcv` (type 0, room for `msgmax` bytes) into a buffer with the type, copy the text out |
//!
//! (ipckit opens a second, non-blocking descriptor of each POSIX queue for
//! its `try_`/`_timeout` forms and for poll; the blocking forms never use it.)

use anyhow::{Context, Result, bail, ensure};
use ipckit::mq::sysv::resolve_key;
use ipckit::{Endpoint, EndpointKind};
use rustix::io::Errno;

use super::catalogue::Mechanism;
use super::link::Link;
use super::meeting::{Meeting, Pending, Spot};
use super::plan::MAX_MESSAGE;
use super::raw_ffi::{self, MTYPE, MTYPE_SIZE};

/// Messages a POSIX queue holds: one is all a round trip needs, and keeps
/// the two queues far under `RLIMIT_MSGQUEUE`.
pub(super) const MQ_MAXMSG: u64 = 1;

/// Bytes the kernel charges a POSIX queue beyond its messages (tree nodes,
/// message headers), generously: for the `RLIMIT_MSGQUEUE` bound.
const MQ_OVERHEAD: u64 = 4096;

/// Attempts at a name or key before giving up: another process may hold
/// one (a System V key is a 32-bit number anyone can pick).
const ATTEMPTS: u32 = 32;

/// The largest message a queue mechanism can carry here, and why.
#[derive(Clone, Debug)]
pub(super) struct Limit {
    /// Bytes.
    pub(super) max: usize,
    /// The limit that decides it, for the JSON document.
    pub(super) source: String,
}

/// The kernel's limits on queue messages, read once per run.
#[derive(Clone, Debug)]
pub(super) struct Limits {
    pub(super) mq: Limit,
    pub(super) sysv: Limit,
}

fn proc_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Limits {
    /// POSIX: `/proc/sys/fs/mqueue/msgsize_max`, and what `RLIMIT_MSGQUEUE`
    /// leaves for two queues of one message. System V: `msgmax` (one
    /// message), at most `msgmnb` (one queue). The documented defaults
    /// where a file cannot be read.
    pub(super) fn read() -> Limits {
        let msgsize_max = proc_number("/proc/sys/fs/mqueue/msgsize_max").unwrap_or(8192);
        let mut mq = Limit { max: msgsize_max as usize, source: format!("msgsize_max = {msgsize_max}") };
        if let Some(rlimit) = rustix::process::getrlimit(rustix::process::Resource::Msgqueue).current {
            let room = (rlimit / 2).saturating_sub(MQ_OVERHEAD) / MQ_MAXMSG;
            if room < msgsize_max {
                mq = Limit { max: room as usize, source: format!("RLIMIT_MSGQUEUE = {rlimit} for two queues") };
            }
        }
        let msgmax = proc_number("/proc/sys/kernel/msgmax").unwrap_or(8192);
        let msgmnb = proc_number("/proc/sys/kernel/msgmnb").unwrap_or(16384);
        let sysv = if msgmax <= msgmnb {
            Limit { max: msgmax as usize, source: format!("msgmax = {msgmax}") }
        } else {
            Limit { max: msgmnb as usize, source: format!("msgmnb = {msgmnb} (msgmax = {msgmax})") }
        };
        Limits { mq, sysv }
    }

    /// The limit of a queue mechanism; `None` for the others.
    pub(super) fn of(&self, mech: Mechanism) -> Option<&Limit> {
        match mech {
            Mechanism::Mq => Some(&self.mq),
            Mechanism::SysvMq => Some(&self.sysv),
            _ => None,
        }
    }
}

/// Why `mech` (a queue) cannot run on this machine, if it cannot: a
/// queue of one small message is created and removed, and the error is
/// the answer (no POSIX queues in the kernel, `RLIMIT_MSGQUEUE` at 0, no
/// System V queue left under `msgmni`, ...). `None` for the others.
pub(super) fn unavailable(mech: Mechanism) -> Option<String> {
    let name = format!("/ipckit-bench-probe-{}", std::process::id());
    match mech {
        Mechanism::Mq => raw_ffi::PosixQueue::create(&name, 1, 64)
            .err()
            .map(|e| format!("a POSIX queue cannot be created here (mq_open: {e})")),
        Mechanism::SysvMq => raw_ffi::SysvQueue::create(libc::IPC_PRIVATE)
            .err()
            .map(|e| format!("a System V queue cannot be created here (msgget: {e})")),
        _ => None,
    }
}

/// The message size of a trial's queues: the largest message of the row
/// set.
pub(super) fn queue_msgsize(limit: &Limit) -> usize {
    limit.max.min(MAX_MESSAGE)
}

/// A FNV-1a hash of `text`, as a System V key: positive, never 0
/// (`IPC_PRIVATE`).
fn key_of(text: &str) -> i32 {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    match ((h ^ (h >> 32)) & 0x7fff_ffff) as i32 {
        0 => 1,
        k => k,
    }
}

/// The endpoint of one of a trial's queues, direction `dir` ("up": to the
/// parent, "down": to the peer), try number `attempt`.
pub(super) fn endpoint(mech: Mechanism, spot: &Spot<'_>, dir: &str, attempt: u32, msgsize: usize) -> Result<Endpoint> {
    let unique = format!("ipckit-bench-{}-{}-{dir}-{attempt}", std::process::id(), spot.tag);
    let text = match mech {
        Mechanism::Mq => format!("mq:/{unique}?maxmsg={MQ_MAXMSG}&msgsize={msgsize}"),
        Mechanism::SysvMq => format!("sysv-mq:{}", key_of(&unique)),
        _ => bail!("{} is not a queue", mech.name()),
    };
    Ok(text.parse()?)
}

/// Creates a queue with `create(endpoint)` under the first free name:
/// `Ok(None)` from `create` means the name is taken.
pub(super) fn create_unique<T>(
    mech: Mechanism,
    spot: &Spot<'_>,
    dir: &str,
    msgsize: usize,
    mut create: impl FnMut(&Endpoint) -> Result<Option<T>>,
) -> Result<(Endpoint, T)> {
    for attempt in 0..ATTEMPTS {
        let ep = endpoint(mech, spot, dir, attempt, msgsize)?;
        if let Some(q) = create(&ep).with_context(|| format!("create {ep}"))? {
            return Ok((ep, q));
        }
    }
    bail!("no free {} name for the {dir} queue in {ATTEMPTS} attempts", mech.name())
}

/// What a raw peer opens: a POSIX name or a System V key.
enum Target {
    Posix(String),
    Sysv(i32),
}

fn target(ep: &Endpoint) -> Result<Target> {
    match ep.kind() {
        EndpointKind::Mq(name) => Ok(Target::Posix(name.clone())),
        EndpointKind::SysvMq(key) => Ok(Target::Sysv(resolve_key(key, ep)?)),
        _ => bail!("{ep} is not a queue"),
    }
}

/// A raw POSIX queue link: one blocking descriptor of each queue.
#[derive(Debug)]
struct RawPosix {
    rx: raw_ffi::PosixQueue,
    tx: raw_ffi::PosixQueue,
}

impl Link for RawPosix {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.send(msg).context("mq_send")
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.rx.receive(buf).context("mq_receive")
    }
}

/// A raw System V queue link, with the two message buffers (type, then
/// text) a C program would keep.
#[derive(Debug)]
struct RawSysv {
    rx: raw_ffi::SysvQueue,
    tx: raw_ffi::SysvQueue,
    /// The outgoing `struct msgbuf`.
    out: Vec<u8>,
    /// The incoming one: room for the largest message the kernel allows.
    inc: Vec<u8>,
}

impl RawSysv {
    fn new(rx: raw_ffi::SysvQueue, tx: raw_ffi::SysvQueue, msgmax: usize) -> RawSysv {
        let mut out = MTYPE.to_ne_bytes().to_vec();
        out.reserve(msgmax);
        RawSysv { rx, tx, out, inc: vec![0; MTYPE_SIZE + msgmax] }
    }
}

impl Link for RawSysv {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.out.truncate(MTYPE_SIZE);
        self.out.extend_from_slice(msg);
        self.tx.send(&self.out).context("msgsnd")
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = self.rx.receive(&mut self.inc).context("msgrcv")?;
        ensure!(n <= buf.len(), "a {n}-byte message for a {}-byte buffer", buf.len());
        buf[..n].copy_from_slice(&self.inc[MTYPE_SIZE..MTYPE_SIZE + n]);
        Ok(n)
    }
}

/// `Ok(None)` for a name that is taken.
fn unless_taken<T>(r: Result<T, Errno>) -> Result<Option<T>> {
    match r {
        Ok(q) => Ok(Some(q)),
        Err(Errno::EXIST) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The largest System V message, for the receive buffer: `msgmax`, as
/// ipckit sizes its own.
fn sysv_msgmax() -> usize {
    proc_number("/proc/sys/kernel/msgmax").unwrap_or(8192) as usize
}

/// The raw parent's side: creates both queues (removed when the link is
/// dropped, or when this fails half-way).
pub(super) fn prepare_raw(mech: Mechanism, spot: &Spot<'_>, msgsize: usize) -> Result<(Meeting, Pending)> {
    match mech {
        Mechanism::Mq => {
            let create = |ep: &Endpoint| match target(ep)? {
                Target::Posix(name) => {
                    unless_taken(raw_ffi::PosixQueue::create(&name, MQ_MAXMSG as i64, msgsize as i64))
                }
                Target::Sysv(_) => unreachable!("an mq: endpoint"),
            };
            let (up, rx) = create_unique(mech, spot, "up", msgsize, create)?;
            let (down, tx) = create_unique(mech, spot, "down", msgsize, create)?;
            let finish = move || -> Result<Box<dyn Link>> { Ok(Box::new(RawPosix { rx, tx })) };
            Ok((Meeting::mailboxes(&up, &down), Box::new(finish)))
        }
        Mechanism::SysvMq => {
            let create = |ep: &Endpoint| match target(ep)? {
                Target::Sysv(key) => unless_taken(raw_ffi::SysvQueue::create(key)),
                Target::Posix(_) => unreachable!("a sysv-mq: endpoint"),
            };
            let (up, rx) = create_unique(mech, spot, "up", msgsize, create)?;
            let (down, tx) = create_unique(mech, spot, "down", msgsize, create)?;
            let finish = move || -> Result<Box<dyn Link>> { Ok(Box::new(RawSysv::new(rx, tx, sysv_msgmax()))) };
            Ok((Meeting::mailboxes(&up, &down), Box::new(finish)))
        }
        _ => bail!("{} is not a queue", mech.name()),
    }
}

/// The raw peer's side: opens the parent's queues (`--inbox` is the one it
/// receives from, `--connect` the one it sends to).
pub(super) fn open_peer_raw(meeting: &Meeting) -> Result<Box<dyn Link>> {
    let (inbox, outbox) = (meeting.inbox()?, meeting.connect()?);
    match (target(&inbox)?, target(&outbox)?) {
        (Target::Posix(rx), Target::Posix(tx)) => Ok(Box::new(RawPosix {
            rx: raw_ffi::PosixQueue::open(&rx).with_context(|| format!("mq_open {rx}"))?,
            tx: raw_ffi::PosixQueue::open(&tx).with_context(|| format!("mq_open {tx}"))?,
        })),
        (Target::Sysv(rx), Target::Sysv(tx)) => Ok(Box::new(RawSysv::new(
            raw_ffi::SysvQueue::open(rx).with_context(|| format!("msgget {rx}"))?,
            raw_ffi::SysvQueue::open(tx).with_context(|| format!("msgget {tx}"))?,
            sysv_msgmax(),
        ))),
        _ => bail!("--inbox and --connect name different kinds of queue"),
    }
}
