//! Kernel contexts and the switch between them. A context is a kernel
//! stack with, while it is suspended, the stack pointer `switch_stacks`
//! saved on it: a CPU's idle loop's (the stack it booted on), or a guest thread's
//! (suspended inside the nucleus, with its callee-saved registers pushed;
//! its user registers are a frame its code keeps on that stack).
//!
//! Contexts are handles (`Context`) into a table only this module writes,
//! so the switch is safe to call: a context's saved stack pointer is
//! taken exactly once, by the switch that resumes it, and a context that
//! is not suspended cannot be switched to.
//!
//! With several CPUs, a thread one CPU has just left may be picked by
//! another before the first has finished saving it: the switch to it
//! waits (a few instructions) until its stack pointer is saved.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::memory::MapError;

/// One idle context per CPU (its index), then one per guest slot of the
/// address space.
const IDLE_CONTEXTS: usize = crate::percpu::MAX_CPUS;
const MAX_CONTEXTS: usize = IDLE_CONTEXTS + sas_loader::MAX_GUEST_SLOTS;

/// Each context's saved stack pointer while it is suspended; 0 while it
/// runs, or when the slot is free.
static SAVED: [AtomicU64; MAX_CONTEXTS] = [const { AtomicU64::new(0) }; MAX_CONTEXTS];
/// Each guest context's kernel stack top; 0: the slot is free. Slots are
/// claimed under `CLAIM` and read without it (the switch path).
static STACKS: [AtomicU64; MAX_CONTEXTS] = [const { AtomicU64::new(0) }; MAX_CONTEXTS];
static CLAIM: Mutex<()> = Mutex::new(());

/// How long a switch waits for the context it resumes to be saved by the
/// CPU that left it (TSC cycles, generous: it is a few instructions).
const SAVE_WAIT_CYCLES: u64 = 1 << 32;

/// A kernel context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context(usize);

impl Context {
    /// This CPU's idle loop's context, on the stack it booted on: the one
    /// running when it came up.
    pub fn idle() -> Context {
        Context(crate::percpu::index() as usize)
    }

    /// A new context on a kernel stack of its own that, when first switched
    /// to, calls `main` there.
    pub fn new(main: extern "C" fn() -> !) -> Result<Context, MapError> {
        let _claim = CLAIM.lock();
        let index = (IDLE_CONTEXTS..MAX_CONTEXTS)
            .find(|&i| STACKS[i].load(Ordering::Relaxed) == 0)
            .ok_or(MapError::OutOfMemory)?;
        let top = crate::memory::allocate_kernel_stack()?;
        // The first switch pops six callee-saved registers (R12 is `main`)
        // and "returns" into `start_context`, with RSP at the (16-byte
        // aligned) top, as a call expects it.
        let saved = top - 8 * 7;
        // SAFETY: the kernel stack was just allocated (mapped read-write,
        // used by no one); the writes stay within its top page.
        unsafe {
            let slots = saved as *mut u64;
            for i in 0..6 {
                slots.add(i).write(0); // r15, r14, r13, r12, rbp, rbx
            }
            slots.add(3).write(main as *const () as u64);
            slots.add(6).write(start_context as *const () as u64);
        }
        STACKS[index].store(top, Ordering::Relaxed);
        SAVED[index].store(saved, Ordering::Release);
        Ok(Context(index))
    }

    /// Whether the context is suspended: no CPU runs on its stack.
    pub fn is_suspended(self) -> bool {
        SAVED[self.0].load(Ordering::Acquire) != 0
    }

    /// Frees a guest context that will never run again, and its kernel
    /// stack. Only a suspended one: a running one's stack is in use.
    pub fn release(self) {
        assert!(
            self.0 >= IDLE_CONTEXTS && self.is_suspended(),
            "releasing an idle or a running context"
        );
        let _claim = CLAIM.lock();
        let top = STACKS[self.0].swap(0, Ordering::Relaxed);
        if top != 0 {
            SAVED[self.0].store(0, Ordering::Relaxed);
            crate::memory::release_kernel_stack(top);
        }
    }
}

/// Suspends the running context `from` and resumes `to`; returns when
/// `from` is resumed (never, if it is released meanwhile). Panics if `from`
/// is not this CPU's running context, or `to` is not suspended (after
/// waiting for the CPU that left it to save it).
pub fn switch(from: Context, to: Context) {
    let cpu = crate::percpu::this();
    assert_eq!(
        cpu.context.load(Ordering::Relaxed),
        from.0,
        "switch from a context that is not running"
    );
    let target = take_saved(to);
    cpu.context.store(to.0, Ordering::Relaxed);
    // SAFETY: `target` is the stack pointer `switch_stacks` saved when `to`
    // was suspended (or the one `for_guest` prepared), taken once; `from`'s
    // slot is the running context's own, which `switch_stacks` writes before
    // it leaves. Interrupts are off (the nucleus is not preemptible).
    unsafe { switch_stacks(SAVED[from.0].as_ptr(), target) };
}

/// `to`'s saved stack pointer, taken: waits while another CPU is still
/// leaving it.
fn take_saved(to: Context) -> u64 {
    let slot = &SAVED[to.0];
    let target = slot.swap(0, Ordering::Acquire);
    if target != 0 {
        return target;
    }
    let give_up = crate::time::rdtsc().saturating_add(SAVE_WAIT_CYCLES);
    loop {
        core::hint::spin_loop();
        let target = slot.swap(0, Ordering::Acquire);
        if target != 0 {
            return target;
        }
        assert!(
            crate::time::rdtsc() < give_up,
            "switch to a context that is not suspended"
        );
    }
}

/// Saves callee-saved registers on the current stack, stores RSP at `from`,
/// loads `to` and pops the next context's registers. Returns into whatever
/// that context was doing when it switched away (or `start_context` for a
/// new one).
#[unsafe(naked)]
unsafe extern "C" fn switch_stacks(from: *mut u64, to: u64) {
    naked_asm!(
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
    );
}

/// A new context's first code: calls its `main` (in R12, from `new`),
/// which never returns.
#[unsafe(naked)]
extern "C" fn start_context() -> ! {
    naked_asm!("xor ebp, ebp", "call r12", "ud2");
}
