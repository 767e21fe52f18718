//! The endpoint registry's state machine on the host: guests with memory
//! in a Vec and a real ring's completion queue, served, connected, called,
//! minted for, closed and exited, checked against what the ABI promises.

use std::cell::RefCell;

use caps::interfaces::endpoint::{MINT, MintParams};
use caps::rights::endpoint as endpoint_rights;
use caps::{
    Buffer, CAP_ID_BYTES, CapId, CapTable, CapsSent, CompletionProducer, CqReservation, Cqe,
    Exception, ExceptionCode, Message, Outcome, OwnedRing, Rights, RingLayout, TransportError,
};
use nucleus_core::allowance::Allowance;
use nucleus_core::endpoint::{
    Capability, EndpointId, Endpoints, GuestId, MAX_WAITING_CALLS_PER_CLIENT, Memory, Object,
    Parties, Party, RouteKind, Routed,
};
use proptest::prelude::*;

const MEMORY_BYTES: usize = 1 << 16;
const CQ_ENTRIES: u32 = 256;

struct TestMemory(RefCell<Vec<u8>>);

impl TestMemory {
    fn range(address: u64, length: usize) -> std::ops::Range<usize> {
        let start = address as usize;
        assert!(start + length <= MEMORY_BYTES, "a copy outside the guest");
        start..start + length
    }
}

impl Memory for TestMemory {
    fn copy_in(&self, address: u64, into: &mut [u8]) {
        into.copy_from_slice(&self.0.borrow()[Self::range(address, into.len())]);
    }

    fn copy_out(&self, address: u64, from: &[u8]) {
        self.0.borrow_mut()[Self::range(address, from.len())].copy_from_slice(from);
    }

    fn copy_from_guest(&self, to: u64, source: &Self, from: u64, length: usize) {
        let bytes = source.0.borrow()[Self::range(from, length)].to_vec();
        self.copy_out(to, &bytes);
    }
}

struct TestGuest {
    caps: CapTable<Capability>,
    memory: TestMemory,
    running: bool,
    completions: CompletionProducer<'static>,
    /// What was posted, in order.
    posted: Vec<Cqe>,
    woken: u32,
    allowance: Allowance,
}

impl TestGuest {
    fn new() -> TestGuest {
        let ring: &'static OwnedRing = Box::leak(Box::new(OwnedRing::new(
            RingLayout::new(CQ_ENTRIES, CQ_ENTRIES).expect("a valid layout"),
        )));
        TestGuest {
            caps: CapTable::new(16),
            memory: TestMemory(RefCell::new(vec![0; MEMORY_BYTES])),
            running: true,
            completions: ring.completion_producer(),
            posted: Vec::new(),
            woken: 0,
            allowance: Allowance::new(1 << 20),
        }
    }

    fn read(&self, address: u64, length: usize) -> Vec<u8> {
        let mut bytes = vec![0; length];
        self.memory.copy_in(address, &mut bytes);
        bytes
    }

    fn cap_id_at(&self, address: u64) -> CapId {
        let bytes = self.read(address, CAP_ID_BYTES);
        CapId::from_raw(u32::from_le_bytes(bytes.try_into().unwrap())).expect("a capability id")
    }

    fn last(&self) -> Cqe {
        *self.posted.last().expect("a completion")
    }
}

impl Party for TestGuest {
    type Memory = TestMemory;

    fn caps(&self) -> &CapTable<Capability> {
        &self.caps
    }

    fn caps_mut(&mut self) -> &mut CapTable<Capability> {
        &mut self.caps
    }

    fn memory(&self) -> &TestMemory {
        &self.memory
    }

    fn is_running(&self) -> bool {
        self.running
    }

    fn allowance(&mut self) -> &mut Allowance {
        &mut self.allowance
    }

    fn post(&mut self, reservation: CqReservation, cqe: &Cqe) {
        self.completions.post(reservation, cqe);
        self.posted.push(*cqe);
    }

    fn cancel(&mut self, reservation: CqReservation) {
        self.completions.cancel(reservation);
    }

