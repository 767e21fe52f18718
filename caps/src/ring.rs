//! The ring: one page-aligned region a guest and the nucleus share, holding a
//! header, a submission queue (SQ) of 64-byte entries the guest produces and
//! a completion queue (CQ) of 32-byte entries the nucleus produces. The
//! layout, byte by byte, is in docs/abi.md.
//!
//! Every byte of the ring is an atomic here, so both sides work on it with
//! safe code while the other side writes it concurrently: index words with
//! Acquire/Release, entry words with Relaxed (the index stores order them).
//! Entries are copied out word by word before anyone looks at them.
//!
//! Trust: the guest can write anything anywhere in its ring at any time. The
//! nucleus ends ([`SubmissionConsumer`], [`CompletionProducer`]) are built
//! from a [`RingLayout`] the nucleus kept when it created the ring, never
//! from the header; they keep their own copy of the index they own and only
//! ever store it; the index they read from the guest is checked before use.
//! A guest that corrupts its ring can stall or confuse only itself.

use alloc::boxed::Box;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::entry::{Cqe, Sqe};

// The ABI is little-endian words; the shared structs rely on native order.
const _: () = assert!(cfg!(target_endian = "little"));

/// `b"RING"` read as a little-endian u32.
pub const RING_MAGIC: u32 = 0x474e_4952;
pub const RING_VERSION: u32 = 2;
pub const PAGE_SIZE: usize = 4096;

/// The header's first line: what the nucleus says the ring looks like. For
/// the guest's information only; the nucleus never reads it back.
#[repr(C, align(64))]
pub struct RingInfo {
    pub magic: AtomicU32,
    pub version: AtomicU32,
    pub sq_entries: AtomicU32,
    pub cq_entries: AtomicU32,
    pub sq_offset: AtomicU32,
    pub cq_offset: AtomicU32,
    pub reserved: [AtomicU32; 10],
}

/// One index on a cache line of its own, so the two sides do not bounce a
/// line between CPUs when each writes its own index.
#[repr(C, align(64))]
pub struct IndexLine {
    pub value: AtomicU32,
    pub reserved: [AtomicU32; 15],
}

#[repr(C, align(64))]
pub struct ReservedLine(pub [AtomicU32; 16]);

/// The first 0x200 bytes of a ring.
#[repr(C)]
pub struct RingHeader {
    pub info: RingInfo,
    /// Next SQ index the guest will fill; the guest stores it.
    pub sq_tail: IndexLine,
    /// Next SQ index the nucleus will read; the nucleus stores it.
    pub sq_head: IndexLine,
    /// Next CQ index the nucleus will fill; the nucleus stores it.
    pub cq_tail: IndexLine,
    /// Next CQ index the guest will read; the guest stores it.
    pub cq_head: IndexLine,
    pub reserved: [ReservedLine; 3],
}

/// One SQE as it sits in the ring.
#[repr(C, align(64))]
pub struct SqeSlot(pub [AtomicU64; 8]);

/// One CQE as it sits in the ring.
#[repr(C, align(32))]
pub struct CqeSlot(pub [AtomicU64; 4]);

pub const HEADER_BYTES: usize = 0x200;

const _: () = {
    assert!(size_of::<RingInfo>() == 64);
    assert!(offset_of!(RingInfo, magic) == 0x00);
    assert!(offset_of!(RingInfo, version) == 0x04);
    assert!(offset_of!(RingInfo, sq_entries) == 0x08);
    assert!(offset_of!(RingInfo, cq_entries) == 0x0c);
    assert!(offset_of!(RingInfo, sq_offset) == 0x10);
    assert!(offset_of!(RingInfo, cq_offset) == 0x14);
    assert!(offset_of!(RingInfo, reserved) == 0x18);
    assert!(size_of::<IndexLine>() == 64);
    assert!(size_of::<ReservedLine>() == 64);
    assert!(size_of::<RingHeader>() == HEADER_BYTES);
    assert!(offset_of!(RingHeader, info) == 0x000);
    assert!(offset_of!(RingHeader, sq_tail) == 0x040);
    assert!(offset_of!(RingHeader, sq_head) == 0x080);
    assert!(offset_of!(RingHeader, cq_tail) == 0x0c0);
    assert!(offset_of!(RingHeader, cq_head) == 0x100);
    assert!(offset_of!(RingHeader, reserved) == 0x140);
    assert!(size_of::<SqeSlot>() == Sqe::BYTES);
    assert!(size_of::<CqeSlot>() == Cqe::BYTES);
    assert!(core::mem::align_of::<RingHeader>() == 64);
    assert!(core::mem::align_of::<SqeSlot>() == 64);
    assert!(core::mem::align_of::<CqeSlot>() == 32);
};

