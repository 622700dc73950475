//! Messages that say what is wrong, and no silent no-ops: `--ready-fd`
//! with a standard stream, failed writes to standard output, `clean` of a
//! name it does not remove, `ls` without `/dev/mqueue`, and the real range
//! of a semaphore's value.

use std::path::Path;
use std::process::{Command, Stdio};

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::program::{Bg, assert_stderr, run};
use ipckit_testkit::scratch::{Scratch, SemName};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// `sh -c 'exec ipckit ARGS... >/dev/full'`: ipckit with standard output
/// on a device where every write fails with ENOSPC.
fn to_dev_full(args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("exec \"$@\" >/dev/full").arg("sh").arg(IPCKIT.path()).args(args).stdin(Stdio::null());
    cmd
}

/// `--ready-fd 0`, `1` or `2`: exit 2, and the message says that the
/// standard streams cannot be used, naming the option and the number
/// (before: "--ready-fd 1: bad file descriptor (EBADF)").
#[test]
fn ready_fd_refuses_standard_streams_saying_so() {
    let s = Scratch::new("ready-fd-std");
    let sock = format!("unix:{}", s.path("s.sock").display());
    for (n, stream) in [("0", "standard input"), ("1", "standard output"), ("2", "standard error")] {
        let out = IPCKIT.run(&["recv", &sock, "--ready-fd", n]);
        out.expect_code(2, &format!("--ready-fd {n}"));
        assert_stderr(&out, &format!("'--ready-fd <N>': {n} is {stream}"), "--ready-fd");
        assert_stderr(&out, "standard streams 0, 1 and 2 cannot be used", "--ready-fd");
        assert!(!s.path("s.sock").exists(), "nothing was bound");
    }
    let out = IPCKIT.run(&["recv", &sock, "--ready-fd", "917"]);
    out.expect_code(2, "--ready-fd 917");
    assert_stderr(&out, "--ready-fd 917: descriptor 917 is not open", "a closed descriptor");
}

