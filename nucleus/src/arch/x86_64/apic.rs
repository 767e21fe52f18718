//! Local APIC (x2APIC through MSRs when present, else xAPIC through MMIO)
//! and its timer: TSC-deadline one-shots re-armed every tick when the CPU has
//! them (no calibration needed), else periodic mode calibrated against the TSC.

use core::sync::atomic::{AtomicU64, Ordering};

use nucleus_core::paging::MappingKind;
use nucleus_core::time as pure;
use spin::Once;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use crate::traps::{SPURIOUS_VECTOR, TIMER_VECTOR};

const IA32_APIC_BASE: u32 = 0x1b;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const X2APIC_ENABLE: u64 = 1 << 10;

const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_VERSION: u32 = 0x30;
const REG_SPURIOUS: u32 = 0xf0;
const REG_LVT_CMCI: u32 = 0x2f0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_THERMAL: u32 = 0x330;
const REG_LVT_PERFORMANCE: u32 = 0x340;
const REG_LVT_LINT0: u32 = 0x350;
const REG_LVT_ERROR: u32 = 0x370;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 0b01 << 17;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const DIVIDE_BY_16: u32 = 0b0011;
const ICR_DELIVERY_NMI: u32 = 0b100 << 8;
/// xAPIC: the ICR's delivery status (set while an IPI is being sent).
const ICR_SEND_PENDING: u32 = 1 << 12;

enum Access {
    X2Apic,
    XApic { base: u64 },
}

impl Access {
    fn read(&self, reg: u32) -> u32 {
        match self {
            // SAFETY: x2APIC mode is enabled and `reg` is an architectural
            // register, readable as MSR 0x800 + reg/16.
            Access::X2Apic => unsafe { Msr::new(0x800 + (reg >> 4)).read() as u32 },
            // SAFETY: `base` is the APIC page mapped uncacheable by `init`.
            Access::XApic { base } => unsafe {
                ((base + reg as u64) as *const u32).read_volatile()
            },
        }
    }

    fn write(&self, reg: u32, value: u32) {
        match self {
            // SAFETY: as in `read`; writes to architectural registers only.
            Access::X2Apic => unsafe { Msr::new(0x800 + (reg >> 4)).write(value as u64) },
            // SAFETY: as in `read`.
            Access::XApic { base } => unsafe {
                ((base + reg as u64) as *mut u32).write_volatile(value)
            },
        }
    }

    fn id(&self) -> u32 {
        match self {
            Access::X2Apic => self.read(REG_ID),
            Access::XApic { .. } => self.read(REG_ID) >> 24,
        }
    }
}

#[derive(Clone, Copy)]
pub enum TimerMode {
    TscDeadline { period_cycles: u64 },
    Periodic { apic_hz: u64 },
}

static ACCESS: Once<Access> = Once::new();
static TIMER: Once<TimerMode> = Once::new();
static TICKS: AtomicU64 = AtomicU64::new(0);
static TICK_HZ: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(1);

/// The timer's tick rate.
pub fn tick_hz() -> u32 {
    TICK_HZ.load(Ordering::Relaxed)
}

pub struct ApicReport {
    pub x2apic: bool,
    pub id: u32,
    pub timer: TimerMode,
}

/// Masks the legacy PICs when the platform has them (after moving their
/// vectors out of the exception range, so a spurious IRQ 7/15 cannot pose as
/// an exception), enables the local APIC, masks the local interrupt sources
/// nothing handles yet, and starts the timer at `tick_hz`. Interrupts stay
/// disabled.
pub fn init(features: &crate::cpu::Features, has_8259: bool, tick_hz: u32) -> ApicReport {
    if has_8259 {
        remap_and_mask_pics();
    }
    let access = ACCESS.call_once(|| {
        let value = enable_in_mode(features.x2apic);
        if features.x2apic {
            Access::X2Apic
        } else {
            // The MSR, not the MADT, is authoritative for where the registers are.
            let physical = value & 0x000f_ffff_ffff_f000;
            Access::XApic {
                base: crate::memory::map_physical(physical, 4096, MappingKind::Mmio),
            }
        }
    });
    quiet_local_sources(access);

    TICK_HZ.store(tick_hz, Ordering::Relaxed);
    let tsc_hz = crate::time::tsc_hz();
    let mode = if features.tsc_deadline {
        TimerMode::TscDeadline {
            period_cycles: tsc_hz / tick_hz as u64,
        }
    } else {
        TimerMode::Periodic {
            apic_hz: measure_apic_timer(access, tsc_hz),
        }
    };
    TIMER.call_once(|| mode);
    start_timer(access, mode);
    ApicReport {
        x2apic: features.x2apic,
        id: access.id(),
        timer: mode,
    }
}

