//! Guest-served interfaces: a guest serves an interface under a name
//! (GuestControl.serve), others connect to it (GuestControl.connect) and CALL
//! it through the same ring ABI as a nucleus service. The server takes calls
//! with RECV and answers them with RETURN (results and capabilities, or an
//! exception); the nucleus copies params and results between the two
//! guests' buffers, passes the capabilities they carry from one table to
//! the other, and posts both completions. Params go straight from the
//! caller's buffer to the server's when a RECV is waiting (else they wait in
//! a nucleus copy), and a reply straight from the server's buffer to the
//! caller's.
//!
//! An endpoint is an object: its serving end is a capability of interface
//! Endpoint (RECV, RETURN, and `mint`, which makes calling ends with a badge
//! of the server's choosing), its calling ends are capabilities of whatever
//! the server serves. Endpoints live in a generational table: when one
//! closes (its server exits or releases it) its slot's generation moves on,
//! so every capability naming it is stale from then on.
//!
//! A RECV completion's aux is the call token (bits 0-15 the method ordinal
//! the caller named, bits 16-63 a per-endpoint call number, never 0) and
//! its badge the badge of the capability the caller called through.

use alloc::collections::VecDeque;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::allowance::{Allowance, try_zeroed};
use alloc::string::String;
use alloc::vec::Vec;

use caps::interfaces::endpoint::{self as endpoint_interface, MintParams};
use caps::rights::endpoint as endpoint_rights;
use caps::{
    Buffer, CAP_ID_BYTES, CapId, CapTable, CapsSent, CqReservation, Cqe, Destination, Exception,
    ExceptionCode, MAX_TRANSFER_CAPS, Message, Rights, TransportError,
};

/// A guest's id in the scheduler's table (generational, like every id here).
pub type GuestId = CapId;

/// A guest's memory as the endpoints reach it: range-checked copies (a bad
/// range copies nothing; the dispatcher checked the buffers it hands over).
pub trait Memory {
    fn copy_in(&self, address: u64, into: &mut [u8]);
    fn copy_out(&self, address: u64, from: &[u8]);
    /// Copies `length` bytes from `source`'s memory at `from` to `to` here.
    fn copy_from_guest(&self, to: u64, source: &Self, from: u64, length: usize);
}

/// A guest as the endpoints see it: its capability table, its memory, and
/// its ring's completion queue (CQ space reserved when its SQE was taken).
pub trait Party {
    type Memory: Memory;
    fn caps(&self) -> &CapTable<Capability>;
    fn caps_mut(&mut self) -> &mut CapTable<Capability>;
    fn memory(&self) -> &Self::Memory;
    /// Whether it still runs (an exited guest's completions go nowhere).
    fn is_running(&self) -> bool;
    /// What the nucleus may hold for it: its calls' params while they wait.
    fn allowance(&mut self) -> &mut Allowance;
    fn post(&mut self, reservation: CqReservation, cqe: &Cqe);
    fn cancel(&mut self, reservation: CqReservation);
    /// The completion that carries `exception` in its results buffer.
    fn exception_completion(&self, user_data: u64, results: Buffer, exception: &Exception) -> Cqe;
}

/// The guests, for the endpoints: they look guests up by id and wake the
/// thread of a guest they posted a completion to.
pub trait Parties {
    type Party: Party;
    fn get(&self, id: GuestId) -> Option<&Self::Party>;
    fn get_mut(&mut self, id: GuestId) -> Option<&mut Self::Party>;
    /// Two different guests at once.
    fn get_pair_mut(
        &mut self,
        a: GuestId,
        b: GuestId,
    ) -> Option<(&mut Self::Party, &mut Self::Party)>;
    /// Guest `id` had a completion posted: its thread may wait for it.
    fn wake(&mut self, id: GuestId);
}

/// An endpoint: its slot in the registry and the slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointId(CapId);

impl EndpointId {
    /// The id of the registry's slot `key`. Only the registry says whether
    /// it names a live endpoint (its generation), so an id made up here is
    /// at worst a stale one.
    pub const fn from_key(key: CapId) -> EndpointId {
        EndpointId(key)
    }
}

