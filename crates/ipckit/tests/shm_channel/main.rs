//! `shm:` channels between real processes: the rings, waiting, set-up,
//! liveness and a peer that is not trusted.
//!
//! 1. `basics`: one thread and two processes; the three forms; `poll_fd`
//!    after `Empty` and after `Full`.
//! 2. `bad_input`: the table of bad input, a row each.
//! 3. `hostile`: a process that scribbles over its whole ring while the
//!    receiver serves an honest sender.
//!    And one that spoils the doorbell (eventfd) of its welcome.
//! 4. `death`: senders and receivers SIGKILLed at random points.
//! 5. `stress`: a million messages of log-uniform sizes, 1 → 1 and 4 → 1.
//! 7. `pool`: loans, samples in place, copy or map by size, the pool's
//!    bad input, receivers killed holding chunks; and `exchange`: 10,000
//!    messages from 1 B to 4 MiB crossing the threshold, 1 → 1 and 4 → 1.
//! 6. `liveness`: a receiver's end seen at the next send (also `try_send`),
//!    departures seen by a busy receiver, fairness, buffered messages.
//!
//! Channel names carry the test prefix (`shm:ipckit-t-…`), so that
//! `.ci/run`'s sweep would see a control socket left behind.

mod bad_input;
mod basics;
mod death;
mod exchange;
mod hostile;
mod liveness;
mod pool;
mod pool_edges;
mod stress;
mod support;
