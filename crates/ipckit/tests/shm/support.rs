//! What several sections use: names parsed from text, errors checked
//! for their kind and message, shared flags waited on, children checked.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use ipckit::shm::{Region, ShmName};
use ipckit::{Endpoint, ErrorKind};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::Guarded;
use ipckit_testkit::data::Rng;
use ipckit_testkit::scratch::Scratch;

/// Exit status of a child that had to skip (the reason is on its stderr).
pub(crate) const SKIP: i32 = 77;

pub(crate) fn shm(text: &str) -> ShmName {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

pub(crate) fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

pub(crate) fn file_name(s: &Scratch, name: &str) -> String {
    format!("file:{}", s.path(name).display())
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Asserts the kind of an error and that its message contains every one of
/// `needles`.
#[track_caller]
pub(crate) fn assert_err(e: &ipckit::Error, kind: ErrorKind, needles: &[&str]) {
    assert_eq!(e.kind(), kind, "{e}");
    let text = e.to_string();
    for n in needles {
        assert!(text.contains(n), "{text:?} does not mention {n:?}");
    }
}

/// Spins, then yields, until `done()`; fails if `alive()` says the peer is
/// gone (checked once more against `done` to allow for a last store), or
/// after the hang guard.
pub(crate) fn spin_until(what: &str, mut done: impl FnMut() -> bool, mut alive: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    let mut spins = 0u32;
    while !done() {
        if !alive() && !done() {
            panic!("the peer is gone before {what}");
        }
        assert!(Instant::now() < deadline, "hang guard: {what} did not happen within {HANG_GUARD:?}");
        if spins < 1000 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Waits until the shared `flag` holds `want`, observed with Acquire.
pub(crate) fn wait_flag(flag: &AtomicU32, want: u32, what: &str, alive: impl FnMut() -> bool) {
    spin_until(what, || flag.load(Ordering::Acquire) == want, alive);
}

/// A closure telling whether a child is still running.
pub(crate) fn child_alive(child: &mut Guarded) -> impl FnMut() -> bool + '_ {
    move || child.child().try_wait().expect("try_wait").is_none()
}

/// A closure telling whether this child's parent is still the one that
/// started it.
pub(crate) fn parent_alive() -> impl FnMut() -> bool {
    let parent = std::os::unix::process::parent_id();
    move || std::os::unix::process::parent_id() == parent
}

#[track_caller]
pub(crate) fn assert_success(status: std::process::ExitStatus, what: &str) {
    assert!(status.success(), "{what}: child failed: {status}");
}

pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng(seed).fill(&mut v);
    v
}

pub(crate) fn content_at(region: &Region, offset: usize, len: usize) -> String {
    let mut buf = vec![0u8; len];
    region.read_at(offset, &mut buf).unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}
