use super::*;
use crate::{Forbidden, testing::*};
use alloc::{string::ToString, vec::Vec};

fn refuse(file: &[u8]) -> LoadError {
    match parse(file) {
        Ok(_) => panic!("accepted a guest that should be refused"),
        Err(e) => e,
    }
}

fn refuse_built(builder: &ElfBuilder) -> LoadError {
    refuse(&builder.build())
}

/// The default guest with the code segment's bytes replaced.
fn guest_with_code(code: &[u8]) -> ElfBuilder {
    let mut b = ElfBuilder::guest();
    b.segments[1] = Seg::load(PF_R | PF_X, 0x2000, code);
    b
}

const R: Permission = Permission::Read;
const RW: Permission = Permission::ReadWrite;
const RX: Permission = Permission::ReadExecute;

fn run(offset: u64, pages: u64, permission: Permission) -> ImageRun {
    ImageRun {
        offset,
        pages,
        permission,
    }
}

#[test]
fn accepts_a_typical_guest() {
    let file = ElfBuilder::guest().build();
    let guest = parse(&file).unwrap();
    assert_eq!(guest.entry(), 0x2000);
    let indices: Vec<usize> = guest.segments().iter().map(|s| s.index).collect();
    assert_eq!(
        indices,
        [0, 1, 2, 4],
        "PT_GNU_STACK and PT_DYNAMIC are not loaded"
    );
    assert_eq!(
        guest.runs(),
        [
            run(0x1000, 1, R),
            run(0x2000, 1, RX),
            run(0x3000, 2, RW),
            run(0x5000, 1, R)
        ]
    );
    assert_eq!(
        guest.relocations(),
        [
            Relocation {
                offset: 0x3000,
                addend: 0x1000
            },
            Relocation {
                offset: 0x3008,
                addend: 0x2004
            }
        ]
    );
    assert_eq!(guest.image_size(), 0x6000);
}

#[test]
fn accepts_a_guest_without_dynamic_section() {
    let mut b = ElfBuilder::guest();
    b.rela.clear();
    let file = b.build();
    let guest = parse(&file).unwrap();
    assert!(guest.relocations().is_empty());
    assert_eq!(guest.runs().len(), 3);
}

#[test]
fn refuses_truncated_headers() {
    let file = ElfBuilder::guest().build();
    for len in [0, 1, 4, 16, 63] {
        assert_eq!(refuse(&file[..len]), LoadError::Truncated { len });
    }
    // Cut inside the program headers.
    assert!(matches!(
        refuse(&file[..100]),
        LoadError::ProgramHeadersOutsideFile { file_len: 100, .. }
    ));
    // Cut inside the code segment.
    assert_eq!(
        refuse(&file[..0x2004]),
        LoadError::FileRangeOutsideFile {
            index: 1,
            start: 0x2000,
            end: 0x2000 + CODE.len() as u64,
            file_len: 0x2004
        }
    );
}

#[test]
fn refuses_what_is_not_an_x86_64_elf64() {
    let good = ElfBuilder::guest().build();
    let mut file = good.clone();
    file[1] = b'e';
    assert_eq!(refuse(&file), LoadError::BadMagic { found: *b"\x7feLF" });
    let mut file = good.clone();
    file[4] = 1;
    assert_eq!(refuse(&file), LoadError::NotElf64 { class: 1 });
    let mut file = good.clone();
    file[5] = 2;
    assert_eq!(refuse(&file), LoadError::NotLittleEndian { encoding: 2 });
    let mut file = good.clone();
    file[6] = 0;
    assert_eq!(refuse(&file), LoadError::BadVersion { version: 0 });
    let mut file = good.clone();
    put32(&mut file, 20, 2);
    assert_eq!(refuse(&file), LoadError::BadVersion { version: 2 });
    for machine in [3, 183, 0] {
        let mut file = good.clone();
        put16(&mut file, 18, machine);
        assert_eq!(refuse(&file), LoadError::WrongMachine { machine });
    }
}

