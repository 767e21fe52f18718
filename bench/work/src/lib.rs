//! The work of the scaling benchmark (`bench/scaling`): the same integer
//! loop for a native guest (`compute`) and a Linux process
//! (`linux-baselines --compute`), so both systems run the same
//! instructions and only the scheduling differs. It touches no memory
//! beyond registers, so CPUs do not contend for anything but themselves.
#![no_std]
#![forbid(unsafe_code)]

/// Runs `rounds` rounds of xorshift64* from `seed`; returns the last
/// value (printed, so the loop cannot be optimised away).
pub fn spin(rounds: u64, seed: u64) -> u64 {
    let mut x = seed | 1;
    let mut sum = 0u64;
    for _ in 0..rounds {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        sum = sum.wrapping_add(x.wrapping_mul(0x2545_f491_4f6c_dd1d));
    }
    sum
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_work_is_deterministic_and_depends_on_its_rounds() {
        assert_eq!(super::spin(1000, 7), super::spin(1000, 7));
        assert_ne!(super::spin(1000, 7), super::spin(1001, 7));
        assert_eq!(super::spin(0, 7), 0);
    }
}
