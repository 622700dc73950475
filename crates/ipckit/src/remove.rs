//! Removing named objects, whatever their kind.

use crate::endpoint::{Endpoint, EndpointKind, UnixAddr};
use crate::error::{Error, ErrorKind, Result};
use crate::pipe::fifo;
use crate::sys::{self, Errno};

/// Removes the named object an endpoint refers to: a FIFO, a Unix socket
/// file, a POSIX queue (`mq_unlink`) or a System V queue (`IPC_RMID`). Checks the kind of file first, so that `fifo:/etc/passwd`
/// removes nothing. Objects without a name (abstract sockets, TCP ports)
/// are `Invalid`.
pub fn remove(ep: &Endpoint) -> Result<()> {
    match ep.kind() {
        EndpointKind::Fifo(path) => fifo::remove(path).map_err(|e| relabel(e, ep)),
        EndpointKind::Unix(_, UnixAddr::Path(path)) => match sys::fs::file_type(path) {
            Ok(sys::fs::Kind::Socket) => sys::fs::unlink(path).map_err(|e| Error::os("rm", ep, e)),
            Ok(_) => Err(Error::new(ErrorKind::Invalid, "rm", ep, "not a socket file")),
            Err(e) => Err(Error::os("rm", ep, e)),
        },
        EndpointKind::Unix(_, UnixAddr::Abstract(_)) => Err(Error::new(
            ErrorKind::Invalid,
            "rm",
            ep,
            "an abstract socket name has no file; it disappears with its socket",
        )),
        EndpointKind::Tcp { .. } => Err(Error::new(ErrorKind::Invalid, "rm", ep, "a TCP port is not a named object")),
        EndpointKind::Mq(name) => {
            crate::sys::mq::mq_unlink(name).map_err(|e| Error::os("rm", ep, e).with_detail("mq_unlink"))
        }
        EndpointKind::SysvMq(_) => crate::mq::SysvQueue::remove(ep),
        EndpointKind::Shm(_) => {
            Err(Error::os("rm", ep, Errno::NOSYS).with_detail("this transport is not implemented yet"))
        }
    }
}

fn relabel(e: Error, ep: &Endpoint) -> Error {
    match e.errno() {
        Some(errno) => Error::os("rm", ep, errno),
        None => Error::new(e.kind(), "rm", ep, e.to_string().rsplit(": ").next().unwrap_or("").to_string()),
    }
}
