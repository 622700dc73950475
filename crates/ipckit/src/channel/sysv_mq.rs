//! `sysv-mq:KEY`: a System V queue is the same object for senders and
//! receivers. It has no descriptor to poll: the documented exception.

use std::io::IoSlice;
use std::os::fd::BorrowedFd;

use super::{Open, Transfer};
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::meta::{Message, Meta, SendMeta};
pub(crate) use crate::mq::SysvQueue;
use crate::options::Options;
use crate::wait::{Got, Wait};

impl Open for SysvQueue {
    type End = SysvQueue;

    fn connect(ep: &Endpoint, opts: &Options, _wait: Wait) -> Result<SysvQueue> {
        SysvQueue::open(ep, opts)
    }

    fn bind(ep: &Endpoint, opts: &Options) -> Result<SysvQueue> {
        SysvQueue::open(ep, opts)
    }

    fn remove(ep: &Endpoint) -> Result<()> {
        SysvQueue::remove(ep)
    }
}

impl Transfer for SysvQueue {
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
        None
    }
}
