//! Truncation: an unsealed segment can be truncated by a peer, and is then
//! refused at open; a sealed memfd cannot be resized at all.

use std::path::{Path, PathBuf};

use crate::support::{assert_err, assert_success, ep, file_name, shm};
use ipckit::shm::{Region, Segment, Trust};
use ipckit::socket::{Connection, Listener};
use ipckit::{ErrorKind, Options, SendMeta};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;
use rustix::io::Errno;

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
    let status = Guarded::spawn(
        rerun("truncation::child_truncate", "truncate").env("IPCKIT_PATH", path).env("IPCKIT_LEN", len.to_string()),
    )
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
    let child = Guarded::spawn(rerun("truncation::child_sealed_memfd_sender", "sealed").env("IPCKIT_EP", &text));
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

/// Checks the safe copies of `region` (8192 bytes, `set_len` resizes what
/// backs it) across truncations: what is still there reads back; past the
/// new end, every copy is a `Corrupt` error naming the object and the
/// sizes, and a refused write does not grow the object back.
fn check_copies_after_truncation(region: &Region, set_len: &dyn Fn(u64), size: &dyn Fn() -> u64) {
    let name = region.name().to_string();
    assert_eq!(region.len(), 8192);
    region.write_at(0, b"kept").unwrap();
    region.write_at(8000, b"lost").unwrap();
    set_len(4096);
    let mut buf = [0u8; 4];
    region.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"kept");
    let e = region.read_at(8000, &mut buf).unwrap_err();
    assert_err(&e, ErrorKind::Corrupt, &[&name, "truncated", "4096 bytes", "8000", "8192"]);
    let mut straddling = [0u8; 16];
    let e = region.read_at(4090, &mut straddling).unwrap_err();
    assert_err(&e, ErrorKind::Corrupt, &[&name, "truncated", "4096 bytes"]);
    assert_err(&region.read::<u64>(8000).unwrap_err(), ErrorKind::Corrupt, &[&name, "truncated"]);
    assert_err(&region.write_at(8000, b"more").unwrap_err(), ErrorKind::Corrupt, &[&name, "truncated"]);
    assert_err(&region.write(8000, &7u64).unwrap_err(), ErrorKind::Corrupt, &[&name, "truncated"]);
    assert_eq!(size(), 4096, "a refused write grew the object back");
    region.write_at(4092, b"edge").unwrap();
    set_len(0);
    assert_err(&region.read_at(0, &mut buf).unwrap_err(), ErrorKind::Corrupt, &[&name, "truncated", "0 bytes"]);
    assert_err(&region.write_at(0, b"gone").unwrap_err(), ErrorKind::Corrupt, &[&name, "truncated"]);
    assert_eq!(size(), 0);
    // Grown back, the bytes read as zeros (the old pages are gone).
    set_len(8192);
    region.read_at(8000, &mut buf).unwrap();
    assert_eq!(buf, [0; 4]);
}

/// Child: the copies of a POSIX object (`IPCKIT_POSIX`), a file
/// (`IPCKIT_FILE`) and an unsealed memfd taken on trust, across
/// truncations. A `SIGBUS` here ends the child by a signal, which the
/// parent reports.
#[test]
#[ignore = "child process entry point"]
fn child_copies_after_truncation() {
    let Some(_) = child_role() else { return };
    for name in [env("IPCKIT_POSIX"), env("IPCKIT_FILE")] {
        let region = Segment::new(shm(&name)).size(8192).create().unwrap();
        let fd = region.fd().unwrap();
        check_copies_after_truncation(&region, &|len| rustix::fs::ftruncate(fd, len).unwrap(), &|| {
            rustix::fs::fstat(fd).unwrap().st_size as u64
        });
        drop(region);
        ipckit::shm::remove(&shm(&name)).unwrap();
    }
    let fd = rustix::fs::memfd_create("ipckit-t-unsealed", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, 8192).unwrap();
    let region = Region::from_received_fd(fd, 8192, Trust::TrustSender).unwrap();
    let fd = region.fd().unwrap();
    check_copies_after_truncation(&region, &|len| rustix::fs::ftruncate(fd, len).unwrap(), &|| {
        rustix::fs::fstat(fd).unwrap().st_size as u64
    });
}

#[test]
fn copies_on_a_truncated_segment_are_errors_not_sigbus() {
    let s = Scratch::new("shmtrunc-copy");
    let posix = s.shm("c");
    let file = file_name(&s, "c");
    let status = Guarded::spawn(
        rerun("truncation::child_copies_after_truncation", "copies")
            .env("IPCKIT_POSIX", posix.as_str())
            .env("IPCKIT_FILE", &file),
    )
    .wait();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), None, "the child died of a signal: {status}");
    assert_success(status, "copies after truncation");
}
