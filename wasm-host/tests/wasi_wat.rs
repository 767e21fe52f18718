//! The WASI layer through real wasm: small wat modules call the imports
//! with good and bad arguments and exit with the errno (or a value read
//! back), so every check runs through wasmi, the glue and `Wasi`.

mod common;

use common::{FAKE_EPOCH_NANOS, FakeSystem, module, words};
use wasm_host::host::IMPORTS;
use wasm_host::{ArchiveBuilder, Errno, Host, Limits, Outcome, RunError, Tree, Wasi, run};

/// The tree every test preopens as "/" (fd 3).
fn tree() -> Tree {
    let mut builder = ArchiveBuilder::new();
    builder
        .directory("dir", 1_000)
        .unwrap()
        .file("dir/file.txt", b"hello file\n", 2_000)
        .unwrap()
        .directory("dir/sub", 3_000)
        .unwrap()
        .symlink("link", "dir/file.txt", 4_000)
        .unwrap()
        .file("big.bin", &[0xab; 5000], 0)
        .unwrap();
    Tree::from_ustar(builder.finish()).unwrap()
}

fn wasi(system: FakeSystem) -> Wasi<FakeSystem> {
    Wasi::builder(system)
        .args(["prog", "one"])
        .env("K", "V")
        .preopen("/", tree())
        .build()
        .unwrap()
}

fn run_with(wasm: &[u8], system: FakeSystem, limits: Limits) -> Outcome<FakeSystem> {
    run(wasm, wasi(system), limits)
}

/// The exit code of a module whose `_start` runs `body`.
fn exit_code(data: &[(u32, &[u8])], body: &str) -> u32 {
    let outcome = run_with(
        &module(data, body),
        FakeSystem::default(),
        Limits::default(),
    );
    outcome
        .result
        .unwrap_or_else(|error| panic!("run failed: {error}"))
}

/// The errno `call` (a wat expression) returns.
fn errno(data: &[(u32, &[u8])], call: &str) -> u32 {
    exit_code(data, &format!("(call $proc_exit {call})"))
}

fn code(errno: Errno) -> u32 {
    u32::from(errno.code())
}

/// `call`'s errno if non-zero, else 1000 + the u32 at `address`.
fn value_after(data: &[(u32, &[u8])], call: &str, address: u32) -> u32 {
    exit_code(
        data,
        &format!(
            "(local $errno i32)
             (local.set $errno {call})
             (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
             (call $proc_exit (i32.add (i32.const 1000) (i32.load (i32.const {address}))))"
        ),
    )
}

const PAGE: u32 = 65536;

// ---- the import set ------------------------------------------------------

#[test]
fn every_preview1_import_links_with_its_signature() {
    let mut names: Vec<&str> = common::SIGNATURES.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    let mut provided = IMPORTS.to_vec();
    provided.sort_unstable();
    assert_eq!(names, provided);
    // A module importing all of them with preview1's signatures runs.
    assert_eq!(exit_code(&[], ""), 0);
}

#[test]
fn go_runtime_and_syscall_imports_are_all_provided() {
    // From `//go:wasmimport wasi_snapshot_preview1` in Go 1.26's runtime,
    // syscall and internal/syscall/unix.
    for name in [
        "args_get",
        "args_sizes_get",
        "clock_time_get",
        "environ_get",
        "environ_sizes_get",
        "fd_close",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_fdstat_set_rights",
        "fd_filestat_get",
        "fd_filestat_set_size",
        "fd_pread",
        "fd_prestat_dir_name",
        "fd_prestat_get",
        "fd_pwrite",
        "fd_read",
        "fd_readdir",
        "fd_seek",
        "fd_sync",
        "fd_write",
        "path_create_directory",
        "path_filestat_get",
        "path_filestat_set_times",
        "path_link",
        "path_open",
        "path_readlink",
        "path_remove_directory",
        "path_rename",
        "path_symlink",
        "path_unlink_file",
        "poll_oneoff",
        "proc_exit",
        "random_get",
        "sched_yield",
        "sock_accept",
        "sock_shutdown",
    ] {
        assert!(IMPORTS.contains(&name), "{name}");
    }
}

// ---- ending a run --------------------------------------------------------

#[test]
fn returning_from_start_is_exit_code_0_and_proc_exit_gives_its_code() {
    assert_eq!(exit_code(&[], ""), 0);
    assert_eq!(exit_code(&[], "(call $proc_exit (i32.const 7))"), 7);
    assert_eq!(exit_code(&[], "(call $proc_exit (i32.const -1))"), u32::MAX);
}

#[test]
fn the_wasi_state_comes_back_with_the_exit_code() {
    let wasm = module(
        &[(0x100, &words(&[0x200, 3])), (0x200, b"out")],
        "(drop (call $fd_write (i32.const 1) (i32.const 0x100) (i32.const 1) (i32.const 0x300)))
         (call $proc_exit (i32.const 5))",
    );
    let outcome = run_with(&wasm, FakeSystem::default(), Limits::default());
    assert_eq!(outcome.result, Ok(5));
    assert_eq!(outcome.wasi.exit_code(), Some(5));
    assert_eq!(outcome.wasi.system().stdout, b"out");
}

#[test]
fn a_trap_is_a_trap_error() {
    let outcome = run_with(
        &module(&[], "unreachable"),
        FakeSystem::default(),
        Limits::default(),
    );
    assert!(matches!(outcome.result, Err(RunError::Trap(ref why)) if why.contains("unreachable")));
    let outcome = run_with(
        &module(&[], "(drop (i32.load (i32.const 70000)))"),
        FakeSystem::default(),
        Limits::default(),
    );
    assert!(
        matches!(outcome.result, Err(RunError::Trap(ref why)) if why.contains("out of bounds"))
    );
}

#[test]
fn garbage_is_an_invalid_module() {
    let outcome = run_with(
        b"\0asm\x01\0\0\0garbage",
        FakeSystem::default(),
        Limits::default(),
    );
    assert!(matches!(outcome.result, Err(RunError::InvalidModule(_))));
    let outcome = run_with(b"", FakeSystem::default(), Limits::default());
    assert!(matches!(outcome.result, Err(RunError::InvalidModule(_))));
}

#[test]
fn imports_this_host_lacks_are_refused_before_running() {
    let wasm = wat::parse_str(
        r#"(module (import "gojs" "runtime.wasmExit" (func (param i32)))
                   (func (export "_start")))"#,
    )
    .unwrap();
    let outcome = run_with(&wasm, FakeSystem::default(), Limits::default());
    assert_eq!(
        outcome.result,
        Err(RunError::UnsupportedImport {
            module: "gojs".into(),
            name: "runtime.wasmExit".into()
        })
    );
    let wasm = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (func (export "_start")))"#,
    )
    .unwrap();
    assert!(matches!(
        run_with(&wasm, FakeSystem::default(), Limits::default()).result,
        Err(RunError::UnsupportedImport { .. })
    ));
    let wasm =
        wat::parse_str(r#"(module (import "env" "memory" (memory 1)) (func (export "_start")))"#)
            .unwrap();
    assert!(matches!(
        run_with(&wasm, FakeSystem::default(), Limits::default()).result,
        Err(RunError::UnsupportedImport { .. })
    ));
}

#[test]
fn a_known_import_with_the_wrong_signature_fails_to_instantiate() {
    let wasm = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_close" (func (param i64) (result i32)))
                   (func (export "_start")))"#,
    )
    .unwrap();
    assert!(matches!(
        run_with(&wasm, FakeSystem::default(), Limits::default()).result,
        Err(RunError::Instantiation(_))
    ));
}

#[test]
fn a_module_without_start_says_so() {
    let wasm = wat::parse_str("(module (memory (export \"memory\") 1))").unwrap();
    assert_eq!(
        run_with(&wasm, FakeSystem::default(), Limits::default()).result,
        Err(RunError::NoStart)
    );
}

