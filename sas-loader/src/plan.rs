//! Where a guest's memory goes inside its slot, and the bytes of its image.
//!
//! The layout of a slot, from its base upwards, every boundary page-aligned:
//!
//! ```text
//! SLOT_GAP        unmapped
//! image           the ELF's segments at image base + p_vaddr (gaps unmapped)
//! guard page
//! heap            read-write, zero
//! guard page
//! ring            read-write, zero: the capability ring
//! guard page      below the stack, so an overflow faults
//! stack           read-write, zero; grows down from stack_top
//! rest            unmapped, at least SLOT_GAP
//! ```

use crate::{
    GuestElf, LoadError, MAX_SEGMENT_ALIGN, PAGE_SIZE, Permission, SLOT_GAP, SLOT_SIZE,
    slots::slot_range,
};
use alloc::vec::Vec;
use core::ops::Range;

/// The sizes of a guest's regions, in bytes; each a multiple of
/// [`PAGE_SIZE`]. The heap and the ring may be empty, the stack not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    pub stack_bytes: u64,
    pub heap_bytes: u64,
    pub ring_bytes: u64,
}

impl PlanConfig {
    fn validate(&self) -> Result<(), LoadError> {
        let sizes = [
            ("stack", self.stack_bytes, false),
            ("heap", self.heap_bytes, true),
            ("ring", self.ring_bytes, true),
        ];
        for (region, bytes, may_be_empty) in sizes {
            if !bytes.is_multiple_of(PAGE_SIZE) || (bytes == 0 && !may_be_empty) {
                return Err(LoadError::BadRegionSize { region, bytes });
            }
        }
        Ok(())
    }
}

/// What a mapping's pages hold when the guest starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Bytes of the image: element `loaded` of what [`load_segments`]
    /// returns. (One mapping is one run of image pages, which may hold more
    /// than one ELF segment, or part of one; see [`crate::ImageRun`].)
    Image { loaded: usize },
    /// Zero-filled pages: heap, ring, stack.
    Zero,
    /// Read-only data given to the guest (element `index` of the sizes
    /// passed to [`MappingPlan::add_data`]): the nucleus maps the pages it
    /// already holds, it does not copy them.
    Data { index: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Page-aligned absolute address.
    pub start: u64,
    pub pages: u64,
    pub permission: Permission,
    pub contents: Contents,
}

impl Mapping {
    pub fn end(&self) -> u64 {
        self.start + self.pages * PAGE_SIZE
    }

    pub fn range(&self) -> Range<u64> {
        self.start..self.end()
    }
}

/// Everything the nucleus maps for one guest, in ascending address order,
/// and where the guest's regions are. All addresses are absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingPlan {
    /// The whole slot; nothing outside it belongs to the guest.
    pub slot: Range<u64>,
    /// Where the image's virtual address 0 is.
    pub image_base: u64,
    /// `image_base..image_base + image size`.
    pub image: Range<u64>,
    pub entry: u64,
    pub heap: Range<u64>,
    pub ring: Range<u64>,
    pub stack: Range<u64>,
    /// The initial stack pointer: the top of the stack, 16-byte aligned.
    pub stack_top: u64,
    pub mappings: Vec<Mapping>,
    /// Ranges deliberately left unmapped: the slot's gaps and the guard pages.
    pub guards: Vec<Range<u64>>,
}

