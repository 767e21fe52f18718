//! `cap_table`: two capability tables under a sequence of operations the
//! input picks (insert, get, get_mut, get_pair_mut, remove, transfer
//! between them or within one, any raw id), against a model: ids are never
//! issued twice, live ids find their value, released ids stay stale, the
//! quota holds, and a refused transfer changes nothing.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::Input;
use crate::cap::{CapId, CapTable, Destination, transfer};
use crate::error::TransportError;

/// What a table holds per capability: an object number and whether the
/// capability may be passed on.
type Value = (u32, bool);

struct Side {
    table: CapTable<Value>,
    live: BTreeMap<CapId, Value>,
    /// Every id this table ever issued.
    issued: Vec<CapId>,
}

impl Side {
    fn new(quota: u16) -> Side {
        Side {
            table: CapTable::new(quota),
            live: BTreeMap::new(),
            issued: Vec::new(),
        }
    }

    /// An id the input picks: one this table issued, or any raw number.
    fn pick(&self, input: &mut Input<'_>) -> Option<CapId> {
        let choice = input.u8();
        if choice < 0xc0 && !self.issued.is_empty() {
            Some(self.issued[choice as usize % self.issued.len()])
        } else {
            CapId::from_raw(input.u32())
        }
    }

    /// What the table must answer for `id`.
    fn expected(&self, id: CapId) -> Result<Value, TransportError> {
        match self.live.get(&id) {
            Some(value) => Ok(*value),
            None if id.generation() == 0 => Err(TransportError::InvalidCap),
            None if self.issued.iter().any(|i| i.index() == id.index()) => {
                Err(TransportError::StaleCap)
            }
            None => Err(TransportError::InvalidCap),
        }
    }

    fn record_issued(&mut self, id: CapId, value: Value) {
        assert!(!self.issued.contains(&id), "{id} issued twice");
        self.issued.push(id);
        self.live.insert(id, value);
    }

    fn check(&self) {
        assert_eq!(self.table.len(), self.live.len());
        assert_eq!(
            self.table.room(),
            self.table.quota() as usize - self.live.len()
        );
        let listed: BTreeMap<CapId, Value> = self.table.iter().map(|(id, v)| (id, *v)).collect();
        assert_eq!(listed, self.live);
    }
}

pub fn cap_table(data: &[u8]) {
    let mut input = Input::new(data);
    let mut sides = [
        Side::new(input.u8() as u16 % 9),
        Side::new(input.u8() as u16 % 9),
    ];
    let mut dead: BTreeSet<u32> = BTreeSet::new();
    let mut objects = 0u32;

    while !input.is_empty() {
        let op = input.u8();
        let s = (op >> 7) as usize;
        match op & 0x7f {
            0..=29 => {
                objects += 1;
                let value = (objects, input.u8() & 3 != 0);
                let side = &mut sides[s];
                match side.table.insert(value) {
                    Ok(id) => side.record_issued(id, value),
                    Err(error) => {
                        assert_eq!(error, TransportError::CapQuotaExceeded);
                        assert_eq!(side.live.len(), side.table.quota() as usize);
                    }
                }
            }
            30..=49 => {
                let side = &sides[s];
                if let Some(id) = side.pick(&mut input) {
                    assert_eq!(side.table.get(id).copied(), side.expected(id), "get {id}");
                }
            }
            50..=59 => {
                let side = &mut sides[s];
                if let Some(id) = side.pick(&mut input) {
                    let expected = side.expected(id);
                    let answer = side.table.get_mut(id).map(|value| {
                        value.0 ^= 0x8000_0000;
                        *value
                    });
                    assert_eq!(answer.map(|v| (v.0 ^ 0x8000_0000, v.1)), expected);
                    if let Ok(value) = answer {
                        side.live.insert(id, value);
                    }
                }
            }
            60..=69 => {
                let side = &mut sides[s];
                let (Some(a), Some(b)) = (side.pick(&mut input), side.pick(&mut input)) else {
                    continue;
                };
                let expected = match (side.expected(a), side.expected(b)) {
                    (Err(e), _) | (_, Err(e)) => Err(e),
                    _ if a.index() == b.index() => Err(TransportError::InvalidCap),
                    (Ok(x), Ok(y)) => Ok((x, y)),
                };
                let answer = side.table.get_pair_mut(a, b).map(|(x, y)| (*x, *y));
                assert_eq!(answer, expected, "pair {a} {b}");
            }
            70..=94 => {
                let side = &mut sides[s];
                if let Some(id) = side.pick(&mut input) {
                    let expected = side.expected(id);
                    assert_eq!(side.table.remove(id), expected, "remove {id}");
                    if expected.is_ok() {
                        side.live.remove(&id);
                        assert_eq!(side.table.get(id), Err(TransportError::StaleCap));
                    }
                }
            }
            95..=99 if objects > 0 => {
                dead.insert(input.u32() % objects + 1);
            }
            _ => {
                let count = input.u8() as usize % 5;
                let moved = input.u8() & 1 == 1;
                let same = input.u8() & 1 == 1;
                let ids: Vec<CapId> = (0..count)
                    .filter_map(|_| sides[s].pick(&mut input))
                    .collect();
                send(&mut sides, s, same, &ids, moved, &dead);
            }
        }
        for side in &sides {
            side.check();
        }
    }
}

