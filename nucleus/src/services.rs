//! The services the nucleus itself implements behind capabilities: Console,
//! Timer, Entropy, BootInfo, GuestControl, the network's (`sockets`) and
//! the storage's (`files`).
//! Each is a [`Service`]: it names the rights each of its methods needs and
//! answers a call from decoded params with results (which may carry new
//! capabilities of objects it made), an exception, a completion for later,
//! a wait for its objects to make progress, a request the endpoint
//! registry carries out, or the caller's exit. None touches hardware except
//! through the nucleus modules it calls, and none has `unsafe`. The
//! dispatcher (`domain::execute`) knows only this trait.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use caps::interfaces::{boot_info, console, entropy, guest_control, timer};
use caps::{
    Buffer, CAP_ID_BYTES, CapId, CapTable, Exception, ExceptionCode, Interface, Message, MethodId,
    Rights, TransportError,
};
use spin::Once;

use crate::endpoint::{Capability, RouteKind};

/// What a call produced.
pub enum Reply {
    /// Results written to the caller's results buffer: `bytes` in all, the
    /// last `caps` of them ids of capabilities put in the caller's table.
    Results { bytes: usize, caps: usize },
    /// The service failed: a typed exception for the results buffer.
    Exception(Exception),
    /// Completes (with empty results) when the TSC reaches this value.
    Later(u64),
    /// Not yet: the call waits and is made again whenever the service's
    /// objects make progress (`sched::retry_waiting`), until it answers
    /// otherwise; at `until` (TSC), if given, it completes with empty
    /// results instead. Only the first `until` counts.
    Wait { until: Option<u64> },
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

    /// Runs `method` on `object` (`None`: the service itself; else the key
    /// of an object the service made) with the params message (a nucleus
    /// copy) for `caller`. A call that answers `Wait` is made again, with
    /// the same params, until it answers otherwise.
    fn call(
        &self,
        method: u16,
        object: Option<CapId>,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError>;

    /// The capability naming `object` was released (or its holder, `owner`,
    /// went): the object goes.
    fn release(&self, _object: CapId, _owner: u32) {}
}

/// The service behind a nucleus capability of `interface`.
pub fn service(interface: Interface) -> Option<&'static dyn Service> {
    Some(match interface {
        Interface::Console => &ConsoleService,
        Interface::Timer => &TimerService,
        Interface::Entropy => &EntropyService,
        Interface::BootInfo => &BootInfoService,
        Interface::GuestControl => &GuestControlService,
        Interface::Network => &crate::sockets::NetworkService,
        Interface::TcpListener => &crate::sockets::TcpListenerService,
        Interface::TcpStream => &crate::sockets::TcpStreamService,
        Interface::UdpSocket => &crate::sockets::UdpSocketService,
        Interface::Directory => &crate::files::DirectoryService,
        Interface::File => &crate::files::FileService,
        // Endpoints are the registry's (`endpoint`); guests serve the rest.
        Interface::Endpoint | Interface::Echo | Interface::Sessions => return None,
    })
}

/// A guest has gone: the objects services made for it go too.
pub fn owner_gone(owner: u32) {
    crate::sockets::owner_gone(owner);
    crate::files::owner_gone(owner);
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
    /// Ports the appliance lets it listen on.
    pub listen: Vec<u16>,
    /// Who owns the objects services make for it: its address-space slot,
    /// unique among running guests.
    pub owner: u32,
}

/// One call's caller: who, its capabilities, and where its results go.
pub struct Caller<'a> {
    pub info: &'a mut CallerInfo,
    pub caps: &'a mut CapTable<Capability>,
    pub memory: &'a crate::domain::GuestMemory,
    /// The caller's results buffer (checked writable).
    pub results: Buffer,
}

