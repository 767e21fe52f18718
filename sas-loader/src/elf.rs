//! Reading and validating a guest ELF: a static position-independent
//! executable for x86_64 (`ET_DYN`, no `PT_INTERP`, no `DT_NEEDED`), as rustc
//! links for `x86_64-unknown-none`.
//!
//! Everything later stages rely on is checked here, once, so that
//! [`crate::plan`] and [`crate::load_segments`] are arithmetic over trusted
//! values. Sections are ignored: only program headers and the dynamic
//! section decide how a guest is loaded.
//!
//! Relocations: only `R_X86_64_RELATIVE` (and `R_X86_64_NONE`) from
//! `DT_RELA`, and packed relative relocations from `DT_RELR`, which lld emits
//! with `-z pack-relative-relocs`. `DT_REL` is refused (x86_64 never uses it)
//! and so is any `DT_JMPREL` entry that is not a no-op (PLT slots need
//! symbols). A relocation may patch any non-executable segment: writable
//! data, and also read-only data such as `.data.rel.ro`, because the loader
//! writes the bytes before the nucleus maps them read-only. Patching code is
//! refused: code pages are never writable, not even while loading.

use crate::{
    LoadError, MAX_IMAGE_BYTES, MAX_PROGRAM_HEADERS, MAX_SEGMENT_ALIGN, PAGE_SIZE, Permission,
    RelocationTable, page_ceil, page_floor, scan::scan_forbidden,
};
use alloc::vec::Vec;
use object::{
    LittleEndian as LE,
    elf::{self, Dyn64, FileHeader64, ProgramHeader64, Rela64},
    read::ReadRef,
};

const HEADER_SIZE: usize = core::mem::size_of::<FileHeader64<LE>>();
const PROGRAM_HEADER_SIZE: u64 = core::mem::size_of::<ProgramHeader64<LE>>() as u64;
const DYN_SIZE: u64 = core::mem::size_of::<Dyn64<LE>>() as u64;
const RELA_SIZE: u64 = core::mem::size_of::<Rela64<LE>>() as u64;
const RELR_SIZE: u64 = 8;
/// Every relocation this loader applies writes one little-endian u64.
const RELOCATION_WIDTH: u64 = 8;

/// A `PT_LOAD` with contents, addresses relative to the image base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The program header's index, as errors name it.
    pub index: usize,
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub permission: Permission,
}

impl Segment {
    pub fn mem_end(&self) -> u64 {
        self.vaddr + self.mem_size
    }

    fn contains(&self, vaddr: u64) -> bool {
        (self.vaddr..self.mem_end()).contains(&vaddr)
    }

    /// The file offset of `vaddr`, if it lies in the file-backed part.
    fn file_offset_of(&self, vaddr: u64) -> Option<u64> {
        let delta = vaddr.checked_sub(self.vaddr)?;
        (delta < self.file_size).then_some(self.file_offset + delta)
    }
}

/// Write `image base + addend` as a little-endian u64 at `offset` (relative
/// to the image base). `DT_RELR` entries carry their addend in the file; the
/// parser reads it then, so all relocations look alike from here on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocation {
    pub offset: u64,
    pub addend: i64,
}

/// Consecutive image pages with one permission: what becomes one mapping.
/// Segments that share a page (with the same permission) are in one run; a
/// writable segment's `PT_GNU_RELRO` pages are a read-only run of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageRun {
    /// Page-aligned, relative to the image base.
    pub offset: u64,
    pub pages: u64,
    pub permission: Permission,
}

impl ImageRun {
    pub fn end(&self) -> u64 {
        self.offset + self.pages * PAGE_SIZE
    }
}

/// A guest that passed every check. Borrowing the file avoids a copy of it
/// until [`crate::load_segments`] builds the bytes to map.
#[derive(Clone, Debug)]
pub struct GuestElf<'a> {
    file: &'a [u8],
    entry: u64,
    /// Sorted by address, none empty, none overlapping.
    segments: Vec<Segment>,
    /// Sorted by address, disjoint.
    runs: Vec<ImageRun>,
    /// Sorted by offset, no two writing the same byte.
    relocations: Vec<Relocation>,
    image_size: u64,
}

