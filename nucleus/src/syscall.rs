//! The system calls: `cap_enter` and `exit` (numbers and semantics in
//! caps::start). Anything else answers `NotSupported`.
#![forbid(unsafe_code)]

use caps::TransportError;
use caps::start::{SYSCALL_CAP_ENTER, SYSCALL_EXIT};

use crate::sched::{self, Progress, State};
use crate::traps::TrapFrame;

pub fn handle(frame: &mut TrapFrame) {
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
        let progress = sched::process_current(min_complete);
        let (ready, wanted) = match progress {
            Progress::Ready { ready, wanted } => (ready, wanted),
            Progress::Exit(code) => {
                sched::exit_current(code, format_args!("exited through GuestControl"))
            }
            Progress::Corrupt(error) => sched::exit_current(
                -1,
                format_args!("stopped: it corrupted its ring ({error:?})"),
            ),
        };
        if ready >= wanted || deadline.is_some_and(|d| crate::time::rdtsc() >= d) {
            return ready as i64;
        }
        sched::with_current(|thread, guest| {
            guest.domain.waiting_for = wanted;
            let due = guest.domain.next_due();
            let wake_at = match (deadline, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            thread.state = State::Blocked { deadline: wake_at };
        });
        sched::yield_current();
    }
}
