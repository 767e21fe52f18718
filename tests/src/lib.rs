//! The QEMU harness: builds the nucleus once, builds one ISO per kernel
//! command line, boots it headless under BIOS or UEFI (with volume images
//! as its disks, if asked), captures the serial console, and kills a QEMU
//! that outlives its timeout.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub use nucleus_core::qemu::ExitCode;

/// Generates one test per firmware (modules `bios` and `uefi`) for each
/// `name => check;`, where `check` takes a [`Firmware`].
#[macro_export]
macro_rules! on_bios_and_uefi {
    ($($name:ident => $check:expr;)*) => {
        mod bios {
            use super::*;
            $( #[test] fn $name() { ($check)($crate::Firmware::Bios) } )*
        }
        mod uefi {
            use super::*;
            $( #[test] fn $name() { ($check)($crate::Firmware::Uefi) } )*
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// QEMU exited by itself with this status.
    Exited(i32),
    /// The harness stopped QEMU because the awaited marker appeared.
    StoppedAtMarker,
    /// QEMU was still running at the timeout and was killed.
    KilledAfterTimeout,
}

pub struct Run {
    pub firmware: Firmware,
    pub cmdline: String,
    /// The serial console.
    pub output: String,
    /// What run-qemu said on stderr (firmware, accelerator) and QEMU's errors.
    pub stderr: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
    /// A screendump (PPM) taken when the marker appeared, if one was asked for.
    pub screen: Option<Screen>,
}

/// Lines of context a failure report carries.
const REPORT_LINES: usize = 50;

impl Run {
    /// The last 50 lines of serial output, with how the run ended.
    pub fn report(&self) -> String {
        let lines: Vec<&str> = self.output.lines().collect();
        let tail = &lines[lines.len().saturating_sub(REPORT_LINES)..];
        format!(
            "{:?} boot with cmdline '{}' ended {:?} after {:.1}s\nqemu stderr:\n{}\nlast {} lines of serial output:\n{}",
            self.firmware,
            self.cmdline,
            self.outcome,
            self.elapsed.as_secs_f64(),
            self.stderr.trim_end(),
            tail.len(),
            tail.join("\n")
        )
    }

    #[track_caller]
    pub fn assert_exit(&self, code: ExitCode) {
        assert_eq!(
            self.outcome,
            Outcome::Exited(code.qemu_status()),
            "expected exit {code:?}\n{}",
            self.report()
        );
    }

    /// Every line guest `name` printed, in order: its index in the output,
    /// and what the guest wrote, without the nucleus's `[time] name: `.
    pub fn printed_by<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = (usize, &'a str)> + use<'a, 'n> {
        self.output
            .lines()
            .enumerate()
            .filter_map(move |(index, line)| Some((index, printed_on(line, name)?)))
    }

    /// The index of the first line on which guest `name` said `text`: what
    /// it wrote starts with `text`, or is all of it when `text` ends with
    /// a newline.
    pub fn guest_line(&self, name: &str, text: &str) -> Option<usize> {
        self.printed_by(name)
            .find(|(_, said)| says(said, text))
            .map(|(index, _)| index)
    }

    /// What guest `name` wrote on the first line on which it said `text`
    /// (as [`Run::guest_line`] matches it); fails the test if it never did.
    /// No other guest, and not the nucleus, can say it for `name`.
    #[track_caller]
    pub fn assert_guest_said(&self, name: &str, text: &str) -> &str {
        self.printed_by(name)
            .find(|(_, said)| says(said, text))
            .map(|(_, said)| said)
            .unwrap_or_else(|| {
                panic!(
                    "guest {name} never said '{}'\n{}",
                    text.escape_debug(),
                    self.report()
                )
            })
    }

    /// The index of the first line the nucleus printed (after the
    /// timestamp's `] `, or a line without one) that starts with `speaker`
    /// and ends with `text`. A guest's lines start with its own name and a
    /// colon, so none can pass for these while `speaker` starts with a
    /// name no guest of the run has ("guest ", "guests: ", "storage: ").
    pub fn nucleus_line(&self, speaker: &str, text: &str) -> Option<usize> {
        self.output.lines().position(|line| {
            let said = nucleus_text(line);
            said.starts_with(speaker) && said.ends_with(text)
        })
    }

    /// The first line on which the nucleus said `text`, without its
    /// timestamp: the line starts with `text`, or is all of it when `text`
    /// ends with a newline. Fails the test if there is none. `text` starts
    /// with the nucleus's speaker ("guest 1 (victim): ", "smp: "), one no
    /// guest of the run is named after, or is a line the nucleus prints
    /// without a timestamp (a register dump's "  rip ..."), which no guest
    /// line can be.
    #[track_caller]
    pub fn assert_nucleus_said(&self, text: &str) -> &str {
        self.output
            .lines()
            .map(nucleus_text)
            .find(|said| says(said, text))
            .unwrap_or_else(|| {
                panic!(
                    "the nucleus never said '{}'\n{}",
                    text.escape_debug(),
                    self.report()
                )
            })
    }

    /// The nucleus said guest `name` (any incarnation: "guest N (name)")
    /// exited with `code`.
    #[track_caller]
    pub fn assert_exited(&self, name: &str, code: i32) {
        let text = format!("({name}): exited; exit code {code}");
        assert!(
            self.nucleus_line("guest ", &text).is_some(),
            "the nucleus never said 'guest N {text}'\n{}",
            self.report()
        );
    }
}

/// What the speaker of log line `line` said after the nucleus's timestamp
/// (`[    1.234567] `), or `None` for a line without one. The timestamp holds
/// no `] `, so the first one ends it; a guest's text has its control
/// characters escaped, so every line it prints is a log line of its own.
fn logged(line: &str) -> Option<&str> {
    line.strip_prefix('[')?
        .split_once("] ")
        .map(|(_, said)| said)
}

/// What guest `name` printed on `line` (`[time] name: text`), if that line
/// is its.
fn printed_on<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    logged(line)?.strip_prefix(name)?.strip_prefix(": ")
}

/// `line` as the nucleus said it: without its timestamp, or all of it when
/// it has none (the registers of a fault report).
fn nucleus_text(line: &str) -> &str {
    logged(line).unwrap_or(line)
}

/// Whether `said` says `text`: starts with it, or, when `text` ends with a
/// newline, is exactly it (without the newline).
fn says(said: &str, text: &str) -> bool {
    match text.strip_suffix('\n') {
        Some(whole) => said == whole,
        None => said.starts_with(text),
    }
}

/// A screendump in QEMU's PPM (P6) format.
pub struct Screen {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Screen {
    fn parse(ppm: &[u8]) -> Option<Screen> {
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while ppm.get(at)?.is_ascii_whitespace() {
                at += 1;
            }
            let start = at;
            while !ppm.get(at)?.is_ascii_whitespace() {
                at += 1;
            }
            fields.push(std::str::from_utf8(&ppm[start..at]).ok()?.to_string());
        }
        if fields[0] != "P6" || fields[3] != "255" {
            return None;
        }
        let (width, height) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
        let rgb = ppm.get(at + 1..at + 1 + width * height * 3)?.to_vec();
        Some(Screen { width, height, rgb })
    }

    /// Pixels that are not black in rows `rows`.
    pub fn lit_pixels(&self, rows: std::ops::Range<usize>) -> usize {
        rows.filter(|&y| y < self.height)
            .map(|y| {
                self.rgb[y * self.width * 3..(y + 1) * self.width * 3]
                    .chunks(3)
                    .filter(|p| p.iter().any(|&c| c > 0x20))
                    .count()
            })
            .sum()
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Builds the nucleus once per test process, through the Makefile.
fn nucleus() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = repo_root();
            let status = Command::new("make")
                .args(["-s", "nucleus"])
                .current_dir(&root)
                .status()
                .expect("make runs");
            assert!(status.success(), "building the nucleus failed");
            root.join("target/x86_64-unknown-none/release/nucleus")
        })
        .clone()
}

/// The ISO for `cmdline` running `guests`, built once per test process.
/// A guest is a binary name from the guest crates, or NAME=BINARY to start
/// one binary under another name, optionally followed by `,OPTION`: the
/// manifest's fields as `cpu_ms=`, `cpus=0+1`, `heap_mb=`, `stack_kb=`, `data=MODULE`,
/// `arg=VALUE`, `restart=MAX` (on failure), `grants=console+timer` (default:
/// every grant), `serves=a+b` and `connects=a+b` (endpoint names; default
/// none), `mount=PATH:VOLUME` or `mount=PATH:VOLUME:ro` (a volume at
/// PATH, read-write or read-only). `data:NAME=FILE` adds a boot module
/// from a file in the repository (or an absolute path);
/// `data:manifest=FILE` replaces the manifest the harness writes.
/// `volume:NAME=MIB` adds a volume to the manifest (its disk is
/// [`BootRequest::volumes`]). The manifest is written unchecked, so tests
/// can hand the nucleus manifests it must refuse.
pub fn image(cmdline: &str, guests: &[&str]) -> PathBuf {
    static IMAGES: OnceLock<Mutex<HashMap<String, Arc<OnceLock<PathBuf>>>>> = OnceLock::new();
    let key = format!("{cmdline} {}", guests.join(" "));
    let slot = IMAGES
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(key.clone())
        .or_default()
        .clone();
    slot.get_or_init(|| {
        let kernel = nucleus();
        // A readable prefix and a hash of the whole key: file names have a length limit.
        let readable: String = key
            .chars()
            .take(48)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let iso = repo_root().join(format!("build/test-images/{readable}-{hash:016x}.iso"));
        let image =
            test_image(cmdline, guests).unwrap_or_else(|e| panic!("image for '{key}': {e}"));
        let repo = appliance::Repo { root: repo_root() };
        image
            .write(&repo, &kernel, &iso, None)
            .unwrap_or_else(|e| panic!("building the image for '{key}' failed: {e}"));
        iso
    })
    .clone()
}

/// The modules and manifest for [`image`]'s guest specs.
fn test_image(cmdline: &str, specs: &[&str]) -> Result<appliance::Image, String> {
    use appliance::Contents;
    use caps::manifest::{self, Guest, Manifest, Restart};
    let repo = appliance::Repo { root: repo_root() };
    let mut image = appliance::Image {
        cmdline: cmdline.into(),
        modules: Vec::new(),
    };
    let mut guests = Vec::new();
    let mut volumes = Vec::new();
    for spec in specs {
        if let Some(volume) = spec.strip_prefix("volume:") {
            let (name, mib) = volume.split_once('=').ok_or("volume:NAME=MIB")?;
            let size_mib = mib
                .parse()
                .map_err(|_| format!("{spec}: {mib} is not a number of MiB"))?;
            volumes.push(manifest::Volume {
                name: name.into(),
                size_mib,
            });
            continue;
        }
        if let Some(data) = spec.strip_prefix("data:") {
            let (name, file) = data.split_once('=').ok_or("data:NAME=FILE")?;
            image.add(name, Contents::File(repo_root().join(file)))?;
            continue;
        }
        let mut words = spec.split(',');
        let head = words.next().unwrap_or_default();
        let (name, binary) = head.split_once('=').unwrap_or((head, head));
        image.add(binary, Contents::File(repo.native_binaries().join(binary)))?;
        // Every grant but the network, which needs the network device:
        // a guest asks for it with `grants=...+network`.
        let mut guest = Guest {
            name: name.into(),
            module: binary.into(),
            grants: manifest::GRANTABLE
                .into_iter()
                .filter(|&g| g != caps::Interface::Network)
                .collect(),
            ..Guest::default()
        };
        for word in words {
            let (key, value) = word.split_once('=').ok_or(format!("option {word}"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{word}: not a number"))
            };
            match key {
                "cpu_ms" => guest.cpu_ms = Some(number()?),
                "cpus" => {
                    guest.cpus = value
                        .split('+')
                        .map(|c| c.parse().map_err(|_| format!("{word}: not a CPU index")))
                        .collect::<Result<_, _>>()?
                }
                "heap_mb" => guest.heap_mib = Some(number()? as u32),
                "stack_kb" => guest.stack_kib = Some(number()? as u32),
                "data" => guest.data.push(value.into()),
                "arg" => guest.args.push(value.into()),
                "restart" => {
                    guest.restart = Restart::OnFailure {
                        max: number()? as u32,
                    }
                }
                "serves" => guest.serves = value.split('+').map(String::from).collect(),
                "listen" => {
                    guest.listen = value
                        .split('+')
                        .map(|p| p.parse().map_err(|_| format!("{word}: not a port")))
                        .collect::<Result<_, _>>()?
                }
                "connects" => guest.connects = value.split('+').map(String::from).collect(),
                "mount" => {
                    let (path, rest) = value
                        .split_once(':')
                        .ok_or(format!("{word}: PATH:VOLUME"))?;
                    let (volume, read_only) = match rest.strip_suffix(":ro") {
                        Some(volume) => (volume, true),
                        None => (rest, false),
                    };
                    guest.mounts.push(manifest::Mount {
                        path: path.into(),
                        volume: volume.into(),
                        read_only,
                    });
                }
                "grants" => {
                    guest.grants = value
                        .split('+')
                        .filter(|g| !g.is_empty())
                        .map(|g| manifest::grant_named(g).ok_or(format!("no grant {g}")))
                        .collect::<Result<_, _>>()?
                }
                _ => return Err(format!("unknown option {word}")),
            }
        }
        guests.push(guest);
    }
    let has_manifest = image
        .modules
        .iter()
        .any(|m| m.name == manifest::MODULE_NAME);
    if !guests.is_empty() && !has_manifest {
        let network = guests
            .iter()
            .any(|g| g.grants.contains(&caps::Interface::Network));
        let manifest = Manifest {
            name: "test".into(),
            guests,
            devices: manifest::Devices { network },
            volumes,
            ..Manifest::default()
        };
        image.add(
            manifest::MODULE_NAME,
            Contents::Bytes(manifest::encode(&manifest)),
        )?;
    }
    Ok(image)
}

/// Builds the Go programs and standard-library test binaries for wasip1
/// once per test process (`scripts/build-go-wasm`, which needs Go), and
/// returns `build/go`.
pub fn go_wasm() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = repo_root();
            let output = Command::new(root.join("scripts/build-go-wasm"))
                .output()
                .expect("scripts/build-go-wasm runs");
            assert!(
                output.status.success(),
                "building the Go guests failed (the Go tests need Go 1.23+ on PATH):\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            root.join("build/go")
        })
        .clone()
}

/// A ustar archive of `dir` (relative to the repository, or absolute), for
/// a Go program's read-only tree; built once per path, as appliance images
/// build theirs (reproducible: sorted names, fixed times).
pub fn tree_archive(dir: &Path) -> PathBuf {
    static ARCHIVES: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let mut archives = ARCHIVES.get_or_init(Default::default).lock().unwrap();
    archives
        .entry(dir.to_path_buf())
        .or_insert_with(|| {
            let source = repo_root().join(dir);
            let name: String = dir
                .to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let out = repo_root().join(format!("build/test-images/{name}.tar"));
            std::fs::create_dir_all(out.parent().unwrap()).unwrap();
            let archive = appliance::tree_archive(&source).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&out, archive).unwrap();
            out
        })
        .clone()
}

