//! The network, for a guest the appliance grants it: listeners, streams and
//! datagram sockets over the Network capability. Each socket is a
//! capability; dropping the value releases it, which closes the socket.

use alloc::vec::Vec;

use caps::interfaces::{network, tcp_listener, tcp_stream, udp_socket};
use caps::start::initial_capability;
use caps::{CapId, Interface, Method, TransportError};

use crate::ring::{CallError, call, call_with_caps};

fn network() -> CapId {
    initial_capability(Interface::Network)
}

/// `a.b.c.d` as the ABI's UInt32.
pub const fn ipv4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// Calls a method whose results carry one new capability (or none).
fn minting<M: Method>(cap: CapId, params: &M::Params) -> Result<Option<CapId>, CallError> {
    let (_, caps) = call_with_caps::<M>(cap, params, &[], false)?;
    match caps.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(CallError::Transport(TransportError::MalformedMessage)),
    }
}

fn minted<M: Method>(cap: CapId, params: &M::Params) -> Result<CapId, CallError> {
    minting::<M>(cap, params)?.ok_or(CallError::Transport(TransportError::MalformedMessage))
}

/// The interface's address, gateway and DNS servers now.
pub fn addressing() -> Result<network::Addressing, CallError> {
    call::<network::Info>(network(), &network::InfoParams).map(|r| r.info)
}

/// Releases a socket's capability, closing the socket.
fn close(cap: CapId) {
    let _ = crate::clients::release(cap);
}

pub struct TcpListener(CapId);

/// Listens on `port`, which the appliance must list in this guest's
/// `listen`.
pub fn listen(port: u16) -> Result<TcpListener, CallError> {
    minted::<network::Listen>(network(), &network::ListenParams { port }).map(TcpListener)
}

impl TcpListener {
    /// Waits for the next connection.
    pub fn accept(&self) -> Result<TcpStream, CallError> {
        minted::<tcp_listener::Accept>(self.0, &tcp_listener::AcceptParams { wait: true })
            .map(TcpStream)
    }

    /// The next connection if one is waiting.
    pub fn try_accept(&self) -> Result<Option<TcpStream>, CallError> {
        minting::<tcp_listener::Accept>(self.0, &tcp_listener::AcceptParams { wait: false })
            .map(|cap| cap.map(TcpStream))
    }

    pub fn cap(&self) -> CapId {
        self.0
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        close(self.0);
    }
}

pub struct TcpStream(CapId);

/// Connects to `address:port` (reads and writes wait until it is up).
pub fn connect(address: u32, port: u16) -> Result<TcpStream, CallError> {
    minted::<network::Connect>(network(), &network::ConnectParams { address, port }).map(TcpStream)
}

impl TcpStream {
    /// Waits for bytes (at most `max`); `None` at the end of the stream.
    pub fn read(&self, max: u32) -> Result<Option<Vec<u8>>, CallError> {
        let results =
            call::<tcp_stream::Read>(self.0, &tcp_stream::ReadParams { max, wait: true })?;
        Ok((!results.end).then_some(results.data))
    }

    /// Writes all of `data`, waiting for room as needed.
    pub fn write_all(&self, mut data: &[u8]) -> Result<(), CallError> {
        while !data.is_empty() {
            let params = tcp_stream::WriteParams {
                data: data.to_vec(),
                wait: true,
            };
            let written = call::<tcp_stream::Write>(self.0, &params)?.written as usize;
            data = &data[written.min(data.len())..];
        }
        Ok(())
    }

    /// No more writes: the peer reads the end of the stream.
    pub fn shutdown(&self) -> Result<(), CallError> {
        call::<tcp_stream::Shutdown>(self.0, &tcp_stream::ShutdownParams).map(|_| ())
    }

    /// ((local address, port), (remote address, port)).
    pub fn endpoints(&self) -> Result<((u32, u16), (u32, u16)), CallError> {
        let r = call::<tcp_stream::Endpoints>(self.0, &tcp_stream::EndpointsParams)?;
        Ok((
            (r.local_address, r.local_port),
            (r.remote_address, r.remote_port),
        ))
    }

    pub fn cap(&self) -> CapId {
        self.0
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        close(self.0);
    }
}

pub struct UdpSocket(CapId);

/// A datagram socket on `port` (0: an ephemeral one).
pub fn bind_udp(port: u16) -> Result<UdpSocket, CallError> {
    minted::<network::BindUdp>(network(), &network::BindUdpParams { port }).map(UdpSocket)
}

impl UdpSocket {
    pub fn send_to(&self, address: u32, port: u16, data: &[u8]) -> Result<(), CallError> {
        let params = udp_socket::SendToParams {
            address,
            port,
            data: data.to_vec(),
        };
        call::<udp_socket::SendTo>(self.0, &params).map(|_| ())
    }

    /// Waits for a datagram: (bytes, sender address, sender port).
    pub fn recv_from(&self, max: u32) -> Result<(Vec<u8>, u32, u16), CallError> {
        let r =
            call::<udp_socket::RecvFrom>(self.0, &udp_socket::RecvFromParams { max, wait: true })?;
        Ok((r.data, r.address, r.port))
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        close(self.0);
    }
}
