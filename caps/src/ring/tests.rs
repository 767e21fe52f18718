extern crate std;

use super::*;
use crate::entry::Buffer;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::vec::Vec;

fn layout(sq: u32, cq: u32) -> RingLayout {
    RingLayout::new(sq, cq).unwrap()
}

/// An SQE whose every word depends on `n`, so a torn or misplaced entry shows.
fn sqe(n: u64) -> Sqe {
    Sqe::call(
        n as u32 | 1,
        n as u16,
        Buffer::new(n.wrapping_mul(3), n as u32 >> 3),
        Buffer::new(!n, (n as u32).rotate_left(7)),
        n,
    )
}

fn cqe(n: u64) -> Cqe {
    Cqe {
        user_data: n,
        result: n as i32,
        flags: (n >> 32) as u32,
        aux: !n,
        badge: n.rotate_left(13),
    }
}

fn start_at(ring: &OwnedRing, index: u32) {
    let header = ring.header();
    for line in [
        &header.sq_tail,
        &header.sq_head,
        &header.cq_tail,
        &header.cq_head,
    ] {
        line.value.store(index, Ordering::Relaxed);
    }
}

#[test]
fn layouts() {
    let small = layout(1, 1);
    assert_eq!(
        (small.sq_offset(), small.cq_offset(), small.bytes()),
        (0x200, 0x240, 0x260)
    );
    assert_eq!(small.pages(), 1);
    let typical = layout(64, 128);
    assert_eq!(typical.cq_offset(), 0x200 + 64 * 64);
    assert_eq!(typical.bytes(), 0x200 + 64 * 64 + 128 * 32);
    assert_eq!(typical.pages(), 3);
    let largest = layout(4096, 8192);
    assert_eq!(largest.bytes(), 0x200 + 4096 * 64 + 8192 * 32);
    assert_eq!(largest.pages(), 129);
}

#[test]
fn layout_limits() {
    assert_eq!(RingLayout::new(0, 8), Err(RingError::SqEntries(0)));
    assert_eq!(RingLayout::new(3, 8), Err(RingError::SqEntries(3)));
    assert_eq!(RingLayout::new(8192, 8192), Err(RingError::SqEntries(8192)));
    let cq = |sq_entries, cq_entries| {
        Err(RingError::CqEntries {
            sq_entries,
            cq_entries,
        })
    };
    assert_eq!(RingLayout::new(8, 4), cq(8, 4));
    assert_eq!(RingLayout::new(8, 12), cq(8, 12));
    assert_eq!(RingLayout::new(8, 16384), cq(8, 16384));
    assert_eq!(RingLayout::new(8, 0), cq(8, 0));
    assert!(RingLayout::new(4096, 4096).is_ok());
}

#[test]
fn the_header_describes_the_ring() {
    let ring = OwnedRing::new(layout(32, 64));
    let info = &ring.header().info;
    assert_eq!(info.magic.load(Ordering::Relaxed).to_le_bytes(), *b"RING");
    assert_eq!(info.version.load(Ordering::Relaxed), 2);
    assert_eq!(info.sq_entries.load(Ordering::Relaxed), 32);
    assert_eq!(info.cq_entries.load(Ordering::Relaxed), 64);
    assert_eq!(info.sq_offset.load(Ordering::Relaxed), 0x200);
    assert_eq!(info.cq_offset.load(Ordering::Relaxed), 0x200 + 32 * 64);
    assert_eq!(ring.header().layout(), Ok(layout(32, 64)));
}

