//! ipckit mode: every mechanism through ipckit's public API, as a program
//! would use it: `send`, and `recv_into` with a buffer of the maximum
//! message size.
//!
//! | shape | parent | peer |
//! | --- | --- | --- |
//! | pipes | two `pipe_with`, one end of each `pass_to` the peer | `from_inherited` |
//! | mailboxes (fifo, unix-dgram) | `Receiver::bind_with` its inbox; `Sender::connect_timeout` to the peer's | the same, mirrored |
//! | connection | `Listener::bind_with`, `accept_timeout` | `Connection::connect_timeout` |
//! | queues (mq, sysv-mq) | `Receiver::bind_with` and `Sender::connect_with`, creating both queues exclusively, removed on drop | `Receiver::bind_with`, `Sender::connect_with` |

use std::process::Command;

use anyhow::{Context, Result};
use ipckit::pipe::{PipeReader, PipeWriter};
use ipckit::socket::{Connection, Listener};
use ipckit::{Endpoint, ErrorKind, Options, Receiver, Sender};

use super::catalogue::{Mechanism, Shape};
use super::link::Link;
use super::meeting::{Meeting, Pending, SETUP_TIMEOUT, Spot};
use super::plan::MAX_MESSAGE;
use super::queue;

/// The options of every ipckit link: `len32` framing, and a maximum message
/// size equal to the receive buffer, so that a message socket needs no
/// `MSG_PEEK` to learn a length first.
fn options() -> Options {
    Options::new().max_message(MAX_MESSAGE)
}

impl Link for Connection {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Ok(Connection::send(self, msg)?)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Ok(self.recv_into(buf)?.0)
    }
}

/// A receiver for one direction and a sender for the other.
#[derive(Debug)]
pub(super) struct Duplex {
    pub(super) rx: Receiver,
    pub(super) tx: Sender,
}

impl Link for Duplex {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Ok(self.tx.send(msg)?)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Ok(self.rx.recv_into(buf)?.0)
    }
}

/// The parent's side, before the peer is spawned: creates what the peer
/// will find (adding to `cmd` what it inherits) and returns where they
/// meet, and how to finish once the peer runs.
pub(super) fn prepare(mech: Mechanism, spot: &Spot<'_>, cmd: &mut Command) -> Result<(Meeting, Pending)> {
    let opts = options();
    match mech.shape() {
        Shape::Pipes => {
            let (down_rx, down_tx) = ipckit::pipe::pipe_with(&opts)?;
            let (up_rx, up_tx) = ipckit::pipe::pipe_with(&opts)?;
            let meeting = Meeting::pipes(down_rx.pass_to(cmd), up_tx.pass_to(cmd));
            let finish = move || -> Result<Box<dyn Link>> {
                // The peer has its copies now; with ours closed, its exit
                // is end-of-file here.
                drop((down_rx, up_tx));
                Ok(Box::new(Duplex { rx: up_rx.into(), tx: down_tx.into() }))
            };
            Ok((meeting, Box::new(finish)))
        }
        Shape::Mailboxes => {
            let (mine, theirs) = spot.mailboxes(mech)?;
            let rx = Receiver::bind_with(&mine, &opts.clone().create(true))?;
            let meeting = Meeting::mailboxes(&mine, &theirs);
            let finish = move || -> Result<Box<dyn Link>> {
                let tx = Sender::connect_timeout(&theirs, &opts, SETUP_TIMEOUT)?;
                Ok(Box::new(Duplex { rx, tx }))
            };
            Ok((meeting, Box::new(finish)))
        }
        Shape::Connection => {
            let listener = Listener::bind_with(&spot.listen_at(mech)?, &opts)?;
            let meeting = Meeting::listener(listener.local_endpoint());
            let finish = move || -> Result<Box<dyn Link>> {
                let conn = listener.accept_timeout(SETUP_TIMEOUT).context("wait for the peer to connect")?;
                Ok(Box::new(conn))
            };
            Ok((meeting, Box::new(finish)))
        }
        Shape::Queues => {
            // Both queues are the parent's: created exclusively under fresh
            // names, removed when the link (or, on error, this) drops them.
            let create = opts.clone().create(true).exclusive(true).unlink_on_drop(true);
            let msgsize = spot.queue_msgsize;
            let (up, rx) = queue::create_unique(mech, spot, "up", msgsize, |ep: &Endpoint| {
                unless_taken(Receiver::bind_with(ep, &create))
            })?;
            let (down, tx) = queue::create_unique(mech, spot, "down", msgsize, |ep: &Endpoint| {
                unless_taken(Sender::connect_with(ep, &create))
            })?;
            let finish = move || -> Result<Box<dyn Link>> { Ok(Box::new(Duplex { rx, tx })) };
            Ok((Meeting::mailboxes(&up, &down), Box::new(finish)))
        }
    }
}

/// `Ok(None)` for a queue name that is taken.
fn unless_taken<T>(r: ipckit::Result<T>) -> Result<Option<T>> {
    match r {
        Ok(q) => Ok(Some(q)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The peer's side: opens its link to the parent.
pub(super) fn open_peer(mech: Mechanism, meeting: &Meeting) -> Result<Box<dyn Link>> {
    let opts = options();
    match mech.shape() {
        Shape::Pipes => {
            let (read, write) = meeting.fds()?;
            let rx = PipeReader::from_inherited(read, &opts)?;
            let tx = PipeWriter::from_inherited(write, &opts)?;
            Ok(Box::new(Duplex { rx: rx.into(), tx: tx.into() }))
        }
        Shape::Mailboxes => {
            let rx = Receiver::bind_with(&meeting.inbox()?, &opts.clone().create(true))?;
            let tx = Sender::connect_timeout(&meeting.connect()?, &opts, SETUP_TIMEOUT)?;
            Ok(Box::new(Duplex { rx, tx }))
        }
        Shape::Connection => Ok(Box::new(Connection::connect_timeout(&meeting.connect()?, &opts, SETUP_TIMEOUT)?)),
        // The parent created both before the peer started.
        Shape::Queues => {
            let rx = Receiver::bind_with(&meeting.inbox()?, &opts)?;
            let tx = Sender::connect_with(&meeting.connect()?, &opts)?;
            Ok(Box::new(Duplex { rx, tx }))
        }
    }
}
