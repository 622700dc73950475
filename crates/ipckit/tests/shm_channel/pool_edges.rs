//! The pool's edges, from a review: a receiver dropped while a sample
//! lives, references to memory never written, a pool sealed only in
//! appearance, copies bounded by the receiver's maximum, wake-ups from
//! samples dropped on other threads, a release ring exactly full.

use std::sync::mpsc;
use std::time::Duration;

use ipckit::ErrorKind;
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::scratch::Scratch;

use super::support::{channel, pair};

/// A sender asleep waiting for pool room is never told that its receiver
/// was dropped while a sample of it is still alive.
#[test]
fn a_receiver_dropped_while_a_sample_lives_disconnects_a_pool_waiter() {
    let s = Scratch::new("rv-drop-pool");
    let text = channel(&s, "rvpool", "?pool=65536&inline=0&spin=0");
    let (mut rx, mut tx) = pair(&text);
    tx.send(&[7u8; 10]).unwrap();
    let sample = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    assert!(sample.is_in_place());
    let (done_tx, done_rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        // The whole (one-chunk) pool is held by `sample`: this parks.
        let r = tx.loan_timeout(1, HANG_GUARD).map(|_| ()).map_err(|e| e.kind());
        done_tx.send(r).unwrap();
    });
    // Most likely asleep by now (if not, it sees the end all the same).
    std::thread::sleep(Duration::from_millis(100));
    drop(rx); // the receiver is gone; `sample` lives on
    let got = done_rx.recv().unwrap();
    t.join().unwrap();
    drop(sample);
    assert_eq!(got, Err(ErrorKind::Disconnected), "the sender learns of its receiver's end while it waits");
}

/// The same for a sender asleep waiting for ring room.
#[test]
fn a_receiver_dropped_while_a_sample_lives_disconnects_a_ring_waiter() {
    let s = Scratch::new("rv-drop-ring");
    let text = channel(&s, "rvring", "?size=4096&pool=65536&inline=4000&spin=0");
    let (mut rx, mut tx) = pair(&text);
    tx.send(&[7u8; 5000]).unwrap(); // pooled
    let sample = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    assert!(sample.is_in_place());
    let (done_tx, done_rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = (|| {
            for _ in 0..100 {
                tx.send_timeout(&[1u8; 1000], HANG_GUARD)?;
            }
            Ok::<(), ipckit::Error>(())
        })()
        .map_err(|e| e.kind());
        done_tx.send(r).unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(rx);
    let got = done_rx.recv().unwrap();
    t.join().unwrap();
    drop(sample);
    assert_eq!(got, Err(ErrorKind::Disconnected), "the sender learns of its receiver's end while it waits");
}

/// `max_message` (16 MiB by default) bounds `recv`, not `recv_sample`:
/// a pool message of any size up to the sender's pool comes through, and
/// `into_message` then allocates what the peer chose.
#[test]
fn samples_are_unbounded_but_their_copies_are_bounded_by_max_message() {
    let s = Scratch::new("rv-max");
    let text = channel(&s, "rvmax", "?pool=64MiB");
    let rx_opts = ipckit::Options::new().max_message(1 << 20);
    let mut rx = ipckit::Receiver::bind_with(&super::support::ep(&text), &rx_opts).unwrap();
    let mut tx =
        ipckit::Sender::connect_timeout(&super::support::ep(&text), &ipckit::Options::new(), HANG_GUARD).unwrap();
    let mut loan = tx.loan(40 << 20).unwrap();
    loan.fill(1);
    loan.send().unwrap();
    let sample = rx.recv_sample_timeout(HANG_GUARD).unwrap();
    assert_eq!(sample.len(), 40 << 20, "a sample is not bounded: nothing is allocated");
    let mut part = [0u8; 4];
    sample.read_at((40 << 20) - 4, &mut part).unwrap();
    assert_eq!(part, [1; 4]);
    assert_eq!(sample.to_vec().unwrap_err().kind(), ErrorKind::TooLarge);
    let e = sample.into_message().unwrap_err();
    assert!(e.kind() == ErrorKind::TooLarge && e.to_string().contains("1048576"), "{e}");
}

/// The receiver's "sealed against writes by others" check looks at how the
/// descriptor was opened, not at the seals: a read-only reopen of an
/// unsealed-for-writes memfd passes.
#[test]
fn a_read_only_descriptor_of_an_unsealed_pool_is_refused() {
    use rustix::fs::SealFlags;
    use std::os::fd::AsRawFd;
    let s = Scratch::new("rv-ro");
    let text = channel(&s, "rvro", "");
    let name = text.trim_start_matches("shm:").to_string();
    let _rx = ipckit::Receiver::bind(&super::support::ep(&text)).unwrap();
    let fd = rustix::fs::memfd_create("ipckit-t-ro", rustix::fs::MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, 1 << 20).unwrap();
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    let ro = rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let control: ipckit::Endpoint = format!("unix-seqpacket:@ipckit/shm/{name}").parse().unwrap();
    let mut conn = ipckit::socket::Connection::connect(&control).unwrap();
    let mut hello = b"IPCKIT-SHM\x02".to_vec();
    hello.extend_from_slice(&0u64.to_le_bytes());
    hello.extend_from_slice(&(1u64 << 20).to_le_bytes());
    use std::os::fd::AsFd;
    conn.send_with(&hello, &ipckit::SendMeta::new().fds(&[ro.as_fd()])).unwrap();
    let answer = conn.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(&answer.data[11..12], b"R", "a pool anyone holding the memfd can write was welcomed");
}

/// Samples dropped on other threads while the sender waits for pool room
/// (tiny pool, spin=0: it parks every time): no lost wake-up.
#[test]
fn samples_dropped_on_other_threads_wake_a_parked_lender() {
    let s = Scratch::new("rv-park");
    let text = channel(&s, "rvpark", "?pool=192KiB&inline=0&spin=0&size=4KiB");
    let (mut rx, mut tx) = pair(&text);
    const N: u64 = 20_000;
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            let mut loan = tx
                .loan_timeout(8 + (i % 3) as usize * 65536, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("loan {i}: {e}"));
            loan[..8].copy_from_slice(&i.to_le_bytes());
            loan.send_timeout(Duration::from_secs(10)).unwrap_or_else(|e| panic!("send {i}: {e}"));
        }
        tx
    });
    let (txs, droppers): (Vec<_>, Vec<_>) = (0..3)
        .map(|k| {
            let (t, r) = mpsc::channel::<ipckit::Sample>();
            let h = std::thread::spawn(move || {
                let mut n = 0u64;
                for s in r {
                    n += 1;
                    if (n + k) % 7 == 0 {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    drop(s);
                }
            });
            (t, h)
        })
        .unzip();
    for i in 0..N {
        let sample = rx.recv_sample_timeout(Duration::from_secs(10)).unwrap_or_else(|e| panic!("recv {i}: {e}"));
        let mut seq = [0u8; 8];
        sample.read_at(0, &mut seq).unwrap();
        assert_eq!(u64::from_le_bytes(seq), i);
        txs[(i % 3) as usize].send(sample).unwrap();
    }
    drop(txs);
    for d in droppers {
        d.join().unwrap();
    }
    let mut tx = sender.join().unwrap();
    assert_eq!(tx.pool_in_use().unwrap(), Some(0));
}

