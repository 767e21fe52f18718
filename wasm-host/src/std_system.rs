//! The host side (feature `std`): a [`System`] over the process's console,
//! clocks, `/dev/urandom` and host directories, and a read-only tree built
//! from a host directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use std::vec::Vec;

use crate::archive::ArchiveBuilder;
use crate::errno::Errno;
use crate::system::{
    Clock, DirEntry, DirectoryHandle, FileHandle, Metadata, OpenOptions, Opened, Stream, System,
};

/// Where console output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// To this process's stdout and stderr.
    Inherit,
    /// Into buffers, read back with [`StdSystem::stdout`] and
    /// [`StdSystem::stderr`] (console input is then empty).
    Capture,
}

/// [`System`] on a std host: real clocks and sleep, entropy from
/// `/dev/urandom`, the console inherited or captured, and host
/// directories lent to the program ([`StdSystem::host_directory`]).
pub struct StdSystem {
    output: Output,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    origin: Instant,
    urandom: Option<fs::File>,
    sleeps: u64,
    /// What each directory and file handle names (storage's meaning: a
    /// path, not an open file).
    handles: BTreeMap<u32, Held>,
    next_handle: u32,
}

enum Held {
    Directory(PathBuf),
    File(PathBuf),
}

impl StdSystem {
    /// Console inherited from this process.
    pub fn new() -> StdSystem {
        StdSystem::with_output(Output::Inherit)
    }

    /// Console captured in memory.
    pub fn capturing() -> StdSystem {
        StdSystem::with_output(Output::Capture)
    }

    pub fn with_output(output: Output) -> StdSystem {
        StdSystem {
            output,
            stdout: Vec::new(),
            stderr: Vec::new(),
            origin: Instant::now(),
            urandom: None,
            sleeps: 0,
            handles: BTreeMap::new(),
            next_handle: 1,
        }
    }

    /// Lends the program the host directory `path`, writable, as a handle
    /// to preopen (`WasiBuilder::preopen_directory`). The directory is
    /// trusted: the WASI layer keeps the program's paths inside it, but
    /// symbolic links already in it are followed wherever they lead.
    pub fn host_directory(&mut self, path: impl Into<PathBuf>) -> io::Result<DirectoryHandle> {
        let path = path.into();
        if !fs::metadata(&path)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                std::format!("{} is not a directory", path.display()),
            ));
        }
        Ok(self.hold(Held::Directory(path)))
    }

    fn hold(&mut self, held: Held) -> u32 {
        let handle = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        self.handles.insert(handle, held);
        handle
    }

    /// The host path `path` names in `dir` (plain, as the WASI layer
    /// gives it; anything else is refused rather than trusted).
    fn host_path(&self, dir: DirectoryHandle, path: &str) -> Result<PathBuf, Errno> {
        let Some(Held::Directory(base)) = self.handles.get(&dir) else {
            return Err(Errno::BadF);
        };
        if path == "." {
            return Ok(base.clone());
        }
        for name in path.split('/') {
            match name {
                ".." => return Err(Errno::NotCapable),
                "" | "." => return Err(Errno::Inval),
                _ if name.contains('\0') => return Err(Errno::Inval),
                _ => {}
            }
        }
        Ok(base.join(path))
    }

    fn file_path(&self, file: FileHandle) -> Result<&Path, Errno> {
        match self.handles.get(&file) {
            Some(Held::File(path)) => Ok(path),
            _ => Err(Errno::BadF),
        }
    }

    /// The file, opened for writing (never created: the handle names a
    /// file that was there).
    fn file_for_writing(&self, file: FileHandle, append: bool) -> Result<fs::File, Errno> {
        let path = self.file_path(file)?;
        fs::OpenOptions::new()
            .write(true)
            .append(append)
            .open(path)
            .map_err(|error| file_errno(&error))
    }

    /// Captured standard output (empty when inherited).
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// How many times the program slept (`poll_oneoff` on a clock).
    pub fn sleeps(&self) -> u64 {
        self.sleeps
    }
}

impl Default for StdSystem {
    fn default() -> StdSystem {
        StdSystem::new()
    }
}

