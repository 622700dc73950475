//! The `ipckit` binary under test, and what its output means.
//!
//! Only a test of the `ipckit-cli` crate knows where Cargo put the binary
//! (`CARGO_BIN_EXE_ipckit` is set when Cargo compiles those tests), so each
//! such test file names it once:
//!
//! ```text
//! const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));
//! ```
//!
//! and runs it with [`Ipckit::command`] (a `Command` for [`run`] or
//! [`Bg`](crate::program::Bg)), or with the [`Ipckit::run`] shorthands.
//! [`shm`] has the shared-memory objects of those tests.

use std::process::{Command, Stdio};

use crate::program::{Out, run};

pub mod shm;

/// The line prefix `ipckit recv` writes on stderr when ready.
pub const READY: &str = "ipckit: ready ";

/// The `ipckit` binary under test.
#[derive(Clone, Copy, Debug)]
pub struct Ipckit {
    path: &'static str,
}

impl Ipckit {
    /// The binary at `path`: `env!("CARGO_BIN_EXE_ipckit")`.
    pub const fn new(path: &'static str) -> Ipckit {
        Ipckit { path }
    }

    /// Where the binary is.
    pub fn path(self) -> &'static str {
        self.path
    }

    /// A command that runs the binary, with standard input closed.
    pub fn command(self) -> Command {
        let mut cmd = Command::new(self.path);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `ipckit ARGS` with standard input closed.
    pub fn run(self, args: &[&str]) -> Out {
        run(self.command().args(args), None)
    }

    /// Runs `ipckit ARGS` with `input` on standard input.
    pub fn run_stdin(self, args: &[&str], input: &[u8]) -> Out {
        run(self.command().args(args), Some(input))
    }

    /// Runs `ipckit ARGS` (with `input` on standard input, if any), which
    /// must exit 0.
    #[track_caller]
    pub fn run_ok(self, args: &[&str], input: Option<&[u8]>) -> Out {
        let out = run(self.command().args(args), input);
        out.expect_code(0, &format!("ipckit {args:?}"));
        out
    }

    /// `ipckit shm info NAME --json`: its one JSON object.
    #[track_caller]
    pub fn shm_info(self, name: &str) -> serde_json::Value {
        let lines = self.run_ok(&["shm", "info", name, "--json"], None).json_lines();
        assert_eq!(lines.len(), 1, "one JSON object: {lines:?}");
        lines.into_iter().next().unwrap()
    }
}

/// Checks the endpoint a receiver announced for the one it was given:
/// `tcp:...:0` replaced by the real port, other endpoints unchanged.
#[track_caller]
pub fn check_announced(requested: &str, announced: &str) {
    if let Some(host_port) = requested.strip_prefix("tcp:") {
        let (host, port) = host_port.rsplit_once(':').expect("tcp endpoint has a port");
        let (ahost, aport) =
            announced.strip_prefix("tcp:").and_then(|a| a.rsplit_once(':')).expect("announced tcp endpoint");
        assert_eq!(ahost, host, "announced {announced} for {requested}");
        let aport: u16 = aport.parse().expect("announced port is a number");
        assert_ne!(aport, 0, "port 0 must be replaced by the real port");
        if port != "0" {
            assert_eq!(aport.to_string(), port);
        }
    } else {
        assert_eq!(announced, requested);
    }
}

/// The len32 encoding of `msgs`.
pub fn len32_frames(msgs: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&u32::try_from(m.len()).expect("fits u32").to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// The payload of one `recv --json` object, from `data` or `data_b64`;
/// checks that `data_b64` is used exactly for non-UTF-8 payloads and that
/// `len` agrees.
#[track_caller]
pub fn json_payload(v: &serde_json::Value) -> Vec<u8> {
    use base64::Engine;
    let data = match (v.get("data"), v.get("data_b64")) {
        (Some(s), None) => s.as_str().expect("data is a string").as_bytes().to_vec(),
        (None, Some(b)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_str().expect("data_b64 is a string"))
                .expect("data_b64 is base64");
            assert!(std::str::from_utf8(&bytes).is_err(), "UTF-8 payload sent as data_b64: {v}");
            bytes
        }
        _ => panic!("exactly one of data and data_b64 expected: {v}"),
    };
    assert_eq!(v["len"].as_u64(), Some(data.len() as u64), "len of {v}");
    data
}
