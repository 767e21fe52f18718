//! Why a guest is refused. Every variant carries what is wrong and where
//! (program header index, file offset, virtual address, value), so the
//! message a user sees is enough to find the problem in the file.
//!
//! Virtual addresses are the image's own (a static-pie is linked at 0);
//! "segment N" is the N-th program header, counting from 0, as `readelf -l`
//! lists them.

use crate::{MAX_IMAGE_BYTES, MAX_PROGRAM_HEADERS, Permission, scan::Forbidden};
use core::fmt;

/// The relocation table an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocationTable {
    /// `DT_RELA`: the ordinary table.
    Rela,
    /// `DT_JMPREL`: PLT relocations (a static-pie has none that we accept).
    Plt,
    /// `DT_RELR`: packed relative relocations.
    Relr,
}

impl fmt::Display for RelocationTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RelocationTable::Rela => "DT_RELA",
            RelocationTable::Plt => "DT_JMPREL",
            RelocationTable::Relr => "DT_RELR",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Shorter than the 64-byte ELF header.
    Truncated {
        len: usize,
    },
    BadMagic {
        found: [u8; 4],
    },
    NotElf64 {
        class: u8,
    },
    NotLittleEndian {
        encoding: u8,
    },
    BadVersion {
        version: u32,
    },
    WrongMachine {
        machine: u16,
    },
    /// Not `ET_DYN`: a guest must be position independent to be placed in its slot.
    NotPositionIndependent {
        file_type: u16,
    },
    BadProgramHeaderSize {
        size: u16,
    },
    TooManyProgramHeaders {
        count: u16,
    },
    ProgramHeadersOutsideFile {
        start: u64,
        end: u64,
        file_len: u64,
    },
    /// `PT_INTERP`: the guest wants a dynamic linker, which does not exist here.
    Interpreter {
        index: usize,
    },
    /// A segment type the loader cannot honour (`PT_TLS`, `PT_SHLIB`).
    UnsupportedSegment {
        index: usize,
        segment_type: u32,
    },
    /// Two `PT_DYNAMIC` or two `PT_GNU_RELRO`.
    DuplicateSegment {
        first: usize,
        second: usize,
        segment_type: u32,
    },
    NoLoadableSegment,
    WritableAndExecutable {
        index: usize,
    },
    FileRangeOutsideFile {
        index: usize,
        start: u64,
        end: u64,
        file_len: u64,
    },
    MemorySmallerThanFile {
        index: usize,
        mem_size: u64,
        file_size: u64,
    },
    /// `p_vaddr` and `p_offset` differ within a page, so the file cannot be mapped page by page.
    Misaligned {
        index: usize,
        vaddr: u64,
        offset: u64,
    },
    /// `p_align` is not a power of two, or larger than the image base's alignment.
    BadAlignment {
        index: usize,
        align: u64,
    },
    /// The segment ends beyond [`MAX_IMAGE_BYTES`] (or beyond the address space).
    ImageTooLarge {
        index: usize,
        end: u64,
    },
    SegmentsOverlap {
        first: usize,
        second: usize,
        at: u64,
    },
    /// Two segments share the page at `page` but want different permissions.
    SharedPageConflict {
        first: usize,
        first_permission: Permission,
        second: usize,
        second_permission: Permission,
        page: u64,
    },
    EntryNotInCode {
        entry: u64,
    },
    /// `PT_GNU_RELRO` does not lie inside one loadable segment.
    RelroOutsideSegment {
        index: usize,
        start: u64,
        end: u64,
    },
    /// `DT_NEEDED`: the guest wants a shared library.
    NeedsLibrary {
        entry: usize,
    },
    /// A dynamic entry the loader refuses (`DT_REL*`, a `DT_PLTREL` other than `DT_RELA`).
    UnsupportedDynamicTag {
        entry: usize,
        tag: i64,
        value: u64,
    },
    DuplicateDynamicTag {
        entry: usize,
        tag: i64,
    },
    /// A table is given without its size or its address.
    MissingDynamicTag {
        tag: i64,
    },
    /// `DT_TEXTREL` or `DF_TEXTREL`: code that needs patching, which W^X forbids.
    TextRelocations {
        entry: usize,
    },
    BadRelocationEntrySize {
        tag: i64,
        size: u64,
    },
    BadRelocationTableSize {
        table: RelocationTable,
        size: u64,
    },
    /// The table is not inside the file-backed part of one loadable segment.
    RelocationTableOutsideFile {
        table: RelocationTable,
        vaddr: u64,
        size: u64,
    },
    UnsupportedRelocation {
        table: RelocationTable,
        index: usize,
        offset: u64,
        r_type: u32,
    },
    /// The 8 bytes the relocation writes are not inside one loadable segment.
    RelocationOutsideSegments {
        table: RelocationTable,
        index: usize,
        offset: u64,
    },
    /// The relocation would patch an executable segment.
    RelocationInCode {
        table: RelocationTable,
        index: usize,
        offset: u64,
        segment: usize,
    },
    /// A `DT_RELR` bitmap entry with no address entry before it.
    BadRelrEntry {
        index: usize,
    },
    /// More relocations than any guest needs (a few bytes of `DT_RELR`
    /// bitmaps expand to many; this bounds the loader's memory and work).
    TooManyRelocations {
        limit: usize,
    },
    /// Two relocations write some of the same bytes.
    OverlappingRelocations {
        first: u64,
        second: u64,
    },
    /// `file_offset` is `None` only if the bytes do not come from the file,
    /// which the scan's patterns (all non-zero bytes) rule out.
    ForbiddenInstruction {
        instruction: Forbidden,
        vaddr: u64,
        file_offset: Option<u64>,
    },
    /// A [`crate::PlanConfig`] size is not a page multiple (or the stack is empty).
    BadRegionSize {
        region: &'static str,
        bytes: u64,
    },
    /// Not the base of one of the guest slots.
    BadSlot {
        base: u64,
    },
    SlotTooSmall {
        needed: u64,
        available: u64,
    },
    /// The plan was not made from this guest by [`crate::plan`].
    PlanMismatch,
}

