//! `sysv-mq:KEY`: a System V queue is the same object for senders and
//! receivers. It has no descriptor to poll: the documented exception.

use super::mq::queue_transport;
pub(crate) use crate::mq::SysvQueue;

/// No descriptor to poll.
fn poll_fd(_: &SysvQueue) -> Option<std::os::fd::BorrowedFd<'_>> {
    None
}

queue_transport!(SysvQueue, remove: SysvQueue::remove, poll_fd: poll_fd);
