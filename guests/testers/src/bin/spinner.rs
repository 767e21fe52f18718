//! Spins for 300 ms without entering the nucleus: only preemption lets
//! another guest run meanwhile.
#![no_std]
#![no_main]

use guest_rt::clients::{boot_info, timer_now};
use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    let start = timer_now().expect("Timer.now");
    println!("spinning");
    // Reads the TSC directly: no system call while spinning.
    let spin_cycles = boot_info().expect("BootInfo.get").tsc_hz * 3 / 10;
    let tsc = guest_rt::syscall::cycles;
    let begin = tsc();
    let mut spins = 0u64;
    while tsc() - begin < spin_cycles {
        spins = core::hint::black_box(spins + 1);
    }
    let elapsed = timer_now().expect("Timer.now") - start;
    println!("spun {} ms", elapsed / 1_000_000);
    0
}
