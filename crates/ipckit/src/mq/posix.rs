//! POSIX message queues (`mq:/name`): messages with priorities.
//!
//! A queue descriptor is a file descriptor on Linux, so waits use `poll`
//! on the monotonic clock (never `mq_timedsend`'s wall-clock deadline). A
//! queue handle holds two descriptors of the same queue: one blocking, for
//! the blocking forms (exactly the system call a C program makes), one
//! non-blocking, for the `try_` and `_timeout` forms and for readiness with
//! poll/epoll ([`AsFd`]).
//!
//! Receiving never destroys a message. `mq_receive` takes the message it
//! returns (there is no peek) and needs a buffer of the queue's message
//! size (`mq_msgsize`), so a receive whose buffer ([`recv_into`]) or
//! maximum ([`Options::max_message`], for [`recv`]) is under `mq_msgsize`
//! is `TooLarge`, naming both sizes, before anything is received: create
//! the queue with a `?msgsize=` its receivers can take.
//!
//! [`recv_into`]: PosixQueue::recv_into
//! [`recv`]: PosixQueue::recv
//!
//! Kernel limits apply: `/proc/sys/fs/mqueue/msg_max` messages (10 by
//! default) of `msgsize_max` bytes (8 KiB) unless the endpoint asks for
//! fewer (`mq:/jobs?maxmsg=5&msgsize=512`); larger attributes are `Invalid`,
//! naming the limit.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Limit, Message, Meta, SendMeta, check_len};
use crate::name::{self, Attempt, Create, Opened};
use crate::options::Options;
use crate::sys::io::Ready;
use crate::sys::mq::MqCreate;
use crate::sys::{self, Errno};
use crate::wait::Wait;
use crate::wait::{Got, message_ops, not_yet};

pub use crate::sys::mq::MqAttr;

/// The highest priority plus one (`MQ_PRIO_MAX` on Linux).
pub const PRIO_MAX: u32 = 32768;

const MSG_MAX_PATH: &str = "/proc/sys/fs/mqueue/msg_max";
const MSGSIZE_MAX_PATH: &str = "/proc/sys/fs/mqueue/msgsize_max";

/// An open POSIX message queue.
#[derive(Debug)]
pub struct PosixQueue {
    name: String,
    label: Arc<str>,
    blocking: OwnedFd,
    nonblocking: OwnedFd,
    msgsize: usize,
    max: usize,
    /// The allocating receive's buffer, `msgsize` bytes once used.
    scratch: Vec<u8>,
    /// Conditions met while opening that the caller should hear of.
    warnings: Vec<String>,
    unlink_on_drop: bool,
}

/// Validates requested attributes against the kernel's limits.
fn check_attr(ep: &Endpoint, maxmsg: u64, msgsize: u64) -> Result<()> {
    for (value, name, path) in [(maxmsg, "maxmsg", MSG_MAX_PATH), (msgsize, "msgsize", MSGSIZE_MAX_PATH)] {
        if let Some(limit) = sys::proc_limit(path) {
            if value > limit {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "mq_open",
                    ep,
                    format!("{name}={value} exceeds the kernel limit {limit} ({path})"),
                ));
            }
        }
    }
    Ok(())
}

