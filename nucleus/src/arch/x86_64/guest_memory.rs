//! A guest's memory as the nucleus handles it: mapping its pages (fresh
//! frames filled through the direct map, or frames it borrows), the regions
//! its buffers may lie in, and every copy between guest and nucleus memory
//! (or between two guests), each after the range check, with SMAP lifted
//! and all protection keys open for exactly the copy. Also the ring's
//! frames and the nucleus's views of them.

use alloc::vec::Vec;

use caps::{Access, CallerMemory, CqeSlot, Region, RegionSet, RingHeader, RingLayout, SqeSlot};
use nucleus_core::paging::{MappingKind, SIZE_4K};

use crate::memory::{self, MapError};

#[derive(Default)]
pub struct GuestMemory {
    /// The protection key every page of this guest carries (0 without PKU).
    pub key: u8,
    regions: RegionSet,
    /// Every mapped page, to unmap and free on release.
    pages: Vec<u64>,
    /// Pages mapping frames the guest does not own (boot data modules):
    /// unmapped on release, never freed.
    borrowed: Vec<u64>,
    /// Frames unmapped by `release` that another CPU's TLB may still
    /// reach: freed by `free_retired` once the shoot-down round is done.
    retired: Vec<u64>,
}

impl GuestMemory {
    /// Maps `bytes` (zero-padded to whole pages) at `start` with `kind`'s
    /// permissions: fresh frames, filled through the direct map before the
    /// guest can see them.
    pub fn map(
        &mut self,
        start: u64,
        pages: u64,
        bytes: &[u8],
        patches: &[(u64, u8)],
        kind: MappingKind,
    ) -> Result<(), MapError> {
        // `patches` are in offset order: one cursor walks them page by page.
        let mut patch = 0;
        for page in 0..pages {
            let phys = memory::allocate_zeroed_frame().ok_or(MapError::OutOfMemory)?;
            let offset = (page * SIZE_4K) as usize;
            let frame = memory::phys_to_virt(phys) as *mut u8;
            if offset < bytes.len() {
                let chunk = &bytes[offset..bytes.len().min(offset + SIZE_4K as usize)];
                // SAFETY: the frame is ours alone and direct-mapped read-write.
                unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), frame, chunk.len()) };
            }
            let page_end = (page + 1) * SIZE_4K;
            while let Some(&(at, byte)) = patches.get(patch).filter(|(at, _)| *at < page_end) {
                if at >= page * SIZE_4K {
                    // SAFETY: as above; `at` lies inside this page.
                    unsafe { frame.add((at - page * SIZE_4K) as usize).write(byte) };
                }
                patch += 1;
            }
            let virt = start + page * SIZE_4K;
            if let Err(error) = memory::map_4k(virt, phys, kind, self.key) {
                memory::free_frame(phys);
                return Err(error);
            }
            self.pages.push(virt);
        }
        self.add_region(start, pages, kind)
    }

    /// Maps already-allocated frames (the ring, shared with the nucleus):
    /// the guest owns them, so release frees them.
    pub fn map_frames(&mut self, start: u64, first_frame: u64, pages: u64) -> Result<(), MapError> {
        self.map_contiguous(start, first_frame, pages, MappingKind::UserReadWrite, true)
    }

    /// Maps frames that stay the nucleus's (a boot data module) read-only.
    pub fn map_borrowed(
        &mut self,
        start: u64,
        first_frame: u64,
        pages: u64,
    ) -> Result<(), MapError> {
        self.map_contiguous(start, first_frame, pages, MappingKind::UserRead, false)
    }

    fn map_contiguous(
        &mut self,
        start: u64,
        first_frame: u64,
        pages: u64,
        kind: MappingKind,
        owned: bool,
    ) -> Result<(), MapError> {
        for page in 0..pages {
            let virt = start + page * SIZE_4K;
            memory::map_4k(virt, first_frame + page * SIZE_4K, kind, self.key)?;
            if owned {
                self.pages.push(virt)
            } else {
                self.borrowed.push(virt)
            }
        }
        self.add_region(start, pages, kind)
    }

    /// Records pages just mapped as a region buffers may lie in. (They
    /// mapped, so they overlap nothing of this guest's.)
    fn add_region(&mut self, start: u64, pages: u64, kind: MappingKind) -> Result<(), MapError> {
        let region = Region {
            base: start,
            size: pages * SIZE_4K,
            writable: kind == MappingKind::UserReadWrite,
        };
        self.regions
            .insert(region)
            .map_err(|_| MapError::AlreadyMapped)
    }

    /// Whether `length` bytes from `address` lie inside one of the guest's
    /// own regions (a writable one, for `Access::Write`). Length 0 is never
    /// "inside".
    fn holds(&self, address: u64, length: usize, access: Access) -> bool {
        length > 0
            && address
                .checked_add(length as u64)
                .is_some_and(|end| self.regions.contains(address..end, access))
    }

    /// Copies guest memory into `into`. The caller checked the range with
    /// `caps::validate`; the copy is what the nucleus then works on, so a guest
    /// thread changing the source mid-call cannot change what was validated.
    pub fn copy_in(&self, address: u64, into: &mut [u8]) {
        if into.is_empty() {
            return;
        }
        assert!(self.holds(address, into.len(), Access::Read));
        // SAFETY: the range is mapped user memory of this guest (checked
        // above; guests cannot unmap). STAC/CLAC open SMAP only for the copy.
        unsafe {
            user_access(|| move_bytes(address as *const u8, into.as_mut_ptr(), into.len()));
        }
    }

    /// Copies `from` into writable guest memory at `address`.
    pub fn copy_out(&self, address: u64, from: &[u8]) {
        self.copy_out_parts(address, from, &[]);
    }

    /// Copies `first` and then `second` into writable guest memory from
    /// `address` on, in one opening of the guest's memory.
    pub fn copy_out_parts(&self, address: u64, first: &[u8], second: &[u8]) {
        let length = first.len() + second.len();
        if length == 0 {
            return;
        }
        assert!(self.holds(address, length, Access::Write));
        // SAFETY: as in `copy_in`, and the region is writable (checked);
        // `second` goes right after `first`, inside the checked range.
        unsafe {
            user_access(|| {
                let to = address as *mut u8;
                move_bytes(first.as_ptr(), to, first.len());
                move_bytes(second.as_ptr(), to.add(first.len()), second.len());
            });
        }
    }

    /// Copies `length` bytes of `source`'s memory at `from` into this
    /// guest's writable memory at `to`: one guest to another (or within one),
    /// with no nucleus buffer between. Both ranges were checked by the
    /// callers; a guest thread changing the source mid-copy changes only
    /// what the other guest receives, which it could have sent anyway.
    pub fn copy_from_guest(&self, to: u64, source: &GuestMemory, from: u64, length: usize) {
        if length == 0 {
            return;
        }
        assert!(self.holds(to, length, Access::Write) && source.holds(from, length, Access::Read));
        // SAFETY: both ranges are mapped user memory (checked above; guests
        // cannot unmap), the destination writable. `move_bytes` allows
        // overlap, for a guest that serves itself.
        unsafe {
            user_access(|| move_bytes(from as *const u8, to as *mut u8, length));
        }
    }

    /// Unmaps everything (the ring's frames too: the nucleus drops its own
    /// view of the ring before calling this) and starts a TLB shoot-down
    /// round; returns it. The frames are kept until `free_retired`, after
    /// the round is done.
    pub fn release(&mut self) -> u64 {
        self.release_unflushed();
        crate::tlb::shoot_down()
    }

    /// Unmaps everything, keeping the frames in `retired`.
    fn release_unflushed(&mut self) {
        self.retired.reserve(self.pages.len());
        for virt in self.pages.drain(..) {
            if let Some(phys) = memory::unmap_4k(virt) {
                self.retired.push(phys);
            }
        }
        for virt in self.borrowed.drain(..) {
            memory::unmap_4k(virt);
        }
        self.regions.clear();
    }

    /// Unmaps and frees everything at once: for memory no guest has run
    /// with (a start that failed), which no other CPU's TLB has seen.
    pub fn discard(&mut self) {
        self.release_unflushed();
        self.free_retired();
    }

    /// Frees the frames `release` unmapped: only once no CPU's TLB can
    /// reach them (`tlb::round_done` of its round).
    pub fn free_retired(&mut self) {
        for phys in self.retired.drain(..) {
            memory::free_frame(phys);
        }
    }
}

