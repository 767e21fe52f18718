//! PCI: configuration space through ECAM (the MCFG's memory-mapped window,
//! which q35 has) or, without one, the legacy 0xCF8/0xCFC ports (the `pc`
//! machine); enumeration from bus 0 through bridges, logged; and what a
//! driver needs to claim a device: memory decoding and bus mastering (only
//! for claimed devices), BAR addresses, MSI-X routed to a nucleus vector.
//! Firmware (SeaBIOS, OVMF) has assigned the BARs by the time Limine runs.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use nucleus_core::paging::MappingKind;
use spin::{Mutex, Once};
use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType, PciRoot,
};
use x86_64::instructions::port::Port;

/// A memory-mapped configuration window (segment 0) from the MCFG.
#[derive(Clone, Copy, Debug)]
pub struct Ecam {
    pub physical: u64,
    pub first_bus: u8,
    pub last_bus: u8,
}

/// How configuration space is reached.
#[derive(Clone, Copy)]
pub enum ConfigSpace {
    /// Through the direct map; a bus's 1 MiB is mapped when it is first
    /// scanned (`MAPPED_BUSES`), and a bus not mapped reads as absent.
    Ecam(Ecam),
    Ports,
}

/// One bit per bus whose ECAM window is mapped.
static MAPPED_BUSES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

const LEGACY_ADDRESS: u16 = 0xcf8;
const LEGACY_DATA: u16 = 0xcfc;
/// What an absent device reads as.
const ABSENT: u32 = 0xffff_ffff;

impl ConfigSpace {
    fn bus_mapped(bus: u8) -> bool {
        MAPPED_BUSES[bus as usize / 64].load(Ordering::Relaxed) & (1 << (bus % 64)) != 0
    }

    /// Maps `bus`'s window (ECAM) before it is scanned; false for a bus
    /// outside the window.
    fn map_bus(&self, bus: u8) -> bool {
        match self {
            ConfigSpace::Ports => true,
            ConfigSpace::Ecam(ecam) => {
                if bus < ecam.first_bus || bus > ecam.last_bus {
                    return false;
                }
                if !Self::bus_mapped(bus) {
                    let offset = ((bus - ecam.first_bus) as u64) << 20;
                    crate::memory::map_physical(ecam.physical + offset, 1 << 20, MappingKind::Mmio);
                    MAPPED_BUSES[bus as usize / 64].fetch_or(1 << (bus % 64), Ordering::Relaxed);
                }
                true
            }
        }
    }

    /// The direct-map address of a register in a mapped ECAM bus.
    fn ecam_address(ecam: &Ecam, function: DeviceFunction, offset: u8) -> Option<u64> {
        if function.bus < ecam.first_bus || !Self::bus_mapped(function.bus) || !function.valid() {
            return None;
        }
        let physical = ecam.physical
            + (((function.bus - ecam.first_bus) as u64) << 20)
            + ((function.device as u64) << 15)
            + ((function.function as u64) << 12)
            + (offset & 0xfc) as u64;
        Some(crate::memory::phys_to_virt(physical))
    }

    fn legacy_address(function: DeviceFunction, offset: u8) -> u32 {
        0x8000_0000
            | (function.bus as u32) << 16
            | (function.device as u32) << 11
            | (function.function as u32) << 8
            | (offset & 0xfc) as u32
    }
}

impl ConfigurationAccess for ConfigSpace {
    fn read_word(&self, function: DeviceFunction, offset: u8) -> u32 {
        match self {
            ConfigSpace::Ecam(ecam) => match Self::ecam_address(ecam, function, offset) {
                // SAFETY: the bus's window is mapped uncacheable (`map_bus`)
                // and the address is an aligned register inside it.
                Some(address) => unsafe { (address as *const u32).read_volatile() },
                None => ABSENT,
            },
            // SAFETY: the legacy configuration ports, used only under the
            // PCI lock (`PCI`), address then data.
            ConfigSpace::Ports => unsafe {
                Port::<u32>::new(LEGACY_ADDRESS).write(Self::legacy_address(function, offset));
                Port::<u32>::new(LEGACY_DATA).read()
            },
        }
    }

