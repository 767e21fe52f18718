//! Holds secrets and tells the attack guests where they are (through its
//! "victim" endpoint): one word and a function that reads it, and 4 KiB of
//! a known pattern. After its attackers (the first argument says how many,
//! default 3) have asked and had time to attack, it checks that the word
//! and every byte of the pattern (by hash) are unchanged.
#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

use guest_rt::caps::interfaces::echo::EchoResults;
use guest_rt::clients::{Server, serve, start_info, timer_sleep};
use guest_rt::println;

guest_rt::entry!(main);

const SECRET_VALUE: u64 = 0x5ec2_e75e_c2e7_5ec2;
static SECRET: AtomicU64 = AtomicU64::new(SECRET_VALUE);

/// 4 KiB the nucleus must never read or write for another guest.
const TREASURE_WORDS: usize = 512;
static TREASURE: [AtomicU64; TREASURE_WORDS] = [const { AtomicU64::new(0) }; TREASURE_WORDS];

fn pattern(index: usize) -> u64 {
    (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// FNV-1a over the treasure's bytes.
fn treasure_hash() -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for word in &TREASURE {
        for byte in word.load(Ordering::Relaxed).to_le_bytes() {
            hash = (hash ^ byte as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    hash
}

/// Reads the secret: what the jumping attacker executes.
#[inline(never)]
extern "C" fn read_secret() -> u64 {
    SECRET.load(Ordering::Relaxed)
}

fn main() -> i32 {
    let attackers = start_info()
        .ok()
        .and_then(|info| info.args.first().and_then(|a| a.parse().ok()))
        .unwrap_or(3);
    for (index, word) in TREASURE.iter().enumerate() {
        word.store(pattern(index), Ordering::Relaxed);
    }
    let expected = treasure_hash();
    let mut server = Server::new(serve("victim").expect("GuestControl.serve"));
    let mut where_ = alloc::vec::Vec::new();
    for value in [
        SECRET.as_ptr() as u64,
        read_secret as *const () as u64,
        TREASURE.as_ptr() as u64,
        (TREASURE_WORDS * 8) as u64,
    ] {
        where_.extend_from_slice(&value.to_le_bytes());
    }
    println!("secret at {:#x}", SECRET.as_ptr() as u64);
    for _ in 0..attackers {
        let token = server.receive().expect("RECV").token;
        server
            .reply(
                token,
                &EchoResults {
                    data: where_.clone(),
                },
            )
            .expect("RETURN");
    }
    timer_sleep(300_000_000).expect("Timer.sleep");
    if read_secret() == SECRET_VALUE && treasure_hash() == expected {
        println!("secret intact");
        0
    } else {
        println!("secret CHANGED");
        1
    }
}
