//! `ring_indices`: both ends of a ring driven by the input, a guest that
//! may write any value to any index or slot at any moment among them. The
//! nucleus's ends never index out of their queues, never see more pending
//! SQEs than the SQ holds, never promise more completions than the CQ
//! holds, and store only their own indices; while the guest plays by the
//! rules, every SQE and CQE arrives once, in order.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::Input;
use crate::entry::{Cqe, Sqe};
use crate::ring::{CqReservation, OwnedRing, RingError, RingLayout};

/// A CALL whose every word depends on `n`, so a misplaced entry shows.
fn sqe(n: u64) -> Sqe {
    Sqe::call(
        n as u32 | 1,
        n as u16,
        crate::entry::Buffer::new(n.wrapping_mul(3), n as u32 >> 3),
        crate::entry::Buffer::new(!n, (n as u32).rotate_left(7)),
        n,
    )
}

/// An index the guest writes: near `current` or anything at all.
fn hostile_index(input: &mut Input<'_>, current: u32) -> u32 {
    let mode = input.u8();
    if mode & 1 == 0 {
        current.wrapping_add((mode as i8 >> 1) as i32 as u32)
    } else {
        input.u32()
    }
}

pub fn ring_indices(data: &[u8]) {
    let mut input = Input::new(data);
    let shape = input.u8();
    let sq_entries = 1u32 << (shape & 3);
    let cq_entries = sq_entries << (shape >> 2 & 3);
    let layout = RingLayout::new(sq_entries, cq_entries).expect("a valid layout");
    let ring = OwnedRing::new(layout);
    let header = ring.header();
    // Indices start wherever the input says, to cross the u32 wrap.
    let start = input.u32();
    for line in [
        &header.sq_tail,
        &header.sq_head,
        &header.cq_tail,
        &header.cq_head,
    ] {
        line.value.store(start, Ordering::Relaxed);
    }
    let mut submissions = ring.submission_queue();
    let mut consumer = ring.submission_consumer();
    let mut producer = ring.completion_producer();
    let mut completions = ring.completion_queue();

    // The nucleus's own indices, and the model of what is in flight.
    let mut sq_head = start;
    let mut cq_tail = start;
    let mut pushed = 0u64;
    let mut submitted: VecDeque<u64> = VecDeque::new();
    let mut held: Vec<(CqReservation, u64)> = Vec::new();
    let mut posted: VecDeque<u64> = VecDeque::new();
    // Whether the guest has kept to the protocol so far.
    let mut honest = true;

    while !input.is_empty() {
        match input.u8() % 10 {
            0 => {
                let pushed_ok = submissions.push(&sqe(pushed)).is_ok();
                if honest {
                    assert_eq!(pushed_ok, submitted.len() < sq_entries as usize);
                }
                if pushed_ok {
                    submitted.push_back(pushed);
                    pushed += 1;
                }
            }
            1 => match consumer.pop(&mut producer) {
                Ok(Some((entry, reservation))) => {
                    sq_head = sq_head.wrapping_add(1);
                    assert_eq!(header.sq_head.value.load(Ordering::Relaxed), sq_head);
                    let expected = submitted.pop_front();
                    if honest {
                        assert_eq!(Some(entry), expected.map(sqe), "SQEs in order");
                    }
                    held.push((reservation, entry.user_data));
                }
                Ok(None) => {
                    if honest {
                        let room = cq_entries as usize - posted.len() - held.len();
                        assert!(submitted.is_empty() || room == 0, "an SQE left waiting");
                    }
                }
                Err(error) => {
                    assert!(!honest, "{error}");
                    assert!(matches!(error, RingError::Overrun { .. }));
                }
            },
            2 | 3 if !held.is_empty() => {
                let at = input.u8() as usize % held.len();
                let (reservation, user_data) = held.swap_remove(at);
                if input.u8() & 1 == 0 {
                    producer.post(reservation, &Cqe::done(user_data, 0, 0));
                    cq_tail = cq_tail.wrapping_add(1);
                    assert_eq!(header.cq_tail.value.load(Ordering::Relaxed), cq_tail);
                    posted.push_back(user_data);
                } else {
                    producer.cancel(reservation);
                }
            }
            4 => {
                let completion = completions.pop();
                if honest {
                    assert_eq!(
                        completion.map(|c| c.user_data),
                        posted.pop_front(),
                        "CQEs in order"
                    );
                }
            }
            5 => {
                let value = hostile_index(&mut input, header.sq_tail.value.load(Ordering::Relaxed));
                header.sq_tail.value.store(value, Ordering::Release);
                honest = false;
            }
            6 => {
                let value = hostile_index(&mut input, header.cq_head.value.load(Ordering::Relaxed));
                header.cq_head.value.store(value, Ordering::Release);
                honest = false;
            }
            7 => {
                // The nucleus's indices live in guest memory too.
                let line = if input.u8() & 1 == 0 {
                    &header.sq_head
                } else {
                    &header.cq_tail
                };
                let value = hostile_index(&mut input, line.value.load(Ordering::Relaxed));
                line.value.store(value, Ordering::Release);
                honest = false;
            }
            8 => {
                let (slot, word, value) = (input.u16() as usize, input.u8() as usize, input.u64());
                if input.u8() & 1 == 0 {
                    let slots = ring.sq_slots();
                    slots[slot % slots.len()].0[word % 8].store(value, Ordering::Relaxed);
                } else {
                    let slots = ring.cq_slots();
                    slots[slot % slots.len()].0[word % 4].store(value, Ordering::Relaxed);
                }
                honest = false;
            }
            _ => match consumer.pending() {
                Ok(pending) => {
                    assert!(pending <= sq_entries);
                    if honest {
                        assert_eq!(pending as usize, submitted.len());
                    }
                }
                Err(RingError::Overrun {
                    ours,
                    theirs,
                    entries,
                }) => {
                    assert!(!honest);
                    assert_eq!((ours, entries), (sq_head, sq_entries));
                    assert!(theirs.wrapping_sub(ours) > entries);
                }
                Err(error) => panic!("{error}"),
            },
        }
        // Whatever the guest wrote, the nucleus promises no more
        // completions than the CQ holds.
        assert_eq!(producer.reserved() as usize, held.len());
        assert!(held.len() <= cq_entries as usize);
        assert!(producer.space() <= cq_entries);
        assert!(completions.pending() <= cq_entries);
        if honest {
            assert!(
                posted.len() + held.len() <= cq_entries as usize,
                "CQ overflow"
            );
            assert!(submitted.len() <= sq_entries as usize);
        }
    }
}
