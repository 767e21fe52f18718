//! Capability ids and each guest's capability table.
//!
//! A [`CapId`] is `(generation << 16) | index`: the index of a slot in the
//! caller's own table and the generation that slot had when the capability
//! was put there. Releasing a capability bumps its slot's generation, so
//! every copy of the old id becomes stale instead of silently naming whatever
//! the slot holds next.
//!
//! CapIds are local names. The nucleus only ever looks a CapId up in the
//! table of the guest that sent it, so a "foreign" id (one read out of
//! another guest's table, guessed, or forged) is just a number naming a slot
//! of the caller's own table: it is invalid or stale there, or it names one
//! of the caller's own capabilities. It can never reach another guest's
//! object. Handing a capability to another guest means the nucleus inserting
//! it into that guest's table, under a new id.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::error::TransportError;

/// A capability's name in one guest's table. Never 0: generations start at 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapId(u32);

impl CapId {
    /// Generations run 1..=`MAX_GENERATION`; 0 would make index 0's id null.
    pub const MAX_GENERATION: u16 = 0xFFFF;

    /// `None` for generation 0: such an id would be null or never issued.
    pub const fn new(index: u16, generation: u16) -> Option<CapId> {
        if generation == 0 {
            return None;
        }
        Some(CapId((generation as u32) << 16 | index as u32))
    }

    /// `None` for the null id 0. Any other number is a well-formed id, though
    /// it may name nothing in a given table.
    pub const fn from_raw(raw: u32) -> Option<CapId> {
        if raw == 0 { None } else { Some(CapId(raw)) }
    }

    pub const fn raw(self) -> u32 {
        self.0
    }

    pub const fn index(self) -> u16 {
        self.0 as u16
    }

    pub const fn generation(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

impl core::fmt::Display for CapId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cap {}#{}", self.index(), self.generation())
    }
}

/// A slot is live while it holds a value. Its generation is that of its
/// current or last occupant; a free slot's next occupant gets the next one.
struct Slot<T> {
    generation: u16,
    value: Option<T>,
}

impl<T> Slot<T> {
    /// Used with every generation: never handed out again, so every id that
    /// ever named it stays stale.
    fn is_retired(&self) -> bool {
        self.value.is_none() && self.generation == CapId::MAX_GENERATION
    }
}

/// One guest's capabilities. `T` is whatever the nucleus keeps per
/// capability (which object, which interface, which rights).
pub struct CapTable<T> {
    slots: Vec<Slot<T>>,
    /// Free slots, oldest release first: reusing the slot released longest
    /// ago keeps a just-released id stale for as long as possible.
    free: VecDeque<u16>,
    live: usize,
    quota: u16,
}

impl<T> CapTable<T> {
    /// Indices are 16 bits; index 0xFFFF is left unused so that a table
    /// never holds more than 65535 slots.
    pub const MAX_SLOTS: usize = 0xFFFF;

    /// A table that holds at most `quota` live capabilities at once.
    pub const fn new(quota: u16) -> CapTable<T> {
        CapTable {
            slots: Vec::new(),
            free: VecDeque::new(),
            live: 0,
            quota,
        }
    }

    pub const fn quota(&self) -> u16 {
        self.quota
    }

    /// Live capabilities.
    pub const fn len(&self) -> usize {
        self.live
    }

