//! A mounted littlefs volume and its operations, on volume paths (already
//! confined by `resolve`). Files are opened for each operation and closed
//! (committed) before it returns: nothing half-done outlives a call, so a
//! holder killed between calls leaves the volume as its last call did.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use littlefs2::consts::{U16, U512};
use littlefs2::fs::{Allocation, FileOpenFlags, Filesystem};
use littlefs2::io::{self, SeekFrom};
use littlefs2::object_safe::DynFilesystem;
use littlefs2::path::PathBuf;

use crate::device::{BlockDevice, SECTOR_BYTES};

/// littlefs's block: the unit it allocates and copies on write.
pub const BLOCK_BYTES: usize = 4096;
/// The volume sizes there are (MiB).
pub const SIZES_MIB: [u32; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/// Largest file littlefs keeps.
pub const MAX_FILE_BYTES: u64 = littlefs2::consts::FILEBYTES_MAX as u64;

/// The volume size (MiB) a disk of `bytes` holds: the largest of
/// [`SIZES_MIB`] that fits.
pub fn size_for(bytes: u64) -> Option<u32> {
    SIZES_MIB
        .iter()
        .copied()
        .rev()
        .find(|&mib| u64::from(mib) << 20 <= bytes)
}

type Shared = Rc<RefCell<dyn BlockDevice>>;

/// The disk as littlefs sees it: `BLOCKS` blocks from sector 0, with the
/// blocks read last kept in memory (littlefs reads its metadata again on
/// every path it looks up; a disk request costs far more than a copy).
struct Disk<const BLOCKS: usize> {
    device: Shared,
    cache: BlockCache,
}

/// Blocks kept per mounted volume.
const CACHED_BLOCKS: usize = 256;

/// Whole blocks as the disk holds them, written through: a write goes to
/// the disk and then into its cached copy, so the cache never holds what
/// the disk does not. The oldest block read goes first.
struct BlockCache {
    blocks: alloc::collections::BTreeMap<usize, Box<[u8]>>,
    order: alloc::collections::VecDeque<usize>,
    capacity: usize,
}

impl BlockCache {
    fn new(capacity: usize) -> BlockCache {
        BlockCache {
            blocks: alloc::collections::BTreeMap::new(),
            order: alloc::collections::VecDeque::new(),
            capacity,
        }
    }

    fn insert(&mut self, block: usize, bytes: Box<[u8]>) {
        if self.capacity == 0 {
            return;
        }
        while self.blocks.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.blocks.remove(&oldest);
                }
                None => break,
            }
        }
        self.blocks.insert(block, bytes);
        self.order.push_back(block);
    }
}

impl<const BLOCKS: usize> Disk<BLOCKS> {
    fn new(device: Shared, cached_blocks: usize) -> Self {
        Disk {
            device,
            cache: BlockCache::new(cached_blocks),
        }
    }
}

fn device_failed(_: crate::DeviceError) -> io::Error {
    io::Error::IO
}

impl<const BLOCKS: usize> littlefs2::driver::Storage for Disk<BLOCKS> {
    const READ_SIZE: usize = SECTOR_BYTES;
    const WRITE_SIZE: usize = SECTOR_BYTES;
    const BLOCK_SIZE: usize = BLOCK_BYTES;
    const BLOCK_COUNT: usize = BLOCKS;
    // One sector: each open file and each of littlefs's own caches holds
    // one, on the stack of the call that opened it.
    type CACHE_SIZE = U512;
    type LOOKAHEAD_SIZE = U16;

    fn read(&mut self, offset: usize, buffer: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buffer.len() {
            let at = offset + done;
            let (block, within) = (at / BLOCK_BYTES, at % BLOCK_BYTES);
            let length = (BLOCK_BYTES - within).min(buffer.len() - done);
            if !self.cache.blocks.contains_key(&block) {
                let mut bytes = vec![0u8; BLOCK_BYTES].into_boxed_slice();
                let sector = (block * BLOCK_BYTES / SECTOR_BYTES) as u64;
                self.device
                    .borrow_mut()
                    .read(sector, &mut bytes)
                    .map_err(device_failed)?;
                if self.cache.capacity == 0 {
                    buffer[done..done + length].copy_from_slice(&bytes[within..within + length]);
                    done += length;
                    continue;
                }
                self.cache.insert(block, bytes);
            }
            let cached = &self.cache.blocks[&block];
            buffer[done..done + length].copy_from_slice(&cached[within..within + length]);
            done += length;
        }
        Ok(buffer.len())
    }

