//! Uses the volume mounted at its first mount through Directory and File
//! capabilities; each check prints what it got, and the guest exits 0 when
//! all passed.
//!
//! `files boots`: reads `boots` (missing: 0), writes N+1 to `boots.tmp`,
//! syncs, renames it over `boots`, prints `boots: N+1`.
//! `files check`: every Directory and File method, their errors, and path
//! escapes refused.
//! `files readonly`: on a read-only mount every change is refused and
//! reading still works.
//! `files abuse`: opens until refused (the per-guest limit), huge offsets
//! and lengths, a released capability is stale.
//! `files loop`: checks `current` (if there) is one whole generation and
//! says which (`found generation N intact`), then rename-updates it
//! forever, printing each generation once it is durable (for power cuts).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use guest_rt::caps::interfaces::{directory, file};
use guest_rt::caps::{CapId, FileError, TransportError};
use guest_rt::clients::{release, start_info};
use guest_rt::files::{self, file_error, sync, write_at};
use guest_rt::println;
use guest_rt::ring::{CallError, call, call_expecting};

guest_rt::entry!(main);

fn main() -> i32 {
    let info = start_info().expect("start info");
    let Some(mount) = info.mounts.first() else {
        println!("no volume is mounted for this guest");
        return 2;
    };
    let root = CapId::from_raw(mount.directory).expect("a mount names a capability");
    println!(
        "mounted {} ({})",
        mount.path,
        if mount.writable {
            "read-write"
        } else {
            "read-only"
        }
    );
    match info.args.first().map(|a| a.as_str()) {
        Some("boots") => boots(root),
        Some("check") => check(root),
        Some("readonly") => read_only(root),
        Some("abuse") => abuse(root),
        Some("loop") => update_loop(root),
        _ => {
            println!("usage: files boots|check|readonly|abuse|loop");
            2
        }
    }
}

fn open(
    dir: CapId,
    path: &str,
    create: bool,
    exclusive: bool,
    truncate: bool,
    directory: bool,
) -> Result<(CapId, directory::Metadata), CallError> {
    let opened = files::open(
        dir,
        &directory::OpenParams {
            path: String::from(path),
            create,
            exclusive,
            truncate,
            directory,
        },
    )?;
    let metadata = directory::Metadata {
        directory: opened.directory,
        size: opened.size,
    };
    Ok((opened.cap, metadata))
}

fn rename(dir: CapId, from: &str, to: &str) -> Result<(), CallError> {
    files::rename(dir, from, None, to)
}

fn read_all(f: CapId) -> Result<Vec<u8>, CallError> {
    let mut data = Vec::new();
    loop {
        let chunk = call_expecting::<file::ReadAt>(
            f,
            &file::ReadAtParams {
                offset: data.len() as u64,
                max: 16 * 1024,
            },
            17 * 1024,
        )?
        .data;
        if chunk.is_empty() {
            return Ok(data);
        }
        data.extend_from_slice(&chunk);
    }
}

/// Replaces `name` with `content` in one step: a temporary file, synced,
/// renamed over it.
fn replace(dir: CapId, name: &str, content: &[u8]) -> Result<(), CallError> {
    let temporary = format!("{name}.tmp");
    let (f, _) = open(dir, &temporary, true, false, true, false)?;
    write_at(f, 0, content)?;
    sync(f)?;
    let _ = release(f);
    rename(dir, &temporary, name)
}

fn boots(root: CapId) -> i32 {
    let previous = match open(root, "boots", false, false, false, false) {
        Ok((f, _)) => {
            let text = read_all(f).expect("reading boots");
            let _ = release(f);
            match core::str::from_utf8(&text)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
            {
                Some(n) => n,
                None => {
                    println!("boots holds no number: {text:?}");
                    return 1;
                }
            }
        }
        Err(error) if file_error(&error) == Some(FileError::NotFound) => 0,
        Err(error) => {
            println!("opening boots: {error:?}");
            return 1;
        }
    };
    let now = previous + 1;
    if let Err(error) = replace(root, "boots", format!("{now}\n").as_bytes()) {
        println!("writing boots: {error:?}");
        return 1;
    }
    println!("boots: {now}");
    0
}

/// Counts failed checks, printing each result.
struct Checks {
    failed: u32,
    passed: u32,
}

impl Checks {
    fn ok(&mut self, name: &str, good: bool, got: &dyn core::fmt::Debug) {
        if good {
            self.passed += 1;
            println!("ok {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: got {got:?}");
        }
    }

    fn refused<T: core::fmt::Debug>(
        &mut self,
        name: &str,
        result: Result<T, CallError>,
        expected: FileError,
    ) {
        let got = result.as_ref().err().and_then(file_error);
        self.ok(name, got == Some(expected), &result);
    }

    fn exit_code(&self) -> i32 {
        println!("{} checks passed, {} failed", self.passed, self.failed);
        i32::from(self.failed != 0)
    }
}