#[test]
fn refuses_fixed_address_executables() {
    let mut b = ElfBuilder::guest();
    b.e_type = 2;
    let e = refuse_built(&b);
    assert_eq!(e, LoadError::NotPositionIndependent { file_type: 2 });
    assert!(e.to_string().contains("ET_EXEC"));
    b.e_type = 1;
    assert_eq!(
        refuse_built(&b),
        LoadError::NotPositionIndependent { file_type: 1 }
    );
}

#[test]
fn refuses_bad_program_header_tables() {
    let good = ElfBuilder::guest().build();
    let mut file = good.clone();
    put16(&mut file, 54, 32);
    assert_eq!(refuse(&file), LoadError::BadProgramHeaderSize { size: 32 });
    let mut file = good.clone();
    put16(&mut file, 56, 0xffff);
    assert_eq!(
        refuse(&file),
        LoadError::TooManyProgramHeaders { count: 0xffff }
    );
    let mut file = good.clone();
    put64(&mut file, 32, u64::MAX - 8);
    assert!(matches!(
        refuse(&file),
        LoadError::ProgramHeadersOutsideFile { end: u64::MAX, .. }
    ));
    let mut file = good;
    put16(&mut file, 56, 0);
    assert_eq!(refuse(&file), LoadError::NoLoadableSegment);
}

#[test]
fn refuses_an_interpreter() {
    let mut b = ElfBuilder::guest();
    b.segments.insert(0, Seg::marker(PT_INTERP, PF_R));
    b.entry = 0x2000;
    assert_eq!(refuse_built(&b), LoadError::Interpreter { index: 0 });
}

#[test]
fn refuses_thread_local_storage() {
    let mut b = ElfBuilder::guest();
    b.segments.push(Seg::marker(PT_TLS, PF_R));
    assert_eq!(
        refuse_built(&b),
        LoadError::UnsupportedSegment {
            index: 4,
            segment_type: 7
        }
    );
}

#[test]
fn needs_a_segment_with_contents() {
    let mut b = ElfBuilder::empty();
    b.segments.push(Seg::marker(PT_GNU_STACK, PF_R | PF_W));
    assert_eq!(refuse_built(&b), LoadError::NoLoadableSegment);
    b.segments.push(Seg::load(PF_R | PF_X, 0x1000, &[]));
    assert_eq!(refuse_built(&b), LoadError::NoLoadableSegment);
}

#[test]
fn ignores_empty_load_segments() {
    let mut b = ElfBuilder::guest();
    b.segments.push(Seg::load(PF_R | PF_W, 0x2000, &[]));
    let file = b.build();
    let guest = parse(&file).unwrap();
    assert_eq!(guest.segments().len(), 4);
}

#[test]
fn refuses_overlapping_segments() {
    let mut b = ElfBuilder::guest();
    // Segment 2 (data) occupies 0x3000..0x4800 in memory.
    b.segments.push(Seg::load(PF_R, 0x4000, b"overlap"));
    assert_eq!(
        refuse_built(&b),
        LoadError::SegmentsOverlap {
            first: 2,
            second: 4,
            at: 0x4000
        }
    );
}

#[test]
fn refuses_writable_code() {
    let mut b = ElfBuilder::guest();
    b.segments[1].flags = PF_R | PF_W | PF_X;
    let e = refuse_built(&b);
    assert_eq!(e, LoadError::WritableAndExecutable { index: 1 });
    assert_eq!(
        e.to_string(),
        "segment 1: writable and executable (W^X forbids it)"
    );
    // Even without PF_R.
    b.segments[1].flags = PF_W | PF_X;
    assert_eq!(
        refuse_built(&b),
        LoadError::WritableAndExecutable { index: 1 }
    );
}