/// The object a capability names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// A service the nucleus implements (one object per interface).
    Service(caps::Interface),
    /// An object a nucleus service made (a socket): `key` names it in that
    /// service's own table, which says when it is gone.
    Item {
        interface: caps::Interface,
        key: CapId,
    },
    /// The serving end of an endpoint (interface Endpoint).
    Server(EndpointId),
    /// A calling end of an endpoint (the interface its server serves).
    Client(EndpointId),
}

/// An entry of a guest's capability table: which object (and so which
/// interface), with which rights, and the badge its minter chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub object: Object,
    pub rights: Rights,
    pub badge: u64,
}

impl Capability {
    /// A nucleus service with every right and badge 0 (what a guest starts with).
    pub fn service(interface: caps::Interface) -> Capability {
        Capability {
            object: Object::Service(interface),
            rights: Rights::ALL,
            badge: 0,
        }
    }
}

/// The capability ids a CALL or RETURN sends, as the nucleus read them.
#[derive(Clone, Copy, Debug, Default)]
pub struct SentCaps {
    ids: [u32; MAX_TRANSFER_CAPS],
    count: u8,
    moved: bool,
}

impl SentCaps {
    pub const NONE: SentCaps = SentCaps {
        ids: [0; MAX_TRANSFER_CAPS],
        count: 0,
        moved: false,
    };

    /// Reads the ids `sent` names from the sender's memory (checked there).
    #[inline]
    pub fn read(memory: &impl Memory, sent: CapsSent) -> SentCaps {
        if sent.count == 0 {
            return SentCaps::NONE;
        }
        let mut caps = SentCaps {
            moved: sent.moved,
            count: sent.count,
            ..SentCaps::NONE
        };
        let mut bytes = [0u8; MAX_TRANSFER_CAPS * CAP_ID_BYTES];
        memory.copy_in(sent.addr, &mut bytes[..sent.bytes()]);
        for (id, chunk) in caps.ids.iter_mut().zip(bytes.chunks_exact(CAP_ID_BYTES)) {
            *id = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        caps
    }

    fn bytes(&self) -> u32 {
        (self.count as usize * CAP_ID_BYTES) as u32
    }

    /// The ids as CapIds; a null one is `InvalidCap`.
    fn ids(&self) -> Result<Vec<CapId>, TransportError> {
        self.ids[..self.count as usize]
            .iter()
            .map(|raw| CapId::from_raw(*raw).ok_or(TransportError::InvalidCap))
            .collect()
    }
}

/// An SQE that needs the endpoint registry or another guest.
pub struct Routed {
    pub user_data: u64,
    pub reservation: CqReservation,
    pub kind: RouteKind,
}

/// What the dispatcher hands the registry, its rights checked: `params`,
/// `results` and capability ids lie in the caller's memory (checked).
#[derive(Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// A CALL on a calling end, through a capability with `badge`.
    Call {
        endpoint: EndpointId,
        badge: u64,
        method: u16,
        params: Buffer,
        results: Buffer,
        caps: CapsSent,
    },
    /// A CALL on a serving end: the Endpoint interface.
    Endpoint {
        endpoint: EndpointId,
        method: u16,
        params: Buffer,
        results: Buffer,
    },
    Recv {
        endpoint: EndpointId,
        buffer: Buffer,
    },
    /// `reply` lies in the server's memory (checked).
    Return {
        endpoint: EndpointId,
        token: u64,
        reply: Buffer,
        caps: CapsSent,
        exception: bool,
    },
    Serve {
        name: String,
        results: Buffer,
    },
    Connect {
        name: String,
        results: Buffer,
    },
    /// The serving end was released.
    Close {
        endpoint: EndpointId,
    },
    /// Gives up on the caller's calls to endpoints whose `user_data` is
    /// `target`; `cancelled` of its own (service calls) went already.
    Cancel {
        target: u64,
        cancelled: u32,
    },
}

/// Calls one client may have waiting for a RECV, per endpoint: beyond this
/// it is told the server is overloaded. Per client, so that one flooding
/// client cannot keep the others out. (What their params hold in the
/// nucleus is charged to the client's allowance.)
pub const MAX_WAITING_CALLS_PER_CLIENT: usize = 32;
/// Endpoints open at once, over all guests.
const MAX_ENDPOINTS: u16 = 256;

struct Receiver {
    user_data: u64,
    buffer: Buffer,
    reservation: CqReservation,
}

struct WaitingCall {
    method: u16,
    /// The nucleus's copy of the params, taken when the call was submitted.
    params: Vec<u8>,
    caps: SentCaps,
    call: InFlight,
}

