//! `appliance`: the appliances in config/appliances/ as bootable images.
//!
//!     appliance list                      the appliances there are
//!     appliance show NAME                 its evaluated definition (JSON)
//!     appliance build NAME [--iso OUT] [--disk OUT | --no-disk] [--cmdline WORDS]
//!                          [--nucleus ELF] [--args GUEST=WORDS]... [--reset-volumes]
//!                                         build/appliances/NAME.iso and .img;
//!                                         WORDS are added to its command line;
//!                                         ELF replaces the nucleus (a variant);
//!                                         --args replaces a guest's arguments;
//!                                         each volume's image
//!                                         build/volumes/NAME/VOLUME.img is
//!                                         created if missing, else kept
//!                                         (--reset-volumes recreates them)
//!     appliance run NAME [--uefi] [--reset-volumes]
//!                                         build, then boot it in QEMU with its
//!                                         volumes' disks, each port a guest
//!                                         listens on forwarded from 127.0.0.1
//!                                         (the same port; one below 1024 from
//!                                         10000 + it)
//!     appliance volume ls  IMAGE [PATH]   a volume's directory: kind, size, name
//!     appliance volume cat IMAGE PATH     a file of it, to stdout
//!     appliance volume put IMAGE PATH HOSTFILE
//!                                         creates or replaces the file, whole
//!     appliance volume get IMAGE PATH HOSTFILE
//!                                         copies the file out
//!     appliance help                      this usage
//!
//! IMAGE is `NAME VOLUME` (build/volumes/NAME/VOLUME.img) or `--image FILE`;
//! PATH is a path in the volume ("/" its root). Do not change an image
//! while QEMU has it.
//!
//! NAME may also be the file, config/appliances/NAME.cue. The nucleus and
//! the guests must be built (`make nucleus`, and `make go` for Go guests);
//! `make image APPLIANCE=NAME` does all of it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use appliance::volumes::{self, Prepared};
use appliance::{Appliance, Error, Repo, cue};

const USAGE: &str = "usage: appliance list
       appliance show NAME
       appliance build NAME [--iso OUT.iso] [--disk OUT.img | --no-disk] [--cmdline WORDS]
                            [--nucleus ELF] [--args GUEST=WORDS]... [--reset-volumes]
       appliance run NAME [--uefi] [--reset-volumes]
       appliance volume ls  (NAME VOLUME | --image FILE) [PATH]
       appliance volume cat (NAME VOLUME | --image FILE) PATH
       appliance volume put (NAME VOLUME | --image FILE) PATH HOSTFILE
       appliance volume get (NAME VOLUME | --image FILE) PATH HOSTFILE
       appliance help";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("appliance: {message}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Error(error)) => {
            eprintln!("appliance: {error}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Error(error)
    }
}

