//! Properties of the whole pipeline: no input makes it panic, and every plan
//! it produces keeps the rules the nucleus relies on.

extern crate std;

use crate::{testing::*, *};
use alloc::vec::Vec;
use proptest::prelude::*;

/// What every plan must satisfy, whatever the guest.
fn check_plan(elf: &GuestElf<'_>, plan: &MappingPlan, config: &PlanConfig) {
    let gap_start = plan.slot.start..plan.slot.start + SLOT_GAP;
    let gap_end = plan.slot.end - SLOT_GAP..plan.slot.end;
    let mut previous_end = plan.slot.start;
    for m in &plan.mappings {
        assert!(m.pages > 0);
        assert_eq!(m.start % PAGE_SIZE, 0, "{m:?}");
        assert!(m.start >= previous_end, "sorted and disjoint: {m:?}");
        previous_end = m.end();
        assert!(
            m.start >= gap_start.end && m.end() <= gap_end.start,
            "{m:?} in a slot gap"
        );
        // W^X holds by construction; say so where it matters.
        assert!(!(m.permission.is_writable() && m.permission.is_executable()));
        for guard in &plan.guards {
            assert!(
                m.end() <= guard.start || guard.end <= m.start,
                "{m:?} maps guard {guard:x?}"
            );
        }
    }
    assert!(plan.guards.contains(&(plan.slot.start..plan.image_base)));
    for guard in &plan.guards {
        assert!(guard.start % PAGE_SIZE == 0 && guard.end % PAGE_SIZE == 0);
        assert!(plan.slot.start <= guard.start && guard.end <= plan.slot.end);
    }
    // The regions are mapped read-write, zero-filled, exactly.
    for (region, bytes) in [
        (&plan.heap, config.heap_bytes),
        (&plan.ring, config.ring_bytes),
        (&plan.stack, config.stack_bytes),
    ] {
        assert_eq!(region.end - region.start, bytes);
        if bytes > 0 {
            assert!(plan.mappings.iter().any(|m| m.range() == *region
                && m.permission == Permission::ReadWrite
                && m.contents == Contents::Zero));
        }
        assert!(
            plan.guards
                .contains(&(region.start - PAGE_SIZE..region.start)),
            "guard page below {region:x?}"
        );
    }
    assert_eq!(plan.stack_top, plan.stack.end);
    assert!(plan.image.end <= plan.heap.start);
    let entry = plan
        .mappings
        .iter()
        .find(|m| m.range().contains(&plan.entry))
        .expect("entry is mapped");
    assert_eq!(entry.permission, Permission::ReadExecute);
    assert_eq!(plan.entry, plan.image_base + elf.entry());
}

/// Loads `elf` in slot 0 and checks everything it can.
fn plan_and_load(elf: &GuestElf<'_>, config: &PlanConfig) {
    let Ok(plan) = plan(elf, GUEST_AREA_BASE, config) else {
        return;
    };
    check_plan(elf, &plan, config);
    let loaded = load_segments(elf, &plan).expect("a plan made for the guest loads");
    assert_eq!(loaded.len(), plan.image_mappings().count());
    for (segment, mapping) in loaded.iter().zip(plan.image_mappings()) {
        assert_eq!(segment.start, mapping.start);
        assert!(segment.initialized.len() as u64 <= mapping.pages * PAGE_SIZE);
    }
}

const SMALL_CONFIG: PlanConfig = PlanConfig {
    stack_bytes: 4 * PAGE_SIZE,
    heap_bytes: PAGE_SIZE,
    ring_bytes: PAGE_SIZE,
};

/// A random guest that must be accepted: segments on their own pages
/// (starting anywhere in the first page, as lld places them), code of nops
/// and rets, relocations into data.
#[derive(Debug, Clone)]
struct GuestSpec {
    /// `(permission 0..3, gap pages before, start within page, file bytes, extra zero fill)`
    segments: Vec<(u8, u64, u64, u64, u64)>,
    /// Picks targets among the data segments' 8-byte slots.
    relocations: Vec<(prop::sample::Index, i64)>,
    relr: bool,
    config: PlanConfig,
}

fn guest_spec() -> impl Strategy<Value = GuestSpec> {
    let segment = (0u8..3, 0u64..3, 0u64..0x1000, 1u64..0x2400, 0u64..0x3000);
    let pages = |max: u64| (0u64..max).prop_map(|p| p * PAGE_SIZE);
    (
        proptest::collection::vec(segment, 1..6),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<i64>()), 0..16),
        any::<bool>(),
        (1u64..64, pages(512), pages(16)),
    )
        .prop_map(
            |(segments, relocations, relr, (stack, heap, ring))| GuestSpec {
                segments,
                relocations,
                relr,
                config: PlanConfig {
                    stack_bytes: stack * PAGE_SIZE,
                    heap_bytes: heap,
                    ring_bytes: ring,
                },
            },
        )
}

/// A built spec and what the test needs to check the loaded result.
struct Built {
    builder: ElfBuilder,
    /// `(offset, addend)` of every relocation.
    relocations: Vec<(u64, i64)>,
    /// Each segment's `(vaddr, file bytes)`.
    contents: Vec<(u64, Vec<u8>)>,
}