// ---- limits ----------------------------------------------------------------

#[test]
fn an_endless_loop_stops_when_the_fuel_runs_out() {
    let wasm = module(&[], "(loop $forever (br $forever))");
    let limits = Limits {
        fuel: Some(1_000_000),
        ..Limits::default()
    };
    let outcome = run_with(&wasm, FakeSystem::default(), limits);
    assert_eq!(
        outcome.result,
        Err(RunError::FuelExhausted { budget: 1_000_000 })
    );
    assert_eq!(outcome.fuel_consumed, Some(1_000_000));
    assert!(
        outcome
            .result
            .unwrap_err()
            .to_string()
            .contains("instruction budget")
    );
}

#[test]
fn fuel_consumed_is_reported_for_a_run_that_ends() {
    let limits = Limits {
        fuel: Some(1_000_000),
        ..Limits::default()
    };
    let outcome = run_with(&module(&[], ""), FakeSystem::default(), limits);
    assert_eq!(outcome.result, Ok(0));
    assert!(outcome.fuel_consumed.unwrap() < 1_000_000);
}

#[test]
fn growing_memory_past_the_limit_stops_the_instance() {
    let limits = Limits {
        max_memory_pages: 4,
        ..Limits::default()
    };
    let grow = "(drop (memory.grow (i32.const 2)))";
    assert_eq!(
        run_with(&module(&[], grow), FakeSystem::default(), limits.clone()).result,
        Ok(0)
    );
    let outcome = run_with(
        &module(&[], "(drop (memory.grow (i32.const 4)))"),
        FakeSystem::default(),
        limits.clone(),
    );
    assert_eq!(outcome.result, Err(RunError::MemoryLimit { max_pages: 4 }));
    // A module whose initial memory is already too large never starts.
    let wasm = wat::parse_str("(module (memory (export \"memory\") 5) (func (export \"_start\")))")
        .unwrap();
    assert_eq!(
        run_with(&wasm, FakeSystem::default(), limits).result,
        Err(RunError::MemoryLimit { max_pages: 4 })
    );
}

#[test]
fn growing_a_table_past_the_limit_stops_the_instance() {
    let limits = Limits {
        max_table_elements: 8,
        ..Limits::default()
    };
    let wasm = |grow: u32| {
        wat::parse_str(format!(
            r#"(module (memory (export "memory") 1) (table 4 funcref)
                 (func (export "_start") (drop (table.grow (ref.null func) (i32.const {grow})))))"#
        ))
        .unwrap()
    };
    assert_eq!(
        run_with(&wasm(4), FakeSystem::default(), limits.clone()).result,
        Ok(0)
    );
    assert_eq!(
        run_with(&wasm(5), FakeSystem::default(), limits).result,
        Err(RunError::TableLimit { max_elements: 8 })
    );
}

#[test]
fn recursion_is_limited_by_the_call_depth() {
    let wasm = wat::parse_str(
        r#"(module
             (global $depth (mut i32) (i32.const 0))
             (func $recurse (param i32)
               (if (local.get 0) (then (call $recurse (i32.sub (local.get 0) (i32.const 1))))))
             (func (export "_start") (call $recurse (i32.const 50000))))"#,
    )
    .unwrap();
    // wasmi's default of 1000 frames would stop this; the host's default
    // (100 000) does not.
    assert_eq!(
        run_with(&wasm, FakeSystem::default(), Limits::default()).result,
        Ok(0)
    );
    let shallow = Limits {
        max_call_depth: 1000,
        ..Limits::default()
    };
    assert_eq!(
        run_with(&wasm, FakeSystem::default(), shallow).result,
        Err(RunError::StackExhausted {
            max_call_depth: 1000
        })
    );
}

#[test]
fn silly_limits_do_not_panic() {
    let limits = Limits {
        max_memory_pages: 0,
        fuel: Some(0),
        max_call_depth: 0,
        max_value_stack_bytes: 0,
        max_table_elements: 0,
    };
    let outcome = run_with(&module(&[], ""), FakeSystem::default(), limits);
    assert!(outcome.result.is_err());
}

#[test]
fn one_program_runs_many_times() {
    let host = Host::new(Limits::default());
    let program = host
        .load(&module(&[], "(call $proc_exit (i32.const 9))"))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            host.run(&program, wasi(FakeSystem::default())).result,
            Ok(9)
        );
    }
}

// ---- arguments, environment ------------------------------------------------

#[test]
fn args_and_environ_are_counted_and_written() {
    // "prog\0one\0": 2 strings, 9 bytes.
    assert_eq!(
        value_after(
            &[],
            "(call $args_sizes_get (i32.const 0x400) (i32.const 0x404))",
            0x400
        ),
        1002
    );
    assert_eq!(
        value_after(
            &[],
            "(call $args_sizes_get (i32.const 0x400) (i32.const 0x404))",
            0x404
        ),
        1009
    );
    assert_eq!(
        value_after(
            &[],
            "(call $environ_sizes_get (i32.const 0x400) (i32.const 0x404))",
            0x404
        ),
        1004
    );
    // argv[1] points 5 bytes into the buffer, at "one".
    assert_eq!(
        value_after(
            &[],
            "(call $args_get (i32.const 0x400) (i32.const 0x500))",
            0x404
        ),
        1000 + 0x505
    );
    assert_eq!(
        value_after(
            &[],
            "(call $args_get (i32.const 0x400) (i32.const 0x500))",
            0x505
        ),
        1000 + u32::from_le_bytes(*b"one\0")
    );
    assert_eq!(
        value_after(
            &[],
            "(call $environ_get (i32.const 0x400) (i32.const 0x500))",
            0x500
        ),
        1000 + u32::from_le_bytes(*b"K=V\0")
    );
}

#[test]
fn args_with_bad_pointers_are_efault_or_einval() {
    let fault = code(Errno::Fault);
    assert_eq!(
        errno(
            &[],
            &format!("(call $args_sizes_get (i32.const {PAGE}) (i32.const 0))")
        ),
        fault
    );
    assert_eq!(
        errno(&[], "(call $args_sizes_get (i32.const 0) (i32.const -4))"),
        fault
    );
    assert_eq!(
        errno(&[], "(call $args_sizes_get (i32.const 2) (i32.const 0))"),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(
            &[],
            &format!("(call $args_get (i32.const {}) (i32.const 0))", PAGE - 4)
        ),
        fault
    );
    assert_eq!(
        errno(
            &[],
            &format!("(call $args_get (i32.const 0) (i32.const {}))", PAGE - 8)
        ),
        fault
    );
    assert_eq!(
        errno(
            &[],
            &format!("(call $environ_get (i32.const 0) (i32.const {}))", PAGE - 3)
        ),
        fault
    );
    assert_eq!(
        errno(&[], "(call $environ_get (i32.const 1) (i32.const 0))"),
        code(Errno::Inval)
    );
}

// ---- clocks, random, yield, signals -------------------------------------

#[test]
fn clocks_read_the_system() {
    let realtime = "(call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 0x400))";
    // The low word of the test epoch.
    assert_eq!(
        value_after(&[], realtime, 0x400),
        1000u32.wrapping_add(FAKE_EPOCH_NANOS as u32)
    );
    assert_eq!(
        value_after(
            &[],
            "(call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 0x400))",
            0x400
        ),
        1001
    );
    assert_eq!(
        value_after(
            &[],
            "(call $clock_res_get (i32.const 1) (i32.const 0x400))",
            0x400
        ),
        1001
    );
    assert_eq!(
        value_after(
            &[],
            "(call $clock_time_get (i32.const 2) (i64.const 1) (i32.const 0x400))",
            0x400
        ),
        1000
    );
}

