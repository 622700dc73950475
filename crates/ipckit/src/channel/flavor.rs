//! The table of transports: which type opens which endpoints, and the one
//! enum that [`Sender`](super::Sender) and [`Receiver`](super::Receiver)
//! dispatch over. Adding a transport is one row here (see the module docs
//! of `channel`).

use std::io::IoSlice;
use std::os::fd::BorrowedFd;

use super::{Open, Transfer, dgram, fifo, mq, pipe, shm, sysv_mq, tcp, unix};
use crate::endpoint::{Endpoint, EndpointKind, UnixType};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::options::Options;
use crate::wait::{Got, Wait};

/// Generates `Flavor` (one variant per row) and its dispatch: opening by
/// endpoint kind, and every [`Transfer`] method as a `match` (static
/// calls, no vtable: the shared-memory channel's data path is a few
/// nanoseconds).
macro_rules! transports {
    (
        unnamed { $($uv:ident($ut:ty),)* }
        named { $($v:ident($t:ty) = $open:ty : $pat:pat,)* }
    ) => {
        /// An open endpoint of any transport.
        #[derive(Debug)]
        pub(crate) enum Flavor {
            $($uv($ut),)*
            $($v($t),)*
        }

        impl Flavor {
            /// Connects a sender to `ep`.
            pub(crate) fn connect(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Flavor> {
                match ep.kind() {
                    $($pat => <$open as Open>::connect(ep, opts, wait).map(Flavor::$v),)*
                    #[allow(unreachable_patterns)]
                    _ => Err(unsupported("connect", ep)),
                }
            }

            /// Binds a receiver to `ep`.
            pub(crate) fn bind(ep: &Endpoint, opts: &Options) -> Result<Flavor> {
                match ep.kind() {
                    $($pat => <$open as Open>::bind(ep, opts).map(Flavor::$v),)*
                    #[allow(unreachable_patterns)]
                    _ => Err(unsupported("bind", ep)),
                }
            }

            /// Removes the object `ep` names.
            pub(crate) fn remove(ep: &Endpoint) -> Result<()> {
                match ep.kind() {
                    $($pat => <$open as Open>::remove(ep),)*
                    #[allow(unreachable_patterns)]
                    _ => Err(unsupported("rm", ep)),
                }
            }

            #[inline]
            pub(crate) fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
                match self {
                    $(Flavor::$uv(t) => Transfer::send(t, parts, meta, wait),)*
                    $(Flavor::$v(t) => Transfer::send(t, parts, meta, wait),)*
                }
            }

            #[inline]
            pub(crate) fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
                match self {
                    $(Flavor::$uv(t) => Transfer::recv_into(t, buf, wait),)*
                    $(Flavor::$v(t) => Transfer::recv_into(t, buf, wait),)*
                }
            }

            #[inline]
            pub(crate) fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
                match self {
                    $(Flavor::$uv(t) => Transfer::recv(t, wait),)*
                    $(Flavor::$v(t) => Transfer::recv(t, wait),)*
                }
            }

            pub(crate) fn name(&self) -> &str {
                match self {
                    $(Flavor::$uv(t) => Transfer::name(t),)*
                    $(Flavor::$v(t) => Transfer::name(t),)*
                }
            }

            pub(crate) fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
                match self {
                    $(Flavor::$uv(t) => Transfer::poll_fd(t),)*
                    $(Flavor::$v(t) => Transfer::poll_fd(t),)*
                }
            }

            pub(crate) fn has_buffered_message(&self) -> bool {
                match self {
                    $(Flavor::$uv(t) => Transfer::has_buffered_message(t),)*
                    $(Flavor::$v(t) => Transfer::has_buffered_message(t),)*
                }
            }

            pub(crate) fn recv_sample(&mut self, wait: Wait) -> Result<Got<super::Sample>> {
                match self {
                    $(Flavor::$uv(t) => Transfer::recv_sample(t, wait),)*
                    $(Flavor::$v(t) => Transfer::recv_sample(t, wait),)*
                }
            }

            pub(crate) fn send_sealed(&mut self, payload: &[u8], wait: Wait) -> Result<()> {
                match self {
                    $(Flavor::$uv(t) => Transfer::send_sealed(t, payload, wait),)*
                    $(Flavor::$v(t) => Transfer::send_sealed(t, payload, wait),)*
                }
            }

            pub(crate) fn take_warnings(&mut self) -> Vec<String> {
                match self {
                    $(Flavor::$uv(t) => Transfer::take_warnings(t),)*
                    $(Flavor::$v(t) => Transfer::take_warnings(t),)*
                }
            }

            pub(crate) fn connections(&self) -> usize {
                match self {
                    $(Flavor::$uv(t) => Transfer::connections(t),)*
                    $(Flavor::$v(t) => Transfer::connections(t),)*
                }
            }
        }
    };
}

transports! {
    unnamed {
        Pipe(pipe::Pipe),
    }
    named {
        Fifo(fifo::Fifo) = fifo::Fifo: EndpointKind::Fifo(_),
        Unix(unix::Socket) = unix::Unix: EndpointKind::Unix(UnixType::Stream | UnixType::Seqpacket, _),
        Dgram(dgram::Dgram) = dgram::Dgram: EndpointKind::Unix(UnixType::Dgram, _),
        Tcp(tcp::Socket) = tcp::Tcp: EndpointKind::Tcp { .. },
        PosixMq(mq::PosixQueue) = mq::PosixQueue: EndpointKind::Mq(_),
        SysvMq(sysv_mq::SysvQueue) = sysv_mq::SysvQueue: EndpointKind::SysvMq(_),
        Shm(shm::Shm) = shm::Shm: EndpointKind::Shm(_),
    }
}

fn unsupported(op: &'static str, ep: &Endpoint) -> Error {
    Error::new(ErrorKind::Unsupported, op, ep, "this transport is not implemented yet")
}
