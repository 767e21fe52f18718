//! What the WASI layer needs from the system it runs on.
//!
//! Everything a program can observe outside its own memory and the
//! read-only tree goes through [`System`]: the console, the clocks, sleeping,
//! entropy, sockets and writable directories. The host implements it with
//! std (`StdSystem`); inside the OS a guest implements it over its
//! capability ring (Console, Timer, Entropy, Network, Directory and File).
//! The WASI code above it is the same in both.

use alloc::string::String;
use alloc::vec::Vec;

use crate::errno::Errno;

/// A console output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The clocks a program can read. WASI's process and thread CPU-time clocks
/// are answered from `Monotonic` (time since the instance started), since a
/// single-threaded instance has no better notion of its own CPU time here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Clock {
    /// Nanoseconds since 1970-01-01 UTC.
    Realtime,
    /// Nanoseconds from an arbitrary fixed origin; never goes backwards.
    Monotonic,
}

/// A socket the system holds for the instance (a listener or a stream),
/// named by a number of the system's choosing.
pub type SocketHandle = u32;

/// A directory the system holds for the instance (a preopen, or one
/// [`System::open`] returned), named by a number of the system's choosing.
pub type DirectoryHandle = u32;

/// An open file the system holds for the instance.
pub type FileHandle = u32;

/// Most bytes one [`System::read_at`], [`System::write_at`] or
/// [`System::append`] is given: the WASI layer splits larger reads and
/// writes, so that a ring-backed system carries each call in one message
/// (64 KiB, of which this leaves 4 KiB for the framing).
pub const MAX_FILE_IO: usize = 60 * 1024;

/// What a directory entry is, as the system reports it (storage has no
/// links, devices or times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub directory: bool,
    /// Bytes in a file (0 for a directory).
    pub size: u64,
}

/// How [`System::open`] opens a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Make a file that is not there.
    pub create: bool,
    /// With `create`: fail with `EEXIST` if it is there.
    pub exclusive: bool,
    /// Cut the file to nothing.
    pub truncate: bool,
    /// Only a directory will do (`ENOTDIR` for a file).
    pub directory: bool,
}

/// What [`System::open`] opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    File(FileHandle),
    Directory(DirectoryHandle),
}

/// One entry of [`System::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub metadata: Metadata,
}

/// What a socket is ready for, as [`System::poll`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Bytes, the end of the stream, a connection to accept, or an error.
    pub read: bool,
    /// Room to write, or an error.
    pub write: bool,
}