/// The errno for a failed file operation.
fn file_errno(error: &io::Error) -> Errno {
    use io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => Errno::NoEnt,
        ErrorKind::AlreadyExists => Errno::Exist,
        ErrorKind::NotADirectory => Errno::NotDir,
        ErrorKind::IsADirectory => Errno::IsDir,
        ErrorKind::DirectoryNotEmpty => Errno::NotEmpty,
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Errno::NoSpc,
        ErrorKind::FileTooLarge => Errno::FBig,
        ErrorKind::ReadOnlyFilesystem => Errno::RoFs,
        ErrorKind::InvalidFilename => Errno::NameTooLong,
        ErrorKind::PermissionDenied => Errno::Acces,
        ErrorKind::InvalidInput => Errno::Inval,
        ErrorKind::CrossesDevices => Errno::XDev,
        _ => io_errno(error),
    }
}

fn metadata_of(meta: &fs::Metadata) -> Metadata {
    Metadata {
        directory: meta.is_dir(),
        size: if meta.is_dir() { 0 } else { meta.len() },
    }
}

fn io_errno(error: &io::Error) -> Errno {
    match error.kind() {
        io::ErrorKind::BrokenPipe => Errno::Pipe,
        io::ErrorKind::WouldBlock => Errno::Again,
        io::ErrorKind::Interrupted => Errno::Intr,
        _ => Errno::Io,
    }
}