/// NAME or config/appliances/NAME.cue -> NAME.
fn appliance_name(arg: &str) -> String {
    let path = std::path::Path::new(arg);
    if arg.ends_with(".cue") {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(arg)
            .to_string()
    } else {
        arg.to_string()
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let repo = Repo::this();
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| Failure::Usage("no command".into()))?;
    match command.as_str() {
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        "list" => {
            for name in repo.appliances()? {
                println!("{name}");
            }
            Ok(())
        }
        "show" => {
            let [name] = rest else {
                return Err(Failure::Usage("show takes one NAME".into()));
            };
            print!("{}", cue::appliance_json(&repo, &appliance_name(name))?);
            Ok(())
        }
        "build" | "run" => {
            let (name, options) = rest
                .split_first()
                .ok_or_else(|| Failure::Usage(format!("{command} needs a NAME")))?;
            let name = appliance_name(name);
            let out = repo.root.join("build/appliances");
            let mut iso = out.join(format!("{name}.iso"));
            let mut disk = Some(out.join(format!("{name}.img")));
            let mut uefi = false;
            let mut reset_volumes = false;
            let mut extra_cmdline = String::new();
            let mut guest_args: Vec<(String, Vec<String>)> = Vec::new();
            let mut nucleus = repo.nucleus();
            let mut options = options.iter();
            while let Some(option) = options.next() {
                let mut value = || {
                    options
                        .next()
                        .map(PathBuf::from)
                        .ok_or_else(|| Failure::Usage(format!("{option} needs a file")))
                };
                match (command.as_str(), option.as_str()) {
                    ("build", "--iso") => iso = value()?,
                    ("build", "--disk") => disk = Some(value()?),
                    ("build", "--no-disk") => disk = None,
                    ("build", "--nucleus") => nucleus = value()?,
                    ("build", "--cmdline") => {
                        extra_cmdline = value()?.to_string_lossy().into_owned()
                    }
                    ("build", "--args") => {
                        let value = value()?.to_string_lossy().into_owned();
                        let (guest, words) = value.split_once('=').ok_or_else(|| {
                            Failure::Usage(format!("--args takes GUEST=WORDS, not '{value}'"))
                        })?;
                        let words = words.split_whitespace().map(String::from).collect();
                        guest_args.push((guest.to_string(), words));
                    }
                    ("run", "--uefi") => uefi = true,
                    (_, "--reset-volumes") => reset_volumes = true,
                    _ => return Err(Failure::Usage(format!("unknown option {option}"))),
                }
            }
            if command == "run" {
                disk = None;
            }
            let (appliance, volume_images) = build(
                &repo,
                &name,
                &Variant {
                    extra_cmdline: &extra_cmdline,
                    guest_args: &guest_args,
                    nucleus: &nucleus,
                },
                &iso,
                disk.as_deref(),
                reset_volumes,
            )?;
            if command == "run" {
                let mut qemu = Command::new(repo.root.join("scripts/run-qemu"));
                if uefi {
                    qemu.arg("--uefi");
                }
                for (volume, path) in &volume_images {
                    qemu.arg("--volume")
                        .arg(format!("{volume}={}", path.display()));
                }
                for (guest, definition) in &appliance.guests {
                    for &port in &definition.listen {
                        let host = host_port(port);
                        println!(
                            "appliance {name}: {guest} listens on port {port}: 127.0.0.1:{host} on this host reaches it (e.g. curl http://127.0.0.1:{host}/)"
                        );
                        qemu.arg("--forward").arg(format!("{host}:{port}"));
                    }
                }
                let status = qemu
                    .arg(&iso)
                    .status()
                    .map_err(|e| Error(format!("scripts/run-qemu: {e}")))?;
                // An image booted with qemu-exit ends QEMU with the nucleus's code.
                let nucleus_success =
                    status.code() == Some(nucleus_core::qemu::ExitCode::Success.qemu_status());
                if !status.success() && !nucleus_success {
                    return Err(Error(format!("QEMU ended with {status}")).into());
                }
            }
            Ok(())
        }
        "volume" => volume_command(&repo, rest),
        other => Err(Failure::Usage(format!("unknown command '{other}'"))),
    }
}

/// `--image FILE`, or `NAME VOLUME`.
enum ImageArg<'a> {
    File(&'a str),
    Named(&'a str, &'a str),
}

/// `appliance volume ls|cat|put|get IMAGE ...`.
fn volume_command(repo: &Repo, args: &[String]) -> Result<(), Failure> {
    let (operation, rest) = args
        .split_first()
        .ok_or_else(|| Failure::Usage("volume needs ls, cat, put or get".into()))?;
    let operands = match operation.as_str() {
        "ls" => 0..=1,
        "cat" => 1..=1,
        "put" | "get" => 2..=2,
        other => {
            return Err(Failure::Usage(format!(
                "unknown volume command '{other}' (ls, cat, put, get)"
            )));
        }
    };
    let (image, rest) = match rest {
        [flag, file, rest @ ..] if flag == "--image" => (ImageArg::File(file), rest),
        [name, volume, rest @ ..] if !name.starts_with('-') => {
            (ImageArg::Named(name, volume), rest)
        }
        _ => {
            return Err(Failure::Usage(format!(
                "volume {operation} needs NAME VOLUME or --image FILE"
            )));
        }
    };
    if !operands.contains(&rest.len()) {
        let wanted = match operation.as_str() {
            "ls" => "an optional PATH",
            "cat" => "a PATH",
            _ => "a PATH and a HOSTFILE",
        };
        return Err(Failure::Usage(format!(
            "volume {operation} takes {wanted} after the image"
        )));
    }
    // Resolved once the invocation is known to be whole.
    let image = match image {
        ImageArg::File(file) => PathBuf::from(file),
        ImageArg::Named(name, volume) => volume_image(repo, &appliance_name(name), volume)?,
    };
    let path = volumes::volume_path(rest.first().map_or("/", String::as_str))?;
    let volume = volumes::mount_image(&image, operation == "put")?;
    match operation.as_str() {
        "ls" => {
            for entry in volumes::list(&volume, &path)? {
                println!("{}", volumes::describe(&entry));
            }
        }
        "cat" => {
            let mut stdout = std::io::stdout().lock();
            volumes::read_file(&volume, &path, &mut stdout)?;
            std::io::Write::flush(&mut stdout).map_err(|e| Error(format!("stdout: {e}")))?;
        }
        "put" => {
            let host = Path::new(&rest[1]);
            let data =
                std::fs::read(host).map_err(|e| Error(format!("{}: {e}", host.display())))?;
            volumes::put_file(&volume, &path, &data)?;
        }
        _ => {
            let host = Path::new(&rest[1]);
            let mut data = Vec::new();
            volumes::read_file(&volume, &path, &mut data)?;
            std::fs::write(host, data).map_err(|e| Error(format!("{}: {e}", host.display())))?;
        }
    }
    Ok(())
}

