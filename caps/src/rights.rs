//! What a capability allows: a small bit set. Bit 0, [`Rights::TRANSFER`],
//! means the same for every interface (the capability may be passed to
//! another guest, copied or moved); the other bits are the interface's own
//! ([`console::WRITE`], [`endpoint::MINT`], ...). A method names the rights
//! it needs; a capability that lacks one gets `MissingRight`.
//!
//! Rights only ever shrink: a copy, a move or a minted capability has at
//! most the rights of the one it came from.

/// A set of rights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rights(u16);

impl Rights {
    pub const NONE: Rights = Rights(0);
    /// Every right: what the nucleus grants at start.
    pub const ALL: Rights = Rights(u16::MAX);
    /// May be passed on to another guest.
    pub const TRANSFER: Rights = Rights(1);

    /// Interface-defined right number `n` (1 to 15).
    pub const fn bit(n: u8) -> Rights {
        assert!(n >= 1 && n <= 15, "bit 0 is TRANSFER, rights are 16 bits");
        Rights(1 << n)
    }

    pub const fn from_bits(bits: u16) -> Rights {
        Rights(bits)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn contains(self, needed: Rights) -> bool {
        self.0 & needed.0 == needed.0
    }

    pub const fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// The rights both sets have: what a derived capability can keep.
    pub const fn intersect(self, other: Rights) -> Rights {
        Rights(self.0 & other.0)
    }

    pub const fn without(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }
}

/// Console's rights.
pub mod console {
    use super::Rights;

    /// Needed by `write`.
    pub const WRITE: Rights = Rights::bit(1);
}

/// An endpoint's rights: a serving end's, and a calling end's.
pub mod endpoint {
    use super::Rights;

    /// A serving end's right to RECV and RETURN.
    pub const SERVE: Rights = Rights::bit(1);
    /// A serving end's right to mint calling ends (`Endpoint.mint`).
    pub const MINT: Rights = Rights::bit(2);
    /// A calling end's right to CALL. Its interface is the server's, which
    /// the nucleus does not know, so this one right stands for its methods.
    pub const CALL: Rights = Rights::bit(1);
    /// What a calling end from GuestControl.connect holds; minted ones hold
    /// at most this.
    pub const CLIENT: Rights = Rights::TRANSFER.union(CALL);
}

/// Directory's and File's rights.
pub mod storage {
    use super::Rights;

    /// Needed to read: open (without create or truncate), list, stat,
    /// info, readAt, size.
    pub const READ: Rights = Rights::bit(1);
    /// Needed to change the volume: the rest.
    pub const WRITE: Rights = Rights::bit(2);
    /// What a read-write mount's Directory holds.
    pub const READ_WRITE: Rights = Rights::TRANSFER.union(READ).union(WRITE);
    /// What a read-only mount's Directory holds.
    pub const READ_ONLY: Rights = Rights::TRANSFER.union(READ);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn transfer_is_bit_zero_and_interface_bits_follow() {
        assert_eq!(Rights::TRANSFER.bits(), 1);
        assert_eq!(Rights::bit(1).bits(), 2);
        assert_eq!(Rights::bit(15).bits(), 0x8000);
        assert!(Rights::ALL.contains(Rights::bit(7).union(Rights::TRANSFER)));
        assert!(!Rights::NONE.contains(Rights::TRANSFER));
        assert!(Rights::NONE.contains(Rights::NONE));
    }

    proptest! {
        /// A derived set never holds a right its source lacks.
        #[test]
        fn derived_rights_only_shrink(a in any::<u16>(), b in any::<u16>()) {
            let (a, b) = (Rights::from_bits(a), Rights::from_bits(b));
            let derived = a.intersect(b);
            prop_assert!(a.contains(derived) && b.contains(derived));
            prop_assert!(!a.without(b).contains(b) || b == Rights::NONE);
        }
    }
}
