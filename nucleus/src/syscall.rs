//! A guest thread's kernel side: ring 3 until the guest comes back
//! (`user::run`), then what it came back for: the system calls `cap_enter`
//! and `exit` (numbers and semantics in caps::start; anything else
//! answers `NotSupported`), the timer's tick, or a fault.
#![forbid(unsafe_code)]

use caps::TransportError;
use caps::start::{SYSCALL_CAP_ENTER, SYSCALL_EXIT};

use crate::sched::{self, Progress, Ready};
use crate::traps::{self, TrapFrame};
use crate::user::{self, UserExit};

pub fn handle(frame: &mut TrapFrame) {
    // The SYSCALL entry cleared AC (SFMASK); checked in debug builds only,
    // off the release path's length.
    debug_assert!(
        crate::cpu::alignment_check_clear(),
        "a system call entered the nucleus with RFLAGS.AC set"
    );
    frame.rax = match frame.rax {
        SYSCALL_CAP_ENTER => cap_enter(frame.rdi as u32, frame.rsi) as u64,
        SYSCALL_EXIT => sched::exit_current(frame.rdi as i32, format_args!("exited")),
        _ => TransportError::NotSupported.code() as i64 as u64,
    };
}

fn cap_enter(min_complete: u32, timeout_ns: u64) -> i64 {
    let deadline = match timeout_ns {
        u64::MAX => None,
        ns => Some(
            crate::time::rdtsc().saturating_add(nucleus_core::time::nanos_to_cycles(
                ns,
                crate::time::tsc_hz(),
            )),
        ),
    };
    loop {
        let Ready { ready, wanted } = match sched::process_current(min_complete) {
            Ok(ready) => ready,
            Err(stopped) => {
                stopped_short(stopped);
                continue;
            }
        };
        if ready >= wanted || deadline.is_some_and(|d| crate::time::rdtsc() >= d) {
            return ready as i64;
        }
        sched::block_current(wanted, deadline);
    }
}

/// The running guest's ring was not processed to the end: it exits, or it
/// was preempted (and runs again here later).
#[cold]
fn stopped_short(progress: Progress) {
    match progress {
        Progress::Exit(code) => {
            sched::exit_current(code, format_args!("exited through GuestControl"))
        }
        Progress::Preempted => sched::preempt_current(),
        Progress::Corrupt(error) => sched::exit_current(
            -1,
            format_args!("stopped: it corrupted its ring ({error:?})"),
        ),
    }
}

/// A guest thread's life, on its own kernel stack: ring 3 until the guest
/// enters the nucleus, then what that entry asks for, and ring 3 again
/// (until it exits: `exit_current` never returns).
pub extern "C" fn guest_main() -> ! {
    let start = sched::with_current(|thread, _| thread.start);
    let mut registers = user::first_registers(start.entry, start.stack_top, start.arguments);
    loop {
        match user::run(&mut registers) {
            UserExit::Syscall => handle(&mut registers),
            UserExit::Interrupt { vector } if vector == traps::TIMER_VECTOR => {
                sched::on_tick_from_user()
            }
            // A device's interrupt: its driver has run; the guest goes on.
            UserExit::Interrupt { .. } => {}
            UserExit::Fault { vector, address } => stop_for_fault(&registers, vector, address),
        }
    }
}

/// A guest's fault stops that guest, never the nucleus. Its exit code is
/// 128 + the vector, as a shell reports a signal; a protection-key fault
/// names the key and whose memory it was.
fn stop_for_fault(registers: &TrapFrame, vector: u8, address: u64) -> ! {
    let owner = traps::is_protection_key_fault(vector, registers.error_code)
        .then(|| sched::owner_of(address))
        .flatten();
    traps::print_registers(registers);
    let fault = traps::FaultDescription {
        frame: registers,
        address,
    };
    let code = 128 + vector as i32;
    match owner {
        Some((name, key)) => sched::exit_current(
            code,
            format_args!("stopped by {fault} (key {key}, guest {name}'s memory)"),
        ),
        None => sched::exit_current(code, format_args!("stopped by {fault}")),
    }
}
