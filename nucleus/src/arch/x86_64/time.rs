//! Time from the TSC: the entry timestamp, the TSC frequency (from CPUID when
//! the CPU or hypervisor states it, else measured against the PIT), and
//! busy-waits.

use core::sync::atomic::{AtomicU64, Ordering};

use nucleus_core::time::{self as pure, Nanos, Timestamp};
use x86_64::instructions::port::Port;

static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Seconds since 1970 when the nucleus started (the firmware's RTC, read by
/// the bootloader); 0 when unknown.
static WALL_CLOCK_AT_ENTRY: AtomicU64 = AtomicU64::new(0);

pub fn set_wall_clock_at_entry(unix_seconds: u64) {
    WALL_CLOCK_AT_ENTRY.store(unix_seconds, Ordering::Relaxed);
}

/// Nanoseconds since 1970-01-01 UTC, if the firmware gave the date.
pub fn wall_clock_nanos() -> Option<u64> {
    match WALL_CLOCK_AT_ENTRY.load(Ordering::Relaxed) {
        0 => None,
        seconds => Some(seconds * 1_000_000_000 + since_entry().nanos),
    }
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter (CR4.TSD is clear in ring 0).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Records the first TSC reading of the nucleus; all log times count from it.
pub fn mark_entry(tsc: u64) {
    ENTRY_TSC.store(tsc, Ordering::Relaxed);
}

pub fn entry_tsc() -> u64 {
    ENTRY_TSC.load(Ordering::Relaxed)
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Time since entry. The TSC is calibrated before the first log line; only
/// if that failed (the panic saying so) do lines count cycles as if at 1 GHz.
pub fn since_entry() -> Timestamp {
    let hz = match tsc_hz() {
        0 => 1_000_000_000,
        hz => hz,
    };
    Timestamp {
        nanos: pure::cycles_to_nanos(rdtsc().wrapping_sub(entry_tsc()), hz),
    }
}

pub fn nanos_between(start_tsc: u64, end_tsc: u64) -> Nanos {
    Nanos(pure::cycles_to_nanos(
        end_tsc.wrapping_sub(start_tsc),
        tsc_hz(),
    ))
}

/// Spins for `nanos` (the TSC frequency must be known).
pub fn spin_for(nanos: u64) {
    let end = rdtsc() + pure::nanos_to_cycles(nanos, tsc_hz());
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID leaf 0x15 with the crystal frequency: exact.
    CpuidCrystal,
    /// The hypervisor's timing leaf 0x40000010: exact.
    Hypervisor,
    /// Measured against PIT channel 2.
    Pit,
}

/// The PIT calibration window: long enough that the port-access jitter (a
/// VM exit each under KVM, ~1-2 us) is below 0.05%, short enough for boot.
const PIT_WINDOW_MICROS: u64 = 10_000;

/// Sets the TSC frequency and says where it came from.
pub fn calibrate_tsc(features: &crate::cpu::Features) -> Result<(u64, TscSource), &'static str> {
    let (hz, source) = if let Some(hz) = features.tsc_hz_from_cpuid {
        (hz, TscSource::CpuidCrystal)
    } else if let Some(hz) = features.tsc_hz_from_hypervisor {
        (hz, TscSource::Hypervisor)
    } else {
        (measure_tsc_with_pit()?, TscSource::Pit)
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    Ok((hz, source))
}

/// Counts TSC cycles while PIT channel 2 counts down a known interval in mode
/// 0, then polls its output bit (as Linux's `pit_calibrate_tsc` does).
fn measure_tsc_with_pit() -> Result<u64, &'static str> {
    let mut control: Port<u8> = Port::new(0x61);
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel2: Port<u8> = Port::new(0x42);
    let count = pure::pit_count_for_micros(PIT_WINDOW_MICROS);
    // SAFETY: 0x61 (NMI status/control, gate of channel 2), 0x43 (PIT
    // command) and 0x42 (channel 2 data) are the legacy PIT ports; channel 2
    // drives only the PC speaker, whose output we keep disabled.
    let elapsed = unsafe {
        let gate = (control.read() & !0x02) | 0x01;
        control.write(gate);
        command.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        let start = rdtsc();
        // A machine without a PIT never raises the output bit: give up after
        // far longer than the window could take on any CPU (>= 0.5 s at 10 GHz).
        let deadline = start + 5_000_000_000;
        loop {
            let now = rdtsc();
            if control.read() & 0x20 != 0 {
                break now - start;
            }
            if now > deadline {
                return Err("PIT channel 2 never fired (no PIT on this machine?)");
            }
        }
    };
    Ok(pure::hz_from_pit_window(elapsed, count))
}
