//! The value parsers of the command line: durations and sizes
//! ([`ipckit::units`]), and whole numbers in a stated range. Each takes
//! any text and returns the value or a message that clap prints after the
//! option's name (`invalid value '-1s' for '--timeout <DURATION>': -1s is
//! negative`, exit 2): never a panic.
//!
//! Values may start with `-` (see `crate::numbers_may_be_negative`), so
//! that a negative number is reported as such, naming the option, rather
//! than taken for an unknown flag.

use std::num::IntErrorKind;
use std::time::Duration;

/// A duration: `250us`, `500ms`, `2s`, `1.5m`, `1h`; a bare number is
/// seconds. Too long for the clock is `Duration::MAX`: no deadline.
pub fn parse_duration(text: &str) -> Result<Duration, ipckit::units::UnitError> {
    ipckit::units::parse_duration(text)
}

/// A size in bytes: `4096`, `64KiB`, `1MiB`, `2kB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let n = ipckit::units::parse_size(text).map_err(|e| e.to_string())?;
    usize::try_from(n).map_err(|_| format!("{} is more than {} bytes", text.trim(), usize::MAX))
}

/// A whole number in `lo..=hi`, as a `T` (which holds every value of the
/// range).
fn whole<T: TryFrom<i128>>(text: &str, lo: i128, hi: i128) -> Result<T, String> {
    let t = text.trim();
    let out_of_range = || match t.starts_with('-') && lo >= 0 {
        true => format!("{t} is negative (the range is {lo}..={hi})"),
        false => format!("{t} is not in {lo}..={hi}"),
    };
    let n: i128 = match t.parse() {
        Ok(n) => n,
        Err(e) if matches!(e.kind(), IntErrorKind::PosOverflow | IntErrorKind::NegOverflow) => {
            return Err(out_of_range());
        }
        Err(_) => return Err(format!("{text:?} is not a whole number")),
    };
    if !(lo..=hi).contains(&n) {
        return Err(out_of_range());
    }
    T::try_from(n).map_err(|_| out_of_range())
}

fn range_of<T: Into<i128>>(lo: T, hi: T) -> (i128, i128) {
    (lo.into(), hi.into())
}

/// `--count` of `recv`: 0 or more.
pub fn count(text: &str) -> Result<u64, String> {
    let (lo, hi) = range_of(0, u64::MAX);
    whole(text, lo, hi)
}

/// The highest POSIX message-queue priority (`MQ_PRIO_MAX - 1` on Linux).
pub const MAX_PRIORITY: u32 = 32767;

/// `--priority` of `send` (POSIX queues): 0 to 32767, in the library's
/// words when out of range.
pub fn priority(text: &str) -> Result<u32, String> {
    whole(text, 0, MAX_PRIORITY.into()).map_err(|e| match e.ends_with("is not a whole number") {
        true => e,
        false => format!("priority {} is out of range (0 to {MAX_PRIORITY})", text.trim()),
    })
}

/// `--type` of `send` (System V queues): a positive type, in the
/// library's words when not.
pub fn msg_type(text: &str) -> Result<i64, String> {
    whole(text, 1, i64::MAX.into()).map_err(|e| match e.ends_with("is not a whole number") {
        true => e,
        false => format!("message type {} must be positive (1 to {})", text.trim(), i64::MAX),
    })
}

/// `--type` of `recv` (System V queues): a selection rule, any number.
pub fn type_rule(text: &str) -> Result<i64, String> {
    whole(text, i64::MIN.into(), i64::MAX.into())
}

/// `--value` of `sem create`: any number here; `sem` checks it against the
/// range of the semaphore's kind, which it knows from the name.
pub fn sem_value(text: &str) -> Result<i64, String> {
    whole(text, i64::MIN.into(), i64::MAX.into())
}

/// `--index` of `sem`: which semaphore of a set.
pub fn sem_index(text: &str) -> Result<u16, String> {
    whole(text, 0, u16::MAX.into())
}

/// `--count` of `sem create` (System V): how many semaphores, 1 or more.
pub fn sem_count(text: &str) -> Result<u16, String> {
    whole(text, 1, u16::MAX.into())
}

/// The most `--jobs` of `serve`: handler commands running at once.
pub const MAX_JOBS: usize = 1024;

/// `--jobs` of `serve`: 1 to [`MAX_JOBS`].
pub fn jobs(text: &str) -> Result<usize, String> {
    whole(text, 1, MAX_JOBS as i128)
}

/// The most `--iters` of `bench`: round trips per trial.
pub const MAX_BENCH_ITERS: usize = 100_000_000;

/// `--iters` of `bench`: 1 to [`MAX_BENCH_ITERS`].
pub fn bench_iters(text: &str) -> Result<usize, String> {
    whole(text, 1, MAX_BENCH_ITERS as i128)
}

/// The largest message size of `bench --sizes`: the copy-vs-map table's
/// largest.
pub const MAX_BENCH_SIZE: usize = 16 << 20;

