//! The dispatcher's decisions on the host: capability look-up, kind and
//! rights checks, and where each request goes, against a model of what
//! each kind of capability allows.

use caps::rights::endpoint as endpoint_rights;
use caps::{Buffer, CapId, CapTable, CapsSent, Interface, Request, Rights, TransportError};
use nucleus_core::dispatch::{Dispatch, dispatch};
use nucleus_core::endpoint::{Capability, EndpointId, Object, RouteKind};
use proptest::prelude::*;

const PARAMS: Buffer = Buffer {
    addr: 0x1000,
    len: 16,
};
const RESULTS: Buffer = Buffer {
    addr: 0x2000,
    len: 64,
};
/// The one service these tests know: Timer's method 0 needs bit 1, method
/// 1 bit 2, other methods do not exist.
const TIMER: Interface = Interface::Timer;

fn service_rights(interface: Interface, method: u16) -> Option<Result<Rights, TransportError>> {
    (interface == TIMER).then(|| match method {
        0 => Ok(Rights::bit(1)),
        1 => Ok(Rights::bit(2)),
        _ => Err(TransportError::UnknownMethod),
    })
}

fn call(cap: CapId, method: u16) -> Request {
    Request::Call {
        cap,
        method,
        params: Some(PARAMS),
        results: Some(RESULTS),
        caps: CapsSent::NONE,
    }
}

/// Endpoint ids (whether live is the registry's business, not the
/// dispatcher's).
fn endpoint_ids(count: usize) -> Vec<EndpointId> {
    (0..count as u16)
        .map(|i| EndpointId::from_key(CapId::new(i, 1).expect("an id")))
        .collect()
}

fn table(entries: &[Capability]) -> (CapTable<Capability>, Vec<CapId>) {
    let mut table = CapTable::new(32);
    let ids = entries
        .iter()
        .map(|c| table.insert(*c).expect("room"))
        .collect();
    (table, ids)
}

fn capability(object: Object, rights: Rights) -> Capability {
    Capability {
        object,
        rights,
        badge: 77,
    }
}

#[test]
fn service_calls_need_the_methods_rights_and_carry_no_capabilities() {
    let item = CapId::new(4, 2).expect("an id");
    let (mut caps, ids) = table(&[
        capability(Object::Service(TIMER), Rights::bit(1)),
        capability(
            Object::Item {
                interface: TIMER,
                key: item,
            },
            Rights::ALL,
        ),
        capability(Object::Service(Interface::Console), Rights::ALL),
    ]);
    assert_eq!(
        dispatch(call(ids[0], 0), &mut caps, service_rights),
        Dispatch::Service {
            interface: TIMER,
            object: None,
            method: 0,
            params: Some(PARAMS),
            results: RESULTS,
        }
    );
    assert_eq!(
        dispatch(call(ids[0], 1), &mut caps, service_rights),
        Dispatch::Failed(TransportError::MissingRight)
    );
    assert_eq!(
        dispatch(call(ids[0], 9), &mut caps, service_rights),
        Dispatch::Failed(TransportError::UnknownMethod)
    );
    let Dispatch::Service { object, .. } = dispatch(call(ids[1], 1), &mut caps, service_rights)
    else {
        panic!("an object's call goes to its service");
    };
    assert_eq!(object, Some(item));
    // A service the nucleus does not have (here: Console).
    assert_eq!(
        dispatch(call(ids[2], 0), &mut caps, service_rights),
        Dispatch::Failed(TransportError::WrongCapKind)
    );
    let with_caps = Request::Call {
        cap: ids[0],
        method: 0,
        params: Some(PARAMS),
        results: Some(RESULTS),
        caps: CapsSent {
            addr: 0x3000,
            count: 1,
            moved: false,
        },
    };
    assert_eq!(
        dispatch(with_caps, &mut caps, service_rights),
        Dispatch::Failed(TransportError::MalformedMessage)
    );
}

