//! Shared memory between real processes: every segment kind carries data
//! both ways, truncation and seals, the create-or-open race, read-only
//! sharing, the ipckit object header, and the bad-input table (one test per
//! row).
//!
//! Every object is named with the test prefix (`/ipckit-t-...`, System V
//! keys from `ftok` of the scratch directory, files in it) and removed by a
//! guard, also when a test fails.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipckit::shm::{
    HEADER_SIZE, Header, MAGIC, Object, ObjectSpec, Opened, Region, STATE_INITIALISING, STATE_OFFSET, STATE_READY,
    Segment, ShmName, Trust,
};
use ipckit::socket::{Connection, Listener};
use ipckit::{Endpoint, ErrorKind, Options, Receiver, SendMeta, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::{Rng, checksum};
use ipckit_testkit::scratch::{Scratch, ShmObject};
use rustix::io::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Exit status of a child that had to skip (the reason is on its stderr).
const SKIP: i32 = 77;

fn shm(text: &str) -> ShmName {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn file_name(s: &Scratch, name: &str) -> String {
    format!("file:{}", s.path(name).display())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Asserts the kind of an error and that its message contains every one of
/// `needles`.
#[track_caller]
fn assert_err(e: &ipckit::Error, kind: ErrorKind, needles: &[&str]) {
    assert_eq!(e.kind(), kind, "{e}");
    let text = e.to_string();
    for n in needles {
        assert!(text.contains(n), "{text:?} does not mention {n:?}");
    }
}

/// Spins, then yields, until `done()`; fails if `alive()` says the peer is
/// gone (checked once more against `done` to allow for a last store), or
/// after the hang guard.
fn spin_until(what: &str, mut done: impl FnMut() -> bool, mut alive: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    let mut spins = 0u32;
    while !done() {
        if !alive() && !done() {
            panic!("the peer is gone before {what}");
        }
        assert!(Instant::now() < deadline, "hang guard: {what} did not happen within {HANG_GUARD:?}");
        if spins < 1000 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Waits until the shared `flag` holds `want`, observed with Acquire.
fn wait_flag(flag: &AtomicU32, want: u32, what: &str, alive: impl FnMut() -> bool) {
    spin_until(what, || flag.load(Ordering::Acquire) == want, alive);
}

/// A closure telling whether a child is still running.
fn child_alive(child: &mut Guarded) -> impl FnMut() -> bool + '_ {
    move || child.child().try_wait().expect("try_wait").is_none()
}

/// A closure telling whether this child's parent is still the one that
/// started it.
fn parent_alive() -> impl FnMut() -> bool {
    let parent = std::os::unix::process::parent_id();
    move || std::os::unix::process::parent_id() == parent
}

#[track_caller]
fn assert_success(status: std::process::ExitStatus, what: &str) {
    assert!(status.success(), "{what}: child failed: {status}");
}

// ---------------------------------------------------------------------------
// 1. Two processes exchange data through every segment kind.

/// A plain-old-data record, copied in and out with `write::<T>`/`read::<T>`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct Record {
    seq: u64,
    pid: u32,
    tag: u32,
    values: [u32; 6],
    checksum: u64,
}

/// Not a page multiple: the last bytes of the region are shared too.
const XLEN: usize = 10_000;
const FLAG: usize = 0;
const DATA: usize = 64;
const DATA_LEN: usize = 1000;
const RECORD: usize = 2048;
/// Where the read-only test writes its version strings.
const VERSION: usize = 4000;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng(seed).fill(&mut v);
    v
}

fn record_for(seed: u64, pid: u32, tag: u32, data: &[u8]) -> Record {
    let mut rng = Rng(seed ^ 0x5eed);
    Record { seq: seed, pid, tag, values: std::array::from_fn(|_| rng.next_u64() as u32), checksum: checksum(data) }
}

/// Writes one side's values (bytes, a record, the last 8 bytes).
fn write_side(region: &Region, seed: u64, tag: u32) {
    let data = pattern(seed, DATA_LEN);
    region.write_at(DATA, &data).unwrap();
    region.write(RECORD, &record_for(seed, std::process::id(), tag, &data)).unwrap();
    region.write_at(region.len() - 8, &seed.to_le_bytes()).unwrap();
}

/// Checks that the values are those `writer` wrote with `seed`.
fn check_side(region: &Region, seed: u64, writer: u32, tag: u32) {
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
    let mut child =
        Guarded::spawn(rerun("child_exchange", "open").env("IPCKIT_SHM", name).env("IPCKIT_SEED", seed.to_string()));
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
    let mut child =
        Guarded::spawn(rerun("child_exchange", "memfd").env("IPCKIT_EP", &text).env("IPCKIT_SEED", seed.to_string()));
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

// ---------------------------------------------------------------------------
// 2. Truncation: an unsealed segment can be truncated by a peer, and is then
// refused at open; a sealed memfd cannot be resized at all.

/// Child: a peer that sets the length of the file at `IPCKIT_PATH` to
/// `IPCKIT_LEN` bytes.
#[test]
#[ignore = "child process entry point"]
fn child_truncate() {
    let Some(_) = child_role() else { return };
    let len: u64 = env("IPCKIT_LEN").parse().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(env("IPCKIT_PATH")).unwrap();
    file.set_len(len).unwrap();
    assert_eq!(file.metadata().unwrap().len(), len);
}

fn truncate_by_peer(path: &Path, len: u64) {
    let status =
        Guarded::spawn(rerun("child_truncate", "truncate").env("IPCKIT_PATH", path).env("IPCKIT_LEN", len.to_string()))
            .wait();
    assert_success(status, "truncate");
}

#[test]
fn segment_truncated_by_a_peer_is_refused_before_mapping() {
    let s = Scratch::new("shmtrunc");
    let posix = s.shm("t");
    let file = file_name(&s, "t");
    for (name, path) in
        [(posix.as_str(), PathBuf::from(format!("/dev/shm{}", posix.as_str()))), (file.as_str(), s.path("t"))]
    {
        let label = shm(name).to_string();
        let region = Segment::new(shm(name)).size(8192).create().unwrap();
        region.write_at(0, b"before").unwrap();
        truncate_by_peer(&path, 4096);
        // The creator's mapping is still 8192 bytes: only the first page may
        // be touched now (SIGBUS beyond), so it is not read here.
        let e = Segment::new(shm(name)).size(8192).open().unwrap_err();
        assert_err(&e, ErrorKind::Corrupt, &[&label, "4096 bytes", "8192 expected"]);
        assert_eq!(e.op(), "open");
        // Opened for what it is now, it maps its real size.
        let now = Segment::new(shm(name)).open().unwrap();
        assert_eq!(now.len(), 4096);
        let mut buf = [0u8; 6];
        now.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"before");
        // Truncated to nothing: refused with or without an expected size.
        truncate_by_peer(&path, 0);
        for seg in [Segment::new(shm(name)).size(8192), Segment::new(shm(name))] {
            let e = seg.open().unwrap_err();
            assert_err(&e, ErrorKind::Corrupt, &[&label, "empty"]);
        }
        drop((now, region));
    }
}

/// Child: creates a sealed memfd, writes a marker, and sends it to
/// `IPCKIT_EP`; stays until the parent says it is done.
#[test]
#[ignore = "child process entry point"]
fn child_sealed_memfd_sender() {
    let Some(_) = child_role() else { return };
    let region = Region::memfd("ipckit-t-sealed", 8192).unwrap();
    region.write_at(8000, b"marker").unwrap();
    // The creator cannot resize it either.
    let fd = region.fd().unwrap();
    assert_eq!(rustix::fs::ftruncate(fd, 4096), Err(Errno::PERM));
    let mut conn = Connection::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    conn.send_with(b"sealed", &SendMeta::new().fds(&[fd])).unwrap();
    assert_eq!(conn.recv_timeout(HANG_GUARD).unwrap().data, b"done");
    let mut buf = [0u8; 6];
    region.read_at(8000, &mut buf).unwrap();
    assert_eq!(&buf, b"marker", "the receiver changed nothing");
}

#[test]
fn sealed_memfd_cannot_be_resized_by_its_receiver() {
    let s = Scratch::new("shmseal");
    let text = format!("unix:{}", s.path("s.sock").display());
    let listener = Listener::bind(&ep(&text)).unwrap();
    let child = Guarded::spawn(rerun("child_sealed_memfd_sender", "sealed").env("IPCKIT_EP", &text));
    let mut conn = listener.accept_timeout(HANG_GUARD).unwrap();
    let mut msg = conn.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(msg.data, b"sealed");
    let fd = msg.meta.fds.pop().expect("a descriptor");
    // Shrinking and growing are refused by the kernel: EPERM.
    assert_eq!(rustix::fs::ftruncate(&fd, 4096), Err(Errno::PERM), "shrink");
    assert_eq!(rustix::fs::ftruncate(&fd, 0), Err(Errno::PERM), "shrink to 0");
    assert_eq!(rustix::fs::ftruncate(&fd, 16384), Err(Errno::PERM), "grow");
    assert_eq!(rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, 16384), Err(Errno::PERM), "grow");
    assert_eq!(rustix::fs::fstat(&fd).unwrap().st_size, 8192);
    // And it maps, with its contents.
    let region = Region::from_received_fd(fd, 8192, Trust::SealedOnly).unwrap();
    let mut buf = [0u8; 6];
    region.read_at(8000, &mut buf).unwrap();
    assert_eq!(&buf, b"marker");
    conn.send(b"done").unwrap();
    assert_success(child.wait(), "sealed memfd sender");
}

// ---------------------------------------------------------------------------
// 3. The create race: 8 processes, 200 objects, exactly one creator each.

const RACERS: u32 = 8;
const ROUNDS: usize = 200;
const CTL_LEN: usize = 4096;
/// Control region: the barrier counters (all rounds: before the race, and
/// after the checks), an abort flag, then per round the number of creators
/// and of openers.
const BARRIER: usize = 0;
const ABORT: usize = 4;
const CHECKED: usize = 8;
const CREATORS: usize = 64;
const OPENERS: usize = CREATORS + 4 * ROUNDS;
const RACE_SPEC: ObjectSpec = ObjectSpec { kind: 0x7e57, version: 3, abi: 0x1234_5678_9abc_def0, payload: 4096 };

const _: () = assert!(OPENERS + 4 * ROUNDS <= CTL_LEN);

/// What the creator of round `round`, process `pid`, writes as payload.
fn race_payload(round: usize, pid: u32) -> Vec<u8> {
    let mut v = pattern((round as u64) << 32 | pid as u64, RACE_SPEC.payload);
    v[..4].copy_from_slice(&(round as u32).to_le_bytes());
    v[4..8].copy_from_slice(&pid.to_le_bytes());
    v
}

/// Raises the shared abort flag if the child panics, so that the others
/// stop waiting for it at the barrier.
struct AbortOnPanic<'a>(&'a AtomicU32);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(1, Ordering::Release);
        }
    }
}

