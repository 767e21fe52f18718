//! The interfaces services implement, generated from `schema/*.capnp` by
//! `build.rs` (build_support/codegen.rs): one module per interface holding
//! `INTERFACE_ID`, a constant per method ordinal (`timer::NOW`), a marker
//! type per method that implements [`Method`] (`timer::Now`), the method's
//! params and results as plain Rust structs that encode to and decode from
//! a buffer (`timer::NowResults { nanos }`), the structs the interface
//! declares (`boot_info::Info`), and a typed `Client`; then the
//! [`Interface`] and [`MethodId`] enums the nucleus dispatches on. Adding a
//! method is a schema change plus its handler.
//!
//! The ids are the schemas' Cap'n Proto type ids; the ordinals are the
//! schemas' `@n`. Tests hold them, and docs/abi.md's table, to the
//! compiler's output.

use alloc::string::String;
use alloc::vec::Vec;

use crate::cap::CapId;
use crate::error::TransportError;
use crate::message::{Message, check_len};

/// Every interface declared in `schema/`, as the compiler reported it:
/// `(name, type id, method names by ordinal)`.
pub const SCHEMA_INTERFACES: &[(&str, u64, &[&str])] =
    include!(concat!(env!("OUT_DIR"), "/interfaces.rs"));

/// A method: which interface, which ordinal, and its message types. Typed
/// clients take one of these as a type parameter.
pub trait Method {
    const INTERFACE: Interface;
    const ORDINAL: u16;
    type Params: Message;
    type Results: Message;
}

/// What a typed client calls through: the guest runtime's ring, or a test's.
pub trait Transport {
    type Error;

    fn call<M: Method>(
        &mut self,
        cap: CapId,
        params: &M::Params,
    ) -> Result<M::Results, Self::Error>;
}

include!(concat!(env!("OUT_DIR"), "/interfaces_generated.rs"));

