//! Volume images: a file per volume holding the littlefs file system the
//! appliance's disk carries, created (and seeded) once and then kept, and
//! the file operations `appliance volume` offers on one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fsd::{BlockDevice, DeviceError, Entry, Kind, OpenFlags, SECTOR_BYTES, Volume};

use crate::{Error, fail};

/// A volume image as a disk: sector `n` is bytes `512 n ..` of the file.
pub struct FileDisk {
    file: File,
    sectors: u64,
    writable: bool,
    /// Whether a flush syncs the file; an image being created is synced
    /// once when done (a half-made one is thrown away).
    sync_on_flush: bool,
}

impl FileDisk {
    /// Opens the image at `path`, for reading only unless `writable`.
    pub fn open(path: &Path, writable: bool) -> Result<FileDisk, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| Error(format!("{}: {e}", path.display())))?;
        let bytes = file
            .metadata()
            .map_err(|e| Error(format!("{}: {e}", path.display())))?
            .len();
        Ok(FileDisk {
            file,
            sectors: bytes / SECTOR_BYTES as u64,
            writable,
            sync_on_flush: true,
        })
    }

    /// Like `open(path, true)`, but a flush does not sync the file.
    fn open_unsynced(path: &Path) -> Result<FileDisk, Error> {
        Ok(FileDisk {
            sync_on_flush: false,
            ..FileDisk::open(path, true)?
        })
    }

    fn offset(&self, sector: u64, bytes: usize) -> Result<u64, DeviceError> {
        let range = fsd::sector_range(sector, bytes, self.sectors)?;
        Ok(range.start as u64)
    }
}

impl BlockDevice for FileDisk {
    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), DeviceError> {
        let offset = self.offset(sector, buffer.len())?;
        self.file
            .read_exact_at(buffer, offset)
            .map_err(|_| DeviceError("reading the image file failed"))
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), DeviceError> {
        if !self.writable {
            return Err(DeviceError("the image file is open for reading only"));
        }
        let offset = self.offset(sector, data.len())?;
        self.file
            .write_all_at(data, offset)
            .map_err(|_| DeviceError("writing the image file failed"))
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        if !self.writable || !self.sync_on_flush {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(|_| DeviceError("syncing the image file failed"))
    }
}

/// What [`prepare_image`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepared {
    Created,
    /// An image was there already; it is untouched.
    Kept,
}

/// Makes sure a volume image of `size_mib` MiB is at `path`: an existing
/// one is kept (unless `reset`) if its size is right, and refused if not;
/// a missing one is created empty and seeded from `seed`.
pub fn prepare_image(
    path: &Path,
    size_mib: u32,
    seed: Option<&Path>,
    reset: bool,
) -> Result<Prepared, Error> {
    if !reset && let Ok(metadata) = std::fs::metadata(path) {
        let want = u64::from(size_mib) << 20;
        if !metadata.is_file() {
            return fail(format!("{} is not a file", path.display()));
        }
        if metadata.len() != want {
            return fail(format!(
                "{} is {} bytes, not the {size_mib} MiB ({want} bytes) the volume has: \
                 recreate it with --reset-volumes (its files are lost), or set sizeMib back",
                path.display(),
                metadata.len()
            ));
        }
        return Ok(Prepared::Kept);
    }
    create_image(path, size_mib, seed)?;
    Ok(Prepared::Created)
}