    fn exception_completion(&self, user_data: u64, results: Buffer, exception: &Exception) -> Cqe {
        let mut bytes = vec![0; results.len as usize];
        match exception.encode_fitting(&mut bytes) {
            Ok(len) => {
                self.memory.copy_out(results.addr, &bytes[..len]);
                Cqe::exception(user_data, len as u32)
            }
            Err(error) => Cqe::failed(user_data, error),
        }
    }
}

struct TestGuests(CapTable<TestGuest>);

struct World {
    guests: TestGuests,
    endpoints: Endpoints,
}

impl Parties for TestGuests {
    type Party = TestGuest;

    fn get(&self, id: GuestId) -> Option<&TestGuest> {
        self.0.get(id).ok()
    }

    fn get_mut(&mut self, id: GuestId) -> Option<&mut TestGuest> {
        self.0.get_mut(id).ok()
    }

    fn get_pair_mut(&mut self, a: GuestId, b: GuestId) -> Option<(&mut TestGuest, &mut TestGuest)> {
        self.0.get_pair_mut(a, b).ok()
    }

    fn wake(&mut self, id: GuestId) {
        self.0.get_mut(id).expect("woken guest").woken += 1;
    }
}

/// Buffers each test guest uses, apart from one another.
const RESULTS: Buffer = Buffer {
    addr: 0x1000,
    len: 256,
};
const PARAMS: u64 = 0x2000;
const RECV: u64 = 0x3000;
const CAPS: u64 = 0x4000;

impl World {
    fn new() -> World {
        World {
            guests: TestGuests(CapTable::new(200)),
            endpoints: Endpoints::new(),
        }
    }

    fn spawn(&mut self) -> GuestId {
        self.guests.0.insert(TestGuest::new()).expect("room")
    }

    fn guest(&self, id: GuestId) -> &TestGuest {
        self.guests.0.get(id).expect("live")
    }

    fn guest_mut(&mut self, id: GuestId) -> &mut TestGuest {
        self.guests.0.get_mut(id).expect("live")
    }

    /// Routes `kind` for `from` as the dispatcher would (CQ space reserved
    /// first) and returns the completion it posted to `from` right away,
    /// if any.
    fn route(&mut self, from: GuestId, user_data: u64, kind: RouteKind) -> Option<Cqe> {
        let guest = self.guest_mut(from);
        let before = guest.posted.len();
        let reservation = guest.completions.try_reserve().expect("CQ room");
        let routed = Routed {
            user_data,
            reservation,
            kind,
        };
        self.endpoints.route(&mut self.guests, from, routed);
        self.guest(from)
            .posted
            .get(before..)
            .and_then(|new| new.iter().find(|c| c.user_data == user_data).copied())
    }

    /// The capability a granting call put in `guest`'s results.
    fn granted(&self, guest: GuestId, cqe: Cqe) -> (CapId, Capability) {
        assert_eq!(
            cqe.outcome(),
            Outcome::Done {
                written: CAP_ID_BYTES as u32,
                aux: 0,
                caps: 1
            },
            "{cqe:?}"
        );
        let id = self.guest(guest).cap_id_at(RESULTS.addr);
        (id, *self.guest(guest).caps.get(id).expect("granted"))
    }

    fn serve(&mut self, server: GuestId, name: &str) -> EndpointId {
        let cqe = self
            .route(
                server,
                1,
                RouteKind::Serve {
                    name: name.into(),
                    results: RESULTS,
                },
            )
            .expect("answered at once");
        match self.granted(server, cqe).1.object {
            Object::Server(endpoint) => endpoint,
            other => panic!("serve granted {other:?}"),
        }
    }

    /// A calling end for `client`: connects by name.
    fn connect(&mut self, client: GuestId, name: &str) -> Result<Capability, Cqe> {
        let cqe = self
            .route(
                client,
                2,
                RouteKind::Connect {
                    name: name.into(),
                    results: RESULTS,
                },
            )
            .expect("answered at once");
        match cqe.outcome() {
            Outcome::Done { .. } => Ok(self.granted(client, cqe).1),
            _ => Err(cqe),
        }
    }

