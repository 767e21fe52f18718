//! Interrupt and exception entry. Every vector has a naked stub that pushes
//! a uniform frame (a zero error code where the CPU pushes none, then the
//! vector) and jumps to one common path that saves the registers. A trap in
//! the nucleus is handled here, on the stack it arrived on ([`trap_dispatch`]),
//! and returned from. A trap from ring 3 lands in the running guest's
//! registers (`user::run`'s frame, where RSP0 points); it is handled as far
//! as the hardware goes ([`user_trap`]: acknowledged, counted, CR2 read) and
//! then reported as `run`'s result: the nucleus above `arch` decides what
//! happens to the guest. Nothing here calls up into it.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use nucleus_core::qemu::ExitCode;
use nucleus_core::traps::{EXCEPTIONS, PageFaultCause, SelectorErrorCause, has_error_code};
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::registers::control::Cr2;
use x86_64::registers::model_specific::Msr;
use x86_64::structures::DescriptorTablePointer;

use crate::gdt::{DOUBLE_FAULT_IST, MACHINE_CHECK_IST, NMI_IST};

pub const TIMER_VECTOR: u8 = 0x20;
const NMI_VECTOR: u8 = 2;
const MACHINE_CHECK_VECTOR: u8 = 18;
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// The IPI that wakes an idle CPU to run a thread another CPU made runnable.
pub const RESCHEDULE_VECTOR: u8 = 0xf0;

/// Registers as the entry path leaves them on the stack (lowest address
/// first). Aligned as the CPU aligns the stack it pushes an interrupt frame
/// on, so a guest's registers can be where RSP0 points.
#[repr(C, align(16))]
#[derive(Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Where `cs` sits in a [`TrapFrame`], for the entry and exit assembly.
const FRAME_CS_OFFSET: usize = core::mem::offset_of!(TrapFrame, cs);
const FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(FRAME_SIZE.is_multiple_of(16));

macro_rules! trap_stubs {
    ($($name:ident = $vector:literal),* $(,)?) => {
        $(
            #[unsafe(naked)]
            extern "C" fn $name() {
                naked_asm!(
                    ".if {has_error_code} == 0",
                    "push 0",
                    ".endif",
                    "push {vector}",
                    "jmp {common}",
                    has_error_code = const has_error_code($vector) as u8,
                    vector = const $vector,
                    common = sym trap_entry_common,
                );
            }
        )*
        const STUBS: &[(u8, extern "C" fn())] = &[$(($vector, $name)),*];
    };
}

trap_stubs!(
    vector_0 = 0,
    vector_1 = 1,
    vector_2 = 2,
    vector_3 = 3,
    vector_4 = 4,
    vector_5 = 5,
    vector_6 = 6,
    vector_7 = 7,
    vector_8 = 8,
    vector_9 = 9,
    vector_10 = 10,
    vector_11 = 11,
    vector_12 = 12,
    vector_13 = 13,
    vector_14 = 14,
    vector_15 = 15,
    vector_16 = 16,
    vector_17 = 17,
    vector_18 = 18,
    vector_19 = 19,
    vector_20 = 20,
    vector_21 = 21,
    vector_22 = 22,
    vector_23 = 23,
    vector_24 = 24,
    vector_25 = 25,
    vector_26 = 26,
    vector_27 = 27,
    vector_28 = 28,
    vector_29 = 29,
    vector_30 = 30,
    vector_31 = 31,
);

/// First vector that is an interrupt rather than an exception.
const FIRST_INTERRUPT_VECTOR: usize = 32;
/// Bytes per stub in [`interrupt_stubs`].
const INTERRUPT_STUB_SIZE: usize = 16;

/// Stubs for vectors 32-255, each exactly 16 bytes (hand-encoded so the
/// assembler cannot pick shorter forms): push 0 (no error code), push the
/// vector as imm32, jmp rel32 to the common path, int3 padding. Every vector
/// has a gate, so a stray interrupt is reported instead of raising #GP.
#[unsafe(naked)]
extern "C" fn interrupt_stubs() {
    naked_asm!(
        ".set vector, 32",
        ".rept 224",
        ".byte 0x6a, 0x00",
        ".byte 0x68",
        ".long vector",
        ".byte 0xe9",
        ".long {common} - . - 4",
        ".byte 0xcc, 0xcc, 0xcc, 0xcc",
        ".set vector, vector + 1",
        ".endr",
        common = sym trap_entry_common,
    );
}