/// Child: races for every object named in `IPCKIT_NAMES`, one per round,
/// meeting the other racers at a barrier in the control region
/// `IPCKIT_CTL` before each round, and counting creators and openers there.
/// Role `hold`: every racer keeps its object until all have checked it
/// (meeting again at a second barrier); role `letgo`: each closes it at
/// once, so that openers may still be waiting when the creator is gone.
#[test]
#[ignore = "child process entry point"]
fn child_racer() {
    let Some(role) = child_role() else { return };
    let hold = role == "hold";
    let ctl = Segment::new(shm(&env("IPCKIT_CTL"))).size(CTL_LEN).open().unwrap();
    let abort = ctl.atomic_u32(ABORT).unwrap();
    let _raise = AbortOnPanic(abort);
    let barrier = ctl.atomic_u32(BARRIER).unwrap();
    let me = std::process::id();
    let names = env("IPCKIT_NAMES");
    for (round, name) in names.split(' ').enumerate() {
        barrier.fetch_add(1, Ordering::AcqRel);
        let all_here = RACERS * (round as u32 + 1);
        spin_until(
            &format!("all racers at round {round}"),
            || barrier.load(Ordering::Acquire) >= all_here,
            || abort.load(Ordering::Acquire) == 0,
        );
        let seg = Segment::new(shm(name));
        let (obj, opened) = Object::create_or_open(&seg, RACE_SPEC, HANG_GUARD, |region| {
            region.write_at(HEADER_SIZE, &race_payload(round, me))?;
            // Widen the window in which openers find it initialising.
            std::thread::yield_now();
            Ok(())
        })
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        if !hold && opened == Opened::Created {
            // Let go at once: the openers may not have looked yet.
            drop(obj);
            ctl.atomic_u32(CREATORS + 4 * round).unwrap().fetch_add(1, Ordering::AcqRel);
            continue;
        }
        let h = obj.header().unwrap();
        assert_eq!(h.state, STATE_READY, "round {round}");
        assert_eq!(h.magic, MAGIC, "round {round}");
        assert_eq!((h.kind, h.version, h.abi), (RACE_SPEC.kind, RACE_SPEC.version, RACE_SPEC.abi), "round {round}");
        assert_eq!(h.size, (HEADER_SIZE + RACE_SPEC.payload) as u64, "round {round}");
        let mut payload = vec![0u8; RACE_SPEC.payload];
        obj.region().read_at(HEADER_SIZE, &mut payload).unwrap();
        let creator = u32::from_le_bytes(payload[4..8].try_into().unwrap());
        assert!(payload == race_payload(round, creator), "round {round}: payload of creator {creator} differs");
        let counter = match opened {
            Opened::Created => {
                assert_eq!(creator, me, "round {round}");
                CREATORS
            }
            Opened::Existing => {
                assert_ne!(creator, me, "round {round}: opened what this process created");
                OPENERS
            }
        };
        ctl.atomic_u32(counter + 4 * round).unwrap().fetch_add(1, Ordering::AcqRel);
        if hold {
            let checked = ctl.atomic_u32(CHECKED).unwrap();
            checked.fetch_add(1, Ordering::AcqRel);
            spin_until(
                &format!("all racers checked round {round}"),
                || checked.load(Ordering::Acquire) >= all_here,
                || abort.load(Ordering::Acquire) == 0,
            );
        }
        drop(obj);
    }
}

