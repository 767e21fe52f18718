//! Physical frame allocator: one bit per 4 KiB frame over every usable
//! region of the memory map (a set bit is a free frame).
//!
//! The bitmap covers frames `0..frames`, where `frames` reaches the end of the
//! highest usable region; at one bit per frame that is 32 KiB per GiB. The
//! nucleus places the bitmap in usable memory with [`place_bitmap`] and then
//! reserves it, so the allocator never hands out its own storage.

use crate::memmap::{MemoryKind, MemoryRegion};

pub const FRAME_SIZE: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The address is not frame-aligned.
    Unaligned(u64),
    /// The frame lies outside every usable region the allocator manages.
    NotManaged(u64),
    /// The frame is already free: a double free.
    AlreadyFree(u64),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::Unaligned(a) => write!(f, "frame address {a:#x} is not 4 KiB aligned"),
            FrameError::NotManaged(a) => write!(f, "frame {a:#x} is not managed memory"),
            FrameError::AlreadyFree(a) => write!(f, "frame {a:#x} freed twice"),
        }
    }
}

/// Usable regions shrunk inward to whole frames.
pub fn usable_frames(
    regions: impl Iterator<Item = MemoryRegion>,
) -> impl Iterator<Item = (u64, u64)> {
    regions
        .filter(|r| r.kind == MemoryKind::Usable)
        .filter_map(|r| {
            let start = r.base.checked_add(FRAME_SIZE - 1)? & !(FRAME_SIZE - 1);
            let end = r.end() & !(FRAME_SIZE - 1);
            (end > start).then_some((start, end))
        })
}

/// Number of `u64` words the bitmap needs for these regions.
pub fn bitmap_words(regions: impl Iterator<Item = MemoryRegion>) -> usize {
    let frames = usable_frames(regions)
        .map(|(_, end)| end / FRAME_SIZE)
        .max()
        .unwrap_or(0);
    frames.div_ceil(64) as usize
}

/// Chooses where the bitmap itself lives: the first usable memory at or
/// above `lowest` that holds `words` words, page-aligned. Returns its physical start.
pub fn place_bitmap(
    regions: impl Iterator<Item = MemoryRegion>,
    words: usize,
    lowest: u64,
) -> Option<u64> {
    let bytes = (words as u64 * 8).next_multiple_of(FRAME_SIZE);
    usable_frames(regions)
        .map(|(start, end)| (start.max(lowest), end))
        .find(|(start, end)| end > start && end - start >= bytes)
        .map(|(start, _)| start)
}

