//! Fuzz target: arbitrary bytes from a peer, with an arbitrary maximum
//! size, read step, buffer size and blocking pattern, through
//! `ipckit::framing::Decoder`. See `src/decoder_check.rs` for the
//! invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/decoder_check.rs"]
mod decoder_check;

fuzz_target!(|data: &[u8]| {
    decoder_check::check(data);
});
