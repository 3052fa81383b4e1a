//! A counting global allocator for measurements: bytes allocated and not yet freed, with
//! their peak, per thread (a decode on the calling thread) and for the whole process (a
//! download spread over runtime workers). What the code asked for, without the allocator's
//! own retention that RSS includes. Shared by the decode-memory unit tests and the benchmarks.
//!
//! A program opts in by installing [`Meter`] as its global allocator (a library cannot do it
//! for every program that links it, and programs that only time things should not pay for the
//! counting):
//!
//! ```text
//! #[global_allocator]
//! static METER: testkit::allocation_meter::Meter = testkit::allocation_meter::Meter;
//! ```
//!
//! The measurements panic when the meter is not installed, rather than report zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

thread_local! {
    static THREAD_LIVE: Cell<i64> = const { Cell::new(0) };
    static THREAD_PEAK: Cell<i64> = const { Cell::new(0) };
}

static PROCESS_LIVE: AtomicI64 = AtomicI64::new(0);
static PROCESS_PEAK: AtomicI64 = AtomicI64::new(0);
static PROCESS_BASELINE: AtomicI64 = AtomicI64::new(0);

/// The counting allocator: the system allocator plus counters.
pub struct Meter;

fn record(delta: i64) {
    let now = PROCESS_LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
    PROCESS_PEAK.fetch_max(now, Ordering::Relaxed);
    // `try_with`: threads still allocate while their thread-locals are being torn down.
    let _ = THREAD_LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = THREAD_PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed to the system allocator unchanged; only counters change.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            record(layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            // Counted as if old and new were both held for a moment, as when the block moves.
            record(new_size as i64);
            record(-(layout.size() as i64));
        }
        moved
    }
}

/// Panics unless [`Meter`] is the global allocator (then the process has allocated by now).
fn assert_installed() {
    assert!(
        PROCESS_PEAK.load(Ordering::Relaxed) > 0,
        "install testkit::allocation_meter::Meter as the #[global_allocator] to measure"
    );
}

/// Runs `f` and returns its result with the most bytes this thread held during it, above what
/// it held before.
pub fn thread_peak_during<T>(f: impl FnOnce() -> T) -> (T, u64) {
    assert_installed();
    let before = THREAD_LIVE.with(Cell::get);
    THREAD_PEAK.with(|peak| peak.set(before));
    let result = f();
    let peak = THREAD_PEAK.with(Cell::get) - before;
    (result, u64::try_from(peak).unwrap_or(0))
}

/// Starts a process-wide measurement; see [`process_peak_growth`].
pub fn reset_process_peak() {
    assert_installed();
    let live = PROCESS_LIVE.load(Ordering::Relaxed);
    PROCESS_BASELINE.store(live, Ordering::Relaxed);
    PROCESS_PEAK.store(live, Ordering::Relaxed);
}

/// The most bytes the process held since [`reset_process_peak`], above what it held then.
pub fn process_peak_growth() -> u64 {
    let growth = PROCESS_PEAK.load(Ordering::Relaxed) - PROCESS_BASELINE.load(Ordering::Relaxed);
    u64::try_from(growth).unwrap_or(0)
}