#[test]
fn a_scribbled_header_is_refused_by_the_guest_and_ignored_by_the_nucleus() {
    let ring = OwnedRing::new(layout(4, 8));
    let info = &ring.header().info;
    info.sq_entries.store(u32::MAX, Ordering::Relaxed);
    assert_eq!(ring.header().layout(), Err(RingError::SqEntries(u32::MAX)));
    info.sq_entries.store(8, Ordering::Relaxed);
    assert_eq!(
        ring.header().layout(),
        Err(RingError::BadOffsets {
            sq_offset: 0x200,
            cq_offset: 0x300
        })
    );
    info.version.store(1, Ordering::Relaxed);
    assert_eq!(ring.header().layout(), Err(RingError::BadVersion(1)));
    info.magic.store(0, Ordering::Relaxed);
    assert_eq!(ring.header().layout(), Err(RingError::BadMagic(0)));

    // The nucleus ends never read the header's sizes: they still work.
    let mut sq = ring.submission_queue();
    let mut consumer = ring.submission_consumer();
    let mut producer = ring.completion_producer();
    for n in 0..4 {
        sq.push(&sqe(n)).unwrap();
    }
    assert_eq!(sq.push(&sqe(4)), Err(QueueFull));
    for n in 0..4 {
        let (got, reservation) = consumer.pop(&mut producer).unwrap().unwrap();
        assert_eq!(got, sqe(n));
        producer.post(reservation, &cqe(n));
    }
}

#[test]
fn slices_must_match_the_layout() {
    let header = RingHeader::new();
    let sq: Vec<SqeSlot> = (0..4).map(|_| SqeSlot::new()).collect();
    let cq: Vec<CqeSlot> = (0..4).map(|_| CqeSlot::new()).collect();
    let wrong = layout(8, 8);
    let mismatch = |expected, found| RingError::SlotCount { expected, found };
    assert_eq!(
        SubmissionQueue::new(wrong, &header, &sq).err(),
        Some(mismatch(8, 4))
    );
    assert_eq!(
        SubmissionConsumer::new(wrong, &header, &sq).err(),
        Some(mismatch(8, 4))
    );
    assert_eq!(
        CompletionProducer::new(wrong, &header, &cq).err(),
        Some(mismatch(8, 4))
    );
    assert_eq!(
        CompletionQueue::new(wrong, &header, &cq).err(),
        Some(mismatch(8, 4))
    );
    assert!(SubmissionQueue::new(layout(4, 4), &header, &sq).is_ok());
}

#[test]
fn slots_copy_every_word() {
    let slot = SqeSlot::new();
    slot.store(&sqe(0x1234_5678_9abc));
    assert_eq!(slot.load(), sqe(0x1234_5678_9abc));
    let slot = CqeSlot::new();
    slot.store(&cqe(u64::MAX - 5));
    assert_eq!(slot.load(), cqe(u64::MAX - 5));
}

/// The nucleus takes an SQE only when the CQ has room for its completion.
#[test]
fn backpressure_holds_sqes_until_the_cq_has_room() {
    let ring = OwnedRing::new(layout(4, 4));
    let mut sq = ring.submission_queue();
    let mut cq = ring.completion_queue();
    let mut consumer = ring.submission_consumer();
    let mut producer = ring.completion_producer();

    // Four calls in flight hold all four CQ entries...
    for n in 0..4 {
        sq.push(&sqe(n)).unwrap();
    }
    let mut held: Vec<_> = (0..4)
        .map(|_| consumer.pop(&mut producer).unwrap().unwrap().1)
        .collect();
    assert_eq!(producer.space(), 0);
    assert_eq!(producer.reserved(), 4);
    // ...so a fifth SQE waits in the SQ even though it is there.
    sq.push(&sqe(4)).unwrap();
    assert!(consumer.pop(&mut producer).unwrap().is_none());
    assert_eq!(consumer.pending(), Ok(1));

    // Completing calls is not enough while the guest leaves the CQEs unread.
    for (n, reservation) in held.drain(..).enumerate() {
        producer.post(reservation, &cqe(n as u64));
    }
    assert!(consumer.pop(&mut producer).unwrap().is_none());
    assert_eq!(cq.pending(), 4);
    assert_eq!(producer.unread(), 4);
    assert_eq!(cq.pop(), Some(cqe(0)));
    assert_eq!(producer.unread(), 3);
    let (fifth, reservation) = consumer.pop(&mut producer).unwrap().unwrap();
    assert_eq!(fifth, sqe(4));
    producer.cancel(reservation);
    assert_eq!(producer.reserved(), 0);
    assert_eq!(producer.space(), 1);
}

