//! Physical memory and the one page table.
//!
//! The nucleus builds its own page table at boot: the image with per-section
//! permissions (text RX, rodata R, data RW, all NX but text), and a direct map
//! of all RAM and firmware memory at Limine's HHDM offset, NX, in the largest
//! pages that fit. CR3 is written once, here; [`cr3_writes`] counts every write
//! so the claim "no page-table switch after boot" is checkable.

use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, Ordering};

use limine::memory_map::{Entry, EntryType};
use nucleus_core::frames::{self, FRAME_SIZE, FrameAllocator};
use nucleus_core::memmap::{MemoryKind, MemoryRegion, MemoryTotals, Mib};
use nucleus_core::paging::{self, MappingKind, PAT_VALUE, SIZE_1G, SIZE_2M, SIZE_4K};
use spin::Mutex;
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::paging::mapper::{MapToError, MapperFlush};
use x86_64::structures::paging::{
    FrameAllocator as PageTableFrames, Mapper, OffsetPageTable, Page, PageSize, PageTable,
    PageTableFlags, PhysFrame, Size1GiB, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

static HHDM_OFFSET: AtomicU64 = AtomicU64::new(0);
/// Also counted by the entry and exit paths of the page-table-switching
/// variant (`user::SWITCH_TABLES`).
pub static CR3_WRITES: AtomicU64 = AtomicU64::new(0);
static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);
static PAGE_TABLE: Mutex<Option<OffsetPageTable<'static>>> = Mutex::new(None);

const IA32_PAT: u32 = 0x277;
/// Memory below 1 MiB is kept out of the allocator: application processors
/// start in real mode from a trampoline there.
const LOW_MEMORY_END: u64 = 0x10_0000;

pub fn phys_to_virt(phys: u64) -> u64 {
    phys + HHDM_OFFSET.load(Ordering::Relaxed)
}

/// The physical address behind a direct-map address (heap memory is
/// direct-mapped), or `None` for any other address (stacks, the image).
pub fn direct_map_to_phys(virt: u64) -> Option<u64> {
    // The direct map spans physical memory, far below the kernel stacks.
    virt.checked_sub(HHDM_OFFSET.load(Ordering::Relaxed))
        .filter(|&offset| offset < 1 << 46)
}

/// How many times CR3 has been written since the nucleus started (1 after boot).
pub fn cr3_writes() -> u64 {
    CR3_WRITES.load(Ordering::Relaxed)
}

fn kind_of(entry: &Entry) -> MemoryKind {
    match entry.entry_type {
        EntryType::USABLE => MemoryKind::Usable,
        EntryType::RESERVED => MemoryKind::Reserved,
        EntryType::ACPI_RECLAIMABLE => MemoryKind::AcpiReclaimable,
        EntryType::ACPI_NVS => MemoryKind::AcpiNvs,
        EntryType::BAD_MEMORY => MemoryKind::BadMemory,
        EntryType::BOOTLOADER_RECLAIMABLE => MemoryKind::BootloaderReclaimable,
        EntryType::EXECUTABLE_AND_MODULES => MemoryKind::ExecutableAndModules,
        EntryType::FRAMEBUFFER => MemoryKind::Framebuffer,
        _ => MemoryKind::Unknown,
    }
}

/// What boot hands the memory code.
pub struct BootMemory<'a> {
    pub memory_map: &'a [&'a Entry],
    pub hhdm_offset: u64,
    pub image_physical_base: u64,
    pub image_virtual_base: u64,
    /// Pages inside the image to leave unmapped (stack guards).
    pub guard_pages: &'a [u64],
    pub allow_1g_pages: bool,
}

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

