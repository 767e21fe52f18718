//! The scheduler's choice of what runs next: round robin over the slots of
//! the thread table, in slot order, starting after the one that ran last.
//!
//! With several CPUs each thread has a home CPU (where it last ran) and a
//! set of CPUs it may run on: a CPU takes its own threads first and steals
//! another CPU's ready thread only when it has none and that thread's home
//! is busy (an idle home was woken for it and takes it itself:
//! `next_for_cpu`), and a thread made runnable wakes an idle CPU, its home
//! first (`cpu_to_wake`).

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

/// A set of CPUs, one bit per CPU index.
pub type CpuSet = u64;

/// The set holding only `cpu` (empty beyond the 64 a set can name).
pub fn cpu_bit(cpu: usize) -> CpuSet {
    1u64.checked_shl(cpu as u32).unwrap_or(0)
}

/// What the per-CPU choice needs to know of a thread.
pub trait Placed {
    /// Whether it can run now.
    fn is_ready(&self) -> bool;
    /// The CPU it last ran on.
    fn home(&self) -> usize;
    /// The CPUs it may run on.
    fn allowed(&self) -> CpuSet;
}

/// What CPU `cpu` runs next after `after`: a ready thread at home there,
/// else one it may steal (ready, allowed on `cpu`, and at home on a CPU
/// that is not `idle`), round robin.
pub fn next_for_cpu<T: Placed>(
    table: &CapTable<T>,
    after: Option<CapId>,
    cpu: usize,
    idle: CpuSet,
) -> Option<CapId> {
    let may_run = |t: &T| t.is_ready() && t.allowed() & cpu_bit(cpu) != 0;
    next_ready(table, after, |t| may_run(t) && t.home() == cpu).or_else(|| {
        next_ready(table, after, |t| {
            may_run(t) && idle & cpu_bit(t.home()) == 0
        })
    })
}

/// Which idle CPU to wake for a thread that became runnable: its `home`
/// if idle, else the lowest idle CPU it is `allowed` on, never `this`
/// (which is awake). `None`: no CPU needs waking.
pub fn cpu_to_wake(idle: CpuSet, allowed: CpuSet, home: usize, this: usize) -> Option<usize> {
    let candidates = idle & allowed & !cpu_bit(this);
    if candidates & cpu_bit(home) != 0 {
        return Some(home);
    }
    (candidates != 0).then(|| candidates.trailing_zeros() as usize)
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

    /// A thread as the per-CPU choice sees it.
    #[derive(Clone, Copy, Debug)]
    struct Thread {
        ready: bool,
        home: usize,
        allowed: CpuSet,
    }

    impl Placed for Thread {
        fn is_ready(&self) -> bool {
            self.ready
        }
        fn home(&self) -> usize {
            self.home
        }
        fn allowed(&self) -> CpuSet {
            self.allowed
        }
    }

    #[test]
    fn a_cpu_takes_its_own_threads_first_then_steals() {
        let mut table = CapTable::new(8);
        let on = |home, ready| Thread {
            ready,
            home,
            allowed: CpuSet::MAX,
        };
        let elsewhere = table.insert(on(1, true)).expect("room");
        let own = table.insert(on(0, true)).expect("room");
        let pinned = table
            .insert(Thread {
                ready: true,
                home: 1,
                allowed: cpu_bit(1),
            })
            .expect("room");
        assert_eq!(next_for_cpu(&table, None, 0, 0), Some(own));
        table.get_mut(own).expect("live").ready = false;
        assert_eq!(next_for_cpu(&table, None, 0, 0), Some(elsewhere), "steals");
        assert_eq!(
            next_for_cpu(&table, None, 0, cpu_bit(1)),
            None,
            "not from an idle home, which was woken for it"
        );
        table.get_mut(elsewhere).expect("live").ready = false;
        assert_eq!(next_for_cpu(&table, None, 0, 0), None, "never a pinned one");
        assert_eq!(next_for_cpu(&table, None, 1, 0), Some(pinned));
    }

    #[test]
    fn waking_prefers_the_home_cpu_and_never_this_one() {
        let all = CpuSet::MAX;
        assert_eq!(cpu_to_wake(0b1110, all, 2, 0), Some(2));
        assert_eq!(cpu_to_wake(0b1010, all, 2, 0), Some(1));
        assert_eq!(cpu_to_wake(0b0001, all, 0, 0), None, "this CPU is awake");
        assert_eq!(cpu_to_wake(0b0110, cpu_bit(3), 1, 0), None, "not allowed");
        assert_eq!(cpu_to_wake(0, all, 1, 0), None);
        assert_eq!(cpu_bit(64), 0);
    }

    proptest! {
        /// A CPU only ever picks a ready thread allowed on it whose home
        /// is it or busy, prefers one at home, and finds one whenever one
        /// is there.
        #[test]
        fn a_cpu_picks_only_what_it_may_run(
            threads in proptest::collection::vec((any::<bool>(), 0usize..4, 0u64..16), 0..20),
            cpu in 0usize..4,
            start in 0usize..20,
            idle in 0u64..16,
        ) {
            let mut table = CapTable::new(64);
            let ids: Vec<CapId> = threads
                .iter()
                .map(|&(ready, home, allowed)| table.insert(Thread { ready, home, allowed }).expect("room"))
                .collect();
            let picked = next_for_cpu(&table, ids.get(start).copied(), cpu, idle);
            let may_run = |t: &Thread| {
                t.ready && t.allowed & cpu_bit(cpu) != 0 && (t.home == cpu || idle & cpu_bit(t.home) == 0)
            };
            let any_home = table.iter().any(|(_, t)| may_run(t) && t.home == cpu);
            let any = table.iter().any(|(_, t)| may_run(t));
            match picked {
                Some(id) => {
                    let t = table.get(id).expect("live");
                    prop_assert!(may_run(t));
                    prop_assert!(!any_home || t.home == cpu, "a thread at home first");
                }
                None => prop_assert!(!any),
            }
        }

        /// The CPU to wake is idle, allowed, not this one, and the home
        /// when that qualifies.
        #[test]
        fn the_cpu_to_wake_qualifies(idle in any::<u64>(), allowed in any::<u64>(), home in 0usize..64, this in 0usize..64) {
            match cpu_to_wake(idle, allowed, home, this) {
                Some(cpu) => {
                    prop_assert!(cpu != this);
                    prop_assert!(idle & allowed & cpu_bit(cpu) != 0);
                    let home_ok = home != this && idle & allowed & cpu_bit(home) != 0;
                    prop_assert!(!home_ok || cpu == home);
                }
                None => prop_assert_eq!(idle & allowed & !cpu_bit(this), 0),
            }
        }
    }
}