#[test]
fn endpoint_ends_route_to_the_registry_only_with_their_rights() {
    let [endpoint] = endpoint_ids(1)[..] else {
        unreachable!()
    };
    let (mut caps, ids) = table(&[
        capability(Object::Client(endpoint), endpoint_rights::CLIENT),
        capability(Object::Client(endpoint), Rights::TRANSFER),
        capability(
            Object::Server(endpoint),
            endpoint_rights::SERVE.union(endpoint_rights::MINT),
        ),
        capability(Object::Server(endpoint), Rights::NONE),
    ]);
    assert_eq!(
        dispatch(call(ids[0], 3), &mut caps, service_rights),
        Dispatch::Route(RouteKind::Call {
            endpoint,
            badge: 77,
            method: 3,
            params: PARAMS,
            results: RESULTS,
            caps: CapsSent::NONE,
        })
    );
    assert_eq!(
        dispatch(call(ids[1], 3), &mut caps, service_rights),
        Dispatch::Failed(TransportError::MissingRight)
    );
    assert!(matches!(
        dispatch(call(ids[2], 0), &mut caps, service_rights),
        Dispatch::Route(RouteKind::Endpoint { method: 0, .. })
    ));
    assert_eq!(
        dispatch(call(ids[3], 0), &mut caps, service_rights),
        Dispatch::Failed(TransportError::MissingRight)
    );
    let recv = |cap| Request::Recv {
        cap,
        buffer: RESULTS,
    };
    assert_eq!(
        dispatch(recv(ids[2]), &mut caps, service_rights),
        Dispatch::Route(RouteKind::Recv {
            endpoint,
            buffer: RESULTS
        })
    );
    assert_eq!(
        dispatch(recv(ids[3]), &mut caps, service_rights),
        Dispatch::Failed(TransportError::MissingRight)
    );
    assert_eq!(
        dispatch(recv(ids[0]), &mut caps, service_rights),
        Dispatch::Failed(TransportError::WrongCapKind),
        "a calling end cannot RECV"
    );
    let ret = Request::Return {
        cap: ids[0],
        token: 5,
        reply: None,
        caps: CapsSent::NONE,
        exception: false,
    };
    assert_eq!(
        dispatch(ret, &mut caps, service_rights),
        Dispatch::Failed(TransportError::WrongCapKind)
    );
}

#[test]
fn cancel_needs_no_capability_and_touches_no_table() {
    let (mut caps, _) = table(&[capability(Object::Service(TIMER), Rights::ALL)]);
    let before: Vec<_> = caps.iter().map(|(id, c)| (id, *c)).collect();
    assert_eq!(
        dispatch(Request::Cancel { target: 42 }, &mut caps, service_rights),
        Dispatch::Cancel { target: 42 }
    );
    let after: Vec<_> = caps.iter().map(|(id, c)| (id, *c)).collect();
    assert_eq!(before, after);
}

#[test]
fn release_frees_the_slot_and_says_what_goes_with_it() {
    let [endpoint] = endpoint_ids(1)[..] else {
        unreachable!()
    };
    let key = CapId::new(1, 1).expect("an id");
    let (mut caps, ids) = table(&[
        capability(Object::Server(endpoint), Rights::NONE),
        capability(
            Object::Item {
                interface: TIMER,
                key,
            },
            Rights::NONE,
        ),
        capability(Object::Service(TIMER), Rights::ALL),
    ]);
    let release = |cap| Request::Release { cap };
    assert_eq!(
        dispatch(release(ids[0]), &mut caps, service_rights),
        Dispatch::Route(RouteKind::Close { endpoint })
    );
    assert_eq!(
        dispatch(release(ids[1]), &mut caps, service_rights),
        Dispatch::Released {
            interface: TIMER,
            key
        }
    );
    assert_eq!(
        dispatch(release(ids[2]), &mut caps, service_rights),
        Dispatch::Done
    );
    // Every one is gone: a second release, or a call, names a stale slot.
    for id in ids {
        assert_eq!(
            dispatch(release(id), &mut caps, service_rights),
            Dispatch::Failed(TransportError::StaleCap)
        );
        assert_eq!(
            dispatch(call(id, 0), &mut caps, service_rights),
            Dispatch::Failed(TransportError::StaleCap)
        );
    }
    assert_eq!(
        dispatch(Request::Nop, &mut caps, service_rights),
        Dispatch::Done
    );
}

