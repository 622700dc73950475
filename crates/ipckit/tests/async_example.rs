//! Runs `examples/async_server.rs` (one tokio runtime serving 100
//! endpoints, client processes calling them): it must succeed.
#![cfg(feature = "tokio")]

use std::path::PathBuf;
use std::process::Command;

use ipckit_testkit::child::Guarded;

/// `target/<profile>/examples/async_server`, next to this test binary's
/// directory (`target/<profile>/deps/`); built if it is not there.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/");
    let path = profile_dir.join("examples").join("async_server");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "ipckit", "--example", "async_server", "--features", "tokio"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --example async_server: {status}");
    }
    assert!(path.exists(), "{} is not there after building it", path.display());
    path
}

#[test]
fn async_server_example_serves_100_endpoints() {
    let out = Guarded::spawn(Command::new(example()).stdout(std::process::Stdio::piped())).output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "async_server: {}\n{stdout}", out.status);
    assert!(stdout.contains("made 8000 calls to 100 endpoints"), "{stdout}");
    assert!(stdout.contains("0 clients failed"), "{stdout}");
}
