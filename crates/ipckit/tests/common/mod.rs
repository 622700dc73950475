//! Test support shared by the integration tests (also included by the CLI
//! crate's tests with `#[path]`).
//!
//! - Every object a test creates lives under a scratch directory named
//!   `/tmp/ipckit-t-<pid>-<test>` (or, for names without files, starts with
//!   `ipckit-t-<pid>-<test>`), removed on drop, also when the test panics.
//!   `.ci/run` fails if anything named `ipckit-t-*` is left.
//! - Children are real processes: the test binary re-run with one test
//!   selected and `IPCKIT_CHILD` set, or the `ipckit` binary.
//! - Every wait has a 30 s hang guard.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The hang guard for every wait in a test.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// The prefix of every object the tests create.
pub const PREFIX: &str = "ipckit-t-";

/// A per-test scratch area; removes everything in it on drop, and every
/// queue made with [`Scratch::mq`] or [`Scratch::sysv_mq`].
pub struct Scratch {
    dir: PathBuf,
    tag: String,
    queues: std::cell::RefCell<Vec<String>>,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let tag = format!("{PREFIX}{}-{test}", std::process::id());
        let dir = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir, tag, queues: Default::default() }
    }

    /// A POSIX queue endpoint unique to this test (`mq:/ipckit-t-...`),
    /// removed on drop. `query` is appended as is (e.g. `?maxmsg=5`).
    pub fn mq(&self, name: &str, query: &str) -> String {
        let base = format!("mq:/{}", self.name(name));
        self.queues.borrow_mut().push(base.clone());
        format!("{base}{query}")
    }

    /// A System V queue endpoint unique to this test: `ftok` of the scratch
    /// directory with project id `id` (1 to 255), removed on drop. `query`
    /// is appended after `?id=N` (e.g. `&maxbytes=4096`).
    pub fn sysv_mq(&self, id: u8, query: &str) -> String {
        let base = format!("sysv-mq:{}?id={id}", self.dir.display());
        self.queues.borrow_mut().push(base.clone());
        format!("{base}{query}")
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A unique name for objects without files (abstract sockets, queues).
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    /// Endpoint text for every transport of the foundation issue.
    pub fn endpoints(&self) -> Vec<String> {
        vec![
            format!("fifo:{}", self.path("fifo").display()),
            format!("unix:{}", self.path("stream.sock").display()),
            format!("unix:@{}", self.name("stream")),
            format!("unix-seqpacket:{}", self.path("seq.sock").display()),
            format!("unix-dgram:{}", self.path("dgram.sock").display()),
            format!("unix-dgram:@{}", self.name("dgram")),
            "tcp:127.0.0.1:0".to_string(),
            "tcp:[::1]:0".to_string(),
        ]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Queues first: a System V key is derived from the directory.
        for q in self.queues.borrow().iter() {
            if let Ok(ep) = q.parse::<ipckit::Endpoint>() {
                let _ = ipckit::remove(&ep);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The role a re-run test binary plays, if this process is a child.
pub fn child_role() -> Option<String> {
    std::env::var("IPCKIT_CHILD").ok()
}

/// A command that re-runs this test binary, running only `test` (its full
/// path, e.g. `conformance::child_echo`), with `IPCKIT_CHILD=role`.
pub fn rerun(test: &str, role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1", "--include-ignored"])
        .env("IPCKIT_CHILD", role)
        .stdin(Stdio::null())
        // The harness's own report would mix with the parent's; a child's
        // failure shows on stderr and in its exit status.
        .stdout(Stdio::null());
    cmd
}

/// A child process killed (and reaped) on drop unless it was waited for.
pub struct Guarded(pub Option<Child>);

impl Guarded {
    pub fn spawn(cmd: &mut Command) -> Guarded {
        Guarded(Some(cmd.spawn().expect("spawn child")))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child already waited for")
    }

    /// Waits (hang guard: 30 s, then the child is killed and the test fails).
    pub fn wait(mut self) -> ExitStatus {
        let mut child = self.0.take().expect("child already waited for");
        wait_guarded(&mut child)
    }

    /// Waits and collects stdout/stderr (they must be piped).
    pub fn output(mut self) -> std::process::Output {
        let child = self.0.take().expect("child already waited for");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(HANG_GUARD) {
            Ok(out) => out.expect("wait for child"),
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("child {pid} hung for {HANG_GUARD:?}");
            }
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for a child with the hang guard.
pub fn wait_guarded(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} hung for {HANG_GUARD:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A small deterministic generator (SplitMix64), so that failures can be
/// replayed from the seed printed by the test.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// FNV-1a, for message checksums.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The number of open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd").count()
}

/// Path of a C source compiled for the test, with gcc, into the scratch dir.
pub fn build_c(scratch: &Scratch, name: &str, source: &str, libs: &[&str]) -> PathBuf {
    let src = scratch.path(&format!("{name}.c"));
    let bin = scratch.path(name);
    std::fs::write(&src, source).expect("write C source");
    let out = Command::new("gcc")
        .args(["-O1", "-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(&src)
        .args(libs)
        .output()
        .expect("run gcc (is it installed?)");
    assert!(out.status.success(), "gcc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    bin
}

/// A shared-memory object name unique to a test, removed (if it exists) when
/// this guard is dropped, also when the test panics. It borrows the
/// [`Scratch`], so that it goes first: a System V key is `ftok` of the
/// scratch directory. Keep the guard alive as long as the object is in use
/// (`let name = s.shm("a");`, then `&*name` or `name.as_str()`).
#[must_use = "the object is removed when the guard is dropped"]
pub struct ShmObject<'a> {
    name: String,
    _scratch: &'a Scratch,
}

impl Scratch {
    /// A POSIX shared-memory name unique to this test (`/ipckit-t-...`),
    /// removed when the returned guard is dropped.
    pub fn shm(&self, name: &str) -> ShmObject<'_> {
        ShmObject { name: format!("/{}", self.name(name)), _scratch: self }
    }

    /// A System V segment name unique to this test: `sysv:<scratch dir>?id=N`
    /// (`ftok` of the scratch directory with project id `id`, 1 to 255),
    /// removed when the returned guard is dropped.
    pub fn sysv_shm(&self, id: u8) -> ShmObject<'_> {
        ShmObject { name: format!("sysv:{}?id={id}", self.dir.display()), _scratch: self }
    }
}

impl ShmObject<'_> {
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The name parsed as the library's `ShmName`.
    pub fn shm_name(&self) -> ipckit::shm::ShmName {
        self.name.parse().unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }
}

impl std::ops::Deref for ShmObject<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for ShmObject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for ShmObject<'_> {
    fn drop(&mut self) {
        if let Ok(name) = self.name.parse::<ipckit::shm::ShmName>() {
            let _ = ipckit::shm::remove(&name);
        }
    }
}
