//! `appliance`: the appliances in config/appliances/ as bootable images.
//!
//!     appliance list                      the appliances there are
//!     appliance show NAME                 its evaluated definition (JSON)
//!     appliance build NAME [--iso OUT] [--disk OUT | --no-disk] [--cmdline WORDS]
//!                          [--nucleus ELF] [--args GUEST=WORDS]...
//!                                         build/appliances/NAME.iso and .img;
//!                                         WORDS are added to its command line;
//!                                         ELF replaces the nucleus (a variant);
//!                                         --args replaces a guest's arguments
//!     appliance run NAME [--uefi]         build, then boot it in QEMU, each
//!                                         port a guest listens on forwarded
//!                                         from 127.0.0.1 (the same port; one
//!                                         below 1024 from 10000 + it)
//!     appliance help                      this usage
//!
//! NAME may also be the file, config/appliances/NAME.cue. The nucleus and
//! the guests must be built (`make nucleus`, and `make go` for Go guests);
//! `make image APPLIANCE=NAME` does all of it.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use appliance::{Appliance, Error, Repo, cue};

const USAGE: &str = "usage: appliance list
       appliance show NAME
       appliance build NAME [--iso OUT.iso] [--disk OUT.img | --no-disk] [--cmdline WORDS]
                            [--nucleus ELF] [--args GUEST=WORDS]...
       appliance run NAME [--uefi]
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
                    _ => return Err(Failure::Usage(format!("unknown option {option}"))),
                }
            }
            if command == "run" {
                disk = None;
            }
            let appliance = build(
                &repo,
                &name,
                &extra_cmdline,
                &guest_args,
                &nucleus,
                &iso,
                disk.as_deref(),
            )?;
            if command == "run" {
                let mut qemu = Command::new(repo.root.join("scripts/run-qemu"));
                if uefi {
                    qemu.arg("--uefi");
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
        other => Err(Failure::Usage(format!("unknown command '{other}'"))),
    }
}

/// The host port `appliance run` forwards to a guest's `port`: the same,
/// or 10000 + it for a port only root could bind.
fn host_port(port: u16) -> u16 {
    if port < 1024 { 10_000 + port } else { port }
}

/// Builds the image; returns the appliance as built.
fn build(
    repo: &Repo,
    name: &str,
    extra_cmdline: &str,
    guest_args: &[(String, Vec<String>)],
    nucleus: &std::path::Path,
    iso: &std::path::Path,
    disk: Option<&std::path::Path>,
) -> Result<Appliance, Error> {
    let mut appliance = Appliance::from_json(&cue::appliance_json(repo, name)?)?;
    for (guest, args) in guest_args {
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
    image.cmdline = format!("{} {extra_cmdline}", image.cmdline)
        .trim()
        .to_string();
    if let Some(dir) = iso.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error(format!("{}: {e}", dir.display())))?;
    }
    image.write(repo, nucleus, iso, disk)?;
    println!("appliance {name}: {}", iso.display());
    if let Some(disk) = disk {
        println!(
            "appliance {name}: {} (raw disk image: dd it to a USB stick)",
            disk.display()
        );
    }
    Ok(appliance)
}
