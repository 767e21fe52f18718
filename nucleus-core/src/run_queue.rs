//! The scheduler's choice of what runs next: round robin over the slots of
//! the thread table, in slot order, starting after the one that ran last.

use caps::{CapId, CapTable};

/// The first entry of `table` after slot `after` (or from the start) for
/// which `ready` holds, wrapping around to the slots before it; `after`'s
/// own entry comes last. `None` when nothing is ready.
pub fn next_ready<T>(
    table: &CapTable<T>,
    after: Option<CapId>,
    ready: impl Fn(&T) -> bool,
) -> Option<CapId> {
    let start = after.map_or(0, |id| id.index() as usize + 1);
    table
        .iter()
        .find(|(id, entry)| id.index() as usize >= start && ready(entry))
        .or_else(|| table.iter().find(|(_, entry)| ready(entry)))
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// A table of `readiness.len()` entries, each ready or not; some slots
    /// freed (`gaps`).
    fn table(readiness: &[bool], gaps: &[bool]) -> (CapTable<bool>, Vec<CapId>) {
        let mut table = CapTable::new(64);
        let ids: Vec<CapId> = readiness
            .iter()
            .map(|r| table.insert(*r).expect("room"))
            .collect();
        let mut live = Vec::new();
        for (id, gap) in ids
            .iter()
            .zip(gaps.iter().chain(core::iter::repeat(&false)))
        {
            if *gap {
                table.remove(*id).expect("live");
            } else {
                live.push(*id);
            }
        }
        (table, live)
    }

    #[test]
    fn round_robin_wraps_and_skips_what_is_not_ready() {
        let (table, ids) = table(&[true, false, true, true], &[]);
        let ready = |r: &bool| *r;
        assert_eq!(next_ready(&table, None, ready), Some(ids[0]));
        assert_eq!(next_ready(&table, Some(ids[0]), ready), Some(ids[2]));
        assert_eq!(next_ready(&table, Some(ids[2]), ready), Some(ids[3]));
        assert_eq!(next_ready(&table, Some(ids[3]), ready), Some(ids[0]));
        let (idle, _) = self::table(&[false, false], &[]);
        assert_eq!(next_ready(&idle, None, ready), None);
    }

    proptest! {
        /// Picking again and again from any start visits every ready entry
        /// once per round, in slot order, and never one that is not ready.
        #[test]
        fn every_ready_entry_gets_its_turn(
            readiness in proptest::collection::vec(any::<bool>(), 0..20),
            gaps in proptest::collection::vec(any::<bool>(), 0..20),
            start in 0usize..20,
        ) {
            let (table, live) = table(&readiness, &gaps);
            let ready_ids: Vec<CapId> = live
                .iter()
                .copied()
                .filter(|id| *table.get(*id).expect("live"))
                .collect();
            let mut after = live.get(start).copied();
            let mut seen = Vec::new();
            for _ in 0..ready_ids.len() {
                let next = next_ready(&table, after, |r| *r);
                prop_assert!(next.is_some());
                let next = next.expect("checked");
                prop_assert!(*table.get(next).expect("live"));
                seen.push(next);
                after = Some(next);
            }
            let mut sorted = seen.clone();
            sorted.sort_by_key(|id| id.index());
            sorted.dedup();
            prop_assert_eq!(sorted, ready_ids.clone(), "one turn each: {:?}", seen);
            if ready_ids.is_empty() {
                prop_assert_eq!(next_ready(&table, after, |r| *r), None);
            }
        }
    }
}
