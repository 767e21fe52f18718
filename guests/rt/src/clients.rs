//! Typed clients for the capabilities every guest starts with.

use alloc::vec::Vec;

use caps::Interface;
use caps::interfaces::{boot_info, console, endpoint, entropy, guest_control, timer};
use caps::start::initial_capability;

use crate::ring::{CallError, Rt, buffer_mut, call_with_caps, split_caps, with_ring};
use caps::{CapId, Exception, ExceptionCode, Message, Outcome, Rights, Sqe, TransportError};

/// The typed client of an initial capability.
fn console() -> console::Client {
    console::Client::new(initial_capability(Interface::Console))
}

fn timer() -> timer::Client {
    timer::Client::new(initial_capability(Interface::Timer))
}

fn guest_control() -> guest_control::Client {
    guest_control::Client::new(initial_capability(Interface::GuestControl))
}

/// Writes text to the appliance console; returns the bytes taken.
pub fn console_write(text: &str) -> Result<u32, CallError> {
    console_write_bytes(text.as_bytes())
}

/// Writes `bytes` as they are, in calls of at most [`CONSOLE_CHUNK`] bytes
/// (one call's params must fit one message); how many were written.
pub fn console_write_bytes(bytes: &[u8]) -> Result<u32, CallError> {
    let mut written = 0;
    for chunk in bytes.chunks(CONSOLE_CHUNK) {
        let params = console::WriteParams {
            text: chunk.to_vec(),
        };
        written += console().write(&mut Rt, &params)?.written;
    }
    Ok(written)
}

/// The most one Console.write carries: a message is at most 64 KiB, with
/// room for its framing.
pub const CONSOLE_CHUNK: usize = 32 * 1024;

/// Nanoseconds since the nucleus started.
pub fn timer_now() -> Result<u64, CallError> {
    timer().now(&mut Rt, &timer::NowParams).map(|r| r.nanos)
}

/// Nanoseconds since 1970-01-01 UTC.
pub fn timer_realtime() -> Result<u64, CallError> {
    timer()
        .realtime(&mut Rt, &timer::RealtimeParams)
        .map(|r| r.nanos)
}

/// Sleeps at least `nanos` (with the timer tick's granularity).
pub fn timer_sleep(nanos: u64) -> Result<(), CallError> {
    timer()
        .sleep(&mut Rt, &timer::SleepParams { nanos })
        .map(|_| ())
}

/// `length` bytes from the hardware entropy source (at most 4096 per call).
pub fn entropy_fill(length: u32) -> Result<Vec<u8>, CallError> {
    entropy::Client::new(initial_capability(Interface::Entropy))
        .fill(&mut Rt, &entropy::FillParams { length })
        .map(|r| r.bytes)
}

pub fn boot_info() -> Result<boot_info::Info, CallError> {
    boot_info::Client::new(initial_capability(Interface::BootInfo))
        .get(&mut Rt, &boot_info::GetParams)
        .map(|r| r.info)
}

/// This guest's slot of the address space: (base, size).
pub fn region() -> Result<(u64, u64), CallError> {
    guest_control()
        .region(&mut Rt, &guest_control::RegionParams)
        .map(|r| (r.base, r.size))
}

