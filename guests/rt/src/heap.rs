//! The guest's allocator: talc over the heap range the nucleus mapped.
//! Running out is an allocation error for the guest, never a nucleus fault.

use talc::source::Manual;

#[global_allocator]
static HEAP: talc::TalcLock<spin::Mutex<()>, Manual> = talc::TalcLock::new(Manual);

/// Gives the allocator `[start, start + size)`.
pub(crate) fn init(start: u64, size: u64) {
    if size == 0 {
        return;
    }
    // SAFETY: the nucleus mapped this range read-write for this guest alone
    // and nothing else in the guest uses it.
    unsafe {
        HEAP.lock().claim(start as *mut u8, size as usize);
    }
}
