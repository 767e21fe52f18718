//! Guest-served interfaces: a guest serves an interface under a name
//! (GuestControl.serve), others connect to it (GuestControl.connect) and CALL
//! it through the same ring ABI as a nucleus service. The server takes calls
//! with RECV and answers them with RETURN; the nucleus copies params and
//! results between the two guests' buffers and posts both completions.
//! Params go straight from the caller's buffer to the server's when a RECV
//! is waiting (else they wait in a nucleus copy), and a reply straight from
//! the server's buffer to the caller's.
//!
//! A RECV completion's aux is the call token: bits 0-15 the method ordinal
//! the caller named, bits 16-63 a per-endpoint call number (never 0).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use caps::{Buffer, CqReservation, Cqe, Exception, ExceptionCode, TransportError};

use crate::sched::Guest;

/// An index into the endpoint list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointId(u32);

/// What a capability names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// A service the nucleus implements.
    Service(caps::Interface),
    /// The serving end of an endpoint: RECV and RETURN.
    Serve(EndpointId),
    /// The calling end of an endpoint: CALL.
    Call(EndpointId),
}

/// An SQE that needs more than its own guest.
pub struct Routed {
    pub user_data: u64,
    pub reservation: CqReservation,
    pub kind: RouteKind,
}

pub enum RouteKind {
    /// `params` and `results` lie in the caller's memory (checked).
    Call {
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
    },
    Serve {
        name: String,
        results: Buffer,
    },
    Connect {
        name: String,
        results: Buffer,
    },
    Close {
        endpoint: EndpointId,
    },
}

/// Calls waiting for a RECV, per endpoint: beyond this the caller is told
/// the server is overloaded.
const MAX_WAITING_CALLS: usize = 64;
const MAX_NAME_BYTES: usize = 64;

struct Receiver {
    user_data: u64,
    buffer: Buffer,
    reservation: CqReservation,
}

struct WaitingCall {
    method: u16,
    /// The nucleus's copy of the params, taken when the call was submitted.
    params: Vec<u8>,
    call: InFlight,
}

struct InFlight {
    client: u32,
    user_data: u64,
    results: Buffer,
    reservation: CqReservation,
}

struct Endpoint {
    name: String,
    server: u32,
    open: bool,
    receivers: VecDeque<Receiver>,
    waiting: VecDeque<WaitingCall>,
    /// By token; a server has few calls in hand at once.
    in_flight: Vec<(u64, InFlight)>,
    next_call: u64,
}

pub struct Endpoints {
    list: Vec<Endpoint>,
}

fn guest(guests: &mut [alloc::boxed::Box<Guest>], id: u32) -> &mut Guest {
    &mut guests[id as usize - 1]
}

fn guest_ref(guests: &[alloc::boxed::Box<Guest>], id: u32) -> &Guest {
    &guests[id as usize - 1]
}

fn disconnected(name: &str) -> Exception {
    Exception::new(
        ExceptionCode::Disconnected,
        &alloc::format!("the guest serving '{name}' is gone"),
    )
}

impl Endpoints {
    pub const fn new() -> Endpoints {
        Endpoints { list: Vec::new() }
    }