/// Copies `length` bytes from `from` to `to` (the two may overlap) with
/// string instructions: guest memory may change under the copy (a guest
/// thread on another CPU), so the copy is instructions the compiler can
/// neither split, repeat nor draw conclusions from, rather than a Rust copy
/// whose source must not change meanwhile. Forwards it moves whole words
/// (`rep movsq`) and then the last bytes (`rep movsb`).
///
/// # Safety
/// `from..from + length` must be readable and `to..to + length` writable.
unsafe fn move_bytes(from: *const u8, to: *mut u8, length: usize) {
    if length == 0 {
        return;
    }
    if (to as usize).wrapping_sub(from as usize) < length {
        // The destination starts inside the source: backwards, from the
        // last byte (DF set for the copy only).
        // SAFETY: the caller's ranges; DF is clear again after.
        unsafe {
            core::arch::asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rsi") from.add(length - 1) => _,
                inout("rdi") to.add(length - 1) => _,
                inout("rcx") length => _,
                options(nostack),
            );
        }
    } else {
        // SAFETY: the caller's ranges (the words, then the rest: RSI and
        // RDI go on where the first copy left them); DF is clear in the
        // nucleus.
        unsafe {
            core::arch::asm!(
                "rep movsq",
                "mov ecx, {tail:e}",
                "rep movsb",
                tail = in(reg) (length % 8) as u32,
                inout("rsi") from => _,
                inout("rdi") to => _,
                inout("rcx") length / 8 => _,
                options(nostack, preserves_flags),
            );
        }
    }
}

