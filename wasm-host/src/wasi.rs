//! Every `wasi_snapshot_preview1` import, as a method of [`Wasi`] over the
//! program's memory.
//!
//! The methods take the raw arguments the wasm import receives (pointers and
//! lengths as `u32`) and return `Ok(())` or the [`Errno`] the program sees;
//! the wasmi glue in [`crate::host`] only converts. So the whole layer is
//! testable without wasm, and an embedder with another engine could reuse it.
//!
//! What an instance has:
//! - fds 0, 1, 2: console input and the two output streams, through
//!   [`System`];
//! - fds 3 and up: the preopened listening sockets, then the preopened
//!   directories (read-only trees, and directories the [`System`] holds),
//!   in the order given, then whatever `path_open` and `sock_accept` open.
//!
//! What it does not have answers with an errno: an fd it does not hold is
//! `EBADF`; a right its fd lacks is `ENOTCAPABLE`; changing a tree is
//! `EROFS` (after the checks a writable tree would make first: `ENOENT`,
//! `EEXIST`, `ENOTDIR`, `EISDIR`); `proc_raise` is `ENOSYS`. Directories
//! the System holds are writable (module `storage`).
//!
//! Guest memory is only touched through [`GuestMemory`]: out-of-bounds is
//! `EFAULT`, a misaligned record `EINVAL`. Arrays the guest sizes are
//! bounded ([`MAX_IOVECS`], [`MAX_PATH`]) or walked in place
//! (`poll_oneoff`), so a call never allocates in proportion to a number the
//! guest chose.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::abi::{
    self, clock, eventtype, fdflags, filetype, fstflags, layout, oflags, rights, whence,
};
use crate::errno::Errno;
use crate::memory::{GuestMemory, Record};
use crate::system::{Clock, DirectoryHandle, FileHandle, Readiness, SocketHandle, Stream, System};
use crate::tree::{NodeId, NodeKind, Tree};

mod storage;

use storage::SystemDirectory;

/// Most iovecs one read or write takes (POSIX's `IOV_MAX`); more is `EINVAL`.
pub const MAX_IOVECS: u32 = 1024;

/// Longest path argument; longer is `ENAMETOOLONG`.
pub const MAX_PATH: u32 = crate::archive::MAX_PATH as u32;

/// Most subscriptions one `poll_oneoff` takes; more is `EINVAL`. Go's
/// poller never has more than 65535.
pub const MAX_SUBSCRIPTIONS: u32 = 1 << 16;

/// Default for [`WasiBuilder::max_open_fds`].
pub const DEFAULT_MAX_OPEN_FDS: usize = 1024;

/// A preopened directory and the name the program sees it under.
struct Mount {
    name: String,
    kind: MountKind,
}

enum MountKind {
    /// A read-only tree.
    Tree(Tree),
    /// A directory the [`System`] holds; `writable` is false on a
    /// read-only mount, whose changes are refused here.
    System {
        root: DirectoryHandle,
        writable: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum FdKind {
    ConsoleIn,
    ConsoleOut(Stream),
    Directory {
        mount: usize,
        node: NodeId,
        preopen: bool,
    },
    File {
        mount: usize,
        node: NodeId,
        position: u64,
    },
    /// A listener or a stream the [`System`] holds.
    Socket(SocketHandle),
    /// A directory the [`System`] holds: a preopen, or opened in one.
    SystemDirectory(SystemDirectory),
    /// A file the [`System`] holds. `ino` stands in for an inode number
    /// (storage has none): a hash of the file's path in its mount.
    SystemFile {
        mount: usize,
        handle: FileHandle,
        ino: u64,
        position: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Fd {
    kind: FdKind,
    rights_base: u64,
    rights_inheriting: u64,
    flags: u16,
}

/// A file's metadata as WASI's `filestat` record carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Filestat {
    dev: u64,
    ino: u64,
    filetype: u8,
    nlink: u64,
    size: u64,
    time: u64,
}

/// Why a [`WasiBuilder`] refused its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// An argument or environment entry with a NUL byte, which the
    /// NUL-terminated WASI encoding cannot carry.
    Nul(String),
    /// An environment variable name that is empty or contains '='.
    EnvName(String),
    /// A preopen name that is empty or contains NUL.
    PreopenName(String),
    /// More preopens than the fd limit leaves room for.
    TooManyPreopens,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Nul(text) => write!(f, "{text:?} contains a NUL byte"),
            ConfigError::EnvName(name) => write!(f, "bad environment variable name {name:?}"),
            ConfigError::PreopenName(name) => write!(f, "bad preopen name {name:?}"),
            ConfigError::TooManyPreopens => write!(f, "more preopens than open fds allowed"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// Sets up the [`Wasi`] state of one instance.
pub struct WasiBuilder<S> {
    system: S,
    args: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<Mount>,
    sockets: Vec<SocketHandle>,
    max_open_fds: usize,
}

impl<S: System> WasiBuilder<S> {
    pub fn new(system: S) -> WasiBuilder<S> {
        WasiBuilder {
            system,
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            sockets: Vec::new(),
            max_open_fds: DEFAULT_MAX_OPEN_FDS,
        }
    }

    /// Preopens a listening socket the system holds: the first is fd 3,
    /// the next 4, ..., the preopened trees after them. Each is
    /// non-blocking, as Go's `net.FileListener(os.NewFile(3, ""))` expects.
    pub fn preopen_socket(mut self, listener: SocketHandle) -> Self {
        self.sockets.push(listener);
        self
    }

    /// Appends one argument; the first is the program's name.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds `key=value` to the environment, in order.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Preopens `tree` under `name` (Go treats the first preopen as "/" if
    /// it is named "/", and resolves paths by the longest matching name).
    pub fn preopen(mut self, name: impl Into<String>, tree: Tree) -> Self {
        self.mounts.push(Mount {
            name: name.into(),
            kind: MountKind::Tree(tree),
        });
        self
    }

    /// Preopens the directory the system holds as `root` under `name`, in
    /// order with the trees. Unless `writable`, every change is refused
    /// with `EROFS` (after the checks a writable one would make first);
    /// closing its fd closes `root`.
    pub fn preopen_directory(
        mut self,
        name: impl Into<String>,
        root: DirectoryHandle,
        writable: bool,
    ) -> Self {
        self.mounts.push(Mount {
            name: name.into(),
            kind: MountKind::System { root, writable },
        });
        self
    }

    /// Fds open at once, the console and preopens included; beyond that
    /// `path_open` is `EMFILE`.
    pub fn max_open_fds(mut self, max: usize) -> Self {
        self.max_open_fds = max;
        self
    }

    pub fn build(mut self) -> Result<Wasi<S>, ConfigError> {
        for text in self
            .args
            .iter()
            .chain(self.env.iter().map(|(_, value)| value))
        {
            if text.contains('\0') {
                return Err(ConfigError::Nul(text.clone()));
            }
        }
        for (key, _) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(ConfigError::EnvName(key.clone()));
            }
        }
        for mount in &self.mounts {
            if mount.name.is_empty() || mount.name.contains('\0') {
                return Err(ConfigError::PreopenName(mount.name.clone()));
            }
        }
        if self.mounts.len() + self.sockets.len() + 3 > self.max_open_fds.max(3) {
            return Err(ConfigError::TooManyPreopens);
        }
        let console = |kind, rights_base| Fd {
            kind,
            rights_base,
            rights_inheriting: 0,
            flags: 0,
        };
        let mut fds = BTreeMap::new();
        fds.insert(
            0,
            console(FdKind::ConsoleIn, rights::CONSOLE | rights::FD_READ),
        );
        fds.insert(
            1,
            console(
                FdKind::ConsoleOut(Stream::Stdout),
                rights::CONSOLE | rights::FD_WRITE,
            ),
        );
        fds.insert(
            2,
            console(
                FdKind::ConsoleOut(Stream::Stderr),
                rights::CONSOLE | rights::FD_WRITE,
            ),
        );
        for (index, &socket) in self.sockets.iter().enumerate() {
            fds.insert(3 + index as u32, socket_fd(socket, fdflags::NONBLOCK));
        }
        let first_mount = 3 + self.sockets.len() as u32;
        for (index, mount) in self.mounts.iter().enumerate() {
            let kind = match mount.kind {
                MountKind::Tree(_) => FdKind::Directory {
                    mount: index,
                    node: Tree::ROOT,
                    preopen: true,
                },
                MountKind::System { root, .. } => {
                    FdKind::SystemDirectory(SystemDirectory::preopen(index, root))
                }
            };
            let fd = Fd {
                kind,
                rights_base: rights::ALL,
                rights_inheriting: rights::ALL,
                flags: 0,
            };
            fds.insert(first_mount + index as u32, fd);
        }
        let encode = |strings: Vec<String>| -> Vec<u8> {
            let mut out = Vec::new();
            for text in strings {
                out.extend_from_slice(text.as_bytes());
                out.push(0);
            }
            out
        };
        let env_count = self.env.len() as u32;
        let env = self
            .env
            .drain(..)
            .map(|(key, value)| alloc::format!("{key}={value}"))
            .collect();
        let started = self.system.now_nanos(Clock::Monotonic);
        Ok(Wasi {
            arg_count: self.args.len() as u32,
            args: encode(self.args),
            env_count,
            env: encode(env),
            system: self.system,
            mounts: self.mounts,
            fds,
            max_open_fds: self.max_open_fds,
            exit_code: None,
            started,
        })
    }
}

/// The WASI state of one instance: its console and clocks (the
/// [`System`]), arguments, environment, preopened trees and open fds.
pub struct Wasi<S> {
    system: S,
    /// NUL-terminated strings, back to back, as `args_get` writes them.
    args: Vec<u8>,
    arg_count: u32,
    env: Vec<u8>,
    env_count: u32,
    mounts: Vec<Mount>,
    fds: BTreeMap<u32, Fd>,
    max_open_fds: usize,
    exit_code: Option<u32>,
    /// Monotonic time at start, the zero of the CPU-time clocks.
    started: u64,
}

/// The result of every import: success or the errno the program sees.
pub type WasiResult = Result<(), Errno>;

impl<S> Wasi<S> {
    pub fn system(&self) -> &S {
        &self.system
    }

    pub fn system_mut(&mut self) -> &mut S {
        &mut self.system
    }

    pub fn into_system(self) -> S {
        self.system
    }

    /// The code `proc_exit` was called with, if it was.
    pub fn exit_code(&self) -> Option<u32> {
        self.exit_code
    }

    /// Records `proc_exit`; the host then stops the instance.
    pub fn proc_exit(&mut self, code: u32) {
        self.exit_code = Some(code);
    }

    /// Number of open fds, the console included.
    pub fn open_fds(&self) -> usize {
        self.fds.len()
    }
}

impl<S: System> Wasi<S> {
    pub fn builder(system: S) -> WasiBuilder<S> {
        WasiBuilder::new(system)
    }

    // ---- helpers -------------------------------------------------------

    fn fd(&self, fd: u32) -> Result<Fd, Errno> {
        self.fds.get(&fd).copied().ok_or(Errno::BadF)
    }

    /// The fd, if it holds every right in `needed`.
    fn fd_with(&self, fd: u32, needed: u64) -> Result<Fd, Errno> {
        let entry = self.fd(fd)?;
        if entry.rights_base & needed != needed {
            return Err(Errno::NotCapable);
        }
        Ok(entry)
    }

    /// A directory fd holding `needed`: its tree, node and mount index.
    fn dir_fd(&self, fd: u32, needed: u64) -> Result<(Tree, NodeId, usize), Errno> {
        let entry = self.fd(fd)?;
        let FdKind::Directory { mount, node, .. } = entry.kind else {
            return Err(Errno::NotDir);
        };
        if entry.rights_base & needed != needed {
            return Err(Errno::NotCapable);
        }
        Ok((self.tree(mount)?, node, mount))
    }

    fn tree(&self, mount: usize) -> Result<Tree, Errno> {
        match self.mounts.get(mount).map(|mount| &mount.kind) {
            Some(MountKind::Tree(tree)) => Ok(tree.clone()),
            _ => Err(Errno::BadF),
        }
    }

    fn node_stat(&self, mount: usize, node: NodeId) -> Result<Filestat, Errno> {
        let tree = self.tree(mount)?;
        let entry = tree.node(node).ok_or(Errno::BadF)?;
        Ok(Filestat {
            dev: mount as u64 + 1,
            ino: node.inode(),
            filetype: node_filetype(&entry.kind),
            nlink: entry.links,
            size: entry.size(),
            time: entry.mtime_nanos,
        })
    }

    fn fd_stat(&mut self, entry: &Fd) -> Result<Filestat, Errno> {
        match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) => Ok(Filestat {
                filetype: filetype::CHARACTER_DEVICE,
                nlink: 1,
                ..Filestat::default()
            }),
            FdKind::Directory { mount, node, .. } | FdKind::File { mount, node, .. } => {
                self.node_stat(mount, node)
            }
            FdKind::Socket(_) => Ok(Filestat {
                filetype: filetype::SOCKET_STREAM,
                nlink: 1,
                ..Filestat::default()
            }),
            FdKind::SystemDirectory(dir) => Ok(storage::directory_stat(dir.mount, dir.ino)),
            FdKind::SystemFile {
                mount, handle, ino, ..
            } => Ok(storage::file_stat(
                mount,
                ino,
                self.system.file_size(handle)?,
            )),
        }
    }