#[test]
fn refuses_file_ranges_past_the_end() {
    let mut file = ElfBuilder::guest().build();
    let len = file.len() as u64;
    put64(&mut file, phdr_at(2) + 32, 0x6000);
    let e = refuse(&file);
    assert_eq!(
        e,
        LoadError::FileRangeOutsideFile {
            index: 2,
            start: 0x3000,
            end: 0x9000,
            file_len: len
        }
    );
    assert_eq!(
        e.to_string(),
        alloc::format!("segment 2: file range 0x3000..0x9000 exceeds the file ({len:#x} bytes)")
    );
    // An offset so large that offset + size wraps.
    let mut file = ElfBuilder::guest().build();
    put64(&mut file, phdr_at(1) + 8, u64::MAX - 2);
    assert!(matches!(
        refuse(&file),
        LoadError::FileRangeOutsideFile {
            index: 1,
            end: u64::MAX,
            ..
        }
    ));
    // PT_DYNAMIC is checked the same way.
    let mut file = ElfBuilder::guest().build();
    put64(&mut file, phdr_at(5) + 32, 0x10_0000);
    assert!(matches!(
        refuse(&file),
        LoadError::FileRangeOutsideFile { index: 5, .. }
    ));
}

#[test]
fn refuses_memory_smaller_than_file() {
    let mut b = ElfBuilder::guest();
    b.segments[2].mem_size = 0x20;
    assert_eq!(
        refuse_built(&b),
        LoadError::MemorySmallerThanFile {
            index: 2,
            mem_size: 0x20,
            file_size: 0x40
        }
    );
}

#[test]
fn refuses_misaligned_segments() {
    let mut b = ElfBuilder::guest();
    b.segments[0].vaddr = 0x1010;
    assert_eq!(
        refuse_built(&b),
        LoadError::Misaligned {
            index: 0,
            vaddr: 0x1010,
            offset: 0x1000
        }
    );
    // Different pages but the same offset within the page is fine.
    let mut b = ElfBuilder::guest();
    b.segments[0].vaddr = 0x0000;
    parse(&b.build()).unwrap();
}

#[test]
fn refuses_impossible_alignments() {
    for align in [3, 0x3000, 4 << 20, 1 << 63] {
        let mut b = ElfBuilder::guest();
        b.segments[2].align = align;
        assert_eq!(
            refuse_built(&b),
            LoadError::BadAlignment { index: 2, align }
        );
    }
    for align in [0, 1, 8, 0x1000, 2 << 20] {
        let mut b = ElfBuilder::guest();
        b.segments[2].align = align;
        parse(&b.build()).unwrap();
    }
}

#[test]
fn refuses_images_past_the_limit() {
    let mut b = ElfBuilder::guest();
    b.segments[2].mem_size = MAX_IMAGE_BYTES;
    assert_eq!(
        refuse_built(&b),
        LoadError::ImageTooLarge {
            index: 2,
            end: 0x3000 + MAX_IMAGE_BYTES
        }
    );
    let mut file = ElfBuilder::guest().build();
    put64(&mut file, phdr_at(2) + 40, u64::MAX - 0x1000);
    assert_eq!(
        refuse(&file),
        LoadError::ImageTooLarge {
            index: 2,
            end: u64::MAX
        }
    );
    // Up to the limit is fine.
    let mut b = ElfBuilder::guest();
    b.segments[2].mem_size = MAX_IMAGE_BYTES - 0x3000;
    b.rela.clear();
    assert_eq!(parse(&b.build()).unwrap().image_size(), MAX_IMAGE_BYTES);
}

#[test]
fn refuses_an_entry_outside_code() {
    let code_end = 0x2000 + CODE.len() as u64;
    for entry in [0, 0x1000, 0x3000, code_end, 0x2fff, 0x4000, u64::MAX] {
        let mut b = ElfBuilder::guest();
        b.entry = entry;
        assert_eq!(refuse_built(&b), LoadError::EntryNotInCode { entry });
    }
    let mut b = ElfBuilder::guest();
    b.entry = code_end - 1;
    parse(&b.build()).unwrap();
}

