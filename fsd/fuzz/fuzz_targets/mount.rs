//! A 1 MiB volume, formatted and holding a few files, damaged by the
//! input (pairs of a 20-bit offset and a byte), then mounted and used:
//! nothing may panic, whatever the damage.
#![no_main]

use fsd::{MemoryDisk, OpenFlags, Volume};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MIB: usize = 1 << 20;

fn pristine() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let disk = MemoryDisk::new(MIB);
        Volume::format(disk.clone()).expect("format");
        let volume = Volume::mount(disk.clone()).expect("mount");
        let create = OpenFlags { create: true, ..OpenFlags::default() };
        volume.mkdir("d").unwrap();
        for name in ["a", "d/b", "d/c"] {
            volume.open(name, create).unwrap();
            volume.write_at(name, 0, &vec![name.len() as u8; 9000]).unwrap();
        }
        disk.snapshot()
    })
}

fuzz_target!(|damage: &[u8]| {
    let mut bytes = pristine().to_vec();
    for pair in damage.chunks_exact(4) {
        let at = u32::from_le_bytes([pair[0], pair[1], pair[2], 0]) as usize % MIB;
        bytes[at] = pair[3];
    }
    if let Ok(volume) = Volume::mount(MemoryDisk::from_bytes(bytes)) {
        let _ = volume.list("", 0, 100);
        let _ = volume.list("d", 0, 100);
        let _ = volume.read_at("d/b", 0, 20_000);
        let _ = volume.open("n", OpenFlags { create: true, ..OpenFlags::default() });
        let _ = volume.write_at("n", 0, b"x");
        let _ = volume.rename("a", "d/a");
        let _ = volume.remove("d/c");
    }
});
