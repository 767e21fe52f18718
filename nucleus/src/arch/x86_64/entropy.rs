//! Hardware entropy: RDSEED (true random, for seeding) and RDRAND (a DRBG
//! reseeded by it). Both can transiently fail; callers retry a bounded number
//! of times, as Intel's guidance recommends.

use x86_64::instructions::random::RdRand;

pub struct EntropySources {
    pub rdrand: Option<RdRand>,
    pub rdseed: bool,
}

pub fn detect(features: &crate::cpu::Features) -> EntropySources {
    EntropySources {
        rdrand: features.rdrand.then(RdRand::new).flatten(),
        rdseed: features.rdseed,
    }
}

impl EntropySources {
    /// One 64-bit value, preferring RDSEED; `None` if no source has one to give.
    pub fn next_u64(&self) -> Option<u64> {
        if self.rdseed {
            for _ in 0..64 {
                if let Some(v) = rdseed() {
                    return Some(v);
                }
                core::hint::spin_loop();
            }
        }
        let rdrand = self.rdrand.as_ref()?;
        (0..10).find_map(|_| rdrand.get_u64())
    }
}

fn rdseed() -> Option<u64> {
    let value: u64;
    let ok: u8;
    // SAFETY: only called when CPUID reports RDSEED; it writes one register
    // and CF and touches no memory.
    unsafe {
        core::arch::asm!("rdseed {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack));
    }
    (ok == 1).then_some(value)
}

/// `length` bytes from the hardware source, or `None` without one.
pub fn fill(length: usize) -> Option<alloc::vec::Vec<u8>> {
    let sources = SOURCES.get()?;
    let mut bytes = alloc::vec::Vec::with_capacity(length + 8);
    while bytes.len() < length {
        bytes.extend_from_slice(&sources.next_u64()?.to_le_bytes());
    }
    bytes.truncate(length);
    Some(bytes)
}

/// The sources found at boot.
pub static SOURCES: spin::Once<EntropySources> = spin::Once::new();