/// Saves the general registers under the vector and error code each
/// vector's entry pushed. A
/// trap in the nucleus (or one on an IST stack) is dispatched in place and
/// returned from; one from ring 3, whose frame is the running guest's
/// registers, goes to [`user_trap`] on the nucleus stack `user::run` left,
/// and `run` returns with its verdict. The CPU aligned RSP to 16 before
/// pushing its 5 words; with 2 + 15 more the in-place call happens on a
/// 16-byte boundary, as the ABI requires (`run`'s stack is aligned
/// explicitly).
#[unsafe(naked)]
extern "C" fn trap_entry_common() {
    naked_asm!(
        // From ring 3: onto the nucleus's GS (the CS the CPU pushed, above
        // the vector and error code).
        "test byte ptr [rsp + {pushed_cs}], 3",
        "jz 1f",
        "swapgs",
        "1:",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        // The switching variant: from ring 3, onto the nucleus's table.
        crate::user::load_table!("nucleus_table", if_user),
        "mov rdi, rsp",
        "cld",
        // An interrupt gate keeps RFLAGS.AC: a guest that set it would run
        // the nucleus with SMAP lifted. CLAC exists only with SMAP.
        "cmp byte ptr [rip + {smap_on}], 0",
        "je 2f",
        "clac",
        "2:",
        "test byte ptr [rsp + {cs}], 3",
        "jz 3f",
        "lea rax, [rsp + {size}]",
        "cmp rax, qword ptr gs:[{registers_end}]",
        "jne 3f",
        // `run`'s stack, aligned for the call as the ABI asks (whatever
        // alignment `run` had), and resumed from `resume_rsp` after it.
        "mov rsp, qword ptr gs:[{resume_rsp}]",
        "and rsp, -16",
        "call {user_trap}",
        "mov rsp, qword ptr gs:[{resume_rsp}]",
        "jmp {leave_user}",
        "3:",
        "call {dispatch}",
        "jmp {restore}",
        switch = const crate::user::SWITCH_TABLES as u8,
        cs = const FRAME_CS_OFFSET,
        size = const FRAME_SIZE,
        nucleus_table = sym crate::memory::NUCLEUS_TABLE,
        cr3_writes = sym crate::memory::CR3_WRITES,
        dispatch = sym trap_dispatch,
        restore = sym return_from_trap,
        smap_on = sym crate::cpu::SMAP_ON,
        pushed_cs = const 3 * 8,
        registers_end = const crate::percpu::REGISTERS_END_OFFSET,
        resume_rsp = const crate::percpu::RESUME_RSP_OFFSET,
        user_trap = sym user_trap,
        leave_user = sym crate::user::leave_user,
    );
}

/// Pops a [`TrapFrame`]'s general registers, R15 first, as one assembly
/// template string: the start of both ways back to ring 3.
macro_rules! pop_general_registers {
    () => {
        "pop r15\npop r14\npop r13\npop r12\npop r11\npop r10\npop r9\npop r8\n\
         pop rbp\npop rdi\npop rsi\npop rdx\npop rcx\npop rbx\npop rax"
    };
}
pub(crate) use pop_general_registers;

/// Restores a [`TrapFrame`] at RSP and returns to it with `iretq`: the tail of
/// every interrupt and exception and of a guest's first entry to ring 3
/// (system calls return through `user::return_from_syscall`).
#[unsafe(naked)]
pub extern "C" fn return_from_trap() {
    naked_asm!(
        // The switching variant: back to ring 3, onto the guest's table.
        crate::user::load_table!("guest_table", if_user),
        pop_general_registers!(),
        "add rsp, 16",
        // Back to ring 3: the guest's GS (the CS in the frame, after RIP).
        "test byte ptr [rsp + 8], 3",
        "jz 1f",
        "swapgs",
        "1:",
        "iretq",
        switch = const crate::user::SWITCH_TABLES as u8,
        cs = const FRAME_CS_OFFSET,
        guest_table = sym crate::user::GUEST_TABLE,
        cr3_writes = sym crate::memory::CR3_WRITES,
    );
}

