//! What the fuzz target in `fsd/fuzz` checks, as a function of the
//! fuzzer's bytes, so that the committed seeds (`fsd/fuzz/seeds/`) run as
//! ordinary tests too.
//!
//! `mount`: a 1 MiB volume holding a few files ([`pristine_volume`]),
//! damaged by the input (4 bytes a change: a 20-bit offset and the byte to
//! put there), then mounted and used. Nothing panics, whatever the damage;
//! reads and listings stay within what was asked, a file written reads
//! back; undamaged, every file reads back as written.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::{BlockDevice, DeviceError, MemoryDisk, OpenFlags, SECTOR_BYTES, Volume, sector_range};

const MIB: usize = 1 << 20;
const FILES: [&str; 3] = ["a", "d/b", "d/c"];
const FILE_BYTES: usize = 9000;

/// The volume before any damage: directory `d`, files `a`, `d/b` and `d/c`
/// of 9,000 bytes each (the length of the name, repeated).
pub fn pristine_volume() -> Vec<u8> {
    let disk = MemoryDisk::new(MIB);
    Volume::format(disk.clone()).expect("format");
    let volume = Volume::mount(disk.clone()).expect("mount");
    let create = OpenFlags {
        create: true,
        ..OpenFlags::default()
    };
    volume.mkdir("d").expect("mkdir");
    for name in FILES {
        volume.open(name, create).expect("create");
        volume
            .write_at(name, 0, &vec![name.len() as u8; FILE_BYTES])
            .expect("write");
    }
    disk.snapshot()
}

/// A disk whose bytes the check takes back when it is done. A mounted
/// volume is never freed (a volume lasts as long as the system), so
/// without this every run would keep its megabyte.
#[derive(Clone)]
struct ReturnedDisk(Rc<RefCell<Vec<u8>>>);

impl BlockDevice for ReturnedDisk {
    fn sectors(&self) -> u64 {
        (self.0.borrow().len() / SECTOR_BYTES) as u64
    }

    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), DeviceError> {
        let bytes = self.0.borrow();
        let range = sector_range(sector, buffer.len(), (bytes.len() / SECTOR_BYTES) as u64)?;
        buffer.copy_from_slice(&bytes[range]);
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), DeviceError> {
        let mut bytes = self.0.borrow_mut();
        let range = sector_range(sector, data.len(), (bytes.len() / SECTOR_BYTES) as u64)?;
        bytes[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// `pristine` is what [`pristine_volume`] returned (made once, by the
/// caller: it takes longer than a run).
pub fn mount(pristine: &[u8], damage: &[u8]) {
    let mut bytes = pristine.to_vec();
    for change in damage.chunks_exact(4) {
        let at = u32::from_le_bytes([change[0], change[1], change[2], 0]) as usize % MIB;
        bytes[at] = change[3];
    }
    let disk = ReturnedDisk(Rc::new(RefCell::new(bytes)));
    use_damaged(disk.clone(), damage.len() < 4);
    *disk.0.borrow_mut() = Vec::new();
}

fn use_damaged(disk: ReturnedDisk, undamaged: bool) {
    let Ok(volume) = Volume::mount(disk) else {
        return;
    };
    if undamaged {
        for name in FILES {
            let read = volume.read_at(name, 0, 20_000).expect("an undamaged file");
            assert_eq!(read, vec![name.len() as u8; FILE_BYTES], "{name}");
        }
    }
    for dir in ["", "d"] {
        if let Ok(entries) = volume.list(dir, 0, 100) {
            assert!(entries.len() <= 100);
        }
    }
    if let Ok(read) = volume.read_at("d/b", 0, 20_000) {
        assert!(read.len() <= 20_000);
    }
    let create = OpenFlags {
        create: true,
        ..OpenFlags::default()
    };
    if volume.open("n", create).is_ok()
        && volume.write_at("n", 0, b"x").is_ok()
        && let Ok(read) = volume.read_at("n", 0, 10)
    {
        assert_eq!(read, b"x", "what was written reads back");
    }
    let _ = volume.rename("a", "d/a");
    let _ = volume.remove("d/c");
}

#[cfg(test)]
mod tests {
    extern crate std;

    /// Every committed seed passes the check: the seeds, crashes found by
    /// fuzzing among them, are regression tests.
    #[test]
    fn every_committed_seed_passes() {
        let pristine = super::pristine_volume();
        for (file, bytes) in fuzz_seeds::read(env!("CARGO_MANIFEST_DIR"), "mount") {
            std::eprintln!("mount: {}", file.display());
            super::mount(&pristine, &bytes);
        }
    }
}