fn race(s: &Scratch, names: &[String], role: &str) {
    assert!(names.len() <= ROUNDS);
    let ctl_name = s.shm("ctl");
    let ctl = Segment::new(ctl_name.shm_name()).size(CTL_LEN).create().unwrap();
    let list = names.join(" ");
    let children: Vec<Guarded> = (0..RACERS)
        .map(|_| {
            Guarded::spawn(rerun("child_racer", role).env("IPCKIT_CTL", ctl_name.as_str()).env("IPCKIT_NAMES", &list))
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        assert_success(child.wait(), &format!("racer {i}"));
    }
    assert_eq!(ctl.atomic_u32(ABORT).unwrap().load(Ordering::Acquire), 0);
    assert_eq!(ctl.atomic_u32(BARRIER).unwrap().load(Ordering::Acquire), RACERS * names.len() as u32);
    for (round, name) in names.iter().enumerate() {
        let creators = ctl.atomic_u32(CREATORS + 4 * round).unwrap().load(Ordering::Acquire);
        let openers = ctl.atomic_u32(OPENERS + 4 * round).unwrap().load(Ordering::Acquire);
        assert_eq!((creators, openers), (1, RACERS - 1), "round {round} ({name}): creators and openers");
        // The object is there, published.
        let region = Segment::new(shm(name)).open().unwrap();
        assert_eq!(region.read::<Header>(0).unwrap().state, STATE_READY, "{name}");
    }
}

#[test]
fn create_race_has_exactly_one_creator_and_openers_see_it_initialised() {
    let s = Scratch::new("shmrace");
    // The guards remove all 200 objects, also when the test fails.
    let objects: Vec<ShmObject> = (0..ROUNDS).map(|r| s.shm(&format!("r{r}"))).collect();
    let names: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    race(&s, &names, "hold");
}

#[test]
fn create_race_on_system_v_segments_and_files() {
    let s = Scratch::new("shmracesv");
    let objects: Vec<ShmObject> = (1..=50).map(|id| s.sysv_shm(id)).collect();
    let mut names = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        names.push(o.to_string());
        names.push(file_name(&s, &format!("r{i}")));
    }
    race(&s, &names, "hold");
}

#[test]
fn create_race_with_creators_that_let_go_at_once() {
    let s = Scratch::new("shmraceletgo");
    // The window is narrow: three races of 200 objects each.
    for run in 0..3 {
        let objects: Vec<ShmObject> = (0..ROUNDS / 2).map(|r| s.shm(&format!("{run}-{r}"))).collect();
        let mut names = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            names.push(o.to_string());
            names.push(file_name(&s, &format!("{run}-{i}")));
        }
        race(&s, &names, "letgo");
    }
}

// ---------------------------------------------------------------------------
// 4. Bad input, one test per row.

#[test]
fn size_zero_is_invalid_and_creates_nothing() {
    let s = Scratch::new("shmzero");
    let posix = s.shm("z");
    let sysv = s.sysv_shm(1);
    let file = file_name(&s, "z");
    for name in [posix.as_str(), sysv.as_str(), file.as_str()] {
        let label = shm(name).to_string();
        let e = Segment::new(shm(name)).size(0).create().unwrap_err();
        assert_err(&e, ErrorKind::Invalid, &[&label, "size 0"]);
        let e = Segment::new(shm(name)).size(0).open_or_create().unwrap_err();
        assert_err(&e, ErrorKind::Invalid, &[&label, "size 0"]);
        let e = Segment::new(shm(name)).create().unwrap_err();
        assert_err(&e, ErrorKind::Invalid, &[&label, "a size is needed"]);
        let e = Segment::new(shm(name)).open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{label}: nothing was created: {e}");
    }
    let e = Region::memfd("ipckit-t-zero", 0).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["size 0"]);
    let good = Region::memfd("ipckit-t-zero", 4096).unwrap();
    let fd = good.fd().unwrap().try_clone_to_owned().unwrap();
    let e = Region::from_received_fd(fd, 0, Trust::SealedOnly).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["announced length 0"]);
}

#[test]
fn size_beyond_the_address_space_is_invalid_and_names_the_value() {
    let s = Scratch::new("shmhuge");
    let posix = s.shm("h");
    let sysv = s.sysv_shm(1);
    let file = file_name(&s, "h");
    let huge = isize::MAX as usize + 1;
    for name in [posix.as_str(), sysv.as_str(), file.as_str()] {
        let e = Segment::new(shm(name)).size(huge).create().unwrap_err();
        assert_err(&e, ErrorKind::Invalid, &[&shm(name).to_string(), &huge.to_string()]);
        assert_eq!(Segment::new(shm(name)).open().unwrap_err().kind(), ErrorKind::NotFound);
    }
}