    fn call(
        &mut self,
        client: GuestId,
        through: Capability,
        user_data: u64,
        params: &[u8],
        caps: CapsSent,
    ) -> Option<Cqe> {
        let Object::Client(endpoint) = through.object else {
            panic!("not a calling end: {through:?}");
        };
        self.guest(client).memory.copy_out(PARAMS, params);
        self.route(
            client,
            user_data,
            RouteKind::Call {
                endpoint,
                badge: through.badge,
                method: 7,
                params: Buffer {
                    addr: PARAMS,
                    len: params.len() as u32,
                },
                results: RESULTS,
                caps,
            },
        )
    }

    fn recv(&mut self, server: GuestId, endpoint: EndpointId, length: u32) -> Option<Cqe> {
        self.route(
            server,
            3,
            RouteKind::Recv {
                endpoint,
                buffer: Buffer {
                    addr: RECV,
                    len: length,
                },
            },
        )
    }

    fn reply(
        &mut self,
        server: GuestId,
        endpoint: EndpointId,
        token: u64,
        reply: &[u8],
        exception: bool,
    ) -> Cqe {
        self.guest(server).memory.copy_out(PARAMS, reply);
        self.route(
            server,
            4,
            RouteKind::Return {
                endpoint,
                token,
                reply: Buffer {
                    addr: PARAMS,
                    len: reply.len() as u32,
                },
                caps: CapsSent::NONE,
                exception,
            },
        )
        .expect("a RETURN is answered at once")
    }

    fn mint(&mut self, server: GuestId, endpoint: EndpointId, badge: u64, rights: Rights) -> Cqe {
        let mut bytes = [0u8; 64];
        let len = MintParams {
            badge,
            rights: rights.bits(),
        }
        .encode(&mut bytes)
        .expect("encodes");
        self.guest(server).memory.copy_out(PARAMS, &bytes[..len]);
        self.route(
            server,
            5,
            RouteKind::Endpoint {
                endpoint,
                method: MINT,
                params: Buffer {
                    addr: PARAMS,
                    len: len as u32,
                },
                results: RESULTS,
            },
        )
        .expect("answered at once")
    }

    /// Gives up on `client`'s calls with `target` as their user data: how
    /// many were cancelled.
    fn cancel(&mut self, client: GuestId, target: u64) -> u32 {
        let kind = RouteKind::Cancel {
            target,
            cancelled: 0,
        };
        let cqe = self.route(client, 9, kind).expect("answered at once");
        match cqe.outcome() {
            Outcome::Done { written, .. } => written,
            other => panic!("CANCEL answered {other:?}"),
        }
    }

    /// The completion `guest` got for `user_data`, the last one.
    fn completion(&self, guest: GuestId, user_data: u64) -> Option<Cqe> {
        let posted = &self.guest(guest).posted;
        posted
            .iter()
            .rev()
            .find(|c| c.user_data == user_data)
            .copied()
    }

    /// The guest exits: its endpoints close, then its ring goes.
    fn exit(&mut self, id: GuestId) {
        self.endpoints.guest_exited(&mut self.guests, id);
        self.guest_mut(id).running = false;
    }
}

fn exception_in(guest: &TestGuest, cqe: Cqe) -> Exception {
    let Outcome::Exception { len } = cqe.outcome() else {
        panic!("not an exception: {cqe:?}");
    };
    Exception::decode(&guest.read(RESULTS.addr, len as usize)).expect("an exception")
}

/// A server and a connected client.
fn served() -> (World, GuestId, GuestId, EndpointId, Capability) {
    let mut world = World::new();
    let server = world.spawn();
    let client = world.spawn();
    let endpoint = world.serve(server, "echo");
    let through = world.connect(client, "echo").expect("connected");
    (world, server, client, endpoint, through)
}

