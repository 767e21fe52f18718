//! Guests on several CPUs: each CPU runs guests, guests pinned to CPUs run
//! only there, calls cross CPUs, and guests exit and restart on several
//! CPUs while others run without any of them seeing memory through a stale
//! mapping. Every marker is matched as its speaker's: a guest's own lines,
//! or the nucleus's (`guest N (name): runs on cpu C`, once per CPU, which a
//! guest cannot print: its lines start with its name).

use tests::{BootRequest, ExitCode, Firmware, on_bios_and_uefi, run};

/// Several guests, without protection keys too.
const SEVERAL: &str = "qemu-exit allow-unisolated-guests";

fn boot_on(f: Firmware, cpus: &str, guests: &[&str]) -> tests::Run {
    run(BootRequest {
        firmware: f,
        cmdline: SEVERAL,
        guests,
        qemu_args: &["-smp", cpus],
        ..BootRequest::new(f)
    })
}

/// Whether the nucleus said guest `name` runs on `cpu`.
fn ran_on(run: &tests::Run, name: &str, cpu: u32) -> bool {
    run.nucleus_line("guest ", &format!("({name}): runs on cpu {cpu}"))
        .is_some()
}

on_bios_and_uefi! {
    pinned_guests_run_only_on_their_own_cpus => |f: Firmware| {
        let run = boot_on(f, "2", &["a=spinner,cpus=0", "b=spinner,cpus=1", "counter"]);
        run.assert_exit(ExitCode::Success);
        assert!(ran_on(&run, "a", 0) && ran_on(&run, "b", 1), "{}", run.report());
        assert!(!ran_on(&run, "a", 1) && !ran_on(&run, "b", 0), "a pinned guest moved\n{}", run.report());
        run.assert_guest_said("a", "spun ");
        run.assert_guest_said("b", "spun ");
        run.assert_guest_said("counter", "count 10\n");
        run.assert_nucleus_said("guests: all 3 exited; CR3 writes since boot: 0;");
    };
    spinning_guests_leave_the_other_cpus_to_the_rest => |f: Firmware| {
        // Three spinners, one on each of three CPUs, never enter the
        // nucleus while they spin; the counter and the echo pair, free to
        // run anywhere, finish.
        let run = boot_on(f, "4", &[
            "a=spinner,cpus=1", "b=spinner,cpus=2", "c=spinner,cpus=3",
            "echo-server,serves=echo", "echo-client,connects=echo", "counter",
        ]);
        run.assert_exit(ExitCode::Success);
        for (spinner, cpu) in [("a", 1), ("b", 2), ("c", 3)] {
            assert!(ran_on(&run, spinner, cpu), "{spinner} not on cpu {cpu}\n{}", run.report());
        }
        run.assert_guest_said("counter", "count 10\n");
        run.assert_guest_said("echo-server", "served 502 calls; quitting");
        run.assert_nucleus_said("guests: all 6 exited; CR3 writes since boot: 0;");
    };
    calls_cross_cpus => |f: Firmware| {
        let run = boot_on(f, "2", &["echo-server,serves=echo,cpus=0", "echo-client,connects=echo,cpus=1"]);
        run.assert_exit(ExitCode::Success);
        assert!(ran_on(&run, "echo-server", 0) && ran_on(&run, "echo-client", 1), "{}", run.report());
        run.assert_guest_said("echo-client", "echoed: hello through another guest");
        run.assert_guest_said("echo-server", "served 502 calls; quitting");
        run.assert_guest_said("echo-client", "after quit: stale capability (released, or the object it named is gone) (-4)");
        run.assert_nucleus_said("guest 2 (echo-client): exited; exit code 0\n");
    };
    guests_restart_on_several_cpus_and_never_see_stale_memory => |f: Firmware| {
        // Four churners restarted 50 times each (200 exits and starts, on
        // whichever CPU is free) while an echo pair calls across CPUs and a
        // counter counts: every incarnation finds its memory fresh and its
        // own, and the others finish.
        let run = run(BootRequest {
            firmware: f,
            cmdline: SEVERAL,
            guests: &[
                "c1=churn,restart=50", "c2=churn,restart=50", "c3=churn,restart=50", "c4=churn,restart=50",
                "echo-server,serves=echo", "echo-client,connects=echo", "counter",
            ],
            qemu_args: &["-smp", "4"],
            timeout: std::time::Duration::from_secs(600),
            ..BootRequest::new(f)
        });
        run.assert_exit(ExitCode::Success);
        assert!(!run.output.contains("FOREIGN DATA"), "{}", run.report());
        for churner in ["c1", "c2", "c3", "c4"] {
            assert!(
                run.nucleus_line("guest ", &format!("({churner}): not restarted: it failed 51 times")).is_some(),
                "{churner} did not finish its restarts\n{}",
                run.report()
            );
        }
        for churner in ["c1", "c2", "c3", "c4"] {
            for restart in 1..=50 {
                run.assert_nucleus_said(&format!("guest ({churner}): restarting after exit code 1 (restart {restart} of 50)\n"));
            }
        }
        let cpus_used = (0..4).filter(|&cpu| ["c1", "c2", "c3", "c4"].iter().any(|c| ran_on(&run, c, cpu))).count();
        assert!(cpus_used >= 2, "churners ran on {cpus_used} CPU(s)\n{}", run.report());
        run.assert_guest_said("echo-server", "served 502 calls; quitting");
        run.assert_guest_said("counter", "count 10\n");
        run.assert_nucleus_said("guests: all 207 exited; CR3 writes since boot: 0; restarts: 200\n");
    };
    one_cpu_still_runs_everything => |f: Firmware| {
        let run = boot_on(f, "1", &["spinner", "echo-server,serves=echo", "echo-client,connects=echo", "counter"]);
        run.assert_exit(ExitCode::Success);
        run.assert_nucleus_said("smp: 1 of 1 CPUs online\n");
        run.assert_guest_said("counter", "count 10\n");
        run.assert_guest_said("echo-server", "served 502 calls; quitting");
        assert!(!run.output.contains("runs on cpu 1"), "{}", run.report());
        run.assert_nucleus_said("guests: all 4 exited; CR3 writes since boot: 0;");
    };
    a_guest_pinned_to_a_missing_cpu_is_not_started => |f: Firmware| {
        let run = boot_on(f, "2", &["hello,cpus=5", "counter"]);
        run.assert_exit(ExitCode::Success);
        run.assert_nucleus_said("guest (hello): not started: it may run only on cpus [5], and the machine has 2 (0 to 1)\n");
        run.assert_nucleus_said("guest 1 (counter): exited; exit code 0\n");
    };
}