#[test]
fn refuses_an_entry_in_code_zero_fill() {
    let mut b = ElfBuilder::guest();
    b.segments[1].mem_size = 0x800;
    b.entry = 0x2100;
    assert_eq!(
        refuse_built(&b),
        LoadError::EntryNotInCode { entry: 0x2100 }
    );
}

#[test]
fn refuses_shared_libraries_and_other_relocation_kinds() {
    let mut b = ElfBuilder::guest();
    b.dynamic.push((DT_NEEDED, 1));
    assert_eq!(refuse_built(&b), LoadError::NeedsLibrary { entry: 0 });

    let mut b = ElfBuilder::guest();
    b.dynamic.push((DT_REL, 0x5000));
    let e = refuse_built(&b);
    assert_eq!(
        e,
        LoadError::UnsupportedDynamicTag {
            entry: 0,
            tag: DT_REL,
            value: 0x5000
        }
    );
    assert!(e.to_string().contains("DT_REL (17)"));

    let mut b = ElfBuilder::guest();
    b.dynamic.push((DT_TEXTREL, 0));
    assert_eq!(refuse_built(&b), LoadError::TextRelocations { entry: 0 });
    let mut b = ElfBuilder::guest();
    b.dynamic.push((DT_FLAGS, 0x4));
    assert_eq!(refuse_built(&b), LoadError::TextRelocations { entry: 0 });
    // Other flags (DF_BIND_NOW) are fine.
    let mut b = ElfBuilder::guest();
    b.dynamic.push((DT_FLAGS, 0x8));
    parse(&b.build()).unwrap();
}

#[test]
fn dynamic_entries_after_the_end_marker_are_ignored() {
    let mut b = ElfBuilder::guest();
    b.dynamic.push((DT_NULL, 0));
    b.dynamic.push((DT_NEEDED, 1));
    b.rela.clear();
    let file = b.build();
    assert!(parse(&file).unwrap().relocations().is_empty());
}

#[test]
fn refuses_unsupported_relocation_types() {
    let mut b = ElfBuilder::guest();
    b.rela.push((0x3010, R_X86_64_64, 0));
    let e = refuse_built(&b);
    assert_eq!(
        e,
        LoadError::UnsupportedRelocation {
            table: RelocationTable::Rela,
            index: 2,
            offset: 0x3010,
            r_type: 1
        }
    );
    assert_eq!(
        e.to_string(),
        "DT_RELA relocation 2 at 0x3010: type 1 is not supported (only R_X86_64_RELATIVE (8) \
         and R_X86_64_NONE (0) are)"
    );
}

#[test]
fn ignores_none_relocations() {
    let mut b = ElfBuilder::guest();
    b.rela.push((0x9999_9999, R_X86_64_NONE, 7));
    let file = b.build();
    assert_eq!(parse(&file).unwrap().relocations().len(), 2);
}

#[test]
fn plt_relocations_must_be_no_ops() {
    let mut b = ElfBuilder::guest();
    b.plt.push((0x3010, R_X86_64_JUMP_SLOT, 0));
    assert_eq!(
        refuse_built(&b),
        LoadError::UnsupportedRelocation {
            table: RelocationTable::Plt,
            index: 0,
            offset: 0x3010,
            r_type: 7
        }
    );
    let mut b = ElfBuilder::guest();
    b.plt.push((0x3010, R_X86_64_RELATIVE, 0x1000));
    let file = b.build();
    assert_eq!(parse(&file).unwrap().relocations().len(), 3);
    let mut b = ElfBuilder::guest();
    b.dynamic.push((DT_PLTREL, 17));
    assert_eq!(
        refuse_built(&b),
        LoadError::UnsupportedDynamicTag {
            entry: 0,
            tag: DT_PLTREL,
            value: 17
        }
    );
}

