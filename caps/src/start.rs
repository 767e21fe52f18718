//! How a native guest starts and enters the nucleus.
//!
//! Entry: the ELF entry point is called like `extern "C" fn(ring: u64,
//! heap_start: u64, heap_size: u64) -> !` with a 16-byte aligned stack
//! (as after a `call`). The ring is initialised (header written, indices 0).
//!
//! System calls: `syscall` with the number in RAX and arguments in RDI, RSI;
//! the result comes back in RAX; RCX and R11 are clobbered, every other
//! register is preserved.

use crate::cap::CapId;
use crate::interfaces::Interface;

/// `cap_enter(min_complete: u32, timeout_ns: u64) -> i64`: the nucleus takes
/// every SQE the ring holds (as CQ space allows), runs or starts each call,
/// then waits until at least `min_complete` completions are in the CQ or the
/// timeout passes (`u64::MAX`: no timeout; 0: do not wait). Returns the number
/// of completions ready, or a negative [`crate::TransportError`] code.
/// `min_complete` above the CQ size is treated as the CQ size.
pub const SYSCALL_CAP_ENTER: u64 = 0;
/// `exit(code: i32) -> !`: ends the guest; the nucleus reports the code.
pub const SYSCALL_EXIT: u64 = 1;

/// The capabilities every guest holds when it starts, at table indices
/// 0, 1, 2, ... in this order, all of generation 1.
pub const INITIAL_CAPABILITIES: [Interface; 6] = [
    Interface::Console,
    Interface::Timer,
    Interface::Entropy,
    Interface::BootInfo,
    Interface::GuestControl,
    Interface::Network,
];

/// The id of an initial capability, known without asking.
pub const fn initial_capability(interface: Interface) -> CapId {
    let mut index = 0;
    while index < INITIAL_CAPABILITIES.len() {
        if INITIAL_CAPABILITIES[index] as u8 == interface as u8 {
            match CapId::new(index as u16, 1) {
                Some(id) => return id,
                None => panic!("generation 1 is always valid"),
            }
        }
        index += 1;
    }
    panic!("not an initial capability")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::CapTable;

    #[test]
    fn initial_ids_match_a_fresh_table() {
        let mut table = CapTable::new(16);
        for interface in INITIAL_CAPABILITIES {
            assert_eq!(
                table.insert(interface).unwrap(),
                initial_capability(interface)
            );
        }
    }
}
