//! Every committed seed of the fuzz targets (`fuzz/seeds/TARGET/`) passes
//! the check its target makes: the seeds, crashes found by fuzzing among
//! them, are regression tests. One test in this binary, so the allocator
//! counts only the loader's requests.
#![forbid(unsafe_code)]

use std::alloc::System;

use sas_loader::fuzzing::{forbidden_scan, guest_loader};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes requested while `run` runs.
fn requested(run: &mut dyn FnMut()) -> usize {
    let region = Region::new(ALLOCATOR);
    run();
    let change = region.change();
    change.bytes_allocated + change.bytes_reallocated.max(0) as usize
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    fuzz_seeds::read(env!("CARGO_MANIFEST_DIR"), target)
        .into_iter()
        .map(|(file, bytes)| (file.display().to_string(), bytes))
        .collect()
}

#[test]
fn every_committed_seed_passes() {
    for (name, bytes) in seeds("guest_loader") {
        eprintln!("{name}");
        guest_loader(&bytes, requested);
    }
    for (name, bytes) in seeds("forbidden_scan") {
        eprintln!("{name}");
        forbidden_scan(&bytes);
    }
}
