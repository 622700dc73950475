//! `shm:NAME`: ipckit's shared-memory channel. No system call on the data
//! path: a small message is a few cache-line transfers.
//!
//! One ring per sender, created by the receiver and handed over at connect
//! as a sealed memfd named `ipckit-shm:NAME` (`/proc/PID/maps` says what it
//! is); the receiver serves the rings in turn, and each keeps its sender's
//! order. A sender that dies in the middle of a message never published
//! it: the others are not affected at all. See `control` for how senders
//! join, wake the receiver and learn of its end; `ring` for the protocol.
//!
//! | endpoint option | side | meaning | default |
//! | --- | --- | --- | --- |
//! | `size=BYTES` | receiver | each ring's size, a power of two from 4 KiB to 1 GiB; the largest message is `size - 8` bytes | 1 MiB |
//! | `senders=N` | receiver | the most senders at once; one more is refused (`Busy`) | 16 |
//! | `wait=block` / `wait=busy` | either | spin, then park / never park | `block` |
//! | `spin=DURATION` | either | the spin window before parking; `0` parks at once | 50 µs |
//! | `mode=OCTAL` | either | whom to talk to: group bits admit the group, other bits anyone | `0600` (this user) |
//! | `pool=BYTES` | sender | its payload pool, a multiple of 64 KiB up to 16 GiB; `0`: none (every message inline) | 64 MiB |
//! | `inline=BYTES` / `inline=auto` | sender | messages up to this size are copied through the ring, larger ones placed in the pool | `auto` (see [`threshold`](crate::threshold)) |
//!
//! A sender's `size=` is the size it expects: a different one gets a
//! warning, and the receiver's holds.
//!
//! 1. `control`: the control connection: joining, waking, departures.
//! 2. `ring`: the lock-free protocol, one producer and one consumer per
//!    ring, with the parked announcements that let either side sleep.
//! 3. `layout`: one ring's memory, a sealed memfd, as a table; the copies
//!    in and out of memory a peer may write.
//! 4. `memory`: that memory mapped, as the protocol's `RingMemory`.
//! 5. `pool`: a sender's payload pool, lent chunk by chunk, mapped
//!    read-only by the receiver; `sample`: loans and samples, the public
//!    face of it.
//! 6. `sender`, `receiver`: the two ends, as transports.
//! 7. `loom_tests`: the protocol model-checked.
//! 8. `fuzzing`: the protocol over ordinary memory, for the fuzz target
//!    (`ipckit::fuzzing`, hidden: not a stable API).

pub(crate) mod control;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod hellos;
pub(crate) mod layout;
pub(crate) mod memory;
pub(crate) mod pool;
mod receiver;
pub(crate) mod ring;
pub(crate) mod sample;
mod sender;

#[cfg(all(test, ipckit_loom))]
mod loom_tests;

use std::io::IoSlice;
use std::os::fd::BorrowedFd;
use std::time::Duration;

pub(crate) use receiver::ShmReceiver;
pub(crate) use sender::ShmSender;

use super::{Open, Transfer};
use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Message, Meta, SendMeta};
use crate::options::{Options, WaitMode};
use crate::wait::{Got, Wait};

/// The most senders by default.
pub(crate) const DEFAULT_SENDERS: usize = 16;

/// A channel's settings, from the endpoint and the options.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// `NAME`.
    pub(crate) channel: String,
    /// `unix-seqpacket:@ipckit/shm/NAME`.
    pub(crate) control: Endpoint,
    /// `?size=` as given.
    pub(crate) requested_size: Option<usize>,
    /// The ring size a receiver creates.
    pub(crate) capacity: usize,
    pub(crate) senders: usize,
    pub(crate) wait: WaitMode,
    pub(crate) spin: Duration,
    pub(crate) mode: u32,
    /// A sender's pool size (0: none).
    pub(crate) pool: usize,
    /// A sender's `?inline=` in bytes; `None`: `auto`.
    pub(crate) inline: Option<usize>,
    /// This process's effective uid and gid.
    pub(crate) me: (u32, u32),
    pub(crate) max_message: usize,
}

