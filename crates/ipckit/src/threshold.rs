//! Copy or map: the size above which a `shm:` sender places a message in
//! its pool (only a reference travels) rather than copying it through the
//! ring.
//!
//! Both ways move every byte once in and once out; what differs is the
//! fixed cost (a pool message takes chunks and gives them back) and where
//! the bytes go (the ring stays in cache, the pool is larger than it). The
//! crossover depends on the machine, so `ipckit bench --save-threshold`
//! measures it and saves it, and a sender's `?inline=auto` (the default)
//! takes, in order:
//!
//! 1. `IPCKIT_INLINE_MAX` (a size: `65536`, `64KiB`), so that tests and
//!    scripts do not depend on the user's files;
//! 2. the saved measurement, `$XDG_CONFIG_HOME/ipckit/threshold.json`
//!    (`~/.config/ipckit/threshold.json` when `XDG_CONFIG_HOME` is unset);
//! 3. [`DEFAULT_INLINE_MAX`].
//!
//! The file is one JSON object:
//!
//! ```json
//! {"inline_max": 65536, "measured_at": "2026-12-02T01:00:00Z", "machine": "host, 2 CPUs, model, kernel", "ipckit": "0.1.0"}
//! ```
//!
//! `inline_max` is the largest message copied inline, in bytes; the other
//! fields say when and where it was measured (for people: only
//! `inline_max` is read). A file that cannot be read or parsed is ignored
//! with a warning (the sender's [`take_warnings`](crate::Sender::take_warnings)).

use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};

/// The environment variable that overrides the saved threshold.
pub const ENV: &str = "IPCKIT_INLINE_MAX";

/// Without a measurement: messages up to 64 KiB are copied inline. On the
/// machine ipckit is developed on, pool messages that are filled and read
/// pass ring copies between 64 KiB and 256 KiB.
pub const DEFAULT_INLINE_MAX: usize = 64 * 1024;

/// The largest threshold read from the environment or the file.
const MAX_INLINE: usize = 1 << 30;

/// Where a threshold came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `IPCKIT_INLINE_MAX`.
    Environment,
    /// The file saved by `ipckit bench --save-threshold`.
    File(PathBuf),
    /// [`DEFAULT_INLINE_MAX`].
    Default,
}

/// The `auto` threshold and why it is what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threshold {
    /// The largest message copied inline, in bytes.
    pub inline_max: usize,
    pub source: Source,
    /// What was wrong with a source that was skipped.
    pub warnings: Vec<String>,
}

/// The file `ipckit bench --save-threshold` writes: under
/// `$XDG_CONFIG_HOME`, else `$HOME/.config`; `None` without either.
pub fn path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("ipckit").join("threshold.json"))
}

/// The `auto` threshold now: the environment, the saved file, or the
/// default (see the module docs).
pub fn auto() -> Threshold {
    let mut warnings = Vec::new();
    if let Some(value) = std::env::var_os(ENV) {
        match value.to_str().map(crate::units::parse_size) {
            Some(Ok(n)) if n as usize <= MAX_INLINE => {
                return Threshold { inline_max: n as usize, source: Source::Environment, warnings };
            }
            Some(Ok(n)) => warnings.push(format!("{ENV}={n} is over the largest threshold of {MAX_INLINE}: ignored")),
            Some(Err(why)) => warnings.push(format!("{ENV}: {why}: ignored")),
            None => warnings.push(format!("{ENV} is not UTF-8: ignored")),
        }
    }
    if let Some(path) = path() {
        match read(&path) {
            Ok(Some(n)) => return Threshold { inline_max: n, source: Source::File(path), warnings },
            Ok(None) => {}
            Err(why) => warnings.push(format!("{}: {why}: ignored", path.display())),
        }
    }
    Threshold { inline_max: DEFAULT_INLINE_MAX, source: Source::Default, warnings }
}

/// The threshold saved at `path`: `None` when there is no file.
fn read(path: &std::path::Path) -> std::result::Result<Option<usize>, String> {
    let text = match std::fs::read(path) {
        Ok(t) if t.len() > 64 * 1024 => return Err("over 64 KiB, not a threshold file".into()),
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| format!("not JSON: {e}"))?;
    match value.get("inline_max").and_then(serde_json::Value::as_u64) {
        Some(n) if n as usize <= MAX_INLINE => Ok(Some(n as usize)),
        Some(n) => Err(format!("inline_max {n} is over {MAX_INLINE}")),
        None => Err("no inline_max (a number of bytes)".into()),
    }
}

/// Saves `inline_max`, measured now on `machine` (a description for
/// people), where [`auto`] reads it; returns the file's path.
pub fn save(inline_max: usize, machine: &str) -> Result<PathBuf> {
    let path = path().ok_or_else(|| {
        Error::new(ErrorKind::NotFound, "save threshold", "threshold.json", "neither XDG_CONFIG_HOME nor HOME is set")
    })?;
    let io = |e: std::io::Error| Error::new(ErrorKind::Io, "save threshold", path.display().to_string(), e.to_string());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let doc = serde_json::json!({
        "inline_max": inline_max,
        "measured_at": rfc3339_now(),
        "machine": machine,
        "ipckit": env!("CARGO_PKG_VERSION"),
    });
    // Written whole, then renamed over the old one: a reader never sees
    // half a file.
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, format!("{doc}\n")).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    Ok(path)
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn file_contents() {
        let dir = std::env::temp_dir().join(format!("ipckit-threshold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t.json");
        assert_eq!(read(&f), Ok(None));
        std::fs::write(&f, r#"{"inline_max": 131072, "machine": "x"}"#).unwrap();
        assert_eq!(read(&f), Ok(Some(131072)));
        for bad in ["", "{}", r#"{"inline_max": "big"}"#, r#"{"inline_max": 99999999999999}"#, "[1]"] {
            std::fs::write(&f, bad).unwrap();
            assert!(read(&f).is_err(), "{bad:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
