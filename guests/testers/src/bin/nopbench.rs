//! Ring round trips, for bench/: NOPs submitted in batches of 1 to 256 with
//! one `cap_enter` per batch, and a typed Cap'n Proto call to a nucleus
//! service (Timer.now). Prints min / median / p99 per operation, one line
//! per measurement (`testers::print_summary`).
//! Arguments: `[ROUNDS [ONLY]]`: rounds per measurement (default 2000), and
//! with ONLY (`nop:BATCH` or `timer-now`) just that measurement, as
//! bench/profile uses it.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use guest_rt::caps::Sqe;
use guest_rt::clients::{boot_info, start_info, timer_now};
use guest_rt::println;
use guest_rt::ring::with_ring;
use guest_rt::syscall::{cap_enter, cycles};

guest_rt::entry!(main);

const DEFAULT_ROUNDS: usize = 2000;
const WARM_UP_ROUNDS: usize = 100;
const BATCHES: [u32; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// Cycles for `batch` NOPs submitted and completed with one `cap_enter`.
fn nop_round(batch: u32) -> u64 {
    with_ring(|ring| {
        let start = cycles();
        for _ in 0..batch {
            ring.submissions
                .push(&Sqe::nop(0))
                .expect("SQ has room for a batch");
        }
        let ready = cap_enter(batch, u64::MAX);
        let mut completed = 0;
        while ring.completions.pop().is_some() {
            completed += 1;
        }
        let end = cycles();
        assert!(
            ready >= batch as i64 && completed == batch,
            "lost completions"
        );
        end - start
    })
}

/// Cycles for one Timer.now call: encode, submit, `cap_enter`, decode.
fn timer_round() -> u64 {
    let start = cycles();
    timer_now().expect("Timer.now");
    cycles() - start
}

/// Runs `round` (which does `batch` operations) and prints the summary.
fn report(name: &str, batch: u32, rounds: usize, hz: u64, mut round: impl FnMut() -> u64) {
    for _ in 0..WARM_UP_ROUNDS {
        round();
    }
    let mut samples: Vec<u64> = (0..rounds).map(|_| round() / batch as u64).collect();
    testers::print_summary(name, batch, &mut samples, hz);
}

fn main() -> i32 {
    let hz = boot_info().expect("BootInfo.get").tsc_hz;
    let args = start_info().map(|info| info.args).unwrap_or_default();
    let Some(rounds) = testers::rounds_argument(&args, DEFAULT_ROUNDS) else {
        return 2;
    };
    let only = args.get(1).map(|a| a.as_str());
    println!("tsc {hz} Hz, {rounds} rounds per measurement");
    let mut measured = false;
    for batch in BATCHES {
        if only.is_none_or(|o| o.strip_prefix("nop:").and_then(|b| b.parse().ok()) == Some(batch)) {
            report("nop", batch, rounds, hz, || nop_round(batch));
            measured = true;
        }
    }
    if only.is_none_or(|o| o == "timer-now") {
        report("timer-now", 1, rounds, hz, timer_round);
        measured = true;
    }
    if !measured {
        println!(
            "no measurement '{}': expected nop:N (N one of {BATCHES:?}) or timer-now",
            only.unwrap_or_default()
        );
        return 2;
    }
    0
}