impl Config {
    fn new(ep: &Endpoint, opts: &Options, op: &'static str) -> Result<Config> {
        let EndpointKind::Shm(name) = ep.kind() else {
            unreachable!("the transport table routes only shm: endpoints here")
        };
        if opts.create || opts.exclusive {
            return Err(Error::new(
                ErrorKind::Invalid,
                op,
                ep,
                "create has no meaning on shm: (the receiver always creates the channel, and nothing outlives it)",
            ));
        }
        let channel = name.strip_prefix('/').unwrap_or(name).to_string();
        let control: Endpoint = format!("unix-seqpacket:@{}{channel}", control::PREFIX).parse()?;
        let requested_size = ep.size_option("size")?.map(|size| usize::try_from(size).unwrap_or(usize::MAX));
        let capacity = requested_size.unwrap_or(layout::DEFAULT_CAPACITY);
        memory::check_capacity(capacity).map_err(|why| Error::new(ErrorKind::Invalid, op, ep, why))?;
        let senders = match ep.number_option("senders")? {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => DEFAULT_SENDERS,
        };
        let pool = match ep.size_option("pool")? {
            Some(size) => usize::try_from(size).unwrap_or(usize::MAX),
            None => pool::DEFAULT_POOL,
        };
        pool::check_size(pool).map_err(|why| Error::new(ErrorKind::Invalid, op, ep, why))?;
        let inline = match ep.option("inline") {
            None | Some("auto") => None,
            Some(_) => ep.size_option("inline")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        Ok(Config {
            channel,
            pool,
            inline,
            control,
            requested_size,
            capacity,
            senders,
            wait: ep.wait_option()?.unwrap_or(opts.wait),
            spin: ep.duration_option("spin")?.unwrap_or(opts.spin),
            mode: ep.mode()?.unwrap_or(0o600),
            me: (crate::sys::process::geteuid(), crate::sys::process::getegid()),
            max_message: opts.max_message,
        })
    }

    /// Options for the control connection: small packets only.
    pub(crate) fn control_opts(&self) -> Options {
        Options::new().max_message(control::PACKET_MAX)
    }
}

/// An open `shm:` endpoint.
#[derive(Debug)]
pub(crate) enum Shm {
    Sender(Box<ShmSender>),
    Receiver(Box<ShmReceiver>),
}

impl Open for Shm {
    type End = Shm;

    fn connect(ep: &Endpoint, opts: &Options, wait: Wait) -> Result<Shm> {
        let cfg = Config::new(ep, opts, "connect")?;
        Ok(Shm::Sender(Box::new(ShmSender::connect(ep, &cfg, wait)?)))
    }

    fn bind(ep: &Endpoint, opts: &Options) -> Result<Shm> {
        let cfg = Config::new(ep, opts, "bind")?;
        Ok(Shm::Receiver(Box::new(ShmReceiver::bind(ep, cfg)?)))
    }

    fn remove(ep: &Endpoint) -> Result<()> {
        Err(Error::new(
            ErrorKind::Invalid,
            "rm",
            ep,
            "a shm: channel has no name to remove: it goes with its receiver and senders",
        ))
    }
}

impl Transfer for Shm {
    #[inline]
    fn send(&mut self, parts: &[IoSlice<'_>], meta: &SendMeta<'_>, wait: Wait) -> Result<()> {
        match self {
            Shm::Sender(s) => s.send(parts, meta, wait),
            Shm::Receiver(r) => r.send(parts, meta, wait),
        }
    }

    #[inline]
    fn recv_into(&mut self, buf: &mut [u8], wait: Wait) -> Result<Got<(usize, Meta)>> {
        match self {
            Shm::Sender(s) => s.recv_into(buf, wait),
            Shm::Receiver(r) => r.recv_into(buf, wait),
        }
    }

    #[inline]
    fn recv(&mut self, wait: Wait) -> Result<Got<Message>> {
        match self {
            Shm::Sender(s) => s.recv(wait),
            Shm::Receiver(r) => r.recv(wait),
        }
    }

    fn recv_sample(&mut self, wait: Wait) -> Result<Got<super::Sample>> {
        match self {
            Shm::Sender(s) => s.recv_sample(wait),
            Shm::Receiver(r) => r.recv_sample(wait),
        }
    }

    fn name(&self) -> &str {
        match self {
            Shm::Sender(s) => s.name(),
            Shm::Receiver(r) => r.name(),
        }
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Shm::Sender(s) => s.poll_fd(),
            Shm::Receiver(r) => r.poll_fd(),
        }
    }

    fn connections(&self) -> usize {
        match self {
            Shm::Sender(_) => 0,
            Shm::Receiver(r) => r.connections(),
        }
    }

    fn has_buffered_message(&self) -> bool {
        match self {
            Shm::Sender(_) => false,
            Shm::Receiver(r) => r.has_buffered_message(),
        }
    }

    fn take_warnings(&mut self) -> Vec<String> {
        match self {
            Shm::Sender(s) => s.take_warnings(),
            Shm::Receiver(r) => r.take_warnings(),
        }
    }
}