/// Why a ring cannot be set up or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// SQ entries must be a power of two in 1..=4096.
    SqEntries(u32),
    /// CQ entries must be a power of two, at least the SQ entries, at most 8192.
    CqEntries { sq_entries: u32, cq_entries: u32 },
    /// The slot slice handed in does not have the layout's number of entries.
    SlotCount { expected: u32, found: usize },
    /// The header does not start with `b"RING"`.
    BadMagic(u32),
    /// The header is of an ABI version this crate does not speak.
    BadVersion(u32),
    /// The header's offsets are not the ones its entry counts imply.
    BadOffsets { sq_offset: u32, cq_offset: u32 },
    /// The other side published an index more than a queue's worth ahead of
    /// ours: it broke the protocol (or scribbled on its own ring).
    Overrun {
        ours: u32,
        theirs: u32,
        entries: u32,
    },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::SqEntries(n) => write!(
                f,
                "{n} SQ entries: must be a power of two from 1 to {}",
                RingLayout::MAX_SQ_ENTRIES
            ),
            RingError::CqEntries {
                sq_entries,
                cq_entries,
            } => write!(
                f,
                "{cq_entries} CQ entries: must be a power of two from {sq_entries} to {}",
                RingLayout::MAX_CQ_ENTRIES
            ),
            RingError::SlotCount { expected, found } => {
                write!(f, "{found} slots given where the layout has {expected}")
            }
            RingError::BadMagic(magic) => write!(f, "ring magic {magic:#x}, not \"RING\""),
            RingError::BadVersion(version) => {
                write!(f, "ring ABI version {version}, expected {RING_VERSION}")
            }
            RingError::BadOffsets {
                sq_offset,
                cq_offset,
            } => write!(
                f,
                "ring offsets sq {sq_offset:#x} cq {cq_offset:#x} do not match its sizes"
            ),
            RingError::Overrun {
                ours,
                theirs,
                entries,
            } => write!(
                f,
                "ring index {theirs} is more than {entries} entries ahead of {ours}"
            ),
        }
    }
}

/// The shape of a ring. The nucleus makes one when it creates a ring and
/// keeps it: it is the trusted description, where the header is only the
/// guest's copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    sq_entries: u32,
    cq_entries: u32,
}

impl RingLayout {
    pub const MAX_SQ_ENTRIES: u32 = 4096;
    pub const MAX_CQ_ENTRIES: u32 = 8192;

    pub const fn new(sq_entries: u32, cq_entries: u32) -> Result<RingLayout, RingError> {
        if !sq_entries.is_power_of_two() || sq_entries > Self::MAX_SQ_ENTRIES {
            return Err(RingError::SqEntries(sq_entries));
        }
        if !cq_entries.is_power_of_two()
            || cq_entries < sq_entries
            || cq_entries > Self::MAX_CQ_ENTRIES
        {
            return Err(RingError::CqEntries {
                sq_entries,
                cq_entries,
            });
        }
        Ok(RingLayout {
            sq_entries,
            cq_entries,
        })
    }

    pub const fn sq_entries(&self) -> u32 {
        self.sq_entries
    }

    pub const fn cq_entries(&self) -> u32 {
        self.cq_entries
    }

    /// Byte offset of the SQ array from the ring's start.
    pub const fn sq_offset(&self) -> usize {
        HEADER_BYTES
    }

    /// Byte offset of the CQ array from the ring's start.
    pub const fn cq_offset(&self) -> usize {
        HEADER_BYTES + self.sq_entries as usize * Sqe::BYTES
    }

    /// The ring's size up to the end of the CQ array.
    pub const fn bytes(&self) -> usize {
        self.cq_offset() + self.cq_entries as usize * Cqe::BYTES
    }

    /// Pages to map for the ring.
    pub const fn pages(&self) -> usize {
        self.bytes().div_ceil(PAGE_SIZE)
    }

    const fn sq_slot(&self, index: u32) -> usize {
        (index & (self.sq_entries - 1)) as usize
    }

