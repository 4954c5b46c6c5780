//! Measuring what a piece of code allocates, to prove parsers of outside input do
//! not trust a declared length before checking it against the input.
//!
//! A test binary installs [`CountingAllocator`] as its global allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: offsite_testbed::allocation::CountingAllocator =
//!     offsite_testbed::allocation::CountingAllocator;
//! ```
//!
//! and wraps each call in [`peak_during`]. Counts are per thread, so tests running
//! in parallel in the same binary do not disturb each other's figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting the live bytes of each thread and their peak.
pub struct CountingAllocator;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    // `try_with`: a thread being torn down has no counters any more.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed straight to the system allocator; the counters are
// plain thread-local cells that never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Runs `f` and returns its result with the most bytes this thread held at once
/// during the call beyond what it held before (what `f` returns included). Only
/// meaningful in a binary whose global allocator is [`CountingAllocator`]; `0`
/// otherwise.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - start).max(0) as u64)
}

/// True when the running binary counts allocations (so a bound can be asserted).
pub fn is_counting() -> bool {
    let ((), peak) = peak_during(|| drop(std::hint::black_box(vec![0u8; 64])));
    peak >= 64
}

/// How many cases a property test of hostile input runs: `PROPTEST_CASES` when set
/// (the soak sets it), else `default`, kept small for CI.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
