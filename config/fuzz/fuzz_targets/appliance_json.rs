//! What it checks: `appliance::fuzzing::appliance_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| appliance::fuzzing::appliance_json(data));