struct InFlight {
    client: GuestId,
    badge: u64,
    user_data: u64,
    results: Buffer,
    reservation: CqReservation,
}

struct Endpoint {
    name: String,
    server: GuestId,
    receivers: VecDeque<Receiver>,
    waiting: VecDeque<WaitingCall>,
    /// The calls in the server's hands, by the token its RECV gave it.
    in_flight: Map<u64, InFlight>,
    next_call: u64,
}

/// A map by token or name. Its keys are the nucleus's own (tokens it
/// counts out, names the appliance lists), never a guest's choice, so a
/// fixed seed (which a `static` needs) opens no flooding attack.
type Map<K, V> = HashMap<K, V, FixedState>;

const fn map<K, V>() -> Map<K, V> {
    HashMap::with_hasher(FixedState::with_seed(0x6e75_636c_6575_7300))
}

pub struct Endpoints {
    table: CapTable<Endpoint>,
    /// The live endpoints by name (a name has one at a time).
    names: Map<String, EndpointId>,
}

/// A guest an endpoint refers to: a server (alive while its endpoints are)
/// or a caller whose calls are still in flight (dropped when it exits).
fn guest<P: Parties>(guests: &mut P, id: GuestId) -> &mut P::Party {
    guests
        .get_mut(id)
        .expect("endpoints refer only to live guests")
}

fn guest_ref<P: Parties>(guests: &P, id: GuestId) -> &P::Party {
    guests.get(id).expect("endpoints refer only to live guests")
}

/// Two different guests at once.
fn pair<P: Parties>(guests: &mut P, a: GuestId, b: GuestId) -> (&mut P::Party, &mut P::Party) {
    guests
        .get_pair_mut(a, b)
        .expect("two different live guests")
}

/// The exception of a call that does not fit the RECV buffer it met.
fn too_large(needed: u32, buffer: u32) -> Exception {
    Exception::new(
        ExceptionCode::InvalidArgument,
        &alloc::format!(
            "the call's {needed} bytes do not fit the server's receive buffer of {buffer}"
        ),
    )
}

fn disconnected(name: &str) -> Exception {
    Exception::new(
        ExceptionCode::Disconnected,
        &alloc::format!("the guest serving '{name}' is gone"),
    )
}

/// The completion of a call that succeeded with `written` bytes, the last
/// `caps` of them capability ids.
fn done(user_data: u64, written: u32, caps: usize) -> Cqe {
    Cqe::done_with_caps(user_data, written, caps as u32)
}

/// Writes `ids` (little-endian u32s) into guest memory at `at`.
#[inline(always)]
fn write_ids(memory: &impl Memory, at: u64, ids: &[CapId]) {
    if ids.is_empty() {
        return;
    }
    let mut bytes = [0u8; MAX_TRANSFER_CAPS * CAP_ID_BYTES];
    for (chunk, id) in bytes.chunks_exact_mut(CAP_ID_BYTES).zip(ids) {
        chunk.copy_from_slice(&id.raw().to_le_bytes());
    }
    memory.copy_out(at, &bytes[..ids.len() * CAP_ID_BYTES]);
}

impl Default for Endpoints {
    fn default() -> Endpoints {
        Endpoints::new()
    }
}

impl Endpoints {
    pub const fn new() -> Endpoints {
        Endpoints {
            table: CapTable::new(MAX_ENDPOINTS),
            names: map(),
        }
    }

    /// Whether the object a capability names is still there.
    fn alive(&self, object: Object) -> bool {
        match object {
            Object::Service(_) | Object::Item { .. } => true,
            Object::Server(id) | Object::Client(id) => self.table.get(id.0).is_ok(),
        }
    }

    /// Whether guest `from` may pass `capability` on: its object must be
    /// alive, and it must carry the transfer right, unless `from` serves
    /// the endpoint it names (a server hands out calling ends of its own
    /// endpoint, which it could mint anyway).
    fn may_pass(&self, capability: &Capability, from: GuestId) -> Result<(), TransportError> {
        if !self.alive(capability.object) {
            return Err(TransportError::StaleCap);
        }
        let own = match capability.object {
            Object::Client(id) => self.table.get(id.0).is_ok_and(|e| e.server == from),
            _ => false,
        };
        if own || capability.rights.contains(Rights::TRANSFER) {
            Ok(())
        } else {
            Err(TransportError::MissingRight)
        }
    }

