//! Reading, writing and waiting on file descriptors.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::wait::Wait;

/// Runs `f` again for as long as it fails with `EINTR`.
#[inline]
pub(crate) fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// What [`poll`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Readable (`POLLIN`).
    Read,
    /// Writable (`POLLOUT`).
    Write,
}

/// `poll` on one descriptor until it is ready (or an error/hang-up
/// condition is reported: the next call tells which) or the wait runs out.
/// Returns `false` when the wait ran out.
pub(crate) fn poll(fd: BorrowedFd<'_>, ready: Ready, wait: Wait) -> Result<bool, Errno> {
    let events = match ready {
        Ready::Read => PollFlags::IN,
        Ready::Write => PollFlags::OUT,
    };
    poll_events(fd, events, wait).map(|r| r.is_some())
}

/// `poll` on one descriptor until `events` (or an error/hang-up condition)
/// is reported or the wait runs out. Returns the reported events, or `None`
/// when the wait ran out.
fn poll_events(fd: BorrowedFd<'_>, events: PollFlags, wait: Wait) -> Result<Option<PollFlags>, Errno> {
    loop {
        let timeout = wait.remaining().map(timespec);
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => {
                if wait.remaining() == Some(Duration::ZERO) {
                    return Ok(None);
                }
                // Woken early (the kernel may round); wait for what is left.
            }
            Ok(_) => return Ok(Some(fds[0].revents())),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec { tv_sec: d.as_secs().min(i64::MAX as u64) as i64, tv_nsec: d.subsec_nanos() as _ }
}

/// `read`, retrying `EINTR`.
#[inline]
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    retry(|| rustix::io::read(fd, &mut *buf))
}

/// `writev`, retrying `EINTR`.
#[inline]
pub(crate) fn writev(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> Result<usize, Errno> {
    retry(|| rustix::io::writev(fd, bufs))
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: impl AsFd, on: bool) -> Result<(), Errno> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    let new = if on { flags | OFlags::NONBLOCK } else { flags - OFlags::NONBLOCK };
    if new != flags {
        rustix::fs::fcntl_setfl(&fd, new)?;
    }
    Ok(())
}

/// `pipe2(O_CLOEXEC)`: the read end and the write end.
pub(crate) fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), Errno> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
}

/// An epoll instance (close-on-exec): readable when any descriptor added to
/// it is. Descriptors leave it when they are closed.
pub(crate) fn epoll_create() -> Result<std::os::fd::OwnedFd, Errno> {
    rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC)
}

/// Adds `fd` to an epoll instance, for readability (level-triggered),
/// with `data` to tell it by in [`epoll_wait`].
pub(crate) fn epoll_add(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, data: u64) -> Result<(), Errno> {
    use rustix::event::epoll;
    epoll::add(epoll, fd, epoll::EventData::new_u64(data), epoll::EventFlags::IN)
}

/// Adds `fd` to an epoll instance, edge-triggered: reported once per
/// change (for an eventfd: once per write), never drained.
pub(crate) fn epoll_add_edge(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, data: u64) -> Result<(), Errno> {
    use rustix::event::epoll;
    epoll::add(epoll, fd, epoll::EventData::new_u64(data), epoll::EventFlags::IN | epoll::EventFlags::ET)
}

/// Turns readability interest in `fd` on or off, keeping it in the set.
pub(crate) fn epoll_interest(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, data: u64, on: bool) -> Result<(), Errno> {
    use rustix::event::epoll;
    let flags = if on { epoll::EventFlags::IN } else { epoll::EventFlags::empty() };
    epoll::modify(epoll, fd, epoll::EventData::new_u64(data), flags)
}

/// Removes `fd` from an epoll instance (closing it does too, once every
/// duplicate is closed).
pub(crate) fn epoll_remove(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::event::epoll::delete(epoll, fd)
}

/// `epoll_wait` for at most `max` events within `wait`: fills `ready` with
/// the data words of the descriptors that are ready (readable, hung up or
/// in error) and returns how many; 0 when the wait ran out. Retries
/// `EINTR` with what is left of the wait.
pub(crate) fn epoll_wait(epoll: BorrowedFd<'_>, ready: &mut Vec<u64>, max: usize, wait: Wait) -> Result<usize, Errno> {
    epoll_wait_with(epoll, ready, max, wait, |e| e.data.u64())
}

