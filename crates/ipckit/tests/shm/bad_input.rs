//! Bad input, one test per row.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;

use crate::exchange::Record;
use crate::support::{SKIP, assert_err, assert_success, content_at, ep, file_name, is_root, shm};
use ipckit::shm::{Opened, Region, Segment, Trust};
use ipckit::{ErrorKind, Options, Receiver, SendMeta, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;
use rustix::io::Errno;

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
    let status =
        Guarded::spawn(rerun("bad_input::child_sysv_limits", "limits").env("IPCKIT_SHM", name.as_str())).wait();
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
    let status = Guarded::spawn(rerun("bad_input::child_fsize", "fsize").env("IPCKIT_NAMES", &names)).wait();
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
    let status = Guarded::spawn(&mut rerun("bad_input::child_fsize_memfd", "fsize")).wait();
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
        rerun("bad_input::child_unprivileged_segments", "nobody")
            .uid(65534)
            .gid(65534)
            .env("IPCKIT_NAMES", names.join(" ")),
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
        rerun("bad_input::child_fd_sender", "fds")
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
