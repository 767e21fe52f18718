//! Page-table policy for the one address space: which flags each kind of
//! mapping gets, how memory types are selected through the PAT, and how a
//! physical range is cut into the largest pages that fit.

/// x86-64 page-table entry bits (same values as `x86_64::structures::paging::PageTableFlags`).
pub mod bits {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const WRITE_THROUGH: u64 = 1 << 3;
    pub const NO_CACHE: u64 = 1 << 4;
    pub const HUGE_PAGE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    pub const NO_EXECUTE: u64 = 1 << 63;
}

/// The value the nucleus loads into IA32_PAT. Only entry 1 (selected by PWT
/// alone) changes: write-combining instead of write-through, for the
/// framebuffer. The others keep what Limine loads (0 WB, 2 UC-, 3 UC, 4 WP,
/// 5 WC; 6 and 7 at their power-on UC- and UC), so the bootloader's mappings
/// keep their meaning until the switch.
pub const PAT_VALUE: u64 = pat_entry(0, MemoryType::WriteBack)
    | pat_entry(1, MemoryType::WriteCombining)
    | pat_entry(2, MemoryType::Uncached)
    | pat_entry(3, MemoryType::Uncacheable)
    | pat_entry(4, MemoryType::WriteProtected)
    | pat_entry(5, MemoryType::WriteCombining)
    | pat_entry(6, MemoryType::Uncached)
    | pat_entry(7, MemoryType::Uncacheable);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MemoryType {
    Uncacheable = 0x00,
    WriteCombining = 0x01,
    WriteThrough = 0x04,
    WriteProtected = 0x05,
    WriteBack = 0x06,
    /// UC-: uncached, but an MTRR may make it write-combining.
    Uncached = 0x07,
}

const fn pat_entry(index: u32, ty: MemoryType) -> u64 {
    (ty as u64) << (index * 8)
}

/// The memory type a leaf entry selects under [`PAT_VALUE`] (PAT bit clear).
pub fn memory_type(flags: u64) -> MemoryType {
    let index =
        ((flags & bits::WRITE_THROUGH != 0) as u32) | (((flags & bits::NO_CACHE != 0) as u32) << 1);
    match (PAT_VALUE >> (index * 8)) as u8 {
        0x00 => MemoryType::Uncacheable,
        0x01 => MemoryType::WriteCombining,
        0x04 => MemoryType::WriteThrough,
        0x05 => MemoryType::WriteProtected,
        0x06 => MemoryType::WriteBack,
        _ => MemoryType::Uncached,
    }
}

/// What a mapping holds; each kind has exactly one set of flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingKind {
    /// Nucleus code: read + execute.
    Text,
    /// Nucleus constants: read only.
    Rodata,
    /// Nucleus data, bss, heap, stacks: read + write.
    Data,
    /// All RAM at a fixed offset: read + write, never executable.
    DirectMap,
    /// Device registers: uncacheable.
    Mmio,
    /// Linear framebuffer: write-combining.
    Framebuffer,
    /// Guest pages (ring 3). Not global: a page-table-switching build of the
    /// nucleus (for comparison) must be able to flush them.
    UserRead,
    UserReadWrite,
    UserReadExecute,
}

/// Leaf flags for `kind`. Every supervisor mapping is global (it is the same in
/// the one page table forever) and none is both writable and executable.
pub fn flags_for(kind: MappingKind) -> u64 {
    use bits::*;
    let base = PRESENT | GLOBAL;
    match kind {
        MappingKind::Text => base,
        MappingKind::Rodata => base | NO_EXECUTE,
        MappingKind::Data | MappingKind::DirectMap => base | WRITABLE | NO_EXECUTE,
        MappingKind::Mmio => base | WRITABLE | NO_EXECUTE | NO_CACHE | WRITE_THROUGH,
        MappingKind::Framebuffer => base | WRITABLE | NO_EXECUTE | WRITE_THROUGH,
        MappingKind::UserRead => PRESENT | USER | NO_EXECUTE,
        MappingKind::UserReadWrite => PRESENT | USER | WRITABLE | NO_EXECUTE,
        MappingKind::UserReadExecute => PRESENT | USER,
    }
}

/// W^X: a mapping may be writable or executable, never both.
pub fn is_write_xor_execute(flags: u64) -> bool {
    flags & bits::WRITABLE == 0 || flags & bits::NO_EXECUTE != 0
}

pub const SIZE_4K: u64 = 1 << 12;
pub const SIZE_2M: u64 = 1 << 21;
pub const SIZE_1G: u64 = 1 << 30;

