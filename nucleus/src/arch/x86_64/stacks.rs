//! The nucleus's own stacks, each with an unmapped guard page below it so
//! an overflow faults instead of silently corrupting whatever lies beneath.
//! They live in .bss; the page-table builder leaves the guard pages out.

use core::cell::UnsafeCell;

const PAGE: usize = 4096;

#[repr(C, align(4096))]
pub struct GuardedStack<const N: usize> {
    guard: UnsafeCell<[u8; PAGE]>,
    stack: UnsafeCell<[u8; N]>,
}

// SAFETY: the bytes are only ever used by the CPU as a stack (one CPU, one
// user per stack); Rust code never forms references into them.
unsafe impl<const N: usize> Sync for GuardedStack<N> {}

impl<const N: usize> GuardedStack<N> {
    const ALIGNED: () = assert!(N.is_multiple_of(PAGE) && N > 0);

    pub const fn new() -> Self {
        let () = Self::ALIGNED;
        GuardedStack {
            guard: UnsafeCell::new([0; PAGE]),
            stack: UnsafeCell::new([0; N]),
        }
    }

    pub fn guard_page(&self) -> u64 {
        self.guard.get() as u64
    }

    /// The initial stack pointer (16-byte aligned, one past the end).
    pub fn top(&self) -> u64 {
        self.stack.get() as u64 + N as u64
    }
}

pub static BOOT_STACK: GuardedStack<{ 128 * 1024 }> = GuardedStack::new();
pub static DOUBLE_FAULT_STACK: GuardedStack<{ 16 * 1024 }> = GuardedStack::new();
pub static NMI_STACK: GuardedStack<{ 16 * 1024 }> = GuardedStack::new();
pub static MACHINE_CHECK_STACK: GuardedStack<{ 16 * 1024 }> = GuardedStack::new();

/// Pages the page-table builder must leave unmapped.
pub fn guard_pages() -> [u64; 4] {
    [
        BOOT_STACK.guard_page(),
        DOUBLE_FAULT_STACK.guard_page(),
        NMI_STACK.guard_page(),
        MACHINE_CHECK_STACK.guard_page(),
    ]
}
