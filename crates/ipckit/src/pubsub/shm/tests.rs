//! The subscriber's reader over hostile topic memory: a publisher that
//! writes anything into `head`, `seq` and `len`, at any time. The reader
//! never panics, never allocates more than a slot, never goes back, and
//! reports what it cannot make sense of as an error (`Corrupt`).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use proptest::prelude::*;

use super::protocol::{Reader, TopicMemory};

/// A topic in ordinary memory.
struct Plain {
    head: AtomicU64,
    seq: Vec<AtomicU64>,
    len: Vec<AtomicU64>,
    data: Vec<Vec<AtomicU8>>,
    max: usize,
}

impl Plain {
    fn new(slots: usize, max: usize) -> Plain {
        Plain {
            head: AtomicU64::new(0),
            seq: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            len: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            data: (0..slots).map(|_| (0..max).map(|_| AtomicU8::new(0)).collect()).collect(),
            max,
        }
    }
}

impl TopicMemory for Plain {
    type Word = AtomicU64;
    fn head(&self) -> &AtomicU64 {
        &self.head
    }
    fn slots(&self) -> usize {
        self.seq.len()
    }
    fn max_message(&self) -> usize {
        self.max
    }
    fn seq(&self, slot: usize) -> &AtomicU64 {
        &self.seq[slot]
    }
    fn len(&self, slot: usize) -> &AtomicU64 {
        &self.len[slot]
    }
    fn write(&self, slot: usize, data: &[u8]) {
        for (d, &b) in self.data[slot].iter().zip(data) {
            d.store(b, Ordering::Relaxed);
        }
    }
    fn read(&self, slot: usize, buf: &mut [u8]) {
        assert!(buf.len() <= self.max, "read past a slot");
        for (b, d) in buf.iter_mut().zip(&self.data[slot]) {
            *b = d.load(Ordering::Relaxed);
        }
    }
    fn fence(order: Ordering) {
        std::sync::atomic::fence(order)
    }
}

/// One thing a hostile publisher does between two reads.
#[derive(Clone, Debug)]
enum Scribble {
    Head(u64),
    Seq(usize, u64),
    Len(usize, u64),
    /// An honest message (so that the reader gets somewhere).
    Publish(u8),
}

fn scribble() -> impl Strategy<Value = Scribble> {
    let word = prop_oneof![0..200u64, any::<u64>(), Just(u64::MAX), Just(1 << 62)];
    prop_oneof![
        word.clone().prop_map(Scribble::Head),
        (0..4usize, word.clone()).prop_map(|(s, v)| Scribble::Seq(s, v)),
        (0..4usize, word).prop_map(|(s, v)| Scribble::Len(s, v)),
        any::<u8>().prop_map(Scribble::Publish),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reader_survives_hostile_memory(ops in prop::collection::vec(scribble(), 1..40)) {
        let mem = Plain::new(4, 32);
        let mut honest = super::protocol::Writer::new();
        let mut reader = Reader::new(0, 0);
        let mut buf = Vec::new();
        for op in ops {
            match op {
                Scribble::Head(v) => mem.head.store(v, Ordering::Relaxed),
                Scribble::Seq(s, v) => mem.seq[s].store(v, Ordering::Relaxed),
                Scribble::Len(s, v) => mem.len[s].store(v, Ordering::Relaxed),
                Scribble::Publish(b) => honest.write(&mem, &[b; 5]),
            }
            let before = reader.next();
            match reader.read(&mem, &mut buf) {
                Ok(Some(_)) => {
                    prop_assert!(buf.len() <= 32);
                    prop_assert!(reader.next() > before);
                }
                Ok(None) => prop_assert_eq!(reader.next(), before),
                // Once broken, the subscriber stops reading.
                Err(_) => break,
            }
        }
    }

    /// An honest publisher, a reader that falls behind: received + lost
    /// is what was published, and every message is the right one.
    #[test]
    fn reader_counts_losses_exactly(bursts in prop::collection::vec(0..12usize, 1..20)) {
        let mem = Plain::new(4, 32);
        let mut w = super::protocol::Writer::new();
        let mut reader = Reader::new(0, 0);
        let mut buf = Vec::new();
        let mut seen = 0u64;
        for burst in bursts {
            for _ in 0..burst {
                let n = w.head();
                w.write(&mem, &n.to_le_bytes());
            }
            if let Some(lost) = reader.read(&mem, &mut buf).unwrap() {
                seen += lost;
                prop_assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), seen);
                seen += 1;
            }
        }
        while let Some(lost) = reader.read(&mem, &mut buf).unwrap() {
            seen += lost;
            prop_assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), seen);
            seen += 1;
        }
        prop_assert_eq!(seen, w.head());
    }
}

/// A publisher that puts a slot's sequence back after every copy, so that
/// each copy looks torn and the next look finds the message there again:
/// the reader gives up with an error after a few tears of the same
/// message, instead of retrying for ever.
#[test]
fn a_sequence_that_keeps_coming_back_is_corrupt_not_a_spin() {
    /// Loads of slot 0's sequence alternate between `intact` (the message
    /// is there) and `torn` (it changed during the copy).
    struct Flipping {
        inner: Plain,
        intact: AtomicU64,
        torn: AtomicU64,
        loads: std::cell::Cell<u64>,
    }
    impl TopicMemory for Flipping {
        type Word = AtomicU64;
        fn head(&self) -> &AtomicU64 {
            self.inner.head()
        }
        fn slots(&self) -> usize {
            self.inner.slots()
        }
        fn max_message(&self) -> usize {
            self.inner.max_message()
        }
        fn seq(&self, _slot: usize) -> &AtomicU64 {
            let n = self.loads.get();
            self.loads.set(n + 1);
            if n % 2 == 0 { &self.intact } else { &self.torn }
        }
        fn len(&self, slot: usize) -> &AtomicU64 {
            self.inner.len(slot)
        }
        fn write(&self, slot: usize, data: &[u8]) {
            self.inner.write(slot, data)
        }
        fn read(&self, slot: usize, buf: &mut [u8]) {
            self.inner.read(slot, buf)
        }
        fn fence(order: Ordering) {
            Plain::fence(order)
        }
    }
    let mem = Flipping {
        inner: Plain::new(4, 16),
        intact: AtomicU64::new(2), // message 0, written
        torn: AtomicU64::new(9),   // message 4 being written over it
        loads: std::cell::Cell::new(0),
    };
    mem.inner.head.store(1, Ordering::Relaxed);
    mem.inner.len[0].store(3, Ordering::Relaxed);
    let mut reader = Reader::new(0, 1);
    let mut buf = Vec::new();
    let e = reader.read(&mem, &mut buf).unwrap_err();
    assert!(e.contains("torn"), "{e}");
    assert!(mem.loads.get() < 100, "{} loads before giving up", mem.loads.get());
}
