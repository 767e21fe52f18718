//! Guest-served interfaces: a guest serves an interface under a name
//! (GuestControl.serve), others connect to it (GuestControl.connect) and CALL
//! it through the same ring ABI as a nucleus service. The server takes calls
//! with RECV and answers them with RETURN; the nucleus copies params and
//! results between the two guests' buffers and posts both completions.
//!
//! A RECV completion's aux is the call token: bits 0-15 the method ordinal
//! the caller named, bits 16-63 a per-endpoint call number (never 0).

use alloc::collections::{BTreeMap, VecDeque};
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
    Call {
        endpoint: EndpointId,
        method: u16,
        params: Vec<u8>,
        results: Buffer,
    },
    Recv {
        endpoint: EndpointId,
        buffer: Buffer,
    },
    Return {
        endpoint: EndpointId,
        token: u64,
        reply: Vec<u8>,
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
    client: u32,
    user_data: u64,
    method: u16,
    params: Vec<u8>,
    results: Buffer,
    reservation: CqReservation,
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
    in_flight: BTreeMap<u64, InFlight>,
    next_call: u64,
}

pub struct Endpoints {
    list: Vec<Endpoint>,
}

fn guest(guests: &mut [alloc::boxed::Box<Guest>], id: u32) -> &mut Guest {
    &mut guests[id as usize - 1]
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
                                in_flight: BTreeMap::new(),
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
                target.waiting.push_back(WaitingCall {
                    client: current,
                    user_data,
                    method,
                    params,
                    results,
                    reservation,
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
                let Some(call) = target.in_flight.remove(&token) else {
                    let me = &mut guest(guests, current).domain;
                    me.post(
                        reservation,
                        &Cqe::failed(user_data, TransportError::InvalidCap),
                    );
                    return;
                };
                let client = guest(guests, call.client);
                let fits = reply.len() <= call.results.len as usize;
                if fits {
                    if client.domain.is_running() {
                        client.domain.memory.copy_out(call.results.addr, &reply);
                    }
                    client.domain.post(
                        call.reservation,
                        &Cqe::done(call.user_data, reply.len() as u32, 0),
                    );
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
            let server = guest(guests, endpoint.server);
            if endpoint.waiting[0].params.len() > receiver.buffer.len as usize {
                // The server's buffer cannot take this call: it learns so;
                // the call waits for a larger RECV.
                server.domain.post(
                    receiver.reservation,
                    &Cqe::failed(receiver.user_data, TransportError::ResultsTooSmall),
                );
                server.wake_if_ready();
                continue;
            }
            let call = endpoint.waiting.pop_front().expect("checked non-empty");
            let token = (endpoint.next_call << 16) | call.method as u64;
            endpoint.next_call += 1;
            server
                .domain
                .memory
                .copy_out(receiver.buffer.addr, &call.params);
            server.domain.post(
                receiver.reservation,
                &Cqe::done(receiver.user_data, call.params.len() as u32, token),
            );
            server.wake_if_ready();
            endpoint.in_flight.insert(
                token,
                InFlight {
                    client: call.client,
                    user_data: call.user_data,
                    results: call.results,
                    reservation: call.reservation,
                },
            );
        }
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
        let waiting = endpoint
            .waiting
            .drain(..)
            .map(|c| (c.client, c.user_data, c.results, c.reservation));
        let in_flight = core::mem::take(&mut endpoint.in_flight)
            .into_values()
            .map(|c| (c.client, c.user_data, c.results, c.reservation));
        let callers: Vec<_> = waiting.chain(in_flight).collect();
        for (client, user_data, results, reservation) in callers {
            let client = guest(guests, client);
            if client.domain.is_running() {
                let cqe = client
                    .domain
                    .exception_completion(user_data, results, &exception);
                client.domain.post(reservation, &cqe);
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
            endpoint.waiting.retain(|call| call.client != id);
            endpoint.in_flight.retain(|_, call| call.client != id);
        }
    }
}
