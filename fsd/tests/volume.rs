//! The file system on a disk in memory: every operation, its errors, full
//! and damaged volumes, and power cut at every write of an update loop.

use fsd::{Error, Kind, MemoryDisk, MountError, OpenFlags, Volume};
use proptest::prelude::*;

const MIB: usize = 1 << 20;

fn fresh(mib: usize) -> (MemoryDisk, Volume) {
    let disk = MemoryDisk::new(mib * MIB);
    Volume::format(disk.clone()).expect("format");
    let volume = Volume::mount(disk.clone()).expect("mount");
    (disk, volume)
}

const CREATE: OpenFlags = OpenFlags {
    create: true,
    exclusive: false,
    truncate: false,
};

#[test]
fn files_and_directories() {
    let (_disk, volume) = fresh(1);
    assert_eq!(volume.size_mib(), 1);
    assert_eq!(volume.open("a", OpenFlags::default()), Err(Error::NotFound));
    let stat = volume.open("a", CREATE).unwrap();
    assert_eq!((stat.kind, stat.size), (Kind::File, 0));
    volume.write_at("a", 0, b"hello").unwrap();
    volume.write_at("a", 10, b"world").unwrap();
    assert_eq!(volume.stat("a").unwrap().size, 15);
    assert_eq!(
        volume.read_at("a", 0, 100).unwrap(),
        b"hello\0\0\0\0\0world"
    );
    assert_eq!(volume.read_at("a", 12, 2).unwrap(), b"rl");
    assert_eq!(volume.read_at("a", 15, 10).unwrap(), b"");
    assert_eq!(volume.read_at("a", u64::MAX, 10).unwrap(), b"");
    assert_eq!(volume.append("a", b"!").unwrap(), 16);
    volume.truncate("a", 5).unwrap();
    assert_eq!(volume.read_at("a", 0, 100).unwrap(), b"hello");
    volume.truncate("a", 7).unwrap();
    assert_eq!(volume.read_at("a", 0, 100).unwrap(), b"hello\0\0");

    let exclusive = OpenFlags {
        exclusive: true,
        ..CREATE
    };
    assert_eq!(volume.open("a", exclusive), Err(Error::Exists));
    let truncate = OpenFlags {
        truncate: true,
        ..OpenFlags::default()
    };
    assert_eq!(volume.open("a", truncate).unwrap().size, 0);

    volume.mkdir("d").unwrap();
    assert_eq!(volume.mkdir("d"), Err(Error::Exists));
    assert_eq!(volume.open("d", CREATE), Err(Error::IsDirectory));
    assert_eq!(volume.stat("d").unwrap().kind, Kind::Directory);
    volume.open("d/x", CREATE).unwrap();
    volume.write_at("d/x", 0, b"12345").unwrap();
    assert_eq!(volume.open("a/x", CREATE), Err(Error::NotDirectory));
    assert_eq!(volume.remove("d"), Err(Error::NotEmpty));
    let names: Vec<_> = volume
        .list("", 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.stat.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("a".to_string(), Kind::File),
            ("d".to_string(), Kind::Directory)
        ]
    );
    assert_eq!(volume.list("", 1, 10).unwrap()[0].name, "d");
    assert!(volume.list("", 2, 10).unwrap().is_empty());
    assert_eq!(volume.list("a", 0, 10), Err(Error::NotDirectory));
    assert_eq!(volume.list("d", 0, 10).unwrap()[0].stat.size, 5);

    volume.rename("d/x", "y").unwrap();
    assert_eq!(volume.stat("d/x"), Err(Error::NotFound));
    assert_eq!(volume.read_at("y", 0, 10).unwrap(), b"12345");
    // Rename replaces a file there.
    volume.rename("y", "a").unwrap();
    assert_eq!(volume.read_at("a", 0, 10).unwrap(), b"12345");
    assert!(matches!(volume.rename("d", "d/e"), Err(Error::Invalid(_))));
    volume.remove("d").unwrap();
    volume.remove("a").unwrap();
    assert!(volume.list("", 0, 10).unwrap().is_empty());
    assert!(matches!(volume.remove(""), Err(Error::Invalid(_))));
}

#[test]
fn what_is_written_survives_a_remount() {
    let (disk, volume) = fresh(2);
    volume.mkdir("logs").unwrap();
    volume.open("logs/one", CREATE).unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    volume.write_at("logs/one", 0, &big).unwrap();
    drop(volume);
    let again = Volume::mount(disk).unwrap();
    assert_eq!(again.read_at("logs/one", 0, 200_000).unwrap(), big);
}

#[test]
fn huge_offsets_are_refused() {
    let (_disk, volume) = fresh(1);
    volume.open("f", CREATE).unwrap();
    assert_eq!(volume.write_at("f", u64::MAX, b"x"), Err(Error::TooLarge));
    assert_eq!(
        volume.write_at("f", fsd::MAX_FILE_BYTES, b"x"),
        Err(Error::TooLarge)
    );
    assert_eq!(volume.truncate("f", u64::MAX), Err(Error::TooLarge));
    assert_eq!(volume.stat("f").unwrap().size, 0);
}

#[test]
fn a_full_volume_says_so_and_keeps_what_it_had() {
    let (disk, volume) = fresh(1);
    volume.open("keep", CREATE).unwrap();
    volume.write_at("keep", 0, b"precious").unwrap();
    volume.open("fill", CREATE).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut offset = 0u64;
    let error = loop {
        match volume.write_at("fill", offset, &chunk) {
            Ok(()) => offset += chunk.len() as u64,
            Err(error) => break error,
        }
        assert!(offset < 2 * MIB as u64, "a 1 MiB volume took 2 MiB");
    };
    assert_eq!(error, Error::NoSpace);
    assert_eq!(volume.read_at("keep", 0, 100).unwrap(), b"precious");
    // What the failed write had before is intact; removing frees space.
    assert_eq!(volume.stat("fill").unwrap().size, offset);
    volume.remove("fill").unwrap();
    volume.write_at("keep", 8, b"!").unwrap();
    drop(volume);
    let again = Volume::mount(disk).unwrap();
    assert_eq!(again.read_at("keep", 0, 100).unwrap(), b"precious!");
}

