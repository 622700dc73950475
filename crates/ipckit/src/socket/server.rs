//! A receiver's socket server: one listener, every connected sender, and
//! turn-taking between them, so that a receiver is a mailbox.
//!
//! - **Every connection through epoll.** The listener and each connection
//!   are in one epoll set (level-triggered), which is also what
//!   `Receiver::poll_fd` hands out. Waiting costs the same whatever number
//!   of idle connections is open, and there is no cap below the descriptor
//!   limit: an idle connection is never evicted (that would lose its
//!   sender's next message).
//! - **Turns.** Connections known to be readable wait in a queue; each turn
//!   takes one message from the front one, which goes to the back if it may
//!   have more. No sender starves another.
//! - **Out of descriptors.** One descriptor is kept in reserve. When
//!   `accept` fails for want of descriptors (`EMFILE`, `ENFILE`), the
//!   reserve is given up to accept the waiting connection and close it at
//!   once, so that senders are told (their connection ends) instead of
//!   hanging in the backlog, and the connections already open are served
//!   on. This is reported once, as a warning.
//! - **Memory for unfinished frames is bounded in total**
//!   ([`Options::max_buffered`](crate::Options::max_buffered)). A frame's
//!   buffer grows with the bytes that arrive, never with the length it
//!   announces; past the bound, the connection holding the largest
//!   unfinished frame is dropped, with a warning.
//! - **Faults are per sender.** A sender that closes is dropped; one that
//!   breaks off inside a frame, or breaks the protocol (more descriptors
//!   with a frame than allowed), is reported once and dropped; one whose
//!   message is over the maximum is reported (`TooLarge`) and kept, since
//!   its stream is still in step, and so is one whose sealed memfd message
//!   was refused (`Corrupt`: the marker was consumed whole).

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::Listener;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::sys::{self, Errno};
use crate::transport::Io;
use crate::wait::{Got, Wait};

/// The epoll data word of the listener; connections use their slot index.
pub(crate) const LISTENER: u64 = u64::MAX;

/// The most events one `epoll_wait` reports.
pub(crate) const EVENTS: usize = 256;

/// One connected sender.
#[derive(Debug)]
struct Conn {
    io: Io,
    /// In the ready queue now.
    queued: bool,
    /// Bytes held for its unfinished frame, as last counted.
    buffered: usize,
    /// A second engine over the connection, to send replies on while this
    /// one receives (request-response), made when first asked for.
    reply: Option<std::sync::Arc<std::sync::Mutex<Io>>>,
}

/// A listener in an epoll set, accepting what comes, with a descriptor in
/// reserve for when descriptors run out: the part of a server that the
/// socket receivers and the shared-memory channel's receiver share.
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: Listener,
    /// Given up to accept-and-close when descriptors run out.
    reserve: Option<OwnedFd>,
    /// Whether the listener is in the epoll set with interest (it is taken
    /// out when descriptors ran out and the reserve is gone).
    accepting: bool,
    /// Out of descriptors, and said so.
    exhausted: bool,
    warnings: Vec<String>,
}

impl Acceptor {
    /// Makes `listener` non-blocking and adds it to `epoll` with the data
    /// word [`LISTENER`].
    pub(crate) fn new(listener: Listener, epoll: BorrowedFd<'_>) -> Result<Acceptor> {
        let name = listener.name().to_string();
        listener.set_nonblocking(true)?;
        sys::io::epoll_add(epoll, listener.as_fd(), LISTENER).map_err(|e| Error::os("epoll_ctl", &name, e))?;
        let reserve = sys::fs::open_reserve().map_err(|e| Error::os("open /dev/null", &name, e))?;
        Ok(Acceptor { listener, reserve: Some(reserve), accepting: true, exhausted: false, warnings: Vec::new() })
    }

    /// The listener's endpoint.
    pub(crate) fn name(&self) -> &str {
        self.listener.name()
    }

    /// The listener, to wrap accepted descriptors.
    pub(crate) fn listener(&self) -> &Listener {
        &self.listener
    }

