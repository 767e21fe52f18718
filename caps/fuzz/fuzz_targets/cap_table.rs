//! What it checks: `caps::fuzzing::cap_table`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caps::fuzzing::cap_table(data));