#[test]
fn a_guest_tail_too_far_ahead_is_an_overrun() {
    let ring = OwnedRing::new(layout(8, 8));
    let mut consumer = ring.submission_consumer();
    let mut producer = ring.completion_producer();
    ring.header().sq_tail.value.store(9, Ordering::Release);
    let overrun = RingError::Overrun {
        ours: 0,
        theirs: 9,
        entries: 8,
    };
    assert_eq!(consumer.pending(), Err(overrun));
    assert_eq!(consumer.pop(&mut producer).err(), Some(overrun));
    // Behind us counts as far ahead, modulo 2^32.
    ring.header()
        .sq_tail
        .value
        .store(u32::MAX, Ordering::Release);
    assert!(consumer.pending().is_err());
    ring.header().sq_tail.value.store(8, Ordering::Release);
    assert_eq!(consumer.pending(), Ok(8));
}

#[test]
fn a_scribbled_cq_head_only_stalls_the_guest() {
    let ring = OwnedRing::new(layout(4, 4));
    let mut producer = ring.completion_producer();
    // Ahead of our tail, or further behind it than the CQ is long.
    for head in [1, 0x8000_0000, u32::MAX - 4] {
        ring.header().cq_head.value.store(head, Ordering::Release);
        assert_eq!(producer.space(), 0, "head {head}");
        assert!(producer.try_reserve().is_none());
        // Its wait is over at once: all of its CQ counts as unread.
        assert_eq!(producer.unread(), 4, "head {head}");
    }
    ring.header().cq_head.value.store(0, Ordering::Release);
    assert_eq!(producer.space(), 4);
}

#[test]
fn ends_attach_at_the_indices_in_the_ring() {
    let ring = OwnedRing::new(layout(4, 4));
    start_at(&ring, 1000);
    let mut sq = ring.submission_queue();
    sq.push(&sqe(1)).unwrap();
    assert_eq!(ring.header().indices().sq_tail, 1001);
    let mut consumer = ring.submission_consumer();
    let mut producer = ring.completion_producer();
    let (got, reservation) = consumer.pop(&mut producer).unwrap().unwrap();
    assert_eq!(got, sqe(1));
    producer.post(reservation, &cqe(1));
    assert_eq!(ring.completion_queue().pop(), Some(cqe(1)));
    assert_eq!(
        ring.header().indices(),
        RingIndices {
            sq_head: 1001,
            sq_tail: 1001,
            cq_head: 1001,
            cq_tail: 1001
        }
    );
}

#[derive(Clone, Debug)]
enum Step {
    Submit(u8),
    Consume(u8),
    Complete(u8),
    Reap(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u8..10).prop_map(Step::Submit),
        (1u8..10).prop_map(Step::Consume),
        (1u8..10).prop_map(Step::Complete),
        (1u8..10).prop_map(Step::Reap),
    ]
}