impl System for StdSystem {
    fn write_console(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Errno> {
        match (self.output, stream) {
            (Output::Capture, Stream::Stdout) => self.stdout.extend_from_slice(bytes),
            (Output::Capture, Stream::Stderr) => self.stderr.extend_from_slice(bytes),
            (Output::Inherit, Stream::Stdout) => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)
                    .and_then(|()| out.flush())
                    .map_err(|error| io_errno(&error))?;
            }
            (Output::Inherit, Stream::Stderr) => io::stderr()
                .write_all(bytes)
                .map_err(|error| io_errno(&error))?,
        }
        Ok(())
    }

    fn read_console(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self.output {
            Output::Capture => Ok(0),
            Output::Inherit => io::stdin().read(buf).map_err(|error| io_errno(&error)),
        }
    }

    fn now_nanos(&mut self, clock: Clock) -> u64 {
        match clock {
            Clock::Realtime => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
                }),
            // Never 0, so no program mistakes the first reading for "unset".
            Clock::Monotonic => u64::try_from(self.origin.elapsed().as_nanos())
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        }
    }

    fn sleep_nanos(&mut self, nanos: u64) {
        self.sleeps += 1;
        std::thread::sleep(std::time::Duration::from_nanos(nanos));
    }

    fn random(&mut self, out: &mut [u8]) -> Result<(), Errno> {
        if self.urandom.is_none() {
            self.urandom = Some(fs::File::open("/dev/urandom").map_err(|error| io_errno(&error))?);
        }
        match &mut self.urandom {
            Some(file) => file.read_exact(out).map_err(|error| io_errno(&error)),
            None => Err(Errno::Io),
        }
    }

    fn yield_now(&mut self) {
        std::thread::yield_now();
    }

    fn open(
        &mut self,
        dir: DirectoryHandle,
        path: &str,
        options: OpenOptions,
    ) -> Result<Opened, Errno> {
        let full = self.host_path(dir, path)?;
        let found = fs::metadata(&full);
        if let Ok(meta) = &found
            && meta.is_dir()
        {
            if options.create && options.exclusive {
                return Err(Errno::Exist);
            }
            if options.create || options.truncate {
                return Err(Errno::IsDir);
            }
            return Ok(Opened::Directory(self.hold(Held::Directory(full))));
        }
        if options.directory {
            return Err(match found {
                Ok(_) => Errno::NotDir,
                Err(error) => file_errno(&error),
            });
        }
        let changes = options.create || options.truncate;
        fs::OpenOptions::new()
            .read(!changes)
            .write(changes)
            .create(options.create && !options.exclusive)
            .create_new(options.create && options.exclusive)
            .truncate(options.truncate)
            .open(&full)
            .map_err(|error| file_errno(&error))?;
        Ok(Opened::File(self.hold(Held::File(full))))
    }

    fn mkdir(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        fs::create_dir(self.host_path(dir, path)?).map_err(|error| file_errno(&error))
    }

    fn remove(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        let full = self.host_path(dir, path)?;
        let meta = fs::symlink_metadata(&full).map_err(|error| file_errno(&error))?;
        if meta.is_dir() {
            fs::remove_dir(&full)
        } else {
            fs::remove_file(&full)
        }
        .map_err(|error| file_errno(&error))
    }

    fn rename(
        &mut self,
        dir: DirectoryHandle,
        from: &str,
        to_dir: DirectoryHandle,
        to: &str,
    ) -> Result<(), Errno> {
        let from = self.host_path(dir, from)?;
        let to = self.host_path(to_dir, to)?;
        fs::rename(from, to).map_err(|error| file_errno(&error))
    }

    fn list(&mut self, dir: DirectoryHandle, skip: u64, max: u32) -> Result<Vec<DirEntry>, Errno> {
        let full = self.host_path(dir, ".")?;
        let mut entries = Vec::new();
        for entry in fs::read_dir(&full).map_err(|error| file_errno(&error))? {
            let entry = entry.map_err(|error| file_errno(&error))?;
            // Following links, as stat does.
            let Ok(meta) = fs::metadata(entry.path()) else {
                continue;
            };
            entries.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                metadata: metadata_of(&meta),
            });
        }
        // The host's order is not stable between calls; names are.
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        Ok(entries.into_iter().skip(skip).take(max as usize).collect())
    }

    fn stat(&mut self, dir: DirectoryHandle, path: &str) -> Result<Metadata, Errno> {
        let full = self.host_path(dir, path)?;
        fs::metadata(full)
            .map(|meta| metadata_of(&meta))
            .map_err(|error| file_errno(&error))
    }

    fn read_at(&mut self, file: FileHandle, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut opened =
            fs::File::open(self.file_path(file)?).map_err(|error| file_errno(&error))?;
        opened
            .seek(SeekFrom::Start(offset))
            .map_err(|error| file_errno(&error))?;
        let mut filled = 0;
        while filled < buf.len() {
            match opened.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(file_errno(&error)),
            }
        }
        Ok(filled)
    }

    fn write_at(&mut self, file: FileHandle, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        let mut opened = self.file_for_writing(file, false)?;
        opened
            .seek(SeekFrom::Start(offset))
            .and_then(|_| opened.write_all(bytes))
            .map_err(|error| file_errno(&error))
    }

    fn append(&mut self, file: FileHandle, bytes: &[u8]) -> Result<u64, Errno> {
        let mut opened = self.file_for_writing(file, true)?;
        opened
            .write_all(bytes)
            .and_then(|()| opened.metadata())
            .map(|meta| meta.len())
            .map_err(|error| file_errno(&error))
    }

    fn file_size(&mut self, file: FileHandle) -> Result<u64, Errno> {
        let meta = fs::metadata(self.file_path(file)?).map_err(|error| file_errno(&error))?;
        if meta.is_dir() {
            return Err(Errno::IsDir);
        }
        Ok(meta.len())
    }

    fn truncate(&mut self, file: FileHandle, size: u64) -> Result<(), Errno> {
        self.file_for_writing(file, false)?
            .set_len(size)
            .map_err(|error| file_errno(&error))
    }

    fn sync_file(&mut self, file: FileHandle) -> Result<(), Errno> {
        fs::File::open(self.file_path(file)?)
            .and_then(|opened| opened.sync_all())
            .map_err(|error| file_errno(&error))
    }

    fn close_file(&mut self, file: FileHandle) {
        if matches!(self.handles.get(&file), Some(Held::File(_))) {
            self.handles.remove(&file);
        }
    }

    fn close_directory(&mut self, dir: DirectoryHandle) {
        if matches!(self.handles.get(&dir), Some(Held::Directory(_))) {
            self.handles.remove(&dir);
        }
    }
}

