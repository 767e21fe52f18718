//! What it checks: `caps::fuzzing::manifest_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caps::fuzzing::manifest_decoder(data));
