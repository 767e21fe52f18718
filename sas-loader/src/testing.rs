//! A small ELF64 builder for the tests: guests with chosen segments, a
//! dynamic section and relocations, and the means to break them.
//!
//! Layout: the ELF header at 0, program headers right after it, each
//! segment's bytes at the file offset it names. Relocation tables and the
//! dynamic section, when there are any, go in a read-only "meta" segment on
//! the first free page after everything else (program header
//! `segments.len()`), followed by `PT_DYNAMIC` (program header
//! `segments.len() + 1`).

use alloc::vec::Vec;

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_TLS: u32 = 7;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PT_GNU_RELRO: u32 = 0x6474_e552;
pub const R_X86_64_NONE: u32 = 0;
pub const R_X86_64_64: u32 = 1;
pub const R_X86_64_JUMP_SLOT: u32 = 7;
pub const R_X86_64_RELATIVE: u32 = 8;
pub const DT_NULL: i64 = 0;
pub const DT_NEEDED: i64 = 1;
pub const DT_PLTRELSZ: i64 = 2;
pub const DT_RELA: i64 = 7;
pub const DT_RELASZ: i64 = 8;
pub const DT_RELAENT: i64 = 9;
pub const DT_REL: i64 = 17;
pub const DT_PLTREL: i64 = 20;
pub const DT_TEXTREL: i64 = 22;
pub const DT_JMPREL: i64 = 23;
pub const DT_FLAGS: i64 = 30;
pub const DT_RELRSZ: i64 = 35;
pub const DT_RELR: i64 = 36;
pub const DT_RELRENT: i64 = 37;

/// Where program header `index` starts in a built file.
pub const fn phdr_at(index: usize) -> usize {
    64 + index * 56
}

/// One program header and the bytes it covers.
#[derive(Clone, Debug)]
pub struct Seg {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub data: Vec<u8>,
    /// `p_filesz`; `None` means `data.len()`.
    pub file_size: Option<u64>,
    pub mem_size: u64,
    pub align: u64,
}

impl Seg {
    /// A `PT_LOAD` at `at` in both the file and memory.
    pub fn load(flags: u32, at: u64, data: &[u8]) -> Self {
        Seg {
            p_type: PT_LOAD,
            flags,
            offset: at,
            vaddr: at,
            data: data.to_vec(),
            file_size: None,
            mem_size: data.len() as u64,
            align: 0x1000,
        }
    }

    /// A header that covers no bytes (PT_GNU_STACK, PT_INTERP, ...).
    pub fn marker(p_type: u32, flags: u32) -> Self {
        Seg {
            p_type,
            flags,
            offset: 0,
            vaddr: 0,
            data: Vec::new(),
            file_size: None,
            mem_size: 0,
            align: 0,
        }
    }

    pub fn mem(mut self, mem_size: u64) -> Self {
        self.mem_size = mem_size;
        self
    }

    fn file_size(&self) -> u64 {
        self.file_size.unwrap_or(self.data.len() as u64)
    }
}

#[derive(Clone, Debug)]
pub struct ElfBuilder {
    pub class: u8,
    pub data_encoding: u8,
    pub e_type: u16,
    pub machine: u16,
    pub entry: u64,
    pub segments: Vec<Seg>,
    /// `(r_offset, type, addend)` for `DT_RELA`.
    pub rela: Vec<(u64, u32, i64)>,
    /// `(r_offset, type, addend)` for `DT_JMPREL`.
    pub plt: Vec<(u64, u32, i64)>,
    /// Raw `DT_RELR` words.
    pub relr: Vec<u64>,
    /// Extra dynamic entries, before the ones the tables need.
    pub dynamic: Vec<(i64, u64)>,
    /// Emit `PT_DYNAMIC` even with no entries.
    pub force_dynamic: bool,
}

/// Read-only data of the default guest.
pub const RODATA: &[u8] = b"guest read-only data";
/// Code of the default guest: nops and a ret.
pub const CODE: &[u8] = &[0x90, 0x90, 0x90, 0x90, 0x31, 0xc0, 0xc3];

impl ElfBuilder {
    /// An empty ELF: header only, no segments.
    pub fn empty() -> Self {
        ElfBuilder {
            class: 2,
            data_encoding: 1,
            e_type: 3,
            machine: 62,
            entry: 0,
            segments: Vec::new(),
            rela: Vec::new(),
            plt: Vec::new(),
            relr: Vec::new(),
            dynamic: Vec::new(),
            force_dynamic: false,
        }
    }

    /// A typical guest: rodata (segment 0, R, 0x1000), code (segment 1, RX,
    /// 0x2000, the entry), data with bss (segment 2, RW, 0x3000..0x4800,
    /// 0x40 file bytes), PT_GNU_STACK (segment 3), two relative relocations
    /// in .data pointing at rodata and code; meta at 0x5000 (segment 4),
    /// PT_DYNAMIC (segment 5).
    pub fn guest() -> Self {
        let data: Vec<u8> = (0..0x40).map(|i| i as u8 ^ 0x5a).collect();
        ElfBuilder {
            entry: 0x2000,
            segments: Vec::from([
                Seg::load(PF_R, 0x1000, RODATA),
                Seg::load(PF_R | PF_X, 0x2000, CODE),
                Seg::load(PF_R | PF_W, 0x3000, &data).mem(0x1800),
                Seg::marker(PT_GNU_STACK, PF_R | PF_W),
            ]),
            rela: Vec::from([
                (0x3000, R_X86_64_RELATIVE, 0x1000),
                (0x3008, R_X86_64_RELATIVE, 0x2004),
            ]),
            ..Self::empty()
        }
    }

