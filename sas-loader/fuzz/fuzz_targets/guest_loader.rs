//! What it checks: `sas_loader::fuzzing::guest_loader`, with every byte
//! the loader asks the allocator for counted.
#![no_main]

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn requested(run: &mut dyn FnMut()) -> usize {
    let region = Region::new(ALLOCATOR);
    run();
    let change = region.change();
    change.bytes_allocated + change.bytes_reallocated.max(0) as usize
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| sas_loader::fuzzing::guest_loader(data, requested));
