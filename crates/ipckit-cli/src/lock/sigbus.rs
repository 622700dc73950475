//! A lock object truncated under `ipckit lock`: the `SIGBUS` handler.
//!
//! Another process of the same user can truncate the lock object (a POSIX
//! object or a file) at any time. The mutex lives in the mapping, and glibc
//! and the kernel touch it in place, so the next access to it faults with
//! `SIGBUS`, which would kill ipckit and lose the command's exit status.
//!
//! The design, kept simple enough to be async-signal-safe:
//! - While the command runs, ipckit does not touch the mapping at all; the
//!   only accesses are the open and the lock before the command, and the
//!   unlock (and the object's release) after it.
//! - Before the unlock, the main thread stores the command's exit status
//!   in an atomic.
//! - The handler, on a fault inside the object's mapping (or, before the
//!   mapping exists, on any `BUS_ADRERR`: opening touches nothing else that
//!   can fault so), writes a message prepared in advance with `write(2)`
//!   and `_exit`s: with the command's status if there is one, with 1 (the
//!   command not run) otherwise.
//! - Any other `SIGBUS` is not ours: the handler was installed with
//!   `SA_RESETHAND`, so returning re-runs the faulting access with the
//!   default action, and the process dies of `SIGBUS` as it would have.

use std::ops::Range;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// The mapping of the lock object (`start == end`: not mapped yet).
static START: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
/// The command's exit status, once known (negative: the command has not
/// run).
static STATUS: AtomicI32 = AtomicI32::new(-1);
/// The messages, prepared before the handler is installed (leaked: they
/// live as long as the process).
static BEFORE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static BEFORE_LEN: AtomicUsize = AtomicUsize::new(0);
static AFTER: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static AFTER_LEN: AtomicUsize = AtomicUsize::new(0);

fn leak(msg: String, ptr: &AtomicPtr<u8>, len: &AtomicUsize) {
    let bytes: &'static mut [u8] = Box::leak(msg.into_bytes().into_boxed_slice());
    len.store(bytes.len(), Ordering::Relaxed);
    ptr.store(bytes.as_mut_ptr(), Ordering::Release);
}

/// Installs the handler for the lock object `name` (shown in its
/// messages). Call before the object is opened.
pub fn install(name: &str) -> std::io::Result<()> {
    leak(
        format!(
            "ipckit: lock {name}: the lock object was truncated by another process (SIGBUS on its memory) before \
             the command ran; it was not run (remove the object with `ipckit rm {name}`)\n"
        ),
        &BEFORE,
        &BEFORE_LEN,
    );
    leak(
        format!(
            "ipckit: warning: lock {name}: the lock object was truncated by another process while the command \
             ran (SIGBUS on its memory at the unlock); exiting with the command's status\n"
        ),
        &AFTER,
        &AFTER_LEN,
    );
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler
    // has the SA_SIGINFO signature and does only async-signal-safe things
    // (atomic loads, write, _exit); sigemptyset and sigaction get valid
    // pointers.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Where the lock object is mapped: faults there are the handler's.
pub fn set_mapping(range: Range<usize>) {
    START.store(range.start, Ordering::Relaxed);
    END.store(range.end, Ordering::Release);
}

/// The command's exit status, stored before the unlock.
pub fn set_status(code: i32) {
    STATUS.store(code.max(0), Ordering::Release);
}

extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler;
    // for SIGBUS, si_addr is the faulting address.
    let (addr, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    let end = END.load(Ordering::Acquire);
    let start = START.load(Ordering::Relaxed);
    let ours = if start == end { code == libc::BUS_ADRERR } else { (start..end).contains(&addr) };
    if !ours {
        // SA_RESETHAND restored the default action: the access faults again
        // and the process dies of SIGBUS, as without this handler.
        return;
    }
    let status = STATUS.load(Ordering::Acquire);
    let (msg, len) = if status < 0 {
        (BEFORE.load(Ordering::Acquire), BEFORE_LEN.load(Ordering::Relaxed))
    } else {
        (AFTER.load(Ordering::Acquire), AFTER_LEN.load(Ordering::Relaxed))
    };
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `msg` is null
    // (nothing written) or a leaked buffer of `len` bytes that lives for
    // good.
    unsafe {
        if !msg.is_null() {
            libc::write(libc::STDERR_FILENO, msg.cast(), len);
        }
        libc::_exit(if status < 0 { 1 } else { status });
    }
}
