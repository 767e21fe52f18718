//! File-system throughput on the volume mounted at its first mount, for
//! bench/fs (which runs the same measurements in a Linux guest on ext4):
//!
//! - `seq-write`: `big` created, FILE_MIB MiB written in 60 KiB writeAts,
//!   then synced;
//! - `seq-read`: `big` read from start to end, 60 KiB per readAt;
//! - `rand-read`: RANDOM_READS readAts of 4 KiB at 4 KiB-aligned offsets
//!   of `big` (xorshift64 from a fixed seed, as on Linux);
//! - `small-files`: SMALL_FILES times: `small/fN.tmp` created, 1 KiB
//!   written, synced, released and renamed to `small/fN`.
//!
//! Each prints one line, `NAME bytes=B ops=N ns=T` (Timer.now nanoseconds;
//! the console puts `fsbench: ` before it, as bench/fs-linux prints it),
//! then `done`. What was read is checked against what was written (each
//! 4 KiB page holds a byte of its own), so a wrong read is an error rather
//! than a figure.
//! Arguments: `[FILE_MIB [RANDOM_READS [SMALL_FILES]]]` (16, 2000, 200).
#![no_std]
#![forbid(unsafe_code)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use guest_rt::caps::interfaces::{directory, file};
use guest_rt::caps::{CapId, TransportError};
use guest_rt::clients::{release, start_info, timer_now};
use guest_rt::println;
use guest_rt::ring::{CallError, call, call_expecting, call_with_caps};

guest_rt::entry!(main);

const CHUNK: usize = 60 * 1024;
const PAGE: u64 = 4096;
const SMALL: usize = 1024;
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

fn main() -> i32 {
    let info = start_info().expect("start info");
    let Some(mount) = info.mounts.first() else {
        println!("no volume is mounted for this guest");
        return 2;
    };
    let root = CapId::from_raw(mount.directory).expect("a mount names a capability");
    let mut numbers = [16u64, 2000, 200];
    for (slot, arg) in numbers.iter_mut().zip(&info.args) {
        match arg.parse::<u64>() {
            Ok(n) if n >= 1 => *slot = n,
            _ => {
                println!("usage: fsbench [FILE_MIB [RANDOM_READS [SMALL_FILES]]]: bad '{arg}'");
                return 2;
            }
        }
    }
    let [file_mib, random_reads, small_files] = numbers;
    println!(
        "{} on {}: {file_mib} MiB file, {random_reads} random reads, {small_files} small files",
        if mount.writable {
            "read-write"
        } else {
            "read-only"
        },
        mount.path
    );
    match run(root, file_mib << 20, random_reads, small_files) {
        Ok(()) => {
            println!("done");
            0
        }
        Err(error) => {
            println!("failed: {error}");
            1
        }
    }
}

/// The byte every position of the page at `offset` holds.
fn page_byte(offset: u64) -> u8 {
    ((offset / PAGE).wrapping_mul(31) + 7) as u8
}

fn report(name: &str, bytes: u64, ops: u64, ns: u64) {
    println!("{name} bytes={bytes} ops={ops} ns={ns}");
}

fn now() -> Result<u64, String> {
    timer_now().map_err(|e| format!("Timer.now: {e:?}"))
}

