//! Boots the nucleus in QEMU under BIOS and UEFI and checks what it prints
//! and how it exits. Every scenario is its own kernel command line.

use tests::{BootRequest, ExitCode, Firmware, Outcome, boot, on_bios_and_uefi, run};

fn boots_ready_with_sane_memory_and_ticks(firmware: Firmware) {
    let run = boot(firmware, "qemu-exit scenario=ticks");
    run.assert_exit(ExitCode::Success);
    let banner = run.assert_nucleus_said("nucleus 0.1.0 booting via Limine");
    let expected_firmware = match firmware {
        Firmware::Bios => "on BIOS",
        Firmware::Uefi => "on UEFI",
    };
    assert!(
        banner.ends_with(expected_firmware),
        "{banner}\n{}",
        run.report()
    );
    let ready = run.assert_nucleus_said("nucleus: ready in ");
    assert!(
        ready.ends_with("; CR3 writes: 1 (the boot switch)"),
        "{ready}"
    );
    run.assert_nucleus_said("timer: 10 ticks observed in ");
    // Every line carries a timestamp.
    for line in run
        .output
        .lines()
        .filter(|l| l.contains("nucleus") || l.contains("memory:"))
    {
        assert!(
            line.starts_with("[") && line.as_bytes().get(13) == Some(&b']'),
            "untimed line '{line}'"
        );
    }
    // The TSC frequency is known before the first line: times never go back.
    let times: Vec<f64> = run
        .output
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split_once(']')?.0.trim().parse().ok())
        .collect();
    assert!(times.len() > 10, "{}", run.report());
    assert!(
        times.windows(2).all(|pair| pair[0] <= pair[1]),
        "timestamps go back: {times:?}"
    );

    // QEMU runs with 512 MiB: the usable total must be most of it, never more.
    let memory = run.assert_nucleus_said("memory: ");
    let usable_mib: f64 = field_before(memory, " MiB usable").parse().unwrap();
    assert!(
        (400.0..512.0).contains(&usable_mib),
        "usable {usable_mib} MiB\n{}",
        run.report()
    );
    let frames = run.assert_nucleus_said("frames: ");
    let free: u64 = field_before(frames, " of ").parse().unwrap();
    let managed: u64 = field_before(frames, " usable frames").parse().unwrap();
    assert!(
        free > 0 && free <= managed && (managed as f64) * 4096.0 / 1048576.0 <= usable_mib + 0.1,
        "{frames}"
    );
    let paging = run.assert_nucleus_said("paging: ");
    assert!(paging.contains(" stack guard pages; "), "{paging}");
}

/// The word just before `marker` in `line`.
fn field_before<'a>(line: &'a str, marker: &str) -> &'a str {
    let end = line
        .find(marker)
        .unwrap_or_else(|| panic!("'{marker}' not in '{line}'"));
    line[..end].rsplit(' ').next().unwrap()
}

/// A forced exception: the report names it, shows the frame and the
/// registers, and the run ends with the failure code.
fn exception(firmware: Firmware, scenario: &str, heading: &str) -> tests::Run {
    let run = boot(firmware, &format!("qemu-exit scenario={scenario}"));
    run.assert_exit(ExitCode::Failure);
    run.assert_nucleus_said("nucleus: ready in ");
    run.assert_nucleus_said(heading);
    run.assert_nucleus_said("  rip 0xffffffff8");
    run.assert_nucleus_said("  rax 0x");
    let last = run.assert_nucleus_said("  r13 0x");
    assert!(last.contains("  r15 0x"), "{last}");
    run.assert_nucleus_said("nucleus stopped: unhandled ");
    run
}

