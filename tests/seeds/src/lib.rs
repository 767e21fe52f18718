//! The committed seeds of a fuzz target (`CRATE/fuzz/seeds/TARGET/`), in
//! file-name order, for the unit test of each crate that replays them
//! through the target's check: the seeds, crashes found by fuzzing among
//! them, are regression tests.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// Every seed of `target` under `crate_dir` (the crate's
/// `CARGO_MANIFEST_DIR`): its path and bytes. Panics when there are none.
pub fn read(crate_dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(crate_dir).join("fuzz/seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
        .into_iter()
        .map(|file| {
            let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            (file, bytes)
        })
        .collect()
}
