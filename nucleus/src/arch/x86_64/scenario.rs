//! What the nucleus does once ready, chosen on the command line. Besides
//! idling, each scenario proves one path in a real boot: timer ticks, an
//! exception report, the double-fault and NMI stacks, the panic path.

use core::hint::black_box;

use nucleus_core::cmdline::Scenario;
use nucleus_core::qemu::ExitCode;

use crate::{apic, log, stop, time};

/// Ticks the `ticks` scenario waits for.
const TICKS_TO_OBSERVE: u64 = 10;
/// Unmapped (and never mapped: the lower half holds nothing yet) address the
/// page-fault scenario writes to.
pub const PAGE_FAULT_ADDRESS: u64 = 0x0000_7e57_dead_0000;
/// A non-canonical address: accessing it raises #GP, not #PF.
const NON_CANONICAL_ADDRESS: u64 = 0x8000_0000_0000_0000;

pub fn run(scenario: Scenario) -> ! {
    if scenario != Scenario::Idle {
        log!("scenario: {}", scenario.name());
    }
    match scenario {
        Scenario::Idle => loop {
            x86_64::instructions::hlt();
        },
        Scenario::Ticks => observe_ticks(),
        Scenario::Breakpoint => x86_64::instructions::interrupts::int3(),
        Scenario::PageFault => {
            // SAFETY: deliberately faulting; the exception path reports and stops.
            unsafe { (PAGE_FAULT_ADDRESS as *mut u64).write_volatile(0x5afe) }
        }
        Scenario::DivideError => {
            let divisor: u64 = black_box(0);
            // SAFETY: `div` by zero raises #DE on purpose; registers only.
            unsafe {
                core::arch::asm!("div {d}", d = in(reg) divisor, inout("rax") 1u64 => _, inout("rdx") 0u64 => _)
            }
        }
        Scenario::InvalidOpcode => {
            // SAFETY: `ud2` raises #UD on purpose.
            unsafe { core::arch::asm!("ud2") }
        }
        Scenario::GeneralProtection => {
            // SAFETY: a non-canonical access raises #GP on purpose.
            unsafe { (NON_CANONICAL_ADDRESS as *const u64).read_volatile() };
        }
        Scenario::StackOverflow => {
            black_box(recurse(black_box(0)));
        }
        Scenario::Nmi => {
            apic::send_nmi_to_self();
            // Delivery is asynchronous; the handler counts it and returns.
            let deadline =
                time::rdtsc() + nucleus_core::time::nanos_to_cycles(1_000_000_000, time::tsc_hz());
            while crate::traps::nmis().0 == 0 && time::rdtsc() < deadline {
                core::hint::spin_loop();
            }
            let (count, frame_at) = crate::traps::nmis();
            let nmi_stack = crate::stacks::NMI_STACK.guard_page()..crate::stacks::NMI_STACK.top();
            if count == 1 && nmi_stack.contains(&frame_at) {
                log!(
                    "scenario: NMI handled on its own stack (frame at {frame_at:#x}) and returned from; carried on"
                );
                stop::stop(ExitCode::Success);
            }
            log!(
                "scenario nmi: {count} NMIs seen, the last frame at {frame_at:#x}, not on the NMI stack {nmi_stack:x?}"
            );
            stop::stop(ExitCode::Failure);
        }
        Scenario::Panic => panic!("panic requested on the command line"),
        Scenario::StrayInterrupt => {
            // SAFETY: software interrupts through gates the IDT has; the
            // handler acknowledges them and returns.
            unsafe {
                core::arch::asm!("int 0x40");
                core::arch::asm!("int 0xfe");
            }
            log!("scenario: carried on after stray interrupts");
            stop::stop(ExitCode::Success)
        }
    }
    log!("scenario {}: the fault did not happen", scenario.name());
    stop::stop(ExitCode::Failure)
}

/// Each frame holds a page of live data, so the recursion reaches the guard
/// page below the boot stack after a few dozen calls.
#[allow(unconditional_recursion)] // it ends in the double fault, by design
fn recurse(depth: u64) -> u64 {
    let mut page = [0u8; 4096];
    page[0] = depth as u8;
    black_box(&mut page);
    recurse(depth + 1) + page[0] as u64
}

fn observe_ticks() -> ! {
    let start_ticks = apic::ticks();
    let start = time::rdtsc();
    // Generous: even a slow emulator delivers 10 ticks within 10 s.
    let give_up = start + nucleus_core::time::nanos_to_cycles(10_000_000_000, time::tsc_hz());
    while apic::ticks() < start_ticks + TICKS_TO_OBSERVE {
        if time::rdtsc() > give_up {
            log!("timer: only {} ticks in 10 s", apic::ticks() - start_ticks);
            stop::stop(ExitCode::Failure);
        }
        x86_64::instructions::hlt();
    }
    log!(
        "timer: {} ticks observed in {}",
        TICKS_TO_OBSERVE,
        time::nanos_between(start, time::rdtsc())
    );
    stop::stop(ExitCode::Success)
}