impl Caller<'_> {
    /// Encodes results straight into the caller's buffer (from the
    /// nucleus's scratch segment: no buffer between).
    pub fn results<M: Message>(&self, message: &M) -> Result<Reply, TransportError> {
        self.results_in(message, self.results.len as usize)
            .map(|bytes| Reply::Results { bytes, caps: 0 })
    }

    fn results_in<M: Message>(&self, message: &M, limit: usize) -> Result<usize, TransportError> {
        let (memory, at) = (self.memory, self.results.addr);
        message.encode_in_parts(limit, &mut |header: &[u8], segment: &[u8]| {
            memory.copy_out_parts(at, header, segment)
        })
    }

    /// Results that carry new capabilities: the message, then the ids of
    /// `granted`, put in the caller's table (all or none). On an error
    /// nothing is granted, and the caller of this still owns the objects.
    pub fn results_granting<M: Message>(
        &mut self,
        message: &M,
        granted: &[Capability],
    ) -> Result<Reply, TransportError> {
        let ids_bytes = granted.len() * CAP_ID_BYTES;
        let limit = (self.results.len as usize)
            .checked_sub(ids_bytes)
            .ok_or(TransportError::ResultsTooSmall)?;
        let bytes = self.results_in(message, limit)?;
        if self.caps.room() < granted.len() {
            return Err(TransportError::CapQuotaExceeded);
        }
        let ids = self.caps.insert_all(granted.to_vec())?;
        let mut encoded = Vec::with_capacity(ids_bytes);
        for id in ids {
            encoded.extend_from_slice(&id.raw().to_le_bytes());
        }
        self.memory
            .copy_out(self.results.addr + bytes as u64, &encoded);
        Ok(Reply::Results {
            bytes: bytes + ids_bytes,
            caps: granted.len(),
        })
    }
}

pub fn exception(code: ExceptionCode, message: &str) -> Result<Reply, TransportError> {
    Ok(Reply::Exception(Exception::new(code, message)))
}

/// Every method of `interface` needs `needed`; ordinals it lacks are
/// `UnknownMethod`.
pub fn uniform(
    interface: Interface,
    method: u16,
    needed: Rights,
) -> Result<Rights, TransportError> {
    MethodId::resolve(interface, method).map(|_| needed)
}

struct ConsoleService;

impl Service for ConsoleService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::Console, method, caps::rights::console::WRITE)
    }

    fn call(
        &self,
        _: u16,
        _: Option<CapId>,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError> {
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
        _: Option<CapId>,
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

    fn call(
        &self,
        _: u16,
        _: Option<CapId>,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError> {
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

    fn call(
        &self,
        _: u16,
        _: Option<CapId>,
        _: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError> {
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
        _: Option<CapId>,
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
                    return denied(caller, &alloc::format!("serve '{name}'"), "serves");
                }
                Ok(Reply::Routed(alloc::boxed::Box::new(RouteKind::Serve {
                    name,
                    results: caller.results,
                })))
            }
            guest_control::CONNECT => {
                let name = guest_control::ConnectParams::decode(params)?.name;
                if !caller.info.connects.contains(&name) {
                    return denied(caller, &alloc::format!("connect to '{name}'"), "connects");
                }
                Ok(Reply::Routed(alloc::boxed::Box::new(RouteKind::Connect {
                    name,
                    results: caller.results,
                })))
            }
            _ => caller.results(&caller.info.start_info),
        }
    }
}

/// The appliance did not list `name` for this guest.
/// The appliance's `list` for this guest does not name what it asked to
/// do (`what`, e.g. "serve 'echo'").
pub fn denied(caller: &Caller, what: &str, list: &str) -> Result<Reply, TransportError> {
    let guest = &caller.info.name;
    exception(
        ExceptionCode::Denied,
        &alloc::format!("the appliance does not let {guest} {what} (not in its {list})"),
    )
}

/// Console text goes out line by line, each prefixed with the guest's name,
/// so lines of different guests never interleave mid-line. Lines are found
/// in one pass over the text (a flood of newlines costs linear time).
fn write_console(name: &str, pending: &mut Vec<u8>, text: &[u8]) {
    pending.extend_from_slice(text);
    let mut start = 0;
    while let Some(offset) = pending[start..].iter().position(|&b| b == b'\n') {
        let end = start + offset;
        log_line(name, &pending[start..end]);
        start = end + 1;
    }
    pending.drain(..start);
    // A guest that never ends its line still gets it out in bounded pieces.
    if pending.len() >= 512 {
        flush_console(name, pending);
    }
}

/// Prints what is left of an unterminated line (at exit).
pub fn flush_console(name: &str, pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        log_line(name, pending);
        pending.clear();
    }
}

fn log_line(name: &str, line: &[u8]) {
    crate::log!("{name}: {}", Printable(line));
}

/// Guest text as the console shows it: control characters (a carriage
/// return, an escape sequence, a backspace) written out as `\xNN` or
/// `\u{NNNN}`, so a guest can neither rewrite the line it is on nor pass
/// for another speaker; bytes that are not UTF-8 as U+FFFD.
struct Printable<'a>(&'a [u8]);

impl core::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\t' => f.write_char(c)?,
                    c if (c as u32) < 0x80 && c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                    c if c.is_control() => write!(f, "\\u{{{:04x}}}", c as u32)?,
                    c => f.write_char(c)?,
                }
            }
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}
