//! `ipckit lock` and `ipckit sem`, end to end through the binary with real
//! processes: mutual exclusion of shell loops, a killed holder (its command
//! dies with it, the next holder is warned), timeouts and exit statuses,
//! POSIX and System V semaphores (values, limits, indexes, blocked waiters
//! released by another process, no SEM_UNDO for the CLI), a C program using
//! `sem_open` on the same names, and objects of another user.
//!
//! No sleeps for readiness: holders announce themselves on stderr, and a
//! waiter is known to be blocked from the kernel (`GETNCNT` for System V,
//! `/proc/PID/wchan` or `/proc/PID/syscall` for POSIX). Every wait has the
//! 30 s hang guard; every object is removed by a guard on drop, also when a
//! test fails.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ipckit::shm::ShmName;
use ipckit::sync::SemaphoreSet;
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::c::build_c;
use ipckit_testkit::cli::Ipckit;
use ipckit_testkit::procfs::{futex_syscall, wait_until_blocked};
use ipckit_testkit::program::{Bg, assert_stderr, run};
use ipckit_testkit::scratch::{Scratch, SemName};

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// `ipckit sem value ARGS`, which must succeed; the value printed.
#[track_caller]
fn sem_value(args: &[&str]) -> i64 {
    let mut all = vec!["sem", "value"];
    all.extend_from_slice(args);
    let out = IPCKIT.run(&all);
    out.expect_code(0, &format!("{all:?}"));
    out.text().trim().parse().unwrap_or_else(|e| panic!("{all:?} printed {:?}: {e}", out.text()))
}

/// A System V semaphore set name unique to the test: `ftok` of the scratch
/// directory with project id `id`. Removed on drop (before the scratch
/// directory, which it borrows: the key is derived from it).
struct SysvSem<'a> {
    name: String,
    _scratch: &'a Scratch,
}

impl<'a> SysvSem<'a> {
    fn new(s: &'a Scratch, id: u8) -> SysvSem<'a> {
        SysvSem { name: format!("sysv:{}?id={id}", s.dir().display()), _scratch: s }
    }

    fn set(&self) -> ipckit::Result<SemaphoreSet> {
        match self.name.parse::<ShmName>()? {
            ShmName::Sysv(key) => SemaphoreSet::open(&key),
            other => panic!("{other} is not a System V name"),
        }
    }
}

impl Drop for SysvSem<'_> {
    fn drop(&mut self) {
        if let Ok(ShmName::Sysv(key)) = self.name.parse::<ShmName>() {
            let _ = SemaphoreSet::remove(&key);
        }
    }
}

/// Whether process `pid` has ended: no `/proc` entry, or a zombie nobody
/// reaped (a container's init may not).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            matches!(state, Some("Z" | "X"))
        }
    }
}

/// The parent pid of `pid`, from `/proc/PID/status`.
fn parent_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find_map(|l| l.strip_prefix("PPid:")).expect("PPid line");
    line.trim().parse().expect("PPid is a number")
}

/// A pipe whose read end becomes a child's standard input: the child's
/// `cat` blocks until the write end (kept by the test) is closed.
fn stdin_gate() -> (Stdio, std::os::fd::OwnedFd) {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    (Stdio::from(r), w)
}