/// How long a boot may take: UEFI under TCG is the slow case (~10 s here).
pub fn default_timeout() -> Duration {
    let secs = std::env::var("NUCLEUS_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

pub struct BootRequest<'a> {
    pub firmware: Firmware,
    pub cmdline: &'a str,
    /// Guests started as Limine modules (see [`image`]).
    pub guests: &'a [&'a str],
    /// Force an accelerator (`tcg` for tests that need PKU, which TCG's
    /// `-cpu max` has and many KVM hosts lack); `None` lets scripts/accel choose.
    pub accel: Option<&'a str>,
    /// Extra QEMU arguments (later ones override run-qemu's, e.g. `-cpu`).
    pub qemu_args: &'a [&'a str],
    pub timeout: Duration,
    /// Stop QEMU as soon as this appears on the console (for runs that never exit).
    pub stop_at: Option<&'a str>,
    /// Take a screendump just before stopping at the marker.
    pub screendump: bool,
    /// QEMU monitor (HMP) commands, each sent once its marker has appeared
    /// on the console (`("counter: count 3", "nmi")` injects an NMI).
    pub monitor_at: &'a [(&'a str, &'a str)],
    /// Disks: (volume name, image file), each a virtio-blk disk whose
    /// serial is the name (`scripts/run-qemu --volume`); see [`VolumeImage`].
    pub volumes: &'a [(&'a str, &'a Path)],
}

