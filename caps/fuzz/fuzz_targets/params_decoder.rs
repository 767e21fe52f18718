//! Arbitrary bytes as a params or results buffer: every decoder answers with
//! a value or `MalformedMessage`/`MessageTooLarge`, never a panic.
#![no_main]

use caps::interfaces::{boot_info, console, entropy, guest_control, timer};
use caps::{Exception, Message, TransportError};
use libfuzzer_sys::fuzz_target;

fn check<M: Message>(bytes: &[u8]) {
    if let Err(error) = M::decode(bytes) {
        assert!(matches!(
            error,
            TransportError::MalformedMessage | TransportError::MessageTooLarge
        ));
    }
}

fuzz_target!(|data: &[u8]| {
    check::<console::WriteParams>(data);
    check::<timer::SleepParams>(data);
    check::<entropy::FillParams>(data);
    check::<entropy::FillResults>(data);
    check::<boot_info::GetResults>(data);
    check::<guest_control::ExitParams>(data);
    check::<guest_control::RegionResults>(data);
    check::<Exception>(data);
});
