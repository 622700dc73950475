//! POSIX names as long as the kernel and glibc take them, and no longer:
//! the parser's limit for each kind of object (queues, shared memory,
//! named semaphores) is the one measured here by a C program that calls
//! `mq_open`, `shm_open` and `sem_open` directly, and through the command
//! a name at the limit works while one more byte is a usage error (exit
//! 2) naming the limit, refused before the kernel sees it.
//!
//! Every object is a `Scratch` name, removed on drop.

use ipckit::name::PosixKind;
use ipckit_testkit::c::build_c;
use ipckit_testkit::cli::{Ipckit, json_payload};
use ipckit_testkit::program::{assert_stderr, run};
use ipckit_testkit::scratch::{Scratch, SemName};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// The C prober (see the comment at its top).
const NAMES_C: &str = include_str!("c/names.c");

/// A name of `scratch` padded to exactly `len` bytes after the slash.
fn padded(s: &Scratch, what: &str, len: usize) -> String {
    let base = s.name(what);
    assert!(base.len() < len, "{base} is longer than {len}");
    format!("/{base}{}", "n".repeat(len - base.len()))
}

#[test]
fn parser_limits_are_the_kernels() {
    let s = Scratch::new("namelim");
    let bin = build_c(&s, "names", NAMES_C, &["-lrt", "-pthread"]);
    let out = run(std::process::Command::new(&bin).arg(s.name("probe")), None);
    out.expect_code(0, "the C prober");
    let measured: Vec<(String, usize, String)> = out
        .text()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, ' ').collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].to_string())
        })
        .collect();
    let want = [("mq", PosixKind::Queue), ("shm", PosixKind::SharedMemory), ("sem", PosixKind::Semaphore)];
    assert_eq!(measured.len(), want.len(), "{}", out.text());
    for ((kind, longest, next), (name, parsed)) in measured.iter().zip(want) {
        assert_eq!(kind, name);
        assert_eq!(next, "ENAMETOOLONG", "{kind}: the first refused length fails for its length");
        assert_eq!(*longest, parsed.max_len(), "{kind}: the kernel's limit is the parser's");
        let at = padded(&s, "at", *longest);
        assert_eq!(ipckit::name::check_posix_name(&at, parsed), Ok(()), "{kind}");
        let past = padded(&s, "past", longest + 1);
        let e = ipckit::name::check_posix_name(&past, parsed).unwrap_err();
        assert!(e.contains(&format!("the limit is {longest}")), "{kind}: {e}");
    }
}

/// Through the command: a queue name, a shared-memory name and a
/// semaphore name at their limits work; one byte more is exit 2 naming
/// the limit, and nothing is created.
#[test]
fn names_at_the_limit_work_and_one_more_is_a_usage_error() {
    let s = Scratch::new("namecli");
    // Queues: 255.
    let at = padded(&s, "q", 255);
    let ep = s.mq(&at[1 + s.name("").len()..], "?maxmsg=1&msgsize=64");
    assert!(ep.starts_with(&format!("mq:{at}?")), "{ep}");
    IPCKIT.run_ok(&["send", &ep, "--create", "at the limit"], None);
    let got = IPCKIT.run_ok(&["recv", &ep, "--count", "1", "--json", "--timeout", "20s"], None).json_lines();
    assert_eq!(json_payload(&got[0]), b"at the limit");
    let past = format!("mq:{at}n");
    let out = IPCKIT.run(&["send", &past, "--create", "x"]);
    out.expect_code(2, "a 256-byte queue name");
    assert_stderr(&out, "queue name is 256 characters, the limit is 255", "a 256-byte queue name");

    // Shared memory: 255.
    let shm = s.shm(&"m".repeat(255 - s.name("").len()));
    assert_eq!(shm.len(), 256, "{shm}");
    IPCKIT.run_ok(&["shm", "create", &shm, "--size", "4096"], None);
    assert!(std::path::Path::new(&format!("/dev/shm{shm}")).exists());
    IPCKIT.run_ok(&["shm", "rm", &shm], None);
    let past = format!("{shm}m");
    let out = IPCKIT.run(&["shm", "create", &past, "--size", "4096"]);
    out.expect_code(2, "a 256-byte shared-memory name");
    assert_stderr(&out, "name is 256 characters, the limit is 255", "a 256-byte shared-memory name");
    assert!(!std::path::Path::new(&format!("/dev/shm{past}")).exists());

    // Named semaphores: 251 (glibc's /dev/shm/sem.NAME).
    let sem = SemName::new(&s, &"s".repeat(251 - s.name("").len()));
    assert_eq!(sem.0.len(), 252, "{}", sem.0);
    IPCKIT.run_ok(&["sem", "create", &sem.0, "--value", "1"], None);
    assert!(std::path::Path::new(&sem.file()).exists());
    IPCKIT.run_ok(&["sem", "wait", &sem.0, "--timeout", "20s"], None);
    let past = SemName(format!("{}s", sem.0));
    for args in [vec!["sem", "create", past.0.as_str()], vec!["sem", "post", past.0.as_str()]] {
        let out = IPCKIT.run(&args);
        out.expect_code(2, &format!("{args:?}"));
        assert_stderr(&out, "semaphore name is 252 characters, the limit is 251", &format!("{args:?}"));
        assert_stderr(&out, "/dev/shm/sem.NAME", &format!("{args:?}"));
    }
    assert!(!std::path::Path::new(&past.file()).exists());
}
