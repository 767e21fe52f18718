//! The services the nucleus itself implements behind capabilities: Console,
//! Timer, Entropy, BootInfo, GuestControl. Each is a [`Service`]: it names
//! the rights each of its methods needs and answers a call from decoded
//! params with results, an exception, a completion for later, a request the
//! endpoint registry carries out, or the caller's exit. None touches
//! hardware except through the nucleus modules it calls, and none has
//! `unsafe`. The dispatcher (`domain::execute`) knows only this trait.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use caps::interfaces::{boot_info, console, entropy, guest_control, timer};
use caps::{
    Buffer, Exception, ExceptionCode, Interface, Message, MethodId, Rights, TransportError,
};
use spin::Once;

use crate::endpoint::RouteKind;

/// What a call produced.
pub enum Reply {
    /// Results of this many bytes, written to the caller's results buffer.
    Results(usize),
    /// The service failed: a typed exception for the results buffer.
    Exception(Exception),
    /// Completes (with empty results) when the TSC reaches this value.
    Later(u64),
    /// Needs the endpoint registry (and perhaps other guests). Boxed: rare,
    /// and it would make every reply a large value.
    Routed(alloc::boxed::Box<RouteKind>),
    /// The guest asked to end with this code.
    Exit(i32),
}

/// An interface the nucleus implements.
pub trait Service: Sync {
    /// The rights `method` needs, or `UnknownMethod` for an ordinal the
    /// interface does not have.
    fn rights(&self, method: u16) -> Result<Rights, TransportError>;

    /// Runs `method` with the params message (a nucleus copy) for `caller`.
    fn call(
        &self,
        method: u16,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError>;
}

/// The service behind a nucleus capability of `interface`.
pub fn service(interface: Interface) -> Option<&'static dyn Service> {
    Some(match interface {
        Interface::Console => &ConsoleService,
        Interface::Timer => &TimerService,
        Interface::Entropy => &EntropyService,
        Interface::BootInfo => &BootInfoService,
        Interface::GuestControl => &GuestControlService,
        // Endpoints are the registry's (`endpoint`); guests serve the rest.
        Interface::Endpoint | Interface::Echo | Interface::Sessions => return None,
    })
}

/// Facts BootInfo reports, fixed at boot.
pub struct BootFacts {
    pub boot_nanos: u64,
    pub memory_total_bytes: u64,
    pub cpu_count: u32,
    pub features: Vec<String>,
}

pub static BOOT_FACTS: Once<BootFacts> = Once::new();

/// Most bytes one Entropy.fill returns (a guest wanting more calls again).
const MAX_ENTROPY_BYTES: u32 = 4096;

/// What a service may know about its caller: part of its domain, lent to
/// each call by one reference.
pub struct CallerInfo {
    pub name: String,
    /// Its slot of the address space.
    pub slot: core::ops::Range<u64>,
    /// Console text waiting for its newline.
    pub console_line: Vec<u8>,
    pub start_info: guest_control::StartInfoResults,
    /// Endpoint names the appliance lets it serve and connect to.
    pub serves: Vec<String>,
    pub connects: Vec<String>,
}

/// One call's caller: who, and where its results go.
pub struct Caller<'a> {
    pub info: &'a mut CallerInfo,
    /// The caller's results buffer (checked writable), for routed replies.
    pub results: Buffer,
    /// Writes encoded results (frame header, then segment) into the
    /// caller's results buffer; called at most once, when they fit.
    pub write_results: &'a mut dyn FnMut(&[u8], &[u8]),
}

impl Caller<'_> {
    /// Encodes results straight into the caller's buffer (from the
    /// nucleus's scratch segment: no buffer between).
    fn results<M: Message>(&mut self, message: &M) -> Result<Reply, TransportError> {
        message
            .encode_in_parts(self.results.len as usize, &mut *self.write_results)
            .map(Reply::Results)
    }
}

fn exception(code: ExceptionCode, message: &str) -> Result<Reply, TransportError> {
    Ok(Reply::Exception(Exception::new(code, message)))
}

/// Every method of `interface` needs `needed`; ordinals it lacks are
/// `UnknownMethod`.
fn uniform(interface: Interface, method: u16, needed: Rights) -> Result<Rights, TransportError> {
    MethodId::resolve(interface, method).map(|_| needed)
}

struct ConsoleService;

impl Service for ConsoleService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::Console, method, caps::rights::console::WRITE)
    }

    fn call(&self, _: u16, params: &[u8], caller: &mut Caller) -> Result<Reply, TransportError> {
        let params = console::WriteParams::decode(params)?;
        write_console(
            &caller.info.name,
            &mut caller.info.console_line,
            &params.text,
        );
        let written = params.text.len() as u32;
        caller.results(&console::WriteResults { written })
    }
}

struct TimerService;