#[test]
fn a_call_waits_for_recv_and_its_reply_reaches_the_caller() {
    let (mut world, server, client, endpoint, through) = served();
    assert_eq!(through.object, Object::Client(endpoint));
    // No RECV posted: the call waits, nothing completes yet.
    assert_eq!(
        world.call(client, through, 10, b"ping", CapsSent::NONE),
        None
    );
    // The RECV takes it: params copied, the token and badge reported, the
    // server's thread woken.
    let recv = world.recv(server, endpoint, 64).expect("delivered at once");
    assert_eq!(
        recv.outcome(),
        Outcome::Done {
            written: 4,
            aux: recv.aux,
            caps: 0
        }
    );
    assert_eq!(recv.aux & 0xffff, 7, "the method the caller named");
    assert_ne!(recv.aux >> 16, 0, "a call number");
    assert_eq!(world.guest(server).read(RECV, 4), b"ping");
    assert!(world.guest(server).woken > 0);
    // The reply goes to the caller's results, completing its call.
    let answered = world.reply(server, endpoint, recv.aux, b"pong!", false);
    assert!(matches!(answered.outcome(), Outcome::Done { .. }));
    let done = world.guest(client).last();
    assert_eq!(done.user_data, 10);
    assert!(matches!(done.outcome(), Outcome::Done { written: 5, .. }));
    assert_eq!(world.guest(client).read(RESULTS.addr, 5), b"pong!");
    assert!(world.guest(client).woken > 0);
    // The token is spent: a second RETURN names nothing.
    let again = world.reply(server, endpoint, recv.aux, b"x", false);
    assert_eq!(again.outcome(), Outcome::Failed(TransportError::InvalidCap));
}

#[test]
fn a_waiting_recv_takes_the_call_at_once() {
    let (mut world, server, client, endpoint, through) = served();
    assert_eq!(world.recv(server, endpoint, 64), None);
    assert_eq!(
        world.call(client, through, 11, b"hello", CapsSent::NONE),
        None
    );
    let recv = world.guest(server).last();
    assert_eq!(recv.user_data, 3);
    assert_eq!(world.guest(server).read(RECV, 5), b"hello");
}

#[test]
fn minted_ends_carry_their_badge_and_only_the_rights_the_minter_gave() {
    let (mut world, server, client, endpoint, _) = served();
    let minted = world.mint(server, endpoint, 0xbad9e, Rights::ALL);
    let (_, capability) = world.granted(server, minted);
    assert_eq!(capability.object, Object::Client(endpoint));
    assert_eq!(capability.badge, 0xbad9e);
    assert_eq!(
        capability.rights,
        endpoint_rights::CLIENT,
        "never more than a calling end's rights"
    );
    world.recv(server, endpoint, 64);
    world.call(client, capability, 12, b"hi", CapsSent::NONE);
    assert_eq!(world.guest(server).last().badge, 0xbad9e);
    // Mint on a stale serving end: refused.
    world.exit(server);
    let server2 = world.spawn();
    let stale = world.mint(server2, endpoint, 1, Rights::ALL);
    assert_eq!(stale.outcome(), Outcome::Failed(TransportError::StaleCap));
}

#[test]
fn closing_tells_waiting_and_in_flight_callers_and_leaves_every_end_stale() {
    let (mut world, server, client, endpoint, through) = served();
    world.recv(server, endpoint, 64);
    world.call(client, through, 20, b"in flight", CapsSent::NONE);
    world.call(client, through, 21, b"waiting", CapsSent::NONE);
    world.exit(server);
    for user_data in [20, 21] {
        let cqe = *world
            .guest(client)
            .posted
            .iter()
            .find(|c| c.user_data == user_data)
            .expect("told");
        let exception = exception_in(world.guest(client), cqe);
        assert_eq!(exception.code, ExceptionCode::Disconnected);
        assert!(exception.message.contains("'echo'"), "{exception:?}");
    }
    assert_eq!(
        world.guest(client).completions.reserved(),
        0,
        "nothing owed"
    );
    let later = world
        .call(client, through, 22, b"late", CapsSent::NONE)
        .expect("answered at once");
    assert_eq!(later.outcome(), Outcome::Failed(TransportError::StaleCap));
    // The name is free again, for a restarted server.
    let restarted = world.spawn();
    let reborn = world.serve(restarted, "echo");
    assert_ne!(reborn, endpoint);
}

