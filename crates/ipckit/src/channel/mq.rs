//! `mq:/name`: a POSIX queue is the same object for senders and
//! receivers; both open it (with `create`, make it). `queue_transport!`
//! states the contract for both kinds of queue.

use std::os::fd::AsFd;

use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, Result};
pub(crate) use crate::mq::PosixQueue;
use crate::sys;

/// Implements `Open` and `Transfer` for a queue type whose inherent
/// methods are the contract's: `open(ep, opts)`, `send_wait`,
/// `recv_into_got`, `recv_got`, `object` and `take_warnings` (endpoint
/// attributes an existing queue ignored). Senders and receivers open
/// the same queue; `$remove` removes it, `$poll_fd` is its descriptor.
macro_rules! queue_transport {
    ($queue:ty, remove: $remove:expr, poll_fd: $poll_fd:expr) => {
        impl $crate::channel::Open for $queue {
            type End = $queue;

            fn connect(
                ep: &$crate::Endpoint,
                opts: &$crate::Options,
                _wait: $crate::wait::Wait,
            ) -> $crate::Result<$queue> {
                <$queue>::open(ep, opts)
            }

            fn bind(ep: &$crate::Endpoint, opts: &$crate::Options) -> $crate::Result<$queue> {
                <$queue>::open(ep, opts)
            }

            fn remove(ep: &$crate::Endpoint) -> $crate::Result<()> {
                $remove(ep)
            }
        }

        impl $crate::channel::Transfer for $queue {
            fn send(
                &mut self,
                parts: &[std::io::IoSlice<'_>],
                meta: &$crate::SendMeta<'_>,
                wait: $crate::wait::Wait,
            ) -> $crate::Result<()> {
                self.send_wait(parts, meta, wait)
            }

            fn recv_into(
                &mut self,
                buf: &mut [u8],
                wait: $crate::wait::Wait,
            ) -> $crate::Result<$crate::wait::Got<(usize, $crate::Meta)>> {
                self.recv_into_got(buf, wait)
            }

            fn recv(&mut self, wait: $crate::wait::Wait) -> $crate::Result<$crate::wait::Got<$crate::Message>> {
                self.recv_got(wait)
            }

            fn name(&self) -> &str {
                self.object()
            }

            fn poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
                $poll_fd(self)
            }

            fn take_warnings(&mut self) -> Vec<String> {
                <$queue>::take_warnings(self)
            }
        }
    };
}

pub(crate) use queue_transport;

fn remove(ep: &Endpoint) -> Result<()> {
    let EndpointKind::Mq(name) = ep.kind() else { unreachable!("the transport table routes only mq: endpoints here") };
    sys::mq::mq_unlink(name).map_err(|e| Error::os("rm", ep, e).with_detail("mq_unlink"))
}

fn poll_fd(q: &PosixQueue) -> Option<std::os::fd::BorrowedFd<'_>> {
    Some(q.as_fd())
}

queue_transport!(PosixQueue, remove: remove, poll_fd: poll_fd);
