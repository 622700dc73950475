//! Pipes: anonymous pipe pairs and named pipes (FIFOs).
//!
//! 1. `anon`: [`pipe()`] makes a connected [`PipeReader`]/[`PipeWriter`]
//!    pair (close-on-exec), with [`PipeWriter::pass_to`] /
//!    [`PipeReader::pass_to`] to give one end to a spawned child.
//! 2. [`fifo`]: named pipes in the file system: create (mode 0600),
//!    open, remove. Endpoint `fifo:/path`.
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
