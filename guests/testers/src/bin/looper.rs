//! Spins forever without a system call: preemption keeps others running and
//! its CPU-time limit stops it.
#![no_std]
#![no_main]

use guest_rt::println;

extern crate alloc;

guest_rt::entry!(main);

fn main() -> i32 {
    println!("looping forever");
    let mut n = 0u64;
    loop {
        n = core::hint::black_box(n.wrapping_add(1));
    }
}
