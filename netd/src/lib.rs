//! The network stack: smoltcp over one Ethernet device, addressed by DHCP
//! or statically, and the socket objects the nucleus's Network services
//! hand out as capabilities. Every operation is non-blocking: what cannot
//! complete yet answers [`Error::WouldBlock`], and the caller tries again
//! after the next [`Stack::poll`] (the nucleus parks the guest's call).
//!
//! Sockets live in a generational table (`caps::CapTable`): a closed
//! socket's id is stale from then on. Each belongs to an owner (the guest
//! that made it); an owner's sockets close together when it goes
//! ([`Stack::close_owned_by`]), and per-owner limits bound what one owner
//! can make the stack hold.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use caps::{CapId, CapTable, TransportError};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint,
};

pub use smoltcp;
pub use smoltcp::time::{Duration, Instant};
pub use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// A socket's id: its slot in the stack's table and the slot's generation.
pub type SocketId = CapId;

/// Who made a socket (the nucleus uses the guest's id).
pub type Owner = u32;

/// How the interface gets its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressing {
    Dhcp,
    Static {
        address: Ipv4Cidr,
        gateway: Option<Ipv4Address>,
        dns: Vec<Ipv4Address>,
    },
}

/// What one owner may make the stack hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Sockets of all kinds (a listener counts its backlog).
    pub sockets_per_owner: usize,
    /// Receive and transmit buffer, each, per TCP socket.
    pub tcp_buffer_bytes: usize,
    /// Receive and transmit buffer, each, per UDP socket.
    pub udp_buffer_bytes: usize,
    /// Connections a listener holds at once: waiting to be accepted, and
    /// the listening sockets that take the next ones.
    pub backlog: usize,
}

/// Listening sockets a listener keeps ready: after every packet the stack
/// takes in, a listener that has fewer gets more (within its backlog and
/// its owner's limit), so a burst of connections is taken one by one
/// instead of being reset (smoltcp resets a SYN no socket listens for).
const LISTENING: usize = 2;

impl Limits {
    /// At most 64 sockets; a TCP one has 2 x 64 KiB (the receive buffer is
    /// the window smoltcp offers), a UDP one 2 x 16 KiB: 8 MiB per owner.
    pub const DEFAULT: Limits = Limits {
        sockets_per_owner: 64,
        tcp_buffer_bytes: 64 * 1024,
        udp_buffer_bytes: 16 * 1024,
        backlog: 32,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not now: try again after the stack has made progress.
    WouldBlock,
    /// The id names no open socket (closed, or never made).
    Stale(TransportError),
    /// The socket is not of the kind the operation needs.
    WrongKind,
    /// Another listener has this port.
    PortInUse(u16),
    /// Port 0, or an address that cannot be reached.
    InvalidEndpoint,
    /// The owner holds as many sockets as it may.
    TooManySockets,
    /// The peer refused or reset the connection.
    ConnectionReset,
    /// Writing after shutdown, or to a connection the peer closed.
    Closed,
    /// The interface has no address yet (DHCP has not answered).
    NoAddress,
    /// A datagram larger than the socket's buffer.
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlock => f.write_str("not ready yet"),
            Error::Stale(error) => write!(f, "no such socket ({error:?})"),
            Error::WrongKind => f.write_str("not a socket of that kind"),
            Error::PortInUse(port) => write!(f, "port {port} is taken by another listener"),
            Error::InvalidEndpoint => f.write_str("invalid address or port"),
            Error::TooManySockets => f.write_str("too many sockets open"),
            Error::ConnectionReset => f.write_str("connection refused or reset by the peer"),
            Error::Closed => f.write_str("the connection is closed for writing"),
            Error::NoAddress => f.write_str("the interface has no address yet"),
            Error::TooLarge => f.write_str("datagram larger than the socket buffer"),
        }
    }
}

/// The interface's addressing as it is now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub mac: [u8; 6],
    pub address: Option<Ipv4Cidr>,
    pub gateway: Option<Ipv4Address>,
    pub dns: Vec<Ipv4Address>,
}