/// Serving and closing a name many more times than the registry has
/// endpoints: every close frees its endpoint for the next serve, and the
/// ends of the closed ones stay stale.
#[test]
fn endpoints_served_and_closed_without_end_are_freed() {
    let mut world = World::new();
    let (mut server, mut client) = (world.spawn(), world.spawn());
    let mut first = None;
    for cycle in 0..2000u64 {
        // Fresh guests now and then: the test's CQs are never read.
        if cycle % 50 == 49 {
            world.exit(server);
            world.exit(client);
            (server, client) = (world.spawn(), world.spawn());
            first = None;
        }
        let cqe = world
            .route(
                server,
                1,
                RouteKind::Serve {
                    name: "churn".into(),
                    results: RESULTS,
                },
            )
            .expect("answered at once");
        let (id, serving) = world.granted(server, cqe);
        let Object::Server(endpoint) = serving.object else {
            panic!("not a serving end: {serving:?}");
        };
        let through = world.connect(client, "churn").expect("connected");
        let (through_id, _) = world.granted(client, world.guest(client).last());
        let old = *first.get_or_insert(through);
        if old != through {
            let stale = world
                .call(client, old, 10 + cycle, b"late", CapsSent::NONE)
                .expect("answered at once");
            assert_eq!(stale.outcome(), Outcome::Failed(TransportError::StaleCap));
        }
        let closed = world
            .route(server, 4, RouteKind::Close { endpoint })
            .expect("answered at once");
        assert!(
            matches!(closed.outcome(), Outcome::Done { .. }),
            "{closed:?}"
        );
        world.guest_mut(server).caps.remove(id).expect("held");
        if old != through {
            world
                .guest_mut(client)
                .caps
                .remove(through_id)
                .expect("held");
        }
    }
}

#[test]
fn a_call_too_large_for_the_recv_buffer_is_refused_and_the_recv_takes_the_next() {
    let (mut world, server, client, endpoint, through) = served();
    // Waiting when the RECV comes: refused then, the next call delivered.
    world.call(client, through, 30, &[7; 100], CapsSent::NONE);
    world.call(client, through, 31, b"small", CapsSent::NONE);
    let recv = world.recv(server, endpoint, 16).expect("delivered");
    assert!(matches!(recv.outcome(), Outcome::Done { written: 5, .. }));
    let refused = world.completion(client, 30).expect("refused");
    let exception = exception_in(world.guest(client), refused);
    assert_eq!(exception.code, ExceptionCode::InvalidArgument);
    assert_eq!(
        exception.message,
        "the call's 100 bytes do not fit the server's receive buffer of 16"
    );
    assert_eq!(world.guest(client).allowance.held(), 0);
    // Meeting a posted RECV: refused at once, and the RECV stays.
    assert_eq!(world.recv(server, endpoint, 16), None);
    let refused = world.call(client, through, 32, &[7; 17], CapsSent::NONE);
    assert!(matches!(
        refused.map(|c| c.outcome()),
        Some(Outcome::Exception { .. })
    ));
    assert_eq!(
        world.call(client, through, 33, b"fits", CapsSent::NONE),
        None
    );
    let delivered = world.guest(server).last();
    assert!(matches!(
        delivered.outcome(),
        Outcome::Done { written: 4, .. }
    ));
}

#[test]
fn an_exception_reply_reaches_the_caller_as_one() {
    let (mut world, server, client, endpoint, through) = served();
    world.recv(server, endpoint, 64);
    world.call(client, through, 40, b"x", CapsSent::NONE);
    let token = world.guest(server).last().aux;
    let mut bytes = [0u8; 128];
    let exception = Exception::new(ExceptionCode::InvalidArgument, "no such thing");
    let len = exception.encode_fitting(&mut bytes).expect("fits");
    world.reply(server, endpoint, token, &bytes[..len], true);
    let told = exception_in(world.guest(client), world.guest(client).last());
    assert_eq!(told.code, ExceptionCode::InvalidArgument);
    assert_eq!(told.message, "no such thing");
    // A malformed one is the server's error, and the call stays in flight.
    world.recv(server, endpoint, 64);
    world.call(client, through, 41, b"y", CapsSent::NONE);
    let token = world.guest(server).last().aux;
    let bad = world.reply(server, endpoint, token, &[0xff; 9], true);
    assert_eq!(
        bad.outcome(),
        Outcome::Failed(TransportError::MalformedMessage)
    );
}