proptest! {
    /// Single-threaded against a model, with indices starting just below
    /// u32::MAX so they wrap during the run: nothing lost, duplicated or
    /// reordered, full exactly at `entries`, and the CQ never overflows.
    #[test]
    fn indices_wrap_around_u32_max(
        sq_shift in 0u32..5,
        cq_extra in 0u32..3,
        before_wrap in 0u32..40,
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let sq_entries = 1 << sq_shift;
        let cq_entries = sq_entries << cq_extra;
        let ring = OwnedRing::new(layout(sq_entries, cq_entries));
        start_at(&ring, u32::MAX - before_wrap);
        let mut sq = ring.submission_queue();
        let mut consumer = ring.submission_consumer();
        let mut producer = ring.completion_producer();
        let mut cq = ring.completion_queue();

        let mut submitted = 0u64;
        let mut sq_model: VecDeque<u64> = VecDeque::new();
        let mut in_flight: VecDeque<(u64, CqReservation)> = VecDeque::new();
        let mut cq_model: VecDeque<u64> = VecDeque::new();
        for step in steps {
            match step {
                Step::Submit(n) => for _ in 0..n {
                    let full = sq_model.len() == sq_entries as usize;
                    prop_assert_eq!(sq.space() as usize, sq_entries as usize - sq_model.len());
                    match sq.push(&sqe(submitted)) {
                        Ok(()) => {
                            prop_assert!(!full);
                            sq_model.push_back(submitted);
                            submitted += 1;
                        }
                        Err(QueueFull) => prop_assert!(full),
                    }
                },
                Step::Consume(n) => for _ in 0..n {
                    prop_assert_eq!(consumer.pending(), Ok(sq_model.len() as u32));
                    let cq_room = in_flight.len() + cq_model.len() < cq_entries as usize;
                    match consumer.pop(&mut producer).unwrap() {
                        Some((got, reservation)) => {
                            prop_assert!(cq_room);
                            let expected = sq_model.pop_front().unwrap();
                            prop_assert_eq!(got, sqe(expected));
                            in_flight.push_back((expected, reservation));
                        }
                        None => prop_assert!(sq_model.is_empty() || !cq_room),
                    }
                },
                Step::Complete(n) => for _ in 0..n {
                    if let Some((id, reservation)) = in_flight.pop_front() {
                        producer.post(reservation, &cqe(id));
                        cq_model.push_back(id);
                        prop_assert!(cq_model.len() <= cq_entries as usize);
                    }
                },
                Step::Reap(n) => for _ in 0..n {
                    prop_assert_eq!(cq.pending() as usize, cq_model.len());
                    prop_assert_eq!(cq.pop(), cq_model.pop_front().map(cqe));
                },
            }
        }
    }

    /// Two threads over the same ring memory, as a guest and the nucleus on
    /// two CPUs: every SQE arrives once, intact and in order, and so does
    /// every CQE.
    #[test]
    fn a_guest_thread_and_a_nucleus_thread_share_a_ring(
        sq_shift in 0u32..4,
        cq_extra in 0u32..2,
        start in prop_oneof![Just(0u32), Just(u32::MAX - 20), any::<u32>()],
        count in 1u64..3000,
    ) {
        let sq_entries = 1 << sq_shift;
        let ring = OwnedRing::new(layout(sq_entries, sq_entries << cq_extra));
        start_at(&ring, start);
        let (mut sq, mut cq) = (ring.submission_queue(), ring.completion_queue());
        let (mut consumer, mut producer) = (ring.submission_consumer(), ring.completion_producer());

        std::thread::scope(|scope| {
            let nucleus = scope.spawn(move || {
                let mut taken = 0u64;
                while taken < count {
                    match consumer.pop(&mut producer) {
                        Ok(Some((got, reservation))) => {
                            assert_eq!(got, sqe(taken), "SQE {taken}");
                            producer.post(reservation, &cqe(taken));
                            taken += 1;
                        }
                        Ok(None) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
                assert_eq!(consumer.pending(), Ok(0));
            });
            let (mut sent, mut received) = (0u64, 0u64);
            while received < count {
                let mut progressed = false;
                if sent < count && sq.push(&sqe(sent)).is_ok() {
                    sent += 1;
                    progressed = true;
                }
                while let Some(got) = cq.pop() {
                    assert_eq!(got, cqe(received), "CQE {received}");
                    received += 1;
                    progressed = true;
                }
                if !progressed {
                    std::thread::yield_now();
                }
            }
            nucleus.join().unwrap();
        });
        prop_assert_eq!(cq.pop(), None);
        let end = start.wrapping_add(count as u32);
        prop_assert_eq!(ring.header().indices(), RingIndices { sq_head: end, sq_tail: end, cq_head: end, cq_tail: end });
    }
}