pub struct FrameAllocator<'a> {
    bitmap: &'a mut [u64],
    free: u64,
    managed: u64,
    /// Word index where the last search succeeded; allocation resumes there.
    cursor: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Builds the allocator with every usable frame free. `bitmap` must have
    /// at least [`bitmap_words`] words; frames beyond it are ignored.
    pub fn new(bitmap: &'a mut [u64], regions: impl Iterator<Item = MemoryRegion>) -> Self {
        bitmap.fill(0);
        let mut allocator = FrameAllocator {
            bitmap,
            free: 0,
            managed: 0,
            cursor: 0,
        };
        let limit = allocator.bitmap.len() as u64 * 64;
        for (start, end) in usable_frames(regions) {
            for frame in start / FRAME_SIZE..(end / FRAME_SIZE).min(limit) {
                if !allocator.is_free(frame) {
                    allocator.set(frame, true);
                    allocator.free += 1;
                    allocator.managed += 1;
                }
            }
        }
        allocator
    }

    /// Marks `[start, end)` as in use (the bitmap itself, memory kept for
    /// later use). Frames that are not managed or already used are skipped.
    /// Returns how many frames it took.
    pub fn reserve(&mut self, start: u64, end: u64) -> u64 {
        let mut taken = 0;
        let limit = self.bitmap.len() as u64 * 64;
        for frame in start / FRAME_SIZE..end.div_ceil(FRAME_SIZE).min(limit) {
            if self.is_free(frame) {
                self.set(frame, false);
                self.free -= 1;
                taken += 1;
            }
        }
        taken
    }

    /// One frame's physical address.
    pub fn allocate(&mut self) -> Option<u64> {
        let words = self.bitmap.len();
        for i in 0..words {
            let index = (self.cursor + i) % words;
            let word = self.bitmap[index];
            if word != 0 {
                let frame = index as u64 * 64 + word.trailing_zeros() as u64;
                self.set(frame, false);
                self.free -= 1;
                self.cursor = index;
                return Some(frame * FRAME_SIZE);
            }
        }
        None
    }

    /// `count` physically contiguous frames whose first frame number is a
    /// multiple of `align_frames` (a power of two). First fit from the bottom.
    pub fn allocate_contiguous(&mut self, count: u64, align_frames: u64) -> Option<u64> {
        if count == 0 || !align_frames.is_power_of_two() || count > self.free {
            return None;
        }
        let limit = self.bitmap.len() as u64 * 64;
        let mut start = 0u64;
        while start + count <= limit {
            match (start..start + count).find(|&f| !self.is_free(f)) {
                // Skip past the used frame, to the next aligned start.
                Some(used) => start = (used + 1).next_multiple_of(align_frames),
                None => {
                    for frame in start..start + count {
                        self.set(frame, false);
                    }
                    self.free -= count;
                    return Some(start * FRAME_SIZE);
                }
            }
        }
        None
    }

    /// Returns one frame. `is_managed` says which frames were ever usable, so
    /// a stray address is refused instead of corrupting the pool.
    pub fn deallocate(
        &mut self,
        address: u64,
        is_managed: impl Fn(u64) -> bool,
    ) -> Result<(), FrameError> {
        if !address.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Unaligned(address));
        }
        let frame = address / FRAME_SIZE;
        if frame >= self.bitmap.len() as u64 * 64 || !is_managed(address) {
            return Err(FrameError::NotManaged(address));
        }
        if self.is_free(frame) {
            return Err(FrameError::AlreadyFree(address));
        }
        self.set(frame, true);
        self.free += 1;
        Ok(())
    }

    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames that were usable at boot (free plus allocated or reserved).
    pub fn managed_frames(&self) -> u64 {
        self.managed
    }

    fn is_free(&self, frame: u64) -> bool {
        self.bitmap[(frame / 64) as usize] & (1 << (frame % 64)) != 0
    }

    fn set(&mut self, frame: u64, free: bool) {
        let word = &mut self.bitmap[(frame / 64) as usize];
        if free {
            *word |= 1 << (frame % 64);
        } else {
            *word &= !(1 << (frame % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn usable(base: u64, length: u64) -> MemoryRegion {
        MemoryRegion {
            base,
            length,
            kind: MemoryKind::Usable,
        }
    }

    fn synthetic_map() -> Vec<MemoryRegion> {
        vec![
            usable(0x1000, 0x9e000),
            MemoryRegion {
                base: 0x9f000,
                length: 0x61000,
                kind: MemoryKind::Reserved,
            },
            usable(MIB, 7 * MIB),
            MemoryRegion {
                base: 8 * MIB,
                length: MIB,
                kind: MemoryKind::BootloaderReclaimable,
            },
            // Unaligned edges are shrunk inward.
            usable(9 * MIB + 123, 3 * MIB),
            usable(64 * MIB, 2 * MIB),
        ]
    }

    #[test]
    fn every_usable_region_is_managed() {
        let map = synthetic_map();
        let mut bitmap = vec![0u64; bitmap_words(map.iter().copied())];
        let allocator = FrameAllocator::new(&mut bitmap, map.iter().copied());
        let expected = 0x9e + 7 * 256 + (3 * 256 - 1) + 2 * 256;
        assert_eq!(allocator.managed_frames(), expected);
        assert_eq!(allocator.free_frames(), expected);
    }

    #[test]
    fn allocations_are_unique_inside_usable_memory_and_exhaust_cleanly() {
        let map = synthetic_map();
        let mut bitmap = vec![0u64; bitmap_words(map.iter().copied())];
        let mut allocator = FrameAllocator::new(&mut bitmap, map.iter().copied());
        let total = allocator.free_frames();
        let mut seen = BTreeSet::new();
        while let Some(frame) = allocator.allocate() {
            assert!(seen.insert(frame), "frame {frame:#x} handed out twice");
            assert!(usable_frames(map.iter().copied()).any(|(s, e)| frame >= s && frame < e));
        }
        assert_eq!(seen.len() as u64, total);
        assert_eq!(allocator.free_frames(), 0);
        // Reaching the highest region proves it does not stop at the first one.
        assert!(seen.contains(&(64 * MIB)));
    }

    #[test]
    fn bitmap_placement_avoids_small_regions_and_is_reserved() {
        let map = synthetic_map();
        let words = bitmap_words(map.iter().copied());
        assert_eq!(words, (66 * MIB / FRAME_SIZE).div_ceil(64) as usize);
        let at = place_bitmap(map.iter().copied(), 100_000, 0).unwrap();
        assert_eq!(at, MIB, "the 632 KiB low region cannot hold 800 KB");
        assert_eq!(place_bitmap(map.iter().copied(), 8, 0), Some(0x1000));
        assert_eq!(
            place_bitmap(map.iter().copied(), 8, 2 * MIB),
            Some(2 * MIB),
            "starts inside a region"
        );
        assert_eq!(place_bitmap(map.iter().copied(), 8, 100 * MIB), None);
        let mut bitmap = vec![0u64; words];
        let mut allocator = FrameAllocator::new(&mut bitmap, map.iter().copied());
        let before = allocator.free_frames();
        assert_eq!(allocator.reserve(at, at + 8 * words as u64), 1);
        assert_eq!(allocator.free_frames(), before - 1);
        // Reserving again, or reserving a hole, takes nothing.
        assert_eq!(allocator.reserve(at, at + 8), 0);
        assert_eq!(allocator.reserve(0x9f000, 0x100000), 0);
    }

    #[test]
    fn contiguous_allocation_respects_alignment_and_holes() {
        let map = [usable(0, 4 * MIB), usable(6 * MIB, 4 * MIB)];
        let mut bitmap = vec![0u64; bitmap_words(map.iter().copied())];
        let mut allocator = FrameAllocator::new(&mut bitmap, map.iter().copied());
        allocator.reserve(0, 0x1000);
        // 2 MiB aligned: the first frame is used, so it starts at 2 MiB.
        assert_eq!(allocator.allocate_contiguous(512, 512), Some(2 * MIB));
        // 3 MiB cannot span the hole at 4..6 MiB; it lands at 6 MiB.
        assert_eq!(allocator.allocate_contiguous(768, 1), Some(6 * MIB));
        assert_eq!(allocator.allocate_contiguous(2048, 1), None);
        assert_eq!(
            allocator.allocate_contiguous(1, 3),
            None,
            "alignment must be a power of two"
        );
        assert_eq!(allocator.allocate_contiguous(0, 1), None);
    }

    #[test]
    fn bad_frees_are_refused() {
        let map = [usable(0, MIB)];
        let mut bitmap = vec![0u64; bitmap_words(map.iter().copied())];
        let mut allocator = FrameAllocator::new(&mut bitmap, map.iter().copied());
        let managed = |a: u64| a < MIB;
        let frame = allocator.allocate().unwrap();
        assert_eq!(
            allocator.deallocate(frame + 1, managed),
            Err(FrameError::Unaligned(frame + 1))
        );
        assert_eq!(
            allocator.deallocate(2 * MIB, managed),
            Err(FrameError::NotManaged(2 * MIB))
        );
        assert_eq!(allocator.deallocate(frame, managed), Ok(()));
        assert_eq!(
            allocator.deallocate(frame, managed),
            Err(FrameError::AlreadyFree(frame))
        );
    }

    proptest! {
        /// Any sequence of allocations and frees keeps the free count equal
        /// to the model's, never hands out a frame twice, and never hands out
        /// a reserved frame.
        #[test]
        fn matches_a_set_model(ops in proptest::collection::vec((any::<bool>(), 0usize..64), 1..400)) {
            let map = [usable(0, 256 * FRAME_SIZE), usable(512 * FRAME_SIZE, 128 * FRAME_SIZE)];
            let mut bitmap = vec![0u64; bitmap_words(map.iter().copied())];
            let mut allocator = FrameAllocator::new(&mut bitmap, map.iter().copied());
            allocator.reserve(0, 16 * FRAME_SIZE);
            let mut held: Vec<u64> = Vec::new();
            for (allocate, pick) in ops {
                if allocate || held.is_empty() {
                    if let Some(f) = allocator.allocate() {
                        prop_assert!(f >= 16 * FRAME_SIZE);
                        prop_assert!(!held.contains(&f));
                        held.push(f);
                    }
                } else {
                    let f = held.swap_remove(pick % held.len());
                    prop_assert_eq!(allocator.deallocate(f, |_| true), Ok(()));
                }
                prop_assert_eq!(allocator.free_frames(), 384 - 16 - held.len() as u64);
            }
        }
    }
}
