//! The two ways into the nucleus. This is the only `unsafe` a guest needs
//! besides turning its ring pages into the shared ring types.

/// System call numbers (RAX); arguments in RDI, RSI; result in RAX.
pub const CAP_ENTER: u64 = 0;
pub const EXIT: u64 = 1;

/// Submits what the ring holds and waits until `min_complete` completions are
/// ready or `timeout_ns` passes (`u64::MAX`: no timeout). Returns the number
/// of completions ready, or a negative transport error.
pub fn cap_enter(min_complete: u32, timeout_ns: u64) -> i64 {
    let result: i64;
    // SAFETY: SYSCALL transfers to the nucleus, which preserves every register
    // but RAX (result), RCX and R11 (clobbered by SYSCALL itself), and touches
    // no guest memory except the ring and buffers the ring names.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") CAP_ENTER => result,
            in("rdi") min_complete as u64,
            in("rsi") timeout_ns,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// Ends this guest with `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: the nucleus never returns from EXIT.
    unsafe {
        core::arch::asm!("syscall", in("rax") EXIT, in("rdi") code as i64 as u64, options(noreturn, nostack));
    }
}