/// Enables this CPU's local APIC, in x2APIC mode when `x2apic`; returns
/// IA32_APIC_BASE as it is now.
fn enable_in_mode(x2apic: bool) -> u64 {
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: enabling the APIC (and x2APIC mode when the CPU has it) is
    // the architectural sequence; the base address is left as firmware set it.
    unsafe {
        let value = base_msr.read() | APIC_GLOBAL_ENABLE;
        base_msr.write(value);
        if x2apic {
            base_msr.write(value | X2APIC_ENABLE);
        }
        value
    }
}

/// Accepts interrupts on this CPU's APIC (spurious vector, priority 0)
/// and masks the local sources nothing handles: LINT0, errors, and what
/// firmware may have armed (thermal, performance, CMCI).
fn quiet_local_sources(access: &Access) {
    access.write(REG_SPURIOUS, 0x100 | SPURIOUS_VECTOR as u32);
    access.write(REG_TPR, 0);
    access.write(REG_LVT_LINT0, LVT_MASKED);
    access.write(REG_LVT_ERROR, LVT_MASKED);
    let max_lvt = (access.read(REG_VERSION) >> 16) & 0xff;
    access.write(REG_LVT_THERMAL, LVT_MASKED);
    access.write(REG_LVT_PERFORMANCE, LVT_MASKED);
    if max_lvt >= 6 {
        access.write(REG_LVT_CMCI, LVT_MASKED);
    }
}

/// Starts this CPU's timer at the tick rate, in `mode`.
fn start_timer(access: &Access, mode: TimerMode) {
    match mode {
        TimerMode::TscDeadline { period_cycles } => {
            access.write(REG_LVT_TIMER, TIMER_VECTOR as u32 | LVT_TSC_DEADLINE);
            // The SDM asks for a fence between switching to deadline mode and
            // the first deadline write, or the write may be lost.
            core::sync::atomic::fence(Ordering::SeqCst);
            arm_deadline(crate::time::rdtsc() + period_cycles);
        }
        TimerMode::Periodic { apic_hz } => {
            access.write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
            access.write(REG_LVT_TIMER, TIMER_VECTOR as u32 | LVT_PERIODIC);
            let count = (apic_hz / 16 / tick_hz() as u64).clamp(1, u32::MAX as u64) as u32;
            access.write(REG_TIMER_INITIAL, count);
        }
    }
}

/// An application processor's local APIC, in the boot CPU's mode, its
/// timer ticking as the boot CPU's does (it preempts the guests it runs).
/// Returns its APIC id.
pub fn init_application_processor() -> u32 {
    let access = ACCESS.get().expect("the boot CPU's APIC first");
    enable_in_mode(matches!(access, Access::X2Apic));
    quiet_local_sources(access);
    start_timer(access, *TIMER.get().expect("the boot CPU's timer first"));
    access.id()
}

/// APIC timer input frequency, counted against the TSC over 2 ms.
fn measure_apic_timer(access: &Access, tsc_hz: u64) -> u64 {
    access.write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    access.write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    access.write(REG_TIMER_INITIAL, u32::MAX);
    let start = crate::time::rdtsc();
    crate::time::spin_for(2_000_000);
    let remaining = access.read(REG_TIMER_CURRENT);
    let elapsed = crate::time::rdtsc() - start;
    access.write(REG_TIMER_INITIAL, 0);
    pure::hz_against_tsc((u32::MAX - remaining) as u64 * 16, elapsed, tsc_hz)
}

