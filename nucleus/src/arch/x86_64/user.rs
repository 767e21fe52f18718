//! Ring 3: running a guest until it enters the nucleus again, the SYSCALL
//! entry and the MSRs behind it.
//!
//! [`run`] is the only way into ring 3: it takes the guest's registers (a
//! [`TrapFrame`] the caller owns, on its kernel stack), enters ring 3 with
//! them, and returns when the guest comes back, saying why ([`UserExit`]):
//! a system call, an interrupt (already handled), or an exception. The
//! guest's registers are then in the frame. Entries from ring 3 build the
//! frame in place: RSP0 and the SYSCALL entry's stack both point at its
//! end. So `arch` never calls up into the scheduler: what a guest's entry
//! means is decided above it, by `run`'s caller.
//!
//! A system call returns with `sysretq` (much cheaper than `iretq`);
//! everything else, and a system-call frame SYSRET could not return to,
//! with `iretq`. The stack slots the entries use are the CPU's own, in its
//! [`PerCpu`](crate::percpu::PerCpu), reached through GS after `swapgs`.

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

/// Why a guest came back from ring 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserExit {
    /// It made a system call (number and arguments in its registers).
    Syscall,
    /// An interrupt arrived while it ran; the hardware's part is done
    /// (acknowledged, counted).
    Interrupt { vector: u8 },
    /// It raised an exception; `address` is CR2 for a page fault.
    Fault { vector: u8, address: u64 },
}

/// `run`'s verdict as the entry paths return it in RAX: the kind in the
/// second byte, the vector in the first.
pub(crate) mod exit_code {
    pub const SYSCALL: u64 = 0x100;
    const INTERRUPT: u64 = 0x200;
    const FAULT: u64 = 0x300;

    pub fn interrupt(vector: u8) -> u64 {
        INTERRUPT | vector as u64
    }

    pub fn fault(vector: u8) -> u64 {
        FAULT | vector as u64
    }

    #[inline(always)]
    pub fn decode(code: u64) -> super::UserExit {
        // The system call first: it is the common way back.
        if code == SYSCALL {
            return super::UserExit::Syscall;
        }
        let vector = code as u8;
        match code & !0xff {
            INTERRUPT => super::UserExit::Interrupt { vector },
            _ => super::UserExit::Fault {
                vector,
                address: crate::percpu::this()
                    .user_fault_address
                    .load(core::sync::atomic::Ordering::Relaxed),
            },
        }
    }
}

/// The registers a guest's thread first enters ring 3 with: `entry` with
/// the stack `stack_top` and `arguments` in RDI, RSI, RDX, interrupts on.
pub fn first_registers(entry: u64, stack_top: u64, arguments: [u64; 3]) -> TrapFrame {
    TrapFrame {
        rdi: arguments[0],
        rsi: arguments[1],
        rdx: arguments[2],
        rip: entry,
        cs: USER_CODE_SELECTOR as u64,
        rflags: 0x202, // IF set
        rsp: stack_top,
        ss: USER_DATA_SELECTOR as u64,
        ..TrapFrame::default()
    }
}