    /// Carries out `routed` for the guest `current` (an id).
    pub fn route(&mut self, guests: &mut [alloc::boxed::Box<Guest>], current: u32, routed: Routed) {
        let Routed {
            user_data,
            reservation,
            kind,
        } = routed;
        match kind {
            RouteKind::Serve { name, results } => {
                let me = &mut guest(guests, current).domain;
                let taken = self.list.iter().any(|e| e.open && e.name == name);
                let cqe = if name.is_empty() || name.len() > MAX_NAME_BYTES || taken {
                    let why = if taken {
                        "that name is already served"
                    } else {
                        "a name is 1 to 64 bytes"
                    };
                    me.exception_completion(
                        user_data,
                        results,
                        &Exception::new(ExceptionCode::InvalidArgument, why),
                    )
                } else {
                    let id = EndpointId(self.list.len() as u32);
                    match me.grant(Capability::Serve(id)) {
                        Ok(cap) => {
                            self.list.push(Endpoint {
                                name,
                                server: current,
                                open: true,
                                receivers: VecDeque::new(),
                                waiting: VecDeque::new(),
                                in_flight: Vec::new(),
                                next_call: 1,
                            });
                            Cqe::done(user_data, 0, cap.raw() as u64)
                        }
                        Err(error) => Cqe::failed(user_data, error),
                    }
                };
                me.post(reservation, &cqe);
            }
            RouteKind::Connect { name, results } => {
                let me = &mut guest(guests, current).domain;
                let cqe = match self.list.iter().position(|e| e.open && e.name == name) {
                    Some(index) => match me.grant(Capability::Call(EndpointId(index as u32))) {
                        Ok(cap) => Cqe::done(user_data, 0, cap.raw() as u64),
                        Err(error) => Cqe::failed(user_data, error),
                    },
                    None => me.exception_completion(
                        user_data,
                        results,
                        &Exception::new(
                            ExceptionCode::Disconnected,
                            &alloc::format!("nothing is served as '{name}'"),
                        ),
                    ),
                };
                me.post(reservation, &cqe);
            }
            RouteKind::Call {
                endpoint,
                method,
                params,
                results,
            } => {
                let target = &mut self.list[endpoint.0 as usize];
                if !target.open || target.waiting.len() >= MAX_WAITING_CALLS {
                    let exception = if target.open {
                        Exception::new(
                            ExceptionCode::Overloaded,
                            "too many calls are waiting for the server",
                        )
                    } else {
                        disconnected(&target.name)
                    };
                    let me = &mut guest(guests, current).domain;
                    let cqe = me.exception_completion(user_data, results, &exception);
                    me.post(reservation, &cqe);
                    return;
                }
                let call = InFlight {
                    client: current,
                    user_data,
                    results,
                    reservation,
                };
                let receiver_fits = target
                    .receivers
                    .front()
                    .is_some_and(|r| params.len <= r.buffer.len);
                if target.waiting.is_empty() && receiver_fits {
                    let receiver = target.receivers.pop_front().expect("checked non-empty");
                    let into = receiver.buffer.addr;
                    Self::deliver(target, guests, receiver, method, call, |guests, to| {
                        let client = &guest_ref(guests, current).domain.memory;
                        to.copy_from_guest(into, client, params.addr, params.len as usize);
                        params.len
                    });
                    return;
                }
                let mut copied = alloc::vec![0u8; params.len as usize];
                guest(guests, current)
                    .domain
                    .memory
                    .copy_in(params.addr, &mut copied);
                target.waiting.push_back(WaitingCall {
                    method,
                    params: copied,
                    call,
                });
                Self::match_calls(target, guests);
            }
            RouteKind::Recv { endpoint, buffer } => {
                let target = &mut self.list[endpoint.0 as usize];
                target.receivers.push_back(Receiver {
                    user_data,
                    buffer,
                    reservation,
                });
                Self::match_calls(target, guests);
            }
            RouteKind::Return {
                endpoint,
                token,
                reply,
            } => {
                let target = &mut self.list[endpoint.0 as usize];
                let Some(index) = target.in_flight.iter().position(|(t, _)| *t == token) else {
                    let me = &mut guest(guests, current).domain;
                    me.post(
                        reservation,
                        &Cqe::failed(user_data, TransportError::InvalidCap),
                    );
                    return;
                };
                let (_, call) = target.in_flight.swap_remove(index);
                let fits = reply.len <= call.results.len;
                if fits && guest_ref(guests, call.client).domain.is_running() {
                    let server = &guest_ref(guests, current).domain.memory;
                    guest_ref(guests, call.client)
                        .domain
                        .memory
                        .copy_from_guest(call.results.addr, server, reply.addr, reply.len as usize);
                }
                let client = guest(guests, call.client);
                if fits {
                    client
                        .domain
                        .post(call.reservation, &Cqe::done(call.user_data, reply.len, 0));
                } else {
                    client.domain.post(
                        call.reservation,
                        &Cqe::failed(call.user_data, TransportError::ResultsTooSmall),
                    );
                }
                client.wake_if_ready();
                let answer = if fits {
                    Cqe::done(user_data, 0, 0)
                } else {
                    Cqe::failed(user_data, TransportError::ResultsTooSmall)
                };
                guest(guests, current).domain.post(reservation, &answer);
            }
            RouteKind::Close { endpoint } => {
                self.close(endpoint.0 as usize, guests);
                guest(guests, current)
                    .domain
                    .post(reservation, &Cqe::done(user_data, 0, 0));
            }
        }
    }

