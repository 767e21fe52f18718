//! What the WASI layer needs from the system it runs on.
//!
//! Everything a program can observe outside its own memory and the
//! read-only tree goes through [`System`]: the console, the clocks, sleeping
//! and entropy. The host implements it with std (`StdSystem`); inside the OS
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
}
