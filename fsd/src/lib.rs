//! The storage service's file system: littlefs (copy-on-write metadata,
//! every commit checksummed, so a volume stays consistent whenever the
//! power goes and mounts without repair) over a [`BlockDevice`], with the
//! operations the Directory and File capabilities offer and the rules
//! that keep a capability inside its directory ([`resolve`]).
//!
//! A volume is formatted for one of [`SIZES_MIB`] (littlefs's Rust
//! binding fixes the block count at compile time; a volume of another size
//! would need a binding of its own). littlefs assumes a write is durable
//! once it returns, as flash is; disks cache, so every write here is
//! followed by a flush.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod device;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod path;
mod volume;

pub use device::{BlockDevice, DeviceError, MemoryDisk, SECTOR_BYTES, sector_range};
pub use path::{MAX_PATH_BYTES, resolve};
pub use volume::{
    BLOCK_BYTES, Entry, Error, Kind, MAX_FILE_BYTES, MountError, OpenFlags, SIZES_MIB, Stat,
    Volume, size_for,
};
