//! `ipckit serve` with a client that was not written with ipckit: a
//! Python script (standard library only) speaking the README's envelope
//! in len32 frames over `unix:` and `tcp:` (tests/py/rpc_client.py; its
//! docstring says what it checks).

use std::process::Command;

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::{Bg, run};
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// The Python client.
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/rpc_client.py");

/// The handler the client expects (see its docstring).
const HANDLER: &str = r#"body=$(cat); case "$body" in
    fail:*) echo "${body#fail:}" >&2; exit 1;;
    wait) while [ ! -e "$1/marked" ]; do sleep 0.01; done; echo waited;;
    mark) touch "$1/marked"; echo marked;;
    *) printf %s "$body" | tr a-z A-Z;; esac"#;

/// The calls the client makes.
const CALLS: &str = "6";

/// What the client prints when every check passed.
const CHECKS: &[&str] = &[
    "ok request frame",
    "ok reply frame",
    "ok handler error",
    "ok largest id",
    "ok every id answered once",
    "ok reply 100 matched by id",
    "ok reply 101 matched by id",
    "ok reply 102 matched by id",
    "done",
];

fn python_calls(s: &Scratch, ep: &str, client_args: impl FnOnce(&str) -> Vec<String>) {
    let dir = s.dir().display().to_string();
    let mut serve = Bg::spawn(
        IPCKIT.command().args(["serve", ep, "--jobs", "3", "--count", CALLS, "--", "sh", "-c", HANDLER, "sh", &dir]),
    );
    let announced = serve.ready();
    let out = run(Command::new("python3").arg(CLIENT).args(client_args(&announced)), None);
    assert!(out.status.success(), "{ep}: the Python client failed: {}\n{}", out.stderr, out.text());
    assert_eq!(out.text().lines().collect::<Vec<_>>(), CHECKS, "{ep}");
    let out = serve.finish();
    out.expect_code(0, "serve --count");
    assert!(out.stderr.contains("no such thing\n"), "{ep}: the handler's stderr passed through: {}", out.stderr);
}

#[test]
fn python_client_over_unix() {
    let s = Scratch::new("rpc-py-unix");
    let path = s.path("rpc.sock").display().to_string();
    python_calls(&s, &format!("unix:{path}"), |_| vec!["unix".into(), path.clone()]);
    assert!(!s.path("rpc.sock").exists(), "serve removed its socket file");
}

#[test]
fn python_client_over_tcp() {
    let s = Scratch::new("rpc-py-tcp");
    python_calls(&s, "tcp:127.0.0.1:0", |announced| {
        let (host, port) = announced.strip_prefix("tcp:").and_then(|a| a.rsplit_once(':')).expect("tcp:HOST:PORT");
        vec!["tcp".into(), host.into(), port.into()]
    });
}