#[test]
fn capabilities_pass_only_with_the_transfer_right_and_rights_only_shrink() {
    let (mut world, server, client, endpoint, through) = served();
    // A second endpoint: the client holds one calling end of it that may
    // be passed (from connect) and one that may not.
    let other_server = world.spawn();
    let other = world.serve(other_server, "other");
    let passable = world.connect(client, "other").expect("connected");
    assert!(passable.rights.contains(Rights::TRANSFER));
    let passable_id = world.guest(client).cap_id_at(RESULTS.addr);
    let kept_id = world
        .guest_mut(client)
        .caps
        .insert(Capability {
            object: Object::Client(other),
            rights: endpoint_rights::CALL,
            badge: 5,
        })
        .expect("room");
    let send = |world: &mut World, id: CapId, user_data, moved| {
        world
            .guest(client)
            .memory
            .copy_out(CAPS, &id.raw().to_le_bytes());
        world.call(
            client,
            through,
            user_data,
            b"take",
            CapsSent {
                addr: CAPS,
                count: 1,
                moved,
            },
        )
    };
    let refused = send(&mut world, kept_id, 50, false).expect("refused at once");
    assert_eq!(
        refused.outcome(),
        Outcome::Failed(TransportError::MissingRight)
    );
    let forged = CapId::new(9, 3).expect("an id");
    let refused = send(&mut world, forged, 51, false).expect("refused at once");
    assert!(
        matches!(refused.outcome(), Outcome::Failed(_)),
        "{refused:?}"
    );
    // Moved: it arrives in the server's table with its rights, and leaves
    // the client's.
    world.recv(server, endpoint, 64);
    assert_eq!(send(&mut world, passable_id, 52, true), None);
    let recv = world.guest(server).last();
    let Outcome::Done { written, caps, .. } = recv.outcome() else {
        panic!("{recv:?}");
    };
    assert_eq!(caps, 1);
    let passed = world
        .guest(server)
        .cap_id_at(RECV + written as u64 - CAP_ID_BYTES as u64);
    let received = *world.guest(server).caps.get(passed).expect("passed");
    assert_eq!(received.object, Object::Client(other));
    assert_eq!(received.rights, passable.rights);
    assert!(
        world.guest(client).caps.get(passable_id).is_err(),
        "moved away"
    );
    // When its object dies, the passed capability is stale: a call through
    // it is refused.
    world.exit(other_server);
    let stale = world
        .call(server, received, 53, b"x", CapsSent::NONE)
        .expect("answered at once");
    assert_eq!(stale.outcome(), Outcome::Failed(TransportError::StaleCap));
}

#[test]
fn a_client_that_exits_loses_its_waiting_calls_and_the_server_goes_on() {
    let (mut world, server, client, endpoint, through) = served();
    world.call(client, through, 60, b"orphan", CapsSent::NONE);
    world.exit(client);
    let other = world.spawn();
    let through = world.connect(other, "echo").expect("connected");
    world.call(other, through, 61, b"next", CapsSent::NONE);
    world.recv(server, endpoint, 64);
    assert_eq!(
        world.guest(server).read(RECV, 4),
        b"next",
        "the orphan was dropped"
    );
}

#[test]
fn a_name_is_served_once_and_unknown_names_are_not_connected() {
    let (mut world, server, client, _, _) = served();
    let twice = world
        .route(
            server,
            1,
            RouteKind::Serve {
                name: "echo".into(),
                results: RESULTS,
            },
        )
        .expect("answered");
    assert_eq!(
        exception_in(world.guest(server), twice).code,
        ExceptionCode::InvalidArgument
    );
    let refused = world.connect(client, "nobody").expect_err("no such server");
    assert!(!matches!(refused.outcome(), Outcome::Done { .. }));
}