impl<'a> GuestElf<'a> {
    pub fn file(&self) -> &'a [u8] {
        self.file
    }

    /// The entry point, relative to the image base.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn runs(&self) -> &[ImageRun] {
        &self.runs
    }

    pub fn relocations(&self) -> &[Relocation] {
        &self.relocations
    }

    /// From 0 to the end of the highest segment's last page.
    pub fn image_size(&self) -> u64 {
        self.image_size
    }

    /// The segment holding `vaddr`, by binary search.
    fn segment_at(&self, vaddr: u64) -> Option<&Segment> {
        segment_at(&self.segments, vaddr)
    }

    /// The image's memory at `start..start + len` before relocation,
    /// trimmed after the last file-backed byte (the rest is zero).
    pub(crate) fn file_bytes_in(&self, start: u64, len: u64) -> Vec<u8> {
        let end = start + len;
        let mut bytes = Vec::new();
        for s in &self.segments {
            let from = s.vaddr.max(start);
            let to = (s.vaddr + s.file_size).min(end);
            if from >= to {
                continue;
            }
            let at = (from - start) as usize;
            let count = (to - from) as usize;
            let source = (s.file_offset + (from - s.vaddr)) as usize;
            if bytes.len() < at + count {
                bytes.resize(at + count, 0);
            }
            bytes[at..at + count].copy_from_slice(&self.file[source..source + count]);
        }
        bytes
    }
}

fn segment_at(segments: &[Segment], vaddr: u64) -> Option<&Segment> {
    let after = segments.partition_point(|s| s.vaddr <= vaddr);
    segments[..after].last().filter(|s| s.contains(vaddr))
}

/// Parses and validates a guest. See the module documentation for what is
/// accepted.
pub fn parse(file: &[u8]) -> Result<GuestElf<'_>, LoadError> {
    let header = read_header(file)?;
    let program_headers = read_program_headers(file, header)?;

    let mut segments = Vec::new();
    let mut dynamic: Option<(usize, &ProgramHeader64<LE>)> = None;
    let mut relro: Option<(usize, &ProgramHeader64<LE>)> = None;
    for (index, ph) in program_headers.iter().enumerate() {
        let segment_type = ph.p_type.get(LE);
        match segment_type {
            elf::PT_LOAD => {
                if let Some(segment) = load_segment(file, index, ph)? {
                    segments.push(segment);
                }
            }
            elf::PT_DYNAMIC => {
                file_range(file, index, ph)?;
                only_one(&mut dynamic, index, ph, segment_type.0)?;
            }
            elf::PT_GNU_RELRO => only_one(&mut relro, index, ph, segment_type.0)?,
            elf::PT_INTERP => return Err(LoadError::Interpreter { index }),
            elf::PT_TLS | elf::PT_SHLIB => {
                return Err(LoadError::UnsupportedSegment {
                    index,
                    segment_type: segment_type.0,
                });
            }
            // PT_PHDR, PT_NOTE, PT_GNU_STACK (the stack is never executable
            // whatever it says), PT_GNU_EH_FRAME, ...: nothing to do.
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(LoadError::NoLoadableSegment);
    }
    segments.sort_by_key(|s| s.vaddr);
    for pair in segments.windows(2) {
        if pair[0].mem_end() > pair[1].vaddr {
            return Err(LoadError::SegmentsOverlap {
                first: pair[0].index,
                second: pair[1].index,
                at: pair[1].vaddr,
            });
        }
    }

    let entry = header.e_entry.get(LE);
    let in_code = segment_at(&segments, entry)
        .is_some_and(|s| s.permission.is_executable() && s.file_offset_of(entry).is_some());
    if !in_code {
        return Err(LoadError::EntryNotInCode { entry });
    }

    let mut runs = image_runs(&segments)?;
    if let Some((index, ph)) = relro {
        apply_relro(&segments, &mut runs, index, ph)?;
    }
    let relocations = match dynamic {
        Some((_, ph)) => read_relocations(file, &segments, ph)?,
        None => Vec::new(),
    };
    let image_size = segments
        .iter()
        .map(|s| page_ceil(s.mem_end()))
        .max()
        .unwrap_or(0);

    let guest = GuestElf {
        file,
        entry,
        segments,
        runs,
        relocations,
        image_size,
    };
    check_forbidden(&guest)?;
    Ok(guest)
}

