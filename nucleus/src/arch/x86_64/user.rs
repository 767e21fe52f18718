//! Ring 3: the SYSCALL entry and the MSRs behind it.
//!
//! A guest enters the nucleus only with `syscall` (or by faulting or being
//! interrupted). The entry builds the same [`TrapFrame`] an interrupt from
//! ring 3 would, on the running guest's kernel stack, so the scheduler and
//! the fault paths see one kind of frame. A system call returns with
//! `sysretq` (much cheaper than `iretq`); everything else, and a system-call
//! frame SYSRET could not return to, with `iretq`. Only one CPU runs guests,
//! so the stack switch uses two globals rather than per-CPU data through GS.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::gdt::SegmentSelector;

use crate::gdt::{
    KERNEL_CODE_SELECTOR, KERNEL_DATA_SELECTOR, USER_CODE_SELECTOR, USER_DATA_SELECTOR,
};
use crate::traps::{TrapFrame, pop_general_registers, return_from_trap};

/// The `vector` a system call's frame carries (outside 0-255, so it can
/// never be mistaken for an interrupt).
pub const SYSCALL_VECTOR: u64 = 0x100;

/// Whether this is the page-table-switching variant (feature
/// `page-table-switching`): then every entry from ring 3 loads the
/// nucleus's table and every return to ring 3 the guest's own.
pub const SWITCH_TABLES: bool = cfg!(feature = "page-table-switching");
/// The running guest's own page table (the switching variant only).
pub static GUEST_TABLE: AtomicU64 = AtomicU64::new(0);

/// The switching variant's CR3 load, as one assembly template string: when
/// the `{switch}` operand is 1, loads the table stored at the `sym` operand
/// named `$table` and counts the write (`{cr3_writes}`); with `if_user`,
/// only when the trap frame at RSP came from ring 3 (`{cs}` is the offset
/// of its CS). Clobbers RAX, which the callers have saved or will restore.
macro_rules! load_table {
    ($table:literal) => {
        concat!(
            ".if {switch}\n",
            "mov rax, [rip + {",
            $table,
            "}]\n",
            "mov cr3, rax\n",
            "lock inc qword ptr [rip + {cr3_writes}]\n",
            ".endif",
        )
    };
    ($table:literal, if_user) => {
        concat!(
            ".if {switch}\n",
            "test byte ptr [rsp + {cs}], 3\n",
            "jz 2f\n",
            "mov rax, [rip + {",
            $table,
            "}]\n",
            "mov cr3, rax\n",
            "lock inc qword ptr [rip + {cr3_writes}]\n",
            "2:\n",
            ".endif",
        )
    };
}
pub(crate) use load_table;

/// Top of the running guest's kernel stack (also in the TSS as RSP0).
static SYSCALL_KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
/// The guest's RSP between `syscall` and the push onto the kernel stack.
static SYSCALL_USER_RSP: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    // SAFETY: SCE enables SYSCALL/SYSRET; STAR names the GDT's selectors
    // (checked in `gdt::init`), LSTAR the entry below, SFMASK clears IF, DF,
    // TF, AC and NT on entry so the entry runs with interrupts off, string
    // ops forward, no single-step, SMAP enforced, and no nested-task flag (a
    // guest can set NT with POPF; left set, the nucleus's own IRETQ would
    // fault).
    unsafe {
        Efer::update(|efer| efer.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
        Star::write(
            SegmentSelector(USER_CODE_SELECTOR),
            SegmentSelector(USER_DATA_SELECTOR),
            SegmentSelector(KERNEL_CODE_SELECTOR),
            SegmentSelector(KERNEL_DATA_SELECTOR),
        )
        .expect("GDT order fits SYSCALL/SYSRET");
        LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::ALIGNMENT_CHECK
                | RFlags::NESTED_TASK,
        );
    }
}

/// Where system calls and ring-3 interrupts of the next guest to run land.
pub fn set_kernel_stack(top: u64) {
    SYSCALL_KERNEL_RSP.store(top, Ordering::Relaxed);
    crate::gdt::set_kernel_stack(top);
}

#[unsafe(naked)]
extern "C" fn syscall_entry() {
    naked_asm!(
        "mov [rip + {user_rsp}], rsp",
        "mov rsp, [rip + {kernel_rsp}]",
        "push {user_ss}",
        "push qword ptr [rip + {user_rsp}]",
        "push r11", // RFLAGS
        "push {user_cs}",
        "push rcx", // RIP
        "push 0",
        "push {vector}",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        load_table!("nucleus_table"),
        "mov rdi, rsp",
        "call {dispatch}",
        "jmp {sysret}",
        switch = const SWITCH_TABLES as u8,
        nucleus_table = sym crate::memory::NUCLEUS_TABLE,
        cr3_writes = sym crate::memory::CR3_WRITES,
        user_rsp = sym SYSCALL_USER_RSP,
        kernel_rsp = sym SYSCALL_KERNEL_RSP,
        user_ss = const USER_DATA_SELECTOR,
        user_cs = const USER_CODE_SELECTOR,
        vector = const SYSCALL_VECTOR,
        dispatch = sym syscall_dispatch,
        sysret = sym return_from_syscall,
    );
}

/// Where `rip`, `rflags` and `rsp` sit in a [`TrapFrame`] once its general
/// registers are popped.
const TAIL_RIP: usize =
    core::mem::offset_of!(TrapFrame, rip) - core::mem::offset_of!(TrapFrame, vector);
const TAIL_RFLAGS: usize =
    core::mem::offset_of!(TrapFrame, rflags) - core::mem::offset_of!(TrapFrame, vector);
const TAIL_RSP: usize =
    core::mem::offset_of!(TrapFrame, rsp) - core::mem::offset_of!(TrapFrame, vector);

/// Returns from a system call with `sysretq`, which costs far less than the
/// `iretq` of [`return_from_trap`]. The frame at RSP is the one
/// `syscall_entry` built (CS and SS the user selectors STAR names), so only
/// RIP, RFLAGS, RSP and the general registers come from it; RCX and R11
/// are clobbered, as the system-call ABI says. A non-canonical RIP would
/// make SYSRET fault in ring 0 on the guest's stack (on Intel), so such a
/// frame (no guest's own `syscall` makes one) returns through `iretq`.
/// (AMD's SYSRET keeps SS's hidden attributes, stale after an interrupt in
/// ring 0 loaded a null SS; only 32-bit code notices, and guests are 64-bit.)
#[unsafe(naked)]
extern "C" fn return_from_syscall() {
    naked_asm!(
        // Interrupts stay off from here to SYSRET: one taken after RSP is the
        // guest's would push its frame onto the guest's stack.
        "cli",
        "mov rax, [rsp + {rip}]",
        "shr rax, 47",
        "jnz {restore}",
        load_table!("guest_table"),
        pop_general_registers!(),
        "mov rcx, [rsp + {tail_rip}]",
        "mov r11, [rsp + {tail_rflags}]",
        "mov rsp, [rsp + {tail_rsp}]",
        "sysretq",
        rip = const core::mem::offset_of!(TrapFrame, rip),
        tail_rip = const TAIL_RIP,
        tail_rflags = const TAIL_RFLAGS,
        tail_rsp = const TAIL_RSP,
        switch = const SWITCH_TABLES as u8,
        guest_table = sym GUEST_TABLE,
        cr3_writes = sym crate::memory::CR3_WRITES,
        restore = sym return_from_trap,
    );
}

extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    crate::sched::on_syscall(frame);
}
