//! Removing named objects, whatever their kind.

use crate::endpoint::Endpoint;
use crate::error::Result;

/// Removes the named object an endpoint refers to: a FIFO, a Unix socket
/// file, a POSIX queue (`mq_unlink`) or a System V queue (`IPC_RMID`).
/// Checks the kind of file first, so that `fifo:/etc/passwd` removes
/// nothing. Objects without a name (abstract sockets, TCP ports) are
/// `Invalid`.
pub fn remove(ep: &Endpoint) -> Result<()> {
    crate::channel::remove(ep)
}