    fn write_word(&mut self, function: DeviceFunction, offset: u8, data: u32) {
        match self {
            ConfigSpace::Ecam(ecam) => {
                if let Some(address) = Self::ecam_address(ecam, function, offset) {
                    // SAFETY: as in `read_word`.
                    unsafe { (address as *mut u32).write_volatile(data) }
                }
            }
            // SAFETY: as in `read_word`.
            ConfigSpace::Ports => unsafe {
                Port::<u32>::new(LEGACY_ADDRESS).write(Self::legacy_address(function, offset));
                Port::<u32>::new(LEGACY_DATA).write(data)
            },
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        *self
    }
}

/// A function found on the bus.
#[derive(Clone, Debug)]
pub struct Device {
    pub function: DeviceFunction,
    pub info: DeviceFunctionInfo,
}

static PCI: Once<Mutex<PciRoot<ConfigSpace>>> = Once::new();
static DEVICES: Once<Vec<Device>> = Once::new();

/// The configuration space, for drivers (virtio-drivers' transports take it).
pub fn root() -> spin::MutexGuard<'static, PciRoot<ConfigSpace>> {
    PCI.get().expect("PCI enumerated at boot").lock()
}

/// Every function found at boot.
pub fn devices() -> &'static [Device] {
    DEVICES.get().map_or(&[], Vec::as_slice)
}

/// Buses at most: a loop of misconfigured bridges cannot make it run on.
const MAX_BUSES: usize = 256;

/// Enumerates every function reachable from bus 0 and logs each.
pub fn init(ecam: Option<Ecam>) {
    let access = match ecam {
        Some(ecam) => {
            crate::log!(
                "pci: ECAM at {:#x}, buses {}-{}",
                ecam.physical,
                ecam.first_bus,
                ecam.last_bus
            );
            ConfigSpace::Ecam(ecam)
        }
        None => {
            crate::log!("pci: no MCFG; configuration through the legacy ports 0xcf8/0xcfc");
            ConfigSpace::Ports
        }
    };
    let mut devices = Vec::new();
    let mut buses = alloc::vec![0u8];
    let mut scanned = [false; MAX_BUSES];
    ACCESS.call_once(|| access);
    let root = PCI.call_once(|| Mutex::new(PciRoot::new(access))).lock();
    while let Some(bus) = buses.pop() {
        if core::mem::replace(&mut scanned[bus as usize], true) || !access.map_bus(bus) {
            continue;
        }
        for (function, info) in root.enumerate_bus(bus) {
            crate::log!("pci: {function} {}", Described(&info));
            if info.header_type == HeaderType::PciPciBridge {
                // Secondary bus number: byte 1 of the word at 0x18.
                let secondary = (access.read_word(function, 0x18) >> 8) as u8;
                buses.push(secondary);
            }
            devices.push(Device { function, info });
        }
    }
    drop(root);
    DEVICES.call_once(|| devices);
}

/// A device's ids and class, named where the class is a common one.
struct Described<'a>(&'a DeviceFunctionInfo);

impl core::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let info = self.0;
        let class = match (info.class, info.subclass) {
            (0x01, 0x01) => "IDE controller",
            (0x01, 0x06) => "SATA controller",
            (0x01, 0x08) => "NVMe controller",
            (0x01, _) => "storage controller",
            (0x02, _) => "network controller",
            (0x03, _) => "display controller",
            (0x06, 0x00) => "host bridge",
            (0x06, 0x01) => "ISA bridge",
            (0x06, 0x04) => "PCI bridge",
            (0x06, _) => "bridge",
            (0x0c, 0x03) => "USB controller",
            (0x0c, 0x05) => "SMBus controller",
            _ => "device",
        };
        write!(
            f,
            "{:04x}:{:04x} {class} (class {:02x}.{:02x}.{:02x})",
            info.vendor_id, info.device_id, info.class, info.subclass, info.prog_if
        )
    }
}

/// Lets a claimed device decode its memory BARs and master the bus (only
/// drivers call this: an unclaimed device never does DMA).
pub fn enable(function: DeviceFunction) {
    let mut root = root();
    let (_, command) = root.get_status_command(function);
    root.set_command(
        function,
        command | Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE,
    );
}

/// The physical address of memory BAR `index`.
pub fn bar_address(function: DeviceFunction, index: u8) -> Option<u64> {
    match root().bar_info(function, index) {
        Ok(Some(bar @ BarInfo::Memory { .. })) => bar.memory_address_size().map(|(at, _)| at),
        _ => None,
    }
}

