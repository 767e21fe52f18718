//! Executes a privileged instruction (CLI) in ring 3: #GP stops it.
#![no_std]
#![no_main]

use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    println!("disabling interrupts from ring 3");
    // SAFETY: deliberately privileged; the nucleus stops this guest.
    unsafe { core::arch::asm!("cli") };
    println!("interrupts off: privilege is broken");
    1
}