    /// What happened since the last call that the caller should hear of.
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Accepts the waiting connections (at most [`EVENTS`] a call, so that a
    /// flood of connects cannot keep the receiver from serving; the rest
    /// wait in the backlog, and the listener stays readable), handing each
    /// to `add`. `live` is how many connections are open, for the warning.
    pub(crate) fn accept_all(
        &mut self,
        epoll: BorrowedFd<'_>,
        live: usize,
        mut add: impl FnMut(OwnedFd) -> Result<()>,
    ) -> Result<()> {
        for _ in 0..EVENTS {
            match sys::net::accept_now(self.listener.as_fd()) {
                Ok(Some(fd)) => {
                    self.exhausted = false;
                    add(fd)?;
                }
                Ok(None) => return Ok(()),
                Err(e @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                    if !self.refuse_one(epoll, live, e)? {
                        return Ok(());
                    }
                }
                Err(e) => return Err(Error::os("accept", self.name(), e)),
            }
        }
        Ok(())
    }

    /// A connection closed: a descriptor is free again, for the reserve
    /// and for accepting.
    pub(crate) fn closed(&mut self, epoll: BorrowedFd<'_>) {
        if self.reserve.is_none() {
            self.reserve = sys::fs::open_reserve().ok();
        }
        if !self.accepting {
            let on = sys::io::epoll_interest(epoll, self.listener.as_fd(), LISTENER, true);
            self.accepting = on.is_ok();
        }
    }

    /// Out of descriptors: gives up the reserve to accept one waiting
    /// connection and close it at once. `false` when that is not possible
    /// (the reserve is gone): the listener is then left out of the epoll
    /// set until a connection closes.
    fn refuse_one(&mut self, epoll: BorrowedFd<'_>, live: usize, e: Errno) -> Result<bool> {
        if !self.exhausted {
            self.exhausted = true;
            self.warnings.push(format!(
                "{}: out of file descriptors ({}) with {live} senders connected: new connections are accepted and \
                 closed at once until some close; the connected senders are served on",
                self.name(),
                crate::error::errno_name(e),
            ));
        }
        let Some(reserve) = self.reserve.take() else {
            let off = sys::io::epoll_interest(epoll, self.listener.as_fd(), LISTENER, false);
            self.accepting = off.is_err();
            return Ok(false);
        };
        drop(reserve);
        let refused = sys::net::accept_now(self.listener.as_fd());
        // Closed at once (before the reserve is taken back, which needs its
        // descriptor): the sender sees its connection end.
        let more = match refused {
            Ok(Some(fd)) => {
                drop(fd);
                true
            }
            Ok(None) => false,
            Err(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => false,
            Err(e) => return Err(Error::os("accept", self.name(), e)),
        };
        self.reserve = sys::fs::open_reserve().ok();
        Ok(more && self.reserve.is_some())
    }
}

/// A listener and the connections it accepted.
#[derive(Debug)]
pub(crate) struct Server {
    acceptor: Acceptor,
    epoll: OwnedFd,
    /// Connections by slot; `None` slots are in `free`.
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    /// Slots that may have a message, in turn order.
    ready: VecDeque<usize>,
    events: Vec<u64>,
    /// Bytes held for unfinished frames, over every connection.
    buffered: usize,
    max_buffered: usize,
    warnings: Vec<String>,
}

impl Server {
    /// Serves `listener` (made non-blocking: every wait is on the epoll
    /// set).
    pub(crate) fn new(listener: Listener, opts: &Options) -> Result<Server> {
        let epoll = sys::io::epoll_create().map_err(|e| Error::os("epoll_create", listener.name(), e))?;
        let acceptor = Acceptor::new(listener, epoll.as_fd())?;
        Ok(Server {
            acceptor,
            epoll,
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            ready: VecDeque::new(),
            events: Vec::with_capacity(EVENTS),
            buffered: 0,
            max_buffered: opts.max_buffered,
            warnings: Vec::new(),
        })
    }

    /// The endpoint senders use (for TCP port 0, the real port).
    pub(crate) fn name(&self) -> &str {
        self.acceptor.name()
    }

    /// How many senders are connected now.
    pub(crate) fn connections(&self) -> usize {
        self.live
    }

    /// An epoll instance, readable when the listener or any connection is.
    pub(crate) fn poll_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Whether a connection holds read-ahead bytes that may be a message.
    pub(crate) fn has_buffered_message(&self) -> bool {
        self.conns.iter().flatten().any(|c| c.io.has_buffered_message())
    }

    /// What happened since the last call that the caller should hear of.
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        let mut warnings = self.acceptor.take_warnings();
        warnings.append(&mut self.warnings);
        warnings
    }

    /// One message from whichever connection has one, by `f` (one receive
    /// attempt on one connection, which must not wait), within `wait`.
    pub(crate) fn next<T>(&mut self, wait: Wait, mut f: impl FnMut(&mut Io, Wait) -> Result<Got<T>>) -> Result<Got<T>> {
        self.next_from(wait, |_, io, w| f(io, w))
    }

    /// The engine to send replies on to connection `slot` (made the first
    /// time: a duplicate of its descriptor), shared so that replies need
    /// no hold on the server.
    pub(crate) fn reply_handle(&mut self, slot: usize) -> Result<std::sync::Arc<std::sync::Mutex<Io>>> {
        let conn = self.conns.get_mut(slot).and_then(Option::as_mut).expect("a live connection's slot");
        if let Some(reply) = &conn.reply {
            return Ok(reply.clone());
        }
        let reply = std::sync::Arc::new(std::sync::Mutex::new(conn.io.duplicate()?));
        conn.reply = Some(reply.clone());
        Ok(reply)
    }

    /// Closes connection `slot` (a client that broke the protocol).
    pub(crate) fn drop_connection(&mut self, slot: usize) {
        self.close(slot);
    }

    /// As [`next`](Self::next), telling `f` the connection's slot.
    pub(crate) fn next_from<T>(
        &mut self,
        wait: Wait,
        mut f: impl FnMut(usize, &mut Io, Wait) -> Result<Got<T>>,
    ) -> Result<Got<T>> {
        // A `try_` form looks once: serve, collect events, serve again.
        let mut looked = false;
        loop {
            while let Some(slot) = self.ready.pop_front() {
                if let Some(got) = self.serve(slot, &mut f)? {
                    return Ok(got);
                }
            }
            let out_of_time = match wait {
                Wait::Never => std::mem::replace(&mut looked, true),
                _ => wait.remaining() == Some(std::time::Duration::ZERO),
            };
            if out_of_time {
                return Ok(Got::NotYet);
            }
            let n = sys::io::epoll_wait(self.epoll.as_fd(), &mut self.events, EVENTS, wait)
                .map_err(|e| Error::os("epoll_wait", self.name(), e))?;
            if n == 0 {
                return Ok(Got::NotYet);
            }
            for i in 0..n {
                match self.events[i] {
                    LISTENER => {
                        let (epoll, live) = (self.epoll.as_fd(), self.live);
                        let mut accepted = Vec::new();
                        self.acceptor.accept_all(epoll, live, |fd| {
                            accepted.push(fd);
                            Ok(())
                        })?;
                        for fd in accepted {
                            self.add(fd)?;
                        }
                    }
                    slot => self.mark_ready(slot as usize),
                }
            }
        }
    }

    /// One turn of connection `slot`: `Some` when it ends the call (a
    /// message or an error to report).
    fn serve<T>(
        &mut self,
        slot: usize,
        f: &mut impl FnMut(usize, &mut Io, Wait) -> Result<Got<T>>,
    ) -> Result<Option<Got<T>>> {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return Ok(None);
        };
        conn.queued = false;
        let got = f(slot, &mut conn.io, Wait::Never);
        let in_step = conn.io.refused_one();
        let now = conn.io.buffered();
        self.buffered = self.buffered - conn.buffered + now;
        conn.buffered = now;
        let outcome = match got {
            // It may have more: it goes to the back of the queue.
            Ok(Got::Msg(m)) => {
                self.mark_ready(slot);
                Some(Ok(Got::Msg(m)))
            }
            Ok(Got::NotYet) => None,
            Ok(Got::Eof) => {
                self.close(slot);
                None
            }
            // The stream is still in step after these: keep the sender.
            Err(e) if e.kind() == ErrorKind::TooLarge || in_step => {
                self.mark_ready(slot);
                Some(Err(e))
            }
            Err(e) => {
                self.close(slot);
                Some(Err(e))
            }
        };
        self.bound_buffers();
        outcome.transpose()
    }

