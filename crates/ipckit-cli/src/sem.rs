//! `ipckit sem`: POSIX named semaphores (`/name`) and System V semaphore
//! sets (`sysv:KEY`) from the shell.

use std::time::Duration;

use clap::{Args, Subcommand};
use ipckit::endpoint::SysvKey;
use ipckit::shm::ShmName;
use ipckit::sync::{NamedSemaphore, SEM_VALUE_MAX, SemOp, SemaphoreSet};
use ipckit::{Error, ErrorKind};

use crate::units;

/// The largest value of a System V semaphore (the kernel's `SEMVMX`).
const SEMVMX: u32 = ipckit::sync::SEMVMX as u32;

/// The long help of `ipckit sem` (`--help`).
pub const LONG_HELP: &str = "Semaphores: create, post, wait, value, rm.\n\n\
        `/name` is a POSIX named semaphore (sem_open; glibc keeps it in /dev/shm/sem.name), shared with any \
        program that calls sem_open(\"/name\"). `sysv:KEY` is a System V semaphore set (KEY: a nonzero decimal \
        or 0xHEX number, or an absolute path for ftok, `sysv:/etc/app?id=7`); `--count N` at create sizes the \
        set and `--index I` (default 0) picks a semaphore in it.\n\n\
        System V `post` and `wait` do not use SEM_UNDO: the kernel would undo a short-lived command's post \
        or wait as soon as it exits. A post or wait by `ipckit sem` stays done, like a POSIX one.\n\n\
        Semaphores are created with mode 0600 and removed with `ipckit sem rm` (not `ipckit rm`, which \
        removes shared-memory segments of these names).\n\n\
        Values: a POSIX semaphore holds 0 to 2147483647 (SEM_VALUE_MAX), a System V one 0 to 32767 \
        (SEMVMX); `create --value` outside that range is refused before anything is created.\n\n\
        Exit status: 0 done, 1 error (no such semaphore, exists already with --exclusive, permission \
        denied), 2 invalid (bad name, value out of range, index out of range), 3 timed out.";

#[derive(Args, Debug)]
pub struct SemArgs {
    #[command(subcommand)]
    pub command: SemCommand,
}

#[derive(Subcommand, Debug)]
pub enum SemCommand {
    /// Create a semaphore (or open it if it exists and --exclusive is not
    /// given).
    Create {
        /// `/name` (POSIX) or `sysv:KEY` (System V set).
        name: String,
        /// Initial value (POSIX: 0 to 2147483647; System V: 0 to 32767, for
        /// every semaphore of the set).
        #[arg(long, value_name = "N", default_value_t = 0, value_parser = units::sem_value)]
        value: i64,
        /// Fail (exit 1) if it exists already.
        #[arg(long)]
        exclusive: bool,
        /// System V: how many semaphores the set has (default 1).
        #[arg(long, value_name = "N", value_parser = units::sem_count)]
        count: Option<u16>,
    },
    /// Add one, waking a waiter. System V: without SEM_UNDO, so the post
    /// outlasts this command.
    Post {
        /// `/name` or `sysv:KEY`.
        name: String,
        /// System V: which semaphore of the set (default 0).
        #[arg(long, value_name = "I", value_parser = units::sem_index)]
        index: Option<u16>,
    },
    /// Wait until the value is positive and take one. System V: without
    /// SEM_UNDO, so the wait outlasts this command.
    Wait {
        /// `/name` or `sysv:KEY`.
        name: String,
        /// System V: which semaphore of the set (default 0).
        #[arg(long, value_name = "I", value_parser = units::sem_index)]
        index: Option<u16>,
        /// Give up after this long (e.g. 500ms, 2s): exit 3. Too long for
        /// the clock (e.g. 99999999999999999999s): no limit.
        #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
        timeout: Option<Duration>,
    },
    /// Print the value.
    Value {
        /// `/name` or `sysv:KEY`.
        name: String,
        /// System V: which semaphore of the set (default 0).
        #[arg(long, value_name = "I", value_parser = units::sem_index)]
        index: Option<u16>,
    },
    /// Remove the semaphore (POSIX: the name; System V: the whole set,
    /// waking its waiters with an error).
    Rm {
        /// `/name` or `sysv:KEY`.
        name: String,
    },
}

/// What a semaphore name names.
enum Target {
    Posix(String),
    Sysv(SysvKey),
}

fn target(text: &str) -> ipckit::Result<Target> {
    match text.parse::<ShmName>()? {
        ShmName::Posix(name) => Ok(Target::Posix(name)),
        ShmName::Sysv(key) => Ok(Target::Sysv(key)),
        ShmName::File(_) => Err(invalid(
            "sem",
            text,
            "a semaphore is named /name (POSIX) or sysv:KEY (System V); file: names are for shared memory",
        )),
    }
}