/// Takes over physical memory: frame allocator over every usable region,
/// the nucleus's page table, and the switch to it.
pub fn init(boot: &BootMemory) {
    HHDM_OFFSET.store(boot.hhdm_offset, Ordering::Relaxed);
    let regions = || {
        boot.memory_map.iter().map(|e| MemoryRegion {
            base: e.base,
            length: e.length,
            kind: kind_of(e),
        })
    };

    let totals = MemoryTotals::from_regions(regions());
    crate::log!(
        "memory: {} usable in {} regions; bootloader {}, image+modules {}, ACPI {}, framebuffer {}, reserved {}",
        Mib(totals.usable),
        regions().filter(|r| r.kind == MemoryKind::Usable).count(),
        Mib(totals.bootloader_reclaimable),
        Mib(totals.executable_and_modules),
        Mib(totals.acpi),
        Mib(totals.framebuffer),
        Mib(totals.reserved),
    );
    if totals.overlaps > 0 {
        crate::log!(
            "memory: warning: {} memory-map entries overlap; only usable entries are trusted",
            totals.overlaps
        );
    }
    if totals.bad > 0 {
        crate::log!("memory: {} reported bad, never used", Mib(totals.bad));
    }

    let words = frames::bitmap_words(regions());
    let bitmap_phys = frames::place_bitmap(regions(), words, LOW_MEMORY_END)
        .expect("no usable region can hold the frame bitmap");
    // SAFETY: `place_bitmap` chose usable RAM, which Limine's HHDM maps and
    // nothing else uses; the allocator reserves it below before handing out frames.
    let bitmap =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(bitmap_phys) as *mut u64, words) };
    let mut allocator = FrameAllocator::new(bitmap, regions());
    allocator.reserve(bitmap_phys, bitmap_phys + words as u64 * 8);
    allocator.reserve(0, LOW_MEMORY_END);
    crate::log!(
        "frames: {} of {} usable frames free ({}); bitmap {} KiB at {:#x}",
        allocator.free_frames(),
        allocator.managed_frames(),
        Mib(allocator.free_frames() * FRAME_SIZE),
        (words * 8).div_ceil(1024),
        bitmap_phys
    );

    let (table, stats) = build_page_table(boot, &mut allocator, regions);
    *FRAMES.lock() = Some(allocator);
    let pml4 = activate(table);
    crate::log!(
        "paging: nucleus table at {:#x}: text RX, rodata R, data RW, {} stack guard pages; direct map at {:#x}: \
         {} x 1 GiB, {} x 2 MiB, {} x 4 KiB pages, NX",
        pml4,
        boot.guard_pages.len(),
        boot.hhdm_offset,
        stats.pages_1g,
        stats.pages_2m,
        stats.pages_4k
    );
}

#[derive(Default)]
struct MapStats {
    pages_1g: u64,
    pages_2m: u64,
    pages_4k: u64,
}

/// The allocator as the `x86_64` crate's mapper wants it.
struct TableFrames<'a, 'b>(&'a mut FrameAllocator<'b>);

// SAFETY: every frame returned is free, usable RAM, handed out once.
unsafe impl PageTableFrames<Size4KiB> for TableFrames<'_, '_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.0
            .allocate()
            .map(|a| PhysFrame::containing_address(PhysAddr::new(a)))
    }
}

fn build_page_table<I: Iterator<Item = MemoryRegion>>(
    boot: &BootMemory,
    allocator: &mut FrameAllocator,
    regions: impl Fn() -> I,
) -> (OffsetPageTable<'static>, MapStats) {
    let pml4_phys = allocator
        .allocate()
        .expect("no frame for the top-level page table");
    // SAFETY: a fresh frame, mapped by the HHDM, exclusively ours; zeroed
    // before use. It becomes the one page table and lives forever.
    let pml4 = unsafe {
        let table = &mut *(phys_to_virt(pml4_phys) as *mut PageTable);
        table.zero();
        table
    };
    // SAFETY: the whole of RAM (where all page-table frames come from) is
    // mapped at this offset, both by Limine now and by this table later.
    let mut table = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(boot.hhdm_offset)) };
    let mut stats = MapStats::default();
    let mut frames = TableFrames(allocator);

    // Linker-script symbols: only their addresses are used.
    let sections = [
        (
            &raw const __text_start as u64,
            &raw const __text_end as u64,
            MappingKind::Text,
        ),
        (
            &raw const __rodata_start as u64,
            &raw const __rodata_end as u64,
            MappingKind::Rodata,
        ),
        (
            &raw const __data_start as u64,
            &raw const __data_end as u64,
            MappingKind::Data,
        ),
    ];
    for (start, end, kind) in sections {
        for virt in (start..end).step_by(SIZE_4K as usize) {
            if boot.guard_pages.contains(&virt) {
                continue;
            }
            let phys = virt - boot.image_virtual_base + boot.image_physical_base;
            map_page(
                &mut table,
                &mut frames,
                virt,
                phys,
                SIZE_4K,
                paging::flags_for(kind),
                &mut stats,
            );
        }
    }

    for region in regions().filter(|r| r.kind.is_direct_mapped()) {
        let start = region.base & !(SIZE_4K - 1);
        let end = region.end().next_multiple_of(SIZE_4K);
        let kind = match region.kind {
            MemoryKind::Framebuffer => MappingKind::Framebuffer,
            // The nucleus image (and boot modules) must not get a writable
            // alias beside its executable text: read-only here.
            MemoryKind::ExecutableAndModules => MappingKind::Rodata,
            _ => MappingKind::DirectMap,
        };
        for (phys, size) in
            paging::split_into_pages(start, end - start, boot.hhdm_offset, boot.allow_1g_pages)
        {
            map_page(
                &mut table,
                &mut frames,
                phys + boot.hhdm_offset,
                phys,
                size,
                paging::flags_for(kind),
                &mut stats,
            );
        }
    }
    (table, stats)
}

