//! What virtio-drivers needs from the nucleus (its `Hal`): DMA memory as
//! physically contiguous frames, device registers mapped uncacheable, and
//! buffers shared with devices by physical address. x86 DMA is coherent,
//! so sharing needs no cache maintenance; heap buffers are direct-mapped
//! (physically contiguous wherever virtually so) and go to the device as
//! they are, anything else (a header on a kernel stack) through a bounce
//! buffer. Also MSI-X vector routing, which the crate does not do.

use core::ptr::NonNull;

use nucleus_core::paging::{MappingKind, SIZE_4K};
use virtio_drivers::transport::pci::bus::DeviceFunction;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

pub struct NucleusHal;

fn pages_for(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(SIZE_4K).max(1)
}

/// Where a bounce buffer for `buffer` would be, if `buffer` needs one.
fn needs_bounce(buffer: NonNull<[u8]>) -> bool {
    crate::memory::direct_map_to_phys(buffer.as_ptr() as *mut u8 as u64).is_none()
}

// SAFETY: `dma_alloc` returns zeroed, physically contiguous frames owned by
// the caller until `dma_dealloc`; `mmio_phys_to_virt` maps exactly the
// requested device range; `share` gives the device a physical range that
// holds the buffer's bytes (the buffer itself when direct-mapped, else a
// bounce copy), and `unshare` copies device writes back and frees bounces.
unsafe impl Hal for NucleusHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match crate::memory::allocate_zeroed_frames(pages as u64) {
            Some(phys) => {
                let virt = crate::memory::phys_to_virt(phys) as *mut u8;
                (
                    phys,
                    NonNull::new(virt).expect("direct-map addresses are never null"),
                )
            }
            // The crate checks for a zero physical address.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        crate::memory::free_frame_run(paddr, pages as u64);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let virt = crate::memory::map_physical(paddr, size as u64, MappingKind::Mmio);
        NonNull::new(virt as *mut u8).expect("direct-map addresses are never null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let virt = buffer.as_ptr() as *mut u8 as u64;
        if let Some(phys) = crate::memory::direct_map_to_phys(virt) {
            return phys;
        }
        let len = buffer.len();
        let phys = crate::memory::allocate_zeroed_frames(pages_for(len))
            .expect("memory for a DMA bounce buffer");
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller's buffer is valid for `len` bytes; the
            // bounce frames are ours and at least as long.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    virt as *const u8,
                    crate::memory::phys_to_virt(phys) as *mut u8,
                    len,
                )
            };
        }
        phys
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        if !needs_bounce(buffer) {
            return;
        }
        let len = buffer.len();
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `paddr` is the bounce `share` made for this buffer,
            // `len` bytes long; the device is done with it.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    crate::memory::phys_to_virt(paddr) as *const u8,
                    buffer.as_ptr() as *mut u8,
                    len,
                )
            };
        }
        crate::memory::free_frame_run(paddr, pages_for(len));
    }
}

/// Virtio PCI capability: vendor-specific, with a configuration type.
const CAPABILITY_VENDOR: u8 = 0x09;
const COMMON_CONFIGURATION: u8 = 1;
/// Registers of the common configuration the crate does not write.
const MSIX_CONFIG: u64 = 0x10;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_MSIX_VECTOR: u64 = 0x1a;
const NO_VECTOR: u16 = 0xffff;

/// Points each queue of a virtio PCI device at an MSI-X table entry
/// (`(queue, entry)`), and configuration changes at none; MSI-X itself is
/// enabled by `pci::enable_msix`. Returns false if the device refused an
/// entry (it reads back as no vector).
pub fn route_queue_interrupts(function: DeviceFunction, queues: &[(u16, u16)]) -> bool {
    let common = {
        let root = crate::pci::root();
        root.capabilities(function)
            .filter(|c| c.id == CAPABILITY_VENDOR)
            .find(|c| (c.private_header >> 8) as u8 == COMMON_CONFIGURATION)
            .map(|c| c.offset)
    };
    let Some(offset) = common else {
        return false;
    };
    let bar = crate::pci::config_read(function, offset + 4) as u8;
    let within = crate::pci::config_read(function, offset + 8) as u64;
    let Some(base) = crate::pci::bar_address(function, bar) else {
        return false;
    };
    let registers = crate::memory::map_physical(base + within, 0x38, MappingKind::Mmio);
    let register = |at: u64| (registers + at) as *mut u16;
    let mut accepted = true;
    // SAFETY: `registers` maps the device's common configuration structure
    // (virtio 1.x, 4.1.4.3) uncacheable; these are its aligned 16-bit
    // fields. The crate's transport touches `queue_select` only while it
    // sets queues up, which is over by now.
    unsafe {
        register(MSIX_CONFIG).write_volatile(NO_VECTOR);
        for &(queue, entry) in queues {
            register(QUEUE_SELECT).write_volatile(queue);
            register(QUEUE_MSIX_VECTOR).write_volatile(entry);
            accepted &= register(QUEUE_MSIX_VECTOR).read_volatile() == entry;
        }
    }
    accepted
}
