//! The invariants of the `frame_decoder` fuzz target, on deterministic
//! pseudo-random inputs, in a normal (stable) `cargo test`. The checking
//! code is the fuzz target's own (`ipckit_testkit::decoder`), so this also
//! proves that the target compiles against the library.
//!
//! A failure prints the seed and the input; replay it with the fuzz target
//! (`cargo +nightly fuzz run frame_decoder INPUT_FILE`) or here.

use ipckit_testkit::data::Rng;
use ipckit_testkit::decoder;

/// A stream that is mostly well-formed, with the damage a peer can do:
/// lengths over the maximum, huge lengths, a truncated tail, stray bytes.
fn stream(rng: &mut Rng, lines: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(8) {
        let len = match rng.below(40) {
            0..=3 => 0,
            4..=27 => rng.below(64) as usize,
            28..=38 => rng.below(700) as usize,
            _ => rng.below(70_000) as usize,
        };
        let mut payload = vec![0u8; len];
        rng.fill(&mut payload);
        if lines {
            for b in &mut payload {
                if *b == b'\n' {
                    *b = b' ';
                }
            }
            out.extend_from_slice(&payload);
            out.push(b'\n');
            continue;
        }
        match rng.below(12) {
            // A length from the far end of the range.
            0 => out.extend_from_slice(&(u32::MAX - rng.below(4) as u32).to_le_bytes()),
            // A few stray bytes.
            1 => {
                let mut junk = vec![0u8; rng.below(6) as usize];
                rng.fill(&mut junk);
                out.extend_from_slice(&junk);
            }
            _ => {
                out.extend_from_slice(&(len as u32).to_le_bytes());
                out.extend_from_slice(&payload);
            }
        }
    }
    if rng.below(3) == 0 {
        let cut = rng.below(out.len() as u64 + 1) as usize;
        out.truncate(cut);
    }
    out
}

fn input(rng: &mut Rng) -> Vec<u8> {
    let mut head = [0u8; 5];
    rng.fill(&mut head);
    // Mostly a small maximum, where the interesting cases are.
    if rng.below(4) != 0 {
        head[0] &= !0b1100;
        let max = rng.below(800) as u16;
        head[1..3].copy_from_slice(&max.to_le_bytes());
    }
    let lines = head[0] & 1 == 1;
    let mut v = head.to_vec();
    v.extend(stream(rng, lines));
    v
}

#[test]
fn decoder_invariants_on_pseudo_random_streams() {
    let seed = std::env::var("IPCKIT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x1bc_2024u64);
    let mut rng = Rng(seed);
    for case in 0..3000 {
        let data = input(&mut rng);
        let result = std::panic::catch_unwind(|| decoder::check(&data));
        if let Err(e) = result {
            eprintln!("seed {seed}, case {case}, input ({} bytes): {:?}", data.len(), &data[..data.len().min(64)]);
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn decoder_invariants_on_edge_cases() {
    let max8: [u8; 2] = 8u16.to_le_bytes();
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 8, 0, 0, 0],
        // len32, max 8: empty frame, frame at the maximum, one over, a
        // truncated header.
        [
            &[0, max8[0], max8[1], 0, 200][..],
            &[0, 0, 0, 0],
            &[8, 0, 0, 0],
            b"12345678",
            &[9, 0, 0, 0],
            b"123456789",
            &[1, 0],
        ]
        .concat(),
        // A length of u32::MAX with max usize::MAX (clamped).
        [&[0b1000, 0, 0, 0, 255][..], &[255, 255, 255, 255], b"abc"].concat(),
        // The same, asking next_len first, reading one byte at a time.
        [&[0b1010, 0, 0, 0, 255][..], &[255, 255, 255, 255], b"abc"].concat(),
        // Maximum 0 (bits 2-3 = 3): only empty messages pass.
        [&[0b1100, 0, 0, 3, 255][..], &[0, 0, 0, 0], &[1, 0, 0, 0], b"x"].concat(),
        // lines, max 8: an overlong line, an empty line, a line at the
        // maximum, an unterminated tail; blocking every read.
        [&[0b0001_0001, max8[0], max8[1], 0, 100][..], b"a\nthis line is far too long\n\n12345678\ntail"].concat(),
        [&[0b0001_0011, max8[0], max8[1], 2, 0][..], b"123456789"].concat(),
        [&[0b1101, 0, 0, 0, 255][..], b"\n\n"].concat(),
    ];
    for data in cases {
        decoder::check(&data);
    }
}

/// The checker itself catches a wrong outcome (it does not pass
/// vacuously): the reference disagrees with a doctored one.
#[test]
fn reference_decoder_is_not_vacuous() {
    use decoder::{Event, reference};
    use ipckit::Framing;
    let data = [&[2, 0, 0, 0][..], b"hi", &[3, 0, 0, 0], b"abc", &[1, 0]].concat();
    assert_eq!(
        reference(&data, Framing::Len32, 2),
        vec![Event::Msg(b"hi".to_vec()), Event::TooLarge(Some(3)), Event::EofMidFrame { got: 2, want: 4 }]
    );
    assert_eq!(
        reference(b"ab\n\nxyz", Framing::Lines, 2),
        vec![Event::Msg(b"ab".to_vec()), Event::Msg(vec![]), Event::TooLarge(None)]
    );
    let cfg =
        decoder::Config { framing: Framing::Len32, max: 2, step: 1, buf: 0, next_len_first: false, block_every: 2 };
    assert_eq!(decoder::decode(&data, cfg), reference(&data, Framing::Len32, 2));
}
