//! How long a blocking operation may wait: the one type behind the
//! blocking, `try_` and `_timeout` forms of every call.

use std::time::{Duration, Instant};

/// A wait policy, resolved once at the start of an operation so that
/// retries after `EINTR` recompute what is left of the same deadline.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Do not wait at all (`try_` forms).
    Never,
    /// Wait until this instant of the monotonic clock (`_timeout` forms).
    Until(Instant),
    /// Wait as long as it takes (blocking forms).
    Forever,
}

impl Wait {
    /// The deadline that is `timeout` from now.
    pub(crate) fn timeout(timeout: Duration) -> Wait {
        match Instant::now().checked_add(timeout) {
            Some(t) => Wait::Until(t),
            None => Wait::Forever,
        }
    }

    /// The time left: `None` means no limit; `Some(ZERO)` means expired or
    /// non-blocking.
    pub(crate) fn remaining(self) -> Option<Duration> {
        match self {
            Wait::Never => Some(Duration::ZERO),
            Wait::Until(t) => Some(t.saturating_duration_since(Instant::now())),
            Wait::Forever => None,
        }
    }

    /// True for the blocking form (no deadline at all).
    pub(crate) fn is_forever(self) -> bool {
        matches!(self, Wait::Forever)
    }
}

/// Repeats `attempt` while the peer is not there yet (`NotFound`: no such
/// socket or FIFO; `Disconnected`: nothing listening, no reader), backing off
/// from 1 ms to 50 ms, until the wait runs out. For connecting to a peer
/// that is still starting. Each attempt gets the same wait, for the part of
/// connecting that can block (a TCP handshake).
pub(crate) fn until_peer_ready<T>(
    wait: Wait,
    op: &'static str,
    name: &dyn std::fmt::Display,
    mut attempt: impl FnMut(Wait) -> crate::Result<T>,
) -> crate::Result<T> {
    use crate::error::{Error, ErrorKind};
    let mut pause = Duration::from_millis(1);
    loop {
        match attempt(wait) {
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Disconnected) => {
                let left = wait.remaining();
                if left == Some(Duration::ZERO) {
                    if matches!(wait, Wait::Never) {
                        return Err(e);
                    }
                    return Err(Error::new(
                        ErrorKind::TimedOut,
                        op,
                        name,
                        format!("peer not ready within the timeout ({e})"),
                    ));
                }
                std::thread::sleep(left.map_or(pause, |l| l.min(pause)));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