/// The system capabilities of one instance.
///
/// Methods take `&mut self` because a ring-backed implementation submits a
/// call and waits for its completion. Nothing here may panic on any
/// argument; failures are WASI errors that reach the program.
pub trait System {
    /// Writes all of `bytes` to `stream`. An error reaches the program as
    /// the result of its `fd_write`.
    fn write_console(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Errno>;

    /// Reads console input into `buf`; `Ok(0)` is end of input. Blocks until
    /// some input is there. The default has no input at all.
    fn read_console(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        let _ = buf;
        Ok(0)
    }

    /// The current time on `clock`, in nanoseconds.
    fn now_nanos(&mut self, clock: Clock) -> u64;

    /// The resolution of `clock`, in nanoseconds (at least 1).
    fn resolution_nanos(&mut self, clock: Clock) -> u64 {
        let _ = clock;
        1
    }

    /// Sleeps for at least `nanos` nanoseconds. `poll_oneoff` relies on
    /// "at least": when it returns, the earliest clock subscription counts
    /// as expired.
    fn sleep_nanos(&mut self, nanos: u64);

    /// Fills `out` with cryptographically secure random bytes.
    fn random(&mut self, out: &mut [u8]) -> Result<(), Errno>;

    /// Gives up the CPU for a moment (`sched_yield`). The default does
    /// nothing, which is what a single-threaded instance may do.
    fn yield_now(&mut self) {}

    // Sockets: none of these waits. `Ok(None)` means not now (EAGAIN).
    // The defaults are a system without a network.

    /// A connection waiting on `listener`, as a new stream socket.
    fn accept(&mut self, listener: SocketHandle) -> Result<Option<SocketHandle>, Errno> {
        let _ = listener;
        Err(Errno::NotSock)
    }

    /// Bytes received on `stream` into `buf`; `Some(0)` at the end.
    fn receive(&mut self, stream: SocketHandle, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        let _ = (stream, buf);
        Err(Errno::NotSock)
    }

    /// Queues what fits of `bytes` on `stream`; how much (never 0 for
    /// non-empty `bytes`: that is `None`).
    fn send(&mut self, stream: SocketHandle, bytes: &[u8]) -> Result<Option<usize>, Errno> {
        let _ = (stream, bytes);
        Err(Errno::NotSock)
    }

    /// No more sending on `stream`.
    fn shutdown(&mut self, stream: SocketHandle) -> Result<(), Errno> {
        let _ = stream;
        Err(Errno::NotSock)
    }

    /// The instance closed `socket`.
    fn close(&mut self, socket: SocketHandle) {
        let _ = socket;
    }

    /// Waits until one of `sockets` is ready as asked (`(socket, read,
    /// write)`) or `timeout_nanos` has passed (`None`: no limit; `Some(0)`:
    /// do not wait); then what each is ready for, in order (all not ready
    /// when the time ran out).
    fn poll(
        &mut self,
        sockets: &[(SocketHandle, bool, bool)],
        timeout_nanos: Option<u64>,
    ) -> Result<Vec<Readiness>, Errno> {
        let _ = (sockets, timeout_nanos);
        Err(Errno::NotSock)
    }

    // Directories and files (the preopens `WasiBuilder::preopen_directory`
    // names, and what opening in them returns). Every `path` is relative
    // to `dir` and plain: components joined by "/", none of them empty,
    // "." or ".."; "." alone is `dir` itself. The WASI layer resolves
    // everything else (and refuses what would leave `dir`), so a system
    // only joins. Errors are the errnos the program sees: `ENOENT`,
    // `EEXIST`, `ENOTDIR`, `EISDIR`, `ENOTEMPTY`, `ENOSPC`, `EFBIG`,
    // `ENAMETOOLONG`, `EROFS`, `EINVAL`, `EIO`. The defaults are a system
    // without any (it is never given a handle).

    /// Opens what `path` names: a directory when it is one (or
    /// `options.directory` asks for one), else a file.
    fn open(
        &mut self,
        dir: DirectoryHandle,
        path: &str,
        options: OpenOptions,
    ) -> Result<Opened, Errno> {
        let _ = (dir, path, options);
        Err(Errno::NoSys)
    }

    /// Makes a directory (`EEXIST` if the name is taken).
    fn mkdir(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        let _ = (dir, path);
        Err(Errno::NoSys)
    }

    /// Removes a file, or a directory that is empty (`ENOTEMPTY`).
    fn remove(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        let _ = (dir, path);
        Err(Errno::NoSys)
    }

    /// Moves `from` in `dir` to `to` in `to_dir` in one step, replacing a
    /// file at `to`.
    fn rename(
        &mut self,
        dir: DirectoryHandle,
        from: &str,
        to_dir: DirectoryHandle,
        to: &str,
    ) -> Result<(), Errno> {
        let _ = (dir, from, to_dir, to);
        Err(Errno::NoSys)
    }

    /// Up to `max` entries of `dir` after the first `skip`, in an order
    /// that stays the same while the directory does ("." and ".." are not
    /// entries); fewer than `max` means the end.
    fn list(&mut self, dir: DirectoryHandle, skip: u64, max: u32) -> Result<Vec<DirEntry>, Errno> {
        let _ = (dir, skip, max);
        Err(Errno::NoSys)
    }

    fn stat(&mut self, dir: DirectoryHandle, path: &str) -> Result<Metadata, Errno> {
        let _ = (dir, path);
        Err(Errno::NoSys)
    }

    /// Reads from `offset` into `buf` (at most [`MAX_FILE_IO`] bytes);
    /// how many, fewer only at the end of the file.
    fn read_at(&mut self, file: FileHandle, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let _ = (file, offset, buf);
        Err(Errno::NoSys)
    }

    /// Writes all of `bytes` (at most [`MAX_FILE_IO`]) at `offset`; a gap
    /// before it reads as zeros.
    fn write_at(&mut self, file: FileHandle, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        let _ = (file, offset, bytes);
        Err(Errno::NoSys)
    }

    /// Writes all of `bytes` (at most [`MAX_FILE_IO`]) at the end; the
    /// size after.
    fn append(&mut self, file: FileHandle, bytes: &[u8]) -> Result<u64, Errno> {
        let _ = (file, bytes);
        Err(Errno::NoSys)
    }

    fn file_size(&mut self, file: FileHandle) -> Result<u64, Errno> {
        let _ = file;
        Err(Errno::NoSys)
    }

    /// Cuts the file to `size`, or extends it with zeros.
    fn truncate(&mut self, file: FileHandle, size: u64) -> Result<(), Errno> {
        let _ = (file, size);
        Err(Errno::NoSys)
    }

    /// Makes everything written to the file durable.
    fn sync_file(&mut self, file: FileHandle) -> Result<(), Errno> {
        let _ = file;
        Err(Errno::NoSys)
    }

    /// The instance closed `file`.
    fn close_file(&mut self, file: FileHandle) {
        let _ = file;
    }

    /// The instance closed `dir`.
    fn close_directory(&mut self, dir: DirectoryHandle) {
        let _ = dir;
    }
}
