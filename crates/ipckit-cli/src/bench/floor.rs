//! The floors of the shared-memory table: the least two processes can do
//! to pass the same bytes through shared memory, written directly on a
//! memfd mapping ([`SharedPage`]), beside which ipckit's `shm:` channel is
//! measured.
//!
//! | floor | rows | what |
//! | --- | --- | --- |
//! | [`PingPong`] busy | shm-busy, shm-spin | a cache-line ping-pong: per direction a turn word (a sequence number and the length, on a cache line of its own) and a buffer; the sender copies the payload into the buffer and publishes the turn (release), the receiver spins on the word (acquire) and copies the payload out |
//! | [`PingPong`] futex | shm-park | the same, but the receiver never spins: it announces itself and sleeps in `FUTEX_WAIT` on the turn word at once, and the sender calls `FUTEX_WAKE` when someone announced himself |
//! | [`Stream`] | shm-stream | one way, records of a fixed size, each with a sequence stamp, through a ring of fixed slots (head and tail atomics on cache lines of their own); both sides busy-poll |
//!
//! A peer that dies must not leave the parent waiting: the trial's alarm
//! writes [`DEAD`] into the word the parent waits on (and wakes it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Context, Result, bail, ensure};
use rustix::io::Errno;
use rustix::thread::futex;

use super::link::Link;
use super::plan::MAX_MESSAGE;
use super::raw_ffi::SharedPage;

/// What the alarm writes into the word the parent waits on when the peer
/// died: no sequence number ever gets there.
const DEAD: u32 = u32::MAX;

/// The layout of a ping-pong page: the two turn lines, then the two
/// buffers, each on pages of their own.
const PING: usize = 0;
const PONG: usize = 64;
const DOWN: usize = 4096;
const UP: usize = DOWN + MAX_MESSAGE;

/// The size of a ping-pong page.
pub(super) const PING_PONG_LEN: usize = UP + MAX_MESSAGE;

/// How a receiver of a ping-pong waits for its turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Waiting {
    /// Spin on the turn word.
    Busy,
    /// Sleep on it at once (`FUTEX_WAIT`), no spinning.
    Futex,
}

/// Which end of a ping-pong this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// Sends on `PING`/`DOWN`, receives on `PONG`/`UP`.
    Parent,
    Peer,
}

/// One direction's turn line: the sequence number of the last message
/// (the futex word), the sleepers announced on it, and the message's
/// length; all on one cache line.
struct Turn<'a> {
    seq: &'a AtomicU32,
    sleepers: &'a AtomicU32,
    len: &'a AtomicU32,
}

impl<'a> Turn<'a> {
    fn at(page: &'a SharedPage, offset: usize) -> Turn<'a> {
        Turn { seq: page.atomic_u32(offset), sleepers: page.atomic_u32(offset + 4), len: page.atomic_u32(offset + 8) }
    }

    /// Publishes message `seq` of `len` bytes (whose bytes are in the
    /// buffer already).
    #[inline]
    fn post(&self, seq: u32, len: u32, waiting: Waiting) -> Result<()> {
        self.len.store(len, Ordering::Relaxed);
        match waiting {
            Waiting::Busy => self.seq.store(seq, Ordering::Release),
            Waiting::Futex => {
                // SeqCst against the sleeper's announcement: either it sees
                // the new number, or this sees it announced.
                self.seq.store(seq, Ordering::SeqCst);
                if self.sleepers.load(Ordering::SeqCst) != 0 {
                    futex::wake(self.seq, futex::Flags::empty(), 1).context("FUTEX_WAKE")?;
                }
            }
        }
        Ok(())
    }

    /// Waits until message `seq` is published; its length.
    #[inline]
    fn wait(&self, seq: u32, waiting: Waiting) -> Result<u32> {
        match waiting {
            Waiting::Busy => loop {
                match self.seq.load(Ordering::Acquire) {
                    now if now == seq => break,
                    DEAD => bail!("the peer died"),
                    _ => std::hint::spin_loop(),
                }
            },
            Waiting::Futex => {
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                let result = loop {
                    match self.seq.load(Ordering::SeqCst) {
                        now if now == seq => break Ok(()),
                        DEAD => break Err(anyhow::anyhow!("the peer died")),
                        now => match futex::wait(self.seq, futex::Flags::empty(), now, None) {
                            Ok(()) | Err(Errno::AGAIN | Errno::INTR) => {}
                            Err(e) => break Err(anyhow::Error::new(e).context("FUTEX_WAIT")),
                        },
                    }
                };
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                result?;
            }
        }
        Ok(self.len.load(Ordering::Relaxed))
    }

    /// The alarm: the parent's wait ends.
    fn kill(&self) {
        self.seq.store(DEAD, Ordering::SeqCst);
        let _ = futex::wake(self.seq, futex::Flags::empty(), i32::MAX as u32);
    }
}

/// One end of the ping-pong floor, as a [`Link`], so that it runs in the
/// very loops ipckit's channels run in.
#[derive(Debug)]
pub(super) struct PingPong {
    page: Arc<SharedPage>,
    end: End,
    waiting: Waiting,
    /// Messages sent and received so far (the next sequence numbers).
    sent: u32,
    received: u32,
}

impl PingPong {
    /// A new zeroed page for a trial, to pass to the peer.
    pub(super) fn page() -> Result<Arc<SharedPage>> {
        Ok(Arc::new(SharedPage::create(PING_PONG_LEN).context("memfd for the ping-pong floor")?))
    }

