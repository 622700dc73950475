//! `shm:NAME`: ipckit's shared-memory channel. No system call on the data
//! path: a small message is a few cache-line transfers.
//!
//! 1. `ring`: the lock-free protocol, one producer and one consumer per
//!    ring, with the parked announcements that let either side sleep.
//! 2. `layout`: one ring's memory, a sealed memfd, as a table; the copies
//!    in and out of memory a peer may write.
//! 3. `memory`: that memory mapped, as the protocol's `RingMemory`.
//! 4. `loom_tests`: the protocol model-checked.

pub(crate) mod layout;
pub(crate) mod memory;
pub(crate) mod ring;

#[cfg(all(test, ipckit_loom))]
mod loom_tests;
