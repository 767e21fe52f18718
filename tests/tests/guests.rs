//! Native guests in ring 3 on the one page table: each calls the nucleus only
//! through its capability ring. Test images end (`qemu-exit`) once every
//! guest has exited. Tests with several guests accept running them without
//! isolation, so they also pass on hosts whose CPU has no protection keys
//! (isolation itself is tested in isolation.rs, under TCG).

/// The command line for several guests.
const SEVERAL: &str = "qemu-exit allow-unisolated-guests";

use tests::{BootRequest, ExitCode, Firmware, boot_with_guests, on_bios_and_uefi, run};

/// Index of the first line containing `marker`.
fn position(output: &str, marker: &str) -> Option<usize> {
    output.lines().position(|l| l.contains(marker))
}

on_bios_and_uefi! {
    hello_calls_every_service_and_exits_with_its_code => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["hello"]);
        run.assert_exit(ExitCode::Success);
        run.assert_contains("guest 1 (hello): loaded");
        run.assert_contains("hello: hello from a native guest in ring 3");
        run.assert_contains("hello: slept ");
        run.assert_contains("hello: boot info: 2 CPUs");
        run.assert_contains("hello: my region: 0x100000000000 + 64 GiB");
        // QEMU's RTC follows the host clock: some day after 2020.
        let day: u64 = run.line_with("hello: wall clock: day ").split("day ").nth(1).unwrap()
            .split(' ').next().unwrap().parse().unwrap();
        assert!(day > 18_262, "day {day}");
        run.assert_contains("guest 1 (hello): exited; exit code 7");
        run.assert_contains("guests: all 1 exited; CR3 writes since boot: 0");
        let entropy = run.line_with("hello: entropy: ");
        assert!(entropy.ends_with("16 bytes") || entropy.contains("no hardware entropy source"), "{entropy}");
    };
    ringcheck_gets_every_documented_error => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["ringcheck"]);
        run.assert_exit(ExitCode::Success);
        for expected in [
            "ok: unknown opcode -> -1",
            "ok: non-zero flags -> -2",
            "ok: non-zero reserved word -> -2",
            "ok: more than 8 capabilities sent -> -6",
            "ok: never-allocated capability -> -3",
            "ok: params in nucleus memory -> -5",
            "ok: results in read-only memory -> -5",
            "ok: params past the end of the address space -> -5",
            "ok: oversized params -> -6",
            "ok: unknown method -> -7",
            "ok: malformed params -> -8",
            "ok: results buffer too small -> -9",
            "ok: RECV on a capability that is not an endpoint -> -11",
            "ok: released capability -> -4",
            "ok: unknown system call -> -12",
            "ok: system call with the nested-task flag set -> 0",
            "ringcheck: ring still works after every malformed request",
            "ringcheck: 17 checks, 0 failed",
            "guest 1 (ringcheck): exited; exit code 0",
        ] {
            run.assert_contains(expected);
        }
        assert!(!run.output.contains("FAILED"), "{}", run.report());
    };
    two_guests_run_interleaved => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["a=counter", "b=counter"]);
        run.assert_exit(ExitCode::Success);
        let a_last = position(&run.output, "a: count 10").unwrap();
        let b_first = position(&run.output, "b: count 1").unwrap();
        let b_last = position(&run.output, "b: count 10").unwrap();
        let a_first = position(&run.output, "a: count 1").unwrap();
        assert!(b_first < a_last && a_first < b_last, "not interleaved\n{}", run.report());
        run.assert_contains("guests: all 2 exited; CR3 writes since boot: 0");
    };
    a_spinning_guest_is_preempted => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["spinner", "counter"]);
        run.assert_exit(ExitCode::Success);
        // The counter prints while the spinner spins without system calls.
        let spinning = position(&run.output, "spinner: spinning").unwrap();
        let spun = position(&run.output, "spinner: spun").unwrap();
        let counts_during = run.output.lines().take(spun).skip(spinning).filter(|l| l.contains("counter: count")).count();
        assert!(counts_during >= 2, "only {counts_during} counter lines during the spin\n{}", run.report());
    };
    nmis_and_recoverable_machine_checks_leave_guests_running => |f: Firmware| {
        // Injected by QEMU while a guest spins and another counts: both
        // finish, and the nucleus reports what it handled.
        let run = run(BootRequest {
            firmware: f,
            cmdline: SEVERAL,
            guests: &["spinner", "counter"],
            monitor_at: &[
                ("counter: count 2", "nmi"),
                // Uncorrected (VAL, UC, EN, ADDRV) with RIPV and MCIP: restartable.
                ("counter: count 4", "mce 0 1 0xb400000000000000 5 0x1234000 0"),
            ],
            ..BootRequest::new(f)
        });
        run.assert_exit(ExitCode::Success);
        run.assert_contains("] nmi: 1 non-maskable interrupt(s) (1 since boot), handled and returned from");
        run.assert_contains(
            "] machine check: bank 1: status 0xb400000000000000, address 0x1234000; the interrupted code could restart, and did (1 since boot)",
        );
        run.assert_contains("guest 1 (spinner): exited; exit code 0");
        run.assert_contains("guest 2 (counter): exited; exit code 0");
        run.assert_contains("counter: count 10");
    };
    a_guest_exiting_leaves_the_other_running => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["hello", "counter"]);
        run.assert_exit(ExitCode::Success);
        let hello_exit = position(&run.output, "(hello): exited; exit code 7").unwrap();
        let counter_end = position(&run.output, "counter: count 10").unwrap();
        assert!(hello_exit < counter_end, "{}", run.report());
        run.assert_contains("guest 2 (counter): exited; exit code 0");
    };
    capabilities_name_objects_with_rights_and_badges => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &[
            "sessions,serves=sessions,restart=1",
            "relay=sessions,arg=relay,serves=relay,connects=sessions",
            "session-client,connects=sessions+relay",
        ]);
        run.assert_exit(ExitCode::Success);
        for expected in [
            "session-client: ok: the front door has badge 0",
            "session-client: ok: each session has a badge of its own",
            "session-client: sessions have badges 1 and 2",
            "session-client: ok: a call without the call right -> -13",
            "session-client: ok: passing a capability without the transfer right -> -13",
            "session-client: ok: passing a capability this guest does not hold -> -3",
            "session-client: ok: a copy passed to the relay calls with the badge it was minted with",
            "relay: given a capability by badge 0: whoami through it -> 0, badge 1",
            "session-client: ok: the copy left this guest's own working",
            "session-client: ok: a moved capability reaches the relay",
            "session-client: ok: a moved capability is stale here -> -4",
            "sessions: ok: a RETURN with a token no call has -> -3",
            "relay: ok: a RETURN with a token no call has -> -3",
            "relay: ok: passing a serving end to another guest -> -13",
            "session-client: ok: opening sessions until the table is full -> -10",
            "session-client: ok: released capabilities make room again",
            "session-client: ok: serving a name the appliance gives another guest -> exception denied",
            "session-client: ok: connecting to a name not in connects -> exception denied",
            "sessions: stopping with exit code 3",
            "guest (sessions): restarting after exit code 3 (restart 1 of 1)",
            "session-client: ok: a session of the stopped server is stale -> -4",
            "session-client: ok: the name stays its server's while it restarts -> exception denied",
            "relay: probe of the kept capability -> -4",
            "session-client: ok: the relay's copy died with its object -> -4",
            "session-client: ok: the restarted server serves the name again",
            "session-client: 0 checks failed",
            "(session-client): exited; exit code 0",
        ] {
            run.assert_contains(expected);
        }
        assert!(!run.output.contains("FAILED"), "{}", run.report());
    };
    a_guest_serves_echo_to_another => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["echo-server,serves=echo", "echo-client,connects=echo"]);
        run.assert_exit(ExitCode::Success);
        run.assert_contains("echo-server: serving echo");
        run.assert_contains("echo-client: echoed: hello through another guest");
        run.assert_contains("echo-client: guest-call batch=1: min ");
        run.assert_contains("echo-server: served 502 calls; quitting");
        run.assert_contains("echo-client: after quit: stale capability (released, or the object it named is gone) (-4)");
        run.assert_contains("guest 1 (echo-server): exited; exit code 0");
        run.assert_contains("guest 2 (echo-client): exited; exit code 0");
        run.assert_contains("CR3 writes since boot: 0");
    };
    a_guest_gets_its_arguments_and_read_only_data => |f: Firmware| {
        let run = boot_with_guests(
            f,
            "qemu-exit",
            &["data:greeting=tests/data/greeting.txt", "datacheck,data=greeting,arg=hello,arg=world"],
        );
        run.assert_exit(ExitCode::Success);
        run.assert_contains("datacheck: args: [\"hello\", \"world\"]");
        run.assert_contains("datacheck: greeting (54 bytes): Data from the image, mapped read-only into the guest.");
        run.assert_contains("(datacheck): stopped by #PF page fault");
        run.assert_contains("write, protection violation, user mode");
        assert!(!run.output.contains("wrote read-only data"), "{}", run.report());
    };
    a_manifest_naming_a_missing_module_stops_the_boot => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["hello", "datacheck,data=nothing"]);
        run.assert_exit(ExitCode::Failure);
        run.assert_contains(
            "appliance: boot stopped: manifest: guests[1].data[0]: no boot module named 'nothing' in the image",
        );
        assert!(!run.output.contains("(hello): loaded"), "{}", run.report());
    };
    a_manifest_that_is_not_cap_n_proto_stops_the_boot => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["data:manifest=tests/data/greeting.txt", "hello"]);
        run.assert_exit(ExitCode::Failure);
        run.assert_contains("appliance: boot stopped: manifest: (message): ");
    };
    a_failing_guest_is_restarted_as_its_policy_says => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["faulter,restart=2", "counter"]);
        run.assert_exit(ExitCode::Success);
        run.assert_contains("guest (faulter): restarting after exit code 142 (restart 1 of 2)");
        run.assert_contains("guest (faulter): restarting after exit code 142 (restart 2 of 2)");
        run.assert_contains("guest (faulter): not restarted: it failed 3 times");
        run.assert_contains("(counter): exited; exit code 0");
        run.assert_contains("guests: all 4 exited; CR3 writes since boot: 0; restarts: 2");
    };
    a_guest_calls_only_the_services_it_was_granted => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["hello,grants=console+timer"]);
        run.assert_exit(ExitCode::Success);
        run.assert_contains("hello: slept ");
        run.assert_contains("hello: entropy: transport error: stale capability");
        run.assert_contains("BootInfo.get");
        assert!(!run.output.contains("hello: boot info:"), "{}", run.report());
    };
    a_faulting_guest_is_stopped_and_the_nucleus_carries_on => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["faulter", "counter"]);
        run.assert_exit(ExitCode::Success);
        run.assert_contains("faulter: writing to the nucleus");
        run.assert_contains("guest 1 (faulter): stopped by #PF page fault at rip");
        run.assert_contains("address 0xffffffff80000000; exit code 142");
        assert!(!run.output.contains("still alive"), "{}", run.report());
        run.assert_contains("guest 2 (counter): exited; exit code 0");
    };
    a_guest_cannot_forge_console_lines => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["forger"]);
        run.assert_exit(ExitCode::Success);
        // The carriage return is written out, the line dressed as the
        // nucleus's stays the forger's, and no line starts as the
        // nucleus's would.
        run.assert_contains("] forger: \\x0d[    0.000001] guest 9 (victim): secret intact");
        assert!(
            !run.output.lines().any(|l| l.starts_with("[    0.000001]")),
            "{}",
            run.report()
        );
        run.assert_contains("] forger: \\x1b[2Jcleared");
        run.assert_contains("] forger: back\\x08space\ttab");
        run.assert_contains("] forger: not utf-8: \u{fffd}\u{fffd} end");
        run.assert_contains("] forger: done");
        // (Firmware writes escape sequences of its own under UEFI.)
        let escaped = run.output.lines().filter(|l| l.contains("] forger: ")).all(|l| !l.contains('\x1b'));
        assert!(escaped, "{}", run.report());
    };
    a_guest_setting_rflags_ac_cannot_lift_smap_for_the_nucleus => |f: Firmware| {
        // With AC set, every timer interrupt from the guest enters the
        // nucleus; were AC left set there, the trap dispatcher stops the
        // machine (SMAP would be off for the nucleus).
        let run = boot_with_guests(f, SEVERAL, &["ac-setter", "counter"]);
        run.assert_exit(ExitCode::Success);
        let line = run.line_with("] ac-setter: AC still set after ");
        assert!(line.contains(" ms of interrupts"), "{line}");
        run.assert_contains("guest 1 (ac-setter): exited; exit code 0");
        run.assert_contains("guest 2 (counter): exited; exit code 0");
    };
}

/// `noxsave` keeps FPU state to FXSAVE even where the CPU has XSAVE, and
/// guests are switched with it.
#[test]
fn noxsave_switches_guests_with_fxsave() {
    let run = boot_with_guests(
        Firmware::Bios,
        "qemu-exit allow-unisolated-guests noxsave",
        &["counter", "hello"],
    );
    run.assert_exit(ExitCode::Success);
    let fpu = run.line_with("fpu: ");
    assert!(fpu.contains("fpu: FXSAVE with x87, SSE ("), "{fpu}");
    run.assert_contains("guest 2 (hello): exited; exit code 7");
    run.assert_contains("guests: all 2 exited");
}