    /// An fd to read or write, holding every right in `needed`. For what
    /// the System holds, POSIX's answers come first, whatever the rights:
    /// a directory is `EISDIR`, a file not opened for reading (writing)
    /// `EBADF`, as read(2) and write(2) say.
    fn io_fd(&self, fd: u32, needed: u64) -> Result<Fd, Errno> {
        let entry = self.fd(fd)?;
        let direction = needed & (rights::FD_READ | rights::FD_WRITE);
        match entry.kind {
            FdKind::SystemDirectory(_) => return Err(Errno::IsDir),
            FdKind::SystemFile { .. } if entry.rights_base & direction != direction => {
                return Err(Errno::BadF);
            }
            _ => {}
        }
        self.fd_with(fd, needed)
    }

    /// Moves a file fd's position.
    fn set_position(&mut self, fd: u32, to: u64) {
        if let Some(FdKind::File { position, .. } | FdKind::SystemFile { position, .. }) =
            self.fds.get_mut(&fd).map(|entry| &mut entry.kind)
        {
            *position = to;
        }
    }

    /// The lowest free fd number, or `EMFILE`.
    fn allocate_fd(&self) -> Result<u32, Errno> {
        if self.fds.len() >= self.max_open_fds {
            return Err(Errno::MFile);
        }
        let mut candidate = 0u32;
        for &used in self.fds.keys() {
            if used != candidate {
                break;
            }
            candidate = candidate.checked_add(1).ok_or(Errno::MFile)?;
        }
        Ok(candidate)
    }

    fn clock(&mut self, id: u32) -> Result<u64, Errno> {
        match id {
            clock::REALTIME => Ok(self.system.now_nanos(Clock::Realtime)),
            clock::MONOTONIC => Ok(self.system.now_nanos(Clock::Monotonic)),
            clock::PROCESS_CPUTIME | clock::THREAD_CPUTIME => Ok(self
                .system
                .now_nanos(Clock::Monotonic)
                .saturating_sub(self.started)),
            _ => Err(Errno::Inval),
        }
    }

    // ---- arguments and environment ------------------------------------

    pub fn args_sizes_get(
        &mut self,
        memory: &mut GuestMemory,
        count: u32,
        size: u32,
    ) -> WasiResult {
        sizes_get(memory, self.arg_count, self.args.len(), count, size)
    }

    pub fn args_get(&mut self, memory: &mut GuestMemory, argv: u32, buf: u32) -> WasiResult {
        strings_get(memory, self.arg_count, &self.args, argv, buf)
    }

    pub fn environ_sizes_get(
        &mut self,
        memory: &mut GuestMemory,
        count: u32,
        size: u32,
    ) -> WasiResult {
        sizes_get(memory, self.env_count, self.env.len(), count, size)
    }

    pub fn environ_get(&mut self, memory: &mut GuestMemory, environ: u32, buf: u32) -> WasiResult {
        strings_get(memory, self.env_count, &self.env, environ, buf)
    }

    // ---- clocks, randomness, scheduling -------------------------------

    pub fn clock_res_get(
        &mut self,
        memory: &mut GuestMemory,
        id: u32,
        resolution: u32,
    ) -> WasiResult {
        memory.check_u64(resolution)?;
        let which = match id {
            clock::REALTIME => Clock::Realtime,
            clock::MONOTONIC | clock::PROCESS_CPUTIME | clock::THREAD_CPUTIME => Clock::Monotonic,
            _ => return Err(Errno::Inval),
        };
        let value = self.system.resolution_nanos(which).max(1);
        memory.write_u64(resolution, value)
    }

    pub fn clock_time_get(
        &mut self,
        memory: &mut GuestMemory,
        id: u32,
        _precision: u64,
        time: u32,
    ) -> WasiResult {
        memory.check_u64(time)?;
        let now = self.clock(id)?;
        memory.write_u64(time, now)
    }

    pub fn random_get(&mut self, memory: &mut GuestMemory, buf: u32, len: u32) -> WasiResult {
        let out = memory.slice_mut(buf, len)?;
        self.system.random(out)
    }

    pub fn sched_yield(&mut self) -> WasiResult {
        self.system.yield_now();
        Ok(())
    }

    /// Signals are not a thing here.
    pub fn proc_raise(&mut self, _signal: u32) -> WasiResult {
        Err(Errno::NoSys)
    }

    // ---- fds ----------------------------------------------------------

