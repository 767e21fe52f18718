//! The other CPUs (application processors), started through Limine's MP
//! request. Each gets its own stack, IST stacks, GDT, TSS and per-CPU
//! state; its page table (the one), PAT, IDT, protections, FPU state and
//! system-call MSRs are set as the boot CPU's; its local APIC and timer
//! are on. Then it waits, halted, until the nucleus hands the other CPUs
//! their work (`release`: the scheduler's loop for a CPU), which they all
//! run from then on.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Once;

use limine::mp::Cpu;
use limine::response::MpResponse;

use crate::gdt::{self, IstStacks};
use crate::memory::{self, MapError};
use crate::percpu::{BOOT_CPU, PerCpu};
use crate::{apic, cpu, log, time, traps, user};

/// What an application processor starts with (leaked: it lives as long as
/// the CPU does).
struct Start {
    cpu: &'static PerCpu,
    stack_top: u64,
    ist: IstStacks,
}

/// The boot option the FPU set-up follows (`noxsave`), for the others.
static USE_XSAVE: AtomicBool = AtomicBool::new(true);

/// What the other CPUs run once released.
static WORK: Once<fn() -> !> = Once::new();

/// Hands every other CPU `work` (it never returns): each starts it at
/// once, or as soon as it has come up.
pub fn release(work: fn() -> !) {
    WORK.call_once(|| work);
    let this = crate::percpu::this().index();
    for cpu in crate::percpu::online().filter(|cpu| cpu.index() != this) {
        apic::send_ipi(cpu.apic_id(), traps::RESCHEDULE_VECTOR);
    }
}

/// Names the boot CPU (index 0, `boot_apic_id`) and starts every other CPU
/// the bootloader found, one at a time. Returns how many CPUs are online.
pub fn start_all(mp: Option<&MpResponse>, boot_apic_id: u32, use_xsave: bool) -> u32 {
    BOOT_CPU.identify(0, boot_apic_id);
    BOOT_CPU.set_online();
    USE_XSAVE.store(use_xsave, Ordering::Relaxed);
    let Some(mp) = mp else {
        log!("smp: the bootloader started no other CPUs (no MP response); 1 CPU online");
        return 1;
    };
    let mut online = 1;
    for found in mp.cpus().iter().filter(|c| c.lapic_id != mp.bsp_lapic_id()) {
        if online as usize == crate::percpu::MAX_CPUS {
            log!(
                "smp: cpu with apic id {} not started: the nucleus runs at most {} CPUs",
                found.lapic_id,
                crate::percpu::MAX_CPUS
            );
            continue;
        }
        match start_one(found, online) {
            Ok(cpu) => {
                log!(
                    "smp: cpu {} (apic id {}) online",
                    cpu.index(),
                    cpu.apic_id()
                );
                online += 1;
            }
            Err(why) => log!(
                "smp: cpu with apic id {} not started: {why}",
                found.lapic_id
            ),
        }
    }
    log!("smp: {online} of {} CPUs online", mp.cpus().len());
    online
}

fn start_one(found: &Cpu, index: u32) -> Result<&'static PerCpu, &'static str> {
    let stack = || memory::allocate_kernel_stack().map_err(|_: MapError| "out of memory");
    let cpu: &'static PerCpu = Box::leak(Box::new(PerCpu::new()));
    cpu.identify(index, found.lapic_id);
    let start: &'static Start = Box::leak(Box::new(Start {
        cpu,
        stack_top: stack()?,
        ist: [stack()?, stack()?, stack()?],
    }));
    found
        .extra
        .store(start as *const Start as u64, Ordering::Release);
    // Everything it reads is written before this (the write is SeqCst).
    found.goto_address.write(application_processor_entry);
    // A second (of TSC cycles) to come up, then it is given up on.
    let deadline = time::rdtsc() + time::tsc_hz();
    while !cpu.is_online() {
        if time::rdtsc() > deadline {
            return Err("it did not come online within 1 s");
        }
        core::hint::spin_loop();
    }
    Ok(cpu)
}

/// Where Limine sends the CPU: on Limine's stack and page table, with
/// interrupts off. Moves to the nucleus's table and the CPU's own stack.
unsafe extern "C" fn application_processor_entry(found: &Cpu) -> ! {
    let start = found.extra.load(Ordering::Acquire) as *const Start;
    // SAFETY: `start_one` stored a leaked `Start` before releasing the CPU
    // here; it is in the heap, which Limine's direct map maps too.
    let stack_top = unsafe { (*start).stack_top };
    let table = memory::NUCLEUS_TABLE.load(Ordering::Relaxed);
    // SAFETY: the nucleus's table maps this code, all RAM at the same
    // direct-map addresses as Limine's, and the CPU's fresh stack (with a
    // guard page); nothing on Limine's stack is used again.
    unsafe {
        core::arch::asm!(
            "mov cr3, {table}",
            "mov rsp, {stack}",
            "xor ebp, ebp",
            "call {main}",
            "ud2",
            table = in(reg) table,
            stack = in(reg) stack_top,
            main = sym application_processor_main,
            in("rdi") start,
            options(noreturn)
        )
    }
}

extern "C" fn application_processor_main(start: &'static Start) -> ! {
    memory::load_pat_on_application_processor();
    gdt::load(start.cpu, start.ist);
    traps::init();
    let features = cpu::Features::detect();
    cpu::enable_protections(&features).unwrap_or_else(|why| panic!("{why}"));
    cpu::enable_fpu(&features, USE_XSAVE.load(Ordering::Relaxed))
        .unwrap_or_else(|why| panic!("{why}"));
    user::init();
    let apic_id = apic::init_application_processor();
    assert_eq!(apic_id, start.cpu.apic_id(), "the MADT's APIC id");
    start.cpu.set_online();
    loop {
        if let Some(work) = WORK.get() {
            work();
        }
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
}
