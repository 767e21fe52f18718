//! What it checks: `wasm_host::fuzzing::ustar_tree`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasm_host::fuzzing::ustar_tree(data));