fn read_header(file: &[u8]) -> Result<&FileHeader64<LE>, LoadError> {
    if file.len() < HEADER_SIZE {
        return Err(LoadError::Truncated { len: file.len() });
    }
    let header: &FileHeader64<LE> = file
        .read_at(0)
        .map_err(|_| LoadError::Truncated { len: file.len() })?;
    let ident = &header.e_ident;
    if ident.magic != elf::ELFMAG {
        return Err(LoadError::BadMagic { found: ident.magic });
    }
    if ident.class != elf::ELFCLASS64 {
        return Err(LoadError::NotElf64 {
            class: ident.class.0,
        });
    }
    if ident.data != elf::ELFDATA2LSB {
        return Err(LoadError::NotLittleEndian {
            encoding: ident.data.0,
        });
    }
    let version = header.e_version.get(LE);
    if ident.version != elf::EV_CURRENT {
        return Err(LoadError::BadVersion {
            version: ident.version.0.into(),
        });
    }
    if version != u32::from(elf::EV_CURRENT.0) {
        return Err(LoadError::BadVersion { version });
    }
    let machine = header.e_machine.get(LE);
    if machine != elf::EM_X86_64 {
        return Err(LoadError::WrongMachine { machine: machine.0 });
    }
    let file_type = header.e_type.get(LE);
    if file_type != elf::ET_DYN {
        return Err(LoadError::NotPositionIndependent {
            file_type: file_type.0,
        });
    }
    Ok(header)
}

fn read_program_headers<'f>(
    file: &'f [u8],
    header: &FileHeader64<LE>,
) -> Result<&'f [ProgramHeader64<LE>], LoadError> {
    let size = header.e_phentsize.get(LE);
    let count = header.e_phnum.get(LE);
    if u64::from(size) != PROGRAM_HEADER_SIZE {
        return Err(LoadError::BadProgramHeaderSize { size });
    }
    // This also refuses PN_XNUM (0xffff), the escape to a count in section 0.
    if usize::from(count) > MAX_PROGRAM_HEADERS {
        return Err(LoadError::TooManyProgramHeaders { count });
    }
    let start = header.e_phoff.get(LE);
    let end = start.saturating_add(u64::from(count) * PROGRAM_HEADER_SIZE);
    let file_len = file.len() as u64;
    if end > file_len {
        return Err(LoadError::ProgramHeadersOutsideFile {
            start,
            end,
            file_len,
        });
    }
    file.read_slice_at(start, count.into())
        .map_err(|_| LoadError::ProgramHeadersOutsideFile {
            start,
            end,
            file_len,
        })
}

/// Records the one segment of a kind that may appear once.
fn only_one<'f>(
    slot: &mut Option<(usize, &'f ProgramHeader64<LE>)>,
    index: usize,
    ph: &'f ProgramHeader64<LE>,
    segment_type: u32,
) -> Result<(), LoadError> {
    if let Some((first, _)) = *slot {
        return Err(LoadError::DuplicateSegment {
            first,
            second: index,
            segment_type,
        });
    }
    *slot = Some((index, ph));
    Ok(())
}

/// The segment's file bytes as a range of the file, checked.
fn file_range(
    file: &[u8],
    index: usize,
    ph: &ProgramHeader64<LE>,
) -> Result<core::ops::Range<u64>, LoadError> {
    let start = ph.p_offset.get(LE);
    let size = ph.p_filesz.get(LE);
    let file_len = file.len() as u64;
    match start.checked_add(size) {
        Some(end) if end <= file_len => Ok(start..end),
        end => Err(LoadError::FileRangeOutsideFile {
            index,
            start,
            end: end.unwrap_or(u64::MAX),
            file_len,
        }),
    }
}