/// Maps one page. A page that is already mapped (entries sharing a page at
/// unaligned edges, or lying inside a huge page) keeps its first mapping.
fn map_page(
    table: &mut OffsetPageTable,
    frames: &mut TableFrames,
    virt: u64,
    phys: u64,
    size: u64,
    flags: u64,
    stats: &mut MapStats,
) {
    fn one<S: PageSize + core::fmt::Debug>(
        table: &mut OffsetPageTable,
        frames: &mut TableFrames,
        virt: u64,
        phys: u64,
        flags: PageTableFlags,
    ) -> bool
    where
        for<'a> OffsetPageTable<'a>: Mapper<S>,
    {
        let page = Page::<S>::containing_address(VirtAddr::new(virt));
        let frame = PhysFrame::<S>::containing_address(PhysAddr::new(phys));
        // Intermediate tables allow everything; leaves decide permissions.
        let parents = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        // SAFETY: the caller maps nucleus memory or physical memory at its
        // direct-map address; nothing is mapped twice at different types by
        // design (see `map_page`), and the table is not active yet or the
        // page was unmapped before.
        match unsafe { table.map_to_with_table_flags(page, frame, flags, parents, frames) } {
            Ok(flush) => {
                // The new table is not loaded yet; after it is, new entries
                // replace non-present ones, which the TLB never caches.
                MapperFlush::ignore(flush);
                true
            }
            Err(MapToError::PageAlreadyMapped(_)) | Err(MapToError::ParentEntryHugePage) => false,
            Err(MapToError::FrameAllocationFailed) => {
                panic!("out of memory while building the page table")
            }
        }
    }
    let pte_flags = PageTableFlags::from_bits_truncate(flags);
    let (mapped, counter, smaller) = match size {
        SIZE_1G => (
            one::<Size1GiB>(table, frames, virt, phys, pte_flags),
            &mut stats.pages_1g,
            SIZE_2M,
        ),
        SIZE_2M => (
            one::<Size2MiB>(table, frames, virt, phys, pte_flags),
            &mut stats.pages_2m,
            SIZE_4K,
        ),
        _ => (
            one::<Size4KiB>(table, frames, virt, phys, pte_flags),
            &mut stats.pages_4k,
            0,
        ),
    };
    if mapped {
        *counter += 1;
    } else if smaller != 0 {
        // Part of the range is already mapped (a neighbouring region's
        // rounded edge): map the rest with smaller pages rather than drop it.
        for offset in (0..size).step_by(smaller as usize) {
            map_page(
                table,
                frames,
                virt + offset,
                phys + offset,
                smaller,
                flags,
                stats,
            );
        }
    }
}

/// An application processor's PAT, as the boot CPU's (`activate`); it
/// runs on the nucleus's table already (its entry loaded it).
pub fn load_pat_on_application_processor() {
    // SAFETY: the same value and sequence as `activate`: every entry the
    // nucleus's mappings use, caches written back around the change.
    unsafe {
        core::arch::asm!("wbinvd", options(nostack, preserves_flags));
        Msr::new(IA32_PAT).write(PAT_VALUE);
        core::arch::asm!("wbinvd", options(nostack, preserves_flags));
    }
}