/// Child: in a new IPC namespace (its own System V limits), lowers shmmax
/// to 1 MiB and shmall to 64 pages, and checks that sizes beyond either are
/// `Invalid` naming the value and the limit.
#[test]
#[ignore = "child process entry point"]
fn child_sysv_limits() {
    let Some(_) = child_role() else { return };
    // SAFETY: CLONE_NEWIPC moves this thread into a new IPC namespace; no
    // descriptor table or memory is unshared, so no other thread is affected.
    if let Err(e) = unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWIPC) } {
        eprintln!("skipped: unshare(CLONE_NEWIPC) failed: {e}");
        std::process::exit(SKIP);
    }
    std::fs::write("/proc/sys/kernel/shmmax", "1048576").unwrap();
    std::fs::write("/proc/sys/kernel/shmall", "64").unwrap();
    let name = shm(&env("IPCKIT_SHM"));
    let label = name.to_string();
    let e = Segment::new(name.clone()).size(1_048_577).create().unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &[&label, "1048577", "shmmax=1048576"]);
    // Below shmmax, but 128 pages where shmall grants 64: the kernel says
    // ENOSPC, which is reported as Invalid too.
    let e = Segment::new(name.clone()).size(524_288).create().unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &[&label, "524288", "shmall=64"]);
    assert_eq!(e.errno(), Some(Errno::NOSPC), "{e}");
    assert_eq!(Segment::new(name.clone()).open().unwrap_err().kind(), ErrorKind::NotFound);
    // Within both limits it is created (and goes with the namespace).
    let region = Segment::new(name).size(65_536).unlink_on_drop(true).create().unwrap();
    region.write_at(65_535, &[1]).unwrap();
}

#[test]
fn sysv_size_beyond_shmmax_or_shmall_is_invalid_and_names_the_limit() {
    if !is_root() {
        eprintln!("skipped: needs root to lower the System V limits in a new IPC namespace");
        return;
    }
    let s = Scratch::new("shmsvlim");
    let name = s.sysv_shm(1);
    let status = Guarded::spawn(rerun("child_sysv_limits", "limits").env("IPCKIT_SHM", name.as_str())).wait();
    if status.code() == Some(SKIP) {
        eprintln!("skipped: the child could not make a new IPC namespace (see its message)");
        return;
    }
    assert_success(status, "sysv limits");
}

const FSIZE: u64 = 1 << 20;

fn lower_rlimit_fsize() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let max = getrlimit(Resource::Fsize).maximum;
    setrlimit(Resource::Fsize, Rlimit { current: Some(FSIZE), maximum: max }).unwrap();
}

/// Child: with RLIMIT_FSIZE lowered to 1 MiB, a POSIX object or file of
/// 1 MiB + 1 is `Invalid` naming the limit (and never SIGXFSZ).
#[test]
#[ignore = "child process entry point"]
fn child_fsize() {
    let Some(_) = child_role() else { return };
    lower_rlimit_fsize();
    for name in env("IPCKIT_NAMES").split(' ') {
        let label = shm(name).to_string();
        let e = Segment::new(shm(name)).size(FSIZE as usize + 1).create().unwrap_err();
        assert_err(&e, ErrorKind::Invalid, &[&label, "1048577", "RLIMIT_FSIZE=1048576"]);
        assert_eq!(Segment::new(shm(name)).open().unwrap_err().kind(), ErrorKind::NotFound, "{label}");
        // Up to the limit is fine.
        let region = Segment::new(shm(name)).size(FSIZE as usize).unlink_on_drop(true).create().unwrap();
        region.write_at(FSIZE as usize - 1, &[1]).unwrap();
    }
}

#[test]
fn posix_and_file_size_beyond_rlimit_fsize_is_invalid_and_names_the_limit() {
    let s = Scratch::new("shmfsize");
    let posix = s.shm("f");
    let names = format!("{} {}", posix.as_str(), file_name(&s, "f"));
    let status = Guarded::spawn(rerun("child_fsize", "fsize").env("IPCKIT_NAMES", &names)).wait();
    assert_eq!(status.signal(), None, "killed by a signal (SIGXFSZ is {})", libc::SIGXFSZ);
    assert_success(status, "fsize");
}

/// Child: with RLIMIT_FSIZE lowered to 1 MiB, a memfd of 1 MiB + 1.
#[test]
#[ignore = "child process entry point"]
fn child_fsize_memfd() {
    let Some(_) = child_role() else { return };
    lower_rlimit_fsize();
    let e = Region::memfd("ipckit-t-fsize", FSIZE as usize + 1).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["1048577", "RLIMIT_FSIZE=1048576"]);
    let region = Region::memfd("ipckit-t-fsize", FSIZE as usize).unwrap();
    region.write_at(FSIZE as usize - 1, &[1]).unwrap();
}

#[test]
fn memfd_size_beyond_rlimit_fsize_is_invalid_not_sigxfsz() {
    let status = Guarded::spawn(&mut rerun("child_fsize_memfd", "fsize")).wait();
    assert_eq!(status.signal(), None, "killed by a signal (SIGXFSZ is {})", libc::SIGXFSZ);
    assert_success(status, "memfd fsize");
}

#[test]
fn range_past_the_end_is_invalid_and_names_the_values() {
    let region = Region::memfd("ipckit-t-range", 100).unwrap();
    region.write_at(90, &[7u8; 10]).unwrap();
    let mut buf = [0u8; 11];
    let e = region.read_at(90, &mut buf).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 90", "length 11", "100-byte"]);
    let e = region.write_at(95, &[1u8; 6]).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 95", "length 6", "100-byte"]);
    let e = region.read_at(100, &mut [0u8; 1]).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 100", "length 1"]);
    // No overflow: an offset near usize::MAX is refused, not wrapped.
    let e = region.read_at(usize::MAX, &mut [0u8; 2]).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &[&usize::MAX.to_string(), "length 2"]);
    let e = region.flush_range(64, 37).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 64", "length 37"]);
    // A refused write changed nothing; the exact end is fine.
    let mut tail = [0u8; 10];
    region.read_at(90, &mut tail).unwrap();
    assert_eq!(tail, [7u8; 10]);
    region.read_at(100, &mut []).unwrap();
}

