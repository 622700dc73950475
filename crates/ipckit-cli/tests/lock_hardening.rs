//! `ipckit lock` on lock objects that another process damaged: scribbled
//! on between uses (an error naming the object, exit 1 with the hint
//! `ipckit rm NAME`, never glibc's abort), or truncated while the command
//! runs (the command's status all the same, never `SIGBUS`).
//!
//! The scribbler is Python's standard library or plain file writes, not
//! ipckit; every object is removed by a guard, also when a test fails.

use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::data::Rng;
use ipckit_testkit::program::{Bg, Out, assert_stderr, run};
use ipckit_testkit::scratch::{Scratch, ShmObject};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// Where a POSIX object's bytes are.
fn file_of(name: &ShmObject<'_>) -> PathBuf {
    PathBuf::from(format!("/dev/shm{}", name.as_str()))
}

/// The seed of a test's random scribbles, printed so a failure replays.
fn seed() -> u64 {
    let seed = std::env::var("IPCKIT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("seed {seed} (replay with IPCKIT_SEED={seed})");
    seed
}

/// An `ipckit lock` that did not succeed ended normally, with the codes of
/// the contract, and said why in one line.
#[track_caller]
fn assert_clean_exit(out: &Out, what: &str) {
    let status = out.status;
    assert_eq!(status.signal(), None, "{what}: killed by a signal ({status}); stderr: {}", out.stderr);
    let code = status.code().expect("an exit code");
    assert!(![134, 135, 139].contains(&code), "{what}: exit {code}, a signal's; stderr: {}", out.stderr);
    if code != 0 {
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: exit {code} with {} lines on stderr: {:?}", lines.len(), out.stderr);
        assert!(lines[0].starts_with("ipckit: "), "{what}: {:?}", lines[0]);
    }
}

/// The issue's reproduction, with Python's `struct`: a priority-ceiling
/// shape in the lock word (offset 64) and the priority-protection kind
/// (0x40 at offset 80), written while nobody holds the lock. glibc would
/// assert on it (`tpp.c`, SIGABRT, exit 134); ipckit refuses it: exit 1,
/// "corrupt", and how to recover. After `ipckit rm`, the lock works.
#[test]
fn a_scribbled_lock_object_is_corrupt_not_an_abort() {
    let s = Scratch::new("lock-scribbled");
    let lock = s.shm("a");
    IPCKIT.run_ok(&["lock", &lock, "--", "true"], None);
    let script = "import struct, sys\n\
                  with open(sys.argv[1], 'r+b') as f:\n    \
                      f.seek(64); f.write(struct.pack('<i', 200 << 19))\n    \
                      f.seek(80); f.write(b'\\x40')\n";
    let py = run(Command::new("python3").args(["-c", script]).arg(file_of(&lock)), None);
    py.expect_code(0, "python scribbler");

    let out = IPCKIT.run(&["lock", &lock, "--timeout", "1s", "--", "echo", "ran"]);
    assert_clean_exit(&out, "lock of a scribbled object");
    out.expect_code(1, "lock of a scribbled object");
    assert_stderr(&out, lock.as_str(), "lock of a scribbled object");
    assert_stderr(&out, "corrupt", "lock of a scribbled object");
    assert_stderr(&out, &format!("remove it with `ipckit rm {}`", lock.as_str()), "lock of a scribbled object");
    assert!(out.stdout.is_empty(), "the command ran: {:?}", out.text());

    IPCKIT.run_ok(&["rm", &lock], None);
    let out = IPCKIT.run_ok(&["lock", &lock, "--timeout", "1s", "--", "echo", "ran"], None);
    assert_eq!(out.text(), "ran\n");
}

/// 200 rounds: a fresh lock object, random bytes or words in its header,
/// its mutex and its data (nobody holding it), then `ipckit lock NAME
/// --timeout 50ms -- true`. Every run ends normally: 0 (locked), 1
/// (corrupt, with the `ipckit rm` hint when the mutex or the header is
/// damaged), 2 only for a header naming another kind, version or ABI (a
/// usage error, as for an object that really is of another kind), 3
/// (timed out: the lock word names a holder); never a signal, never more
/// than one line. (The library's table runs 1,000 rounds in
/// `ipckit/tests/sync/corruption.rs`.)
#[test]
fn scribbled_lock_objects_never_kill_ipckit_lock() {
    let s = Scratch::new("lock-scribble-table");
    let lock = s.shm("t");
    let mut rng = Rng(seed());
    let mut codes = [0u32; 4];
    for round in 0..200 {
        let _ = std::fs::remove_file(file_of(&lock));
        IPCKIT.run_ok(&["lock", &lock, "--", "true"], None);
        let file = std::fs::OpenOptions::new().write(true).open(file_of(&lock)).unwrap();
        let mut did = Vec::new();
        for (start, len, what) in [(0u64, 64u64, "header"), (64, 64, "mutex"), (128, 8, "data")] {
            match rng.below(4) {
                0 => {}
                1 => {
                    let mut bytes = vec![0u8; len as usize];
                    rng.fill(&mut bytes);
                    file.write_all_at(&bytes, start).unwrap();
                    did.push(format!("{what}: random"));
                }
                _ => {
                    // A word, often the lock word (64) or the kind word (80).
                    let at = match (what, rng.below(3)) {
                        ("mutex", 0) => 64,
                        ("mutex", 1) => 80,
                        _ => start + 4 * rng.below(len / 4),
                    };
                    let w = rng.next_u64() as u32 >> (rng.below(4) * 8);
                    file.write_all_at(&w.to_ne_bytes(), at).unwrap();
                    did.push(format!("word {at} = {w:#x}"));
                }
            }
        }
        drop(file);
        let what = format!("round {round} ({})", did.join("; "));
        let out = IPCKIT.run(&["lock", &lock, "--timeout", "50ms", "--", "true"]);
        assert_clean_exit(&out, &what);
        let code = out.status.code().unwrap();
        match code {
            0 | 3 => {}
            1 => {
                if out.stderr.contains("corrupt") {
                    assert_stderr(&out, &format!("ipckit rm {}", lock.as_str()), &what);
                }
            }
            // The header names another kind, version or ABI; or (about once
            // in four million rounds) the lock word names ipckit's own thread.
            2 => assert!(
                ["is not the expected", "is not the supported", "does not match", "already held by this thread"]
                    .iter()
                    .any(|m| out.stderr.contains(m)),
                "{what}: exit 2 for what is not a usage error: {}",
                out.stderr
            ),
            other => panic!("{what}: exit {other}: {}", out.stderr),
        }
        codes[code as usize] += 1;
    }
    eprintln!("exit codes 0/1/2/3: {codes:?}");
    assert!(codes[0] > 0 && codes[1] > 0, "the table never locked or never failed: {codes:?}");
}

/// The lock object truncated (by Python's `os.truncate`) while `ipckit
/// lock` runs its command: the unlock at the end meets the lost pages.
/// ipckit still exits with the command's status (7), says that the object
/// was truncated, and does not die of `SIGBUS` (exit 135).
#[test]
fn lock_object_truncated_while_the_command_runs_keeps_its_status() {
    let s = Scratch::new("lock-truncated");
    let lock = s.shm("b");
    // The command blocks on its standard input until the test closes it.
    let (gate_r, gate_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    let mut cmd = IPCKIT.command();
    cmd.args(["lock", &lock, "--", "sh", "-c", r#"echo "held $$" >&2; cat >/dev/null; exit 7"#])
        .stdin(Stdio::from(gate_r));
    let mut holder = Bg::spawn(&mut cmd);
    holder.wait_line("held ");
    let py = run(
        Command::new("python3").args(["-c", "import os, sys; os.truncate(sys.argv[1], 0)"]).arg(file_of(&lock)),
        None,
    );
    py.expect_code(0, "python truncator");
    drop(gate_w);
    let out = holder.finish();
    assert_eq!(out.status.signal(), None, "killed by a signal ({}); stderr: {}", out.status, out.stderr);
    out.expect_code(7, "lock whose object was truncated");
    assert_stderr(&out, "truncated", "lock whose object was truncated");
    assert_stderr(&out, lock.as_str(), "lock whose object was truncated");
}