/// Starts `ipckit lock NAME -- sh -c 'echo "held $$" >&2; exec cat'` with
/// `stdin` (a gate from [`stdin_gate`]), waits until the command runs (so
/// the lock is held), and returns the holder and the command's pid.
fn hold(name: &str, stdin: Stdio) -> (Bg, u32) {
    let mut cmd = IPCKIT.command();
    cmd.args(["lock", name, "--", "sh", "-c", r#"echo "held $$" >&2; exec cat"#]).stdin(stdin);
    let mut holder = Bg::spawn(&mut cmd);
    let pid = holder.wait_line("held ").trim().parse().expect("the command printed its pid");
    (holder, pid)
}

/// Four shell loops each run 25 increments of a counter file, each
/// increment inside `ipckit lock NAME -- sh -c '...'`, all at once: the
/// file ends at exactly 100, and no increment ever saw another one inside
/// the lock (each makes a directory on entry, which fails if it exists).
#[test]
fn lock_serialises_four_shell_loops() {
    let s = Scratch::new("lock-count");
    let lock = s.shm("lock");
    let counter = s.path("counter");
    let inside = s.path("inside");
    std::fs::write(&counter, "0\n").unwrap();
    let body = r#"mkdir "$INSIDE" || exit 90; n=$(cat "$COUNTER"); echo $((n + 1)) > "$COUNTER"; rmdir "$INSIDE""#;
    let script = r#"i=0
        while [ $i -lt 25 ]; do
            "$IPCKIT" lock "$LOCK" -- sh -c "$BODY" || { echo "increment $i failed: $?" >&2; exit 1; }
            i=$((i + 1))
        done"#;
    let loops: Vec<Bg> = (0..4)
        .map(|_| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", script])
                .env("IPCKIT", IPCKIT.path())
                .env("LOCK", lock.as_str())
                .env("BODY", body)
                .env("COUNTER", &counter)
                .env("INSIDE", &inside)
                .stdin(Stdio::null());
            Bg::spawn(&mut cmd)
        })
        .collect();
    for (i, l) in loops.into_iter().enumerate() {
        let out = l.finish();
        out.expect_code(0, &format!("loop {i}"));
        assert!(out.stderr.is_empty(), "loop {i} said: {}", out.stderr);
    }
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "100");
    assert!(!inside.exists());
    // The lock object was created on first use and holds the last holder's
    // pid.
    let mutex = ipckit::sync::Mutex::<u64>::open(&lock.shm_name()).expect("the lock object exists");
    assert_ne!(*mutex.lock().expect("the lock is free and consistent"), 0);
}

/// SIGKILL of the ipckit that holds the lock: its command dies too
/// (PR_SET_PDEATHSIG) instead of running on unlocked; the next `ipckit
/// lock` warns that the previous holder died (naming its pid) and runs; the
/// one after that has no warning.
#[test]
fn killed_holder_takes_its_command_along_and_the_next_is_warned() {
    let s = Scratch::new("lock-kill");
    let lock = s.shm("lock");
    let (stdin, gate) = stdin_gate();
    let (holder, child) = hold(&lock, stdin);
    let holder_pid = holder.pid();
    assert_eq!(parent_of(child), holder_pid, "the command runs as ipckit's child");
    assert!(!ended(child));

    holder.signal(rustix::process::Signal::KILL);
    let deadline = Instant::now() + HANG_GUARD;
    while !ended(child) {
        assert!(Instant::now() < deadline, "command {child} still runs {HANG_GUARD:?} after its ipckit was killed");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let out = holder.finish();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&out.status), Some(9), "holder: {:?}", out.status);
    drop(gate);

    let out = IPCKIT.run(&["lock", &lock, "--", "true"]);
    out.expect_code(0, "lock after the holder died");
    assert_stderr(&out, "previous holder died", "lock after the holder died");
    assert_stderr(&out, &format!("pid {holder_pid}"), "lock after the holder died");

    let out = IPCKIT.run(&["lock", &lock, "--", "true"]);
    out.expect_code(0, "lock after the recovery");
    assert!(out.stderr.is_empty(), "no warning once recovered: {}", out.stderr);
}

