//! GDT and TSS, one of each per CPU (in its [`PerCpu`]). Segment order
//! fits SYSCALL/SYSRET (kernel code, kernel data, then user data, user
//! code). Double fault, NMI and machine check run on their own IST stacks,
//! so they are handled even when the interrupted stack is broken.

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, SegmentSelector};

use crate::percpu::{self, PerCpu};
use crate::stacks::{DOUBLE_FAULT_STACK, MACHINE_CHECK_STACK, NMI_STACK};

/// IST slots (the IDT names them 1-based; the TSS array is 0-based).
pub const DOUBLE_FAULT_IST: u16 = 0;
pub const NMI_IST: u16 = 1;
pub const MACHINE_CHECK_IST: u16 = 2;

pub const KERNEL_CODE_SELECTOR: u16 = 0x08;
pub const KERNEL_DATA_SELECTOR: u16 = 0x10;
pub const USER_DATA_SELECTOR: u16 = 0x18 | 3;
pub const USER_CODE_SELECTOR: u16 = 0x20 | 3;

/// The tops of one CPU's IST stacks: double fault, NMI, machine check.
pub type IstStacks = [u64; 3];

/// The boot CPU: its GDT and TSS, with the static IST stacks, and GS.
pub fn init() {
    let ist = [
        DOUBLE_FAULT_STACK.top(),
        NMI_STACK.top(),
        MACHINE_CHECK_STACK.top(),
    ];
    load(&percpu::BOOT_CPU, ist);
}

/// Builds `cpu`'s GDT and TSS (with the IST stacks `ist`), loads them on
/// this CPU, and makes `cpu` its per-CPU state. Once per CPU, on that CPU,
/// interrupts off.
pub fn load(cpu: &'static PerCpu, ist: IstStacks) {
    // SAFETY: `load` runs once per CPU, on that CPU, before its TSS is in
    // use; nothing else writes it (see `PerCpu`'s `Sync`).
    let tss = unsafe { &mut *cpu.tss.get() };
    tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = VirtAddr::new(ist[0]);
    tss.interrupt_stack_table[NMI_IST as usize] = VirtAddr::new(ist[1]);
    tss.interrupt_stack_table[MACHINE_CHECK_IST as usize] = VirtAddr::new(ist[2]);
    // SAFETY: as above, for the GDT, which lives as long as `cpu` (for ever).
    let gdt = unsafe { &mut *cpu.gdt.get() };
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let user_data = gdt.append(Descriptor::user_data_segment());
    let user_code = gdt.append(Descriptor::user_code_segment());
    // SAFETY: the TSS lives for ever (in `cpu`) and is this CPU's alone.
    let tss_selector = gdt.append(Descriptor::tss_segment(unsafe { &*cpu.tss.get() }));
    assert_eq!(code.0, KERNEL_CODE_SELECTOR);
    assert_eq!(data.0, KERNEL_DATA_SELECTOR);
    assert_eq!(
        (user_data.0, user_code.0),
        (USER_DATA_SELECTOR, USER_CODE_SELECTOR)
    );
    // SAFETY: the GDT is complete, lives for ever, and is not changed again.
    unsafe { (*cpu.gdt.get()).load_unsafe() };
    // SAFETY: the selectors index the GDT just loaded; code and data are
    // flat 64-bit ring-0 segments and the TSS is valid and not busy.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_selector);
    }
    percpu::install(cpu);
}
