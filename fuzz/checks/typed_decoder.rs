//! The invariants of the `typed_decoder` fuzz target, shared with its
//! stable smoke test (`crates/ipckit/tests/typed_decoder_smoke.rs`, which
//! includes this file by path).
//!
//! Any bytes a peer sends are decoded with
//! `ipckit::typed::decode::<T>(bytes, &Limits::default(), "fuzz")` as a
//! few types that stress the decoder: `Vec<()>` (elements that cost no
//! byte), `Vec<String>`, a recursive enum (`Tree`), a struct of many field
//! kinds (`Record`) and a map. For each:
//! - no panic, and the work is bounded: a decoded value has at most the
//!   default element budget (the input's length + 4096) of sequence and
//!   map elements and is nested at most 128 deep (a long loop or a deep
//!   recursion would also show as a fuzzer timeout or stack overflow);
//! - memory is bounded: the most bytes live at once during the decode
//!   (with the [`Peak`] allocator installed as the binary's global
//!   allocator) stay under [`memory_bound`] of the input's length;
//! - a failure is `Decode`, one line, naming the endpoint and the type;
//! - a success is one value: re-encoding it gives the input back, or a
//!   shorter input where the input was not postcard's canonical form
//!   (postcard 1.x accepts a varint with extra zero groups, `80 00` for 0,
//!   and a map with a key twice, the later entry winning), and decoding
//!   the re-encoding (within the input's element budget: a shorter
//!   re-encoding has a smaller default one) gives the same encoding again.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipckit::ErrorKind;
use ipckit::typed::{DEFAULT_EXTRA_ELEMENTS, DEFAULT_MAX_DEPTH, Limits, decode, encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A recursive type: nesting one level per byte or two.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
    Pair(Box<Tree>, Box<Tree>),
    Named { name: String, child: Option<Box<Tree>> },
}

/// A struct of many field kinds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Record {
    pub id: u64,
    pub delta: i32,
    pub flag: bool,
    pub ch: char,
    pub ratio: f64,
    pub name: String,
    pub bytes: Vec<u8>,
    pub tags: BTreeMap<String, u16>,
    pub pairs: Vec<(u8, i64)>,
    pub tree: Option<Tree>,
    pub unit: (),
}

/// Counts elements and depth of a decoded value.
trait Measure {
    /// (elements of sequences and maps, nesting depth)
    fn measure(&self) -> (u64, u32);
}

impl Measure for Vec<()> {
    fn measure(&self) -> (u64, u32) {
        (self.len() as u64, 1)
    }
}

impl Measure for Vec<String> {
    fn measure(&self) -> (u64, u32) {
        (self.len() as u64, 1)
    }
}

impl Measure for Tree {
    fn measure(&self) -> (u64, u32) {
        match self {
            Tree::Leaf(_) => (0, 1),
            Tree::Node(children) => children.iter().fold((children.len() as u64, 1), |(e, d), c| {
                let (ce, cd) = c.measure();
                (e + ce, d.max(cd + 1))
            }),
            Tree::Pair(a, b) => {
                let ((ae, ad), (be, bd)) = (a.measure(), b.measure());
                (ae + be, ad.max(bd) + 1)
            }
            Tree::Named { child, .. } => child.as_ref().map_or((0, 1), |c| {
                let (e, d) = c.measure();
                (e, d + 1)
            }),
        }
    }
}

impl Measure for Record {
    fn measure(&self) -> (u64, u32) {
        let (te, td) = self.tree.as_ref().map_or((0, 0), Tree::measure);
        (self.tags.len() as u64 + self.pairs.len() as u64 + te, td + 1)
    }
}

impl Measure for BTreeMap<u16, Vec<()>> {
    fn measure(&self) -> (u64, u32) {
        (self.len() as u64 + self.values().map(|v| v.len() as u64).sum::<u64>(), 2)
    }
}

/// Bytes live now and the most live since the last [`Peak::reset`].
static LIVE: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);
/// Allocations seen (to tell that the allocator is installed).
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// A global allocator that forwards to the system's and records the most
/// bytes live at once. Install it in the binary:
/// `#[global_allocator] static A: Peak = Peak;`.
#[derive(Debug)]
pub struct Peak;

