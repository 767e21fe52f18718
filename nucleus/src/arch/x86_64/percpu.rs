//! Per-CPU state, reached through GS. In the nucleus GS_BASE names this
//! CPU's [`PerCpu`] (and KERNEL_GS_BASE holds the guest's, 0); every entry
//! from ring 3 begins with `swapgs` and every return to it ends with one,
//! so the entry paths find their stacks with one GS-relative load, without
//! globals. Each CPU has its own GDT and TSS (RSP0, its IST stacks).
//!
//! A trap taken in ring 0 does not swap: its GS is the nucleus's, except in
//! the few instructions between SYSCALL and its `swapgs` (and before
//! SYSRET / IRETQ back to ring 3), where only an NMI or a machine check can
//! arrive. Their ring-0 handling therefore never uses this module.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::{GsBase, KernelGsBase};
use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

/// One CPU's state. The entry assembly reaches the first fields at fixed
/// offsets from GS (the `*_OFFSET` constants).
#[repr(C, align(64))]
pub struct PerCpu {
    /// Its own address: how Rust code finds it (one GS-relative load).
    this: AtomicU64,
    /// The end of the running guest's registers, where its entries build
    /// their frame: the SYSCALL entry's stack (and RSP0 in the TSS).
    pub(crate) registers_end: AtomicU64,
    /// The nucleus's stack pointer in `user::run`, with its callee-saved
    /// registers pushed, while ring 3 runs: where every entry resumes.
    pub(crate) resume_rsp: AtomicU64,
    /// The guest's RSP between `syscall` and the push onto the kernel stack.
    pub(crate) syscall_user_rsp: AtomicU64,
    /// The address of the guest's last page fault, between the trap and
    /// `run`'s return.
    pub(crate) user_fault_address: AtomicU64,
    /// 0 for the boot CPU, then in the order the CPUs came up.
    index: AtomicU32,
    apic_id: AtomicU32,
    /// Set by the CPU itself when its bring-up is done.
    online: AtomicBool,
    /// The kernel context it runs (`context`'s index).
    pub(crate) context: AtomicUsize,
    /// When its timer fires next (TSC, deadline mode).
    pub(crate) next_deadline: AtomicU64,
    /// The last TLB shoot-down round it has flushed for (`tlb`).
    pub(crate) flushed_round: AtomicU64,
    pub(crate) tss: UnsafeCell<TaskStateSegment>,
    pub(crate) gdt: UnsafeCell<GlobalDescriptorTable>,
}

// SAFETY: the atomics are shared; the TSS and GDT are written only by their
// own CPU (at bring-up, and RSP0 in `set_kernel_stack`, with interrupts
// off), and otherwise read only by that CPU's hardware.
unsafe impl Sync for PerCpu {}

pub const REGISTERS_END_OFFSET: usize = core::mem::offset_of!(PerCpu, registers_end);
pub const RESUME_RSP_OFFSET: usize = core::mem::offset_of!(PerCpu, resume_rsp);
pub const SYSCALL_USER_RSP_OFFSET: usize = core::mem::offset_of!(PerCpu, syscall_user_rsp);

/// The boot CPU's; the others' are allocated as they come up.
pub static BOOT_CPU: PerCpu = PerCpu::new();

/// CPUs the nucleus can run on (more are left parked, and said so).
pub const MAX_CPUS: usize = 64;

/// Every CPU's state by index, as it was identified.
static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// CPU `index`'s state, once it is identified.
pub fn by_index(index: usize) -> Option<&'static PerCpu> {
    let cpu = CPUS.get(index)?.load(Ordering::Acquire);
    // SAFETY: only `identify` stores here, the address of a `'static`
    // `PerCpu` (the boot CPU's static, or a leaked allocation).
    (!cpu.is_null()).then(|| unsafe { &*cpu })
}

