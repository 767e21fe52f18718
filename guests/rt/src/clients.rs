//! Typed clients for the capabilities every guest starts with.

use alloc::vec::Vec;

use caps::Interface;
use caps::interfaces::{boot_info, console, entropy, guest_control, timer};
use caps::start::initial_capability;

use crate::ring::{CallError, buffer_mut, call, call_with_aux, with_ring};
use caps::{CapId, Message, Outcome, Sqe, TransportError};

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

/// Nanoseconds since 1970-01-01 UTC.
pub fn timer_realtime() -> Result<u64, CallError> {
    call::<timer::Realtime>(initial_capability(Interface::Timer), &timer::RealtimeParams)
        .map(|r| r.nanos)
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

/// The guest's arguments and read-only data regions.
pub fn start_info() -> Result<guest_control::StartInfoResults, CallError> {
    call::<guest_control::StartInfo>(
        initial_capability(Interface::GuestControl),
        &guest_control::StartInfoParams,
    )
}

/// The bytes of the data region named `name`, mapped read-only in this
/// guest's slot for its whole life.
pub fn data(name: &str) -> Result<Option<&'static [u8]>, CallError> {
    let info = start_info()?;
    Ok(info.data.iter().find(|d| d.name == name).map(|d| {
        // SAFETY: the nucleus mapped `size` bytes at `base` read-only for
        // this guest and never unmaps them while it runs.
        unsafe { core::slice::from_raw_parts(d.base as *const u8, d.size as usize) }
    }))
}

/// Serves an interface under `name`; returns the endpoint capability to
/// RECV calls on (see [`Server`]).
pub fn serve(name: &str) -> Result<CapId, CallError> {
    let params = guest_control::ServeParams { name: name.into() };
    let (_, aux) = call_with_aux::<guest_control::Serve>(
        initial_capability(Interface::GuestControl),
        &params,
    )?;
    CapId::from_raw(aux as u32).ok_or(CallError::Transport(TransportError::InvalidCap))
}

/// A capability for calling what another guest serves under `name`, waiting
/// (up to `attempts` times 10 ms) for it to be served.
pub fn connect(name: &str, attempts: u32) -> Result<CapId, CallError> {
    let params = guest_control::ConnectParams { name: name.into() };
    let mut tries = 0;
    loop {
        match call_with_aux::<guest_control::Connect>(
            initial_capability(Interface::GuestControl),
            &params,
        ) {
            Ok((_, aux)) => {
                return CapId::from_raw(aux as u32)
                    .ok_or(CallError::Transport(TransportError::InvalidCap));
            }
            Err(CallError::Exception(_)) if tries + 1 < attempts => {
                tries += 1;
                timer_sleep(10_000_000)?;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The serving end of an endpoint: takes calls and answers them.
pub struct Server {
    cap: CapId,
    buffer: Vec<u8>,
}

/// A call taken by [`Server::receive`].
pub struct Incoming<'a> {
    pub token: u64,
    pub method: u16,
    pub params: &'a [u8],
}

impl Server {
    pub fn new(cap: CapId) -> Server {
        Server {
            cap,
            buffer: alloc::vec![0u8; caps::MAX_MESSAGE_BYTES as usize],
        }
    }

    /// Waits for the next call.
    pub fn receive(&mut self) -> Result<Incoming<'_>, CallError> {
        let sqe = Sqe::recv(self.cap.raw(), buffer_mut(&mut self.buffer), 0);
        match with_ring(|ring| ring.submit_and_wait(sqe)).outcome() {
            Outcome::Done { written, aux } => Ok(Incoming {
                token: aux,
                method: (aux & 0xffff) as u16,
                params: &self.buffer[..written as usize],
            }),
            Outcome::Failed(error) => Err(CallError::Transport(error)),
            _ => Err(CallError::Transport(TransportError::NotSupported)),
        }
    }

    /// Answers the call `token` with `results`.
    pub fn reply<M: Message>(&mut self, token: u64, results: &M) -> Result<(), CallError> {
        let cap = self.cap.raw();
        let cqe = with_ring(|ring| {
            ring.with_encoded(results, |ring, reply| {
                ring.submit_and_wait(Sqe::return_call(cap, token, reply, 0))
            })
        })?;
        match cqe.outcome() {
            Outcome::Done { .. } => Ok(()),
            Outcome::Failed(error) => Err(CallError::Transport(error)),
            _ => Err(CallError::Transport(TransportError::NotSupported)),
        }
    }
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
