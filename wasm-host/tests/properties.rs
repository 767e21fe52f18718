//! Property tests: arbitrary arguments to every import, arbitrary archive
//! bytes and arbitrary module bytes never panic the host; archives the
//! builder writes read back exactly.

mod common;

use common::{FakeSystem, SIGNATURES, all_imports, wat_bytes};
use proptest::prelude::*;
use wasm_host::archive::{self, BLOCK};
use wasm_host::tree::NodeKind;
use wasm_host::{ArchiveBuilder, Host, Limits, MemoryVolume, Tree, Wasi, run};

/// Paths the random calls can name, placed in memory at fixed addresses.
const PATHS: &[(u32, &[u8])] = &[
    (0x800, b"dir/file.txt"),
    (0x820, b"dir"),
    (0x830, b"link"),
    (0x840, b".."),
    (0x850, b"dir/../dir/./sub/"),
    (0x870, b"nope/x"),
    (0x880, b"loop"),
    (0x890, b"new.txt"),
    (0x8a0, b"dir/sub"),
];

/// The same names on a writable volume, with room for a few writes (so
/// that ENOSPC comes up too).
fn volume() -> MemoryVolume {
    let mut volume = MemoryVolume::with_capacity(4096);
    volume.insert_file("dir/file.txt", b"hello file\n");
    volume.insert_file("dir/sub/inner", b"");
    volume
}

fn tree() -> Tree {
    let mut builder = ArchiveBuilder::new();
    builder
        .file("dir/file.txt", b"hello file\n", 0)
        .unwrap()
        .directory("dir/sub", 0)
        .unwrap()
        .symlink("link", "dir/file.txt", 0)
        .unwrap()
        .symlink("loop", "loop", 0)
        .unwrap();
    Tree::from_ustar(builder.finish()).unwrap()
}

/// An i32 argument: small numbers (fds, flags, lengths), addresses inside
/// the data, the paths, the edge of memory, or anything at all.
fn i32_arg() -> impl Strategy<Value = i64> {
    prop_oneof![
        (0i64..16),
        (0i64..0x1000),
        prop::sample::select(
            PATHS
                .iter()
                .map(|(address, _)| i64::from(*address))
                .collect::<Vec<_>>()
        ),
        (65_520i64..65_560),
        prop::sample::select(vec![
            0i64,
            -1,
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            48,
            24,
            64
        ]),
        any::<i32>().prop_map(i64::from),
    ]
}

fn i64_arg() -> impl Strategy<Value = i64> {
    prop_oneof![
        (0i64..100),
        Just(0),
        Just(-1),
        Just(i64::MAX),
        Just(i64::MIN),
        any::<i64>()
    ]
}

/// One call: an import other than proc_exit, and arguments of its types.
fn call() -> impl Strategy<Value = String> {
    let callable: Vec<usize> = (0..SIGNATURES.len())
        .filter(|&index| SIGNATURES[index].0 != "proc_exit")
        .collect();
    prop::sample::select(callable).prop_flat_map(|index| {
        let (name, params) = SIGNATURES[index];
        let args: Vec<BoxedStrategy<String>> = params
            .iter()
            .map(|&ty| match ty {
                "i32" => i32_arg()
                    .prop_map(|value| format!("(i32.const {})", value as i32))
                    .boxed(),
                _ => i64_arg()
                    .prop_map(|value| format!("(i64.const {value})"))
                    .boxed(),
            })
            .collect();
        args.prop_map(move |args| format!("(drop (call ${name} {}))", args.join(" ")))
    })
}