#[test]
fn clocks_refuse_unknown_ids_and_bad_pointers() {
    assert_eq!(
        errno(
            &[],
            "(call $clock_time_get (i32.const 4) (i64.const 0) (i32.const 0x400))"
        ),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(
            &[],
            "(call $clock_res_get (i32.const -1) (i32.const 0x400))"
        ),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(
            &[],
            "(call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 0x404))"
        ),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(
            &[],
            &format!("(call $clock_time_get (i32.const 0) (i64.const 0) (i32.const {PAGE}))")
        ),
        code(Errno::Fault)
    );
    assert_eq!(
        errno(&[], "(call $clock_res_get (i32.const 0) (i32.const -8))"),
        code(Errno::Fault)
    );
}

#[test]
fn random_get_fills_the_buffer_or_faults() {
    assert_eq!(
        value_after(
            &[],
            "(call $random_get (i32.const 0x400) (i32.const 4))",
            0x400
        ),
        1000 + 0x6445_2607
    );
    assert_eq!(
        errno(
            &[],
            &format!("(call $random_get (i32.const {PAGE}) (i32.const 0))")
        ),
        0
    );
    assert_eq!(
        errno(
            &[],
            &format!("(call $random_get (i32.const {}) (i32.const 2))", PAGE - 1)
        ),
        code(Errno::Fault)
    );
    assert_eq!(
        errno(&[], "(call $random_get (i32.const 16) (i32.const -1))"),
        code(Errno::Fault)
    );
}

#[test]
fn sched_yield_yields_and_proc_raise_is_enosys() {
    let wasm = module(&[], "(call $proc_exit (call $sched_yield))");
    let outcome = run_with(&wasm, FakeSystem::default(), Limits::default());
    assert_eq!(outcome.result, Ok(0));
    assert_eq!(outcome.wasi.system().yields, 1);
    assert_eq!(
        errno(&[], "(call $proc_raise (i32.const 9))"),
        code(Errno::NoSys)
    );
}

// ---- console ---------------------------------------------------------------

#[test]
fn fd_write_sends_iovecs_to_the_console_in_order() {
    let data: &[(u32, &[u8])] = &[
        (0x100, &words(&[0x200, 5, 0x300, 0, 0x205, 1])),
        (0x200, b"hello!"),
    ];
    let wasm = module(
        data,
        "(drop (call $fd_write (i32.const 1) (i32.const 0x100) (i32.const 3) (i32.const 0x400)))
         (drop (call $fd_write (i32.const 2) (i32.const 0x100) (i32.const 1) (i32.const 0x400)))
         (call $proc_exit (i32.load (i32.const 0x400)))",
    );
    let outcome = run_with(&wasm, FakeSystem::default(), Limits::default());
    assert_eq!(outcome.result, Ok(5));
    assert_eq!(outcome.wasi.system().stdout, b"hello!");
    assert_eq!(outcome.wasi.system().stderr, b"hello");
}

#[test]
fn fd_write_checks_every_pointer_before_writing() {
    let fault = code(Errno::Fault);
    // The iovec array itself is outside memory.
    let call = |iovs: u32, count: u32, out: u32| {
        format!(
            "(call $fd_write (i32.const 1) (i32.const {iovs}) (i32.const {count}) (i32.const {out}))"
        )
    };
    assert_eq!(errno(&[], &call(PAGE - 4, 1, 0x400)), fault);
    // An iovec's buffer runs past the end (and nothing was written).
    let data: &[(u32, &[u8])] = &[(0x100, &words(&[0x200, 1, PAGE - 2, 3]))];
    let wasm = module(
        data,
        &format!("(call $proc_exit {})", call(0x100, 2, 0x400)),
    );
    let outcome = run_with(&wasm, FakeSystem::default(), Limits::default());
    assert_eq!(outcome.result, Ok(fault));
    assert!(outcome.wasi.system().stdout.is_empty());
    // nwritten outside memory, or misaligned.
    assert_eq!(
        errno(&[(0x100, &words(&[0x200, 1]))], &call(0x100, 1, PAGE)),
        fault
    );
    assert_eq!(
        errno(&[(0x100, &words(&[0x200, 1]))], &call(0x100, 1, 0x401)),
        code(Errno::Inval)
    );
    // A misaligned iovec array, and too many iovecs.
    assert_eq!(errno(&[], &call(0x102, 1, 0x400)), code(Errno::Inval));
    assert_eq!(errno(&[], &call(0x100, 1025, 0x400)), code(Errno::Inval));
    assert_eq!(
        errno(&[], &call(0x100, u32::MAX, 0x400)),
        code(Errno::Inval)
    );
}

#[test]
fn console_failures_reach_the_program() {
    let data: &[(u32, &[u8])] = &[(0x100, &words(&[0x200, 2])), (0x200, b"hi")];
    let wasm = module(
        data,
        "(call $proc_exit (call $fd_write (i32.const 1) (i32.const 0x100) (i32.const 1) (i32.const 0x400)))",
    );
    let system = FakeSystem {
        console_error: Some(Errno::Pipe),
        ..FakeSystem::default()
    };
    assert_eq!(
        run_with(&wasm, system, Limits::default()).result,
        Ok(code(Errno::Pipe))
    );
}

#[test]
fn fd_read_reads_console_input() {
    let data: &[(u32, &[u8])] = &[(0x100, &words(&[0x200, 0, 0x300, 16]))];
    let wasm = module(
        data,
        "(drop (call $fd_read (i32.const 0) (i32.const 0x100) (i32.const 2) (i32.const 0x400)))
         (call $proc_exit (i32.add (i32.mul (i32.load (i32.const 0x400)) (i32.const 1000))
                                   (i32.load8_u (i32.const 0x301))))",
    );
    let system = FakeSystem {
        stdin: b"input".to_vec(),
        ..FakeSystem::default()
    };
    assert_eq!(
        run_with(&wasm, system, Limits::default()).result,
        Ok(5 * 1000 + u32::from(b'n'))
    );
    // No input at all is end of file: 0 bytes.
    assert_eq!(
        value_after(
            &[(0x100, &words(&[0x200, 16]))],
            "(call $fd_read (i32.const 0) (i32.const 0x100) (i32.const 1) (i32.const 0x400))",
            0x400
        ),
        1000
    );
}

#[test]
fn console_fds_refuse_what_they_cannot_do() {
    let notcapable = code(Errno::NotCapable);
    let iov: &[(u32, &[u8])] = &[(0x100, &words(&[0x200, 1]))];
    // Reading stdout, writing stdin: the rights are not there.
    assert_eq!(
        errno(
            iov,
            "(call $fd_read (i32.const 1) (i32.const 0x100) (i32.const 1) (i32.const 0x400))"
        ),
        notcapable
    );
    assert_eq!(
        errno(
            iov,
            "(call $fd_write (i32.const 0) (i32.const 0x100) (i32.const 1) (i32.const 0x400))"
        ),
        notcapable
    );
    // Seeking, telling and positional I/O on a terminal.
    assert_eq!(
        errno(&[], "(call $fd_tell (i32.const 1) (i32.const 0x400))"),
        notcapable
    );
    assert_eq!(
        errno(
            &[],
            "(call $fd_seek (i32.const 1) (i64.const 0) (i32.const 0) (i32.const 0x400))"
        ),
        notcapable
    );
    assert_eq!(
        errno(&[], "(call $fd_sync (i32.const 1))"),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(
            &[],
            "(call $fd_filestat_set_size (i32.const 1) (i64.const 0))"
        ),
        notcapable
    );
}

