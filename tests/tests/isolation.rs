//! Protection-key domains between guests, fault containment and limits.
//! PKU tests run under TCG (`-cpu max` has PKU; many KVM hosts do not).
//! Every marker is matched as its speaker's, a guest's own line or the
//! nucleus's, so no attacker's text can stand in for the victim's.

use tests::{BootRequest, ExitCode, Firmware, on_bios_and_uefi, run};

fn boot_tcg<'a>(
    firmware: Firmware,
    cmdline: &'a str,
    guests: &'a [&'a str],
    qemu_args: &'a [&'a str],
) -> tests::Run {
    run(BootRequest {
        cmdline,
        guests,
        qemu_args,
        accel: Some("tcg"),
        ..BootRequest::new(firmware)
    })
}

on_bios_and_uefi! {
    attacks_on_another_guest_are_stopped_and_the_victim_is_intact => |f: Firmware| {
        let run = boot_tcg(
            f,
            "qemu-exit",
            &[
                "victim,serves=victim",
                "pk-reader,connects=victim",
                "pk-writer,connects=victim",
                "pk-jumper,connects=victim",
                "wrpkru",
                "privileged",
                "faulter",
            ],
            &[],
        );
        run.assert_exit(ExitCode::Success);
        run.assert_nucleus_said("pku: on; every guest gets a protection key of its own");
        let loaded = run.assert_nucleus_said("guest 1 (victim): loaded, ");
        assert!(loaded.ends_with(", protection key 1"), "{loaded}");
        let stopped = |guest: &str, access: &str| {
            let line = run.assert_nucleus_said(&format!("{guest}: stopped by #PF page fault"));
            assert!(line.contains(&format!("{access}, protection violation, user mode, protection key")), "{line}");
            assert!(line.ends_with("(key 1, guest victim's memory); exit code 142"), "{line}");
        };
        stopped("guest 2 (pk-reader)", "read");
        stopped("guest 3 (pk-writer)", "write");
        // Instruction fetch is not governed by keys: the jump lands, and the
        // victim's code faults on its first access to the victim's data.
        stopped("guest 4 (pk-jumper)", "read");
        let refused = run.assert_nucleus_said("guest (wrpkru): refused: WRPKRU at address 0x");
        assert!(refused.ends_with(": guests may not change their protection keys"), "{refused}");
        run.assert_nucleus_said("guest 5 (privileged): stopped by #GP general protection");
        run.assert_nucleus_said("guest 6 (faulter): stopped by #PF page fault");
        // The report shows the guest's registers at the fault.
        run.assert_nucleus_said("  cr2 0xffffffff80000000\n");
        run.assert_nucleus_said("  rip 0x00001000");
        assert!(!run.output.contains("is broken"), "{}", run.report());
        run.assert_guest_said("victim", "secret intact\n");
        run.assert_nucleus_said("guest 1 (victim): exited; exit code 0\n");
        run.assert_nucleus_said("guests: all 6 exited; CR3 writes since boot: 0;");
    };
    exhausted_heap_and_endless_loop_stop_only_their_guest => |f: Firmware| {
        let run = boot_tcg(f, "qemu-exit", &["hog,heap_mb=8", "looper,cpu_ms=200", "counter"], &[]);
        run.assert_exit(ExitCode::Success);
        // The heap is the size asked for: more than the 4 MiB default, and no more than 8.
        run.assert_guest_said("hog", "holding 6144 KiB\n");
        assert!(!run.output.contains("hog: holding 8192 KiB"), "{}", run.report());
        let panic = run.assert_guest_said("hog", "panicked at ");
        assert!(panic.contains("memory allocation of 262144 bytes failed"), "{panic}");
        run.assert_nucleus_said("guest 1 (hog): exited; exit code 101\n");
        let loaded = run.assert_nucleus_said("guest 2 (looper): loaded, ");
        assert!(loaded.ends_with(", CPU-time limit 200 ms"), "{loaded}");
        run.assert_nucleus_said("guest 2 (looper): stopped: it used up its CPU-time limit of 200 ms; exit code 137\n");
        run.assert_nucleus_said("guest 3 (counter): exited; exit code 0\n");
    };
    console_flood_is_cut_charged_and_stopped_while_others_run => |f: Firmware| {
        let run = boot_tcg(f, "qemu-exit", &["flooder,cpu_ms=20000", "counter"], &[]);
        run.assert_exit(ExitCode::Success);
        run.assert_guest_said("flooder", "flooding: 256 writes of 65000 newlines per cap_enter\n");
        // Its lines beyond the allowance are dropped, and the console says so.
        let dropped = " line(s) of guest flooder dropped: more than 250 lines/s";
        assert!(
            run.nucleus_line("console: ", dropped).is_some(),
            "no note of dropped lines\n{}",
            run.report()
        );
        // Its time in the nucleus is its own: the limit stops it although
        // it spends nearly all of it in system calls.
        let stopped = run.nucleus_line("guest ",
            "(flooder): stopped: it used up its CPU-time limit of 20000 ms; exit code 137",
        );
        // Meanwhile the other guest kept its pace: it finished first.
        let counted = run.nucleus_line("guest ", "(counter): exited; exit code 0");
        assert!(
            stopped.is_some() && counted.is_some() && counted < stopped,
            "counter must finish while the flood goes on\n{}",
            run.report()
        );
    };
    call_limits_keep_servers_and_the_nucleus_unwedged => |f: Firmware| {
        let run = boot_tcg(
            f,
            "qemu-exit",
            &[
                "sink,serves=sink",
                "stuck=sink,arg=stuck,serves=stuck",
                "hoarder,connects=sink+stuck",
                "patient=hoarder,arg=patient,connects=sink",
                "leaver=hoarder,arg=leaver,connects=sink",
                "counter",
            ],
            &[],
        );
        run.assert_exit(ExitCode::Success);
        for check in [
            "16 calls of 64 KiB wait; the 17th -> overloaded",
            "CANCEL of a waiting call -> 1, and the call -> -14",
            "32 calls wait; the 33rd -> overloaded",
            "CANCEL gave up all 32 waiting calls",
            "a call larger than the server's RECV buffer -> invalidArgument",
            "600 calls the server never answered, each given up after 2 ms",
            "the stuck server answers a call after all that",
            "after the cancels, a 64 KiB call waited again and was answered",
            "a call in the server's hands when it exits -> disconnected",
        ] {
            run.assert_guest_said("hoarder", &format!("ok: {check}\n"));
        }
        run.assert_guest_said("hoarder", "refused: this guest's calls hold 1024 of the 1024 KiB the nucleus keeps for it");
        run.assert_guest_said("patient", "ok: answered while another client flooded the server\n");
        run.assert_guest_said("stuck", "ok: took ");
        // A client that exits with calls waiting: the server never gets them.
        run.assert_guest_said("leaver", "leaving with 8 calls waiting\n");
        run.assert_guest_said("sink", "calls taken from a guest that had exited: 0\n");
        assert!(!run.output.contains("FAILED"), "{}", run.report());
        for guest in ["sink", "stuck", "hoarder", "patient", "leaver", "counter"] {
            run.assert_exited(guest, 0);
        }
    };
    endpoints_served_and_closed_without_end_are_freed => |f: Firmware| {
        // More cycles than the nucleus has endpoints (256): each close
        // must free its endpoint for the next serve.
        let run = boot_tcg(
            f,
            "qemu-exit",
            &["endpoint-churn,arg=1000,serves=churn,connects=churn", "counter"],
            &[],
        );
        run.assert_exit(ExitCode::Success);
        run.assert_guest_said("endpoint-churn", "1000 endpoints served and closed\n");
        run.assert_guest_said("endpoint-churn", "done: 1000 cycles\n");
        run.assert_exited("endpoint-churn", 0);
        run.assert_exited("counter", 0);
    };
    a_corrupted_ring_stops_only_its_guest => |f: Firmware| {
        let run = boot_tcg(f, "qemu-exit", &["ringbreaker", "counter"], &[]);
        run.assert_exit(ExitCode::Success);
        let stopped = run.assert_nucleus_said("guest 1 (ringbreaker): stopped: it corrupted its ring (Overrun {");
        assert!(stopped.ends_with("entries: 256 }); exit code -1"), "{stopped}");
        assert!(!run.output.contains("FAILED"), "{}", run.report());
        run.assert_exited("counter", 0);
    };
    the_nucleus_is_no_deputy_for_another_guests_memory => |f: Firmware| {
        let run = boot_tcg(
            f,
            "qemu-exit",
            &["victim,arg=1,serves=victim", "deputy,serves=deputy,connects=victim", "counter"],
            &[],
        );
        run.assert_exit(ExitCode::Success);
        run.assert_guest_said("deputy", "10 of 10 attempts refused with -5\n");
        assert!(!run.output.contains("FAILED"), "{}", run.report());
        run.assert_guest_said("victim", "secret intact\n");
        run.assert_exited("counter", 0);
    };
}