#[test]
fn waiting_calls_are_bounded_per_client_so_a_flood_keeps_no_one_else_out() {
    let (mut world, _server, client, _, through) = served();
    let mut overloaded = 0;
    for user_data in 0..100 {
        if let Some(cqe) = world.call(client, through, 1000 + user_data, b"q", CapsSent::NONE) {
            let exception = exception_in(world.guest(client), cqe);
            assert_eq!(exception.code, ExceptionCode::Overloaded);
            overloaded += 1;
        }
    }
    assert_eq!(overloaded, 100 - MAX_WAITING_CALLS_PER_CLIENT);
    let other = world.spawn();
    let other_end = world.connect(other, "echo").expect("connected");
    assert_eq!(
        world.call(other, other_end, 5, b"me too", CapsSent::NONE),
        None
    );
}

#[test]
fn waiting_params_are_charged_to_the_caller_and_refunded_when_they_go() {
    let (mut world, server, client, endpoint, through) = served();
    world.guest_mut(client).allowance = Allowance::new(300);
    for user_data in 0..3 {
        assert_eq!(
            world.call(client, through, 40 + user_data, &[1; 100], CapsSent::NONE),
            None
        );
    }
    assert_eq!(world.guest(client).allowance.held(), 300);
    let refused = world
        .call(client, through, 43, &[1; 100], CapsSent::NONE)
        .expect("refused at once");
    let exception = exception_in(world.guest(client), refused);
    assert_eq!(exception.code, ExceptionCode::Overloaded);
    assert!(
        exception.message.contains("of the 0 KiB"),
        "{}",
        exception.message
    );
    // Delivered: refunded. Cancelled: refunded. Closed: refunded.
    world.recv(server, endpoint, 128).expect("delivered");
    assert_eq!(world.guest(client).allowance.held(), 200);
    assert_eq!(world.cancel(client, 41), 1);
    assert_eq!(world.guest(client).allowance.held(), 100);
    world.exit(server);
    assert_eq!(world.guest(client).allowance.held(), 0);
}

#[test]
fn cancel_gives_up_waiting_and_in_flight_calls_of_the_caller_only() {
    let (mut world, server, client, endpoint, through) = served();
    let other = world.spawn();
    let other_end = world.connect(other, "echo").expect("connected");
    // In the server's hands: cancelled, and its RETURN finds no call.
    world.call(client, through, 50, b"held", CapsSent::NONE);
    let recv = world.recv(server, endpoint, 64).expect("delivered");
    // Waiting, and another guest's call with the same user data.
    world.call(client, through, 50, b"queued", CapsSent::NONE);
    world.call(other, other_end, 50, b"other's", CapsSent::NONE);
    assert_eq!(world.cancel(client, 50), 2);
    let posted = &world.guest(client).posted;
    let cancelled: Vec<_> = posted.iter().filter(|c| c.user_data == 50).collect();
    assert_eq!(cancelled.len(), 2);
    assert!(
        cancelled
            .iter()
            .all(|c| c.outcome() == Outcome::Failed(TransportError::Cancelled))
    );
    assert_eq!(
        world.guest(client).completions.reserved(),
        0,
        "CQ slots given back"
    );
    let late = world.reply(server, endpoint, recv.aux, b"late", false);
    assert_eq!(late.outcome(), Outcome::Failed(TransportError::InvalidCap));
    // Nothing left to cancel; the other guest's call is still delivered.
    assert_eq!(world.cancel(client, 50), 0);
    world.recv(server, endpoint, 64).expect("delivered");
    assert_eq!(world.guest(server).read(RECV, 7), b"other's");
}

/// One step of a random session against the registry.
#[derive(Clone, Debug)]
enum Step {
    Call {
        client: usize,
        len: u8,
    },
    Recv {
        len: u8,
    },
    Reply {
        which: usize,
        len: u8,
        exception: bool,
    },
    Mint {
        badge: u64,
    },
    ExitClient {
        client: usize,
    },
    Cancel {
        client: usize,
        back: u64,
    },
    RestartServer,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 0..80u8).prop_map(|(client, len)| Step::Call { client, len }),
        3 => (0..80u8).prop_map(|len| Step::Recv { len }),
        3 => (0..4usize, 0..40u8, any::<bool>())
            .prop_map(|(which, len, exception)| Step::Reply { which, len, exception }),
        1 => any::<u64>().prop_map(|badge| Step::Mint { badge }),
        1 => (0..3usize).prop_map(|client| Step::ExitClient { client }),
        2 => (0..3usize, 0..8u64).prop_map(|(client, back)| Step::Cancel { client, back }),
        1 => Just(Step::RestartServer),
    ]
}

