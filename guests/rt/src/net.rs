//! The network, for a guest the appliance grants it: listeners, streams and
//! datagram sockets over the Network capability. Each socket is a
//! capability; dropping the value releases it, which closes the socket.

use alloc::vec::Vec;

use caps::interfaces::{network, tcp_listener, tcp_stream, udp_socket};
use caps::start::initial_capability;
use caps::{CapId, Interface, Method, TransportError};

use crate::ring::{CallError, call, call_expecting, call_with_caps};

fn network() -> CapId {
    initial_capability(Interface::Network)
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
pub fn close(cap: CapId) {
    let _ = crate::clients::release(cap);
}

// Operations on socket capabilities by id, for runtimes that keep their own
// table of them (the WASI layer); the types below own theirs.

/// A connection waiting on `listener`, without waiting.
pub fn accept_now(listener: CapId) -> Result<Option<CapId>, CallError> {
    minting::<tcp_listener::Accept>(listener, &tcp_listener::AcceptParams { wait: false })
}

/// What a read found.
pub enum Read {
    Data(Vec<u8>),
    /// Nothing yet (only without waiting).
    Nothing,
    End,
}

/// Reads at most `max` bytes from `stream`, waiting for some if `wait`.
pub fn read(stream: CapId, max: u32, wait: bool) -> Result<Read, CallError> {
    let params = tcp_stream::ReadParams { max, wait };
    // Room for the bytes and the message around them.
    let results = call_expecting::<tcp_stream::Read>(stream, &params, max as usize + 64)?;
    Ok(if results.end {
        Read::End
    } else if results.data.is_empty() {
        Read::Nothing
    } else {
        Read::Data(results.data)
    })
}

/// Most bytes one write call carries (a message's limit, less framing).
pub const MAX_WRITE_BYTES: usize = 60 * 1024;

/// Queues what fits of `data` (at most [`MAX_WRITE_BYTES`]) on `stream`,
/// waiting for room if `wait`; how much.
pub fn write(stream: CapId, data: &[u8], wait: bool) -> Result<u32, CallError> {
    let params = tcp_stream::WriteParams {
        data: data[..data.len().min(MAX_WRITE_BYTES)].to_vec(),
        wait,
    };
    call::<tcp_stream::Write>(stream, &params).map(|r| r.written)
}

pub fn shutdown(stream: CapId) -> Result<(), CallError> {
    call::<tcp_stream::Shutdown>(stream, &tcp_stream::ShutdownParams).map(|_| ())
}

/// Waits until one of `sockets` (`(socket, read, write)`) is ready as asked,
/// or `timeout_nanos` (`u64::MAX`: no limit); what each is ready for.
pub fn poll(
    sockets: &[(CapId, bool, bool)],
    timeout_nanos: u64,
) -> Result<Vec<network::Readiness>, CallError> {
    let params = network::PollParams {
        interests: sockets
            .iter()
            .map(|&(socket, read, write)| network::Interest {
                socket: socket.raw(),
                read,
                write,
            })
            .collect(),
        timeout_nanos,
    };
    call::<network::Poll>(network(), &params).map(|r| r.ready)
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

    pub fn cap(&self) -> CapId {
        self.0
    }

    /// The capability, no longer closed when this value goes.
    pub fn into_cap(self) -> CapId {
        let cap = self.0;
        core::mem::forget(self);
        cap
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        close(self.0);
    }
}

pub struct TcpStream(CapId);

/// An IPv4 address (a.b.c.d as `u32::from_be_bytes([a, b, c, d])`) and a
/// port.
pub type Endpoint = (u32, u16);

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

    /// [local, remote], each (address, port).
    pub fn endpoints(&self) -> Result<[Endpoint; 2], CallError> {
        let r = call::<tcp_stream::Endpoints>(self.0, &tcp_stream::EndpointsParams)?;
        Ok([
            (r.local_address, r.local_port),
            (r.remote_address, r.remote_port),
        ])
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
    /// Its capability id.
    pub fn cap(&self) -> CapId {
        self.0
    }

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
