//! The invariants of the `shm_ring` fuzz target, on deterministic
//! pseudo-random inputs, in a normal (stable) `cargo test`: the `shm:`
//! ring's consumer against a hostile producer and its producer against a
//! hostile consumer. The checking code is the fuzz target's own
//! (`ipckit_testkit::ring`), so this also proves that the target compiles
//! against the library.
//!
//! A failure prints the seed and the input in hex; replay it with the fuzz
//! target (`xxd -r -p HEX > crash; cargo +nightly fuzz run shm_ring crash`)
//! or with `ring::check` here.

use ipckit_testkit::data::Rng;
use ipckit_testkit::ring::{self, Stats};

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks one input, printing it if a check fails.
fn check(data: &[u8], what: &str) -> Stats {
    match std::panic::catch_unwind(|| ring::check(data)) {
        Ok(stats) => stats,
        Err(e) => {
            eprintln!("{what}: input ({} bytes): {}", data.len(), hex(data));
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn ring_invariants_on_pseudo_random_scripts() {
    let seed = std::env::var("IPCKIT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5b3_2024u64);
    let mut rng = Rng(seed);
    let (mut consumer, mut producer) = (Stats::default(), Stats::default());
    for case in 0..4000 {
        let data = ring::generate(&mut rng);
        let stats = check(&data, &format!("seed {seed}, case {case}"));
        if data[0] & 0x10 == 0 { consumer.add(stats) } else { producer.add(stats) }
    }
    eprintln!("consumer: {consumer:?}\nproducer: {producer:?}");
    // The inputs reach every path: a smoke test that only ever saw an
    // empty ring would pass whatever the protocol did.
    for (side, s) in [("consumer", consumer), ("producer", producer)] {
        assert!(s.records > 1000, "{side}: only {} records in all runs", s.records);
        assert!(s.corrupt > 50, "{side}: only {} runs met a Corrupt", s.corrupt);
        assert!(s.honest > 500, "{side}: only {} runs had an honest peer", s.honest);
        assert!(s.fired > 100, "{side}: only {} peer steps in the middle of a call", s.fired);
        assert!(s.wakes > 100, "{side}: only {} wake-ups", s.wakes);
        assert!(s.sleeps > 100, "{side}: only {} sleeps", s.sleeps);
    }
    assert!(consumer.unknown_tag > 10, "only {} records with an unknown tag", consumer.unknown_tag);
    assert!(consumer.too_large > 100, "only {} messages over the buffer or maximum", consumer.too_large);
    assert!(producer.full > 100, "only {} full rings", producer.full);
}

/// A consumer-side input: capacity `16 << exp`, then the script.
fn consumer(exp: u8, script: &[&[u8]]) -> Vec<u8> {
    [&[exp][..], &script.concat()].concat()
}

/// A producer-side input.
fn producer(exp: u8, script: &[&[u8]]) -> Vec<u8> {
    [&[exp | 0x10][..], &script.concat()].concat()
}

/// Op 2 (the peer stores a raw `tail` word).
fn tail(word: u64) -> Vec<u8> {
    [&[2u8, 0][..], &word.to_le_bytes()].concat()
}

/// Op 7 (the peer stores a raw `head` word).
fn head(word: u64) -> Vec<u8> {
    [&[7u8, 0][..], &word.to_le_bytes()].concat()
}

/// Op 4: the peer writes a header of `len` at the consumer's index.
fn header_at_consumer(len: u32) -> Vec<u8> {
    [&[4u8, 0, 0][..], &len.to_le_bytes(), &[0]].concat()
}

const PEEK: &[u8] = &[6];
const DRAIN: &[u8] = &[13];
const PARK: &[u8] = &[11];
/// Op 0: a push of 8 bytes, of 0 bytes.
const PUSH8: &[u8] = &[0, 8, 0, 0];
const PUSH0: &[u8] = &[0, 0, 0, 0];

/// What an edge case's statistics must say.
type Expect = fn(&Stats) -> bool;

/// Inputs that take each check to its edge, with the outcome the protocol
/// promises (the checks hold on each; the statistics say which way it
/// went).
#[test]
fn ring_invariants_on_edge_cases() {
    let near_top = (1u64 << 63) - 8;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty input", vec![], |s| *s == Stats::default()),
        ("no script", consumer(0, &[]), |s| s.records == 0 && s.corrupt == 0),
        // A 16-byte ring: its largest message (8 bytes) fills it.
        ("the largest message", consumer(0, &[&[0, 8, 0], DRAIN]), |s| s.records == 1 && s.honest == 1),
        // The peer's index near 2^63, past u64::MAX, and a PARKED-only
        // word: Corrupt, never an overflow.
        ("tail near 2^63", consumer(8, &[&tail(near_top), PEEK]), |s| s.corrupt == 1),
        ("tail at INDEX", consumer(8, &[&tail((1 << 63) - 1), PEEK]), |s| s.corrupt == 1),
        ("tail u64::MAX", consumer(8, &[&tail(u64::MAX), PEEK]), |s| s.corrupt == 1),
        ("tail only PARKED is empty", consumer(8, &[&tail(1 << 63), PEEK, PARK]), |s| s.corrupt == 0 && s.sleeps == 1),
        ("tail not 8-aligned", consumer(8, &[&tail(12), PEEK]), |s| s.corrupt == 1),
        ("tail over the capacity", consumer(0, &[&tail(24), PEEK]), |s| s.corrupt == 1),
        // A header announcing more than is published, or than the ring.
        ("header u32::MAX", consumer(8, &[&tail(64), &header_at_consumer(u32::MAX), PEEK]), |s| s.corrupt == 1),
        ("header past tail", consumer(8, &[&tail(64), &header_at_consumer(57), PEEK]), |s| s.corrupt == 1),
        ("header exactly tail", consumer(8, &[&tail(64), &header_at_consumer(56), DRAIN]), |s| s.records == 1),
        // 4096-byte ring: a header of 4089 in a full ring.
        ("header over the maximum", consumer(8, &[&tail(4096), &header_at_consumer(4089), PEEK]), |s| s.corrupt == 1),
        // tail going back after a message was received.
        ("tail backwards", consumer(8, &[&[0, 8, 0], DRAIN, &tail(8), PEEK]), |s| s.corrupt == 1 && s.records == 1),
        // Found by the fuzzer (a checker bug): 12 messages into a 512-byte
        // ring (9 fit), then a hostile header armed for the 4th access,
        // which comes only in the final drain.
        ("armed step in the final drain", vec![78, 47, 44, 48, 78, 47, 36, 55], |s| s.fired == 1 && s.records == 9),
        // Park, then the peer publishes: the consumer does not sleep.
        ("park after a publication", consumer(8, &[&[0, 1, 0], PARK, DRAIN]), |s| s.sleeps == 0 && s.records == 1),
        // The producer's side, after a push of 8 bytes (so that room for
        // a ring's worth makes it read head): the consumer's index ahead
        // of tail, near 2^63, u64::MAX, backwards, misaligned.
        ("head ahead", producer(0, &[PUSH8, &head(24), &[2, 16, 0]]), |s| s.corrupt == 1 && s.records == 1),
        ("head near 2^63", producer(8, &[PUSH8, &head(near_top), &[2, 0, 16]]), |s| s.corrupt == 1),
        ("head u64::MAX", producer(8, &[PUSH8, &head(u64::MAX), &[3, 0, 16]]), |s| s.corrupt == 1),
        // A 16-byte ring: full after 8 bytes; consumed; 0 bytes; then head
        // goes back to 0.
        ("head backwards", producer(0, &[PUSH8, &[5], PUSH0, &head(0), PUSH8]), |s| s.corrupt == 1 && s.records == 2),
        ("head misaligned", producer(8, &[PUSH8, &head(4), &[2, 0, 16]]), |s| s.corrupt == 1),
        // A full 16-byte ring: Full, then park sleeps; an honest consumer
        // makes room.
        ("full ring", producer(0, &[PUSH8, PUSH0, &[3, 16, 0], &[5], PUSH0]), |s| {
            s.full == 1 && s.sleeps == 1 && s.records == 2 && s.honest == 1
        }),
    ];
    for (what, data, expect) in cases {
        let stats = check(&data, what);
        assert!(expect(&stats), "{what}: unexpected outcome {stats:?} (input {})", hex(&data));
    }
}