#[test]
fn console_fdstat_is_a_character_device_and_flags_stick() {
    // filetype byte at 0x400.
    assert_eq!(
        exit_code(
            &[],
            "(drop (call $fd_fdstat_get (i32.const 1) (i32.const 0x400)))
             (call $proc_exit (i32.load8_u (i32.const 0x400)))"
        ),
        2
    );
    // Go sets O_NONBLOCK on its stdio at start-up; the flag reads back.
    assert_eq!(
        exit_code(
            &[],
            "(drop (call $fd_fdstat_set_flags (i32.const 1) (i32.const 4)))
             (drop (call $fd_fdstat_get (i32.const 1) (i32.const 0x400)))
             (call $proc_exit (i32.load16_u (i32.const 0x402)))"
        ),
        4
    );
    assert_eq!(
        errno(
            &[],
            "(call $fd_fdstat_set_flags (i32.const 1) (i32.const 0x20))"
        ),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(&[], "(call $fd_fdstat_get (i32.const 1) (i32.const 0x404))"),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(
            &[],
            &format!(
                "(call $fd_fdstat_get (i32.const 1) (i32.const {}))",
                PAGE - 16
            )
        ),
        code(Errno::Fault)
    );
}

// ---- unknown fds -----------------------------------------------------------

#[test]
fn every_fd_call_on_an_unknown_fd_is_ebadf() {
    let badf = code(Errno::BadF);
    let iov: &[(u32, &[u8])] = &[(0x100, &words(&[0x200, 4])), (0x200, b"file")];
    for call in [
        "(call $fd_write (i32.const 99) (i32.const 0x100) (i32.const 1) (i32.const 0x400))",
        "(call $fd_read (i32.const 99) (i32.const 0x100) (i32.const 1) (i32.const 0x400))",
        "(call $fd_pread (i32.const 99) (i32.const 0x100) (i32.const 1) (i64.const 0) (i32.const 0x400))",
        "(call $fd_pwrite (i32.const 99) (i32.const 0x100) (i32.const 1) (i64.const 0) (i32.const 0x400))",
        "(call $fd_close (i32.const 99))",
        "(call $fd_close (i32.const -1))",
        "(call $fd_seek (i32.const 99) (i64.const 0) (i32.const 0) (i32.const 0x400))",
        "(call $fd_tell (i32.const 99) (i32.const 0x400))",
        "(call $fd_sync (i32.const 99))",
        "(call $fd_datasync (i32.const 99))",
        "(call $fd_advise (i32.const 99) (i64.const 0) (i64.const 0) (i32.const 0))",
        "(call $fd_allocate (i32.const 99) (i64.const 0) (i64.const 0))",
        "(call $fd_fdstat_get (i32.const 99) (i32.const 0x400))",
        "(call $fd_fdstat_set_flags (i32.const 99) (i32.const 0))",
        "(call $fd_fdstat_set_rights (i32.const 99) (i64.const 0) (i64.const 0))",
        "(call $fd_filestat_get (i32.const 99) (i32.const 0x400))",
        "(call $fd_filestat_set_size (i32.const 99) (i64.const 0))",
        "(call $fd_filestat_set_times (i32.const 99) (i64.const 0) (i64.const 0) (i32.const 0))",
        "(call $fd_readdir (i32.const 99) (i32.const 0x1000) (i32.const 256) (i64.const 0) (i32.const 0x400))",
        "(call $fd_prestat_get (i32.const 99) (i32.const 0x400))",
        "(call $fd_prestat_dir_name (i32.const 99) (i32.const 0x400) (i32.const 8))",
        "(call $fd_renumber (i32.const 99) (i32.const 1))",
        "(call $fd_renumber (i32.const 1) (i32.const 99))",
        "(call $path_open (i32.const 99) (i32.const 0) (i32.const 0x200) (i32.const 4) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0x400))",
        "(call $path_filestat_get (i32.const 99) (i32.const 0) (i32.const 0x200) (i32.const 4) (i32.const 0x400))",
        "(call $path_create_directory (i32.const 99) (i32.const 0x200) (i32.const 4))",
        "(call $path_remove_directory (i32.const 99) (i32.const 0x200) (i32.const 4))",
        "(call $path_unlink_file (i32.const 99) (i32.const 0x200) (i32.const 4))",
        "(call $path_readlink (i32.const 99) (i32.const 0x200) (i32.const 4) (i32.const 0x1000) (i32.const 64) (i32.const 0x400))",
        "(call $path_rename (i32.const 99) (i32.const 0x200) (i32.const 4) (i32.const 3) (i32.const 0x200) (i32.const 4))",
        "(call $path_link (i32.const 3) (i32.const 0) (i32.const 0x200) (i32.const 4) (i32.const 99) (i32.const 0x200) (i32.const 4))",
        "(call $path_symlink (i32.const 0x200) (i32.const 4) (i32.const 99) (i32.const 0x200) (i32.const 4))",
        "(call $path_filestat_set_times (i32.const 99) (i32.const 0) (i32.const 0x200) (i32.const 4) (i64.const 0) (i64.const 0) (i32.const 0))",
        "(call $sock_accept (i32.const 99) (i32.const 0) (i32.const 0x400))",
        "(call $sock_recv (i32.const 99) (i32.const 0x100) (i32.const 1) (i32.const 0) (i32.const 0x400) (i32.const 0x404))",
        "(call $sock_send (i32.const 99) (i32.const 0x100) (i32.const 1) (i32.const 0) (i32.const 0x400))",
        "(call $sock_shutdown (i32.const 99) (i32.const 0))",
    ] {
        assert_eq!(errno(iov, call), badf, "{call}");
    }
}

#[test]
fn sockets_calls_on_fds_that_are_not_sockets_are_enotsock() {
    assert_eq!(
        errno(
            &[],
            "(call $sock_accept (i32.const 3) (i32.const 0) (i32.const 0x400))"
        ),
        code(Errno::NotSock)
    );
    assert_eq!(
        errno(&[], "(call $sock_shutdown (i32.const 1) (i32.const 3))"),
        code(Errno::NotSock)
    );
    assert_eq!(
        errno(
            &[],
            "(call $sock_send (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))"
        ),
        code(Errno::NotSock)
    );
}

// ---- preopens --------------------------------------------------------------

#[test]
fn the_tree_is_preopened_as_fd_3_named_slash() {
    // prestat: tag 0 (dir) at 0x400, name length at 0x404.
    assert_eq!(
        value_after(
            &[],
            "(call $fd_prestat_get (i32.const 3) (i32.const 0x400))",
            0x404
        ),
        1001
    );
    assert_eq!(
        value_after(
            &[],
            "(call $fd_prestat_dir_name (i32.const 3) (i32.const 0x400) (i32.const 1))",
            0x400
        ),
        1000 + u32::from(b'/')
    );
    // fd 4 ends Go's scan for preopens; the console fds are no preopens.
    assert_eq!(
        errno(
            &[],
            "(call $fd_prestat_get (i32.const 4) (i32.const 0x400))"
        ),
        code(Errno::BadF)
    );
    assert_eq!(
        errno(
            &[],
            "(call $fd_prestat_get (i32.const 0) (i32.const 0x400))"
        ),
        code(Errno::BadF)
    );
    assert_eq!(
        errno(
            &[],
            "(call $fd_prestat_dir_name (i32.const 3) (i32.const 0x400) (i32.const 0))"
        ),
        code(Errno::NameTooLong)
    );
    assert_eq!(
        errno(
            &[],
            &format!("(call $fd_prestat_dir_name (i32.const 3) (i32.const {PAGE}) (i32.const 1))")
        ),
        code(Errno::Fault)
    );
    assert_eq!(
        errno(
            &[],
            "(call $fd_prestat_get (i32.const 3) (i32.const 0x401))"
        ),
        code(Errno::Inval)
    );
}

// ---- files -------------------------------------------------------------------

