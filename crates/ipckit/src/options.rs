//! Options for opening an endpoint, shared by every transport.

use std::time::Duration;

use crate::framing::{DEFAULT_MAX_MESSAGE, Framing};

/// How to open an endpoint. Options that belong to the object itself
/// (permissions, queue sizes) are written in the endpoint's query instead.
///
/// ```
/// use ipckit::{Framing, Options};
/// let opts = Options::new().create(true).framing(Framing::Lines).max_message(64 * 1024);
/// assert_eq!(opts.max_message_size(), 65536);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) framing: Framing,
    pub(crate) max_message: usize,
    pub(crate) create: bool,
    pub(crate) exclusive: bool,
    pub(crate) unlink_on_drop: bool,
    pub(crate) msg_type: i64,
    pub(crate) noerror: bool,
    pub(crate) max_buffered: usize,
    pub(crate) wait: WaitMode,
    pub(crate) spin: Duration,
    pub(crate) history: u64,
}

/// What a publish-subscribe topic does when a subscriber falls behind by
/// as many messages as the topic holds (`?overflow=` on the publisher's
/// endpoint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// The publisher waits for the slowest subscriber: nothing is lost.
    #[default]
    Block,
    /// The publisher overwrites the oldest messages; a subscriber that
    /// fell behind learns how many it lost ([`Meta::lost`](crate::Meta)).
    DropOldest,
}

/// How a `shm:` channel end waits for a message or for room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitMode {
    /// Spin for the spin window, then park (sleep until the other side
    /// wakes it): the default.
    #[default]
    Block,
    /// Never park: spin until the message or the room comes (a core stays
    /// busy; no system call on the data path at all).
    Busy,
}

/// How long a `shm:` channel end spins before it parks, unless configured
/// (`?spin=`, [`Options::spin`]): 50 µs, somewhat more than a kernel
/// wake-up costs on a small virtual machine (about 35 µs), so that a peer
/// answering within that time is met without one.
pub const DEFAULT_CHANNEL_SPIN: Duration = Duration::from_micros(50);

/// The default bound on the bytes a socket receiver holds for unfinished
/// frames, across all its connections: 64 MiB.
pub const DEFAULT_MAX_BUFFERED: usize = 64 << 20;

impl Default for Options {
    fn default() -> Self {
        Options {
            framing: Framing::Len32,
            max_message: DEFAULT_MAX_MESSAGE,
            create: false,
            exclusive: false,
            unlink_on_drop: false,
            msg_type: 0,
            noerror: false,
            max_buffered: DEFAULT_MAX_BUFFERED,
            wait: WaitMode::Block,
            spin: DEFAULT_CHANNEL_SPIN,
            history: 0,
        }
    }
}

impl Options {
    /// The defaults: `len32` framing, 16 MiB maximum, open only.
    pub fn new() -> Options {
        Options::default()
    }

    /// Framing on byte streams (ignored where the kernel keeps message
    /// boundaries).
    pub fn framing(mut self, framing: Framing) -> Options {
        self.framing = framing;
        self
    }

    /// The largest message this end sends or accepts. A peer's larger
    /// message is rejected as `TooLarge` without allocating its size.
    pub fn max_message(mut self, bytes: usize) -> Options {
        self.max_message = bytes;
        self
    }

    /// Create the named object if it does not exist (FIFO; later: queues,
    /// segments). Sockets are always created by the listening side.
    pub fn create(mut self, yes: bool) -> Options {
        self.create = yes;
        self
    }

    /// With `create`: fail with `AlreadyExists` if the object exists.
    pub fn exclusive(mut self, yes: bool) -> Options {
        self.exclusive = yes;
        self
    }

    /// Remove the named object (socket file, FIFO) when this handle, which
    /// created it, is dropped.
    pub fn unlink_on_drop(mut self, yes: bool) -> Options {
        self.unlink_on_drop = yes;
        self
    }

    /// System V queues: which message a receiver takes. 0 (the default):
    /// the first; `n > 0`: the first of type `n`; `n < 0`: the first of the
    /// lowest type at most `|n|`.
    pub fn msg_type(mut self, rule: i64) -> Options {
        self.msg_type = rule;
        self
    }

    /// System V queues: cut a message that does not fit the receive buffer
    /// (`MSG_NOERROR`) instead of leaving it queued with `TooLarge`. A cut
    /// message is reported in [`Meta::truncated`](crate::Meta::truncated).
    pub fn noerror(mut self, yes: bool) -> Options {
        self.noerror = yes;
        self
    }

    /// Socket receivers: the most bytes held for unfinished frames, across
    /// all connections ([`DEFAULT_MAX_BUFFERED`] by default). Past it, the
    /// connection with the largest unfinished frame is dropped and reported
    /// as a warning.
    pub fn max_buffered(mut self, bytes: usize) -> Options {
        self.max_buffered = bytes;
        self
    }

    /// `shm:` channels: how to wait (`?wait=` on the endpoint wins).
    pub fn wait(mut self, mode: WaitMode) -> Options {
        self.wait = mode;
        self
    }

    /// `shm:` channels: the spin window before parking; zero parks at once
    /// (`?spin=` on the endpoint wins).
    pub fn spin(mut self, window: Duration) -> Options {
        self.spin = window;
        self
    }

    /// A subscriber's request for up to `n` messages the topic kept from
    /// before it subscribed (`Invalid` at subscribe if the topic keeps
    /// fewer; 0, the default: only what is published from now on).
    pub fn history(mut self, n: u64) -> Options {
        self.history = n;
        self
    }

    /// The configured maximum message size.
    pub fn max_message_size(&self) -> usize {
        self.max_message
    }

    /// The configured framing.
    pub fn framing_kind(&self) -> Framing {
        self.framing
    }
}
