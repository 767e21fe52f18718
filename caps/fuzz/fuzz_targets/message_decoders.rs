//! What it checks: `caps::fuzzing::message_decoders`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| caps::fuzzing::message_decoders(data));
