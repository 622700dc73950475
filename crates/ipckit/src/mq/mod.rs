//! Message queues: the kernel keeps the messages, and they outlive the
//! processes that sent them.
//!
//! 1. [`posix`]: POSIX queues (`mq:/name`), with priorities; pollable.
//! 2. [`sysv`]: System V queues (`sysv-mq:KEY`), with types; no descriptor.

pub mod posix;
pub mod sysv;

pub use posix::PosixQueue;
pub use sysv::SysvQueue;