    pub const fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Slots that can never be used again.
    pub fn retired(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_retired()).count()
    }

    /// Puts `value` in a free slot (the one released longest ago) or a new
    /// one. Fails with `CapQuotaExceeded` when `quota` capabilities are live,
    /// or when all 65535 indices are live or retired.
    pub fn insert(&mut self, value: T) -> Result<CapId, TransportError> {
        if self.live >= self.quota as usize {
            return Err(TransportError::CapQuotaExceeded);
        }
        let index = match self.free.pop_front() {
            Some(index) => index as usize,
            None if self.slots.len() < Self::MAX_SLOTS => {
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                self.slots.len() - 1
            }
            None => return Err(TransportError::CapQuotaExceeded),
        };
        let slot = &mut self.slots[index];
        // Free slots are below MAX_GENERATION (retired ones never join the
        // free list), so this is 1..=0xFFFF.
        slot.generation += 1;
        slot.value = Some(value);
        self.live += 1;
        CapId::new(index as u16, slot.generation).ok_or(TransportError::CapQuotaExceeded)
    }

    pub fn get(&self, id: CapId) -> Result<&T, TransportError> {
        let slot = self.slot(id)?;
        match &slot.value {
            Some(value) if slot.generation == id.generation() => Ok(value),
            _ => Err(TransportError::StaleCap),
        }
    }

    pub fn get_mut(&mut self, id: CapId) -> Result<&mut T, TransportError> {
        let slot = self.slot_mut(id)?;
        match &mut slot.value {
            Some(value) if slot.generation == id.generation() => Ok(value),
            _ => Err(TransportError::StaleCap),
        }
    }

    /// Two different live entries at once (`InvalidCap` if `a` and `b`
    /// name one slot).
    pub fn get_pair_mut(&mut self, a: CapId, b: CapId) -> Result<(&mut T, &mut T), TransportError> {
        self.get(a)?;
        self.get(b)?;
        let (i, j) = (a.index() as usize, b.index() as usize);
        if i == j {
            return Err(TransportError::InvalidCap);
        }
        let (low, high) = self.slots.split_at_mut(i.max(j));
        let (first, second) = (&mut low[i.min(j)], &mut high[0]);
        let (first, second) = match (first.value.as_mut(), second.value.as_mut()) {
            (Some(first), Some(second)) => (first, second),
            _ => return Err(TransportError::StaleCap),
        };
        Ok(if i < j {
            (first, second)
        } else {
            (second, first)
        })
    }

    /// Takes the capability out; its id, and every copy of it, is stale from
    /// now on. The slot is reused with the next generation, or retired if
    /// this was generation 0xFFFF.
    pub fn remove(&mut self, id: CapId) -> Result<T, TransportError> {
        let slot = self.slot_mut(id)?;
        if slot.generation != id.generation() {
            return Err(TransportError::StaleCap);
        }
        let value = slot.value.take().ok_or(TransportError::StaleCap)?;
        if !slot.is_retired() {
            self.free.push_back(id.index());
        }
        self.live -= 1;
        Ok(value)
    }

    /// How many more capabilities `insert` would take now.
    pub fn room(&self) -> usize {
        let by_quota = (self.quota as usize).saturating_sub(self.live);
        let by_slots = self.free.len() + (Self::MAX_SLOTS - self.slots.len());
        by_quota.min(by_slots)
    }

    /// Every live capability with its id.
    pub fn iter(&self) -> impl Iterator<Item = (CapId, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            Some((
                CapId::new(index as u16, slot.generation)?,
                slot.value.as_ref()?,
            ))
        })
    }

    /// Every live capability with its id, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (CapId, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| {
                Some((
                    CapId::new(index as u16, slot.generation)?,
                    slot.value.as_mut()?,
                ))
            })
    }

    /// `InvalidCap` unless `id`'s index names a slot this table has allocated.
    fn slot(&self, id: CapId) -> Result<&Slot<T>, TransportError> {
        if id.generation() == 0 {
            return Err(TransportError::InvalidCap);
        }
        self.slots
            .get(id.index() as usize)
            .ok_or(TransportError::InvalidCap)
    }

    fn slot_mut(&mut self, id: CapId) -> Result<&mut Slot<T>, TransportError> {
        if id.generation() == 0 {
            return Err(TransportError::InvalidCap);
        }
        self.slots
            .get_mut(id.index() as usize)
            .ok_or(TransportError::InvalidCap)
    }
}

/// Where [`transfer`] puts capabilities.
pub enum Destination<'a, T> {
    /// The sender's own table (a guest calling an endpoint it serves).
    Same,
    Other(&'a mut CapTable<T>),
}

/// Passes the capabilities `ids` names in `from` to `to`, all or none:
/// each must be live in `from` and pass `check` (the object is alive, the
/// rights allow transfer), a move may not name one twice, and `to` must
/// have room for all of them. Copies stay in `from`; moves leave it. Returns
/// the ids in `to`, in order. A move within one table keeps the ids.
pub fn transfer<T: Clone>(
    from: &mut CapTable<T>,
    to: Destination<'_, T>,
    ids: &[CapId],
    moved: bool,
    check: impl Fn(&T) -> Result<(), TransportError>,
) -> Result<Vec<CapId>, TransportError> {
    let mut values = Vec::new();
    values
        .try_reserve_exact(ids.len())
        .map_err(|_| TransportError::CapQuotaExceeded)?;
    for (i, id) in ids.iter().enumerate() {
        let value = from.get(*id)?;
        check(value)?;
        if moved && ids[..i].contains(id) {
            return Err(TransportError::InvalidCap);
        }
        values.push(value.clone());
    }
    match to {
        Destination::Same if moved => Ok(ids.to_vec()),
        Destination::Same => from.insert_all(values),
        Destination::Other(to) => {
            if to.room() < values.len() {
                return Err(TransportError::CapQuotaExceeded);
            }
            if moved {
                for id in ids {
                    from.remove(*id)?;
                }
            }
            to.insert_all(values)
        }
    }
}

