//! The host side (feature `std`): a [`System`] over the process's console,
//! clocks and `/dev/urandom`, and a read-only tree built from a host
//! directory.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::string::{String, ToString};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use std::vec::Vec;

use crate::archive::ArchiveBuilder;
use crate::errno::Errno;
use crate::system::{Clock, Stream, System};

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
/// `/dev/urandom`, the console inherited or captured.
pub struct StdSystem {
    output: Output,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    origin: Instant,
    urandom: Option<fs::File>,
    sleeps: u64,
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
        }
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