/// `path_open` of `path` (placed at 0x200) in fd 3, read-only rights,
/// following symlinks; the new fd lands at 0x400.
fn open_call(path_len: usize, oflags: u32, rights: u64) -> String {
    format!(
        "(call $path_open (i32.const 3) (i32.const 1) (i32.const 0x200) (i32.const {path_len}) \
         (i32.const {oflags}) (i64.const {rights}) (i64.const {rights}) (i32.const 0) (i32.const 0x400))"
    )
}

const READ_RIGHTS: u64 =
    (1 << 1) | (1 << 2) | (1 << 5) | (1 << 14) | (1 << 21) | (1 << 18) | (1 << 13);
const WRITE_RIGHT: u64 = 1 << 6;

#[test]
fn a_file_opens_reads_seeks_and_closes() {
    let path = b"dir/file.txt";
    let data: &[(u32, &[u8])] = &[(0x200, path), (0x100, &words(&[0x1000, 5, 0x1010, 100]))];
    // Open, read 5 + the rest, check the count (11) and a byte.
    let body = format!(
        "(local $fd i32)
         (if (call $path_open (i32.const 3) (i32.const 1) (i32.const 0x200) (i32.const {}) (i32.const 0)
                 (i64.const {READ_RIGHTS}) (i64.const {READ_RIGHTS}) (i32.const 0) (i32.const 0x400))
           (then (call $proc_exit (i32.const 100))))
         (local.set $fd (i32.load (i32.const 0x400)))
         (if (call $fd_read (local.get $fd) (i32.const 0x100) (i32.const 2) (i32.const 0x404))
           (then (call $proc_exit (i32.const 101))))
         (if (i32.ne (i32.load (i32.const 0x404)) (i32.const 11)) (then (call $proc_exit (i32.const 102))))
         (if (i32.ne (i32.load8_u (i32.const 0x1010)) (i32.const 0x20)) (then (call $proc_exit (i32.const 103))))
         ;; At the end: another read gives 0.
         (drop (call $fd_read (local.get $fd) (i32.const 0x100) (i32.const 2) (i32.const 0x404)))
         (if (i32.load (i32.const 0x404)) (then (call $proc_exit (i32.const 104))))
         ;; Seek to 6 from the start, tell says 6, pread at 1 does not move.
         (if (call $fd_seek (local.get $fd) (i64.const 6) (i32.const 0) (i32.const 0x408))
           (then (call $proc_exit (i32.const 105))))
         (drop (call $fd_pread (local.get $fd) (i32.const 0x100) (i32.const 1) (i64.const 1) (i32.const 0x404)))
         (drop (call $fd_tell (local.get $fd) (i32.const 0x408)))
         (if (i64.ne (i64.load (i32.const 0x408)) (i64.const 6)) (then (call $proc_exit (i32.const 106))))
         (if (i32.ne (i32.load8_u (i32.const 0x1000)) (i32.const 0x65)) (then (call $proc_exit (i32.const 107))))
         ;; Seeking before the start is EINVAL; from the end works.
         (if (i32.ne (call $fd_seek (local.get $fd) (i64.const -1) (i32.const 0) (i32.const 0x408)) (i32.const 28))
           (then (call $proc_exit (i32.const 108))))
         (drop (call $fd_seek (local.get $fd) (i64.const -1) (i32.const 2) (i32.const 0x408)))
         (if (i64.ne (i64.load (i32.const 0x408)) (i64.const 10)) (then (call $proc_exit (i32.const 109))))
         (if (i32.ne (call $fd_seek (local.get $fd) (i64.const 0) (i32.const 3) (i32.const 0x408)) (i32.const 28))
           (then (call $proc_exit (i32.const 110))))
         (if (call $fd_close (local.get $fd)) (then (call $proc_exit (i32.const 111))))
         (call $proc_exit (call $fd_close (local.get $fd)))",
        path.len()
    );
    assert_eq!(exit_code(data, &body), code(Errno::BadF));
}

#[test]
fn new_fds_take_the_lowest_free_number() {
    let path = b"dir/file.txt";
    let body = format!(
        "(drop {open})
         (drop {open})
         (if (i32.ne (i32.load (i32.const 0x400)) (i32.const 5)) (then (call $proc_exit (i32.const 1))))
         (drop (call $fd_close (i32.const 4)))
         (drop {open})
         (call $proc_exit (i32.load (i32.const 0x400)))",
        open = open_call(path.len(), 0, READ_RIGHTS)
    );
    assert_eq!(exit_code(&[(0x200, path)], &body), 4);
}

#[test]
fn the_fd_limit_is_emfile() {
    let path = b"big.bin";
    let wasm = module(
        &[(0x200, path)],
        &format!(
            "(loop $more (if (i32.eqz {}) (then (br $more))))
             (call $proc_exit (call $fd_close (i32.const 9)))",
            open_call(path.len(), 0, READ_RIGHTS)
        ),
    );
    let wasi = Wasi::builder(FakeSystem::default())
        .preopen("/", tree())
        .max_open_fds(10)
        .build()
        .unwrap();
    // Opened 4..=9, then EMFILE ended the loop; fd 9 was open.
    assert_eq!(run(&wasm, wasi, Limits::default()).result, Ok(0));
}

#[test]
fn opening_for_writing_or_creating_is_erofs() {
    let rofs = code(Errno::RoFs);
    let path = b"dir/file.txt";
    let data: &[(u32, &[u8])] = &[(0x200, path)];
    assert_eq!(
        errno(data, &open_call(path.len(), 0, READ_RIGHTS | WRITE_RIGHT)),
        rofs
    );
    assert_eq!(errno(data, &open_call(path.len(), 8, READ_RIGHTS)), rofs); // O_TRUNC
    assert_eq!(errno(data, &open_call(path.len(), 1, READ_RIGHTS)), 0); // O_CREAT of an existing file
    assert_eq!(
        errno(data, &open_call(path.len(), 1 | 4, READ_RIGHTS)),
        code(Errno::Exist)
    ); // O_EXCL
    let new = b"dir/new.txt";
    assert_eq!(
        errno(
            &[(0x200, new)],
            &open_call(new.len(), 1, READ_RIGHTS | WRITE_RIGHT)
        ),
        rofs
    );
    let orphan = b"nowhere/new.txt";
    assert_eq!(
        errno(&[(0x200, orphan)], &open_call(orphan.len(), 1, READ_RIGHTS)),
        code(Errno::NoEnt)
    );
    assert_eq!(
        errno(&[(0x200, new)], &open_call(new.len(), 0, READ_RIGHTS)),
        code(Errno::NoEnt)
    );
    // A directory cannot be opened for writing.
    assert_eq!(
        errno(
            &[(0x200, b"dir")],
            &open_call(3, 0, READ_RIGHTS | WRITE_RIGHT)
        ),
        code(Errno::IsDir)
    );
}