/// The nucleus runs with RFLAGS.AC clear (the entry cleared it, with SMAP):
/// anything else is a broken entry path, and stops the machine.
fn check_alignment_check_clear(frame: &TrapFrame) {
    if !crate::cpu::alignment_check_clear() {
        report_and_stop(frame);
    }
}

/// A trap in the nucleus or the idle loop, or one from ring 3 on an IST
/// stack (NMI, machine check, double fault), handled where it arrived.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let from_user = frame.cs & 3 == 3;
    check_alignment_check_clear(frame);
    match frame.vector as u8 {
        // Whoever was interrupted (a guest, the nucleus, the idle loop)
        // carries on: an NMI is a signal, not a fault of theirs.
        NMI_VECTOR => on_nmi(frame),
        MACHINE_CHECK_VECTOR => on_machine_check(frame, from_user),
        vector if (vector as usize) < FIRST_INTERRUPT_VECTOR && from_user => {
            crate::user::leave_ist_for_fault(frame, user_fault(frame))
        }
        vector if (vector as usize) < FIRST_INTERRUPT_VECTOR => report_and_stop(frame),
        vector => on_interrupt(vector),
    }
}

/// A trap from ring 3, in the running guest's registers: handled as far as
/// the hardware asks (EOI, counts, CR2), then `user::run` returns what it
/// was (`user::exit_code`).
extern "C" fn user_trap(frame: &mut TrapFrame) -> u64 {
    check_alignment_check_clear(frame);
    let vector = frame.vector as u8;
    if (vector as usize) < FIRST_INTERRUPT_VECTOR {
        return user_fault(frame);
    }
    on_interrupt(vector);
    crate::user::exit_code::interrupt(vector)
}

/// An interrupt (vector 32 and up), wherever it arrived.
fn on_interrupt(vector: u8) {
    match vector {
        TIMER_VECTOR => {
            crate::apic::on_timer_interrupt();
            report_nmis_and_machine_checks();
        }
        // Another CPU made a thread runnable: being woken was the point.
        RESCHEDULE_VECTOR => crate::apic::end_of_interrupt(),
        crate::tlb::SHOOTDOWN_VECTOR => {
            crate::tlb::flush_for_round();
            crate::apic::end_of_interrupt();
        }
        // Spurious interrupts are not acknowledged (the SDM says no EOI).
        SPURIOUS_VECTOR => {}
        vector if crate::irq::dispatch(vector) => {}
        vector => crate::apic::on_unexpected_interrupt(vector),
    }
}

/// A guest's exception: its address kept for `run`'s report.
fn user_fault(frame: &TrapFrame) -> u64 {
    let address = if frame.vector == 14 {
        Cr2::read_raw()
    } else {
        0
    };
    crate::percpu::this()
        .user_fault_address
        .store(address, Ordering::Relaxed);
    crate::user::exit_code::fault(frame.vector as u8)
}

/// NMIs taken (and returned from) since boot, and how many were reported.
static NMIS: AtomicU64 = AtomicU64::new(0);
static NMIS_REPORTED: AtomicU64 = AtomicU64::new(0);
/// Where the last NMI's frame was (the `nmi` scenario checks it is on the
/// NMI's own stack).
static NMI_FRAME_AT: AtomicU64 = AtomicU64::new(0);
/// Machine checks the interrupted code survived, and the last one's bank,
/// status and address, for the report.
static MACHINE_CHECKS: AtomicU64 = AtomicU64::new(0);
static MACHINE_CHECKS_REPORTED: AtomicU64 = AtomicU64::new(0);
static LAST_MACHINE_CHECK: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// Counts the NMI; the report comes from ordinary context (an NMI may
/// land while the console's lock is held, so it prints nothing itself).
fn on_nmi(frame: &TrapFrame) {
    NMIS.fetch_add(1, Ordering::Relaxed);
    NMI_FRAME_AT.store(frame as *const TrapFrame as u64, Ordering::Relaxed);
}

/// NMIs so far, and where the last one's frame was.
pub fn nmis() -> (u64, u64) {
    (
        NMIS.load(Ordering::Relaxed),
        NMI_FRAME_AT.load(Ordering::Relaxed),
    )
}

