//! Arbitrary bytes as a direct message (numbers, Bools, Data, Text): the
//! direct reading answers exactly as capnp's reader does, value or error.
#![no_main]

use caps::interfaces::{console, echo, file, timer, udp_socket};
use caps::Message;
use caps::message::decode_with;
use libfuzzer_sys::fuzz_target;

fn check<M: Message + PartialEq + core::fmt::Debug>(bytes: &[u8]) {
    assert_eq!(M::decode(bytes), decode_with::<M::Schema, _>(bytes, M::read));
}

fuzz_target!(|data: &[u8]| {
    check::<timer::NowResults>(data);
    check::<console::WriteParams>(data);
    check::<echo::EchoParams>(data);
    check::<file::ReadAtResults>(data);
    check::<udp_socket::SendToParams>(data);
});