#[test]
fn disks_that_are_no_volume_are_refused_untouched() {
    let small = MemoryDisk::new(512 * 1024);
    assert_eq!(
        Volume::mount(small).err(),
        Some(MountError::TooSmall { bytes: 512 * 1024 })
    );
    let zeros = MemoryDisk::new(MIB);
    assert_eq!(
        Volume::mount(zeros.clone()).err(),
        Some(MountError::NotAVolume)
    );
    assert!(zeros.snapshot().iter().all(|&b| b == 0));
    assert_eq!(zeros.writes(), 0);

    // A volume of another size (the disk was grown or cut).
    let (disk, volume) = fresh(2);
    volume.open("f", CREATE).unwrap();
    drop(volume);
    let mut bytes = disk.snapshot();
    bytes.truncate(MIB);
    assert_eq!(
        Volume::mount(MemoryDisk::from_bytes(bytes)).err(),
        Some(MountError::NotAVolume)
    );
    // Both superblock copies wiped.
    let mut bytes = disk.snapshot();
    bytes[..2 * fsd::BLOCK_BYTES].fill(0xff);
    assert!(Volume::mount(MemoryDisk::from_bytes(bytes)).is_err());
}

/// The update loop a guest runs: write a temporary file, then rename it
/// over the current one, for generations `from..=to`. Returns the last
/// generation acknowledged (its calls all returned Ok) before the disk
/// failed, `from - 1` if none was.
fn update_loop(volume: &Volume, from: u32, to: u32) -> u32 {
    let mut acknowledged = from - 1;
    for generation in from..=to {
        let content = contents(generation);
        let step = || -> Result<(), Error> {
            let truncate = OpenFlags {
                truncate: true,
                ..CREATE
            };
            volume.open("tmp", truncate)?;
            volume.write_at("tmp", 0, content.as_bytes())?;
            volume.sync()?;
            volume.rename("tmp", "current")?;
            volume.sync()
        };
        if step().is_err() {
            break;
        }
        acknowledged = generation;
    }
    acknowledged
}

/// A generation's file: its number, padded to a length of its own.
fn contents(generation: u32) -> String {
    let padding = "x".repeat(generation as usize * 397 % 3000);
    format!("generation {generation} {padding}")
}

fn generation_of(volume: &Volume) -> u32 {
    let bytes = volume
        .read_at("current", 0, 8192)
        .expect("current is there");
    let text = String::from_utf8(bytes).expect("current is one whole generation");
    let generation: u32 = text
        .split(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a generation: {text:?}"));
    assert_eq!(text, contents(generation), "torn content");
    generation
}

#[test]
fn power_cut_at_every_write_of_an_update_loop() {
    let (disk, volume) = fresh(1);
    assert_eq!(update_loop(&volume, 1, 4), 4);
    let base = disk.snapshot();
    // How many writes eight more generations make, uncut.
    let start = disk.writes();
    assert_eq!(update_loop(&volume, 5, 12), 12);
    let total = disk.writes() - start;
    assert!(total > 8, "{total} writes");
    for cut in 0..total {
        for torn_sectors in [0, 1] {
            let disk = MemoryDisk::from_bytes(base.clone());
            let volume = Volume::mount(disk.clone()).unwrap();
            disk.lose_power_after(cut, torn_sectors);
            let acknowledged = update_loop(&volume, 5, 12);
            drop(volume);
            let volume = Volume::mount(MemoryDisk::from_bytes(disk.snapshot()))
                .unwrap_or_else(|e| panic!("cut at write {cut}: the volume does not mount: {e}"));
            let found = generation_of(&volume);
            // Everything acknowledged is there; at most the one in flight
            // is newer.
            assert!(
                found == acknowledged || found == acknowledged + 1,
                "cut at write {cut}: generation {found} after {acknowledged} was acknowledged"
            );
            // And the volume still takes updates.
            assert_eq!(update_loop(&volume, 100, 101), 101);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Damage anywhere in a volume: mounting and reading never panic;
    /// damage is refused or read as what the checksums let through.
    #[test]
    fn damaged_volumes_never_panic(
        damage in proptest::collection::vec((0usize..MIB, any::<u8>()), 1..64),
    ) {
        let (disk, volume) = fresh(1);
        volume.mkdir("d").unwrap();
        volume.open("d/f", CREATE).unwrap();
        volume.write_at("d/f", 0, &[7u8; 20_000]).unwrap();
        drop(volume);
        let mut bytes = disk.snapshot();
        for (at, value) in damage {
            bytes[at] = value;
        }
        if let Ok(volume) = Volume::mount(MemoryDisk::from_bytes(bytes)) {
            let _ = volume.list("", 0, 100);
            let _ = volume.list("d", 0, 100);
            let _ = volume.read_at("d/f", 0, 30_000);
            let _ = volume.open("new", CREATE);
            let _ = volume.write_at("new", 0, b"x");
        }
    }

    #[test]
    fn random_bytes_are_no_volume(seed in any::<u64>()) {
        let mut state = seed | 1;
        let bytes: Vec<u8> = (0..MIB)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        prop_assert!(Volume::mount(MemoryDisk::from_bytes(bytes)).is_err());
    }
}
