//! Loading a native guest: sas-loader checks the ELF and plans where every
//! page goes in the guest's slot; this maps the plan as user pages in the one
//! page table, with fresh frames holding the relocated image.
#![forbid(unsafe_code)]

use core::fmt;

use nucleus_core::paging::{MappingKind, SIZE_4K};
use nucleus_core::pkeys::KeyAllocator;
use sas_loader::{GuestSlots, LoadError, MappingPlan, Permission, PlanConfig};
use spin::Mutex;

use crate::guest_memory::GuestMemory;
use crate::memory::MapError;

/// Per-guest sizes until appliances set them (`heap_mb=`, `stack_kb=`).
pub const DEFAULT_STACK_BYTES: u64 = 64 * 1024;
pub const DEFAULT_HEAP_BYTES: u64 = 4 << 20;

/// A guest's heap and stack sizes, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub heap: u64,
    pub stack: u64,
}

static SLOTS: Mutex<GuestSlots> = Mutex::new(GuestSlots::new());
static KEYS: Mutex<KeyAllocator> = Mutex::new(KeyAllocator::new());

#[derive(Debug)]
pub enum GuestLoadError {
    Elf(LoadError),
    NoFreeSlot,
    /// All 15 protection keys belong to running guests.
    NoFreeKey,
    Memory(MapError),
    /// A volume it mounts is not there (refused at start, see the log).
    Mount(alloc::string::String),
}

impl fmt::Display for GuestLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestLoadError::Elf(error) => write!(f, "refused: {error}"),
            GuestLoadError::NoFreeSlot => f.write_str("no free guest slot in the address space"),
            GuestLoadError::NoFreeKey => f.write_str(
                "not started: 15 running guests hold all protection keys, so a 16th could not be isolated",
            ),
            GuestLoadError::Memory(error) => write!(f, "cannot map it: {error:?}"),
            GuestLoadError::Mount(problem) => write!(f, "not started: {problem}"),
        }
    }
}

impl From<MapError> for GuestLoadError {
    fn from(error: MapError) -> Self {
        GuestLoadError::Memory(error)
    }
}

/// A guest whose pages are mapped, ready for its ring and first entry.
pub struct Placed {
    pub plan: MappingPlan,
    pub memory: GuestMemory,
    pub slot: usize,
}

fn user_kind(permission: Permission) -> MappingKind {
    match permission {
        Permission::Read => MappingKind::UserRead,
        Permission::ReadWrite => MappingKind::UserReadWrite,
        Permission::ReadExecute => MappingKind::UserReadExecute,
    }
}

/// Checks `elf`, takes a slot and maps image, heap and stack (the ring is
/// mapped by the caller into `plan.ring`). On error nothing stays mapped.
pub fn place(
    elf: &[u8],
    ring_bytes: u64,
    heap_bytes: u64,
    stack_bytes: u64,
) -> Result<Placed, GuestLoadError> {
    let parsed = sas_loader::parse(elf).map_err(GuestLoadError::Elf)?;
    // With PKU every guest gets a key of its own; without it, key 0 (and no
    // isolation between guests: see `sched` and the README).
    let key = if crate::cpu::pku_enabled() {
        KEYS.lock().allocate().ok_or(GuestLoadError::NoFreeKey)?
    } else {
        0
    };
    let Some((slot, base)) = SLOTS.lock().allocate() else {
        KEYS.lock().release(key);
        return Err(GuestLoadError::NoFreeSlot);
    };
    let config = PlanConfig {
        stack_bytes,
        heap_bytes,
        ring_bytes,
    };
    let mut memory = GuestMemory::default();
    memory.key = key;
    let result = (|| {
        let plan = sas_loader::plan(&parsed, base, &config).map_err(GuestLoadError::Elf)?;
        let loaded = sas_loader::load_segments(&parsed, &plan).map_err(GuestLoadError::Elf)?;
        for segment in &loaded {
            memory.map(
                segment.start,
                segment.pages,
                &segment.initialized,
                &segment.patches,
                user_kind(segment.permission),
            )?;
        }
        for range in [&plan.heap, &plan.stack] {
            let pages = (range.end - range.start) / SIZE_4K;
            memory.map(range.start, pages, &[], &[], MappingKind::UserReadWrite)?;
        }
        Ok(plan)
    })();
    match result {
        Ok(plan) => Ok(Placed { plan, memory, slot }),
        Err(error) => {
            memory.discard();
            release_placement(slot, key);
            Err(error)
        }
    }
}

/// Gives a slot and a key back once the guest's memory is released.
pub fn release_placement(slot: usize, key: u8) {
    let _ = SLOTS.lock().release(slot);
    KEYS.lock().release(key);
}