#[test]
fn path_open_checks_its_arguments() {
    let path = b"dir/file.txt";
    let data: &[(u32, &[u8])] = &[
        (0x200, path),
        (0x300, b"/dir"),
        (0x310, b"../x"),
        (0x320, b"\xff\xfe"),
    ];
    let open = |fd: u32, ptr: u32, len: u32, oflags: u32, out: u32| {
        format!(
            "(call $path_open (i32.const {fd}) (i32.const 1) (i32.const {ptr}) (i32.const {len}) (i32.const {oflags}) \
             (i64.const 0) (i64.const 0) (i32.const 0) (i32.const {out}))"
        )
    };
    assert_eq!(
        errno(data, &open(3, PAGE - 2, 4, 0, 0x400)),
        code(Errno::Fault)
    );
    assert_eq!(
        errno(data, &open(3, 0x200, 12, 0, PAGE)),
        code(Errno::Fault)
    );
    assert_eq!(
        errno(data, &open(3, 0x200, 12, 0, 0x402)),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(data, &open(3, 0x200, 12, 0x10, 0x400)),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(data, &open(3, 0x300, 4, 0, 0x400)),
        code(Errno::NotCapable)
    );
    assert_eq!(
        errno(data, &open(3, 0x310, 4, 0, 0x400)),
        code(Errno::NotCapable)
    );
    assert_eq!(
        errno(data, &open(3, 0x320, 2, 0, 0x400)),
        code(Errno::IlSeq)
    );
    assert_eq!(
        errno(data, &open(3, 0x200, 0, 0, 0x400)),
        code(Errno::NoEnt)
    );
    assert_eq!(
        errno(data, &open(3, 0x200, 5000, 0, 0x400)),
        code(Errno::NameTooLong)
    );
    assert_eq!(
        errno(data, &open(1, 0x200, 12, 0, 0x400)),
        code(Errno::NotDir)
    );
    // O_DIRECTORY on a file.
    assert_eq!(
        errno(data, &open(3, 0x200, 12, 2, 0x400)),
        code(Errno::NotDir)
    );
}

#[test]
fn symlinks_are_followed_or_not_as_asked() {
    let data: &[(u32, &[u8])] = &[(0x200, b"link")];
    // Following: the file's size (11) at offset 32 of the filestat.
    assert_eq!(
        value_after(
            data,
            "(call $path_filestat_get (i32.const 3) (i32.const 1) (i32.const 0x200) (i32.const 4) (i32.const 0x1000))",
            0x1020
        ),
        1011
    );
    // Not following: a symlink (filetype 7 at offset 16).
    assert_eq!(
        value_after(
            data,
            "(call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 0x200) (i32.const 4) (i32.const 0x1000))",
            0x1010
        ) & 0xff,
        (1000 + 7) & 0xff
    );
    assert_eq!(
        value_after(
            data,
            "(call $path_readlink (i32.const 3) (i32.const 0x200) (i32.const 4) (i32.const 0x1000) (i32.const 64) (i32.const 0x400))",
            0x400
        ),
        1000 + 12
    );
    // A short buffer gets the start of the target and its own length.
    assert_eq!(
        value_after(
            data,
            "(call $path_readlink (i32.const 3) (i32.const 0x200) (i32.const 4) (i32.const 0x1000) (i32.const 3) (i32.const 0x400))",
            0x400
        ),
        1003
    );
    // readlink of a file is EINVAL; opening a link without following, ELOOP.
    assert_eq!(
        errno(
            &[(0x200, b"big.bin")],
            "(call $path_readlink (i32.const 3) (i32.const 0x200) (i32.const 7) (i32.const 0x1000) (i32.const 64) (i32.const 0x400))"
        ),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_open (i32.const 3) (i32.const 0) (i32.const 0x200) (i32.const 4) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0x400))"
        ),
        code(Errno::Loop)
    );
}

#[test]
fn filestat_reports_size_type_and_times() {
    let data: &[(u32, &[u8])] = &[(0x200, b"dir")];
    // mtime of "dir" is 1000 s: the low word of 1000e9 ns.
    assert_eq!(
        value_after(
            data,
            "(call $path_filestat_get (i32.const 3) (i32.const 1) (i32.const 0x200) (i32.const 3) (i32.const 0x1000))",
            0x1030
        ),
        1000u32.wrapping_add(1_000_000_000_000u64 as u32)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_filestat_get (i32.const 3) (i32.const 1) (i32.const 0x200) (i32.const 3) (i32.const 0x1004))"
        ),
        code(Errno::Inval)
    );
    // fd_filestat_get of the preopen: a directory.
    assert_eq!(
        value_after(
            &[],
            "(call $fd_filestat_get (i32.const 3) (i32.const 0x1000))",
            0x1010
        ) & 0xff,
        (1000 + 3) & 0xff
    );
}

#[test]
fn rights_that_were_dropped_are_enotcapable() {
    let path = b"dir/file.txt";
    let iov = words(&[0x1000, 4]);
    let data: &[(u32, &[u8])] = &[(0x200, path), (0x100, &iov)];
    // Opened without FD_READ.
    let body = format!(
        "(drop {})
         (call $proc_exit (call $fd_read (i32.load (i32.const 0x400)) (i32.const 0x100) (i32.const 1) (i32.const 0x404)))",
        open_call(path.len(), 0, 1 << 2)
    );
    assert_eq!(exit_code(data, &body), code(Errno::NotCapable));
    // Dropping PATH_OPEN from the preopen, then opening.
    let body = format!(
        "(drop (call $fd_fdstat_set_rights (i32.const 3) (i64.const 0) (i64.const 0x3fffffff)))
         (call $proc_exit {})",
        open_call(path.len(), 0, READ_RIGHTS)
    );
    assert_eq!(exit_code(data, &body), code(Errno::NotCapable));
    // Rights can be dropped but never added back.
    assert_eq!(
        exit_code(
            &[],
            "(drop (call $fd_fdstat_set_rights (i32.const 1) (i64.const 0) (i64.const 0)))
             (call $proc_exit (call $fd_fdstat_set_rights (i32.const 1) (i64.const 64) (i64.const 0)))"
        ),
        code(Errno::NotCapable)
    );
    // The dropped right shows in fdstat and the call it guarded fails.
    assert_eq!(
        exit_code(
            &[(0x100, &words(&[0x200, 1]))],
            "(drop (call $fd_fdstat_set_rights (i32.const 1) (i64.const 0) (i64.const 0)))
             (call $proc_exit (call $fd_write (i32.const 1) (i32.const 0x100) (i32.const 1) (i32.const 0x400)))"
        ),
        code(Errno::NotCapable)
    );
}

