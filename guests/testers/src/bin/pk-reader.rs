//! Reads another guest's memory: its protection key forbids it.
#![no_std]
#![no_main]

use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    let (secret, _) = testers::victim_addresses();
    println!("reading {secret:#x}");
    // SAFETY: deliberately reading another guest's memory; the nucleus stops this guest.
    let value = unsafe { (secret as *const u64).read_volatile() };
    println!("read {value:#x}: isolation is broken");
    1
}