    /// Passes the capabilities `sent` names from guest `from` to guest
    /// `to`, all or none (see `caps::transfer`), each as `may_pass` allows.
    fn pass<P: Parties>(
        &self,
        guests: &mut P,
        from: GuestId,
        to: GuestId,
        sent: &SentCaps,
    ) -> Result<Vec<CapId>, TransportError> {
        let ids = sent.ids()?;
        let check = |capability: &Capability| self.may_pass(capability, from);
        if from == to {
            let caps = guest(guests, from).caps_mut();
            caps::transfer(caps, Destination::Same, &ids, sent.moved, check)
        } else {
            let (from, to) = pair(guests, from, to);
            let into = Destination::Other(to.caps_mut());
            caps::transfer(from.caps_mut(), into, &ids, sent.moved, check)
        }
    }

    /// `pass`, without a call when there is nothing to pass (the common
    /// case, on the guest-call path).
    #[inline(always)]
    fn pass_if_any<P: Parties>(
        &self,
        guests: &mut P,
        from: GuestId,
        to: GuestId,
        sent: &SentCaps,
    ) -> Result<Vec<CapId>, TransportError> {
        if sent.count == 0 {
            Ok(Vec::new())
        } else {
            self.pass(guests, from, to, sent)
        }
    }

    /// Checks, without changing anything, that guest `from` could pass the
    /// capabilities `sent` names: the answer a caller gets at once.
    fn can_pass<P: Parties>(
        &self,
        guests: &P,
        from: GuestId,
        sent: &SentCaps,
    ) -> Result<(), TransportError> {
        if sent.count == 0 {
            return Ok(());
        }
        let caps = guest_ref(guests, from).caps();
        for id in sent.ids()? {
            self.may_pass(caps.get(id)?, from)?;
        }
        Ok(())
    }

    /// Carries out `routed` for the guest `current` (an id). Not inlined:
    /// it would make the system call's common path (NOPs, nucleus services)
    /// one large function with a large frame.
    #[inline(never)]
    pub fn route<P: Parties>(&mut self, guests: &mut P, current: GuestId, routed: Routed) {
        let Routed {
            user_data,
            reservation,
            kind,
        } = routed;
        let answer = match kind {
            RouteKind::Serve { name, results } => self.serve(guests, current, name, results),
            RouteKind::Connect { name, results } => self.connect(&name, results),
            RouteKind::Call {
                endpoint,
                badge,
                method,
                params,
                results,
                caps,
            } => {
                let call = InFlight {
                    client: current,
                    badge,
                    user_data,
                    results,
                    reservation,
                };
                // Completed, failed or waiting: it posts its completion.
                self.call(guests, endpoint, method, params, caps, call);
                return;
            }
            RouteKind::Endpoint {
                endpoint,
                method,
                params,
                results,
            } => self.endpoint_method(guests, current, endpoint, method, params, results),
            RouteKind::Recv { endpoint, buffer } => match self.table.get_mut(endpoint.0) {
                Ok(target) => {
                    target.receivers.push_back(Receiver {
                        user_data,
                        buffer,
                        reservation,
                    });
                    self.match_calls(endpoint, guests);
                    return;
                }
                Err(error) => Answer::Failed(error),
            },
            RouteKind::Return {
                endpoint,
                token,
                reply,
                caps,
                exception,
            } => match self.table.get(endpoint.0) {
                Ok(_) => {
                    let caps = SentCaps::read(guest_ref(guests, current).memory(), caps);
                    self.answer(guests, current, endpoint, token, reply, caps, exception)
                }
                Err(error) => Answer::Failed(error),
            },
            RouteKind::Close { endpoint } => {
                self.close(endpoint, guests);
                Answer::Cqe(Cqe::done(user_data, 0, 0))
            }
            RouteKind::Cancel { target, cancelled } => {
                let cancelled = cancelled + self.cancel(guests, current, target);
                Answer::Cqe(Cqe::done(user_data, cancelled, 0))
            }
        };
        let me = guest(guests, current);
        let cqe = match answer {
            Answer::Cqe(cqe) => Cqe { user_data, ..cqe },
            Answer::Failed(error) => Cqe::failed(user_data, error),
            Answer::Exception(results, exception) => {
                me.exception_completion(user_data, results, &exception)
            }
            Answer::Granted(results, capability) => grant_one(me, user_data, results, capability),
        };
        me.post(reservation, &cqe);
    }

