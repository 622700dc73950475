//! Pipes: anonymous pipe pairs and named pipes (FIFOs).
//!
//! 1. `anon`: [`pipe()`] makes a connected [`PipeReader`]/[`PipeWriter`]
//!    pair (close-on-exec), with [`PipeWriter::pass_to`] /
//!    [`PipeReader::pass_to`] to give one end to a spawned child.
//! 2. [`fifo`]: named pipes in the file system: create (mode 0600),
//!    open, remove. Endpoint `fifo:/path`.
//!
//! # Several writers or readers on one FIFO
//!
//! The kernel writes at most `PIPE_BUF` (4096) bytes atomically: frames of
//! several writers on one FIFO interleave unless each frame (4-byte header
//! included) is at most 4096 bytes. A FIFO descriptor is used in blocking
//! mode, and the `try_` and `_timeout` forms poll before they read or write;
//! with several readers (or writers) on one FIFO, another process can take
//! the data (or the room) between the poll and the call, which then waits.
//! Give a FIFO one reader, and keep frames small if it has several writers;
//! use a socket for anything more.
//!
//! # SIGPIPE
//!
//! Writing to a pipe whose readers are all gone fails with `EPIPE`, which
//! ipckit reports as `Disconnected`, but the kernel also sends `SIGPIPE`,
//! whose default action kills the process. Rust programs ignore `SIGPIPE`
//! from start-up (the standard library sets it to `SIG_IGN` before `main`),
//! so nothing is needed there. A program that restores the default, or a
//! library host written in C, must ignore `SIGPIPE` itself
//! (`signal(SIGPIPE, SIG_IGN)`) before writing to pipes or FIFOs. Sockets
//! need nothing: ipckit sends with `MSG_NOSIGNAL`.

mod anon;
pub mod fifo;

pub use anon::{PipeReader, PipeWriter, pipe, pipe_with};
