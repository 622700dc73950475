//! `shm:NAME` as a publish-subscribe topic: one publisher writes each
//! message once into a ring of slots that every subscriber maps read-only
//! and reads in place, each at its own position. No copy per subscriber,
//! no system call on the data path (a wake-up only for a side that sleeps).
//!
//! A topic is its own kind of object: its control socket is
//! `@ipckit/topic/NAME` and its memory the memfd `ipckit-topic:NAME`
//! (object kind 8), so the topic `shm:NAME` and the channel `shm:NAME`
//! coexist. As for a channel, nothing is named on a file system: when
//! every process is gone, the kernel frees everything.
//!
//! | endpoint option | side | meaning | default |
//! | --- | --- | --- | --- |
//! | `overflow=block` / `overflow=drop-oldest` | publisher | a subscriber as far behind as the slots holds the publisher back (`try_publish`: `Full`) / loses the oldest messages, counted in `Meta::lost` | `block` |
//! | `history=N` | publisher | the last N messages are kept for subscribers that come later | 0 |
//! | `history=K` | subscriber | start with up to K of the kept messages; more than N is `Invalid`, naming N | 0 |
//! | `size=BYTES` | publisher | a slot's size, a power of two from 64 B to 16 MiB; the largest message is `size - 16` bytes (larger: `TooLarge`); a subscriber's is ignored | 64 KiB |
//! | `wait=block` / `wait=busy`, `spin=DURATION` | either | spin, then park / never park; the spin window | `block`, 50 µs |
//! | `mode=OCTAL` | either | whom to talk to (group bits: the group, other bits: anyone) | `0600` |
//!
//! The topic holds `max(history, 64)` slots rounded up to a power of two,
//! all of `size` bytes (reserved when the publisher binds): slots are a
//! fixed size so that a subscriber finds message `m` at slot `m % slots`
//! with no index to trust but `head`.
//!
//! 1. `layout`: the topic memfd and the cursor pages, as tables.
//! 2. `protocol`: the lock-free protocol (seqlock slots, positions, the
//!    parked announcements), generic over its memory so that loom checks
//!    it.
//! 3. `memory`: that memory mapped.
//! 4. `control`: the handshake and the liveness of either side.
//! 5. `publisher`, `subscriber`: the two ends.
//! 6. `loom_tests`: the protocol model-checked; `tests`: the reader over
//!    hostile memory, property-tested.

mod control;
mod layout;
mod memory;
mod protocol;
mod publisher;
mod subscriber;

#[cfg(all(test, ipckit_loom))]
mod loom_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub(crate) use publisher::ShmPublisher;
pub(crate) use subscriber::ShmSubscriber;

use crate::endpoint::{Endpoint, EndpointKind};
use crate::error::{Error, ErrorKind, Result};
use crate::options::{Options, WaitMode};

/// A topic's settings, from the endpoint and the options.
#[derive(Clone, Debug)]
struct Config {
    /// `NAME`.
    topic: String,
    /// `unix-seqpacket:@ipckit/topic/NAME`.
    control: Endpoint,
    /// `?size=` (publisher).
    slot_size: usize,
    wait: WaitMode,
    spin: Duration,
    mode: u32,
    /// This process's effective uid and gid.
    me: (u32, u32),
}

impl Config {
    fn new(ep: &Endpoint, opts: &Options, op: &'static str) -> Result<Config> {
        let EndpointKind::Shm(name) = ep.kind() else { unreachable!("pubsub routes only shm: endpoints here") };
        if let Some(key) = ["senders", "pool", "inline"].into_iter().find(|k| ep.option(k).is_some()) {
            return Err(Error::new(
                ErrorKind::Invalid,
                op,
                ep,
                format!("option {key} is a channel's: a topic has none"),
            ));
        }
        let topic = name.strip_prefix('/').unwrap_or(name).to_string();
        let control: Endpoint = format!("unix-seqpacket:@{}{topic}", control::PREFIX).parse()?;
        let slot_size = match ep.size_option("size")? {
            Some(size) => usize::try_from(size).unwrap_or(usize::MAX),
            None => layout::DEFAULT_SLOT,
        };
        Ok(Config {
            topic,
            control,
            slot_size,
            wait: ep.wait_option()?.unwrap_or(opts.wait),
            spin: ep.duration_option("spin")?.unwrap_or(opts.spin),
            mode: ep.mode()?.unwrap_or(0o600),
            me: (crate::sys::process::geteuid(), crate::sys::process::getegid()),
        })
    }

    /// Options for the control connection: small packets only.
    fn control_opts() -> Options {
        Options::new().max_message(control::PACKET_MAX)
    }

    /// The spin window before parking (`None`: never park).
    fn window(&self) -> Option<Duration> {
        match self.wait {
            WaitMode::Busy => None,
            _ => Some(self.spin),
        }
    }
}

/// Spins calling `ready` for at most `window` (never past `wait`'s
/// deadline); `true` when it said so.
fn spin(window: Duration, wait: crate::wait::Wait, mut ready: impl FnMut() -> bool) -> bool {
    if window.is_zero() || matches!(wait, crate::wait::Wait::Never) {
        return false;
    }
    let start = std::time::Instant::now();
    loop {
        for _ in 0..32 {
            std::hint::spin_loop();
            if ready() {
                return true;
            }
        }
        if start.elapsed() >= window || wait.remaining() == Some(Duration::ZERO) {
            return false;
        }
    }
}
