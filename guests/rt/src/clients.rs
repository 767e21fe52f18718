//! Typed clients for the capabilities every guest starts with.

use alloc::vec::Vec;

use caps::Interface;
use caps::interfaces::{boot_info, console, entropy, guest_control, timer};
use caps::start::initial_capability;

use crate::ring::{CallError, call};

/// Writes text to the appliance console; returns the bytes taken.
pub fn console_write(text: &str) -> Result<u32, CallError> {
    let params = console::WriteParams {
        text: text.as_bytes().to_vec(),
    };
    call::<console::Write>(initial_capability(Interface::Console), &params).map(|r| r.written)
}

/// Nanoseconds since the nucleus started.
pub fn timer_now() -> Result<u64, CallError> {
    call::<timer::Now>(initial_capability(Interface::Timer), &timer::NowParams).map(|r| r.nanos)
}

/// Sleeps at least `nanos` (with the timer tick's granularity).
pub fn timer_sleep(nanos: u64) -> Result<(), CallError> {
    call::<timer::Sleep>(
        initial_capability(Interface::Timer),
        &timer::SleepParams { nanos },
    )
    .map(|_| ())
}

/// `length` bytes from the hardware entropy source (at most 4096 per call).
pub fn entropy_fill(length: u32) -> Result<Vec<u8>, CallError> {
    call::<entropy::Fill>(
        initial_capability(Interface::Entropy),
        &entropy::FillParams { length },
    )
    .map(|r| r.bytes)
}

pub fn boot_info() -> Result<boot_info::Info, CallError> {
    call::<boot_info::Get>(
        initial_capability(Interface::BootInfo),
        &boot_info::GetParams,
    )
    .map(|r| r.info)
}

/// This guest's slot of the address space: (base, size).
pub fn region() -> Result<(u64, u64), CallError> {
    call::<guest_control::Region>(
        initial_capability(Interface::GuestControl),
        &guest_control::RegionParams,
    )
    .map(|r| (r.base, r.size))
}

/// Ends the guest through GuestControl (the `exit` system call does the same).
pub fn exit(code: i32) -> ! {
    let _ = call::<guest_control::Exit>(
        initial_capability(Interface::GuestControl),
        &guest_control::ExitParams { code },
    );
    crate::syscall::exit(code)
}

/// `print!` to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let text = alloc::format!($($arg)*);
        let _ = $crate::clients::console_write(&text);
    }};
}

/// `println!` to the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut text = alloc::format!($($arg)*);
        text.push('\n');
        let _ = $crate::clients::console_write(&text);
    }};
}