/// Names for the dynamic tags an error can mention.
fn tag_name(tag: i64) -> &'static str {
    match tag {
        1 => "DT_NEEDED",
        2 => "DT_PLTRELSZ",
        7 => "DT_RELA",
        8 => "DT_RELASZ",
        9 => "DT_RELAENT",
        17 => "DT_REL",
        18 => "DT_RELSZ",
        19 => "DT_RELENT",
        20 => "DT_PLTREL",
        22 => "DT_TEXTREL",
        23 => "DT_JMPREL",
        30 => "DT_FLAGS",
        35 => "DT_RELRSZ",
        36 => "DT_RELR",
        37 => "DT_RELRENT",
        _ => "dynamic tag",
    }
}

fn segment_type_name(segment_type: u32) -> &'static str {
    match segment_type {
        2 => "PT_DYNAMIC",
        5 => "PT_SHLIB",
        7 => "PT_TLS",
        0x6474_e552 => "PT_GNU_RELRO",
        _ => "segment type",
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match *self {
            Truncated { len } => write!(
                f,
                "the file is {len:#x} bytes, shorter than an ELF64 header (0x40 bytes)"
            ),
            BadMagic { found } => write!(f, "not an ELF file (magic {found:02x?})"),
            NotElf64 { class } => write!(f, "ELF class {class} is not 64-bit (2)"),
            NotLittleEndian { encoding } => {
                write!(f, "ELF data encoding {encoding} is not little-endian (1)")
            }
            BadVersion { version } => write!(f, "ELF version {version} is not 1"),
            WrongMachine { machine } => {
                write!(f, "machine {machine} is not x86_64 (62)")
            }
            NotPositionIndependent { file_type } => write!(
                f,
                "ELF type {file_type}{} is not ET_DYN (3): a guest must be a static \
                 position-independent executable",
                if file_type == 2 { " (ET_EXEC)" } else { "" }
            ),
            BadProgramHeaderSize { size } => {
                write!(f, "program header size {size} is not 56")
            }
            TooManyProgramHeaders { count } => write!(
                f,
                "{count} program headers, more than the {MAX_PROGRAM_HEADERS} a guest may have"
            ),
            ProgramHeadersOutsideFile {
                start,
                end,
                file_len,
            } => write!(
                f,
                "program headers {start:#x}..{end:#x} exceed the file ({file_len:#x} bytes)"
            ),
            Interpreter { index } => write!(
                f,
                "segment {index}: PT_INTERP asks for a dynamic linker; a guest must be static"
            ),
            UnsupportedSegment {
                index,
                segment_type,
            } => write!(
                f,
                "segment {index}: {} ({segment_type:#x}) is not supported",
                segment_type_name(segment_type)
            ),
            DuplicateSegment {
                first,
                second,
                segment_type,
            } => write!(
                f,
                "segments {first} and {second} are both {}",
                segment_type_name(segment_type)
            ),
            NoLoadableSegment => write!(f, "no PT_LOAD segment with contents"),
            WritableAndExecutable { index } => write!(
                f,
                "segment {index}: writable and executable (W^X forbids it)"
            ),
            FileRangeOutsideFile {
                index,
                start,
                end,
                file_len,
            } => write!(
                f,
                "segment {index}: file range {start:#x}..{end:#x} exceeds the file ({file_len:#x} bytes)"
            ),
            MemorySmallerThanFile {
                index,
                mem_size,
                file_size,
            } => write!(
                f,
                "segment {index}: memory size {mem_size:#x} is smaller than file size {file_size:#x}"
            ),
            Misaligned {
                index,
                vaddr,
                offset,
            } => write!(
                f,
                "segment {index}: address {vaddr:#x} and file offset {offset:#x} differ within a \
                 page, so it cannot be mapped page by page"
            ),
            BadAlignment { index, align } => write!(
                f,
                "segment {index}: alignment {align:#x} is not a power of two of at most {:#x}",
                crate::MAX_SEGMENT_ALIGN
            ),
            ImageTooLarge { index, end } => write!(
                f,
                "segment {index}: ends at {end:#x}, beyond the image limit {MAX_IMAGE_BYTES:#x}"
            ),
            SegmentsOverlap { first, second, at } => write!(
                f,
                "segments {first} and {second} overlap in memory at {at:#x}"
            ),
            SharedPageConflict {
                first,
                first_permission,
                second,
                second_permission,
                page,
            } => {
                write!(
                    f,
                    "segments {first} ({first_permission}) and {second} ({second_permission}) \
                     share the page at {page:#x} with different permissions"
                )
            }
            EntryNotInCode { entry } => write!(
                f,
                "entry point {entry:#x} is not inside the file contents of an executable segment"
            ),
            RelroOutsideSegment { index, start, end } => write!(
                f,
                "segment {index}: PT_GNU_RELRO {start:#x}..{end:#x} is not inside one loadable segment"
            ),
            NeedsLibrary { entry } => write!(
                f,
                "dynamic entry {entry}: DT_NEEDED asks for a shared library; a guest must be static"
            ),
            UnsupportedDynamicTag { entry, tag, value } => write!(
                f,
                "dynamic entry {entry}: {} ({tag}) = {value:#x} is not supported \
                 (only DT_RELA and DT_RELR relocations are)",
                tag_name(tag)
            ),
            DuplicateDynamicTag { entry, tag } => write!(
                f,
                "dynamic entry {entry}: {} ({tag}) appears twice",
                tag_name(tag)
            ),
            MissingDynamicTag { tag } => write!(
                f,
                "the dynamic section lacks {} ({tag}) that goes with the table it names",
                tag_name(tag)
            ),
            TextRelocations { entry } => write!(
                f,
                "dynamic entry {entry}: the guest has text relocations, which need writable code"
            ),
            BadRelocationEntrySize { tag, size } => write!(
                f,
                "{} is {size}, not the size of one entry ({})",
                tag_name(tag),
                if tag == 37 { 8 } else { 24 }
            ),
            BadRelocationTableSize { table, size } => write!(
                f,
                "{table} table size {size:#x} is not a whole number of entries"
            ),
            RelocationTableOutsideFile { table, vaddr, size } => write!(
                f,
                "{table} table {vaddr:#x}..{:#x} is not inside the file contents of one segment",
                vaddr.saturating_add(size)
            ),
            UnsupportedRelocation {
                table,
                index,
                offset,
                r_type,
            } => write!(
                f,
                "{table} relocation {index} at {offset:#x}: type {r_type} is not supported \
                 (only R_X86_64_RELATIVE (8) and R_X86_64_NONE (0) are)"
            ),
            RelocationOutsideSegments {
                table,
                index,
                offset,
            } => write!(
                f,
                "{table} relocation {index} at {offset:#x}: the 8 bytes it writes are not inside \
                 one loadable segment"
            ),
            RelocationInCode {
                table,
                index,
                offset,
                segment,
            } => write!(
                f,
                "{table} relocation {index} at {offset:#x}: patches executable segment {segment}"
            ),
            BadRelrEntry { index } => write!(
                f,
                "DT_RELR entry {index}: a bitmap with no address before it"
            ),
            TooManyRelocations { limit } => {
                write!(f, "more than {limit} relocations")
            }
            OverlappingRelocations { first, second } => write!(
                f,
                "relocations at {first:#x} and {second:#x} write the same bytes"
            ),
            ForbiddenInstruction {
                instruction,
                vaddr,
                file_offset,
            } => {
                write!(f, "{instruction} at address {vaddr:#x}")?;
                match file_offset {
                    Some(offset) => write!(f, " (file offset {offset:#x})")?,
                    None => write!(f, " (not in the file)")?,
                }
                write!(f, ": guests may not change their protection keys")
            }
            BadRegionSize { region, bytes } => write!(
                f,
                "{region} size {bytes:#x} is not a{} multiple of the page size",
                if region == "stack" { " non-zero" } else { "" }
            ),
            BadSlot { base } => write!(f, "{base:#x} is not the base of a guest slot"),
            SlotTooSmall { needed, available } => write!(
                f,
                "the guest needs {needed:#x} bytes of its slot, which has {available:#x}"
            ),
            PlanMismatch => write!(f, "the mapping plan was not made for this guest"),
        }
    }
}