fn build_spec(spec: &GuestSpec) -> Built {
    let mut b = ElfBuilder::empty();
    let mut page = 1;
    let mut slots = Vec::new();
    let mut contents = Vec::new();
    let mut specs = spec.segments.clone();
    if !specs.iter().any(|s| s.0 == 2) {
        specs.push((2, 0, 0, 16, 0));
    }
    for (i, &(kind, gap, start, size, extra)) in specs.iter().enumerate() {
        page += gap;
        let at = page * PAGE_SIZE + start;
        let (flags, data, extra) = match kind {
            0 => (
                PF_R,
                (0..size)
                    .map(|j| (j * 7 + i as u64) as u8)
                    .collect::<Vec<u8>>(),
                extra,
            ),
            1 => (
                PF_R | PF_W,
                (0..size).map(|j| (j * 13) as u8).collect(),
                extra,
            ),
            // Code: nops, a ret at the end; no zero fill.
            _ => (
                PF_R | PF_X,
                (0..size)
                    .map(|j| if j + 1 == size { 0xc3 } else { 0x90 })
                    .collect(),
                0,
            ),
        };
        if kind == 2 && b.entry == 0 {
            b.entry = at;
        }
        if kind != 2 {
            let first = at.next_multiple_of(8);
            slots.extend((first..at + size + extra - 7).step_by(8));
        }
        contents.push((at, data.clone()));
        b.segments
            .push(Seg::load(flags, at, &data).mem(size + extra));
        page = (at + size + extra).div_ceil(PAGE_SIZE);
    }
    let mut relocations: Vec<(u64, i64)> = Vec::new();
    if !slots.is_empty() {
        for (index, addend) in &spec.relocations {
            let offset = slots[index.index(slots.len())];
            if relocations.iter().all(|r| r.0 != offset) {
                relocations.push((offset, *addend));
            }
        }
    }
    if spec.relr {
        b.relr = relocations.iter().map(|r| r.0).collect();
        b.relr.sort_unstable();
    } else {
        b.rela = relocations
            .iter()
            .map(|&(o, a)| (o, R_X86_64_RELATIVE, a))
            .collect();
    }
    Built {
        builder: b,
        relocations,
        contents,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes never make the loader panic.
    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(elf) = parse(&bytes) {
            plan_and_load(&elf, &SMALL_CONFIG);
        }
    }

    /// Arbitrary bytes behind a valid ELF header get further into the parser.
    #[test]
    fn arbitrary_program_headers_do_not_panic(tail in proptest::collection::vec(any::<u8>(), 0..1024), phnum in 0u16..12) {
        let mut file = ElfBuilder::empty().build();
        put16(&mut file, 56, phnum);
        file.extend_from_slice(&tail);
        if let Ok(elf) = parse(&file) {
            plan_and_load(&elf, &SMALL_CONFIG);
        }
    }

    /// Randomly mutated valid guests are refused or loaded, never a panic,
    /// and what is loaded keeps every rule.
    #[test]
    fn mutated_guests_do_not_panic(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        header_bias in any::<bool>(),
        relr in any::<bool>(),
    ) {
        let mut b = ElfBuilder::guest();
        if relr {
            b.relr = Vec::from([0x3010, 0b111]);
        }
        let mut file = b.build();
        // Half the time aim at the headers, where most decisions are made.
        let span = if header_bias { phdr_at(6) } else { file.len() };
        for (at, value) in mutations {
            let at = at.index(span);
            file[at] = value;
        }
        match parse(&file) {
            Ok(elf) => plan_and_load(&elf, &SMALL_CONFIG),
            Err(e) => prop_assert!(!alloc::string::ToString::to_string(&e).is_empty()),
        }
    }

    /// Random well-formed guests are accepted, planned by the rules, and
    /// loaded with their file bytes in place and every relocation applied.
    #[test]
    fn valid_guests_load_by_the_rules(spec in guest_spec(), slot in 0usize..MAX_GUEST_SLOTS) {
        let Built { builder, relocations, contents } = build_spec(&spec);
        let file = builder.build();
        let elf = match parse(&file) {
            Ok(elf) => elf,
            Err(e) => return Err(TestCaseError::fail(alloc::format!("refused: {e}"))),
        };
        let plan = plan(&elf, slot_base(slot).unwrap(), &spec.config).unwrap();
        check_plan(&elf, &plan, &spec.config);
        let loaded = load_segments(&elf, &plan).unwrap();
        let byte_at = |vaddr: u64| -> u8 {
            let address = plan.image_base + vaddr;
            let i = plan.image_mappings().position(|m| m.range().contains(&address)).expect("mapped");
            loaded[i].byte(address - loaded[i].start)
        };
        let relocated = |vaddr: u64| relocations.iter().any(|&(o, _)| (o..o + 8).contains(&vaddr));
        for (vaddr, data) in &contents {
            for (k, &byte) in data.iter().enumerate() {
                let at = vaddr + k as u64;
                if !relocated(at) {
                    prop_assert_eq!(byte_at(at), byte, "byte at {:#x}", at);
                }
            }
        }
        for &(offset, addend) in &relocations {
            let value = u64::from_le_bytes(core::array::from_fn(|k| byte_at(offset + k as u64)));
            let expected = if spec.relr {
                // The stored value is the addend: the file's bytes or zero fill.
                let stored = u64::from_le_bytes(core::array::from_fn(|k| {
                    let at = offset + k as u64;
                    contents.iter().find_map(|(v, d)| d.get(at.checked_sub(*v)? as usize).copied()).unwrap_or(0)
                }));
                plan.image_base.wrapping_add(stored)
            } else {
                plan.image_base.wrapping_add_signed(addend)
            };
            prop_assert_eq!(value, expected, "relocation at {:#x}", offset);
        }
    }
}
