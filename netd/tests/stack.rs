//! Two stacks on one simulated Ethernet segment: listening, connecting,
//! accepting, streaming both ways, end of stream, refusal, stale ids,
//! limits, UDP, and an owner's sockets closing with it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use netd::{Addressing, Error, Instant, Limits, Stack};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// One end of a cable: frames sent here arrive at the other end.
struct Cable {
    inbox: Queue,
    outbox: Queue,
}

struct Rx(Vec<u8>);
struct Tx(Queue);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        self.0.borrow_mut().push_back(frame);
        result
    }
}

impl Device for Cable {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx)> {
        let frame = self.inbox.borrow_mut().pop_front()?;
        Some((Rx(frame), Tx(self.outbox.clone())))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx> {
        Some(Tx(self.outbox.clone()))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

fn fixed(address: Ipv4Address) -> Addressing {
    Addressing::Static {
        address: Ipv4Cidr::new(address, 24),
        gateway: None,
        dns: vec![],
    }
}

struct Net {
    server: Stack<Cable>,
    client: Stack<Cable>,
    /// What the server receives.
    to_server: Queue,
    now: i64,
}

impl Net {
    fn new(limits: Limits) -> Net {
        let (a, b): (Queue, Queue) = Default::default();
        let at = Instant::from_millis(0);
        let server = Cable {
            inbox: a.clone(),
            outbox: b.clone(),
        };
        let client = Cable {
            inbox: b,
            outbox: a.clone(),
        };
        Net {
            server: Stack::new(server, [2, 0, 0, 0, 0, 1], fixed(SERVER), limits, 1, at),
            client: Stack::new(client, [2, 0, 0, 0, 0, 2], fixed(CLIENT), limits, 2, at),
            to_server: a,
            now: 0,
        }
    }

    /// A frame on the wire to the server, as if the client had sent it.
    fn inject_to_server(&mut self, frame: Vec<u8>) {
        self.to_server.borrow_mut().push_back(frame);
    }

    /// Lets frames and timers run for `millis`.
    fn run(&mut self, millis: i64) {
        for _ in 0..millis {
            self.now += 1;
            let now = Instant::from_millis(self.now);
            self.server.poll(now);
            self.client.poll(now);
        }
    }
}

/// Runs until `f` stops answering WouldBlock (at most 10 simulated s).
fn until<T>(net: &mut Net, mut f: impl FnMut(&mut Net) -> Result<T, Error>) -> Result<T, Error> {
    for _ in 0..10_000 {
        match f(net) {
            Err(Error::WouldBlock) => net.run(1),
            other => return other,
        }
    }
    panic!("still blocked after 10 s");
}

#[test]
fn a_connection_carries_bytes_both_ways_and_ends() {
    let mut net = Net::new(Limits::DEFAULT);
    let listener = net.server.listen(1, 8080).unwrap();
    assert_eq!(net.server.accept(listener), Err(Error::WouldBlock));
    let stream = net.client.connect(7, SERVER, 8080).unwrap();
    assert_eq!(
        net.client.send(stream, b"x"),
        Err(Error::WouldBlock),
        "not yet established"
    );
    let accepted = until(&mut net, |n| n.server.accept(listener)).unwrap();
    assert_eq!(net.client.send(stream, b"hello").unwrap(), 5);
    let mut buffer = [0u8; 64];
    let read = until(&mut net, |n| n.server.recv(accepted, &mut buffer)).unwrap();
    assert_eq!(&buffer[..read], b"hello");
    net.server.send(accepted, b"world").unwrap();
    let read = until(&mut net, |n| n.client.recv(stream, &mut buffer)).unwrap();
    assert_eq!(&buffer[..read], b"world");
    net.server.shutdown(accepted).unwrap();
    assert_eq!(
        until(&mut net, |n| n.client.recv(stream, &mut buffer)),
        Ok(0),
        "end of stream"
    );
    assert_eq!(net.server.send(accepted, b"late"), Err(Error::Closed));
    net.client.close(stream).unwrap();
    net.server.close(accepted).unwrap();
    assert!(matches!(
        net.client.recv(stream, &mut buffer),
        Err(Error::Stale(_))
    ));
    net.run(200);
    // The listener takes the next connection too.
    let second = net.client.connect(7, SERVER, 8080).unwrap();
    until(&mut net, |n| n.server.accept(listener)).unwrap();
    net.client.close(second).unwrap();
}

#[test]
fn a_refused_connection_says_so() {
    let mut net = Net::new(Limits::DEFAULT);
    let stream = net.client.connect(7, SERVER, 9).unwrap();
    let mut buffer = [0u8; 8];
    assert_eq!(
        until(&mut net, |n| n.client.recv(stream, &mut buffer)),
        Err(Error::ConnectionReset)
    );
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let mut net = Net::new(Limits::DEFAULT);
    assert_eq!(net.server.listen(1, 0), Err(Error::InvalidEndpoint));
    let listener = net.server.listen(1, 80).unwrap();
    assert_eq!(net.server.listen(2, 80), Err(Error::PortInUse(80)));
    assert_eq!(
        net.client.connect(7, Ipv4Address::UNSPECIFIED, 80),
        Err(Error::InvalidEndpoint)
    );
    assert_eq!(
        net.client.connect(7, SERVER, 0),
        Err(Error::InvalidEndpoint)
    );
    let mut buffer = [0u8; 8];
    assert_eq!(
        net.server.recv(listener, &mut buffer),
        Err(Error::WrongKind)
    );
    net.server.close(listener).unwrap();
    assert!(matches!(net.server.accept(listener), Err(Error::Stale(_))));
    assert!(matches!(net.server.close(listener), Err(Error::Stale(_))));
    // The port is free again.
    net.server.listen(1, 80).unwrap();
}

#[test]
fn an_owner_cannot_hold_more_than_its_limit() {
    let limits = Limits {
        sockets_per_owner: 4,
        ..Limits::DEFAULT
    };
    let mut net = Net::new(limits);
    net.server.listen(1, 1000).unwrap(); // two listening sockets
    net.server.udp_bind(1, 53).unwrap();
    net.server.udp_bind(1, 54).unwrap();
    assert_eq!(net.server.udp_bind(1, 55), Err(Error::TooManySockets));
    assert_eq!(net.server.listen(1, 1001), Err(Error::TooManySockets));
    // Another owner is not affected, and the owner's exit frees its share.
    net.server.udp_bind(2, 55).unwrap();
    net.server.close_owned_by(1);
    net.server.listen(1, 1001).unwrap();
}

#[test]
fn an_owners_exit_closes_its_connections() {
    let mut net = Net::new(Limits::DEFAULT);
    let listener = net.server.listen(1, 8080).unwrap();
    let stream = net.client.connect(7, SERVER, 8080).unwrap();
    let accepted = until(&mut net, |n| n.server.accept(listener)).unwrap();
    net.server.close_owned_by(1);
    assert!(matches!(
        net.server.send(accepted, b"x"),
        Err(Error::Stale(_))
    ));
    let mut buffer = [0u8; 8];
    assert_eq!(
        until(&mut net, |n| n.client.recv(stream, &mut buffer)),
        Ok(0)
    );
    net.run(netd::LINGER.total_millis() as i64 + 100);
    assert_eq!(net.server.socket_count(), 0, "closed streams are reaped");
}

#[test]
fn datagrams_go_both_ways() {
    let mut net = Net::new(Limits::DEFAULT);
    let server = net.server.udp_bind(1, 5353).unwrap();
    let client = net.client.udp_bind(7, 0).unwrap();
    net.client.send_to(client, SERVER, 5353, b"ping").unwrap();
    let mut buffer = [0u8; 16];
    let (len, from, port) = until(&mut net, |n| n.server.recv_from(server, &mut buffer)).unwrap();
    assert_eq!((&buffer[..len], from), (&b"ping"[..], CLIENT));
    net.server.send_to(server, from, port, b"pong").unwrap();
    let (len, from, _) = until(&mut net, |n| n.client.recv_from(client, &mut buffer)).unwrap();
    assert_eq!((&buffer[..len], from), (&b"pong"[..], SERVER));
    assert_eq!(
        net.client.send_to(client, SERVER, 5353, &vec![0; 20_000]),
        Err(Error::TooLarge)
    );
}

#[test]
fn a_burst_of_connections_is_taken_not_reset() {
    let mut net = Net::new(Limits::DEFAULT);
    let listener = net.server.listen(1, 8080).unwrap();
    let streams: Vec<_> = (0..12)
        .map(|_| net.client.connect(7, SERVER, 8080).unwrap())
        .collect();
    let mut accepted = Vec::new();
    while accepted.len() < streams.len() {
        accepted.push(until(&mut net, |n| n.server.accept(listener)).unwrap());
    }
    for stream in &streams {
        assert!(net.client.readiness(*stream).unwrap().1, "writable");
        assert_eq!(net.client.send(*stream, b"x"), Ok(1));
    }
    // Every connection the burst made is established: none was reset.
    net.run(50);
    let mut buffer = [0u8; 4];
    let mut received = 0;
    for peer in &accepted {
        received += until(&mut net, |n| n.server.recv(*peer, &mut buffer)).unwrap();
    }
    assert_eq!(received, streams.len());
}

mod arbitrary_frames {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet frame addressed to the server, with an IPv4/TCP-ish
    /// header in front of arbitrary bytes (so the parsers get past the
    /// first layer), or arbitrary bytes altogether.
    fn frame() -> impl Strategy<Value = Vec<u8>> {
        let raw = proptest::collection::vec(any::<u8>(), 0..1600);
        let shaped = (proptest::collection::vec(any::<u8>(), 0..200), any::<u8>()).prop_map(
            |(tail, protocol)| {
                let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
                frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, protocol % 18, 0, 0]);
                frame.extend_from_slice(&CLIENT.octets());
                frame.extend_from_slice(&SERVER.octets());
                frame.extend_from_slice(&tail);
                frame
            },
        );
        prop_oneof![raw, shaped]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Garbage on the wire is dropped (or answered with a reset): the
        /// stack neither panics nor stops serving.
        #[test]
        fn garbage_never_breaks_the_stack(frames in proptest::collection::vec(frame(), 1..40)) {
            let mut net = Net::new(Limits::DEFAULT);
            let listener = net.server.listen(1, 8080).unwrap();
            for frame in frames {
                net.inject_to_server(frame);
                net.run(1);
            }
            let stream = net.client.connect(7, SERVER, 8080).unwrap();
            let accepted = until(&mut net, |n| n.server.accept(listener)).unwrap();
            net.client.send(stream, b"still here").unwrap();
            let mut buffer = [0u8; 16];
            let read = until(&mut net, |n| n.server.recv(accepted, &mut buffer)).unwrap();
            prop_assert_eq!(&buffer[..read], b"still here");
        }
    }
}
