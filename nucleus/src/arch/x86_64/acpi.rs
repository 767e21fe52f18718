//! ACPI tables from the RSDP Limine found: the MADT gives the CPU count and
//! the interrupt controllers, the MCFG where PCI configuration space is
//! memory-mapped.

use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;
use nucleus_core::paging::MappingKind;

/// Maps tables through the direct map (read-only), adding pages for tables
/// that firmware put outside the RAM ranges of the memory map.
#[derive(Clone, Copy)]
struct DirectMapHandler;

impl AcpiHandler for DirectMapHandler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt =
            crate::memory::map_physical(physical_address as u64, size as u64, MappingKind::Rodata);
        // SAFETY: `map_physical` made [phys, phys + size) readable at `virt`
        // for the nucleus's lifetime; the acpi crate only reads through it.
        unsafe {
            PhysicalMapping::new(
                physical_address,
                NonNull::new(virt as *mut T).expect("direct-map address is never null"),
                size,
                size,
                *self,
            )
        }
    }

    /// The direct map is permanent; nothing to undo.
    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

pub struct Platform {
    pub cpus: u32,
    pub io_apics: u32,
    pub local_apic_address: u64,
    pub has_8259: bool,
    /// Segment 0's memory-mapped configuration space, when the MCFG has one.
    pub ecam: Option<crate::pci::Ecam>,
}

/// `rsdp` is the physical address of the RSDP.
pub fn read_platform(rsdp: u64) -> Result<Platform, acpi::AcpiError> {
    // SAFETY: Limine reports the firmware's RSDP address, which is a valid RSDP.
    let tables = unsafe { AcpiTables::from_rsdp(DirectMapHandler, rsdp as usize)? };
    let madt = tables.find_table::<Madt>()?;
    let madt = madt.get();
    let mut platform = Platform {
        cpus: 0,
        io_apics: 0,
        local_apic_address: madt.local_apic_address as u64,
        has_8259: madt.supports_8259(),
        ecam: None,
    };
    // Bit 0: enabled; bit 1: can be brought online later.
    let usable = |flags: u32| flags & 0b11 != 0;
    for entry in madt.entries() {
        match entry {
            MadtEntry::LocalApic(e) if usable(e.flags) => platform.cpus += 1,
            MadtEntry::LocalX2Apic(e) if usable(e.flags) => platform.cpus += 1,
            MadtEntry::IoApic(_) => platform.io_apics += 1,
            MadtEntry::LocalApicAddressOverride(e) => {
                platform.local_apic_address = e.local_apic_address
            }
            _ => {}
        }
    }
    // The `pc` machine has no MCFG: PCI goes through the legacy ports then.
    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        platform.ecam = mcfg
            .get()
            .entries()
            .iter()
            .find(|entry| entry.pci_segment_group == 0)
            .map(|entry| crate::pci::Ecam {
                physical: entry.base_address,
                first_bus: entry.bus_number_start,
                last_bus: entry.bus_number_end,
            });
    }
    Ok(platform)
}
