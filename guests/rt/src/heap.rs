//! The guest's allocator: talc over the heap range the nucleus mapped.
//! Running out is an allocation error for the guest, never a nucleus fault.
//! It keeps the bytes in use and their high-water mark, for reports.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use talc::source::Manual;

struct CountingHeap {
    talc: talc::TalcLock<spin::Mutex<()>, Manual>,
    in_use: AtomicUsize,
    peak: AtomicUsize,
    size: AtomicUsize,
}

#[global_allocator]
static HEAP: CountingHeap = CountingHeap {
    talc: talc::TalcLock::new(Manual),
    in_use: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
    size: AtomicUsize::new(0),
};

impl CountingHeap {
    fn grew(&self, bytes: usize) {
        let now = self.in_use.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call goes to talc unchanged; the counters only observe.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let pointer = unsafe { self.talc.alloc(layout) };
        if !pointer.is_null() {
            self.grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { self.talc.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let moved = unsafe { self.talc.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
            self.grew(new_size);
        }
        moved
    }
}

/// Gives the allocator `[start, start + size)`.
pub(crate) fn init(start: u64, size: u64) {
    if size == 0 {
        return;
    }
    HEAP.size.store(size as usize, Ordering::Relaxed);
    // SAFETY: the nucleus mapped this range read-write for this guest alone
    // and nothing else in the guest uses it.
    unsafe {
        HEAP.talc.lock().claim(start as *mut u8, size as usize);
    }
}

/// Heap use: (bytes in use now, the most ever in use, the heap's size).
pub fn usage() -> (usize, usize, usize) {
    (
        HEAP.in_use.load(Ordering::Relaxed),
        HEAP.peak.load(Ordering::Relaxed),
        HEAP.size.load(Ordering::Relaxed),
    )
}
