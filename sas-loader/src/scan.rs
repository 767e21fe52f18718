//! The instructions a native guest may not contain: those that change PKRU,
//! the register that says which protection keys the running code may use.
//! A guest that could execute one could open every other guest's memory.
//!
//! The scan is a plain byte-pattern match at every offset, not a
//! disassembly. That is deliberate, as in other software-fault-isolation
//! loaders (NaCl, ERIM): x86 code can be entered at any byte, so an
//! instruction hidden inside another (or across two) is as reachable as one
//! a disassembler would show. The price is that a harmless byte sequence
//! that happens to look like one of these is refused too; compilers do not
//! emit these instructions for ordinary code, and a guest that hits the
//! pattern by accident (an immediate, a displacement) can be rebuilt.

use core::fmt;

/// A forbidden instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forbidden {
    /// `0F 01 EF`: writes PKRU from EAX.
    Wrpkru,
    /// `0F AE /5` with a memory operand: restores PKRU with the XSAVE state.
    Xrstor,
    /// `REX.W 0F AE /5`.
    Xrstor64,
    /// `0F C7 /3` with a memory operand: XRSTORS, the compacted form.
    Xrstors,
    /// `REX.W 0F C7 /3`.
    Xrstors64,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forbidden::Wrpkru => "WRPKRU",
            Forbidden::Xrstor => "XRSTOR",
            Forbidden::Xrstor64 => "XRSTOR64",
            Forbidden::Xrstors => "XRSTORS",
            Forbidden::Xrstors64 => "XRSTORS64",
        })
    }
}

/// The ModRM byte's `reg` field, when `mod` names a memory operand.
/// `mod == 11` is a register form: `0F AE /5` with it is LFENCE, which is
/// fine, and `0F C7 /3` with it is not an XRSTORS.
fn memory_operand_reg(modrm: u8) -> Option<u8> {
    (modrm >> 6 != 0b11).then_some((modrm >> 3) & 0b111)
}

/// Which forbidden instruction, without a REX prefix, starts at `bytes[0]`.
fn plain_at(bytes: &[u8]) -> Option<Forbidden> {
    match *bytes {
        [0x0f, 0x01, 0xef, ..] => Some(Forbidden::Wrpkru),
        [0x0f, 0xae, modrm, ..] if memory_operand_reg(modrm) == Some(5) => Some(Forbidden::Xrstor),
        [0x0f, 0xc7, modrm, ..] if memory_operand_reg(modrm) == Some(3) => Some(Forbidden::Xrstors),
        _ => None,
    }
}

/// A REX prefix with W set (`0x48..=0x4F`).
fn is_rex_w(byte: u8) -> bool {
    byte & 0xf8 == 0x48
}

/// The first forbidden instruction in `bytes`, with its offset. The REX.W
/// forms are reported at their prefix. Any legacy prefixes before the opcode
/// do not matter: the instruction is refused whatever precedes it.
pub fn scan_forbidden(bytes: &[u8]) -> Option<(usize, Forbidden)> {
    (0..bytes.len()).find_map(|at| {
        let rest = &bytes[at..];
        if is_rex_w(rest[0]) {
            match plain_at(&rest[1..]) {
                Some(Forbidden::Xrstor) => return Some((at, Forbidden::Xrstor64)),
                Some(Forbidden::Xrstors) => return Some((at, Forbidden::Xrstors64)),
                _ => {}
            }
        }
        plain_at(rest).map(|found| (at, found))
    })
}

