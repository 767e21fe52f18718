//! Shared by the test guests (each is a binary in src/bin).
#![no_std]

extern crate alloc;

use guest_rt::caps::interfaces::echo::{Echo, EchoParams};
use guest_rt::clients::connect;
use guest_rt::println;
use guest_rt::ring::call;

/// Where the victim guest keeps its secrets, as it tells its callers.
pub struct VictimSecrets {
    /// One word.
    pub secret: u64,
    /// A function that reads it.
    pub read_secret: u64,
    /// A run of bytes of a known pattern, and its length.
    pub treasure: u64,
    pub treasure_len: u64,
}

/// Asks the victim guest where its secrets are.
pub fn victim_secrets() -> VictimSecrets {
    let victim = connect("victim", 200).expect("GuestControl.connect victim");
    let reply = call::<Echo>(
        victim,
        &EchoParams {
            data: b"where".to_vec(),
        },
    )
    .expect("victim answers");
    let word = |at: usize| u64::from_le_bytes(reply.data[at..at + 8].try_into().expect("32 bytes"));
    VictimSecrets {
        secret: word(0),
        read_secret: word(8),
        treasure: word(16),
        treasure_len: word(24),
    }
}

/// `(secret address, function address)` of the victim guest.
pub fn victim_addresses() -> (u64, u64) {
    let secrets = victim_secrets();
    (secrets.secret, secrets.read_secret)
}

/// The rounds a benchmark guest measures: its first argument, else
/// `default`. `None` (after saying why) when the argument is not a number
/// from 1.
pub fn rounds_argument(args: &[alloc::string::String], default: usize) -> Option<usize> {
    match args.first().map(|a| a.parse::<usize>()) {
        None => Some(default),
        Some(Ok(n)) if n >= 1 => Some(n),
        Some(_) => {
            println!("bad ROUNDS '{}': expected a number from 1", args[0]);
            None
        }
    }
}

/// Prints min / median / p99 of `samples` (cycles per operation) in cycles
/// and nanoseconds, in the one line format bench/report reads:
/// `NAME batch=B: min C cycles (N ns), median C cycles (N ns), p99 C cycles (N ns)`.
pub fn print_summary(name: &str, batch: u32, samples: &mut [u64], tsc_hz: u64) {
    samples.sort_unstable();
    let n = samples.len();
    let ns = |cycles: u64| cycles * 1_000_000_000 / tsc_hz;
    let (min, median, p99) = (samples[0], samples[n / 2], samples[n * 99 / 100]);
    println!(
        "{name} batch={batch}: min {min} cycles ({} ns), median {median} cycles ({} ns), p99 {p99} cycles ({} ns)",
        ns(min),
        ns(median),
        ns(p99)
    );
}

/// What the hoarder's "leaver" sends to the sink before it exits: the sink
/// counts the calls it takes that carry it (the nucleus must have dropped
/// them all).
pub const LEAVER_DATA: &[u8] = b"from a guest that left";
