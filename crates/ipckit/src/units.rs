//! Durations and sizes written as text: `50us`, `500ms`, `2s`, `1.5m`;
//! `4096`, `64KiB`, `1MiB`. What the `ipckit` command takes for
//! `--timeout` and `--max-size`, and what endpoint options take as values.
//!
//! ```
//! use std::time::Duration;
//! use ipckit::units::{parse_duration, parse_size};
//!
//! assert_eq!(parse_duration("250us")?, Duration::from_micros(250));
//! assert_eq!(parse_duration("1.5s")?, Duration::from_millis(1500));
//! assert_eq!(parse_size("64KiB")?, 65536);
//! assert_eq!(parse_duration("-1s").unwrap_err().to_string(), "-1s is negative");
//! # Ok::<(), ipckit::units::UnitError>(())
//! ```
//!
//! Both parsers are total: any string gives a value or a [`UnitError`],
//! never a panic, and the work is linear in the length of the text.
//!
//! A duration too long for [`Duration`] (more than about 584 billion
//! years) is [`Duration::MAX`], not an error: every timeout in ipckit
//! treats a deadline the monotonic clock cannot represent as no deadline
//! at all (the blocking form), so `--timeout 99999999999999999999s` means
//! "wait as long as it takes". A size that does not fit in a `u64` is an
//! error.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// What is wrong with a duration or size.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No number where one was expected (`""`, `ms`, `NaN`, `+1s`, `1.5KiB`).
    Malformed,
    /// A leading `-`: durations and sizes are 0 or more.
    Negative,
    /// A number followed by something that is not a unit (`5parsecs`,
    /// `1e400s`).
    UnknownUnit,
    /// A size of more than `u64::MAX` bytes.
    TooLarge,
}

/// Which quantity was being parsed, for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quantity {
    Duration,
    Size,
}

/// A duration or size that does not parse: the text, and what is wrong
/// with it. Its message is self-contained (`-1s is negative`), so that a
/// caller can put it after the name of the option or the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitError {
    text: String,
    quantity: Quantity,
    problem: Problem,
}

impl UnitError {
    fn new(text: &str, quantity: Quantity, problem: Problem) -> UnitError {
        UnitError { text: text.to_string(), quantity, problem }
    }

    /// What is wrong.
    pub fn problem(&self) -> Problem {
        self.problem
    }

    /// The text that did not parse.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.trim();
        match (self.problem, self.quantity) {
            (Problem::Negative, _) => write!(f, "{text} is negative"),
            (Problem::Malformed, Quantity::Duration) => {
                write!(f, "{:?} is not a duration (examples: 50us, 500ms, 2s, 1.5m, 1h)", self.text)
            }
            (Problem::Malformed, Quantity::Size) => {
                write!(f, "{:?} is not a size in whole bytes (examples: 4096, 64KiB, 1MiB)", self.text)
            }
            (Problem::UnknownUnit, Quantity::Duration) => {
                write!(f, "{:?}: unknown unit {:?} (use ns, us, ms, s, m, h)", self.text, unit_of(text))
            }
            (Problem::UnknownUnit, Quantity::Size) => {
                write!(
                    f,
                    "{:?}: unknown unit {:?} (use B, KiB, MiB, GiB, TiB, or kB, MB, GB, TB)",
                    self.text,
                    unit_of(text)
                )
            }
            (Problem::TooLarge, _) => write!(f, "{text} is more than {} bytes", u64::MAX),
        }
    }
}

impl std::error::Error for UnitError {}

impl From<UnitError> for Error {
    /// An `Invalid` error, the operation `parse duration` or `parse size`.
    fn from(e: UnitError) -> Error {
        let op = match e.quantity {
            Quantity::Duration => "parse duration",
            Quantity::Size => "parse size",
        };
        Error::new(ErrorKind::Invalid, op, format!("{:?}", e.text), e.to_string())
    }
}

/// The unit part of a number-and-unit text.
fn unit_of(text: &str) -> &str {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    &text[split..]
}