#[test]
fn changing_the_tree_is_refused_with_the_errno_a_writable_tree_would_give_first() {
    let data: &[(u32, &[u8])] = &[
        (0x200, b"dir"),
        (0x210, b"dir/file.txt"),
        (0x230, b"new"),
        (0x240, b"nope/new"),
    ];
    let call = |name: &str, path: (u32, u32)| {
        format!(
            "(call ${name} (i32.const 3) (i32.const {}) (i32.const {}))",
            path.0, path.1
        )
    };
    let (dir, file, new, orphan) = ((0x200, 3), (0x210, 12), (0x230, 3), (0x240, 8));
    assert_eq!(
        errno(data, &call("path_create_directory", dir)),
        code(Errno::Exist)
    );
    assert_eq!(
        errno(data, &call("path_create_directory", new)),
        code(Errno::RoFs)
    );
    assert_eq!(
        errno(data, &call("path_create_directory", orphan)),
        code(Errno::NoEnt)
    );
    assert_eq!(
        errno(data, &call("path_remove_directory", dir)),
        code(Errno::RoFs)
    );
    assert_eq!(
        errno(data, &call("path_remove_directory", file)),
        code(Errno::NotDir)
    );
    assert_eq!(
        errno(data, &call("path_remove_directory", new)),
        code(Errno::NoEnt)
    );
    assert_eq!(
        errno(data, &call("path_unlink_file", file)),
        code(Errno::RoFs)
    );
    assert_eq!(
        errno(data, &call("path_unlink_file", dir)),
        code(Errno::IsDir)
    );
    assert_eq!(
        errno(data, &call("path_unlink_file", new)),
        code(Errno::NoEnt)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_rename (i32.const 3) (i32.const 0x210) (i32.const 12) (i32.const 3) (i32.const 0x230) (i32.const 3))"
        ),
        code(Errno::RoFs)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_rename (i32.const 3) (i32.const 0x230) (i32.const 3) (i32.const 3) (i32.const 0x200) (i32.const 3))"
        ),
        code(Errno::NoEnt)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_link (i32.const 3) (i32.const 0) (i32.const 0x210) (i32.const 12) (i32.const 3) (i32.const 0x230) (i32.const 3))"
        ),
        code(Errno::RoFs)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_link (i32.const 3) (i32.const 0) (i32.const 0x210) (i32.const 12) (i32.const 3) (i32.const 0x200) (i32.const 3))"
        ),
        code(Errno::Exist)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_symlink (i32.const 0x210) (i32.const 12) (i32.const 3) (i32.const 0x230) (i32.const 3))"
        ),
        code(Errno::RoFs)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_symlink (i32.const 0x210) (i32.const 12) (i32.const 3) (i32.const 0x200) (i32.const 3))"
        ),
        code(Errno::Exist)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_filestat_set_times (i32.const 3) (i32.const 1) (i32.const 0x210) (i32.const 12) (i64.const 0) (i64.const 0) (i32.const 5))"
        ),
        code(Errno::RoFs)
    );
    assert_eq!(
        errno(
            data,
            "(call $path_filestat_set_times (i32.const 3) (i32.const 1) (i32.const 0x210) (i32.const 12) (i64.const 0) (i64.const 0) (i32.const 3))"
        ),
        code(Errno::Inval)
    );
    assert_eq!(
        errno(
            data,
            "(call $fd_filestat_set_size (i32.const 3) (i64.const 0))"
        ),
        code(Errno::IsDir)
    );
    assert_eq!(
        errno(
            data,
            "(call $fd_allocate (i32.const 3) (i64.const 0) (i64.const 1))"
        ),
        code(Errno::IsDir)
    );
    assert_eq!(
        errno(
            data,
            "(call $fd_filestat_set_times (i32.const 3) (i64.const 0) (i64.const 0) (i32.const 10))"
        ),
        code(Errno::RoFs)
    );
    // Writing to a file opened for reading with write rights it could not get.
    let body = format!(
        "(drop {})
         (call $proc_exit (call $fd_filestat_set_size (i32.load (i32.const 0x400)) (i64.const 0)))",
        open_call(12, 0, READ_RIGHTS | (1 << 22))
    );
    assert_eq!(
        exit_code(&[(0x200, b"dir/file.txt")], &body),
        code(Errno::RoFs)
    );
}

#[test]
fn fd_readdir_lists_dot_dotdot_and_names_with_cookies() {
    // Open "dir", read its entries into 0x1000: ".", "..", "file.txt", "sub".
    let data: &[(u32, &[u8])] = &[(0x200, b"dir")];
    let readdir = |len: u32, cookie: u64| {
        format!(
            "(drop {})
             (if (call $fd_readdir (i32.load (i32.const 0x400)) (i32.const 0x1000) (i32.const {len}) (i64.const {cookie}) (i32.const 0x404))
               (then (call $proc_exit (i32.const 999))))",
            open_call(3, 2, READ_RIGHTS)
        )
    };
    // Whole listing: 4 headers (96 bytes) + names 1 + 2 + 8 + 3.
    let used = format!(
        "{} (call $proc_exit (i32.load (i32.const 0x404)))",
        readdir(4096, 0)
    );
    assert_eq!(exit_code(data, &used), 96 + 14);
    // The third entry's name.
    let third = format!(
        "{} (call $proc_exit (i32.load (i32.const {})))",
        readdir(4096, 0),
        0x1000 + 24 + 1 + 24 + 2 + 24
    );
    assert_eq!(exit_code(data, &third), u32::from_le_bytes(*b"file"));
    // Its d_next cookie is 3; starting there gives "sub" first.
    let next = format!(
        "{} (call $proc_exit (i32.load (i32.const {})))",
        readdir(4096, 0),
        0x1000 + 24 + 1 + 24 + 2
    );
    assert_eq!(exit_code(data, &next), 3);
    let from_cookie = format!(
        "{} (call $proc_exit (i32.load (i32.const {})))",
        readdir(4096, 3),
        0x1000 + 24
    );
    assert_eq!(
        exit_code(data, &from_cookie) & 0xff_ff_ff,
        u32::from_le_bytes(*b"sub\0")
    );
    // A small buffer is filled completely (the last entry cut off).
    let full = format!(
        "{} (call $proc_exit (i32.load (i32.const 0x404)))",
        readdir(30, 0)
    );
    assert_eq!(exit_code(data, &full), 30);
    // Past the end: nothing.
    let past = format!(
        "{} (call $proc_exit (i32.load (i32.const 0x404)))",
        readdir(4096, 100)
    );
    assert_eq!(exit_code(data, &past), 0);
    // On a file: ENOTDIR; with a buffer outside memory: EFAULT.
    assert_eq!(
        errno(
            &[],
            "(call $fd_readdir (i32.const 1) (i32.const 0x1000) (i32.const 64) (i64.const 0) (i32.const 0x400))"
        ),
        code(Errno::NotCapable)
    );
    assert_eq!(
        errno(
            &[],
            &format!(
                "(call $fd_readdir (i32.const 3) (i32.const {}) (i32.const 64) (i64.const 0) (i32.const 0x400))",
                PAGE - 8
            )
        ),
        code(Errno::Fault)
    );
}

// ---- directories the System holds -------------------------------------------

/// Runs `body` with the tree as fd 3 and a volume as "/data", fd 4
/// (writable) or not; the exit code and the volume afterwards.
fn run_on_volume(
    data: &[(u32, &[u8])],
    body: &str,
    writable: bool,
) -> (u32, wasm_host::MemoryVolume) {
    let mut system = FakeSystem::default();
    system.volume.insert_file("kept.txt", b"kept");
    let root = system.volume.root();
    let wasi = Wasi::builder(system)
        .preopen("/", tree())
        .preopen_directory("/data", root, writable)
        .build()
        .unwrap();
    let outcome = run(&module(data, body), wasi, Limits::default());
    let code = outcome
        .result
        .unwrap_or_else(|error| panic!("run failed: {error}"));
    (code, outcome.wasi.into_system().volume)
}

