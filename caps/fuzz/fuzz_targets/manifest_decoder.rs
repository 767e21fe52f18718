//! Arbitrary bytes as a boot manifest: the decoder accepts a manifest that
//! re-encodes to itself, or names a field, never panics.
#![no_main]

use caps::manifest;
use libfuzzer_sys::fuzz_target;

const MODULES: &[&str] = &["hello", "wasm", "tree", manifest::MODULE_NAME];

fuzz_target!(|data: &[u8]| {
    match manifest::decode(data, MODULES) {
        Ok(decoded) => {
            let again = manifest::decode(&manifest::encode(&decoded), MODULES);
            assert_eq!(again.as_ref(), Ok(&decoded));
        }
        Err(error) => assert!(!error.field.is_empty()),
    }
});