/// The guest's arguments and read-only data regions.
pub fn start_info() -> Result<guest_control::StartInfoResults, CallError> {
    guest_control().start_info(&mut Rt, &guest_control::StartInfoParams)
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

/// The one capability a call's results carry (Serve, Connect, Mint).
fn one_cap(caps: Vec<CapId>) -> Result<CapId, CallError> {
    caps.first()
        .copied()
        .ok_or(CallError::Transport(TransportError::MalformedMessage))
}

/// Serves an interface under `name` (which the appliance must list in this
/// guest's `serves`); returns the endpoint's serving end to RECV calls on
/// (see [`Server`]).
pub fn serve(name: &str) -> Result<CapId, CallError> {
    let params = guest_control::ServeParams { name: name.into() };
    let (_, caps) = call_with_caps::<guest_control::Serve>(
        initial_capability(Interface::GuestControl),
        &params,
        &[],
        false,
    )?;
    one_cap(caps)
}

/// A calling end of what another guest serves under `name` (listed in this
/// guest's `connects`), waiting (up to `attempts` times 10 ms) while nothing
/// is served under it.
pub fn connect(name: &str, attempts: u32) -> Result<CapId, CallError> {
    let params = guest_control::ConnectParams { name: name.into() };
    let mut tries = 0;
    loop {
        match call_with_caps::<guest_control::Connect>(
            initial_capability(Interface::GuestControl),
            &params,
            &[],
            false,
        ) {
            Ok((_, caps)) => return one_cap(caps),
            Err(CallError::Exception(e))
                if e.code == ExceptionCode::Disconnected && tries + 1 < attempts =>
            {
                tries += 1;
                timer_sleep(10_000_000)?;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A new calling end of the endpoint `server` serves, whose calls arrive
/// with `badge`, holding at most `rights` (`endpoint::endpoint_rights::CLIENT`).
pub fn mint(server: CapId, badge: u64, rights: Rights) -> Result<CapId, CallError> {
    let params = endpoint::MintParams {
        badge,
        rights: rights.bits(),
    };
    let (_, caps) = call_with_caps::<endpoint::Mint>(server, &params, &[], false)?;
    one_cap(caps)
}

/// Drops a capability from this guest's table.
pub fn release(cap: CapId) -> Result<(), CallError> {
    match with_ring(|ring| ring.submit_and_wait(Sqe::release(cap.raw(), 0))).outcome() {
        Outcome::Done { .. } => Ok(()),
        Outcome::Failed(error) => Err(CallError::Transport(error)),
        _ => Err(CallError::Transport(TransportError::NotSupported)),
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
    /// The badge of the capability the caller called through.
    pub badge: u64,
    /// The params message.
    pub params: &'a [u8],
    /// Capabilities the call carried, now in this guest's table.
    pub caps: Vec<CapId>,
}

impl Server {
    pub fn new(cap: CapId) -> Server {
        Server::with_buffer(cap, caps::MAX_MESSAGE_BYTES as usize)
    }

    /// A server whose RECVs take calls of at most `bytes` (larger ones are
    /// refused to their callers).
    pub fn with_buffer(cap: CapId, bytes: usize) -> Server {
        Server {
            cap,
            buffer: alloc::vec![0u8; bytes],
        }
    }

    /// The serving end's capability (for [`mint`]).
    pub fn cap(&self) -> CapId {
        self.cap
    }

    /// Waits for the next call.
    pub fn receive(&mut self) -> Result<Incoming<'_>, CallError> {
        let sqe = Sqe::recv(self.cap.raw(), buffer_mut(&mut self.buffer), 0);
        let cqe = with_ring(|ring| ring.submit_and_wait(sqe));
        match cqe.outcome() {
            Outcome::Done { written, aux, caps } => {
                let payload = &self.buffer[..written as usize];
                let (params, caps) = if caps == 0 {
                    (payload, Vec::new())
                } else {
                    split_caps(payload, caps)
                };
                Ok(Incoming {
                    token: aux,
                    method: (aux & 0xffff) as u16,
                    badge: cqe.badge,
                    params,
                    caps,
                })
            }
            Outcome::Failed(error) => Err(CallError::Transport(error)),
            _ => Err(CallError::Transport(TransportError::NotSupported)),
        }
    }

    /// Answers the call `token` with `results`.
    pub fn reply<M: Message>(&mut self, token: u64, results: &M) -> Result<(), CallError> {
        self.reply_with_caps(token, results, &[], false)
    }

    /// Answers the call `token` with `results` and the capabilities `caps`
    /// (copied, or moved out of this guest's table when `moved`).
    pub fn reply_with_caps<M: Message>(
        &mut self,
        token: u64,
        results: &M,
        caps: &[CapId],
        moved: bool,
    ) -> Result<(), CallError> {
        let cap = self.cap.raw();
        let count = caps.len() as u16;
        let cqe = with_ring(|ring| {
            ring.with_encoded(results, caps, |ring, reply| {
                let sqe = Sqe::return_call(cap, token, reply, 0).carrying_caps(count, moved);
                ring.submit_and_wait(sqe)
            })
        })?;
        returned(cqe)
    }

    /// Answers the call `token` with an exception.
    pub fn reply_exception(&mut self, token: u64, exception: &Exception) -> Result<(), CallError> {
        let cap = self.cap.raw();
        let cqe = with_ring(|ring| {
            ring.with_encoded(exception, &[], |ring, reply| {
                ring.submit_and_wait(Sqe::return_exception(cap, token, reply, 0))
            })
        })?;
        returned(cqe)
    }
}

fn returned(cqe: caps::Cqe) -> Result<(), CallError> {
    match cqe.outcome() {
        Outcome::Done { .. } => Ok(()),
        Outcome::Failed(error) => Err(CallError::Transport(error)),
        _ => Err(CallError::Transport(TransportError::NotSupported)),
    }
}

/// Ends the guest through GuestControl (the `exit` system call does the same).
pub fn exit(code: i32) -> ! {
    let _ = guest_control().exit(&mut Rt, &guest_control::ExitParams { code });
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