/// Runs ring 3 with `registers` until the guest enters the nucleus again
/// (system call, interrupt, exception); then `registers` hold its state
/// and the result says why. Interrupts stay off in the nucleus: the caller
/// runs with them off, and returns here with them off.
pub fn run(registers: &mut TrapFrame) -> UserExit {
    let end = registers as *mut TrapFrame as u64 + core::mem::size_of::<TrapFrame>() as u64;
    let cpu = crate::percpu::this();
    if cpu.registers_end.load(Ordering::Relaxed) != end {
        cpu.registers_end.store(end, Ordering::Relaxed);
        cpu.set_kernel_stack(end);
    }
    let code: u64;
    // SAFETY: `registers` is a live, exclusively borrowed frame, 16-byte
    // aligned (its type says so), whose end RSP0 and the SYSCALL entry now
    // name: the entries from ring 3 write it and nothing else; the
    // segment selectors and RFLAGS that reach ring 3 come from it, and
    // `return_from_syscall` / `return_from_trap` enter ring 3 only with the
    // user selectors (the CPU refuses anything else in CS/SS at that
    // privilege). The nucleus's stack, with the resume address and the two
    // registers LLVM may not be told are clobbered (RBX, RBP) pushed, is
    // kept in this CPU's `resume_rsp` and resumed exactly once, by the next
    // entry (which swaps GS back to the nucleus's first),
    // through `leave_user`, which pops them and returns to label 2 with the
    // exit code in RAX. Every other general register is declared
    // clobbered (ring 3 ran in between); the nucleus uses no vector
    // registers (soft-float target), and the entries clear DF.
    unsafe {
        core::arch::asm!(
            "lea rax, [rip + 2f]",
            "push rax",
            "push rbx",
            "push rbp",
            "mov qword ptr gs:[{resume_rsp}], rsp",
            "mov rsp, {registers}",
            "cmp qword ptr [rsp + {vector}], {syscall}",
            "je {sysret}",
            "jmp {iret}",
            "2:",
            registers = in(reg) registers as *mut TrapFrame,
            resume_rsp = const crate::percpu::RESUME_RSP_OFFSET,
            vector = const core::mem::offset_of!(TrapFrame, vector),
            syscall = const SYSCALL_VECTOR,
            sysret = sym return_from_syscall,
            iret = sym return_from_trap,
            out("rax") code,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
    exit_code::decode(code)
}

/// The end of every entry from ring 3: on the stack `run` left (RSP is
/// the CPU's `resume_rsp`), pops RBP and RBX and returns into `run` with RAX.
#[unsafe(naked)]
pub(crate) extern "C" fn leave_user() {
    naked_asm!("pop rbp", "pop rbx", "ret");
}

/// A guest's exception taken on an IST stack (machine check, double
/// fault): its frame is copied to the guest's registers and `run` returns
/// `code`, leaving the IST stack for good.
pub(crate) fn leave_ist_for_fault(frame: &TrapFrame, code: u64) -> ! {
    let registers = crate::percpu::this().registers_end.load(Ordering::Relaxed)
        - core::mem::size_of::<TrapFrame>() as u64;
    // SAFETY: `registers_end` names the end of the running guest's frame,
    // borrowed by `run` (which is waiting under `resume_rsp`) and written
    // by nothing else while it runs; `frame` is on the IST stack, apart
    // from it. Leaving the IST stack without IRETQ is sound for #MC (MCIP
    // was cleared) and #DF, which never return.
    unsafe {
        core::ptr::copy_nonoverlapping(frame, registers as *mut TrapFrame, 1);
        core::arch::asm!(
            "mov rsp, qword ptr gs:[{resume_rsp}]",
            "jmp {leave_user}",
            resume_rsp = const crate::percpu::RESUME_RSP_OFFSET,
            leave_user = sym leave_user,
            in("rax") code,
            options(noreturn),
        )
    }
}

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

#[unsafe(naked)]
extern "C" fn syscall_entry() {
    naked_asm!(
        "swapgs",
        "mov qword ptr gs:[{user_rsp}], rsp",
        "mov rsp, qword ptr gs:[{kernel_rsp}]",
        "push {user_ss}",
        "push qword ptr gs:[{user_rsp}]",
        "push r11", // RFLAGS
        "push {user_cs}",
        "push rcx", // RIP
        "push 0",
        "push {vector}",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        load_table!("nucleus_table"),
        "mov rsp, qword ptr gs:[{resume_rsp}]",
        "mov eax, {exit_syscall}",
        "jmp {leave_user}",
        switch = const SWITCH_TABLES as u8,
        nucleus_table = sym crate::memory::NUCLEUS_TABLE,
        cr3_writes = sym crate::memory::CR3_WRITES,
        user_rsp = const crate::percpu::SYSCALL_USER_RSP_OFFSET,
        kernel_rsp = const crate::percpu::REGISTERS_END_OFFSET,
        resume_rsp = const crate::percpu::RESUME_RSP_OFFSET,
        exit_syscall = const exit_code::SYSCALL,
        leave_user = sym leave_user,
        user_ss = const USER_DATA_SELECTOR,
        user_cs = const USER_CODE_SELECTOR,
        vector = const SYSCALL_VECTOR,
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
        "swapgs",
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