enum Socket {
    Listener {
        owner: Owner,
        port: u16,
        /// Listening smoltcp sockets; one that has left Listen is a
        /// connection waiting for `accept`.
        backlog: Vec<SocketHandle>,
    },
    Stream {
        owner: Owner,
        handle: SocketHandle,
        /// Whether it ever reached Established (so a close is an end of
        /// stream, not a refusal).
        connected: bool,
    },
    Udp {
        owner: Owner,
        handle: SocketHandle,
    },
}

impl Socket {
    fn owner(&self) -> Owner {
        match self {
            Socket::Listener { owner, .. }
            | Socket::Stream { owner, .. }
            | Socket::Udp { owner, .. } => *owner,
        }
    }

    /// How many smoltcp sockets it holds.
    fn weight(&self) -> usize {
        match self {
            Socket::Listener { backlog, .. } => backlog.len(),
            _ => 1,
        }
    }
}

/// Sockets open at once, over all owners.
const MAX_SOCKETS: u16 = 1024;
/// Where ports for outgoing connections start (RFC 6335's dynamic range).
const FIRST_EPHEMERAL_PORT: u16 = 49152;

pub struct Stack<D: Device> {
    device: D,
    iface: Interface,
    sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    table: CapTable<Socket>,
    limits: Limits,
    info: Info,
    next_port: u16,
    /// Streams closed by their owner, still sending what was queued and
    /// their FIN, with when they are given up on; removed once closed or
    /// due (`reap`).
    closing: Vec<(SocketHandle, Instant)>,
    /// The time of the last poll.
    now: Instant,
    /// DHCP changed the addressing since `addressing_changed` was asked.
    addressing_changed: bool,
}

/// How long a closed stream may take to finish (FIN acknowledged, the
/// peer's FIN received) before it is reset, as FIN_WAIT_2 timers do.
pub const LINGER: Duration = Duration::from_secs(10);

/// Closed streams kept finishing at most: past this the oldest is reset.
const MAX_CLOSING: usize = 256;

impl<D: Device> Stack<D> {
    /// The stack over `device` (MAC `mac`); `seed` randomises TCP initial
    /// sequence numbers and ports, so it must differ per boot.
    pub fn new(
        mut device: D,
        mac: [u8; 6],
        addressing: Addressing,
        limits: Limits,
        seed: u64,
        now: Instant,
    ) -> Stack<D> {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let iface = Interface::new(config, &mut device, now);
        let mut stack = Stack {
            device,
            iface,
            sockets: SocketSet::new(vec![]),
            dhcp: None,
            table: CapTable::new(MAX_SOCKETS),
            limits,
            info: Info {
                mac,
                ..Info::default()
            },
            next_port: FIRST_EPHEMERAL_PORT + (seed % 16384) as u16,
            closing: Vec::new(),
            now,
            addressing_changed: false,
        };
        match addressing {
            Addressing::Dhcp => {
                stack.dhcp = Some(stack.sockets.add(dhcpv4::Socket::new()));
            }
            Addressing::Static {
                address,
                gateway,
                dns,
            } => stack.configure(Some(address), gateway, dns),
        }
        stack
    }

