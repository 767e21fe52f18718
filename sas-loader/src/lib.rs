//! Placing native guest images in the one address space.
//!
//! A native guest is a static position-independent ELF64 for x86_64, as
//! rustc produces for `x86_64-unknown-none`. The nucleus hands the file to
//! [`parse`], which validates everything it will rely on (headers, segments,
//! W^X, relocations, forbidden instructions) and refuses with a [`LoadError`]
//! that says what is wrong and where. [`GuestSlots`] hands out the guest's
//! slot of the lower half, [`plan`] lays the image, heap, ring and stack out
//! inside it with guard pages between them, and [`load_segments`] produces
//! the relocated bytes of every image mapping. The nucleus only copies those
//! bytes into frames and maps them as the plan says: all the judgement is
//! here, where the host can test it.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod elf;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod plan;
mod scan;
mod slots;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

pub use elf::{GuestElf, ImageRun, Relocation, Segment, parse};
pub use error::{LoadError, RelocationTable};
pub use plan::{Contents, LoadedSegment, Mapping, MappingPlan, PlanConfig, load_segments, plan};
pub use scan::{Forbidden, scan_forbidden};
pub use slots::{GuestSlots, SlotError, slot_base, slot_index_of};

/// The page size every mapping is made of.
pub const PAGE_SIZE: u64 = 4096;

/// Where the guest slots start: 16 TiB, well clear of anything Limine or the
/// nucleus puts in the lower half (the nucleus lives in the upper half).
pub const GUEST_AREA_BASE: u64 = 0x0000_1000_0000_0000;

/// Every guest gets the same slot size, so a slot is found from an address by
/// a shift. 64 GiB leaves room for a wasm host to reserve a whole 4 GiB linear
/// memory plus its guard region, several times over.
pub const SLOT_SIZE: u64 = 64 << 30;

/// How many slots the guest area holds.
pub const MAX_GUEST_SLOTS: usize = 1024;

/// End of the guest area (exclusive).
pub const GUEST_AREA_END: u64 = GUEST_AREA_BASE + MAX_GUEST_SLOTS as u64 * SLOT_SIZE;

/// The unmapped gap at the start and at the end of every slot, so that no
/// guest's memory is ever adjacent to another's. 2 MiB also makes the image
/// base 2 MiB aligned, which is what [`MAX_SEGMENT_ALIGN`] relies on.
pub const SLOT_GAP: u64 = 2 << 20;

/// The largest `p_align` a segment may ask for: the image base is aligned to
/// this (slot bases are [`SLOT_SIZE`] aligned, plus [`SLOT_GAP`]).
pub const MAX_SEGMENT_ALIGN: u64 = SLOT_GAP;

/// The largest image, measured from virtual address 0 to the end of the
/// highest segment's last page.
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// More program headers than this is not a rustc guest; the limit also keeps
/// the loader's work per file small.
pub const MAX_PROGRAM_HEADERS: usize = 64;

// The guest area must stay inside the canonical lower half.
const _: () = assert!(GUEST_AREA_END <= 0x0000_8000_0000_0000);
const _: () = assert!(GUEST_AREA_BASE.is_multiple_of(SLOT_SIZE));
const _: () = assert!(SLOT_GAP.is_multiple_of(PAGE_SIZE) && SLOT_SIZE.is_multiple_of(SLOT_GAP));
// A maximal image and its guard pages fit in a slot with room to spare.
const _: () = assert!(2 * SLOT_GAP + MAX_IMAGE_BYTES + 4 * PAGE_SIZE < SLOT_SIZE);

/// How a mapping may be accessed. There is deliberately no writable and
/// executable variant: W^X holds by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    Read,
    ReadWrite,
    ReadExecute,
}

impl Permission {
    pub fn is_writable(self) -> bool {
        self == Permission::ReadWrite
    }

    pub fn is_executable(self) -> bool {
        self == Permission::ReadExecute
    }
}

impl core::fmt::Display for Permission {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Permission::Read => "read-only",
            Permission::ReadWrite => "read-write",
            Permission::ReadExecute => "read-execute",
        })
    }
}

/// Rounds down to a page boundary.
const fn page_floor(address: u64) -> u64 {
    address & !(PAGE_SIZE - 1)
}

/// Rounds up to a page boundary. Only used on values bounded by
/// [`MAX_IMAGE_BYTES`] or the guest area, so it cannot overflow.
const fn page_ceil(address: u64) -> u64 {
    page_floor(address + (PAGE_SIZE - 1))
}

#[cfg(test)]
mod proptests;
