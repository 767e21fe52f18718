//! The nucleus: boots from Limine, takes over the machine, reports "ready",
//! and runs the appliance's guests.
//!
//! `arch` holds every line of `unsafe` and every hardware access; the
//! modules declared here besides it (domains, the dispatcher, endpoints,
//! services, the scheduler's policy, the appliance) are safe code.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)]
mod arch;

mod appliance;
mod domain;
mod files;
mod guest;
mod net;
mod sched;
mod service;
mod services;
mod sockets;
mod storage;
mod syscall;

// The hardware modules, by their short names (`crate::memory`, ...).
use arch::x86_64::{
    acpi, apic, boot, console, context, cpu, entropy, fb, gdt, guest_memory, irq, memory, pci,
    percpu, scenario, smp, stacks, stop, time, tlb, traps, user, virtio,
};

/// The nucleus proper, once boot has taken the machine: runs the appliance
/// the image's manifest describes, then (test images) stops the machine
/// or (scenarios) runs the boot scenario.
fn run(booted: boot::Booted) -> ! {
    let options = booted.options;
    services::BOOT_FACTS.call_once(|| services::BootFacts {
        boot_nanos: booted.boot_nanos,
        memory_total_bytes: booted.memory_total_bytes,
        cpu_count: booted.cpu_count,
        features: booted.features,
    });
    // Every CPU runs guests; the page-table-switching variant keeps one
    // guest table, so it runs them on CPU 0 alone.
    if !user::SWITCH_TABLES {
        smp::release(sched::run_other_cpu);
    }
    let ended = match appliance::run(&booted.modules, &options) {
        appliance::Outcome::NoManifest => false,
        appliance::Outcome::Finished => true,
        appliance::Outcome::Refused => stop::stop(nucleus_core::qemu::ExitCode::Failure),
    };
    if ended && options.qemu_exit {
        // Test images end when their guests have.
        stop::stop(nucleus_core::qemu::ExitCode::Success);
    }
    scenario::run(options.scenario)
}