fn check(root: CapId) -> i32 {
    let mut c = Checks {
        failed: 0,
        passed: 0,
    };
    let created = open(root, "a.txt", true, true, false, false);
    c.ok("create", created.is_ok(), &created);
    let Ok((a, _)) = created else {
        return c.exit_code();
    };
    c.refused(
        "create exclusive again",
        open(root, "a.txt", true, true, false, false),
        FileError::Exists,
    );
    let wrote = write_at(a, 0, b"hello world");
    c.ok("writeAt", wrote.is_ok(), &wrote);
    let read = read_all(a);
    c.ok(
        "readAt",
        read.as_ref().is_ok_and(|r| r == b"hello world"),
        &read,
    );
    let appended = call::<file::Append>(
        a,
        &file::AppendParams {
            data: b"!".to_vec(),
        },
    );
    c.ok(
        "append",
        appended.as_ref().is_ok_and(|r| r.size == 12),
        &appended,
    );
    let cut = call::<file::Truncate>(a, &file::TruncateParams { size: 5 });
    let size = call::<file::Size>(a, &file::SizeParams {});
    c.ok(
        "truncate and size",
        cut.is_ok() && size.as_ref().is_ok_and(|s| s.size == 5),
        &size,
    );
    let made = call::<directory::Mkdir>(root, &directory::MkdirParams { path: "sub".into() });
    c.ok("mkdir", made.is_ok(), &made);
    c.refused(
        "mkdir again",
        call::<directory::Mkdir>(root, &directory::MkdirParams { path: "sub".into() }),
        FileError::Exists,
    );
    let sub = open(root, "sub", false, false, false, true);
    c.ok(
        "open a directory",
        sub.as_ref().is_ok_and(|(_, m)| m.directory),
        &sub,
    );
    if let Ok((sub, _)) = sub {
        for i in 0..40 {
            let _ =
                open(sub, &format!("f{i:02}"), true, false, false, false).map(|(f, _)| release(f));
        }
        let mut names = Vec::new();
        loop {
            let page = call_expecting::<directory::List>(
                sub,
                &directory::ListParams {
                    skip: names.len() as u64,
                    max: 16,
                },
                8192,
            );
            match page {
                Ok(page) if page.entries.is_empty() => break,
                Ok(page) => names.extend(page.entries.into_iter().map(|e| e.name)),
                Err(error) => {
                    c.ok("list in pages", false, &error);
                    break;
                }
            }
        }
        let expected: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
        c.ok("list in pages", names == expected, &names);
        // A directory's paths stay inside it.
        c.refused(
            "`..` refused",
            open(sub, "../a.txt", false, false, false, false),
            FileError::Escapes,
        );
        c.refused(
            "absolute path refused",
            open(sub, "/a.txt", false, false, false, false),
            FileError::Escapes,
        );
        c.refused(
            "remove a non-empty directory",
            call::<directory::Remove>(root, &directory::RemoveParams { path: "sub".into() }),
            FileError::NotEmpty,
        );
        let _ = release(sub);
    }
    c.refused(
        "open a missing file",
        open(root, "missing", false, false, false, false),
        FileError::NotFound,
    );
    c.refused(
        "a file as a directory",
        open(root, "a.txt", false, false, false, true),
        FileError::NotDirectory,
    );
    c.refused(
        "a directory with create",
        open(root, "sub", true, false, false, false),
        FileError::IsDirectory,
    );
    let moved = rename(root, "a.txt", "sub/b.txt");
    let stat = call::<directory::Stat>(
        root,
        &directory::StatParams {
            path: "sub/b.txt".into(),
        },
    );
    c.ok(
        "rename",
        moved.is_ok() && stat.as_ref().is_ok_and(|s| s.metadata.size == 5),
        &stat,
    );
    // `a` names a path: after the rename nothing is there.
    c.refused(
        "a renamed file's old name",
        read_all(a),
        FileError::NotFound,
    );
    let _ = release(a);
    let info = call::<directory::Info>(root, &directory::InfoParams {});
    c.ok(
        "info",
        info.as_ref()
            .is_ok_and(|i| i.writable && i.free_bytes > 0 && i.free_bytes < i.size_bytes),
        &info,
    );
    c.exit_code()
}

