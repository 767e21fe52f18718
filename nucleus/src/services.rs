//! The services the nucleus itself implements behind capabilities: Console,
//! Timer, Entropy, BootInfo, GuestControl. Each takes decoded params and
//! returns results, an exception, or a completion for later; none touches
//! hardware except through the nucleus modules it calls, and none has `unsafe`.

use alloc::string::String;
use alloc::vec::Vec;

use caps::interfaces::{boot_info, console, entropy, guest_control, timer};
use caps::{Exception, ExceptionCode, Message, MethodId, TransportError};
use spin::Once;

/// What a call produced.
pub enum Reply {
    /// Results of this many bytes, written to the caller's results buffer.
    Results(usize),
    /// The service failed: a typed exception for the results buffer.
    Exception(Exception),
    /// Completes (with empty results) when the TSC reaches this value.
    At(u64),
    /// The guest asked to end with this code.
    Exit(i32),
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

/// What a service may know about its caller.
pub struct Caller<'a> {
    pub name: &'a str,
    pub slot: core::ops::Range<u64>,
    /// Console text waiting for its newline.
    pub console_line: &'a mut Vec<u8>,
    pub start_info: &'a guest_control::StartInfoResults,
    /// Writes encoded results (frame header, then segment) into the
    /// caller's results buffer; called at most once, when they fit.
    pub write_results: &'a mut dyn FnMut(&[u8], &[u8]),
}

/// Encodes results straight into the caller's buffer of `capacity` bytes
/// (from the nucleus's scratch segment: no buffer between).
fn results<M: Message>(
    message: &M,
    capacity: usize,
    write: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<Reply, TransportError> {
    message.encode_in_parts(capacity, write).map(Reply::Results)
}

pub fn call(
    method: MethodId,
    params: &[u8],
    capacity: usize,
    caller: Caller,
) -> Result<Reply, TransportError> {
    let write = caller.write_results;
    match method {
        MethodId::ConsoleWrite => {
            let params = console::WriteParams::decode(params)?;
            write_console(caller.name, caller.console_line, &params.text);
            let written = params.text.len() as u32;
            results(&console::WriteResults { written }, capacity, write)
        }
        MethodId::TimerNow => {
            let nanos = crate::time::since_entry().nanos;
            results(&timer::NowResults { nanos }, capacity, write)
        }
        MethodId::TimerRealtime => match crate::time::wall_clock_nanos() {
            Some(nanos) => results(&timer::RealtimeResults { nanos }, capacity, write),
            None => Ok(Reply::Exception(Exception::new(
                ExceptionCode::Unimplemented,
                "the firmware gave no date at boot",
            ))),
        },
        MethodId::TimerSleep => {
            let params = timer::SleepParams::decode(params)?;
            let cycles = nucleus_core::time::nanos_to_cycles(params.nanos, crate::time::tsc_hz());
            Ok(Reply::At(crate::time::rdtsc().saturating_add(cycles)))
        }
        MethodId::EntropyFill => {
            let params = entropy::FillParams::decode(params)?;
            if params.length > MAX_ENTROPY_BYTES {
                return Ok(Reply::Exception(Exception::new(
                    ExceptionCode::InvalidArgument,
                    "Entropy.fill returns at most 4096 bytes per call",
                )));
            }
            let Some(bytes) = crate::entropy::fill(params.length as usize) else {
                return Ok(Reply::Exception(Exception::new(
                    ExceptionCode::Failed,
                    "no hardware entropy source on this CPU (no RDRAND or RDSEED)",
                )));
            };
            results(&entropy::FillResults { bytes }, capacity, write)
        }
        MethodId::BootInfoGet => {
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
            results(&boot_info::GetResults { info }, capacity, write)
        }
        MethodId::GuestControlExit => {
            let params = guest_control::ExitParams::decode(params)?;
            Ok(Reply::Exit(params.code))
        }
        // Endpoints live in the scheduler (see `endpoint`): the domain routes
        // these before they reach here.
        MethodId::GuestControlServe | MethodId::GuestControlConnect => {
            Err(TransportError::NotSupported)
        }
        // Guests serve Echo; the nucleus never holds an Echo service.
        MethodId::EchoEcho => Err(TransportError::WrongCapKind),
        MethodId::GuestControlStartInfo => results(caller.start_info, capacity, write),
        MethodId::GuestControlRegion => {
            let (base, size) = (caller.slot.start, caller.slot.end - caller.slot.start);
            results(
                &guest_control::RegionResults { base, size },
                capacity,
                write,
            )
        }
    }
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