    fn serve<P: Parties>(
        &mut self,
        guests: &mut P,
        current: GuestId,
        name: String,
        results: Buffer,
    ) -> Answer {
        // The appliance lets only this guest serve `name` (GuestControl
        // checked): a live endpoint of that name is its own.
        if self.names.contains_key(&name) {
            return Answer::Exception(
                results,
                Exception::new(
                    ExceptionCode::InvalidArgument,
                    "this guest serves that name already",
                ),
            );
        }
        if results.len < CAP_ID_BYTES as u32 {
            return Answer::Failed(TransportError::ResultsTooSmall);
        }
        if guest_ref(guests, current).caps().room() == 0 {
            return Answer::Failed(TransportError::CapQuotaExceeded);
        }
        if self.names.try_reserve(1).is_err() {
            return Answer::Failed(TransportError::OutOfMemory);
        }
        let endpoint = Endpoint {
            name: name.clone(),
            server: current,
            receivers: VecDeque::new(),
            waiting: VecDeque::new(),
            in_flight: map(),
            next_call: 1,
        };
        match self.table.insert(endpoint) {
            Ok(id) => {
                self.names.insert(name, EndpointId(id));
                Answer::Granted(
                    results,
                    Capability {
                        object: Object::Server(EndpointId(id)),
                        // The one serving end: never passed on, so releasing
                        // it closes the endpoint.
                        rights: endpoint_rights::SERVE.union(endpoint_rights::MINT),
                        badge: 0,
                    },
                )
            }
            Err(_) => Answer::Exception(
                results,
                Exception::new(ExceptionCode::Overloaded, "every endpoint slot is in use"),
            ),
        }
    }

    fn connect(&self, name: &str, results: Buffer) -> Answer {
        match self.names.get(name) {
            Some(&id) => Answer::Granted(
                results,
                Capability {
                    object: Object::Client(id),
                    rights: endpoint_rights::CLIENT,
                    badge: 0,
                },
            ),
            None => Answer::Exception(
                results,
                Exception::new(
                    ExceptionCode::Disconnected,
                    &alloc::format!("nothing is served as '{name}' now"),
                ),
            ),
        }
    }

    /// A CALL on a serving end: the Endpoint interface, which the nucleus
    /// implements.
    fn endpoint_method<P: Parties>(
        &mut self,
        guests: &mut P,
        current: GuestId,
        endpoint: EndpointId,
        method: u16,
        params: Buffer,
        results: Buffer,
    ) -> Answer {
        if let Err(error) = self.table.get(endpoint.0) {
            return Answer::Failed(error);
        }
        if method != endpoint_interface::MINT {
            return Answer::Failed(TransportError::UnknownMethod);
        }
        let Ok(mut copied) = try_zeroed(params.len as usize) else {
            return Answer::Failed(TransportError::OutOfMemory);
        };
        guest_ref(guests, current)
            .memory()
            .copy_in(params.addr, &mut copied);
        match MintParams::decode(&copied) {
            Ok(mint) => Answer::Granted(
                results,
                Capability {
                    object: Object::Client(endpoint),
                    rights: endpoint_rights::CLIENT.intersect(Rights::from_bits(mint.rights)),
                    badge: mint.badge,
                },
            ),
            Err(error) => Answer::Failed(error),
        }
    }

