//! Other users' objects, and objects that are not ipckit locks.

use std::os::unix::process::CommandExt;

use crate::support::{assert_no_leftovers, assert_success, shm_name, sysv_key};
use ipckit::ErrorKind;
use ipckit::endpoint::SysvKey;
use ipckit::shm::{Opened, STATE_OFFSET, Segment, ShmName};
use ipckit::sync::{Condvar, Event, EventMode, FutexSemaphore, Mutex, NamedSemaphore, SemaphoreSet, SharedSemaphore};
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::{Scratch, SemName};

/// Child running as uid 65534: every object named in the environment is
/// refused with PermissionDenied.
#[test]
#[ignore = "child process entry point"]
fn child_unprivileged_sync() {
    let Some(_) = child_role() else { return };
    let mut failures = Vec::new();
    let mut check = |what: &str, r: ipckit::Result<()>| match r {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {}
        Err(e) => failures.push(format!("{what}: {e}")),
        Ok(()) => failures.push(format!("{what}: opened")),
    };
    for name in env("IPCKIT_MUTEXES").split(' ') {
        check(name, Mutex::<u64>::open(&shm_name(name)).map(drop));
        check(name, Mutex::<u64>::open_or_create(&shm_name(name), 0).map(drop));
    }
    for name in env("IPCKIT_NAMED").split(' ') {
        check(name, NamedSemaphore::open(name).map(drop));
        check(name, NamedSemaphore::open_or_create(name, 0, 0o600).map(drop));
    }
    let name = env("IPCKIT_SHARED");
    check(&name, SharedSemaphore::open(&shm_name(&name)).map(drop));
    let name = env("IPCKIT_EVENT");
    check(&name, Event::open(&shm_name(&name)).map(drop));
    let name = env("IPCKIT_FUTEXSEM");
    check(&name, FutexSemaphore::open(&shm_name(&name)).map(drop));
    let name = env("IPCKIT_CONDVAR");
    check(&name, Condvar::open(&shm_name(&name)).map(drop));
    for id in [1, 2] {
        let key = SysvKey::parse(&env("IPCKIT_SYSV"), id).unwrap();
        check(&format!("sysv set {id}"), SemaphoreSet::open(&key).map(drop));
    }
    assert!(failures.is_empty(), "not refused: {failures:#?}");
}