use crate::cpu::{IA32_MC0_STATUS, IA32_MCG_CAP, IA32_MCG_STATUS};
const MCG_STATUS_RIPV: u64 = 1;
const MCI_STATUS_VALID: u64 = 1 << 63;
const MCI_STATUS_ADDRV: u64 = 1 << 58;

/// A machine check: its banks are read, recorded and cleared, and MCIP is
/// cleared (a second #MC while it is set shuts the CPU down). When the
/// interrupted code can restart (RIPV) it does, and the report follows
/// from ordinary context; otherwise the guest it interrupted is stopped,
/// or, in the nucleus, the machine.
fn on_machine_check(frame: &TrapFrame, from_user: bool) {
    let mut restartable = false;
    if crate::cpu::machine_check_banks_enabled() {
        // SAFETY: with MCA (CPUID, checked at boot) the MCG and MCi MSRs
        // exist, banks up to MCG_CAP's count; reading them has no side effect.
        let (status, banks) = unsafe {
            (
                Msr::new(IA32_MCG_STATUS).read(),
                Msr::new(IA32_MCG_CAP).read() & 0xff,
            )
        };
        restartable = status & MCG_STATUS_RIPV != 0;
        for bank in 0..banks as u32 {
            let mut bank_status = Msr::new(IA32_MC0_STATUS + 4 * bank);
            // SAFETY: as above, bank < MCG_CAP's count.
            let value = unsafe { bank_status.read() };
            if value & MCI_STATUS_VALID == 0 {
                continue;
            }
            let address = if value & MCI_STATUS_ADDRV != 0 {
                // SAFETY: MCi_ADDR exists for a bank that reports ADDRV.
                unsafe { Msr::new(IA32_MC0_STATUS + 4 * bank + 1).read() }
            } else {
                0
            };
            for (slot, v) in LAST_MACHINE_CHECK.iter().zip([bank as u64, value, address]) {
                slot.store(v, Ordering::Relaxed);
            }
            // SAFETY: writing 0 to MCi_STATUS clears the logged error, as
            // the SDM asks once it is recorded.
            unsafe { bank_status.write(0) };
        }
        // SAFETY: clearing MCG_STATUS (MCIP) says the handler is done.
        unsafe { Msr::new(IA32_MCG_STATUS).write(0) };
    }
    if restartable {
        MACHINE_CHECKS.fetch_add(1, Ordering::Relaxed);
    } else if from_user {
        crate::user::leave_ist_for_fault(frame, user_fault(frame));
    } else {
        report_and_stop(frame);
    }
}

/// Logs the NMIs and survived machine checks since the last report. Runs
/// from the timer interrupt, which arrives only in the idle loop or in ring
/// 3, where the nucleus holds no lock.
fn report_nmis_and_machine_checks() {
    let nmis = NMIS.load(Ordering::Relaxed);
    let reported = NMIS_REPORTED.swap(nmis, Ordering::Relaxed);
    if nmis != reported {
        crate::log!(
            "nmi: {} non-maskable interrupt(s) ({nmis} since boot), handled and returned from",
            nmis - reported
        );
    }
    let checks = MACHINE_CHECKS.load(Ordering::Relaxed);
    if MACHINE_CHECKS_REPORTED.swap(checks, Ordering::Relaxed) != checks {
        let [bank, status, address] = LAST_MACHINE_CHECK
            .each_ref()
            .map(|v| v.load(Ordering::Relaxed));
        crate::log!(
            "machine check: bank {bank}: status {status:#x}, address {address:#x}; the interrupted code could restart, and did ({checks} since boot)"
        );
    }
}

/// A 64-bit interrupt gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

const MISSING_GATE: Gate = Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    attributes: 0,
    offset_middle: 0,
    offset_high: 0,
    reserved: 0,
};

