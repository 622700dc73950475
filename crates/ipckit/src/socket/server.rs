//! A receiver's socket server: one listener, every connected sender, and
//! turn-taking between them, so that a receiver is a mailbox.
//!
//! Messages are taken whole from whichever connection has one, accepting
//! new senders as they come, round-robin over the ready connections so that
//! no sender starves another. A sender that closes is dropped; one that
//! breaks off inside a frame is reported (`Disconnected`) once and dropped;
//! one whose message is over the maximum is reported (`TooLarge`) and kept,
//! since its stream is still in step.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::Listener;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::transport::Io;
use crate::wait::{Got, Wait};

/// The most connections a socket receiver serves at once; further senders
/// wait in the listen backlog until one leaves.
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// A listener and the connections it accepted.
#[derive(Debug)]
pub(crate) struct Server {
    listener: Listener,
    conns: Vec<Io>,
    /// Where the next round-robin turn starts.
    next: usize,
    /// Readable when the listener or any connection is: what `poll_fd`
    /// hands out.
    epoll: OwnedFd,
}

impl Server {
    /// Serves `listener`.
    pub(crate) fn new(listener: Listener) -> Result<Server> {
        let name = listener.local_endpoint().to_string();
        let epoll = sys::io::epoll_create().map_err(|e| Error::os("epoll_create", &name, e))?;
        sys::io::epoll_add(epoll.as_fd(), listener.as_fd()).map_err(|e| Error::os("epoll_ctl", &name, e))?;
        Ok(Server { listener, conns: Vec::new(), next: 0, epoll })
    }

    /// The endpoint senders use (for TCP port 0, the real port).
    pub(crate) fn name(&self) -> &str {
        self.listener.name()
    }

    /// How many senders are connected now.
    pub(crate) fn connections(&self) -> usize {
        self.conns.len()
    }

    /// An epoll instance, readable when the listener or any connection is.
    pub(crate) fn poll_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Whether a connection holds read-ahead bytes that may be a message.
    pub(crate) fn has_buffered_message(&self) -> bool {
        self.conns.iter().any(Io::has_buffered_message)
    }

    /// One message from whichever connection has one, by `f` (a receive
    /// attempt on one connection), within `wait`.
    pub(crate) fn next<T>(&mut self, wait: Wait, mut f: impl FnMut(&mut Io, Wait) -> Result<Got<T>>) -> Result<Got<T>> {
        let mut ready: Vec<bool> = Vec::new();
        loop {
            if let Some(i) = self.conns.iter().position(Io::has_buffered_message) {
                if let Got::Msg(m) = f(&mut self.conns[i], Wait::Never)? {
                    return Ok(Got::Msg(m));
                }
            }
            let accepting = self.conns.len() < MAX_CONNECTIONS;
            let (listener_ready, n) = {
                let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(self.conns.len() + 1);
                if accepting {
                    fds.push(self.listener.as_fd());
                }
                fds.extend(self.conns.iter().map(|c| c.fd()));
                let n = sys::io::poll_readable(&fds, &mut ready, wait).map_err(|e| self.os("poll", e))?;
                let listener_ready = accepting && ready.remove(0);
                (listener_ready, n)
            };
            if n == 0 {
                return Ok(Got::NotYet);
            }
            if listener_ready {
                match self.listener.try_accept() {
                    Ok(conn) => {
                        let io = conn.into_io();
                        sys::io::epoll_add(self.epoll.as_fd(), io.fd()).map_err(|e| self.os("epoll_ctl", e))?;
                        self.conns.push(io);
                        ready.push(true);
                    }
                    // Taken by another process: nothing to do.
                    Err(e) if e.kind() == ErrorKind::Empty => {}
                    // Out of descriptors, say: report it rather than spin on
                    // a listener that stays readable.
                    Err(e) => return Err(e),
                }
            }
            let count = self.conns.len();
            let start = if count == 0 { 0 } else { self.next % count };
            let mut remove: Option<usize> = None;
            for k in 0..count {
                let i = (start + k) % count;
                if !ready[i] {
                    continue;
                }
                match f(&mut self.conns[i], Wait::Never) {
                    Ok(Got::Msg(m)) => {
                        self.next = i + 1;
                        return Ok(Got::Msg(m));
                    }
                    Ok(Got::NotYet) => {}
                    Ok(Got::Eof) => {
                        remove = Some(i);
                        break;
                    }
                    // The stream is still in step after these: keep the sender.
                    Err(e) if e.kind() == ErrorKind::TooLarge => {
                        self.next = i + 1;
                        return Err(e);
                    }
                    Err(e) => {
                        self.conns.remove(i);
                        return Err(e);
                    }
                }
            }
            if let Some(i) = remove {
                self.conns.remove(i);
            }
            if matches!(wait, Wait::Never) && remove.is_none() {
                return Ok(Got::NotYet);
            }
        }
    }

    fn os(&self, op: &'static str, e: sys::Errno) -> Error {
        Error::os(op, self.name(), e)
    }
}
