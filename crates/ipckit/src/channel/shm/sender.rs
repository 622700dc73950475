//! A `shm:` sender: its ring (it is the only producer) and its control
//! connection to the receiver.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Config;
use super::control::{self, Packet, Refusal};
use super::memory::{LivePage, MappedRing};
use super::ring::{self, Producer, Push, RingError, TAG_INLINE};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Limit, SendMeta, check_len};
use crate::options::WaitMode;
use crate::socket::Connection;
use crate::sys::{self, io::Ready};
use crate::transport::Io;
use crate::wait::{Got, Wait, not_yet};

/// How often a busy-waiting sender checks that its receiver is alive.
const BUSY_LIVENESS: Duration = Duration::from_millis(1);

/// A sender's end of a `shm:` channel.
#[derive(Debug)]
pub(crate) struct ShmSender {
    name: Arc<str>,
    control: Io,
    ring: Producer<MappedRing>,
    /// The receiver's liveness page: checked on every send.
    live: LivePage,
    /// The receiver's doorbell (an eventfd): rung when it parked.
    doorbell: std::os::fd::OwnedFd,
    capacity: usize,
    /// The configured maximum ([`Options::max_message`](crate::Options)).
    max_message: usize,
    wait: WaitMode,
    spin: Duration,
    warnings: Vec<String>,
    /// The receiver is gone (or broke the protocol): every send fails.
    gone: Option<&'static str>,
}

impl ShmSender {
    /// Connects to the receiver of `ep` and joins the channel.
    pub(crate) fn connect(ep: &Endpoint, cfg: &Config, wait: Wait) -> Result<ShmSender> {
        let name: Arc<str> = ep.to_string().into();
        let control = Connection::connect_wait(&cfg.control, &cfg.control_opts(), wait)
            .map_err(|e| {
                let kind = e.kind();
                let why = match kind {
                    ErrorKind::NotFound | ErrorKind::Disconnected => "no receiver is bound to this channel".to_string(),
                    _ => e.to_string(),
                };
                match e.errno() {
                    Some(errno) => Error::os("connect", ep, errno).with_kind(kind).with_detail(why),
                    None => Error::new(kind, "connect", ep, why),
                }
            })?
            .into_io();
        // Another user may have bound the name first: talk only to a
        // receiver this user trusts.
        let receiver = control.peer_credentials().ok_or_else(|| {
            Error::new(ErrorKind::PermissionDenied, "connect", ep, "the receiver's credentials are unknown")
        })?;
        if !control::admits(cfg.mode, cfg.me, receiver) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "connect",
                ep,
                format!(
                    "the channel's receiver (pid {}) is uid {}, not this user (uid {}); ?mode= admits others",
                    receiver.pid, receiver.uid, cfg.me.0
                ),
            ));
        }
        let mut control = control;
        let hello = Packet::Hello { size: cfg.requested_size.unwrap_or(0) as u64 }.encode();
        control.send(&[IoSlice::new(&hello)], &SendMeta::new(), wait)?;
        let answer = match control.recv(wait)? {
            Got::Msg(m) => m,
            Got::Eof => {
                return Err(Error::new(ErrorKind::Disconnected, "connect", ep, "the receiver closed the connection"));
            }
            Got::NotYet => {
                let kind = if matches!(wait, Wait::Never) { ErrorKind::Busy } else { ErrorKind::TimedOut };
                return Err(Error::new(kind, "connect", ep, "the receiver did not answer within the timeout"));
            }
        };
        let capacity = match Packet::answer(&answer.data) {
            Some(Packet::Welcome { capacity }) => capacity,
            Some(Packet::Refused { reason, why }) => {
                let kind = match reason {
                    Some(Refusal::Permission) => ErrorKind::PermissionDenied,
                    Some(Refusal::Senders) => ErrorKind::Busy,
                    Some(Refusal::Protocol) | None => ErrorKind::Corrupt,
                };
                return Err(Error::new(kind, "connect", ep, format!("the receiver refused this sender: {why}")));
            }
            _ => return Err(Error::new(ErrorKind::Corrupt, "connect", ep, "the receiver's answer is not a welcome")),
        };
        let mut fds = answer.meta.fds.into_iter();
        let (Some(ring_fd), Some(live_fd), Some(doorbell), None) = (fds.next(), fds.next(), fds.next(), fds.next())
        else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "connect",
                ep,
                "the welcome did not carry a ring, a liveness page and a doorbell",
            ));
        };
        let ring = MappedRing::open(ring_fd, &name)?;
        let live = LivePage::open(live_fd, &name)?;
        if ring::RingMemory::capacity(&ring) as u64 != capacity {
            return Err(Error::new(ErrorKind::Corrupt, "connect", ep, "the welcome and the ring disagree on its size"));
        }
        let capacity = capacity as usize;
        let mut warnings = Vec::new();
        if let Some(asked) = cfg.requested_size.filter(|&s| s != capacity) {
            warnings.push(format!(
                "{name}: the receiver's ring size of {capacity} bytes holds, not the size={asked} asked for here"
            ));
        }
        Ok(ShmSender {
            name,
            control,
            ring: Producer::new(ring),
            live,
            doorbell,
            capacity,
            max_message: cfg.max_message,
            wait: cfg.wait,
            spin: cfg.spin,
            warnings,
            gone: None,
        })
    }

    fn error(&self, kind: ErrorKind, why: impl Into<std::borrow::Cow<'static, str>>) -> Error {
        Error::new(kind, "send", &*self.name, why)
    }

    fn corrupt(&mut self, e: RingError) -> Error {
        let RingError::Corrupt(why) = e;
        self.gone = Some("the receiver broke the ring protocol");
        self.error(ErrorKind::Corrupt, why)
    }

    fn disconnected(&mut self, why: &'static str) -> Error {
        self.gone = Some(why);
        self.error(ErrorKind::Disconnected, why)
    }

    /// Wakes the parked receiver; its end of the connection gone is the
    /// receiver gone.
    fn wake(&mut self) -> Result<()> {
        // Whatever happens, the message is published: a receiver that is
        // gone is seen at the next send (the liveness page).
        let _ = sys::io::eventfd_signal(self.doorbell.as_fd());
        Ok(())
    }

    /// Takes every wake-up the receiver sent; `Err` when it is gone.
    fn drain(&mut self) -> Result<()> {
        let mut scratch = [0u8; control::PACKET_MAX];
        for _ in 0..64 {
            match self.control.recv_into(&mut scratch, Wait::Never) {
                Ok(Got::Msg(_)) => {}
                Ok(Got::NotYet) => return Ok(()),
                Ok(Got::Eof) | Err(_) => return Err(self.disconnected("the receiver is gone")),
            }
        }
        Ok(())
    }

    /// Parks until room may be there: `Ok(false)` when the wait ran out.
    fn sleep(&mut self, wait: Wait) -> Result<bool> {
        let ready =
            sys::io::poll(self.control.fd(), Ready::Read, wait).map_err(|e| Error::os("poll", &*self.name, e))?;
        if ready {
            self.drain()?;
        }
        Ok(ready)
    }

    /// Spins until there is room for `need` bytes, at most `window` (and
    /// never past `wait`); checks the receiver's liveness now and then.
    fn spin_for_room(&mut self, need: usize, window: Duration, wait: Wait) -> Result<bool> {
        let start = Instant::now();
        let mut checked = start;
        loop {
            for _ in 0..32 {
                std::hint::spin_loop();
                if self.ring.room(need).map_err(|e| self.corrupt(e))? {
                    return Ok(true);
                }
            }
            if !self.live.alive() {
                return Err(self.disconnected("the receiver is gone"));
            }
            let now = Instant::now();
            if now.duration_since(start) >= window || wait.remaining() == Some(Duration::ZERO) {
                return Ok(false);
            }
            if now.duration_since(checked) >= BUSY_LIVENESS {
                checked = now;
                if sys::io::poll(self.control.fd(), Ready::Read, Wait::Never).unwrap_or(false) {
                    self.drain()?;
                }
            }
        }
    }
}