/// A lock whose dead owner was never marked consistent (a library user that
/// dropped the `OwnerDied` guard) is unusable: `ipckit lock` exits 1 without
/// running the command and says how to recover; after `ipckit rm` it works.
#[test]
fn unrecoverable_lock_says_how_to_recover() {
    let s = Scratch::new("lock-unrecoverable");
    let lock = s.shm("lock");
    let name = lock.shm_name();
    IPCKIT.run(&["lock", &lock, "--", "true"]).expect_code(0, "create the lock");
    // A thread that ends holding the lock: the kernel marks it owner-died.
    std::thread::spawn({
        let name = name.clone();
        move || std::mem::forget(ipckit::sync::Mutex::<u64>::open(&name).unwrap().lock().unwrap())
    })
    .join()
    .unwrap();
    match ipckit::sync::Mutex::<u64>::open(&name).unwrap().lock() {
        Err(ipckit::sync::LockError::OwnerDied(guard)) => drop(guard), // not marked consistent
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    let out = IPCKIT.run(&["lock", &lock, "--", "echo", "ran"]);
    out.expect_code(1, "lock that is not recoverable");
    assert_stderr(&out, &format!("ipckit rm {}", lock.as_str()), "lock that is not recoverable");
    assert!(out.stdout.is_empty(), "the command ran: {:?}", out.text());
    IPCKIT.run(&["rm", &lock]).expect_code(0, "rm");
    IPCKIT.run(&["lock", &lock, "--", "true"]).expect_code(0, "lock after rm");
}

/// While a holder has the lock, `--timeout 200ms` gives up with exit 3 and
/// does not run the command; once the holder is done, the lock is free.
/// The command's status is ipckit's: its exit code, 128 + a signal, 127
/// when it does not exist. For all three kinds of names.
#[test]
fn lock_timeout_and_exit_status() {
    let s = Scratch::new("lock-timeout");
    let posix = s.shm("lock");
    let sysv = s.sysv_shm(1);
    let file = format!("file:{}", s.path("lockfile").display());
    for name in [posix.as_str(), sysv.as_str(), file.as_str()] {
        let mark = s.path("ran");
        let mark_str = mark.to_str().unwrap();
        let (stdin, gate) = stdin_gate();
        let (holder, _) = hold(name, stdin);

        let out = IPCKIT.run(&["lock", name, "--timeout", "200ms", "--", "touch", mark_str]);
        out.expect_code(3, &format!("{name}: lock held by another"));
        assert_stderr(&out, "not acquired within the timeout", name);
        assert!(!mark.exists(), "{name}: the command ran without the lock");

        drop(gate);
        let out = holder.finish();
        out.expect_code(0, &format!("{name}: holder"));
        assert!(!out.stderr.contains("warning"), "{name}: {}", out.stderr);

        IPCKIT.run(&["lock", name, "--timeout", "20s", "--", "touch", mark_str]).expect_code(0, name);
        assert!(mark.exists(), "{name}: the command ran once the lock was free");
        std::fs::remove_file(&mark).unwrap();

        IPCKIT.run(&["lock", name, "--", "sh", "-c", "exit 7"]).expect_code(7, &format!("{name}: exit 7"));
        IPCKIT
            .run(&["lock", name, "--", "sh", "-c", "kill -TERM $$"])
            .expect_code(128 + 15, &format!("{name}: SIGTERM"));
        let out = IPCKIT.run(&["lock", name, "--", "ipckit-t-no-such-command"]);
        out.expect_code(127, &format!("{name}: no such command"));
        assert_stderr(&out, "ipckit-t-no-such-command", name);
        // The lock is still free and consistent after all that.
        let out = IPCKIT.run(&["lock", name, "--timeout", "20s", "--", "true"]);
        out.expect_code(0, name);
        assert!(out.stderr.is_empty(), "{name}: {}", out.stderr);
    }
    // Usage errors: no `--` before the command, no command, a bad name.
    IPCKIT.run(&["lock", &posix, "true"]).expect_code(2, "command without --");
    IPCKIT.run(&["lock", &posix, "--"]).expect_code(2, "no command");
    IPCKIT.run(&["lock", "no-slash", "--", "true"]).expect_code(2, "bad name");
}

/// POSIX named semaphores: create, post, wait, value and rm; a timed wait
/// on 0 exits 3; `--exclusive` on an existing one exits 1; values past
/// SEM_VALUE_MAX exit 2; System V options on a POSIX name exit 2.
#[test]
fn posix_semaphore_round_trip() {
    let s = Scratch::new("sem-posix");
    let sem = SemName::new(&s, "a");
    let name = sem.0.as_str();

    IPCKIT.run(&["sem", "value", name]).expect_code(1, "value before create");
    let out = IPCKIT.run(&["sem", "create", name]);
    out.expect_code(0, "create");
    assert_stderr(&out, "created", "create");
    assert!(Path::new(&sem.file()).exists(), "glibc keeps it in {}", sem.file());
    assert_eq!(sem_value(&[name]), 0);
    IPCKIT.run(&["sem", "post", name]).expect_code(0, "post");
    IPCKIT.run(&["sem", "post", name]).expect_code(0, "post");
    assert_eq!(sem_value(&[name]), 2);
    IPCKIT.run(&["sem", "wait", name]).expect_code(0, "wait");
    assert_eq!(sem_value(&[name]), 1);
    IPCKIT.run(&["sem", "wait", name, "--timeout", "200ms"]).expect_code(0, "timed wait on 1");
    let out = IPCKIT.run(&["sem", "wait", name, "--timeout", "200ms"]);
    out.expect_code(3, "timed wait on 0");
    assert_stderr(&out, name, "timed wait on 0");
    assert_eq!(sem_value(&[name]), 0);

    // Existing: opened as it is, or refused with --exclusive.
    IPCKIT.run(&["sem", "post", name]).expect_code(0, "post");
    let out = IPCKIT.run(&["sem", "create", name, "--value", "5"]);
    out.expect_code(0, "create existing");
    assert_stderr(&out, "opened existing", "create existing");
    let out = IPCKIT.run(&["sem", "create", name, "--exclusive"]);
    out.expect_code(1, "create --exclusive existing");
    assert_stderr(&out, "exists", "create --exclusive existing");
    assert_eq!(sem_value(&[name]), 1, "neither create changed the value");

    // System V options on a POSIX name.
    IPCKIT.run(&["sem", "post", name, "--index", "0"]).expect_code(2, "--index on POSIX");
    IPCKIT.run(&["sem", "create", name, "--count", "2"]).expect_code(2, "--count on POSIX");
    IPCKIT.run(&["sem", "create", "file:/tmp/x"]).expect_code(2, "file: name");
    IPCKIT.run(&["sem", "create", "no-slash"]).expect_code(2, "bad name");

    // SEM_VALUE_MAX = 2147483647.
    let big = SemName::new(&s, "big");
    let out = IPCKIT.run(&["sem", "create", &big.0, "--value", "2147483648"]);
    out.expect_code(2, "create past SEM_VALUE_MAX");
    assert_stderr(&out, "SEM_VALUE_MAX", "create past SEM_VALUE_MAX");
    assert!(!Path::new(&big.file()).exists(), "nothing created");
    IPCKIT.run(&["sem", "create", &big.0, "--value", "-1"]).expect_code(2, "negative value");
    IPCKIT.run(&["sem", "create", &big.0, "--value", "2147483647"]).expect_code(0, "create at SEM_VALUE_MAX");
    let out = IPCKIT.run(&["sem", "post", &big.0]);
    out.expect_code(2, "post at SEM_VALUE_MAX");
    assert_stderr(&out, "SEM_VALUE_MAX", "post at SEM_VALUE_MAX");
    assert_eq!(sem_value(&[&big.0]), 2147483647);

    for n in [name, big.0.as_str()] {
        IPCKIT.run(&["sem", "rm", n]).expect_code(0, "rm");
        IPCKIT.run(&["sem", "value", n]).expect_code(1, "value after rm");
        IPCKIT.run(&["sem", "post", n]).expect_code(1, "post after rm");
        IPCKIT.run(&["sem", "rm", n]).expect_code(1, "rm again");
    }
    assert!(!Path::new(&sem.file()).exists() && !Path::new(&big.file()).exists());
}

/// `ipckit sem wait` blocked in one process is released by `ipckit sem
/// post` from another, and takes what was posted.
#[test]
fn posix_wait_is_released_by_a_post_from_another_process() {
    let s = Scratch::new("sem-posix-block");
    let sem = SemName::new(&s, "a");
    IPCKIT.run(&["sem", "create", &sem.0]).expect_code(0, "create");
    let mut waiter = Bg::spawn(IPCKIT.command().args(["sem", "wait", &sem.0]));
    if !wait_until_blocked(&mut waiter, "futex", futex_syscall()) {
        eprintln!("note: this kernel does not tell where a process sleeps; checking less strictly");
    }
    assert_eq!(sem_value(&[&sem.0]), 0);
    IPCKIT.run(&["sem", "post", &sem.0]).expect_code(0, "post");
    waiter.finish().expect_code(0, "the waiter");
    assert_eq!(sem_value(&[&sem.0]), 0, "the waiter took the post");
}

/// System V sets: `--count 3` at create, post/wait/value by `--index`,
/// the CLI's post and wait outlast the process (no SEM_UNDO), index 3 and
/// negative indexes exit 2, SEMVMX (32767) is the limit, a blocked waiter is
/// released by a post from another process, rm removes the set.
#[test]
fn sysv_semaphore_set() {
    let s = Scratch::new("sem-sysv");
    let set = SysvSem::new(&s, 1);
    let name = set.name.as_str();

    IPCKIT.run(&["sem", "value", name]).expect_code(1, "value before create");
    let out = IPCKIT.run(&["sem", "create", name, "--count", "3"]);
    out.expect_code(0, "create");
    assert_stderr(&out, "3 semaphores", "create");
    assert_eq!(set.set().unwrap().len(), 3);
    for i in ["0", "1", "2"] {
        assert_eq!(sem_value(&[name, "--index", i]), 0);
    }
    // Posts and waits by short-lived processes stay done: with SEM_UNDO the
    // kernel would revert each one as its process exits.
    IPCKIT.run(&["sem", "post", name, "--index", "1"]).expect_code(0, "post 1");
    IPCKIT.run(&["sem", "post", name, "--index", "1"]).expect_code(0, "post 1");
    IPCKIT.run(&["sem", "post", name]).expect_code(0, "post 0 (default index)");
    assert_eq!(sem_value(&[name, "--index", "1"]), 2);
    assert_eq!(sem_value(&[name]), 1);
    assert_eq!(sem_value(&[name, "--index", "2"]), 0);
    IPCKIT.run(&["sem", "wait", name, "--index", "1"]).expect_code(0, "wait 1");
    assert_eq!(sem_value(&[name, "--index", "1"]), 1);
    IPCKIT.run(&["sem", "wait", name, "--index", "1", "--timeout", "200ms"]).expect_code(0, "timed wait on 1");
    let out = IPCKIT.run(&["sem", "wait", name, "--index", "1", "--timeout", "200ms"]);
    out.expect_code(3, "timed wait on 0");
    assert_stderr(&out, "timeout", "timed wait on 0");
    assert_eq!(sem_value(&[name, "--index", "1"]), 0);
    assert_eq!(sem_value(&[name]), 1, "index 0 untouched");

    // Indexes out of range.
    for args in [
        vec!["post", name, "--index", "3"],
        vec!["wait", name, "--index", "3", "--timeout", "200ms"],
        vec!["value", name, "--index", "3"],
    ] {
        let mut all = vec!["sem"];
        all.extend_from_slice(&args);
        let out = IPCKIT.run(&all);
        out.expect_code(2, &format!("{all:?}"));
        assert_stderr(&out, "out of range", &format!("{all:?}"));
    }
    IPCKIT.run(&["sem", "post", name, "--index", "-1"]).expect_code(2, "negative index");
    IPCKIT.run(&["sem", "value", name, "--index", "65536"]).expect_code(2, "index past u16");

    // Existing: opened, or refused with --exclusive.
    let out = IPCKIT.run(&["sem", "create", name]);
    out.expect_code(0, "create existing");
    assert_stderr(&out, "opened existing", "create existing");
    IPCKIT.run(&["sem", "create", name, "--exclusive"]).expect_code(1, "create --exclusive existing");
    assert_eq!(sem_value(&[name]), 1, "neither create changed the values");

    // SEMVMX.
    let top = SysvSem::new(&s, 2);
    let out = IPCKIT.run(&["sem", "create", &top.name, "--value", "32768"]);
    out.expect_code(2, "create past SEMVMX");
    assert_stderr(&out, "32767", "create past SEMVMX");
    assert_eq!(top.set().unwrap_err().kind(), ipckit::ErrorKind::NotFound, "nothing created");
    IPCKIT.run(&["sem", "create", &top.name, "--count", "0"]).expect_code(2, "empty set");
    IPCKIT.run(&["sem", "create", &top.name, "--value", "32767"]).expect_code(0, "create at SEMVMX");
    IPCKIT.run(&["sem", "post", &top.name]).expect_code(2, "post at SEMVMX");
    assert_eq!(sem_value(&[&top.name]), 32767);

    // A blocked waiter on index 2 is released by a post from another
    // process (the kernel counts it in GETNCNT while it waits).
    let waiter = Bg::spawn(IPCKIT.command().args(["sem", "wait", name, "--index", "2"]));
    let handle = set.set().unwrap();
    let deadline = Instant::now() + HANG_GUARD;
    while handle.waiting(2).unwrap() == 0 {
        assert!(Instant::now() < deadline, "the waiter never blocked on index 2");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    IPCKIT.run(&["sem", "post", name]).expect_code(0, "post 0");
    assert_eq!(handle.waiting(2).unwrap(), 1, "a post on index 0 does not release a waiter on 2");
    IPCKIT.run(&["sem", "post", name, "--index", "2"]).expect_code(0, "post 2");
    waiter.finish().expect_code(0, "the waiter");
    assert_eq!(sem_value(&[name, "--index", "2"]), 0, "the waiter took the post");
    assert_eq!(sem_value(&[name]), 2);

    for n in [name, top.name.as_str()] {
        IPCKIT.run(&["sem", "rm", n]).expect_code(0, "rm");
        IPCKIT.run(&["sem", "value", n]).expect_code(1, "value after rm");
        IPCKIT.run(&["sem", "rm", n]).expect_code(1, "rm again");
    }
    assert_eq!(set.set().unwrap_err().kind(), ipckit::ErrorKind::NotFound);
}

const C_SEM: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* semc NAME create|post|wait|value: sem_open the POSIX semaphore NAME
   (creating it with value 2, mode 0600, for "create") and do one thing. */
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    const char *name = argv[1], *op = argv[2];
    sem_t *s = strcmp(op, "create") == 0 ? sem_open(name, O_CREAT | O_EXCL, 0600, 2) : sem_open(name, 0);
    if (s == SEM_FAILED) { perror("sem_open"); return 1; }
    if (strcmp(op, "post") == 0) {
        if (sem_post(s) != 0) { perror("sem_post"); return 1; }
    } else if (strcmp(op, "wait") == 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 30; /* the hang guard */
        while (sem_timedwait(s, &deadline) != 0) {
            if (errno != EINTR) { perror("sem_timedwait"); return 1; }
        }
    } else if (strcmp(op, "value") == 0) {
        int v;
        if (sem_getvalue(s, &v) != 0) { perror("sem_getvalue"); return 1; }
        printf("%d\n", v);
    } else if (strcmp(op, "create") != 0) {
        return 2;
    }
    sem_close(s);
    return 0;
}
"#;

/// A C program with `sem_open` and ipckit use the same POSIX semaphore,
/// both ways: C posts, ipckit sees and takes it; a blocked C waiter is
/// released by `ipckit sem post`; ipckit posts, C sees and takes it; C
/// creates, ipckit uses and removes.
#[test]
fn posix_semaphore_interop_with_c() {
    let s = Scratch::new("sem-c");
    let semc = build_c(&s, "semc", C_SEM, &["-lpthread"]);
    let c = |name: &str, op: &str| run(Command::new(&semc).args([name, op]), None);
    let sem = SemName::new(&s, "a");
    let name = sem.0.as_str();

    IPCKIT.run(&["sem", "create", name]).expect_code(0, "create");
    c(name, "post").expect_code(0, "C post");
    assert_eq!(sem_value(&[name]), 1);
    IPCKIT.run(&["sem", "wait", name, "--timeout", "20s"]).expect_code(0, "ipckit takes C's post");
    assert_eq!(c(name, "value").expect_code(0, "C value").text().trim(), "0");

    let mut waiter = Bg::spawn(Command::new(&semc).args([name, "wait"]).stdin(Stdio::null()));
    if !wait_until_blocked(&mut waiter, "futex", futex_syscall()) {
        eprintln!("note: this kernel does not tell where a process sleeps; checking less strictly");
    }
    IPCKIT.run(&["sem", "post", name]).expect_code(0, "ipckit post");
    waiter.finish().expect_code(0, "C waiter released by ipckit");
    assert_eq!(sem_value(&[name]), 0, "C took ipckit's post");

    IPCKIT.run(&["sem", "post", name]).expect_code(0, "ipckit post");
    IPCKIT.run(&["sem", "post", name]).expect_code(0, "ipckit post");
    assert_eq!(c(name, "value").expect_code(0, "C value").text().trim(), "2");
    c(name, "wait").expect_code(0, "C wait");
    assert_eq!(sem_value(&[name]), 1);
    IPCKIT.run(&["sem", "rm", name]).expect_code(0, "rm");
    c(name, "value").expect_code(1, "C open after ipckit rm");

    // Created by C (value 2), used and removed by ipckit.
    c(name, "create").expect_code(0, "C create");
    assert_eq!(sem_value(&[name]), 2);
    IPCKIT.run(&["sem", "wait", name]).expect_code(0, "ipckit wait");
    assert_eq!(c(name, "value").expect_code(0, "C value").text().trim(), "1");
    IPCKIT.run(&["sem", "rm", name]).expect_code(0, "ipckit rm of C's semaphore");
    assert!(!Path::new(&sem.file()).exists());
}

/// Objects root created are refused to uid 65534 (exit 1, "permission"),
/// and nothing happens to them: no post, no command run under the lock.
#[test]
fn other_users_objects_are_permission_denied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run ipckit as uid 65534");
        return;
    }
    let s = Scratch::new("lock-sem-perm");
    // uid 65534 must reach the scratch directory to compute the ftok key.
    std::fs::set_permissions(s.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let posix = SemName::new(&s, "a");
    let sysv = SysvSem::new(&s, 1);
    let lock = s.shm("lock");
    IPCKIT.run(&["sem", "create", &posix.0, "--value", "1"]).expect_code(0, "create POSIX");
    IPCKIT.run(&["sem", "create", &sysv.name, "--value", "1"]).expect_code(0, "create System V");
    IPCKIT.run(&["lock", &lock, "--", "true"]).expect_code(0, "create the lock");

    let as_nobody = |args: &[&str]| {
        let mut cmd = IPCKIT.command();
        cmd.args(args).uid(65534).gid(65534);
        run(&mut cmd, None)
    };
    for name in [posix.0.as_str(), sysv.name.as_str()] {
        for op in [&["post", name][..], &["wait", name, "--timeout", "200ms"], &["value", name]] {
            let mut args = vec!["sem"];
            args.extend_from_slice(op);
            let out = as_nobody(&args);
            out.expect_code(1, &format!("{args:?} as uid 65534"));
            assert_stderr(&out, "permission denied", &format!("{args:?} as uid 65534"));
            assert!(out.stdout.is_empty(), "{args:?}: printed {:?}", out.text());
        }
        let out = as_nobody(&["sem", "rm", name]);
        out.expect_code(1, &format!("rm {name} as uid 65534"));
        assert_eq!(sem_value(&[name]), 1, "{name}: untouched");
    }
    let out = as_nobody(&["lock", &lock, "--", "echo", "ran"]);
    out.expect_code(1, "lock as uid 65534");
    assert_stderr(&out, "permission denied", "lock as uid 65534");
    assert!(out.stdout.is_empty(), "the command ran: {:?}", out.text());
    let out = IPCKIT.run(&["lock", &lock, "--timeout", "20s", "--", "true"]);
    out.expect_code(0, "root's lock still works");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}
