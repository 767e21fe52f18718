//! Prints "count N" ten times, sleeping 10 ms between lines.
#![no_std]
#![no_main]

use guest_rt::clients::timer_sleep;
use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    for n in 1..=10 {
        println!("count {n}");
        timer_sleep(10_000_000).expect("Timer.sleep");
    }
    0
}
