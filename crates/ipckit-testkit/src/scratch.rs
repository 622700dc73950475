//! Names unique to a test, and the guards that remove what they name.
//!
//! A [`Scratch`] is a directory `/tmp/ipckit-t-<pid>-<test>` and the tag
//! `ipckit-t-<pid>-<test>` that starts every other name of the test
//! (abstract sockets, POSIX queues, shared memory, named semaphores), so
//! that `.ci/run`'s sweep for [`PREFIX`] sees anything a test leaves behind.
//! System V keys are `ftok` of the scratch directory. [`NumericKey`] is the
//! one exception: a System V key given as a number.
//!
//! The guards: [`ShmObject`] (shared memory), [`SemName`] (POSIX named
//! semaphores), [`NumericKey`], and the scratch directory itself, which
//! also removes the queues made with [`Scratch::mq`] and [`Scratch::sysv_mq`].

use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// The prefix of every object the tests create.
pub const PREFIX: &str = "ipckit-t-";

/// A per-test scratch area; removes everything in it on drop, and every
/// queue made with [`Scratch::mq`] or [`Scratch::sysv_mq`].
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    tag: String,
    queues: RefCell<Vec<String>>,
}

impl Scratch {
    /// Creates the directory `/tmp/ipckit-t-<pid>-<test>` (emptied first if
    /// it exists).
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

    /// The scratch directory.
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

/// A shared-memory object name unique to a test, removed (if it exists) when
/// this guard is dropped, also when the test panics. It borrows the
/// [`Scratch`], so that it goes first: a System V key is `ftok` of the
/// scratch directory. Keep the guard alive as long as the object is in use
/// (`let name = s.shm("a");`, then `&*name` or `name.as_str()`).
#[must_use = "the object is removed when the guard is dropped"]
#[derive(Debug)]
pub struct ShmObject<'a> {
    name: String,
    _scratch: &'a Scratch,
}

impl ShmObject<'_> {
    /// The name as text (`/NAME` or `sysv:PATH?id=N`).
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

/// A POSIX named semaphore name unique to the test (`/ipckit-t-...`),
/// unlinked on drop.
#[derive(Debug)]
pub struct SemName(pub String);

impl SemName {
    /// The name `/ipckit-t-<pid>-<test>-<name>`.
    pub fn new(s: &Scratch, name: &str) -> SemName {
        SemName(format!("/{}", s.name(name)))
    }

    /// Where glibc keeps it.
    pub fn file(&self) -> String {
        format!("/dev/shm/sem.{}", &self.0[1..])
    }
}

impl Drop for SemName {
    fn drop(&mut self) {
        let _ = ipckit::sync::NamedSemaphore::unlink(&self.0);
    }
}

/// A System V queue key given as a number, derived from this process's id
/// and `salt` (one per test) so that it is unlikely to be anyone else's.
/// The queue is removed on drop, also when the test fails.
#[derive(Debug)]
pub struct NumericKey {
    key: u32,
}

impl NumericKey {
    /// The key for this process and `salt`.
    pub fn new(salt: u8) -> NumericKey {
        let pid = std::process::id();
        NumericKey { key: 0x4000_0000 | ((pid & 0x3f_ffff) << 8) | u32::from(salt) }
    }

    /// The key.
    pub fn key(&self) -> u32 {
        self.key
    }

    /// `sysv-mq:0xKEY`.
    pub fn endpoint(&self) -> String {
        format!("sysv-mq:{:#x}", self.key)
    }
}

impl Drop for NumericKey {
    fn drop(&mut self) {
        if let Ok(ep) = self.endpoint().parse::<ipckit::Endpoint>() {
            let _ = ipckit::remove(&ep);
        }
    }
}