    /// Hands waiting calls to posted RECVs, oldest first.
    fn match_calls(endpoint: &mut Endpoint, guests: &mut [alloc::boxed::Box<Guest>]) {
        while !endpoint.receivers.is_empty() && !endpoint.waiting.is_empty() {
            let receiver = endpoint.receivers.pop_front().expect("checked non-empty");
            if endpoint.waiting[0].params.len() > receiver.buffer.len as usize {
                // The server's buffer cannot take this call: it learns so;
                // the call waits for a larger RECV.
                let server = guest(guests, endpoint.server);
                server.domain.post(
                    receiver.reservation,
                    &Cqe::failed(receiver.user_data, TransportError::ResultsTooSmall),
                );
                server.wake_if_ready();
                continue;
            }
            let waiting = endpoint.waiting.pop_front().expect("checked non-empty");
            let (params, into) = (waiting.params, receiver.buffer.addr);
            Self::deliver(
                endpoint,
                guests,
                receiver,
                waiting.method,
                waiting.call,
                |_, to| {
                    to.copy_out(into, &params);
                    params.len() as u32
                },
            );
        }
    }

    /// Hands `call` to `receiver`: `copy_params` puts its params in the
    /// server's memory and says how many bytes; the server's RECV completes
    /// with the call's token, and the call waits in flight for its RETURN.
    fn deliver(
        endpoint: &mut Endpoint,
        guests: &mut [alloc::boxed::Box<Guest>],
        receiver: Receiver,
        method: u16,
        call: InFlight,
        copy_params: impl FnOnce(&[alloc::boxed::Box<Guest>], &crate::domain::GuestMemory) -> u32,
    ) {
        let token = (endpoint.next_call << 16) | method as u64;
        endpoint.next_call += 1;
        let length = copy_params(guests, &guest_ref(guests, endpoint.server).domain.memory);
        let server = guest(guests, endpoint.server);
        server.domain.post(
            receiver.reservation,
            &Cqe::done(receiver.user_data, length, token),
        );
        server.wake_if_ready();
        endpoint.in_flight.push((token, call));
    }

    /// Closes an endpoint: its callers get a disconnected exception, its
    /// posted RECVs are dropped.
    fn close(&mut self, index: usize, guests: &mut [alloc::boxed::Box<Guest>]) {
        let endpoint = &mut self.list[index];
        if !endpoint.open {
            return;
        }
        endpoint.open = false;
        let exception = disconnected(&endpoint.name);
        let waiting = endpoint.waiting.drain(..).map(|w| w.call);
        let in_flight = core::mem::take(&mut endpoint.in_flight)
            .into_iter()
            .map(|(_, call)| call);
        let callers: Vec<InFlight> = waiting.chain(in_flight).collect();
        for call in callers {
            let client = guest(guests, call.client);
            if client.domain.is_running() {
                let cqe =
                    client
                        .domain
                        .exception_completion(call.user_data, call.results, &exception);
                client.domain.post(call.reservation, &cqe);
                client.wake_if_ready();
            }
        }
        let server = guest(guests, endpoint.server);
        for receiver in endpoint.receivers.drain(..) {
            server.domain.cancel(receiver.reservation);
        }
    }

    /// A guest ended: the endpoints it served close; its calls waiting
    /// anywhere are dropped (no one is left to complete them for).
    pub fn guest_exited(&mut self, guests: &mut [alloc::boxed::Box<Guest>], id: u32) {
        for index in 0..self.list.len() {
            if self.list[index].server == id {
                self.close(index, guests);
            }
            let endpoint = &mut self.list[index];
            endpoint.waiting.retain(|waiting| waiting.call.client != id);
            endpoint.in_flight.retain(|(_, call)| call.client != id);
        }
    }
}