impl<T> CapTable<T> {
    /// Inserts every value, or none (`CapQuotaExceeded`) when they do not
    /// all fit.
    pub fn insert_all(&mut self, values: Vec<T>) -> Result<Vec<CapId>, TransportError> {
        if self.room() < values.len() {
            return Err(TransportError::CapQuotaExceeded);
        }
        values.into_iter().map(|value| self.insert(value)).collect()
    }
}

impl<T> Default for CapTable<T> {
    /// The largest quota.
    fn default() -> Self {
        CapTable::new(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec;

    #[test]
    fn ids_pack_generation_over_index_and_are_never_null() {
        let id = CapId::new(5, 3).unwrap();
        assert_eq!(id.raw(), 0x0003_0005);
        assert_eq!((id.index(), id.generation()), (5, 3));
        assert_eq!(CapId::new(0, 1).unwrap().raw(), 0x1_0000);
        assert_eq!(CapId::new(7, 0), None);
        assert_eq!(CapId::from_raw(0), None);
        assert_eq!(CapId::from_raw(0x1_0000), CapId::new(0, 1));
    }

    #[test]
    fn insert_get_remove() {
        let mut table = CapTable::new(4);
        let a = table.insert("a").unwrap();
        let b = table.insert("b").unwrap();
        assert_eq!(table.get(a), Ok(&"a"));
        *table.get_mut(b).unwrap() = "B";
        assert_eq!(table.get(b), Ok(&"B"));
        assert_eq!(table.len(), 2);
        assert_eq!(table.remove(a), Ok("a"));
        assert_eq!(table.get(a), Err(TransportError::StaleCap));
        assert_eq!(table.get_mut(a), Err(TransportError::StaleCap));
        assert_eq!(table.remove(a), Err(TransportError::StaleCap));
        assert_eq!(table.iter().collect::<Vec<_>>(), vec![(b, &"B")]);
    }

    #[test]
    fn ids_the_table_never_issued_are_invalid() {
        let mut table = CapTable::new(4);
        table.insert(()).unwrap();
        let beyond = CapId::new(1, 1).unwrap();
        assert_eq!(table.get(beyond), Err(TransportError::InvalidCap));
        assert_eq!(table.remove(beyond), Err(TransportError::InvalidCap));
        let generation_zero = CapId::from_raw(3).unwrap(); // generation 0, index 3
        assert_eq!(table.get(generation_zero), Err(TransportError::InvalidCap));
        assert_eq!(
            CapTable::<()>::new(4).get(CapId::new(0, 1).unwrap()),
            Err(TransportError::InvalidCap)
        );
    }

    #[test]
    fn two_entries_at_once() {
        let mut table = CapTable::new(4);
        let a = table.insert(1).unwrap();
        let b = table.insert(2).unwrap();
        let (x, y) = table.get_pair_mut(b, a).unwrap();
        assert_eq!((*x, *y), (2, 1));
        *x = 20;
        assert_eq!(table.get(b), Ok(&20));
        assert_eq!(table.get_pair_mut(a, a), Err(TransportError::InvalidCap));
        table.remove(b).unwrap();
        assert_eq!(table.get_pair_mut(a, b), Err(TransportError::StaleCap));
    }

    #[test]
    fn quota_counts_live_capabilities() {
        let mut table = CapTable::new(2);
        let a = table.insert(1).unwrap();
        table.insert(2).unwrap();
        assert_eq!(table.insert(3), Err(TransportError::CapQuotaExceeded));
        table.remove(a).unwrap();
        let c = table.insert(3).unwrap();
        assert_eq!(c.index(), a.index(), "the freed slot is reused");
        assert_eq!(c.generation(), a.generation() + 1);
        assert_eq!(
            CapTable::<u8>::new(0).insert(1),
            Err(TransportError::CapQuotaExceeded)
        );
    }

    #[test]
    fn the_slot_released_longest_ago_is_reused_first() {
        let mut table = CapTable::new(3);
        let ids: Vec<_> = (0..3).map(|i| table.insert(i).unwrap()).collect();
        table.remove(ids[2]).unwrap();
        table.remove(ids[0]).unwrap();
        assert_eq!(table.insert(10).unwrap().index(), ids[2].index());
        assert_eq!(table.insert(11).unwrap().index(), ids[0].index());
    }

    #[test]
    fn a_slot_retires_after_generation_ffff() {
        let mut table = CapTable::new(1);
        let first = table.insert(0u32).unwrap();
        let mut last = first;
        table.remove(first).unwrap();
        for generation in 2..=0xFFFFu32 {
            let id = table.insert(generation).unwrap();
            assert_eq!((id.index(), id.generation() as u32), (0, generation));
            last = id;
            table.remove(id).unwrap();
        }
        assert_eq!(table.retired(), 1);
        // Slot 0 is never handed out again; a new index takes over.
        let fresh = table.insert(7).unwrap();
        assert_eq!((fresh.index(), fresh.generation()), (1, 1));
        assert_eq!(table.get(first), Err(TransportError::StaleCap));
        assert_eq!(table.get(last), Err(TransportError::StaleCap));
    }

    #[test]
    fn a_full_table_refuses_more() {
        let mut table = CapTable::new(u16::MAX);
        for i in 0..CapTable::<u32>::MAX_SLOTS {
            table.insert(i as u32).unwrap();
        }
        assert_eq!(table.len(), 0xFFFF);
        assert_eq!(table.insert(0), Err(TransportError::CapQuotaExceeded));
        let id = CapId::new(0xFFFE, 1).unwrap();
        assert_eq!(table.get(id), Ok(&0xFFFE));
        assert_eq!(
            table.get(CapId::new(0xFFFF, 1).unwrap()),
            Err(TransportError::InvalidCap)
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert,
        /// Remove the n-th id ever issued (modulo how many there are).
        Remove(usize),
        Get(usize),
    }

    #[derive(Clone, Debug)]
    enum TransferOp {
        Mint {
            side: usize,
            transferable: bool,
        },
        Kill(u32),
        Send {
            from: usize,
            picks: Vec<usize>,
            moved: bool,
        },
    }

    fn transfer_op() -> impl Strategy<Value = TransferOp> {
        prop_oneof![
            (0usize..2, proptest::bool::weighted(0.8))
                .prop_map(|(side, transferable)| TransferOp::Mint { side, transferable }),
            any::<u32>().prop_map(TransferOp::Kill),
            (
                0usize..2,
                proptest::collection::vec(any::<usize>(), 0..4),
                any::<bool>()
            )
                .prop_map(|(from, picks, moved)| TransferOp::Send {
                    from,
                    picks,
                    moved
                }),
        ]
    }

    #[test]
    fn a_move_within_one_table_keeps_the_ids_and_a_copy_adds_one() {
        let mut table = CapTable::new(3);
        let a = table.insert(1u8).unwrap();
        let ok = |_: &u8| Ok(());
        assert_eq!(
            transfer(&mut table, Destination::Same, &[a], true, ok),
            Ok(vec![a])
        );
        let copied = transfer(&mut table, Destination::Same, &[a], false, ok).unwrap();
        assert_ne!(copied, vec![a]);
        assert_eq!(table.len(), 2);
        assert_eq!(table.room(), 1);
        assert_eq!(
            transfer(&mut table, Destination::Same, &[a, a], false, ok),
            Err(TransportError::CapQuotaExceeded)
        );
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Insert),
            any::<usize>().prop_map(Op::Remove),
            any::<usize>().prop_map(Op::Get),
        ]
    }

    proptest! {
        /// Against a model: every id ever issued is unique, live ids find
        /// their value, released ids are stale forever, quota holds.
        #[test]
        fn released_ids_stay_stale(quota in 1u16..8, ops in proptest::collection::vec(op(), 1..300)) {
            let mut table = CapTable::new(quota);
            let mut issued: Vec<CapId> = Vec::new();
            let mut live: BTreeMap<CapId, usize> = BTreeMap::new();
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert => match table.insert(step) {
                        Ok(id) => {
                            prop_assert!(!issued.contains(&id), "{id} issued twice");
                            issued.push(id);
                            live.insert(id, step);
                        }
                        Err(e) => {
                            prop_assert_eq!(e, TransportError::CapQuotaExceeded);
                            prop_assert_eq!(live.len(), quota as usize);
                        }
                    },
                    Op::Remove(n) | Op::Get(n) if issued.is_empty() => { let _ = n; }
                    Op::Remove(n) => {
                        let id = issued[n % issued.len()];
                        match live.remove(&id) {
                            Some(value) => prop_assert_eq!(table.remove(id), Ok(value)),
                            None => prop_assert_eq!(table.remove(id), Err(TransportError::StaleCap)),
                        }
                    }
                    Op::Get(n) => {
                        let id = issued[n % issued.len()];
                        match live.get(&id) {
                            Some(value) => prop_assert_eq!(table.get(id), Ok(value)),
                            None => prop_assert_eq!(table.get(id), Err(TransportError::StaleCap)),
                        }
                    }
                }
                prop_assert_eq!(table.len(), live.len());
            }
        }