/// A write to standard output that fails (`> /dev/full`): exit 1, and the
/// message names stdout (before: recv said "No space left on device (os
/// error 28)"; ls, sem value, shm info and bench panicked, exit 101).
#[test]
fn failed_writes_to_stdout_name_stdout() {
    let s = Scratch::new("dev-full");
    let ep = format!("unix:@{}", s.name("u"));
    let mut recv = Bg::spawn(&mut to_dev_full(&["recv", &ep, "--count", "1"]));
    recv.ready();
    IPCKIT.run_ok(&["send", &ep, "hello"], None);
    let out = recv.finish();
    out.expect_code(1, "recv > /dev/full");
    assert_stderr(&out, "write stdout: no space left on device (ENOSPC)", "recv > /dev/full");

    let sem = SemName::new(&s, "sem");
    IPCKIT.run_ok(&["sem", "create", &sem.0, "--value", "3"], None);
    let seg = s.shm("seg");
    IPCKIT.run_ok(&["shm", "create", &seg, "--size", "4096"], None);
    let cases: [&[&str]; 7] = [
        &["ls"],
        &["ls", "--json"],
        &["sem", "value", &sem.0],
        &["clean", "--dry-run"],
        &["shm", "info", &seg],
        &["shm", "info", &seg, "--json"],
        &["bench", "--quick", "--filter", "pipe", "--trials", "1", "--iters", "2"],
    ];
    for args in cases {
        let out = run(&mut to_dev_full(args), None);
        if args == ["clean", "--dry-run"] && out.status.code() == Some(0) {
            // Nothing stale here, nothing written: nothing to fail.
            continue;
        }
        out.expect_code(1, &format!("{args:?} > /dev/full"));
        assert_stderr(&out, "write stdout: no space left on device (ENOSPC)", &format!("{args:?} > /dev/full"));
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
}

/// `clean NAME` says, for each name it does not remove, why (no such
/// object, not an ipckit object, in use), and exits 1; names it removes
/// are printed. A System V name is found whichever way its key is written
/// (before: a path key was never matched, and `clean` said "0 stale
/// object(s) removed", exit 0).
#[test]
fn clean_reports_the_names_it_does_not_remove() {
    let s = Scratch::new("clean-names");
    let missing = s.shm("missing");
    let out = IPCKIT.run(&["clean", &missing]);
    out.expect_code(1, "clean of a name that does not exist");
    assert_stderr(&out, &format!("clean {}: no such object", &*missing), "no such object");
    assert!(out.stdout.is_empty());

    let plain = s.shm("plain");
    IPCKIT.run_ok(&["shm", "create", &plain, "--size", "64"], None);
    let sem = SemName::new(&s, "sem");
    IPCKIT.run_ok(&["sem", "create", &sem.0], None);
    let live = s.shm("live");
    let mut holder = Bg::spawn(
        IPCKIT.command().args(["lock", &live, "--", "sh", "-c", "echo held >&2; exec cat"]).stdin(Stdio::piped()),
    );
    holder.wait_line("held");
    let stale = s.sysv_shm(7);
    IPCKIT.run_ok(&["lock", &stale, "--", "true"], None);

    let names = [&*missing, &*plain, &sem.0, &*live, &*stale];
    for dry in [true, false] {
        let mut args = vec!["clean"];
        if dry {
            args.push("--dry-run");
        }
        args.extend_from_slice(&names);
        let out = IPCKIT.run(&args);
        out.expect_code(1, &format!("{args:?}"));
        let reasons = [
            (&*missing, "no such object".to_string()),
            (
                &*plain,
                format!(
                    "not removed: not an ipckit object (a shm object); clean removes only stale ipckit objects (remove it with `ipckit rm {}`)",
                    &*plain
                ),
            ),
            (
                &sem.0,
                format!(
                    "not removed: not an ipckit object (a sem object); clean removes only stale ipckit objects (remove it with `ipckit sem rm {}`)",
                    sem.0
                ),
            ),
            (&*live, "not removed: in use (a process holds it)".to_string()),
        ];
        for (name, why) in reasons {
            assert_stderr(&out, &format!("clean {name}: {why}"), &format!("{args:?}"));
        }
        let verb = if dry { "would remove" } else { "removed" };
        let text = out.text();
        assert_eq!(text.lines().count(), 1, "{args:?}: one object removed: {text}");
        assert!(text.starts_with(&format!("{verb} sysv:0x")), "{args:?}: the stale System V lock: {text}");
        assert_eq!(IPCKIT.run(&["shm", "info", &stale]).status.code(), Some(if dry { 0 } else { 1 }), "{args:?}");
    }
    assert!(Path::new(&format!("/dev/shm{}", &*plain)).exists() && Path::new(&sem.file()).exists());
    assert!(Path::new(&format!("/dev/shm{}", &*live)).exists(), "the live lock stays");
    drop(holder);

    // Everything named was removed: exit 0.
    IPCKIT.run_ok(&["lock", &stale, "--", "true"], None);
    let out = IPCKIT.run(&["clean", &stale]);
    out.expect_code(0, "clean of a stale object");
}

/// Without an mqueue file system at `/dev/mqueue`, `ls` says on stderr
/// that POSIX queues are not listed; with `--json`, stdout is still only
/// JSON lines. Run in a private mount namespace (`unshare -m`), where
/// `/dev/mqueue` is unmounted, or replaced by a plain tmpfs.
#[test]
fn ls_says_when_posix_queues_cannot_be_listed() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: unshare -m needs root");
        return;
    }
    for setup in ["umount /dev/mqueue 2>/dev/null; true", "mount -t tmpfs none /dev/mqueue"] {
        for json in [false, true] {
            let script = format!("{setup} && exec \"$@\"");
            let mut cmd = Command::new("unshare");
            cmd.args(["-m", "sh", "-c", &script, "sh", IPCKIT.path(), "ls"]);
            if json {
                cmd.arg("--json");
            }
            let out = run(&mut cmd, None);
            out.expect_code(0, &format!("{setup}; ls (json: {json})"));
            assert_stderr(&out, "note: no mqueue file system is mounted at /dev/mqueue", setup);
            assert_stderr(&out, "POSIX message queues (mq:) are not listed", setup);
            if json {
                let _ = out.json_lines();
            }
            assert!(!out.text().contains("note"), "the note goes to stderr only: {}", out.text());
        }
    }
    // Where it is mounted, no note.
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .expect("mounts")
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/mqueue") && l.split_whitespace().nth(2) == Some("mqueue"));
    if mounted {
        let out = IPCKIT.run(&["ls", "--json"]);
        out.expect_code(0, "ls");
        assert!(!out.stderr.contains("note"), "{}", out.stderr);
    }
}

/// `sem create --value` out of range states the real range: 0..=2147483647
/// for POSIX (SEM_VALUE_MAX), 0..=32767 for System V (before: clap's
/// "0..=4294967295", or "unexpected argument '-1'").
#[test]
fn sem_value_out_of_range_states_the_real_range() {
    let s = Scratch::new("sem-range");
    let sem = SemName::new(&s, "sem");
    let set = format!("sysv:{}?id=9", s.dir().display());
    for (name, value, range) in [
        (&sem.0, "-1", "0..=2147483647"),
        (&sem.0, "2147483648", "0..=2147483647"),
        (&sem.0, "4294967296", "0..=2147483647"),
        (&set, "-1", "0..=32767"),
        (&set, "32768", "0..=32767"),
    ] {
        let out = IPCKIT.run(&["sem", "create", name, "--value", value]);
        out.expect_code(2, &format!("sem create {name} --value {value}"));
        assert_stderr(&out, &format!("--value {value} is outside {range}"), "sem create --value");
        assert!(!out.stderr.contains("4294967295"), "{}", out.stderr);
    }
    IPCKIT.run_ok(&["sem", "create", &sem.0, "--value", "2147483647"], None);
    let out = IPCKIT.run_ok(&["sem", "value", &sem.0], None);
    assert_eq!(out.text(), "2147483647\n");
}
