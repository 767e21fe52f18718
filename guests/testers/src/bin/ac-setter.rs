//! Sets RFLAGS.AC (allowed in ring 3) and keeps it set across timer
//! interrupts: with SMAP, AC is what lets supervisor code reach user pages,
//! so the nucleus must clear it on every entry. It exits 0 once it has
//! been interrupted with AC set for a while.
#![no_std]
#![no_main]

extern crate alloc;

use guest_rt::clients::timer_now;
use guest_rt::println;

guest_rt::entry!(main);

/// Long enough for several timer ticks.
const HOLD_NANOS: u64 = 100_000_000;

fn main() -> i32 {
    let start = timer_now().expect("Timer.now");
    // SAFETY: sets RFLAGS.AC only; the rest of RFLAGS is as it was.
    unsafe {
        core::arch::asm!("pushfq", "or qword ptr [rsp], 0x40000", "popfq");
    }
    // Spin in ring 3 with AC set, reading the TSC only (no calls: a call's
    // copy would be ordinary nucleus work, not the interrupt path).
    let begin = rdtsc();
    let mut spins = 0u64;
    while rdtsc() - begin < 200_000_000 {
        spins += 1;
    }
    let flags: u64;
    // SAFETY: reads RFLAGS.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags) };
    let elapsed = timer_now().expect("Timer.now") - start;
    println!(
        "AC {} after {spins} spins across {} ms of interrupts",
        if flags & 0x40000 != 0 {
            "still set"
        } else {
            "cleared"
        },
        elapsed / 1_000_000
    );
    if elapsed >= HOLD_NANOS / 10 { 0 } else { 1 }
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}