/// A transfer from side `from` to itself or to the other side, against
/// what the model says it must do.
fn send(
    sides: &mut [Side; 2],
    from: usize,
    same: bool,
    ids: &[CapId],
    moved: bool,
    dead: &BTreeSet<u32>,
) {
    let check = |value: &Value| {
        if dead.contains(&value.0) {
            Err(TransportError::StaleCap)
        } else if !value.1 {
            Err(TransportError::MissingRight)
        } else {
            Ok(())
        }
    };
    // The first id that fails, in order: not live, refused, moved twice.
    let mut expected: Result<Vec<Value>, TransportError> = Ok(Vec::new());
    for (i, id) in ids.iter().enumerate() {
        let verdict = sides[from].expected(*id).and_then(|value| {
            check(&value)?;
            if moved && ids[..i].contains(id) {
                return Err(TransportError::InvalidCap);
            }
            Ok(value)
        });
        match verdict {
            Ok(value) => {
                if let Ok(values) = &mut expected {
                    values.push(value);
                }
            }
            Err(error) => {
                expected = Err(error);
                break;
            }
        }
    }
    let to = if same { from } else { 1 - from };
    if let Ok(values) = &expected
        && !(same && moved)
        && sides[to].table.room() < values.len()
    {
        expected = Err(TransportError::CapQuotaExceeded);
    }

    let before: [BTreeMap<CapId, Value>; 2] = [sides[0].live.clone(), sides[1].live.clone()];
    let answer = if same {
        transfer(&mut sides[from].table, Destination::Same, ids, moved, check)
    } else {
        let [a, b] = sides;
        let (source, target) = if from == 0 { (a, b) } else { (b, a) };
        transfer(
            &mut source.table,
            Destination::Other(&mut target.table),
            ids,
            moved,
            check,
        )
    };
    match (answer, expected) {
        (Err(error), Err(expected)) => {
            assert_eq!(error, expected, "transfer of {ids:?}");
            for (side, before) in sides.iter().zip(&before) {
                assert_eq!(&side.live, before, "a refused transfer changed nothing");
            }
        }
        (Ok(new_ids), Ok(values)) => {
            assert_eq!(new_ids.len(), values.len());
            if same && moved {
                assert_eq!(new_ids, ids, "a move within one table keeps the ids");
                return;
            }
            if moved {
                for id in ids {
                    sides[from].live.remove(id);
                    assert_eq!(sides[from].table.get(*id), Err(TransportError::StaleCap));
                }
            }
            for (id, value) in new_ids.into_iter().zip(values) {
                assert_eq!(sides[to].table.get(id), Ok(&value));
                sides[to].record_issued(id, value);
            }
        }
        (answer, expected) => panic!("transfer of {ids:?}: {answer:?}, expected {expected:?}"),
    }
}