/// Creates "out.txt" in fd 4 (oflags CREAT|TRUNC, plus `extra`), writes
/// the 13 bytes at 0x300 and closes it; exits with the first errno.
fn create_and_write(extra_oflags: u32) -> String {
    format!(
        "(local $errno i32)
         (local.set $errno (call $path_open (i32.const 4) (i32.const 1) (i32.const 0x200) (i32.const 7)
            (i32.const {}) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 0x400)))
         (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
         (local.set $errno (call $fd_write (i32.load (i32.const 0x400)) (i32.const 0x500) (i32.const 1) (i32.const 0x408)))
         (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
         (call $proc_exit (call $fd_close (i32.load (i32.const 0x400))))",
        9 | extra_oflags
    )
}

#[test]
fn a_program_writes_a_file_in_a_system_directory() {
    let data: &[(u32, &[u8])] = &[
        (0x200, b"out.txt"),
        (0x300, b"through wasm\n"),
        (0x500, &words(&[0x300, 13])),
    ];
    let (exit, volume) = run_on_volume(data, &create_and_write(0), true);
    assert_eq!(exit, 0);
    assert_eq!(volume.contents("out.txt"), Some(&b"through wasm\n"[..]));
    assert_eq!(volume.contents("kept.txt"), Some(&b"kept"[..]));
    assert_eq!(volume.open_handles(), 1, "the file was closed");
    // O_EXCL of a name that is taken: EEXIST, and nothing written.
    let taken: &[(u32, &[u8])] = &[
        (0x200, b"kept.txt"),
        (0x300, b"through wasm\n"),
        (0x500, &words(&[0x300, 13])),
    ];
    let body = create_and_write(4).replace("(i32.const 7)", "(i32.const 8)");
    let (exit, volume) = run_on_volume(taken, &body, true);
    assert_eq!(exit, code(Errno::Exist));
    assert_eq!(volume.contents("kept.txt"), Some(&b"kept"[..]));
    // A read-only mount refuses: EROFS.
    let (exit, volume) = run_on_volume(data, &create_and_write(0), false);
    assert_eq!(exit, code(Errno::RoFs));
    assert_eq!(volume.contents("out.txt"), None);
}

#[test]
fn a_system_directory_is_found_as_a_preopen_and_stats_its_files() {
    // fd_prestat_get on fd 4 then path_filestat_get of kept.txt: the size.
    let data: &[(u32, &[u8])] = &[(0x200, b"kept.txt")];
    let body = "(local $errno i32)
        (local.set $errno (call $fd_prestat_get (i32.const 4) (i32.const 0x100)))
        (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
        (if (i32.ne (i32.load (i32.const 0x104)) (i32.const 5)) (then (call $proc_exit (i32.const 999))))
        (local.set $errno (call $path_filestat_get (i32.const 4) (i32.const 1) (i32.const 0x200) (i32.const 8) (i32.const 0x600)))
        (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
        (call $proc_exit (i32.add (i32.const 1000) (i32.load (i32.const 0x620))))";
    let (code, _) = run_on_volume(data, body, true);
    assert_eq!(code, 1004);
}

// ---- poll_oneoff ------------------------------------------------------------

/// A clock subscription record: userdata, clock id, timeout, flags.
fn clock_subscription(userdata: u64, id: u32, timeout: u64, flags: u16) -> Vec<u8> {
    let mut record = vec![0u8; 48];
    record[0..8].copy_from_slice(&userdata.to_le_bytes());
    record[8] = 0;
    record[16..20].copy_from_slice(&id.to_le_bytes());
    record[24..32].copy_from_slice(&timeout.to_le_bytes());
    record[40..42].copy_from_slice(&flags.to_le_bytes());
    record
}

fn fd_subscription(userdata: u64, kind: u8, fd: u32) -> Vec<u8> {
    let mut record = vec![0u8; 48];
    record[0..8].copy_from_slice(&userdata.to_le_bytes());
    record[8] = kind;
    record[16..20].copy_from_slice(&fd.to_le_bytes());
    record
}

fn poll(subscriptions: &[u8], count: u32) -> Outcome<FakeSystem> {
    // Exit with nevents * 1000 + the first event's userdata * 10 + its errno.
    let wasm = module(
        &[(0x1000, subscriptions)],
        &format!(
            "(local $errno i32)
             (local.set $errno (call $poll_oneoff (i32.const 0x1000) (i32.const 0x2000) (i32.const {count}) (i32.const 0x400)))
             (if (local.get $errno) (then (call $proc_exit (i32.add (i32.const 90000) (local.get $errno)))))
             (call $proc_exit (i32.add (i32.mul (i32.load (i32.const 0x400)) (i32.const 1000))
                 (i32.add (i32.mul (i32.load (i32.const 0x2000)) (i32.const 10)) (i32.load16_u (i32.const 0x2008)))))"
        ),
    );
    run_with(&wasm, FakeSystem::default(), Limits::default())
}

#[test]
fn a_clock_subscription_sleeps_through_the_system() {
    let outcome = poll(&clock_subscription(7, 1, 10_000_000, 0), 1);
    assert_eq!(outcome.result, Ok(1000 + 70));
    assert_eq!(outcome.wasi.system().slept, [10_000_000]);
}

#[test]
fn the_earliest_of_several_clocks_fires() {
    let mut subscriptions = clock_subscription(1, 1, 50_000_000, 0);
    subscriptions.extend(clock_subscription(2, 1, 20_000_000, 0));
    subscriptions.extend(clock_subscription(3, 0, 90_000_000, 0));
    let outcome = poll(&subscriptions, 3);
    assert_eq!(outcome.result, Ok(1000 + 20));
    assert_eq!(outcome.wasi.system().slept, [20_000_000]);
}

#[test]
fn an_absolute_deadline_in_the_past_does_not_sleep() {
    // Monotonic "now" is 1; a deadline of 1 has passed.
    let outcome = poll(&clock_subscription(4, 1, 1, 1), 1);
    assert_eq!(outcome.result, Ok(1000 + 40));
    assert!(outcome.wasi.system().slept.is_empty());
    // An absolute realtime deadline 5 ms ahead sleeps 5 ms.
    let outcome = poll(
        &clock_subscription(5, 0, FAKE_EPOCH_NANOS + 5_000_000, 1),
        1,
    );
    assert_eq!(outcome.result, Ok(1000 + 50));
    assert_eq!(outcome.wasi.system().slept, [5_000_000]);
}

#[test]
fn fd_subscriptions_are_ready_at_once_and_unknown_fds_report_ebadf() {
    let mut subscriptions = fd_subscription(6, 2, 1);
    subscriptions.extend(clock_subscription(1, 1, 1_000_000_000, 0));
    let outcome = poll(&subscriptions, 2);
    assert_eq!(outcome.result, Ok(1000 + 60));
    assert!(outcome.wasi.system().slept.is_empty());
    let outcome = poll(&fd_subscription(8, 1, 42), 1);
    assert_eq!(outcome.result, Ok(1000 + 80 + code(Errno::BadF)));
    // A bad clock id and an unknown event type are events with EINVAL.
    assert_eq!(
        poll(&clock_subscription(2, 9, 0, 0), 1).result,
        Ok(1000 + 20 + code(Errno::Inval))
    );
    assert_eq!(
        poll(&fd_subscription(3, 7, 0), 1).result,
        Ok(1000 + 30 + code(Errno::Inval))
    );
}

#[test]
fn poll_oneoff_checks_its_arguments() {
    let inval = 90000 + code(Errno::Inval);
    let fault = 90000 + code(Errno::Fault);
    assert_eq!(poll(&[], 0).result, Ok(inval));
    assert_eq!(poll(&[], 2000).result, Ok(fault)); // 2000 * 48 bytes run past the page
    assert_eq!(poll(&[], 70000).result, Ok(inval)); // more than MAX_SUBSCRIPTIONS
    let misaligned = module(
        &[],
        "(call $proc_exit (call $poll_oneoff (i32.const 0x1004) (i32.const 0x2000) (i32.const 1) (i32.const 0x400)))",
    );
    assert_eq!(
        run_with(&misaligned, FakeSystem::default(), Limits::default()).result,
        Ok(code(Errno::Inval))
    );
}

// ---- no memory ----------------------------------------------------------------

#[test]
fn a_module_without_memory_gets_efault_for_every_pointer() {
    let mut text = String::from("(module\n");
    text.push_str(&common::all_imports());
    text.push_str(
        "(func (export \"_start\")
           (call $proc_exit (call $args_sizes_get (i32.const 0) (i32.const 4)))))",
    );
    let wasm = wat::parse_str(&text).unwrap();
    assert_eq!(
        run_with(&wasm, FakeSystem::default(), Limits::default()).result,
        Ok(code(Errno::Fault))
    );
}

#[test]
fn a_start_function_can_already_call_wasi() {
    let mut text = String::from("(module\n");
    text.push_str(&common::all_imports());
    text.push_str(
        r#"(memory (export "memory") 1)
           (data (i32.const 0x100) "\00\02\00\00\05\00\00\00")
           (data (i32.const 0x200) "early")
           (func $early (drop (call $fd_write (i32.const 1) (i32.const 0x100) (i32.const 1) (i32.const 0x400))))
           (start $early)
           (func (export "_start")))"#,
    );
    let wasm = wat::parse_str(&text).unwrap();
    let outcome = run_with(&wasm, FakeSystem::default(), Limits::default());
    assert_eq!(outcome.result, Ok(0));
    assert_eq!(outcome.wasi.system().stdout, b"early");
}
