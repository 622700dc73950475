//! The invariants of the `rpc_envelope` fuzz target in a normal (stable)
//! `cargo test`: every length around the headers with every status byte
//! that matters, then proptest's arbitrary bytes. The checking code is the
//! fuzz target's own (`fuzz/checks/rpc_envelope.rs`, included by path), so
//! this also proves that the target compiles against the library.

#[path = "../../../fuzz/checks/rpc_envelope.rs"]
mod rpc_envelope;

use proptest::prelude::*;

#[test]
fn every_length_and_status_around_the_headers() {
    let (mut request, mut addressed, mut reply) = ([0u32; 2], [0u32; 2], [0u32; 2]);
    for len in 0..40usize {
        for status in [0u8, 1, 2, 0x80, 0xff] {
            let mut data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0x5c).collect();
            if let Some(s) = data.get_mut(8) {
                *s = status;
            }
            let got = rpc_envelope::check(&data);
            request[got.request as usize] += 1;
            addressed[got.addressed as usize] += 1;
            reply[got.reply as usize] += 1;
        }
    }
    // Both outcomes of each form were checked.
    for (form, [refused, accepted]) in [("request", request), ("addressed", addressed), ("reply", reply)] {
        assert!(refused > 0 && accepted > 0, "{form}: {refused} refused, {accepted} accepted");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_bytes_keep_the_envelope_invariants(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        rpc_envelope::check(&data);
    }
}
