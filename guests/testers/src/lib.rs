//! Shared by the test guests (each is a binary in src/bin).
#![no_std]

extern crate alloc;

use guest_rt::caps::interfaces::echo::{Echo, EchoParams};
use guest_rt::clients::connect;
use guest_rt::ring::call;

/// Asks the victim guest where its secret and its secret-reading function
/// are: `(secret address, function address)`.
pub fn victim_addresses() -> (u64, u64) {
    let victim = connect("victim", 200).expect("GuestControl.connect victim");
    let reply = call::<Echo>(
        victim,
        &EchoParams {
            data: b"where".to_vec(),
        },
    )
    .expect("victim answers");
    let word = |at: usize| u64::from_le_bytes(reply.data[at..at + 8].try_into().expect("16 bytes"));
    (word(0), word(8))
}
