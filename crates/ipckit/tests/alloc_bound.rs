//! No allocation sized by a peer: a frame announcing 4 GiB, or any length
//! over the maximum, is refused without allocating it. Checked with a
//! counting global allocator (this test binary's only test, so nothing else
//! allocates concurrently).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipckit::socket::{Connection, Listener};
use ipckit::{ErrorKind, Options};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only
// records the largest size asked for.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

#[test]
fn announced_lengths_never_size_an_allocation() {
    const MAX: usize = 64 * 1024;
    let dir = std::env::temp_dir().join(format!("ipckit-t-{}-alloc", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let result = std::panic::catch_unwind(|| {
        let text = format!("unix:{}", path.display());
        let opts = Options::new().max_message(MAX);
        let listener = Listener::bind_with(&text.parse().unwrap(), &opts).unwrap();
        for announced in [u32::MAX, 1 << 31, (MAX + 1) as u32] {
            let mut raw = UnixStream::connect(&path).unwrap();
            let mut conn: Connection = listener.accept_timeout(Duration::from_secs(30)).unwrap();
            LARGEST.store(0, Ordering::Relaxed);
            raw.write_all(&announced.to_le_bytes()).unwrap();
            let e = conn.recv_timeout(Duration::from_secs(30)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
            let largest = LARGEST.load(Ordering::Relaxed);
            assert!(largest <= MAX, "an allocation of {largest} bytes was made for a peer's length {announced}");
        }

        // The lines framing bounds its buffer by the maximum too.
        let lines = Options::new().max_message(MAX).framing(ipckit::Framing::Lines);
        let text2 = format!("unix:{}", dir.join("l.sock").display());
        let listener = Listener::bind_with(&text2.parse().unwrap(), &lines).unwrap();
        let mut raw = UnixStream::connect(dir.join("l.sock")).unwrap();
        let mut conn = listener.accept_timeout(Duration::from_secs(30)).unwrap();
        let chunk = vec![b'z'; 1 << 20];
        LARGEST.store(0, Ordering::Relaxed);
        let writer = std::thread::spawn(move || {
            for _ in 0..16 {
                if raw.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let e = conn.recv_timeout(Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
        drop(conn);
        writer.join().unwrap();
        let largest = LARGEST.load(Ordering::Relaxed);
        // The line buffer holds at most the maximum plus the newline.
        assert!(largest <= MAX + 1, "largest allocation {largest} for an endless line");
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