impl PosixQueue {
    /// Opens the queue an `mq:` endpoint names. With `opts.create`, creates
    /// it if missing (with the endpoint's `maxmsg`, `msgsize`, `mode`, 0600
    /// by default); with `opts.exclusive` too, fails if it exists. An
    /// existing queue must belong to the caller's user.
    pub fn open(ep: &Endpoint, opts: &Options) -> Result<PosixQueue> {
        let crate::EndpointKind::Mq(name) = ep.kind() else {
            return Err(Error::new(ErrorKind::Invalid, "mq_open", ep, "not an mq: endpoint"));
        };
        let mode = ep.mode()?.unwrap_or(0o600);
        let maxmsg = ep.number_option("maxmsg")?;
        let msgsize_asked = ep.number_option("msgsize")?;
        let attr = match (maxmsg, msgsize_asked) {
            (None, None) => None,
            (m, s) => {
                let m = m.or_else(|| sys::proc_limit("/proc/sys/fs/mqueue/msg_default")).unwrap_or(10);
                let s = s.or_else(|| sys::proc_limit("/proc/sys/fs/mqueue/msgsize_default")).unwrap_or(8192);
                check_attr(ep, m, s)?;
                Some((m as i64, s as i64))
            }
        };
        let how = Create::from_flags(opts.create, opts.exclusive);
        let (blocking, opened) = name::create_or_open(how, |attempt| match attempt {
            Attempt::Create => sys::mq::mq_open(name, Some(MqCreate { mode, attr }), false),
            Attempt::Open => sys::mq::mq_open(name, None, false),
        })
        .map_err(|(attempt, e)| open_error(ep, e, attempt == Attempt::Create))?;
        if opened == Opened::Created {
            // mq_open applies the umask; the endpoint's mode is exact.
            sys::fs::fchmod(&blocking, mode).map_err(|e| Error::os("fchmod", ep, e))?;
        }
        let st = sys::fs::fstat(&blocking).map_err(|e| Error::os("fstat", ep, e))?;
        name::check_owner("mq_open", ep, "queue", st.uid)?;
        let nonblocking = sys::mq::mq_open(name, None, true).map_err(|e| open_error(ep, e, false))?;
        let st2 = sys::fs::fstat(&nonblocking).map_err(|e| Error::os("fstat", ep, e))?;
        if !st2.same_file(&st) {
            return Err(Error::new(ErrorKind::Corrupt, "mq_open", ep, "the queue was replaced while it was opened"));
        }
        let attr = sys::mq::mq_getattr(blocking.as_fd()).map_err(|e| Error::os("mq_getattr", ep, e))?;
        let msgsize = attr.msgsize.max(0) as usize;
        let mut warnings = Vec::new();
        if opened == Opened::Existing {
            let asked = [("maxmsg", maxmsg, attr.maxmsg), ("msgsize", msgsize_asked, attr.msgsize)];
            let mut ignored: Vec<String> = asked
                .iter()
                .filter(|(_, want, have)| want.is_some_and(|w| i64::try_from(w) != Ok(*have)))
                .map(|(key, want, _)| format!("{key}={}", want.unwrap_or_default()))
                .collect();
            if let Some(m) = ep.mode()?.filter(|m| *m != st.mode & 0o777) {
                ignored.push(format!("mode={m:04o}"));
            }
            if !ignored.is_empty() {
                warnings.push(format!(
                    "{ep}: the queue exists with maxmsg={}, msgsize={}, mode={:04o}; the endpoint's {} was \
                     ignored (attributes apply only when a queue is created)",
                    attr.maxmsg,
                    attr.msgsize,
                    st.mode & 0o777,
                    ignored.join(", ")
                ));
            }
        }
        Ok(PosixQueue {
            name: name.clone(),
            label: ep.to_string().into(),
            blocking,
            nonblocking,
            msgsize,
            max: msgsize.min(opts.max_message),
            scratch: Vec::new(),
            warnings,
            unlink_on_drop: opts.unlink_on_drop,
        })
    }

    /// `mq_unlink`: removes the queue's name (open handles keep working).
    pub fn unlink(name: &str) -> Result<()> {
        crate::endpoint::check_mq_name(name).map_err(|why| Error::new(ErrorKind::Invalid, "mq_unlink", name, why))?;
        sys::mq::mq_unlink(name).map_err(|e| Error::os("mq_unlink", format!("mq:{name}"), e))
    }

    /// The queue's attributes now (`mq_getattr`).
    pub fn attributes(&self) -> Result<MqAttr> {
        sys::mq::mq_getattr(self.blocking.as_fd()).map_err(|e| Error::os("mq_getattr", &*self.label, e))
    }

