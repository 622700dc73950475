//! System V semaphore sets (`semget`/`semop`/`semtimedop`/`semctl`):
//! several semaphores changed atomically by one call, with `SEM_UNDO` (a
//! dead process's changes are reverted by the kernel) on by default.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::name::{self, Attempt, Create, Opened, SysvKey};
use crate::sys::Errno;
use crate::sys::sync::{self as raw, SemQuery};

pub use crate::sys::sync::{SemOp, SemStat};

/// The largest value of a System V semaphore (`SEMVMX`).
pub const SEMVMX: i32 = 32767;

/// A System V semaphore set.
#[derive(Debug)]
pub struct SemaphoreSet {
    id: i32,
    count: u16,
    label: String,
    remove_on_drop: bool,
}

impl SemaphoreSet {
    fn key(key: &SysvKey, label: &str) -> Result<i32> {
        name::resolve_key(key, &label)
    }

    /// Creates a set of `count` semaphores with `mode`, each at `value`;
    /// with `exclusive`, fails if it exists (otherwise opens it).
    pub fn create(key: &SysvKey, count: u16, value: i32, mode: u32, exclusive: bool) -> Result<SemaphoreSet> {
        let label = format!("sysv:{key}");
        if count == 0 {
            return Err(Error::new(ErrorKind::Invalid, "semget", &label, "a set needs at least one semaphore"));
        }
        if !(0..=SEMVMX).contains(&value) {
            return Err(Error::new(
                ErrorKind::Invalid,
                "semget",
                &label,
                format!("value {value} is outside 0..={SEMVMX}"),
            ));
        }
        let k = SemaphoreSet::key(key, &label)?;
        let how = if exclusive { Create::Exclusive } else { Create::IfMissing };
        let created = name::create_or_open(how, |attempt| match attempt {
            Attempt::Create => raw::semget(k, count as i32, Some(mode)),
            Attempt::Open => raw::semget(k, 0, None),
        });
        match created {
            Ok((id, Opened::Created)) => {
                let set = SemaphoreSet { id, count, label, remove_on_drop: false };
                // Initialise, then publish with a semop that changes nothing
                // but sets the operation time: openers wait for that, so none
                // sees (or posts into) a set before its values are set.
                let publish = (0..count).try_for_each(|i| set.set_value(i, value)).and_then(|()| {
                    // Take one and give it back (or, at 0, wait for zero):
                    // never past SEMVMX, never blocking.
                    let ops: &[SemOp] = if value > 0 {
                        &[SemOp { index: 0, delta: -1, undo: false }, SemOp { index: 0, delta: 1, undo: false }]
                    } else {
                        &[SemOp { index: 0, delta: 0, undo: false }]
                    };
                    raw::semop(id, ops, true, None).map_err(|e| set.error("semop", e))
                });
                if let Err(e) = publish {
                    let _ = raw::sem_remove(id);
                    return Err(e);
                }
                Ok(set)
            }
            Ok((id, Opened::Existing)) => SemaphoreSet::published(id, label),
            Err((Attempt::Create, Errno::INVAL | Errno::NOSPC)) => Err(Error::new(
                ErrorKind::Invalid,
                "semget",
                &label,
                format!(
                    "a set of {count} semaphores is beyond the kernel's limits (/proc/sys/kernel/sem: {})",
                    std::fs::read_to_string("/proc/sys/kernel/sem").unwrap_or_default().trim()
                ),
            )),
            Err((_, e)) => Err(open_error(&label, e)),
        }
    }

    /// Opens an existing set (which must belong to the caller's user).
    pub fn open(key: &SysvKey) -> Result<SemaphoreSet> {
        let label = format!("sysv:{key}");
        let k = SemaphoreSet::key(key, &label)?;
        let id = raw::semget(k, 0, None).map_err(|e| open_error(&label, e))?;
        SemaphoreSet::published(id, label)
    }

