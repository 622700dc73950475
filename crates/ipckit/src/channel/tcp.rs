//! `tcp:HOST:PORT`: the same connection-or-server [`Socket`] as Unix
//! stream sockets, over IPv4 or IPv6. A port is not a named object, so
//! there is nothing to remove.

use super::Open;
pub(crate) use super::unix::Socket;
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::wait::Wait;

/// Opens `tcp:` endpoints.
#[derive(Debug)]
pub(crate) struct Tcp;

impl Open for Tcp {
    type End = Socket;

    fn connect(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Socket> {
        Socket::connect(ep, opts, wait)
    }

    fn bind(ep: &Endpoint, opts: &Options) -> Result<Socket> {
        Socket::bind(ep, opts)
    }

    fn remove(ep: &Endpoint) -> Result<()> {
        Err(Error::new(ErrorKind::Invalid, "rm", ep, "a TCP port is not a named object"))
    }
}
