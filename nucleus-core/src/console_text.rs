//! Guest text as the console shows it. A guest's console line is printed
//! after its name, so whatever the guest writes must stay on that line and
//! read as that guest's: control characters (a carriage return, an escape
//! sequence, a backspace) are written out as `\\xNN` or `\\u{NNNN}`,
//! invisible characters that reorder or hide text likewise, and bytes that
//! are not UTF-8 as `\\xNN` each (binary output keeps every byte).

use core::fmt::{self, Write};

/// Displays guest bytes escaped as the module says.
pub struct Printable<'a>(pub &'a [u8]);

/// Invisible characters that change how the rest of a line is shown
/// (bidirectional overrides and isolates, zero-width marks, the byte-order
/// mark): a guest could make its text read as another's.
fn reorders_text(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
    )
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\t' => f.write_char(c)?,
                    c if (c as u32) < 0x80 && c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                    c if c.is_control() || reorders_text(c) => {
                        write!(f, "\\u{{{:04x}}}", c as u32)?
                    }
                    c => f.write_char(c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    fn shown(bytes: &[u8]) -> alloc::string::String {
        format!("{}", Printable(bytes))
    }

    #[test]
    fn text_and_tabs_pass_through() {
        assert_eq!(shown("héllo\tworld ✓".as_bytes()), "héllo\tworld ✓");
    }

    #[test]
    fn control_characters_are_written_out() {
        assert_eq!(
            shown(b"a\rb\x1b[2Jc\x08d\x7f"),
            "a\\x0db\\x1b[2Jc\\x08d\\x7f"
        );
        assert_eq!(shown("x\u{85}y".as_bytes()), "x\\u{0085}y");
    }

    #[test]
    fn reordering_characters_are_written_out() {
        assert_eq!(
            shown("a\u{202e}b\u{200b}c\u{feff}".as_bytes()),
            "a\\u{202e}b\\u{200b}c\\u{feff}"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_keep_their_value() {
        assert_eq!(
            shown(b"not utf-8: \xff\xfe end"),
            "not utf-8: \\xff\\xfe end"
        );
        // A sequence cut short: each of its bytes.
        assert_eq!(shown(b"\xe2\x9c"), "\\xe2\\x9c");
    }

    #[test]
    fn every_byte_string_prints_on_one_line_of_printable_characters() {
        let all: Vec<u8> = (0..=255u8).collect();
        for bytes in [&all[..], &all[100..], b"\xf0\x9f\x98"] {
            let text = shown(bytes);
            assert!(
                text.chars()
                    .all(|c| c == '\t' || !(c.is_control() || reorders_text(c))),
                "{text:?}"
            );
        }
    }
}