    const fn cq_slot(&self, index: u32) -> usize {
        (index & (self.cq_entries - 1)) as usize
    }

    fn check_slots(&self, sq: Option<&[SqeSlot]>, cq: Option<&[CqeSlot]>) -> Result<(), RingError> {
        if let Some(sq) = sq.filter(|s| s.len() != self.sq_entries as usize) {
            return Err(RingError::SlotCount {
                expected: self.sq_entries,
                found: sq.len(),
            });
        }
        if let Some(cq) = cq.filter(|c| c.len() != self.cq_entries as usize) {
            return Err(RingError::SlotCount {
                expected: self.cq_entries,
                found: cq.len(),
            });
        }
        Ok(())
    }
}

impl IndexLine {
    pub const fn new() -> IndexLine {
        IndexLine {
            value: AtomicU32::new(0),
            reserved: [const { AtomicU32::new(0) }; 15],
        }
    }
}

impl Default for IndexLine {
    fn default() -> Self {
        IndexLine::new()
    }
}

impl RingHeader {
    /// All zero, as freshly mapped memory is.
    pub const fn new() -> RingHeader {
        RingHeader {
            info: RingInfo {
                magic: AtomicU32::new(0),
                version: AtomicU32::new(0),
                sq_entries: AtomicU32::new(0),
                cq_entries: AtomicU32::new(0),
                sq_offset: AtomicU32::new(0),
                cq_offset: AtomicU32::new(0),
                reserved: [const { AtomicU32::new(0) }; 10],
            },
            sq_tail: IndexLine::new(),
            sq_head: IndexLine::new(),
            cq_tail: IndexLine::new(),
            cq_head: IndexLine::new(),
            reserved: [const { ReservedLine([const { AtomicU32::new(0) }; 16]) }; 3],
        }
    }

    /// The nucleus writes the header and zeroes the indices when it creates
    /// the ring, before the guest can see it.
    pub fn initialize(&self, layout: RingLayout) {
        let info = &self.info;
        info.magic.store(RING_MAGIC, Ordering::Relaxed);
        info.version.store(RING_VERSION, Ordering::Relaxed);
        info.sq_entries.store(layout.sq_entries, Ordering::Relaxed);
        info.cq_entries.store(layout.cq_entries, Ordering::Relaxed);
        info.sq_offset
            .store(layout.sq_offset() as u32, Ordering::Relaxed);
        info.cq_offset
            .store(layout.cq_offset() as u32, Ordering::Relaxed);
        for word in &info.reserved {
            word.store(0, Ordering::Relaxed);
        }
        for index in [&self.sq_tail, &self.sq_head, &self.cq_tail, &self.cq_head] {
            index.value.store(0, Ordering::Relaxed);
        }
    }

    /// The layout the header describes, for the guest, which trusts its
    /// nucleus. The nucleus itself never calls this.
    pub fn layout(&self) -> Result<RingLayout, RingError> {
        let info = &self.info;
        let magic = info.magic.load(Ordering::Relaxed);
        if magic != RING_MAGIC {
            return Err(RingError::BadMagic(magic));
        }
        let version = info.version.load(Ordering::Relaxed);
        if version != RING_VERSION {
            return Err(RingError::BadVersion(version));
        }
        let layout = RingLayout::new(
            info.sq_entries.load(Ordering::Relaxed),
            info.cq_entries.load(Ordering::Relaxed),
        )?;
        let sq_offset = info.sq_offset.load(Ordering::Relaxed);
        let cq_offset = info.cq_offset.load(Ordering::Relaxed);
        if sq_offset as usize != layout.sq_offset() || cq_offset as usize != layout.cq_offset() {
            return Err(RingError::BadOffsets {
                sq_offset,
                cq_offset,
            });
        }
        Ok(layout)
    }

    /// A snapshot of the four indices, for diagnostics.
    pub fn indices(&self) -> RingIndices {
        RingIndices {
            sq_head: self.sq_head.value.load(Ordering::Relaxed),
            sq_tail: self.sq_tail.value.load(Ordering::Relaxed),
            cq_head: self.cq_head.value.load(Ordering::Relaxed),
            cq_tail: self.cq_tail.value.load(Ordering::Relaxed),
        }
    }
}