proptest! {
    /// Whatever the order of calls, RECVs, replies, mints, exits and
    /// restarts: nothing panics, every completion a live guest was owed is
    /// posted or cancelled once its server is gone, and no caller is ever
    /// answered twice.
    #[test]
    fn no_call_is_lost_or_answered_twice(steps in proptest::collection::vec(step(), 1..80)) {
        let mut world = World::new();
        let mut server = world.spawn();
        let mut endpoint = world.serve(server, "echo");
        let mut clients: Vec<(GuestId, Capability)> = (0..3)
            .map(|_| {
                let id = world.spawn();
                (id, world.connect(id, "echo").expect("connected"))
            })
            .collect();
        let mut tokens: Vec<u64> = Vec::new();
        let mut user_data = 100;
        for step in steps {
            match step {
                Step::Call { client, len } => {
                    let (id, through) = clients[client];
                    if world.guest(id).running {
                        user_data += 1;
                        world.call(id, through, user_data, &vec![1; len as usize], CapsSent::NONE);
                    }
                }
                Step::Recv { len } => {
                    world.recv(server, endpoint, len as u32);
                }
                Step::Reply { which, len, exception } => {
                    if !tokens.is_empty() {
                        let token = tokens.remove(which % tokens.len());
                        let mut bytes = vec![2; len as usize];
                        if exception {
                            let e = Exception::new(ExceptionCode::InvalidArgument, "no");
                            bytes.resize(64, 0);
                            let n = e.encode_fitting(&mut bytes).expect("fits");
                            bytes.truncate(n);
                        }
                        world.reply(server, endpoint, token, &bytes, exception);
                    }
                }
                Step::Mint { badge } => {
                    let minted = world.mint(server, endpoint, badge, Rights::ALL);
                    let granted = matches!(minted.outcome(), Outcome::Done { .. });
                    prop_assert!(granted, "mint refused: {:?}", minted);
                }
                Step::ExitClient { client } => {
                    let (id, _) = clients[client];
                    if world.guest(id).running {
                        world.exit(id);
                        let fresh = world.spawn();
                        clients[client] = (fresh, world.connect(fresh, "echo").expect("connected"));
                    }
                }
                Step::Cancel { client, back } => {
                    let (id, _) = clients[client];
                    if world.guest(id).running {
                        world.cancel(id, user_data.saturating_sub(back));
                    }
                }
                Step::RestartServer => {
                    world.exit(server);
                    tokens.clear();
                    server = world.spawn();
                    endpoint = world.serve(server, "echo");
                    for (id, through) in clients.iter_mut() {
                        if world.guest(*id).running {
                            *through = world.connect(*id, "echo").expect("connected");
                        }
                    }
                }
            }
            // Tokens the server has been handed (successful RECVs).
            let server_guest = world.guest(server);
            for cqe in &server_guest.posted {
                if cqe.user_data == 3 && matches!(cqe.outcome(), Outcome::Done { .. })
                    && !tokens.contains(&cqe.aux) && cqe.aux != 0
                {
                    tokens.push(cqe.aux);
                }
            }
            world.guest_mut(server).posted.retain(|c| c.user_data != 3);
        }
        world.exit(server);
        for (id, _) in &clients {
            let guest = world.guest(*id);
            if guest.running {
                prop_assert_eq!(guest.completions.reserved(), 0, "a completion was lost");
                prop_assert_eq!(guest.allowance.held(), 0, "a charge was not refunded");
            }
            let mut seen = std::collections::HashSet::new();
            for cqe in &guest.posted {
                if cqe.user_data > 100 {
                    prop_assert!(seen.insert(cqe.user_data), "answered twice: {:?}", cqe);
                }
            }
        }
    }
}