/// Parses a duration: a decimal number and a unit, `ns`, `us` (or `µs`),
/// `ms`, `s`, `m` (or `min`), `h`; a bare number is seconds. The number
/// may have a fraction (`1.5s`, `.5ms`), which is exact to the
/// nanosecond (digits beyond are dropped). Surrounding white space is
/// ignored.
///
/// Longer than [`Duration::MAX`] is `Duration::MAX` (see the module
/// documentation). A leading `-` is [`Problem::Negative`].
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let err = |problem| UnitError::new(text, Quantity::Duration, problem);
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('-') {
        return Err(err(if parse_duration(rest).is_ok() { Problem::Negative } else { Problem::Malformed }));
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(err(Problem::Malformed));
    }
    const NS: u128 = 1;
    let unit_ns: u128 = match unit {
        "ns" => NS,
        "us" | "µs" | "μs" => 1_000 * NS,
        "ms" => 1_000_000 * NS,
        "" | "s" => 1_000_000_000 * NS,
        "m" | "min" => 60 * 1_000_000_000 * NS,
        "h" => 3_600 * 1_000_000_000 * NS,
        _ => return Err(err(Problem::UnknownUnit)),
    };
    // Whole units, saturating: at most u128::MAX nanoseconds is plenty
    // beyond Duration::MAX, which is where the result saturates anyway.
    let whole = int.bytes().fold(0u128, |n, d| n.saturating_mul(10).saturating_add(u128::from(d - b'0')));
    // The fraction: 18 digits are below a nanosecond even of hours
    // (3.6e12 ns / 1e18); the product stays below 1e18 * 3.6e12 < u128::MAX.
    let frac = &frac[..frac.len().min(18)];
    let part = frac.bytes().fold(0u128, |n, d| n * 10 + u128::from(d - b'0'));
    let part_ns = part * unit_ns / 10u128.pow(frac.len() as u32);
    let ns = whole.saturating_mul(unit_ns).saturating_add(part_ns);
    Ok(from_nanos(ns))
}

