//! `tcp:HOST:PORT`: the same connection-or-server [`Socket`] as Unix
//! stream sockets, over IPv4 or IPv6. A port is not a named object, so
//! there is nothing to remove.

pub(crate) use super::unix::Socket;
use super::unix::SocketFamily;
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};

/// Opens `tcp:` endpoints.
#[derive(Debug)]
pub(crate) struct Tcp;

impl SocketFamily for Tcp {
    fn remove_name(ep: &Endpoint) -> Result<()> {
        Err(Error::new(ErrorKind::Invalid, "rm", ep, "a TCP port is not a named object"))
    }
}
