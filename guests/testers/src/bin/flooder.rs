//! Floods the console as hard as the ring allows: batches of 256
//! Console.write calls, each 64 KiB of newlines, one `cap_enter` per batch,
//! forever. The nucleus cuts each batch after a time slice so the others
//! run, prints only its allowance of lines (noting how many it dropped),
//! and charges the time to it, so its CPU-time limit stops it.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use guest_rt::caps::interfaces::console::{WRITE, WriteParams};
use guest_rt::caps::start::initial_capability;
use guest_rt::caps::{Interface, Message, Sqe};
use guest_rt::println;
use guest_rt::ring::{buffer, buffer_mut, with_ring};
use guest_rt::syscall::cap_enter;

guest_rt::entry!(main);

const BATCH: u32 = 256;
/// Newlines per write: the largest params message that fits 64 KiB.
const NEWLINES: usize = 65_000;

fn main() -> i32 {
    let mut params = Vec::new();
    WriteParams {
        text: vec![b'\n'; NEWLINES],
    }
    .encode_in_parts(65_536, |header, segment| {
        params.extend_from_slice(header);
        params.extend_from_slice(segment);
    })
    .expect("a 64 KiB write encodes");
    let console = initial_capability(Interface::Console).raw();
    let mut results = [0u8; 64];
    println!("flooding: {BATCH} writes of {NEWLINES} newlines per cap_enter");
    let mut batches = 0u64;
    loop {
        with_ring(|ring| {
            for n in 0..BATCH {
                let sqe = Sqe::call(
                    console,
                    WRITE,
                    buffer(&params),
                    buffer_mut(&mut results),
                    n as u64,
                );
                ring.submissions
                    .push(&sqe)
                    .expect("SQ has room for a batch");
            }
            cap_enter(BATCH, u64::MAX);
            while ring.completions.pop().is_some() {}
        });
        batches += 1;
        if batches.is_power_of_two() {
            println!("{batches} batches");
        }
    }
}