/// The CPUs that are online, by index.
pub fn online() -> impl Iterator<Item = &'static PerCpu> {
    (0..MAX_CPUS)
        .map_while(by_index)
        .filter(|cpu| cpu.is_online())
}

impl PerCpu {
    pub const fn new() -> PerCpu {
        PerCpu {
            this: AtomicU64::new(0),
            registers_end: AtomicU64::new(0),
            resume_rsp: AtomicU64::new(0),
            syscall_user_rsp: AtomicU64::new(0),
            user_fault_address: AtomicU64::new(0),
            index: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            online: AtomicBool::new(false),
            context: AtomicUsize::new(0),
            next_deadline: AtomicU64::new(0),
            flushed_round: AtomicU64::new(0),
            tss: UnsafeCell::new(TaskStateSegment::new()),
            gdt: UnsafeCell::new(GlobalDescriptorTable::new()),
        }
    }

    pub fn index(&self) -> u32 {
        self.index.load(Ordering::Relaxed)
    }

    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    pub(crate) fn set_online(&self) {
        self.online.store(true, Ordering::Release);
    }

    /// Names it CPU `index` with APIC id `apic_id` (before it runs) and
    /// lists it (`by_index`). Its idle context is the one with its index.
    pub fn identify(&'static self, index: u32, apic_id: u32) {
        assert!((index as usize) < MAX_CPUS, "more than {MAX_CPUS} CPUs");
        self.index.store(index, Ordering::Relaxed);
        self.apic_id.store(apic_id, Ordering::Relaxed);
        self.context.store(index as usize, Ordering::Relaxed);
        CPUS[index as usize].store(self as *const PerCpu as *mut PerCpu, Ordering::Release);
    }

    /// The stack the CPU switches to when an interrupt or exception arrives
    /// in ring 3: the running guest's kernel stack. Only its own CPU calls
    /// this (through [`this`]).
    pub fn set_kernel_stack(&self, top: u64) {
        // SAFETY: see `Sync` above: this CPU's TSS, written by this CPU
        // with interrupts off; the CPU reads RSP0 at the next ring 3 entry.
        unsafe { (*self.tss.get()).privilege_stack_table[0] = VirtAddr::new(top) };
    }
}

/// Makes `cpu` this CPU's per-CPU state: GS_BASE names it, KERNEL_GS_BASE
/// (what ring 3 gets at `swapgs`) is 0.
pub fn install(cpu: &'static PerCpu) {
    let address = cpu as *const PerCpu as u64;
    cpu.this.store(address, Ordering::Relaxed);
    GsBase::write(VirtAddr::new(address));
    KernelGsBase::write(VirtAddr::new(0));
}

/// This CPU's index (0 the boot CPU), in one GS-relative load. Not for
/// ring-0 NMI or machine-check handling (see the module's comment).
#[inline(always)]
pub fn index() -> u32 {
    let index: u32;
    // SAFETY: in the nucleus GS_BASE names this CPU's `PerCpu` (`install`
    // ran before anything calls this); the load reads its `index` field,
    // written once before the CPU ran anything, and has no other effect.
    unsafe {
        core::arch::asm!(
            "mov {:e}, dword ptr gs:[{offset}]",
            out(reg) index,
            offset = const INDEX_OFFSET,
            options(nostack, readonly, preserves_flags)
        );
    }
    index
}

const INDEX_OFFSET: usize = core::mem::offset_of!(PerCpu, index);

/// This CPU's state. Not for ring-0 NMI or machine-check handling (see
/// the module's comment).
#[inline(always)]
pub fn this() -> &'static PerCpu {
    let address: u64;
    // SAFETY: in the nucleus GS_BASE names this CPU's `PerCpu` (`install`
    // ran before anything calls this), whose first word is its own
    // address; reading it has no other effect.
    unsafe {
        core::arch::asm!(
            "mov {}, qword ptr gs:[0]",
            out(reg) address,
            options(nostack, readonly, preserves_flags)
        );
        &*(address as *const PerCpu)
    }
}