impl Interface {
    pub const fn from_id(id: u64) -> Option<Interface> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i].id() == id {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    /// The constants here are the schemas': every interface, id, method and
    /// ordinal the compiler reported has its constant, and nothing more.
    #[test]
    fn constants_match_the_compiled_schemas() {
        assert_eq!(SCHEMA_INTERFACES.len(), Interface::ALL.len());
        for interface in Interface::ALL {
            let (_, id, methods) = SCHEMA_INTERFACES
                .iter()
                .find(|(name, ..)| *name == interface.name())
                .unwrap_or_else(|| panic!("{} is not in the schemas", interface.name()));
            assert_eq!(interface.id(), *id, "{}", interface.name());
            assert_eq!(Interface::from_id(*id), Some(interface));
            for (ordinal, name) in methods.iter().enumerate() {
                let method = MethodId::resolve(interface, ordinal as u16).unwrap();
                assert_eq!(method.name(), *name);
                assert_eq!(
                    (method.interface(), method.ordinal()),
                    (interface, ordinal as u16)
                );
            }
            assert_eq!(
                MethodId::resolve(interface, methods.len() as u16),
                Err(TransportError::UnknownMethod)
            );
        }
        let schema_methods: usize = SCHEMA_INTERFACES.iter().map(|(.., m)| m.len()).sum();
        assert_eq!(schema_methods, MethodId::ALL.len());
    }

    /// docs/abi.md's interface table says what the schemas say: every
    /// interface, its id, and each method's ordinal and name.
    #[test]
    fn the_abi_document_lists_the_schemas() {
        use std::string::ToString;
        let document = include_str!("../../docs/abi.md");
        let start = document
            .find("| interface | type id | ordinal: method |")
            .expect("the interface table");
        let mut listed = std::vec::Vec::new();
        for row in document[start..].lines().skip(2) {
            let Some(row) = row.strip_prefix("| `") else {
                break;
            };
            let mut columns = row.split(" | ");
            let name = columns.next().unwrap().trim_end_matches('`').to_string();
            let id = u64::from_str_radix(columns.next().unwrap().trim_start_matches("0x"), 16)
                .unwrap_or_else(|e| panic!("{name}: id: {e}"));
            let methods: std::vec::Vec<std::string::String> = columns
                .next()
                .unwrap()
                .split("; ")
                .enumerate()
                .map(|(ordinal, method)| {
                    let (number, rest) = method
                        .split_once(": `")
                        .unwrap_or_else(|| panic!("{name}: {method}"));
                    assert_eq!(
                        number.trim(),
                        ordinal.to_string(),
                        "{name}: ordinals in order"
                    );
                    rest.split([' ', '`']).next().unwrap().to_string()
                })
                .collect();
            listed.push((name, id, methods));
        }
        listed.sort();
        let compiled: std::vec::Vec<_> = SCHEMA_INTERFACES
            .iter()
            .map(|(name, id, methods)| {
                (
                    name.to_string(),
                    *id,
                    methods
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<std::vec::Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(listed, compiled);
    }

    #[test]
    fn unknown_ids_and_ordinals() {
        assert_eq!(Interface::from_id(0), None);
        assert_eq!(Interface::from_id(u64::MAX), None);
        for interface in Interface::ALL {
            assert_eq!(
                MethodId::resolve(interface, u16::MAX),
                Err(TransportError::UnknownMethod)
            );
        }
    }

    /// What a typed client does on the guest side and a service on the
    /// nucleus side, through bytes only.
    fn call<M: Method>(params: &M::Params, serve: impl Fn(M::Params) -> M::Results) -> M::Results {
        let mut params_buffer = vec![0; 1024];
        let len = params.encode(&mut params_buffer).unwrap();
        assert!(MethodId::resolve(M::INTERFACE, M::ORDINAL).is_ok());
        let decoded = M::Params::decode(&params_buffer[..len]).unwrap();
        let mut results_buffer = vec![0; 1024];
        let written = serve(decoded).encode(&mut results_buffer).unwrap();
        M::Results::decode(&results_buffer[..written]).unwrap()
    }

    #[test]
    fn methods_carry_their_message_types() {
        let written = call::<console::Write>(
            &console::WriteParams {
                text: b"hello\n".to_vec(),
            },
            |p| console::WriteResults {
                written: p.text.len() as u32,
            },
        );
        assert_eq!(written.written, 6);
        let filled = call::<entropy::Fill>(&entropy::FillParams { length: 4 }, |p| {
            entropy::FillResults {
                bytes: vec![0xaa; p.length as usize],
            }
        });
        assert_eq!(filled.bytes, [0xaa; 4]);
        let region = call::<guest_control::Region>(&guest_control::RegionParams, |_| {
            guest_control::RegionResults {
                base: 0x40_0000,
                size: 0x10_0000,
            }
        });
        assert_eq!(region.size, 0x10_0000);
        call::<timer::Sleep>(&timer::SleepParams { nanos: 5 }, |p| {
            assert_eq!(p.nanos, 5);
            timer::SleepResults
        });
        let now = call::<timer::Now>(&timer::NowParams, |_| timer::NowResults { nanos: 9 });
        assert_eq!(now.nanos, 9);
        call::<guest_control::Exit>(&guest_control::ExitParams { code: -1 }, |p| {
            assert_eq!(p.code, -1);
            guest_control::ExitResults
        });
        let info = call::<boot_info::Get>(&boot_info::GetParams, |_| boot_info::GetResults {
            info: boot_info::Info {
                cpu_count: 2,
                features: vec![String::from("pku")],
                ..Default::default()
            },
        });
        assert_eq!(info.info.features, ["pku"]);
    }

    #[test]
    fn start_info_and_endpoint_messages_round_trip() {
        use guest_control::{ConnectParams, DataRegion, ServeParams, StartInfoResults};
        let info = StartInfoResults {
            args: vec![String::from("hello.wasm"), String::from("world")],
            data: vec![DataRegion {
                name: String::from("tree"),
                base: 0x1000_0040_0000,
                size: 12345,
            }],
            mounts: vec![guest_control::Mount {
                path: String::from("/data"),
                directory: 0x0001_0007,
                writable: true,
            }],
        };
        let mut out = vec![0u8; 512];
        let len = info.encode(&mut out).unwrap();
        assert_eq!(StartInfoResults::decode(&out[..len]).unwrap(), info);
        let serve = ServeParams {
            name: String::from("echo"),
        };
        let len = serve.encode(&mut out).unwrap();
        assert_eq!(ServeParams::decode(&out[..len]).unwrap(), serve);
        let connect = ConnectParams {
            name: String::from("echo"),
        };
        let len = connect.encode(&mut out).unwrap();
        assert_eq!(ConnectParams::decode(&out[..len]).unwrap(), connect);
        let data = echo::EchoParams {
            data: vec![1, 2, 3],
        };
        let len = data.encode(&mut out).unwrap();
        assert_eq!(echo::EchoParams::decode(&out[..len]).unwrap(), data);
    }
}