    fn configure(
        &mut self,
        address: Option<Ipv4Cidr>,
        gateway: Option<Ipv4Address>,
        dns: Vec<Ipv4Address>,
    ) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(address) = address {
                addrs
                    .push(IpCidr::Ipv4(address))
                    .expect("room for one address");
            }
        });
        match gateway {
            Some(gateway) => {
                self.iface
                    .routes_mut()
                    .add_default_ipv4_route(gateway)
                    .expect("room for the default route");
            }
            None => {
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
        self.info.address = address;
        self.info.gateway = gateway;
        self.info.dns = dns;
    }

    /// Moves packets and timers along; returns whether anything changed
    /// for a socket (so parked calls are worth retrying). An address DHCP
    /// gives or takes back is applied here.
    pub fn poll(&mut self, now: Instant) -> bool {
        use smoltcp::iface::{PollIngressSingleResult, PollResult};
        self.now = now;
        self.iface.poll_maintenance(now);
        let mut changed = false;
        loop {
            match self
                .iface
                .poll_ingress_single(now, &mut self.device, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    changed = true;
                    self.keep_listening();
                }
            }
        }
        while self
            .iface
            .poll_egress(now, &mut self.device, &mut self.sockets)
            == PollResult::SocketStateChanged
        {
            changed = true;
        }
        self.reap();
        if let Some(handle) = self.dhcp {
            let event = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
                Some(dhcpv4::Event::Configured(config)) => Some((
                    Some(config.address),
                    config.router,
                    config.dns_servers.iter().copied().collect(),
                )),
                Some(dhcpv4::Event::Deconfigured) => Some((None, None, Vec::new())),
                None => None,
            };
            if let Some((address, gateway, dns)) = event {
                let before = self.info.clone();
                self.configure(address, gateway, dns);
                self.addressing_changed |= self.info != before;
                return true;
            }
        }
        changed
    }

    /// Gives every listener its [`LISTENING`] sockets in Listen state back,
    /// as far as its backlog and its owner's limit allow.
    fn keep_listening(&mut self) {
        let listeners: Vec<(SocketId, Owner, u16, usize, usize)> = self
            .table
            .iter()
            .filter_map(|(id, socket)| match socket {
                Socket::Listener {
                    owner,
                    port,
                    backlog,
                } => {
                    let listening = backlog
                        .iter()
                        .filter(|&&h| {
                            self.sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen
                        })
                        .count();
                    Some((id, *owner, *port, listening, backlog.len()))
                }
                _ => None,
            })
            .collect();
        for (id, owner, port, listening, held) in listeners {
            let room = self
                .limits
                .sockets_per_owner
                .saturating_sub(self.held_by(owner))
                .min(self.limits.backlog.saturating_sub(held));
            for _ in 0..LISTENING.saturating_sub(listening).min(room) {
                let handle = self.listening_tcp(port);
                if let Ok(Socket::Listener { backlog, .. }) = self.table.get_mut(id) {
                    backlog.push(handle);
                }
            }
        }
    }

    /// Removes closed streams that have finished (or waited long enough).
    fn reap(&mut self) {
        let (sockets, now) = (&mut self.sockets, self.now);
        let excess = self.closing.len().saturating_sub(MAX_CLOSING);
        let mut index = 0;
        self.closing.retain(|&(handle, due)| {
            index += 1;
            let state = sockets.get::<tcp::Socket>(handle).state();
            let done = matches!(state, tcp::State::Closed | tcp::State::TimeWait);
            if !done && now < due && index > excess {
                return true;
            }
            if !done {
                // A peer still there learns by a reset.
                sockets.get_mut::<tcp::Socket>(handle).abort();
            }
            sockets.remove(handle);
            false
        });
    }

    /// How long until `poll` has timer work, or `None` when only a packet
    /// can make it have any.
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.iface.poll_delay(now, &self.sockets)
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Whether DHCP changed the addressing since the last time this was
    /// asked (for the driver's log).
    pub fn addressing_changed(&mut self) -> bool {
        core::mem::take(&mut self.addressing_changed)
    }

    fn held_by(&self, owner: Owner) -> usize {
        self.table
            .iter()
            .filter(|(_, s)| s.owner() == owner)
            .map(|(_, s)| s.weight())
            .sum()
    }

    fn room_for(&self, owner: Owner, count: usize) -> Result<(), Error> {
        if self.held_by(owner) + count > self.limits.sockets_per_owner || self.table.room() == 0 {
            Err(Error::TooManySockets)
        } else {
            Ok(())
        }
    }

    fn new_tcp(&mut self) -> SocketHandle {
        let bytes = self.limits.tcp_buffer_bytes;
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; bytes]),
            tcp::SocketBuffer::new(vec![0; bytes]),
        );
        // What a guest writes goes out as it writes it (TCP_NODELAY):
        // Nagle's wait for an ACK meets the peer's delayed ACK and stalls
        // request/response and echo traffic by tens of milliseconds.
        socket.set_nagle_enabled(false);
        socket.set_ack_delay(None);
        self.sockets.add(socket)
    }

    fn listening_tcp(&mut self, port: u16) -> SocketHandle {
        let handle = self.new_tcp();
        self.sockets
            .get_mut::<tcp::Socket>(handle)
            .listen(port)
            .expect("a fresh socket listens on a non-zero port");
        handle
    }

    /// A listener on `port` (the caller checked the owner may use it).
    pub fn listen(&mut self, owner: Owner, port: u16) -> Result<SocketId, Error> {
        if port == 0 {
            return Err(Error::InvalidEndpoint);
        }
        let taken = self
            .table
            .iter()
            .any(|(_, s)| matches!(s, Socket::Listener { port: p, .. } if *p == port));
        if taken {
            return Err(Error::PortInUse(port));
        }
        self.room_for(owner, LISTENING)?;
        let backlog = (0..LISTENING).map(|_| self.listening_tcp(port)).collect();
        Ok(self
            .table
            .insert(Socket::Listener {
                owner,
                port,
                backlog,
            })
            .expect("room checked"))
    }

    /// A connection that arrived on `listener`, as a stream of its owner's;
    /// a fresh listening socket takes its place in the backlog.
    pub fn accept(&mut self, listener: SocketId) -> Result<SocketId, Error> {
        let Socket::Listener { owner, backlog, .. } =
            self.table.get(listener).map_err(Error::Stale)?
        else {
            return Err(Error::WrongKind);
        };
        let owner = *owner;
        let ready = backlog.iter().position(|&handle| {
            let socket = self.sockets.get::<tcp::Socket>(handle);
            socket.may_send() || socket.may_recv() && socket.state() != tcp::State::Listen
        });
        let Some(index) = ready else {
            // Connections reset before they were accepted go back to listening.
            self.relisten(listener);
            return Err(Error::WouldBlock);
        };
        let Ok(Socket::Listener { backlog, .. }) = self.table.get_mut(listener) else {
            unreachable!("checked above");
        };
        let handle = backlog.swap_remove(index);
        let stream = self.table.insert(Socket::Stream {
            owner,
            handle,
            connected: true,
        });
        self.keep_listening();
        stream.map_err(|_| Error::TooManySockets)
    }

    fn relisten(&mut self, listener: SocketId) {
        if let Ok(Socket::Listener { port, backlog, .. }) = self.table.get(listener) {
            for &handle in backlog {
                let socket = self.sockets.get_mut::<tcp::Socket>(handle);
                if socket.state() == tcp::State::Closed {
                    let _ = socket.listen(*port);
                }
            }
        }
    }

    /// A connection to `address:port`, completing in the background: reads
    /// and writes wait until it is established.
    pub fn connect(
        &mut self,
        owner: Owner,
        address: Ipv4Address,
        port: u16,
    ) -> Result<SocketId, Error> {
        if port == 0 || address.is_unspecified() || address.is_broadcast() {
            return Err(Error::InvalidEndpoint);
        }
        if self.info.address.is_none() {
            return Err(Error::NoAddress);
        }
        self.room_for(owner, 1)?;
        let handle = self.new_tcp();
        let local = self.ephemeral_port();
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        if socket
            .connect(
                self.iface.context(),
                (IpAddress::Ipv4(address), port),
                local,
            )
            .is_err()
        {
            self.sockets.remove(handle);
            return Err(Error::InvalidEndpoint);
        }
        Ok(self
            .table
            .insert(Socket::Stream {
                owner,
                handle,
                connected: false,
            })
            .expect("room checked"))
    }

    fn ephemeral_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == u16::MAX {
            FIRST_EPHEMERAL_PORT
        } else {
            port + 1
        };
        port
    }

    fn stream(&mut self, id: SocketId) -> Result<(&mut tcp::Socket<'static>, &mut bool), Error> {
        match self.table.get_mut(id).map_err(Error::Stale)? {
            Socket::Stream {
                handle, connected, ..
            } => Ok((self.sockets.get_mut::<tcp::Socket>(*handle), connected)),
            _ => Err(Error::WrongKind),
        }
    }

    /// Bytes received on a stream, at most `into.len()`; 0 at the end of
    /// the stream (the peer closed).
    pub fn recv(&mut self, id: SocketId, into: &mut [u8]) -> Result<usize, Error> {
        let (socket, connected) = self.stream(id)?;
        *connected |= socket.may_send() || socket.may_recv();
        if socket.can_recv() {
            return socket.recv_slice(into).map_err(|_| Error::Closed);
        }
        match socket.state() {
            tcp::State::SynSent | tcp::State::SynReceived => Err(Error::WouldBlock),
            tcp::State::Closed if !*connected => Err(Error::ConnectionReset),
            _ if socket.may_recv() => Err(Error::WouldBlock),
            _ => Ok(0),
        }
    }

    /// Queues bytes on a stream; how many fit (at least one, or
    /// `WouldBlock` when its buffer is full).
    pub fn send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, Error> {
        let (socket, connected) = self.stream(id)?;
        *connected |= socket.may_send() || socket.may_recv();
        match socket.state() {
            tcp::State::SynSent | tcp::State::SynReceived => return Err(Error::WouldBlock),
            tcp::State::Closed if !*connected => return Err(Error::ConnectionReset),
            _ => {}
        }
        if !socket.may_send() {
            return Err(Error::Closed);
        }
        match socket.send_slice(data) {
            Ok(0) if !data.is_empty() => Err(Error::WouldBlock),
            Ok(sent) => Ok(sent),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Ends the stream's sending side (the peer reads end of stream once
    /// what is queued has gone).
    pub fn shutdown(&mut self, id: SocketId) -> Result<(), Error> {
        self.stream(id)?.0.close();
        Ok(())
    }

    /// A UDP socket bound to `port` (0: an ephemeral one).
    pub fn udp_bind(&mut self, owner: Owner, port: u16) -> Result<SocketId, Error> {
        self.room_for(owner, 1)?;
        let port = if port == 0 {
            self.ephemeral_port()
        } else {
            port
        };
        let sockets = &self.sockets;
        let bound = self.table.iter().any(|(_, s)| match s {
            Socket::Udp { handle, .. } => {
                sockets.get::<udp::Socket>(*handle).endpoint().port == port
            }
            _ => false,
        });
        if bound {
            return Err(Error::PortInUse(port));
        }
        let bytes = self.limits.udp_buffer_bytes;
        let buffer =
            || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; bytes]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket
            .bind(IpListenEndpoint::from(port))
            .map_err(|_| Error::InvalidEndpoint)?;
        let handle = self.sockets.add(socket);
        Ok(self
            .table
            .insert(Socket::Udp { owner, handle })
            .expect("room checked"))
    }

    fn udp(&mut self, id: SocketId) -> Result<&mut udp::Socket<'static>, Error> {
        match self.table.get(id).map_err(Error::Stale)? {
            Socket::Udp { handle, .. } => Ok(self.sockets.get_mut::<udp::Socket>(*handle)),
            _ => Err(Error::WrongKind),
        }
    }

    /// Sends one datagram to `address:port`.
    pub fn send_to(
        &mut self,
        id: SocketId,
        address: Ipv4Address,
        port: u16,
        data: &[u8],
    ) -> Result<(), Error> {
        if port == 0 || address.is_unspecified() {
            return Err(Error::InvalidEndpoint);
        }
        let capacity = self.limits.udp_buffer_bytes;
        let socket = self.udp(id)?;
        if data.len() > capacity {
            return Err(Error::TooLarge);
        }
        match socket.send_slice(data, IpEndpoint::new(IpAddress::Ipv4(address), port)) {
            Ok(()) => Ok(()),
            Err(udp::SendError::BufferFull) => Err(Error::WouldBlock),
            Err(udp::SendError::Unaddressable) => Err(Error::InvalidEndpoint),
        }
    }

    /// The next datagram: its length (cut to `into`), sender and port.
    pub fn recv_from(
        &mut self,
        id: SocketId,
        into: &mut [u8],
    ) -> Result<(usize, Ipv4Address, u16), Error> {
        let socket = self.udp(id)?;
        match socket.recv_slice(into) {
            Ok((len, meta)) => {
                let IpAddress::Ipv4(address) = meta.endpoint.addr;
                Ok((len, address, meta.endpoint.port))
            }
            Err(udp::RecvError::Exhausted) => Err(Error::WouldBlock),
            Err(udp::RecvError::Truncated) => Err(Error::TooLarge),
        }
    }

    /// Closes a socket: a stream gracefully (queued bytes still go), a
    /// listener with its backlog. Its id is stale from now on.
    pub fn close(&mut self, id: SocketId) -> Result<(), Error> {
        let socket = self.table.remove(id).map_err(Error::Stale)?;
        self.drop_socket(socket);
        Ok(())
    }

    fn drop_socket(&mut self, socket: Socket) {
        match socket {
            Socket::Listener { backlog, .. } => {
                for handle in backlog {
                    self.sockets.get_mut::<tcp::Socket>(handle).abort();
                    self.sockets.remove(handle);
                }
            }
            Socket::Stream { handle, .. } => {
                // smoltcp sends the FIN (or RST) on the next poll only while
                // the socket is in the set: closed ones are reaped in
                // `reap`, after that.
                self.sockets.get_mut::<tcp::Socket>(handle).close();
                self.closing.push((handle, self.now + LINGER));
            }
            Socket::Udp { handle, .. } => {
                self.sockets.remove(handle);
            }
        }
    }

    /// Closes every socket `owner` holds (it has gone).
    pub fn close_owned_by(&mut self, owner: Owner) {
        let ids: Vec<SocketId> = self
            .table
            .iter()
            .filter(|(_, s)| s.owner() == owner)
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            let _ = self.close(id);
        }
    }

    /// Whether a socket has something to read (bytes, the end, a
    /// connection to accept, a datagram, an error) and room to write (or
    /// an error to report), for `Network.poll`.
    pub fn readiness(&mut self, id: SocketId) -> Result<(bool, bool), Error> {
        Ok(match self.table.get(id).map_err(Error::Stale)? {
            Socket::Listener { backlog, .. } => {
                let pending = backlog.iter().any(|&handle| {
                    let socket = self.sockets.get::<tcp::Socket>(handle);
                    socket.may_send() || socket.may_recv() && socket.state() != tcp::State::Listen
                });
                (pending, false)
            }
            Socket::Stream {
                handle, connected, ..
            } => {
                let socket = self.sockets.get::<tcp::Socket>(*handle);
                match socket.state() {
                    tcp::State::SynSent | tcp::State::SynReceived => (false, false),
                    tcp::State::Closed if !*connected => (true, true),
                    _ => (
                        socket.can_recv() || !socket.may_recv(),
                        socket.can_send() || !socket.may_send(),
                    ),
                }
            }
            Socket::Udp { handle, .. } => {
                let socket = self.sockets.get::<udp::Socket>(*handle);
                (socket.can_recv(), socket.can_send())
            }
        })
    }

    /// A stream's local and remote address and port (unspecified, 0 before
    /// it is connected).
    pub fn endpoints(&mut self, id: SocketId) -> Result<[(Ipv4Address, u16); 2], Error> {
        let (socket, _) = self.stream(id)?;
        let side = |endpoint: Option<IpEndpoint>| match endpoint {
            Some(IpEndpoint {
                addr: IpAddress::Ipv4(address),
                port,
            }) => (address, port),
            None => (Ipv4Address::UNSPECIFIED, 0),
        };
        Ok([
            side(socket.local_endpoint()),
            side(socket.remote_endpoint()),
        ])
    }

    /// The port a listener listens on.
    pub fn listener_port(&self, id: SocketId) -> Result<u16, Error> {
        match self.table.get(id).map_err(Error::Stale)? {
            Socket::Listener { port, .. } => Ok(*port),
            _ => Err(Error::WrongKind),
        }
    }

    /// The device, for its driver (acknowledging interrupts).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Sockets open, over all owners (smoltcp's, including closing ones).
    pub fn socket_count(&self) -> usize {
        self.sockets.iter().count()
    }
}
