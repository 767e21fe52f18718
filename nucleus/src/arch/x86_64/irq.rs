//! Device interrupts: a driver takes a vector with the handler it runs
//! (`allocate`), then points its device at it (MSI-X: `pci::enable_msix`).
//! The trap dispatcher acknowledges the interrupt and runs the handler with
//! interrupts off; nothing else changes when a driver is added.
//!
//! A driver that must wait for its device in the middle of a call (the
//! disk, under a file system that is not asynchronous) takes a wake vector
//! instead (`allocate_wake`) and waits with `wait_until`: the CPU halts,
//! and only wake vectors (a higher priority class than every other
//! device's and the timer's) get in; the others stay pending until the
//! wait is over, so no handler runs inside the call it interrupted.

use core::sync::atomic::{AtomicU8, Ordering};

use spin::Once;

/// Device vectors: above the exceptions and the timer, below the vectors
/// the legacy PICs were moved to (0xe0-0xef).
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;
const DEVICE_VECTORS: usize = 64;
/// Wake vectors: priority class 0xd, above the device vectors (0x3-0x6)
/// and the timer (0x2).
const FIRST_WAKE_VECTOR: u8 = 0xd0;
const WAKE_VECTORS: u8 = 16;
/// The task priority that holds back everything below the wake class.
const WAITING_PRIORITY: u64 = (FIRST_WAKE_VECTOR >> 4) as u64 - 1;

static HANDLERS: [Once<fn()>; DEVICE_VECTORS] = [const { Once::new() }; DEVICE_VECTORS];
static NEXT: AtomicU8 = AtomicU8::new(0);
static NEXT_WAKE: AtomicU8 = AtomicU8::new(0);

/// A vector of its own for `handler`, or `None` once all are taken.
pub fn allocate(handler: fn()) -> Option<u8> {
    let index = NEXT.fetch_add(1, Ordering::Relaxed) as usize;
    let slot = HANDLERS.get(index)?;
    slot.call_once(|| handler);
    Some(FIRST_DEVICE_VECTOR + index as u8)
}

/// A vector whose interrupt only ends a `wait_until`, or `None` once all
/// are taken.
pub fn allocate_wake() -> Option<u8> {
    let index = NEXT_WAKE.fetch_add(1, Ordering::Relaxed);
    (index < WAKE_VECTORS).then_some(FIRST_WAKE_VECTOR + index)
}

/// Runs the handler of a device vector after acknowledging it (so the
/// device may raise the next one while this is handled); false for a
/// vector no driver took.
pub fn dispatch(vector: u8) -> bool {
    if (FIRST_WAKE_VECTOR..FIRST_WAKE_VECTOR + WAKE_VECTORS).contains(&vector) {
        crate::apic::end_of_interrupt();
        return true;
    }
    let Some(handler) = vector
        .checked_sub(FIRST_DEVICE_VECTOR)
        .and_then(|index| HANDLERS.get(index as usize))
        .and_then(Once::get)
    else {
        return false;
    };
    crate::apic::end_of_interrupt();
    handler();
    true
}

/// Halts until `done` says so, woken by wake vectors only (a device whose
/// interrupt does not arrive leaves the CPU halted: its driver's `done`
/// must be true once the device has answered, which it checks after every
/// wake). Other interrupts wait, pending, until this returns; the
/// interrupt flag is as it was.
pub fn wait_until(mut done: impl FnMut() -> bool) {
    let were_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    let previous = read_task_priority();
    write_task_priority(WAITING_PRIORITY);
    while !done() {
        // `sti; hlt`: an interrupt that arrived since `done` looked is taken
        // after `sti` and ends the `hlt` at once.
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
    write_task_priority(previous);
    if were_enabled {
        x86_64::instructions::interrupts::enable();
    }
}

fn read_task_priority() -> u64 {
    let value: u64;
    // SAFETY: reading CR8 (the local APIC's task priority) has no effect.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) value, options(nomem, nostack, preserves_flags))
    };
    value
}

fn write_task_priority(value: u64) {
    // SAFETY: CR8 only masks interrupt classes at or below `value`; the
    // callers raise it for a wait with interrupts off and restore it after.
    unsafe {
        core::arch::asm!("mov cr8, {}", in(reg) value, options(nomem, nostack, preserves_flags))
    };
}
