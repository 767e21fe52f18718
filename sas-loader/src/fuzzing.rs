//! What the fuzz targets in `sas-loader/fuzz` check, as functions of the
//! fuzzer's bytes, so that the committed seeds (`sas-loader/fuzz/seeds/`)
//! run as ordinary tests too (`tests/fuzz_seeds.rs`).
//!
//! - `guest_loader`: the input as a guest file, parsed, planned and loaded
//!   within the memory bound of docs/security.md; what loads is laid out
//!   inside its slot clear of the guard pages, its bytes are the file's
//!   with every relocation applied, and no executable byte sequence is a
//!   forbidden instruction.
//! - `forbidden_scan`: the input as code; the scan reports the first
//!   forbidden instruction at any byte offset, as a plain matcher of the
//!   documented encodings does.

use alloc::vec::Vec;

use crate::{
    Forbidden, GUEST_AREA_BASE, GuestElf, LoadedSegment, MappingPlan, PAGE_SIZE, PlanConfig,
    SLOT_GAP, load_segments, parse, plan, scan_forbidden,
};

/// The regions every guest of the target gets.
pub const CONFIG: PlanConfig = PlanConfig {
    stack_bytes: 4 * PAGE_SIZE,
    heap_bytes: PAGE_SIZE,
    ring_bytes: PAGE_SIZE,
};

/// What parsing, planning and loading a file of `file_len` bytes may ask
/// the allocator for, in all: the file's bytes a few times over (the
/// image's initialized bytes, the parsed tables) and, for relocations (at
/// most 65,536: 16 bytes each, plus up to 8 patched bytes each at 16
/// bytes when they land in zero fill, vectors growing by doubling),
/// 24 MiB.
pub const fn loader_memory_bound(file_len: usize) -> usize {
    4 * file_len + (24 << 20)
}

/// `measure` runs what it is given and returns the bytes the allocator
/// was asked for meanwhile (the caller's global allocator counts them).
pub fn guest_loader(file: &[u8], measure: impl FnOnce(&mut dyn FnMut()) -> usize) {
    let mut outcome = None;
    let requested = measure(&mut || {
        outcome = Some(parse(file).and_then(|elf| {
            let plan = plan(&elf, GUEST_AREA_BASE, &CONFIG)?;
            let loaded = load_segments(&elf, &plan)?;
            Ok((elf, plan, loaded))
        }));
    });
    let outcome = outcome.expect("measure runs the loader");
    assert!(
        requested <= loader_memory_bound(file.len()),
        "{requested} bytes requested for a {}-byte file ({:?})",
        file.len(),
        outcome.as_ref().err()
    );
    if let Ok((elf, plan, loaded)) = outcome {
        check_elf(&elf);
        check_plan(&elf, &plan);
        check_bytes(&elf, &plan, &loaded);
    }
}

fn check_elf(elf: &GuestElf<'_>) {
    let segments = elf.segments();
    assert!(!segments.is_empty());
    for pair in segments.windows(2) {
        assert!(pair[0].mem_end() <= pair[1].vaddr, "segments overlap");
    }
    for s in segments {
        assert!(s.mem_size > 0 && s.file_size <= s.mem_size);
        assert!(s.file_offset + s.file_size <= elf.file().len() as u64);
    }
    for pair in elf.runs().windows(2) {
        assert!(pair[0].end() <= pair[1].offset, "runs overlap");
    }
    for run in elf.runs() {
        assert!(run.pages > 0 && run.offset.is_multiple_of(PAGE_SIZE));
        assert!(run.end() <= elf.image_size());
    }
    for pair in elf.relocations().windows(2) {
        assert!(pair[0].offset + 8 <= pair[1].offset, "relocations overlap");
    }
}

/// Every mapping lies in the slot, clear of the gaps and guard pages and
/// of each other, and the entry point is in code.
fn check_plan(elf: &GuestElf<'_>, plan: &MappingPlan) {
    let slot = &plan.slot;
    assert_eq!(slot.start, GUEST_AREA_BASE);
    for pair in plan.mappings.windows(2) {
        assert!(pair[0].end() <= pair[1].start, "mappings overlap");
    }
    for mapping in &plan.mappings {
        assert!(mapping.pages > 0 && mapping.start.is_multiple_of(PAGE_SIZE));
        assert!(slot.start + SLOT_GAP <= mapping.start && mapping.end() <= slot.end - SLOT_GAP);
        for guard in &plan.guards {
            assert!(
                mapping.end() <= guard.start || guard.end <= mapping.start,
                "{mapping:x?} maps guard {guard:x?}"
            );
        }
    }
    assert_eq!(plan.entry, plan.image_base + elf.entry());
    assert!(
        plan.mappings
            .iter()
            .any(|m| m.permission.is_executable() && m.range().contains(&plan.entry))
    );
    assert!(plan.stack_top == plan.stack.end && plan.stack_top.is_multiple_of(16));
}

