//! Contains WRPKRU, which would let it open any protection key: the loader
//! refuses it before it runs.
#![no_std]
#![no_main]

use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    println!("running with WRPKRU in my code: the loader let me in");
    // SAFETY: never reached: the loader refuses this guest.
    unsafe { core::arch::asm!("wrpkru", in("eax") 0, in("ecx") 0, in("edx") 0) };
    1
}