    fn mark_ready(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if !conn.queued {
                conn.queued = true;
                self.ready.push_back(slot);
            }
        }
    }

    /// Past the bound on unfinished frames, drops the connections holding
    /// the largest ones until the rest fit.
    fn bound_buffers(&mut self) {
        while self.buffered > self.max_buffered {
            let largest = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (i, c.buffered)))
                .max_by_key(|&(_, b)| b);
            let Some((slot, held)) = largest else { break };
            let total = self.buffered;
            let who = self.conns[slot].as_ref().and_then(|c| c.io.peer_credentials());
            let who = who.map_or_else(|| "a sender".to_string(), |c| format!("the sender with pid {}", c.pid));
            self.warnings.push(format!(
                "{}: dropped the connection of {who}: its unfinished frame held {held} bytes, and unfinished \
                 frames held {total} bytes in all, over the bound of {} bytes",
                self.name(),
                self.max_buffered
            ));
            self.close(slot);
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::take) else { return };
        // Closing the descriptor takes it out of the epoll set.
        self.buffered -= conn.buffered;
        self.live -= 1;
        self.free.push(slot);
        drop(conn);
        self.acceptor.closed(self.epoll.as_fd());
    }

    fn add(&mut self, fd: OwnedFd) -> Result<()> {
        let io = match self.acceptor.listener().wrap(fd) {
            Ok(conn) => conn.into_io(),
            // This connection could not be set up (a TCP option): drop it.
            Err(_) => return Ok(()),
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if let Err(e) = sys::io::epoll_add(self.epoll.as_fd(), io.fd(), slot as u64) {
            self.free.push(slot);
            return Err(Error::os("epoll_ctl", self.name(), e));
        }
        self.conns[slot] = Some(Conn { io, queued: false, buffered: 0, reply: None });
        self.live += 1;
        // It may have sent already.
        self.mark_ready(slot);
        Ok(())
    }
}