    /// A CALL on a calling end: delivered to a waiting RECV now, or queued;
    /// refused with its completion if it cannot be.
    #[allow(clippy::too_many_arguments)]
    fn call<P: Parties>(
        &mut self,
        guests: &mut P,
        endpoint: EndpointId,
        method: u16,
        params: Buffer,
        caps: CapsSent,
        call: InFlight,
    ) {
        let current = call.client;
        let caps = SentCaps::read(guest_ref(guests, current).memory(), caps);
        let target = match self.table.get(endpoint.0) {
            Ok(target) => target,
            Err(error) => return self.fail(guests, call, error),
        };
        if caps.count != 0
            && let Err(error) = self.can_pass(guests, current, &caps)
        {
            return self.fail(guests, call, error);
        }
        let target_waiting = target.waiting.len();
        let needed = params.len + caps.bytes();
        let receiver = target.receivers.front().map(|r| r.buffer.len);
        if target_waiting == 0
            && let Some(buffer) = receiver
            && needed > buffer
        {
            // Waiting would wedge every call behind it.
            return self.refuse(guests, call, &too_large(needed, buffer));
        }
        if target_waiting == 0 && receiver.is_some() {
            let target = self.table.get_mut(endpoint.0).expect("checked live");
            let receiver = target.receivers.pop_front().expect("checked non-empty");
            let server = target.server;
            let passed = match self.pass_if_any(guests, current, server, &caps) {
                Ok(passed) => passed,
                Err(error) => {
                    let target = self.table.get_mut(endpoint.0).expect("checked live");
                    target.receivers.push_front(receiver);
                    self.fail(guests, call, error);
                    return;
                }
            };
            let into = receiver.buffer.addr;
            let client = current;
            self.deliver(
                endpoint,
                guests,
                receiver,
                method,
                call,
                &passed,
                |guests, to| {
                    let client = guest_ref(guests, client).memory();
                    to.copy_from_guest(into, client, params.addr, params.len as usize);
                    params.len
                },
            );
            return;
        }
        let mine = target
            .waiting
            .iter()
            .filter(|waiting| waiting.call.client == current)
            .count();
        if mine >= MAX_WAITING_CALLS_PER_CLIENT {
            let overloaded = Exception::new(
                ExceptionCode::Overloaded,
                &alloc::format!(
                    "{mine} calls of this guest wait for the server already (the most one client may have)"
                ),
            );
            return self.refuse(guests, call, &overloaded);
        }
        let me = guest(guests, current);
        let mut copied = match me.allowance().charged_copy(params.len as usize) {
            Ok(copied) => copied,
            Err(refused) => {
                let overloaded =
                    Exception::new(ExceptionCode::Overloaded, &alloc::format!("{refused}"));
                return self.refuse(guests, call, &overloaded);
            }
        };
        me.memory().copy_in(params.addr, &mut copied);
        let target = self.table.get_mut(endpoint.0).expect("checked live");
        target.waiting.push_back(WaitingCall {
            method,
            params: copied,
            caps,
            call,
        });
        self.match_calls(endpoint, guests);
    }

    /// A RETURN: the reply (and its capabilities, or an exception) to the
    /// caller. A fault of the server's (a stale capability to pass, a
    /// malformed exception) fails the RETURN and leaves the call in flight,
    /// so the server can answer it again; one of the caller's (its results
    /// buffer or its table too small) fails both.
    #[allow(clippy::too_many_arguments)]
    fn answer<P: Parties>(
        &mut self,
        guests: &mut P,
        current: GuestId,
        endpoint: EndpointId,
        token: u64,
        reply: Buffer,
        caps: SentCaps,
        exception: bool,
    ) -> Answer {
        let target = self.table.get_mut(endpoint.0).expect("checked live");
        let Some(call) = target.in_flight.get(&token) else {
            return Answer::Failed(TransportError::InvalidCap);
        };
        let client = call.client;
        if exception {
            let Ok(mut bytes) = try_zeroed(reply.len as usize) else {
                return Answer::Failed(TransportError::OutOfMemory);
            };
            guest_ref(guests, current)
                .memory()
                .copy_in(reply.addr, &mut bytes);
            let Ok(exception) = Exception::decode(&bytes) else {
                return Answer::Failed(TransportError::MalformedMessage);
            };
            let target = self.table.get_mut(endpoint.0).expect("checked live");
            let call = target.in_flight.remove(&token).expect("found above");
            let caller = guest(guests, client);
            if caller.is_running() {
                let cqe = caller.exception_completion(call.user_data, call.results, &exception);
                caller.post(call.reservation, &cqe);
                guests.wake(client);
            }
            return Answer::Cqe(Cqe::done(0, 0, 0));
        }
        let results = call.results;
        let running = guest_ref(guests, client).is_running();
        let fits = reply.len + caps.bytes() <= results.len;
        let passed = if running && fits {
            if caps.count != 0
                && let Err(error) = self.can_pass(guests, current, &caps)
            {
                return Answer::Failed(error);
            }
            self.pass_if_any(guests, current, client, &caps)
        } else {
            Err(TransportError::ResultsTooSmall)
        };
        let target = self.table.get_mut(endpoint.0).expect("checked live");
        let call = target.in_flight.remove(&token).expect("found above");
        if !running {
            // The caller is gone; the server learns its answer went nowhere
            // only in that nothing fails.
            return Answer::Cqe(Cqe::done(0, 0, 0));
        }
        let outcome = passed.map(|passed| {
            let server = guest_ref(guests, current).memory();
            let to = guest_ref(guests, client).memory();
            to.copy_from_guest(results.addr, server, reply.addr, reply.len as usize);
            write_ids(to, results.addr + reply.len as u64, &passed);
            passed.len()
        });
        let caller = guest(guests, client);
        let cqe = match outcome {
            Ok(count) => done(call.user_data, reply.len + caps.bytes(), count),
            Err(error) => Cqe::failed(call.user_data, error),
        };
        caller.post(call.reservation, &cqe);
        guests.wake(client);
        match outcome {
            Ok(_) => Answer::Cqe(Cqe::done(0, 0, 0)),
            Err(error) => Answer::Failed(error),
        }
    }