#[test]
fn relocation_targets_must_be_inside_data() {
    let outside = |index, offset| LoadError::RelocationOutsideSegments {
        table: RelocationTable::Rela,
        index,
        offset,
    };
    // Past the image, in the gap after .bss, straddling the end of .bss, before everything.
    for offset in [0x9000, 0x4800, 0x47fc, 0x10, u64::MAX - 3] {
        let mut b = ElfBuilder::guest();
        b.rela.push((offset, R_X86_64_RELATIVE, 0));
        assert_eq!(refuse_built(&b), outside(2, offset), "{offset:#x}");
    }
    let mut b = ElfBuilder::guest();
    b.rela.push((0x2000, R_X86_64_RELATIVE, 0));
    let e = refuse_built(&b);
    assert_eq!(
        e,
        LoadError::RelocationInCode {
            table: RelocationTable::Rela,
            index: 2,
            offset: 0x2000,
            segment: 1
        }
    );
    assert!(e.to_string().contains("patches executable segment 1"));
}

#[test]
fn relocations_may_patch_read_only_data_and_bss() {
    let mut b = ElfBuilder::guest();
    b.rela.push((0x1008, R_X86_64_RELATIVE, 0x10));
    b.rela.push((0x47f8, R_X86_64_RELATIVE, 0x20));
    let file = b.build();
    let offsets: Vec<u64> = parse(&file)
        .unwrap()
        .relocations()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, [0x1008, 0x3000, 0x3008, 0x47f8]);
}

#[test]
fn refuses_overlapping_relocations() {
    let mut b = ElfBuilder::guest();
    b.rela.push((0x3004, R_X86_64_RELATIVE, 0));
    assert_eq!(
        refuse_built(&b),
        LoadError::OverlappingRelocations {
            first: 0x3000,
            second: 0x3004
        }
    );
    let mut b = ElfBuilder::guest();
    b.rela.push((0x3008, R_X86_64_RELATIVE, 0));
    assert!(matches!(
        refuse_built(&b),
        LoadError::OverlappingRelocations {
            first: 0x3008,
            second: 0x3008
        }
    ));
}

