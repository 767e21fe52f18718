//! What a nucleus service is: the [`Service`] trait the dispatcher calls,
//! the [`Caller`] each call is lent, and the [`Reply`] it answers with.
//! The services themselves (`services`, `sockets`, `files`) implement it;
//! the registry that names which one serves an interface is `services`.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use caps::interfaces::guest_control;
use caps::{
    Buffer, CAP_ID_BYTES, CapId, CapTable, Exception, ExceptionCode, Interface, Message, MethodId,
    Rights, TransportError,
};
use nucleus_core::endpoint::{Capability, RouteKind};

use crate::guest_memory::GuestMemory;

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

/// What a service may know about its caller: part of its domain, lent to
/// each call by one reference.
pub struct CallerInfo {
    pub name: String,
    /// Its slot of the address space.
    pub slot: core::ops::Range<u64>,
    /// Console text waiting for its newline.
    pub console_line: Vec<u8>,
    /// The lines it may still print (`services::CONSOLE_LINES_PER_SECOND`).
    pub console_rate: nucleus_core::rate::TokenBucket,
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
    pub memory: &'a GuestMemory,
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

/// The appliance's `list` for this guest does not name what it asked to
/// do (`what`, e.g. "serve 'echo'").
pub fn denied(caller: &Caller, what: &str, list: &str) -> Result<Reply, TransportError> {
    let guest = &caller.info.name;
    exception(
        ExceptionCode::Denied,
        &alloc::format!("the appliance does not let {guest} {what} (not in its {list})"),
    )
}