    /// Hands waiting calls to posted RECVs, oldest first.
    fn match_calls<P: Parties>(&mut self, endpoint: EndpointId, guests: &mut P) {
        loop {
            let Ok(target) = self.table.get_mut(endpoint.0) else {
                return;
            };
            if target.receivers.is_empty() || target.waiting.is_empty() {
                return;
            }
            let receiver = target.receivers.pop_front().expect("checked non-empty");
            let server = target.server;
            let waiting = target.waiting.pop_front().expect("checked non-empty");
            guest(guests, waiting.call.client)
                .allowance()
                .refund(waiting.params.len());
            let needed = waiting.params.len() as u32 + waiting.caps.bytes();
            if needed > receiver.buffer.len {
                // The RECV it met cannot take it, and it would hold every
                // call behind it: the caller learns so; the RECV takes the
                // next call.
                let exception = too_large(needed, receiver.buffer.len);
                let target = self.table.get_mut(endpoint.0).expect("checked live");
                target.receivers.push_front(receiver);
                self.refuse(guests, waiting.call, &exception);
                continue;
            }
            let passed = match self.pass_if_any(guests, waiting.call.client, server, &waiting.caps)
            {
                Ok(passed) => passed,
                Err(error) => {
                    // Its capabilities went stale while it waited: the
                    // caller learns why; the RECV takes the next call.
                    let target = self.table.get_mut(endpoint.0).expect("checked live");
                    target.receivers.push_front(receiver);
                    self.fail(guests, waiting.call, error);
                    continue;
                }
            };
            let (params, into) = (waiting.params, receiver.buffer.addr);
            self.deliver(
                endpoint,
                guests,
                receiver,
                waiting.method,
                waiting.call,
                &passed,
                |_, to| {
                    to.copy_out(into, &params);
                    params.len() as u32
                },
            );
        }
    }

    /// Hands `call` to `receiver`: `copy_params` puts its params in the
    /// server's memory and says how many bytes, `passed` (already in the
    /// server's table) follow them; the server's RECV completes with the
    /// call's token and badge, and the call waits in flight for its RETURN.
    #[allow(clippy::too_many_arguments)]
    fn deliver<P: Parties>(
        &mut self,
        endpoint: EndpointId,
        guests: &mut P,
        receiver: Receiver,
        method: u16,
        call: InFlight,
        passed: &[CapId],
        copy_params: impl FnOnce(&P, &<P::Party as Party>::Memory) -> u32,
    ) {
        let target = self
            .table
            .get_mut(endpoint.0)
            .expect("delivering to a live endpoint");
        let token = (target.next_call << 16) | method as u64;
        target.next_call += 1;
        let server_id = target.server;
        let server_memory = guest_ref(guests, server_id).memory();
        let length = copy_params(guests, server_memory);
        write_ids(server_memory, receiver.buffer.addr + length as u64, passed);
        let written = length + (passed.len() * CAP_ID_BYTES) as u32;
        let cqe = Cqe {
            aux: token,
            badge: call.badge,
            ..done(receiver.user_data, written, passed.len())
        };
        guest(guests, server_id).post(receiver.reservation, &cqe);
        guests.wake(server_id);
        target.in_flight.insert(token, call);
    }