/// Sixteen guests need sixteen keys: the sixteenth is refused, the rest run.
#[test]
fn a_sixteenth_guest_is_refused_for_lack_of_keys() {
    let guests: Vec<String> = (1..=16).map(|i| format!("g{i}=hello")).collect();
    let guests: Vec<&str> = guests.iter().map(String::as_str).collect();
    let run = boot_tcg(Firmware::Bios, "qemu-exit", &guests, &[]);
    run.assert_exit(ExitCode::Success);
    run.assert_nucleus_said("guest 15 (g15): loaded, ");
    run.assert_nucleus_said("guest (g16): not started: 15 running guests hold all protection keys");
    run.assert_nucleus_said("guests: all 15 exited;");
}

/// Without PKU the boot log says so, and an appliance of several native
/// guests boots only when the command line accepts guests that are not
/// isolated.
#[test]
fn without_pku_a_second_guest_needs_consent() {
    let no_pku = ["-cpu", "max,-pku"];
    let run = boot_tcg(Firmware::Bios, "qemu-exit", &["counter", "hello"], &no_pku);
    run.assert_exit(ExitCode::Failure);
    run.assert_nucleus_said("pku: unavailable; native guests cannot be isolated from each other");
    run.assert_nucleus_said(
        "appliance: boot stopped: manifest: guests: 2 guests, but without protection keys they could not be isolated",
    );
    assert!(
        !run.output.contains("(counter): loaded"),
        "{}",
        run.report()
    );

    let run = boot_tcg(
        Firmware::Bios,
        "qemu-exit allow-unisolated-guests",
        &["counter", "hello"],
        &no_pku,
    );
    run.assert_exit(ExitCode::Success);
    let loaded = run.assert_nucleus_said("guest 2 (hello): loaded, ");
    assert!(loaded.ends_with(", protection key 0"), "{loaded}");
    run.assert_nucleus_said("guests: all 2 exited;");
}
