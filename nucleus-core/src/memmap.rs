//! The firmware memory map as the nucleus sees it (Limine's entry types),
//! and the totals it reports at boot.

/// Kinds of physical memory, numbered as in the Limine protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    BadMemory,
    BootloaderReclaimable,
    ExecutableAndModules,
    Framebuffer,
    /// A type this nucleus does not know (newer firmware or bootloader).
    Unknown,
}

impl MemoryKind {
    pub fn from_limine(kind: u64) -> MemoryKind {
        match kind {
            0 => MemoryKind::Usable,
            1 => MemoryKind::Reserved,
            2 => MemoryKind::AcpiReclaimable,
            3 => MemoryKind::AcpiNvs,
            4 => MemoryKind::BadMemory,
            5 => MemoryKind::BootloaderReclaimable,
            6 => MemoryKind::ExecutableAndModules,
            7 => MemoryKind::Framebuffer,
            _ => MemoryKind::Unknown,
        }
    }

    /// Whether the nucleus keeps this memory in its direct map: RAM and
    /// firmware tables yes; reserved holes and bad memory no (touching them
    /// speculatively through a cacheable mapping is unsafe on real machines).
    pub fn is_direct_mapped(self) -> bool {
        matches!(
            self,
            MemoryKind::Usable
                | MemoryKind::AcpiReclaimable
                | MemoryKind::AcpiNvs
                | MemoryKind::BootloaderReclaimable
                | MemoryKind::ExecutableAndModules
                | MemoryKind::Framebuffer
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub base: u64,
    pub length: u64,
    pub kind: MemoryKind,
}

impl MemoryRegion {
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.length)
    }
}

/// Bytes per kind, for the boot report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryTotals {
    pub usable: u64,
    pub bootloader_reclaimable: u64,
    pub acpi: u64,
    pub executable_and_modules: u64,
    pub framebuffer: u64,
    pub reserved: u64,
    pub bad: u64,
    /// Highest end address of any RAM the nucleus maps.
    pub highest_mapped: u64,
    /// Entries that overlap an earlier one (a firmware bug; reported, the
    /// allocator only ever trusts `Usable` entries).
    pub overlaps: u32,
}

impl MemoryTotals {
    pub fn from_regions(regions: impl Iterator<Item = MemoryRegion> + Clone) -> MemoryTotals {
        let mut totals = MemoryTotals::default();
        let mut previous_end = 0u64;
        for region in regions {
            let slot = match region.kind {
                MemoryKind::Usable => &mut totals.usable,
                MemoryKind::BootloaderReclaimable => &mut totals.bootloader_reclaimable,
                MemoryKind::AcpiReclaimable | MemoryKind::AcpiNvs => &mut totals.acpi,
                MemoryKind::ExecutableAndModules => &mut totals.executable_and_modules,
                MemoryKind::Framebuffer => &mut totals.framebuffer,
                MemoryKind::BadMemory => &mut totals.bad,
                MemoryKind::Reserved | MemoryKind::Unknown => &mut totals.reserved,
            };
            *slot = slot.saturating_add(region.length);
            if region.kind.is_direct_mapped() {
                totals.highest_mapped = totals.highest_mapped.max(region.end());
            }
            // Limine sorts entries by base; an entry starting below the end of
            // the previous one overlaps it.
            if region.base < previous_end {
                totals.overlaps += 1;
            }
            previous_end = previous_end.max(region.end());
        }
        totals
    }
}

/// A byte count printed in MiB with one decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mib(pub u64);

impl core::fmt::Display for Mib {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let tenths = (self.0 as u128 * 10 + (1 << 19)) >> 20;
        write!(f, "{}.{} MiB", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn region(base: u64, length: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion { base, length, kind }
    }

    #[test]
    fn totals_sum_per_kind() {
        let map = [
            region(0, 0x9f000, MemoryKind::Usable),
            region(0x9f000, 0x61000, MemoryKind::Reserved),
            region(MIB, 100 * MIB, MemoryKind::Usable),
            region(101 * MIB, 2 * MIB, MemoryKind::BootloaderReclaimable),
            region(103 * MIB, MIB, MemoryKind::ExecutableAndModules),
            region(104 * MIB, MIB / 2, MemoryKind::AcpiReclaimable),
            region(0xfd00_0000, 4 * MIB, MemoryKind::Framebuffer),
            region(0xfec0_0000, MIB, MemoryKind::Unknown),
        ];
        let t = MemoryTotals::from_regions(map.iter().copied());
        assert_eq!(t.usable, 0x9f000 + 100 * MIB);
        assert_eq!(t.reserved, 0x61000 + MIB);
        assert_eq!(t.bootloader_reclaimable, 2 * MIB);
        assert_eq!(t.acpi, MIB / 2);
        assert_eq!(t.framebuffer, 4 * MIB);
        assert_eq!(t.highest_mapped, 0xfd00_0000 + 4 * MIB);
        assert_eq!(t.overlaps, 0);
    }

    #[test]
    fn mib_rounds_to_a_tenth() {
        extern crate std;
        assert_eq!(std::format!("{}", Mib(0)), "0.0 MiB");
        assert_eq!(std::format!("{}", Mib(255 * MIB + MIB / 2)), "255.5 MiB");
        assert_eq!(std::format!("{}", Mib(MIB - 1)), "1.0 MiB");
    }

    #[test]
    fn overlaps_are_counted() {
        let map = [
            region(0, 2 * MIB, MemoryKind::Usable),
            region(MIB, 2 * MIB, MemoryKind::Reserved),
        ];
        assert_eq!(MemoryTotals::from_regions(map.iter().copied()).overlaps, 1);
    }

    #[test]
    fn unknown_kinds_are_kept_out_of_the_direct_map() {
        assert!(!MemoryKind::from_limine(42).is_direct_mapped());
        assert!(!MemoryKind::Reserved.is_direct_mapped());
        assert!(MemoryKind::from_limine(0).is_direct_mapped());
    }
}
