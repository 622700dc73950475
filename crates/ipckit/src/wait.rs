//! How long a blocking operation may wait: the one type behind the
//! blocking, `try_` and `_timeout` forms of every call, what one attempt
//! yields ([`Got`]), how an attempt that did not yield a message becomes
//! the caller's error ([`finish`]), and the macros that generate the three
//! public forms from one private method that takes a [`Wait`].

use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

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
/// socket, FIFO or queue; `Disconnected`: nothing listening, no reader),
/// backing off from 1 ms to 50 ms, until the wait runs out. For connecting
/// to a peer that is still starting. Each attempt gets the same wait, for
/// the part of connecting that can block (a TCP handshake).
///
/// A System V key path that does not exist (`ftok`'s `ENOENT`) is a
/// mistake in the endpoint, not a peer that is starting: it fails at once.
pub(crate) fn until_peer_ready<T>(
    wait: Wait,
    op: &'static str,
    name: &dyn std::fmt::Display,
    mut attempt: impl FnMut(Wait) -> Result<T>,
) -> Result<T> {
    let not_there_yet =
        |e: &Error| matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Disconnected) && e.op() != crate::name::FTOK;
    let mut pause = Duration::from_millis(1);
    loop {
        match attempt(wait) {
            Err(e) if not_there_yet(&e) => {
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

/// The result of one receive attempt.
#[derive(Debug)]
pub(crate) enum Got<T> {
    /// A message (length, or the allocated message).
    Msg(T),
    /// The peer closed the connection between messages.
    Eof,
    /// Nothing complete within the wait; partial data is kept.
    NotYet,
}

impl<T> Got<T> {
    /// The message, transformed; `Eof` and `NotYet` as they are.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Got<U> {
        match self {
            Got::Msg(m) => Got::Msg(f(m)),
            Got::Eof => Got::Eof,
            Got::NotYet => Got::NotYet,
        }
    }
}

/// A buffer received into, cut to the message: the allocating `recv`.
pub(crate) fn into_message(mut data: Vec<u8>, (len, meta): (usize, crate::Meta)) -> crate::Message {
    data.truncate(len);
    crate::Message { data, meta }
}

/// Turns `Eof` and `NotYet` into the errors a caller sees: the one step
/// from an attempt to a result.
pub(crate) fn finish<T>(got: Result<Got<T>>, wait: Wait, op: &'static str, name: &str) -> Result<T> {
    match got? {
        Got::Msg(m) => Ok(m),
        Got::Eof => Err(Error::new(ErrorKind::Disconnected, op, name, "peer closed the connection")),
        Got::NotYet => Err(not_yet(wait, op, name)),
    }
}

/// The error for a wait that ran out: `Empty`/`Full` for `try_` forms,
/// `TimedOut` otherwise.
pub(crate) fn not_yet(wait: Wait, op: &'static str, name: &str) -> Error {
    let sending = op.starts_with("send") || op == "loan" || op == "publish";
    match (wait, sending) {
        (Wait::Never, true) => Error::new(ErrorKind::Full, op, name, "no room for the message now"),
        (Wait::Never, false) => Error::new(ErrorKind::Empty, op, name, "no message now"),
        (_, true) => Error::new(ErrorKind::TimedOut, op, name, "no room for the message within the timeout"),
        (_, false) => Error::new(ErrorKind::TimedOut, op, name, "no message within the timeout"),
    }
}

/// Generates the public blocking, `try_` and `_timeout` forms of sending
/// from one private method that takes a [`Wait`]:
/// `send_wait(&mut self, &[IoSlice], &SendMeta, Wait) -> Result<()>`.
macro_rules! send_ops {
    () => {
        /// Sends one message, waiting as long as it takes for room.
        pub fn send(&mut self, msg: &[u8]) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], &$crate::SendMeta::new(), $crate::wait::Wait::Forever)
        }

        /// Sends one message if there is room now; `Full` otherwise (and
        /// nothing is sent).
        pub fn try_send(&mut self, msg: &[u8]) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], &$crate::SendMeta::new(), $crate::wait::Wait::Never)
        }

        /// Sends one message, waiting at most `timeout` for room before the
        /// first byte (`TimedOut`, nothing sent); a started message is
        /// always finished.
        pub fn send_timeout(&mut self, msg: &[u8], timeout: std::time::Duration) -> $crate::Result<()> {
            self.send_wait(
                &[std::io::IoSlice::new(msg)],
                &$crate::SendMeta::new(),
                $crate::wait::Wait::timeout(timeout),
            )
        }

        /// Sends one message gathered from several buffers.
        pub fn send_vectored(&mut self, parts: &[std::io::IoSlice<'_>]) -> $crate::Result<()> {
            self.send_wait(parts, &$crate::SendMeta::new(), $crate::wait::Wait::Forever)
        }

        /// Non-blocking form of [`send_vectored`](Self::send_vectored).
        pub fn try_send_vectored(&mut self, parts: &[std::io::IoSlice<'_>]) -> $crate::Result<()> {
            self.send_wait(parts, &$crate::SendMeta::new(), $crate::wait::Wait::Never)
        }

        /// Timed form of [`send_vectored`](Self::send_vectored).
        pub fn send_vectored_timeout(
            &mut self,
            parts: &[std::io::IoSlice<'_>],
            timeout: std::time::Duration,
        ) -> $crate::Result<()> {
            self.send_wait(parts, &$crate::SendMeta::new(), $crate::wait::Wait::timeout(timeout))
        }

        /// Sends one message with a priority, a type or file descriptors
        /// (see [`SendMeta`]($crate::SendMeta)); a transport that cannot carry
        /// them refuses with `Unsupported`.
        pub fn send_with(&mut self, msg: &[u8], meta: &$crate::SendMeta<'_>) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], meta, $crate::wait::Wait::Forever)
        }

        /// Non-blocking form of [`send_with`](Self::send_with).
        pub fn try_send_with(&mut self, msg: &[u8], meta: &$crate::SendMeta<'_>) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], meta, $crate::wait::Wait::Never)
        }

        /// Timed form of [`send_with`](Self::send_with).
        pub fn send_with_timeout(
            &mut self,
            msg: &[u8],
            meta: &$crate::SendMeta<'_>,
            timeout: std::time::Duration,
        ) -> $crate::Result<()> {
            self.send_wait(&[std::io::IoSlice::new(msg)], meta, $crate::wait::Wait::timeout(timeout))
        }
    };
}

/// Generates the public blocking, `try_` and `_timeout` forms of receiving
/// from two private methods that make one attempt within a [`Wait`] and
/// say what it [`Got`]:
/// `recv_into_got(&mut self, &mut [u8], Wait) -> Result<Got<(usize, Meta)>>`
/// and `recv_got(&mut self, Wait) -> Result<Got<Message>>`, and one that
/// names the object in errors, `object(&self) -> &str`. The step from
/// [`Got`] to the caller's error is [`finish`], here and nowhere else.
macro_rules! recv_ops {
    () => {
        fn recv_into_wait(
            &mut self,
            buf: &mut [u8],
            wait: $crate::wait::Wait,
        ) -> $crate::Result<(usize, $crate::Meta)> {
            let got = self.recv_into_got(buf, wait);
            $crate::wait::finish(got, wait, "recv", self.object())
        }

        fn recv_wait(&mut self, wait: $crate::wait::Wait) -> $crate::Result<$crate::Message> {
            let got = self.recv_got(wait);
            $crate::wait::finish(got, wait, "recv", self.object())
        }

        /// Receives one message into `buf`, waiting as long as it takes.
        /// Returns its length and metadata. A message larger than `buf` is
        /// `TooLarge` and stays queued: call again with a larger buffer.
        pub fn recv_into(&mut self, buf: &mut [u8]) -> $crate::Result<(usize, $crate::Meta)> {
            self.recv_into_wait(buf, $crate::wait::Wait::Forever)
        }

        /// Receives one message if one is there now; `Empty` otherwise.
        pub fn try_recv_into(&mut self, buf: &mut [u8]) -> $crate::Result<(usize, $crate::Meta)> {
            self.recv_into_wait(buf, $crate::wait::Wait::Never)
        }

        /// Receives one message, waiting at most `timeout` (`TimedOut`; a
        /// partly received message is kept for the next call).
        pub fn recv_into_timeout(
            &mut self,
            buf: &mut [u8],
            timeout: std::time::Duration,
        ) -> $crate::Result<(usize, $crate::Meta)> {
            self.recv_into_wait(buf, $crate::wait::Wait::timeout(timeout))
        }

        /// Receives one message into a new buffer of exactly its size
        /// (never more than the configured maximum).
        pub fn recv(&mut self) -> $crate::Result<$crate::Message> {
            self.recv_wait($crate::wait::Wait::Forever)
        }

        /// Non-blocking form of [`recv`](Self::recv).
        pub fn try_recv(&mut self) -> $crate::Result<$crate::Message> {
            self.recv_wait($crate::wait::Wait::Never)
        }

        /// Timed form of [`recv`](Self::recv).
        pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> $crate::Result<$crate::Message> {
            self.recv_wait($crate::wait::Wait::timeout(timeout))
        }
    };
}

/// Both halves: [`send_ops`] and [`recv_ops`].
macro_rules! message_ops {
    () => {
        $crate::wait::send_ops!();
        $crate::wait::recv_ops!();
    };
}

pub(crate) use {message_ops, recv_ops, send_ops};
