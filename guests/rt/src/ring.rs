//! The guest's end of its ring, and calls through it.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

use caps::{
    Buffer, CAP_ID_BYTES, CapId, CompletionQueue, Cqe, CqeSlot, Exception, MAX_MESSAGE_BYTES,
    Message, Method, Outcome, RingHeader, Sqe, SqeSlot, SubmissionQueue, TransportError,
};
use spin::Mutex;

use crate::syscall;

/// The results buffer a call starts with; one that needs more is made again
/// with the largest (a message's limit).
const FIRST_RESULTS_BYTES: usize = 256;

pub struct Ring {
    pub submissions: SubmissionQueue<'static>,
    pub completions: CompletionQueue<'static>,
    next_user_data: u64,
    /// The results buffer typed calls lend the nucleus, kept between calls
    /// (it grows to the largest size a call needed).
    results: Vec<u8>,
    /// The buffer params and replies are encoded into, kept the same way.
    params: Vec<u8>,
    /// Completions of SQEs submitted with [`Ring::submit`] that arrived
    /// while a call waited for its own.
    early: VecDeque<Cqe>,
}

static RING: Mutex<Option<Ring>> = Mutex::new(None);

/// Attaches to the ring the nucleus mapped at `address`.
pub(crate) fn attach(address: u64) {
    // SAFETY: the nucleus mapped the ring read-write at `address` for this
    // guest and initialised its header; these views hold only atomics, and
    // the ring stays mapped for the guest's whole life.
    let header = unsafe { &*(address as *const RingHeader) };
    let layout = header.layout().expect("the nucleus initialised the ring");
    // SAFETY: as above; the layout gives where each array lies and its length.
    let (sq, cq) = unsafe {
        (
            core::slice::from_raw_parts(
                (address + layout.sq_offset() as u64) as *const SqeSlot,
                layout.sq_entries() as usize,
            ),
            core::slice::from_raw_parts(
                (address + layout.cq_offset() as u64) as *const CqeSlot,
                layout.cq_entries() as usize,
            ),
        )
    };
    let ring = Ring {
        submissions: SubmissionQueue::new(layout, header, sq).expect("layout matches"),
        completions: CompletionQueue::new(layout, header, cq).expect("layout matches"),
        next_user_data: 1,
        results: Vec::new(),
        params: Vec::new(),
        early: VecDeque::new(),
    };
    *RING.lock() = Some(ring);
}

/// Direct access to the ring, for guests that build SQEs themselves.
pub fn with_ring<R>(f: impl FnOnce(&mut Ring) -> R) -> R {
    f(RING.lock().as_mut().expect("ring attached at start"))
}

/// Why a call did not return results.
#[derive(Debug)]
pub enum CallError {
    /// The nucleus refused or could not deliver it.
    Transport(TransportError),
    /// The service raised an exception.
    Exception(Exception),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Transport(error) => write!(f, "transport error: {error}"),
            CallError::Exception(e) => write!(f, "exception {:?}: {}", e.code, e.message),
        }
    }
}

impl Ring {
    /// Puts `sqe` in the submission queue with a `user_data` of the ring's
    /// choosing (returned), without waiting for it: its completion comes
    /// from [`Ring::next_completion`]. The nucleus sees it at the next
    /// `cap_enter`.
    #[inline(always)]
    pub fn submit(&mut self, mut sqe: Sqe) -> u64 {
        let user_data = self.next_user_data;
        self.next_user_data += 1;
        sqe.user_data = user_data;
        while self.submissions.push(&sqe).is_err() {
            syscall::cap_enter(0, 0);
        }
        user_data
    }

    /// The next completion of an SQE from [`Ring::submit`], waiting up to
    /// `timeout_ns` for one (`u64::MAX`: for ever); `None` when none came.
    pub fn next_completion(&mut self, timeout_ns: u64) -> Option<Cqe> {
        if let Some(cqe) = self.early.pop_front() {
            return Some(cqe);
        }
        if let Some(cqe) = self.completions.pop() {
            return Some(cqe);
        }
        syscall::cap_enter(1, timeout_ns);
        self.completions.pop()
    }

    /// Keeps a completion that came while a call waited for its own (off
    /// the calls' path: only guests that also [`Ring::submit`] get these).
    #[cold]
    #[inline(never)]
    fn keep_early(&mut self, cqe: Cqe) {
        self.early.push_back(cqe);
    }