impl Default for RingHeader {
    fn default() -> Self {
        RingHeader::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingIndices {
    pub sq_head: u32,
    pub sq_tail: u32,
    pub cq_head: u32,
    pub cq_tail: u32,
}

impl SqeSlot {
    pub const fn new() -> SqeSlot {
        SqeSlot([const { AtomicU64::new(0) }; 8])
    }

    /// A private copy of the slot. If the other side writes the slot
    /// meanwhile the copy may mix old and new words; it is still just an SQE
    /// to validate, and nothing else is ever read from the slot.
    pub fn load(&self) -> Sqe {
        Sqe::from_words(self.load_words())
    }

    /// The entry's eight words, copied out.
    pub fn load_words(&self) -> [u64; 8] {
        core::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }

    pub fn store(&self, sqe: &Sqe) {
        for (word, value) in self.0.iter().zip(sqe.to_words()) {
            word.store(value, Ordering::Relaxed);
        }
    }
}

impl Default for SqeSlot {
    fn default() -> Self {
        SqeSlot::new()
    }
}

impl CqeSlot {
    pub const fn new() -> CqeSlot {
        CqeSlot([const { AtomicU64::new(0) }; 4])
    }

    pub fn load(&self) -> Cqe {
        Cqe::from_words(core::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }

    pub fn store(&self, cqe: &Cqe) {
        for (word, value) in self.0.iter().zip(cqe.to_words()) {
            word.store(value, Ordering::Relaxed);
        }
    }
}

impl Default for CqeSlot {
    fn default() -> Self {
        CqeSlot::new()
    }
}

/// A queue has no room for another entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// The guest's end of the SQ: it writes SQEs and publishes its tail.
pub struct SubmissionQueue<'r> {
    layout: RingLayout,
    header: &'r RingHeader,
    slots: &'r [SqeSlot],
    tail: u32,
    /// Free slots last seen: the nucleus only ever frees more, so this is a
    /// lower bound, and the head is read again only when it runs out.
    known_space: u32,
}

impl<'r> SubmissionQueue<'r> {
    /// Attaches at the current tail.
    pub fn new(
        layout: RingLayout,
        header: &'r RingHeader,
        slots: &'r [SqeSlot],
    ) -> Result<Self, RingError> {
        layout.check_slots(Some(slots), None)?;
        Ok(SubmissionQueue {
            layout,
            header,
            slots,
            tail: header.sq_tail.value.load(Ordering::Relaxed),
            known_space: 0,
        })
    }

    /// The ring's header, shared with the nucleus (its indices are what a
    /// misbehaving guest would corrupt).
    pub fn header(&self) -> &'r RingHeader {
        self.header
    }

    /// Room for this many more SQEs.
    pub fn space(&self) -> u32 {
        let head = self.header.sq_head.value.load(Ordering::Acquire);
        self.layout
            .sq_entries
            .saturating_sub(self.tail.wrapping_sub(head))
    }

    /// Writes the SQE and publishes it; the nucleus sees it at its next
    /// look at the ring (`cap_enter`).
    pub fn push(&mut self, sqe: &Sqe) -> Result<(), QueueFull> {
        if self.known_space == 0 {
            // Acquire: the nucleus has finished copying the slots we reuse.
            self.known_space = self.space();
            if self.known_space == 0 {
                return Err(QueueFull);
            }
        }
        self.known_space -= 1;
        self.slots[self.layout.sq_slot(self.tail)].store(sqe);
        self.tail = self.tail.wrapping_add(1);
        // Release: the entry's words are visible before the new tail is.
        self.header
            .sq_tail
            .value
            .store(self.tail, Ordering::Release);
        Ok(())
    }
}

/// Space the nucleus holds in the CQ for one completion. Taking an SQE takes
/// one of these, so every call it accepts has a place for its completion:
/// the CQ never overflows, however late completions come.
#[must_use = "a reservation holds CQ space until it is posted or cancelled"]
#[derive(Debug)]
pub struct CqReservation {
    _private: (),
}

/// The nucleus's end of the SQ.
pub struct SubmissionConsumer<'r> {
    layout: RingLayout,
    header: &'r RingHeader,
    slots: &'r [SqeSlot],
    /// Ours: the copy in the ring is only ever stored, never read back.
    head: u32,
    /// Published SQEs last seen and not yet taken: the tail is read (and
    /// checked) again only when these run out.
    known_pending: u32,
}

