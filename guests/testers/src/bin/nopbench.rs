//! Ring NOP round trips: one SQE per `cap_enter`, and batches of 32.
//! Prints min / median / p99 in TSC cycles and nanoseconds.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use guest_rt::caps::Sqe;
use guest_rt::clients::boot_info;
use guest_rt::println;
use guest_rt::ring::with_ring;
use guest_rt::syscall::cap_enter;

guest_rt::entry!(main);

const ROUNDS: usize = 2000;

use guest_rt::syscall::cycles as tsc;

/// Cycles for `batch` NOPs submitted and completed with one `cap_enter`.
fn round(batch: u32) -> u64 {
    with_ring(|ring| {
        let start = tsc();
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
        let end = tsc();
        assert!(
            ready >= batch as i64 && completed == batch,
            "lost completions"
        );
        end - start
    })
}

fn report(name: &str, batch: u32, hz: u64) {
    for _ in 0..100 {
        round(batch); // warm up
    }
    let mut samples: Vec<u64> = (0..ROUNDS).map(|_| round(batch)).collect();
    samples.sort_unstable();
    let per_op = |cycles: u64| cycles / batch as u64;
    let ns = |cycles: u64| cycles * 1_000_000_000 / hz;
    let (min, median, p99) = (samples[0], samples[ROUNDS / 2], samples[ROUNDS * 99 / 100]);
    println!(
        "{name}: per operation min {} cycles ({} ns), median {} cycles ({} ns), p99 {} cycles ({} ns)",
        per_op(min),
        ns(per_op(min)),
        per_op(median),
        ns(per_op(median)),
        per_op(p99),
        ns(per_op(p99))
    );
}

fn main() -> i32 {
    let hz = boot_info().expect("BootInfo.get").tsc_hz;
    report("nop round trip, batch 1", 1, hz);
    report("nop round trip, batch 32", 32, hz);
    0
}
