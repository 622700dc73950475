//! What copying through the descriptor costs: `Region::read_at` and
//! `write_at` on a POSIX object (which another process can truncate, so the
//! copies go through `pread`/`pwrite` and never fault) beside the same
//! calls on a sealed memfd (which cannot shrink, so they are memory copies),
//! for 64 B and 4 KiB. Both are tmpfs pages; trials alternate.
//!
//! Run with `cargo test --release -p ipckit --bench region_copy -- --nocapture`
//! (a plain test in a bench target: no nightly `#[bench]`, no criterion).
//! It prints nanoseconds per copy and the ratios, and asserts nothing
//! about time.

use std::hint::black_box;
use std::time::Instant;

use ipckit::shm::{Region, Segment};

const TRIALS: usize = 7;
const COPIES: usize = 20_000;

/// Nanoseconds per call of `f`, the best of `TRIALS` (the least disturbed).
fn time(mut f: impl FnMut()) -> f64 {
    (0..TRIALS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..COPIES {
                f();
            }
            start.elapsed().as_nanos() as f64 / COPIES as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn region_copy_cost() {
    let name = format!("/ipckit-bench-copy-{}", std::process::id());
    let posix = Segment::new(name.parse().unwrap()).size(1 << 16).unlink_on_drop(true).create().unwrap();
    let memfd = Region::memfd("ipckit-bench-copy", 1 << 16).unwrap();
    println!(
        "{:>6}  {:>10}  {:>13}  {:>6}  {:>11}  {:>14}  {:>6}",
        "size", "read mem", "read pread", "ratio", "write mem", "write pwrite", "ratio"
    );
    for size in [64usize, 4096] {
        let mut buf = vec![0u8; size];
        let data = vec![0x5au8; size];
        let (mut rm, mut rp, mut wm, mut wp) = (f64::INFINITY, f64::INFINITY, f64::INFINITY, f64::INFINITY);
        for _ in 0..2 {
            rm = rm.min(time(|| memfd.read_at(128, black_box(&mut buf)).unwrap()));
            rp = rp.min(time(|| posix.read_at(128, black_box(&mut buf)).unwrap()));
            wm = wm.min(time(|| memfd.write_at(128, black_box(&data)).unwrap()));
            wp = wp.min(time(|| posix.write_at(128, black_box(&data)).unwrap()));
        }
        println!(
            "{size:>6}  {rm:>8.1}ns  {rp:>11.1}ns  {:>5.1}x  {wm:>9.1}ns  {wp:>12.1}ns  {:>5.1}x",
            rp / rm,
            wp / wm
        );
    }
}
