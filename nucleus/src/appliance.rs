//! Running the appliance: the boot manifest (the Limine module named
//! `manifest`) says which guests to start, from which boot modules, with
//! what grants and limits. It is checked whole before anything starts; a
//! bad manifest stops the boot with the field that is wrong.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use caps::manifest::{self, Console, Manifest, Restart};
use nucleus_core::cmdline::BootOptions;

use crate::boot::BootModule;
use crate::{cpu, domain, guest, log, memory, sched};

/// What came of the appliance.
pub enum Outcome {
    /// The image has no manifest: nothing to run.
    NoManifest,
    /// The manifest is wrong: nothing was started.
    Refused,
    /// Every guest ran and exited (restarts included).
    Finished,
}

/// Checks the manifest, starts its guests in order and runs them until all
/// have exited (restarting those whose policy says so).
pub fn run(modules: &[BootModule], options: &BootOptions) -> Outcome {
    // The nucleus runs with interrupts off but when idle or in a guest: the
    // other CPUs already run the scheduler (and poll the network), so a
    // device's interrupt taken here while this CPU holds the scheduler
    // (starting a guest) would wait for itself.
    x86_64::instructions::interrupts::disable();
    let outcome = start_and_run(modules, options);
    x86_64::instructions::interrupts::enable();
    outcome
}

fn start_and_run(modules: &[BootModule], options: &BootOptions) -> Outcome {
    let Some(raw) = modules.iter().find(|m| m.name == manifest::MODULE_NAME) else {
        log!("appliance: no manifest module in the image: no guests to start");
        return Outcome::NoManifest;
    };
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let manifest = match manifest::decode(raw.bytes, &names) {
        Ok(manifest) => manifest,
        Err(error) => {
            log!("appliance: boot stopped: {error}");
            return Outcome::Refused;
        }
    };
    if !cpu::pku_enabled() && manifest.guests.len() > 1 && !options.allow_unisolated_guests {
        log!(
            "appliance: boot stopped: manifest: guests: {} guests, but without protection keys they could not \
             be isolated from each other (boot with allow-unisolated-guests to accept that)",
            manifest.guests.len()
        );
        return Outcome::Refused;
    }
    log!(
        "appliance {}: {} guests, console {}",
        manifest.name,
        manifest.guests.len(),
        match manifest.console {
            Console::Both => "serial and framebuffer",
            Console::Serial => "serial",
            Console::Framebuffer => "framebuffer",
        }
    );
    crate::console::select(manifest.console);
    if manifest.devices.network {
        match crate::net::bring_up(on_network_interrupt) {
            Ok(link) => log!(
                "net: virtio-net at pci {} claimed; MAC {}, interrupts on vector {:#x} (MSI-X)",
                link.function,
                crate::net::Mac(link.mac),
                link.vector
            ),
            Err(error) => {
                log!("appliance: boot stopped: the network device: {error}");
                return Outcome::Refused;
            }
        }
    }
    if !manifest.volumes.is_empty() {
        crate::storage::bring_up(&manifest.volumes);
    }
    let mut restarts = alloc::vec![0u32; manifest.guests.len()];
    for index in 0..manifest.guests.len() {
        start(&manifest, index, modules);
    }
    let exits = sched::run_until_all_exit(|index, code| {
        let guest = &manifest.guests[index];
        if let Restart::OnFailure { max } = guest.restart
            && code != 0
        {
            if restarts[index] < max {
                restarts[index] += 1;
                log!(
                    "guest ({}): restarting after exit code {code} (restart {} of {max})",
                    guest.name,
                    restarts[index]
                );
                start(&manifest, index, modules);
            } else {
                log!(
                    "guest ({}): not restarted: it failed {} times",
                    guest.name,
                    max + 1
                );
            }
        }
    });
    log!(
        "guests: all {} exited; CR3 writes since boot: {}; restarts: {}",
        exits.len(),
        memory::cr3_writes() - 1,
        restarts.iter().sum::<u32>()
    );
    Outcome::Finished
}

/// Loads guest `index` of the manifest into a new domain and spawns it;
/// failures are reported and that guest is skipped.
fn start(manifest: &Manifest, index: usize, modules: &[BootModule]) {
    let spec = &manifest.guests[index];
    let name = spec.name.as_str();
    // The manifest was checked against these modules, so the lookups hold.
    let find = |wanted: &str| {
        modules
            .iter()
            .find(|m| m.name == wanted)
            .expect("the manifest names only modules the image has")
    };
    let online = crate::percpu::online().count();
    let cpus: nucleus_core::run_queue::CpuSet = spec
        .cpus
        .iter()
        .filter(|&&cpu| (cpu as usize) < online)
        .fold(0, |set, &cpu| {
            set | nucleus_core::run_queue::cpu_bit(cpu as usize)
        });
    if !spec.cpus.is_empty() && cpus == 0 {
        log!(
            "guest ({name}): not started: it may run only on cpus {:?}, and the machine has {online} (0 to {})",
            spec.cpus,
            online - 1
        );
        return;
    }
    let elf = find(&spec.module).bytes;
    let data: Vec<&BootModule> = spec.data.iter().map(|wanted| find(wanted)).collect();

    let sizes = guest::Sizes {
        heap: spec
            .heap_mib
            .map_or(guest::DEFAULT_HEAP_BYTES, |mib| u64::from(mib) << 20),
        stack: spec
            .stack_kib
            .map_or(guest::DEFAULT_STACK_BYTES, |kib| u64::from(kib) << 10),
    };
    match domain::Domain::create(spec, elf, &data, sizes) {
        Ok((domain, start)) => {
            let key = domain.memory.key;
            let base = domain.image_base;
            match sched::spawn(
                crate::syscall::guest_main,
                name.into(),
                start,
                domain,
                spec.cpu_ms,
                cpus,
                index,
            ) {
                Ok(id) => log!(
                    "guest {id} ({name}): loaded, {} KiB image at {base:#x}, protection key {key}{}",
                    elf.len() / 1024,
                    LimitNote(spec.cpu_ms)
                ),
                Err(error) => log!("guest ({name}): cannot start: {error:?}"),
            }
        }
        Err(error) => log!("guest ({name}): {error}"),
    }
}

/// ", CPU-time limit N ms" when a guest has one.
struct LimitNote(Option<u64>);

impl core::fmt::Display for LimitNote {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(ms) => write!(f, ", CPU-time limit {ms} ms"),
            None => Ok(()),
        }
    }
}

/// The network device's interrupt (receive or transmit done): the stack
/// moves, and calls waiting on its sockets are made again.
fn on_network_interrupt() {
    if crate::net::on_interrupt() {
        sched::retry_waiting();
    }
}
