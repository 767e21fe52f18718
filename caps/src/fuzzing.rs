//! What the fuzz targets in `caps/fuzz` check, as functions of the
//! fuzzer's bytes, so that the committed seeds (`caps/fuzz/seeds/TARGET/`)
//! run as ordinary tests too. Every input is used, none refused; a broken
//! invariant panics.

mod cap_table;
mod messages;
mod ring;
mod sqe;

pub use cap_table::cap_table;
pub use messages::{manifest_decoder, message_decoders};
pub use ring::ring_indices;
pub use sqe::sqe_validator;

/// A target's check of one input: it panics when an invariant breaks.
pub type Check = fn(&[u8]);

/// Every target by name, as `caps/fuzz/fuzz_targets/NAME.rs` calls it.
pub const TARGETS: &[(&str, Check)] = &[
    ("sqe_validator", sqe_validator),
    ("ring_indices", ring_indices),
    ("cap_table", cap_table),
    ("message_decoders", message_decoders),
    ("manifest_decoder", manifest_decoder),
];

/// What visits every params and results type of the schemas (the
/// generated `interfaces::visit_messages`).
pub(crate) trait MessageVisitor {
    fn visit<M: crate::message::Message + PartialEq + core::fmt::Debug>(&mut self, name: &str);
}

/// Numbers read off the fuzzer's bytes, little-endian; zeros once the
/// bytes run out, so every input means something.
struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(bytes: &'a [u8]) -> Input<'a> {
        Input { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let n = self.bytes.len().min(N);
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        out
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    /// Every committed seed of every target passes its check: the seeds,
    /// crashes found by fuzzing among them, are regression tests.
    #[test]
    fn every_committed_seed_passes() {
        for (target, check) in super::TARGETS {
            for (file, bytes) in fuzz_seeds::read(env!("CARGO_MANIFEST_DIR"), target) {
                std::eprintln!("{target}: {}", file.display());
                check(&bytes);
            }
        }
    }
}
