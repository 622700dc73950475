//! One-direction channels over any endpoint.
//!
//! 1. `sender`: [`Sender`], which connects to an endpoint and sends.
//! 2. `receiver`: [`Receiver`], which owns an endpoint and receives from
//!    every sender that comes (a mailbox).
//!
//! Both dispatch over a private enum of transports, so code written against
//! them works unchanged on every mechanism.

mod receiver;
mod sender;

pub use receiver::Receiver;
pub use sender::Sender;
