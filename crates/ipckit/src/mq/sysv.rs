//! System V message queues (`sysv-mq:KEY`): messages with types.
//!
//! A receiver selects by type with the kernel's three rules: 0 takes the
//! first message; a positive `n` the first message of type `n`; a negative
//! `n` the first message of the lowest type at most `|n|`
//! ([`Options::msg_type`]).
//!
//! System V queues have no file descriptor, so nothing can `poll` them:
//! the `_timeout` forms retry with `IPC_NOWAIT`, sleeping between tries
//! from 20 µs doubling up to 2 ms. They are lossless and exact about the
//! deadline, but a message that arrives during a sleep waits for its end:
//! on a quiet queue a timed call adds up to 2 ms of latency (the blocking
//! and `try_` forms add none). This is the documented exception to "every
//! transport is `AsFd`".
//!
//! Kernel limits: one message is at most `/proc/sys/kernel/msgmax` bytes
//! (8 KiB by default) and a queue holds `msgmnb` bytes (16 KiB); the
//! endpoint may ask for a smaller byte limit (`?maxbytes=`).

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Limit, Message, Meta, SendMeta, check_len};
use crate::name::{self, Attempt, Create, Opened};
use crate::options::Options;
use crate::sys::mq::MTYPE_SIZE;
use crate::sys::{self, Errno};
use crate::wait::Wait;
use crate::wait::{Got, message_ops, not_yet};

pub use crate::sys::mq::MsqStat;

const MSGMAX_PATH: &str = "/proc/sys/kernel/msgmax";
const MSGMNB_PATH: &str = "/proc/sys/kernel/msgmnb";

/// The status of a queue with the kernel's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStatus {
    /// What `msgctl(IPC_STAT)` reports.
    pub stat: MsqStat,
    /// The largest message the kernel accepts (`msgmax`).
    pub max_message: u64,
    /// The default queue byte limit for new queues (`msgmnb`).
    pub default_max_bytes: u64,
}

/// An open System V message queue.
#[derive(Debug)]
pub struct SysvQueue {
    id: i32,
    key: i32,
    label: Arc<str>,
    recv_type: i64,
    noerror: bool,
    msgmax: usize,
    max: usize,
    /// `struct msgbuf` for receiving: type, then text; as long as the
    /// largest receive so far (its bytes past a message are stale).
    scratch: Vec<u8>,
    /// `struct msgbuf` for sending, exactly the message (kept apart, so
    /// that a send does not shrink the receive buffer, which would then be
    /// zeroed again as it grows back).
    send_buf: Vec<u8>,
    /// Conditions met while opening that the caller should hear of.
    warnings: Vec<String>,
    remove_on_drop: bool,
}

pub use crate::name::resolve_key;

fn kernel_limit(path: &str, default: u64) -> u64 {
    sys::proc_limit(path).unwrap_or(default)
}