/// Loads the PAT and switches to the nucleus's table: the one CR3 write.
fn activate(table: OffsetPageTable<'static>) -> u64 {
    let pml4_virt = table.level_4_table() as *const PageTable as u64;
    let pml4_phys = pml4_virt - HHDM_OFFSET.load(Ordering::Relaxed);
    let frame = PhysFrame::containing_address(PhysAddr::new(pml4_phys));
    // SAFETY: the PAT value keeps every entry Limine's mappings use (0, 2,
    // 3, 4, 5) and makes entry 1 write-combining, used only by the new
    // table's framebuffer mapping; the caches are written back around the
    // change as the SDM asks. The new table maps the running code, its
    // stack, its data and all RAM at the same addresses as before, so
    // execution continues seamlessly. Toggling CR4.PGE flushes global entries.
    unsafe {
        core::arch::asm!("wbinvd", options(nostack, preserves_flags));
        Msr::new(IA32_PAT).write(PAT_VALUE);
        core::arch::asm!("wbinvd", options(nostack, preserves_flags));
        Cr3::write(frame, Cr3::read().1);
        CR3_WRITES.fetch_add(1, Ordering::Relaxed);
        let cr4 = Cr4::read();
        Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
        Cr4::write(cr4);
    }
    *PAGE_TABLE.lock() = Some(table);
    NUCLEUS_TABLE.store(pml4_phys, Ordering::Relaxed);
    pml4_phys
}

/// Flushes this CPU's whole TLB, global entries included, without
/// writing CR3 (toggling CR4.PGE does it; the table stays the one).
pub fn flush_whole_tlb() {
    // SAFETY: clearing and setting CR4.PGE again changes no setting; the
    // SDM names it as the way to invalidate every TLB entry, global ones
    // too. Interrupts are off (the nucleus is not preemptible), so nothing
    // runs between the two writes.
    unsafe {
        let cr4 = Cr4::read();
        Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
        Cr4::write(cr4);
    }
}

/// Physical address of the nucleus's PML4 (the one page table).
pub static NUCLEUS_TABLE: AtomicU64 = AtomicU64::new(0);

/// A guest's own page table, for the page-table-switching variant: the
/// nucleus's upper half, and of the lower half only the guest's slot,
/// through private PML4 and PDPT pages that point at the slot's page
/// directories (which hold that guest's mappings alone). Built once the
/// guest's memory is all mapped; the nucleus never maps into a slot later.
pub struct PrivateTable {
    pub pml4: u64,
    frames: alloc::vec::Vec<u64>,
}

impl PrivateTable {
    pub fn new(slot: core::ops::Range<u64>) -> Result<PrivateTable, MapError> {
        const ENTRIES: usize = 512;
        let entry_index = |address: u64, shift: u32| ((address >> shift) as usize) % ENTRIES;
        let table_at = |phys: u64| phys_to_virt(phys) as *mut PageTable;
        let pml4 = allocate_zeroed_frame().ok_or(MapError::OutOfMemory)?;
        let mut private = PrivateTable {
            pml4,
            frames: alloc::vec![pml4],
        };
        let nucleus = NUCLEUS_TABLE.load(Ordering::Relaxed);
        // SAFETY: both PML4s are page-table frames reached through the
        // direct map; the new one is ours alone, the nucleus's is only read
        // (interrupts are off, nothing maps concurrently).
        unsafe {
            let (source, target) = (&mut *table_at(nucleus), &mut *table_at(pml4));
            // The upper half is shared by reference to its PDPTs: give every
            // empty upper entry one now (once), so what the nucleus maps
            // later (a guest's kernel stack) is seen through every table.
            for index in ENTRIES / 2..ENTRIES {
                if source[index].is_unused() {
                    let pdpt = allocate_zeroed_frame().ok_or(MapError::OutOfMemory)?;
                    source[index].set_addr(
                        PhysAddr::new(pdpt),
                        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
                    );
                }
                target[index] = source[index].clone();
            }
            let mut gigabyte = slot.start & !(SIZE_1G - 1);
            while gigabyte < slot.end {
                let (l4, l3) = (entry_index(gigabyte, 39), entry_index(gigabyte, 30));
                let Ok(pdpt) = source[l4].frame() else {
                    gigabyte += SIZE_1G;
                    continue;
                };
                if target[l4].is_unused() {
                    let private_pdpt = allocate_zeroed_frame().ok_or(MapError::OutOfMemory)?;
                    private.frames.push(private_pdpt);
                    target[l4].set_addr(PhysAddr::new(private_pdpt), source[l4].flags());
                }
                let shared = &*table_at(pdpt.start_address().as_u64());
                let own = &mut *table_at(target[l4].addr().as_u64());
                own[l3] = shared[l3].clone();
                gigabyte += SIZE_1G;
            }
        }
        Ok(private)
    }
}