    fn needs_meta(&self) -> bool {
        self.force_dynamic
            || !self.rela.is_empty()
            || !self.plt.is_empty()
            || !self.relr.is_empty()
            || !self.dynamic.is_empty()
    }

    /// The vaddr (and file offset) of the meta segment.
    pub fn meta_at(&self) -> u64 {
        let mem_end = self
            .segments
            .iter()
            .filter(|s| s.p_type == PT_LOAD)
            .map(|s| s.vaddr + s.mem_size)
            .max()
            .unwrap_or(0);
        let file_end = self
            .segments
            .iter()
            .map(|s| s.offset + s.data.len() as u64)
            .chain([phdr_at(self.segments.len() + 2) as u64])
            .max()
            .unwrap_or(0);
        mem_end.max(file_end).next_multiple_of(0x1000)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut segments = self.segments.clone();
        let mut meta = Vec::new();
        if self.needs_meta() {
            let at = self.meta_at();
            let mut dynamic = self.dynamic.clone();
            let mut table = |entries: &[(u64, u32, i64)], tags: [i64; 3], meta: &mut Vec<u8>| {
                if entries.is_empty() {
                    return;
                }
                let start = at + meta.len() as u64;
                for &(offset, kind, addend) in entries {
                    meta.extend_from_slice(&offset.to_le_bytes());
                    meta.extend_from_slice(&u64::from(kind).to_le_bytes());
                    meta.extend_from_slice(&addend.to_le_bytes());
                }
                dynamic.push((tags[0], start));
                dynamic.push((tags[1], entries.len() as u64 * 24));
                dynamic.push((tags[2], if tags[2] == DT_PLTREL { 7 } else { 24 }));
            };
            table(&self.rela, [DT_RELA, DT_RELASZ, DT_RELAENT], &mut meta);
            table(&self.plt, [DT_JMPREL, DT_PLTRELSZ, DT_PLTREL], &mut meta);
            if !self.relr.is_empty() {
                dynamic.push((DT_RELR, at + meta.len() as u64));
                dynamic.push((DT_RELRSZ, self.relr.len() as u64 * 8));
                dynamic.push((DT_RELRENT, 8));
                for word in &self.relr {
                    meta.extend_from_slice(&word.to_le_bytes());
                }
            }
            dynamic.push((DT_NULL, 0));
            let dynamic_at = meta.len() as u64;
            for (tag, value) in &dynamic {
                meta.extend_from_slice(&tag.to_le_bytes());
                meta.extend_from_slice(&value.to_le_bytes());
            }
            segments.push(Seg::load(PF_R, at, &meta));
            let mut dynamic_segment =
                Seg::load(PF_R, at + dynamic_at, &meta[dynamic_at as usize..]);
            dynamic_segment.p_type = PT_DYNAMIC;
            dynamic_segment.align = 8;
            segments.push(dynamic_segment);
            // The data is already in the meta segment.
            segments.last_mut().unwrap().file_size = Some(meta.len() as u64 - dynamic_at);
            segments.last_mut().unwrap().data.clear();
        }

        let headers_end = phdr_at(segments.len());
        let len = segments
            .iter()
            .map(|s| (s.offset + s.data.len() as u64) as usize)
            .chain([headers_end])
            .max()
            .unwrap();
        let mut file = alloc::vec![0u8; len];
        for s in &segments {
            file[s.offset as usize..s.offset as usize + s.data.len()].copy_from_slice(&s.data);
        }
        // ELF header.
        file[0..4].copy_from_slice(b"\x7fELF");
        file[4] = self.class;
        file[5] = self.data_encoding;
        file[6] = 1;
        put16(&mut file, 16, self.e_type);
        put16(&mut file, 18, self.machine);
        put32(&mut file, 20, 1);
        put64(&mut file, 24, self.entry);
        put64(&mut file, 32, 64);
        put16(&mut file, 52, 64);
        put16(&mut file, 54, 56);
        put16(&mut file, 56, segments.len() as u16);
        for (i, s) in segments.iter().enumerate() {
            let at = phdr_at(i);
            put32(&mut file, at, s.p_type);
            put32(&mut file, at + 4, s.flags);
            put64(&mut file, at + 8, s.offset);
            put64(&mut file, at + 16, s.vaddr);
            put64(&mut file, at + 24, s.vaddr);
            put64(&mut file, at + 32, s.file_size());
            put64(&mut file, at + 40, s.mem_size);
            put64(&mut file, at + 48, s.align);
        }
        file
    }
}

pub fn put16(file: &mut [u8], at: usize, value: u16) {
    file[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub fn put32(file: &mut [u8], at: usize, value: u32) {
    file[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub fn put64(file: &mut [u8], at: usize, value: u64) {
    file[at..at + 8].copy_from_slice(&value.to_le_bytes());
}