/// A ustar image of the host directory `root`: every directory, regular
/// file and symbolic link under it, in sorted order, with modification
/// times (or every time `fixed_mtime`, for reproducible images). Anything
/// else (devices, sockets, FIFOs) or a name that is not UTF-8 is an error
/// naming the path.
pub fn archive_from_dir(root: &Path, fixed_mtime: Option<u64>) -> io::Result<Vec<u8>> {
    let mut builder = ArchiveBuilder::new();
    let root_meta = fs::metadata(root)?;
    if !root_meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            std::format!("{} is not a directory", root.display()),
        ));
    }
    let mtime = |meta: &fs::Metadata| fixed_mtime.unwrap_or_else(|| modified(meta));
    builder.directory(".", mtime(&root_meta)).map_err(invalid)?;
    add_dir(&mut builder, root, "", &mtime)?;
    Ok(builder.finish())
}

fn add_dir(
    builder: &mut ArchiveBuilder,
    dir: &Path,
    prefix: &str,
    mtime: &dyn Fn(&fs::Metadata) -> u64,
) -> io::Result<()> {
    let mut names: Vec<(String, std::path::PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|name| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                std::format!("{}: the name {name:?} is not UTF-8", dir.display()),
            )
        })?;
        names.push((name, entry.path()));
    }
    names.sort();
    for (name, path) in names {
        let archived = if prefix.is_empty() {
            name
        } else {
            std::format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&path)?;
            let target = target.to_str().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    std::format!("{}: link target is not UTF-8", path.display()),
                )
            })?;
            builder
                .symlink(&archived, target, mtime(&meta))
                .map_err(invalid)?;
        } else if kind.is_dir() {
            builder
                .directory(&archived, mtime(&meta))
                .map_err(invalid)?;
            add_dir(builder, &path, &archived, mtime)?;
        } else if kind.is_file() {
            let contents = fs::read(&path)?;
            builder
                .file(&archived, &contents, mtime(&meta))
                .map_err(invalid)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                std::format!("{}: not a file, directory or symbolic link", path.display()),
            ));
        }
    }
    Ok(())
}

fn modified(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_secs())
}

fn invalid(error: crate::archive::BuildError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory under the system's temporary one.
    fn scratch(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(std::format!("wasm-host-std-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        path
    }

    #[test]
    fn a_host_directory_serves_the_file_methods() {
        let root = scratch("files");
        let mut system = StdSystem::capturing();
        let dir = system.host_directory(&root).unwrap();
        let create = OpenOptions {
            create: true,
            ..OpenOptions::default()
        };
        let Ok(Opened::File(file)) = system.open(dir, "f", create) else {
            panic!("f was not created");
        };
        system.write_at(file, 2, b"xy").unwrap();
        assert_eq!(system.append(file, b"z"), Ok(5));
        assert_eq!(fs::read(root.join("f")).unwrap(), b"\0\0xyz");
        let mut buf = [0u8; 8];
        assert_eq!(system.read_at(file, 3, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"yz");
        system.truncate(file, 1).unwrap();
        assert_eq!(system.file_size(file), Ok(1));
        system.sync_file(file).unwrap();
        let exclusive = OpenOptions {
            exclusive: true,
            ..create
        };
        assert_eq!(system.open(dir, "f", exclusive), Err(Errno::Exist));
        system.mkdir(dir, "d").unwrap();
        assert_eq!(system.mkdir(dir, "d"), Err(Errno::Exist));
        assert!(matches!(
            system.open(dir, "d", OpenOptions::default()),
            Ok(Opened::Directory(_))
        ));
        assert_eq!(
            system.open(
                dir,
                "f",
                OpenOptions {
                    directory: true,
                    ..OpenOptions::default()
                }
            ),
            Err(Errno::NotDir)
        );
        system.rename(dir, "f", dir, "d/g").unwrap();
        assert_eq!(system.remove(dir, "d"), Err(Errno::NotEmpty));
        let names: Vec<String> = system
            .list(dir, 0, 10)
            .unwrap()
            .into_iter()
            .map(|entry| entry.name)
            .collect();
        assert_eq!(names, ["d"]);
        assert_eq!(
            system.stat(dir, "d/g"),
            Ok(Metadata {
                directory: false,
                size: 1
            })
        );
        assert_eq!(system.stat(dir, "../x"), Err(Errno::NotCapable));
        system.remove(dir, "d/g").unwrap();
        system.remove(dir, "d").unwrap();
        assert_eq!(system.stat(dir, "d"), Err(Errno::NoEnt));
        assert!(system.host_directory(root.join("missing")).is_err());
        fs::remove_dir_all(root).unwrap();
    }
}