impl SysvQueue {
    /// Opens the queue a `sysv-mq:` endpoint names. With `opts.create`,
    /// creates it if missing (mode from the endpoint, 0600 by default;
    /// `?maxbytes=` sets its byte limit); with `opts.exclusive` too, fails
    /// if it exists. An existing queue must belong to the caller's user.
    pub fn open(ep: &Endpoint, opts: &Options) -> Result<SysvQueue> {
        let EndpointKind::SysvMq(k) = ep.kind() else {
            return Err(Error::new(ErrorKind::Invalid, "msgget", ep, "not a sysv-mq: endpoint"));
        };
        let key = resolve_key(k, ep)?;
        let mode = ep.mode()?.unwrap_or(0o600);
        let max_bytes = ep.number_option("maxbytes")?;
        let msgmnb = kernel_limit(MSGMNB_PATH, 16384);
        if let Some(b) = max_bytes {
            if b > msgmnb {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "msgget",
                    ep,
                    format!("maxbytes={b} exceeds the kernel limit {msgmnb} ({MSGMNB_PATH})"),
                ));
            }
        }
        let how = Create::from_flags(opts.create, opts.exclusive);
        let (id, opened) = name::create_or_open(how, |attempt| match attempt {
            Attempt::Create => sys::mq::msgget(key, Some(mode)),
            Attempt::Open => sys::mq::msgget(key, None),
        })
        .map_err(|(attempt, e)| match (attempt, e) {
            (Attempt::Open, Errno::NOENT) => Error::os("msgget", ep, e).with_detail("no queue with this key"),
            (_, e) => Error::os("msgget", ep, e),
        })?;
        let stat = sys::mq::msg_stat(id).map_err(|e| Error::os("msgctl IPC_STAT", ep, e))?;
        name::check_owner("msgget", ep, "queue", stat.uid)?;
        if let (Opened::Created, Some(b)) = (opened, max_bytes) {
            sys::mq::msg_set_max_bytes(id, b).map_err(|e| Error::os("msgctl IPC_SET", ep, e))?;
        }
        let mut warnings = Vec::new();
        if opened == Opened::Existing {
            let mut ignored = Vec::new();
            if let Some(b) = max_bytes.filter(|b| *b != stat.max_bytes) {
                ignored.push(format!("maxbytes={b}"));
            }
            if let Some(m) = ep.mode()?.filter(|m| *m != stat.mode) {
                ignored.push(format!("mode={m:04o}"));
            }
            if !ignored.is_empty() {
                warnings.push(format!(
                    "{ep}: the queue exists with maxbytes={}, mode={:04o}; the endpoint's {} was ignored \
                     (attributes apply only when a queue is created)",
                    stat.max_bytes,
                    stat.mode,
                    ignored.join(", ")
                ));
            }
        }
        let msgmax = kernel_limit(MSGMAX_PATH, 8192) as usize;
        Ok(SysvQueue {
            id,
            key,
            label: ep.to_string().into(),
            recv_type: opts.msg_type,
            noerror: opts.noerror,
            msgmax,
            max: msgmax.min(opts.max_message),
            scratch: Vec::new(),
            send_buf: Vec::new(),
            warnings,
            remove_on_drop: opts.unlink_on_drop,
        })
    }

    /// Removes the queue an endpoint names (`msgctl(IPC_RMID)`): blocked
    /// senders and receivers wake with `Disconnected`.
    pub fn remove(ep: &Endpoint) -> Result<()> {
        let EndpointKind::SysvMq(k) = ep.kind() else {
            return Err(Error::new(ErrorKind::Invalid, "rm", ep, "not a sysv-mq: endpoint"));
        };
        let key = resolve_key(k, ep)?;
        let id = sys::mq::msgget(key, None).map_err(|e| Error::os("rm", ep, e))?;
        sys::mq::msg_remove(id).map_err(|e| Error::os("rm", ep, e))
    }

    /// The queue's status and the kernel's limits.
    pub fn status(&self) -> Result<QueueStatus> {
        let stat = sys::mq::msg_stat(self.id).map_err(|e| self.os("msgctl IPC_STAT", e))?;
        Ok(QueueStatus { stat, max_message: self.msgmax as u64, default_max_bytes: kernel_limit(MSGMNB_PATH, 16384) })
    }

    /// Conditions met while opening that did not stop it but that the
    /// caller should hear of (the library never prints): endpoint
    /// attributes (`maxbytes`, `mode`) that an existing queue does not
    /// have, which apply only when a queue is created.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Takes the [`warnings`](Self::warnings), leaving none.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The key and the queue id.
    pub fn key_and_id(&self) -> (i32, i32) {
        (self.key, self.id)
    }

    /// Sets the selection rule for receiving (see the module docs).
    pub fn set_recv_type(&mut self, msg_type: i64) {
        self.recv_type = msg_type;
    }

    fn os(&self, op: &'static str, e: Errno) -> Error {
        let err = Error::os(op, &*self.label, e);
        match e {
            Errno::IDRM | Errno::INVAL => err.with_kind(ErrorKind::Disconnected).with_detail("the queue was removed"),
            _ => err,
        }
    }

    /// The queue's endpoint, as errors name it.
    pub(crate) fn object(&self) -> &str {
        &self.label
    }

    message_ops!();

    pub(crate) fn send_wait(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        if meta.priority.is_some() || !meta.fds.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "msgsnd",
                &*self.label,
                "a System V queue carries a message type, not a priority or file descriptors",
            ));
        }
        let msg_type = meta.msg_type.unwrap_or(1);
        if msg_type < 1 {
            return Err(Error::new(
                ErrorKind::Invalid,
                "msgsnd",
                &*self.label,
                format!("message type {msg_type} must be positive"),
            ));
        }
        check_len(parts, self.max, Limit::Msgmax, "msgsnd", &self.label)?;
        self.send_buf.clear();
        sys::mq::push_mtype(&mut self.send_buf, msg_type);
        for p in parts {
            self.send_buf.extend_from_slice(p);
        }
        let (id, buf) = (self.id, &self.send_buf);
        let text = buf.len() - MTYPE_SIZE;
        match sys::mq::msgsnd(id, buf, true) {
            Ok(()) => return Ok(()),
            Err(Errno::AGAIN) => {
                // No room now. A message larger than the whole queue never
                // finds room: the kernel would keep the sender waiting.
                if let Ok(stat) = sys::mq::msg_stat(id) {
                    if text as u64 > stat.max_bytes {
                        return Err(Error::new(
                            ErrorKind::TooLarge,
                            "msgsnd",
                            &*self.label,
                            format!(
                                "the message of {text} bytes is larger than the queue holds ({} bytes, its msg_qbytes)",
                                stat.max_bytes
                            ),
                        ));
                    }
                }
                if matches!(wait, Wait::Never) {
                    return Err(not_yet(wait, "send", &self.label));
                }
            }
            Err(e) => return Err(self.os("msgsnd", e)),
        }
        match with_backoff(wait, Errno::AGAIN, |nowait| sys::mq::msgsnd(id, buf, nowait)) {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(not_yet(wait, "send", &self.label)),
            Err(e) => Err(self.os("msgsnd", e)),
        }
    }

    /// Receives into the scratch buffer at most `cap` text bytes (`cap + 1`
    /// with `MSG_NOERROR`, to detect truncation). `None`: nothing within the
    /// wait. A longer message without `MSG_NOERROR` is `E2BIG` and stays
    /// queued: `TooLarge`, over `what` (the kernel does not say its size).
    fn recv_scratch(&mut self, cap: usize, what: std::fmt::Arguments<'_>, wait: Wait) -> Result<Option<(usize, i64)>> {
        let room = if self.noerror { cap.saturating_add(1) } else { cap }.min(self.msgmax);
        // Bounded by msgmax, the kernel's limit, not by a peer. Grown once,
        // not cleared and zeroed again for every message (that memset was
        // most of what a small message cost over a raw msgrcv): the kernel
        // writes what it returns, and only that is read.
        if self.scratch.len() < MTYPE_SIZE + room {
            self.scratch.resize(MTYPE_SIZE + room, 0);
        }
        let (id, msgtyp, noerror) = (self.id, self.recv_type, self.noerror);
        let buf = &mut self.scratch[..MTYPE_SIZE + room];
        match with_backoff(wait, Errno::NOMSG, |nowait| sys::mq::msgrcv(id, buf, msgtyp, nowait, noerror)) {
            Ok(Some(n)) => Ok(Some((n, sys::mq::read_mtype(&self.scratch)))),
            Ok(None) => Ok(None),
            Err(Errno::TOOBIG) => Err(Error::new(
                ErrorKind::TooLarge,
                "msgrcv",
                &*self.label,
                format!("the next message is over {what} (it stays queued; the kernel does not say its size)"),
            )),
            Err(e) => Err(self.os("msgrcv", e)),
        }
    }

    pub(crate) fn recv_into_got(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        let cap = buf.len();
        let Some((n, msg_type)) = self.recv_scratch(cap, format_args!("the {cap}-byte buffer"), wait)? else {
            return Ok(Got::NotYet);
        };
        let truncated = n > buf.len();
        let len = n.min(buf.len());
        buf[..len].copy_from_slice(&self.scratch[MTYPE_SIZE..MTYPE_SIZE + len]);
        Ok(Got::Msg((len, Meta { msg_type: Some(msg_type), truncated, ..Meta::default() })))
    }

    pub(crate) fn recv_got(&mut self, wait: Wait) -> Result<Got<Message>> {
        // At most this receiver's maximum: a longer message stays queued
        // (E2BIG), or is cut with MSG_NOERROR.
        let max = self.max;
        let Some((n, msg_type)) = self.recv_scratch(max, format_args!("the maximum of {max} bytes"), wait)? else {
            return Ok(Got::NotYet);
        };
        let truncated = n > max;
        let data = self.scratch[MTYPE_SIZE..MTYPE_SIZE + n.min(max)].to_vec();
        Ok(Got::Msg(Message { data, meta: Meta { msg_type: Some(msg_type), truncated, ..Meta::default() } }))
    }
}

/// Runs `op(nowait)` per `wait`: blocking once, non-blocking once, or
/// non-blocking repeatedly with sleeps from 20 µs doubling to 2 ms until
/// the deadline. `busy` is the errno that means "not now". `None`: the
/// wait ran out.
fn with_backoff<T>(wait: Wait, busy: Errno, mut op: impl FnMut(bool) -> Result<T, Errno>) -> Result<Option<T>, Errno> {
    if wait.is_forever() {
        return op(false).map(Some);
    }
    let mut pause = Duration::from_micros(20);
    loop {
        match op(true) {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e == busy => {}
            Err(e) => return Err(e),
        }
        let left = wait.remaining().unwrap_or(pause);
        if left.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(left.min(pause));
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

impl Drop for SysvQueue {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = sys::mq::msg_remove(self.id);
        }
    }
}
