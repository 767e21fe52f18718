//! What the fuzz target in `config/fuzz` checks, as a function of the
//! fuzzer's bytes, so that the committed seeds (`config/fuzz/seeds/`) run
//! as ordinary tests too.
//!
//! `appliance_json`: the input as the JSON an appliance evaluates to (what
//! `appliance show` prints), planned into an image with stand-in files.
//! It is refused with a message, or its manifest is one the nucleus
//! accepts against the image's modules and says what the JSON said.

use std::path::{Path, PathBuf};

use caps::manifest::{self, Console, Restart};

use crate::{Appliance, Contents, Error, Files, Repo};

/// A target's check of one input: it panics when an invariant breaks.
pub type Check = fn(&[u8]);

/// Every target by name, as `config/fuzz/fuzz_targets/NAME.rs` calls it.
pub const TARGETS: &[(&str, Check)] = &[("appliance_json", appliance_json)];

/// Files that all exist and are never read: no input reaches the host's
/// file system. Trees are empty archives.
struct StandIns;

impl Files for StandIns {
    fn is_dir(&self, _path: &Path) -> bool {
        true
    }

    fn is_file(&self, _path: &Path) -> bool {
        true
    }

    fn tree_archive(&self, _dir: &Path) -> Result<Vec<u8>, Error> {
        Ok(wasm_host::ArchiveBuilder::new().finish())
    }
}

pub fn appliance_json(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let appliance = match Appliance::from_json(json) {
        Ok(appliance) => appliance,
        Err(error) => return assert!(!error.0.is_empty()),
    };
    let repo = Repo {
        root: PathBuf::from("/appliance"),
    };
    let image = match appliance.plan_with(&repo, &StandIns) {
        Ok(image) => image,
        Err(error) => return assert!(!error.0.is_empty()),
    };
    check_image(&appliance, &image);
}

/// The image holds each module once, the manifest among them, and the
/// manifest decodes against them to what the appliance says.
fn check_image(appliance: &Appliance, image: &crate::Image) {
    assert_eq!(image.cmdline, appliance.cmdline);
    let names: Vec<&str> = image.modules.iter().map(|m| m.name.as_str()).collect();
    for (i, name) in names.iter().enumerate() {
        assert!(!names[..i].contains(name), "module {name} twice");
    }
    let Some(Contents::Bytes(bytes)) = image
        .modules
        .iter()
        .find(|m| m.name == manifest::MODULE_NAME)
        .map(|m| &m.contents)
    else {
        panic!("no manifest module");
    };
    let decoded = manifest::decode(bytes, &names).expect("the manifest the nucleus reads");
    assert_eq!(&manifest::encode(&decoded), bytes);
    assert_eq!(decoded.name, appliance.name);
    assert_eq!(
        decoded.console,
        match appliance.console.as_str() {
            "serial" => Console::Serial,
            "framebuffer" => Console::Framebuffer,
            _ => Console::Both,
        }
    );
    assert_eq!(decoded.devices.network, appliance.devices.network);
    let volumes: Vec<(&str, u32)> = decoded
        .volumes
        .iter()
        .map(|v| (v.name.as_str(), v.size_mib))
        .collect();
    let defined: Vec<(&str, u32)> = appliance
        .volumes
        .iter()
        .map(|(name, v)| (name.as_str(), v.size_mib))
        .collect();
    assert_eq!(volumes, defined);
    assert_eq!(decoded.guests.len(), appliance.guests.len());
    for (guest, definition) in decoded.guests.iter().zip(appliance.guests.values()) {
        assert_eq!(guest.name, definition.name);
        assert!(names.contains(&guest.module.as_str()));
        assert!(guest.data.iter().all(|d| names.contains(&d.as_str())));
        assert_eq!(guest.serves, definition.serves);
        assert_eq!(guest.connects, definition.connects);
        assert_eq!(guest.listen, definition.listen);
        assert_eq!(guest.heap_mib, definition.heap_mib);
        assert_eq!(guest.stack_kib, definition.stack_kib);
        assert_eq!(guest.cpu_ms, definition.cpu_ms);
        assert_eq!(guest.cpus, definition.cpus);
        assert_eq!(guest.grants.len(), definition.grants.len());
        let mounts: Vec<(&str, &str, bool)> = guest
            .mounts
            .iter()
            .map(|m| (m.path.as_str(), m.volume.as_str(), m.read_only))
            .collect();
        let defined: Vec<(&str, &str, bool)> = definition
            .mounts
            .iter()
            .map(|(path, m)| (path.as_str(), m.volume(), m.read_only()))
            .collect();
        assert_eq!(mounts, defined);
        match guest.restart {
            Restart::Never => assert_ne!(definition.restart, "on-failure"),
            Restart::OnFailure { max } => {
                assert_eq!(definition.restart, "on-failure");
                assert_eq!(max, definition.max_restarts.unwrap_or(3));
            }
        }
    }
}

#[cfg(test)]
mod tests {

    /// Every committed seed passes its check: the seeds, crashes found by
    /// fuzzing among them, are regression tests.
    #[test]
    fn every_committed_seed_passes() {
        for (target, check) in super::TARGETS {
            for (file, bytes) in fuzz_seeds::read(env!("CARGO_MANIFEST_DIR"), target) {
                eprintln!("{target}: {}", file.display());
                check(&bytes);
            }
        }
    }
}
