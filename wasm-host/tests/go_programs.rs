//! The Go programs in go-wasip1/ and Go standard library test binaries,
//! built with the stock toolchain (`scripts/build-go-wasm`, once per run)
//! and run on this host with the std `System`.
//!
//! They need Go: `scripts/go` finds it (on PATH, or the release
//! `scripts/setup` fetched); without one they fail, saying so.
#![cfg(feature = "std")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use wasm_host::{
    ArchiveBuilder, Clock, DirEntry, DirectoryHandle, Errno, FileHandle, Host, Limits,
    MemoryVolume, Metadata, OpenOptions, Opened, RunError, StdSystem, Stream, System, Tree, Wasi,
    archive_from_dir,
};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("wasm-host lives in the repository")
}

/// Builds every Go program and std test binary once.
fn go_build() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let go = Command::new(repo_root().join("scripts/go")).arg("version").output();
            assert!(
                go.as_ref().is_ok_and(|o| o.status.success()),
                "no Go 1.25+ for the Go programs: scripts/go found none (run scripts/setup, or put Go on PATH): {go:?}"
            );
            let started = Instant::now();
            let output = Command::new("bash")
                .arg(repo_root().join("scripts/build-go-wasm"))
                .output()
                .expect("cannot run scripts/build-go-wasm");
            assert!(
                output.status.success(),
                "scripts/build-go-wasm failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            println!("built the Go programs in {:.1?}", started.elapsed());
            repo_root().join("build/go")
        })
        .as_path()
}

macro_rules! require_go {
    () => {
        go_build()
    };
}

/// One finished Go run.
struct GoRun {
    result: Result<u32, RunError>,
    stdout: String,
    stderr: String,
    sleeps: u64,
    fuel_consumed: Option<u64>,
    elapsed: Duration,
}

impl GoRun {
    fn describe(&self) -> String {
        format!(
            "result {:?} after {:.1?}\n--- stdout\n{}\n--- stderr\n{}",
            self.result, self.elapsed, self.stdout, self.stderr
        )
    }
}

fn run_wasm(
    wasm: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    tree: Option<Tree>,
    limits: Limits,
) -> GoRun {
    run_wasm_with_tmp(wasm, args, env, tree, limits, None)
}

/// As [`run_wasm`], with a writable host directory preopened as "/tmp"
/// (where the program's TMPDIR should point) if one is given.
fn run_wasm_with_tmp(
    wasm: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    tree: Option<Tree>,
    limits: Limits,
    tmp: Option<&Path>,
) -> GoRun {
    let bytes = std::fs::read(wasm).unwrap_or_else(|error| panic!("{}: {error}", wasm.display()));
    let name = wasm.file_stem().unwrap().to_string_lossy().into_owned();
    let mut system = StdSystem::capturing();
    let tmp = tmp.map(|dir| system.host_directory(dir).expect("the scratch directory"));
    let mut builder = Wasi::builder(system).arg(name).args(args.iter().copied());
    if let Some(handle) = tmp {
        builder = builder.preopen_directory("/tmp", handle, true);
    }
    for (key, value) in env {
        builder = builder.env(*key, *value);
    }
    if let Some(tree) = tree {
        builder = builder.preopen("/", tree);
    }
    let started = Instant::now();
    let host = Host::new(limits);
    let program = host
        .load(&bytes)
        .unwrap_or_else(|error| panic!("{}: {error}", wasm.display()));
    let outcome = host.run(&program, builder.build().unwrap());
    let system = outcome.wasi.system();
    GoRun {
        result: outcome.result,
        stdout: String::from_utf8_lossy(system.stdout()).into_owned(),
        stderr: String::from_utf8_lossy(system.stderr()).into_owned(),
        sleeps: system.sleeps(),
        fuel_consumed: outcome.fuel_consumed,
        elapsed: started.elapsed(),
    }
}

fn run_program(
    dir: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    tree: Option<Tree>,
) -> GoRun {
    run_wasm(
        &dir.join(format!("{name}.wasm")),
        args,
        env,
        tree,
        Limits::default(),
    )
}

fn test_tree_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tree")
}

fn test_tree() -> Tree {
    Tree::from_ustar(archive_from_dir(&test_tree_dir(), None).unwrap()).unwrap()
}

