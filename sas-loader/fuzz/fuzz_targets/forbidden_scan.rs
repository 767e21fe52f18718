//! What it checks: `sas_loader::fuzzing::forbidden_scan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sas_loader::fuzzing::forbidden_scan(data));
