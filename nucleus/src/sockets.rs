//! The network's services: Network (granted by the appliance) makes
//! sockets, each a capability of its own naming a netd socket (its key in
//! netd's generational table, so a closed socket's capability is stale);
//! TcpListener, TcpStream and UdpSocket work on them. Calls that cannot
//! complete yet (accept, read, write with `wait`, Network.poll) answer
//! `Wait` and are made again whenever the stack makes progress.
#![forbid(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;

use caps::interfaces::{network, tcp_listener, tcp_stream, udp_socket};
use caps::{CapId, ExceptionCode, Interface, Message, Rights, TransportError};
use netd::{Error, Ipv4Address};
use nucleus_core::allowance::try_zeroed;

use crate::service::{Caller, Reply, Service, denied, exception, uniform};
use nucleus_core::endpoint::{Capability, Object};

/// Most bytes one read or datagram returns (a guest wanting more calls
/// again); also bounded by the caller's results buffer.
const MAX_READ_BYTES: usize = 64 * 1024;
/// What a read's results need besides the bytes (Cap'n Proto framing).
const READ_OVERHEAD: usize = 64;

/// Sockets carry no transfer right: each is held by the guest that made it
/// alone, so releasing that capability (or the guest's exit) closes it.
const SOCKET_RIGHTS: Rights = Rights::ALL.without(Rights::TRANSFER);

fn socket(interface: Interface, key: CapId) -> Capability {
    Capability {
        object: Object::Item { interface, key },
        rights: SOCKET_RIGHTS,
        badge: 0,
    }
}

fn address(raw: u32) -> Ipv4Address {
    Ipv4Address::from_bits(raw)
}

/// What a netd error tells the caller.
fn failure(error: Error) -> Result<Reply, TransportError> {
    let code = match error {
        Error::Stale(_) => return Err(TransportError::StaleCap),
        Error::WrongKind => return Err(TransportError::WrongCapKind),
        Error::WouldBlock => unreachable!("handled by each method"),
        Error::PortInUse(_) | Error::InvalidEndpoint | Error::TooLarge => {
            ExceptionCode::InvalidArgument
        }
        Error::TooManySockets => ExceptionCode::Overloaded,
        Error::ConnectionReset | Error::Closed => ExceptionCode::Disconnected,
        Error::NoAddress => ExceptionCode::Failed,
    };
    let message = match error {
        Error::TooManySockets => alloc::format!(
            "too many sockets: a guest may hold {}",
            netd::Limits::DEFAULT.sockets_per_owner
        ),
        other => alloc::format!("{other}"),
    };
    exception(code, &message)
}

/// Runs `f` on the stack; a guest can only hold the Network capability
/// when the appliance brought the device up, so it is there.
fn stack<R>(f: impl FnOnce(&mut netd::Stack<crate::net::NicDevice>) -> R) -> R {
    crate::net::with_stack(f).expect("the network is up whenever Network is granted")
}

/// Results carrying the socket netd just `made`, as a capability of
/// `interface`; if they cannot be delivered the socket is closed again.
fn granting<M: Message>(
    caller: &mut Caller,
    results: &M,
    interface: Interface,
    made: Result<CapId, Error>,
) -> Result<Reply, TransportError> {
    let key = match made {
        Ok(key) => key,
        Err(error) => return failure(error),
    };
    let reply = caller.results_granting(results, &[socket(interface, key)]);
    if reply.is_err() {
        let _ = stack(|s| s.close(key));
    }
    reply
}

pub struct NetworkService;

