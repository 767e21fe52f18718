//! The two ways into the nucleus, and the TSC. With the ring attachment
//! and the heap claim, this is all the `unsafe` a guest needs.

use caps::start::{SYSCALL_CAP_ENTER, SYSCALL_EXIT};

/// A system call by number with two arguments (the ABI is in `caps::start`).
pub fn raw(number: u64, first: u64, second: u64) -> i64 {
    let result: i64;
    // SAFETY: SYSCALL transfers to the nucleus, which preserves every register
    // but RAX (result), RCX and R11 (clobbered by SYSCALL itself), and touches
    // no guest memory except the ring and buffers the ring names.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") first,
            in("rsi") second,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// Submits what the ring holds and waits until `min_complete` completions are
/// ready or `timeout_ns` passes (`u64::MAX`: no timeout). Returns the number
/// of completions ready, or a negative transport error.
pub fn cap_enter(min_complete: u32, timeout_ns: u64) -> i64 {
    raw(SYSCALL_CAP_ENTER, min_complete as u64, timeout_ns)
}

/// The time-stamp counter (for guests that measure; `Timer.now` is the
/// capability for time).
pub fn cycles() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Ends this guest with `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: the nucleus never returns from EXIT.
    unsafe {
        core::arch::asm!("syscall", in("rax") SYSCALL_EXIT, in("rdi") code as i64 as u64, options(noreturn, nostack));
    }
}
