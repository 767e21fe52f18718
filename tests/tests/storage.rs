//! Storage in QEMU: volumes on virtio-blk disks, their Directory and File
//! capabilities, and what survives a reboot and a power cut. Markers are
//! anchored to who printed them: a guest's own lines, or the nucleus's
//! (`storage: `, `guest (name)`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::Path;

use tests::{
    BootRequest, Firmware, Outcome, Run, VolumeImage, appliance_image, appliance_volumes, image,
    on_bios_and_uefi, run_image,
};

const EXIT: &str = "qemu-exit allow-unisolated-guests";

fn boot(firmware: Firmware, guests: &[&str], volumes: &[&VolumeImage]) -> Run {
    boot_until(firmware, guests, volumes, None)
}

fn boot_until(
    firmware: Firmware,
    guests: &[&str],
    volumes: &[&VolumeImage],
    stop_at: Option<&str>,
) -> Run {
    let attached: Vec<(&str, &Path)> = volumes.iter().map(|v| v.attach()).collect();
    run_image(
        &image(EXIT, guests),
        BootRequest {
            volumes: &attached,
            stop_at,
            ..BootRequest::new(firmware)
        },
    )
}

/// Boots appliance `name` with `volumes` as its disks.
fn boot_appliance(firmware: Firmware, name: &str, volumes: &[VolumeImage]) -> Run {
    let attached: Vec<(&str, &Path)> = volumes.iter().map(|v| v.attach()).collect();
    run_image(
        &appliance_image(name, ""),
        BootRequest {
            volumes: &attached,
            ..BootRequest::new(firmware)
        },
    )
}

/// Boots a counting appliance twice on one volume image: its guest counts
/// 1 then 2, and `boots` holds 2 on the host. The runs, and the files the
/// volume holds after.
fn count_two_boots(
    firmware: Firmware,
    appliance: &str,
    guest: &str,
) -> (Vec<Run>, BTreeMap<String, Vec<u8>>) {
    let volumes = appliance_volumes(appliance);
    let mut runs = Vec::new();
    for expected in 1..=2 {
        let run = boot_appliance(firmware, appliance, &volumes);
        run.assert_guest_said(guest, &format!("boots: {expected}\n"));
        run.assert_exited(guest, 0);
        runs.push(run);
    }
    let files = volumes[0].files();
    assert_eq!(files.get("boots").map(Vec::as_slice), Some(&b"2\n"[..]));
    (runs, files)
}

/// The `boots` appliance as a user builds it (native), and only its file
/// is left.
fn boots_twice(firmware: Firmware) {
    let (runs, files) = count_two_boots(firmware, "boots", "boots");
    for run in &runs {
        run.assert_nucleus_said("storage: volume data mounted: 1 MiB");
    }
    assert_eq!(files.len(), 1, "only boots is left: {:?}", files.keys());
}

/// The Go version, `make run APPLIANCE=boots-go`: Go's os package over
/// WASI over Directory and File capabilities.
fn boots_go_twice(firmware: Firmware) {
    count_two_boots(firmware, "boots-go", "boots-go");
}

/// Go's file API against a volume (go-wasip1/cmd/fileapi): each call's
/// result checked by the program.
fn go_file_api(firmware: Firmware) {
    let volumes = appliance_volumes("fileapi-go");
    let run = boot_appliance(firmware, "fileapi-go", &volumes);
    assert!(
        !run.output.contains("] fileapi: fileapi: FAIL"),
        "{}",
        run.report()
    );
    run.assert_guest_said("fileapi", "fileapi: all 23 checks passed");
    run.assert_exited("fileapi", 0);
}

/// Every Directory and File method, their errors, escapes refused.
fn file_api(firmware: Firmware) {
    let volume = VolumeImage::new("data", 1, None);
    let run = boot(
        firmware,
        &["volume:data=1", "files,arg=check,mount=/data:data"],
        &[&volume],
    );
    run.assert_guest_said("files", "mounted /data (read-write)\n");
    assert!(!run.output.contains("] files: FAIL"), "{}", run.report());
    run.assert_guest_said("files", "19 checks passed, 0 failed\n");
    run.assert_exited("files", 0);
    let files = volume.files();
    assert_eq!(
        files.get("sub/b.txt").map(Vec::as_slice),
        Some(&b"hello"[..])
    );
    assert_eq!(files.keys().filter(|k| k.starts_with("sub/f")).count(), 40);
}

/// A read-only mount of a seeded volume reads and refuses every change;
/// the volume is untouched.
fn read_only_mount(firmware: Firmware) {
    let volume = VolumeImage::new("seed", 1, Some(Path::new("config/cue/examples")));
    let before = volume_bytes(&volume);
    let run = boot(
        firmware,
        &["volume:seed=1", "files,arg=readonly,mount=/etc:seed:ro"],
        &[&volume],
    );
    run.assert_guest_said("files", "mounted /etc (read-only)\n");
    assert!(!run.output.contains("] files: FAIL"), "{}", run.report());
    assert!(
        run.printed_by("files")
            .any(|(_, said)| said.ends_with(" checks passed, 0 failed")),
        "{}",
        run.report()
    );
    run.assert_exited("files", 0);
    assert!(
        before == volume_bytes(&volume),
        "a read-only mount changed the volume"
    );
}