impl MappingPlan {
    /// Places read-only data regions of `sizes` bytes each (rounded up to
    /// pages) above the stack, each after a guard page, and returns their
    /// ranges. The tail of the slot stays a gap of at least [`SLOT_GAP`].
    pub fn add_data(&mut self, sizes: &[u64]) -> Result<Vec<Range<u64>>, LoadError> {
        let limit = self.slot.end - SLOT_GAP;
        let mut at = self.stack.end;
        let mut regions = Vec::with_capacity(sizes.len());
        for &bytes in sizes {
            let pages = bytes.div_ceil(PAGE_SIZE).max(1);
            let start = at.checked_add(PAGE_SIZE);
            let end = start.and_then(|s| s.checked_add(pages.checked_mul(PAGE_SIZE)?));
            let (Some(start), Some(end)) = (start, end) else {
                return Err(LoadError::SlotTooSmall {
                    needed: u64::MAX,
                    available: SLOT_SIZE,
                });
            };
            if end > limit {
                return Err(LoadError::SlotTooSmall {
                    needed: end - self.slot.start + SLOT_GAP,
                    available: SLOT_SIZE,
                });
            }
            regions.push(start..end);
            at = end;
        }
        // Replace the slot's tail gap with guards between the new regions.
        self.guards.retain(|g| g.start != self.stack.end);
        let mut previous = self.stack.end;
        for (index, region) in regions.iter().enumerate() {
            self.guards.push(previous..region.start);
            self.mappings.push(Mapping {
                start: region.start,
                pages: (region.end - region.start) / PAGE_SIZE,
                permission: Permission::Read,
                contents: Contents::Data { index },
            });
            previous = region.end;
        }
        self.guards.push(previous..self.slot.end);
        Ok(regions)
    }

    /// The mappings that hold image bytes, in the order of
    /// [`load_segments`]'s result.
    pub fn image_mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.mappings
            .iter()
            .filter(|m| matches!(m.contents, Contents::Image { .. }))
    }
}

/// Lays the guest out in the slot at `slot_base` (one that
/// [`crate::GuestSlots`] handed out).
pub fn plan(
    elf: &GuestElf<'_>,
    slot_base: u64,
    config: &PlanConfig,
) -> Result<MappingPlan, LoadError> {
    config.validate()?;
    let slot = slot_range(slot_base).ok_or(LoadError::BadSlot { base: slot_base })?;
    // Three guard pages: after the image, after the heap, below the stack.
    let needed = [
        SLOT_GAP,
        elf.image_size(),
        3 * PAGE_SIZE,
        config.heap_bytes,
        config.ring_bytes,
        config.stack_bytes,
        SLOT_GAP,
    ]
    .into_iter()
    .fold(0u64, u64::saturating_add);
    if needed > SLOT_SIZE {
        return Err(LoadError::SlotTooSmall {
            needed,
            available: SLOT_SIZE,
        });
    }
    // From here on every sum is below the slot's end, so none overflows.

    let image_base = slot.start + SLOT_GAP;
    let image = image_base..image_base + elf.image_size();
    let mut mappings: Vec<Mapping> = elf
        .runs()
        .iter()
        .enumerate()
        .map(|(loaded, run)| Mapping {
            start: image_base + run.offset,
            pages: run.pages,
            permission: run.permission,
            contents: Contents::Image { loaded },
        })
        .collect();
    let guard_after = |address: u64| address..address + PAGE_SIZE;
    let region_after = |guard: &Range<u64>, bytes: u64| guard.end..guard.end + bytes;
    let heap_guard = guard_after(image.end);
    let heap = region_after(&heap_guard, config.heap_bytes);
    let ring_guard = guard_after(heap.end);
    let ring = region_after(&ring_guard, config.ring_bytes);
    let stack_guard = guard_after(ring.end);
    let stack = region_after(&stack_guard, config.stack_bytes);
    for region in [&heap, &ring, &stack].into_iter().filter(|r| !r.is_empty()) {
        mappings.push(Mapping {
            start: region.start,
            pages: (region.end - region.start) / PAGE_SIZE,
            permission: Permission::ReadWrite,
            contents: Contents::Zero,
        });
    }
    let guards = Vec::from([
        slot.start..image_base,
        heap_guard,
        ring_guard,
        stack_guard,
        stack.end..slot.end,
    ]);

    Ok(MappingPlan {
        entry: image_base + elf.entry(),
        stack_top: stack.end,
        slot,
        image_base,
        image,
        heap,
        ring,
        stack,
        mappings,
        guards,
    })
}