const CAPABILITY_MSIX: u8 = 0x11;
const MSIX_ENABLE: u32 = 1 << 31;
const MSIX_FUNCTION_MASK: u32 = 1 << 30;
const MSIX_ENTRY_BYTES: u64 = 16;

#[derive(Debug)]
pub enum MsixError {
    /// The device has no MSI-X capability.
    Absent,
    /// It has fewer table entries than asked for.
    TooFewEntries(u16),
    /// The table's BAR is not an assigned memory BAR.
    BarNotAssigned,
}

impl core::fmt::Display for MsixError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MsixError::Absent => f.write_str("the device has no MSI-X capability"),
            MsixError::TooFewEntries(entries) => {
                write!(f, "the device's MSI-X table has only {entries} entries")
            }
            MsixError::BarNotAssigned => {
                f.write_str("the MSI-X table's BAR is not an assigned memory BAR")
            }
        }
    }
}

/// Points MSI-X table entries 0, 1, ... at `vectors` on this CPU, unmasks
/// them and enables MSI-X (which turns the device's INTx off).
pub fn enable_msix(function: DeviceFunction, vectors: &[u8]) -> Result<MsixTable, MsixError> {
    let capability = root()
        .capabilities(function)
        .find(|c| c.id == CAPABILITY_MSIX)
        .ok_or(MsixError::Absent)?;
    let entries = (capability.private_header & 0x7ff) + 1;
    if (entries as usize) < vectors.len() {
        return Err(MsixError::TooFewEntries(entries));
    }
    let table = config_read(function, capability.offset + 4);
    let bar = (table & 0x7) as u8;
    let base = bar_address(function, bar).ok_or(MsixError::BarNotAssigned)? + (table & !0x7) as u64;
    let mapped =
        crate::memory::map_physical(base, entries as u64 * MSIX_ENTRY_BYTES, MappingKind::Mmio);
    let destination = crate::apic::id();
    for (index, &vector) in vectors.iter().enumerate() {
        let entry = mapped + index as u64 * MSIX_ENTRY_BYTES;
        // Message address (the local APIC of this CPU, physical
        // destination), data (fixed delivery, edge, the vector), and the
        // vector control word last: 0 unmasks.
        let words = [
            0xfee0_0000 | (destination & 0xff) << 12,
            0,
            vector as u32,
            0,
        ];
        for (at, word) in words.into_iter().enumerate() {
            // SAFETY: `entry` is a table entry inside the mapped MSI-X table
            // (index < entries); each field is an aligned 32-bit register.
            unsafe { ((entry + at as u64 * 4) as *mut u32).write_volatile(word) };
        }
    }
    let control = config_read(function, capability.offset);
    config_write(
        function,
        capability.offset,
        (control | MSIX_ENABLE) & !MSIX_FUNCTION_MASK,
    );
    Ok(MsixTable {
        base: mapped,
        entries: vectors.len(),
    })
}

/// A function's MSI-X table, as `enable_msix` programmed it.
pub struct MsixTable {
    base: u64,
    /// The entries `enable_msix` programmed.
    entries: usize,
}

impl MsixTable {
    /// Sends entry `index`'s interrupt to the CPU with APIC id `apic_id`
    /// from now on (masked while it changes, as the PCI spec asks).
    pub fn point_at(&self, index: usize, apic_id: u32) {
        assert!(
            index < self.entries,
            "MSI-X entry {index} was not programmed"
        );
        let entry = self.base + index as u64 * MSIX_ENTRY_BYTES;
        let write = |at: u64, word: u32| {
            // SAFETY: `entry` is a programmed entry of the table `enable_msix`
            // mapped; each field is an aligned 32-bit register.
            unsafe { ((entry + at * 4) as *mut u32).write_volatile(word) }
        };
        write(3, 1);
        write(0, 0xfee0_0000 | (apic_id & 0xff) << 12);
        write(3, 0);
    }
}

/// A configuration register, read under the PCI lock (the crate keeps the
/// root's own access private).
pub fn config_read(function: DeviceFunction, offset: u8) -> u32 {
    let _root = root();
    ACCESS
        .get()
        .expect("PCI enumerated at boot")
        .read_word(function, offset)
}

fn config_write(function: DeviceFunction, offset: u8, value: u32) {
    let _root = root();
    let mut access = *ACCESS.get().expect("PCI enumerated at boot");
    access.write_word(function, offset, value)
}

/// The access mechanism, for `config_read` and `config_write`.
static ACCESS: Once<ConfigSpace> = Once::new();