/// The image of volume `volume` of appliance `name`, or why there is none.
fn volume_image(repo: &Repo, name: &str, volume: &str) -> Result<PathBuf, Error> {
    for (what, text) in [("an appliance", name), ("a volume", volume)] {
        let fits = text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if !fits {
            return Err(Error(format!(
                "'{text}' is not {what}'s name (lowercase letters, digits, '_', '-')"
            )));
        }
    }
    let path = repo.volume_image(name, volume);
    if path.is_file() {
        return Ok(path);
    }
    // Only now is the definition needed: to say what is wrong.
    let appliance = Appliance::from_json(&cue::appliance_json(repo, name)?)?;
    if !appliance.volumes.contains_key(volume) {
        let known: Vec<&str> = appliance.volumes.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "it has none".to_string()
        } else {
            format!("it has {}", known.join(", "))
        };
        return Err(Error(format!(
            "appliance {name} has no volume '{volume}' ({known})"
        )));
    }
    Err(Error(format!(
        "no image of volume {volume} at {} yet: `appliance build {name}` creates it",
        path.display()
    )))
}

/// The host port `appliance run` forwards to a guest's `port`: the same,
/// or 10000 + it for a port only root could bind.
fn host_port(port: u16) -> u16 {
    if port < 1024 { 10_000 + port } else { port }
}

/// What `build` changes from the appliance's definition.
struct Variant<'a> {
    /// Added to the command line.
    extra_cmdline: &'a str,
    /// Each replaces a guest's arguments.
    guest_args: &'a [(String, Vec<String>)],
    nucleus: &'a Path,
}

/// Builds the image and makes sure each volume has its image (recreated
/// with `reset_volumes`); returns the appliance as built and each volume's
/// image.
fn build(
    repo: &Repo,
    name: &str,
    variant: &Variant,
    iso: &Path,
    disk: Option<&Path>,
    reset_volumes: bool,
) -> Result<(Appliance, Vec<(String, PathBuf)>), Error> {
    let mut appliance = Appliance::from_json(&cue::appliance_json(repo, name)?)?;
    for (guest, args) in variant.guest_args {
        let known: Vec<&str> = appliance.guests.keys().map(String::as_str).collect();
        let known = known.join(", ");
        let definition = appliance.guests.get_mut(guest).ok_or_else(|| {
            Error(format!(
                "--args: appliance {name} has no guest '{guest}' (it has {known})"
            ))
        })?;
        definition.args = args.clone();
    }
    let mut image = appliance.plan(repo)?;
    image.cmdline = format!("{} {}", image.cmdline, variant.extra_cmdline)
        .trim()
        .to_string();
    if let Some(dir) = iso.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
    }
    // Before the image: an image of the wrong size is refused quickly.
    let prepared = appliance.prepare_volumes(repo, reset_volumes)?;
    image.write(repo, variant.nucleus, iso, disk)?;
    println!("appliance {name}: {}", iso.display());
    if let Some(disk) = disk {
        println!(
            "appliance {name}: {} (raw disk image: dd it to a USB stick)",
            disk.display()
        );
    }
    let mut images = Vec::new();
    for (volume, path, prepared) in prepared {
        let shown = path.strip_prefix(&repo.root).unwrap_or(&path).display();
        match prepared {
            Prepared::Created => println!("appliance {name}: volume {volume}: created {shown}"),
            Prepared::Kept => println!(
                "appliance {name}: volume {volume}: kept {shown} (existing; --reset-volumes recreates it)"
            ),
        }
        images.push((volume, path));
    }
    Ok((appliance, images))
}
