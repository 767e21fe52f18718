//! Time arithmetic: TSC frequency sources, PIT and local-APIC timer
//! calibration, and converting cycles to time. All in integers, without
//! overflow for any realistic frequency and uptime.

/// The PIT's input clock.
pub const PIT_HZ: u64 = 1_193_182;

/// CPUID leaf 0x15: TSC = crystal * ebx / eax. Exact only when the CPU reports
/// the crystal frequency (ecx); otherwise `None`.
pub fn tsc_hz_from_leaf_15h(denominator: u32, numerator: u32, crystal_hz: u32) -> Option<u64> {
    if denominator == 0 || numerator == 0 || crystal_hz == 0 {
        return None;
    }
    Some(crystal_hz as u64 * numerator as u64 / denominator as u64)
}

/// The hypervisor timing leaf 0x40000010 (KVM/QEMU with an invariant TSC,
/// VMware): eax is the TSC frequency in kHz, ebx the APIC bus in kHz.
pub fn hz_from_khz_leaf(khz: u32) -> Option<u64> {
    (khz != 0).then_some(khz as u64 * 1000)
}

/// PIT channel 2 reload value for a calibration window of `micros` (at most 54 ms).
pub fn pit_count_for_micros(micros: u64) -> u16 {
    (PIT_HZ * micros / 1_000_000).min(u16::MAX as u64) as u16
}

/// Frequency of a counter that advanced `counted` while the PIT counted
/// down `pit_count` ticks.
pub fn hz_from_pit_window(counted: u64, pit_count: u16) -> u64 {
    (counted as u128 * PIT_HZ as u128 / pit_count.max(1) as u128) as u64
}

/// Frequency of a counter that advanced `counted` over `tsc_elapsed` cycles
/// of a TSC running at `tsc_hz`.
pub fn hz_against_tsc(counted: u64, tsc_elapsed: u64, tsc_hz: u64) -> u64 {
    (counted as u128 * tsc_hz as u128 / tsc_elapsed.max(1) as u128) as u64
}

pub fn cycles_to_nanos(cycles: u64, hz: u64) -> u64 {
    (cycles as u128 * 1_000_000_000 / hz.max(1) as u128) as u64
}

pub fn nanos_to_cycles(nanos: u64, hz: u64) -> u64 {
    (nanos as u128 * hz as u128 / 1_000_000_000) as u64
}

/// A time since nucleus entry, printed as `seconds.microseconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub nanos: u64,
}

impl core::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let micros = self.nanos / 1000;
        write!(f, "{:5}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

/// A duration printed with a unit that keeps three significant figures or so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nanos(pub u64);

impl core::fmt::Display for Nanos {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let n = self.0;
        if n < 10_000 {
            write!(f, "{n} ns")
        } else if n < 10_000_000 {
            write!(f, "{}.{:03} us", n / 1000, n % 1000)
        } else {
            write!(f, "{}.{:03} ms", n / 1_000_000, (n / 1000) % 1000)
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn leaf_15h_needs_all_three_values() {
        // A 25 MHz crystal with a 2/168 ratio... as on many Intel parts: 2.1 GHz.
        assert_eq!(
            tsc_hz_from_leaf_15h(2, 168, 25_000_000),
            Some(2_100_000_000)
        );
        assert_eq!(tsc_hz_from_leaf_15h(2, 168, 0), None);
        assert_eq!(tsc_hz_from_leaf_15h(0, 168, 25_000_000), None);
        assert_eq!(hz_from_khz_leaf(2_445_000), Some(2_445_000_000));
        assert_eq!(hz_from_khz_leaf(0), None);
    }

    #[test]
    fn pit_window_round_trips() {
        let count = pit_count_for_micros(10_000);
        assert_eq!(count, 11_931);
        // A 3 GHz TSC over that window.
        let counted = 3_000_000_000u64 * count as u64 / PIT_HZ;
        let hz = hz_from_pit_window(counted, count);
        assert!(hz.abs_diff(3_000_000_000) < 1_000_000, "{hz}");
        assert_eq!(
            pit_count_for_micros(100_000),
            u16::MAX,
            "clamped to the 16-bit counter"
        );
    }

    #[test]
    fn conversions_do_not_overflow() {
        let hz = 5_000_000_000;
        // Ten years of cycles at 5 GHz.
        let cycles = hz * 3600 * 24 * 365 * 10;
        assert_eq!(
            cycles_to_nanos(cycles, hz),
            3600 * 24 * 365 * 10 * 1_000_000_000
        );
        assert_eq!(nanos_to_cycles(1_000, 2_000_000_000), 2_000);
        assert_eq!(
            hz_against_tsc(1_000_000, 2_000_000, 2_000_000_000),
            1_000_000_000
        );
        assert_eq!(cycles_to_nanos(5, 0), 5_000_000_000, "no division by zero");
    }

    #[test]
    fn formats() {
        assert_eq!(
            format!(
                "{}",
                Timestamp {
                    nanos: 12_345_678_901
                }
            ),
            "   12.345678"
        );
        assert_eq!(format!("{}", Nanos(950)), "950 ns");
        assert_eq!(format!("{}", Nanos(12_345)), "12.345 us");
        assert_eq!(format!("{}", Nanos(15_250_000)), "15.250 ms");
    }
}
