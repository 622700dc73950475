//! `ipckit ls` and `ipckit clean`: stale ipckit objects (no participant
//! holds their flock) are listed as such and removed; live ones and
//! objects that are not ipckit's are left alone.

use std::process::Stdio;

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::{Bg, run};
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

#[test]
fn clean_removes_stale_ipckit_objects_only() {
    let s = Scratch::new("clean");
    let (stale, live, plain) = (s.shm("stale"), s.shm("live"), s.shm("plain"));
    run(IPCKIT.command().args(["lock", &stale, "--", "true"]), None).expect_code(0, "make a lock object");
    let mut holder = Bg::spawn(
        IPCKIT.command().args(["lock", &live, "--", "sh", "-c", "echo held >&2; exec cat"]).stdin(Stdio::piped()),
    );
    holder.wait_line("held");
    run(IPCKIT.command().args(["shm", "create", &plain, "--size", "64"]), None).expect_code(0, "a plain segment");

    let out = run(IPCKIT.command().args(["ls", "--json"]), None);
    out.expect_code(0, "ls");
    let find = |name: &str| {
        out.json_lines().into_iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("{name} not listed"))
    };
    assert_eq!((find(&stale)["ipckit"].as_str(), find(&stale)["stale"].as_bool()), (Some("mutex"), Some(true)));
    assert_eq!((find(&live)["ipckit"].as_str(), find(&live)["stale"].as_bool()), (Some("mutex"), Some(false)));
    assert!(find(&plain).get("ipckit").is_none(), "a plain segment is not an ipckit object");
    assert_eq!(find(&plain)["mode"], "0600");

    // Named objects that are not removed are reported, and make it exit 1.
    let names = [&*stale, &*live, &*plain];
    let dry = run(IPCKIT.command().arg("clean").arg("--dry-run").args(names), None);
    dry.expect_code(1, "clean --dry-run");
    assert_eq!(dry.text(), format!("would remove {}\n", &*stale));
    assert!(dry.stderr.contains(&format!("clean {}: not removed: in use", &*live)), "{}", dry.stderr);
    assert!(dry.stderr.contains(&format!("clean {}: not removed: not an ipckit object", &*plain)), "{}", dry.stderr);
    let shm_path = |n: &str| std::path::PathBuf::from(format!("/dev/shm{n}"));
    assert!(shm_path(&stale).exists(), "a dry run removes nothing");

    let done = run(IPCKIT.command().arg("clean").args(names), None);
    done.expect_code(1, "clean");
    assert!(done.stderr.contains(&format!("clean {}: not removed: in use", &*live)), "{}", done.stderr);
    assert_eq!(done.text(), format!("removed {}\n", &*stale));
    assert!(!shm_path(&stale).exists());
    assert!(shm_path(&live).exists() && shm_path(&plain).exists(), "live and foreign objects stay");
    drop(holder);
}
