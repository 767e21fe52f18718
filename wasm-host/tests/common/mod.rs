//! Shared by the integration tests: a deterministic [`System`], the wasm
//! signature of every preview1 import, and a way to build small wat
//! modules that call them.
#![allow(dead_code)]

use wasm_host::{
    Clock, DirEntry, DirectoryHandle, Errno, FileHandle, MemoryVolume, Metadata, OpenOptions,
    Opened, Stream, System,
};

/// A [`System`] with a virtual clock that only moves when the program sleeps,
/// captured console output, scripted console input, predictable "random"
/// bytes, and directories on a [`MemoryVolume`].
#[derive(Default)]
pub struct FakeSystem {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdin: Vec<u8>,
    /// Nanoseconds since the virtual boot.
    pub now: u64,
    pub slept: Vec<u64>,
    pub yields: u32,
    /// When set, console writes fail with this.
    pub console_error: Option<Errno>,
    pub volume: MemoryVolume,
}

/// 2023-11-14T22:13:20Z, the virtual realtime clock's zero.
pub const FAKE_EPOCH_NANOS: u64 = 1_700_000_000_000_000_000;

impl System for FakeSystem {
    fn write_console(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Errno> {
        if let Some(errno) = self.console_error {
            return Err(errno);
        }
        match stream {
            Stream::Stdout => self.stdout.extend_from_slice(bytes),
            Stream::Stderr => self.stderr.extend_from_slice(bytes),
        }
        Ok(())
    }

    fn read_console(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        let take = buf.len().min(self.stdin.len());
        buf[..take].copy_from_slice(&self.stdin[..take]);
        self.stdin.drain(..take);
        Ok(take)
    }

    fn now_nanos(&mut self, clock: Clock) -> u64 {
        match clock {
            Clock::Realtime => FAKE_EPOCH_NANOS.saturating_add(self.now),
            Clock::Monotonic => self.now.saturating_add(1),
        }
    }

    fn sleep_nanos(&mut self, nanos: u64) {
        self.slept.push(nanos);
        self.now = self.now.saturating_add(nanos);
    }

    fn random(&mut self, out: &mut [u8]) -> Result<(), Errno> {
        for (index, byte) in out.iter_mut().enumerate() {
            *byte = (index as u8).wrapping_mul(31).wrapping_add(7);
        }
        Ok(())
    }

    fn yield_now(&mut self) {
        self.yields += 1;
    }

    fn open(
        &mut self,
        dir: DirectoryHandle,
        path: &str,
        options: OpenOptions,
    ) -> Result<Opened, Errno> {
        self.volume.open(dir, path, options)
    }

    fn mkdir(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        self.volume.mkdir(dir, path)
    }

    fn remove(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        self.volume.remove(dir, path)
    }

    fn rename(
        &mut self,
        dir: DirectoryHandle,
        from: &str,
        to_dir: DirectoryHandle,
        to: &str,
    ) -> Result<(), Errno> {
        self.volume.rename(dir, from, to_dir, to)
    }

    fn list(&mut self, dir: DirectoryHandle, skip: u64, max: u32) -> Result<Vec<DirEntry>, Errno> {
        self.volume.list(dir, skip, max)
    }

    fn stat(&mut self, dir: DirectoryHandle, path: &str) -> Result<Metadata, Errno> {
        self.volume.stat(dir, path)
    }

    fn read_at(&mut self, file: FileHandle, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        self.volume.read_at(file, offset, buf)
    }

    fn write_at(&mut self, file: FileHandle, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        self.volume.write_at(file, offset, bytes)
    }

    fn append(&mut self, file: FileHandle, bytes: &[u8]) -> Result<u64, Errno> {
        self.volume.append(file, bytes)
    }

    fn file_size(&mut self, file: FileHandle) -> Result<u64, Errno> {
        self.volume.file_size(file)
    }

    fn truncate(&mut self, file: FileHandle, size: u64) -> Result<(), Errno> {
        self.volume.truncate(file, size)
    }

    fn sync_file(&mut self, file: FileHandle) -> Result<(), Errno> {
        self.volume.sync_file(file)
    }

    fn close_file(&mut self, file: FileHandle) {
        self.volume.close_file(file)
    }

    fn close_directory(&mut self, dir: DirectoryHandle) {
        self.volume.close_directory(dir)
    }
}

/// Every `wasi_snapshot_preview1` import with its wasm parameter types;
/// all return an i32 errno except `proc_exit`, which returns nothing.
pub const SIGNATURES: &[(&str, &[&str])] = &[
    ("args_get", &["i32", "i32"]),
    ("args_sizes_get", &["i32", "i32"]),
    ("clock_res_get", &["i32", "i32"]),
    ("clock_time_get", &["i32", "i64", "i32"]),
    ("environ_get", &["i32", "i32"]),
    ("environ_sizes_get", &["i32", "i32"]),
    ("fd_advise", &["i32", "i64", "i64", "i32"]),
    ("fd_allocate", &["i32", "i64", "i64"]),
    ("fd_close", &["i32"]),
    ("fd_datasync", &["i32"]),
    ("fd_fdstat_get", &["i32", "i32"]),
    ("fd_fdstat_set_flags", &["i32", "i32"]),
    ("fd_fdstat_set_rights", &["i32", "i64", "i64"]),
    ("fd_filestat_get", &["i32", "i32"]),
    ("fd_filestat_set_size", &["i32", "i64"]),
    ("fd_filestat_set_times", &["i32", "i64", "i64", "i32"]),
    ("fd_pread", &["i32", "i32", "i32", "i64", "i32"]),
    ("fd_prestat_dir_name", &["i32", "i32", "i32"]),
    ("fd_prestat_get", &["i32", "i32"]),
    ("fd_pwrite", &["i32", "i32", "i32", "i64", "i32"]),
    ("fd_read", &["i32", "i32", "i32", "i32"]),
    ("fd_readdir", &["i32", "i32", "i32", "i64", "i32"]),
    ("fd_renumber", &["i32", "i32"]),
    ("fd_seek", &["i32", "i64", "i32", "i32"]),
    ("fd_sync", &["i32"]),
    ("fd_tell", &["i32", "i32"]),
    ("fd_write", &["i32", "i32", "i32", "i32"]),
    ("path_create_directory", &["i32", "i32", "i32"]),
    ("path_filestat_get", &["i32", "i32", "i32", "i32", "i32"]),
    (
        "path_filestat_set_times",
        &["i32", "i32", "i32", "i32", "i64", "i64", "i32"],
    ),
    (
        "path_link",
        &["i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    ),
    (
        "path_open",
        &[
            "i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32",
        ],
    ),
    ("path_readlink", &["i32", "i32", "i32", "i32", "i32", "i32"]),
    ("path_remove_directory", &["i32", "i32", "i32"]),
    ("path_rename", &["i32", "i32", "i32", "i32", "i32", "i32"]),
    ("path_symlink", &["i32", "i32", "i32", "i32", "i32"]),
    ("path_unlink_file", &["i32", "i32", "i32"]),
    ("poll_oneoff", &["i32", "i32", "i32", "i32"]),
    ("proc_exit", &["i32"]),
    ("proc_raise", &["i32"]),
    ("random_get", &["i32", "i32"]),
    ("sched_yield", &[]),
    ("sock_accept", &["i32", "i32", "i32"]),
    ("sock_recv", &["i32", "i32", "i32", "i32", "i32", "i32"]),
    ("sock_send", &["i32", "i32", "i32", "i32", "i32"]),
    ("sock_shutdown", &["i32", "i32"]),
];

/// The wat import of every function, named `$<import name>`.
pub fn all_imports() -> String {
    let mut out = String::new();
    for (name, params) in SIGNATURES {
        let params = params.join(" ");
        let result = if *name == "proc_exit" {
            ""
        } else {
            "(result i32)"
        };
        out.push_str(&format!(
            "  (import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} (param {params}) {result}))\n"
        ));
    }
    out
}

/// A wat string literal of arbitrary bytes.
pub fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("\\{byte:02x}")).collect()
}

/// A module importing everything, with one page of memory holding `data`
/// (address, bytes) and a `_start` running `body`.
pub fn module(data: &[(u32, &[u8])], body: &str) -> Vec<u8> {
    let mut text = String::from("(module\n");
    text.push_str(&all_imports());
    text.push_str("  (memory (export \"memory\") 1)\n");
    for (address, bytes) in data {
        text.push_str(&format!(
            "  (data (i32.const {address}) \"{}\")\n",
            wat_bytes(bytes)
        ));
    }
    text.push_str(&format!("  (func (export \"_start\")\n{body}\n  )\n)\n"));
    wat::parse_str(&text).unwrap_or_else(|error| panic!("bad wat: {error}\n{text}"))
}

/// Little-endian u32s, for iovec and similar records in data segments.
pub fn words(values: &[u32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}