/// The bytes of one image mapping, relocated, ready to be copied into frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedSegment {
    /// The mapping's absolute start.
    pub start: u64,
    pub pages: u64,
    pub permission: Permission,
    /// The mapping's first bytes; everything after them, up to
    /// `pages * PAGE_SIZE`, is zero (zero fill to `p_memsz`, the rest of the
    /// last page, gaps between segments). Leaving the zeros out means a
    /// large `.bss` costs no temporary memory: the nucleus zeroes frames
    /// anyway.
    pub initialized: Vec<u8>,
    /// Bytes that relocations put in the zero fill after `initialized`, as
    /// `(offset into the mapping, byte)`, in offset order: kept apart so a
    /// relocation deep in a large `.bss` costs 16 bytes here, not a buffer
    /// reaching it.
    pub patches: Vec<(u64, u8)>,
}

impl LoadedSegment {
    /// The initialized bytes of page `index` of the mapping: up to a page,
    /// possibly none; the rest of the page is zero.
    pub fn page(&self, index: u64) -> &[u8] {
        let len = self.initialized.len() as u64;
        let start = (index.saturating_mul(PAGE_SIZE)).min(len);
        let end = start.saturating_add(PAGE_SIZE).min(len);
        &self.initialized[start as usize..end as usize]
    }

    /// The byte at `offset` into the mapping, zero fill (and its patches)
    /// included.
    pub fn byte(&self, offset: u64) -> u8 {
        if let Some(&byte) = usize::try_from(offset)
            .ok()
            .and_then(|at| self.initialized.get(at))
        {
            return byte;
        }
        match self.patches.binary_search_by_key(&offset, |&(at, _)| at) {
            Ok(index) => self.patches[index].1,
            Err(_) => 0,
        }
    }
}

/// The image's bytes as they must appear in memory, one [`LoadedSegment`]
/// per image mapping of `plan`, with every relocation applied: the u64 at
/// `image base + offset` becomes `image base + addend`.
pub fn load_segments(
    elf: &GuestElf<'_>,
    plan: &MappingPlan,
) -> Result<Vec<LoadedSegment>, LoadError> {
    let base = plan.image_base;
    let runs = elf.runs();
    let matches = base.is_multiple_of(MAX_SEGMENT_ALIGN)
        && base.checked_add(elf.image_size()).is_some()
        && plan.image_mappings().count() == runs.len()
        && plan
            .image_mappings()
            .zip(runs)
            .enumerate()
            .all(|(i, (m, run))| {
                m.start == base + run.offset
                    && m.pages == run.pages
                    && m.permission == run.permission
                    && m.contents == Contents::Image { loaded: i }
            });
    if !matches {
        return Err(LoadError::PlanMismatch);
    }

    let mut loaded: Vec<LoadedSegment> = runs
        .iter()
        .map(|run| LoadedSegment {
            start: base + run.offset,
            pages: run.pages,
            permission: run.permission,
            initialized: elf.file_bytes_in(run.offset, run.pages * PAGE_SIZE),
            patches: Vec::new(),
        })
        .collect();
    for relocation in elf.relocations() {
        let value = base.wrapping_add_signed(relocation.addend).to_le_bytes();
        // Byte by byte: a target may straddle the edge of a RELRO run.
        for (k, byte) in value.into_iter().enumerate() {
            let at = relocation.offset + k as u64;
            let index = runs.partition_point(|r| r.offset <= at);
            let Some(run) = index.checked_sub(1).map(|i| (i, &runs[i])) else {
                continue;
            };
            if at >= run.1.end() {
                continue;
            }
            let segment = &mut loaded[run.0];
            let within = at - run.1.offset;
            match segment.initialized.get_mut(within as usize) {
                Some(slot) => *slot = byte,
                None => segment.patches.push((within, byte)),
            }
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests;
