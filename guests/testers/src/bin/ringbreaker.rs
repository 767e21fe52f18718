//! Corrupts its ring: publishes an SQ tail thousands of entries past the
//! head, as no well-behaved guest can, and enters the nucleus. The nucleus
//! must stop this guest, never trust the index, and go on with the others.
#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::Ordering;

use guest_rt::println;
use guest_rt::ring::with_ring;
use guest_rt::syscall;

guest_rt::entry!(main);

fn main() -> i32 {
    println!("publishing an SQ tail 10000 entries past the head");
    with_ring(|ring| {
        let header = ring.submissions.header();
        let head = header.sq_head.value.load(Ordering::Acquire);
        header
            .sq_tail
            .value
            .store(head.wrapping_add(10_000), Ordering::Release);
    });
    let entered = syscall::cap_enter(0, 0);
    println!("FAILED: the nucleus took a corrupted ring ({entered})");
    1
}