    /// littlefs counts on a write being durable, in order, once it
    /// returns: a flush follows each.
    fn write(&mut self, offset: usize, data: &[u8]) -> io::Result<usize> {
        let sector = (offset / SECTOR_BYTES) as u64;
        let written = {
            let mut device = self.device.borrow_mut();
            device.write(sector, data).and_then(|()| device.flush())
        };
        if let Err(error) = written {
            // What the disk holds of these blocks is unknown now: read them
            // again when next asked.
            let first = offset / BLOCK_BYTES;
            let last = (offset + data.len().max(1) - 1) / BLOCK_BYTES;
            for block in first..=last {
                self.cache.blocks.remove(&block);
                self.cache.order.retain(|&b| b != block);
            }
            return Err(device_failed(error));
        }
        let mut done = 0;
        while done < data.len() {
            let at = offset + done;
            let (block, within) = (at / BLOCK_BYTES, at % BLOCK_BYTES);
            let length = (BLOCK_BYTES - within).min(data.len() - done);
            if let Some(cached) = self.cache.blocks.get_mut(&block) {
                cached[within..within + length].copy_from_slice(&data[done..done + length]);
            }
            done += length;
        }
        Ok(data.len())
    }

    /// Disks need no erasing before a write.
    fn erase(&mut self, _offset: usize, length: usize) -> io::Result<usize> {
        Ok(length)
    }
}

/// What went wrong with an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    NotFound,
    Exists,
    NotDirectory,
    IsDirectory,
    NotEmpty,
    NoSpace,
    /// Past the largest file size.
    TooLarge,
    NameTooLong,
    /// The path leads out of the capability's directory.
    Escapes(&'static str),
    Invalid(&'static str),
    /// The capability (or the mount) is read-only.
    ReadOnly,
    /// The volume's structure is damaged.
    Corrupt,
    /// The disk failed a request.
    Io,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("no such file or directory"),
            Error::Exists => f.write_str("it exists already"),
            Error::NotDirectory => f.write_str("not a directory"),
            Error::IsDirectory => f.write_str("it is a directory"),
            Error::NotEmpty => f.write_str("the directory is not empty"),
            Error::NoSpace => f.write_str("the volume is full"),
            Error::TooLarge => write!(f, "past the largest file size ({MAX_FILE_BYTES} bytes)"),
            Error::NameTooLong => {
                write!(f, "the path is longer than {} bytes", crate::MAX_PATH_BYTES)
            }
            Error::Escapes(how) => write!(f, "the path leads out of the directory ({how})"),
            Error::Invalid(what) => write!(f, "invalid: {what}"),
            Error::ReadOnly => f.write_str("read-only"),
            Error::Corrupt => f.write_str("the volume is damaged"),
            Error::Io => f.write_str("the disk failed a request"),
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Error {
        match error {
            io::Error::NO_SUCH_ENTRY => Error::NotFound,
            io::Error::ENTRY_ALREADY_EXISTED => Error::Exists,
            io::Error::PATH_NOT_DIR => Error::NotDirectory,
            io::Error::PATH_IS_DIR => Error::IsDirectory,
            io::Error::DIR_NOT_EMPTY => Error::NotEmpty,
            io::Error::NO_SPACE => Error::NoSpace,
            io::Error::FILE_TOO_BIG => Error::TooLarge,
            io::Error::FILENAME_TOO_LONG => Error::NameTooLong,
            io::Error::INVALID => Error::Invalid("refused by the file system"),
            io::Error::CORRUPTION => Error::Corrupt,
            _ => Error::Io,
        }
    }
}

/// Why a disk could not be mounted or formatted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountError {
    /// Smaller than the smallest volume.
    TooSmall {
        bytes: u64,
    },
    /// No littlefs volume of this size on it (never formatted, another
    /// size, or a damaged superblock).
    NotAVolume,
    Corrupt,
    Device,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::TooSmall { bytes } => write!(
                f,
                "the disk has {bytes} bytes; a volume needs at least {} MiB",
                SIZES_MIB[0]
            ),
            MountError::NotAVolume => f.write_str(
                "no volume on the disk (unformatted, of another size, or its superblock is damaged)",
            ),
            MountError::Corrupt => f.write_str("the volume's structure is damaged"),
            MountError::Device => f.write_str("the disk failed a request while mounting"),
        }
    }
}