/// Validates a `PT_LOAD`; `None` for one that occupies no memory.
fn load_segment(
    file: &[u8],
    index: usize,
    ph: &ProgramHeader64<LE>,
) -> Result<Option<Segment>, LoadError> {
    let flags = ph.p_flags.get(LE).0;
    let writable = flags & elf::PF_W.0 != 0;
    let executable = flags & elf::PF_X.0 != 0;
    if writable && executable {
        return Err(LoadError::WritableAndExecutable { index });
    }
    let file_bytes = file_range(file, index, ph)?;
    let vaddr = ph.p_vaddr.get(LE);
    let mem_size = ph.p_memsz.get(LE);
    let file_size = file_bytes.end - file_bytes.start;
    if mem_size < file_size {
        return Err(LoadError::MemorySmallerThanFile {
            index,
            mem_size,
            file_size,
        });
    }
    if vaddr % PAGE_SIZE != file_bytes.start % PAGE_SIZE {
        return Err(LoadError::Misaligned {
            index,
            vaddr,
            offset: file_bytes.start,
        });
    }
    let align = ph.p_align.get(LE);
    if align > 1 && (!align.is_power_of_two() || align > MAX_SEGMENT_ALIGN) {
        return Err(LoadError::BadAlignment { index, align });
    }
    match vaddr.checked_add(mem_size) {
        Some(end) if end <= MAX_IMAGE_BYTES => {}
        end => {
            return Err(LoadError::ImageTooLarge {
                index,
                end: end.unwrap_or(u64::MAX),
            });
        }
    }
    if mem_size == 0 {
        return Ok(None);
    }
    // x86 pages are always readable, so a segment without PF_R is read-only.
    let permission = if executable {
        Permission::ReadExecute
    } else if writable {
        Permission::ReadWrite
    } else {
        Permission::Read
    };
    Ok(Some(Segment {
        index,
        vaddr,
        mem_size,
        file_offset: file_bytes.start,
        file_size,
        permission,
    }))
}

/// Cuts the image into runs of pages, one per segment, except that
/// segments sharing a page share a run; that is only allowed with the same
/// permission, since a page has one.
fn image_runs(segments: &[Segment]) -> Result<Vec<ImageRun>, LoadError> {
    let mut runs: Vec<ImageRun> = Vec::new();
    let mut previous: Option<&Segment> = None;
    for s in segments {
        let first_page = page_floor(s.vaddr);
        let end = page_ceil(s.mem_end());
        if let (Some(p), Some(run)) = (previous, runs.last_mut())
            && page_ceil(p.mem_end()) > first_page
        {
            if p.permission != s.permission {
                return Err(LoadError::SharedPageConflict {
                    first: p.index,
                    first_permission: p.permission,
                    second: s.index,
                    second_permission: s.permission,
                    page: first_page,
                });
            }
            run.pages = (end - run.offset) / PAGE_SIZE;
        } else {
            runs.push(ImageRun {
                offset: first_page,
                pages: (end - first_page) / PAGE_SIZE,
                permission: s.permission,
            });
        }
        previous = Some(s);
    }
    Ok(runs)
}

/// Makes a writable segment's `PT_GNU_RELRO` pages read-only: they are only
/// written by relocation, which the loader does before mapping. Both ends
/// round down to pages, as glibc and musl do; a page the segment shares with
/// another segment stays as it is, so no other segment loses write access.
fn apply_relro(
    segments: &[Segment],
    runs: &mut Vec<ImageRun>,
    index: usize,
    ph: &ProgramHeader64<LE>,
) -> Result<(), LoadError> {
    let start = ph.p_vaddr.get(LE);
    let size = ph.p_memsz.get(LE);
    if size == 0 {
        return Ok(());
    }
    let end = start.checked_add(size);
    let position = segments
        .iter()
        .position(|s| s.contains(start) && end.is_some_and(|e| e <= s.mem_end()));
    let Some(position) = position else {
        return Err(LoadError::RelroOutsideSegment {
            index,
            start,
            end: end.unwrap_or(u64::MAX),
        });
    };
    let segment = &segments[position];
    if segment.permission != Permission::ReadWrite {
        return Ok(());
    }
    let end = end.unwrap_or(u64::MAX);
    let mut low = page_floor(start);
    let mut high = page_floor(end);
    let shares_first =
        position > 0 && page_ceil(segments[position - 1].mem_end()) > page_floor(segment.vaddr);
    if shares_first {
        low = low.max(page_floor(segment.vaddr) + PAGE_SIZE);
    }
    let shares_last = segments
        .get(position + 1)
        .is_some_and(|next| page_floor(next.vaddr) < page_ceil(segment.mem_end()));
    if shares_last {
        high = high.min(page_ceil(segment.mem_end()) - PAGE_SIZE);
    }
    if low >= high {
        return Ok(());
    }
    let Some(at) = runs.iter().position(|r| r.offset <= low && high <= r.end()) else {
        return Ok(());
    };
    let run = runs[at];
    let pieces = [
        (run.offset, low, run.permission),
        (low, high, Permission::Read),
        (high, run.end(), run.permission),
    ];
    let replacement =
        pieces
            .into_iter()
            .filter(|(from, to, _)| from < to)
            .map(|(from, to, permission)| ImageRun {
                offset: from,
                pages: (to - from) / PAGE_SIZE,
                permission,
            });
    runs.splice(at..=at, replacement);
    Ok(())
}

