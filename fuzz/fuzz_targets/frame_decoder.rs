//! Fuzz target: arbitrary bytes from a peer, with an arbitrary maximum
//! size, read step, buffer size and blocking pattern, through
//! `ipckit::framing::Decoder`. See `ipckit_testkit::decoder`
//! (`crates/ipckit-testkit/src/decoder.rs`) for the invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ipckit_testkit::decoder::check(data);
});