#[test]
fn refuses_malformed_relocation_tables() {
    let mut b = ElfBuilder::guest();
    b.rela.clear();
    b.dynamic = Vec::from([(DT_RELA, 0x1000), (DT_RELASZ, 25)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::BadRelocationTableSize {
            table: RelocationTable::Rela,
            size: 25
        }
    );
    b.dynamic = Vec::from([(DT_RELA, 0x1000), (DT_RELASZ, 24), (DT_RELAENT, 16)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::BadRelocationEntrySize {
            tag: DT_RELAENT,
            size: 16
        }
    );
    b.dynamic = Vec::from([(DT_RELA, 0x1000)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::MissingDynamicTag { tag: DT_RELASZ }
    );
    b.dynamic = Vec::from([(DT_RELASZ, 24)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::MissingDynamicTag { tag: DT_RELA }
    );
    b.dynamic = Vec::from([(DT_RELA, 0x1000), (DT_RELASZ, 0)]);
    parse(&b.build()).unwrap();
    b.dynamic = Vec::from([(DT_RELA, 0x1000), (DT_RELA, 0x1000)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::DuplicateDynamicTag {
            entry: 1,
            tag: DT_RELA
        }
    );
    // In .bss (no file bytes), past rodata's file bytes, nowhere.
    for vaddr in [0x3800, 0x1000 + RODATA.len() as u64 - 8, 0x7000] {
        b.dynamic = Vec::from([(DT_RELA, vaddr), (DT_RELASZ, 24)]);
        assert_eq!(
            refuse_built(&b),
            LoadError::RelocationTableOutsideFile {
                table: RelocationTable::Rela,
                vaddr,
                size: 24
            },
            "{vaddr:#x}"
        );
    }
    b.dynamic = Vec::from([(DT_JMPREL, 0x5000), (DT_PLTRELSZ, 24)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::MissingDynamicTag { tag: DT_PLTREL }
    );
}

/// RELR words for 0x3010 and, by bitmap, 0x3018 and 0x3028.
fn relr_guest() -> ElfBuilder {
    let mut b = ElfBuilder::guest();
    b.relr = Vec::from([0x3010, (1 << 1) | (1 << 3) | 1]);
    b
}

fn stored_at(b: &ElfBuilder, offset: usize) -> i64 {
    let data = &b.segments[2].data;
    i64::from_le_bytes(
        data[offset - 0x3000..offset - 0x3000 + 8]
            .try_into()
            .unwrap(),
    )
}

#[test]
fn decodes_packed_relative_relocations() {
    let b = relr_guest();
    let file = b.build();
    let guest = parse(&file).unwrap();
    let expected: Vec<Relocation> = [
        (0x3000, 0x1000),
        (0x3008, 0x2004),
        (0x3010, stored_at(&b, 0x3010)),
        (0x3018, stored_at(&b, 0x3018)),
        (0x3028, stored_at(&b, 0x3028)),
    ]
    .into_iter()
    .map(|(offset, addend)| Relocation { offset, addend })
    .collect();
    assert_eq!(guest.relocations(), expected);
}

#[test]
fn packed_relocations_continue_across_bitmaps_and_into_zero_fill() {
    let mut b = ElfBuilder::guest();
    b.rela.clear();
    // 0x3800 (in .bss), then bitmap bit 63 -> 0x3800 + 8 + 62 * 8, then a
    // second bitmap continuing 63 words later: bit 1 -> 0x3808 + 63 * 8.
    b.relr = Vec::from([0x3800, (1 << 63) | 1, 0b11]);
    let file = b.build();
    let offsets: Vec<(u64, i64)> = parse(&file)
        .unwrap()
        .relocations()
        .iter()
        .map(|r| (r.offset, r.addend))
        .collect();
    assert_eq!(
        offsets,
        [(0x3800, 0), (0x3808 + 62 * 8, 0), (0x3808 + 63 * 8, 0)]
    );
}

#[test]
fn refuses_malformed_packed_relocations() {
    let mut b = ElfBuilder::guest();
    b.relr = Vec::from([0b11]);
    assert_eq!(refuse_built(&b), LoadError::BadRelrEntry { index: 0 });
    let mut b = ElfBuilder::guest();
    b.relr = Vec::from([0x2000]);
    assert!(matches!(
        refuse_built(&b),
        LoadError::RelocationInCode {
            table: RelocationTable::Relr,
            ..
        }
    ));
    let mut b = ElfBuilder::guest();
    b.relr = Vec::from([0x3010, 1 | (1 << 40)]);
    // 0x3018 + 39 * 8 = 0x3150: still in .bss, fine. Now push past the end.
    parse(&b.build()).unwrap();
    b.relr = Vec::from([0x4700, 1 | (1 << 63)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::RelocationOutsideSegments {
            table: RelocationTable::Relr,
            index: 1,
            offset: 0x4708 + 62 * 8
        }
    );
    let mut b = ElfBuilder::guest();
    b.rela.clear();
    b.dynamic = Vec::from([(DT_RELR, 0x1000), (DT_RELRSZ, 8), (DT_RELRENT, 16)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::BadRelocationEntrySize {
            tag: DT_RELRENT,
            size: 16
        }
    );
    b.dynamic = Vec::from([(DT_RELR, 0x1000), (DT_RELRSZ, 12)]);
    assert_eq!(
        refuse_built(&b),
        LoadError::BadRelocationTableSize {
            table: RelocationTable::Relr,
            size: 12
        }
    );
}

#[test]
fn refuses_forbidden_instructions_naming_file_offset_and_address() {
    let mut b = ElfBuilder::guest();
    // Code at file offset 0x2000 but address 0x12000.
    b.segments[1] = Seg::load(
        PF_R | PF_X,
        0x2000,
        &[0x90, 0x90, 0x90, 0x90, 0x0f, 0x01, 0xef, 0xc3],
    );
    b.segments[1].vaddr = 0x12000;
    b.entry = 0x12000;
    let e = refuse_built(&b);
    assert_eq!(
        e,
        LoadError::ForbiddenInstruction {
            instruction: Forbidden::Wrpkru,
            vaddr: 0x12004,
            file_offset: Some(0x2004)
        }
    );
    assert!(e.to_string().contains("0x12004") && e.to_string().contains("0x2004"));
}

#[test]
fn refuses_every_forbidden_instruction_in_code() {
    for (pattern, kind) in crate::scan::PATTERNS {
        let mut code = Vec::from(CODE);
        code.splice(2..2, pattern.iter().copied());
        assert_eq!(
            refuse_built(&guest_with_code(&code)),
            LoadError::ForbiddenInstruction {
                instruction: kind,
                vaddr: 0x2002,
                file_offset: Some(0x2002)
            }
        );
    }
}

#[test]
fn forbidden_bytes_outside_code_are_data() {
    let mut b = ElfBuilder::guest();
    b.segments[0] = Seg::load(PF_R, 0x1000, &[0x0f, 0x01, 0xef, 0x0f, 0xae, 0x28]);
    parse(&b.build()).unwrap();
    // LFENCE is not XRSTOR.
    parse(&guest_with_code(&[0x0f, 0xae, 0xe8, 0xc3]).build()).unwrap();
}

#[test]
fn finds_forbidden_instructions_across_segment_boundaries() {
    let mut first = alloc::vec![0x90u8; 0x7fe];
    first.extend_from_slice(&[0x0f, 0x01]);
    let mut b = ElfBuilder::guest();
    b.segments[1] = Seg::load(PF_R | PF_X, 0x2000, &first);
    b.segments
        .push(Seg::load(PF_R | PF_X, 0x2800, &[0xef, 0xc3]));
    assert_eq!(
        refuse_built(&b),
        LoadError::ForbiddenInstruction {
            instruction: Forbidden::Wrpkru,
            vaddr: 0x27fe,
            file_offset: Some(0x27fe)
        }
    );
    // With zero fill between them the bytes are not adjacent in memory.
    b.segments[1].mem_size = 0x801;
    b.segments[4] = Seg::load(PF_R | PF_X, 0x2801, &[0xef, 0xc3]);
    b.segments[4].offset = 0x2801;
    b.segments[4].vaddr = 0x2801;
    parse(&b.build()).unwrap();
}

#[test]
fn segments_sharing_a_page_need_the_same_permission() {
    let mut b = ElfBuilder::guest();
    b.segments[1] = Seg::load(PF_R | PF_X, 0x2000, &[0xc3; 0x800]);
    b.segments.push(Seg::load(PF_R | PF_W, 0x2800, b"data"));
    let e = refuse_built(&b);
    assert_eq!(
        e,
        LoadError::SharedPageConflict {
            first: 1,
            first_permission: RX,
            second: 4,
            second_permission: RW,
            page: 0x2000
        }
    );
    // The same permission shares the page: one run covers both.
    b.segments[4].flags = PF_R | PF_X;
    let file = b.build();
    let guest = parse(&file).unwrap();
    assert_eq!(guest.runs()[1], run(0x2000, 1, RX));
    assert_eq!(guest.runs().len(), 4);
}

/// The layout lld gives a static-pie: headers and rodata from offset 0,
/// segments starting mid-page (address congruent to offset), a RELRO
/// segment padded to a page end, then .data and .bss.
fn lld_like_guest() -> ElfBuilder {
    let mut b = ElfBuilder::empty();
    let mut headers = Seg::load(PF_R, 0, &[]);
    headers.file_size = Some(0x300);
    headers.mem_size = 0x300;
    let mut code = Seg::load(PF_R | PF_X, 0x300, CODE);
    code.vaddr = 0x1300;
    let mut relro = Seg::load(PF_R | PF_W, 0x400, &[0x11; 0x1c00]);
    relro.vaddr = 0x2400;
    let mut data = Seg::load(PF_R | PF_W, 0x2000, &[0x22; 0x100]).mem(0x2000);
    data.vaddr = 0x4000;
    let mut gnu_relro = Seg::marker(PT_GNU_RELRO, PF_R);
    gnu_relro.vaddr = 0x2400;
    gnu_relro.mem_size = 0x1c00;
    b.segments = Vec::from([headers, code, relro, data, gnu_relro]);
    b.entry = 0x1300;
    b.rela = Vec::from([
        (0x2400, R_X86_64_RELATIVE, 0x1300),
        (0x4000, R_X86_64_RELATIVE, 0x2400),
    ]);
    b
}

#[test]
fn relro_pages_become_read_only() {
    let file = lld_like_guest().build();
    let guest = parse(&file).unwrap();
    assert_eq!(
        guest.runs(),
        [
            run(0, 1, R),
            run(0x1000, 1, RX),
            run(0x2000, 2, R),
            run(0x4000, 2, RW),
            run(0x6000, 1, R)
        ]
    );
    assert_eq!(guest.relocations().len(), 2);
}

#[test]
fn relro_leaves_pages_shared_with_other_segments_writable() {
    let mut b = lld_like_guest();
    // .data before the RELRO segment, sharing its first page.
    let mut before = Seg::load(PF_R | PF_W, 0x380, &[0x33; 0x10]);
    before.vaddr = 0x2380;
    b.segments.push(before);
    let file = b.build();
    let guest = parse(&file).unwrap();
    assert_eq!(&guest.runs()[2..4], [run(0x2000, 1, RW), run(0x3000, 1, R)]);
}

#[test]
fn refuses_relro_outside_one_segment() {
    let mut b = lld_like_guest();
    b.segments[4].mem_size = 0x1d00;
    assert_eq!(
        refuse_built(&b),
        LoadError::RelroOutsideSegment {
            index: 4,
            start: 0x2400,
            end: 0x4100
        }
    );
    b.segments.push(b.segments[4].clone());
    assert_eq!(
        refuse_built(&b),
        LoadError::DuplicateSegment {
            first: 4,
            second: 5,
            segment_type: PT_GNU_RELRO
        }
    );
}

#[test]
fn relro_over_read_only_data_changes_nothing() {
    let mut b = ElfBuilder::guest();
    let mut relro = Seg::marker(PT_GNU_RELRO, PF_R);
    relro.vaddr = 0x1000;
    relro.mem_size = 0x10;
    b.segments.push(relro);
    let file = b.build();
    assert_eq!(parse(&file).unwrap().runs()[0], run(0x1000, 1, R));
}

#[test]
fn refuses_two_dynamic_sections() {
    let mut file = ElfBuilder::guest().build();
    // Turn PT_GNU_STACK (3) into a second PT_DYNAMIC.
    put32(&mut file, phdr_at(3), PT_DYNAMIC);
    assert_eq!(
        refuse(&file),
        LoadError::DuplicateSegment {
            first: 3,
            second: 5,
            segment_type: PT_DYNAMIC
        }
    );
}

#[test]
fn segments_may_come_in_any_order() {
    let mut b = ElfBuilder::guest();
    b.segments.swap(0, 2);
    let file = b.build();
    let guest = parse(&file).unwrap();
    let indices: Vec<usize> = guest.segments().iter().map(|s| s.index).collect();
    assert_eq!(indices, [2, 1, 0, 4]);
}

#[test]
fn a_relocation_bomb_is_refused_by_count() {
    // A few hundred KiB of DT_RELR bitmaps over a large .bss would expand
    // to millions of relocations: refused once past the limit.
    let mut b = ElfBuilder::guest();
    b.rela.clear();
    let words = crate::elf::MAX_RELOCATIONS / 63 + 2;
    b.segments[2].mem_size = (words as u64 + 2) * 63 * 8 + 0x1000;
    let mut relr = Vec::from([0x3800u64]);
    relr.extend(core::iter::repeat_n(u64::MAX, words));
    b.relr = relr;
    assert_eq!(
        refuse_built(&b),
        LoadError::TooManyRelocations {
            limit: crate::elf::MAX_RELOCATIONS
        }
    );
}
