//! Read-only sharing.

use std::os::unix::fs::FileExt;

use crate::exchange::{DATA, VERSION, XLEN, check_side, write_side};
use crate::support::{assert_err, assert_success, content_at, ep, file_name, shm};
use ipckit::shm::{Region, Segment, Trust};
use ipckit::socket::{Connection, Listener};
use ipckit::{ErrorKind, Options, SendMeta};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;

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

#[test]
fn memfd_sealed_against_writes_is_read_only_for_the_receiver_while_the_creator_writes() {
    let s = Scratch::new("shmro");
    let text = format!("unix:{}", s.path("s.sock").display());
    let listener = Listener::bind(&ep(&text)).unwrap();
    let region = Region::memfd(&s.name("ro"), XLEN).unwrap();
    region.write_at(VERSION, b"version 1!").unwrap();
    region.seal_writes().unwrap();
    assert!(region.is_writable(), "the creator's own mapping stays writable");
    let child = Guarded::spawn(rerun("read_only::child_read_only_receiver", "ro").env("IPCKIT_EP", &text));
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