#[test]
fn other_users_objects_are_permission_denied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to start a child as uid 65534");
        return;
    }
    let s = Scratch::new("sync-perm");
    std::fs::set_permissions(s.dir(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    {
        let (m600, m666) = (s.shm("m600"), s.shm("m666"));
        let (shared, event, futexsem, condvar) = (s.shm("shared"), s.shm("event"), s.shm("fsem"), s.shm("cv"));
        let (n600, n666) = (SemName::new(&s, "n600"), SemName::new(&s, "n666"));
        // 0600: the kernel refuses; 0666: ipckit's owner check refuses.
        let _m1 = Mutex::<u64>::open_or_create(&m600.shm_name(), 0).unwrap();
        let _m2 = Mutex::<u64>::open_or_create_with(&Segment::new(m666.shm_name()).mode(0o666), 0).unwrap();
        let _n1 = NamedSemaphore::create(&n600.0, 0, 0o600).unwrap();
        let _n2 = NamedSemaphore::create(&n666.0, 0, 0o666).unwrap();
        let _sh = SharedSemaphore::open_or_create(&shared.shm_name(), 0).unwrap();
        let _ev = Event::open_or_create(&event.shm_name(), EventMode::AutoReset).unwrap();
        let _fs = FutexSemaphore::open_or_create(&futexsem.shm_name(), 0).unwrap();
        let _cv = Condvar::open_or_create(&condvar.shm_name()).unwrap();
        let _set1 = SemaphoreSet::create(&sysv_key(&s, 1), 1, 0, 0o600, true).unwrap().remove_on_drop(true);
        let _set2 = SemaphoreSet::create(&sysv_key(&s, 2), 1, 0, 0o666, true).unwrap().remove_on_drop(true);
        let mut cmd = rerun("foreign_objects::child_unprivileged_sync", "nobody");
        cmd.uid(65534)
            .gid(65534)
            .env("IPCKIT_MUTEXES", format!("{} {}", &*m600, &*m666))
            .env("IPCKIT_NAMED", format!("{} {}", n600.0, n666.0))
            .env("IPCKIT_SHARED", &*shared)
            .env("IPCKIT_EVENT", &*event)
            .env("IPCKIT_FUTEXSEM", &*futexsem)
            .env("IPCKIT_CONDVAR", &*condvar)
            .env("IPCKIT_SYSV", s.dir());
        assert_success(Guarded::spawn(&mut cmd).wait(), "unprivileged child");
    }
    assert_no_leftovers(&s);
}

/// A plain POSIX segment of `size` bytes holding `bytes` at offset 0.
fn plant(name: &ShmName, size: usize, bytes: &[u8]) {
    let region = Segment::new(name.clone()).size(size).create().unwrap();
    region.write_at(0, bytes).unwrap();
}

#[test]
fn objects_that_are_not_ipckit_mutexes_are_refused() {
    // Header 64 + pthread_mutex_t slot 64 + u64.
    const SIZE: usize = 136;
    let s = Scratch::new("sync-notlock");
    {
        let guards: Vec<_> = (0..11).map(|i| s.shm(&format!("o{i}"))).collect();
        let names: Vec<ShmName> = guards.iter().map(|g| g.shm_name()).collect();

        // A genuine Mutex<u64>, whose header the doctored copies start from.
        let (_real, _) = Mutex::<u64>::open_or_create(&names[0], 7).unwrap();
        let mut header = [0u8; 64];
        Segment::new(names[0].clone()).read_only().open().unwrap().read_at(0, &mut header).unwrap();
        let doctored = |offset: usize, value: &[u8]| {
            let mut h = header;
            h[offset..offset + value.len()].copy_from_slice(value);
            h
        };

        // (what, the object planted or made, the kind expected)
        const CORRUPT: &[ErrorKind] = &[ErrorKind::Corrupt];
        const INVALID: &[ErrorKind] = &[ErrorKind::Invalid];
        let mut cases: Vec<(&str, ShmName, &[ErrorKind])> = Vec::new();
        plant(&names[1], SIZE, &[]);
        cases.push(("zeros (never initialised)", names[1].clone(), CORRUPT));
        plant(&names[2], SIZE, &[0xA5; SIZE]);
        cases.push(("garbage", names[2].clone(), CORRUPT));
        plant(&names[3], SIZE, &doctored(0, b"NOTIPCKT"));
        cases.push(("ready, but a foreign magic", names[3].clone(), CORRUPT));
        plant(&names[4], SIZE, &doctored(STATE_OFFSET, &1u32.to_ne_bytes()));
        plant(&names[5], SIZE, &doctored(8, &2u32.to_ne_bytes()));
        cases.push(("layout version 2", names[5].clone(), INVALID));
        plant(&names[6], SIZE, &doctored(16, &0xdead_beef_u64.to_ne_bytes()));
        cases.push(("another ABI", names[6].clone(), INVALID));
        plant(&names[7], SIZE, &doctored(32, &4096u64.to_ne_bytes()));
        cases.push(("header size disagrees", names[7].clone(), CORRUPT));
        plant(&names[8], SIZE, &doctored(24, &4u32.to_ne_bytes()));
        cases.push(("another kind of object", names[8].clone(), INVALID));
        plant(&names[9], 16, &[]);
        cases.push(("too small", names[9].clone(), CORRUPT));
        // A genuine object of another kind, and smaller: refused as too small
        // (after the initialisation deadline) or for its kind.
        let _ev = Event::open_or_create(&names[10], EventMode::AutoReset).unwrap();
        cases.push(("an ipckit event", names[10].clone(), &[ErrorKind::Corrupt, ErrorKind::Invalid]));

        // Some cases wait out the initialisation deadline: run them together.
        let (results, other_type): (Vec<_>, _) = std::thread::scope(|sc| {
            // A Mutex of another data type (another size) is refused too.
            let other_type = sc.spawn(|| Mutex::<[u64; 2]>::open(&names[0]).map(drop).map_err(|e| e.kind()));
            let handles: Vec<_> = cases
                .iter()
                .map(|(what, name, _)| {
                    let open = sc.spawn(move || Mutex::<u64>::open(name).map(drop).map_err(|e| e.kind()));
                    let create =
                        sc.spawn(move || Mutex::<u64>::open_or_create(name, 0).map(drop).map_err(|e| e.kind()));
                    (*what, open, create)
                })
                .collect();
            let results = handles.into_iter().map(|(what, o, c)| (what, o.join().unwrap(), c.join().unwrap()));
            (results.collect(), other_type.join().unwrap())
        });
        for ((what, open, create), (_, _, want)) in results.into_iter().zip(&cases) {
            assert!(open.is_err_and(|k| want.contains(&k)), "Mutex::open of {what}: {open:?}, want one of {want:?}");
            assert!(
                create.is_err_and(|k| want.contains(&k)),
                "Mutex::open_or_create of {what}: {create:?}, want one of {want:?}"
            );
        }
        assert_eq!(other_type, Err(ErrorKind::Corrupt), "Mutex<[u64; 2]>::open of a Mutex<u64>");
        // Initialising, and nobody holds it (its creator died): open reports
        // it; create-or-open removes it under its lock and starts afresh.
        // (One after the other: a concurrent opener's lock probe would make
        // the removal back off.)
        let e = Mutex::<u64>::open(&names[4]).map(drop).map_err(|e| e.kind());
        assert_eq!(e, Err(ErrorKind::Corrupt), "Mutex::open of an abandoned object");
        let (healed, opened) = Mutex::<u64>::open_or_create(&names[4], 5).unwrap();
        assert_eq!(opened, Opened::Created);
        assert_eq!(*healed.lock().unwrap(), 5);
        // And the genuine one still works.
        assert_eq!(*Mutex::<u64>::open(&names[0]).unwrap().lock().unwrap(), 7);
    }
    assert_no_leftovers(&s);
}