impl From<io::Error> for MountError {
    fn from(error: io::Error) -> MountError {
        match error {
            io::Error::CORRUPTION => MountError::NotAVolume,
            io::Error::INVALID => MountError::NotAVolume,
            io::Error::IO => MountError::Device,
            _ => MountError::Corrupt,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub stat: Stat,
}

/// How `open` treats the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Create it if it is not there.
    pub create: bool,
    /// With `create`: fail if it is there.
    pub exclusive: bool,
    /// Cut it to nothing.
    pub truncate: bool,
}

impl OpenFlags {
    fn writes(&self) -> bool {
        self.create || self.truncate
    }
}

/// A mounted volume. Its littlefs state lives as long as the program (the
/// C side keeps pointers into it), so a volume is mounted once.
pub struct Volume {
    fs: &'static dyn DynFilesystem,
    device: Shared,
    size_mib: u32,
}

/// Runs `$body` with `$blocks` the block count of a volume of `$mib` MiB.
macro_rules! with_blocks {
    ($mib:expr, |$blocks:ident| $body:expr) => {
        match $mib {
            1 => {
                const $blocks: usize = 256;
                $body
            }
            2 => {
                const $blocks: usize = 512;
                $body
            }
            4 => {
                const $blocks: usize = 1024;
                $body
            }
            8 => {
                const $blocks: usize = 2048;
                $body
            }
            16 => {
                const $blocks: usize = 4096;
                $body
            }
            32 => {
                const $blocks: usize = 8192;
                $body
            }
            64 => {
                const $blocks: usize = 16384;
                $body
            }
            128 => {
                const $blocks: usize = 32768;
                $body
            }
            256 => {
                const $blocks: usize = 65536;
                $body
            }
            512 => {
                const $blocks: usize = 131072;
                $body
            }
            _ => {
                const $blocks: usize = 262144;
                $body
            }
        }
    };
}

fn disk_size<D: BlockDevice>(device: &D) -> Result<u32, MountError> {
    let bytes = device.sectors() * SECTOR_BYTES as u64;
    size_for(bytes).ok_or(MountError::TooSmall { bytes })
}

fn mount_sized<const BLOCKS: usize>(
    device: Shared,
) -> Result<&'static dyn DynFilesystem, MountError> {
    // Tried first with state on the stack, so a disk that is no volume
    // leaks nothing.
    let mut probe = Disk::<BLOCKS>::new(device.clone(), 0);
    Filesystem::mount_and_then(&mut probe, |_| Ok(()))?;
    let storage = Box::leak(Box::new(Disk::<BLOCKS>::new(device, CACHED_BLOCKS)));
    let allocation = Box::leak(Box::new(Allocation::new()));
    let fs = Filesystem::mount(allocation, storage)?;
    Ok(Box::leak(Box::new(fs)))
}

fn format_sized<const BLOCKS: usize>(device: Shared) -> Result<(), MountError> {
    Filesystem::format(&mut Disk::<BLOCKS>::new(device, 0))?;
    Ok(())
}

/// littlefs's name for a volume path.
fn lfs_path(path: &str) -> Result<PathBuf, Error> {
    let path = if path.is_empty() { "/" } else { path };
    PathBuf::try_from(path).map_err(|_| Error::NameTooLong)
}

/// A littlefs seek position for `offset`, if a file can reach it.
fn position(offset: u64) -> Result<SeekFrom, Error> {
    if offset > MAX_FILE_BYTES {
        return Err(Error::TooLarge);
    }
    Ok(SeekFrom::Start(offset as u32))
}

