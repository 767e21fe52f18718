//! Everything that touches the hardware, and every line of `unsafe` in the
//! nucleus: boot, CPU set-up, traps and system-call entry, paging and
//! memory, the APIC and ACPI, consoles, the TSC, context switches, and the
//! copies to and from guest memory. The rest of the nucleus (scheduler
//! policy, domains, endpoints, services, the appliance) forbids `unsafe`
//! and reaches the hardware only through these modules.

pub mod x86_64;