fn object(endpoints: &[EndpointId]) -> impl Strategy<Value = Object> + use<> {
    let endpoints = endpoints.to_vec();
    let e = endpoints.clone();
    prop_oneof![
        Just(Object::Service(TIMER)),
        Just(Object::Service(Interface::Console)),
        (0..4u16, 1..3u16).prop_map(|(i, g)| Object::Item {
            interface: TIMER,
            key: CapId::new(i, g).expect("an id"),
        }),
        (0..e.len()).prop_map(move |i| Object::Client(e[i])),
        (0..endpoints.len()).prop_map(move |i| Object::Server(endpoints[i])),
    ]
}

proptest! {
    /// Whatever the table and the request: a request reaches its target
    /// only through a live capability holding the rights its kind needs,
    /// and only a release changes the table.
    #[test]
    fn nothing_passes_without_a_live_capability_and_its_rights(
        entries in proptest::collection::vec(
            (object(&endpoint_ids(3)), any::<u16>(), any::<u64>()), 0..6),
        released in proptest::collection::vec(any::<bool>(), 6),
        target in 0..8usize,
        opcode in 0..4u8,
        method in 0..3u16,
    ) {
        let mut caps = CapTable::new(8);
        let mut ids = Vec::new();
        for (object, rights, badge) in &entries {
            ids.push(caps.insert(Capability {
                object: *object,
                rights: Rights::from_bits(*rights),
                badge: *badge,
            }).expect("room"));
        }
        for (id, gone) in ids.iter().zip(&released) {
            if *gone {
                caps.remove(*id).expect("live");
            }
        }
        let cap = ids.get(target).copied().unwrap_or(CapId::new(7, 1).expect("an id"));
        let held = caps.get(cap).ok().copied();
        let request = match opcode {
            0 => call(cap, method),
            1 => Request::Recv { cap, buffer: RESULTS },
            2 => Request::Return { cap, token: 1, reply: None, caps: CapsSent::NONE, exception: false },
            _ => Request::Release { cap },
        };
        let before: Vec<_> = caps.iter().map(|(id, c)| (id, *c)).collect();
        let decided = dispatch(request, &mut caps, service_rights);
        let after: Vec<_> = caps.iter().map(|(id, c)| (id, *c)).collect();
        let Some(held) = held else {
            prop_assert!(matches!(decided, Dispatch::Failed(_)), "{:?}", decided);
            prop_assert_eq!(before, after);
            return Ok(());
        };
        if opcode == 3 {
            prop_assert!(caps.get(cap).is_err(), "released");
            prop_assert_eq!(after.len() + 1, before.len());
            return Ok(());
        }
        prop_assert_eq!(before, after);
        let rights = held.rights;
        match decided {
            Dispatch::Route(RouteKind::Call { endpoint, badge, .. }) => {
                prop_assert_eq!(held.object, Object::Client(endpoint));
                prop_assert!(rights.contains(endpoint_rights::CALL));
                prop_assert_eq!(badge, held.badge);
            }
            Dispatch::Route(RouteKind::Endpoint { endpoint, .. }) => {
                prop_assert_eq!(held.object, Object::Server(endpoint));
                prop_assert!(rights.contains(endpoint_rights::MINT));
            }
            Dispatch::Route(RouteKind::Recv { endpoint, .. })
            | Dispatch::Route(RouteKind::Return { endpoint, .. }) => {
                prop_assert_eq!(held.object, Object::Server(endpoint));
                prop_assert!(rights.contains(endpoint_rights::SERVE));
            }
            Dispatch::Service { interface, method, .. } => {
                let needed = service_rights(interface, method)
                    .expect("a service")
                    .expect("a method");
                prop_assert!(rights.contains(needed));
                let its_interface = matches!(held.object,
                    Object::Service(i) | Object::Item { interface: i, .. } if i == interface);
                prop_assert!(its_interface, "{:?} for {:?}", held, interface);
            }
            Dispatch::Failed(_) => {}
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