    /// Closes an endpoint: its callers get a disconnected exception, its
    /// posted RECVs are dropped, and every capability naming it is stale.
    fn close<P: Parties>(&mut self, endpoint: EndpointId, guests: &mut P) {
        let Ok(mut closed) = self.table.remove(endpoint.0) else {
            return;
        };
        self.names.remove(&closed.name);
        let exception = disconnected(&closed.name);
        for waiting in &closed.waiting {
            guest(guests, waiting.call.client)
                .allowance()
                .refund(waiting.params.len());
        }
        let waiting = closed.waiting.drain(..).map(|w| w.call);
        let in_flight = core::mem::take(&mut closed.in_flight)
            .into_iter()
            .map(|(_, call)| call);
        for call in waiting.chain(in_flight) {
            let client = guest(guests, call.client);
            if client.is_running() {
                let cqe = client.exception_completion(call.user_data, call.results, &exception);
                client.post(call.reservation, &cqe);
                guests.wake(call.client);
            }
        }
        let server = guest(guests, closed.server);
        for receiver in closed.receivers.drain(..) {
            server.cancel(receiver.reservation);
        }
    }

    /// Completes a call that cannot be delivered with `error`.
    fn fail<P: Parties>(&mut self, guests: &mut P, call: InFlight, error: TransportError) {
        guest(guests, call.client).post(call.reservation, &Cqe::failed(call.user_data, error));
        guests.wake(call.client);
    }

    /// Completes a call that will not be delivered with `exception`.
    fn refuse<P: Parties>(&mut self, guests: &mut P, call: InFlight, exception: &Exception) {
        let client = guest(guests, call.client);
        let cqe = client.exception_completion(call.user_data, call.results, exception);
        client.post(call.reservation, &cqe);
        guests.wake(call.client);
    }

    /// Gives up on guest `client`'s calls whose `user_data` is `target`,
    /// waiting for a RECV or in a server's hands: each completes with
    /// `Cancelled` (a server's RETURN for one finds no call). How many.
    fn cancel<P: Parties>(&mut self, guests: &mut P, client: GuestId, target: u64) -> u32 {
        let wanted = |call: &InFlight| call.client == client && call.user_data == target;
        let mut cancelled = Vec::new();
        for (_, endpoint) in self.table.iter_mut() {
            let mut index = 0;
            while index < endpoint.waiting.len() {
                if wanted(&endpoint.waiting[index].call) {
                    let waiting = endpoint.waiting.remove(index).expect("in range");
                    guest(guests, client)
                        .allowance()
                        .refund(waiting.params.len());
                    cancelled.push(waiting.call);
                } else {
                    index += 1;
                }
            }
            cancelled.extend(
                endpoint
                    .in_flight
                    .extract_if(|_, call| wanted(call))
                    .map(|(_, call)| call),
            );
        }
        let count = cancelled.len() as u32;
        for call in cancelled {
            self.fail(guests, call, TransportError::Cancelled);
        }
        count
    }

    /// A guest ended: the endpoints it served close; its calls waiting
    /// anywhere are dropped (no one is left to complete them for).
    pub fn guest_exited<P: Parties>(&mut self, guests: &mut P, id: GuestId) {
        let served: Vec<EndpointId> = self
            .table
            .iter()
            .filter(|(_, e)| e.server == id)
            .map(|(key, _)| EndpointId(key))
            .collect();
        for endpoint in served {
            self.close(endpoint, guests);
        }
        let keys: Vec<CapId> = self.table.iter().map(|(key, _)| key).collect();
        for key in keys {
            let endpoint = self.table.get_mut(key).expect("listed live");
            endpoint.waiting.retain(|waiting| waiting.call.client != id);
            endpoint.in_flight.retain(|_, call| call.client != id);
        }
    }
}

/// How a routed SQE is answered, when it is answered at once.
enum Answer {
    Cqe(Cqe),
    Failed(TransportError),
    Exception(Buffer, Exception),
    /// One new capability for the caller, its id the only results.
    Granted(Buffer, Capability),
}

/// Puts `capability` in the caller's table and its id in the results.
fn grant_one(me: &mut impl Party, user_data: u64, results: Buffer, capability: Capability) -> Cqe {
    if results.len < CAP_ID_BYTES as u32 {
        return Cqe::failed(user_data, TransportError::ResultsTooSmall);
    }
    match me.caps_mut().insert(capability) {
        Ok(id) => {
            write_ids(me.memory(), results.addr, &[id]);
            done(user_data, CAP_ID_BYTES as u32, 1)
        }
        Err(error) => Cqe::failed(user_data, error),
    }
}
