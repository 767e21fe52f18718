//! The appliances in config/appliances, built as their images and booted:
//! the CUE evaluator's output in the OS equals the native build's, and the
//! benchmark appliances still boot (a short run, no timing checks).

use std::process::Command;
use std::time::Duration;

use tests::{BootRequest, ExitCode, Firmware, Run, appliance_image, go_wasm, repo_root, run_image};

/// Boots appliance `name`, ending QEMU when its guests have.
fn boot(name: &str, firmware: Firmware) -> Run {
    let iso = appliance_image(name, "qemu-exit");
    run_image(
        &iso,
        BootRequest {
            cmdline: name,
            // Go under wasmi under TCG is slow: allow for it.
            timeout: Duration::from_secs(600),
            ..BootRequest::new(firmware)
        },
    )
}

/// What the Go program in guest `guest` printed, without timestamps and
/// prefixes, leaving out the wasm guest's own report and lines that start
/// with `skip`.
fn printed_by(run: &Run, guest: &str, skip: &str) -> String {
    run.printed_by(guest)
        .map(|(_, text)| text)
        .filter(|text| !text.starts_with(skip) && !text.starts_with("wasm: peak heap "))
        .map(|text| format!("{text}\n"))
        .collect()
}

/// The native evaluator's stdout and stderr together, as the console
/// shows them, and its exit status.
fn native_cue(dir: &str, args: &[&str]) -> (String, i32) {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} \"$@\" 2>&1",
            go_wasm().join("native/cue").display()
        ))
        .arg("cue")
        .args(args)
        .current_dir(repo_root().join("config/cue").join(dir))
        .output()
        .expect("the native evaluator runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

fn cue_in_the_os_prints_what_native_cue_prints(firmware: Firmware) {
    let run = boot("cue", firmware);
    run.assert_exit(ExitCode::Success);

    let (expected, status) = native_cue("examples", &["export", "--each", "."]);
    assert_eq!(status, 0);
    assert_eq!(
        printed_by(&run, "cue", "cue: timing: "),
        expected,
        "{}",
        run.report()
    );
    run.assert_guest_said("cue", "cue: timing: start-up ");
    run.assert_guest_said("cue", "cue: timing: services.cue ");
    run.assert_exited("cue", 0);

    // The broken inputs: CUE's errors, exit 1, and the rest carries on.
    let (expected, status) = native_cue("broken", &["export", "--each", "."]);
    assert_eq!(status, 1);
    assert!(expected.contains("conflict.cue:5:11"), "{expected}");
    assert_eq!(
        printed_by(&run, "cue-broken", "\u{0}"),
        expected,
        "{}",
        run.report()
    );
    run.assert_exited("cue-broken", 1);
    run.assert_nucleus_said("guests: all 2 exited; CR3 writes since boot: 0;");
}

fn hello_appliance_boots(firmware: Firmware) {
    let run = boot("hello", firmware);
    run.assert_exit(ExitCode::Success);
    run.assert_nucleus_said("appliance hello: 1 guests, ");
    run.assert_exited("hello", 7);
}

fn hello_go_appliance_boots(firmware: Firmware) {
    let run = boot("hello-go", firmware);
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said(
        "hello-go",
        "HELLO_GREETING=\"hello from the appliance\" set=true",
    );
    run.assert_guest_said("hello-go", "arg[1]=\"world\"");
    run.assert_exited("hello-go", 3);
}

tests::on_bios_and_uefi! {
    cue_prints_what_native_cue_prints => cue_in_the_os_prints_what_native_cue_prints;
    hello => hello_appliance_boots;
    hello_go => hello_go_appliance_boots;
}

#[test]
fn benchmark_appliances_boot() {
    let run = boot("bench-ring", Firmware::Bios);
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said("nopbench", "");
    run.assert_exited("nopbench", 0);

    let run = boot("bench-echo", Firmware::Bios);
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said("echo-client", "guest-call batch=1: min ");
    run.assert_nucleus_said("guests: all 2 exited; CR3 writes since boot: 0;");

    let run = boot("bench-echo-cross", Firmware::Bios);
    run.assert_exit(ExitCode::Success);
    run.assert_nucleus_said("guest 1 (echo-server): runs on cpu 1\n");
    run.assert_nucleus_said("guest 2 (echo-client): runs on cpu 0\n");
    run.assert_guest_said("echo-client", "guest-call batch=1: min ");
    run.assert_nucleus_said("guests: all 2 exited; CR3 writes since boot: 0;");

    let run = boot("bench-go", Firmware::Bios);
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said("stress", "stress: all checks passed");
    run.assert_exited("stress", 0);
}

/// The page-table-switching variant (the benchmarks' baseline) runs the
/// ring benchmarks and the guest-to-guest call, writing CR3 on every
/// nucleus entry and exit instead of never.
#[test]
fn the_page_table_switching_variant_runs_the_benchmarks() {
    let variant_dir = repo_root().join("target/page-table-switching");
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-none",
            "-p",
            "nucleus",
        ])
        .args(["--features", "page-table-switching", "--target-dir"])
        .arg(&variant_dir)
        .current_dir(repo_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the variant failed");
    let variant = variant_dir.join("x86_64-unknown-none/release/nucleus");
    let repo = appliance::Repo { root: repo_root() };
    go_wasm();
    appliance_image("bench-ring", ""); // the native guests are built
    for name in ["bench-ring", "bench-echo"] {
        let image = appliance::plan_appliance(&repo, name).unwrap();
        let iso = repo_root().join(format!("build/test-images/variant-{name}.iso"));
        image.write(&repo, &variant, &iso, None).unwrap();
        let run = run_image(
            &iso,
            BootRequest {
                cmdline: name,
                ..BootRequest::new(Firmware::Bios)
            },
        );
        run.assert_exit(ExitCode::Success);
        let line = run.assert_nucleus_said("guests: all ");
        let writes: u64 = line
            .split("CR3 writes since boot: ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            writes > 1000,
            "{name}: only {writes} CR3 writes\n{}",
            run.report()
        );
    }
}

/// Two builds of one appliance are the same bytes, ISO and disk image.
#[test]
fn images_are_reproducible() {
    let repo = appliance::Repo { root: repo_root() };
    go_wasm();
    appliance_image("hello-go", ""); // builds the nucleus
    let image = appliance::plan_appliance(&repo, "hello-go").unwrap();
    let out = repo_root().join("build/test-images");
    let mut builds = Vec::new();
    for n in 0..2 {
        let iso = out.join(format!("reproducible-{n}.iso"));
        let disk = out.join(format!("reproducible-{n}.img"));
        image
            .write(&repo, &repo.nucleus(), &iso, Some(&disk))
            .unwrap();
        builds.push((std::fs::read(&iso).unwrap(), std::fs::read(&disk).unwrap()));
        // Newer mtimes on every input must not show in the next build.
        std::thread::sleep(Duration::from_millis(1100));
        for module in &image.modules {
            if let appliance::Contents::File(path) = &module.contents {
                let _ = Command::new("touch").arg(path).status();
            }
        }
    }
    assert!(builds[0].0 == builds[1].0, "the ISOs differ");
    assert!(builds[0].1 == builds[1].1, "the disk images differ");
}