/// Every byte of every pattern is non-zero, so a pattern never starts or
/// continues in zero fill; the loader relies on this to scan only file bytes.
#[cfg(test)]
pub(crate) const PATTERNS: [(&[u8], Forbidden); 5] = [
    (&[0x0f, 0x01, 0xef], Forbidden::Wrpkru),
    (&[0x0f, 0xae, 0x28], Forbidden::Xrstor),
    (&[0x48, 0x0f, 0xae, 0x6c], Forbidden::Xrstor64),
    (&[0x0f, 0xc7, 0x1f], Forbidden::Xrstors),
    (&[0x49, 0x0f, 0xc7, 0x5d], Forbidden::Xrstors64),
];

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[test]
    fn finds_each_instruction_at_its_offset() {
        for (pattern, kind) in PATTERNS {
            let mut code = alloc::vec![0x90u8; 7];
            code.extend_from_slice(pattern);
            code.extend_from_slice(&[0x90, 0xc3]);
            assert_eq!(scan_forbidden(&code), Some((7, kind)), "{kind}");
        }
    }

    #[test]
    fn every_memory_form_is_caught() {
        for modrm in 0..=0xffu8 {
            let xrstor = [0x0f, 0xae, modrm];
            let xrstors = [0x0f, 0xc7, modrm];
            let memory = modrm >> 6 != 3;
            let reg = (modrm >> 3) & 7;
            assert_eq!(
                scan_forbidden(&xrstor).is_some(),
                memory && reg == 5,
                "0f ae {modrm:02x}"
            );
            assert_eq!(
                scan_forbidden(&xrstors).is_some(),
                memory && reg == 3,
                "0f c7 {modrm:02x}"
            );
        }
    }

    #[test]
    fn look_alikes_pass() {
        // LFENCE (0f ae e8), RDPKRU (0f 01 ee), XSAVE (0f ae /4), RDRAND (0f c7 /6, register form).
        for code in [
            &[0x0f, 0xae, 0xe8][..],
            &[0x0f, 0x01, 0xee],
            &[0x0f, 0xae, 0x20],
            &[0x48, 0x0f, 0xae, 0x20],
            &[0x0f, 0xc7, 0xf0],
            &[0x0f, 0xc7, 0xdb], // /3 with a register operand
        ] {
            assert_eq!(scan_forbidden(code), None, "{code:02x?}");
        }
    }

    #[test]
    fn rex_without_w_reports_the_plain_form() {
        assert_eq!(
            scan_forbidden(&[0x41, 0x0f, 0xae, 0x2f]),
            Some((1, Forbidden::Xrstor))
        );
    }

    #[test]
    fn truncated_patterns_at_the_end_pass() {
        assert_eq!(scan_forbidden(&[0x90, 0x0f, 0x01]), None);
        assert_eq!(scan_forbidden(&[0x90, 0x0f, 0xae]), None);
        assert_eq!(scan_forbidden(&[0x48, 0x0f]), None);
        assert_eq!(scan_forbidden(&[]), None);
    }

    #[test]
    fn patterns_hidden_across_instructions_are_refused() {
        // `mov eax, 0xef010f90` contains 0f 01 ef in its immediate: a jump into
        // the middle would execute WRPKRU, so it is refused (deliberately).
        let code = [0xb8, 0x90, 0x0f, 0x01, 0xef];
        assert_eq!(scan_forbidden(&code), Some((2, Forbidden::Wrpkru)));
    }

    #[test]
    fn patterns_have_no_zero_bytes() {
        for (pattern, _) in PATTERNS {
            assert!(!pattern.contains(&0));
        }
    }

    proptest! {
        /// Without a 0x0f byte nothing is forbidden.
        #[test]
        fn no_escape_byte_no_finding(code in proptest::collection::vec(any::<u8>().prop_filter("no 0f", |b| *b != 0x0f), 0..512)) {
            prop_assert_eq!(scan_forbidden(&code), None);
        }

        /// A pattern put anywhere is found, at or before where it was put.
        #[test]
        fn inserted_pattern_is_found(code in proptest::collection::vec(any::<u8>(), 0..512), at in any::<prop::sample::Index>(), which in 0usize..5) {
            let (pattern, _) = PATTERNS[which];
            let at = at.index(code.len() + 1);
            let mut code: Vec<u8> = code;
            code.splice(at..at, pattern.iter().copied());
            let found = scan_forbidden(&code);
            prop_assert!(matches!(found, Some((offset, _)) if offset <= at));
        }
    }
}