pub fn boot(firmware: Firmware, cmdline: &str) -> Run {
    boot_with_guests(firmware, cmdline, &[])
}

pub fn boot_with_guests(firmware: Firmware, cmdline: &str, guests: &[&str]) -> Run {
    run(BootRequest {
        firmware,
        cmdline,
        guests,
        ..BootRequest::new(firmware)
    })
}

impl BootRequest<'_> {
    /// Boots with no guests, no command line, the default timeout.
    pub fn new(firmware: Firmware) -> BootRequest<'static> {
        BootRequest {
            firmware,
            cmdline: "",
            guests: &[],
            accel: None,
            qemu_args: &[],
            timeout: default_timeout(),
            stop_at: None,
            screendump: false,
            monitor_at: &[],
            volumes: &[],
        }
    }
}

/// Builds the image for `request.cmdline` and `request.guests`, and boots it.
pub fn run(request: BootRequest) -> Run {
    run_image(&image(request.cmdline, request.guests), request)
}

/// The ISO of appliance `name` (config/appliances/NAME.cue) with `extra`
/// appended to its command line, built once per test process with the
/// appliance tool's library (so also needs the Go programs).
pub fn appliance_image(name: &str, extra: &str) -> PathBuf {
    static IMAGES: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let kernel = nucleus();
    go_wasm();
    let mut images = IMAGES.get_or_init(Default::default).lock().unwrap();
    images
        .entry(format!("{name} {extra}"))
        .or_insert_with(|| {
            let repo = appliance::Repo { root: repo_root() };
            let mut image = appliance::plan_appliance(&repo, name)
                .unwrap_or_else(|e| panic!("appliance {name}: {e}"));
            image.cmdline = format!("{} {extra}", image.cmdline).trim().to_string();
            let iso = repo_root().join(format!(
                "build/test-images/appliance-{name}-{}.iso",
                extra.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
            ));
            image
                .write(&repo, &kernel, &iso, None)
                .unwrap_or_else(|e| panic!("appliance {name}: {e}"));
            iso
        })
        .clone()
}