on_bios_and_uefi! {
    boots_to_ready => boots_ready_with_sane_memory_and_ticks;
    breakpoint_is_reported => |f| { exception(f, "breakpoint", "EXCEPTION #BP breakpoint (vector 3)"); };
    page_fault_is_reported_with_cr2 => |f| {
        let run = exception(f, "page-fault", "EXCEPTION #PF page fault (vector 14), error code 0x2: write, not-present page, supervisor mode");
        run.assert_nucleus_said("  cr2 0x00007e57dead0000\n");
    };
    divide_error_is_reported => |f| { exception(f, "divide-error", "EXCEPTION #DE divide error (vector 0)"); };
    invalid_opcode_is_reported => |f| { exception(f, "invalid-opcode", "EXCEPTION #UD invalid opcode (vector 6)"); };
    general_protection_is_reported => |f| {
        exception(f, "general-protection", "EXCEPTION #GP general protection (vector 13), error code 0x0: not selector-related");
    };
    stack_overflow_becomes_a_double_fault_on_its_own_stack => |f| {
        let run = exception(f, "stack-overflow", "EXCEPTION #DF double fault (vector 8)");
        // The guard page stopped it: no page-fault report came first.
        assert!(!run.output.contains("#PF"), "{}", run.report());
    };
    nmi_is_handled_on_its_own_stack_and_returned_from => |f| {
        let run = boot(f, "qemu-exit scenario=nmi");
        run.assert_exit(ExitCode::Success);
        let handled = run.assert_nucleus_said("scenario: NMI handled on its own stack (frame at 0x");
        assert!(handled.ends_with(") and returned from; carried on"), "{handled}");
    };
    panic_prints_message_and_location => |f| {
        let run = boot(f, "qemu-exit scenario=panic");
        run.assert_exit(ExitCode::Failure);
        run.assert_nucleus_said("PANIC: panic requested on the command line at nucleus/src/arch/x86_64/scenario.rs:");
    };
    stray_interrupts_are_acknowledged_and_survived => |f| {
        let run = boot(f, "qemu-exit scenario=stray-interrupt");
        run.assert_exit(ExitCode::Success);
        run.assert_nucleus_said("apic: unexpected interrupt on vector 0x40 (1 so far), acknowledged\n");
        run.assert_nucleus_said("apic: unexpected interrupt on vector 0xfe (2 so far), acknowledged\n");
        run.assert_nucleus_said("scenario: carried on after stray interrupts\n");
    };
    bad_cmdline_options_are_reported_and_ignored => |f| {
        let run = boot(f, "qemu-exit scenario=ticks verbose tick_hz=5");
        run.assert_exit(ExitCode::Success);
        run.assert_nucleus_said("cmdline: unknown option 'verbose' ignored\n");
        run.assert_nucleus_said("cmdline: bad value '5' for 'tick_hz' (expected an integer from 10 to 10000); default kept\n");
        assert!(run.nucleus_line("cmdline: '", "' (scenario ticks, 100 Hz ticks)").is_some(), "{}", run.report());
    };
    every_cpu_comes_online_and_one_alone_boots => |f| {
        for cpus in [1u32, 4, 8] {
            let smp = cpus.to_string();
            let run = run(BootRequest {
                cmdline: "qemu-exit scenario=ticks",
                qemu_args: &["-smp", &smp],
                ..BootRequest::new(f)
            });
            run.assert_exit(ExitCode::Success);
            run.assert_nucleus_said(&format!("acpi: MADT lists {cpus} CPUs, "));
            for index in 1..cpus {
                run.assert_nucleus_said(&format!("smp: cpu {index} (apic id {index}) online\n"));
            }
            run.assert_nucleus_said(&format!("smp: {cpus} of {cpus} CPUs online\n"));
            run.assert_nucleus_said("timer: 10 ticks observed in ");
        }
    };
    framebuffer_shows_the_log => |f| {
        let run = run(BootRequest { cmdline: "scenario=idle", stop_at: Some("nucleus: ready"), screendump: true, ..BootRequest::new(f) });
        assert_eq!(run.outcome, Outcome::StoppedAtMarker, "{}", run.report());
        let screen = run.screen.as_ref().unwrap_or_else(|| panic!("no screendump\n{}", run.report()));
        // The log starts at the top: glyphs light the first text rows, and
        // the bottom rows (no text yet) stay dark.
        let top = screen.lit_pixels(0..64);
        let bottom = screen.lit_pixels(screen.height - 32..screen.height);
        assert!(top > 500, "only {top} lit pixels in the first four text rows\n{}", run.report());
        assert_eq!(bottom, 0, "text where none was written\n{}", run.report());
    };
}

/// The harness itself: a nucleus that never exits is killed at the timeout
/// and reported with the end of its output.
#[test]
fn hung_qemu_is_killed_and_reported() {
    let timeout = std::time::Duration::from_secs(20);
    let run = run(BootRequest {
        cmdline: "scenario=idle",
        timeout,
        ..BootRequest::new(Firmware::Bios)
    });
    assert_eq!(run.outcome, Outcome::KilledAfterTimeout, "{}", run.report());
    let report = run.report();
    assert!(
        report.contains("KilledAfterTimeout") && report.contains("last "),
        "{report}"
    );
    assert!(report.lines().count() <= 50 + 8, "{report}");
    assert!(report.contains("nucleus: ready"), "{report}");
}