/// An entry of `--sizes` of `bench`: a size of 1 B to 16 MiB.
pub fn bench_size(text: &str) -> Result<usize, String> {
    let n = parse_size(text)?;
    match n {
        1..=MAX_BENCH_SIZE => Ok(n),
        _ => Err(format!("{} is not in 1 B..=16 MiB", text.trim())),
    }
}

/// `--ready-fd`: a descriptor number, not a standard stream.
pub fn ready_fd(text: &str) -> Result<i32, String> {
    let fd: i32 = whole(text, 0, i32::MAX.into())?;
    let stream = match fd {
        0 => "standard input",
        1 => "standard output",
        2 => "standard error",
        _ => return Ok(fd),
    };
    Err(format!(
        "{fd} is {stream}: the standard streams 0, 1 and 2 cannot be used; open a descriptor of 3 or more \
         for it (e.g. `3>file --ready-fd 3`)"
    ))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn whole_numbers_state_their_range() {
        assert_eq!(priority("32767"), Ok(32767));
        assert_eq!(priority(" 0 "), Ok(0));
        assert_eq!(priority("32768").unwrap_err(), "priority 32768 is out of range (0 to 32767)");
        assert_eq!(priority("-1").unwrap_err(), "priority -1 is out of range (0 to 32767)");
        assert_eq!(priority("high").unwrap_err(), "\"high\" is not a whole number");
        assert_eq!(msg_type("0").unwrap_err(), "message type 0 must be positive (1 to 9223372036854775807)");
        assert_eq!(msg_type("-3").unwrap_err(), "message type -3 must be positive (1 to 9223372036854775807)");
        assert_eq!(type_rule("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(count("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            count("18446744073709551616").unwrap_err(),
            "18446744073709551616 is not in 0..=18446744073709551615"
        );
        assert_eq!(
            count(&"9".repeat(100)).unwrap_err(),
            format!("{} is not in 0..=18446744073709551615", "9".repeat(100))
        );
        assert_eq!(count("many").unwrap_err(), "\"many\" is not a whole number");
        assert_eq!(count("1e3").unwrap_err(), "\"1e3\" is not a whole number");
        assert_eq!(sem_count("0").unwrap_err(), "0 is not in 1..=65535");
        assert_eq!(jobs("0").unwrap_err(), "0 is not in 1..=1024");
        assert_eq!(jobs("1024"), Ok(1024));
        assert_eq!(bench_iters("0").unwrap_err(), "0 is not in 1..=100000000");
        assert_eq!(bench_size("16MiB"), Ok(16 << 20));
        assert!(bench_size("16MiB1").unwrap_err().contains("unknown unit"));
        assert_eq!(bench_size("0").unwrap_err(), "0 is not in 1 B..=16 MiB");
    }

    #[test]
    fn ready_fd_refuses_the_standard_streams() {
        assert_eq!(ready_fd("3"), Ok(3));
        for (n, stream) in [("0", "standard input"), ("1", "standard output"), ("2", "standard error")] {
            let e = ready_fd(n).unwrap_err();
            assert!(e.starts_with(&format!("{n} is {stream}: ")), "{e}");
        }
        assert!(ready_fd("-1").unwrap_err().contains("negative"));
    }

    #[test]
    fn sizes_fit_usize() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert!(parse_size("-1").unwrap_err().contains("negative"));
    }

    /// Tricky text: huge numbers, signs, exponents, NaN, unicode, empty.
    fn tricky() -> impl Strategy<Value = String> {
        prop_oneof![
            "[-+]?[0-9]{0,45}(\\.[0-9]{0,20})?(e[-+]?[0-9]{1,4})?(ns|us|ms|s|m|h|B|KiB|MiB|GiB|TiB|kB|x|µs|\u{1F600})?",
            Just(String::new()),
            Just("NaN".to_string()),
            Just("inf".to_string()),
            Just("-9223372036854775809".to_string()),
            Just("１２".to_string()),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every parser of the command line, on any text: Ok or Err, never
        /// a panic; an accepted number is in its range.
        #[test]
        fn parsers_never_panic(text in tricky()) {
            let _ = parse_duration(&text);
            let _ = parse_size(&text);
            let _ = count(&text);
            let _ = type_rule(&text);
            let _ = sem_value(&text);
            let _ = sem_index(&text);
            if let Ok(p) = priority(&text) {
                prop_assert!(p <= MAX_PRIORITY);
            }
            if let Ok(t) = msg_type(&text) {
                prop_assert!(t >= 1);
            }
            if let Ok(c) = sem_count(&text) {
                prop_assert!(c >= 1);
            }
            if let Ok(j) = jobs(&text) {
                prop_assert!((1..=MAX_JOBS).contains(&j));
            }
            if let Ok(fd) = ready_fd(&text) {
                prop_assert!(fd >= 3);
            }
            if let Ok(n) = bench_iters(&text) {
                prop_assert!((1..=MAX_BENCH_ITERS).contains(&n));
            }
            if let Ok(n) = bench_size(&text) {
                prop_assert!((1..=MAX_BENCH_SIZE).contains(&n));
            }
        }
    }
}