/// A volume image of its own under the temporary directory, for a disk a
/// boot gets ([`BootRequest::volumes`]); removed when dropped.
pub struct VolumeImage {
    name: String,
    path: PathBuf,
}

impl VolumeImage {
    /// A freshly formatted image for volume `name` of `size_mib` MiB
    /// (one of `fsd::SIZES_MIB`), holding a copy of the files and
    /// directories of `seed` (relative to the repository, or absolute).
    pub fn new(name: &str, size_mib: u32, seed: Option<&Path>) -> VolumeImage {
        let dir = std::env::temp_dir().join(format!(
            "nucleus-volume-{}-{}",
            std::process::id(),
            unique()
        ));
        let path = dir.join(format!("{name}.img"));
        let seed = seed.map(|seed| repo_root().join(seed));
        appliance::volumes::create_image(&path, size_mib, seed.as_deref())
            .unwrap_or_else(|e| panic!("volume image {name}: {e}"));
        VolumeImage {
            name: name.into(),
            path,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pair [`BootRequest::volumes`] takes.
    pub fn attach(&self) -> (&str, &Path) {
        (&self.name, &self.path)
    }

    /// The volume, mounted read-only, to look at what a boot left in it.
    /// A mounted volume lives as long as the test process: mount each
    /// image once, after QEMU is done with it.
    pub fn mount(&self) -> fsd::Volume {
        appliance::volumes::mount_image(&self.path, false)
            .unwrap_or_else(|e| panic!("volume {}: {e}", self.name))
    }

    /// Every file in the volume by its path ("dir/file"), with its
    /// contents (mounts the volume: see [`VolumeImage::mount`]).
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        fn walk(volume: &fsd::Volume, dir: &str, files: &mut BTreeMap<String, Vec<u8>>) {
            let entries = appliance::volumes::list(volume, dir)
                .unwrap_or_else(|e| panic!("listing /{dir}: {e}"));
            for entry in entries {
                let path = fsd::resolve(dir, &entry.name).expect("a listed name resolves");
                match entry.stat.kind {
                    fsd::Kind::Directory => walk(volume, &path, files),
                    fsd::Kind::File => {
                        let mut contents = Vec::new();
                        appliance::volumes::read_file(volume, &path, &mut contents)
                            .unwrap_or_else(|e| panic!("reading /{path}: {e}"));
                        files.insert(path, contents);
                    }
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(&self.mount(), "", &mut files);
        files
    }
}

impl Drop for VolumeImage {
    fn drop(&mut self) {
        // The image's directory is its own.
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh image for each volume of appliance `name`, at its size and
/// seeded as its definition says (what `appliance build` creates once
/// and then keeps), in the appliance's order.
pub fn appliance_volumes(name: &str) -> Vec<VolumeImage> {
    go_wasm();
    let repo = appliance::Repo { root: repo_root() };
    let appliance = appliance::cue::appliance_json(&repo, name)
        .and_then(|json| appliance::Appliance::from_json(&json))
        .unwrap_or_else(|e| panic!("appliance {name}: {e}"));
    appliance
        .volumes
        .iter()
        .map(|(volume, definition)| {
            VolumeImage::new(
                volume,
                definition.size_mib,
                appliance.seed(&repo, volume).as_deref(),
            )
        })
        .collect()
}

/// A boot's serial console while it runs, for a host client that talks to
/// the appliance meanwhile.
#[derive(Clone)]
pub struct Console {
    output: Arc<Mutex<String>>,
}

impl Console {
    /// Waits until a line holding `marker` appears (at most `timeout`);
    /// whether it did.
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.output.lock().unwrap().contains(marker) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// What the console has printed so far.
    pub fn text(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

/// A TCP port on 127.0.0.1 that is free now (for a forward into QEMU).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// Boots `iso` as `request` says with each of `guest_ports` forwarded from
/// a free port on 127.0.0.1, and runs `client` (given the console and the
/// host ports, in order) while QEMU runs; QEMU then runs to its end (or
/// the timeout). A client that panics fails the test with the boot's
/// report.
pub fn run_with_client<R: Send + 'static>(
    iso: &Path,
    request: BootRequest,
    guest_ports: &[u16],
    client: impl FnOnce(&Console, &[u16]) -> R + Send + 'static,
) -> (Run, R) {
    let host_ports: Vec<u16> = guest_ports.iter().map(|_| free_port()).collect();
    let forwards: Vec<String> = host_ports
        .iter()
        .zip(guest_ports)
        .map(|(host, guest)| format!("{host}:{guest}"))
        .collect();
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let run = run_qemu(
        iso,
        request,
        &forwards,
        Some(Box::new(move |console: Console| {
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                client(&console, &host_ports)
            }));
            *slot.lock().unwrap() = Some(answer);
        })),
    );
    let answer = result.lock().unwrap().take();
    match answer {
        Some(Ok(answer)) => (run, answer),
        Some(Err(panic)) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("the host client failed: {why}\n{}", run.report())
        }
        None => panic!("the host client did not finish\n{}", run.report()),
    }
}

/// Boots `iso` as `request` says (its cmdline and guests are the image's).
pub fn run_image(iso: &Path, request: BootRequest) -> Run {
    run_qemu(iso, request, &[], None)
}

type Client = Box<dyn FnOnce(Console) + Send>;

/// The `scripts/run-qemu` command that boots `iso` as `request` says.
fn qemu_command(iso: &Path, request: &BootRequest, forwards: &[String]) -> Command {
    let mut command = Command::new(repo_root().join("scripts/run-qemu"));
    if request.firmware == Firmware::Uefi {
        command.arg("--uefi");
    }
    for forward in forwards {
        command.arg("--forward").arg(forward);
    }
    for (volume, image) in request.volumes {
        command
            .arg("--volume")
            .arg(format!("{volume}={}", image.display()));
    }
    command.arg(iso).args(request.qemu_args);
    if let Some(accel) = request.accel {
        command.env("ACCEL", accel);
    }
    command
}

fn run_qemu(iso: &Path, request: BootRequest, forwards: &[String], client: Option<Client>) -> Run {
    let mut command = qemu_command(iso, &request, forwards);
    let monitor = (request.screendump || !request.monitor_at.is_empty()).then(|| {
        let path = std::env::temp_dir().join(format!(
            "nucleus-monitor-{}-{}.sock",
            std::process::id(),
            unique()
        ));
        command
            .arg("-monitor")
            .arg(format!("unix:{},server,nowait", path.display()));
        path
    });
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run-qemu starts");

    let output = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let output = output.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let mut out = output.lock().unwrap();
                out.push_str(&String::from_utf8_lossy(&line).replace('\r', ""));
                out.push('\n');
            }
        })
    };
    let client = client.map(|client| {
        let console = Console {
            output: output.clone(),
        };
        thread::spawn(move || client(console))
    });
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });

    let mut screen = None;
    let mut monitor_sent = 0;
    let outcome = loop {
        if let Some(status) = child.try_wait().expect("waiting on QEMU") {
            break Outcome::Exited(status.code().unwrap_or(-1));
        }
        if let (Some(socket), Some((marker, command))) =
            (&monitor, request.monitor_at.get(monitor_sent))
            && output.lock().unwrap().contains(marker)
        {
            monitor_command(socket, command);
            monitor_sent += 1;
        }
        if request
            .stop_at
            .is_some_and(|marker| output.lock().unwrap().contains(marker))
        {
            if let Some(socket) = &monitor {
                screen = screendump(socket);
            }
            let _ = child.kill();
            let _ = child.wait();
            break Outcome::StoppedAtMarker;
        }
        if started.elapsed() > request.timeout {
            let _ = child.kill();
            let _ = child.wait();
            break Outcome::KilledAfterTimeout;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    if let Some(client) = client {
        // It finishes: every wait it makes has a timeout.
        let _ = client.join();
    }
    let stderr = stderr_reader.join().unwrap_or_default();
    if let Some(socket) = monitor {
        let _ = std::fs::remove_file(socket);
    }
    let output = output.lock().unwrap().clone();
    Run {
        firmware: request.firmware,
        cmdline: request.cmdline.to_string(),
        output,
        stderr,
        outcome,
        elapsed: started.elapsed(),
        screen,
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sends one HMP command to QEMU's monitor and reads its answers until
/// `done` says so (or 10 s pass); `None` if the monitor cannot be reached.
fn monitor_exchange(socket: &Path, command: &str, done: impl Fn(&str) -> bool) -> Option<()> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    writeln!(stream, "{command}").ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 4096];
    let mut seen = String::new();
    while Instant::now() < deadline && !done(&seen) {
        if let Ok(n) = stream.read(&mut buffer) {
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    }
    Some(())
}

/// The monitor echoes the command and prints a prompt when done: the
/// banner's prompt, then the one after the command.
fn prompted_twice(seen: &str) -> bool {
    seen.matches("(qemu)").count() >= 2
}

/// Sends one HMP command to QEMU's monitor and waits for its prompt after
/// it (so the command has run). Panics if the monitor cannot be reached.
fn monitor_command(socket: &Path, command: &str) {
    monitor_exchange(socket, command, prompted_twice).expect("QEMU's monitor socket");
}

/// Asks QEMU's monitor for a screendump and reads it back.
fn screendump(socket: &Path) -> Option<Screen> {
    let file = socket.with_extension("ppm");
    monitor_exchange(socket, &format!("screendump {}", file.display()), |seen| {
        prompted_twice(seen) && file.exists()
    })?;
    let ppm = std::fs::read(&file).ok()?;
    let _ = std::fs::remove_file(&file);
    Screen::parse(&ppm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose serial output is `output`.
    fn run_printing(output: &str) -> Run {
        Run {
            firmware: Firmware::Bios,
            cmdline: String::new(),
            output: output.into(),
            stderr: String::new(),
            outcome: Outcome::Exited(0),
            elapsed: Duration::ZERO,
            screen: None,
        }
    }

    /// A forger's text dressed as the nucleus's and a victim's lines, and
    /// the real ones.
    const FORGED: &str = "\
[    0.100000] guest 2 (forger): loaded, 12 KiB image at 0x1000, protection key 2
[    0.200000] forger: \\x0d[    0.000001] guest 1 (victim): exited; exit code 0
[    0.300000] forger: x] victim: secret intact
[    0.400000] forger: victim: secret intact
[    0.500000] victim: secret CHANGED
  rip 0x0000000000001000  cs 0x2b  rflags 0x202
[    0.600000] guest 1 (victim): exited; exit code 1
";

    #[test]
    fn another_guests_text_never_passes_for_a_speaker() {
        let run = run_printing(FORGED);
        assert_eq!(run.guest_line("victim", "secret intact"), None);
        assert_eq!(run.guest_line("victim", "secret"), Some(4));
        assert_eq!(run.guest_line("forger", "victim: secret intact\n"), Some(3));
        assert_eq!(run.nucleus_line("guest 1 (victim): ", "exit code 0"), None);
        assert_eq!(
            run.nucleus_line("guest ", "(victim): exited; exit code 1"),
            Some(6)
        );
        assert_eq!(run.nucleus_line("  rip 0x", ""), Some(5));
        assert_eq!(run.assert_guest_said("victim", "secret"), "secret CHANGED");
        assert!(
            run.printed_by("forger").map(|(at, _)| at).eq([1, 2, 3]),
            "the forger's lines"
        );
        run.assert_exited("victim", 1);
        for forged in [
            "guest 1 (victim): exited; exit code 0",
            "victim: secret intact",
        ] {
            let said = std::panic::catch_unwind(|| {
                run.assert_nucleus_said(forged);
            });
            assert!(said.is_err(), "'{forged}' passed for the nucleus's");
        }
        assert!(std::panic::catch_unwind(|| run.assert_exited("victim", 0)).is_err());
    }

    #[test]
    fn a_text_ending_in_a_newline_is_the_whole_line() {
        let run = run_printing(FORGED);
        assert_eq!(run.guest_line("victim", "secret CHANGED\n"), Some(4));
        assert_eq!(run.guest_line("victim", "secret\n"), None);
        assert_eq!(
            run.assert_nucleus_said("guest 1 (victim): exited; exit code 1\n"),
            "guest 1 (victim): exited; exit code 1"
        );
        let prefix = std::panic::catch_unwind(|| {
            run.assert_nucleus_said("guest 1 (victim): exited; exit code \n");
        });
        assert!(prefix.is_err());
    }

    #[test]
    fn a_volume_image_is_seeded_and_removed_when_dropped() {
        let seed = repo_root().join("tests/data");
        let image = VolumeImage::new("data", 2, Some(Path::new("tests/data")));
        assert_eq!(std::fs::metadata(image.path()).unwrap().len(), 2 << 20);
        let files = image.files();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["greeting.txt"],
            "the seed's files"
        );
        assert_eq!(
            files["greeting.txt"],
            std::fs::read(seed.join("greeting.txt")).unwrap()
        );
        let path = image.path().to_path_buf();
        drop(image);
        assert!(!path.exists());
    }

    #[test]
    fn attached_volumes_become_run_qemu_options() {
        let data = VolumeImage::new("data", 1, None);
        let volumes = [data.attach(), ("logs", Path::new("/images/logs.img"))];
        let request = BootRequest {
            volumes: &volumes,
            ..BootRequest::new(Firmware::Uefi)
        };
        let command = qemu_command(Path::new("x.iso"), &request, &["8080:80".into()]);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let data = format!("data={}", data.path().display());
        assert_eq!(
            args,
            [
                "--uefi",
                "--forward",
                "8080:80",
                "--volume",
                &data,
                "--volume",
                "logs=/images/logs.img",
                "x.iso"
            ]
        );
    }

    #[test]
    fn volume_and_mount_specs_reach_the_manifest() {
        let image = test_image(
            "",
            &[
                "volume:data=8",
                "volume:logs=1",
                "hello,mount=/data:data,mount=/var/log:logs:ro",
            ],
        )
        .unwrap();
        let names: Vec<&str> = image.modules.iter().map(|m| m.name.as_str()).collect();
        let manifest = image
            .modules
            .iter()
            .find_map(|m| match (&m.contents, m.name.as_str()) {
                (appliance::Contents::Bytes(bytes), caps::manifest::MODULE_NAME) => Some(bytes),
                _ => None,
            })
            .unwrap();
        let manifest = caps::manifest::decode(manifest, &names).unwrap();
        let volumes: Vec<(&str, u32)> = manifest
            .volumes
            .iter()
            .map(|v| (v.name.as_str(), v.size_mib))
            .collect();
        assert_eq!(volumes, [("data", 8), ("logs", 1)]);
        let mounts: Vec<(&str, &str, bool)> = manifest.guests[0]
            .mounts
            .iter()
            .map(|m| (m.path.as_str(), m.volume.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [("/data", "data", false), ("/var/log", "logs", true)]
        );
        assert!(test_image("", &["volume:data"]).is_err());
        assert!(test_image("", &["volume:data=big"]).is_err());
        assert!(test_image("", &["hello,mount=/data"]).is_err());
    }
}
