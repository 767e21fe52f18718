//! What it checks: `caps::fuzzing::sqe_validator`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caps::fuzzing::sqe_validator(data));
