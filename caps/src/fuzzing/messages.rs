//! `message_decoders`: the input as a params or results buffer of every
//! method of every interface (what the nucleus and guests decode from each
//! other), and as an exception. `manifest_decoder`: the input as the boot
//! manifest an image carries.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Debug;

use super::MessageVisitor;
use crate::error::TransportError;
use crate::manifest;
use crate::message::{Exception, Message, decode_with};
use crate::validate::MAX_MESSAGE_BYTES;

/// Checks one message type against the bytes: the answer is a message or
/// `MalformedMessage`/`MessageTooLarge`; the direct reading (where the type
/// has one) answers as capnp's reader does; a message read encodes and
/// reads back as itself.
struct DecodeAll<'a> {
    bytes: &'a [u8],
    /// One encoding buffer for every type.
    out: Vec<u8>,
}

impl MessageVisitor for DecodeAll<'_> {
    fn visit<M: Message + PartialEq + Debug>(&mut self, name: &str) {
        let decoded = M::decode(self.bytes);
        assert_eq!(
            decoded,
            decode_with::<M::Schema, _>(self.bytes, M::read),
            "{name}: as capnp's reader reads it"
        );
        match decoded {
            Err(error) => assert!(
                matches!(
                    error,
                    TransportError::MalformedMessage | TransportError::MessageTooLarge
                ),
                "{name}: {error:?}"
            ),
            Ok(message) => match message.encode(&mut self.out) {
                Ok(len) => assert_eq!(
                    M::decode(&self.out[..len]).as_ref(),
                    Ok(&message),
                    "{name}: encoded and read back"
                ),
                // Shared pointer targets can make a canonical copy larger.
                Err(error) => assert_eq!(error, TransportError::MessageTooLarge, "{name}"),
            },
        }
    }
}

pub fn message_decoders(data: &[u8]) {
    let mut all = DecodeAll {
        bytes: data,
        out: vec![0; MAX_MESSAGE_BYTES as usize],
    };
    crate::interfaces::visit_messages(&mut all);
    all.visit::<Exception>("Exception");
}

/// Module names a manifest may refer to: those of the appliances in
/// `config/appliances/`, whose manifests are the seeds.
const MODULES: &[&str] = &[
    manifest::MODULE_NAME,
    "broken",
    "cue.wasm",
    "echo-client",
    "echo-server",
    "examples",
    "files",
    "hello",
    "hello.wasm",
    "http.wasm",
    "kv.wasm",
    "tcp-echo",
    "wasm",
];

/// The decoder accepts a manifest that encodes to itself, or refuses with
/// the field it found wrong.
pub fn manifest_decoder(data: &[u8]) {
    match manifest::decode(data, MODULES) {
        Ok(decoded) => {
            let again = manifest::decode(&manifest::encode(&decoded), MODULES);
            assert_eq!(again.as_ref(), Ok(&decoded));
        }
        Err(error) => assert!(!error.field.is_empty()),
    }
}