impl<'r> SubmissionConsumer<'r> {
    /// `layout` is the one the nucleus created the ring with, not the header's.
    pub fn new(
        layout: RingLayout,
        header: &'r RingHeader,
        slots: &'r [SqeSlot],
    ) -> Result<Self, RingError> {
        layout.check_slots(Some(slots), None)?;
        Ok(SubmissionConsumer {
            layout,
            header,
            slots,
            head: header.sq_head.value.load(Ordering::Relaxed),
            known_pending: 0,
        })
    }

    /// SQEs the guest has published and the nucleus not yet taken.
    pub fn pending(&self) -> Result<u32, RingError> {
        // Acquire: pairs with the guest's Release of the tail, so the
        // entries up to it are visible.
        let tail = self.header.sq_tail.value.load(Ordering::Acquire);
        let pending = tail.wrapping_sub(self.head);
        if pending > self.layout.sq_entries {
            return Err(RingError::Overrun {
                ours: self.head,
                theirs: tail,
                entries: self.layout.sq_entries,
            });
        }
        Ok(pending)
    }

    /// Takes the next SQE, as a private copy, together with CQ space for its
    /// completion. `None` when the SQ is empty or the CQ has no room left
    /// (the SQE stays in the ring until there is). An error means the guest
    /// corrupted its SQ tail.
    pub fn pop(
        &mut self,
        completions: &mut CompletionProducer<'_>,
    ) -> Result<Option<(Sqe, CqReservation)>, RingError> {
        let taken = self.pop_words(completions)?;
        Ok(taken.map(|(words, reservation)| (Sqe::from_words(words), reservation)))
    }

    /// [`SubmissionConsumer::pop`], the SQE as its eight words (for a test
    /// such as [`Sqe::words_are_plain_nop`] before it is taken apart).
    pub fn pop_words(
        &mut self,
        completions: &mut CompletionProducer<'_>,
    ) -> Result<Option<([u64; 8], CqReservation)>, RingError> {
        if self.known_pending == 0 {
            self.known_pending = self.pending()?;
            if self.known_pending == 0 {
                return Ok(None);
            }
        }
        let Some(reservation) = completions.try_reserve() else {
            return Ok(None);
        };
        self.known_pending -= 1;
        let words = self.slots[self.layout.sq_slot(self.head)].load_words();
        self.head = self.head.wrapping_add(1);
        // Release: our copy is complete before the guest may reuse the slot.
        self.header
            .sq_head
            .value
            .store(self.head, Ordering::Release);
        Ok(Some((words, reservation)))
    }
}

/// The nucleus's end of the CQ.
pub struct CompletionProducer<'r> {
    layout: RingLayout,
    header: &'r RingHeader,
    slots: &'r [CqeSlot],
    /// Ours: the copy in the ring is only ever stored, never read back.
    tail: u32,
    reserved: u32,
    /// Free, unreserved entries last seen: the guest only ever frees more,
    /// so the head is read again only when these run out.
    known_space: u32,
}

impl<'r> CompletionProducer<'r> {
    /// `layout` is the one the nucleus created the ring with, not the header's.
    pub fn new(
        layout: RingLayout,
        header: &'r RingHeader,
        slots: &'r [CqeSlot],
    ) -> Result<Self, RingError> {
        layout.check_slots(None, Some(slots))?;
        Ok(CompletionProducer {
            layout,
            header,
            slots,
            tail: header.cq_tail.value.load(Ordering::Relaxed),
            reserved: 0,
            known_space: 0,
        })
    }

    /// Completions owed: reservations not yet posted or cancelled.
    pub fn reserved(&self) -> u32 {
        self.reserved
    }

    /// Free CQ entries not promised to a reservation. A guest head that is
    /// ahead of our tail, or more than the CQ behind it, is the guest's
    /// corruption and leaves no space: its completions wait.
    pub fn space(&self) -> u32 {
        // Acquire: the guest has finished reading the slots it released.
        let head = self.header.cq_head.value.load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(head);
        self.layout
            .cq_entries
            .saturating_sub(used)
            .saturating_sub(self.reserved)
    }

    /// Completions posted and not yet read by the guest (all of the CQ if
    /// the guest's head is corrupt: it is told to look).
    pub fn unread(&self) -> u32 {
        let head = self.header.cq_head.value.load(Ordering::Acquire);
        self.tail.wrapping_sub(head).min(self.layout.cq_entries)
    }

