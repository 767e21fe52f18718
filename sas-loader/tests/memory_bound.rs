//! What parsing, planning and loading a guest file may allocate is bounded
//! by the file: no relocation table, `.bss` or program header makes the
//! loader ask for memory beyond `bound(file.len())` (docs/security.md). The
//! allocator counts every byte asked for while the loader runs (one test in
//! this binary, so nothing else allocates meanwhile); the count is of all
//! bytes requested, an upper bound on what was held at once.
#![forbid(unsafe_code)]

use std::alloc::System;

use proptest::prelude::*;
use sas_loader::fuzzing::{CONFIG, loader_memory_bound as bound};
use sas_loader::testing::*;
use sas_loader::{GUEST_AREA_BASE, LoadError, load_segments, parse, plan};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes requested while parsing, planning and loading `file`, and whether
/// it loaded.
fn requested(file: &[u8]) -> (usize, Result<(), LoadError>) {
    let region = Region::new(ALLOCATOR);
    let outcome = parse(file).and_then(|elf| {
        let plan = plan(&elf, GUEST_AREA_BASE, &CONFIG)?;
        load_segments(&elf, &plan).map(drop)
    });
    let change = region.change();
    let bytes = change.bytes_allocated + change.bytes_reallocated.max(0) as usize;
    (bytes, outcome)
}

/// A guest whose `.data` is `bss` bytes, almost all zero fill (the test
/// builder's file places its tables after it, so the file is as large),
/// with `words`
/// DT_RELR bitmap words of all ones after one address in it: each word
/// relocates the next 63 words, all in the zero fill.
fn relr_bomb(bss: u64, words: usize) -> Vec<u8> {
    let mut guest = ElfBuilder::guest();
    let data: Vec<u8> = vec![0x11; 0x40];
    guest.segments[2] = Seg::load(PF_R | PF_W, 0x3000, &data).mem(bss);
    guest.rela.clear();
    guest.relr = std::iter::once(0x3040)
        .chain(std::iter::repeat_n(u64::MAX, words))
        .collect();
    guest.build()
}

fn check(file: &[u8]) -> Result<(), LoadError> {
    let (bytes, outcome) = requested(file);
    assert!(
        bytes <= bound(file.len()),
        "{bytes} bytes requested for a {}-byte file ({outcome:?})",
        file.len()
    );
    outcome
}

#[test]
fn loader_memory_is_bounded_by_the_file() {
    // A relocation bomb: 63 relocations per 8 file bytes, into a large
    // zero fill. Within the relocation limit it loads, beyond it it is
    // refused, and neither asks for more than the bound.
    assert_eq!(check(&relr_bomb(0x12_0000, 1000)), Ok(()));
    assert!(matches!(
        check(&relr_bomb(0x12_0000, 2000)),
        Err(LoadError::TooManyRelocations { .. })
    ));
    // A `.bss` bomb: 768 MiB of zero fill costs no buffer.
    let mut guest = ElfBuilder::guest();
    guest.segments[2] = Seg::load(PF_R | PF_W, 0x3000, &[0x22; 0x40]).mem(0x3000_0000);
    guest.rela.clear();
    let file = guest.build();
    assert!(file.len() < 1 << 16, "the zero fill is not in the file");
    let (bytes, outcome) = requested(&file);
    assert_eq!(outcome, Ok(()));
    assert!(bytes < 1 << 20, "{bytes} bytes for a large .bss");

    // And anything a mutation of a guest (with or without RELR) makes.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 1024,
        ..ProptestConfig::default()
    });
    let mutations = (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        any::<bool>(),
        0usize..64,
    );
    runner
        .run(&mutations, |(mutations, header_bias, relr_words)| {
            let mut file = relr_bomb(0x1800, relr_words);
            let span = if header_bias { phdr_at(6) } else { file.len() };
            for (at, value) in mutations {
                file[at.index(span)] = value;
            }
            let _ = check(&file);
            Ok(())
        })
        .unwrap();
}
