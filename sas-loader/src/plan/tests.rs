use super::*;
use crate::{
    GUEST_AREA_BASE, GUEST_AREA_END, GuestSlots, MAX_GUEST_SLOTS, parse, slot_base, testing::*,
};
use alloc::vec;

const CONFIG: PlanConfig = PlanConfig {
    stack_bytes: 64 << 10,
    heap_bytes: 1 << 20,
    ring_bytes: 2 * PAGE_SIZE,
};

fn mapping(start: u64, pages: u64, permission: Permission, contents: Contents) -> Mapping {
    Mapping {
        start,
        pages,
        permission,
        contents,
    }
}

fn u64_at(segment: &LoadedSegment, offset: u64) -> u64 {
    u64::from_le_bytes(core::array::from_fn(|k| segment.byte(offset + k as u64)))
}

#[test]
fn lays_out_a_guest_in_its_slot() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    let mut slots = GuestSlots::new();
    let (_, base) = slots.allocate().unwrap();
    let p = plan(&guest, base, &CONFIG).unwrap();
    let image = base + SLOT_GAP;
    assert_eq!(p.slot, base..base + SLOT_SIZE);
    assert_eq!(p.image_base, image);
    assert_eq!(p.image, image..image + 0x6000);
    assert_eq!(p.entry, image + 0x2000);
    assert_eq!(p.heap, image + 0x7000..image + 0x10_7000);
    assert_eq!(p.ring, image + 0x10_8000..image + 0x10_a000);
    assert_eq!(p.stack, image + 0x10_b000..image + 0x11_b000);
    assert_eq!(p.stack_top, image + 0x11_b000);
    use Permission::*;
    assert_eq!(
        p.mappings,
        [
            mapping(image + 0x1000, 1, Read, Contents::Image { loaded: 0 }),
            mapping(
                image + 0x2000,
                1,
                ReadExecute,
                Contents::Image { loaded: 1 }
            ),
            mapping(image + 0x3000, 2, ReadWrite, Contents::Image { loaded: 2 }),
            mapping(image + 0x5000, 1, Read, Contents::Image { loaded: 3 }),
            mapping(image + 0x7000, 256, ReadWrite, Contents::Zero),
            mapping(image + 0x10_8000, 2, ReadWrite, Contents::Zero),
            mapping(image + 0x10_b000, 16, ReadWrite, Contents::Zero),
        ]
    );
    assert_eq!(
        p.guards,
        [
            base..image,
            image + 0x6000..image + 0x7000,
            image + 0x10_7000..image + 0x10_8000,
            image + 0x10_a000..image + 0x10_b000,
            image + 0x11_b000..base + SLOT_SIZE,
        ]
    );
    assert_eq!(p.image_mappings().count(), 4);
}

#[test]
fn empty_heap_and_ring_keep_their_guards() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    let config = PlanConfig {
        heap_bytes: 0,
        ring_bytes: 0,
        ..CONFIG
    };
    let p = plan(&guest, GUEST_AREA_BASE, &config).unwrap();
    assert!(p.heap.is_empty() && p.ring.is_empty());
    assert_eq!(p.mappings.len(), 5);
    assert_eq!(p.guards.len(), 5);
    assert_eq!(p.stack.start, p.image.end + 3 * PAGE_SIZE);
}

#[test]
fn refuses_bad_region_sizes() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    let cases = [
        (
            PlanConfig {
                stack_bytes: 0,
                ..CONFIG
            },
            "stack",
            0,
        ),
        (
            PlanConfig {
                stack_bytes: 100,
                ..CONFIG
            },
            "stack",
            100,
        ),
        (
            PlanConfig {
                heap_bytes: 4097,
                ..CONFIG
            },
            "heap",
            4097,
        ),
        (
            PlanConfig {
                ring_bytes: 1,
                ..CONFIG
            },
            "ring",
            1,
        ),
    ];
    for (config, region, bytes) in cases {
        let e = plan(&guest, GUEST_AREA_BASE, &config).unwrap_err();
        assert_eq!(e, LoadError::BadRegionSize { region, bytes });
    }
    let e = plan(
        &guest,
        GUEST_AREA_BASE,
        &PlanConfig {
            stack_bytes: 0,
            ..CONFIG
        },
    )
    .unwrap_err();
    assert_eq!(
        alloc::string::ToString::to_string(&e),
        "stack size 0x0 is not a non-zero multiple of the page size"
    );
}

