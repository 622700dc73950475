//! The invariants of the `typed_decoder` fuzz target in a normal (stable)
//! `cargo test`: hostile inputs made by hand (lengths of 2^60, nesting
//! past the limit, truncations of honest values), then proptest's
//! arbitrary bytes and arbitrary mutations of honest encodings. The
//! checking code is the fuzz target's own (`fuzz/checks/typed_decoder.rs`,
//! included by path), so this also proves that the target compiles
//! against the library.
//!
//! One test in this binary: the counting allocator sees every thread.

#[path = "../../../fuzz/checks/typed_decoder.rs"]
mod typed_decoder;

use std::collections::BTreeMap;

use ipckit::typed::encode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use typed_decoder::{Outcome, Peak, Record, Tree, check};

#[global_allocator]
static ALLOC: Peak = Peak;

/// A postcard varint.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn record(seed: u8) -> Record {
    Record {
        id: u64::from(seed) << 40,
        delta: -i32::from(seed),
        flag: seed % 2 == 0,
        ch: char::from(b'a' + seed % 26),
        ratio: f64::from(seed) / 3.0,
        name: "r".repeat(usize::from(seed % 9)),
        bytes: vec![seed; usize::from(seed % 13)],
        tags: (0..seed % 4).map(|i| (format!("k{i}"), u16::from(i))).collect(),
        pairs: (0..seed % 3).map(|i| (i, -i64::from(i))).collect(),
        tree: (seed % 3 != 0)
            .then(|| Tree::Node(vec![Tree::Leaf(seed.into()), Tree::Named { name: "n".into(), child: None }])),
        unit: (),
    }
}

/// Honest encodings of each type.
fn honest() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for seed in 0..12u8 {
        all.push(encode(&record(seed), "t").unwrap());
        all.push(encode(&vec![(); usize::from(seed) * 100], "t").unwrap());
        all.push(encode(&(0..seed).map(|i| "s".repeat(usize::from(i))).collect::<Vec<_>>(), "t").unwrap());
        let map: BTreeMap<u16, Vec<()>> = (0..u16::from(seed)).map(|k| (k, vec![(); usize::from(k)])).collect();
        all.push(encode(&map, "t").unwrap());
    }
    let mut tree = Tree::Leaf(1);
    for depth in 0..100 {
        tree = if depth % 2 == 0 {
            Tree::Node(vec![tree, Tree::Leaf(depth)])
        } else {
            Tree::Pair(Box::new(tree), Box::new(Tree::Leaf(2)))
        };
        all.push(encode(&tree, "t").unwrap());
    }
    all
}

/// Hand-made hostile inputs.
fn hostile() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for n in [1u64 << 60, u64::MAX, 1 << 32, 4097, 100_000] {
        all.push(varint(n)); // a Vec<()> or map announcing n
        all.push([varint(n), vec![0; 64]].concat());
        all.push([vec![1], varint(n), vec![1, 0]].concat()); // Tree::Node of n
    }
    // Tree nested past the limit: Node([Node([...])]) and Pair chains.
    all.push([1, 1].repeat(500));
    all.push([2].repeat(1000));
    all.push([3, 0, 1].repeat(300));
    // Nested nodes each announcing a huge length (capacity hints).
    let mut deep = Vec::new();
    for _ in 0..200 {
        deep.push(1);
        deep.extend(varint(1 << 40));
    }
    all.push(deep);
    // Strings announcing more than there is, invalid UTF-8, bad chars.
    all.push([vec![2], varint(1 << 50), b"ab".to_vec()].concat());
    all.push(vec![1, 2, 0xff, 0xfe]);
    // Found by the fuzzer: a map whose non-canonical key (`ff 00`) makes
    // the input a byte longer than its re-encoding, with 4098 zero-sized
    // elements, at the edge of the element budget of the longer form.
    all.push(vec![0x02, 0xff, 0x00, 0x00, 0x00, 0x82, 0x20]);
    all
}

#[test]
fn decoding_any_bytes_keeps_the_invariants() {
    // Decoded / refused per type, canonical re-encodings, most bytes live.
    let stats = std::cell::RefCell::new(([[0u32; 2]; 5], 0u32, 0usize));
    let note = |o: Outcome| {
        let mut st = stats.borrow_mut();
        for (slot, ok) in o.decoded.iter().enumerate() {
            st.0[slot][*ok as usize] += 1;
        }
        st.1 += o.canonical;
        st.2 = st.2.max(o.most_live);
    };
    for input in honest() {
        note(check(&input));
        // Every truncation of it, and every one byte changed.
        for cut in 0..input.len() {
            note(check(&input[..cut]));
        }
        for at in (0..input.len()).step_by(3) {
            let mut bad = input.clone();
            bad[at] ^= 0x81;
            note(check(&bad));
        }
    }
    for input in hostile() {
        note(check(&input));
    }
    let mut runner = TestRunner::new(Config { cases: 3000, ..Config::default() });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..300), |data| {
            note(check(&data));
            Ok(())
        })
        .unwrap();
    let mut runner = TestRunner::new(Config { cases: 2000, ..Config::default() });
    let honest = honest();
    runner
        .run(&(0..honest.len(), proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)), |(i, edits)| {
            let mut data = honest[i].clone();
            for (at, b) in edits {
                if !data.is_empty() {
                    let at = at % data.len();
                    data[at] = b;
                }
            }
            note(check(&data));
            Ok(())
        })
        .unwrap();
    let (seen, canonical, most_live) = stats.into_inner();
    eprintln!(
        "decoded / refused per type: {seen:?}; canonical re-encodings: {}; most bytes live in one decode: {}",
        canonical, most_live
    );
    // The inputs reach both outcomes of every type, and the allocator is
    // the one measuring.
    for (slot, [refused, decoded]) in seen.iter().enumerate() {
        assert!(*refused > 50 && *decoded > 50, "type {slot}: {decoded} decoded, {refused} refused");
    }
    assert!(canonical > 300, "only {canonical} canonical re-encodings");
    assert!(Peak::calls() > 0 && most_live > 0, "the counting allocator is not installed");
}