fn arm_deadline(tsc: u64) {
    crate::percpu::this()
        .next_deadline
        .store(tsc, Ordering::Relaxed);
    // SAFETY: the timer is in TSC-deadline mode; the MSR only sets when it fires.
    unsafe { Msr::new(IA32_TSC_DEADLINE).write(tsc) };
}

/// Timer interrupt: count the tick, re-arm a one-shot, acknowledge.
pub fn on_timer_interrupt() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    if let Some(TimerMode::TscDeadline { period_cycles }) = TIMER.get() {
        let now = crate::time::rdtsc();
        let mut next = crate::percpu::this().next_deadline.load(Ordering::Relaxed) + period_cycles;
        if next <= now {
            // Missed ticks (a long stretch with interrupts off): do not
            // fire a burst to catch up, restart the cadence from now.
            next = now + period_cycles;
        }
        arm_deadline(next);
    }
    end_of_interrupt();
}

/// Acknowledges the interrupt being handled.
pub fn end_of_interrupt() {
    if let Some(access) = ACCESS.get() {
        access.write(REG_EOI, 0);
    }
}

/// This CPU's APIC id (where device interrupts are sent).
pub fn id() -> u32 {
    ACCESS.get().expect("APIC not initialised").id()
}

static UNEXPECTED: AtomicU64 = AtomicU64::new(0);

/// An interrupt on a vector nothing claims (a device or LVT source armed by
/// firmware): acknowledge it so it cannot block lower-priority ones, and say
/// so, at exponentially spaced counts so a storm cannot flood the console.
pub fn on_unexpected_interrupt(vector: u8) {
    let count = UNEXPECTED.fetch_add(1, Ordering::Relaxed) + 1;
    if count.is_power_of_two() {
        crate::log!(
            "apic: unexpected interrupt on vector {vector:#x} ({count} so far), acknowledged"
        );
    }
    end_of_interrupt();
}

pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Delivers an NMI to this CPU (the `nmi` test scenario).
pub fn send_nmi_to_self() {
    let access = ACCESS.get().expect("APIC not initialised");
    send(access, access.id(), ICR_DELIVERY_NMI);
}

/// Sends an interrupt on `vector` (fixed delivery) to the CPU whose APIC
/// id is `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    let access = ACCESS.get().expect("APIC not initialised");
    send(access, apic_id, vector as u32);
}

/// Writes the ICR: `low` (delivery mode, vector) to the one destination
/// `apic_id`, physical destination mode.
fn send(access: &Access, apic_id: u32, low: u32) {
    match access {
        // SAFETY: an ICR write naming one CPU as the destination of an
        // interrupt the caller chose (an NMI or a vector it handles).
        Access::X2Apic => unsafe { Msr::new(0x830).write(((apic_id as u64) << 32) | low as u64) },
        Access::XApic { .. } => {
            // The previous IPI from this CPU must have left first.
            while access.read(REG_ICR_LOW) & ICR_SEND_PENDING != 0 {
                core::hint::spin_loop();
            }
            access.write(REG_ICR_HIGH, apic_id << 24);
            access.write(REG_ICR_LOW, low);
        }
    }
}

/// Re-initialises both 8259s with vectors 0xe0-0xef, then masks every line.
fn remap_and_mask_pics() {
    // (port, value): ICW1 to both, vector bases 0xe0/0xe8, cascade on IRQ 2,
    // 8086 mode, then every line masked.
    const SEQUENCE: [(u16, u8); 10] = [
        (0x20, 0x11),
        (0xa0, 0x11),
        (0x21, 0xe0),
        (0xa1, 0xe8),
        (0x21, 0x04),
        (0xa1, 0x02),
        (0x21, 0x01),
        (0xa1, 0x01),
        (0x21, 0xff),
        (0xa1, 0xff),
    ];
    for (port, value) in SEQUENCE {
        // SAFETY: the standard initialisation sequence on the legacy PIC
        // ports, which nothing else uses; the write to port 0x80 (POST codes)
        // gives old chipsets the pause they need between words.
        unsafe {
            Port::<u8>::new(port).write(value);
            Port::<u8>::new(0x80).write(0);
        }
    }
}
