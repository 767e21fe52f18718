//! The capability-ring call boundary, shared by the nucleus and by guests:
//! the ring's memory layout and its four ends, SQEs and CQEs, the checks an
//! SQE must pass, CapIds and the per-guest capability table, transport
//! error codes, and the Cap'n Proto interfaces with their messages.
//!
//! Pure and `no_std` (with `alloc`), and free of `unsafe`: the ring is made
//! of atomics, so both sides use it with safe code while the other writes
//! it. Turning a guest's ring pages into a `&RingHeader` is the nucleus's one
//! `unsafe` step, not this crate's. docs/abi.md is the ABI byte by byte.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod cap;
pub mod entry;
pub mod error;
pub mod file_error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod interfaces;
pub mod manifest;
pub mod message;
pub mod rights;
pub mod ring;
pub mod start;
pub mod validate;

pub use cap::{CapId, CapTable, Destination, transfer};
pub use entry::{
    Buffer, CAP_ID_BYTES, CQE_CAPS_SHIFT, CQE_EXCEPTION, Cqe, MAX_TRANSFER_CAPS, Opcode, Outcome,
    SQE_EXCEPTION, SQE_MOVE_CAPS, Sqe,
};
pub use error::TransportError;
pub use file_error::FileError;
pub use interfaces::{Interface, Method, MethodId};
pub use message::{Exception, ExceptionCode, Message};
pub use rights::Rights;
pub use ring::{
    CompletionProducer, CompletionQueue, CqReservation, CqeSlot, OwnedRing, QueueFull, RingError,
    RingHeader, RingLayout, SqeSlot, SubmissionConsumer, SubmissionQueue,
};
pub use validate::{
    Access, CallerMemory, CapsSent, MAX_MESSAGE_BYTES, Region, RegionError, RegionSet, Request,
    validate,
};

/// Rust generated from `schema/*.capnp` by `capnpc` at build time. The
/// interfaces' RPC client and server types build under `no_std` too, but
/// nothing here uses them: the ring replaces Cap'n Proto RPC, and only the
/// params and results structs (and the interface ids) matter.
#[allow(clippy::all, clippy::pedantic, unused, unreachable_pub, missing_docs)]
pub mod schema {
    pub mod exception_capnp {
        include!(concat!(env!("OUT_DIR"), "/exception_capnp.rs"));
    }
    pub mod console_capnp {
        include!(concat!(env!("OUT_DIR"), "/console_capnp.rs"));
    }
    pub mod timer_capnp {
        include!(concat!(env!("OUT_DIR"), "/timer_capnp.rs"));
    }
    pub mod entropy_capnp {
        include!(concat!(env!("OUT_DIR"), "/entropy_capnp.rs"));
    }
    pub mod boot_info_capnp {
        include!(concat!(env!("OUT_DIR"), "/boot_info_capnp.rs"));
    }
    pub mod guest_control_capnp {
        include!(concat!(env!("OUT_DIR"), "/guest_control_capnp.rs"));
    }
    pub mod manifest_capnp {
        include!(concat!(env!("OUT_DIR"), "/manifest_capnp.rs"));
    }
    pub mod echo_capnp {
        include!(concat!(env!("OUT_DIR"), "/echo_capnp.rs"));
    }
    pub mod endpoint_capnp {
        include!(concat!(env!("OUT_DIR"), "/endpoint_capnp.rs"));
    }
    pub mod sessions_capnp {
        include!(concat!(env!("OUT_DIR"), "/sessions_capnp.rs"));
    }
    pub mod network_capnp {
        include!(concat!(env!("OUT_DIR"), "/network_capnp.rs"));
    }
    pub mod storage_capnp {
        include!(concat!(env!("OUT_DIR"), "/storage_capnp.rs"));
    }
}