    /// Submits one SQE and waits for its completion (completions of other
    /// SQEs, from [`Ring::submit`], are kept for `next_completion`).
    #[inline(always)]
    pub fn submit_and_wait(&mut self, sqe: Sqe) -> Cqe {
        let user_data = self.submit(sqe);
        loop {
            while let Some(cqe) = self.completions.pop() {
                if cqe.user_data == user_data {
                    return cqe;
                }
                self.keep_early(cqe);
            }
            let entered = syscall::cap_enter(1, u64::MAX);
            if entered < 0 {
                return Cqe::failed(
                    user_data,
                    TransportError::from_code(entered as i32)
                        .unwrap_or(TransportError::NotSupported),
                );
            }
        }
    }

    /// A typed call: encodes the params, calls `M` on `cap`, decodes the
    /// results (or the exception). A results buffer too small for the reply
    /// is retried once with the largest size.
    pub fn call<M: Method>(
        &mut self,
        cap: CapId,
        params: &M::Params,
    ) -> Result<M::Results, CallError> {
        self.with_encoded(params, &[], |ring, params| {
            ring.call_encoded::<M>(cap, params, 0, false, FIRST_RESULTS_BYTES)
        })?
        .map(|(results, _)| results)
    }

    /// As [`Ring::call`], sending the capabilities `send` (copied, or moved
    /// out of this guest's table when `moved`) and returning the ones the
    /// results carry.
    pub fn call_with_caps<M: Method>(
        &mut self,
        cap: CapId,
        params: &M::Params,
        send: &[CapId],
        moved: bool,
    ) -> Result<(M::Results, Vec<CapId>), CallError> {
        self.with_encoded(params, send, |ring, params| {
            ring.call_encoded::<M>(cap, params, send.len() as u16, moved, FIRST_RESULTS_BYTES)
        })?
    }

    /// As [`Ring::call`] with a results buffer of at least `bytes` from
    /// the start (for results whose size the caller asks for, as reads).
    pub fn call_expecting<M: Method>(
        &mut self,
        cap: CapId,
        params: &M::Params,
        bytes: usize,
    ) -> Result<M::Results, CallError> {
        let capacity = bytes.clamp(FIRST_RESULTS_BYTES, MAX_MESSAGE_BYTES as usize);
        self.with_encoded(params, &[], |ring, params| {
            ring.call_encoded::<M>(cap, params, 0, false, capacity)
                .map(|(results, _)| results)
        })?
    }

    /// Encodes `message` and then the ids `caps` into the ring's params
    /// buffer and runs `with` with the ring and the buffer holding the bytes
    /// (none for a struct without fields and no capabilities).
    pub fn with_encoded<M: Message, R>(
        &mut self,
        message: &M,
        caps: &[CapId],
        with: impl FnOnce(&mut Ring, Buffer) -> R,
    ) -> Result<R, CallError> {
        if M::NO_FIELDS && caps.is_empty() {
            return Ok(with(self, Buffer::NONE));
        }
        // Taken out for the call, so the ring can be borrowed meanwhile.
        let mut bytes = core::mem::take(&mut self.params);
        bytes.clear();
        let encoded = if M::NO_FIELDS {
            Ok(0)
        } else {
            message.encode_in_parts(MAX_MESSAGE_BYTES as usize, |header, segment| {
                bytes.extend_from_slice(header);
                bytes.extend_from_slice(segment);
            })
        };
        for id in caps {
            bytes.extend_from_slice(&id.raw().to_le_bytes());
        }
        let outcome = match encoded {
            Ok(_) => Ok(with(self, buffer(&bytes))),
            Err(error) => Err(CallError::Transport(error)),
        };
        self.params = bytes;
        outcome
    }

