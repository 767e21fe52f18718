//! Go programs, built with the stock toolchain for GOOS=wasip1, running in
//! the OS: WebAssembly in wasmi inside the `wasm` native guest, with WASI
//! over the guest's capabilities. Slow under TCG (an interpreter inside an
//! emulator), so most run under BIOS only; hello runs under both.

use std::path::Path;

use tests::{BootRequest, ExitCode, Firmware, go_wasm, run, tree_archive};

/// The guest line that runs `module` (a data module) with `args`.
fn go(name: &str, module: &str, heap_mb: u32, args: &[&str]) -> String {
    let mut line = format!("{name}=wasm,heap_mb={heap_mb},stack_kb=1024,data={module}");
    // The tree `--dir=` names is a data module too.
    for dir in args.iter().filter_map(|a| a.strip_prefix("--dir=")) {
        line.push_str(&format!(",data={dir}"));
    }
    for arg in args {
        line.push_str(&format!(",arg={arg}"));
    }
    line
}

fn boot(firmware: Firmware, cmdline: &str, guests: &[String]) -> tests::Run {
    boot_with_volumes(firmware, cmdline, guests, &[])
}

fn boot_with_volumes(
    firmware: Firmware,
    cmdline: &str,
    guests: &[String],
    volumes: &[(&str, &Path)],
) -> tests::Run {
    let guests: Vec<&str> = guests.iter().map(String::as_str).collect();
    // Go under wasmi under TCG is slow: allow for it.
    let timeout = std::time::Duration::from_secs(600);
    run(BootRequest {
        cmdline,
        guests: &guests,
        timeout,
        volumes,
        ..BootRequest::new(firmware)
    })
}

fn program(name: &str) -> String {
    let file = go_wasm().join(format!("{name}.wasm"));
    format!("data:{name}.wasm={}", file.display())
}

fn hello(firmware: Firmware) {
    let guests = [
        program("hello"),
        go(
            "go-hello",
            "hello.wasm",
            64,
            &["--env=HELLO_GREETING=hi", "hello.wasm", "world"],
        ),
    ];
    let run = boot(firmware, "qemu-exit", &guests);
    run.assert_exit(ExitCode::Success);
    for said in [
        "hello from Go on wasip1",
        "argc=2",
        "arg[0]=\"hello.wasm\"",
        "arg[1]=\"world\"",
        "HELLO_GREETING=\"hi\" set=true",
        "hello: this line goes to stderr",
    ] {
        run.assert_guest_said("go-hello", said);
    }
    run.assert_nucleus_said("guest 1 (go-hello): exited; exit code 3\n");
}

#[test]
fn go_hello_bios() {
    hello(Firmware::Bios);
}

#[test]
fn go_hello_uefi() {
    hello(Firmware::Uefi);
}

#[test]
fn go_clock_sleeps_through_the_timer() {
    let run = boot(
        Firmware::Bios,
        "qemu-exit",
        &[
            program("clock"),
            go("clock", "clock.wasm", 64, &["clock.wasm"]),
        ],
    );
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said("clock", "clock: all checks passed");
    run.assert_exited("clock", 0);
}

#[test]
fn go_files_walks_the_read_only_tree() {
    let tree = tree_archive(Path::new("wasm-host/tests/tree"));
    let guests = [
        program("files"),
        format!("data:tree={}", tree.display()),
        go("files", "files.wasm", 64, &["--dir=tree", "files.wasm"]),
    ];
    let run = boot(Firmware::Bios, "qemu-exit", &guests);
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said("files", "file /data/nested/deeper/leaf.txt");
    run.assert_guest_said("files", "create refused: ");
    run.assert_guest_said("files", "files: all checks passed");
    run.assert_exited("files", 0);
}

#[test]
fn a_go_panic_exits_2_with_the_panic_message() {
    let run = boot(
        Firmware::Bios,
        "qemu-exit",
        &[
            program("panics"),
            go("panics", "panics.wasm", 64, &["panics.wasm"]),
        ],
    );
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said("panics", "panic: deliberate panic from the panics program");
    run.assert_exited("panics", 2);
}

/// An endless Go loop is stopped by its instruction budget while a second
/// guest finishes.
#[test]
fn an_endless_go_loop_is_stopped_by_its_limit() {
    let guests = [
        program("spin"),
        go("spin", "spin.wasm", 64, &["--fuel=20000000", "spin.wasm"]),
        "counter".to_string(),
    ];
    let run = boot(Firmware::Bios, "qemu-exit allow-unisolated-guests", &guests);
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said(
        "spin",
        "wasm: stopped: the instruction budget of 20000000 fuel units is exhausted",
    );
    run.assert_exited("spin", 137);
    run.assert_exited("counter", 0);
}