    /// Conditions met while opening that did not stop it but that the
    /// caller should hear of (the library never prints): endpoint
    /// attributes (`maxmsg`, `msgsize`, `mode`) that an existing queue
    /// does not have, which apply only when a queue is created.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Takes the [`warnings`](Self::warnings), leaving none.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The queue name (`/name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn fds(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
        (self.blocking.as_fd(), self.nonblocking.as_fd())
    }

    fn os(&self, op: &'static str, e: Errno) -> Error {
        Error::os(op, &*self.label, e)
    }

    /// The queue's endpoint, as errors name it.
    pub(crate) fn object(&self) -> &str {
        &self.label
    }

    message_ops!();

    pub(crate) fn send_wait(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        if meta.msg_type.is_some() || !meta.fds.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "mq_send",
                &*self.label,
                "a POSIX queue carries a priority, not a message type or file descriptors",
            ));
        }
        let priority = meta.priority.unwrap_or(0);
        if priority >= PRIO_MAX {
            return Err(Error::new(
                ErrorKind::Invalid,
                "mq_send",
                &*self.label,
                format!("priority {priority} is out of range (0 to {})", PRIO_MAX - 1),
            ));
        }
        check_len(parts, self.max, Limit::QueueMessageSize, "mq_send", &self.label)?;
        // One contiguous buffer: mq_send has no gather form.
        let joined;
        let msg: &[u8] = match parts {
            [one] => one,
            _ => {
                joined = parts.iter().flat_map(|p| p.iter().copied()).collect::<Vec<u8>>();
                &joined
            }
        };
        let r = with_wait(self.fds(), wait, Ready::Write, |fd| sys::mq::mq_send(fd, msg, priority));
        match r.map_err(|e| self.os("mq_send", e))? {
            Some(()) => Ok(()),
            None => Err(not_yet(wait, "send", &self.label)),
        }
    }

    /// Refuses a receive that could take a message it cannot hand out
    /// whole: `mq_receive` needs a buffer of at least the queue's message
    /// size (`EMSGSIZE` otherwise) and always takes the message it returns
    /// (there is no peek), so a buffer or maximum `cap` under `mq_msgsize`
    /// is refused before receiving, and nothing leaves the queue.
    fn check_room(&self, cap: usize, what: std::fmt::Arguments<'_>) -> Result<()> {
        if self.msgsize <= cap {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::TooLarge,
            "mq_receive",
            &*self.label,
            format!(
                "the queue's message size (mq_msgsize) is {} bytes, over {what}: nothing was received \
                 (any message stays queued)",
                self.msgsize
            ),
        ))
    }

    pub(crate) fn recv_into_got(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        self.check_room(buf.len(), format_args!("the {}-byte buffer", buf.len()))?;
        let r = with_wait(self.fds(), wait, Ready::Read, |fd| sys::mq::mq_receive(fd, buf));
        Ok(match r.map_err(|e| self.os("mq_receive", e))? {
            Some((n, priority)) => Got::Msg((n, Meta { priority: Some(priority), ..Meta::default() })),
            None => Got::NotYet,
        })
    }

    pub(crate) fn recv_got(&mut self, wait: Wait) -> Result<Got<Message>> {
        self.check_room(self.max, format_args!("the maximum of {} bytes", self.max))?;
        let mut scratch = std::mem::take(&mut self.scratch);
        // Bounded by the queue's msgsize, at most the caller's maximum and
        // the kernel's msgsize_max: not by a peer.
        scratch.resize(self.msgsize, 0);
        let r = with_wait(self.fds(), wait, Ready::Read, |fd| sys::mq::mq_receive(fd, &mut scratch));
        let got = r.map_err(|e| self.os("mq_receive", e)).map(|got| {
            got.map_or(Got::NotYet, |(n, priority)| {
                Got::Msg(Message {
                    data: scratch[..n].to_vec(),
                    meta: Meta { priority: Some(priority), ..Meta::default() },
                })
            })
        });
        self.scratch = scratch;
        got
    }
}

/// Runs `op` on the descriptor that suits `wait` (blocking, or
/// non-blocking and waiting for `events` with poll while it reports
/// `EAGAIN`). `None`: the wait ran out.
fn with_wait<T>(
    (blocking, nonblocking): (BorrowedFd<'_>, BorrowedFd<'_>),
    wait: Wait,
    ready: Ready,
    mut op: impl FnMut(BorrowedFd<'_>) -> Result<T, Errno>,
) -> Result<Option<T>, Errno> {
    if wait.is_forever() {
        return op(blocking).map(Some);
    }
    loop {
        match op(nonblocking) {
            Ok(v) => return Ok(Some(v)),
            Err(Errno::AGAIN) => {
                if matches!(wait, Wait::Never) || !sys::io::poll(nonblocking, ready, wait)? {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn open_error(ep: &Endpoint, e: Errno, create: bool) -> Error {
    let err = Error::os("mq_open", ep, e);
    match e {
        Errno::NOENT => err.with_detail("no such queue"),
        Errno::EXIST => err.with_detail("the queue exists (exclusive create)"),
        Errno::MFILE if create => err.with_detail("too many queues for this user (RLIMIT_MSGQUEUE) or open files"),
        Errno::INVAL => err.with_kind(ErrorKind::Invalid).with_detail("attributes rejected by the kernel"),
        _ => err,
    }
}

impl AsFd for PosixQueue {
    /// The non-blocking descriptor, for poll/epoll readiness: readable when
    /// a message is queued, writable when there is room.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.nonblocking.as_fd()
    }
}

impl Drop for PosixQueue {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            let _ = sys::mq::mq_unlink(&self.name);
        }
    }
}