#[test]
fn refuses_addresses_that_are_not_slots() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    for base in [
        0,
        GUEST_AREA_BASE - SLOT_SIZE,
        GUEST_AREA_BASE + PAGE_SIZE,
        GUEST_AREA_END,
        u64::MAX,
    ] {
        assert_eq!(
            plan(&guest, base, &CONFIG),
            Err(LoadError::BadSlot { base })
        );
    }
    let last = slot_base(MAX_GUEST_SLOTS - 1).unwrap();
    let p = plan(&guest, last, &CONFIG).unwrap();
    assert_eq!(p.slot.end, GUEST_AREA_END);
}

#[test]
fn refuses_guests_that_do_not_fit() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    let too_big = PlanConfig {
        heap_bytes: SLOT_SIZE,
        ..CONFIG
    };
    assert!(matches!(
        plan(&guest, GUEST_AREA_BASE, &too_big),
        Err(LoadError::SlotTooSmall {
            available: SLOT_SIZE,
            ..
        })
    ));
    let huge = PlanConfig {
        stack_bytes: u64::MAX - (PAGE_SIZE - 1),
        heap_bytes: u64::MAX - (PAGE_SIZE - 1),
        ring_bytes: u64::MAX - (PAGE_SIZE - 1),
    };
    assert_eq!(
        plan(&guest, GUEST_AREA_BASE, &huge),
        Err(LoadError::SlotTooSmall {
            needed: u64::MAX,
            available: SLOT_SIZE
        })
    );
    // Exactly full is fine.
    let used = 2 * SLOT_GAP + guest.image_size() + 3 * PAGE_SIZE;
    let exact = PlanConfig {
        heap_bytes: SLOT_SIZE - used - CONFIG.stack_bytes - CONFIG.ring_bytes,
        ..CONFIG
    };
    let p = plan(&guest, GUEST_AREA_BASE, &exact).unwrap();
    assert_eq!(p.stack_top, p.slot.end - SLOT_GAP);
}

#[test]
fn loads_file_bytes_zero_fill_and_relocations() {
    let b = ElfBuilder::guest();
    let file = b.build();
    let guest = parse(&file).unwrap();
    let p = plan(&guest, slot_base(3).unwrap(), &CONFIG).unwrap();
    let loaded = load_segments(&guest, &p).unwrap();
    let base = p.image_base;
    assert_eq!(loaded.len(), 4);
    for (segment, mapping) in loaded.iter().zip(p.image_mappings()) {
        assert_eq!(segment.start, mapping.start);
        assert_eq!(segment.pages, mapping.pages);
        assert_eq!(segment.permission, mapping.permission);
        assert!(segment.initialized.len() as u64 <= segment.pages * PAGE_SIZE);
    }
    assert_eq!(loaded[0].initialized, RODATA);
    assert_eq!(loaded[1].initialized, CODE);
    let data = &loaded[2];
    assert_eq!(u64_at(data, 0), base + 0x1000);
    assert_eq!(u64_at(data, 8), base + 0x2004);
    assert_eq!(&data.initialized[16..], &b.segments[2].data[16..]);
    assert!(
        (0x40..2 * PAGE_SIZE).all(|at| data.byte(at) == 0),
        "bss is zero"
    );
    assert_eq!(data.page(0).len(), 0x40);
    assert!(data.page(1).is_empty());
    assert!(data.page(u64::MAX).is_empty());
}