#[test]
fn misaligned_or_too_small_typed_access_is_invalid() {
    // 4098 bytes: at len - 2 a u32 is aligned but does not fit.
    let region = Region::memfd("ipckit-t-align", 4098).unwrap();
    let len = region.len();
    assert_eq!(len, 4098);
    let e = region.read::<u64>(3).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 3", "aligned to 8"]);
    let e = region.write::<u64>(4, &1).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 4", "aligned to 8"]);
    let e = region.atomic_u32(2).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 2", "aligned to 4"]);
    let e = region.atomic_u64(12).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 12", "aligned to 8"]);
    let e = region.read::<Record>(4).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 4", "aligned to 8"]);
    let e = region.read::<u32>(len - 2).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 4096", "length 4", "4098-byte"]);
    let e = region.write::<u32>(len - 2, &1).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 4096", "length 4"]);
    let e = region.atomic_u32(len - 2).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 4096", "length 4"]);
    let e = region.atomic_u64(4096).unwrap_err();
    assert_err(&e, ErrorKind::Invalid, &["offset 4096", "length 8"]);
    // The same accesses, aligned and in range, work.
    region.write::<u64>(8, &0x0102_0304_0506_0708).unwrap();
    assert_eq!(region.read::<u64>(8).unwrap(), 0x0102_0304_0506_0708);
    assert_eq!(region.read::<u32>(len - 6).unwrap(), 0);
    region.atomic_u32(len - 6).unwrap().store(5, Ordering::Relaxed);
    assert_eq!(region.read::<u32>(len - 6).unwrap(), 5);
}

#[test]
fn exclusive_create_of_an_existing_segment_is_already_exists() {
    let s = Scratch::new("shmexist");
    let posix = s.shm("e");
    let sysv = s.sysv_shm(1);
    let file = file_name(&s, "e");
    for name in [posix.as_str(), sysv.as_str(), file.as_str()] {
        let label = shm(name).to_string();
        let first = Segment::new(shm(name)).size(4096).create().unwrap();
        first.write_at(0, b"first").unwrap();
        for size in [4096, 8192] {
            let e = Segment::new(shm(name)).size(size).create().unwrap_err();
            assert_err(&e, ErrorKind::AlreadyExists, &[&label]);
        }
        // The failed create left the existing one alone.
        let (again, opened) = Segment::new(shm(name)).size(4096).open_or_create().unwrap();
        assert_eq!(opened, Opened::Existing, "{label}");
        assert_eq!(again.len(), 4096, "{label}");
        let mut buf = [0u8; 5];
        again.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"first", "{label}");
        drop((first, again));
        ipckit::shm::remove(&shm(name)).unwrap();
        assert_eq!(ipckit::shm::remove(&shm(name)).unwrap_err().kind(), ErrorKind::NotFound, "{label}");
    }
}

/// Child running as uid 65534: root's segments are refused, whatever
/// their mode.
#[test]
#[ignore = "child process entry point"]
fn child_unprivileged_segments() {
    let Some(_) = child_role() else { return };
    assert_eq!(rustix::process::geteuid().as_raw(), 65534);
    for name in env("IPCKIT_NAMES").split(' ') {
        let label = shm(name).to_string();
        for seg in [Segment::new(shm(name)), Segment::new(shm(name)).read_only()] {
            let e = seg.open().unwrap_err();
            assert_err(&e, ErrorKind::PermissionDenied, &[&label]);
        }
        let e = Segment::new(shm(name)).size(4096).open_or_create().unwrap_err();
        assert_err(&e, ErrorKind::PermissionDenied, &[&label]);
    }
}