impl Peak {
    fn grew(by: usize) {
        let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        MOST.fetch_max(live, Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a measurement: returns the bytes live now.
    pub fn reset() -> usize {
        let live = LIVE.load(Ordering::Relaxed);
        MOST.store(live, Ordering::Relaxed);
        live
    }

    /// The most bytes live since [`reset`](Self::reset) returned `base`,
    /// over `base`.
    pub fn most_since(base: usize) -> usize {
        MOST.load(Ordering::Relaxed).saturating_sub(base)
    }

    /// How many allocations this allocator has seen.
    #[allow(dead_code, reason = "the smoke test's check that the allocator is installed")]
    pub fn calls() -> usize {
        CALLS.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only statistics.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout contract is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Peak::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` (or realloc) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            Peak::grew(new_size);
        }
        p
    }
}

/// The most bytes a decode of `len` input bytes may hold live at once:
/// the element budget (`len` + 4096) of 64-byte elements, twice over (a
/// vector's growth), plus 64 KiB for the error's text and the values'
/// strings. The elements are one budget for the whole value, and a
/// vector's capacity hint is capped at what is left of it, so nested
/// vectors that each announce a huge length must not each preallocate
/// the budget; a decode past this bound is memory amplification.
pub fn memory_bound(len: usize) -> usize {
    let elements = len + DEFAULT_EXTRA_ELEMENTS as usize;
    2 * 64 * elements + 64 * 1024
}

/// What one input did with each type, for a test to see that its inputs
/// reach both outcomes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    /// Per type (in the order of [`check`]): decoded.
    pub decoded: [bool; 5],
    /// The input re-encoded to itself for a decoded type.
    pub canonical: u32,
    /// The most bytes live during one of this input's decodes.
    pub most_live: usize,
}

fn one<T>(data: &[u8], outcome: &mut Outcome, slot: usize)
where
    T: DeserializeOwned + Serialize + Measure + std::fmt::Debug,
{
    let type_name = std::any::type_name::<T>();
    let base = Peak::reset();
    let got = decode::<T>(data, &Limits::default(), "fuzz");
    let most = Peak::most_since(base);
    outcome.most_live = outcome.most_live.max(most);
    assert!(
        most <= memory_bound(data.len()),
        "{type_name}: {most} bytes live at once decoding {} bytes (bound {})",
        data.len(),
        memory_bound(data.len())
    );
    match got {
        Ok(value) => {
            outcome.decoded[slot] = true;
            let (elements, depth) = value.measure();
            assert!(
                elements <= data.len() as u64 + DEFAULT_EXTRA_ELEMENTS,
                "{type_name}: {elements} elements from {} bytes",
                data.len()
            );
            assert!(depth <= DEFAULT_MAX_DEPTH, "{type_name}: nested {depth} deep");
            let again =
                encode(&value, "fuzz").unwrap_or_else(|e| panic!("{type_name}: a decoded value does not encode: {e}"));
            if again == data {
                outcome.canonical += 1;
            } else {
                assert!(again.len() <= data.len(), "{type_name}: re-encoded longer ({} > {})", again.len(), data.len());
            }
            // Within the input's own budget: the element budget grows with
            // the length, and a shorter re-encoding of a value at the edge
            // of it would be over the default budget of its own length.
            let budget = Limits::default().max_elements(data.len() as u64 + DEFAULT_EXTRA_ELEMENTS);
            let back = decode::<T>(&again, &budget, "fuzz")
                .unwrap_or_else(|e| panic!("{type_name}: its own encoding does not decode: {e}"));
            assert_eq!(encode(&back, "fuzz").unwrap(), again, "{type_name}: the re-encoding is not stable");
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Decode, "{type_name}: {e}");
            let text = e.to_string();
            assert!(!text.contains('\n'), "{type_name}: a multi-line error: {text}");
            assert!(text.contains("fuzz"), "{type_name}: the error does not name the endpoint: {text}");
            assert!(text.contains(type_name), "{type_name}: the error does not name the type: {text}");
        }
    }
}

/// Checks every invariant on `data` for every type; panics on a violation.
pub fn check(data: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    one::<Vec<()>>(data, &mut outcome, 0);
    one::<Vec<String>>(data, &mut outcome, 1);
    one::<Tree>(data, &mut outcome, 2);
    one::<Record>(data, &mut outcome, 3);
    one::<BTreeMap<u16, Vec<()>>>(data, &mut outcome, 4);
    outcome
}
