//! Fuzz target: arbitrary bytes from a peer taken apart as a
//! request-response envelope (`ipckit::rpc::envelope`: a request, an
//! addressed request, a reply). See `fuzz/checks/rpc_envelope.rs` for the
//! invariants (shared with the smoke test
//! `crates/ipckit/tests/envelope_smoke.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/rpc_envelope.rs"]
mod rpc_envelope;

fuzz_target!(|data: &[u8]| {
    rpc_envelope::check(data);
});
