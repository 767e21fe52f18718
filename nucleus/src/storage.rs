//! The appliance's volumes: each a virtio-blk disk (found by its serial,
//! which is the volume's name) with a littlefs volume on it (fsd), mounted
//! once at start. The Directory and File services (`files`) work on them.
//! A disk that is missing, or holds no volume (or a damaged one), is
//! refused with its reason; guests that mount it do not start, the others
//! do.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use spin::Mutex;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::PciTransport;

use crate::virtio::{Disk, NucleusHal, OnlyUnderLock};

/// A mounted volume.
struct Mounted {
    name: String,
    volume: OnlyUnderLock<fsd::Volume>,
    /// The disk refuses writes (QEMU `readonly=on`): every mount of it is
    /// read-only.
    read_only: bool,
}

static VOLUMES: Mutex<Vec<Mounted>> = Mutex::new(Vec::new());

/// A volume by its index among the mounted ones.
pub type VolumeIndex = usize;

/// Runs `f` on mounted volume `index`. Holds the volumes' lock: one file
/// operation at a time.
pub fn with_volume<R>(index: VolumeIndex, f: impl FnOnce(&fsd::Volume) -> R) -> Option<R> {
    let volumes = VOLUMES.lock();
    volumes.get(index).map(|mounted| f(mounted.volume.get()))
}

/// The mounted volume called `name`: its index and whether its disk is
/// read-only.
pub fn find(name: &str) -> Option<(VolumeIndex, bool)> {
    let volumes = VOLUMES.lock();
    let index = volumes.iter().position(|m| m.name == name)?;
    Some((index, volumes[index].read_only))
}

#[derive(Debug)]
enum DiskError {
    Transport(virtio_drivers::transport::pci::VirtioPciError),
    Device(virtio_drivers::Error),
    NoVector,
    Msix(crate::pci::MsixError),
    VectorRefused,
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::Transport(error) => write!(f, "virtio PCI transport: {error}"),
            DiskError::Device(error) => write!(f, "virtio-blk: {error}"),
            DiskError::NoVector => f.write_str("no wake vector left"),
            DiskError::Msix(error) => write!(f, "MSI-X: {error}"),
            DiskError::VectorRefused => {
                f.write_str("the device refused the MSI-X entry for its queue")
            }
        }
    }
}

/// Initialises one virtio-blk function: its queue interrupts on a wake
/// vector of its own; returns the disk and its serial.
fn bring_up_disk(
    function: virtio_drivers::transport::pci::bus::DeviceFunction,
) -> Result<(Disk, String, u8), DiskError> {
    crate::pci::enable(function);
    let transport = PciTransport::new::<NucleusHal, _>(&mut crate::pci::root(), function)
        .map_err(DiskError::Transport)?;
    let mut disk = Disk::new(transport).map_err(DiskError::Device)?;
    // Asked before interrupts are routed: the crate waits for it by polling.
    let serial = disk.serial().map_err(DiskError::Device)?;
    let vector = crate::irq::allocate_wake().ok_or(DiskError::NoVector)?;
    let table = crate::pci::enable_msix(function, &[vector]).map_err(DiskError::Msix)?;
    if !crate::virtio::route_queue_interrupts(function, &[(0, 0)]) {
        return Err(DiskError::VectorRefused);
    }
    disk.enable_interrupts(table);
    Ok((disk, serial, vector))
}

/// Finds the disks, and mounts each of `volumes` on the disk named for it.
/// Logs what it claimed, mounted and refused.
pub fn bring_up(volumes: &[caps::manifest::Volume]) {
    let mut disks: Vec<(String, Disk)> = Vec::new();
    for device in crate::pci::devices() {
        if virtio_drivers::transport::pci::virtio_device_type(&device.info)
            != Some(DeviceType::Block)
        {
            continue;
        }
        match bring_up_disk(device.function) {
            Ok((disk, serial, vector)) => {
                crate::log!(
                    "storage: virtio-blk at pci {} claimed; serial '{serial}', {} MiB{}, interrupts on vector {vector:#x} (MSI-X)",
                    device.function,
                    (fsd::BlockDevice::sectors(&disk) * fsd::SECTOR_BYTES as u64) >> 20,
                    if disk.read_only() { ", read-only" } else { "" },
                );
                disks.push((serial, disk));
            }
            Err(error) => crate::log!(
                "storage: virtio-blk at pci {}: not brought up: {error}",
                device.function
            ),
        }
    }
    let mut mounted = VOLUMES.lock();
    for volume in volumes {
        let Some(at) = disks.iter().position(|(serial, _)| *serial == volume.name) else {
            crate::log!(
                "storage: volume {}: refused: no disk with serial '{}' (QEMU: -device virtio-blk-pci,serial={},...)",
                volume.name,
                volume.name,
                volume.name
            );
            continue;
        };
        let (_, disk) = disks.swap_remove(at);
        let read_only = disk.read_only();
        let bytes = fsd::BlockDevice::sectors(&disk) * fsd::SECTOR_BYTES as u64;
        if fsd::size_for(bytes) != Some(volume.size_mib) {
            crate::log!(
                "storage: volume {}: refused: the disk has {} MiB, the appliance says {} MiB",
                volume.name,
                bytes >> 20,
                volume.size_mib
            );
            continue;
        }
        match fsd::Volume::mount(disk) {
            Ok(mounted_volume) => {
                let free = mounted_volume.free_bytes().unwrap_or(0);
                crate::log!(
                    "storage: volume {} mounted: {} MiB, {} KiB free{}",
                    volume.name,
                    mounted_volume.size_mib(),
                    free / 1024,
                    if read_only { ", read-only" } else { "" }
                );
                mounted.push(Mounted {
                    name: volume.name.clone(),
                    volume: OnlyUnderLock::new(mounted_volume),
                    read_only,
                });
            }
            Err(error) => crate::log!("storage: volume {}: refused: {error}", volume.name),
        }
    }
    for (serial, _) in disks {
        crate::log!("storage: disk '{serial}' is no volume of the appliance: left alone");
    }
}