fn volume_bytes(volume: &VolumeImage) -> Vec<u8> {
    std::fs::read(volume.path()).expect("the volume image")
}

/// Opening until refused, huge offsets, a full volume: each refused with
/// its error while another guest keeps running to its end.
fn abuse_while_another_runs(firmware: Firmware) {
    let volume = VolumeImage::new("data", 1, None);
    let run = boot(
        firmware,
        &[
            "volume:data=1",
            "files,arg=abuse,mount=/data:data",
            "counter",
        ],
        &[&volume],
    );
    assert!(!run.output.contains("] files: FAIL"), "{}", run.report());
    run.assert_guest_said("files", "8 checks passed, 0 failed\n");
    run.assert_exited("files", 0);
    run.assert_guest_said("counter", "count 10\n");
    run.assert_exited("counter", 0);
}

/// A disk of random bytes, and a volume with no disk at all: each is
/// refused with its reason, the guest that mounts it does not start, the
/// other guest does.
fn broken_volumes_are_refused(firmware: Firmware) {
    let volume = VolumeImage::new("data", 1, None);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(volume.path(), &noise).unwrap();
    let run = boot(
        firmware,
        &[
            "volume:data=1",
            "volume:gone=1",
            "files,arg=boots,mount=/data:data",
            "second=files,arg=boots,mount=/data:gone",
            "counter",
        ],
        &[&volume],
    );
    run.assert_nucleus_said("storage: volume data: refused: no volume on the disk");
    run.assert_nucleus_said("storage: volume gone: refused: no disk with serial 'gone'");
    run.assert_nucleus_said(
        "guest (files): not started: volume 'data' (mounted at /data) is not mounted",
    );
    run.assert_nucleus_said("guest (second): not started: volume 'gone'");
    run.assert_guest_said("counter", "count 10\n");
    run.assert_exited("counter", 0);
    assert!(volume_bytes(&volume) == noise, "a refused disk was written");
}

on_bios_and_uefi! {
    boots_counts_across_boots => boots_twice;
    boots_go_counts_across_boots => boots_go_twice;
    go_file_api_on_a_volume => go_file_api;
    every_file_call_and_its_errors => file_api;
    a_read_only_mount_refuses_changes => read_only_mount;
    abuse_is_refused_while_another_guest_runs => abuse_while_another_runs;
    broken_volumes_are_refused_and_others_start => broken_volumes_are_refused;
}

/// The highest generation a run printed as durable.
fn last_durable(run: &Run) -> Option<u64> {
    run.printed_by("files")
        .filter_map(|(_, said)| said.strip_prefix("durable "))
        .filter_map(|n| n.trim().parse().ok())
        .max()
}

/// What the guest found at the start of a run: `None` for no generation.
fn found(run: &Run) -> Option<u64> {
    if run.guest_line("files", "found no generation yet").is_some() {
        return None;
    }
    let line = run.assert_guest_said("files", "found generation ");
    let number = line.strip_prefix("found generation ").unwrap();
    Some(number.trim_end_matches(" intact").trim().parse().unwrap())
}

/// A guest rename-updates a file in a loop, printing each generation once
/// it is durable; QEMU is killed (SIGKILL, a power cut) at 20 moments, and
/// each boot after checks the file is one whole generation, no older than
/// the last one printed durable and at most the one in flight newer.
#[test]
fn power_cuts() {
    const CUTS: u64 = 20;
    let volume = VolumeImage::new("data", 1, None);
    let guests = ["volume:data=1", "files,arg=loop,mount=/data:data"];
    let mut durable: Option<u64> = None;
    let mut printed: Option<u64> = None;
    let mut survived = 0;
    for cut in 0..CUTS {
        // A few generations further each time, a different moment each.
        let target = durable.unwrap_or(0) + 3 + cut % 4;
        let marker = format!("] files: durable {target}\n");
        let run = boot_until(Firmware::Bios, &guests, &[&volume], Some(&marker));
        assert_eq!(run.outcome, Outcome::StoppedAtMarker, "{}", run.report());
        let now_found = found(&run);
        assert!(
            now_found >= durable && now_found <= printed.map(|p| p + 1).or(durable),
            "cut {cut}: found {now_found:?}; {durable:?} was durable, {printed:?} printed\n{}",
            run.report()
        );
        survived += 1;
        durable = last_durable(&run);
        printed = durable;
    }
    let files = volume.files();
    let current = files.get("current").expect("current is there");
    let text = String::from_utf8_lossy(current);
    let generation: u64 = text.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        generation >= durable.unwrap(),
        "{generation} after {durable:?}"
    );
    println!("power cuts survived: {survived} of {CUTS}");
}
