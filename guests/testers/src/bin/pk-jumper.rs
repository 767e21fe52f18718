//! Jumps into another guest's code. Protection keys do not govern
//! instruction fetch, so the victim's instructions run, but the first access
//! they make to the victim's data faults on its key.
#![no_std]
#![no_main]

use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    let (_, function) = testers::victim_addresses();
    println!("calling {function:#x}");
    // SAFETY: deliberately calling into another guest; the nucleus stops this guest.
    let read: extern "C" fn() -> u64 = unsafe { core::mem::transmute(function as usize) };
    let value = read();
    println!("got {value:#x}: isolation is broken");
    1
}
