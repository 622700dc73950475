//! A `shm:` sender: its ring (it is the only producer) and its control
//! connection to the receiver.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Config;
use super::control::{self, Packet, Refusal};
use super::memory::{LivePage, MappedRing};
use super::pool::{self, Pool};
use super::ring::{self, Consumer, Producer, Push, RingError, TAG_INLINE, TAG_POOL, TAG_RELEASE};
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
    /// The payload pool (`?pool=`, unless 0), and the release ring through
    /// which the receiver gives its chunks back.
    pool: Option<Pool>,
    release: Consumer<MappedRing>,
    /// Larger messages go through the pool (`?inline=`).
    inline_max: usize,
    /// The receiver's liveness page: checked on every send.
    live: LivePage,
    /// This sender's doorbell (an eventfd the receiver made for it alone,
    /// in its epoll set): rung when it parked.
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
        let pool = match cfg.pool {
            0 => None,
            size => Some(Pool::create(&cfg.channel, size)?),
        };
        let hello = Packet::Hello {
            size: cfg.requested_size.unwrap_or(0) as u64,
            pool: pool.as_ref().map_or(0, |p| p.size() as u64),
        }
        .encode();
        let pool_fd: Vec<BorrowedFd<'_>> = pool.iter().map(Pool::fd).collect();
        control.send(&[IoSlice::new(&hello)], &SendMeta::new().fds(&pool_fd), wait)?;
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
        let release = Consumer::new(ring.release_ring()?);
        if let Some(pool) = &pool {
            if ring.release_capacity() < super::layout::release_capacity(pool.size() / pool::CHUNK) {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "connect",
                    ep,
                    "the receiver's release ring is too small for this sender's pool",
                ));
            }
        }
        let mut warnings = Vec::new();
        let inline_max = match cfg.inline {
            Some(bytes) => bytes,
            None => {
                let auto = crate::threshold::auto();
                warnings.extend(auto.warnings.into_iter().map(|w| format!("{name}: ?inline=auto: {w}")));
                auto.inline_max
            }
        }
        .min(ring::max_message(capacity));
        if let Some(asked) = cfg.requested_size.filter(|&s| s != capacity) {
            warnings.push(format!(
                "{name}: the receiver's ring size of {capacity} bytes holds, not the size={asked} asked for here"
            ));
        }
        Ok(ShmSender {
            name,
            control,
            ring: Producer::new(ring),
            pool,
            release,
            inline_max,
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

    /// Spins until `ready` says so, at most `window` (and never past
    /// `wait`); checks the receiver's liveness now and then.
    fn spin_until(
        &mut self,
        window: Duration,
        wait: Wait,
        mut ready: impl FnMut(&mut ShmSender) -> Result<bool>,
    ) -> Result<bool> {
        let start = Instant::now();
        let mut checked = start;
        loop {
            for _ in 0..32 {
                std::hint::spin_loop();
                if ready(self)? {
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

impl ShmSender {
    /// `Err` when the receiver is gone or stopped serving this sender.
    fn check_receiver(&mut self) -> Result<()> {
        if let Some(why) = self.gone {
            return Err(self.error(ErrorKind::Disconnected, why));
        }
        if !self.live.alive() {
            return Err(self.disconnected("the receiver is gone"));
        }
        if self.ring.memory().is_closed() {
            return Err(self.disconnected("the receiver stopped serving this sender"));
        }
        Ok(())
    }

    /// Publishes one record of `len` bytes gathered from `parts` with
    /// `tag`, waiting for ring room within `wait`.
    fn publish(&mut self, parts: &[IoSlice<'_>], len: usize, tag: u32, wait: Wait) -> Result<()> {
        let need = ring::record_size(len);
        loop {
            match self.ring.try_push(parts, len, tag).map_err(|e| self.corrupt(e))? {
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
            if self.spin_until(window, wait, |s| s.ring.room(need).map_err(|e| s.corrupt(e)))? {
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

    /// Takes back every chunk the receiver released.
    fn reclaim(&mut self) -> Result<()> {
        let Some(pool) = self.pool.as_mut() else { return Ok(()) };
        let mut broken = None;
        loop {
            match self.release.peek() {
                Ok(None) => break,
                Ok(Some(record)) if record.len == 8 && record.tag == TAG_RELEASE => {
                    let mut word = [0u8; 8];
                    self.release.read(record, &mut word);
                    self.release.pop(record);
                    let word = u64::from_le_bytes(word);
                    let (first, count) = (word as u32 as usize, (word >> 32) as usize);
                    if !pool.free(first, count) {
                        broken = Some(format!("the receiver gave back chunks {first}+{count}, which were not lent"));
                        break;
                    }
                }
                Ok(Some(record)) => {
                    broken = Some(format!("a release record of {} bytes with tag {}", record.len, record.tag));
                    break;
                }
                Err(RingError::Corrupt(why)) => {
                    broken = Some(why);
                    break;
                }
            }
        }
        self.release.release();
        match broken {
            Some(why) => Err(self.corrupt(RingError::Corrupt(why))),
            None => Ok(()),
        }
    }

    /// Whether the receiver released chunks not yet taken back.
    fn released(&mut self) -> Result<bool> {
        match self.release.peek() {
            Ok(found) => Ok(found.is_some()),
            Err(e) => Err(self.corrupt(e)),
        }
    }

    /// Lends pool chunks for a message of `len` bytes (at most the pool),
    /// waiting within `wait` for the receiver to give chunks back; `op`
    /// names the operation in errors. Returns the first chunk.
    pub(crate) fn lend(&mut self, len: usize, wait: Wait, op: &'static str) -> Result<usize> {
        let size = self.pool_size().unwrap_or(0);
        if len > size {
            return Err(Error::new(
                ErrorKind::TooLarge,
                op,
                &*self.name,
                format!("{len} bytes exceed this sender's pool of {size} bytes (?pool=)"),
            ));
        }
        self.check_receiver()?;
        loop {
            self.reclaim()?;
            let pool = self.pool.as_mut().expect("the caller checked that there is a pool");
            if let Some(first) = pool.alloc(len)? {
                return Ok(first);
            }
            if matches!(wait, Wait::Never) {
                self.drain()?;
                // Announced, so that `poll_fd` turns readable when chunks
                // come back.
                if self.release.park().map_err(|e| self.corrupt(e))? {
                    return Err(self.no_pool_room(wait, op, len));
                }
                continue;
            }
            let window = match self.wait {
                WaitMode::Busy => Duration::MAX,
                WaitMode::Block => self.spin,
            };
            if self.spin_until(window, wait, ShmSender::released)? {
                continue;
            }
            if wait.remaining() == Some(Duration::ZERO) {
                return Err(self.no_pool_room(wait, op, len));
            }
            if self.release.park().map_err(|e| self.corrupt(e))? {
                let woken = self.sleep(wait);
                self.release.unpark();
                if !woken? {
                    return Err(self.no_pool_room(wait, op, len));
                }
            }
        }
    }

    fn no_pool_room(&self, wait: Wait, op: &'static str, len: usize) -> Error {
        let size = self.pool.as_ref().map_or(0, Pool::size);
        let kind = if matches!(wait, Wait::Never) { ErrorKind::Full } else { ErrorKind::TimedOut };
        let when = if matches!(wait, Wait::Never) { "now" } else { "within the timeout" };
        Error::new(
            kind,
            op,
            &*self.name,
            format!("no room for {len} bytes in the {size}-byte pool {when} (the receiver holds the rest)"),
        )
    }

    /// Bytes of the pool lent now, after taking back what the receiver
    /// released.
    pub(crate) fn pool_lent(&mut self) -> Result<usize> {
        self.reclaim()?;
        Ok(self.pool.as_ref().map_or(0, Pool::lent_bytes))
    }

    /// Whether the receiver is still there and serving this sender (no
    /// system call).
    pub(crate) fn receiver_alive(&self) -> bool {
        self.gone.is_none() && self.live.alive() && !self.ring.memory().is_closed()
    }

    /// Whether this sender has a pool, and its size.
    pub(crate) fn pool_size(&self) -> Option<usize> {
        self.pool.as_ref().map(Pool::size)
    }

    /// The start of chunk `first`, lent by [`lend`](Self::lend).
    pub(crate) fn chunk_ptr(&self, first: usize) -> std::ptr::NonNull<u8> {
        self.pool.as_ref().expect("a lent chunk is in the pool").chunk_ptr(first)
    }

    /// Gives back chunks lent and never published (a loan dropped).
    pub(crate) fn unlend(&mut self, first: usize, len: usize) {
        if let Some(pool) = self.pool.as_mut() {
            pool.free(first, pool::chunks_for(len));
        }
    }

    /// Publishes `len` bytes written in the chunks lent from `first`: only
    /// the reference travels. On an error the chunks stay lent (the caller
    /// may try again, or give them back).
    pub(crate) fn publish_lent(&mut self, first: usize, len: usize, wait: Wait) -> Result<()> {
        self.check_receiver()?;
        let offset = (first * pool::CHUNK) as u64;
        let mut reference = [0u8; 16];
        reference[..8].copy_from_slice(&offset.to_le_bytes());
        reference[8..].copy_from_slice(&(len as u64).to_le_bytes());
        self.publish(&[IoSlice::new(&reference)], 16, TAG_POOL, wait)
    }

    /// The largest message [`send`](super::super::Transfer::send) takes:
    /// the pool's size, else the ring's largest record (and the configured
    /// maximum either way).
    fn largest(&self, parts: &[IoSlice<'_>]) -> Result<usize> {
        let ring_max = ring::max_message(self.capacity);
        let (max, limit) = match self.pool_size() {
            Some(size) if size > ring_max => (size, Limit::Pool { size }),
            _ => (ring_max, Limit::Ring { capacity: self.capacity }),
        };
        if self.max_message < max {
            return check_len(parts, self.max_message, Limit::Maximum, "send", &self.name);
        }
        check_len(parts, max, limit, "send", &self.name)
    }
}

impl super::super::Transfer for ShmSender {
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        if !meta.only_fds("send", &self.name)?.is_empty() {
            return Err(self.error(ErrorKind::Unsupported, "a shm: channel does not carry file descriptors"));
        }
        let len = self.largest(parts)?;
        self.check_receiver()?;
        let pooled = len > self.inline_max && self.pool_size().is_some_and(|size| len <= size);
        if !pooled {
            // At most the ring's largest record: checked by `largest`.
            return self.publish(parts, len, TAG_INLINE, wait);
        }
        // Copy or map: this one is placed in the pool, and only its
        // reference travels.
        let first = self.lend(len, wait, "send")?;
        self.pool.as_mut().expect("lent from it").fill(first, parts, len);
        let sent = self.publish_lent(first, len, wait);
        if sent.is_err() {
            self.unlend(first, len);
        }
        sent
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