impl Drop for PrivateTable {
    /// Never while loaded: guests are released from the nucleus's table.
    fn drop(&mut self) {
        for frame in self.frames.drain(..) {
            free_frame(frame);
        }
    }
}

/// Makes `[phys, phys + length)` reachable at its direct-map address with
/// `kind`'s flags (device registers, firmware tables outside RAM) and
/// returns that address. Pages already mapped stay as they are.
pub fn map_physical(phys: u64, length: u64, kind: MappingKind) -> u64 {
    let mut table = PAGE_TABLE.lock();
    let table = table
        .as_mut()
        .expect("map_physical before the page table is built");
    let mut frames = FRAMES.lock();
    let mut frames = TableFrames(frames.as_mut().expect("frame allocator not initialised"));
    let mut stats = MapStats::default();
    let start = phys & !(SIZE_4K - 1);
    let end = (phys + length.max(1)).next_multiple_of(SIZE_4K);
    for page in (start..end).step_by(SIZE_4K as usize) {
        let virt = phys_to_virt(page);
        if table.translate_addr(VirtAddr::new(virt)).is_none() {
            map_page(
                table,
                &mut frames,
                virt,
                page,
                SIZE_4K,
                paging::flags_for(kind),
                &mut stats,
            );
        }
    }
    phys_to_virt(phys)
}

/// Heap growth step: the heap takes this much contiguous memory from the
/// frame allocator whenever it runs out (or more, for a larger allocation).
const HEAP_GROWTH: u64 = 4 << 20;
static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);

pub fn heap_bytes() -> u64 {
    HEAP_BYTES.load(Ordering::Relaxed)
}

/// Feeds talc from the frame allocator.
#[derive(Debug)]
pub struct FrameSource;

// SAFETY: `acquire` only uses the frame allocator (its own lock, never the
// heap) and claims memory that the frame allocator handed out exclusively.
unsafe impl talc::source::Source for FrameSource {
    fn acquire<B: talc::base::binning::Binning>(
        talc: &mut talc::base::Talc<Self, B>,
        layout: Layout,
    ) -> Result<(), ()> {
        let wanted = (layout.size() + layout.align()) as u64 + SIZE_4K;
        let bytes = wanted.max(HEAP_GROWTH).next_multiple_of(SIZE_2M);
        let phys = FRAMES
            .lock()
            .as_mut()
            .ok_or(())?
            .allocate_contiguous(bytes / FRAME_SIZE, 1)
            .ok_or(())?;
        // SAFETY: freshly allocated frames, direct-mapped read-write, owned by the heap from now on.
        unsafe { talc.claim(phys_to_virt(phys) as *mut u8, bytes as usize) }.ok_or(())?;
        HEAP_BYTES.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}

#[global_allocator]
static HEAP: talc::TalcLock<spin::Mutex<()>, FrameSource> = talc::TalcLock::new(FrameSource);

/// Bytes of usable RAM the frame allocator manages.
pub fn managed_bytes() -> u64 {
    FRAMES
        .lock()
        .as_ref()
        .map_or(0, |f| f.managed_frames() * FRAME_SIZE)
}

pub fn free_frame_count() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |f| f.free_frames())
}

/// One zeroed frame from the allocator.
pub fn allocate_zeroed_frame() -> Option<u64> {
    let phys = FRAMES.lock().as_mut()?.allocate()?;
    // SAFETY: a frame just handed out exclusively to the caller, reachable
    // read-write through the direct map.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, SIZE_4K as usize) };
    Some(phys)
}