impl Service for TimerService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::Timer, method, Rights::NONE)
    }

    fn call(
        &self,
        method: u16,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError> {
        match method {
            timer::NOW => {
                let nanos = crate::time::since_entry().nanos;
                caller.results(&timer::NowResults { nanos })
            }
            timer::SLEEP => {
                let params = timer::SleepParams::decode(params)?;
                let cycles =
                    nucleus_core::time::nanos_to_cycles(params.nanos, crate::time::tsc_hz());
                Ok(Reply::Later(crate::time::rdtsc().saturating_add(cycles)))
            }
            _ => match crate::time::wall_clock_nanos() {
                Some(nanos) => caller.results(&timer::RealtimeResults { nanos }),
                None => exception(
                    ExceptionCode::Unimplemented,
                    "the firmware gave no date at boot",
                ),
            },
        }
    }
}

struct EntropyService;

impl Service for EntropyService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::Entropy, method, Rights::NONE)
    }

    fn call(&self, _: u16, params: &[u8], caller: &mut Caller) -> Result<Reply, TransportError> {
        let params = entropy::FillParams::decode(params)?;
        if params.length > MAX_ENTROPY_BYTES {
            return exception(
                ExceptionCode::InvalidArgument,
                "Entropy.fill returns at most 4096 bytes per call",
            );
        }
        let Some(bytes) = crate::entropy::fill(params.length as usize) else {
            return exception(
                ExceptionCode::Failed,
                "no hardware entropy source on this CPU (no RDRAND or RDSEED)",
            );
        };
        caller.results(&entropy::FillResults { bytes })
    }
}

struct BootInfoService;

impl Service for BootInfoService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::BootInfo, method, Rights::NONE)
    }

    fn call(&self, _: u16, _: &[u8], caller: &mut Caller) -> Result<Reply, TransportError> {
        let facts = BOOT_FACTS
            .get()
            .expect("boot facts recorded before guests start");
        let info = boot_info::Info {
            boot_nanos: facts.boot_nanos,
            memory_total_bytes: facts.memory_total_bytes,
            memory_free_bytes: crate::memory::free_frame_count() * 4096,
            cpu_count: facts.cpu_count,
            tsc_hz: crate::time::tsc_hz(),
            features: facts.features.clone(),
        };
        caller.results(&boot_info::GetResults { info })
    }
}

struct GuestControlService;

impl Service for GuestControlService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::GuestControl, method, Rights::NONE)
    }

    fn call(
        &self,
        method: u16,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError> {
        match method {
            guest_control::EXIT => {
                let params = guest_control::ExitParams::decode(params)?;
                Ok(Reply::Exit(params.code))
            }
            guest_control::REGION => {
                let (base, size) = (
                    caller.info.slot.start,
                    caller.info.slot.end - caller.info.slot.start,
                );
                caller.results(&guest_control::RegionResults { base, size })
            }
            guest_control::SERVE => {
                let name = guest_control::ServeParams::decode(params)?.name;
                if !caller.info.serves.contains(&name) {
                    return denied(&caller.info.name, "serve", &name);
                }
                Ok(Reply::Routed(alloc::boxed::Box::new(RouteKind::Serve {
                    name,
                    results: caller.results,
                })))
            }
            guest_control::CONNECT => {
                let name = guest_control::ConnectParams::decode(params)?.name;
                if !caller.info.connects.contains(&name) {
                    return denied(&caller.info.name, "connect to", &name);
                }
                Ok(Reply::Routed(alloc::boxed::Box::new(RouteKind::Connect {
                    name,
                    results: caller.results,
                })))
            }
            _ => {
                let start_info = &caller.info.start_info;
                start_info
                    .encode_in_parts(caller.results.len as usize, &mut *caller.write_results)
                    .map(Reply::Results)
            }
        }
    }
}

/// The appliance did not list `name` for this guest.
fn denied(guest: &str, what: &str, name: &str) -> Result<Reply, TransportError> {
    let list = if what == "serve" {
        "serves"
    } else {
        "connects"
    };
    exception(
        ExceptionCode::Denied,
        &alloc::format!("the appliance does not let {guest} {what} '{name}' (not in its {list})"),
    )
}

/// Console text goes out line by line, each prefixed with the guest's name,
/// so lines of different guests never interleave mid-line.
fn write_console(name: &str, pending: &mut Vec<u8>, text: &[u8]) {
    pending.extend_from_slice(text);
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        crate::log!("{name}: {}", String::from_utf8_lossy(&line[..end]));
    }
    // A guest that never ends its line still gets it out in bounded pieces.
    if pending.len() >= 512 {
        flush_console(name, pending);
    }
}

/// Prints what is left of an unterminated line (at exit).
pub fn flush_console(name: &str, pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        crate::log!("{name}: {}", String::from_utf8_lossy(pending));
        pending.clear();
    }
}