#[test]
fn hello_gets_its_args_env_and_both_streams_and_exits_3() {
    let dir = require_go!();
    let run = run_program(
        dir,
        "hello",
        &["first arg", "\u{fc}n\u{ef}c\u{f6}d\u{e9}"],
        &[("HELLO_GREETING", "gr\u{fc}\u{df} dich"), ("OTHER", "x")],
        None,
    );
    assert_eq!(run.result, Ok(3), "{}", run.describe());
    assert_eq!(
        run.stdout,
        "hello from Go on wasip1\n\
         argc=3\n\
         arg[0]=\"hello\"\n\
         arg[1]=\"first arg\"\n\
         arg[2]=\"\u{fc}n\u{ef}c\u{f6}d\u{e9}\"\n\
         HELLO_GREETING=\"gr\u{fc}\u{df} dich\" set=true\n"
    );
    assert_eq!(run.stderr, "hello: this line goes to stderr\n");
}

#[test]
fn hello_without_the_variable_says_so() {
    let dir = require_go!();
    let run = run_program(dir, "hello", &[], &[], None);
    assert_eq!(run.result, Ok(3), "{}", run.describe());
    assert!(run.stdout.contains("argc=1\n"), "{}", run.describe());
    assert!(
        run.stdout.contains("HELLO_GREETING=\"\" set=false\n"),
        "{}",
        run.describe()
    );
}

#[test]
fn clock_sleeps_for_real_and_timers_fire() {
    let dir = require_go!();
    let run = run_program(dir, "clock", &[], &[], None);
    assert_eq!(run.result, Ok(0), "{}", run.describe());
    assert!(
        run.stdout.ends_with("clock: all checks passed\n"),
        "{}",
        run.describe()
    );
    assert!(!run.stdout.contains("FAIL"), "{}", run.describe());
    // Sleep, Timer and After each wait 50 ms through poll_oneoff.
    assert!(
        run.sleeps >= 3,
        "only {} sleeps\n{}",
        run.sleeps,
        run.describe()
    );
    assert!(
        run.elapsed >= Duration::from_millis(150),
        "{}",
        run.describe()
    );
}

/// What `files` prints for a walk of a host directory: WalkDir's lexical
/// order, a directory before what it holds.
fn expected_walk(root: &Path, shown: &str, lines: &mut Vec<String>) {
    lines.push(format!("dir  {shown}"));
    let mut entries: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap())
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name().into_string().unwrap();
        let path = if shown == "/" {
            format!("/{name}")
        } else {
            format!("{shown}/{name}")
        };
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            lines.push(format!("link {path} -> {}", target.display()));
        } else if kind.is_dir() {
            expected_walk(&entry.path(), &path, lines);
        } else {
            lines.push(format!("file {path} {}", entry.metadata().unwrap().len()));
        }
    }
}

fn check_files_output(run: &GoRun) {
    assert_eq!(run.result, Ok(0), "{}", run.describe());
    let mut expected = Vec::new();
    expected_walk(&test_tree_dir(), "/", &mut expected);
    let walked: Vec<&str> = run
        .stdout
        .lines()
        .take_while(|line| !line.starts_with("walked "))
        .collect();
    assert_eq!(walked, expected, "{}", run.describe());
    for line in [
        "create refused: open /new-file.txt: Read-only file system",
        "mkdir refused: mkdir /new-dir: Read-only file system",
        "open for writing refused: open /README.txt: Read-only file system",
        "remove refused: remove /README.txt: Read-only file system",
        "rename refused: rename /README.txt /README.txt.moved: Read-only file system",
        "missing file: open /does-not-exist: No such file or directory",
        "files: all checks passed",
    ] {
        assert!(
            run.stdout.lines().any(|printed| printed == line),
            "no {line:?} in\n{}",
            run.describe()
        );
    }
}

#[test]
fn files_walks_and_reads_the_tree_and_cannot_change_it() {
    let dir = require_go!();
    let run = run_program(dir, "files", &[], &[], Some(test_tree()));
    check_files_output(&run);
}

#[test]
fn files_reads_a_tree_from_a_tar_file_made_by_system_tar() {
    let dir = require_go!();
    for format in ["gnu", "pax", "ustar"] {
        let output = match Command::new("tar")
            .args(["--format", format, "-cf", "-", "-C"])
            .arg(test_tree_dir())
            .arg(".")
            .output()
        {
            Ok(output) if output.status.success() => output,
            other => panic!("GNU tar (Debian's `tar`) must make a {format} archive: {other:?}"),
        };
        let tree =
            Tree::from_ustar(output.stdout).unwrap_or_else(|error| panic!("{format}: {error}"));
        check_files_output(&run_program(dir, "files", &[], &[], Some(tree)));
    }
}

