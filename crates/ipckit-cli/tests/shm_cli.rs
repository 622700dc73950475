//! `ipckit shm create/write/read/info/rm` and `ipckit rm` on the three
//! kinds of named shared memory, end to end through the binary: POSIX
//! objects (`/NAME`), System V segments (`sysv:PATH?id=N`) and mapped files
//! (`file:/PATH`). Round trips are byte-exact (binary data, offsets, page
//! boundaries, the last byte); `info` is checked field by field (System V
//! creator and last pids against the processes that really ran); bad input
//! is checked for its exit code (0 ok, 1 error, 2 usage or invalid), for a
//! message naming the value, and for having changed nothing.
//!
//! Segments persist, so every step is a process run to completion: no
//! readiness waits. Every process has the 30 s hang guard. Every object is
//! named after the test's `Scratch` (`/ipckit-t-PID-TEST-...`, ftok of the
//! scratch directory, files inside it) so that the CI sweep sees leaks, and
//! a [`Cleanup`] guard removes it with `ipckit rm`, also when a test fails.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::cli::shm::{Cleanup, KINDS, Kind};
use ipckit_testkit::data::Rng;
use ipckit_testkit::program::{Out, assert_stderr, run};
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// Asserts a failure: exit `code`, nothing on stdout, and a message that
/// mentions every one of `needles`.
#[track_caller]
fn assert_fails(out: &Out, code: i32, needles: &[&str], what: &str) {
    out.expect_code(code, what);
    assert!(out.stdout.is_empty(), "{what}: nothing on stdout expected, got {:?}", out.stdout);
    for n in needles {
        assert_stderr(out, n, what);
    }
}

/// `ipckit shm create NAME --size SIZE --exclusive`; returns the process
/// (its pid is the System V creator pid).
#[track_caller]
fn create(name: &str, size: usize) -> Out {
    let size = size.to_string();
    let out = IPCKIT.run_ok(&["shm", "create", name, "--size", &size, "--exclusive"], None);
    assert_stderr(&out, &format!("created {name} ({size} bytes)"), "create");
    out
}

