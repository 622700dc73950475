//! Fuzz target: the `shm:` ring protocol over arbitrary ring contents. The
//! first byte chooses the capacity and the side under test (the
//! receiver's consumer or a sender's producer); the rest is a script of
//! the side's calls and a hostile peer's writes (indices, headers,
//! payload, parked bits), some in the middle of a call. See
//! `ipckit_testkit::ring` (`crates/ipckit-testkit/src/ring.rs`) for the
//! layout and the invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ipckit_testkit::ring::check(data);
});