/// Go's own standard-library tests, the packages listed in
/// go-wasip1/stdtests.txt, each must print PASS in the OS.
#[test]
fn go_standard_library_tests_pass() {
    let list = std::fs::read_to_string(tests::repo_root().join("go-wasip1/stdtests.txt")).unwrap();
    let goroot = String::from_utf8(
        std::process::Command::new(tests::repo_root().join("scripts/go"))
            .args(["env", "GOROOT"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let packages: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // Two at a time: each is one QEMU, mostly busy interpreting.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(line) =
                    packages.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    run_std_test(line, &goroot);
                }
            });
        }
    });
}

/// One line of stdtests.txt: a package, then extra test flags.
fn run_std_test(line: &str, goroot: &str) {
    let mut words = line.split_whitespace();
    let package = words.next().unwrap();
    let file = package.replace('/', "-");
    let module = format!("{file}.test.wasm");
    // As `go test` runs it: the package's source directory (testdata and
    // all) is the tree, and the working directory.
    let tree = tree_archive(&Path::new(goroot).join("src").join(package));
    let mut args: Vec<String> = ["--dir=tree", "--env=PWD=/", &module, "-test.v=false"]
        .into_iter()
        .map(String::from)
        .collect();
    // The flags stdtests.txt gives (as for the host run).
    args.extend(words.map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let guests = [
        format!(
            "data:{module}={}",
            go_wasm().join("std").join(&module).display()
        ),
        format!("data:tree={}", tree.display()),
        // Test binaries grow linear memory to tens of MiB, and growing it
        // copies it: the heap holds old and new at once. A scratch volume
        // is its TMPDIR (the wasm guest points it at /scratch/tmp).
        format!(
            "{},mount=/scratch:scratch",
            go("gotest", &module, 384, &args)
        ),
        "volume:scratch=16".to_string(),
    ];
    let scratch = tests::VolumeImage::new("scratch", 16, None);
    let run = boot_with_volumes(Firmware::Bios, "qemu-exit", &guests, &[scratch.attach()]);
    run.assert_exit(ExitCode::Success);
    assert!(
        run.guest_line("gotest", "PASS").is_some()
            && run
                .nucleus_line("guest ", "(gotest): exited; exit code 0")
                .is_some(),
        "{package} did not pass\n{}",
        run.report()
    );
    eprintln!(
        "{package}: PASS in the OS in {:.1} s",
        run.elapsed.as_secs_f64()
    );
}

/// A Go program that keeps allocating outgrows the heap its guest was
/// given (`heapMib`: linear memory lives in it) and is stopped with the
/// limit named and 137, not a failed allocation, while a second guest
/// finishes.
#[test]
fn a_go_program_outgrowing_its_heap_is_stopped_by_the_limit() {
    let guests = [
        program("limits"),
        go("limits", "limits.wasm", 48, &["limits.wasm", "grow"]),
        "counter".to_string(),
    ];
    let run = boot(Firmware::Bios, "qemu-exit allow-unisolated-guests", &guests);
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said("limits", "limits: holding 8 MiB");
    run.assert_guest_said("limits", "wasm: stopped: linear memory ");
    run.assert_exited("limits", 137);
    run.assert_exited("counter", 0);
}

/// One write larger than a message reaches the console whole, and bytes
/// that are not text are shown escaped, each with its value.
#[test]
fn a_go_program_writes_more_than_a_message_and_binary_bytes() {
    let guests = [
        program("limits"),
        go("limits", "limits.wasm", 64, &["limits.wasm", "write"]),
    ];
    let run = boot(Firmware::Bios, "qemu-exit", &guests);
    run.assert_exit(ExitCode::Success);
    let lines = run
        .printed_by("limits")
        .filter(|(_, said)| said.starts_with("limits: line "))
        .count();
    assert_eq!(lines, 3200, "{}", run.report());
    run.assert_guest_said(
        "limits",
        "limits: one write of 204800 bytes: wrote 204800, error <nil>\n",
    );
    let shown: String = (0..=255u8)
        .filter(|&b| b != b'\n')
        .map(|b| match b {
            b'\t' => "\t".to_string(),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect();
    run.assert_guest_said("limits", &format!("limits: bytes {shown}\n"));
    run.assert_guest_said(
        "limits",
        "limits: binary write of 270 bytes: wrote 270, error <nil>\n",
    );
    run.assert_exited("limits", 0);
}