impl Service for NetworkService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::Network, method, Rights::NONE)
    }

    fn call(
        &self,
        method: u16,
        _: Option<CapId>,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError> {
        let owner = caller.info.owner;
        match method {
            network::INFO => {
                let info = stack(|s| s.info().clone());
                let (address, prefix_length) = info
                    .address
                    .map_or((0, 0), |cidr| (cidr.address().to_bits(), cidr.prefix_len()));
                caller.results(&network::InfoResults {
                    info: network::Addressing {
                        mac: info.mac.to_vec(),
                        address,
                        prefix_length,
                        gateway: info.gateway.map_or(0, Ipv4Address::to_bits),
                        dns: info.dns.iter().map(|a| a.to_bits()).collect(),
                    },
                })
            }
            network::LISTEN => {
                let port = network::ListenParams::decode(params)?.port;
                if !caller.info.listen.contains(&port) {
                    return denied(caller, &alloc::format!("listen on port {port}"), "listen");
                }
                let made = stack(|s| s.listen(owner, port));
                granting(
                    caller,
                    &network::ListenResults {},
                    Interface::TcpListener,
                    made,
                )
            }
            network::CONNECT => {
                let params = network::ConnectParams::decode(params)?;
                let made = stack(|s| s.connect(owner, address(params.address), params.port));
                granting(
                    caller,
                    &network::ConnectResults {},
                    Interface::TcpStream,
                    made,
                )
            }
            network::BIND_UDP => {
                let port = network::BindUdpParams::decode(params)?.port;
                if port != 0 && !caller.info.listen.contains(&port) {
                    return denied(caller, &alloc::format!("bind port {port}"), "listen");
                }
                let made = stack(|s| s.udp_bind(owner, port));
                granting(
                    caller,
                    &network::BindUdpResults {},
                    Interface::UdpSocket,
                    made,
                )
            }
            _ => poll(params, caller),
        }
    }
}

/// Most sockets one Network.poll watches.
const MAX_POLL_INTERESTS: usize = 64;

fn poll(params: &[u8], caller: &mut Caller) -> Result<Reply, TransportError> {
    let params = network::PollParams::decode(params)?;
    if params.interests.len() > MAX_POLL_INTERESTS {
        return exception(
            ExceptionCode::InvalidArgument,
            "Network.poll watches at most 64 sockets",
        );
    }
    let mut keys = Vec::with_capacity(params.interests.len());
    for interest in &params.interests {
        let id = CapId::from_raw(interest.socket).ok_or(TransportError::InvalidCap)?;
        match caller.caps.get(id)?.object {
            Object::Item {
                interface: Interface::TcpListener | Interface::TcpStream | Interface::UdpSocket,
                key,
            } => keys.push(key),
            _ => return Err(TransportError::WrongCapKind),
        }
    }
    let ready: Vec<network::Readiness> = stack(|s| {
        keys.iter()
            .map(|&key| {
                // A socket closed meanwhile is ready: its next call says why.
                let (read, write) = s.readiness(key).unwrap_or((true, true));
                network::Readiness { read, write }
            })
            .collect()
    });
    let any = ready
        .iter()
        .zip(&params.interests)
        .any(|(ready, asked)| ready.read && asked.read || ready.write && asked.write);
    if any {
        return caller.results(&network::PollResults { ready });
    }
    match params.timeout_nanos {
        0 => caller.results(&network::PollResults { ready: vec![] }),
        u64::MAX => Ok(Reply::Wait { until: None }),
        nanos => {
            Ok(Reply::Wait {
                until: Some(crate::time::rdtsc().saturating_add(
                    nucleus_core::time::nanos_to_cycles(nanos, crate::time::tsc_hz()),
                )),
            })
        }
    }
}

/// The services of the sockets Network makes; `object` is the socket's key.
pub struct TcpListenerService;
pub struct TcpStreamService;
pub struct UdpSocketService;

/// The service for a socket interface, with what is common to all three.
macro_rules! socket_service {
    ($service:ident, $interface:ident, $handler:ident) => {
        impl Service for $service {
            fn rights(&self, method: u16) -> Result<Rights, TransportError> {
                uniform(Interface::$interface, method, Rights::NONE)
            }

            fn call(
                &self,
                method: u16,
                object: Option<CapId>,
                params: &[u8],
                caller: &mut Caller,
            ) -> Result<Reply, TransportError> {
                let key = object.ok_or(TransportError::WrongCapKind)?;
                $handler(method, key, params, caller)
            }

            fn release(&self, object: CapId, _owner: u32) {
                let _ = crate::net::with_stack(|s| s.close(object));
            }
        }
    };
}

socket_service!(TcpListenerService, TcpListener, listener);
socket_service!(TcpStreamService, TcpStream, stream);
socket_service!(UdpSocketService, UdpSocket, datagram);

