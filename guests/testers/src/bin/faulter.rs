//! Writes to nucleus memory: the page fault stops this guest, not the nucleus.
#![no_std]
#![no_main]

use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    println!("writing to the nucleus");
    // SAFETY: deliberately invalid; the nucleus stops this guest.
    unsafe { (0xffff_ffff_8000_0000 as *mut u64).write_volatile(1) };
    println!("still alive?!");
    1
}
