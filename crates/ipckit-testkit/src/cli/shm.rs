//! The shared-memory objects of the CLI tests: the three kinds of names
//! `ipckit shm` takes, and a guard that removes one with `ipckit rm`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::HANG_GUARD;
use crate::cli::Ipckit;
use crate::scratch::Scratch;

/// The three kinds of names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A POSIX object, `/NAME`.
    Posix,
    /// A System V segment, `sysv:PATH?id=N`.
    Sysv,
    /// A mapped file, `file:/PATH`.
    File,
}

/// Every kind.
pub const KINDS: [Kind; 3] = [Kind::Posix, Kind::Sysv, Kind::File];

/// A shared-memory object of a test, in both notations: ipckit's name and
/// the C peer's (`c/shm.c`) OBJECT arguments. Removed with `ipckit rm` on
/// drop (also when the test panics; a failure to remove what is already
/// gone is ignored). Declare it after the `Scratch` (a System V key is the
/// ftok of the scratch directory, which must still exist to be removed)
/// and before any process that uses it.
#[derive(Debug)]
pub struct Cleanup {
    ipckit: Ipckit,
    name: String,
    /// The file behind a POSIX object or a `file:` name.
    path: Option<PathBuf>,
    /// The C peer's OBJECT arguments.
    c: Vec<String>,
}

impl Cleanup {
    /// Object number `n` (1 to 99) of the test: `/ipckit-t-PID-TEST-segN`
    /// (C: `posix NAME`), `sysv:SCRATCH?id=(100+N)` (C: `sysv SCRATCH
    /// 100+N`), or `file:SCRATCH/segN` (C: `file PATH`). (Not id 1: ipckit
    /// prints `sysv:PATH?id=1` as `sysv:PATH`.)
    pub fn new(ipckit: Ipckit, s: &Scratch, kind: Kind, n: u8) -> Cleanup {
        let tag = format!("seg{n}");
        match kind {
            Kind::Posix => {
                let base = s.name(&tag);
                let name = format!("/{base}");
                let path = PathBuf::from("/dev/shm").join(base);
                Cleanup { ipckit, c: vec!["posix".into(), name.clone()], name, path: Some(path) }
            }
            Kind::Sysv => {
                let dir = s.dir().display().to_string();
                let id = 100 + n;
                let name = format!("sysv:{dir}?id={id}");
                Cleanup { ipckit, name, path: None, c: vec!["sysv".into(), dir, id.to_string()] }
            }
            Kind::File => {
                let path = s.path(&tag);
                let name = format!("file:{}", path.display());
                Cleanup { ipckit, c: vec!["file".into(), path.display().to_string()], name, path: Some(path) }
            }
        }
    }

    /// The object `name`, as given (no file, no C arguments).
    pub fn named(ipckit: Ipckit, name: &str) -> Cleanup {
        Cleanup { ipckit, name: name.to_string(), path: None, c: Vec::new() }
    }

    /// ipckit's name of the object.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file behind a POSIX object or a `file:` name.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The C peer's arguments: `CMD OBJECT REST...`.
    pub fn c_args(&self, cmd: &str, rest: &[&str]) -> Vec<String> {
        let mut args = vec![cmd.to_string()];
        args.extend(self.c.iter().cloned());
        args.extend(rest.iter().map(|r| r.to_string()));
        args
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // No panic here (it would abort a failing test): a bounded wait,
        // then the process is killed.
        let Ok(mut child) =
            self.ipckit.command().args(["rm", &self.name]).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
        else {
            return;
        };
        let deadline = Instant::now() + HANG_GUARD;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
