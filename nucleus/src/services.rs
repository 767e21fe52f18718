//! The services the nucleus itself implements behind capabilities: Console,
//! Timer, Entropy, BootInfo, GuestControl, the network's (`sockets`) and
//! the storage's (`files`), and the registry that says which serves an
//! interface ([`service`]). Each is a [`Service`] (the trait is
//! `crate::service`'s): it names the rights each of its methods needs and
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
use caps::{CapId, ExceptionCode, Interface, Message, Rights, TransportError};
use nucleus_core::console_text::Printable;
use nucleus_core::rate::TokenBucket;
use spin::Once;

use nucleus_core::endpoint::RouteKind;

use crate::service::{Caller, CallerInfo, Reply, Service, denied, exception, uniform};

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
        write_console(caller.info, &params.text);
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

/// Lines a guest may print at once, and per second after that: a guest
/// that floods the console loses lines (a note says how many), not the
/// machine's time.
const CONSOLE_BURST_LINES: u64 = 4_096;
pub const CONSOLE_LINES_PER_SECOND: u64 = 250;

/// A full console allowance, for a guest starting now.
pub fn console_rate() -> TokenBucket {
    TokenBucket::new(
        CONSOLE_BURST_LINES,
        CONSOLE_LINES_PER_SECOND,
        crate::time::tsc_hz(),
        crate::time::rdtsc(),
    )
}

/// Console text goes out line by line, each prefixed with the guest's name,
/// so lines of different guests never interleave mid-line. Lines are found
/// in one pass over the text (a flood of newlines costs linear time), and
/// each takes a token of the guest's console allowance.
fn write_console(info: &mut CallerInfo, text: &[u8]) {
    let now = crate::time::rdtsc();
    let pending = &mut info.console_line;
    if pending.try_reserve(text.len()).is_err() {
        // An exhausted heap loses this text, not the machine.
        return;
    }
    pending.extend_from_slice(text);
    let mut start = 0;
    while let Some(offset) = pending[start..].iter().position(|&b| b == b'\n') {
        let end = start + offset;
        if info.console_rate.take(now) {
            note_dropped(&info.name, &mut info.console_rate);
            log_line(&info.name, &pending[start..end]);
        }
        start = end + 1;
    }
    pending.drain(..start);
    // A guest that never ends its line still gets it out in bounded pieces.
    if pending.len() >= 512 {
        flush_console(info);
    }
}

/// Prints what is left of an unterminated line (at exit, or a long one),
/// and how many lines went unprinted.
pub fn flush_console(info: &mut CallerInfo) {
    if !info.console_line.is_empty() {
        if info.console_rate.take(crate::time::rdtsc()) {
            log_line(&info.name, &info.console_line);
        }
        info.console_line.clear();
    }
    note_dropped(&info.name, &mut info.console_rate);
}

/// "N lines dropped", once, before the next line that is printed.
fn note_dropped(name: &str, rate: &mut TokenBucket) {
    let dropped = rate.take_dropped();
    if dropped != 0 {
        crate::log!(
            "console: {dropped} line(s) of guest {name} dropped: more than {CONSOLE_LINES_PER_SECOND} lines/s"
        );
    }
}

fn log_line(name: &str, line: &[u8]) {
    crate::log!("{name}: {}", Printable(line));
}