/// The dynamic entries the loader acts on.
#[derive(Default)]
struct DynamicTable {
    rela: Option<u64>,
    rela_size: Option<u64>,
    rela_entry: Option<u64>,
    plt: Option<u64>,
    plt_size: Option<u64>,
    plt_kind: Option<u64>,
    relr: Option<u64>,
    relr_size: Option<u64>,
    relr_entry: Option<u64>,
}

fn read_dynamic(file: &[u8], ph: &ProgramHeader64<LE>) -> Result<DynamicTable, LoadError> {
    // The range was checked when the program header was read.
    let count = (ph.p_filesz.get(LE) / DYN_SIZE) as usize;
    let entries: &[Dyn64<LE>] = file
        .read_slice_at(ph.p_offset.get(LE), count)
        .unwrap_or(&[]);
    let mut table = DynamicTable::default();
    for (entry, d) in entries.iter().enumerate() {
        let tag = d.d_tag.get(LE);
        let value = d.d_val.get(LE);
        let slot = match tag {
            elf::DT_NULL => break,
            elf::DT_NEEDED => return Err(LoadError::NeedsLibrary { entry }),
            elf::DT_TEXTREL => return Err(LoadError::TextRelocations { entry }),
            elf::DT_FLAGS if value & elf::DF_TEXTREL.0 != 0 => {
                return Err(LoadError::TextRelocations { entry });
            }
            elf::DT_REL | elf::DT_RELSZ | elf::DT_RELENT => {
                return Err(LoadError::UnsupportedDynamicTag {
                    entry,
                    tag: tag.0,
                    value,
                });
            }
            elf::DT_PLTREL if value != elf::DT_RELA.0 as u64 => {
                return Err(LoadError::UnsupportedDynamicTag {
                    entry,
                    tag: tag.0,
                    value,
                });
            }
            elf::DT_RELA => &mut table.rela,
            elf::DT_RELASZ => &mut table.rela_size,
            elf::DT_RELAENT => &mut table.rela_entry,
            elf::DT_JMPREL => &mut table.plt,
            elf::DT_PLTRELSZ => &mut table.plt_size,
            elf::DT_PLTREL => &mut table.plt_kind,
            elf::DT_RELR => &mut table.relr,
            elf::DT_RELRSZ => &mut table.relr_size,
            elf::DT_RELRENT => &mut table.relr_entry,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(LoadError::DuplicateDynamicTag { entry, tag: tag.0 });
        }
    }
    Ok(table)
}

/// A table's address and size: both present, or neither (or a zero size).
fn table_location(
    address: Option<u64>,
    size: Option<u64>,
    address_tag: elf::DynamicTag,
    size_tag: elf::DynamicTag,
) -> Result<Option<(u64, u64)>, LoadError> {
    match (address, size) {
        (_, Some(0)) | (None, None) => Ok(None),
        (Some(address), Some(size)) => Ok(Some((address, size))),
        (Some(_), None) => Err(LoadError::MissingDynamicTag { tag: size_tag.0 }),
        (None, Some(_)) => Err(LoadError::MissingDynamicTag { tag: address_tag.0 }),
    }
}