fn invalid(op: &'static str, name: &str, why: impl Into<String>) -> Error {
    Error::new(ErrorKind::Invalid, op, name, why.into())
}

/// `--index` and `--count` are for System V sets only.
fn posix_only(name: &str, option: &str, given: bool) -> ipckit::Result<()> {
    if given {
        return Err(invalid("sem", name, format!("{option} applies only to System V sets (sysv:KEY)")));
    }
    Ok(())
}

const MODE: u32 = 0o600;

pub fn run(args: SemArgs) -> anyhow::Result<()> {
    match args.command {
        SemCommand::Create { name, value, exclusive, count } => create(&name, value, exclusive, count)?,
        SemCommand::Post { name, index } => match target(&name)? {
            Target::Posix(n) => {
                posix_only(&name, "--index", index.is_some())?;
                NamedSemaphore::open(&n)?.post()?;
            }
            Target::Sysv(key) => {
                let index = index.unwrap_or(0);
                SemaphoreSet::open(&key)?.op(&[SemOp { index, delta: 1, undo: false }])?;
            }
        },
        SemCommand::Wait { name, index, timeout } => match target(&name)? {
            Target::Posix(n) => {
                posix_only(&name, "--index", index.is_some())?;
                let sem = NamedSemaphore::open(&n)?;
                match timeout {
                    Some(t) => sem.wait_timeout(t)?,
                    None => sem.wait()?,
                }
            }
            Target::Sysv(key) => {
                let set = SemaphoreSet::open(&key)?;
                let op = [SemOp { index: index.unwrap_or(0), delta: -1, undo: false }];
                match timeout {
                    Some(t) => set.op_timeout(&op, t)?,
                    None => set.op(&op)?,
                }
            }
        },
        SemCommand::Value { name, index } => {
            let value = match target(&name)? {
                Target::Posix(n) => {
                    posix_only(&name, "--index", index.is_some())?;
                    i64::from(NamedSemaphore::open(&n)?.value()?)
                }
                Target::Sysv(key) => i64::from(SemaphoreSet::open(&key)?.value(index.unwrap_or(0))?),
            };
            crate::outln(format_args!("{value}"))?;
        }
        SemCommand::Rm { name } => match target(&name)? {
            Target::Posix(n) => NamedSemaphore::unlink(&n)?,
            Target::Sysv(key) => SemaphoreSet::remove(&key)?,
        },
    }
    Ok(())
}

/// `--value` as the initial value of a semaphore whose values go to
/// `max`: checked before anything is created.
fn initial_value(label: &str, value: i64, max: u32, kind: &str) -> ipckit::Result<u32> {
    match u32::try_from(value) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(invalid("sem create", label, format!("--value {value} is outside 0..={max}, the range of {kind}"))),
    }
}

fn create(name: &str, value: i64, exclusive: bool, count: Option<u16>) -> ipckit::Result<()> {
    match target(name)? {
        Target::Posix(n) => {
            posix_only(name, "--count", count.is_some())?;
            let value = initial_value(&n, value, SEM_VALUE_MAX, "a POSIX semaphore (SEM_VALUE_MAX)")?;
            match NamedSemaphore::create(&n, value, MODE) {
                Ok(_) => crate::errln(format_args!("created {n} (value {value})")),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && !exclusive => {
                    let sem = NamedSemaphore::open(&n)?;
                    crate::errln(format_args!("opened existing {n} (value {})", sem.value()?));
                }
                Err(e) => return Err(e),
            }
        }
        Target::Sysv(key) => {
            let label = format!("sysv:{key}");
            let v = initial_value(&label, value, SEMVMX, "a System V semaphore (SEMVMX)")?;
            // SEMVMX fits an i32.
            let v = i32::try_from(v).unwrap_or(i32::MAX);
            let n = count.unwrap_or(1);
            match SemaphoreSet::create(&key, n, v, MODE, true) {
                Ok(_) => crate::errln(format_args!("created {label} ({n} semaphore{}, value {v})", plural(n))),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && !exclusive => {
                    let set = SemaphoreSet::open(&key)?;
                    let have = set.len();
                    crate::errln(format_args!("opened existing {label} ({have} semaphore{})", plural(have)));
                    if count.is_some_and(|c| c != have) {
                        crate::errln(format_args!("warning: {label} has {have} semaphore{}, not {n}", plural(have)));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn plural(n: u16) -> &'static str {
    if n == 1 { "" } else { "s" }
}
