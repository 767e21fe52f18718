//! A guest restarted again and again (its restart policy does it: it
//! always exits 1). Each incarnation checks that its memory is its own:
//! every page of a fresh 1 MiB allocation must read zero before it writes
//! (the nucleus gives a guest zeroed frames), then it marks every page
//! with a value of its own and reads the marks back. A stale mapping (a
//! TLB entry some CPU kept after the slot's previous guest left, now
//! pointing at a frame that went to someone else) shows as foreign data:
//! then it says where and exits 3.
#![no_std]
#![no_main]

extern crate alloc;

use core::alloc::Layout;

use guest_rt::println;

guest_rt::entry!(main);

const PAGES: usize = 256;
const WORDS_PER_PAGE: usize = 4096 / 8;

fn main() -> i32 {
    let layout = Layout::from_size_align(PAGES * 4096, 4096).expect("a valid layout");
    // SAFETY: a non-zero-sized layout; the block is only read and written
    // through volatile accesses of whole words inside it, and freed with
    // the same layout.
    let base = unsafe { alloc::alloc::alloc(layout) } as *mut u64;
    if base.is_null() {
        println!("no memory for the check");
        return 2;
    }
    let mark = guest_rt::syscall::cycles() | 1;
    let word = |page: usize, at: usize| {
        // SAFETY: page < PAGES and at < WORDS_PER_PAGE: inside the block.
        unsafe { base.add(page * WORDS_PER_PAGE + at) }
    };
    let mut status = 1;
    for page in 0..PAGES {
        for at in [0, WORDS_PER_PAGE / 2, WORDS_PER_PAGE - 1] {
            // SAFETY: see `word`; the heap's pages were zeroed and mapped
            // by the nucleus before this guest ran, and nothing wrote here.
            let found = unsafe { word(page, at).read_volatile() };
            if found != 0 {
                println!("FOREIGN DATA: page {page} word {at} reads {found:#x} before any write");
                status = 3;
            }
            // SAFETY: see `word`.
            unsafe { word(page, at).write_volatile(mark ^ page as u64) };
        }
    }
    for page in 0..PAGES {
        for at in [0, WORDS_PER_PAGE / 2, WORDS_PER_PAGE - 1] {
            // SAFETY: see `word`.
            let found = unsafe { word(page, at).read_volatile() };
            if found != mark ^ page as u64 {
                println!("FOREIGN DATA: page {page} word {at} reads {found:#x}, not its own mark");
                status = 3;
            }
        }
    }
    // SAFETY: allocated above with this layout.
    unsafe { alloc::alloc::dealloc(base as *mut u8, layout) };
    status
}
