//! `ipckit shm read` and `shm write` while another process truncates the
//! segment: they finish (the bytes, or an error saying the object was
//! truncated), never dying of `SIGBUS`.
//!
//! The truncating process is Python's standard library (`os.truncate` in a
//! loop, bounded in time); it announces itself on stderr before the reads
//! start. Every object is removed by a guard, also when a test fails.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::{Bg, Out};
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// The segment's size: large enough that a copy takes a while, so the
/// truncations land in the middle of copies.
const SIZE: usize = 16 << 20;

/// Starts a Python loop that truncates `path` to 0 and sets it back to
/// `size` bytes, over and over, for at most 60 s (killed on drop before
/// that); returns once it has truncated at least once.
fn truncator(path: &str, size: usize) -> Bg {
    let script = "import os, sys, time\n\
                  path, size = sys.argv[1], int(sys.argv[2])\n\
                  end = time.monotonic() + 60\n\
                  os.truncate(path, 0); os.truncate(path, size)\n\
                  print('truncating', file=sys.stderr, flush=True)\n\
                  while time.monotonic() < end:\n    \
                      os.truncate(path, 0); os.truncate(path, size)\n";
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, path, &size.to_string()]).stdin(Stdio::null());
    let mut bg = Bg::spawn(&mut cmd);
    bg.wait_line("truncating");
    bg
}

/// Ended normally: exit 0, or exit 1 saying the object was truncated.
#[track_caller]
fn assert_survived(out: &Out, what: &str) -> bool {
    let status = out.status;
    assert_eq!(status.signal(), None, "{what}: killed by a signal ({status}); stderr: {}", out.stderr);
    match status.code() {
        Some(0) => false,
        Some(1) => {
            assert!(out.stderr.contains("truncated"), "{what}: exit 1 not saying why: {}", out.stderr);
            assert_eq!(out.stderr.lines().count(), 1, "{what}: {}", out.stderr);
            true
        }
        other => panic!("{what}: exit {other:?}: {}", out.stderr),
    }
}

/// `ipckit shm read /s`, 20 times, while the truncator runs: every one
/// ends normally (all the bytes, or exit 1 "truncated"); then `shm write`
/// 10 times the same way.
#[test]
fn shm_read_and_write_while_truncated_never_die_of_sigbus() {
    let s = Scratch::new("shm-truncated");
    let seg = s.shm("s");
    let path = format!("/dev/shm{}", seg.as_str());
    IPCKIT.run_ok(&["shm", "create", &seg, "--size", &SIZE.to_string()], None);
    let _truncator = truncator(&path, SIZE);
    let mut truncated = 0;
    for i in 0..20 {
        let out = IPCKIT.run(&["shm", "read", &seg]);
        if assert_survived(&out, &format!("read {i}")) {
            truncated += 1;
        } else {
            assert_eq!(out.stdout.len(), SIZE, "read {i}: a successful read has every byte");
        }
    }
    let input = vec![0x5a; SIZE];
    for i in 0..10 {
        let out = IPCKIT.run_stdin(&["shm", "write", &seg], &input);
        if assert_survived(&out, &format!("write {i}")) {
            truncated += 1;
        }
    }
    eprintln!("{truncated} of 30 copies met a truncation");
}