fn calls_module(memory: &[u8], calls: &[String]) -> Vec<u8> {
    let mut text = String::from("(module\n");
    text.push_str(&all_imports());
    text.push_str("  (memory (export \"memory\") 1)\n");
    text.push_str(&format!(
        "  (data (i32.const 0) \"{}\")\n",
        wat_bytes(memory)
    ));
    for (address, path) in PATHS {
        text.push_str(&format!(
            "  (data (i32.const {address}) \"{}\")\n",
            wat_bytes(path)
        ));
    }
    text.push_str(&format!(
        "  (func (export \"_start\")\n{}\n))\n",
        calls.join("\n")
    ));
    wat::parse_str(&text).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the arguments, every import returns an errno (the run ends
    /// normally); none traps, panics or hangs.
    #[test]
    fn arbitrary_calls_to_every_import_never_panic(
        memory in prop::collection::vec(any::<u8>(), 0..0x800),
        calls in prop::collection::vec(call(), 1..24),
    ) {
        let wasm = calls_module(&memory, &calls);
        let mut volume = volume();
        let root = volume.root();
        let read_only = volume.root();
        // fd 3 the tree, fd 4 the writable volume, fd 5 the same read-only.
        let wasi = Wasi::builder(FakeSystem { stdin: b"some input".to_vec(), volume, ..FakeSystem::default() })
            .args(["prog", "arg"])
            .env("K", "V")
            .preopen("/", tree())
            .preopen_directory("/data", root, true)
            .preopen_directory("/ro", read_only, false)
            .build()
            .unwrap();
        let outcome = run(&wasm, wasi, Limits::default());
        prop_assert_eq!(outcome.result, Ok(0));
    }
}

/// A valid archive of a few random entries, for mutation.
fn archive_image() -> impl Strategy<Value = Vec<u8>> {
    let name = prop::sample::select(vec![
        "a",
        "b",
        "dir",
        "x.txt",
        "long-name-".repeat(12).leak() as &str,
    ]);
    let path = prop::collection::vec(name, 1..4).prop_map(|parts| parts.join("/"));
    let entry = (path, 0u8..3, prop::collection::vec(any::<u8>(), 0..700));
    prop::collection::vec(entry, 0..6).prop_map(|entries| {
        let mut builder = ArchiveBuilder::new();
        for (path, kind, data) in entries {
            let _ = match kind {
                0 => builder.file(&path, &data, 1_700_000_000),
                1 => builder.directory(&path, 0),
                _ => builder.symlink(&path, "a/b", 0),
            };
        }
        builder.finish()
    })
}

/// Recomputes every header checksum, so mutations get past the checksum
/// and reach the parser behind it.
fn fix_checksums(image: &mut [u8]) {
    for header in image.chunks_exact_mut(BLOCK) {
        if header.iter().all(|&byte| byte == 0) {
            continue;
        }
        header[148..156].fill(b' ');
        let sum: u64 = header.iter().map(|&byte| u64::from(byte)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_archive_reader(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let _ = archive::entries(&bytes).count();
        let _ = archive::validate(&bytes);
        let _ = Tree::from_ustar(bytes);
    }

    #[test]
    fn mutated_archives_are_refused_or_read_never_panicking(
        image in archive_image(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in prop::option::of(any::<prop::sample::Index>()),
        fix in any::<bool>(),
    ) {
        let mut image = image;
        for (index, byte) in mutations {
            let at = index.index(image.len());
            image[at] = byte;
        }
        if let Some(cut) = truncate {
            let at = cut.index(image.len());
            image.truncate(at);
        }
        if fix {
            fix_checksums(&mut image);
        }
        if let Ok(tree) = Tree::from_ustar(image.clone()) {
            // Whatever was accepted can be walked and read.
            let mut stack = vec![Tree::ROOT];
            while let Some(dir) = stack.pop() {
                let mut index = 2;
                while let Some((name, child)) = tree.directory_entry(dir, index) {
                    prop_assert!(!name.is_empty() && !name.contains('/'));
                    if tree.node(child).is_some_and(|node| node.is_directory()) {
                        stack.push(child);
                    }
                    let _ = tree.contents(child);
                    let _ = tree.lookup(Tree::ROOT, name, true);
                    index += 1;
                }
            }
        } else {
            prop_assert!(archive::validate(&image).is_err());
        }
    }

    #[test]
    fn what_the_builder_writes_reads_back(
        files in prop::collection::btree_map(
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "dd", "\u{e9}", "x".repeat(120).leak() as &str]), 1..5)
                .prop_map(|parts| parts.join("/")),
            prop::collection::vec(any::<u8>(), 0..2000),
            0..12,
        ),
    ) {
        let mut builder = ArchiveBuilder::new();
        let mut added = Vec::new();
        for (path, contents) in &files {
            if builder.file(path, contents, 42).is_ok() {
                added.push((path, contents));
            }
        }
        let tree = Tree::from_ustar(builder.finish()).unwrap();
        for (path, contents) in added {
            let node = tree.lookup(Tree::ROOT, path, false).unwrap();
            let is_file = matches!(tree.node(node).unwrap().kind, NodeKind::File { .. });
            prop_assert!(is_file, "{} is not a file", path);
            prop_assert_eq!(tree.contents(node), contents.as_slice());
            prop_assert_eq!(tree.node(node).unwrap().mtime_nanos, 42_000_000_000);
        }
    }
}

/// A small module that uses memory, a loop and an import, for mutation.
fn sample_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 16) "\20\00\00\00\02\00\00\00hi")
             (func (export "_start") (local i32)
               (local.set 0 (i32.const 3))
               (loop $again
                 (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 64)))
                 (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
                 (br_if $again (local.get 0)))))"#,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_module_bytes_never_panic_the_loader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let host = Host::new(Limits::default());
        let _ = host.load(&bytes);
        let mut with_header = b"\0asm\x01\0\0\0".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = host.load(&with_header);
    }

    #[test]
    fn mutated_modules_load_and_run_or_fail_cleanly(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut wasm = sample_module();
        for (index, byte) in mutations {
            let at = index.index(wasm.len());
            wasm[at] = byte;
        }
        let limits = Limits { fuel: Some(100_000), max_memory_pages: 16, ..Limits::default() };
        let wasi = Wasi::builder(FakeSystem::default()).build().unwrap();
        let _ = run(&wasm, wasi, limits).result;
    }
}
