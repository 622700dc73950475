//! Shared memory between real processes: every segment kind carries data
//! both ways, truncation and seals, the create-or-open race, read-only
//! sharing, the ipckit object header, and the bad-input table (one test per
//! row).
//!
//! Every object is named with the test prefix (`/ipckit-t-...`, System V
//! keys from `ftok` of the scratch directory, files in it) and removed by a
//! guard, also when a test fails.
//!
//! One module per section:
//! 1. [`exchange`]: two processes exchange data through every segment kind.
//! 2. [`truncation`]: a peer truncates an unsealed segment; a sealed memfd
//!    cannot be resized.
//! 3. [`race`]: the create race, exactly one creator per object.
//! 4. [`bad_input`]: the bad-input table, one test per row.
//! 5. [`read_only`]: read-only sharing.
//! 6. [`header`]: the ipckit object header.
//!
//! [`support`] has what several sections use.

mod support;

mod bad_input;
mod exchange;
mod header;
mod race;
mod read_only;
mod truncation;
