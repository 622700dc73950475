//! Message queues: the kernel keeps the messages, and they outlive the
//! processes that sent them.
//!
//! 1. [`posix`]: POSIX queues (`mq:/name`), with priorities; pollable.
//! 2. [`sysv`]: System V queues (`sysv-mq:KEY`), with types; no descriptor.

pub mod posix;
pub mod sysv;

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};

use crate::error::Result;
use crate::meta::{Message, Meta, SendMeta};
use crate::transport::Got;
use crate::wait::Wait;

pub use posix::PosixQueue;
pub use sysv::SysvQueue;

/// Either kind of queue, for the channel types to dispatch over.
#[derive(Debug)]
pub(crate) enum Queue {
    Posix(PosixQueue),
    Sysv(SysvQueue),
}

impl Queue {
    pub(crate) fn name(&self) -> &str {
        match self {
            Queue::Posix(q) => q.label(),
            Queue::Sysv(q) => q.label(),
        }
    }

    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Queue::Posix(q) => Some(q.as_fd()),
            Queue::Sysv(_) => None,
        }
    }

    pub(crate) fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        match self {
            Queue::Posix(q) => q.send_wait(parts, meta, wait),
            Queue::Sysv(q) => q.send_wait(parts, meta, wait),
        }
    }

    pub(crate) fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        match self {
            Queue::Posix(q) => q.recv_into_raw(buf, wait),
            Queue::Sysv(q) => q.recv_into_raw(buf, wait),
        }
    }

    pub(crate) fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        match self {
            Queue::Posix(q) => q.recv_raw(wait),
            Queue::Sysv(q) => q.recv_raw(wait),
        }
    }
}