/// Cuts `[phys, phys + length)`, mapped at `virt = phys + offset`, into pages:
/// at each step the largest size (1 GiB when `allow_1g`, 2 MiB, 4 KiB) to which
/// both addresses are aligned and which fits. `phys`, `length` and `offset`
/// must be 4 KiB aligned. Yields `(phys, size)`.
pub fn split_into_pages(
    phys: u64,
    length: u64,
    offset: u64,
    allow_1g: bool,
) -> impl Iterator<Item = (u64, u64)> {
    let end = phys + length;
    let mut at = phys;
    core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let virt = at.wrapping_add(offset);
        let size = [SIZE_1G, SIZE_2M, SIZE_4K]
            .into_iter()
            .filter(|&s| s != SIZE_1G || allow_1g)
            .find(|&s| at.is_multiple_of(s) && virt.is_multiple_of(s) && end - at >= s)
            .unwrap_or(SIZE_4K);
        let page = (at, size);
        at += size;
        Some(page)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NUCLEUS_KINDS: [MappingKind; 6] = [
        MappingKind::Text,
        MappingKind::Rodata,
        MappingKind::Data,
        MappingKind::DirectMap,
        MappingKind::Mmio,
        MappingKind::Framebuffer,
    ];
    const USER_KINDS: [MappingKind; 3] = [
        MappingKind::UserRead,
        MappingKind::UserReadWrite,
        MappingKind::UserReadExecute,
    ];

    #[test]
    fn every_kind_obeys_write_xor_execute() {
        for kind in USER_KINDS {
            let flags = flags_for(kind);
            assert!(is_write_xor_execute(flags), "{kind:?}");
            assert_ne!(
                flags & bits::USER,
                0,
                "{kind:?}: guest pages are user pages"
            );
            assert_eq!(
                flags & bits::GLOBAL,
                0,
                "{kind:?}: guest pages are not global"
            );
            assert_eq!(memory_type(flags), MemoryType::WriteBack);
        }
        for kind in NUCLEUS_KINDS {
            let flags = flags_for(kind);
            assert!(is_write_xor_execute(flags), "{kind:?}");
            assert!(flags & bits::PRESENT != 0);
            assert_eq!(
                flags & bits::USER,
                0,
                "{kind:?}: nucleus pages are supervisor-only"
            );
        }
    }

    #[test]
    fn sections_get_the_expected_permissions() {
        let text = flags_for(MappingKind::Text);
        assert_eq!(text & (bits::WRITABLE | bits::NO_EXECUTE), 0, "text is RX");
        let rodata = flags_for(MappingKind::Rodata);
        assert_eq!(rodata & bits::WRITABLE, 0);
        assert_ne!(rodata & bits::NO_EXECUTE, 0, "rodata is R + NX");
        for kind in [MappingKind::Data, MappingKind::DirectMap] {
            assert_ne!(flags_for(kind) & bits::WRITABLE, 0);
            assert_ne!(flags_for(kind) & bits::NO_EXECUTE, 0);
        }
    }

    #[test]
    fn memory_types_follow_the_pat() {
        assert_eq!(
            memory_type(flags_for(MappingKind::Text)),
            MemoryType::WriteBack
        );
        assert_eq!(
            memory_type(flags_for(MappingKind::DirectMap)),
            MemoryType::WriteBack
        );
        assert_eq!(
            memory_type(flags_for(MappingKind::Mmio)),
            MemoryType::Uncacheable
        );
        assert_eq!(
            memory_type(flags_for(MappingKind::Framebuffer)),
            MemoryType::WriteCombining
        );
        // Power-on PAT entries 0, 2, 3 are unchanged, so firmware mappings keep their meaning.
        assert_eq!(PAT_VALUE & 0xff, 0x06);
        assert_eq!((PAT_VALUE >> 16) & 0xffff, 0x0007);
        // Limine's entries 4 (WP) and 5 (WC, its framebuffer) are kept too.
        assert_eq!((PAT_VALUE >> 32) & 0xffff, 0x0105);
    }

    #[test]
    fn splits_into_huge_pages_where_aligned() {
        let offset = 0xffff_8000_0000_0000;
        let pages: std::vec::Vec<_> =
            split_into_pages(SIZE_2M - SIZE_4K, SIZE_1G + SIZE_2M + SIZE_4K, offset, true)
                .collect();
        assert_eq!(pages[0], (SIZE_2M - SIZE_4K, SIZE_4K));
        assert!(
            pages[1..]
                .iter()
                .take_while(|p| p.0 < SIZE_1G)
                .all(|p| p.1 == SIZE_2M)
        );
        assert!(
            !pages.contains(&(SIZE_1G, SIZE_1G)),
            "1 GiB page would overrun the end"
        );
        let without_1g: std::vec::Vec<_> =
            split_into_pages(0, 2 * SIZE_1G, offset, false).collect();
        assert!(without_1g.iter().all(|p| p.1 == SIZE_2M));
        let with_1g: std::vec::Vec<_> = split_into_pages(0, 2 * SIZE_1G, offset, true).collect();
        assert_eq!(with_1g, [(0, SIZE_1G), (SIZE_1G, SIZE_1G)]);
    }

    extern crate std;

    proptest! {
        /// The pages tile the range exactly, each aligned in both spaces.
        #[test]
        fn pages_tile_the_range(start in 0u64..(1 << 24), len in 1u64..(1 << 16), offset_pages in 0u64..(1 << 20), allow_1g: bool) {
            let phys = start * SIZE_4K;
            let length = len * SIZE_4K;
            let offset = offset_pages * SIZE_4K;
            let mut next = phys;
            for (p, size) in split_into_pages(phys, length, offset, allow_1g) {
                prop_assert_eq!(p, next);
                prop_assert_eq!(p % size, 0);
                prop_assert_eq!((p + offset) % size, 0);
                prop_assert!(allow_1g || size != SIZE_1G);
                next = p + size;
            }
            prop_assert_eq!(next, phys + length);
        }
    }
}
