//! `ipckit shm` with a program that was not written with ipckit: a C
//! program (`c/shm.c`) that calls `shm_open`/`ftruncate`/`mmap`,
//! `open`/`ftruncate`/`mmap` and `shmget`/`shmat`/`shmdt`/`shmctl`
//! directly (its System V key is its own `ftok` of the path and id that the
//! test gives ipckit as `sysv:PATH?id=N`). Both directions for the three
//! kinds, byte-exact; `ipckit shm info` reporting the C program's attach
//! count and pids while it holds a segment attached (synchronised on the
//! lines it prints, never on sleeps); permissions the C program chose, as
//! ipckit reports and warns about them.
//!
//! Every object is named after the test's `Scratch` and removed with
//! `ipckit rm` on drop ([`Cleanup`]), also when a test fails; every process
//! has the 30 s hang guard and is killed if the test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;

use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::c::{build_c, pattern};
use ipckit_testkit::child::Guarded;
use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::cli::shm::{Cleanup, Kind};
use ipckit_testkit::program::{Out, assert_stderr, run};
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// The C peer (see the comment at its top for its arguments).
const SHM_C: &str = include_str!("c/shm.c");

fn shm_bin(s: &Scratch) -> PathBuf {
    build_c(s, "shm", SHM_C, &["-lrt"])
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the C program to completion.
fn c_run(bin: &Path, args: &[String]) -> Out {
    run(Command::new(bin).args(args), None)
}

/// Runs the C program; it must succeed.
#[track_caller]
fn c_ok(bin: &Path, args: &[String]) -> Out {
    let out = c_run(bin, args);
    out.expect_code(0, &format!("C shm {args:?}"));
    out
}

/// The C program's `check` must print "LEN HEX" for exactly `want`.
#[track_caller]
fn assert_c_sees(out: &Out, want: &[u8]) {
    let text = out.text();
    let line = text.strip_suffix('\n').unwrap_or_else(|| panic!("one line from the C program: {text:?}"));
    assert_eq!(line, format!("{} {}", want.len(), hex(want)), "what the C program read");
}

/// The C program writes the pattern through its own calls; `ipckit shm
/// read` reads it byte-exactly, whole and in slices; `info` reports what
/// the C program set (and, for System V, that it created it); ipckit opens
/// the 0600 object without a warning; after `ipckit shm rm` the C program
/// finds nothing.
fn c_writes_ipckit_reads(kind: Kind) {
    let s = Scratch::new(&format!("shmi-c2i-{kind:?}"));
    let bin = shm_bin(&s);
    let obj = Cleanup::new(IPCKIT, &s, kind, 1);
    let name = obj.name();
    const SIZE: usize = 10_000;
    let want = pattern(SIZE, 3);

    let created = c_ok(&bin, &obj.c_args("create", &["10000", "600", "3"]));
    assert_eq!(created.text(), "created 10000\n");

    let whole = IPCKIT.run_ok(&["shm", "read", name], None).stdout;
    assert_eq!(whole.len(), SIZE, "ipckit reads the size the C program set");
    assert!(whole == want, "ipckit read differs from the C pattern at {:?}", {
        whole.iter().zip(&want).position(|(a, b)| a != b)
    });
    let slice = IPCKIT.run_ok(&["shm", "read", name, "--offset", "4093", "--len", "10"], None).stdout;
    assert_eq!(slice, want[4093..4103], "a slice across the page boundary");
    let tail = IPCKIT.run_ok(&["shm", "read", name, "--offset", "9999"], None).stdout;
    assert_eq!(tail, want[9999..], "the last byte");

    let v = IPCKIT.shm_info(name);
    assert_eq!(v["size"], SIZE, "{v}");
    assert_eq!(v["mode"], "0600", "{v}");
    assert_eq!(v["uid"], rustix::process::geteuid().as_raw(), "{v}");
    if kind == Kind::Sysv {
        assert_eq!(v["creator_pid"], created.pid, "the C program created it: {v}");
        assert_eq!(v["attached"], 0, "{v}");
    }

    let reopen = IPCKIT.run_ok(&["shm", "create", name, "--size", "10000"], None);
    assert_stderr(&reopen, &format!("opened existing {name} (10000 bytes)"), "open-or-create of the C object");
    assert!(!reopen.stderr.contains("warning"), "no warning for a 0600 object: {}", reopen.stderr);
    let refused = run(IPCKIT.command().args(["shm", "create", name, "--size", "10000", "--exclusive"]), None);
    refused.expect_code(1, "create --exclusive of the C object");
    assert_stderr(&refused, "exists", "create --exclusive of the C object");

    IPCKIT.run_ok(&["shm", "rm", name], None);
    let gone = c_run(&bin, &obj.c_args("check", &["0", "1", "3"]));
    gone.expect_code(1, "C check after ipckit shm rm");
    assert_stderr(&gone, "No such file or directory", "C check after ipckit shm rm");
}

#[test]
fn c_writes_ipckit_reads_posix() {
    c_writes_ipckit_reads(Kind::Posix);
}

#[test]
fn c_writes_ipckit_reads_sysv() {
    c_writes_ipckit_reads(Kind::Sysv);
}

#[test]
fn c_writes_ipckit_reads_file() {
    c_writes_ipckit_reads(Kind::File);
}

/// `ipckit shm create` and `ipckit shm write` (at an offset, across a page
/// boundary); the C program reads it with its own calls, checks the
/// pattern itself and prints it; the bytes around are untouched zeros and
/// the size is the one ipckit was given. A wrong seed is a mismatch, so
/// the check is real.
fn ipckit_writes_c_reads(kind: Kind) {
    let s = Scratch::new(&format!("shmi-i2c-{kind:?}"));
    let bin = shm_bin(&s);
    let obj = Cleanup::new(IPCKIT, &s, kind, 1);
    let name = obj.name();
    let created = IPCKIT.run_ok(&["shm", "create", name, "--size", "6000", "--exclusive"], None);
    let data = pattern(3000, 42);
    IPCKIT.run_ok(&["shm", "write", name, "--offset", "1000"], Some(&data));

    let out = c_ok(&bin, &obj.c_args("check", &["1000", "3000", "42"]));
    assert_c_sees(&out, &data);
    // Zeros on both sides (the pattern with seed 0 starts 00).
    for offset in ["999", "4000", "5999"] {
        let out = c_ok(&bin, &obj.c_args("check", &[offset, "1", "0"]));
        assert_c_sees(&out, &[0]);
    }
    // The C program maps exactly 6000 bytes.
    let past = c_run(&bin, &obj.c_args("check", &["6000", "1", "0"]));
    past.expect_code(1, "C check past the end");
    assert_stderr(&past, "past the end of 6000 bytes", "C check past the end");
    // The C check is not vacuous: another seed does not match.
    let wrong = c_run(&bin, &obj.c_args("check", &["1000", "3000", "43"]));
    wrong.expect_code(1, "C check with the wrong seed");
    assert_stderr(&wrong, "byte 1000 is 0x2a, the pattern has 0x2b", "C check with the wrong seed");

    if kind == Kind::Sysv {
        // The last to attach was the C program, the creator ipckit.
        let last = c_ok(&bin, &obj.c_args("check", &["1000", "1", "42"]));
        let v = IPCKIT.shm_info(name);
        assert_eq!(v["creator_pid"], created.pid, "{v}");
        assert_eq!(v["last_pid"], last.pid, "{v}");
        assert_eq!(v["attached"], 0, "{v}");
    }
    IPCKIT.run_ok(&["rm", name], None);
    let gone = c_run(&bin, &obj.c_args("check", &["0", "1", "0"]));
    gone.expect_code(1, "C check after ipckit rm");
}

#[test]
fn ipckit_writes_c_reads_posix() {
    ipckit_writes_c_reads(Kind::Posix);
}

#[test]
fn ipckit_writes_c_reads_sysv() {
    ipckit_writes_c_reads(Kind::Sysv);
}

#[test]
fn ipckit_writes_c_reads_file() {
    ipckit_writes_c_reads(Kind::File);
}

/// A C program that holds a System V segment attached (`shm hold`), driven
/// by the lines it prints on stdout and a line on its stdin. Killed if the
/// test fails.
struct Holder {
    guard: Guarded,
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Holder {
    fn spawn(bin: &Path, args: &[String]) -> Holder {
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut guard = Guarded::spawn(&mut cmd);
        let pid = guard.child().id();
        let stdin = guard.child().stdin.take();
        let out = guard.child().stdout.take().expect("stdout is piped");
        let mut err = guard.child().stderr.take().expect("stderr is piped");
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (err_tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = err_tx.send(text);
        });
        Holder { guard, pid, stdin, lines, stderr }
    }

    /// Waits for the next stdout line, which must start with `prefix`;
    /// returns the rest.
    #[track_caller]
    fn expect_line(&mut self, prefix: &str) -> String {
        match self.lines.recv_timeout(HANG_GUARD) {
            Ok(line) => match line.strip_prefix(prefix) {
                Some(rest) => rest.to_string(),
                None => panic!("expected a line {prefix:?} from the C holder, got {line:?}"),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no line {prefix:?} within {HANG_GUARD:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.guard.child().try_wait();
                let err = self.stderr.recv_timeout(HANG_GUARD).unwrap_or_default();
                panic!("the C holder closed stdout before {prefix:?} (status {status:?}); stderr:\n{err}")
            }
        }
    }

    /// Sends the line that makes it detach, waits for "detached" and for
    /// its exit (status 0).
    #[track_caller]
    fn release(mut self) {
        let mut stdin = self.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("write to the C holder");
        drop(stdin);
        self.expect_line("detached");
        let status = self.guard.wait();
        let err = self.stderr.recv_timeout(HANG_GUARD).unwrap_or_default();
        assert!(status.success(), "C holder: {status}; stderr:\n{err}");
    }
}

/// `ipckit shm info` counts the C program's attachment: 0, 1 while one
/// holder is attached, 2 with a second, then 1 and 0 as they detach; the
/// last pid follows them, the creator stays the `ipckit shm create`
/// process. Synchronised on the "attached" and "detached" lines.
#[test]
fn sysv_attached_count_follows_c_holders() {
    let s = Scratch::new("shmi-attach");
    let bin = shm_bin(&s);
    let obj = Cleanup::new(IPCKIT, &s, Kind::Sysv, 1);
    let name = obj.name();
    let created = IPCKIT.run_ok(&["shm", "create", name, "--size", "4096", "--exclusive"], None);
    let check = |attached: u64, last: u32, when: &str| {
        let v = IPCKIT.shm_info(name);
        assert_eq!(v["attached"], attached, "{when}: {v}");
        assert_eq!(v["last_pid"], last, "{when}: {v}");
        assert_eq!(v["creator_pid"], created.pid, "{when}: {v}");
    };
    check(0, created.pid, "after create");

    let mut first = Holder::spawn(&bin, &obj.c_args("hold", &[]));
    let shmid = first.expect_line("attached ");
    check(1, first.pid, "one C holder attached");

    let mut second = Holder::spawn(&bin, &obj.c_args("hold", &[]));
    assert_eq!(second.expect_line("attached "), shmid, "the same segment");
    check(2, second.pid, "two C holders attached");
    // ipckit's own attachment comes and goes: the count is back to 2.
    let writer = IPCKIT.run_ok(&["shm", "write", name], Some(b"while held"));
    check(2, writer.pid, "after an ipckit write");

    let (first_pid, second_pid) = (first.pid, second.pid);
    second.release();
    check(1, second_pid, "the second detached");
    first.release();
    check(0, first_pid, "both detached");
    let bytes = IPCKIT.run_ok(&["shm", "read", name, "--len", "10"], None).stdout;
    assert_eq!(bytes, b"while held");
}

/// `ipckit shm rm` while the C program holds the segment attached: the name
/// is gone at once (info and a new create see no segment by that key), the
/// holder keeps its mapping and detaches normally, and then the segment is
/// gone from the kernel's list.
#[test]
fn sysv_rm_while_attached_removes_at_last_detach() {
    let s = Scratch::new("shmi-rmattached");
    let bin = shm_bin(&s);
    let obj = Cleanup::new(IPCKIT, &s, Kind::Sysv, 1);
    let name = obj.name();
    IPCKIT.run_ok(&["shm", "create", name, "--size", "4096", "--exclusive"], None);
    let mut holder = Holder::spawn(&bin, &obj.c_args("hold", &[]));
    let shmid = holder.expect_line("attached ");
    let listed = || {
        let list = std::fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
        list.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(shmid.as_str()))
    };
    assert!(listed(), "segment {shmid} is in /proc/sysvipc/shm");

    IPCKIT.run_ok(&["shm", "rm", name], None);
    let out = run(IPCKIT.command().args(["shm", "info", name]), None);
    out.expect_code(1, "info after rm");
    assert_stderr(&out, name, "info after rm");
    assert!(listed(), "segment {shmid} stays while attached");

    holder.release();
    assert!(!listed(), "segment {shmid} is gone after the last detach");
}

/// A segment the C program creates with mode 0644: ipckit reports the
/// mode, reads it, and `ipckit shm create NAME --size N` (open-or-create of
/// the existing, wider-mode segment) succeeds with a warning on stderr
/// naming the segment and the mode.
fn wide_mode_warns(kind: Kind) {
    let s = Scratch::new(&format!("shmi-mode-{kind:?}"));
    let bin = shm_bin(&s);
    let obj = Cleanup::new(IPCKIT, &s, kind, 1);
    let name = obj.name();
    c_ok(&bin, &obj.c_args("create", &["512", "644", "9"]));
    assert_eq!(IPCKIT.shm_info(name)["mode"], "0644");

    let read = IPCKIT.run_ok(&["shm", "read", name], None);
    assert_eq!(read.stdout, pattern(512, 9), "ipckit reads the 0644 segment");

    let reopen = IPCKIT.run_ok(&["shm", "create", name, "--size", "512"], None);
    let warning = reopen
        .stderr
        .lines()
        .find(|l| l.contains("warning"))
        .unwrap_or_else(|| panic!("no warning for a 0644 segment:\n{}", reopen.stderr));
    assert!(
        warning.contains(name) && warning.contains("0644"),
        "the warning names the segment and the mode: {warning}"
    );
    assert_stderr(&reopen, &format!("opened existing {name} (512 bytes)"), "open-or-create");
    // Opening changed neither the mode nor the bytes.
    assert_eq!(IPCKIT.shm_info(name)["mode"], "0644");
    let out = c_ok(&bin, &obj.c_args("check", &["0", "512", "9"]));
    assert_c_sees(&out, &pattern(512, 9));
}

#[test]
fn wide_mode_warns_posix() {
    wide_mode_warns(Kind::Posix);
}

#[test]
fn wide_mode_warns_sysv() {
    wide_mode_warns(Kind::Sysv);
}

#[test]
fn wide_mode_warns_file() {
    wide_mode_warns(Kind::File);
}