#[test]
fn applies_packed_relocations_to_the_stored_value() {
    let mut b = ElfBuilder::guest();
    b.relr = vec![0x3010, 0b11];
    let file = b.build();
    let guest = parse(&file).unwrap();
    let p = plan(&guest, GUEST_AREA_BASE, &CONFIG).unwrap();
    let loaded = load_segments(&guest, &p).unwrap();
    let stored = |at: usize| u64::from_le_bytes(b.segments[2].data[at..at + 8].try_into().unwrap());
    assert_eq!(
        u64_at(&loaded[2], 0x10),
        p.image_base.wrapping_add(stored(0x10))
    );
    assert_eq!(
        u64_at(&loaded[2], 0x18),
        p.image_base.wrapping_add(stored(0x18))
    );
    assert_eq!(u64_at(&loaded[2], 0x20), stored(0x20), "not relocated");
}

#[test]
fn negative_addends_and_bss_targets() {
    let mut b = ElfBuilder::guest();
    b.rela.push((0x4000, R_X86_64_RELATIVE, -16));
    let file = b.build();
    let guest = parse(&file).unwrap();
    let p = plan(&guest, GUEST_AREA_BASE, &CONFIG).unwrap();
    let loaded = load_segments(&guest, &p).unwrap();
    assert_eq!(u64_at(&loaded[2], 0x1000), p.image_base - 16);
    // The target is past the file's bytes: a patch, not a longer buffer.
    assert_eq!(loaded[2].initialized.len(), b.segments[2].data.len());
    assert_eq!(loaded[2].patches.len(), 8);
}

#[test]
fn a_relocation_deep_in_a_large_bss_costs_no_buffer_reaching_it() {
    let mut b = ElfBuilder::guest();
    b.segments[2].mem_size = 512 << 20;
    b.rela.push((0x3000 + (500 << 20), R_X86_64_RELATIVE, 8));
    let file = b.build();
    let guest = parse(&file).unwrap();
    let config = PlanConfig {
        heap_bytes: 1 << 20,
        ..CONFIG
    };
    let p = plan(&guest, GUEST_AREA_BASE, &config).unwrap();
    let loaded = load_segments(&guest, &p).unwrap();
    assert!(loaded[2].initialized.len() <= b.segments[2].data.len());
    assert_eq!(u64_at(&loaded[2], 500 << 20), p.image_base + 8);
}

#[test]
fn relro_mapping_is_read_only_and_relocated() {
    // The lld-like layout: see the parser's tests.
    let mut b = ElfBuilder::empty();
    let mut code = Seg::load(PF_R | PF_X, 0x300, CODE);
    code.vaddr = 0x1300;
    let mut relro = Seg::load(PF_R | PF_W, 0x400, &[0x11; 0x1c00]);
    relro.vaddr = 0x2400;
    let mut data = Seg::load(PF_R | PF_W, 0x2000, &[0x22; 0x100]).mem(0x2000);
    data.vaddr = 0x4000;
    let mut gnu_relro = Seg::marker(PT_GNU_RELRO, PF_R);
    gnu_relro.vaddr = 0x2400;
    gnu_relro.mem_size = 0x1c00;
    b.segments = vec![code, relro, data, gnu_relro];
    b.entry = 0x1300;
    // The second relocation straddles nothing; the first sits at the start of RELRO.
    b.rela = vec![
        (0x2400, R_X86_64_RELATIVE, 0x1300),
        (0x3ff8, R_X86_64_RELATIVE, 0x4000),
    ];
    let file = b.build();
    let guest = parse(&file).unwrap();
    let p = plan(&guest, GUEST_AREA_BASE, &CONFIG).unwrap();
    let base = p.image_base;
    let relro_mapping = p.mappings[1];
    assert_eq!(relro_mapping.start, base + 0x2000);
    assert_eq!(relro_mapping.pages, 2);
    assert_eq!(relro_mapping.permission, Permission::Read);
    let loaded = load_segments(&guest, &p).unwrap();
    let relro_bytes = &loaded[1];
    assert!(
        (0..0x400).all(|at| relro_bytes.byte(at) == 0),
        "before the segment"
    );
    assert_eq!(u64_at(relro_bytes, 0x400), base + 0x1300);
    assert_eq!(relro_bytes.byte(0x408), 0x11);
    assert_eq!(u64_at(relro_bytes, 0x1ff8), base + 0x4000);
    assert_eq!(loaded[2].permission, Permission::ReadWrite);
    assert_eq!(loaded[2].byte(0), 0x22);
}