#[test]
fn other_users_segments_are_permission_denied() {
    if !is_root() {
        eprintln!("skipped: needs root to start a child as uid 65534");
        return;
    }
    let s = Scratch::new("shmperm");
    std::fs::set_permissions(s.dir(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (p1, p2) = (s.shm("a"), s.shm("b"));
    let (v1, v2) = (s.sysv_shm(1), s.sysv_shm(2));
    let (f1, f2) = (file_name(&s, "a"), file_name(&s, "b"));
    // 0600: the kernel refuses; 0666: ipckit's owner check refuses.
    let objects: Vec<(&str, u32)> = vec![
        (p1.as_str(), 0o600),
        (p2.as_str(), 0o666),
        (v1.as_str(), 0o600),
        (v2.as_str(), 0o666),
        (f1.as_str(), 0o600),
        (f2.as_str(), 0o666),
    ];
    let _held: Vec<Region> =
        objects.iter().map(|(name, mode)| Segment::new(shm(name)).size(4096).mode(*mode).create().unwrap()).collect();
    let names: Vec<&str> = objects.iter().map(|(name, _)| *name).collect();
    let status = Guarded::spawn(
        rerun("child_unprivileged_segments", "nobody").uid(65534).gid(65534).env("IPCKIT_NAMES", names.join(" ")),
    )
    .wait();
    assert_success(status, "unprivileged");
}

#[test]
fn wider_mode_than_0600_is_a_warning_that_deny_warnings_refuses() {
    let s = Scratch::new("shmwide");
    let posix = s.shm("w");
    let sysv = s.sysv_shm(1);
    let file = file_name(&s, "w");
    let tight = s.shm("tight");
    for (name, mode) in [(posix.as_str(), 0o644), (sysv.as_str(), 0o660), (file.as_str(), 0o604)] {
        let label = shm(name).to_string();
        let created = Segment::new(shm(name)).size(4096).mode(mode).create().unwrap();
        assert!(created.warnings().is_empty(), "the creator chose the mode: {:?}", created.warnings());
        assert_eq!(ipckit::shm::info(&shm(name)).unwrap().mode, mode, "{label}: exactly the mode asked for");
        let opened = Segment::new(shm(name)).size(4096).open().unwrap();
        let text = format!("mode {mode:04o}");
        assert!(
            opened.warnings().len() == 1 && opened.warnings()[0].contains(&text),
            "{label}: {:?}",
            opened.warnings()
        );
        let e = opened.deny_warnings().unwrap_err();
        assert_err(&e, ErrorKind::PermissionDenied, &[&label, &text]);
        drop(created);
    }
    let _created = Segment::new(tight.shm_name()).size(4096).create().unwrap();
    let opened = Segment::new(tight.shm_name()).open().unwrap();
    assert!(opened.warnings().is_empty(), "{:?}", opened.warnings());
    opened.deny_warnings().unwrap();
}

/// Child: sends, each with one descriptor and a body `WHAT ANNOUNCED_LEN`,
/// descriptors a careful receiver must refuse or accept.
#[test]
#[ignore = "child process entry point"]
fn child_fd_sender() {
    let Some(_) = child_role() else { return };
    use rustix::fs::{MemfdFlags, SealFlags, memfd_create};
    let tag = env("IPCKIT_TAG");
    let memfd = |what: &str, flags: MemfdFlags| {
        let fd = memfd_create(format!("{tag}-{what}"), MemfdFlags::CLOEXEC | flags).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        std::fs::File::from(fd.try_clone().unwrap()).write_at(what.as_bytes(), 0).unwrap();
        fd
    };
    let plain = memfd("plain", MemfdFlags::empty());
    let sealable = memfd("sealable", MemfdFlags::ALLOW_SEALING);
    let shrink_only = memfd("shrinkonly", MemfdFlags::ALLOW_SEALING);
    rustix::fs::fcntl_add_seals(&shrink_only, SealFlags::SHRINK).unwrap();
    let posix = Segment::new(shm(&env("IPCKIT_SHM"))).size(4096).create().unwrap();
    posix.write_at(0, b"posix").unwrap();
    let short = Region::memfd(&format!("{tag}-short"), 4096).unwrap();
    let good = Region::memfd(&format!("{tag}-good"), 4096).unwrap();
    good.write_at(0, b"good").unwrap();
    let mut tx = Sender::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    for (body, fd) in [
        ("plain 4096", plain.as_fd()),
        ("sealable 4096", sealable.as_fd()),
        ("shrinkonly 4096", shrink_only.as_fd()),
        ("posix 4096", posix.fd().unwrap()),
        ("short 8192", short.fd().unwrap()),
        ("good 4096", good.fd().unwrap()),
    ] {
        tx.send_with(body.as_bytes(), &SendMeta::new().fds(&[fd])).unwrap();
    }
}

/// How many of this process's descriptors refer to the same object as `fd`
/// (by its /proc link, e.g. `/memfd:NAME (deleted)`: names are unique to
/// the test, so other tests' descriptors never count).
fn fds_like(fd: &OwnedFd) -> (String, usize) {
    let link = |n: &str| std::fs::read_link(format!("/proc/self/fd/{n}")).ok();
    let me = link(&fd.as_raw_fd().to_string()).unwrap();
    let count = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter(|e| link(&e.as_ref().unwrap().file_name().to_string_lossy()).as_ref() == Some(&me))
        .count();
    (me.display().to_string(), count)
}

#[test]
fn received_unsealed_or_short_descriptor_is_refused_before_mapping() {
    let s = Scratch::new("shmrecvfd");
    let posix = s.shm("p");
    let text = format!("unix:{}", s.path("s.sock").display());
    let mut rx = Receiver::bind(&ep(&text)).unwrap();
    let child = Guarded::spawn(
        rerun("child_fd_sender", "fds")
            .env("IPCKIT_EP", &text)
            .env("IPCKIT_SHM", posix.as_str())
            .env("IPCKIT_TAG", s.name("m")),
    );
    for _ in 0..6 {
        let mut msg = rx.recv_timeout(HANG_GUARD).unwrap();
        let body = String::from_utf8(msg.data).unwrap();
        let (what, len) = body.split_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        assert_eq!(msg.meta.fds.len(), 1, "{what}");
        let fd = msg.meta.fds.pop().unwrap();
        let copy = fd.try_clone().unwrap();
        let (link, before) = fds_like(&fd);
        assert!(before >= 2, "{what}: {link}");
        let sealed_only = Region::from_received_fd(fd, len, Trust::SealedOnly);
        match what {
            "plain" | "sealable" | "shrinkonly" | "posix" => {
                let e = sealed_only.unwrap_err();
                assert_err(&e, ErrorKind::PermissionDenied, &["not sealed", "refused before mapping"]);
                assert_eq!(fds_like(&copy).1, before - 1, "{what}: the refused descriptor was closed");
                // A caller that trusts the sender may map it.
                let region = Region::from_received_fd(copy, len, Trust::TrustSender).unwrap();
                assert!(region.is_writable(), "{what}");
                assert_eq!(content_at(&region, 0, what.len()), what);
            }
            "short" => {
                let e = sealed_only.unwrap_err();
                assert_err(&e, ErrorKind::Corrupt, &["4096 bytes", "8192 announced", "refused before mapping"]);
                assert_eq!(fds_like(&copy).1, before - 1, "{what}: the refused descriptor was closed");
                let e = Region::from_received_fd(copy, len, Trust::TrustSender).unwrap_err();
                assert_err(&e, ErrorKind::Corrupt, &["8192 announced"]);
                assert!(link.contains(&s.name("m-short")), "{link}");
            }
            "good" => {
                let region = sealed_only.unwrap();
                assert_eq!(region.len(), 4096);
                assert_eq!(content_at(&region, 0, 4), "good");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_success(child.wait(), "fd sender");
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn full_file_system_is_enospc_at_create() {
    let s = Scratch::new("shmfull");
    let dir = s.path("small");
    std::fs::create_dir(&dir).unwrap();
    let out = match Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&dir).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            return;
        }
    };
    if !out.status.success() {
        eprintln!("skipped: mount -t tmpfs failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        return;
    }
    // Unmounted before the scratch directory goes (declared after it).
    let _mounted = Mounted(dir.clone());
    let big = format!("file:{}", dir.join("big").display());
    let e = Segment::new(shm(&big)).size(1 << 20).create().unwrap_err();
    assert_eq!(e.errno(), Some(Errno::NOSPC), "{e}");
    assert!(e.to_string().contains(&big), "{e}");
    assert!(!dir.join("big").exists(), "the failed create left its file behind");
    // What fits is created.
    let small = format!("file:{}", dir.join("small").display());
    let region = Segment::new(shm(&small)).size(16 << 10).unlink_on_drop(true).create().unwrap();
    region.write_at((16 << 10) - 1, &[1]).unwrap();
}

// ---------------------------------------------------------------------------
// 5. Read-only sharing.

/// Child: receives a memfd sealed against writes, maps it read-only, and
/// follows the creator's changes.
#[test]
#[ignore = "child process entry point"]
fn child_read_only_receiver() {
    let Some(_) = child_role() else { return };
    let mut conn = Connection::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    let mut msg = conn.recv_timeout(HANG_GUARD).unwrap();
    let len = u64::from_le_bytes(msg.data[..8].try_into().unwrap()) as usize;
    let fd = msg.meta.fds.pop().expect("a descriptor");
    let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
    use rustix::fs::SealFlags;
    assert!(seals.contains(SealFlags::FUTURE_WRITE | SealFlags::SHRINK | SealFlags::GROW), "{seals:?}");
    // Not even write(2) gets through.
    let file = std::fs::File::from(fd.try_clone().unwrap());
    assert_eq!(file.write_at(b"x", DATA as u64).unwrap_err().raw_os_error(), Some(libc::EPERM));
    let region = Region::from_received_fd(fd, len, Trust::SealedOnly).unwrap();
    assert!(!region.is_writable());
    let e = region.write_at(DATA, b"mine").unwrap_err();
    assert_err(&e, ErrorKind::PermissionDenied, &["read-only"]);
    let e = region.write::<u32>(DATA, &1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    // The hand-offs are messages: a read-only mapping is no place for
    // atomics a reader could store through.
    assert_eq!(content_at(&region, VERSION, 10), "version 1!");
    conn.send(b"saw 1").unwrap();
    assert_eq!(conn.recv_timeout(HANG_GUARD).unwrap().data, b"written 2");
    assert_eq!(content_at(&region, VERSION, 10), "version 2!");
    check_side(&region, 0x5005, std::os::unix::process::parent_id(), 1);
    conn.send(b"saw 2").unwrap();
}

fn content_at(region: &Region, offset: usize, len: usize) -> String {
    let mut buf = vec![0u8; len];
    region.read_at(offset, &mut buf).unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn memfd_sealed_against_writes_is_read_only_for_the_receiver_while_the_creator_writes() {
    let s = Scratch::new("shmro");
    let text = format!("unix:{}", s.path("s.sock").display());
    let listener = Listener::bind(&ep(&text)).unwrap();
    let region = Region::memfd(&s.name("ro"), XLEN).unwrap();
    region.write_at(VERSION, b"version 1!").unwrap();
    region.seal_writes().unwrap();
    assert!(region.is_writable(), "the creator's own mapping stays writable");
    let child = Guarded::spawn(rerun("child_read_only_receiver", "ro").env("IPCKIT_EP", &text));
    let mut conn = listener.accept_timeout(HANG_GUARD).unwrap();
    conn.send_with(&(XLEN as u64).to_le_bytes(), &SendMeta::new().fds(&[region.fd().unwrap()])).unwrap();
    assert_eq!(conn.recv_timeout(HANG_GUARD).unwrap().data, b"saw 1");
    region.write_at(VERSION, b"version 2!").unwrap();
    write_side(&region, 0x5005, 1);
    conn.send(b"written 2").unwrap();
    assert_eq!(conn.recv_timeout(HANG_GUARD).unwrap().data, b"saw 2");
    assert_success(child.wait(), "read-only receiver");
}

#[test]
fn segment_opened_read_only_refuses_writes_and_sees_the_writers_changes() {
    let s = Scratch::new("shmrdonly");
    let posix = s.shm("r");
    let sysv = s.sysv_shm(1);
    let file = file_name(&s, "r");
    for name in [posix.as_str(), sysv.as_str(), file.as_str()] {
        let writer = Segment::new(shm(name)).size(4096).create().unwrap();
        let reader = Segment::new(shm(name)).read_only().open().unwrap();
        assert!(!reader.is_writable(), "{name}");
        assert_err(&reader.write_at(0, b"x").unwrap_err(), ErrorKind::PermissionDenied, &["read-only"]);
        writer.write_at(100, b"seen").unwrap();
        assert_eq!(content_at(&reader, 100, 4), "seen", "{name}");
    }
}

#[test]
fn atomics_of_a_read_only_region_are_refused() {
    let s = Scratch::new("shmroatom");
    let name = s.shm("a");
    let _writer = Segment::new(name.shm_name()).size(4096).create().unwrap();
    let reader = Segment::new(name.shm_name()).read_only().open().unwrap();
    assert!(!reader.is_writable());
    // Never stored through: that would be SIGSEGV.
    let e = reader.atomic_u32(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let e = reader.atomic_u64(0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
}

// ---------------------------------------------------------------------------
// 6. The ipckit object header.

const SPEC: ObjectSpec = ObjectSpec { kind: 0x51, version: 3, abi: 0xabc, payload: 64 };

#[test]
fn non_ipckit_segment_is_corrupt() {
    let s = Scratch::new("shmgarbage");
    let (a, b, c) = (s.shm("a"), s.shm("b"), s.shm("c"));
    let total = HEADER_SIZE + SPEC.payload;
    let plain = |name: &ShmObject, state: u32| {
        let region = Segment::new(name.shm_name()).size(total).create().unwrap();
        region.write_at(0, &pattern(name.len() as u64, total)).unwrap();
        region.write(STATE_OFFSET, &state).unwrap();
        region
    };
    // Garbage marked ready: the magic is wrong.
    let _a = plain(&a, STATE_READY);
    let e = Object::create_or_open(&Segment::new(a.shm_name()), SPEC, HANG_GUARD, |_| panic!("not the creator"))
        .unwrap_err();
    assert_err(&e, ErrorKind::Corrupt, &[a.as_str(), "not an ipckit object"]);
    // Garbage in the state word itself.
    let _b = plain(&b, 0xdead_beef);
    let e = Object::create_or_open(&Segment::new(b.shm_name()), SPEC, HANG_GUARD, |_| panic!("not the creator"))
        .unwrap_err();
    assert_err(&e, ErrorKind::Corrupt, &[b.as_str(), "not a valid state"]);
    // Smaller than the object: never becomes right, Corrupt at the deadline.
    let _c = Segment::new(c.shm_name()).size(16).create().unwrap();
    let e = Object::create_or_open(&Segment::new(c.shm_name()), SPEC, Duration::from_millis(50), |_| {
        panic!("not the creator")
    })
    .unwrap_err();
    assert_err(&e, ErrorKind::Corrupt, &[c.as_str()]);
}

#[test]
fn object_of_another_kind_version_or_abi_is_invalid() {
    let s = Scratch::new("shmspec");
    let posix = s.shm("o");
    let sysv = s.sysv_shm(1);
    let file = file_name(&s, "o");
    for name in [posix.as_str(), sysv.as_str(), file.as_str()] {
        let seg = Segment::new(shm(name));
        let (obj, opened) = Object::create_or_open(&seg, SPEC, HANG_GUARD, |r| r.write_at(HEADER_SIZE, b"payload"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(opened, Opened::Created);
        for (spec, needles) in [
            (ObjectSpec { kind: 0x52, ..SPEC }, ["kind 81", "expected 82"]),
            (ObjectSpec { version: 4, ..SPEC }, ["version 3", "supported 4"]),
            (ObjectSpec { abi: 0xabd, ..SPEC }, ["0xabc", "0xabd"]),
        ] {
            let e = Object::create_or_open(&seg, spec, HANG_GUARD, |_| panic!("not the creator")).unwrap_err();
            assert_err(&e, ErrorKind::Invalid, &[&shm(name).to_string(), needles[0], needles[1]]);
        }
        // A smaller payload than the object's: its size is wrong.
        let e =
            Object::create_or_open(&seg, ObjectSpec { payload: 32, ..SPEC }, HANG_GUARD, |_| panic!("no")).unwrap_err();
        assert_err(&e, ErrorKind::Corrupt, &["size 128", "expected 96"]);
        // The right spec opens it, with the creator's payload.
        let (again, opened) = Object::create_or_open(&seg, SPEC, HANG_GUARD, |_| panic!("no")).unwrap();
        assert_eq!(opened, Opened::Existing);
        assert_eq!(content_at(again.region(), HEADER_SIZE, 7), "payload");
        drop((obj, again));
    }
}

/// Child: creates the object `IPCKIT_SHM` and dies inside `init`: by
/// `abort()` (role `abort`) or by `exit(7)` (role `exit`).
#[test]
#[ignore = "child process entry point"]
fn child_dying_creator() {
    let Some(role) = child_role() else { return };
    // No core file from the abort.
    rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit { current: Some(0), maximum: Some(0) },
    )
    .unwrap();
    let seg = Segment::new(shm(&env("IPCKIT_SHM")));
    let result = Object::create_or_open(&seg, SPEC, HANG_GUARD, |region| {
        region.write_at(HEADER_SIZE, b"half")?;
        match role.as_str() {
            "abort" => std::process::abort(),
            _ => std::process::exit(7),
        }
    });
    panic!("init returned: {result:?}");
}

#[test]
fn creator_dying_mid_initialisation_is_corrupt_at_once() {
    let s = Scratch::new("shmdied");
    let posix = s.shm("d");
    let file = file_name(&s, "d");
    for name in [posix.as_str(), file.as_str()] {
        for role in ["abort", "exit"] {
            let status = Guarded::spawn(rerun("child_dying_creator", role).env("IPCKIT_SHM", name)).wait();
            // Proof that it died inside init.
            match role {
                "abort" => assert_eq!(status.signal(), Some(libc::SIGABRT), "{name}: {status}"),
                _ => assert_eq!(status.code(), Some(7), "{name}: {status}"),
            }
            let raw = Segment::new(shm(name)).open().unwrap();
            let h = raw.read::<Header>(0).unwrap();
            assert_eq!((h.magic, h.state), (MAGIC, STATE_INITIALISING), "{name}");
            assert!(ipckit::shm::is_stale(&shm(name)).unwrap(), "{name}: nobody holds it");
            // The full hang-guard timeout, yet the answer is "its creator
            // died", not "not initialised before the deadline".
            let e = Object::open(&Segment::new(shm(name)), SPEC, HANG_GUARD).unwrap_err();
            assert_err(&e, ErrorKind::Corrupt, &[&shm(name).to_string(), "creator died"]);
            // Create-or-open heals it: the abandoned object is removed under
            // its lock and a new one created and initialised.
            let (obj, opened) = Object::create_or_open(&Segment::new(shm(name)), SPEC, HANG_GUARD, |region| {
                region.write_at(HEADER_SIZE, b"whole")
            })
            .unwrap();
            assert_eq!(opened, ipckit::shm::Opened::Created, "{name}");
            assert_eq!(obj.header().unwrap().state, ipckit::shm::STATE_READY, "{name}");
            drop(obj);
            drop(raw);
            ipckit::shm::remove(&shm(name)).unwrap();
        }
    }
}

#[test]
fn sysv_creator_dying_mid_initialisation_is_corrupt_at_the_deadline() {
    let s = Scratch::new("shmdiedsv");
    let name = s.sysv_shm(1);
    let status = Guarded::spawn(rerun("child_dying_creator", "exit").env("IPCKIT_SHM", name.as_str())).wait();
    assert_eq!(status.code(), Some(7), "{status}");
    let info = ipckit::shm::info(&name.shm_name()).unwrap();
    assert_eq!(info.sysv.map(|(attached, _, _)| attached), Some(0));
    assert!(ipckit::shm::is_stale(&name.shm_name()).unwrap());
    // No lock to ask: the opener waits out its deadline.
    let e = Object::create_or_open(&Segment::new(name.shm_name()), SPEC, Duration::from_millis(50), |_| {
        panic!("not the creator")
    })
    .unwrap_err();
    assert_err(&e, ErrorKind::Corrupt, &["not initialised before the deadline"]);
}

#[test]
fn live_object_is_not_stale() {
    let s = Scratch::new("shmlive");
    let posix = s.shm("l");
    let file = file_name(&s, "l");
    for name in [posix.as_str(), file.as_str()] {
        let (obj, _) = Object::create_or_open(&Segment::new(shm(name)), SPEC, HANG_GUARD, |_| Ok(())).unwrap();
        assert!(!ipckit::shm::is_stale(&shm(name)).unwrap(), "{name}");
        drop(obj);
        assert!(ipckit::shm::is_stale(&shm(name)).unwrap(), "{name}");
    }
}

#[test]
fn failed_init_leaves_nothing_behind() {
    let s = Scratch::new("shminitfail");
    let posix = s.shm("f");
    let sysv = s.sysv_shm(1);
    let file = file_name(&s, "f");
    for name in [posix.as_str(), sysv.as_str(), file.as_str()] {
        let seg = Segment::new(shm(name));
        let e = Object::create_or_open(&seg, SPEC, HANG_GUARD, |_| {
            Err(ipckit::Error::new(ErrorKind::Invalid, "init", name, "refused by the test"))
        })
        .unwrap_err();
        assert_err(&e, ErrorKind::Invalid, &["refused by the test"]);
        assert_eq!(Segment::new(shm(name)).open().unwrap_err().kind(), ErrorKind::NotFound, "{name}: left behind");
        let (_obj, opened) = Object::create_or_open(&seg, SPEC, Duration::from_millis(50), |_| Ok(()))
            .unwrap_or_else(|e| panic!("{name}: a second try fails: {e}"));
        assert_eq!(opened, Opened::Created, "{name}");
    }
}
