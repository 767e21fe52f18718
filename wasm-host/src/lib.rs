//! A WebAssembly host for `wasi_snapshot_preview1` programs, in particular
//! Go programs built with `GOOS=wasip1 GOARCH=wasm`.
//!
//! - [`system`]: the [`System`] trait, everything outside the program's
//!   memory (console, clocks, sleep, entropy, sockets, writable
//!   directories and files). The host implements it with
//!   std; the OS implements it over a guest's capability ring.
//! - [`wasi`]: every preview1 import, as plain functions over the program's
//!   memory and the instance's state ([`Wasi`]); what the instance was not
//!   granted answers with an errno, never a trap.
//! - [`archive`] and [`tree`]: the read-only file tree, a ustar image
//!   parsed and checked once.
//! - [`volume`]: [`MemoryVolume`], writable directories in memory for a
//!   [`System`] to serve.
//! - [`host`]: wasmi underneath: loading, limits (memory, fuel, call
//!   depth), running `_start` to an exit code or a [`RunError`].
//!
//! `no_std` with `alloc`; the `std` feature adds [`StdSystem`], a tree from
//! a host directory, and the `wasm-host-run` binary.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod abi;
pub mod archive;
pub mod errno;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod host;
pub mod memory;
#[cfg(feature = "std")]
pub mod std_system;
pub mod system;
pub mod tree;
pub mod volume;
pub mod wasi;

pub use archive::{ArchiveBuilder, ArchiveError, BuildError};
pub use errno::Errno;
pub use host::{Host, Limits, Outcome, PAGE_SIZE, Program, RunError, run};
#[cfg(feature = "std")]
pub use std_system::{StdSystem, archive_from_dir};
pub use system::{
    Clock, DirEntry, DirectoryHandle, FileHandle, MAX_FILE_IO, Metadata, OpenOptions, Opened,
    Readiness, SocketHandle, Stream, System,
};
pub use tree::{Image, Tree};
pub use volume::MemoryVolume;
pub use wasi::{Wasi, WasiBuilder};