impl Volume {
    /// Writes an empty volume over the whole disk (of the largest size
    /// that fits).
    pub fn format<D: BlockDevice + 'static>(device: D) -> Result<(), MountError> {
        let mib = disk_size(&device)?;
        let device: Shared = Rc::new(RefCell::new(device));
        with_blocks!(mib, |BLOCKS| format_sized::<BLOCKS>(device))
    }

    /// Mounts the volume on `device`; a disk that holds none (or a damaged
    /// one) is refused, untouched.
    pub fn mount<D: BlockDevice + 'static>(device: D) -> Result<Volume, MountError> {
        let size_mib = disk_size(&device)?;
        let device: Shared = Rc::new(RefCell::new(device));
        let fs = with_blocks!(size_mib, |BLOCKS| mount_sized::<BLOCKS>(device.clone()))?;
        Ok(Volume {
            fs,
            device,
            size_mib,
        })
    }

    pub fn size_mib(&self) -> u32 {
        self.size_mib
    }

    /// Bytes not yet used (littlefs's estimate: blocks it could allocate).
    pub fn free_bytes(&self) -> Result<u64, Error> {
        Ok(self.fs.available_space()? as u64)
    }

    pub fn stat(&self, path: &str) -> Result<Stat, Error> {
        let metadata = self.fs.metadata(&lfs_path(path)?)?;
        Ok(Stat {
            kind: if metadata.is_dir() {
                Kind::Directory
            } else {
                Kind::File
            },
            size: metadata.len() as u64,
        })
    }

    /// Opens (perhaps creates or truncates) what `path` names and says
    /// what it is; creating or truncating a directory is refused.
    pub fn open(&self, path: &str, flags: OpenFlags) -> Result<Stat, Error> {
        if flags.writes() {
            let mut lfs = FileOpenFlags::WRITE;
            if flags.create {
                lfs |= FileOpenFlags::CREATE;
            }
            if flags.create && flags.exclusive {
                lfs |= FileOpenFlags::EXCL;
            }
            if flags.truncate {
                lfs |= FileOpenFlags::TRUNCATE;
            }
            self.fs
                .open_file_with_flags_and_then(lfs, &lfs_path(path)?, &mut |_| Ok(()))?;
        }
        self.stat(path)
    }

    /// Up to `max` bytes from `offset` (fewer at the end of the file).
    pub fn read_at(&self, path: &str, offset: u64, max: usize) -> Result<Vec<u8>, Error> {
        let Ok(start) = position(offset) else {
            return Ok(Vec::new());
        };
        let mut data = vec![0u8; max];
        let read = self.fs.open_file_with_flags_and_then(
            FileOpenFlags::READ,
            &lfs_path(path)?,
            &mut |file| {
                file.seek(start)?;
                let mut filled = 0;
                while filled < data.len() {
                    match file.read(&mut data[filled..])? {
                        0 => break,
                        n => filled += n,
                    }
                }
                Ok(filled)
            },
        )?;
        data.truncate(read);
        Ok(data)
    }

    /// Writes `data` at `offset` (a gap before it reads as zeros).
    pub fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> Result<(), Error> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(Error::TooLarge)?;
        position(end)?;
        let start = position(offset)?;
        self.fs.open_file_with_flags_and_then(
            FileOpenFlags::WRITE,
            &lfs_path(path)?,
            &mut |file| {
                file.seek(start)?;
                file.write_all(data)
            },
        )?;
        Ok(())
    }

    /// Writes `data` at the end; the size after.
    pub fn append(&self, path: &str, data: &[u8]) -> Result<u64, Error> {
        let size = self.fs.open_file_with_flags_and_then(
            FileOpenFlags::WRITE | FileOpenFlags::APPEND,
            &lfs_path(path)?,
            &mut |file| {
                if file.len()? as u64 + data.len() as u64 > MAX_FILE_BYTES {
                    return Err(io::Error::FILE_TOO_BIG);
                }
                file.write_all(data)?;
                file.len()
            },
        )?;
        Ok(size as u64)
    }

    /// Cuts or extends (with zeros) the file to `size` bytes.
    pub fn truncate(&self, path: &str, size: u64) -> Result<(), Error> {
        position(size)?;
        self.fs.open_file_with_flags_and_then(
            FileOpenFlags::WRITE,
            &lfs_path(path)?,
            &mut |file| file.set_len(size as usize),
        )?;
        Ok(())
    }

    pub fn mkdir(&self, path: &str) -> Result<(), Error> {
        Ok(self.fs.create_dir(&lfs_path(path)?)?)
    }

    /// Removes a file or an empty directory.
    pub fn remove(&self, path: &str) -> Result<(), Error> {
        if path.is_empty() {
            return Err(Error::Invalid("the directory itself cannot be removed"));
        }
        Ok(self.fs.remove(&lfs_path(path)?)?)
    }

    /// Moves `from` to `to` in one step, replacing a file (or an empty
    /// directory) there.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        if from.is_empty() || to.is_empty() {
            return Err(Error::Invalid("the directory itself cannot be renamed"));
        }
        // littlefs would move a directory into itself, losing it.
        if to.len() > from.len() && to.starts_with(from) && to.as_bytes()[from.len()] == b'/' {
            return Err(Error::Invalid("a directory cannot move into itself"));
        }
        Ok(self.fs.rename(&lfs_path(from)?, &lfs_path(to)?)?)
    }

    /// Up to `max` entries of the directory, skipping the first `skip`
    /// (`.` and `..` are not listed).
    pub fn list(&self, path: &str, skip: u64, max: usize) -> Result<Vec<Entry>, Error> {
        let lfs = lfs_path(path)?;
        if self.stat(path)?.kind != Kind::Directory {
            return Err(Error::NotDirectory);
        }
        let entries = self.fs.read_dir_and_then(&lfs, &mut |entries| {
            let mut listed = Vec::new();
            let named = entries.filter(|entry| {
                entry
                    .as_ref()
                    .map_or(true, |e| !matches!(e.file_name().as_str(), "." | ".."))
            });
            for entry in named.skip(skip as usize).take(max) {
                let entry = entry?;
                listed.push(Entry {
                    name: String::from(entry.file_name().as_str()),
                    stat: Stat {
                        kind: if entry.metadata().is_dir() {
                            Kind::Directory
                        } else {
                            Kind::File
                        },
                        size: entry.metadata().len() as u64,
                    },
                });
            }
            Ok(listed)
        })?;
        Ok(entries)
    }

    /// Makes everything written so far durable (each write already is;
    /// this is the barrier a `sync` asks for).
    pub fn sync(&self) -> Result<(), Error> {
        self.device.borrow_mut().flush().map_err(|_| Error::Io)
    }
}