/// Writes a new volume image of `size_mib` MiB at `path` (replacing any
/// file there), with the files and directories of `seed` in it. The image
/// is made beside `path` and renamed into place, so a failure leaves
/// `path` as it was.
pub fn create_image(path: &Path, size_mib: u32, seed: Option<&Path>) -> Result<(), Error> {
    if !fsd::SIZES_MIB.contains(&size_mib) {
        return fail(format!(
            "a volume of {size_mib} MiB: volumes have {:?} MiB",
            fsd::SIZES_MIB
        ));
    }
    if let Some(seed) = seed
        && !seed.is_dir()
    {
        return fail(format!("the seed {} is not a directory", seed.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let made = make_image(&partial, size_mib, seed).and_then(|()| {
        std::fs::rename(&partial, path).map_err(|e| Error(format!("{}: {e}", path.display())))
    });
    if made.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    made
}

fn make_image(path: &Path, size_mib: u32, seed: Option<&Path>) -> Result<(), Error> {
    let at = |e: std::io::Error| Error(format!("{}: {e}", path.display()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(at)?;
    // Sparse: only the blocks littlefs writes take space.
    file.set_len(u64::from(size_mib) << 20).map_err(at)?;
    Volume::format(FileDisk::open_unsynced(path)?)
        .map_err(|e| Error(format!("formatting {}: {e}", path.display())))?;
    let volume = Volume::mount(FileDisk::open_unsynced(path)?)
        .map_err(|e| Error(format!("{}: cannot mount: {e}", path.display())))?;
    if let Some(seed) = seed {
        copy_tree(&volume, seed, "")?;
    }
    file.sync_all().map_err(at)
}

/// Mounts the volume in the image at `path` (for writing if `writable`).
/// A volume lives as long as the program: mount each image once.
pub fn mount_image(path: &Path, writable: bool) -> Result<Volume, Error> {
    if !path.is_file() {
        return fail(format!("no volume image at {}", path.display()));
    }
    Volume::mount(FileDisk::open(path, writable)?)
        .map_err(|e| Error(format!("{}: cannot mount: {e}", path.display())))
}

/// Copies the files and directories under `dir` into the volume's
/// directory `into` (a volume path), in name order.
fn copy_tree(volume: &Volume, dir: &Path, into: &str) -> Result<(), Error> {
    let at = |path: &Path, e: std::io::Error| Error(format!("{}: {e}", path.display()));
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let entry = entry.map_err(|e| at(dir, e))?;
        let host = entry.path();
        let name = entry.file_name().into_string().map_err(|name| {
            Error(format!(
                "{}: the name {name:?} is not UTF-8, which a volume's names are",
                dir.display()
            ))
        })?;
        entries.push((name, host));
    }
    entries.sort();
    for (name, host) in entries {
        let target = fsd::resolve(into, &name).map_err(|e| refused(&host, &name, e))?;
        let kind = std::fs::symlink_metadata(&host)
            .map_err(|e| at(&host, e))?
            .file_type();
        if kind.is_dir() {
            volume
                .mkdir(&target)
                .map_err(|e| refused(&host, &target, e))?;
            copy_tree(volume, &host, &target)?;
        } else if kind.is_file() {
            let data = std::fs::read(&host).map_err(|e| at(&host, e))?;
            write_file(volume, &target, &data).map_err(|e| refused(&host, &target, e))?;
        } else {
            return fail(format!(
                "{}: not a file or a directory (a volume holds only those; it has no links)",
                host.display()
            ));
        }
    }
    Ok(())
}

/// An operation on `volume_path` (copying `host`) failed.
fn refused(host: &Path, volume_path: &str, error: fsd::Error) -> Error {
    let hint = match error {
        fsd::Error::NoSpace => " (raise the volume's sizeMib)",
        _ => "",
    };
    Error(format!(
        "{}: cannot copy it to /{volume_path}: {error}{hint}",
        host.display()
    ))
}

/// How much one call reads or writes: each call commits.
const CHUNK_BYTES: usize = 1 << 20;

/// Writes a new file (or replaces its contents) with `data`.
fn write_file(volume: &Volume, path: &str, data: &[u8]) -> Result<(), fsd::Error> {
    if data.len() as u64 > fsd::MAX_FILE_BYTES {
        return Err(fsd::Error::TooLarge);
    }
    volume.open(
        path,
        OpenFlags {
            create: true,
            exclusive: false,
            truncate: true,
        },
    )?;
    for (i, chunk) in data.chunks(CHUNK_BYTES).enumerate() {
        volume.write_at(path, (i * CHUNK_BYTES) as u64, chunk)?;
    }
    Ok(())
}

/// The volume path an argument names: "/a/b" and "a/b" are both `a/b`,
/// "/" is the root; `..` is refused.
pub fn volume_path(arg: &str) -> Result<String, Error> {
    fsd::resolve("", arg.trim_start_matches('/'))
        .map_err(|e| Error(format!("the volume path '{arg}': {e}")))
}

/// What `path` is: the entries of a directory, in the volume's order, or
/// the file itself (named by its last component).
pub fn list(volume: &Volume, path: &str) -> Result<Vec<Entry>, Error> {
    let stat = volume.stat(path).map_err(|e| at_path(path, e))?;
    if stat.kind == Kind::File {
        let name = path.rsplit('/').next().unwrap_or(path);
        return Ok(vec![Entry {
            name: name.to_string(),
            stat,
        }]);
    }
    let mut entries = Vec::new();
    loop {
        let batch = volume
            .list(path, entries.len() as u64, 256)
            .map_err(|e| at_path(path, e))?;
        if batch.is_empty() {
            return Ok(entries);
        }
        entries.extend(batch);
    }
}

/// An entry as `appliance volume ls` prints it: kind, size, name.
pub fn describe(entry: &Entry) -> String {
    match entry.stat.kind {
        Kind::Directory => format!("dir  {:>12}  {}/", "-", entry.name),
        Kind::File => format!("file {:>12}  {}", entry.stat.size, entry.name),
    }
}

/// Copies the file at `path` to `out`.
pub fn read_file(volume: &Volume, path: &str, out: &mut dyn Write) -> Result<(), Error> {
    let stat = volume.stat(path).map_err(|e| at_path(path, e))?;
    if stat.kind == Kind::Directory {
        return Err(at_path(path, fsd::Error::IsDirectory));
    }
    let mut offset = 0u64;
    loop {
        let chunk = volume
            .read_at(path, offset, CHUNK_BYTES)
            .map_err(|e| at_path(path, e))?;
        if chunk.is_empty() {
            return Ok(());
        }
        out.write_all(&chunk)
            .map_err(|e| Error(format!("writing /{path} out: {e}")))?;
        offset += chunk.len() as u64;
    }
}

/// Creates or replaces the file at `path` with `data`, in one step: the
/// data goes to a file beside it, which is then renamed over it, so the
/// file is whole, old or new, whatever happens meanwhile.
pub fn put_file(volume: &Volume, path: &str, data: &[u8]) -> Result<(), Error> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    };
    if name.is_empty() {
        return fail("the volume path names the root directory, not a file");
    }
    match volume.stat(dir) {
        Ok(stat) if stat.kind == Kind::Directory => {}
        Ok(_) => return Err(at_path(dir, fsd::Error::NotDirectory)),
        Err(fsd::Error::NotFound) => {
            return fail(format!(
                "/{dir}: no such directory in the volume (directories are not created)"
            ));
        }
        Err(e) => return Err(at_path(dir, e)),
    }
    if let Ok(stat) = volume.stat(path)
        && stat.kind == Kind::Directory
    {
        return Err(at_path(path, fsd::Error::IsDirectory));
    }
    let partial = fsd::resolve(dir, &format!(".{name}.partial")).map_err(|e| at_path(path, e))?;
    let written = write_file(volume, &partial, data)
        .and_then(|()| volume.rename(&partial, path))
        .and_then(|()| volume.sync());
    if let Err(error) = written {
        let _ = volume.remove(&partial);
        return Err(at_path(path, error));
    }
    Ok(())
}

fn at_path(path: &str, error: fsd::Error) -> Error {
    Error(format!("/{path}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the system's temporary directory.
    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("appliance-volumes-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn contents(volume: &Volume, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        read_file(volume, path, &mut out).unwrap();
        out
    }

    #[test]
    fn a_created_image_is_sparse_formatted_and_seeded() {
        let dir = scratch("seeded");
        let seed = dir.join("seed");
        std::fs::create_dir_all(seed.join("etc/empty")).unwrap();
        std::fs::write(seed.join("etc/motd"), b"hello\n").unwrap();
        let big: Vec<u8> = (0..3 * CHUNK_BYTES + 17).map(|i| i as u8).collect();
        std::fs::write(seed.join("big.bin"), &big).unwrap();
        let image = dir.join("out/data.img");
        assert_eq!(
            prepare_image(&image, 16, Some(&seed), false).unwrap(),
            Prepared::Created
        );
        let metadata = std::fs::metadata(&image).unwrap();
        assert_eq!(metadata.len(), 16 << 20);
        use std::os::unix::fs::MetadataExt;
        assert!(metadata.blocks() * 512 < 8 << 20, "the image is sparse");
        assert!(!dir.join("out/data.img.partial").exists());

        let volume = mount_image(&image, false).unwrap();
        assert_eq!(volume.size_mib(), 16);
        let root: Vec<String> = list(&volume, "").unwrap().iter().map(describe).collect();
        assert_eq!(root.len(), 2, "{root:?}");
        assert!(
            root.contains(&format!("file {:>12}  big.bin", big.len())),
            "{root:?}"
        );
        assert!(
            root.contains(&format!("dir  {:>12}  etc/", "-")),
            "{root:?}"
        );
        assert_eq!(contents(&volume, "etc/motd"), b"hello\n");
        assert_eq!(contents(&volume, "big.bin"), big);
        assert!(list(&volume, "etc/empty").unwrap().is_empty());
        let file = list(&volume, "etc/motd").unwrap();
        assert_eq!((file[0].name.as_str(), file[0].stat.size), ("motd", 6));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_existing_image_is_kept_unless_reset_and_its_size_is_checked() {
        let dir = scratch("kept");
        let image = dir.join("v.img");
        prepare_image(&image, 1, None, false).unwrap();
        put_file(&mount_image(&image, true).unwrap(), "note", b"mine").unwrap();
        assert_eq!(
            prepare_image(&image, 1, None, false).unwrap(),
            Prepared::Kept
        );
        assert_eq!(
            contents(&mount_image(&image, false).unwrap(), "note"),
            b"mine"
        );
        let error = prepare_image(&image, 2, None, false).unwrap_err().0;
        assert!(error.contains("is 1048576 bytes, not the 2 MiB"), "{error}");
        assert!(error.contains("--reset-volumes"), "{error}");
        assert_eq!(
            prepare_image(&image, 2, None, true).unwrap(),
            Prepared::Created
        );
        let volume = mount_image(&image, false).unwrap();
        assert_eq!(volume.size_mib(), 2);
        assert!(list(&volume, "").unwrap().is_empty(), "reset empties it");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_seeds_are_refused_and_leave_no_image() {
        let dir = scratch("bad-seeds");
        let image = dir.join("v.img");
        let error = create_image(&image, 1, Some(&dir.join("missing")))
            .unwrap_err()
            .0;
        assert!(error.contains("missing is not a directory"), "{error}");

        let full = dir.join("full");
        std::fs::create_dir_all(&full).unwrap();
        std::fs::write(full.join("huge"), vec![7u8; 2 << 20]).unwrap();
        let error = create_image(&image, 1, Some(&full)).unwrap_err().0;
        assert!(
            error.contains(
                "huge: cannot copy it to /huge: the volume is full (raise the volume's sizeMib)"
            ),
            "{error}"
        );

        let long = dir.join("long");
        std::fs::create_dir_all(&long).unwrap();
        std::fs::write(long.join("n".repeat(250)), b"").unwrap();
        std::fs::create_dir_all(long.join("d".repeat(10))).unwrap();
        std::fs::write(long.join("d".repeat(10)).join("n".repeat(250)), b"").unwrap();
        let error = create_image(&image, 1, Some(&long)).unwrap_err().0;
        assert!(
            error.contains("the path is longer than 255 bytes"),
            "{error}"
        );

        let linked = dir.join("linked");
        std::fs::create_dir_all(&linked).unwrap();
        std::os::unix::fs::symlink("elsewhere", linked.join("link")).unwrap();
        let error = create_image(&image, 1, Some(&linked)).unwrap_err().0;
        assert!(error.contains("link: not a file or a directory"), "{error}");

        assert!(!image.exists());
        assert!(!dir.join("v.img.partial").exists());
        let error = create_image(&image, 3, None).unwrap_err().0;
        assert!(error.contains("a volume of 3 MiB"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn put_replaces_whole_files_and_refuses_bad_targets() {
        let dir = scratch("put");
        let image = dir.join("v.img");
        create_image(&image, 1, None).unwrap();
        let volume = mount_image(&image, true).unwrap();
        volume.mkdir("dir").unwrap();
        put_file(&volume, "dir/f", b"first version, longer").unwrap();
        put_file(&volume, "dir/f", b"second").unwrap();
        assert_eq!(contents(&volume, "dir/f"), b"second");
        let names: Vec<String> = list(&volume, "dir")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["f"], "no partial file is left");

        let error = put_file(&volume, "nowhere/f", b"").unwrap_err().0;
        assert!(error.contains("/nowhere: no such directory"), "{error}");
        let error = put_file(&volume, "dir", b"").unwrap_err().0;
        assert_eq!(error, "/dir: it is a directory");
        let error = put_file(&volume, "dir/f/g", b"").unwrap_err().0;
        assert_eq!(error, "/dir/f: not a directory");
        let error = put_file(&volume, "", b"").unwrap_err().0;
        assert!(error.contains("root directory"), "{error}");
        let error = put_file(&volume, "big", &vec![1u8; 2 << 20]).unwrap_err().0;
        assert_eq!(error, "/big: the volume is full");
        assert_eq!(
            list(&volume, "").unwrap().len(),
            1,
            "the partial file is gone"
        );

        let error = read_file(&volume, "dir", &mut Vec::new()).unwrap_err().0;
        assert_eq!(error, "/dir: it is a directory");
        let error = list(&volume, "missing").unwrap_err().0;
        assert_eq!(error, "/missing: no such file or directory");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn volume_paths_are_confined() {
        assert_eq!(volume_path("/a/b").unwrap(), "a/b");
        assert_eq!(volume_path("a//b/").unwrap(), "a/b");
        assert_eq!(volume_path("/").unwrap(), "");
        let error = volume_path("/a/../..").unwrap_err().0;
        assert!(error.contains("leads out"), "{error}");
    }

    #[test]
    fn what_is_no_volume_is_refused() {
        let dir = scratch("not-a-volume");
        let image = dir.join("zeros.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let error = mount_image(&image, false).err().unwrap().0;
        assert!(
            error.contains("zeros.img: cannot mount: no volume on the disk"),
            "{error}"
        );
        std::fs::write(&image, vec![0u8; 4096]).unwrap();
        let error = mount_image(&image, false).err().unwrap().0;
        assert!(
            error.contains("cannot mount: the disk has 4096 bytes"),
            "{error}"
        );
        let error = mount_image(&dir.join("absent.img"), false).err().unwrap().0;
        assert!(error.contains("no volume image at"), "{error}");
        // Read-only: a write is refused by the disk, not done.
        let image = dir.join("v.img");
        create_image(&image, 1, None).unwrap();
        let before = std::fs::read(&image).unwrap();
        let volume = mount_image(&image, false).unwrap();
        assert!(volume.mkdir("x").is_err());
        assert_eq!(std::fs::read(&image).unwrap(), before);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