fn run(root: CapId, size: u64, random_reads: u64, small_files: u64) -> Result<(), String> {
    let failed = |what: &str| {
        let what = String::from(what);
        move |e: CallError| format!("{what}: {e:?}")
    };

    // Sequential write, then sync.
    let mut chunk = Vec::with_capacity(CHUNK);
    let start = now()?;
    let big = open(root, "big", true).map_err(failed("creating big"))?;
    let mut offset = 0;
    let mut ops = 0;
    while offset < size {
        let length = (size - offset).min(CHUNK as u64);
        fill(&mut chunk, offset, length);
        call::<file::WriteAt>(
            big,
            &file::WriteAtParams {
                offset,
                data: chunk.clone(),
            },
        )
        .map_err(failed("writing big"))?;
        offset += length;
        ops += 1;
    }
    call::<file::Sync>(big, &file::SyncParams {}).map_err(failed("syncing big"))?;
    report("seq-write", size, ops, now()? - start);

    // Sequential read.
    let start = now()?;
    let mut offset = 0;
    let mut ops = 0;
    loop {
        let data = read_at(big, offset, CHUNK).map_err(failed("reading big"))?;
        if data.is_empty() {
            break;
        }
        check(offset, &data)?;
        offset += data.len() as u64;
        ops += 1;
    }
    report("seq-read", offset, ops, now()? - start);
    if offset != size {
        return Err(format!("read {offset} bytes of big, wrote {size}"));
    }

    // Random 4 KiB reads.
    let pages = size / PAGE;
    let mut state = SEED;
    let start = now()?;
    for _ in 0..random_reads {
        let offset = xorshift(&mut state) % pages * PAGE;
        let data = read_at(big, offset, PAGE as usize).map_err(failed("reading big"))?;
        if data.len() as u64 != PAGE {
            return Err(format!(
                "a 4 KiB read at {offset} gave {} bytes",
                data.len()
            ));
        }
        check(offset, &data)?;
    }
    report(
        "rand-read",
        random_reads * PAGE,
        random_reads,
        now()? - start,
    );
    let _ = release(big);

    // Small files, rename-updated.
    call::<directory::Mkdir>(
        root,
        &directory::MkdirParams {
            path: "small".into(),
        },
    )
    .map_err(failed("mkdir small"))?;
    let content = [0x5au8; SMALL];
    let start = now()?;
    for i in 0..small_files {
        let temporary = format!("small/f{i}.tmp");
        let f = open(root, &temporary, true).map_err(failed("creating a small file"))?;
        call::<file::WriteAt>(
            f,
            &file::WriteAtParams {
                offset: 0,
                data: content.to_vec(),
            },
        )
        .map_err(failed("writing a small file"))?;
        call::<file::Sync>(f, &file::SyncParams {}).map_err(failed("syncing a small file"))?;
        let _ = release(f);
        call::<directory::Rename>(
            root,
            &directory::RenameParams {
                from: temporary,
                to_directory: 0,
                to: format!("small/f{i}"),
            },
        )
        .map_err(failed("renaming a small file"))?;
    }
    report(
        "small-files",
        small_files * SMALL as u64,
        small_files,
        now()? - start,
    );
    Ok(())
}

/// Opens `path` under `dir`; with `create`, created or truncated.
fn open(dir: CapId, path: &str, create: bool) -> Result<CapId, CallError> {
    let params = directory::OpenParams {
        path: String::from(path),
        create,
        exclusive: false,
        truncate: create,
        directory: false,
    };
    let (_, caps) = call_with_caps::<directory::Open>(dir, &params, &[], false)?;
    caps.first()
        .copied()
        .ok_or(CallError::Transport(TransportError::InvalidCap))
}

fn read_at(f: CapId, offset: u64, max: usize) -> Result<Vec<u8>, CallError> {
    call_expecting::<file::ReadAt>(
        f,
        &file::ReadAtParams {
            offset,
            max: max as u32,
        },
        max + 1024,
    )
    .map(|r| r.data)
}

/// `chunk` becomes the `length` bytes of `big` from `offset`.
fn fill(chunk: &mut Vec<u8>, offset: u64, length: u64) {
    chunk.clear();
    let mut at = offset;
    while at < offset + length {
        let end = ((at / PAGE + 1) * PAGE).min(offset + length);
        chunk.resize(chunk.len() + (end - at) as usize, page_byte(at));
        at = end;
    }
}

/// Checks that `data`, read at `offset`, holds what was written there: the
/// first and last byte of each page it touches (a whole check would cost
/// more than the read).
fn check(offset: u64, data: &[u8]) -> Result<(), String> {
    let end = offset + data.len() as u64;
    let mut at = offset;
    while at < end {
        let last = ((at / PAGE + 1) * PAGE).min(end) - 1;
        for probe in [at, last] {
            let byte = data[(probe - offset) as usize];
            if byte != page_byte(probe) {
                return Err(format!(
                    "byte {probe} of big is {byte:#x}, was written {:#x}",
                    page_byte(probe)
                ));
            }
        }
        at = last + 1;
    }
    Ok(())
}

/// xorshift64 (Marsaglia), the same sequence bench/fs-linux draws.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