fn listener(
    method: u16,
    key: CapId,
    params: &[u8],
    caller: &mut Caller,
) -> Result<Reply, TransportError> {
    if method == tcp_listener::PORT {
        return match stack(|s| s.listener_port(key)) {
            Ok(port) => caller.results(&tcp_listener::PortResults { port }),
            Err(error) => failure(error),
        };
    }
    let wait = tcp_listener::AcceptParams::decode(params)?.wait;
    match stack(|s| s.accept(key)) {
        Err(Error::WouldBlock) if wait => Ok(Reply::Wait { until: None }),
        Err(Error::WouldBlock) => caller.results(&tcp_listener::AcceptResults {}),
        made => granting(
            caller,
            &tcp_listener::AcceptResults {},
            Interface::TcpStream,
            made,
        ),
    }
}

/// How many bytes a read may return into the caller's results buffer.
fn read_room(max: u32, caller: &Caller) -> Result<usize, TransportError> {
    let room = (caller.results.len as usize).saturating_sub(READ_OVERHEAD);
    let wanted = (max as usize).min(MAX_READ_BYTES);
    if wanted > 0 && room == 0 {
        return Err(TransportError::ResultsTooSmall);
    }
    Ok(wanted.min(room))
}

fn stream(
    method: u16,
    key: CapId,
    params: &[u8],
    caller: &mut Caller,
) -> Result<Reply, TransportError> {
    match method {
        tcp_stream::READ => {
            let params = tcp_stream::ReadParams::decode(params)?;
            let mut data = try_zeroed(read_room(params.max, caller)?)
                .map_err(|_| TransportError::OutOfMemory)?;
            match stack(|s| s.recv(key, &mut data)) {
                Ok(0) if !data.is_empty() => caller.results(&tcp_stream::ReadResults {
                    data: Vec::new(),
                    end: true,
                }),
                Ok(read) => {
                    data.truncate(read);
                    caller.results(&tcp_stream::ReadResults { data, end: false })
                }
                Err(Error::WouldBlock) if params.wait => Ok(Reply::Wait { until: None }),
                Err(Error::WouldBlock) => caller.results(&tcp_stream::ReadResults::default()),
                Err(error) => failure(error),
            }
        }
        tcp_stream::WRITE => {
            let params = tcp_stream::WriteParams::decode(params)?;
            match stack(|s| s.send(key, &params.data)) {
                Ok(written) => caller.results(&tcp_stream::WriteResults {
                    written: written as u32,
                }),
                Err(Error::WouldBlock) if params.wait => Ok(Reply::Wait { until: None }),
                Err(Error::WouldBlock) => caller.results(&tcp_stream::WriteResults { written: 0 }),
                Err(error) => failure(error),
            }
        }
        tcp_stream::SHUTDOWN => match stack(|s| s.shutdown(key)) {
            Ok(()) => caller.results(&tcp_stream::ShutdownResults {}),
            Err(error) => failure(error),
        },
        _ => match stack(|s| s.endpoints(key)) {
            Ok([(local, local_port), (remote, remote_port)]) => {
                caller.results(&tcp_stream::EndpointsResults {
                    local_address: local.to_bits(),
                    local_port,
                    remote_address: remote.to_bits(),
                    remote_port,
                })
            }
            Err(error) => failure(error),
        },
    }
}

fn datagram(
    method: u16,
    key: CapId,
    params: &[u8],
    caller: &mut Caller,
) -> Result<Reply, TransportError> {
    if method == udp_socket::SEND_TO {
        let params = udp_socket::SendToParams::decode(params)?;
        return match stack(|s| s.send_to(key, address(params.address), params.port, &params.data)) {
            Ok(()) => caller.results(&udp_socket::SendToResults {}),
            Err(Error::WouldBlock) => exception(
                ExceptionCode::Overloaded,
                "the socket's send buffer is full",
            ),
            Err(error) => failure(error),
        };
    }
    let params = udp_socket::RecvFromParams::decode(params)?;
    let mut data =
        try_zeroed(read_room(params.max, caller)?).map_err(|_| TransportError::OutOfMemory)?;
    match stack(|s| s.recv_from(key, &mut data)) {
        Ok((len, from, port)) => {
            data.truncate(len);
            caller.results(&udp_socket::RecvFromResults {
                data,
                address: from.to_bits(),
                port,
                received: true,
            })
        }
        Err(Error::WouldBlock) if params.wait => Ok(Reply::Wait { until: None }),
        Err(Error::WouldBlock) => caller.results(&udp_socket::RecvFromResults::default()),
        Err(error) => failure(error),
    }
}

/// A guest has gone: its sockets close.
pub fn owner_gone(owner: u32) {
    let _ = crate::net::with_stack(|s| s.close_owned_by(owner));
}
