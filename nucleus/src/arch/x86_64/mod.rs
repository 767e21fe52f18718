//! x86_64 with Limine: see `super` for what lives here.

pub mod acpi;
pub mod apic;
pub mod boot;
pub mod console;
pub mod context;
pub mod cpu;
pub mod entropy;
pub mod fb;
pub mod gdt;
pub mod guest_memory;
pub mod irq;
pub mod memory;
pub mod pci;
pub mod percpu;
pub mod scenario;
pub mod smp;
pub mod stacks;
pub mod stop;
pub mod time;
pub mod tlb;
pub mod traps;
pub mod user;
pub mod virtio;
