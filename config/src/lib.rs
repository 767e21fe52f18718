//! Appliances: one CUE file per appliance in `config/appliances/`, checked
//! against `config/schema.cue`, turned into a boot manifest and the boot
//! modules it names, and written as one hybrid BIOS/UEFI image, with an
//! image file for each of its volumes ([`volumes`]).
//!
//! CUE is evaluated by the same evaluator the OS runs (`build/go/cue.wasm`,
//! from `go-wasip1/cmd/cue`) inside wasm-host's host build, so building an
//! image needs no Go once that module exists.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use caps::manifest::{self, Console, Devices, Guest, Manifest, ManifestError, Mount, Restart};
use indexmap::IndexMap;
use serde::Deserialize;

pub mod cue;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod volumes;

/// An error for the user: what is wrong and, where it can, which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<Error> for String {
    fn from(error: Error) -> String {
        error.0
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// Where things are in the repository.
#[derive(Clone, Debug)]
pub struct Repo {
    pub root: PathBuf,
}

impl Repo {
    /// The repository this tool was built from.
    pub fn this() -> Repo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("config/ sits in the repository")
            .to_path_buf();
        Repo { root }
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config")
    }

    /// `config/appliances/NAME.cue`.
    pub fn appliance_file(&self, name: &str) -> PathBuf {
        self.config().join("appliances").join(format!("{name}.cue"))
    }

    /// Every appliance name, sorted.
    pub fn appliances(&self) -> Result<Vec<String>, Error> {
        let dir = self.config().join("appliances");
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
        let mut names: Vec<String> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                Some(name.strip_suffix(".cue")?.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    pub fn native_binaries(&self) -> PathBuf {
        self.root.join("target/x86_64-unknown-none/release")
    }

    pub fn nucleus(&self) -> PathBuf {
        self.native_binaries().join("nucleus")
    }

    pub fn go_programs(&self) -> PathBuf {
        self.root.join("build/go")
    }

    /// `build/volumes/APPLIANCE/VOLUME.img`: the image `appliance build`
    /// keeps for a volume.
    pub fn volume_image(&self, appliance: &str, volume: &str) -> PathBuf {
        self.root
            .join("build/volumes")
            .join(appliance)
            .join(format!("{volume}.img"))
    }
}

/// An appliance as its CUE definition evaluates (after the schema's
/// defaults), in the schema's field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Appliance {
    pub name: String,
    pub cmdline: String,
    pub console: String,
    pub guests: IndexMap<String, GuestDefinition>,
    pub trees: IndexMap<String, String>,
    #[serde(default)]
    pub volumes: IndexMap<String, VolumeDefinition>,
    pub devices: DeviceDefinition,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceDefinition {
    pub network: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeDefinition {
    pub size_mib: u32,
    /// A directory relative to the repository, copied in at creation.
    pub seed: Option<String>,
}

/// A guest's mount: a volume's name (read-write), or the volume and
/// whether it is read-only.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MountDefinition {
    Volume(String),
    Options(MountOptions),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountOptions {
    pub volume: String,
    pub read_only: bool,
}

impl MountDefinition {
    pub fn volume(&self) -> &str {
        match self {
            MountDefinition::Volume(volume) => volume,
            MountDefinition::Options(options) => &options.volume,
        }
    }

    pub fn read_only(&self) -> bool {
        matches!(self, MountDefinition::Options(options) if options.read_only)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuestDefinition {
    pub name: String,
    pub kind: String,
    pub args: Vec<String>,
    pub grants: Vec<String>,
    pub serves: Vec<String>,
    pub connects: Vec<String>,
    pub listen: Vec<u16>,
    pub files: Option<String>,
    pub heap_mib: Option<u32>,
    pub stack_kib: Option<u32>,
    pub cpu_ms: Option<u64>,
    /// The CPUs it may run on (empty: any).
    #[serde(default)]
    pub cpus: Vec<u8>,
    pub restart: String,
    pub max_restarts: Option<u32>,
    /// Native guests.
    pub binary: Option<String>,
    /// Go guests.
    pub program: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// By absolute path, in the order written.
    #[serde(default)]
    pub mounts: IndexMap<String, MountDefinition>,
    pub memory_mib: Option<u32>,
    pub fuel: Option<u64>,
}

/// What goes into a boot module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    File(PathBuf),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub contents: Contents,
}

/// Everything one image holds besides Limine and the nucleus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    /// The nucleus command line.
    pub cmdline: String,
    /// Boot modules in order; the manifest is one of them.
    pub modules: Vec<Module>,
}

/// The native guest that runs Go (wasip1) programs.
pub const WASM_GUEST: &str = "wasm";
/// SOURCE_DATE_EPOCH of every image: fixed, so images are reproducible.
pub const SOURCE_DATE_EPOCH: u64 = 1;

impl Image {
    /// Adds a module unless one of that name is there (a binary two guests
    /// share); two different contents under one name is an error.
    pub fn add(&mut self, name: &str, contents: Contents) -> Result<(), Error> {
        match self.modules.iter().find(|m| m.name == name) {
            Some(existing) if existing.contents == contents => Ok(()),
            Some(_) => fail(format!(
                "two different boot modules would be named '{name}'"
            )),
            None => {
                self.modules.push(Module {
                    name: name.into(),
                    contents,
                });
                Ok(())
            }
        }
    }

    /// Adds the encoded manifest, checked first against the modules as the
    /// nucleus will check it.
    pub fn add_manifest(&mut self, manifest: &Manifest) -> Result<(), Error> {
        let bytes = self
            .checked_manifest(manifest)
            .map_err(|e| Error(e.to_string()))?;
        self.add(manifest::MODULE_NAME, Contents::Bytes(bytes))
    }

    /// The encoded manifest, if it passes the nucleus's checks against
    /// these modules.
    pub fn checked_manifest(&self, manifest: &Manifest) -> Result<Vec<u8>, ManifestError> {
        let bytes = manifest::encode(manifest);
        let mut names: Vec<&str> = self.modules.iter().map(|m| m.name.as_str()).collect();
        names.push(manifest::MODULE_NAME);
        manifest::decode(&bytes, &names)?;
        Ok(bytes)
    }

    /// Writes the hybrid ISO `iso` (and, with `disk`, a raw disk image) with
    /// `scripts/build-iso`. Byte modules are staged under `build/staging`.
    pub fn write(
        &self,
        repo: &Repo,
        nucleus: &Path,
        iso: &Path,
        disk: Option<&Path>,
    ) -> Result<(), Error> {
        if !nucleus.is_file() {
            return fail(format!(
                "no nucleus at {} (build it with `make nucleus`)",
                nucleus.display()
            ));
        }
        let staging = repo.root.join("build/staging").join(format!(
            "{}-{}",
            iso.file_stem().and_then(|s| s.to_str()).unwrap_or("image"),
            std::process::id()
        ));
        std::fs::create_dir_all(&staging)
            .map_err(|e| Error(format!("{}: {e}", staging.display())))?;
        let mut command = Command::new(repo.root.join("scripts/build-iso"));
        command.env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH.to_string());
        if let Some(disk) = disk {
            command.arg("--disk").arg(disk);
        }
        command.arg(nucleus).arg(iso).arg(&self.cmdline);
        for module in &self.modules {
            let path = match &module.contents {
                Contents::File(path) => path.clone(),
                Contents::Bytes(bytes) => {
                    let path = staging.join(&module.name);
                    std::fs::write(&path, bytes)
                        .map_err(|e| Error(format!("{}: {e}", path.display())))?;
                    path
                }
            };
            command.arg(format!("{}={}", module.name, path.display()));
        }
        let status = command.status();
        let _ = std::fs::remove_dir_all(&staging);
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => fail(format!("scripts/build-iso failed ({status})")),
            Err(e) => fail(format!("scripts/build-iso: {e}")),
        }
    }
}

/// What planning asks of the files an appliance names: the host's
/// ([`HostFiles`]), or stand-ins where no file may be touched (fuzzing).
pub trait Files {
    fn is_dir(&self, path: &Path) -> bool;
    fn is_file(&self, path: &Path) -> bool;
    /// A tree's boot module: a ustar archive of `dir`.
    fn tree_archive(&self, dir: &Path) -> Result<Vec<u8>, Error>;
}

/// The host's file system.
pub struct HostFiles;

impl Files for HostFiles {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn tree_archive(&self, dir: &Path) -> Result<Vec<u8>, Error> {
        tree_archive(dir)
    }
}

/// A tree's boot module: a reproducible ustar archive of `dir`.
pub fn tree_archive(dir: &Path) -> Result<Vec<u8>, Error> {
    wasm_host::archive_from_dir(dir, Some(SOURCE_DATE_EPOCH))
        .map_err(|e| Error(format!("{}: {e}", dir.display())))
}

/// Appliance `name` evaluated, checked and planned: what its image holds.
pub fn plan_appliance(repo: &Repo, name: &str) -> Result<Image, Error> {
    let json = cue::appliance_json(repo, name)?;
    Appliance::from_json(&json)?.plan(repo)
}

impl Appliance {
    /// Parses what `cue export` printed for an appliance.
    pub fn from_json(json: &str) -> Result<Appliance, Error> {
        serde_json::from_str(json).map_err(|e| {
            Error(format!(
                "the evaluated appliance does not fit the tool's model ({e}); is config/schema.cue in step with config/src/lib.rs?"
            ))
        })
    }

    /// The manifest and the modules it names. Files must exist: a missing
    /// one names the field and how to build it.
    pub fn plan(&self, repo: &Repo) -> Result<Image, Error> {
        self.plan_with(repo, &HostFiles)
    }

    /// [`Appliance::plan`] with the files `files` says there are.
    pub fn plan_with(&self, repo: &Repo, files: &dyn Files) -> Result<Image, Error> {
        let mut image = Image {
            cmdline: self.cmdline.clone(),
            modules: Vec::new(),
        };
        for (name, dir) in &self.trees {
            let path = repo.root.join(dir);
            if !files.is_dir(&path) {
                return fail(format!(
                    "trees.{name}: {} is not a directory",
                    path.display()
                ));
            }
            image.add(name, Contents::Bytes(files.tree_archive(&path)?))?;
        }
        // Sizes are checked with the manifest.
        for name in self.volumes.keys() {
            if let Some(seed) = self.seed(repo, name)
                && !files.is_dir(&seed)
            {
                return fail(format!(
                    "volumes.{name}.seed: {} is not a directory",
                    seed.display()
                ));
            }
        }
        let mut guests = Vec::new();
        for (key, definition) in &self.guests {
            guests.push(self.plan_guest(repo, files, key, definition, &mut image)?);
        }
        let manifest = Manifest {
            name: self.name.clone(),
            console: match self.console.as_str() {
                "serial" => Console::Serial,
                "framebuffer" => Console::Framebuffer,
                _ => Console::Both,
            },
            guests,
            devices: Devices {
                network: self.devices.network,
            },
            volumes: self
                .volumes
                .iter()
                .map(|(name, volume)| manifest::Volume {
                    name: name.clone(),
                    size_mib: volume.size_mib,
                })
                .collect(),
        };
        let bytes = image
            .checked_manifest(&manifest)
            .map_err(|e| Error(format!("{}: {}", self.field_name(&e.field), e.problem)))?;
        image.add(manifest::MODULE_NAME, Contents::Bytes(bytes))?;
        Ok(image)
    }

    /// Volume `name`'s seed directory, if it has one.
    pub fn seed(&self, repo: &Repo, name: &str) -> Option<PathBuf> {
        let seed = self.volumes.get(name)?.seed.as_ref()?;
        Some(repo.root.join(seed))
    }

    /// The appliance's name for a manifest field: `guests[1].mounts[0].path`
    /// is `guests.web.mounts."/data"`, `volumes[0].sizeMib` is
    /// `volumes.data.sizeMib`.
    pub fn field_name(&self, field: &str) -> String {
        /// `[N]rest` -> (N, rest).
        fn index(text: &str) -> Option<(usize, &str)> {
            let (number, rest) = text.strip_prefix('[')?.split_once(']')?;
            Some((number.parse().ok()?, rest))
        }
        if let Some((i, rest)) = field.strip_prefix("volumes").and_then(index)
            && let Some((name, _)) = self.volumes.get_index(i)
        {
            return format!("volumes.{name}{rest}");
        }
        if let Some((i, rest)) = field.strip_prefix("guests").and_then(index)
            && let Some((key, guest)) = self.guests.get_index(i)
        {
            if let Some((j, detail)) = rest.strip_prefix(".mounts").and_then(index)
                && let Some((path, _)) = guest.mounts.get_index(j)
            {
                // The path is the key itself.
                let detail = if detail == ".path" { "" } else { detail };
                return format!("guests.{key}.mounts.\"{path}\"{detail}");
            }
            return format!("guests.{key}{rest}");
        }
        field.to_string()
    }

    /// Makes sure every volume has its image under `build/volumes/NAME/`,
    /// creating (and seeding) the missing ones, or all of them with
    /// `reset`; says for each what it did.
    pub fn prepare_volumes(
        &self,
        repo: &Repo,
        reset: bool,
    ) -> Result<Vec<(String, PathBuf, volumes::Prepared)>, Error> {
        let mut prepared = Vec::new();
        for (name, volume) in &self.volumes {
            let path = repo.volume_image(&self.name, name);
            let seed = self.seed(repo, name);
            let done = volumes::prepare_image(&path, volume.size_mib, seed.as_deref(), reset)
                .map_err(|e| Error(format!("volumes.{name}: {e}")))?;
            prepared.push((name.clone(), path, done));
        }
        Ok(prepared)
    }

    fn plan_guest(
        &self,
        repo: &Repo,
        files: &dyn Files,
        key: &str,
        definition: &GuestDefinition,
        image: &mut Image,
    ) -> Result<Guest, Error> {
        let at = format!("guests.{key}");
        let mut grants = Vec::new();
        for grant in &definition.grants {
            match manifest::grant_named(grant) {
                Some(interface) if !grants.contains(&interface) => grants.push(interface),
                Some(_) => return fail(format!("{at}.grants: {grant} is listed twice")),
                None => return fail(format!("{at}.grants: unknown capability {grant}")),
            }
        }
        manifest::sort_grants(&mut grants);
        for (list, names) in [
            ("serves", &definition.serves),
            ("connects", &definition.connects),
        ] {
            for (i, name) in names.iter().enumerate() {
                let field = format!("{at}.{list}[{i}]");
                if let Err(error) = manifest::check_endpoint_name(&field, name) {
                    return fail(error.to_string());
                }
                if names[..i].contains(name) {
                    return fail(format!("{field}: '{name}' is listed twice"));
                }
            }
        }
        if let Some(tree) = &definition.files
            && !self.trees.contains_key(tree)
        {
            return fail(format!("{at}.files: no tree named '{tree}' in trees"));
        }
        let mut mounts = Vec::new();
        for (path, mount) in &definition.mounts {
            let volume = mount.volume();
            if !self.volumes.contains_key(volume) {
                let known: Vec<&str> = self.volumes.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "the appliance has none".to_string()
                } else {
                    format!("volumes: {}", known.join(", "))
                };
                return fail(format!(
                    "{at}.mounts.\"{path}\": no volume named '{volume}' in volumes ({known})"
                ));
            }
            mounts.push(Mount {
                path: path.clone(),
                volume: volume.to_string(),
                read_only: mount.read_only(),
            });
        }
        let mut data: Vec<String> = Vec::new();
        let (module, args) = match definition.kind.as_str() {
            "go" => {
                let program = definition.program.as_deref().unwrap_or_default();
                let file = repo.go_programs().join(format!("{program}.wasm"));
                if !files.is_file(&file) {
                    return fail(format!(
                        "{at}.program: {} is missing (build the Go programs with `make go`, which needs Go 1.25 or newer)",
                        file.display()
                    ));
                }
                let module = format!("{program}.wasm");
                image.add(&module, Contents::File(file))?;
                data.push(module.clone());
                let mut args: Vec<String> = definition
                    .env
                    .iter()
                    .map(|(k, v)| format!("--env={k}={v}"))
                    .collect();
                if let Some(tree) = &definition.files {
                    args.push(format!("--dir={tree}"));
                }
                // Each port a preopened listener: fd 3, 4, ... in order.
                args.extend(
                    definition
                        .listen
                        .iter()
                        .map(|port| format!("--listen={port}")),
                );
                if let Some(fuel) = definition.fuel {
                    args.push(format!("--fuel={fuel}"));
                }
                if let Some(mib) = definition.memory_mib {
                    // Linear memory lives in the guest's heap.
                    if let Some(heap) = definition.heap_mib.filter(|&heap| mib >= heap) {
                        return fail(format!(
                            "{at}.memoryMib: {mib} MiB of linear memory cannot fit in the guest's heap of {heap} MiB (heapMib), which also holds the interpreter: lower memoryMib or raise heapMib"
                        ));
                    }
                    args.push(format!("--max-memory-mb={mib}"));
                }
                args.push(module);
                args.extend(definition.args.iter().cloned());
                (WASM_GUEST.to_string(), args)
            }
            _ => (
                definition.binary.clone().unwrap_or_default(),
                definition.args.clone(),
            ),
        };
        let binary = repo.native_binaries().join(&module);
        if !files.is_file(&binary) {
            return fail(format!(
                "{at}: the guest binary {} is missing (build it with `make nucleus`)",
                binary.display()
            ));
        }
        image.add(&module, Contents::File(binary))?;
        if let Some(tree) = &definition.files {
            data.push(tree.clone());
        }
        Ok(Guest {
            name: definition.name.clone(),
            module,
            args,
            grants,
            serves: definition.serves.clone(),
            connects: definition.connects.clone(),
            listen: definition.listen.clone(),
            mounts,
            data,
            heap_mib: definition.heap_mib,
            stack_kib: definition.stack_kib,
            cpu_ms: definition.cpu_ms,
            cpus: definition.cpus.clone(),
            restart: match definition.restart.as_str() {
                "on-failure" => Restart::OnFailure {
                    max: definition.max_restarts.unwrap_or(3),
                },
                _ => Restart::Never,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_fields_are_named_as_the_appliance_names_them() {
        let appliance = Appliance::from_json(
            r#"{"name": "store", "cmdline": "", "console": "both", "trees": {},
                "devices": {"network": false},
                "volumes": {"logs": {"sizeMib": 1}, "data": {"sizeMib": 64}},
                "guests": {"web": {"name": "web", "kind": "native", "binary": "hello",
                    "args": [], "grants": [], "serves": [], "connects": [], "listen": [],
                    "restart": "never",
                    "mounts": {"/d": "data", "/l": {"volume": "logs", "readOnly": true}}}}}"#,
        )
        .unwrap();
        for (field, named) in [
            ("volumes[1].sizeMib", "volumes.data.sizeMib"),
            ("guests[0].mounts[1].path", "guests.web.mounts.\"/l\""),
            (
                "guests[0].mounts[0].volume",
                "guests.web.mounts.\"/d\".volume",
            ),
            ("guests[0].heapMib", "guests.web.heapMib"),
            ("guests[3].heapMib", "guests[3].heapMib"),
            ("guests[0].mounts[5].path", "guests.web.mounts[5].path"),
            ("name", "name"),
        ] {
            assert_eq!(appliance.field_name(field), named, "{field}");
        }
        let mounts = &appliance.guests["web"].mounts;
        assert!(!mounts["/d"].read_only() && mounts["/l"].read_only());
        assert_eq!(mounts["/l"].volume(), "logs");
    }
}