/// Runs `copy` with SMAP's protection lifted (when the CPU has SMAP, the
/// AC flag allows supervisor access to user pages).
///
/// # Safety
/// `copy` may only touch user memory the caller has checked.
unsafe fn user_access(copy: impl FnOnce()) {
    let smap = crate::cpu::smap_enabled();
    // Protection keys govern the nucleus's accesses to user pages too: open
    // every key for the copy (it may be into another guest than the running
    // one), then put the running guest's PKRU back.
    let pkru = crate::cpu::pku_enabled().then(crate::cpu::read_pkru);
    if pkru.is_some() {
        crate::cpu::write_pkru(nucleus_core::pkeys::PKRU_ALLOW_ALL);
    }
    // SAFETY: STAC/CLAC only toggle RFLAGS.AC; they exist when SMAP does.
    unsafe {
        if smap {
            core::arch::asm!("stac", options(nomem, nostack));
        }
        copy();
        if smap {
            core::arch::asm!("clac", options(nomem, nostack));
        }
    }
    if let Some(pkru) = pkru {
        crate::cpu::write_pkru(pkru);
    }
}

impl CallerMemory for GuestMemory {
    fn contains(&self, range: core::ops::Range<u64>, access: Access) -> bool {
        self.regions.contains(range, access)
    }
}

/// The nucleus's views of a ring: its header and its two arrays.
pub type RingViews = (&'static RingHeader, &'static [SqeSlot], &'static [CqeSlot]);

/// Contiguous zeroed frames for a ring of `layout`, and the nucleus's views
/// of them through the direct map: `(first frame, views)`.
///
/// The views must be dropped before the frames are freed (the domain drops
/// its ring before releasing the guest's memory, which frees them).
pub fn allocate_ring(layout: RingLayout) -> Option<(u64, RingViews)> {
    let frames = memory::allocate_zeroed_frames(layout.pages() as u64)?;
    let base = memory::phys_to_virt(frames);
    // SAFETY: the frames are freshly allocated, zeroed, contiguous and
    // direct-mapped; `layout` says where the header and the two arrays lie
    // inside them. The views hold only atomics (every access to memory the
    // guest shares is atomic), and they live until the domain's release,
    // which drops them before the frames are freed.
    let views = unsafe {
        let header = &*(base as *const RingHeader);
        let sq = core::slice::from_raw_parts(
            (base + layout.sq_offset() as u64) as *const SqeSlot,
            layout.sq_entries() as usize,
        );
        let cq = core::slice::from_raw_parts(
            (base + layout.cq_offset() as u64) as *const CqeSlot,
            layout.cq_entries() as usize,
        );
        (header, sq, cq)
    };
    Some((frames, views))
}

/// The endpoint registry reaches guests' memory through these copies.
impl nucleus_core::endpoint::Memory for GuestMemory {
    #[inline(always)]
    fn copy_in(&self, address: u64, into: &mut [u8]) {
        GuestMemory::copy_in(self, address, into)
    }

    #[inline(always)]
    fn copy_out(&self, address: u64, from: &[u8]) {
        GuestMemory::copy_out(self, address, from)
    }

    #[inline(always)]
    fn copy_from_guest(&self, to: u64, source: &Self, from: u64, length: usize) {
        GuestMemory::copy_from_guest(self, to, source, from, length)
    }
}