    pub(super) fn new(page: Arc<SharedPage>, end: End, waiting: Waiting) -> Result<PingPong> {
        ensure!(page.size() >= PING_PONG_LEN, "the shared page is {} bytes, not {PING_PONG_LEN}", page.size());
        Ok(PingPong { page, end, waiting, sent: 0, received: 0 })
    }

    /// (outgoing turn, outgoing buffer, incoming turn, incoming buffer)
    #[inline]
    fn lines(&self) -> (usize, usize, usize, usize) {
        match self.end {
            End::Parent => (PING, DOWN, PONG, UP),
            End::Peer => (PONG, UP, PING, DOWN),
        }
    }

    /// The parent's alarm: ends its wait for the peer's next message.
    pub(super) fn alarm(page: Arc<SharedPage>) -> impl FnOnce() + Send + 'static {
        move || Turn::at(&page, PONG).kill()
    }
}

impl Link for PingPong {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let (turn, buffer, _, _) = self.lines();
        ensure!(msg.len() <= MAX_MESSAGE, "a {}-byte message is over {MAX_MESSAGE}", msg.len());
        self.page.write_bytes(buffer, msg);
        self.sent += 1;
        Turn::at(&self.page, turn).post(self.sent, msg.len() as u32, self.waiting)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        let (_, _, turn, buffer) = self.lines();
        self.received += 1;
        let len = Turn::at(&self.page, turn).wait(self.received, self.waiting)? as usize;
        ensure!(len <= buf.len().min(MAX_MESSAGE), "message {} announces {len} bytes", self.received);
        self.page.read_bytes(buffer, &mut buf[..len]);
        Ok(len)
    }
}

/// The layout of a stream page: the consumer's `head` and the producer's
/// `tail` (records ever consumed and published), each on a cache line of
/// its own, the alarm's word, then the slots.
const HEAD: usize = 0;
const TAIL: usize = 64;
const ALARM: usize = 128;
const SLOTS_AT: usize = 4096;

/// The ring of the stream floor: 16384 slots of [`RECORD`] bytes, 1 MiB,
/// the size of an ipckit ring by default.
const SLOTS: u64 = 16384;

/// The record the stream rows carry: 64 bytes, the first 8 the sequence
/// stamp (`u64` little-endian).
pub(super) const RECORD: usize = 64;

/// The size of a stream page.
pub(super) const STREAM_LEN: usize = SLOTS_AT + SLOTS as usize * RECORD;

/// Writes stamp `seq` into `record`.
#[inline]
pub(super) fn stamp(record: &mut [u8], seq: u64) {
    record[..8].copy_from_slice(&seq.to_le_bytes());
}

/// Checks that `record` carries stamp `seq`.
#[inline]
pub(super) fn check_stamp(record: &[u8], seq: u64) -> Result<()> {
    let got = u64::from_le_bytes(record[..8].try_into().expect("a record is 64 bytes"));
    if got != seq {
        bail!("record {seq} carries the stamp {got}");
    }
    Ok(())
}

/// One end of the stream floor.
#[derive(Debug)]
pub(super) struct Stream {
    page: Arc<SharedPage>,
    /// This side's own index (records published, or consumed).
    mine: u64,
    /// The other side's index, as last seen.
    theirs: u64,
}

impl Stream {
    /// A new zeroed page for a trial, to pass to the peer.
    pub(super) fn page() -> Result<Arc<SharedPage>> {
        Ok(Arc::new(SharedPage::create(STREAM_LEN).context("memfd for the stream floor")?))
    }

    pub(super) fn new(page: Arc<SharedPage>) -> Result<Stream> {
        ensure!(page.size() >= STREAM_LEN, "the shared page is {} bytes, not {STREAM_LEN}", page.size());
        Ok(Stream { page, mine: 0, theirs: 0 })
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        self.page.atomic_u64(offset)
    }

    /// The consumer's alarm: ends its wait for the next record.
    pub(super) fn alarm(page: Arc<SharedPage>) -> impl FnOnce() + Send + 'static {
        move || page.atomic_u32(ALARM).store(DEAD, Ordering::Release)
    }

    /// The producer: copies `record` into the next slot once there is room,
    /// and publishes it.
    #[inline]
    pub(super) fn push(&mut self, record: &[u8]) {
        while self.mine - self.theirs == SLOTS {
            std::hint::spin_loop();
            self.theirs = self.word(HEAD).load(Ordering::Acquire);
        }
        let slot = SLOTS_AT + (self.mine % SLOTS) as usize * RECORD;
        self.page.write_bytes(slot, &record[..RECORD]);
        self.mine += 1;
        self.word(TAIL).store(self.mine, Ordering::Release);
    }

    /// The consumer: waits for the next record and copies it into
    /// `record`.
    #[inline]
    pub(super) fn pop(&mut self, record: &mut [u8]) -> Result<()> {
        while self.theirs == self.mine {
            std::hint::spin_loop();
            let tail = self.word(TAIL).load(Ordering::Acquire);
            ensure!(tail >= self.mine && tail - self.mine <= SLOTS, "the producer's index {tail} is impossible");
            self.theirs = tail;
            if tail == self.mine && self.page.atomic_u32(ALARM).load(Ordering::Relaxed) == DEAD {
                bail!("the peer died");
            }
        }
        let slot = SLOTS_AT + (self.mine % SLOTS) as usize * RECORD;
        self.page.read_bytes(slot, &mut record[..RECORD]);
        self.mine += 1;
        self.word(HEAD).store(self.mine, Ordering::Release);
        Ok(())
    }
}