    /// The set `id`, once its creator has published it (see `create`),
    /// checked to belong to the caller's user.
    fn published(id: i32, label: String) -> Result<SemaphoreSet> {
        let mut st = raw::sem_stat(id).map_err(|e| Error::os("semctl IPC_STAT", &label, e))?;
        // A set whose creator has not published it yet (see `create`).
        let deadline = std::time::Instant::now() + super::INIT_TIMEOUT;
        while st.last_op_time == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
            st = raw::sem_stat(id).map_err(|e| Error::os("semctl IPC_STAT", &label, e))?;
        }
        if st.last_op_time == 0 {
            return Err(Error::new(ErrorKind::Corrupt, "semget", &label, "never initialised (did its creator die?)"));
        }
        name::check_owner("semget", &label, "set", st.uid)?;
        Ok(SemaphoreSet { id, count: st.count as u16, label, remove_on_drop: false })
    }

    /// Removes the set when this handle is dropped.
    pub fn remove_on_drop(mut self, yes: bool) -> SemaphoreSet {
        self.remove_on_drop = yes;
        self
    }

    /// Removes the set (`IPC_RMID`): waiters wake with `Disconnected`.
    pub fn remove(key: &SysvKey) -> Result<()> {
        let label = format!("sysv:{key}");
        let k = SemaphoreSet::key(key, &label)?;
        let id = raw::semget(k, 0, None).map_err(|e| {
            let err = Error::os("rm", &label, e);
            if e == Errno::NOENT { err.with_detail("no semaphore set with this key") } else { err }
        })?;
        raw::sem_remove(id).map_err(|e| Error::os("rm", &label, e))
    }

    /// How many semaphores the set has.
    pub fn len(&self) -> u16 {
        self.count
    }

    /// Always false: sets have at least one semaphore.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The set's name, `sysv:KEY`.
    pub fn name(&self) -> &str {
        &self.label
    }

    fn index(&self, op: &'static str, index: u16) -> Result<()> {
        if index >= self.count {
            return Err(Error::new(
                ErrorKind::Invalid,
                op,
                &self.label,
                format!("index {index} is out of range (the set has {} semaphores)", self.count),
            ));
        }
        Ok(())
    }

    fn error(&self, op: &'static str, e: Errno) -> Error {
        match e {
            Errno::AGAIN => Error::new(ErrorKind::Busy, op, &self.label, "the operations cannot all proceed now"),
            Errno::TIMEDOUT => Error::new(ErrorKind::TimedOut, op, &self.label, "not possible within the timeout"),
            Errno::RANGE => Error::os(op, &self.label, e)
                .with_kind(ErrorKind::Invalid)
                .with_detail(format!("a value would exceed SEMVMX ({SEMVMX})")),
            Errno::IDRM | Errno::INVAL => {
                Error::os(op, &self.label, e).with_kind(ErrorKind::Disconnected).with_detail("the set was removed")
            }
            Errno::FBIG => {
                Error::os(op, &self.label, e).with_kind(ErrorKind::Invalid).with_detail("index out of range")
            }
            e => Error::os(op, &self.label, e),
        }
    }

    fn op_with(&self, ops: &[SemOp], nowait: bool, timeout: Option<Duration>) -> Result<()> {
        if ops.is_empty() {
            return Err(Error::new(ErrorKind::Invalid, "semop", &self.label, "no operations given"));
        }
        for o in ops {
            self.index("semop", o.index)?;
        }
        raw::semop(self.id, ops, nowait, timeout).map_err(|e| match e {
            // semtimedop reports an expired timeout as EAGAIN.
            Errno::AGAIN if timeout.is_some() && !nowait => {
                Error::new(ErrorKind::TimedOut, "semop", &self.label, "not possible within the timeout")
            }
            e => self.error("semop", e),
        })
    }

    /// Applies every operation atomically, waiting as long as it takes.
    pub fn op(&self, ops: &[SemOp]) -> Result<()> {
        self.op_with(ops, false, None)
    }

    /// Applies them if all can proceed now (`IPC_NOWAIT`); `Busy` otherwise.
    pub fn try_op(&self, ops: &[SemOp]) -> Result<()> {
        self.op_with(ops, true, None)
    }

    /// `semtimedop`: waits at most `timeout`; `TimedOut` otherwise.
    pub fn op_timeout(&self, ops: &[SemOp], timeout: Duration) -> Result<()> {
        self.op_with(ops, false, Some(timeout))
    }

    /// Adds one to semaphore `index` (with `SEM_UNDO`).
    pub fn post(&self, index: u16) -> Result<()> {
        self.op(&[SemOp { index, delta: 1, undo: true }])
    }

    /// Takes one from semaphore `index` (with `SEM_UNDO`), waiting.
    pub fn wait(&self, index: u16) -> Result<()> {
        self.op(&[SemOp { index, delta: -1, undo: true }])
    }

    /// Non-blocking form of [`wait`](Self::wait).
    pub fn try_wait(&self, index: u16) -> Result<()> {
        self.try_op(&[SemOp { index, delta: -1, undo: true }])
    }

    /// Timed form of [`wait`](Self::wait).
    pub fn wait_timeout(&self, index: u16, timeout: Duration) -> Result<()> {
        self.op_timeout(&[SemOp { index, delta: -1, undo: true }], timeout)
    }

    /// `semctl(GETVAL)`.
    pub fn value(&self, index: u16) -> Result<i32> {
        self.index("semctl GETVAL", index)?;
        raw::sem_getval(self.id, index).map_err(|e| self.error("semctl GETVAL", e))
    }

    /// `semctl(SETVAL)`: 0 to `SEMVMX`.
    pub fn set_value(&self, index: u16, value: i32) -> Result<()> {
        self.index("semctl SETVAL", index)?;
        if !(0..=SEMVMX).contains(&value) {
            return Err(Error::new(
                ErrorKind::Invalid,
                "semctl SETVAL",
                &self.label,
                format!("value {value} is outside 0..={SEMVMX}"),
            ));
        }
        raw::sem_setval(self.id, index, value).map_err(|e| self.error("semctl SETVAL", e))
    }

    /// The pid of the last process that operated on semaphore `index`.
    pub fn last_pid(&self, index: u16) -> Result<i32> {
        self.index("semctl GETPID", index)?;
        raw::sem_query(self.id, index, SemQuery::LastPid).map_err(|e| self.error("semctl GETPID", e))
    }

    /// How many processes wait for semaphore `index` to increase.
    pub fn waiting(&self, index: u16) -> Result<i32> {
        self.index("semctl GETNCNT", index)?;
        raw::sem_query(self.id, index, SemQuery::Waiting).map_err(|e| self.error("semctl GETNCNT", e))
    }

    /// `semctl(IPC_STAT)`.
    pub fn status(&self) -> Result<SemStat> {
        raw::sem_stat(self.id).map_err(|e| self.error("semctl IPC_STAT", e))
    }
}

fn open_error(label: &str, e: Errno) -> Error {
    let err = Error::os("semget", label, e);
    if e == Errno::NOENT { err.with_detail("no semaphore set with this key") } else { err }
}

impl Drop for SemaphoreSet {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = raw::sem_remove(self.id);
        }
    }
}
