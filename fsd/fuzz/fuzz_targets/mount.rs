//! What it checks: `fsd::fuzzing::mount`, the undamaged volume made once.
#![no_main]

use std::sync::OnceLock;

static PRISTINE: OnceLock<Vec<u8>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|damage: &[u8]| {
    fsd::fuzzing::mount(PRISTINE.get_or_init(fsd::fuzzing::pristine_volume), damage)
});
