//! What it checks: `caps::fuzzing::ring_indices`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caps::fuzzing::ring_indices(data));
