//! Two processes exchange data through every segment kind.

use std::sync::atomic::Ordering;

use crate::support::{assert_success, child_alive, ep, file_name, parent_alive, pattern, shm, wait_flag};
use ipckit::shm::{Region, Segment, Trust};
use ipckit::{Options, Receiver, SendMeta, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::{Rng, checksum};
use ipckit_testkit::scratch::Scratch;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A plain-old-data record, copied in and out with `write::<T>`/`read::<T>`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct Record {
    seq: u64,
    pid: u32,
    tag: u32,
    values: [u32; 6],
    checksum: u64,
}

/// Not a page multiple: the last bytes of the region are shared too.
pub(crate) const XLEN: usize = 10_000;

const FLAG: usize = 0;

pub(crate) const DATA: usize = 64;

const DATA_LEN: usize = 1000;

const RECORD: usize = 2048;

/// Where the read-only test writes its version strings.
pub(crate) const VERSION: usize = 4000;

fn record_for(seed: u64, pid: u32, tag: u32, data: &[u8]) -> Record {
    let mut rng = Rng(seed ^ 0x5eed);
    Record { seq: seed, pid, tag, values: std::array::from_fn(|_| rng.next_u64() as u32), checksum: checksum(data) }
}

/// Writes one side's values (bytes, a record, the last 8 bytes).
pub(crate) fn write_side(region: &Region, seed: u64, tag: u32) {
    let data = pattern(seed, DATA_LEN);
    region.write_at(DATA, &data).unwrap();
    region.write(RECORD, &record_for(seed, std::process::id(), tag, &data)).unwrap();
    region.write_at(region.len() - 8, &seed.to_le_bytes()).unwrap();
}

/// Checks that the values are those `writer` wrote with `seed`.
pub(crate) fn check_side(region: &Region, seed: u64, writer: u32, tag: u32) {
    let want = pattern(seed, DATA_LEN);
    let mut got = vec![0u8; DATA_LEN];
    region.read_at(DATA, &mut got).unwrap();
    assert!(got == want, "{}: the bytes written by {writer} differ", region.name());
    assert_eq!(region.read::<Record>(RECORD).unwrap(), record_for(seed, writer, tag, &want), "{}", region.name());
    let mut tail = [0u8; 8];
    region.read_at(region.len() - 8, &mut tail).unwrap();
    assert_eq!(u64::from_le_bytes(tail), seed, "{}: the last bytes", region.name());
}

/// The creator's side: writes, publishes (flag 1, Release), waits for the
/// answer (flag 2, Acquire) and checks that `peer` wrote it.
fn exchange_first(region: &Region, seed: u64, peer: u32, alive: impl FnMut() -> bool) {
    let flag = region.atomic_u32(FLAG).unwrap();
    assert_eq!(flag.load(Ordering::Acquire), 0, "a fresh region is zero-filled");
    write_side(region, seed, 1);
    flag.store(1, Ordering::Release);
    wait_flag(flag, 2, "the peer's answer", alive);
    check_side(region, seed + 1, peer, 2);
}

/// The opener's side: waits for the creator's values, checks them, answers.
fn exchange_second(region: &Region, seed: u64, peer: u32, alive: impl FnMut() -> bool) {
    let flag = region.atomic_u32(FLAG).unwrap();
    wait_flag(flag, 1, "the creator's values", alive);
    check_side(region, seed, peer, 1);
    write_side(region, seed + 1, 2);
    flag.store(2, Ordering::Release);
}

/// Child: the other side of an exchange. `open`: opens the named segment in
/// `IPCKIT_SHM` and answers; `memfd`: creates a sealed memfd, sends it to
/// the receiver at `IPCKIT_EP`, and writes first.
#[test]
#[ignore = "child process entry point"]
fn child_exchange() {
    let Some(role) = child_role() else { return };
    let seed: u64 = env("IPCKIT_SEED").parse().unwrap();
    let parent = std::os::unix::process::parent_id();
    match role.as_str() {
        "open" => {
            let region = Segment::new(shm(&env("IPCKIT_SHM"))).size(XLEN).open().unwrap();
            assert_eq!(region.len(), XLEN);
            assert!(region.warnings().is_empty(), "{:?}", region.warnings());
            exchange_second(&region, seed, parent, parent_alive());
        }
        "memfd" => {
            let region = Region::memfd("ipckit-t-exchange", XLEN).unwrap();
            let mut tx = Sender::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
            tx.send_with(&(XLEN as u64).to_le_bytes(), &SendMeta::new().fds(&[region.fd().unwrap()])).unwrap();
            exchange_first(&region, seed, parent, parent_alive());
        }
        other => panic!("unknown role {other}"),
    }
}

/// The parent creates the named segment and writes first; a child opens it
/// and answers.
fn exchange_through_named(name: &str, seed: u64) {
    let region = Segment::new(shm(name)).size(XLEN).create().unwrap();
    assert_eq!(region.len(), XLEN);
    let mut child = Guarded::spawn(
        rerun("exchange::child_exchange", "open").env("IPCKIT_SHM", name).env("IPCKIT_SEED", seed.to_string()),
    );
    let pid = child.child().id();
    exchange_first(&region, seed, pid, child_alive(&mut child));
    assert_success(child.wait(), name);
    // The child's answer outlives it.
    check_side(&region, seed + 1, pid, 2);
}

#[test]
fn posix_segment_carries_data_both_ways() {
    let s = Scratch::new("shmxposix");
    let name = s.shm("x");
    exchange_through_named(&name, 0x1001);
}

#[test]
fn sysv_segment_carries_data_both_ways() {
    let s = Scratch::new("shmxsysv");
    let name = s.sysv_shm(1);
    exchange_through_named(&name, 0x2002);
}

#[test]
fn mapped_file_carries_data_both_ways() {
    let s = Scratch::new("shmxfile");
    exchange_through_named(&file_name(&s, "x"), 0x3003);
}

#[test]
fn memfd_passed_over_a_socket_carries_data_both_ways() {
    let s = Scratch::new("shmxmemfd");
    let text = format!("unix:{}", s.path("s.sock").display());
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let seed = 0x4004;
    let mut child = Guarded::spawn(
        rerun("exchange::child_exchange", "memfd").env("IPCKIT_EP", &text).env("IPCKIT_SEED", seed.to_string()),
    );
    let pid = child.child().id();
    let mut msg = rx.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(msg.meta.fds.len(), 1);
    let len = u64::from_le_bytes(msg.data[..8].try_into().unwrap()) as usize;
    assert_eq!(len, XLEN);
    let region = Region::from_received_fd(msg.meta.fds.pop().unwrap(), len, Trust::SealedOnly).unwrap();
    assert!(region.is_writable());
    assert_eq!(region.len(), XLEN);
    exchange_second(&region, seed, pid, child_alive(&mut child));
    assert_success(child.wait(), "memfd");
}
