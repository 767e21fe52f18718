//! Spins for 300 ms without entering the nucleus: only preemption lets
//! another guest run meanwhile. With the argument `forever`, spins until
//! something stops it.
#![no_std]
#![no_main]

use guest_rt::clients::{boot_info, start_info, timer_now};
use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    // Reads the TSC directly: no system call from "spinning" on, so what
    // is injected after it (a machine check) lands in ring 3.
    // `forever`: until something stops it (a test's injected fault).
    let forever = start_info().is_ok_and(|info| info.args.first().is_some_and(|a| a == "forever"));
    let spin_cycles = match forever {
        true => u64::MAX,
        false => boot_info().expect("BootInfo.get").tsc_hz * 3 / 10,
    };
    let start = timer_now().expect("Timer.now");
    println!("spinning");
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