#[test]
fn files_walks_a_directory_too_big_for_one_readdir() {
    let dir = require_go!();
    let mut builder = ArchiveBuilder::new();
    for index in 0..1500 {
        builder
            .file(
                &format!("many/entry-with-a-longish-name-{index:04}.txt"),
                format!("{index}\n").as_bytes(),
                0,
            )
            .unwrap();
    }
    let tree = Tree::from_ustar(builder.finish()).unwrap();
    let run = run_program(dir, "files", &["/many"], &[], Some(tree));
    assert_eq!(run.result, Ok(0), "{}", run.describe());
    assert!(
        run.stdout.contains("walked 1 directories and 1500 files\n"),
        "{}",
        run.describe()
    );
    for index in [0, 749, 1499] {
        let line = format!(
            "file /many/entry-with-a-longish-name-{index:04}.txt {}\n",
            format!("{index}\n").len()
        );
        assert!(run.stdout.contains(&line), "no {line:?}");
    }
}

#[test]
fn stress_survives_goroutines_gc_json_and_big_numbers() {
    let dir = require_go!();
    let run = run_program(dir, "stress", &[], &[], None);
    assert_eq!(run.result, Ok(0), "{}", run.describe());
    assert!(
        run.stdout.ends_with("stress: all checks passed\n"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_go_panic_exits_2_with_gos_report_on_stderr() {
    let dir = require_go!();
    let run = run_program(dir, "panics", &[], &[], None);
    assert_eq!(run.result, Ok(2), "{}", run.describe());
    assert_eq!(run.stdout, "panics: about to panic\n");
    assert!(
        run.stderr.starts_with(
            "panic: deliberate panic from the panics program\n\ngoroutine 1 [running]:\nmain.main()"
        ),
        "{}",
        run.describe()
    );
}

#[test]
fn spin_is_stopped_by_the_instruction_budget() {
    let dir = require_go!();
    let budget = 300_000_000;
    let limits = Limits {
        fuel: Some(budget),
        ..Limits::default()
    };
    let run = run_wasm(&dir.join("spin.wasm"), &[], &[], None, limits);
    assert_eq!(
        run.result,
        Err(RunError::FuelExhausted { budget }),
        "{}",
        run.describe()
    );
    // wasmi stops before the block that would overdraw the budget.
    let consumed = run.fuel_consumed.unwrap();
    assert!(
        consumed <= budget && consumed > budget / 100 * 99,
        "consumed {consumed}"
    );
    assert_eq!(run.stdout, "spin: spinning\n");
}

#[test]
fn a_go_program_over_its_memory_limit_is_stopped() {
    let dir = require_go!();
    let limits = Limits {
        max_memory_pages: 128,
        ..Limits::default()
    };
    let run = run_wasm(&dir.join("stress.wasm"), &["hog"], &[], None, limits);
    assert_eq!(
        run.result,
        Err(RunError::MemoryLimit { max_pages: 128 }),
        "{}",
        run.describe()
    );
    assert_eq!(run.stdout, "hog: allocating until stopped\n");
}

/// The packages and flags in go-wasip1/stdtests.txt.
fn std_packages() -> Vec<(String, Vec<String>)> {
    let list = std::fs::read_to_string(repo_root().join("go-wasip1/stdtests.txt")).unwrap();
    list.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut words = line.split_whitespace().map(String::from);
            (words.next().unwrap(), words.collect())
        })
        .collect()
}

#[test]
fn the_std_list_has_the_required_packages() {
    let packages: Vec<String> = std_packages()
        .into_iter()
        .map(|(package, _)| package)
        .collect();
    for required in [
        "strings",
        "strconv",
        "bytes",
        "sort",
        "encoding/json",
        "unicode/utf8",
        "errors",
        "container/list",
        "math",
    ] {
        assert!(
            packages.iter().any(|package| package == required),
            "{required} is missing"
        );
    }
}

fn goroot() -> PathBuf {
    let scripts_go = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/go");
    let output = Command::new(scripts_go)
        .args(["env", "GOROOT"])
        .output()
        .expect("go env GOROOT");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[test]
fn std_test_binaries_pass() {
    let dir = require_go!();
    let goroot = goroot();
    let queue = Mutex::new(std_packages());
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let Some((package, flags)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    // As `go test` runs it: in the package's directory, with
                    // its testdata.
                    let tree = Tree::from_ustar(
                        archive_from_dir(&goroot.join("src").join(&package), None).unwrap(),
                    )
                    .unwrap();
                    let wasm = dir
                        .join("std")
                        .join(format!("{}.test.wasm", package.replace('/', "-")));
                    let mut args = vec!["-test.v=false"];
                    args.extend(flags.iter().map(String::as_str));
                    // A writable TMPDIR (examples capture their output in a
                    // temporary file; os, archive/... write files there).
                    let tmp = scratch_dir(&package.replace('/', "-"));
                    let run = run_wasm_with_tmp(
                        &wasm,
                        &args,
                        &[("PWD", "/"), ("TMPDIR", "/tmp")],
                        Some(tree),
                        Limits::default(),
                        Some(&tmp),
                    );
                    let _ = std::fs::remove_dir_all(&tmp);
                    println!("{package}: {:?} in {:.1?}", run.result, run.elapsed);
                    if run.result != Ok(0) || !run.stdout.lines().any(|line| line == "PASS") {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{package} {flags:?}: {}", run.describe()));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- writable directories ------------------------------------------------------

/// The std console and clocks, with directories from a [`MemoryVolume`]
/// (the storage service's meaning of each call).
struct VolumeSystem {
    std: StdSystem,
    volume: MemoryVolume,
}

impl System for VolumeSystem {
    fn write_console(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Errno> {
        self.std.write_console(stream, bytes)
    }
    fn now_nanos(&mut self, clock: Clock) -> u64 {
        self.std.now_nanos(clock)
    }
    fn sleep_nanos(&mut self, nanos: u64) {
        self.std.sleep_nanos(nanos)
    }
    fn random(&mut self, out: &mut [u8]) -> Result<(), Errno> {
        self.std.random(out)
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

/// Runs the Go program `name` with the test tree as "/" (as the OS gives
/// one) and `root` preopened as "/data"; what it printed, and the system.
fn run_with_data<S: System + 'static>(
    system: S,
    root: DirectoryHandle,
    writable: bool,
    name: &str,
    env: &[(&str, &str)],
    console: impl Fn(&S) -> &StdSystem,
) -> (GoRun, S) {
    let dir = require_go!();
    let wasm = dir.join(format!("{name}.wasm"));
    let bytes = std::fs::read(&wasm).unwrap_or_else(|error| panic!("{}: {error}", wasm.display()));
    let mut builder = Wasi::builder(system)
        .arg(name)
        .preopen("/", test_tree())
        .preopen_directory("/data", root, writable);
    for (key, value) in env {
        builder = builder.env(*key, *value);
    }
    let started = Instant::now();
    let host = Host::new(Limits::default());
    let program = host.load(&bytes).unwrap();
    let outcome = host.run(&program, builder.build().unwrap());
    let system = outcome.wasi.into_system();
    let std = console(&system);
    let run = GoRun {
        result: outcome.result,
        stdout: String::from_utf8_lossy(std.stdout()).into_owned(),
        stderr: String::from_utf8_lossy(std.stderr()).into_owned(),
        sleeps: std.sleeps(),
        fuel_consumed: outcome.fuel_consumed,
        elapsed: started.elapsed(),
    };
    (run, system)
}

/// A fresh empty host directory for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wasm-host-go-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path
}

fn run_on_host_dir(host: &Path, name: &str, env: &[(&str, &str)]) -> GoRun {
    let mut system = StdSystem::capturing();
    let root = system.host_directory(host).unwrap();
    run_with_data(system, root, true, name, env, |system| system).0
}

fn check_fileapi(run: &GoRun) {
    assert_eq!(run.result, Ok(0), "{}", run.describe());
    assert!(!run.stdout.contains("FAIL"), "{}", run.describe());
    assert!(
        run.stdout.ends_with("fileapi: all 23 checks passed\n"),
        "{}",
        run.describe()
    );
}

#[test]
fn boots_counts_its_runs_in_a_host_directory() {
    let data = scratch_dir("boots");
    for count in 1..=3 {
        let run = run_on_host_dir(&data, "boots", &[]);
        assert_eq!(run.result, Ok(0), "{}", run.describe());
        assert_eq!(
            run.stdout,
            format!("boots: {count}\n"),
            "{}",
            run.describe()
        );
    }
    assert_eq!(std::fs::read_to_string(data.join("boots")).unwrap(), "3\n");
    assert!(
        !data.join("boots.tmp").exists(),
        "the temporary file was renamed away"
    );
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn boots_counts_its_runs_on_a_memory_volume_and_fails_on_a_read_only_one() {
    let mut volume = MemoryVolume::new();
    for count in 1..=2 {
        let root = volume.root();
        let system = VolumeSystem {
            std: StdSystem::capturing(),
            volume,
        };
        let (run, system) = run_with_data(system, root, true, "boots", &[], |system| &system.std);
        assert_eq!(
            run.stdout,
            format!("boots: {count}\n"),
            "{}",
            run.describe()
        );
        volume = system.volume;
        // What the program opened, it closed (the preopen aside).
        assert_eq!(volume.open_handles(), 1);
        volume.close_directory(root);
    }
    assert_eq!(volume.contents("boots"), Some(&b"2\n"[..]));
    assert_eq!(volume.syncs(), 2);

    let root = volume.root();
    let system = VolumeSystem {
        std: StdSystem::capturing(),
        volume,
    };
    let (run, _) = run_with_data(system, root, false, "boots", &[], |system| &system.std);
    assert_eq!(run.result, Ok(1), "{}", run.describe());
    assert_eq!(
        run.stdout,
        "boots: FAIL open /data/boots.tmp: Read-only file system\n",
        "{}",
        run.describe()
    );
}

#[test]
fn fileapi_passes_in_a_host_directory() {
    let data = scratch_dir("fileapi");
    std::fs::create_dir(data.join("tmp")).unwrap();
    let run = run_on_host_dir(&data, "fileapi", &[("TMPDIR", "/data/tmp")]);
    check_fileapi(&run);
    assert!(run.stdout.contains("fileapi: ok readdir\n"));
    // The checks cleaned up after themselves.
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["tmp"]);
    std::fs::remove_dir_all(data).unwrap();
}

#[test]
fn fileapi_passes_on_a_memory_volume() {
    let mut volume = MemoryVolume::new();
    let root = volume.root();
    let system = VolumeSystem {
        std: StdSystem::capturing(),
        volume,
    };
    let (run, system) = run_with_data(
        system,
        root,
        true,
        "fileapi",
        &[("TMPDIR", "/data")],
        |system| &system.std,
    );
    check_fileapi(&run);
    // Large reads and writes went in pieces one message carries.
    assert!(system.volume.largest_io() <= wasm_host::MAX_FILE_IO);
    assert!(system.volume.largest_io() > 0);
    assert_eq!(system.volume.open_handles(), 1, "only the preopen is left");
}

// ---- the wasm-host-run binary ---------------------------------------------------

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wasm-host-run"))
}

#[test]
fn the_cli_runs_a_module_with_a_tree_env_and_args_and_exits_with_its_code() {
    let dir = require_go!();
    let output = cli()
        .args(["--dir"])
        .arg(test_tree_dir())
        .args(["--env", "HELLO_GREETING=from the cli"])
        .arg(dir.join("hello.wasm"))
        .args(["a", "b"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("argc=3\n"), "{stdout}");
    assert!(stdout.contains("arg[2]=\"b\"\n"), "{stdout}");
    assert!(
        stdout.contains("HELLO_GREETING=\"from the cli\" set=true\n"),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "hello: this line goes to stderr\n"
    );

    let output = cli()
        .arg("--dir")
        .arg(test_tree_dir())
        .arg(dir.join("files.wasm"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn the_cli_mounts_a_host_directory_writable() {
    let dir = require_go!();
    let data = scratch_dir("cli-mount");
    for count in 1..=2 {
        let output = cli()
            .arg("--mount")
            .arg(format!("{}:/data", data.display()))
            .arg(dir.join("boots.wasm"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            format!("boots: {count}\n")
        );
    }
    std::fs::remove_dir_all(&data).unwrap();
    let output = cli()
        .arg("--mount")
        .arg(format!("{}:/data", data.display()))
        .arg(dir.join("boots.wasm"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(126),
        "a missing directory cannot be mounted"
    );
}

#[test]
fn the_cli_reports_a_limit_and_exits_137() {
    let dir = require_go!();
    let output = cli()
        .args(["--fuel", "100000000"])
        .arg(dir.join("spin.wasm"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(137));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("instruction budget of 100000000 fuel units is exhausted"),
        "{stderr}"
    );
}

#[test]
fn the_cli_refuses_bad_modules_and_bad_options() {
    let temp = std::env::temp_dir().join(format!("wasm-host-cli-{}.wasm", std::process::id()));
    std::fs::write(&temp, b"not wasm").unwrap();
    let output = cli().arg(&temp).output().unwrap();
    std::fs::remove_file(&temp).unwrap();
    assert_eq!(output.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid wasm module"));

    // A trap: 134, as if aborted.
    let trapping = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
    )
    .unwrap();
    std::fs::write(&temp, trapping).unwrap();
    let output = cli().arg(&temp).output().unwrap();
    std::fs::remove_file(&temp).unwrap();
    assert_eq!(output.status.code(), Some(134));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unreachable"));

    let output = cli().args(["--fuel", "lots", "x.wasm"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage:"));
    let output = cli().output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = cli()
        .args(["--dir", "/nonexistent/tree", "x.wasm"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(126));
}
