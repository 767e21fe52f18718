//! Volumes and mounts: from the CUE definition to the manifest, the
//! errors a bad one gets, and the images `appliance build` keeps.

use appliance::volumes::{self, Prepared};
use appliance::{Appliance, Contents, cue};
use caps::manifest::{self, Mount, Volume};

mod common;
use common::ScratchRepo;

fn appliance_file(volumes: &str, mounts: &str) -> String {
    format!(
        "package appliance\n\nappliance: #Appliance & {{\n\tname: \"store\"\n\tvolumes: {{{volumes}}}\n\tguests: hello: {{\n\t\tbinary: \"hello\"\n\t\tmounts: {{{mounts}}}\n\t}}\n}}\n"
    )
}

/// The appliance `store` with these volumes and mounts, evaluated and
/// planned.
fn plan(scratch: &ScratchRepo) -> Result<appliance::Image, String> {
    let json = cue::appliance_json(&scratch.repo, "store").map_err(String::from)?;
    Appliance::from_json(&json)
        .and_then(|appliance| appliance.plan(&scratch.repo))
        .map_err(String::from)
}

fn scratch(test: &str, volumes: &str, mounts: &str) -> ScratchRepo {
    ScratchRepo::new(test, &[("store", &appliance_file(volumes, mounts))])
}

#[test]
fn volumes_and_mounts_reach_the_manifest_in_written_order() {
    let scratch = scratch(
        "good",
        r#"logs: {}, data: {sizeMib: 8, seed: "seed"}"#,
        r#""/var/log": "logs", "/data": {volume: "data", readOnly: true}, "/rw": {volume: "data"}"#,
    );
    std::fs::create_dir_all(scratch.repo.root.join("seed/etc")).unwrap();
    std::fs::write(scratch.repo.root.join("seed/etc/motd"), b"hi\n").unwrap();
    let image = plan(&scratch).unwrap();
    let module = image
        .modules
        .iter()
        .find(|m| m.name == manifest::MODULE_NAME)
        .unwrap();
    let Contents::Bytes(bytes) = &module.contents else {
        panic!("the manifest is bytes")
    };
    let names: Vec<&str> = image.modules.iter().map(|m| m.name.as_str()).collect();
    let decoded = manifest::decode(bytes, &names).unwrap();
    assert_eq!(
        decoded.volumes,
        [
            Volume {
                name: "logs".into(),
                size_mib: 64
            },
            Volume {
                name: "data".into(),
                size_mib: 8
            }
        ]
    );
    let mount = |path: &str, volume: &str, read_only| Mount {
        path: path.into(),
        volume: volume.into(),
        read_only,
    };
    assert_eq!(
        decoded.guests[0].mounts,
        [
            mount("/var/log", "logs", false),
            mount("/data", "data", true),
            mount("/rw", "data", false)
        ]
    );

    // The images: created once, seeded, then kept.
    let json = cue::appliance_json(&scratch.repo, "store").unwrap();
    let appliance = Appliance::from_json(&json).unwrap();
    let prepared = appliance.prepare_volumes(&scratch.repo, false).unwrap();
    let data = scratch.repo.root.join("build/volumes/store/data.img");
    assert_eq!(
        prepared[1],
        ("data".into(), data.clone(), Prepared::Created)
    );
    assert_eq!(std::fs::metadata(&data).unwrap().len(), 8 << 20);
    let volume = volumes::mount_image(&data, false).unwrap();
    let mut motd = Vec::new();
    volumes::read_file(&volume, "etc/motd", &mut motd).unwrap();
    assert_eq!(motd, b"hi\n");
    let again = appliance.prepare_volumes(&scratch.repo, false).unwrap();
    assert!(
        again.iter().all(|(_, _, p)| *p == Prepared::Kept),
        "{again:?}"
    );
    let reset = appliance.prepare_volumes(&scratch.repo, true).unwrap();
    assert!(
        reset.iter().all(|(_, _, p)| *p == Prepared::Created),
        "{reset:?}"
    );
}

#[test]
fn a_mount_of_an_unknown_volume_names_the_mount() {
    let scratch = scratch("unknown", "data: {}", r#""/data": "nope""#);
    let error = plan(&scratch).unwrap_err();
    assert_eq!(
        error,
        "guests.hello.mounts.\"/data\": no volume named 'nope' in volumes (volumes: data)"
    );
    let scratch = scratch_without_volumes();
    let error = plan(&scratch).unwrap_err();
    assert!(
        error.ends_with("no volume named 'data' in volumes (the appliance has none)"),
        "{error}"
    );
}

fn scratch_without_volumes() -> ScratchRepo {
    scratch("none", "", r#""/data": {volume: "data", readOnly: true}"#)
}

#[test]
fn a_bad_mount_path_is_named_in_the_appliance_s_terms() {
    for path in ["data", "/a/../b", "/", "/a b"] {
        let scratch = scratch("path", "data: {}", &format!("{path:?}: \"data\""));
        let error = plan(&scratch).unwrap_err();
        assert!(
            error.starts_with(&format!(
                "guests.hello.mounts.{path:?}: '{path}' is not an absolute path"
            )),
            "{path}: {error}"
        );
    }
}

#[test]
fn a_missing_seed_is_named() {
    let scratch = scratch("seed", r#"data: seed: "nowhere""#, "");
    let error = plan(&scratch).unwrap_err();
    assert!(error.starts_with("volumes.data.seed: "), "{error}");
    assert!(error.ends_with("nowhere is not a directory"), "{error}");
}

#[test]
fn the_schema_refuses_bad_volumes() {
    for (volumes, mounts, problem) in [
        (
            "data: sizeMib: 3",
            "",
            "appliance.volumes.data.sizeMib: 11 errors in empty disjunction",
        ),
        // The volume name is the disk's serial: 20 bytes.
        (
            "abcdefghijklmnopqrstu: {}",
            "",
            "appliance.volumes.abcdefghijklmnopqrstu._name: invalid value \"abcdefghijklmnopqrstu\" (out of bound =~\"^[a-z0-9][a-z0-9_-]{0,19}$\")",
        ),
        (
            "Data: {}",
            "",
            "appliance.volumes.Data._name: invalid value \"Data\"",
        ),
        (
            "data: {}",
            r#""/d": {volume: "data", readOnly: "yes"}"#,
            "appliance.guests.hello.mounts.\"/d\"",
        ),
        (
            "data: {}",
            r#""/d": 7"#,
            "appliance.guests.hello.mounts.\"/d\"",
        ),
    ] {
        let scratch = scratch("schema", volumes, mounts);
        let error = plan(&scratch).unwrap_err();
        assert!(
            error.contains("does not evaluate"),
            "{volumes} {mounts}: {error}"
        );
        assert!(error.contains(problem), "{volumes} {mounts}: {error}");
    }
}

#[test]
fn the_volume_command_says_when_an_appliance_has_no_such_volume() {
    common::built();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_appliance"))
        .args(["volume", "ls", "hello", "data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("appliance hello has no volume 'data' (it has none)"),
        "{stderr}"
    );
}