/// Every chunk of the default pool held by its own sample, then all given
/// back at once: the release ring (exactly one record per chunk) holds
/// them all.
#[test]
fn a_release_ring_exactly_full_holds_every_chunk() {
    let s = Scratch::new("rv-relfull");
    let text = channel(&s, "rvrelfull", "?inline=0&size=64KiB");
    let (mut rx, mut tx) = pair(&text);
    for round in 0..3 {
        let mut held = Vec::new();
        for _ in 0..1024 {
            tx.try_loan(1).unwrap().send().unwrap();
            held.push(rx.recv_sample_timeout(HANG_GUARD).unwrap());
        }
        assert_eq!(tx.try_loan(1).unwrap_err().kind(), ErrorKind::Full);
        drop(held);
        assert_eq!(tx.pool_in_use().unwrap(), Some(0), "round {round}");
    }
}

/// A hostile sender announces a large sparse pool and publishes references
/// to chunks it never wrote: the receiver's copies fault the holes in,
/// allocating shared memory (charged to the receiver) the sender never paid
/// for; it stays allocated for as long as the receiver holds the pool.
#[test]
fn references_to_memory_never_written_are_corrupt_and_allocate_nothing() {
    use rustix::fs::SealFlags;
    use std::os::fd::AsFd;
    const CHUNK: u64 = 64 * 1024;
    const POOL: u64 = 1 << 30;
    let s = Scratch::new("rv-holes");
    let text = channel(&s, "rvholes", "?size=4KiB");
    let name = text.trim_start_matches("shm:").split('?').next().unwrap().to_string();
    let mut rx = ipckit::Receiver::bind(&super::support::ep(&text)).unwrap();
    let pool = rustix::fs::memfd_create("ipckit-t-holes", rustix::fs::MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&pool, POOL).unwrap();
    rustix::fs::fcntl_add_seals(&pool, SealFlags::SHRINK | SealFlags::GROW | SealFlags::FUTURE_WRITE).unwrap();
    let control: ipckit::Endpoint = format!("unix-seqpacket:@ipckit/shm/{name}").parse().unwrap();
    let mut conn = ipckit::socket::Connection::connect(&control).unwrap();
    let mut hello = b"IPCKIT-SHM\x02".to_vec();
    hello.extend_from_slice(&0u64.to_le_bytes());
    hello.extend_from_slice(&POOL.to_le_bytes());
    conn.send_with(&hello, &ipckit::SendMeta::new().fds(&[pool.as_fd()])).unwrap();
    let welcome = conn.recv_timeout(HANG_GUARD).unwrap();
    let ring_fd = welcome.meta.fds.into_iter().next().unwrap();
    let len = rustix::fs::fstat(&ring_fd).unwrap().st_size as usize;
    let ring = ipckit::shm::Region::from_received_fd(ring_fd, len, ipckit::shm::Trust::SealedOnly).unwrap();
    let before = rustix::fs::fstat(&pool).unwrap().st_blocks * 512;
    let mut tail = 0u64;
    let mut buf = vec![0u8; CHUNK as usize];
    let n = 64u64; // 4 MiB of holes
    for k in 0..n {
        let at = |d: u64| 256 + ((tail + d) as usize % 4096);
        ring.write_at(at(0), &(16u64 | 1 << 32).to_le_bytes()).unwrap();
        ring.write_at(at(8), &(k * CHUNK).to_le_bytes()).unwrap();
        ring.write_at(at(16), &CHUNK.to_le_bytes()).unwrap();
        tail += 24;
        ring.atomic_u64(64).unwrap().store(tail, std::sync::atomic::Ordering::Release);
        let e = rx.recv_into_timeout(&mut buf, HANG_GUARD).unwrap_err();
        assert!(e.kind() == ErrorKind::Corrupt && e.to_string().contains("never wrote"), "{e}");
    }
    let after = rustix::fs::fstat(&pool).unwrap().st_blocks * 512;
    assert_eq!(after, before, "the receiver's copies allocated none of the sender's pool");
}