    pub fn fd_advise(&mut self, fd: u32, _offset: u64, _len: u64, advice: u32) -> WasiResult {
        let entry = self.fd_with(fd, rights::FD_ADVISE)?;
        if advice > u32::from(abi::ADVICE_MAX) {
            return Err(Errno::Inval);
        }
        match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => Err(Errno::SPipe),
            FdKind::Directory { .. }
            | FdKind::File { .. }
            | FdKind::SystemDirectory(_)
            | FdKind::SystemFile { .. } => Ok(()),
        }
    }

    pub fn fd_allocate(&mut self, fd: u32, offset: u64, len: u64) -> WasiResult {
        let entry = self.fd_with(fd, rights::FD_ALLOCATE)?;
        Err(match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => Errno::SPipe,
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => Errno::IsDir,
            FdKind::File { .. } => Errno::RoFs,
            FdKind::SystemFile { handle, .. } => {
                return self.system_allocate(&entry, handle, offset, len);
            }
        })
    }

    pub fn fd_close(&mut self, fd: u32) -> WasiResult {
        let entry = self.fds.remove(&fd).ok_or(Errno::BadF)?;
        self.release(entry.kind);
        Ok(())
    }

    /// Gives back to the System what a closed (or replaced) fd held.
    fn release(&mut self, kind: FdKind) {
        match kind {
            FdKind::Socket(socket) => self.system.close(socket),
            FdKind::SystemDirectory(dir) => self.system.close_directory(dir.handle),
            FdKind::SystemFile { handle, .. } => self.system.close_file(handle),
            FdKind::ConsoleIn
            | FdKind::ConsoleOut(_)
            | FdKind::Directory { .. }
            | FdKind::File { .. } => {}
        }
    }

    pub fn fd_datasync(&mut self, fd: u32) -> WasiResult {
        self.sync(fd, rights::FD_DATASYNC)
    }

    pub fn fd_sync(&mut self, fd: u32) -> WasiResult {
        self.sync(fd, rights::FD_SYNC)
    }

    /// A read-only tree has nothing to sync; a terminal cannot be synced
    /// (as `fsync` on a tty is `EINVAL`).
    fn sync(&mut self, fd: u32, right: u64) -> WasiResult {
        match self.fd_with(fd, right)?.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => Err(Errno::Inval),
            // Each change to a directory is durable when its call returns.
            FdKind::Directory { .. } | FdKind::File { .. } | FdKind::SystemDirectory(_) => Ok(()),
            FdKind::SystemFile { handle, .. } => self.system.sync_file(handle),
        }
    }

    pub fn fd_fdstat_get(&mut self, memory: &mut GuestMemory, fd: u32, stat: u32) -> WasiResult {
        let entry = self.fd(fd)?;
        let range = memory.record_range(stat, layout::FDSTAT_SIZE, 1, layout::FDSTAT_ALIGN)?;
        let kind = match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) => filetype::CHARACTER_DEVICE,
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => filetype::DIRECTORY,
            FdKind::File { .. } | FdKind::SystemFile { .. } => filetype::REGULAR_FILE,
            FdKind::Socket(_) => filetype::SOCKET_STREAM,
        };
        let mut record = Record::<24>::new();
        record
            .u8(0, kind)
            .u16(2, entry.flags)
            .u64(8, entry.rights_base)
            .u64(16, entry.rights_inheriting);
        memory.bytes_mut()[range].copy_from_slice(&record.0);
        Ok(())
    }

    /// Flags are recorded; none changes what this host does. In particular
    /// a console read with `NONBLOCK` still waits for input: Go sets it on
    /// its stdio and copes either way, and there is nothing else a
    /// single-threaded instance could run meanwhile.
    pub fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u32) -> WasiResult {
        self.fd_with(fd, rights::FD_FDSTAT_SET_FLAGS)?;
        let flags = u16::try_from(flags).map_err(|_| Errno::Inval)?;
        if flags & !fdflags::ALL != 0 {
            return Err(Errno::Inval);
        }
        if let Some(entry) = self.fds.get_mut(&fd) {
            entry.flags = flags;
        }
        Ok(())
    }

    /// Rights can only be dropped.
    pub fn fd_fdstat_set_rights(&mut self, fd: u32, base: u64, inheriting: u64) -> WasiResult {
        let entry = self.fds.get_mut(&fd).ok_or(Errno::BadF)?;
        if base & !entry.rights_base != 0 || inheriting & !entry.rights_inheriting != 0 {
            return Err(Errno::NotCapable);
        }
        entry.rights_base = base;
        entry.rights_inheriting = inheriting;
        Ok(())
    }

    pub fn fd_filestat_get(&mut self, memory: &mut GuestMemory, fd: u32, buf: u32) -> WasiResult {
        let entry = self.fd_with(fd, rights::FD_FILESTAT_GET)?;
        memory.record_range(buf, layout::FILESTAT_SIZE, 1, layout::FILESTAT_ALIGN)?;
        let stat = self.fd_stat(&entry)?;
        write_filestat(memory, buf, &stat)
    }

    pub fn fd_filestat_set_size(&mut self, fd: u32, size: u64) -> WasiResult {
        let entry = self.fd_with(fd, rights::FD_FILESTAT_SET_SIZE)?;
        Err(match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => Errno::Inval,
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => Errno::IsDir,
            FdKind::File { .. } => Errno::RoFs,
            FdKind::SystemFile { handle, .. } => return self.system_set_size(&entry, handle, size),
        })
    }

    pub fn fd_filestat_set_times(
        &mut self,
        fd: u32,
        _atim: u64,
        _mtim: u64,
        flags: u32,
    ) -> WasiResult {
        let entry = self.fd_with(fd, rights::FD_FILESTAT_SET_TIMES)?;
        check_fstflags(flags)?;
        Err(match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => Errno::NotSup,
            FdKind::Directory { .. } | FdKind::File { .. } => Errno::RoFs,
            // Storage keeps no times.
            FdKind::SystemDirectory(_) | FdKind::SystemFile { .. } => Errno::NoSys,
        })
    }

    pub fn fd_pread(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nread: u32,
    ) -> WasiResult {
        let entry = self.io_fd(fd, rights::FD_READ | rights::FD_SEEK)?;
        let iovecs = read_iovecs(memory, iovs, iovs_len)?;
        memory.check_u32(nread)?;
        let (mount, node) = match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => {
                return Err(Errno::SPipe);
            }
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => return Err(Errno::IsDir),
            FdKind::File { mount, node, .. } => (mount, node),
            FdKind::SystemFile { handle, .. } => {
                let read = self.system_read(memory, handle, &iovecs, offset)?;
                return memory.write_u32(nread, read);
            }
        };
        let tree = self.tree(mount)?;
        let read = copy_out(memory, &iovecs, tree.contents(node), offset)?;
        memory.write_u32(nread, read)
    }

    pub fn fd_pwrite(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nwritten: u32,
    ) -> WasiResult {
        let entry = self.io_fd(fd, rights::FD_WRITE | rights::FD_SEEK)?;
        let iovecs = read_iovecs(memory, iovs, iovs_len)?;
        memory.check_u32(nwritten)?;
        Err(match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => Errno::SPipe,
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => Errno::IsDir,
            FdKind::File { .. } => Errno::RoFs,
            FdKind::SystemFile { handle, .. } => {
                let (written, _) = self.system_write(memory, handle, &iovecs, Some(offset))?;
                return memory.write_u32(nwritten, written);
            }
        })
    }

    pub fn fd_read(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        nread: u32,
    ) -> WasiResult {
        let entry = self.io_fd(fd, rights::FD_READ)?;
        let iovecs = read_iovecs(memory, iovs, iovs_len)?;
        memory.check_u32(nread)?;
        let read = match entry.kind {
            FdKind::ConsoleIn => {
                // One read into the first buffer with room: a console read
                // returns what is there, like read(2) on a terminal.
                match iovecs.iter().find(|(_, len)| *len > 0) {
                    None => 0,
                    Some(&(buf, len)) => {
                        let out = memory.slice_mut(buf, len)?;
                        let read = self.system.read_console(out)?;
                        u32::try_from(read.min(out.len())).unwrap_or(len)
                    }
                }
            }
            FdKind::ConsoleOut(_) => return Err(Errno::BadF),
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => return Err(Errno::IsDir),
            FdKind::Socket(socket) => self.receive(memory, socket, &iovecs)?,
            FdKind::SystemFile {
                handle, position, ..
            } => {
                let read = self.system_read(memory, handle, &iovecs, position)?;
                self.set_position(fd, position.saturating_add(u64::from(read)));
                read
            }
            FdKind::File {
                mount,
                node,
                position,
            } => {
                let tree = self.tree(mount)?;
                let read = copy_out(memory, &iovecs, tree.contents(node), position)?;
                self.set_position(fd, position.saturating_add(u64::from(read)));
                read
            }
        };
        memory.write_u32(nread, read)
    }

    pub fn fd_write(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        nwritten: u32,
    ) -> WasiResult {
        let entry = self.io_fd(fd, rights::FD_WRITE)?;
        let iovecs = read_iovecs(memory, iovs, iovs_len)?;
        memory.check_u32(nwritten)?;
        let stream = match entry.kind {
            FdKind::ConsoleOut(stream) => stream,
            FdKind::ConsoleIn => return Err(Errno::BadF),
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => return Err(Errno::IsDir),
            FdKind::File { .. } => return Err(Errno::RoFs),
            FdKind::SystemFile {
                handle, position, ..
            } => {
                // With APPEND every write goes to the end, wherever the
                // position was, and leaves the position there.
                let at = (entry.flags & fdflags::APPEND == 0).then_some(position);
                let (written, end) = self.system_write(memory, handle, &iovecs, at)?;
                if let Some(end) = end {
                    self.set_position(fd, end);
                }
                return memory.write_u32(nwritten, written);
            }
            FdKind::Socket(socket) => {
                let sent = self.send(memory, socket, &iovecs)?;
                return memory.write_u32(nwritten, sent);
            }
        };
        let mut written: u32 = 0;
        for &(buf, len) in &iovecs {
            // The count is a u32: stop where it would overflow.
            let len = len.min(u32::MAX - written);
            if len == 0 {
                continue;
            }
            let bytes = memory.slice(buf, len)?;
            match self.system.write_console(stream, bytes) {
                Ok(()) => written += len,
                Err(errno) if written == 0 => return Err(errno),
                Err(_) => break,
            }
        }
        memory.write_u32(nwritten, written)
    }

    pub fn fd_prestat_get(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        prestat: u32,
    ) -> WasiResult {
        let name_len = self.preopen_name(fd)?.len() as u32;
        let range = memory.record_range(prestat, layout::PRESTAT_SIZE, 1, layout::PRESTAT_ALIGN)?;
        let mut record = Record::<8>::new();
        record.u8(0, abi::PREOPENTYPE_DIR).u32(4, name_len);
        memory.bytes_mut()[range].copy_from_slice(&record.0);
        Ok(())
    }

    pub fn fd_prestat_dir_name(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult {
        let name = self.preopen_name(fd)?;
        if (path_len as usize) < name.len() {
            return Err(Errno::NameTooLong);
        }
        let out = memory.slice_mut(path, name.len() as u32)?;
        out.copy_from_slice(name.as_bytes());
        Ok(())
    }

    /// A preopen's name; `ENOTDIR` for a socket (preopened before the
    /// trees: Go's start-up skips it) and `EBADF` for any other fd, which is
    /// how Go's start-up knows where the preopens end.
    fn preopen_name(&self, fd: u32) -> Result<&str, Errno> {
        match self.fd(fd)?.kind {
            FdKind::Directory {
                mount,
                preopen: true,
                ..
            }
            | FdKind::SystemDirectory(SystemDirectory {
                mount,
                preopen: true,
                ..
            }) => Ok(self.mounts.get(mount).ok_or(Errno::BadF)?.name.as_str()),
            FdKind::Socket(_) => Err(Errno::NotDir),
            _ => Err(Errno::BadF),
        }
    }

    pub fn fd_readdir(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        buf: u32,
        buf_len: u32,
        cookie: u64,
        bufused: u32,
    ) -> WasiResult {
        let entry = self.fd_with(fd, rights::FD_READDIR)?;
        let (mount, node) = match entry.kind {
            FdKind::Directory { mount, node, .. } => (mount, node),
            FdKind::SystemDirectory(dir) => {
                return self.system_readdir(memory, dir, buf, buf_len, cookie, bufused);
            }
            _ => return Err(Errno::NotDir),
        };
        let range = memory.range(buf, buf_len)?;
        memory.check_u32(bufused)?;
        let tree = self.tree(mount)?;
        let out = &mut memory.bytes_mut()[range];
        let mut used = 0;
        let mut index = cookie;
        // Entries are written whole while they fit; the last one is cut off
        // when it does not, which tells the reader the buffer was full.
        while used < out.len() {
            let Some((name, child)) = tree.directory_entry(node, index) else {
                break;
            };
            let kind = tree
                .node(child)
                .map_or(filetype::UNKNOWN, |node| node_filetype(&node.kind));
            write_dirent(out, &mut used, index, child.inode(), name, kind);
            index = index.saturating_add(1);
        }
        memory.write_u32(bufused, used as u32)
    }

    /// Moves `from` onto `to` (both must be open), closing what `to` was.
    pub fn fd_renumber(&mut self, from: u32, to: u32) -> WasiResult {
        self.fd(from)?;
        self.fd(to)?;
        if from != to
            && let Some(entry) = self.fds.remove(&from)
            && let Some(replaced) = self.fds.insert(to, entry)
        {
            self.release(replaced.kind);
        }
        Ok(())
    }

    pub fn fd_seek(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        offset: i64,
        whence: u32,
        newoffset: u32,
    ) -> WasiResult {
        // A zero-offset seek from the current position only tells, so
        // FD_TELL will do as well as FD_SEEK.
        let only_tells = whence == u32::from(whence::CUR) && offset == 0;
        let enough = if only_tells {
            rights::FD_TELL | rights::FD_SEEK
        } else {
            rights::FD_SEEK
        };
        let entry = self.fd(fd)?;
        if entry.rights_base & enough == 0 {
            return Err(Errno::NotCapable);
        }
        memory.check_u64(newoffset)?;
        let position = match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => {
                return Err(Errno::SPipe);
            }
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => return Err(Errno::IsDir),
            FdKind::File { position, .. } | FdKind::SystemFile { position, .. } => position,
        };
        let base = match u8::try_from(whence) {
            Ok(whence::SET) => 0,
            Ok(whence::CUR) => i128::from(position),
            Ok(whence::END) => i128::from(match entry.kind {
                FdKind::File { mount, node, .. } => self.tree(mount)?.contents(node).len() as u64,
                FdKind::SystemFile { handle, .. } => self.system.file_size(handle)?,
                _ => return Err(Errno::SPipe),
            }),
            _ => return Err(Errno::Inval),
        };
        let target = base + i128::from(offset);
        if target < 0 {
            return Err(Errno::Inval);
        }
        let target = u64::try_from(target)
            .ok()
            .filter(|&target| target <= i64::MAX as u64)
            .ok_or(Errno::Overflow)?;
        self.set_position(fd, target);
        memory.write_u64(newoffset, target)
    }

    pub fn fd_tell(&mut self, memory: &mut GuestMemory, fd: u32, offset: u32) -> WasiResult {
        let entry = self.fd_with(fd, rights::FD_TELL)?;
        memory.check_u64(offset)?;
        match entry.kind {
            FdKind::ConsoleIn | FdKind::ConsoleOut(_) | FdKind::Socket(_) => Err(Errno::SPipe),
            FdKind::Directory { .. } | FdKind::SystemDirectory(_) => Err(Errno::IsDir),
            FdKind::File { position, .. } | FdKind::SystemFile { position, .. } => {
                memory.write_u64(offset, position)
            }
        }
    }

    // ---- paths --------------------------------------------------------

    /// `path_open` in a read-only tree: anything that would create, truncate
    /// or open for writing is refused; reading and directories work.
    #[allow(clippy::too_many_arguments)]
    pub fn path_open(
        &mut self,
        memory: &mut GuestMemory,
        dirfd: u32,
        dirflags: u32,
        path: u32,
        path_len: u32,
        open_flags: u32,
        rights_base: u64,
        rights_inheriting: u64,
        fd_flags: u32,
        opened: u32,
    ) -> WasiResult {
        let dir = self.fd(dirfd)?;
        let system_dir = self.system_dir(dirfd, rights::PATH_OPEN)?;
        let tree_dir = match system_dir {
            Some(_) => None,
            None => Some(self.dir_fd(dirfd, rights::PATH_OPEN)?),
        };
        let open_flags = u16::try_from(open_flags)
            .ok()
            .filter(|flags| flags & !oflags::ALL == 0)
            .ok_or(Errno::Inval)?;
        let fd_flags = u16::try_from(fd_flags)
            .ok()
            .filter(|flags| flags & !fdflags::ALL == 0)
            .ok_or(Errno::Inval)?;
        let create = open_flags & oflags::CREAT != 0;
        if create && dir.rights_base & rights::PATH_CREATE_FILE == 0 {
            return Err(Errno::NotCapable);
        }
        if open_flags & oflags::TRUNC != 0 && dir.rights_base & rights::PATH_FILESTAT_SET_SIZE == 0
        {
            return Err(Errno::NotCapable);
        }
        memory.check_u32(opened)?;
        let (tree, start, mount) = match (system_dir, tree_dir) {
            (_, Some(tree_dir)) => tree_dir,
            (Some(system_dir), None) => {
                let request = storage::OpenRequest {
                    open_flags,
                    fd_flags,
                    rights_base: rights_base & dir.rights_inheriting,
                    rights_inheriting: rights_inheriting & dir.rights_inheriting,
                };
                let path = guest_path(memory, path, path_len)?;
                let number = self.system_open(system_dir, path, request)?;
                return memory.write_u32(opened, number);
            }
            (None, None) => return Err(Errno::NotDir),
        };
        let follow = dirflags & abi::lookupflags::SYMLINK_FOLLOW != 0;
        let found = {
            let path = guest_path(memory, path, path_len)?;
            match tree.lookup(start, path, follow) {
                Err(Errno::NoEnt) if create => {
                    tree.lookup_parent(start, path)?;
                    return Err(Errno::RoFs);
                }
                other => other?,
            }
        };
        if create && open_flags & oflags::EXCL != 0 {
            return Err(Errno::Exist);
        }
        let node = tree.node(found).ok_or(Errno::NoEnt)?;
        let writing = rights_base & rights::FD_WRITE != 0;
        let kind = match node.kind {
            NodeKind::Directory { .. } => {
                if writing {
                    return Err(Errno::IsDir);
                }
                FdKind::Directory {
                    mount,
                    node: found,
                    preopen: false,
                }
            }
            _ if open_flags & oflags::DIRECTORY != 0 => return Err(Errno::NotDir),
            // Only reached without SYMLINK_FOLLOW: opening the link itself.
            NodeKind::Symlink { .. } => return Err(Errno::Loop),
            NodeKind::File { .. } => {
                if writing || open_flags & oflags::TRUNC != 0 {
                    return Err(Errno::RoFs);
                }
                FdKind::File {
                    mount,
                    node: found,
                    position: 0,
                }
            }
        };
        let number = self.allocate_fd()?;
        self.fds.insert(
            number,
            Fd {
                kind,
                rights_base: rights_base & dir.rights_inheriting,
                rights_inheriting: rights_inheriting & dir.rights_inheriting,
                flags: fd_flags,
            },
        );
        memory.write_u32(opened, number)
    }

    pub fn path_filestat_get(
        &mut self,
        memory: &mut GuestMemory,
        dirfd: u32,
        flags: u32,
        path: u32,
        path_len: u32,
        buf: u32,
    ) -> WasiResult {
        if let Some(dir) = self.system_dir(dirfd, rights::PATH_FILESTAT_GET)? {
            memory.record_range(buf, layout::FILESTAT_SIZE, 1, layout::FILESTAT_ALIGN)?;
            let stat = self.system_path_stat(dir, guest_path(memory, path, path_len)?)?;
            return write_filestat(memory, buf, &stat);
        }
        let (tree, start, mount) = self.dir_fd(dirfd, rights::PATH_FILESTAT_GET)?;
        memory.record_range(buf, layout::FILESTAT_SIZE, 1, layout::FILESTAT_ALIGN)?;
        let follow = flags & abi::lookupflags::SYMLINK_FOLLOW != 0;
        let found = tree.lookup(start, guest_path(memory, path, path_len)?, follow)?;
        let stat = self.node_stat(mount, found)?;
        write_filestat(memory, buf, &stat)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn path_filestat_set_times(
        &mut self,
        memory: &mut GuestMemory,
        dirfd: u32,
        flags: u32,
        path: u32,
        path_len: u32,
        _atim: u64,
        _mtim: u64,
        fst_flags: u32,
    ) -> WasiResult {
        if let Some(dir) = self.system_dir(dirfd, rights::PATH_FILESTAT_SET_TIMES)? {
            check_fstflags(fst_flags)?;
            self.system_path_stat(dir, guest_path(memory, path, path_len)?)?;
            // Storage keeps no times.
            return Err(Errno::NoSys);
        }
        let (tree, start, _) = self.dir_fd(dirfd, rights::PATH_FILESTAT_SET_TIMES)?;
        check_fstflags(fst_flags)?;
        let follow = flags & abi::lookupflags::SYMLINK_FOLLOW != 0;
        tree.lookup(start, guest_path(memory, path, path_len)?, follow)?;
        Err(Errno::RoFs)
    }

    pub fn path_create_directory(
        &mut self,
        memory: &mut GuestMemory,
        dirfd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult {
        if let Some(dir) = self.system_dir(dirfd, rights::PATH_CREATE_DIRECTORY)? {
            return self.system_mkdir(dir, guest_path(memory, path, path_len)?);
        }
        let (tree, start, _) = self.dir_fd(dirfd, rights::PATH_CREATE_DIRECTORY)?;
        Err(refuse_create(
            &tree,
            start,
            guest_path(memory, path, path_len)?,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn path_link(
        &mut self,
        memory: &mut GuestMemory,
        old_dirfd: u32,
        old_flags: u32,
        old_path: u32,
        old_path_len: u32,
        new_dirfd: u32,
        new_path: u32,
        new_path_len: u32,
    ) -> WasiResult {
        match (
            self.system_dir(old_dirfd, rights::PATH_LINK_SOURCE)?,
            self.system_dir(new_dirfd, rights::PATH_LINK_TARGET)?,
        ) {
            (None, None) => {}
            (Some(old_dir), Some(new_dir)) => {
                let old_path = guest_path(memory, old_path, old_path_len)?;
                let new_path = guest_path(memory, new_path, new_path_len)?;
                return self.system_link(old_dir, old_path, new_dir, new_path);
            }
            (Some(_), None) => {
                self.dir_fd(new_dirfd, rights::PATH_LINK_TARGET)?;
                return Err(Errno::XDev);
            }
            (None, Some(_)) => {
                self.dir_fd(old_dirfd, rights::PATH_LINK_SOURCE)?;
                return Err(Errno::XDev);
            }
        }
        let (old_tree, old_start, old_mount) = self.dir_fd(old_dirfd, rights::PATH_LINK_SOURCE)?;
        let (new_tree, new_start, new_mount) = self.dir_fd(new_dirfd, rights::PATH_LINK_TARGET)?;
        let follow = old_flags & abi::lookupflags::SYMLINK_FOLLOW != 0;
        let source = old_tree.lookup(
            old_start,
            guest_path(memory, old_path, old_path_len)?,
            follow,
        )?;
        if old_tree
            .node(source)
            .is_some_and(|node| node.is_directory())
        {
            return Err(Errno::Perm);
        }
        match refuse_create(
            &new_tree,
            new_start,
            guest_path(memory, new_path, new_path_len)?,
        ) {
            Errno::RoFs if old_mount != new_mount => Err(Errno::XDev),
            errno => Err(errno),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn path_readlink(
        &mut self,
        memory: &mut GuestMemory,
        dirfd: u32,
        path: u32,
        path_len: u32,
        buf: u32,
        buf_len: u32,
        bufused: u32,
    ) -> WasiResult {
        if let Some(dir) = self.system_dir(dirfd, rights::PATH_READLINK)? {
            memory.range(buf, buf_len)?;
            memory.check_u32(bufused)?;
            // Storage has no links: whatever is there is not one.
            self.system_path_stat(dir, guest_path(memory, path, path_len)?)?;
            return Err(Errno::Inval);
        }
        let (tree, start, _) = self.dir_fd(dirfd, rights::PATH_READLINK)?;
        memory.range(buf, buf_len)?;
        memory.check_u32(bufused)?;
        let found = tree.lookup(start, guest_path(memory, path, path_len)?, false)?;
        let Some(NodeKind::Symlink { target }) = tree.node(found).map(|node| &node.kind) else {
            return Err(Errno::Inval);
        };
        // Like readlink(2), a short buffer gets the start of the target.
        let take = target.len().min(buf_len as usize);
        memory
            .slice_mut(buf, take as u32)?
            .copy_from_slice(&target.as_bytes()[..take]);
        memory.write_u32(bufused, take as u32)
    }

    pub fn path_remove_directory(
        &mut self,
        memory: &mut GuestMemory,
        dirfd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult {
        if let Some(dir) = self.system_dir(dirfd, rights::PATH_REMOVE_DIRECTORY)? {
            return self.system_rmdir(dir, guest_path(memory, path, path_len)?);
        }
        let (tree, start, _) = self.dir_fd(dirfd, rights::PATH_REMOVE_DIRECTORY)?;
        let path = guest_path(memory, path, path_len)?;
        let found = tree.lookup(start, path, false)?;
        match tree.node(found) {
            Some(node) if !node.is_directory() => Err(Errno::NotDir),
            _ if found == start || path.rsplit('/').next() == Some(".") => Err(Errno::Inval),
            _ => Err(Errno::RoFs),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn path_rename(
        &mut self,
        memory: &mut GuestMemory,
        old_dirfd: u32,
        old_path: u32,
        old_path_len: u32,
        new_dirfd: u32,
        new_path: u32,
        new_path_len: u32,
    ) -> WasiResult {
        match (
            self.system_dir(old_dirfd, rights::PATH_RENAME_SOURCE)?,
            self.system_dir(new_dirfd, rights::PATH_RENAME_TARGET)?,
        ) {
            (None, None) => {}
            (Some(old_dir), Some(new_dir)) => {
                let old_path = guest_path(memory, old_path, old_path_len)?;
                let new_path = guest_path(memory, new_path, new_path_len)?;
                return self.system_rename(old_dir, old_path, new_dir, new_path);
            }
            (Some(_), None) => {
                self.dir_fd(new_dirfd, rights::PATH_RENAME_TARGET)?;
                return Err(Errno::XDev);
            }
            (None, Some(_)) => {
                self.dir_fd(old_dirfd, rights::PATH_RENAME_SOURCE)?;
                return Err(Errno::XDev);
            }
        }
        let (old_tree, old_start, old_mount) =
            self.dir_fd(old_dirfd, rights::PATH_RENAME_SOURCE)?;
        let (new_tree, new_start, new_mount) =
            self.dir_fd(new_dirfd, rights::PATH_RENAME_TARGET)?;
        old_tree.lookup(
            old_start,
            guest_path(memory, old_path, old_path_len)?,
            false,
        )?;
        new_tree.lookup_parent(new_start, guest_path(memory, new_path, new_path_len)?)?;
        Err(if old_mount == new_mount {
            Errno::RoFs
        } else {
            Errno::XDev
        })
    }

    pub fn path_symlink(
        &mut self,
        memory: &mut GuestMemory,
        old_path: u32,
        old_path_len: u32,
        dirfd: u32,
        new_path: u32,
        new_path_len: u32,
    ) -> WasiResult {
        if let Some(dir) = self.system_dir(dirfd, rights::PATH_SYMLINK)? {
            memory.str(old_path, old_path_len)?;
            return self.system_symlink(dir, guest_path(memory, new_path, new_path_len)?);
        }
        let (tree, start, _) = self.dir_fd(dirfd, rights::PATH_SYMLINK)?;
        memory.str(old_path, old_path_len)?;
        Err(refuse_create(
            &tree,
            start,
            guest_path(memory, new_path, new_path_len)?,
        ))
    }

    pub fn path_unlink_file(
        &mut self,
        memory: &mut GuestMemory,
        dirfd: u32,
        path: u32,
        path_len: u32,
    ) -> WasiResult {
        if let Some(dir) = self.system_dir(dirfd, rights::PATH_UNLINK_FILE)? {
            return self.system_unlink(dir, guest_path(memory, path, path_len)?);
        }
        let (tree, start, _) = self.dir_fd(dirfd, rights::PATH_UNLINK_FILE)?;
        let found = tree.lookup(start, guest_path(memory, path, path_len)?, false)?;
        match tree.node(found) {
            Some(node) if node.is_directory() => Err(Errno::IsDir),
            _ => Err(Errno::RoFs),
        }
    }

    // ---- poll ---------------------------------------------------------

    /// Waits for the first of the subscriptions. Fd subscriptions are ready
    /// at once (nothing here ever blocks a reader for long or refuses a
    /// writer), so the only waiting is for clocks: with no fd event ready,
    /// `poll_oneoff` sleeps through [`System::sleep_nanos`] until the
    /// earliest clock subscription expires, which is how Go's `time.Sleep`
    /// and timers wait.
    ///
    /// The subscriptions are read twice in place (to decide, then to
    /// answer) rather than copied, so the call allocates nothing.
    pub fn poll_oneoff(
        &mut self,
        memory: &mut GuestMemory,
        subscriptions: u32,
        events: u32,
        count: u32,
        nevents: u32,
    ) -> WasiResult {
        if count == 0 || count > MAX_SUBSCRIPTIONS {
            return Err(Errno::Inval);
        }
        memory.record_range(
            subscriptions,
            layout::SUBSCRIPTION_SIZE,
            count,
            layout::SUBSCRIPTION_ALIGN,
        )?;
        memory.record_range(events, layout::EVENT_SIZE, count, layout::EVENT_ALIGN)?;
        memory.check_u32(nevents)?;

        // Each clock's reading at the call, so both passes agree on every
        // relative and absolute deadline.
        let realtime = self.system.now_nanos(Clock::Realtime);
        let monotonic = self.system.now_nanos(Clock::Monotonic);
        let started = self.started;
        let remaining = |sub: &Subscription| -> Option<u64> {
            let Subscription::Clock {
                id,
                timeout,
                absolute,
                ..
            } = *sub
            else {
                return None;
            };
            let now = match id {
                clock::REALTIME => realtime,
                clock::MONOTONIC => monotonic,
                clock::PROCESS_CPUTIME | clock::THREAD_CPUTIME => monotonic.saturating_sub(started),
                _ => return None,
            };
            Some(if absolute {
                timeout.saturating_sub(now)
            } else {
                timeout
            })
        };

        // Pass 1: is anything ready now, which clock is due first, and
        // which sockets are asked about (the System answers for those)?
        let mut ready_now = false;
        let mut earliest: Option<(u32, u64)> = None;
        let mut sockets: Vec<(SocketHandle, bool, bool)> = Vec::new();
        for index in 0..count {
            let sub = Subscription::read(memory, subscriptions, index)?;
            if let Subscription::Fd { kind, fd, .. } = sub
                && let Ok(Fd {
                    kind: FdKind::Socket(socket),
                    rights_base,
                    ..
                }) = self.fd(fd)
                && rights_base & rights::POLL_FD_READWRITE != 0
            {
                let reading = kind == eventtype::FD_READ;
                sockets.push((socket, reading, !reading));
                continue;
            }
            match remaining(&sub) {
                Some(0) => ready_now = true,
                Some(wait) => {
                    if earliest.is_none_or(|(_, best)| wait < best) {
                        earliest = Some((index, wait));
                    }
                }
                None => ready_now = true, // other fd events and bad clocks answer at once
            }
        }
        let mut elapsed = 0;
        let mut forced = None;
        let mut readiness: Result<Vec<Readiness>, Errno> = Ok(Vec::new());
        if !sockets.is_empty() {
            // One wait for the sockets and the first clock together.
            let timeout = if ready_now {
                Some(0)
            } else {
                earliest.map(|(_, wait)| wait)
            };
            readiness = self.system.poll(&sockets, timeout);
            let any = readiness.as_ref().map_or(true, |ready| {
                ready
                    .iter()
                    .zip(&sockets)
                    .any(|(r, &(_, read, write))| r.read && read || r.write && write)
            });
            if !any && !ready_now {
                forced = earliest.map(|(index, _)| index);
            }
            elapsed = self
                .system
                .now_nanos(Clock::Monotonic)
                .saturating_sub(monotonic);
        } else if !ready_now && let Some((index, wait)) = earliest {
            self.system.sleep_nanos(wait);
            elapsed = self
                .system
                .now_nanos(Clock::Monotonic)
                .saturating_sub(monotonic);
            // The System slept at least `wait`; trust it for that clock.
            forced = Some(index);
        }

        // Pass 2: write an event for each subscription that is ready.
        let mut written = 0u32;
        let mut socket_index = 0;
        for index in 0..count {
            let sub = Subscription::read(memory, subscriptions, index)?;
            let event = match sub {
                Subscription::Clock { userdata, .. } => match remaining(&sub) {
                    None => Some(Event::error(userdata, eventtype::CLOCK, Errno::Inval)),
                    Some(wait) if wait <= elapsed || forced == Some(index) => {
                        Some(Event::ready(userdata, eventtype::CLOCK, 0))
                    }
                    Some(_) => None,
                },
                Subscription::Fd { userdata, kind, fd }
                    if matches!(self.fd(fd), Ok(Fd { kind: FdKind::Socket(_), rights_base, .. })
                        if rights_base & rights::POLL_FD_READWRITE != 0) =>
                {
                    let asked = socket_index;
                    socket_index += 1;
                    match &readiness {
                        Err(errno) => Some(Event::error(userdata, kind, *errno)),
                        Ok(ready) => {
                            let ready = ready.get(asked).copied().unwrap_or_default();
                            let is_ready = if kind == eventtype::FD_READ {
                                ready.read
                            } else {
                                ready.write
                            };
                            // The byte count is not known: 1 says "some".
                            is_ready.then(|| Event::ready(userdata, kind, 1))
                        }
                    }
                }
                Subscription::Fd { userdata, kind, fd } => Some(self.poll_fd(userdata, kind, fd)),
                Subscription::Unknown { userdata, kind } => {
                    Some(Event::error(userdata, kind, Errno::Inval))
                }
            };
            if let Some(event) = event {
                event.write(memory, events, written)?;
                written += 1;
            }
        }
        memory.write_u32(nevents, written)
    }

    fn poll_fd(&mut self, userdata: u64, kind: u8, fd: u32) -> Event {
        let entry = match self.fd(fd) {
            Ok(entry) => entry,
            Err(errno) => return Event::error(userdata, kind, errno),
        };
        if entry.rights_base & rights::POLL_FD_READWRITE == 0 {
            return Event::error(userdata, kind, Errno::NotCapable);
        }
        let reading = kind == eventtype::FD_READ;
        let available = match entry.kind {
            FdKind::File {
                mount,
                node,
                position,
            } if reading => {
                let size = self
                    .tree(mount)
                    .map_or(0, |tree| tree.contents(node).len() as u64);
                size.saturating_sub(position)
            }
            FdKind::SystemFile {
                handle, position, ..
            } if reading => self
                .system
                .file_size(handle)
                .map_or(0, |size| size.saturating_sub(position)),
            FdKind::ConsoleIn if reading => 1,
            FdKind::ConsoleOut(_) if reading => return Event::error(userdata, kind, Errno::BadF),
            FdKind::ConsoleIn if !reading => return Event::error(userdata, kind, Errno::BadF),
            _ => 0,
        };
        Event::ready(userdata, kind, available)
    }

    // ---- sockets: the preopened listeners and what they accept --------

    /// A socket fd holding `needed` (an fd that is not a socket is
    /// `ENOTSOCK` whatever its rights, as Go expects).
    fn socket(&self, fd: u32, needed: u64) -> Result<SocketHandle, Errno> {
        let FdKind::Socket(socket) = self.fd(fd)?.kind else {
            return Err(Errno::NotSock);
        };
        self.fd_with(fd, needed)?;
        Ok(socket)
    }

    /// Receives into the iovecs in order: one system call into a buffer as
    /// long as all of them (at most [`MAX_SOCKET_IO`]), then scattered.
    fn receive(
        &mut self,
        memory: &mut GuestMemory,
        socket: SocketHandle,
        iovecs: &[(u32, u32)],
    ) -> Result<u32, Errno> {
        let total: usize = iovecs.iter().map(|&(_, len)| len as usize).sum();
        let mut buffer = alloc::vec![0u8; total.min(MAX_SOCKET_IO)];
        if buffer.is_empty() {
            return Ok(0);
        }
        let received = self
            .system
            .receive(socket, &mut buffer)?
            .ok_or(Errno::Again)?
            .min(buffer.len());
        let mut done = 0;
        for &(at, len) in iovecs {
            let take = (len as usize).min(received - done);
            memory
                .slice_mut(at, take as u32)?
                .copy_from_slice(&buffer[done..done + take]);
            done += take;
            if done == received {
                break;
            }
        }
        Ok(received as u32)
    }

    /// Sends the iovecs gathered (at most [`MAX_SOCKET_IO`] bytes at once).
    fn send(
        &mut self,
        memory: &GuestMemory,
        socket: SocketHandle,
        iovecs: &[(u32, u32)],
    ) -> Result<u32, Errno> {
        let mut bytes = Vec::new();
        for &(at, len) in iovecs {
            let room = MAX_SOCKET_IO - bytes.len();
            bytes.extend_from_slice(memory.slice(at, len.min(room as u32))?);
            if bytes.len() == MAX_SOCKET_IO {
                break;
            }
        }
        if bytes.is_empty() {
            return Ok(0);
        }
        let sent = self.system.send(socket, &bytes)?.ok_or(Errno::Again)?;
        Ok(sent.min(bytes.len()) as u32)
    }

    /// The next connection on a listener, as a new fd; `EAGAIN` when none
    /// is waiting.
    pub fn sock_accept(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        flags: u32,
        opened: u32,
    ) -> WasiResult {
        let listener = self.socket(fd, rights::SOCK_ACCEPT)?;
        let flags = u16::try_from(flags).map_err(|_| Errno::Inval)?;
        if flags & !fdflags::NONBLOCK != 0 {
            return Err(Errno::Inval);
        }
        memory.check_u32(opened)?;
        let new_fd = self.allocate_fd()?;
        let stream = self.system.accept(listener)?.ok_or(Errno::Again)?;
        self.fds.insert(new_fd, socket_fd(stream, flags));
        memory.write_u32(opened, new_fd)
    }

    /// The preview1 signature, argument for argument.
    #[allow(clippy::too_many_arguments)]
    pub fn sock_recv(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        flags: u32,
        received: u32,
        out_flags: u32,
    ) -> WasiResult {
        let socket = self.socket(fd, rights::FD_READ)?;
        // RECV_PEEK and RECV_WAITALL are not offered.
        if flags != 0 {
            return Err(Errno::NotSup);
        }
        let iovecs = read_iovecs(memory, iovs, iovs_len)?;
        memory.check_u32(received)?;
        memory.check_u16(out_flags)?;
        let count = self.receive(memory, socket, &iovecs)?;
        memory.write_u32(received, count)?;
        memory.write_u16(out_flags, 0)
    }

    pub fn sock_send(
        &mut self,
        memory: &mut GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        flags: u32,
        sent: u32,
    ) -> WasiResult {
        let socket = self.socket(fd, rights::FD_WRITE)?;
        if flags != 0 {
            return Err(Errno::Inval);
        }
        let iovecs = read_iovecs(memory, iovs, iovs_len)?;
        memory.check_u32(sent)?;
        let count = self.send(memory, socket, &iovecs)?;
        memory.write_u32(sent, count)
    }

    /// `how`: bit 0 receiving (nothing to do: unread bytes are dropped at
    /// close), bit 1 sending.
    pub fn sock_shutdown(&mut self, fd: u32, how: u32) -> WasiResult {
        let socket = self.socket(fd, rights::SOCK_SHUTDOWN)?;
        if how == 0 || how & !0b11 != 0 {
            return Err(Errno::Inval);
        }
        if how & 0b10 != 0 {
            self.system.shutdown(socket)?;
        }
        Ok(())
    }
}

/// Most bytes one socket read or write moves (larger iovecs get a short
/// count, as sockets may give).
pub const MAX_SOCKET_IO: usize = 64 * 1024;

/// What a socket fd may do.
const SOCKET_RIGHTS: u64 = rights::FD_READ
    | rights::FD_WRITE
    | rights::FD_FDSTAT_SET_FLAGS
    | rights::FD_FILESTAT_GET
    | rights::POLL_FD_READWRITE
    | rights::SOCK_SHUTDOWN
    | rights::SOCK_ACCEPT;

fn socket_fd(socket: SocketHandle, flags: u16) -> Fd {
    Fd {
        kind: FdKind::Socket(socket),
        rights_base: SOCKET_RIGHTS,
        rights_inheriting: SOCKET_RIGHTS,
        flags,
    }
}

/// A subscription record as read from guest memory.
enum Subscription {
    Clock {
        userdata: u64,
        id: u32,
        timeout: u64,
        absolute: bool,
    },
    Fd {
        userdata: u64,
        kind: u8,
        fd: u32,
    },
    Unknown {
        userdata: u64,
        kind: u8,
    },
}

impl Subscription {
    fn read(memory: &GuestMemory, base: u32, index: u32) -> Result<Subscription, Errno> {
        let at = |offset: u32| -> Result<u32, Errno> {
            let address = u64::from(base)
                + u64::from(index) * u64::from(layout::SUBSCRIPTION_SIZE)
                + u64::from(offset);
            u32::try_from(address).map_err(|_| Errno::Fault)
        };
        let userdata = memory.read_u64(at(0)?)?;
        let kind = memory.read_u8(at(8)?)?;
        Ok(match kind {
            eventtype::CLOCK => Subscription::Clock {
                userdata,
                id: memory.read_u32(at(16)?)?,
                timeout: memory.read_u64(at(24)?)?,
                absolute: memory.read_u16(at(40)?)? & abi::SUBSCRIPTION_CLOCK_ABSTIME != 0,
            },
            eventtype::FD_READ | eventtype::FD_WRITE => Subscription::Fd {
                userdata,
                kind,
                fd: memory.read_u32(at(16)?)?,
            },
            _ => Subscription::Unknown { userdata, kind },
        })
    }
}

/// An event record to write.
struct Event {
    userdata: u64,
    error: u16,
    kind: u8,
    nbytes: u64,
}

impl Event {
    fn ready(userdata: u64, kind: u8, nbytes: u64) -> Event {
        Event {
            userdata,
            error: 0,
            kind,
            nbytes,
        }
    }

    fn error(userdata: u64, kind: u8, errno: Errno) -> Event {
        Event {
            userdata,
            error: errno.code(),
            kind,
            nbytes: 0,
        }
    }

    fn write(&self, memory: &mut GuestMemory, base: u32, index: u32) -> WasiResult {
        let address = u64::from(base) + u64::from(index) * u64::from(layout::EVENT_SIZE);
        let range = memory.range_u64(address, u64::from(layout::EVENT_SIZE))?;
        let mut record = Record::<32>::new();
        record
            .u64(0, self.userdata)
            .u16(8, self.error)
            .u8(10, self.kind)
            .u64(16, self.nbytes);
        memory.bytes_mut()[range].copy_from_slice(&record.0);
        Ok(())
    }
}

/// Writes one `dirent` (the entry at `index`) and its name at `used`, as
/// much of it as fits: a cut-off entry tells the reader the buffer is full.
fn write_dirent(out: &mut [u8], used: &mut usize, index: u64, ino: u64, name: &str, kind: u8) {
    let mut header = Record::<{ layout::DIRENT_SIZE }>::new();
    header
        .u64(0, index.saturating_add(1))
        .u64(8, ino)
        .u32(16, name.len() as u32)
        .u8(20, kind);
    for part in [&header.0[..], name.as_bytes()] {
        let room = out.len() - *used;
        let take = part.len().min(room);
        out[*used..*used + take].copy_from_slice(&part[..take]);
        *used += take;
    }
}

fn node_filetype(kind: &NodeKind) -> u8 {
    match kind {
        NodeKind::Directory { .. } => filetype::DIRECTORY,
        NodeKind::File { .. } => filetype::REGULAR_FILE,
        NodeKind::Symlink { .. } => filetype::SYMBOLIC_LINK,
    }
}

fn write_filestat(memory: &mut GuestMemory, buf: u32, stat: &Filestat) -> WasiResult {
    let range = memory.record_range(buf, layout::FILESTAT_SIZE, 1, layout::FILESTAT_ALIGN)?;
    let mut record = Record::<64>::new();
    record
        .u64(0, stat.dev)
        .u64(8, stat.ino)
        .u8(16, stat.filetype)
        .u64(24, stat.nlink)
        .u64(32, stat.size)
        .u64(40, stat.time)
        .u64(48, stat.time)
        .u64(56, stat.time);
    memory.bytes_mut()[range].copy_from_slice(&record.0);
    Ok(())
}

/// Setting a time both to a value and to "now" is contradictory.
fn check_fstflags(flags: u32) -> WasiResult {
    let flags = u16::try_from(flags).map_err(|_| Errno::Inval)?;
    let both = |a: u16, b: u16| flags & a != 0 && flags & b != 0;
    if flags & !fstflags::ALL != 0
        || both(fstflags::ATIM, fstflags::ATIM_NOW)
        || both(fstflags::MTIM, fstflags::MTIM_NOW)
    {
        return Err(Errno::Inval);
    }
    Ok(())
}

/// A path argument: relative (an absolute one would step outside the
/// directory fd, `ENOTCAPABLE`), UTF-8, at most [`MAX_PATH`] bytes.
fn guest_path<'m>(memory: &'m GuestMemory, ptr: u32, len: u32) -> Result<&'m str, Errno> {
    if len > MAX_PATH {
        return Err(Errno::NameTooLong);
    }
    let path = memory.str(ptr, len)?;
    if path.starts_with('/') {
        return Err(Errno::NotCapable);
    }
    Ok(path)
}

/// The errno for creating `path` in a read-only tree: what a writable tree
/// would say first if the path exists or its parent does not, else `EROFS`.
fn refuse_create(tree: &Tree, start: NodeId, path: &str) -> Errno {
    match tree.lookup(start, path, false) {
        Ok(_) => Errno::Exist,
        Err(Errno::NoEnt) => match tree.lookup_parent(start, path) {
            Ok(_) => Errno::RoFs,
            Err(errno) => errno,
        },
        Err(errno) => errno,
    }
}

/// Reads an iovec array and checks every buffer in it.
fn read_iovecs(memory: &GuestMemory, iovs: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
    if count > MAX_IOVECS {
        return Err(Errno::Inval);
    }
    let range = memory.record_range(iovs, layout::IOVEC_SIZE, count, layout::IOVEC_ALIGN)?;
    let mut out = Vec::with_capacity(count as usize);
    for record in memory.bytes()[range].chunks_exact(layout::IOVEC_SIZE as usize) {
        let buf = u32::from_le_bytes([record[0], record[1], record[2], record[3]]);
        let len = u32::from_le_bytes([record[4], record[5], record[6], record[7]]);
        memory.range(buf, len)?;
        out.push((buf, len));
    }
    Ok(out)
}

/// Copies `source[offset..]` into the iovecs; returns the bytes copied.
fn copy_out(
    memory: &mut GuestMemory,
    iovecs: &[(u32, u32)],
    source: &[u8],
    offset: u64,
) -> Result<u32, Errno> {
    let mut at = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(source.len());
    let mut copied: u32 = 0;
    for &(buf, len) in iovecs {
        let take = (len as usize)
            .min(source.len() - at)
            .min((u32::MAX - copied) as usize);
        if take == 0 {
            break;
        }
        memory
            .slice_mut(buf, take as u32)?
            .copy_from_slice(&source[at..at + take]);
        at += take;
        copied += take as u32;
    }
    Ok(copied)
}

fn sizes_get(
    memory: &mut GuestMemory,
    count: u32,
    bytes: usize,
    count_ptr: u32,
    size_ptr: u32,
) -> WasiResult {
    memory.check_u32(count_ptr)?;
    memory.check_u32(size_ptr)?;
    memory.write_u32(count_ptr, count)?;
    memory.write_u32(size_ptr, u32::try_from(bytes).map_err(|_| Errno::TooBig)?)
}

/// Writes NUL-terminated `strings` to `buf` and a pointer to each to
/// `pointers`, as `args_get` and `environ_get` do.
fn strings_get(
    memory: &mut GuestMemory,
    count: u32,
    strings: &[u8],
    pointers: u32,
    buf: u32,
) -> WasiResult {
    let pointer_range = memory.record_range(pointers, 4, count, 4)?;
    let len = u32::try_from(strings.len()).map_err(|_| Errno::TooBig)?;
    let buf_range = memory.range(buf, len)?;
    memory.bytes_mut()[buf_range].copy_from_slice(strings);
    let mut start = buf;
    let mut slot = pointer_range.start;
    for string in strings.split_inclusive(|&byte| byte == 0) {
        if slot + 4 > pointer_range.end {
            break;
        }
        memory.bytes_mut()[slot..slot + 4].copy_from_slice(&start.to_le_bytes());
        slot += 4;
        start = start.wrapping_add(string.len() as u32);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveBuilder;
    use alloc::vec;

    /// A system whose clock moves only when slept on.
    #[derive(Default)]
    struct Quiet {
        now: u64,
        out: Vec<u8>,
    }

    impl System for Quiet {
        fn write_console(&mut self, _stream: Stream, bytes: &[u8]) -> Result<(), Errno> {
            self.out.extend_from_slice(bytes);
            Ok(())
        }

        fn now_nanos(&mut self, _clock: Clock) -> u64 {
            self.now
        }

        fn sleep_nanos(&mut self, nanos: u64) {
            self.now += nanos;
        }

        fn random(&mut self, out: &mut [u8]) -> Result<(), Errno> {
            out.fill(4);
            Ok(())
        }
    }

    fn tree() -> Tree {
        let mut builder = ArchiveBuilder::new();
        builder.file("f", b"contents", 0).unwrap();
        builder.directory("d", 0).unwrap();
        Tree::from_ustar(builder.finish()).unwrap()
    }

    fn wasi() -> Wasi<Quiet> {
        Wasi::builder(Quiet::default())
            .preopen("/", tree())
            .build()
            .unwrap()
    }

    /// Opens `path` (written at 0x100) read-only; the fd is returned.
    fn open(wasi: &mut Wasi<Quiet>, memory: &mut [u8], path: &[u8]) -> Result<u32, Errno> {
        memory[0x100..0x100 + path.len()].copy_from_slice(path);
        let mut guest = GuestMemory::new(memory);
        let read = rights::FD_READ | rights::FD_SEEK | rights::FD_TELL;
        wasi.path_open(
            &mut guest,
            3,
            1,
            0x100,
            path.len() as u32,
            0,
            read,
            0,
            0,
            0x200,
        )?;
        guest.read_u32(0x200)
    }

    #[test]
    fn the_builder_refuses_what_wasi_cannot_carry() {
        let nul = Wasi::builder(Quiet::default()).arg("a\0b").build();
        assert_eq!(nul.err(), Some(ConfigError::Nul("a\0b".into())));
        let key = Wasi::builder(Quiet::default()).env("A=B", "c").build();
        assert_eq!(key.err(), Some(ConfigError::EnvName("A=B".into())));
        let empty = Wasi::builder(Quiet::default()).env("", "c").build();
        assert!(matches!(empty, Err(ConfigError::EnvName(_))));
        let name = Wasi::builder(Quiet::default())
            .preopen("", Tree::empty())
            .build();
        assert!(matches!(name, Err(ConfigError::PreopenName(_))));
        let crowded = Wasi::builder(Quiet::default())
            .preopen("/a", Tree::empty())
            .preopen("/b", Tree::empty())
            .max_open_fds(4)
            .build();
        assert_eq!(crowded.err(), Some(ConfigError::TooManyPreopens));
    }

    #[test]
    fn the_console_and_preopens_are_fds_0_to_3() {
        let wasi = wasi();
        assert_eq!(wasi.open_fds(), 4);
        assert!(matches!(wasi.fd(0).unwrap().kind, FdKind::ConsoleIn));
        assert!(matches!(
            wasi.fd(2).unwrap().kind,
            FdKind::ConsoleOut(Stream::Stderr)
        ));
        assert!(matches!(
            wasi.fd(3).unwrap().kind,
            FdKind::Directory { preopen: true, .. }
        ));
        assert_eq!(wasi.fd(4).err(), Some(Errno::BadF));
    }

    #[test]
    fn the_layer_works_without_wasm() {
        let mut wasi = wasi();
        let mut memory = vec![0u8; 4096];
        let fd = open(&mut wasi, &mut memory, b"f").unwrap();
        assert_eq!(fd, 4);
        // One iovec of 4 bytes at 0x400.
        memory[0x300..0x308].copy_from_slice(&[0, 4, 0, 0, 4, 0, 0, 0]);
        let mut guest = GuestMemory::new(&mut memory);
        wasi.fd_read(&mut guest, fd, 0x300, 1, 0x204).unwrap();
        assert_eq!(guest.read_u32(0x204), Ok(4));
        wasi.fd_tell(&mut guest, fd, 0x208).unwrap();
        assert_eq!(guest.read_u64(0x208), Ok(4));
        assert_eq!(&memory[0x400..0x404], b"cont");
    }

    #[test]
    fn renumbering_moves_an_fd_over_another() {
        let mut wasi = wasi();
        let mut memory = vec![0u8; 4096];
        let file = open(&mut wasi, &mut memory, b"f").unwrap();
        let dir = open(&mut wasi, &mut memory, b"d").unwrap();
        wasi.fd_renumber(file, dir).unwrap();
        assert_eq!(wasi.fd(file).err(), Some(Errno::BadF));
        assert!(matches!(wasi.fd(dir).unwrap().kind, FdKind::File { .. }));
        assert_eq!(wasi.fd_renumber(dir, dir), Ok(()));
        // The freed number is the next one handed out.
        assert_eq!(open(&mut wasi, &mut memory, b"d"), Ok(file));
    }

    #[test]
    fn poll_sleeps_until_the_first_clock_and_reports_it() {
        let mut wasi = wasi();
        let mut memory = vec![0u8; 4096];
        // Two relative monotonic clocks at 0x100 and 0x130: 30 ms and 10 ms.
        for (base, userdata, timeout) in [(0x100usize, 1u64, 30_000_000u64), (0x130, 2, 10_000_000)]
        {
            memory[base..base + 8].copy_from_slice(&userdata.to_le_bytes());
            memory[base + 16..base + 20].copy_from_slice(&1u32.to_le_bytes());
            memory[base + 24..base + 32].copy_from_slice(&timeout.to_le_bytes());
        }
        let mut guest = GuestMemory::new(&mut memory);
        wasi.poll_oneoff(&mut guest, 0x100, 0x400, 2, 0x80).unwrap();
        assert_eq!(guest.read_u32(0x80), Ok(1));
        assert_eq!(guest.read_u64(0x400), Ok(2));
        assert_eq!(wasi.system().now, 10_000_000);
    }

    #[test]
    fn console_writes_gather_every_iovec() {
        let mut wasi = wasi();
        let mut memory = vec![0u8; 64];
        // Two iovecs of 16 bytes each at 0.
        memory[0..16].copy_from_slice(&[32, 0, 0, 0, 16, 0, 0, 0, 32, 0, 0, 0, 16, 0, 0, 0]);
        let mut guest = GuestMemory::new(&mut memory);
        wasi.fd_write(&mut guest, 1, 0, 2, 16).unwrap();
        assert_eq!(guest.read_u32(16), Ok(32));
        assert_eq!(wasi.system().out.len(), 32);
    }

    /// A system with one listener (handle 1) whose connection (handle 2)
    /// has `incoming` bytes; it records what was sent and how poll waited.
    #[derive(Default)]
    struct Network {
        clock: Quiet,
        pending: bool,
        incoming: Vec<u8>,
        sent: Vec<u8>,
        waited: Vec<Option<u64>>,
        closed: Vec<SocketHandle>,
    }

    impl System for Network {
        fn write_console(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Errno> {
            self.clock.write_console(stream, bytes)
        }

        fn now_nanos(&mut self, clock: Clock) -> u64 {
            self.clock.now_nanos(clock)
        }

        fn sleep_nanos(&mut self, nanos: u64) {
            self.clock.sleep_nanos(nanos)
        }

        fn random(&mut self, out: &mut [u8]) -> Result<(), Errno> {
            self.clock.random(out)
        }

        fn accept(&mut self, listener: SocketHandle) -> Result<Option<SocketHandle>, Errno> {
            assert_eq!(listener, 1);
            Ok(core::mem::take(&mut self.pending).then_some(2))
        }

        fn receive(
            &mut self,
            stream: SocketHandle,
            buf: &mut [u8],
        ) -> Result<Option<usize>, Errno> {
            assert_eq!(stream, 2);
            if self.incoming.is_empty() {
                return Ok(None);
            }
            let n = buf.len().min(self.incoming.len());
            buf[..n].copy_from_slice(&self.incoming[..n]);
            self.incoming.drain(..n);
            Ok(Some(n))
        }

        fn send(&mut self, _: SocketHandle, bytes: &[u8]) -> Result<Option<usize>, Errno> {
            let n = bytes.len().min(4);
            self.sent.extend_from_slice(&bytes[..n]);
            Ok(Some(n))
        }

        fn close(&mut self, socket: SocketHandle) {
            self.closed.push(socket);
        }

        fn poll(
            &mut self,
            sockets: &[(SocketHandle, bool, bool)],
            timeout: Option<u64>,
        ) -> Result<Vec<Readiness>, Errno> {
            self.waited.push(timeout);
            let ready: Vec<Readiness> = sockets
                .iter()
                .map(|&(socket, ..)| Readiness {
                    read: socket == 1 && self.pending || socket == 2 && !self.incoming.is_empty(),
                    write: socket == 2,
                })
                .collect();
            // Time passes only when nothing was ready.
            if !ready.iter().any(|r| r.read || r.write) {
                self.clock.now += timeout.unwrap_or(0);
            }
            Ok(ready)
        }
    }

    fn networked() -> Wasi<Network> {
        Wasi::builder(Network::default())
            .preopen_socket(1)
            .preopen("/", tree())
            .build()
            .unwrap()
    }

    #[test]
    fn a_preopened_listener_is_fd_3_and_the_tree_follows() {
        let mut wasi = networked();
        let mut memory = vec![0u8; 256];
        let mut guest = GuestMemory::new(&mut memory);
        wasi.fd_fdstat_get(&mut guest, 3, 0x10).unwrap();
        assert_eq!(guest.read_u8(0x10), Ok(filetype::SOCKET_STREAM));
        assert_eq!(guest.read_u16(0x12), Ok(fdflags::NONBLOCK));
        // Go's scan for preopened directories skips it and finds fd 4.
        assert_eq!(wasi.fd_prestat_get(&mut guest, 3, 0x40), Err(Errno::NotDir));
        assert_eq!(wasi.fd_prestat_get(&mut guest, 4, 0x40), Ok(()));
        assert_eq!(wasi.fd_prestat_get(&mut guest, 5, 0x40), Err(Errno::BadF));
    }

    #[test]
    fn accepting_reading_and_writing_never_wait() {
        let mut wasi = networked();
        let mut memory = vec![0u8; 256];
        let mut guest = GuestMemory::new(&mut memory);
        assert_eq!(wasi.sock_accept(&mut guest, 3, 0, 0x20), Err(Errno::Again));
        wasi.system_mut().pending = true;
        wasi.sock_accept(&mut guest, 3, 0, 0x20).unwrap();
        let stream = guest.read_u32(0x20).unwrap();
        assert_eq!(stream, 5, "the lowest free fd");
        // An iovec of 8 bytes at 0x80.
        guest.write_u32(0x00, 0x80).unwrap();
        guest.write_u32(0x04, 8).unwrap();
        assert_eq!(
            wasi.fd_read(&mut guest, stream, 0, 1, 0x30),
            Err(Errno::Again)
        );
        wasi.system_mut().incoming = b"hello".to_vec();
        wasi.fd_read(&mut guest, stream, 0, 1, 0x30).unwrap();
        assert_eq!(guest.read_u32(0x30), Ok(5));
        assert_eq!(guest.slice(0x80, 5), Ok(&b"hello"[..]));
        // A short write is a short count, as sockets give.
        wasi.fd_write(&mut guest, stream, 0, 1, 0x30).unwrap();
        assert_eq!(guest.read_u32(0x30), Ok(4));
        assert_eq!(wasi.system().sent, b"hell");
        wasi.fd_close(stream).unwrap();
        assert_eq!(wasi.system().closed, [2]);
        // Socket calls on fds that are not sockets.
        assert_eq!(
            wasi.sock_accept(&mut guest, 4, 0, 0x20),
            Err(Errno::NotSock)
        );
        assert_eq!(wasi.sock_shutdown(4, 2), Err(Errno::NotSock));
    }

    #[test]
    fn poll_waits_for_sockets_and_the_first_clock_together() {
        let mut wasi = networked();
        let mut memory = vec![0u8; 4096];
        // A read subscription on the listener (fd 3) at 0x100, a 10 ms clock at 0x130.
        memory[0x100..0x108].copy_from_slice(&7u64.to_le_bytes());
        memory[0x108] = eventtype::FD_READ;
        memory[0x110..0x114].copy_from_slice(&3u32.to_le_bytes());
        memory[0x130..0x138].copy_from_slice(&9u64.to_le_bytes());
        memory[0x130 + 16..0x130 + 20].copy_from_slice(&1u32.to_le_bytes());
        memory[0x130 + 24..0x130 + 32].copy_from_slice(&10_000_000u64.to_le_bytes());
        let mut guest = GuestMemory::new(&mut memory);
        // Nothing pending: one wait for both, and the clock fires.
        wasi.poll_oneoff(&mut guest, 0x100, 0x400, 2, 0x80).unwrap();
        assert_eq!(wasi.system().waited, [Some(10_000_000)]);
        assert_eq!(guest.read_u32(0x80), Ok(1));
        assert_eq!(guest.read_u64(0x400), Ok(9));
        // A connection waiting: the socket's event, and the clock is not due.
        wasi.system_mut().pending = true;
        wasi.system_mut().clock.now = 0;
        wasi.poll_oneoff(&mut guest, 0x100, 0x400, 2, 0x80).unwrap();
        assert_eq!(guest.read_u32(0x80), Ok(1));
        assert_eq!(guest.read_u64(0x400), Ok(7));
        assert_eq!(guest.read_u8(0x40a), Ok(eventtype::FD_READ));
    }
}