#[test]
fn refuses_a_plan_made_for_another_guest() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    let mut other = ElfBuilder::guest();
    other.segments[2].mem_size = 0x3000;
    let other_file = other.build();
    let other_guest = parse(&other_file).unwrap();
    let p = plan(&other_guest, GUEST_AREA_BASE, &CONFIG).unwrap();
    assert_eq!(load_segments(&guest, &p), Err(LoadError::PlanMismatch));

    let good = plan(&guest, GUEST_AREA_BASE, &CONFIG).unwrap();
    let mut tampered = good.clone();
    tampered.mappings[1].permission = Permission::ReadWrite;
    assert_eq!(
        load_segments(&guest, &tampered),
        Err(LoadError::PlanMismatch)
    );
    let mut tampered = good.clone();
    tampered.image_base += PAGE_SIZE;
    assert_eq!(
        load_segments(&guest, &tampered),
        Err(LoadError::PlanMismatch)
    );
    let mut tampered = good.clone();
    tampered.mappings.remove(0);
    assert_eq!(
        load_segments(&guest, &tampered),
        Err(LoadError::PlanMismatch)
    );
    let mut tampered = good;
    tampered.image_base = u64::MAX - (SLOT_GAP - 1);
    assert_eq!(
        load_segments(&guest, &tampered),
        Err(LoadError::PlanMismatch)
    );
}

#[test]
fn data_regions_follow_the_stack_behind_guards() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    let base = slot_base(0).unwrap();
    let mut p = plan(&guest, base, &CONFIG).unwrap();
    let regions = p.add_data(&[10, 3 * PAGE_SIZE, 0]).unwrap();
    assert_eq!(
        regions[0],
        p.stack.end + PAGE_SIZE..p.stack.end + 2 * PAGE_SIZE
    );
    assert_eq!(regions[1].start, regions[0].end + PAGE_SIZE);
    assert_eq!(regions[1].end - regions[1].start, 3 * PAGE_SIZE);
    assert_eq!(
        regions[2].end - regions[2].start,
        PAGE_SIZE,
        "an empty region still gets a page"
    );
    for (index, region) in regions.iter().enumerate() {
        let m = p
            .mappings
            .iter()
            .find(|m| m.contents == Contents::Data { index })
            .unwrap();
        assert_eq!(
            (m.range(), m.permission),
            (region.clone(), Permission::Read)
        );
        // Nothing else maps or guards the same bytes.
        assert!(
            p.guards
                .iter()
                .all(|g| g.end <= region.start || g.start >= region.end)
        );
    }
    // The guards still cover every unmapped byte from the stack to the end.
    let tail: u64 = p
        .guards
        .iter()
        .filter(|g| g.start >= p.stack.end)
        .map(|g| g.end - g.start)
        .sum();
    let data: u64 = regions.iter().map(|r| r.end - r.start).sum();
    assert_eq!(tail + data, p.slot.end - p.stack.end);
    assert!(p.guards.last().unwrap().end - p.guards.last().unwrap().start >= SLOT_GAP);
}

#[test]
fn data_that_does_not_fit_the_slot_is_refused() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    let mut p = plan(&guest, slot_base(0).unwrap(), &CONFIG).unwrap();
    let before = p.clone();
    assert!(matches!(
        p.add_data(&[SLOT_SIZE]),
        Err(LoadError::SlotTooSmall { .. })
    ));
    assert!(matches!(
        p.add_data(&[u64::MAX]),
        Err(LoadError::SlotTooSmall { .. })
    ));
    assert_eq!(p, before, "a refused request changes nothing");
}