/// The file bytes of a relocation table, which must lie inside the
/// file-backed part of one segment.
fn table_bytes<'f>(
    file: &'f [u8],
    segments: &[Segment],
    table: RelocationTable,
    (vaddr, size): (u64, u64),
    entry_size: u64,
) -> Result<&'f [u8], LoadError> {
    if size % entry_size != 0 {
        return Err(LoadError::BadRelocationTableSize { table, size });
    }
    let outside = LoadError::RelocationTableOutsideFile { table, vaddr, size };
    let segment = segment_at(segments, vaddr).ok_or(outside.clone())?;
    let start = segment.file_offset_of(vaddr).ok_or(outside.clone())?;
    let end = vaddr.checked_add(size).ok_or(outside.clone())?;
    if end > segment.vaddr + segment.file_size {
        return Err(outside);
    }
    Ok(&file[start as usize..(start + size) as usize])
}

fn check_entry_size(
    size: Option<u64>,
    expected: u64,
    tag: elf::DynamicTag,
) -> Result<(), LoadError> {
    match size {
        Some(size) if size != expected => {
            Err(LoadError::BadRelocationEntrySize { tag: tag.0, size })
        }
        _ => Ok(()),
    }
}

fn read_relocations(
    file: &[u8],
    segments: &[Segment],
    dynamic: &ProgramHeader64<LE>,
) -> Result<Vec<Relocation>, LoadError> {
    let table = read_dynamic(file, dynamic)?;
    let mut relocations = Vec::new();

    check_entry_size(table.rela_entry, RELA_SIZE, elf::DT_RELAENT)?;
    let rela = table_location(table.rela, table.rela_size, elf::DT_RELA, elf::DT_RELASZ)?;
    let plt = table_location(table.plt, table.plt_size, elf::DT_JMPREL, elf::DT_PLTRELSZ)?;
    if plt.is_some() && table.plt_kind.is_none() {
        return Err(LoadError::MissingDynamicTag {
            tag: elf::DT_PLTREL.0,
        });
    }
    for (kind, location) in [(RelocationTable::Rela, rela), (RelocationTable::Plt, plt)] {
        let Some(location) = location else { continue };
        let bytes = table_bytes(file, segments, kind, location, RELA_SIZE)?;
        let entries: &[Rela64<LE>] = bytes
            .read_slice_at(0, bytes.len() / RELA_SIZE as usize)
            .unwrap_or(&[]);
        for (index, rela) in entries.iter().enumerate() {
            let offset = rela.r_offset.get(LE);
            match rela.r_type(LE, false) {
                elf::R_X86_64_NONE => {}
                elf::R_X86_64_RELATIVE => {
                    if relocations.len() >= MAX_RELOCATIONS {
                        return Err(LoadError::TooManyRelocations {
                            limit: MAX_RELOCATIONS,
                        });
                    }
                    check_target(segments, kind, index, offset)?;
                    relocations.push(Relocation {
                        offset,
                        addend: rela.r_addend.get(LE),
                    });
                }
                other => {
                    return Err(LoadError::UnsupportedRelocation {
                        table: kind,
                        index,
                        offset,
                        r_type: other.0,
                    });
                }
            }
        }
    }

    check_entry_size(table.relr_entry, RELR_SIZE, elf::DT_RELRENT)?;
    if let Some(location) =
        table_location(table.relr, table.relr_size, elf::DT_RELR, elf::DT_RELRSZ)?
    {
        let bytes = table_bytes(file, segments, RelocationTable::Relr, location, RELR_SIZE)?;
        read_relr(file, segments, bytes, &mut relocations)?;
    }

    relocations.sort_unstable_by_key(|r| r.offset);
    for pair in relocations.windows(2) {
        if pair[1].offset < pair[0].offset + RELOCATION_WIDTH {
            return Err(LoadError::OverlappingRelocations {
                first: pair[0].offset,
                second: pair[1].offset,
            });
        }
    }
    Ok(relocations)
}

