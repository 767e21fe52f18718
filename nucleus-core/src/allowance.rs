//! What a guest may make the nucleus hold for it. The nucleus keeps copies
//! on a guest's behalf (the params of its calls while they wait for a
//! server or for a socket); each is charged to the guest's allowance before
//! it is made and refunded when it goes, so no guest can make the nucleus
//! hold more than its limit, whatever it submits. The copy itself is
//! allocated fallibly: an exhausted heap refuses that call, never panics.

use alloc::vec::Vec;

/// Bytes the nucleus holds for one guest, against a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    held: usize,
    limit: usize,
}

/// Why a copy was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The guest holds `held` of its `limit` bytes already.
    Allowance { held: usize, limit: usize },
    /// The nucleus's heap could not give the bytes.
    OutOfMemory,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refused::Allowance { held, limit } => write!(
                f,
                "this guest's calls hold {} of the {} KiB the nucleus keeps for it",
                held.div_ceil(1024),
                limit / 1024
            ),
            Refused::OutOfMemory => f.write_str("the nucleus is out of memory"),
        }
    }
}

impl Allowance {
    pub const fn new(limit: usize) -> Allowance {
        Allowance { held: 0, limit }
    }

    pub fn held(&self) -> usize {
        self.held
    }

    /// Charges `bytes`, if they fit in what is left.
    pub fn charge(&mut self, bytes: usize) -> Result<(), Refused> {
        match self.held.checked_add(bytes) {
            Some(held) if held <= self.limit => {
                self.held = held;
                Ok(())
            }
            _ => Err(Refused::Allowance {
                held: self.held,
                limit: self.limit,
            }),
        }
    }

    /// Gives back `bytes` charged before.
    pub fn refund(&mut self, bytes: usize) {
        debug_assert!(bytes <= self.held, "refunding more than was charged");
        self.held = self.held.saturating_sub(bytes);
    }

    /// A copy of `len` bytes (zeroed, to be filled) charged to this
    /// allowance: refused, with nothing charged, if it does not fit or the
    /// heap cannot give it.
    pub fn charged_copy(&mut self, len: usize) -> Result<Vec<u8>, Refused> {
        self.charge(len)?;
        try_zeroed(len).inspect_err(|_| self.refund(len))
    }
}

/// `len` zeroed bytes, or `OutOfMemory` when the heap cannot give them.
pub fn try_zeroed(len: usize) -> Result<Vec<u8>, Refused> {
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len)
        .map_err(|_| Refused::OutOfMemory)?;
    bytes.resize(len, 0);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_refunds() {
        let mut allowance = Allowance::new(100);
        assert_eq!(allowance.charge(60), Ok(()));
        assert_eq!(allowance.charge(40), Ok(()));
        assert_eq!(
            allowance.charge(1),
            Err(Refused::Allowance {
                held: 100,
                limit: 100
            })
        );
        allowance.refund(60);
        assert_eq!(allowance.held(), 40);
        assert_eq!(
            allowance.charge(usize::MAX),
            Err(Refused::Allowance {
                held: 40,
                limit: 100
            })
        );
        assert_eq!(allowance.held(), 40);
    }

    #[test]
    fn a_refused_copy_charges_nothing() {
        let mut allowance = Allowance::new(1 << 20);
        let copy = allowance.charged_copy(4096).unwrap();
        assert_eq!((copy.len(), allowance.held()), (4096, 4096));
        assert!(copy.iter().all(|b| *b == 0));
        assert!(allowance.charged_copy(1 << 20).is_err());
        assert_eq!(allowance.held(), 4096);
        // More than any heap can give, inside an allowance that would allow it.
        let mut unlimited = Allowance::new(usize::MAX);
        assert_eq!(
            unlimited.charged_copy(usize::MAX / 2),
            Err(Refused::OutOfMemory)
        );
        assert_eq!(unlimited.held(), 0);
    }

    #[test]
    fn refusals_say_what_was_held() {
        let refused = Refused::Allowance {
            held: 1000,
            limit: 1 << 20,
        };
        assert_eq!(
            alloc::format!("{refused}"),
            "this guest's calls hold 1 of the 1024 KiB the nucleus keeps for it"
        );
    }
}
