//! Guest slots: the lower half's guest area cut into [`MAX_GUEST_SLOTS`]
//! equal, aligned pieces. Slot `n` starts at `GUEST_AREA_BASE + n *
//! SLOT_SIZE`; its first and last [`crate::SLOT_GAP`] bytes are never mapped
//! (see [`crate::plan`]), so two guests' memory is never adjacent.

use crate::{GUEST_AREA_BASE, GUEST_AREA_END, MAX_GUEST_SLOTS, SLOT_SIZE};
use core::{fmt, ops::Range};

const WORDS: usize = MAX_GUEST_SLOTS.div_ceil(64);

/// The base of slot `index`, if there is such a slot.
pub fn slot_base(index: usize) -> Option<u64> {
    (index < MAX_GUEST_SLOTS).then(|| GUEST_AREA_BASE + index as u64 * SLOT_SIZE)
}

/// The slot an address falls in: how a fault address is traced to a guest.
pub fn slot_index_of(address: u64) -> Option<usize> {
    (GUEST_AREA_BASE..GUEST_AREA_END)
        .contains(&address)
        .then(|| ((address - GUEST_AREA_BASE) / SLOT_SIZE) as usize)
}

/// The whole slot whose base is `base`, if `base` is one.
pub(crate) fn slot_range(base: u64) -> Option<Range<u64>> {
    let index = slot_index_of(base)?;
    (slot_base(index)? == base).then(|| base..base + SLOT_SIZE)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// There is no slot with this index.
    NoSuchSlot(usize),
    /// The slot is not in use: a double release.
    NotInUse(usize),
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotError::NoSuchSlot(i) => write!(f, "there is no guest slot {i}"),
            SlotError::NotInUse(i) => write!(f, "guest slot {i} is not in use"),
        }
    }
}

/// Which slots are in use: one bit per slot, no allocation, so the nucleus
/// can keep it in a static.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestSlots {
    used: [u64; WORDS],
}

impl Default for GuestSlots {
    fn default() -> Self {
        Self::new()
    }
}

impl GuestSlots {
    pub const fn new() -> Self {
        Self { used: [0; WORDS] }
    }

    /// Takes the lowest free slot; returns its index and base. Lowest first
    /// keeps the used part of the area compact and the order predictable.
    pub fn allocate(&mut self) -> Option<(usize, u64)> {
        let index = (0..MAX_GUEST_SLOTS).find(|&i| !self.is_used(i))?;
        self.used[index / 64] |= 1 << (index % 64);
        Some((index, slot_base(index)?))
    }

    /// Gives a slot back. The caller must have unmapped everything in it.
    pub fn release(&mut self, index: usize) -> Result<(), SlotError> {
        if index >= MAX_GUEST_SLOTS {
            return Err(SlotError::NoSuchSlot(index));
        }
        if !self.is_used(index) {
            return Err(SlotError::NotInUse(index));
        }
        self.used[index / 64] &= !(1 << (index % 64));
        Ok(())
    }

    pub fn is_used(&self, index: usize) -> bool {
        index < MAX_GUEST_SLOTS && self.used[index / 64] & (1 << (index % 64)) != 0
    }

    pub fn in_use(&self) -> usize {
        self.used.iter().map(|w| w.count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_are_aligned_disjoint_and_in_the_lower_half() {
        assert_eq!(slot_base(0), Some(GUEST_AREA_BASE));
        assert_eq!(slot_base(1), Some(GUEST_AREA_BASE + SLOT_SIZE));
        assert_eq!(slot_base(MAX_GUEST_SLOTS), None);
        let last = slot_base(MAX_GUEST_SLOTS - 1).unwrap();
        assert_eq!(last + SLOT_SIZE, GUEST_AREA_END);
        for i in [0, 1, 7, MAX_GUEST_SLOTS - 1] {
            let base = slot_base(i).unwrap();
            assert_eq!(base % SLOT_SIZE, 0);
            assert_eq!(slot_index_of(base), Some(i));
            assert_eq!(slot_index_of(base + SLOT_SIZE - 1), Some(i));
            assert_eq!(slot_range(base), Some(base..base + SLOT_SIZE));
            assert_eq!(slot_range(base + 4096), None);
        }
        assert_eq!(slot_index_of(GUEST_AREA_BASE - 1), None);
        assert_eq!(slot_index_of(GUEST_AREA_END), None);
    }

    #[test]
    fn hands_out_the_lowest_free_slot_until_full() {
        let mut slots = GuestSlots::new();
        for i in 0..MAX_GUEST_SLOTS {
            assert_eq!(slots.allocate(), Some((i, slot_base(i).unwrap())));
        }
        assert_eq!(slots.allocate(), None);
        assert_eq!(slots.in_use(), MAX_GUEST_SLOTS);
        slots.release(700).unwrap();
        slots.release(5).unwrap();
        assert_eq!(slots.allocate().map(|s| s.0), Some(5));
        assert_eq!(slots.allocate().map(|s| s.0), Some(700));
    }

    #[test]
    fn bad_releases_are_refused() {
        let mut slots = GuestSlots::new();
        assert_eq!(slots.release(3), Err(SlotError::NotInUse(3)));
        let (i, _) = slots.allocate().unwrap();
        slots.release(i).unwrap();
        assert_eq!(slots.release(i), Err(SlotError::NotInUse(i)));
        assert_eq!(
            slots.release(MAX_GUEST_SLOTS),
            Err(SlotError::NoSuchSlot(MAX_GUEST_SLOTS))
        );
    }

    proptest! {
        /// Against a model: allocate takes the lowest free index, release
        /// succeeds exactly for used slots.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(proptest::option::of(0usize..MAX_GUEST_SLOTS + 2), 0..300)) {
            let mut slots = GuestSlots::new();
            let mut model = [false; MAX_GUEST_SLOTS];
            for op in ops {
                match op {
                    None => {
                        let expected = model.iter().position(|u| !u);
                        let got = slots.allocate();
                        prop_assert_eq!(got.map(|s| s.0), expected);
                        if let Some((i, base)) = got {
                            prop_assert_eq!(Some(base), slot_base(i));
                            model[i] = true;
                        }
                    }
                    Some(i) => {
                        let ok = i < MAX_GUEST_SLOTS && model[i];
                        prop_assert_eq!(slots.release(i).is_ok(), ok);
                        if ok {
                            model[i] = false;
                        }
                    }
                }
                prop_assert_eq!(slots.in_use(), model.iter().filter(|u| **u).count());
            }
        }
    }
}
