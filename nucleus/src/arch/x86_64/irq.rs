//! Device interrupts: a driver takes a vector with the handler it runs
//! (`allocate`), then points its device at it (MSI-X: `pci::enable_msix`).
//! The trap dispatcher acknowledges the interrupt and runs the handler with
//! interrupts off; nothing else changes when a driver is added.

use core::sync::atomic::{AtomicU8, Ordering};

use spin::Once;

/// Device vectors: above the exceptions and the timer, below the vectors
/// the legacy PICs were moved to (0xe0-0xef).
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;
const DEVICE_VECTORS: usize = 64;

static HANDLERS: [Once<fn()>; DEVICE_VECTORS] = [const { Once::new() }; DEVICE_VECTORS];
static NEXT: AtomicU8 = AtomicU8::new(0);

/// A vector of its own for `handler`, or `None` once all are taken.
pub fn allocate(handler: fn()) -> Option<u8> {
    let index = NEXT.fetch_add(1, Ordering::Relaxed) as usize;
    let slot = HANDLERS.get(index)?;
    slot.call_once(|| handler);
    Some(FIRST_DEVICE_VECTOR + index as u8)
}

/// Runs the handler of a device vector after acknowledging it (so the
/// device may raise the next one while this is handled); false for a
/// vector no driver took.
pub fn dispatch(vector: u8) -> bool {
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