/// `ns` nanoseconds, or [`Duration::MAX`] if that is more.
fn from_nanos(ns: u128) -> Duration {
    const PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(ns / PER_SEC) {
        Ok(secs) => Duration::new(secs, (ns % PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

/// Parses a size in bytes: a whole number with an optional unit, binary
/// (`B`, `K` or `KiB` or `k`, `M` or `MiB`, `G` or `GiB`, `T` or `TiB`) or
/// decimal (`kB` or `KB`, `MB`, `GB`, `TB`). Surrounding white space is
/// ignored. More than `u64::MAX` bytes is [`Problem::TooLarge`]; a leading
/// `-` is [`Problem::Negative`].
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let err = |problem| UnitError::new(text, Quantity::Size, problem);
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('-') {
        return Err(err(match parse_size(rest) {
            Ok(_) | Err(UnitError { problem: Problem::TooLarge, .. }) => Problem::Negative,
            Err(_) => Problem::Malformed,
        }));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || unit.starts_with('.') {
        return Err(err(Problem::Malformed));
    }
    let scale: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(err(Problem::UnknownUnit)),
    };
    num.bytes()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| err(Problem::TooLarge))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("2s", Duration::from_secs(2)),
            ("3", Duration::from_secs(3)),
            (" 3s\n", Duration::from_secs(3)),
            ("0", Duration::ZERO),
            ("1.5s", Duration::from_millis(1500)),
            (".5ms", Duration::from_micros(500)),
            ("2.", Duration::from_secs(2)),
            ("1m", Duration::from_secs(60)),
            ("1.5min", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1.9ns", Duration::from_nanos(1)),
            ("0.000000001", Duration::from_nanos(1)),
            ("0.1234567891234567891234s", Duration::from_nanos(123_456_789)),
            ("18446744073709551615s", Duration::new(u64::MAX, 0)),
            ("18446744073709551615.999999999s", Duration::MAX),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn durations_too_long_for_the_clock_saturate() {
        for text in ["18446744073709551616s", "9999999999999999999h", &"9".repeat(5000)] {
            assert_eq!(parse_duration(text), Ok(Duration::MAX), "{text:.30}");
        }
    }

    #[test]
    fn bad_durations() {
        let cases = [
            ("", Problem::Malformed),
            ("ms", Problem::Malformed),
            (".", Problem::Malformed),
            ("1.2.3s", Problem::Malformed),
            ("NaN", Problem::Malformed),
            ("inf", Problem::Malformed),
            ("+1s", Problem::Malformed),
            ("--1s", Problem::Malformed),
            ("-", Problem::Malformed),
            ("-x", Problem::Malformed),
            ("-1s", Problem::Negative),
            ("-0", Problem::Negative),
            ("-1e400s", Problem::Malformed),
            ("5 parsecs", Problem::UnknownUnit),
            ("5parsecs", Problem::UnknownUnit),
            ("1e400s", Problem::UnknownUnit),
            ("1 s", Problem::UnknownUnit),
            ("1S", Problem::UnknownUnit),
        ];
        for (text, problem) in cases {
            assert_eq!(parse_duration(text).map_err(|e| e.problem()), Err(problem), "{text:?}");
        }
    }

    #[test]
    fn duration_messages() {
        let msg = |t| parse_duration(t).unwrap_err().to_string();
        assert_eq!(msg("-1s"), "-1s is negative");
        assert_eq!(msg("5parsecs"), "\"5parsecs\": unknown unit \"parsecs\" (use ns, us, ms, s, m, h)");
        assert!(msg("NaN").starts_with("\"NaN\" is not a duration (examples: "), "{}", msg("NaN"));
        let e: Error = parse_duration("-2ms").unwrap_err().into();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(e.to_string(), "parse duration \"-2ms\": -2ms is negative");
    }

    #[test]
    fn sizes() {
        let cases = [
            ("4096", 4096),
            ("0", 0),
            ("12B", 12),
            ("64KiB", 65536),
            ("64K", 65536),
            ("64k", 65536),
            ("1MiB", 1 << 20),
            ("3G", 3 << 30),
            ("2TiB", 2 << 40),
            ("2kB", 2000),
            ("5MB", 5_000_000),
            (" 7 ", 7),
            ("18446744073709551615", u64::MAX),
            ("16777215TiB", 16_777_215 << 40),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_sizes() {
        let cases = [
            ("", Problem::Malformed),
            ("KiB", Problem::Malformed),
            ("1.5KiB", Problem::Malformed),
            ("-", Problem::Malformed),
            ("-1", Problem::Negative),
            ("-99999999999999999999999", Problem::Negative),
            ("-1e3", Problem::Malformed),
            ("12 apples", Problem::UnknownUnit),
            ("1e3", Problem::UnknownUnit),
            ("18446744073709551616", Problem::TooLarge),
            ("16777216TiB", Problem::TooLarge),
            ("99999999999999999999G", Problem::TooLarge),
        ];
        for (text, problem) in cases {
            assert_eq!(parse_size(text).map_err(|e| e.problem()), Err(problem), "{text:?}");
        }
        assert_eq!(parse_size("-5KiB").unwrap_err().to_string(), "-5KiB is negative");
        assert_eq!(
            parse_size("18446744073709551616").unwrap_err().to_string(),
            "18446744073709551616 is more than 18446744073709551615 bytes"
        );
    }

    /// Text that looks like a number and a unit, and text that does not.
    fn tricky() -> impl Strategy<Value = String> {
        prop_oneof![
            "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?(ns|us|µs|ms|s|m|min|h|B|K|KiB|MiB|GiB|TiB|kB|MB|GB|e400|x)?",
            any::<String>(),
        ]
    }

    proptest! {
        /// Any text: a value or an error, never a panic.
        #[test]
        fn parsers_are_total(text in tricky()) {
            let _ = parse_duration(&text);
            let _ = parse_size(&text);
        }

        /// Whole seconds, milliseconds and bytes come back exactly.
        #[test]
        fn whole_numbers_round_trip(n in any::<u32>()) {
            prop_assert_eq!(parse_duration(&format!("{n}s")), Ok(Duration::from_secs(n.into())));
            prop_assert_eq!(parse_duration(&format!("{n}ms")), Ok(Duration::from_millis(n.into())));
            prop_assert_eq!(parse_size(&format!("{n}KiB")), Ok(u64::from(n) << 10));
            prop_assert_eq!(parse_duration(&format!("-{n}ms")).map_err(|e| e.problem()), Err(Problem::Negative));
        }
    }
}
