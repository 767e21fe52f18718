//! Writes another guest's memory: its protection key forbids it.
#![no_std]
#![no_main]

use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    let (secret, _) = testers::victim_addresses();
    println!("writing {secret:#x}");
    // SAFETY: deliberately writing another guest's memory; the nucleus stops this guest.
    unsafe { (secret as *mut u64).write_volatile(0) };
    println!("wrote it: isolation is broken");
    1
}
