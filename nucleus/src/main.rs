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
mod endpoint;
mod files;
mod guest;
mod net;
mod sched;
mod services;
mod sockets;
mod storage;
mod syscall;

// The hardware modules, by their short names (`crate::memory`, ...).
use arch::x86_64::{
    acpi, apic, console, context, cpu, entropy, fb, gdt, guest_memory, irq, memory, pci, scenario,
    stacks, stop, time, traps, user, virtio,
};
