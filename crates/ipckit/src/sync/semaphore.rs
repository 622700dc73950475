//! POSIX semaphores: named (`sem_open`, `/name`) and unnamed in a shared
//! ipckit object (`sem_init` with `pshared = 1`).

use std::sync::Arc;
use std::time::Duration;

use super::INIT_TIMEOUT;
use crate::error::{Error, ErrorKind, Result};
use crate::name::{self, Create, Opened, ShmName};
use crate::shm::{HEADER_SIZE, Object, ObjectKind, ObjectSpec, Region, Segment, View, abi_tag};
use crate::sys::Errno;
use crate::sys::sync::{self as raw, LockWait, NamedSem, SEM_SIZE};

/// The largest value a POSIX semaphore holds (`SEM_VALUE_MAX`).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

fn sem_error(op: &'static str, name: &str, e: Errno) -> Error {
    match e {
        Errno::AGAIN => Error::new(ErrorKind::Busy, op, name, "the value is 0"),
        Errno::TIMEDOUT => Error::new(ErrorKind::TimedOut, op, name, "the value stayed 0 until the timeout"),
        Errno::OVERFLOW => Error::os(op, name, e)
            .with_kind(ErrorKind::Invalid)
            .with_detail(format!("the value would exceed SEM_VALUE_MAX ({SEM_VALUE_MAX})")),
        e => Error::os(op, name, e),
    }
}

/// The operations shared by both kinds, on a `sem_t` pointer.
macro_rules! sem_ops {
    () => {
        /// `sem_post`: adds one, waking a waiter. `Invalid` at
        /// `SEM_VALUE_MAX`.
        pub fn post(&self) -> Result<()> {
            // SAFETY: the semaphore is initialised and stays mapped while
            // `self` lives.
            unsafe { raw::sem_post(self.ptr()) }.map_err(|e| sem_error("sem_post", self.name(), e))
        }

        /// `sem_wait`: waits until the value is positive and takes one.
        pub fn wait(&self) -> Result<()> {
            self.wait_with(LockWait::Block)
        }

        /// `sem_trywait`: takes one if the value is positive; `Busy`
        /// otherwise.
        pub fn try_wait(&self) -> Result<()> {
            self.wait_with(LockWait::Try)
        }

        /// `sem_clockwait(CLOCK_MONOTONIC)`: waits at most `timeout`;
        /// `TimedOut` otherwise.
        pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
            self.wait_with(LockWait::For(timeout))
        }

        fn wait_with(&self, wait: LockWait) -> Result<()> {
            // SAFETY: as in `post`.
            unsafe { raw::sem_wait(self.ptr(), wait) }.map_err(|e| sem_error("sem_wait", self.name(), e))
        }

        /// `sem_getvalue`.
        pub fn value(&self) -> Result<u32> {
            // SAFETY: as in `post`.
            let v = unsafe { raw::sem_value(self.ptr()) }.map_err(|e| sem_error("sem_getvalue", self.name(), e))?;
            Ok(v.max(0) as u32)
        }
    };
}

/// A POSIX named semaphore (`sem_open`), shared by name with any process,
/// C programs included (glibc keeps it in `/dev/shm/sem.NAME`).
#[derive(Debug)]
pub struct NamedSemaphore {
    sem: NamedSem,
    name: String,
}

impl NamedSemaphore {
    fn check_name(name: &str) -> Result<()> {
        name::check_posix_name(name, name::PosixKind::Semaphore)
            .map_err(|why| Error::new(ErrorKind::Invalid, "sem_open", name, why))
    }

    fn check_value(name: &str, value: u32) -> Result<()> {
        if value > SEM_VALUE_MAX {
            return Err(Error::new(
                ErrorKind::Invalid,
                "sem_open",
                name,
                format!("initial value {value} exceeds SEM_VALUE_MAX ({SEM_VALUE_MAX})"),
            ));
        }
        Ok(())
    }

    /// Creates `/name` with `value`, failing if it exists.
    pub fn create(name: &str, value: u32, mode: u32) -> Result<NamedSemaphore> {
        NamedSemaphore::open_how(name, Create::Exclusive, mode, value)
    }

    /// Opens `/name`, creating it with `value` if it does not exist.
    pub fn open_or_create(name: &str, value: u32, mode: u32) -> Result<NamedSemaphore> {
        NamedSemaphore::open_how(name, Create::IfMissing, mode, value)
    }