impl super::super::Transfer for ShmSender {
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        if !meta.only_fds("send", &self.name)?.is_empty() {
            return Err(self.error(ErrorKind::Unsupported, "a shm: channel does not carry file descriptors"));
        }
        let ring_max = ring::max_message(self.capacity);
        let len = if self.max_message < ring_max {
            check_len(parts, self.max_message, Limit::Maximum, "send", &self.name)?
        } else {
            check_len(parts, ring_max, Limit::Ring { capacity: self.capacity }, "send", &self.name)?
        };
        if let Some(why) = self.gone {
            return Err(self.error(ErrorKind::Disconnected, why));
        }
        if !self.live.alive() {
            return Err(self.disconnected("the receiver is gone"));
        }
        if self.ring.memory().is_closed() {
            return Err(self.disconnected("the receiver stopped serving this sender"));
        }
        let need = ring::record_size(len);
        loop {
            match self.ring.try_push(parts, len, TAG_INLINE).map_err(|e| self.corrupt(e))? {
                Push::Done { wake } => {
                    if wake {
                        self.wake()?;
                    }
                    return Ok(());
                }
                Push::Full => {}
            }
            if matches!(wait, Wait::Never) {
                // Wake-ups already read out (so that `poll_fd` is readable
                // only for a new one), and a receiver that is gone seen.
                self.drain()?;
                // Announce the wait, so that `poll_fd` turns readable when
                // room comes.
                if self.ring.park(need).map_err(|e| self.corrupt(e))? {
                    return Err(not_yet(wait, "send", &self.name));
                }
                continue;
            }
            let window = match self.wait {
                WaitMode::Busy => Duration::MAX,
                WaitMode::Block => self.spin,
            };
            if self.spin_for_room(need, window, wait)? {
                continue;
            }
            if wait.remaining() == Some(Duration::ZERO) {
                return Err(not_yet(wait, "send", &self.name));
            }
            if self.ring.park(need).map_err(|e| self.corrupt(e))? {
                let woken = self.sleep(wait);
                self.ring.unpark();
                if !woken? {
                    return Err(not_yet(wait, "send", &self.name));
                }
            }
        }
    }

    fn recv_into(&mut self, _buf: &mut [u8], _wait: Wait) -> Result<Got<(usize, crate::Meta)>> {
        Err(Error::new(ErrorKind::Unsupported, "recv", &*self.name, "a shm: sender does not receive"))
    }

    fn recv(&mut self, _wait: Wait) -> Result<Got<crate::Message>> {
        Err(Error::new(ErrorKind::Unsupported, "recv", &*self.name, "a shm: sender does not receive"))
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// The control connection: readable when the receiver signals room
    /// (after a `try_send` that was `Full`), or when it is gone.
    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.control.fd())
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}