    pub fn try_reserve(&mut self) -> Option<CqReservation> {
        if self.known_space == 0 {
            self.known_space = self.space();
            if self.known_space == 0 {
                return None;
            }
        }
        self.known_space -= 1;
        self.reserved += 1;
        Some(CqReservation { _private: () })
    }

    /// Gives reserved space back without posting (the call was dropped).
    pub fn cancel(&mut self, reservation: CqReservation) {
        let CqReservation { _private: () } = reservation;
        self.reserved = self.reserved.saturating_sub(1);
    }

    /// Writes the completion into the space `reservation` held and publishes it.
    pub fn post(&mut self, reservation: CqReservation, cqe: &Cqe) {
        let CqReservation { _private: () } = reservation;
        self.reserved = self.reserved.saturating_sub(1);
        self.slots[self.layout.cq_slot(self.tail)].store(cqe);
        self.tail = self.tail.wrapping_add(1);
        // Release: the entry's words are visible before the new tail is.
        self.header
            .cq_tail
            .value
            .store(self.tail, Ordering::Release);
    }
}

/// The guest's end of the CQ.
pub struct CompletionQueue<'r> {
    layout: RingLayout,
    header: &'r RingHeader,
    slots: &'r [CqeSlot],
    head: u32,
    /// Completions last seen and not yet read: the tail is read again only
    /// when these run out.
    known_ready: u32,
}

impl<'r> CompletionQueue<'r> {
    /// Attaches at the current head.
    pub fn new(
        layout: RingLayout,
        header: &'r RingHeader,
        slots: &'r [CqeSlot],
    ) -> Result<Self, RingError> {
        layout.check_slots(None, Some(slots))?;
        Ok(CompletionQueue {
            layout,
            header,
            slots,
            head: header.cq_head.value.load(Ordering::Relaxed),
            known_ready: 0,
        })
    }

    /// Completions waiting to be read.
    pub fn pending(&self) -> u32 {
        let tail = self.header.cq_tail.value.load(Ordering::Acquire);
        tail.wrapping_sub(self.head).min(self.layout.cq_entries)
    }

    pub fn pop(&mut self) -> Option<Cqe> {
        if self.known_ready == 0 {
            self.known_ready = self.pending();
            if self.known_ready == 0 {
                return None;
            }
        }
        self.known_ready -= 1;
        let cqe = self.slots[self.layout.cq_slot(self.head)].load();
        self.head = self.head.wrapping_add(1);
        // Release: our copy is complete before the nucleus may reuse the slot.
        self.header
            .cq_head
            .value
            .store(self.head, Ordering::Release);
        Some(cqe)
    }
}

/// A ring in ordinary heap memory: for host tests, and for hosts (the wasm
/// host's std build) that run both ends in one process. The nucleus maps real
/// rings from page frames instead.
pub struct OwnedRing {
    layout: RingLayout,
    header: Box<RingHeader>,
    sq: Box<[SqeSlot]>,
    cq: Box<[CqeSlot]>,
}

impl OwnedRing {
    /// An initialized ring with all indices at 0.
    pub fn new(layout: RingLayout) -> OwnedRing {
        let header = Box::new(RingHeader::new());
        header.initialize(layout);
        OwnedRing {
            layout,
            header,
            sq: (0..layout.sq_entries).map(|_| SqeSlot::new()).collect(),
            cq: (0..layout.cq_entries).map(|_| CqeSlot::new()).collect(),
        }
    }

    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    pub fn header(&self) -> &RingHeader {
        &self.header
    }

    pub fn sq_slots(&self) -> &[SqeSlot] {
        &self.sq
    }

    pub fn cq_slots(&self) -> &[CqeSlot] {
        &self.cq
    }

    pub fn submission_queue(&self) -> SubmissionQueue<'_> {
        SubmissionQueue::new(self.layout, &self.header, &self.sq).expect("slots match the layout")
    }

    pub fn submission_consumer(&self) -> SubmissionConsumer<'_> {
        SubmissionConsumer::new(self.layout, &self.header, &self.sq)
            .expect("slots match the layout")
    }

    pub fn completion_producer(&self) -> CompletionProducer<'_> {
        CompletionProducer::new(self.layout, &self.header, &self.cq)
            .expect("slots match the layout")
    }

    pub fn completion_queue(&self) -> CompletionQueue<'_> {
        CompletionQueue::new(self.layout, &self.header, &self.cq).expect("slots match the layout")
    }
}

#[cfg(test)]
mod tests;