    /// Opens an existing `/name`.
    pub fn open(name: &str) -> Result<NamedSemaphore> {
        NamedSemaphore::open_how(name, Create::No, 0, 0)
    }

    fn open_how(name: &str, how: Create, mode: u32, value: u32) -> Result<NamedSemaphore> {
        NamedSemaphore::check_name(name)?;
        NamedSemaphore::check_value(name, value)?;
        let (sem, opened) = name::create_or_open(how, |attempt| {
            NamedSem::open(name, (attempt == name::Attempt::Create).then_some((mode, value)))
        })
        .map_err(|(_, e)| {
            let err = Error::os("sem_open", name, e);
            match e {
                Errno::NOENT => err.with_detail("no such semaphore"),
                Errno::EXIST => err.with_detail("it exists already"),
                _ => err,
            }
        })?;
        // glibc creates the file with the umask applied: make a new one's
        // mode exact, and check an existing one's owner.
        let path = std::path::PathBuf::from(format!("/dev/shm/sem.{}", &name[1..]));
        if opened == Opened::Created {
            crate::sys::fs::chmod(&path, mode & 0o777).map_err(|e| Error::os("chmod", name, e))?;
        } else if let Ok(st) = crate::sys::fs::stat(&path) {
            name::check_owner("sem_open", name, "semaphore", st.uid)?;
        }
        Ok(NamedSemaphore { sem, name: name.to_string() })
    }

    /// `sem_unlink`: removes the name (open handles keep working).
    pub fn unlink(name: &str) -> Result<()> {
        NamedSemaphore::check_name(name)?;
        raw::sem_unlink(name).map_err(|e| Error::os("sem_unlink", name, e))
    }

    /// The name, `/name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn ptr(&self) -> *mut u8 {
        self.sem.as_ptr()
    }

    sem_ops!();
}

/// A POSIX unnamed semaphore (`sem_init`, `pshared = 1`) in an ipckit
/// object: `sem_t` at offset 64.
#[derive(Debug)]
pub struct SharedSemaphore {
    obj: Arc<Object>,
    /// The `sem_t`, resolved once at open.
    sem: View,
}

fn shared_spec() -> ObjectSpec {
    ObjectSpec { kind: ObjectKind::Semaphore.code(), version: 1, abi: abi_tag(SEM_SIZE), payload: 64 }
}

/// The `sem_t`'s place in an object.
fn sem_view(region: &Region) -> Result<View> {
    region.view(HEADER_SIZE, SEM_SIZE, 8)
}

const _: () = assert!(SEM_SIZE <= 64);

impl SharedSemaphore {
    /// Opens the object `name`, creating it with `value` if it does not
    /// exist.
    pub fn open_or_create(name: &ShmName, value: u32) -> Result<(SharedSemaphore, Opened)> {
        SharedSemaphore::open_or_create_with(&Segment::new(name.clone()), value)
    }

    /// As [`open_or_create`](Self::open_or_create), with segment options.
    pub fn open_or_create_with(seg: &Segment, value: u32) -> Result<(SharedSemaphore, Opened)> {
        NamedSemaphore::check_value(&seg.name().to_string(), value)?;
        let (obj, opened) = Object::create_or_open(seg, shared_spec(), INIT_TIMEOUT, |region| {
            // SAFETY: unpublished object: nobody else uses these bytes; offset
            // 64 of a page-aligned mapping is aligned for sem_t.
            unsafe { raw::sem_init_shared(region.ptr(sem_view(region)?), value) }
                .map_err(|e| Error::os("sem_init", region.name(), e))
        })?;
        Ok((SharedSemaphore::from_object(obj)?, opened))
    }

    /// Opens an existing one.
    pub fn open(name: &ShmName) -> Result<SharedSemaphore> {
        SharedSemaphore::from_object(Object::open(&Segment::new(name.clone()), shared_spec(), INIT_TIMEOUT)?)
    }

    fn from_object(obj: Object) -> Result<SharedSemaphore> {
        let sem = sem_view(obj.region())?;
        Ok(SharedSemaphore { obj: Arc::new(obj), sem })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.obj.region().name()
    }

    fn ptr(&self) -> *mut u8 {
        self.obj.region().ptr(self.sem)
    }

    sem_ops!();
}
