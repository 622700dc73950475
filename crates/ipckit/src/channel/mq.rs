//! `mq:/name`: a POSIX queue is the same object for senders and
//! receivers; both open it (with `create`, make it).

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};

use super::{Open, Transfer};
use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, Result};
use crate::meta::{Message, Meta, SendMeta};
pub(crate) use crate::mq::PosixQueue;
use crate::options::Options;
use crate::sys;
use crate::wait::{Got, Wait};

impl Open for PosixQueue {
    type End = PosixQueue;

    fn connect(ep: &Endpoint, opts: &Options, _wait: Wait) -> Result<PosixQueue> {
        PosixQueue::open(ep, opts)
    }

    fn bind(ep: &Endpoint, opts: &Options) -> Result<PosixQueue> {
        PosixQueue::open(ep, opts)
    }

    fn remove(ep: &Endpoint) -> Result<()> {
        let EndpointKind::Mq(name) = ep.kind() else {
            unreachable!("the transport table routes only mq: endpoints here")
        };
        sys::mq::mq_unlink(name).map_err(|e| Error::os("rm", ep, e).with_detail("mq_unlink"))
    }
}

impl Transfer for PosixQueue {
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        self.send_wait(parts, meta, wait)
    }

    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        self.recv_into_got(buf, wait)
    }

    fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        self.recv_got(wait)
    }

    fn name(&self) -> &str {
        self.object()
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}