impl Gate {
    /// Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
    fn interrupt(handler: u64, ist_slot: Option<u16>) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: 0x08,
            ist: ist_slot.map_or(0, |slot| slot as u8 + 1),
            attributes: 0x8e,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

static IDT: Once<[Gate; 256]> = Once::new();

pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = [MISSING_GATE; 256];
        let first_stub = interrupt_stubs as *const () as usize;
        for (index, gate) in idt[FIRST_INTERRUPT_VECTOR..].iter_mut().enumerate() {
            *gate = Gate::interrupt((first_stub + index * INTERRUPT_STUB_SIZE) as u64, None);
        }
        for &(vector, stub) in STUBS {
            let ist = match vector {
                2 => Some(NMI_IST),
                8 => Some(DOUBLE_FAULT_IST),
                18 => Some(MACHINE_CHECK_IST),
                _ => None,
            };
            idt[vector as usize] = Gate::interrupt(stub as usize as u64, ist);
        }
        idt
    });
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::new(idt.as_ptr() as u64),
    };
    // SAFETY: the table is 'static, every present gate points at a stub
    // above and names the kernel code selector loaded by `gdt::init`.
    unsafe { lidt(&pointer) };
}

/// A guest's exception in words: "#PF page fault at rip ..., error code
/// ...: meaning, address ...", for the report that stops it.
pub struct FaultDescription<'a> {
    pub frame: &'a TrapFrame,
    pub address: u64,
}

impl core::fmt::Display for FaultDescription<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let frame = self.frame;
        let (mnemonic, name) = EXCEPTIONS
            .get(frame.vector as usize)
            .copied()
            .unwrap_or(("IRQ", "unexpected interrupt"));
        write!(
            f,
            "{mnemonic} {name} at rip {:#x}, error code {:#x}{}, address {:#x}",
            frame.rip,
            frame.error_code,
            ErrorCodeMeaning(frame),
            self.address
        )
    }
}

/// Whether a page fault's error code says a protection key refused it.
pub fn is_protection_key_fault(vector: u8, error_code: u64) -> bool {
    vector == 14 && error_code & (1 << 5) != 0
}

/// Prints everything known about an exception the nucleus cannot handle,
/// then stops the machine. (Guest faults will be contained before this.)
fn report_and_stop(frame: &TrapFrame) -> ! {
    let vector = frame.vector as usize;
    let (mnemonic, name) = EXCEPTIONS
        .get(vector)
        .copied()
        .unwrap_or(("IRQ", "unexpected interrupt"));
    crate::console::log_fatal(format_args!(
        "EXCEPTION {mnemonic} {name} (vector {vector}), error code {:#x}{}",
        frame.error_code,
        ErrorCodeMeaning(frame)
    ));
    print_registers(frame);
    crate::log!("nucleus stopped: unhandled {mnemonic} in the nucleus");
    crate::stop::stop(ExitCode::Failure)
}

/// The registers of `frame` (and CR2 for a page fault), one block of
/// indented lines on every console.
pub fn print_registers(frame: &TrapFrame) {
    let f = frame;
    if f.vector == 14 {
        crate::console::print(format_args!("  cr2 {:#018x}\n", Cr2::read_raw()));
    }
    crate::console::print(format_args!(
        "  rip {:#018x}  cs {:#x}  rflags {:#x}\n  rsp {:#018x}  ss {:#x}\n",
        f.rip, f.cs, f.rflags, f.rsp, f.ss
    ));
    crate::console::print(format_args!(
        "  rax {:#018x}  rbx {:#018x}  rcx {:#018x}  rdx {:#018x}\n  \
         rsi {:#018x}  rdi {:#018x}  rbp {:#018x}  r8  {:#018x}\n  \
         r9  {:#018x}  r10 {:#018x}  r11 {:#018x}  r12 {:#018x}\n  \
         r13 {:#018x}  r14 {:#018x}  r15 {:#018x}\n",
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx,
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8,
        f.r9,
        f.r10,
        f.r11,
        f.r12,
        f.r13,
        f.r14,
        f.r15
    ));
}

/// The error code in words, for the vectors where it has a meaning.
struct ErrorCodeMeaning<'a>(&'a TrapFrame);

impl core::fmt::Display for ErrorCodeMeaning<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0.vector {
            14 => write!(f, ": {}", PageFaultCause(self.0.error_code)),
            10..=13 => write!(f, ": {}", SelectorErrorCause(self.0.error_code)),
            _ => Ok(()),
        }
    }
}
