//! What `/proc` tells about a process: its open descriptors, and the system
//! call or kernel function it sleeps in (`/proc/PID/syscall`,
//! `/proc/PID/wchan`), so that a test knows a peer is blocked instead of
//! sleeping and hoping. Not every kernel tells; the functions say so with
//! `None` or `false`, and the tests then check less strictly.

use std::time::{Duration, Instant};

use crate::HANG_GUARD;
use crate::program::Bg;

/// The number of open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd").count()
}

/// Whether the process is sleeping in `nanosleep` (the retry pause of a
/// connect with `--timeout`), from `/proc/PID/wchan` or
/// `/proc/PID/syscall`. `None` when neither file tells.
pub fn sleeping_in_nanosleep(pid: u32) -> Option<bool> {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let wchan_usable = !wchan.is_empty() && wchan != "0";
    if wchan_usable && wchan.contains("nanosleep") {
        return Some(true);
    }
    // The system call numbers of nanosleep and clock_nanosleep.
    let sleeps: &[&str] = if cfg!(target_arch = "x86_64") {
        &["35", "230"]
    } else if cfg!(target_arch = "aarch64") {
        &["101", "115"]
    } else {
        &[]
    };
    match std::fs::read_to_string(format!("/proc/{pid}/syscall")) {
        Ok(s) if !sleeps.is_empty() => Some(s.split_whitespace().next().is_some_and(|n| sleeps.contains(&n))),
        _ if wchan_usable => Some(false),
        _ => None,
    }
}

/// Waits until `bg` is pausing between connection attempts (so a peer
/// started now certainly starts after a failed attempt). Returns false when
/// this kernel does not tell (the test then still runs, less strictly).
pub fn wait_until_retrying(bg: &mut Bg) -> bool {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match sleeping_in_nanosleep(bg.pid()) {
            None => return false,
            Some(true) => return true,
            Some(false) => {}
        }
        if let Ok(Some(status)) = bg.try_wait() {
            panic!("process exited ({status}) instead of waiting for its peer");
        }
        assert!(Instant::now() < deadline, "process never paused to retry within {HANG_GUARD:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether process `pid` is blocked in the system call numbered `nr`
/// (`/proc/PID/syscall`) or in a kernel function whose name contains
/// `wchan` (`/proc/PID/wchan`). `None` when neither file tells.
pub fn blocked_in_syscall(pid: u32, wchan: &str, nr: Option<&str>) -> Option<bool> {
    let w = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let wchan_usable = !w.is_empty() && w != "0";
    if wchan_usable && w.contains(wchan) {
        return Some(true);
    }
    match (std::fs::read_to_string(format!("/proc/{pid}/syscall")), nr) {
        (Ok(s), Some(nr)) => Some(s.split_whitespace().next() == Some(nr)),
        _ if wchan_usable => Some(false),
        _ => None,
    }
}

/// Waits until `bg` is blocked in the system call (see
/// [`blocked_in_syscall`]). Returns false when this kernel does not tell.
pub fn wait_until_blocked(bg: &mut Bg, wchan: &str, nr: Option<&str>) -> bool {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match blocked_in_syscall(bg.pid(), wchan, nr) {
            None => return false,
            Some(true) => return true,
            Some(false) => {}
        }
        if let Ok(Some(status)) = bg.try_wait() {
            panic!("process exited ({status}) instead of blocking in {wchan}");
        }
        assert!(Instant::now() < deadline, "process never blocked in {wchan} within {HANG_GUARD:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The system call numbers of `msgsnd` and `msgrcv` on this architecture.
pub fn sysv_msg_syscalls() -> (Option<&'static str>, Option<&'static str>) {
    if cfg!(target_arch = "x86_64") {
        (Some("69"), Some("70"))
    } else if cfg!(target_arch = "aarch64") {
        (Some("189"), Some("188"))
    } else {
        (None, None)
    }
}

/// The number of the `futex` system call (POSIX semaphores and the robust
/// mutex sleep in it).
pub fn futex_syscall() -> Option<&'static str> {
    if cfg!(target_arch = "x86_64") {
        Some("202")
    } else if cfg!(target_arch = "aarch64") {
        Some("98")
    } else {
        None
    }
}

/// The system call number of `mq_timedreceive` (what `mq_receive` is).
pub fn mq_receive_syscall() -> Option<&'static str> {
    if cfg!(target_arch = "x86_64") {
        Some("243")
    } else if cfg!(target_arch = "aarch64") {
        Some("183")
    } else {
        None
    }
}
