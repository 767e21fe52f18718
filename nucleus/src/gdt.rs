//! GDT and TSS. Segment order fits SYSCALL/SYSRET (kernel code, kernel data,
//! then user data, user code). Double fault, NMI and machine check run on
//! their own IST stacks, so they are handled even when the interrupted stack
//! is broken.

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

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<GlobalDescriptorTable> = Once::new();

pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] =
            VirtAddr::new(DOUBLE_FAULT_STACK.top());
        tss.interrupt_stack_table[NMI_IST as usize] = VirtAddr::new(NMI_STACK.top());
        tss.interrupt_stack_table[MACHINE_CHECK_IST as usize] =
            VirtAddr::new(MACHINE_CHECK_STACK.top());
        tss
    });
    let mut selectors = [SegmentSelector(0); 3];
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        selectors[0] = gdt.append(Descriptor::kernel_code_segment());
        selectors[1] = gdt.append(Descriptor::kernel_data_segment());
        gdt.append(Descriptor::user_data_segment());
        gdt.append(Descriptor::user_code_segment());
        selectors[2] = gdt.append(Descriptor::tss_segment(tss));
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