/// The whole segment, or `offset`/`len` of it, as `ipckit shm read` prints it.
#[track_caller]
fn read(name: &str, offset: Option<usize>, len: Option<usize>) -> Vec<u8> {
    let mut args = vec!["shm".to_string(), "read".into(), name.into()];
    if let Some(o) = offset {
        args.extend(["--offset".into(), o.to_string()]);
    }
    if let Some(l) = len {
        args.extend(["--len".into(), l.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    IPCKIT.run_ok(&args, None).stdout
}

/// `ipckit shm write NAME --offset OFFSET` with `data` on standard input.
#[track_caller]
fn write(name: &str, offset: usize, data: &[u8]) -> Out {
    IPCKIT.run_ok(&["shm", "write", name, "--offset", &offset.to_string()], Some(data))
}

fn my_uid() -> u64 {
    u64::from(rustix::process::geteuid().as_raw())
}

/// Binary test data: every byte value (NUL, newline, 0xff, invalid UTF-8),
/// then bytes from a seeded generator.
fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut data: Vec<u8> = (0..=255u8).cycle().take(len.min(256)).collect();
    let mut rest = vec![0u8; len - data.len()];
    Rng(seed).fill(&mut rest);
    data.extend(rest);
    data
}

/// Asserts that the object is gone: `info` and `read` fail with exit 1
/// naming it, and its file (POSIX, `file:`) no longer exists.
#[track_caller]
fn assert_gone(obj: &Cleanup) {
    for args in [vec!["shm", "info", obj.name()], vec!["shm", "read", obj.name()]] {
        let out = IPCKIT.run(&args);
        assert_fails(&out, 1, &[obj.name(), "no such"], &format!("{args:?} of a removed object"));
    }
    if let Some(p) = obj.path() {
        assert!(!p.exists(), "{} still exists", p.display());
    }
}

/// Create, write (binary data at several offsets, across a page boundary,
/// up to the last byte), read back whole and in slices, byte-exact, `info`
/// field by field, `shm rm`, and the object is gone.
fn round_trip(kind: Kind) {
    let s = Scratch::new(&format!("shm-rt-{kind:?}"));
    let obj = Cleanup::new(IPCKIT, &s, kind, 1);
    let name = obj.name();
    // Not a multiple of the page size: the size is the one asked for.
    const SIZE: usize = 5000;
    let created = create(name, SIZE);

    // A new segment is zero-filled.
    assert_eq!(read(name, None, None), vec![0u8; SIZE], "a new segment reads as zeros");

    let mut expect = vec![0u8; SIZE];
    let head = binary(300, 1);
    write(name, 0, &head);
    expect[..300].copy_from_slice(&head);
    // Across the page boundary at 4096.
    let middle = binary(200, 2);
    write(name, 4000, &middle);
    expect[4000..4200].copy_from_slice(&middle);
    // Up to the very last byte.
    let tail = binary(100, 3);
    write(name, SIZE - 100, &tail);
    expect[SIZE - 100..].copy_from_slice(&tail);
    // Overwrite inside earlier data, at an odd offset.
    write(name, 7, b"\x00\xff\n\r");
    expect[7..11].copy_from_slice(b"\x00\xff\n\r");
    // An empty write changes nothing and succeeds.
    write(name, 10, b"");

    let whole = read(name, None, None);
    assert_eq!(whole.len(), SIZE);
    assert!(whole == expect, "read back differs from what was written (first difference at {:?})", {
        whole.iter().zip(&expect).position(|(a, b)| a != b)
    });
    assert_eq!(read(name, Some(4090), Some(20)), expect[4090..4110], "a slice across the page boundary");
    assert_eq!(read(name, Some(3), None), expect[3..], "from an offset to the end");
    assert_eq!(read(name, None, Some(11)), expect[..11], "a prefix");
    assert_eq!(read(name, Some(SIZE - 1), Some(1)), expect[SIZE - 1..], "the last byte");
    assert_eq!(read(name, Some(SIZE), None), b"", "nothing is left at the end");

    // What other tools see: the file's bytes and mode.
    if let Some(p) = obj.path() {
        assert_eq!(std::fs::read(p).expect("read the backing file"), expect, "{} holds the bytes", p.display());
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", p.display());
    }

    // The last process to attach a System V segment was the last reader.
    let last_reader = run(IPCKIT.command().args(["shm", "read", name, "--len", "1"]), None);
    last_reader.expect_code(0, "read");
    let v = IPCKIT.shm_info(name);
    assert_eq!(v["name"], name, "{v}");
    assert_eq!(v["size"], SIZE, "{v}");
    assert_eq!(v["uid"], my_uid(), "{v}");
    assert_eq!(v["mode"], "0600", "{v}");
    if kind == Kind::Sysv {
        assert_eq!(v["attached"], 0, "nobody holds it attached: {v}");
        assert_eq!(v["creator_pid"], created.pid, "the creator is the `ipckit shm create` process: {v}");
        assert_eq!(v["last_pid"], last_reader.pid, "the last to attach or detach is the last reader: {v}");
    } else {
        for field in ["attached", "creator_pid", "last_pid"] {
            assert!(v.get(field).is_none(), "{field} is for System V only: {v}");
        }
    }
    assert_eq!(v.as_object().unwrap().len(), if kind == Kind::Sysv { 7 } else { 4 }, "fields of {v}");

    // The text form says the same.
    let text = IPCKIT.run_ok(&["shm", "info", name], None).text();
    for line in
        [format!("name: {name}"), format!("size: {SIZE}"), format!("owner: uid {}", my_uid()), "mode: 0600".into()]
    {
        assert!(text.lines().any(|l| l == line), "info lacks {line:?}:\n{text}");
    }
    if kind == Kind::Sysv {
        for line in [
            "attached: 0".to_string(),
            format!("creator pid: {}", created.pid),
            format!("last pid: {}", last_reader.pid),
        ] {
            assert!(text.lines().any(|l| l == line), "info lacks {line:?}:\n{text}");
        }
    }

    IPCKIT.run_ok(&["shm", "rm", name], None);
    assert_gone(&obj);
    let again = IPCKIT.run(&["shm", "rm", name]);
    assert_fails(&again, 1, &[name, "no such"], "shm rm of a removed object");
}

#[test]
fn round_trip_posix() {
    round_trip(Kind::Posix);
}

#[test]
fn round_trip_sysv() {
    round_trip(Kind::Sysv);
}

#[test]
fn round_trip_file() {
    round_trip(Kind::File);
}

/// Creating without `--exclusive` opens an existing object large enough
/// (its data kept, its size unchanged); one too small is an error (exit 1)
/// and is left as it was.
#[test]
fn create_without_exclusive_opens_existing() {
    let s = Scratch::new("shm-ooc");
    for kind in KINDS {
        let obj = Cleanup::new(IPCKIT, &s, kind, 1);
        let name = obj.name();
        let first = IPCKIT.run_ok(&["shm", "create", name, "--size", "64"], None);
        assert_stderr(&first, &format!("created {name} (64 bytes)"), "open-or-create of a new object");
        write(name, 0, b"kept");
        for size in ["64", "10"] {
            let again = IPCKIT.run_ok(&["shm", "create", name, "--size", size], None);
            assert_stderr(&again, &format!("opened existing {name} (64 bytes)"), &format!("create --size {size}"));
            assert!(!again.stderr.contains("warning"), "no warning for a 0600 object: {}", again.stderr);
        }
        let bigger = IPCKIT.run(&["shm", "create", name, "--size", "65"]);
        assert_fails(&bigger, 1, &[name, "64 bytes", "65"], "open-or-create of an object too small");
        let bytes = read(name, None, None);
        assert_eq!(bytes.len(), 64, "the size is unchanged");
        assert_eq!(&bytes[..4], b"kept", "the data is kept");
        assert!(bytes[4..].iter().all(|&b| b == 0));
        IPCKIT.run_ok(&["shm", "rm", name], None);
        assert_gone(&obj);
    }
}

/// `--mode` is applied exactly, whatever the umask, and reopening an
/// object with a wider mode warns on stderr.
#[test]
fn mode_is_exact_and_wide_modes_warn() {
    let s = Scratch::new("shm-mode");
    for kind in KINDS {
        let obj = Cleanup::new(IPCKIT, &s, kind, 1);
        let name = obj.name();
        // A umask that would take the group and other bits away.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "umask 077 && exec \"$0\" \"$@\"", IPCKIT.path()]);
        cmd.args(["shm", "create", name, "--size", "100", "--mode", "0664", "--exclusive"]);
        run(&mut cmd, None).expect_code(0, "create --mode 0664 under umask 077");
        assert_eq!(IPCKIT.shm_info(name)["mode"], "0664", "{kind:?}");
        if let Some(p) = obj.path() {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o664, "{}", p.display());
        }
        let again = IPCKIT.run_ok(&["shm", "create", name, "--size", "100"], None);
        assert_stderr(&again, "warning", "reopening a 0664 object");
        assert_stderr(&again, "0664", "the warning names the mode");
        assert_stderr(&again, name, "the warning names the object");
        assert_stderr(&again, &format!("opened existing {name}"), "reopening");
        // Reading (not creating) needs no warning to succeed.
        assert_eq!(read(name, None, None), vec![0u8; 100]);
    }
    let never = Cleanup::new(IPCKIT, &s, Kind::Posix, 2);
    let bad = IPCKIT.run(&["shm", "create", never.name(), "--size", "1", "--mode", "0999"]);
    assert_fails(&bad, 2, &["0999"], "create --mode 0999");
    let bad = IPCKIT.run(&["shm", "create", never.name(), "--size", "1", "--mode", "1777"]);
    assert_fails(&bad, 2, &["1777"], "create --mode 1777");
    assert!(!never.path().unwrap().exists(), "nothing was created");
}

/// Bad sizes, offsets and lengths: exit 2 naming the value and the object,
/// and nothing written or created.
#[test]
fn out_of_range_is_invalid_and_changes_nothing() {
    let s = Scratch::new("shm-range");
    for kind in KINDS {
        let obj = Cleanup::new(IPCKIT, &s, kind, 1);
        let name = obj.name();
        create(name, 100);
        let before = binary(100, 7);
        write(name, 0, &before);

        // Size 0: refused before anything exists.
        let zero = Cleanup::new(IPCKIT, &s, kind, 2);
        for extra in [&[][..], &["--exclusive"][..]] {
            let mut args = vec!["shm", "create", zero.name(), "--size", "0"];
            args.extend_from_slice(extra);
            let out = IPCKIT.run(&args);
            assert_fails(&out, 2, &[zero.name(), "size 0"], &format!("{args:?}"));
        }
        let out = IPCKIT.run(&["shm", "info", zero.name()]);
        assert_fails(&out, 1, &[zero.name()], "info after a refused create: nothing was created");
        if let Some(p) = zero.path() {
            assert!(!p.exists(), "{} was created", p.display());
        }
        let out = IPCKIT.run(&["shm", "create", name, "--size", "abc"]);
        assert_fails(&out, 2, &["abc"], "create --size abc");

        // Writes past the end.
        for (offset, len) in [(95, 6), (0, 101), (100, 1), (99, 2), (200, 1), (101, 0)] {
            let data = vec![0xa5u8; len];
            let out = IPCKIT.run_stdin(&["shm", "write", name, "--offset", &offset.to_string()], &data);
            assert_fails(&out, 2, &[name, "past the end", &offset.to_string()], &format!("write {len} at {offset}"));
        }
        assert_eq!(read(name, None, None), before, "{kind:?}: a refused write wrote nothing");

        // Reads past the end.
        for (offset, len) in [(Some(95), Some(6)), (None, Some(101)), (Some(101), None), (Some(100), Some(1))] {
            let mut args = vec!["shm".to_string(), "read".into(), name.into()];
            if let Some(o) = offset {
                args.extend(["--offset".into(), format!("{o}")]);
            }
            if let Some(l) = len {
                args.extend(["--len".into(), format!("{l}")]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = IPCKIT.run(&args);
            assert_fails(&out, 2, &[name, "past the end"], &format!("{args:?}"));
        }
        // Huge values are refused, not wrapped around.
        let out = IPCKIT.run(&["shm", "read", name, "--offset", &usize::MAX.to_string(), "--len", "2"]);
        assert_fails(&out, 2, &[name, "past the end"], "read at offset usize::MAX");
        let out = IPCKIT.run_stdin(&["shm", "write", name, "--offset", &usize::MAX.to_string()], b"x");
        assert_fails(&out, 2, &[name, "past the end"], "write at offset usize::MAX");

        // --exclusive on an existing object.
        let out = IPCKIT.run(&["shm", "create", name, "--size", "100", "--exclusive"]);
        assert_fails(&out, 1, &[name, "exists"], "create --exclusive of an existing object");
        assert_eq!(read(name, None, None), before, "{kind:?}: unchanged by the refused create");
        assert_eq!(IPCKIT.shm_info(name)["size"], 100);
    }
}

/// `sysv:PATH` means `sysv:PATH?id=1`: both name one segment, printed
/// `sysv:PATH`; another id is another segment.
#[test]
fn sysv_id_1_is_the_default() {
    let s = Scratch::new("shm-id1");
    let short = format!("sysv:{}", s.dir().display());
    let long = format!("{short}?id=1");
    let other = format!("{short}?id=2");
    let _first = Cleanup::named(IPCKIT, &long);
    let _second = Cleanup::named(IPCKIT, &other);
    let out = IPCKIT.run_ok(&["shm", "create", &long, "--size", "64", "--exclusive"], None);
    assert_stderr(&out, &format!("created {short} (64 bytes)"), "create ?id=1");
    write(&short, 0, b"same");
    assert_eq!(read(&long, None, Some(4)), b"same");
    assert_eq!(IPCKIT.shm_info(&long)["name"], short.as_str());
    let out = IPCKIT.run(&["shm", "create", &short, "--size", "64", "--exclusive"]);
    assert_fails(&out, 1, &[&short, "exists"], "create --exclusive without ?id= after ?id=1");
    create(&other, 64);
    assert_eq!(read(&other, None, None), vec![0u8; 64], "id 2 is another segment");
    IPCKIT.run_ok(&["rm", &short], None);
    let out = IPCKIT.run(&["shm", "info", &long]);
    assert_fails(&out, 1, &[&short, "no such"], "info ?id=1 after rm without ?id=");
    assert_eq!(read(&other, None, Some(1)), [0], "id 2 is still there");
    IPCKIT.run_ok(&["rm", &other], None);
}

/// A `--len` far beyond memory is refused like any read past the end
/// (exit 2), without first allocating a buffer of that size.
#[test]
fn read_with_a_huge_len_is_invalid_not_a_crash() {
    let s = Scratch::new("shm-hugelen");
    let obj = Cleanup::new(IPCKIT, &s, Kind::Posix, 1);
    create(obj.name(), 100);
    let out = IPCKIT.run(&["shm", "read", obj.name(), "--len", "100000GiB"]);
    assert_fails(&out, 2, &[obj.name(), "past the end"], "read --len 100000GiB");
}

/// Malformed names: exit 2 from every subcommand and from `ipckit rm`,
/// with a message quoting the name; the `shm` subcommands also say why.
#[test]
fn malformed_names_are_usage_errors() {
    let rows = [
        ("shm", "must start with '/'"),
        ("//x", "second '/'"),
        ("/", "empty"),
        ("sysv:0", "IPC_PRIVATE"),
        ("sysv:abc", "expected a nonzero number"),
        ("sysv:0xZZ", "hexadecimal"),
        ("sysv:/tmp?id=0", "1 to 255"),
        ("sysv:/tmp?id=256", "1 to 255"),
        ("sysv:5?id=2", "path key"),
        ("file:", "empty file path"),
    ];
    for (name, why) in rows {
        let quoted = format!("\"{name}\"");
        for args in [
            vec!["shm", "create", name, "--size", "10"],
            vec!["shm", "create", name, "--size", "10", "--exclusive"],
            vec!["shm", "write", name],
            vec!["shm", "read", name],
            vec!["shm", "info", name, "--json"],
            vec!["shm", "rm", name],
        ] {
            let out = IPCKIT.run(&args);
            assert_fails(&out, 2, &[&quoted, why], &format!("{args:?}"));
        }
        let out = IPCKIT.run(&["rm", name]);
        assert_fails(&out, 2, &[&quoted], &format!("ipckit rm {name}"));
    }
}

/// `ipckit rm` explains a malformed shared-memory name as one (the shm
/// reason), instead of calling `sysv:` or `file:` an unknown endpoint
/// scheme.
#[test]
fn rm_explains_malformed_shm_names() {
    for (name, why) in [
        ("sysv:0", "IPC_PRIVATE"),
        ("sysv:abc", "expected a nonzero number"),
        ("//x", "second '/'"),
        ("file:", "empty file path"),
    ] {
        let out = IPCKIT.run(&["rm", name]);
        assert_fails(&out, 2, &[&format!("\"{name}\""), why], &format!("ipckit rm {name}"));
        assert!(!out.stderr.contains("unknown scheme"), "ipckit rm {name}: {}", out.stderr);
    }
}

/// A missing object: exit 1, naming it, from every subcommand and
/// `ipckit rm`; nothing is created by reading, writing or inspecting.
#[test]
fn missing_objects_are_errors_naming_them() {
    let s = Scratch::new("shm-missing");
    for kind in KINDS {
        let obj = Cleanup::new(IPCKIT, &s, kind, 9);
        let name = obj.name();
        for args in [
            vec!["shm", "write", name],
            vec!["shm", "read", name],
            vec!["shm", "info", name],
            vec!["shm", "info", name, "--json"],
            vec!["shm", "rm", name],
            vec!["rm", name],
        ] {
            let out = IPCKIT.run_stdin(&args, b"data");
            assert_fails(&out, 1, &[name, "no such"], &format!("{args:?} of a missing object"));
        }
        if let Some(p) = obj.path() {
            assert!(!p.exists(), "{} was created", p.display());
        }
    }
    // A System V key path that does not exist: ftok fails, naming it.
    let path = s.path("absent");
    let name = format!("sysv:{}?id=3", path.display());
    let out = IPCKIT.run(&["shm", "create", &name, "--size", "10"]);
    assert_fails(&out, 1, &[&name, "ftok", &path.display().to_string()], "create with a missing key path");
    let out = IPCKIT.run(&["shm", "read", &name]);
    assert_fails(&out, 1, &[&name, "ftok"], "read with a missing key path");
}

/// Another user (uid 65534) can neither read, write, inspect nor remove
/// root's 0600 objects (exit 1, "permission denied" or "operation not
/// permitted", naming the object);
/// objects root opened to everyone (0644) are refused by ipckit's owner
/// check. Nothing is changed.
#[test]
fn other_users_objects_are_permission_denied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run ipckit as uid 65534");
        return;
    }
    let s = Scratch::new("shm-perm");
    // uid 65534 must reach the scratch directory (ftok, files inside).
    std::fs::set_permissions(s.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str], input: Option<&[u8]>| {
        let mut cmd = IPCKIT.command();
        cmd.args(args).uid(65534).gid(65534);
        run(&mut cmd, input)
    };
    for kind in KINDS {
        for (n, mode, texts) in [
            // Removing a POSIX object is the sticky /dev/shm's EPERM.
            (1, "0600", &["permission denied", "operation not permitted"][..]),
            (2, "0644", &["belongs to uid 0, not to this user (uid 65534)", "permission denied"][..]),
        ] {
            let obj = Cleanup::new(IPCKIT, &s, kind, n);
            let name = obj.name();
            IPCKIT.run_ok(&["shm", "create", name, "--size", "64", "--mode", mode, "--exclusive"], None);
            let data = binary(64, 11);
            write(name, 0, &data);
            let mut attempts = vec![vec!["shm", "read", name], vec!["shm", "write", name]];
            if mode == "0600" {
                // Inspecting and removing need no ownership by ipckit's
                // rules, only the kernel's permission.
                attempts.extend([vec!["shm", "info", name], vec!["shm", "rm", name], vec!["rm", name]]);
            }
            for args in attempts {
                let what = format!("{args:?} of a {mode} object as uid 65534");
                let out = as_nobody(&args, Some(b"intruder"));
                out.expect_code(1, &what);
                assert!(out.stdout.is_empty(), "{what}: printed {:?}", out.stdout);
                assert!(
                    texts.iter().any(|t| out.stderr.contains(t)),
                    "{what}: expected one of {texts:?}:\n{}",
                    out.stderr
                );
                assert_stderr(&out, name, &what);
            }
            assert_eq!(read(name, None, None), data, "{kind:?} {mode}: unchanged, still there");
            assert_eq!(IPCKIT.shm_info(name)["uid"], 0);
        }
    }
}

/// `ipckit rm` removes each kind (exit 0, gone), and a missing one is
/// exit 1 naming it.
#[test]
fn ipckit_rm_removes_every_kind() {
    let s = Scratch::new("shm-rm");
    for kind in KINDS {
        let obj = Cleanup::new(IPCKIT, &s, kind, 1);
        let name = obj.name();
        create(name, 4096);
        write(name, 0, b"x");
        if let Some(p) = obj.path() {
            assert!(p.exists(), "{} exists before rm", p.display());
        }
        let out = IPCKIT.run_ok(&["rm", name], None);
        assert!(out.stdout.is_empty());
        assert_gone(&obj);
        let again = IPCKIT.run(&["rm", name]);
        assert_fails(&again, 1, &[name, "no such"], "ipckit rm of a removed object");
        // The name can be created again, fresh.
        create(name, 10);
        assert_eq!(read(name, None, None), vec![0u8; 10]);
        IPCKIT.run_ok(&["rm", name], None);
        assert_gone(&obj);
    }
}
