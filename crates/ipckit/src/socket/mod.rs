//! Sockets: connection-oriented transports behind one [`Listener`] and one
//! [`Connection`] type.
//!
//! 1. [`unix`]: Unix stream, seqpacket and datagram sockets; file paths or
//!    abstract names; peer credentials; file-descriptor passing.
//! 2. [`tcp`]: TCP over IPv4 and IPv6, the path to other machines.
//! 3. `listener`: [`Listener`], which yields connections.
//! 4. `connection`: [`Connection`], a two-way message channel.
//! 5. `server`: a receiver's server: accepting every sender, serving them
//!    in turn.

mod connection;
mod listener;
pub(crate) mod server;
pub mod tcp;
pub mod unix;

pub use connection::Connection;
pub use listener::Listener;

pub use crate::sys::net::MAX_FDS;
