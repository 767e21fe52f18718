//! Protection keys (PKU): each guest's pages carry a key of their own, and
//! PKRU, loaded whenever a guest runs, opens only that key. Key 0 belongs to
//! no guest (no user page carries it), so a guest's PKRU denies it too.

/// Keys guests can have: 1 to 15.
pub const GUEST_KEYS: core::ops::RangeInclusive<u8> = 1..=15;

/// PKRU that denies every key (access-disable set for all 16).
pub const PKRU_DENY_ALL: u32 = 0x5555_5555;
/// PKRU that allows everything: the nucleus's own copies into guest memory.
pub const PKRU_ALLOW_ALL: u32 = 0;

/// PKRU for a guest owning `key`: read and write its own pages, nothing else.
pub const fn pkru_for(key: u8) -> u32 {
    PKRU_DENY_ALL & !(0b11 << (2 * key as u32))
}

/// The key's bits in a leaf page-table entry (bits 59-62).
pub const fn pte_bits(key: u8) -> u64 {
    ((key & 0xf) as u64) << 59
}

/// Hands out the 15 guest keys; a key comes back when its guest ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyAllocator {
    /// Bit k set: key k is in use.
    used: u16,
}

impl KeyAllocator {
    pub const fn new() -> KeyAllocator {
        KeyAllocator { used: 0 }
    }

    /// The lowest free key, or `None` when all 15 are taken.
    pub fn allocate(&mut self) -> Option<u8> {
        let key = GUEST_KEYS
            .into_iter()
            .find(|&k| self.used & (1 << k) == 0)?;
        self.used |= 1 << key;
        Some(key)
    }

    /// Gives `key` back; returns whether it was in use.
    pub fn release(&mut self, key: u8) -> bool {
        if !GUEST_KEYS.contains(&key) || self.used & (1 << key) == 0 {
            return false;
        }
        self.used &= !(1 << key);
        true
    }

    pub fn in_use(&self) -> u32 {
        self.used.count_ones()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_pkru_opens_exactly_its_own_key() {
        for key in GUEST_KEYS {
            let pkru = pkru_for(key);
            for other in 0..16u32 {
                let bits = (pkru >> (2 * other)) & 0b11;
                if other == key as u32 {
                    assert_eq!(bits, 0, "key {key} must be readable and writable");
                } else {
                    assert_eq!(
                        bits & 1,
                        1,
                        "key {other} must be access-disabled for key {key}"
                    );
                }
            }
        }
        assert_eq!(pkru_for(1), 0x5555_5551);
    }

    #[test]
    fn pte_bits_sit_in_59_to_62() {
        assert_eq!(pte_bits(1), 1 << 59);
        assert_eq!(pte_bits(15), 0b1111 << 59);
        assert_eq!(pte_bits(15) & !(0b1111 << 59), 0);
    }

    #[test]
    fn fifteen_keys_then_none_and_reuse() {
        let mut keys = KeyAllocator::new();
        let taken: std::vec::Vec<u8> = (0..15).map(|_| keys.allocate().unwrap()).collect();
        assert_eq!(taken, (1..=15).collect::<std::vec::Vec<u8>>());
        assert_eq!(keys.allocate(), None, "key 0 is never handed out");
        assert!(keys.release(7));
        assert!(!keys.release(7), "double release is refused");
        assert!(!keys.release(0) && !keys.release(16));
        assert_eq!(keys.allocate(), Some(7));
        assert_eq!(keys.in_use(), 15);
    }

    extern crate std;
}