fn read_only(root: CapId) -> i32 {
    let mut c = Checks {
        failed: 0,
        passed: 0,
    };
    c.refused(
        "create",
        open(root, "new", true, false, false, false),
        FileError::ReadOnly,
    );
    c.refused(
        "mkdir",
        call::<directory::Mkdir>(root, &directory::MkdirParams { path: "d".into() }),
        FileError::ReadOnly,
    );
    let listed =
        call_expecting::<directory::List>(root, &directory::ListParams { skip: 0, max: 64 }, 8192);
    c.ok("list", listed.is_ok(), &listed);
    let first = listed
        .ok()
        .and_then(|l| l.entries.into_iter().find(|e| !e.metadata.directory));
    match first {
        Some(entry) => {
            let opened = open(root, &entry.name, false, false, false, false);
            c.ok("open to read", opened.is_ok(), &opened);
            if let Ok((f, _)) = opened {
                let read = read_all(f);
                c.ok("read", read.is_ok(), &read);
                c.refused("writeAt", write_at(f, 0, b"x"), FileError::ReadOnly);
                c.refused(
                    "truncate",
                    call::<file::Truncate>(f, &file::TruncateParams { size: 0 }),
                    FileError::ReadOnly,
                );
                c.refused(
                    "remove",
                    call::<directory::Remove>(
                        root,
                        &directory::RemoveParams {
                            path: entry.name.clone(),
                        },
                    ),
                    FileError::ReadOnly,
                );
            }
        }
        None => c.ok("a seeded file to read", false, &"none listed"),
    }
    c.exit_code()
}

fn abuse(root: CapId) -> i32 {
    let mut c = Checks {
        failed: 0,
        passed: 0,
    };
    let mut held = Vec::new();
    let refused = loop {
        if held.len() == 1000 {
            break None;
        }
        match open(root, ".", false, false, false, true) {
            Ok((d, _)) => held.push(d),
            Err(error) => break Some(error),
        }
    };
    c.ok(
        "opening is refused at the limit",
        matches!(&refused, Some(CallError::Exception(_))) && held.len() < 1000,
        &(held.len(), &refused),
    );
    let last = held.pop().expect("some opened");
    for d in held {
        let _ = release(d);
    }
    let _ = release(last);
    let stale = call::<directory::Info>(last, &directory::InfoParams {});
    c.ok(
        "a released directory is stale",
        matches!(stale, Err(CallError::Transport(TransportError::StaleCap))),
        &stale,
    );
    match open(root, "big", true, false, true, false) {
        Ok((f, _)) => {
            c.refused(
                "writeAt past 2 GiB",
                write_at(f, u64::MAX - 1, b"xy"),
                FileError::TooLarge,
            );
            c.refused(
                "truncate past 2 GiB",
                call::<file::Truncate>(f, &file::TruncateParams { size: u64::MAX }),
                FileError::TooLarge,
            );
            let huge = call_expecting::<file::ReadAt>(
                f,
                &file::ReadAtParams {
                    offset: u64::MAX,
                    max: u32::MAX,
                },
                1024,
            );
            c.ok(
                "readAt far past the end is empty",
                huge.as_ref().is_ok_and(|r| r.data.is_empty()),
                &huge,
            );
            // Fill the volume: the volume says so, and what it had stays.
            let chunk = vec![0x5au8; 32 * 1024];
            let mut offset = 0u64;
            let full = loop {
                match write_at(f, offset, &chunk) {
                    Ok(()) => offset += chunk.len() as u64,
                    Err(error) => break error,
                }
                if offset > 64 << 20 {
                    break CallError::Transport(TransportError::NotSupported);
                }
            };
            c.refused("a full volume", Err::<(), _>(full), FileError::NoSpace);
            let size = call::<file::Size>(f, &file::SizeParams {});
            c.ok(
                "what was written stays",
                size.as_ref().is_ok_and(|s| s.size == offset),
                &size,
            );
            let removed =
                call::<directory::Remove>(root, &directory::RemoveParams { path: "big".into() });
            c.ok("removing frees it", removed.is_ok(), &removed);
        }
        Err(error) => c.ok("create big", false, &error),
    }
    c.exit_code()
}

fn update_loop(root: CapId) -> i32 {
    let mut generation: u64 = match open(root, "current", false, false, false, false) {
        Ok((f, _)) => {
            let text = read_all(f).unwrap_or_default();
            let _ = release(f);
            match parse_generation(&text) {
                Some(n) if text == generation_contents(n) => {
                    println!("found generation {n} intact");
                    n
                }
                _ => {
                    println!("current is damaged: {} bytes", text.len());
                    return 1;
                }
            }
        }
        Err(error) if file_error(&error) == Some(FileError::NotFound) => {
            println!("found no generation yet");
            0
        }
        Err(error) => {
            println!("opening current: {error:?}");
            return 1;
        }
    };
    loop {
        generation += 1;
        if let Err(error) = replace(root, "current", &generation_contents(generation)) {
            println!("update {generation} failed: {error:?}");
            return 1;
        }
        println!("durable {generation}");
    }
}

/// A generation's file: its number, padded to a length of its own.
fn generation_contents(generation: u64) -> Vec<u8> {
    let padding = (generation * 397 % 3000) as usize;
    let mut text = format!("generation {generation} ").into_bytes();
    text.resize(text.len() + padding, b'x');
    text
}

fn parse_generation(text: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(text).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}
