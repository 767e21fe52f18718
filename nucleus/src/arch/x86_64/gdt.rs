//! GDT and TSS. Segment order fits SYSCALL/SYSRET (kernel code, kernel data,
//! then user data, user code). Double fault, NMI and machine check run on
//! their own IST stacks, so they are handled even when the interrupted stack
//! is broken.

use core::cell::UnsafeCell;

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use crate::stacks::{DOUBLE_FAULT_STACK, MACHINE_CHECK_STACK, NMI_STACK};

/// IST slots (the IDT names them 1-based; the TSS array is 0-based).
pub const DOUBLE_FAULT_IST: u16 = 0;
pub const NMI_IST: u16 = 1;
pub const MACHINE_CHECK_IST: u16 = 2;

pub const KERNEL_CODE_SELECTOR: u16 = 0x08;
pub const KERNEL_DATA_SELECTOR: u16 = 0x10;
pub const USER_DATA_SELECTOR: u16 = 0x18 | 3;
pub const USER_CODE_SELECTOR: u16 = 0x20 | 3;

/// The TSS must stay writable: RSP0 changes whenever another guest runs.
struct TssCell(UnsafeCell<TaskStateSegment>);

// SAFETY: written only by `init` and `set_kernel_stack`, on the one CPU,
// with interrupts disabled; otherwise only the CPU reads it.
unsafe impl Sync for TssCell {}

static TSS: TssCell = TssCell(UnsafeCell::new(TaskStateSegment::new()));
static GDT: Once<GlobalDescriptorTable> = Once::new();

/// The stack the CPU switches to when an interrupt or exception arrives in
/// ring 3: the running guest's kernel stack.
pub fn set_kernel_stack(top: u64) {
    // SAFETY: see `TssCell`; a plain store to a field the CPU reads on the
    // next ring 3 -> ring 0 transition.
    unsafe { (*TSS.0.get()).privilege_stack_table[0] = VirtAddr::new(top) };
}

pub fn init() {
    // SAFETY: `init` runs once, on the boot CPU, before anything reads the TSS.
    let tss: &'static TaskStateSegment = unsafe {
        let tss = &mut *TSS.0.get();
        tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] =
            VirtAddr::new(DOUBLE_FAULT_STACK.top());
        tss.interrupt_stack_table[NMI_IST as usize] = VirtAddr::new(NMI_STACK.top());
        tss.interrupt_stack_table[MACHINE_CHECK_IST as usize] =
            VirtAddr::new(MACHINE_CHECK_STACK.top());
        tss
    };
    let mut selectors = [SegmentSelector(0); 3];
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        selectors[0] = gdt.append(Descriptor::kernel_code_segment());
        selectors[1] = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        selectors[2] = gdt.append(Descriptor::tss_segment(tss));
        assert_eq!(selectors[0].0, KERNEL_CODE_SELECTOR);
        assert_eq!(selectors[1].0, KERNEL_DATA_SELECTOR);
        assert_eq!(
            (user_data.0, user_code.0),
            (USER_DATA_SELECTOR, USER_CODE_SELECTOR)
        );
        gdt
    });
    gdt.load();
    let [code, data, tss_selector] = selectors;
    // SAFETY: the selectors index the GDT just loaded, which lives forever;
    // code and data are flat 64-bit ring-0 segments and the TSS is valid.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_selector);
    }
}