/// The wait of [`epoll_wait`] and [`epoll_wait_ready`]: at most `max`
/// events (64 at most, on the stack: no allocation per wait), each made
/// into a `T` by `each`; `EINTR` retried with what is left of the wait.
fn epoll_wait_with<T>(
    epoll: BorrowedFd<'_>,
    ready: &mut Vec<T>,
    max: usize,
    wait: Wait,
    each: impl Fn(&rustix::event::epoll::Event) -> T,
) -> Result<usize, Errno> {
    use rustix::event::epoll;
    let mut events = [std::mem::MaybeUninit::<epoll::Event>::uninit(); 64];
    let max = max.clamp(1, events.len());
    let got = loop {
        let timeout = wait.remaining().map(timespec);
        match epoll::wait(epoll, &mut events[..max], timeout.as_ref()) {
            Ok((got, _)) if got.is_empty() && wait.remaining() != Some(Duration::ZERO) => {}
            Ok((got, _)) => break got,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    };
    ready.clear();
    ready.extend(got.iter().map(each));
    Ok(ready.len())
}

/// One descriptor that [`epoll_wait_ready`] reported, with what it is
/// ready for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EpollReady {
    /// The data word it was added with.
    pub(crate) data: u64,
    /// Readable (`EPOLLIN`).
    pub(crate) readable: bool,
    /// Writable (`EPOLLOUT`), when that was asked for.
    pub(crate) writable: bool,
    /// Hung up or in error (`EPOLLHUP`, `EPOLLERR`): the next call on it
    /// says which.
    pub(crate) hangup: bool,
}

fn rw_flags(write: bool) -> rustix::event::epoll::EventFlags {
    use rustix::event::epoll::EventFlags;
    if write { EventFlags::IN | EventFlags::OUT } else { EventFlags::IN }
}

/// Adds `fd` to an epoll instance (level-triggered) for readability and,
/// when `write`, writability, with `data` to tell it by.
pub(crate) fn epoll_add_rw(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, data: u64, write: bool) -> Result<(), Errno> {
    use rustix::event::epoll;
    epoll::add(epoll, fd, epoll::EventData::new_u64(data), rw_flags(write))
}

/// Sets what `fd`, already in an epoll instance, is watched for:
/// readability and, when `write`, writability; and its data word.
pub(crate) fn epoll_modify_rw(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, data: u64, write: bool) -> Result<(), Errno> {
    use rustix::event::epoll;
    epoll::modify(epoll, fd, epoll::EventData::new_u64(data), rw_flags(write))
}

/// [`epoll_wait`], reporting for each ready descriptor what it is ready
/// for. Retries `EINTR` with what is left of the wait; 0 when the wait ran
/// out.
pub(crate) fn epoll_wait_ready(
    epoll: BorrowedFd<'_>,
    ready: &mut Vec<EpollReady>,
    max: usize,
    wait: Wait,
) -> Result<usize, Errno> {
    use rustix::event::epoll::EventFlags;
    epoll_wait_with(epoll, ready, max, wait, |e| {
        // A copy: the event is packed.
        let flags = e.flags;
        EpollReady {
            data: e.data.u64(),
            readable: flags.contains(EventFlags::IN),
            writable: flags.contains(EventFlags::OUT),
            hangup: flags.intersects(EventFlags::HUP | EventFlags::ERR),
        }
    })
}

/// `pread` at `offset` until `buf` is full or the file ends, retrying
/// `EINTR`: the number of bytes read, fewer than `buf.len()` only at the end
/// of the file. Reading through the descriptor, never a mapping, cannot
/// fault when the file shrinks: the kernel reports the end instead.
pub(crate) fn pread_full(
    fd: BorrowedFd<'_>,
    buf: &mut [std::mem::MaybeUninit<u8>],
    offset: u64,
) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset.checked_add(done as u64).ok_or(Errno::OVERFLOW)?;
        let n = retry(|| rustix::io::pread(fd, &mut buf[done..], at).map(|(read, _)| read.len()))?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// `pwrite` of all of `data` at `offset`, retrying `EINTR` and short
/// writes. Past the end of the file, the file grows (as any `pwrite`): a
/// caller that must not grow it checks the size first.
pub(crate) fn pwrite_all(fd: BorrowedFd<'_>, data: &[u8], offset: u64) -> Result<(), Errno> {
    let mut done = 0;
    while done < data.len() {
        let at = offset.checked_add(done as u64).ok_or(Errno::OVERFLOW)?;
        match retry(|| rustix::io::pwrite(fd, &data[done..], at))? {
            0 => return Err(Errno::IO),
            n => done += n,
        }
    }
    Ok(())
}

/// Whether writes on `fd` append whatever the offset (`O_APPEND`: Linux's
/// `pwrite` then ignores the offset).
pub(crate) fn is_append(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    Ok(rustix::fs::fcntl_getfl(fd)?.contains(OFlags::APPEND))
}

/// An eventfd (close-on-exec, non-blocking): a counter that is readable
/// while it is not zero, to wake a thread that waits in epoll.
pub(crate) fn eventfd() -> Result<std::os::fd::OwnedFd, Errno> {
    use rustix::event::EventfdFlags;
    rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
}

/// Adds one to an eventfd (it becomes readable).
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    match retry(|| rustix::io::write(fd, &1u64.to_ne_bytes())) {
        // The counter is at its maximum: it is readable already.
        Ok(_) | Err(Errno::AGAIN) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes an eventfd's count (it stops being readable).
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut count = [0u8; 8];
    match retry(|| rustix::io::read(fd, &mut count)) {
        Ok(_) | Err(Errno::AGAIN) => Ok(()),
        Err(e) => Err(e),
    }
}