impl core::error::Error for LoadError {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn messages_say_what_and_where() {
        let e = LoadError::FileRangeOutsideFile {
            index: 2,
            start: 0x1000,
            end: 0x9000,
            file_len: 0x5000,
        };
        assert_eq!(
            e.to_string(),
            "segment 2: file range 0x1000..0x9000 exceeds the file (0x5000 bytes)"
        );
        let e = LoadError::UnsupportedRelocation {
            table: RelocationTable::Rela,
            index: 3,
            offset: 0x3010,
            r_type: 1,
        };
        let text = e.to_string();
        assert!(text.contains("type 1") && text.contains("0x3010"), "{text}");
        let e = LoadError::ForbiddenInstruction {
            instruction: Forbidden::Wrpkru,
            vaddr: 0x2004,
            file_offset: Some(0x1004),
        };
        assert_eq!(
            e.to_string(),
            "WRPKRU at address 0x2004 (file offset 0x1004): guests may not change their \
             protection keys"
        );
        let e = LoadError::SharedPageConflict {
            first: 1,
            first_permission: Permission::ReadExecute,
            second: 2,
            second_permission: Permission::ReadWrite,
            page: 0x2000,
        };
        assert_eq!(
            e.to_string(),
            "segments 1 (read-execute) and 2 (read-write) share the page at 0x2000 with \
             different permissions"
        );
        let e = LoadError::NotPositionIndependent { file_type: 2 };
        assert!(e.to_string().contains("ET_EXEC"));
        let e = LoadError::UnsupportedDynamicTag {
            entry: 4,
            tag: 17,
            value: 0x400,
        };
        assert!(e.to_string().starts_with("dynamic entry 4: DT_REL (17)"));
    }
}
