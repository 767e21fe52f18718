//! Allocates without bound: its heap runs out, the allocator reports it,
//! and the guest ends with a panic, not a nucleus fault.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use guest_rt::println;

guest_rt::entry!(main);

fn main() -> i32 {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(alloc::vec![1u8; 256 * 1024]);
        if held.len().is_multiple_of(4) {
            println!("holding {} KiB", held.len() * 256);
        }
    }
}
