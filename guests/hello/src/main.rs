//! Prints through Console, reads Timer and Entropy and BootInfo, sleeps,
//! and exits with code 7 so the test can tell its exit from a default one.
#![no_std]
#![no_main]

use guest_rt::clients::{
    boot_info, console_write, entropy_fill, region, timer_now, timer_realtime, timer_sleep,
};
use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    let _ = console_write("hello from a native guest in ring 3\n");
    let before = timer_now().expect("Timer.now");
    timer_sleep(20_000_000).expect("Timer.sleep");
    let after = timer_now().expect("Timer.now");
    println!("slept {} ms (asked for 20)", (after - before) / 1_000_000);
    match entropy_fill(16) {
        Ok(bytes) => println!("entropy: {} bytes", bytes.len()),
        Err(error) => println!("entropy: {error}"),
    }
    let info = boot_info().expect("BootInfo.get");
    println!(
        "boot info: {} CPUs, {} MiB managed, tsc {} MHz",
        info.cpu_count,
        info.memory_total_bytes >> 20,
        info.tsc_hz / 1_000_000
    );
    match timer_realtime() {
        // Days since 1970: enough to show the clock is real, and stable in a test.
        Ok(nanos) => println!("wall clock: day {} since 1970", nanos / 86_400_000_000_000),
        Err(error) => println!("wall clock: {error}"),
    }
    let (base, size) = region().expect("GuestControl.region");
    println!("my region: {base:#x} + {} GiB", size >> 30);
    7
}
