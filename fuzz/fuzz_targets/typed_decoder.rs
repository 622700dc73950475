//! Fuzz target: arbitrary bytes from a peer decoded as typed messages
//! (`ipckit::typed::decode` with the default limits) of a few types that
//! stress the decoder. See `fuzz/checks/typed_decoder.rs` for the
//! invariants (shared with the smoke test
//! `crates/ipckit/tests/typed_decoder_smoke.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/typed_decoder.rs"]
mod typed_decoder;

/// Measures the bytes live during each decode (see `typed_decoder::Peak`).
#[global_allocator]
static ALLOC: typed_decoder::Peak = typed_decoder::Peak;

fuzz_target!(|data: &[u8]| {
    typed_decoder::check(data);
});
