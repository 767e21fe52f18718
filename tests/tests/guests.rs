//! Native guests in ring 3 on the one page table: each calls the nucleus only
//! through its capability ring. Test images end (`qemu-exit`) once every
//! guest has exited. Tests with several guests accept running them without
//! isolation, so they also pass on hosts whose CPU has no protection keys
//! (isolation itself is tested in isolation.rs, under TCG).

/// The command line for several guests.
const SEVERAL: &str = "qemu-exit allow-unisolated-guests";

use tests::{BootRequest, ExitCode, Firmware, boot_with_guests, on_bios_and_uefi, run};

on_bios_and_uefi! {
    hello_calls_every_service_and_exits_with_its_code => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["hello"]);
        run.assert_exit(ExitCode::Success);
        run.assert_nucleus_said("guest 1 (hello): loaded, ");
        run.assert_guest_said("hello", "hello from a native guest in ring 3\n");
        run.assert_guest_said("hello", "slept ");
        run.assert_guest_said("hello", "boot info: 2 CPUs");
        run.assert_guest_said("hello", "my region: 0x100000000000 + 64 GiB\n");
        // QEMU's RTC follows the host clock: some day after 2020.
        let day: u64 = run.assert_guest_said("hello", "wall clock: day ").split("day ").nth(1).unwrap()
            .split(' ').next().unwrap().parse().unwrap();
        assert!(day > 18_262, "day {day}");
        run.assert_nucleus_said("guest 1 (hello): exited; exit code 7\n");
        run.assert_nucleus_said("guests: all 1 exited; CR3 writes since boot: 0;");
        let entropy = run.assert_guest_said("hello", "entropy: ");
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
            "ringcheck: ring still works after every malformed request\n",
            "ringcheck: 17 checks, 0 failed\n",
        ] {
            run.assert_guest_said("ringcheck", expected);
        }
        run.assert_nucleus_said("guest 1 (ringcheck): exited; exit code 0\n");
        assert!(!run.output.contains("FAILED"), "{}", run.report());
    };
    two_guests_run_interleaved => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["a=counter", "b=counter"]);
        run.assert_exit(ExitCode::Success);
        let line = |guest: &str, text: &str| {
            run.guest_line(guest, text).unwrap_or_else(|| panic!("{guest} never said '{text}'\n{}", run.report()))
        };
        let a_last = line("a", "count 10\n");
        let b_first = line("b", "count 1\n");
        let b_last = line("b", "count 10\n");
        let a_first = line("a", "count 1\n");
        assert!(b_first < a_last && a_first < b_last, "not interleaved\n{}", run.report());
        run.assert_nucleus_said("guests: all 2 exited; CR3 writes since boot: 0;");
    };
    a_spinning_guest_is_preempted => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["spinner", "counter"]);
        run.assert_exit(ExitCode::Success);
        // The counter prints while the spinner spins without system calls.
        let spinning = run.guest_line("spinner", "spinning\n").unwrap();
        let spun = run.guest_line("spinner", "spun ").unwrap();
        let counts_during = run.printed_by("counter")
            .filter(|&(at, said)| (spinning..spun).contains(&at) && said.starts_with("count "))
            .count();
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
        run.assert_nucleus_said("nmi: 1 non-maskable interrupt(s) (1 since boot), handled and returned from\n");
        run.assert_nucleus_said(
            "machine check: bank 1: status 0xb400000000000000, address 0x1234000; the interrupted code could restart, and did (1 since boot)\n",
        );
        run.assert_nucleus_said("guest 1 (spinner): exited; exit code 0\n");
        run.assert_nucleus_said("guest 2 (counter): exited; exit code 0\n");
        run.assert_guest_said("counter", "count 10\n");
    };
    a_machine_check_that_cannot_restart_stops_only_the_guest_it_hit => |f: Firmware| {
        // Injected on CPU 1, where the spinner runs alone, in ring 3 but for
        // its timer ticks. A tick that meets the check in the nucleus stops
        // the machine (the nucleus cannot go on from code it cannot
        // restart, as the report says); that is a correct end too, but not
        // the one under test, so a few boots are tried for one where the
        // check lands in the guest. Every boot must end one of the two ways.
        let mut landed_in_the_nucleus = 0;
        let run = loop {
            let run = run(BootRequest {
                firmware: f,
                cmdline: SEVERAL,
                guests: &["spinner,cpus=1,arg=forever", "counter,cpus=0"],
                monitor_at: &[
                    // Uncorrected (VAL, UC, EN, ADDRV), MCIP without RIPV:
                    // the interrupted code cannot go on.
                    ("counter: count 10", "mce 1 1 0xb400000000000000 4 0x1234000 0"),
                ],
                ..BootRequest::new(f)
            });
            let in_nucleus = run
                .nucleus_line("nucleus stopped: ", "unhandled #MC in the nucleus")
                .is_some();
            if !in_nucleus || landed_in_the_nucleus == 3 {
                break run;
            }
            landed_in_the_nucleus += 1;
        };
        run.assert_exit(ExitCode::Success);
        let stopped = run.assert_nucleus_said("guest 1 (spinner): stopped by #MC machine check at rip ");
        assert!(stopped.ends_with("; exit code 146"), "{stopped}");
        run.assert_nucleus_said("guest 2 (counter): exited; exit code 0\n");
        run.assert_guest_said("counter", "count 10\n");
    };
    a_guest_exiting_leaves_the_other_running => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["hello", "counter"]);
        run.assert_exit(ExitCode::Success);
        let hello_exit = run.nucleus_line("guest 1 (hello): ", "exited; exit code 7").unwrap();
        let counter_end = run.guest_line("counter", "count 10\n").unwrap();
        assert!(hello_exit < counter_end, "{}", run.report());
        run.assert_nucleus_said("guest 2 (counter): exited; exit code 0\n");
    };
    capabilities_name_objects_with_rights_and_badges => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &[
            "sessions,serves=sessions,restart=1",
            "relay=sessions,arg=relay,serves=relay,connects=sessions",
            "session-client,connects=sessions+relay",
            // Must keep running while the others refuse and revoke.
            "counter",
        ]);
        run.assert_exit(ExitCode::Success);
        for (guest, expected) in [
            ("session-client", "ok: the front door has badge 0"),
            ("session-client", "ok: each session has a badge of its own"),
            ("session-client", "sessions have badges 1 and 2\n"),
            ("session-client", "ok: a call without the call right -> -13"),
            ("session-client", "ok: passing a capability without the transfer right -> -13"),
            ("session-client", "ok: passing a capability this guest does not hold -> -3"),
            ("session-client", "ok: a copy passed to the relay calls with the badge it was minted with"),
            ("relay", "given a capability by badge 0: whoami through it -> 0, badge 1"),
            ("session-client", "ok: the copy left this guest's own working"),
            ("session-client", "ok: a moved capability reaches the relay"),
            ("session-client", "ok: a moved capability is stale here -> -4"),
            ("sessions", "ok: a RETURN with a token no call has -> -3"),
            ("relay", "ok: a RETURN with a token no call has -> -3"),
            ("relay", "ok: passing a serving end to another guest -> -13"),
            ("session-client", "ok: opening sessions until the table is full -> -10"),
            ("session-client", "ok: released capabilities make room again"),
            ("session-client", "ok: serving a name the appliance gives another guest -> exception denied"),
            ("session-client", "ok: connecting to a name not in connects -> exception denied"),
            ("sessions", "stopping with exit code 3\n"),
            ("session-client", "ok: a session of the stopped server is stale -> -4"),
            ("session-client", "ok: the name stays its server's while it restarts -> exception denied"),
            ("relay", "probe of the kept capability -> -4"),
            ("session-client", "ok: the relay's copy died with its object -> -4"),
            ("session-client", "ok: the restarted server serves the name again"),
            ("session-client", "0 checks failed\n"),
        ] {
            run.assert_guest_said(guest, expected);
        }
        run.assert_nucleus_said("guest (sessions): restarting after exit code 3 (restart 1 of 1)\n");
        run.assert_exited("session-client", 0);
        run.assert_guest_said("counter", "count 10\n");
        run.assert_exited("counter", 0);
        assert!(!run.output.contains("FAILED"), "{}", run.report());
    };
    a_guest_serves_echo_to_another => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["echo-server,serves=echo", "echo-client,connects=echo"]);
        run.assert_exit(ExitCode::Success);
        run.assert_guest_said("echo-server", "serving echo\n");
        run.assert_guest_said("echo-client", "echoed: hello through another guest");
        run.assert_guest_said("echo-client", "guest-call batch=1: min ");
        run.assert_guest_said("echo-server", "served 502 calls; quitting\n");
        run.assert_guest_said("echo-client", "after quit: stale capability (released, or the object it named is gone) (-4)\n");
        run.assert_nucleus_said("guest 1 (echo-server): exited; exit code 0\n");
        run.assert_nucleus_said("guest 2 (echo-client): exited; exit code 0\n");
        run.assert_nucleus_said("guests: all 2 exited; CR3 writes since boot: 0;");
    };
    a_guest_gets_its_arguments_and_read_only_data => |f: Firmware| {
        let run = boot_with_guests(
            f,
            "qemu-exit",
            &["data:greeting=tests/data/greeting.txt", "datacheck,data=greeting,arg=hello,arg=world"],
        );
        run.assert_exit(ExitCode::Success);
        run.assert_guest_said("datacheck", "args: [\"hello\", \"world\"]\n");
        run.assert_guest_said("datacheck", "greeting (54 bytes): Data from the image, mapped read-only into the guest.");
        let stopped = run.assert_nucleus_said("guest 1 (datacheck): stopped by #PF page fault");
        assert!(stopped.contains("write, protection violation, user mode"), "{stopped}");
        assert!(!run.output.contains("wrote read-only data"), "{}", run.report());
    };
    a_manifest_naming_a_missing_module_stops_the_boot => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["hello", "datacheck,data=nothing"]);
        run.assert_exit(ExitCode::Failure);
        run.assert_nucleus_said(
            "appliance: boot stopped: manifest: guests[1].data[0]: no boot module named 'nothing' in the image\n",
        );
        assert!(!run.output.contains("(hello): loaded"), "{}", run.report());
    };
    a_manifest_that_is_not_cap_n_proto_stops_the_boot => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["data:manifest=tests/data/greeting.txt", "hello"]);
        run.assert_exit(ExitCode::Failure);
        run.assert_nucleus_said("appliance: boot stopped: manifest: (message): ");
    };
    a_failing_guest_is_restarted_as_its_policy_says => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["faulter,restart=2", "counter"]);
        run.assert_exit(ExitCode::Success);
        run.assert_nucleus_said("guest (faulter): restarting after exit code 142 (restart 1 of 2)\n");
        run.assert_nucleus_said("guest (faulter): restarting after exit code 142 (restart 2 of 2)\n");
        run.assert_nucleus_said("guest (faulter): not restarted: it failed 3 times\n");
        run.assert_exited("counter", 0);
        run.assert_nucleus_said("guests: all 4 exited; CR3 writes since boot: 0; restarts: 2\n");
    };
    a_guest_calls_only_the_services_it_was_granted => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["hello,grants=console+timer"]);
        run.assert_exit(ExitCode::Success);
        run.assert_guest_said("hello", "slept ");
        run.assert_guest_said("hello", "entropy: transport error: stale capability");
        let panic = run.assert_guest_said("hello", "panicked at ");
        assert!(panic.contains("BootInfo.get"), "{panic}");
        assert!(!run.output.contains("hello: boot info:"), "{}", run.report());
    };
    a_faulting_guest_is_stopped_and_the_nucleus_carries_on => |f: Firmware| {
        let run = boot_with_guests(f, SEVERAL, &["faulter", "counter"]);
        run.assert_exit(ExitCode::Success);
        run.assert_guest_said("faulter", "writing to the nucleus\n");
        let stopped = run.assert_nucleus_said("guest 1 (faulter): stopped by #PF page fault at rip");
        assert!(stopped.ends_with("address 0xffffffff80000000; exit code 142"), "{stopped}");
        assert!(!run.output.contains("still alive"), "{}", run.report());
        run.assert_nucleus_said("guest 2 (counter): exited; exit code 0\n");
    };
    a_guest_cannot_forge_console_lines => |f: Firmware| {
        let run = boot_with_guests(f, "qemu-exit", &["forger"]);
        run.assert_exit(ExitCode::Success);
        // The carriage return is written out, the line dressed as the
        // nucleus's stays the forger's, and no line starts as the
        // nucleus's would.
        run.assert_guest_said("forger", "\\x0d[    0.000001] guest 9 (victim): secret intact\n");
        assert!(
            !run.output.lines().any(|l| l.starts_with("[    0.000001]")),
            "{}",
            run.report()
        );
        // Nor can it fool the harness: the forged line is neither the
        // nucleus's nor the victim's.
        assert!(run.nucleus_line("guest 9 (victim): ", "secret intact").is_none(), "{}", run.report());
        assert!(run.guest_line("victim", "secret intact").is_none(), "{}", run.report());
        run.assert_guest_said("forger", "\\x1b[2Jcleared\n");
        run.assert_guest_said("forger", "back\\x08space\ttab\n");
        run.assert_guest_said("forger", "not utf-8: \\xff\\xfe end\n");
        run.assert_guest_said("forger", "done\n");
        // (Firmware writes escape sequences of its own under UEFI.)
        let escaped = run.printed_by("forger").all(|(_, said)| !said.contains('\x1b'));
        assert!(escaped, "{}", run.report());
    };
    a_guest_setting_rflags_ac_cannot_lift_smap_for_the_nucleus => |f: Firmware| {
        // With AC set, every timer interrupt from the guest enters the
        // nucleus; were AC left set there, the trap dispatcher stops the
        // machine (SMAP would be off for the nucleus).
        let run = boot_with_guests(f, SEVERAL, &["ac-setter", "counter"]);
        run.assert_exit(ExitCode::Success);
        let line = run.assert_guest_said("ac-setter", "AC still set after ");
        assert!(line.contains(" ms of interrupts"), "{line}");
        run.assert_nucleus_said("guest 1 (ac-setter): exited; exit code 0\n");
        run.assert_nucleus_said("guest 2 (counter): exited; exit code 0\n");
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
    run.assert_nucleus_said("fpu: FXSAVE with x87, SSE (");
    run.assert_nucleus_said("guest 2 (hello): exited; exit code 7\n");
    run.assert_nucleus_said("guests: all 2 exited;");
}
