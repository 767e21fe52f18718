//! The `wasi_snapshot_preview1` constants and record layouts this host
//! reads and writes in guest memory. Numbers and offsets follow WASI's
//! `legacy/preview1/docs.md`; every record is little-endian.

/// The import module every function here lives in.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// Clock ids (`clockid`).
pub mod clock {
    pub const REALTIME: u32 = 0;
    pub const MONOTONIC: u32 = 1;
    pub const PROCESS_CPUTIME: u32 = 2;
    pub const THREAD_CPUTIME: u32 = 3;
}

/// File types (`filetype`, one byte).
pub mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const BLOCK_DEVICE: u8 = 1;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SOCKET_DGRAM: u8 = 5;
    pub const SOCKET_STREAM: u8 = 6;
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// Descriptor flags (`fdflags`, 16 bits).
pub mod fdflags {
    pub const APPEND: u16 = 1 << 0;
    pub const DSYNC: u16 = 1 << 1;
    pub const NONBLOCK: u16 = 1 << 2;
    pub const RSYNC: u16 = 1 << 3;
    pub const SYNC: u16 = 1 << 4;
    pub const ALL: u16 = APPEND | DSYNC | NONBLOCK | RSYNC | SYNC;
}

/// `path_open` flags (`oflags`, 16 bits).
pub mod oflags {
    pub const CREAT: u16 = 1 << 0;
    pub const DIRECTORY: u16 = 1 << 1;
    pub const EXCL: u16 = 1 << 2;
    pub const TRUNC: u16 = 1 << 3;
    pub const ALL: u16 = CREAT | DIRECTORY | EXCL | TRUNC;
}

/// `lookupflags` (32 bits).
pub mod lookupflags {
    pub const SYMLINK_FOLLOW: u32 = 1 << 0;
}

/// `fstflags` for the `*_set_times` calls (16 bits).
pub mod fstflags {
    pub const ATIM: u16 = 1 << 0;
    pub const ATIM_NOW: u16 = 1 << 1;
    pub const MTIM: u16 = 1 << 2;
    pub const MTIM_NOW: u16 = 1 << 3;
    pub const ALL: u16 = ATIM | ATIM_NOW | MTIM | MTIM_NOW;
}

/// `whence` for `fd_seek`.
pub mod whence {
    pub const SET: u8 = 0;
    pub const CUR: u8 = 1;
    pub const END: u8 = 2;
}

/// `advice` for `fd_advise`: 0 (normal) to 5 (noreuse).
pub const ADVICE_MAX: u8 = 5;

/// Subscription and event types (`eventtype`).
pub mod eventtype {
    pub const CLOCK: u8 = 0;
    pub const FD_READ: u8 = 1;
    pub const FD_WRITE: u8 = 2;
}

/// `subclockflags`: the timeout is an absolute time on the clock.
pub const SUBSCRIPTION_CLOCK_ABSTIME: u16 = 1 << 0;

/// `preopentype`: the only kind is a directory.
pub const PREOPENTYPE_DIR: u8 = 0;

/// Rights (`rights`, 64 bits; preview1 defines bits 0 to 29).
pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_READLINK: u64 = 1 << 15;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const PATH_SYMLINK: u64 = 1 << 24;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    pub const SOCK_SHUTDOWN: u64 = 1 << 28;
    pub const SOCK_ACCEPT: u64 = 1 << 29;
    /// Every right preview1 defines.
    pub const ALL: u64 = (1 << 30) - 1;

    /// What the console streams carry: reading or writing is added per
    /// stream.
    pub const CONSOLE: u64 =
        FD_FDSTAT_SET_FLAGS | FD_SYNC | FD_DATASYNC | FD_FILESTAT_GET | POLL_FD_READWRITE;
}

/// Sizes and field offsets of the records in guest memory.
pub mod layout {
    /// `iovec` / `ciovec`: `buf: u32` at 0, `buf_len: u32` at 4.
    pub const IOVEC_SIZE: u32 = 8;
    pub const IOVEC_ALIGN: u32 = 4;

    /// `fdstat`: filetype u8 at 0, flags u16 at 2, rights_base u64 at 8,
    /// rights_inheriting u64 at 16.
    pub const FDSTAT_SIZE: u32 = 24;
    pub const FDSTAT_ALIGN: u32 = 8;

    /// `filestat`: dev u64 at 0, ino u64 at 8, filetype u8 at 16, nlink u64
    /// at 24, size u64 at 32, atim u64 at 40, mtim u64 at 48, ctim u64 at 56.
    pub const FILESTAT_SIZE: u32 = 64;
    pub const FILESTAT_ALIGN: u32 = 8;

    /// `dirent` header: d_next u64 at 0, d_ino u64 at 8, d_namlen u32 at 16,
    /// d_type u8 at 20; the name follows the 24 bytes.
    pub const DIRENT_SIZE: usize = 24;

    /// `prestat`: tag u8 at 0, pr_name_len u32 at 4.
    pub const PRESTAT_SIZE: u32 = 8;
    pub const PRESTAT_ALIGN: u32 = 4;

    /// `subscription`: userdata u64 at 0, tag u8 at 8, the union from 16:
    /// clock { id u32 at 16, timeout u64 at 24, precision u64 at 32,
    /// flags u16 at 40 } or fd_readwrite { fd u32 at 16 }.
    pub const SUBSCRIPTION_SIZE: u32 = 48;
    pub const SUBSCRIPTION_ALIGN: u32 = 8;

    /// `event`: userdata u64 at 0, error u16 at 8, type u8 at 10,
    /// fd_readwrite { nbytes u64 at 16, flags u16 at 24 }.
    pub const EVENT_SIZE: u32 = 32;
    pub const EVENT_ALIGN: u32 = 8;
}
