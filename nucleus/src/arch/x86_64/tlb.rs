//! TLB shoot-down: the one address space stays coherent across CPUs.
//!
//! When the nucleus removes user mappings (a guest's exit), the CPU that
//! removes them flushes its own TLB entry by entry (`memory::unmap_4k`);
//! every other CPU may still cache them. `shoot_down` starts a round: it
//! interrupts every other online CPU, and each flushes its whole TLB and
//! records the round it flushed for. The frames and the protection key
//! that were behind the mappings are reused only once `round_done` says
//! every online CPU has flushed (the caller keeps them until then, a
//! deferred free, never fire-and-forget). Nothing waits for the others
//! with a lock held: a CPU spinning on a lock with interrupts off could
//! not answer.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::percpu;

/// The vector of the shoot-down IPI.
pub const SHOOTDOWN_VECTOR: u8 = 0xf1;

/// The last round started.
static ROUND: AtomicU64 = AtomicU64::new(0);

/// Starts a shoot-down round for mappings already removed (and flushed
/// here); returns the round, for `round_done`.
pub fn shoot_down() -> u64 {
    let round = ROUND.fetch_add(1, Ordering::AcqRel) + 1;
    // This CPU flushed each removed entry as it went, but may not yet have
    // answered an earlier round of another CPU's.
    flush_for_round();
    let this = percpu::this();
    for cpu in percpu::online().filter(|cpu| cpu.index() != this.index()) {
        crate::apic::send_ipi(cpu.apic_id(), SHOOTDOWN_VECTOR);
    }
    round
}

/// Whether every online CPU has flushed its TLB since `round` began.
pub fn round_done(round: u64) -> bool {
    percpu::online().all(|cpu| cpu.flushed_round.load(Ordering::Acquire) >= round)
}

/// The shoot-down IPI (and any CPU that wants to catch up): flush this
/// CPU's TLB, global entries too, and say which round that covers.
pub fn flush_for_round() {
    let round = ROUND.load(Ordering::Acquire);
    let cpu = percpu::this();
    if cpu.flushed_round.load(Ordering::Relaxed) >= round {
        return;
    }
    crate::memory::flush_whole_tlb();
    cpu.flushed_round.fetch_max(round, Ordering::AcqRel);
}