        /// Transfers between two tables against a model: all or nothing,
        /// copies keep the source, moves empty it, quota and liveness hold,
        /// a capability whose object died is refused.
        #[test]
        fn transfers_are_all_or_nothing(
            quotas in (1u16..6, 1u16..6),
            ops in proptest::collection::vec(transfer_op(), 1..200),
        ) {
            // A capability is (object, transferable); objects die by number.
            let mut tables = [CapTable::<(u32, bool)>::new(quotas.0), CapTable::new(quotas.1)];
            let mut model: [BTreeMap<CapId, (u32, bool)>; 2] = [BTreeMap::new(), BTreeMap::new()];
            let mut dead = std::collections::BTreeSet::new();
            let mut next_object = 0u32;
            for op in ops {
                match op {
                    TransferOp::Mint { side, transferable } => {
                        next_object += 1;
                        let value = (next_object, transferable);
                        match tables[side].insert(value) {
                            Ok(id) => { model[side].insert(id, value); }
                            Err(e) => {
                                prop_assert_eq!(e, TransportError::CapQuotaExceeded);
                                prop_assert_eq!(model[side].len(), tables[side].quota() as usize);
                            }
                        }
                    }
                    TransferOp::Kill(n) if next_object > 0 => { dead.insert(n % next_object + 1); }
                    TransferOp::Kill(_) => {}
                    TransferOp::Send { from, picks, moved } => {
                        let ids: Vec<CapId> = model[from].keys().copied().collect();
                        let chosen: Vec<CapId> = if ids.is_empty() { vec![] } else {
                            picks.iter().map(|p| ids[p % ids.len()]).collect()
                        };
                        let check = |v: &(u32, bool)| {
                            if dead.contains(&v.0) { Err(TransportError::StaleCap) }
                            else if !v.1 { Err(TransportError::MissingRight) }
                            else { Ok(()) }
                        };
                        let (a, b) = tables.split_at_mut(1);
                        let (source, target) = if from == 0 { (&mut a[0], &mut b[0]) } else { (&mut b[0], &mut a[0]) };
                        let before = (source.len(), target.len());
                        let answer = transfer(source, Destination::Other(target), &chosen, moved, check);
                        let values: Vec<_> = chosen.iter().map(|id| model[from][id]).collect();
                        let refusal = if values.iter().any(|v| dead.contains(&v.0)) || values.iter().any(|v| !v.1) {
                            true
                        } else {
                            let duplicate = moved && (1..chosen.len()).any(|i| chosen[..i].contains(&chosen[i]));
                            duplicate || target.quota() as usize - before.1 < chosen.len()
                        };
                        match answer {
                            Ok(new_ids) => {
                                prop_assert!(!refusal);
                                prop_assert_eq!(new_ids.len(), chosen.len());
                                for (id, value) in new_ids.iter().zip(&values) {
                                    prop_assert_eq!(target.get(*id), Ok(value));
                                    model[1 - from].insert(*id, *value);
                                }
                                if moved {
                                    for id in &chosen {
                                        prop_assert_eq!(source.get(*id), Err(TransportError::StaleCap));
                                        model[from].remove(id);
                                    }
                                }
                            }
                            Err(_) => {
                                prop_assert!(refusal);
                                prop_assert_eq!((source.len(), target.len()), before, "a refused transfer changed nothing");
                            }
                        }
                    }
                }
                for side in 0..2 {
                    prop_assert_eq!(tables[side].len(), model[side].len());
                }
            }
        }

        /// Any raw number is either one of the table's live ids or an error:
        /// never someone else's value, never a panic.
        #[test]
        fn arbitrary_ids_find_only_live_capabilities(raw in any::<u32>(), inserts in 0u16..20) {
            let mut table = CapTable::new(32);
            let ids: Vec<_> = (0..inserts).map(|i| table.insert(i).unwrap()).collect();
            match CapId::from_raw(raw) {
                None => prop_assert_eq!(raw, 0),
                Some(id) => match table.get(id) {
                    Ok(value) => prop_assert_eq!(ids[*value as usize], id),
                    Err(e) => prop_assert!(matches!(e, TransportError::InvalidCap | TransportError::StaleCap)),
                },
            }
        }
    }
}