/// Returns a frame to the allocator. A bad address is a nucleus bug.
pub fn free_frame(phys: u64) {
    let mut frames = FRAMES.lock();
    let frames = frames.as_mut().expect("frame allocator not initialised");
    if let Err(error) = frames.deallocate(phys, |_| true) {
        panic!("freeing a frame: {error}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    AlreadyMapped,
    OutOfMemory,
}

/// Maps one 4 KiB page at `virt` to `phys`, tagged with protection `key`
/// (0 for nucleus pages, which keys do not govern). Guest pages are never
/// mapped over an existing mapping: each guest has its own slot.
pub fn map_4k(virt: u64, phys: u64, kind: MappingKind, key: u8) -> Result<(), MapError> {
    let mut table = PAGE_TABLE.lock();
    let table = table.as_mut().expect("page table not built");
    let mut frames = FRAMES.lock();
    let mut frames = TableFrames(frames.as_mut().expect("frame allocator not initialised"));
    let flags = PageTableFlags::from_bits_truncate(
        paging::flags_for(kind) | nucleus_core::pkeys::pte_bits(key),
    );
    // User pages need USER on every level above them; nucleus mappings live
    // in the upper half, whose tables never carry it.
    let parents = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | (flags & PageTableFlags::USER_ACCESSIBLE);
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let frame = PhysFrame::containing_address(PhysAddr::new(phys));
    // SAFETY: `virt` is not mapped (checked by the mapper), so no existing
    // reference can alias the new mapping; `phys` belongs to the caller.
    match unsafe { table.map_to_with_table_flags(page, frame, flags, parents, &mut frames) } {
        // A not-present entry is never cached by the TLB: nothing to flush.
        Ok(flush) => {
            flush.ignore();
            Ok(())
        }
        Err(MapToError::FrameAllocationFailed) => Err(MapError::OutOfMemory),
        Err(_) => Err(MapError::AlreadyMapped),
    }
}

/// Removes the 4 KiB mapping at `virt` (flushing it from this CPU's TLB with
/// INVLPG, not a CR3 write) and returns the frame it mapped.
pub fn unmap_4k(virt: u64) -> Option<u64> {
    let mut table = PAGE_TABLE.lock();
    let table = table.as_mut().expect("page table not built");
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let (frame, flush) = table.unmap(page).ok()?;
    flush.flush();
    Some(frame.start_address().as_u64())
}

/// Kernel stacks for guests live here, each above an unmapped guard page.
const KERNEL_STACKS_BASE: u64 = 0xffff_fe00_0000_0000;
/// Pages per guest kernel stack: system calls and interrupts run on it.
pub const KERNEL_STACK_PAGES: u64 = 8;
static NEXT_KERNEL_STACK: AtomicU64 = AtomicU64::new(KERNEL_STACKS_BASE);
/// Tops of the stacks of guests that have exited, mapped and ready again.
static FREE_KERNEL_STACKS: Mutex<alloc::vec::Vec<u64>> = Mutex::new(alloc::vec::Vec::new());

/// A kernel stack of [`KERNEL_STACK_PAGES`]: one an exited guest left, else
/// freshly mapped. Returns its top.
pub fn allocate_kernel_stack() -> Result<u64, MapError> {
    if let Some(top) = FREE_KERNEL_STACKS.lock().pop() {
        return Ok(top);
    }
    let pages = KERNEL_STACK_PAGES;
    let base = NEXT_KERNEL_STACK.fetch_add((pages + 1) * SIZE_4K, Ordering::Relaxed) + SIZE_4K;
    for page in 0..pages {
        let phys = allocate_zeroed_frame().ok_or(MapError::OutOfMemory)?;
        map_4k(base + page * SIZE_4K, phys, MappingKind::Data, 0)?;
    }
    Ok(base + pages * SIZE_4K)
}

/// Takes back the kernel stack whose top is `top`, which nothing runs on
/// any more (its guest has exited and the CPU has left it).
pub fn release_kernel_stack(top: u64) {
    FREE_KERNEL_STACKS.lock().push(top);
}

/// `count` physically contiguous zeroed frames (for rings, which the nucleus
/// reads through one direct-map range).
pub fn allocate_zeroed_frames(count: u64) -> Option<u64> {
    let phys = FRAMES.lock().as_mut()?.allocate_contiguous(count, 1)?;
    // SAFETY: frames just handed out exclusively to the caller, direct-mapped.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, (count * SIZE_4K) as usize) };
    Some(phys)
}

/// Returns `count` frames starting at `phys`.
pub fn free_frame_run(phys: u64, count: u64) {
    for frame in 0..count {
        free_frame(phys + frame * SIZE_4K);
    }
}