/// What the byte at image offset `at` must be once loaded: a relocation's
/// byte, else the file's byte, else zero.
fn expected_byte(elf: &GuestElf<'_>, base: u64, at: u64) -> u8 {
    let relocations = elf.relocations();
    let after = relocations.partition_point(|r| r.offset <= at);
    if let Some(r) = after.checked_sub(1).map(|i| relocations[i])
        && at < r.offset + 8
    {
        return base.wrapping_add_signed(r.addend).to_le_bytes()[(at - r.offset) as usize];
    }
    let segments = elf.segments();
    let after = segments.partition_point(|s| s.vaddr <= at);
    after
        .checked_sub(1)
        .map(|i| &segments[i])
        .filter(|s| at < s.vaddr + s.file_size)
        .map_or(0, |s| elf.file()[(s.file_offset + at - s.vaddr) as usize])
}

fn check_bytes(elf: &GuestElf<'_>, plan: &MappingPlan, loaded: &[LoadedSegment]) {
    let base = plan.image_base;
    assert_eq!(loaded.len(), elf.runs().len());
    for (segment, run) in loaded.iter().zip(elf.runs()) {
        let size = segment.pages * PAGE_SIZE;
        assert_eq!(segment.start, base + run.offset);
        assert!(segment.initialized.len() as u64 <= size);
        for (offset, byte) in segment.initialized.iter().enumerate() {
            let at = run.offset + offset as u64;
            assert_eq!(*byte, expected_byte(elf, base, at), "byte at {at:#x}");
        }
        for pair in segment.patches.windows(2) {
            assert!(pair[0].0 < pair[1].0, "patches in order, once each");
        }
        for &(offset, byte) in &segment.patches {
            assert!(segment.initialized.len() as u64 <= offset && offset < size);
            assert_eq!(byte, expected_byte(elf, base, run.offset + offset));
        }
        if segment.permission.is_executable() {
            assert!(segment.patches.is_empty(), "code is never patched");
        }
    }
    // Every relocation is in the loaded bytes.
    for relocation in elf.relocations() {
        let value = base.wrapping_add_signed(relocation.addend).to_le_bytes();
        for (k, byte) in value.into_iter().enumerate() {
            let at = base + relocation.offset + k as u64;
            let after = loaded.partition_point(|s| s.start <= at);
            if let Some(segment) = after
                .checked_sub(1)
                .map(|i| &loaded[i])
                .filter(|s| at < s.start + s.pages * PAGE_SIZE)
            {
                assert_eq!(segment.byte(at - segment.start), byte);
            }
        }
    }
    // No forbidden instruction in code, within a mapping or across two
    // adjacent ones (zero fill ends every pattern: their bytes are not 0).
    let code: Vec<&LoadedSegment> = loaded
        .iter()
        .filter(|s| s.permission.is_executable())
        .collect();
    for (i, segment) in code.iter().enumerate() {
        assert_eq!(
            first_match(&segment.initialized),
            None,
            "code at {:#x}",
            segment.start
        );
        let full = segment.initialized.len() as u64 == segment.pages * PAGE_SIZE;
        if let Some(next) = code.get(i + 1)
            && full
            && next.start == segment.start + segment.pages * PAGE_SIZE
        {
            let tail = &segment.initialized[segment.initialized.len() - 3..];
            let mut seam: Vec<u8> = tail.to_vec();
            seam.extend(next.initialized.iter().take(3));
            assert_eq!(first_match(&seam), None, "code at {:#x}", next.start);
        }
    }
}

/// The forbidden instruction starting at `bytes[0]`, if any, read off the
/// documented encodings (see `Forbidden`): WRPKRU is `0F 01 EF`; XRSTOR
/// `0F AE /5` and XRSTORS `0F C7 /3` with a memory operand (ModRM mod not
/// 11), the 64-bit forms behind a REX prefix with W set.
fn forbidden_at(bytes: &[u8]) -> Option<Forbidden> {
    let memory_reg = |modrm: u8, reg: u8| modrm < 0b1100_0000 && (modrm >> 3) & 7 == reg;
    match *bytes {
        [0x0f, 0x01, 0xef, ..] => Some(Forbidden::Wrpkru),
        [0x0f, 0xae, m, ..] if memory_reg(m, 5) => Some(Forbidden::Xrstor),
        [0x0f, 0xc7, m, ..] if memory_reg(m, 3) => Some(Forbidden::Xrstors),
        [0x48..=0x4f, 0x0f, 0xae, m, ..] if memory_reg(m, 5) => Some(Forbidden::Xrstor64),
        [0x48..=0x4f, 0x0f, 0xc7, m, ..] if memory_reg(m, 3) => Some(Forbidden::Xrstors64),
        _ => None,
    }
}

fn first_match(bytes: &[u8]) -> Option<(usize, Forbidden)> {
    (0..bytes.len()).find_map(|at| forbidden_at(&bytes[at..]).map(|kind| (at, kind)))
}

pub fn forbidden_scan(bytes: &[u8]) {
    let found = scan_forbidden(bytes);
    assert_eq!(found, first_match(bytes));
    // Behind bytes that start nothing, the same instruction, that much later.
    let mut shifted = Vec::from([0x90u8; 5]);
    shifted.extend_from_slice(bytes);
    assert_eq!(
        scan_forbidden(&shifted),
        found.map(|(at, kind)| (at + 5, kind))
    );
    // Whatever follows it, the first one stays the first.
    if let Some((at, kind)) = found {
        let cut = &bytes[..(at + 4).min(bytes.len())];
        assert_eq!(scan_forbidden(cut), Some((at, kind)));
    }
}