/// Most relocations a guest may have: the loader holds 16 bytes for each
/// (and at most 8 patch bytes of 16 for one in zero fill), so 9 MiB at
/// most. The largest guest here has about 2,200.
pub const MAX_RELOCATIONS: usize = 1 << 16;

/// Decodes `DT_RELR`: an even word is an address to relocate; an odd word is
/// a bitmap of the 63 words after the last address (bit n for word n - 1).
/// The addend is what the file holds at the target (zero in zero fill).
fn read_relr(
    file: &[u8],
    segments: &[Segment],
    bytes: &[u8],
    relocations: &mut Vec<Relocation>,
) -> Result<(), LoadError> {
    let mut next: Option<u64> = None;
    let mut add = |index: usize, offset: u64| -> Result<(), LoadError> {
        if relocations.len() >= MAX_RELOCATIONS {
            return Err(LoadError::TooManyRelocations {
                limit: MAX_RELOCATIONS,
            });
        }
        let segment = check_target(segments, RelocationTable::Relr, index, offset)?;
        let mut stored = [0u8; 8];
        for (k, byte) in stored.iter_mut().enumerate() {
            if let Some(at) = segment.file_offset_of(offset + k as u64) {
                *byte = file[at as usize];
            }
        }
        relocations.push(Relocation {
            offset,
            addend: i64::from_le_bytes(stored),
        });
        Ok(())
    };
    for (index, word) in bytes.chunks_exact(8).enumerate() {
        let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        if word & 1 == 0 {
            add(index, word)?;
            next = word.checked_add(RELOCATION_WIDTH);
        } else {
            let base = next.ok_or(LoadError::BadRelrEntry { index })?;
            for bit in 1..64 {
                if word >> bit & 1 == 1 {
                    let offset = base
                        .checked_add((bit - 1) * RELOCATION_WIDTH)
                        .ok_or(LoadError::BadRelrEntry { index })?;
                    add(index, offset)?;
                }
            }
            next = base.checked_add(63 * RELOCATION_WIDTH);
        }
    }
    Ok(())
}

/// The 8 bytes at `offset` must lie in one non-executable segment.
fn check_target(
    segments: &[Segment],
    table: RelocationTable,
    index: usize,
    offset: u64,
) -> Result<&Segment, LoadError> {
    let outside = LoadError::RelocationOutsideSegments {
        table,
        index,
        offset,
    };
    let segment = segment_at(segments, offset).ok_or(outside.clone())?;
    if segment.permission.is_executable() {
        return Err(LoadError::RelocationInCode {
            table,
            index,
            offset,
            segment: segment.index,
        });
    }
    match offset.checked_add(RELOCATION_WIDTH) {
        Some(end) if end <= segment.mem_end() => Ok(segment),
        _ => Err(outside),
    }
}

/// Scans the code. Only file bytes need scanning: every pattern byte is
/// non-zero, so no pattern reaches into zero fill or a gap between segments.
/// Executable segments whose file bytes touch in memory are scanned as one,
/// so nothing hides across the boundary. Relocations never patch code, so
/// these bytes are the bytes that will run.
fn check_forbidden(guest: &GuestElf<'_>) -> Result<(), LoadError> {
    let code = guest
        .segments
        .iter()
        .filter(|s| s.permission.is_executable());
    let mut chunk: Vec<u8> = Vec::new();
    let mut chunk_start = 0;
    let mut segments = code.peekable();
    while let Some(s) = segments.next() {
        if chunk.is_empty() {
            chunk_start = s.vaddr;
        }
        let bytes = &guest.file[s.file_offset as usize..(s.file_offset + s.file_size) as usize];
        chunk.extend_from_slice(bytes);
        let continues = segments
            .peek()
            .is_some_and(|next| next.vaddr == s.vaddr + s.file_size);
        if continues {
            continue;
        }
        if let Some((at, instruction)) = scan_forbidden(&chunk) {
            let vaddr = chunk_start + at as u64;
            let file_offset = guest
                .segment_at(vaddr)
                .and_then(|s| s.file_offset_of(vaddr));
            return Err(LoadError::ForbiddenInstruction {
                instruction,
                vaddr,
                file_offset,
            });
        }
        chunk.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
