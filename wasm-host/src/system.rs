//! What the WASI layer needs from the system it runs on.
//!
//! Everything a program can observe outside its own memory and the
//! read-only tree goes through [`System`]: the console, the clocks, sleeping,
//! entropy and sockets. The host implements it with std (`StdSystem`); inside the OS
//! a guest implements it over its capability ring (Console, Timer, Entropy).
//! The WASI code above it is the same in both.

use crate::errno::Errno;

/// A console output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The clocks a program can read. WASI's process and thread CPU-time clocks
/// are answered from `Monotonic` (time since the instance started), since a
/// single-threaded instance has no better notion of its own CPU time here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Clock {
    /// Nanoseconds since 1970-01-01 UTC.
    Realtime,
    /// Nanoseconds from an arbitrary fixed origin; never goes backwards.
    Monotonic,
}

/// A socket the system holds for the instance (a listener or a stream),
/// named by a number of the system's choosing.
pub type SocketHandle = u32;

/// What a socket is ready for, as [`System::poll`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Bytes, the end of the stream, a connection to accept, or an error.
    pub read: bool,
    /// Room to write, or an error.
    pub write: bool,
}

/// The system capabilities of one instance.
///
/// Methods take `&mut self` because a ring-backed implementation submits a
/// call and waits for its completion. Nothing here may panic on any
/// argument; failures are WASI errors that reach the program.
pub trait System {
    /// Writes all of `bytes` to `stream`. An error reaches the program as
    /// the result of its `fd_write`.
    fn write_console(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Errno>;

    /// Reads console input into `buf`; `Ok(0)` is end of input. Blocks until
    /// some input is there. The default has no input at all.
    fn read_console(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        let _ = buf;
        Ok(0)
    }

    /// The current time on `clock`, in nanoseconds.
    fn now_nanos(&mut self, clock: Clock) -> u64;

    /// The resolution of `clock`, in nanoseconds (at least 1).
    fn resolution_nanos(&mut self, clock: Clock) -> u64 {
        let _ = clock;
        1
    }

    /// Sleeps for at least `nanos` nanoseconds. `poll_oneoff` relies on
    /// "at least": when it returns, the earliest clock subscription counts
    /// as expired.
    fn sleep_nanos(&mut self, nanos: u64);

    /// Fills `out` with cryptographically secure random bytes.
    fn random(&mut self, out: &mut [u8]) -> Result<(), Errno>;

    /// Gives up the CPU for a moment (`sched_yield`). The default does
    /// nothing, which is what a single-threaded instance may do.
    fn yield_now(&mut self) {}

    // Sockets: none of these waits. `Ok(None)` means not now (EAGAIN).
    // The defaults are a system without a network.

    /// A connection waiting on `listener`, as a new stream socket.
    fn accept(&mut self, listener: SocketHandle) -> Result<Option<SocketHandle>, Errno> {
        let _ = listener;
        Err(Errno::NotSock)
    }

    /// Bytes received on `stream` into `buf`; `Some(0)` at the end.
    fn receive(&mut self, stream: SocketHandle, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        let _ = (stream, buf);
        Err(Errno::NotSock)
    }

    /// Queues what fits of `bytes` on `stream`; how much (never 0 for
    /// non-empty `bytes`: that is `None`).
    fn send(&mut self, stream: SocketHandle, bytes: &[u8]) -> Result<Option<usize>, Errno> {
        let _ = (stream, bytes);
        Err(Errno::NotSock)
    }

    /// No more sending on `stream`.
    fn shutdown(&mut self, stream: SocketHandle) -> Result<(), Errno> {
        let _ = stream;
        Err(Errno::NotSock)
    }

    /// The instance closed `socket`.
    fn close(&mut self, socket: SocketHandle) {
        let _ = socket;
    }

    /// Waits until one of `sockets` is ready as asked (`(socket, read,
    /// write)`) or `timeout_nanos` has passed (`None`: no limit; `Some(0)`:
    /// do not wait); then what each is ready for, in order (all not ready
    /// when the time ran out).
    fn poll(
        &mut self,
        sockets: &[(SocketHandle, bool, bool)],
        timeout_nanos: Option<u64>,
    ) -> Result<alloc::vec::Vec<Readiness>, Errno> {
        let _ = (sockets, timeout_nanos);
        Err(Errno::NotSock)
    }
}