    /// Calls `M` on `cap` with params (and `caps` capability ids after
    /// them) already encoded in `params`.
    fn call_encoded<M: Method>(
        &mut self,
        cap: CapId,
        params: Buffer,
        caps: u16,
        moved: bool,
        first_capacity: usize,
    ) -> Result<(M::Results, Vec<CapId>), CallError> {
        const LARGEST: usize = MAX_MESSAGE_BYTES as usize;
        let mut capacity = first_capacity;
        loop {
            if self.results.len() < capacity {
                self.results.resize(capacity, 0);
            }
            // Taken out for the call, so the ring can be borrowed meanwhile.
            let mut results = core::mem::take(&mut self.results);
            let sqe = Sqe::call(
                cap.raw(),
                M::ORDINAL,
                params,
                buffer_mut(&mut results[..capacity]),
                0,
            )
            .carrying_caps(caps, moved);
            let cqe = self.submit_and_wait(sqe);
            let outcome = match cqe.outcome() {
                Outcome::Done { written, caps, .. } => {
                    let payload = &results[..written as usize];
                    // One decode for both shapes, so it stays inlined.
                    let (message, ids) = if caps == 0 {
                        (payload, Vec::new())
                    } else {
                        split_caps(payload, caps)
                    };
                    M::Results::decode(message)
                        .map(|decoded| (decoded, ids))
                        .map_err(CallError::Transport)
                }
                Outcome::Exception { len } => match Exception::decode(&results[..len as usize]) {
                    Ok(exception) => Err(CallError::Exception(exception)),
                    Err(error) => Err(CallError::Transport(error)),
                },
                Outcome::Failed(TransportError::ResultsTooSmall) if capacity < LARGEST => {
                    capacity = LARGEST;
                    self.results = results;
                    continue;
                }
                Outcome::Failed(error) => Err(CallError::Transport(error)),
                Outcome::Unknown { result, .. } => Err(CallError::Transport(
                    TransportError::from_code(result).unwrap_or(TransportError::NotSupported),
                )),
            };
            self.results = results;
            return outcome;
        }
    }
}

/// A payload's message and the capability ids (`caps` of them) ending it.
#[inline]
pub fn split_caps(payload: &[u8], caps: u32) -> (&[u8], Vec<CapId>) {
    let at = payload.len().saturating_sub(caps as usize * CAP_ID_BYTES);
    let ids = payload[at..]
        .chunks_exact(CAP_ID_BYTES)
        .filter_map(|chunk| {
            CapId::from_raw(u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        })
        .collect();
    (&payload[..at], ids)
}

/// The buffer an SQE names for params the nucleus reads (none if empty).
pub fn buffer(bytes: &[u8]) -> Buffer {
    if bytes.is_empty() {
        Buffer::NONE
    } else {
        Buffer::new(bytes.as_ptr() as u64, bytes.len() as u32)
    }
}

/// The buffer an SQE names for results the nucleus writes: derived from a
/// mutable borrow, since the nucleus writes through it during `cap_enter`.
pub fn buffer_mut(bytes: &mut [u8]) -> Buffer {
    if bytes.is_empty() {
        Buffer::NONE
    } else {
        Buffer::new(bytes.as_mut_ptr() as u64, bytes.len() as u32)
    }
}

impl caps::interfaces::Transport for Ring {
    type Error = CallError;

    fn call<M: Method>(&mut self, cap: CapId, params: &M::Params) -> Result<M::Results, CallError> {
        Ring::call::<M>(self, cap, params)
    }
}

/// The guest's ring as a typed client's transport, taken for each call:
/// `timer::Client::new(cap).now(&mut Rt, &NowParams)`.
pub struct Rt;

impl caps::interfaces::Transport for Rt {
    type Error = CallError;

    fn call<M: Method>(&mut self, cap: CapId, params: &M::Params) -> Result<M::Results, CallError> {
        with_ring(|ring| ring.call::<M>(cap, params))
    }
}

/// Calls `M` on `cap` through this guest's ring.
pub fn call<M: Method>(cap: CapId, params: &M::Params) -> Result<M::Results, CallError> {
    with_ring(|ring| ring.call::<M>(cap, params))
}

/// As [`call`], with a results buffer of at least `bytes` from the start.
pub fn call_expecting<M: Method>(
    cap: CapId,
    params: &M::Params,
    bytes: usize,
) -> Result<M::Results, CallError> {
    with_ring(|ring| ring.call_expecting::<M>(cap, params, bytes))
}

/// As [`call`], sending capabilities and returning those the results carry.
pub fn call_with_caps<M: Method>(
    cap: CapId,
    params: &M::Params,
    send: &[CapId],
    moved: bool,
) -> Result<(M::Results, Vec<CapId>), CallError> {
    with_ring(|ring| ring.call_with_caps::<M>(cap, params, send, moved))
}
