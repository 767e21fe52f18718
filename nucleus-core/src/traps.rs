//! Facts about x86-64 exception vectors that the trap handler reports.

/// Mnemonic and name of each architectural exception vector (0-31).
pub const EXCEPTIONS: [(&str, &str); 32] = [
    ("#DE", "divide error"),
    ("#DB", "debug"),
    ("NMI", "non-maskable interrupt"),
    ("#BP", "breakpoint"),
    ("#OF", "overflow"),
    ("#BR", "bound range exceeded"),
    ("#UD", "invalid opcode"),
    ("#NM", "device not available"),
    ("#DF", "double fault"),
    ("CSO", "coprocessor segment overrun"),
    ("#TS", "invalid TSS"),
    ("#NP", "segment not present"),
    ("#SS", "stack-segment fault"),
    ("#GP", "general protection"),
    ("#PF", "page fault"),
    ("15", "reserved vector 15"),
    ("#MF", "x87 floating-point error"),
    ("#AC", "alignment check"),
    ("#MC", "machine check"),
    ("#XM", "SIMD floating-point error"),
    ("#VE", "virtualization exception"),
    ("#CP", "control protection"),
    ("22", "reserved vector 22"),
    ("23", "reserved vector 23"),
    ("24", "reserved vector 24"),
    ("25", "reserved vector 25"),
    ("26", "reserved vector 26"),
    ("27", "reserved vector 27"),
    ("#HV", "hypervisor injection"),
    ("#VC", "VMM communication"),
    ("#SX", "security exception"),
    ("31", "reserved vector 31"),
];

/// Whether the CPU pushes an error code for this vector.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// A page fault's error code in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFaultCause(pub u64);

impl core::fmt::Display for PageFaultCause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let e = self.0;
        let access = if e & (1 << 4) != 0 {
            "instruction fetch"
        } else if e & (1 << 1) != 0 {
            "write"
        } else {
            "read"
        };
        let page = if e & 1 != 0 {
            "protection violation"
        } else {
            "not-present page"
        };
        let mode = if e & (1 << 2) != 0 {
            "user"
        } else {
            "supervisor"
        };
        write!(f, "{access}, {page}, {mode} mode")?;
        if e & (1 << 3) != 0 {
            f.write_str(", reserved bit set")?;
        }
        if e & (1 << 5) != 0 {
            f.write_str(", protection key")?;
        }
        if e & (1 << 6) != 0 {
            f.write_str(", shadow stack")?;
        }
        Ok(())
    }
}

/// The error code of #TS, #NP, #SS and #GP: which descriptor was at fault
/// (zero when the fault was not about a selector).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectorErrorCause(pub u64);

impl core::fmt::Display for SelectorErrorCause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let e = self.0;
        if e == 0 {
            return f.write_str("not selector-related");
        }
        let table = match (e >> 1) & 0b11 {
            0b00 => "GDT",
            0b10 => "LDT",
            _ => "IDT",
        };
        write!(f, "{table} entry {}", (e >> 3) & 0x1fff)?;
        if e & 1 != 0 {
            f.write_str(", external event")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn error_code_vectors_match_the_sdm() {
        let with: std::vec::Vec<u8> = (0..32).filter(|&v| has_error_code(v)).collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
        assert_eq!(EXCEPTIONS[14].0, "#PF");
        assert_eq!(EXCEPTIONS[8].1, "double fault");
    }

    #[test]
    fn page_fault_causes_read_well() {
        assert_eq!(
            format!("{}", PageFaultCause(0b10)),
            "write, not-present page, supervisor mode"
        );
        assert_eq!(
            format!("{}", PageFaultCause(0b10101)),
            "instruction fetch, protection violation, user mode"
        );
        assert_eq!(format!("{}", SelectorErrorCause(0)), "not selector-related");
        // A missing IDT gate for vector 0x40: index 0x40, IDT bit set.
        assert_eq!(
            format!("{}", SelectorErrorCause((0x40 << 3) | 0b10)),
            "IDT entry 64"
        );
        assert_eq!(
            format!("{}", SelectorErrorCause((5 << 3) | 1)),
            "GDT entry 5, external event"
        );
        assert_eq!(
            format!("{}", PageFaultCause(0b100111)),
            "write, protection violation, user mode, protection key"
        );
    }
}
