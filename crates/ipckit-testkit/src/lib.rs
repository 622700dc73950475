//! Test support for ipckit: the library's integration tests, the `ipckit`
//! command's tests and the fuzz target use it as a normal (development)
//! dependency. Never published.
//!
//! Every test follows three rules:
//! - Every object it creates lives under a scratch directory named
//!   `/tmp/ipckit-t-<pid>-<test>` (or, for names without files, starts with
//!   `ipckit-t-<pid>-<test>`) and is removed by a guard on drop, also when
//!   the test panics. `.ci/run` fails if anything named `ipckit-t-*` is
//!   left.
//! - Children are real processes: the test binary re-run with one test
//!   selected and `IPCKIT_CHILD` set, a C program built at test time, or
//!   the `ipckit` binary.
//! - Every wait has the 30 s [`HANG_GUARD`].
//!
//! The modules:
//! 1. [`scratch`]: names unique to a test, and the guards that remove them.
//! 2. [`child`]: the test binary re-run as a child; children killed when a
//!    test fails.
//! 3. [`program`]: any program run to completion or in the background,
//!    its output collected.
//! 4. [`procfs`]: what `/proc` tells about a process (where it sleeps, its
//!    descriptors), and the system call numbers to look for.
//! 5. [`data`]: deterministic pseudo-random data and checksums.
//! 6. [`c`]: C peers compiled at test time.
//! 7. [`cli`]: the `ipckit` binary under test, and its shared-memory
//!    objects.
//! 8. [`decoder`]: the invariants of `ipckit::framing::Decoder`, for the
//!    fuzz target and its stable smoke test.
//! 9. [`ring`]: the invariants of the `shm:` ring protocol against a
//!    hostile peer, for the `shm_ring` fuzz target and its smoke test.

use std::time::Duration;

pub mod c;
pub mod child;
pub mod cli;
pub mod data;
pub mod decoder;
pub mod procfs;
pub mod program;
pub mod ring;
pub mod scratch;

/// The hang guard for every wait in a test.
pub const HANG_GUARD: Duration = Duration::from_secs(30);
