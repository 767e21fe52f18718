//! The scaling benchmark's guest (`bench/scaling`): runs `bench_work::spin`
//! for ROUNDS rounds (its argument, default 20,000,000) without entering
//! the nucleus, and prints the TSC when it started and when it ended
//! (every CPU's TSC is the same clock), so the benchmark can tell how long
//! all its guests took together.
#![no_std]
#![no_main]

extern crate alloc;

use guest_rt::clients::start_info;
use guest_rt::println;

guest_rt::entry!(main);

const DEFAULT_ROUNDS: usize = 20_000_000;

fn main() -> i32 {
    let args = start_info().map(|info| info.args).unwrap_or_default();
    let Some(rounds) = testers::rounds_argument(&args, DEFAULT_ROUNDS) else {
        return 2;
    };
    let start = guest_rt::syscall::cycles();
    let value = bench_work::spin(rounds as u64, start);
    let end = guest_rt::syscall::cycles();
    println!("compute: {rounds} rounds from tsc {start} to tsc {end} ({value:#x})");
    0
}
