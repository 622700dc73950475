//! The create race: 8 processes, 200 objects, exactly one creator each.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::{assert_success, file_name, pattern, shm, spin_until};
use ipckit::shm::{HEADER_SIZE, Header, MAGIC, Object, ObjectSpec, Opened, STATE_READY, Segment};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::{Scratch, ShmObject};

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
            Guarded::spawn(
                rerun("race::child_racer", role).env("IPCKIT_CTL", ctl_name.as_str()).env("IPCKIT_NAMES", &list),
            )
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
