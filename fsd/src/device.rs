//! What the file system needs from a disk, and a disk in memory.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

/// The unit a disk reads and writes.
pub const SECTOR_BYTES: usize = 512;

/// A disk failed a request (the device said so, or the request was out of
/// its range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceError(pub &'static str);

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A disk of 512-byte sectors. A write returns once the disk has taken it;
/// only `flush` makes what it took durable (a disk with a volatile cache
/// may otherwise lose or reorder writes when the power goes).
pub trait BlockDevice {
    fn sectors(&self) -> u64;
    /// Reads `buffer.len()` bytes (whole sectors) from `sector` on.
    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), DeviceError>;
    /// Writes `data` (whole sectors) from `sector` on.
    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), DeviceError>;
    /// Makes every write so far durable.
    fn flush(&mut self) -> Result<(), DeviceError>;
}

/// The byte range of `sectors` sectors from `sector` on a disk of `total`
/// sectors, or an error if it does not fit.
pub fn sector_range(
    sector: u64,
    bytes: usize,
    total: u64,
) -> Result<core::ops::Range<usize>, DeviceError> {
    if !bytes.is_multiple_of(SECTOR_BYTES) {
        return Err(DeviceError("a request of part of a sector"));
    }
    let count = (bytes / SECTOR_BYTES) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= total => {
            Ok(sector as usize * SECTOR_BYTES..end as usize * SECTOR_BYTES)
        }
        _ => Err(DeviceError("a request past the end of the disk")),
    }
}

/// A disk in memory, shared by its clones (a test keeps one to look at the
/// bytes while a mounted volume holds another). It can be told to lose
/// power after a number of writes: the next write is torn (only its first
/// sectors land) and every later one fails, as a disk without power would.
#[derive(Clone)]
pub struct MemoryDisk {
    state: Rc<RefCell<MemoryState>>,
}

struct MemoryState {
    bytes: Vec<u8>,
    writes: u64,
    /// Writes left before the power goes, and how many sectors of the
    /// torn one land.
    power: Option<(u64, usize)>,
    flushes: u64,
}

impl MemoryDisk {
    /// A disk of `bytes` (rounded down to sectors), all zero.
    pub fn new(bytes: usize) -> MemoryDisk {
        MemoryDisk::from_bytes(vec![0; bytes / SECTOR_BYTES * SECTOR_BYTES])
    }

    pub fn from_bytes(bytes: Vec<u8>) -> MemoryDisk {
        MemoryDisk {
            state: Rc::new(RefCell::new(MemoryState {
                bytes,
                writes: 0,
                power: None,
                flushes: 0,
            })),
        }
    }

    /// A copy of what the disk holds now.
    pub fn snapshot(&self) -> Vec<u8> {
        self.state.borrow().bytes.clone()
    }

    /// Writes the disk has taken so far.
    pub fn writes(&self) -> u64 {
        self.state.borrow().writes
    }

    pub fn flushes(&self) -> u64 {
        self.state.borrow().flushes
    }

    /// After `writes` more writes, the power goes: the one after lands only
    /// its first `torn_sectors` sectors, and nothing after it lands at all.
    pub fn lose_power_after(&self, writes: u64, torn_sectors: usize) {
        self.state.borrow_mut().power = Some((writes, torn_sectors));
    }
}

impl BlockDevice for MemoryDisk {
    fn sectors(&self) -> u64 {
        (self.state.borrow().bytes.len() / SECTOR_BYTES) as u64
    }

    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), DeviceError> {
        let state = self.state.borrow();
        let range = sector_range(
            sector,
            buffer.len(),
            (state.bytes.len() / SECTOR_BYTES) as u64,
        )?;
        buffer.copy_from_slice(&state.bytes[range]);
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), DeviceError> {
        let mut state = self.state.borrow_mut();
        let range = sector_range(
            sector,
            data.len(),
            (state.bytes.len() / SECTOR_BYTES) as u64,
        )?;
        let landing = match state.power {
            Some((0, torn)) => {
                state.power = Some((0, 0));
                (torn * SECTOR_BYTES).min(data.len())
            }
            Some((left, torn)) => {
                state.power = Some((left - 1, torn));
                data.len()
            }
            None => data.len(),
        };
        state.bytes[range.start..range.start + landing].copy_from_slice(&data[..landing]);
        state.writes += 1;
        if landing < data.len() {
            return Err(DeviceError("the power is off"));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        let mut state = self.state.borrow_mut();
        state.flushes += 1;
        match state.power {
            Some((0, _)) => Err(DeviceError("the power is off")),
            _ => Ok(()),
        }
    }
}
