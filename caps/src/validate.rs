//! Turning an SQE a guest wrote into a request the nucleus can act on.
//!
//! [`validate`] works on a copy of the SQE (see
//! [`SubmissionConsumer::pop`](crate::ring::SubmissionConsumer::pop)): a
//! guest thread on another CPU can rewrite the ring slot at any moment, and
//! only a private copy stays the SQE that was checked.
//!
//! Checks run in a fixed order, so every SQE has exactly one answer:
//! 1. the opcode is known (`UnknownOpcode`);
//! 2. flags, reserved fields and every field the opcode does not use are 0,
//!    and a zero-length buffer has address 0 (`ReservedNotZero`);
//! 3. lengths are at most [`MAX_MESSAGE_BYTES`], and at most
//!    [`MAX_TRANSFER_CAPS`] capabilities are sent (`MessageTooLarge`);
//! 4. buffers lie inside the caller's memory, results buffers in writable
//!    memory (`BufferOutsideCaller`);
//! 5. the capability (and RETURN's token) is not null (`InvalidCap`), and
//!    the capability ids sent fit in the params buffer (`MalformedMessage`).
//!
//! What validation cannot know is left to the nucleus, in this order: the
//! CapId in the caller's table (`InvalidCap`, `StaleCap`), the capability's
//! kind (`WrongCapKind`), the method (`UnknownMethod`), the params message
//! (`MalformedMessage`), and whether the results fit (`ResultsTooSmall`).

use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::cap::CapId;
use crate::entry::{
    Buffer, CAP_ID_BYTES, MAX_TRANSFER_CAPS, Opcode, SQE_EXCEPTION, SQE_MOVE_CAPS, Sqe,
};
use crate::error::TransportError;

/// The largest params or results message, in bytes.
pub const MAX_MESSAGE_BYTES: u32 = 65536;

/// What the nucleus will do with a buffer of the caller's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read it (params, a reply).
    Read,
    /// Write into it (results, a RECV buffer).
    Write,
}

/// The memory a caller may name in its buffers.
pub trait CallerMemory {
    /// Whether every byte of `range` is the caller's own (and writable, for
    /// `Access::Write`). Only asked for non-empty ranges that do not wrap
    /// around the address space.
    fn contains(&self, range: Range<u64>, access: Access) -> bool;
}

/// One contiguous region of caller memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
    pub writable: bool,
}

impl CallerMemory for Region {
    fn contains(&self, range: Range<u64>, access: Access) -> bool {
        range.start >= self.base
            && range.end >= range.start
            && range.end - self.base <= self.size
            && (self.writable || access == Access::Read)
    }
}

/// A caller with several regions: a buffer must fit inside one of them.
impl CallerMemory for [Region] {
    fn contains(&self, range: Range<u64>, access: Access) -> bool {
        self.iter()
            .any(|region| region.contains(range.clone(), access))
    }
}

/// A caller's regions kept sorted and disjoint, so finding the one a buffer
/// must lie in is a binary search (the check runs for every buffer of every
/// call), after a look at the region that held the last buffer asked about
/// (a guest's buffers mostly live in one region, its heap).
#[derive(Debug, Default)]
pub struct RegionSet {
    sorted: Vec<Region>,
    /// Index of the region that last held a range. Only a hint: a region
    /// that holds the range is the one region that can (they are
    /// disjoint), whatever the index was when it was stored.
    last_hit: AtomicUsize,
}

impl Clone for RegionSet {
    fn clone(&self) -> RegionSet {
        RegionSet {
            sorted: self.sorted.clone(),
            last_hit: AtomicUsize::new(self.last_hit.load(Ordering::Relaxed)),
        }
    }
}

/// Why [`RegionSet::insert`] refused a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// Size 0, or it would run past the end of the address space.
    Empty,
    /// It overlaps a region already in the set.
    Overlaps,
}

impl RegionSet {
    pub const fn new() -> RegionSet {
        RegionSet {
            sorted: Vec::new(),
            last_hit: AtomicUsize::new(0),
        }
    }

    pub fn insert(&mut self, region: Region) -> Result<(), RegionError> {
        // Last bytes, not ends: a region may end at the top of memory.
        let last = |r: &Region| r.base + (r.size - 1);
        let region_last = region
            .size
            .checked_sub(1)
            .and_then(|extent| region.base.checked_add(extent))
            .ok_or(RegionError::Empty)?;
        let at = self.sorted.partition_point(|r| r.base < region.base);
        let clear_before = at == 0 || last(&self.sorted[at - 1]) < region.base;
        let clear_after = self
            .sorted
            .get(at)
            .is_none_or(|after| region_last < after.base);
        if !(clear_before && clear_after) {
            return Err(RegionError::Overlaps);
        }
        self.sorted.insert(at, region);
        Ok(())
    }

    pub fn clear(&mut self) {
        self.sorted.clear();
    }

    /// The regions, lowest first.
    pub fn regions(&self) -> &[Region] {
        &self.sorted
    }
}

impl CallerMemory for RegionSet {
    fn contains(&self, range: Range<u64>, access: Access) -> bool {
        let hint = self.last_hit.load(Ordering::Relaxed);
        if let Some(region) = self.sorted.get(hint)
            && region.contains(range.clone(), access)
        {
            return true;
        }
        // The last region starting at or below the range's start is the only
        // one that can hold it.
        match self.sorted.partition_point(|r| r.base <= range.start) {
            0 => false,
            at if self.sorted[at - 1].contains(range, access) => {
                self.last_hit.store(at - 1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }
}

/// A validated SQE. Buffers are known to be inside the caller and at most
/// [`MAX_MESSAGE_BYTES`]; `None` means the SQE named no buffer. The SQE's
/// Capability ids a CALL or RETURN sends: `count` u32 ids at `addr`, the
/// end of its params buffer (inside the caller's memory, checked), moved
/// out of the sender's table when `moved`, else copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapsSent {
    pub addr: u64,
    pub count: u8,
    pub moved: bool,
}

impl CapsSent {
    pub const NONE: CapsSent = CapsSent {
        addr: 0,
        count: 0,
        moved: false,
    };

    pub const fn bytes(&self) -> usize {
        self.count as usize * CAP_ID_BYTES
    }
}

/// `user_data` is not repeated here: the nucleus echoes it from the SQE copy
/// whether or not validation succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Nop,
    Call {
        cap: CapId,
        method: u16,
        /// The params message (the buffer without its capability ids); no
        /// params reads as the all-default params struct.
        params: Option<Buffer>,
        results: Option<Buffer>,
        caps: CapsSent,
    },
    Release {
        cap: CapId,
    },
    Recv {
        cap: CapId,
        /// Where the incoming call's params go.
        buffer: Buffer,
    },
    Return {
        cap: CapId,
        token: u64,
        /// The results message (or, with `exception`, an Exception); `None`
        /// reads as the all-default results struct.
        reply: Option<Buffer>,
        caps: CapsSent,
        exception: bool,
    },
    /// Gives up on the caller's calls in progress whose `user_data` is
    /// `target`.
    Cancel {
        target: u64,
    },
}

/// Checks an SQE copy against ABI version 2 and the caller's memory. Never
/// panics, whatever the SQE holds.
pub fn validate(
    sqe: &Sqe,
    caller: &(impl CallerMemory + ?Sized),
) -> Result<Request, TransportError> {
    let opcode = Opcode::from_u8(sqe.opcode).ok_or(TransportError::UnknownOpcode)?;

    // 2. Nothing set that this opcode does not read.
    let allowed_flags = match opcode {
        Opcode::Call => SQE_MOVE_CAPS,
        Opcode::Return => SQE_MOVE_CAPS | SQE_EXCEPTION,
        _ => 0,
    };
    let carries_caps = matches!(opcode, Opcode::Call | Opcode::Return);
    let exception = sqe.flags & SQE_EXCEPTION != 0;
    let reserved_clear = sqe.flags & !allowed_flags == 0
        && sqe.reserved0 == 0
        && (carries_caps || sqe.caps == 0)
        // An exception carries no capabilities.
        && (!exception || sqe.caps == 0)
        && sqe.reserved2 == 0
        && sqe.reserved3 == 0;
    let params_used = matches!(opcode, Opcode::Call | Opcode::Return);
    let results_used = matches!(opcode, Opcode::Call | Opcode::Recv);
    let unused_clear = (!matches!(opcode, Opcode::Nop | Opcode::Cancel) || sqe.cap == 0)
        && (opcode == Opcode::Call || sqe.method == 0)
        && (matches!(opcode, Opcode::Return | Opcode::Cancel) || sqe.token == 0)
        && (params_used || is_zero(sqe.params()))
        && (results_used || is_zero(sqe.results()))
        && (sqe.params_len != 0 || sqe.params_addr == 0)
        && (sqe.results_len != 0 || sqe.results_addr == 0);
    if !reserved_clear || !unused_clear {
        return Err(TransportError::ReservedNotZero);
    }

    // 3. Sizes: messages, and how many capabilities one call carries.
    if sqe.params_len > MAX_MESSAGE_BYTES
        || sqe.results_len > MAX_MESSAGE_BYTES
        || sqe.caps as usize > MAX_TRANSFER_CAPS
    {
        return Err(TransportError::MessageTooLarge);
    }

    // 4. Ranges. A RECV must name somewhere for the call to arrive.
    if opcode == Opcode::Recv && sqe.results_len == 0 {
        return Err(TransportError::BufferOutsideCaller);
    }
    let params = inside_caller(sqe.params(), Access::Read, caller)?;
    let results = inside_caller(sqe.results(), Access::Write, caller)?;

    // 5. Null capability (and null call token).
    let cap = CapId::from_raw(sqe.cap);
    let needs_cap = || cap.ok_or(TransportError::InvalidCap);
    // The capability ids end the params buffer; the message is what precedes.
    let split = || -> Result<(Option<Buffer>, CapsSent), TransportError> {
        if sqe.caps == 0 {
            return Ok((params, CapsSent::NONE));
        }
        let caps_bytes = sqe.caps as u32 * CAP_ID_BYTES as u32;
        let Some(params) = params else {
            return if caps_bytes == 0 {
                Ok((None, CapsSent::NONE))
            } else {
                Err(TransportError::MalformedMessage)
            };
        };
        let message_len = params
            .len
            .checked_sub(caps_bytes)
            .ok_or(TransportError::MalformedMessage)?;
        let message = (message_len > 0).then_some(Buffer::new(params.addr, message_len));
        let caps = CapsSent {
            addr: if caps_bytes == 0 {
                0
            } else {
                params.addr + message_len as u64
            },
            count: sqe.caps as u8,
            moved: sqe.flags & SQE_MOVE_CAPS != 0 && caps_bytes != 0,
        };
        Ok((message, caps))
    };
    Ok(match opcode {
        Opcode::Nop => Request::Nop,
        Opcode::Call => {
            let cap = needs_cap()?;
            let (params, caps) = split()?;
            Request::Call {
                cap,
                method: sqe.method,
                params,
                results,
                caps,
            }
        }
        Opcode::Release => Request::Release { cap: needs_cap()? },
        Opcode::Recv => Request::Recv {
            cap: needs_cap()?,
            buffer: results.ok_or(TransportError::BufferOutsideCaller)?,
        },
        Opcode::Return => {
            let cap = needs_cap()?;
            if sqe.token == 0 {
                // The token is a one-shot reply capability; 0 names no call.
                return Err(TransportError::InvalidCap);
            }
            let (reply, caps) = split()?;
            Request::Return {
                cap,
                token: sqe.token,
                reply,
                caps,
                exception,
            }
        }
        Opcode::Cancel => Request::Cancel { target: sqe.token },
    })
}

fn is_zero(buffer: Buffer) -> bool {
    buffer.addr == 0 && buffer.len == 0
}

/// `None` for no buffer; the buffer if all of it is the caller's, for
/// `access`.
fn inside_caller(
    buffer: Buffer,
    access: Access,
    caller: &(impl CallerMemory + ?Sized),
) -> Result<Option<Buffer>, TransportError> {
    if buffer.len == 0 {
        return Ok(None);
    }
    let end = buffer
        .addr
        .checked_add(buffer.len as u64)
        .ok_or(TransportError::BufferOutsideCaller)?;
    if caller.contains(buffer.addr..end, access) {
        Ok(Some(buffer))
    } else {
        Err(TransportError::BufferOutsideCaller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CALLER: Region = Region {
        base: 0x40_0000,
        size: 0x10_0000,
        writable: true,
    };
    const PARAMS: Buffer = Buffer::new(0x40_1000, 64);
    const RESULTS: Buffer = Buffer::new(0x40_2000, 256);
    const CAP: u32 = 0x1_0003;

    fn cap() -> CapId {
        CapId::from_raw(CAP).unwrap()
    }

    fn call() -> Sqe {
        Sqe::call(CAP, 2, PARAMS, RESULTS, 77)
    }

    fn check(sqe: Sqe) -> Result<Request, TransportError> {
        validate(&sqe, &CALLER)
    }

    #[test]
    fn well_formed_requests_pass() {
        assert_eq!(check(Sqe::nop(1)), Ok(Request::Nop));
        assert_eq!(
            check(call()),
            Ok(Request::Call {
                cap: cap(),
                method: 2,
                params: Some(PARAMS),
                results: Some(RESULTS),
                caps: CapsSent::NONE,
            })
        );
        assert_eq!(
            check(Sqe::call(CAP, 0, Buffer::NONE, Buffer::NONE, 0)),
            Ok(Request::Call {
                cap: cap(),
                method: 0,
                params: None,
                results: None,
                caps: CapsSent::NONE,
            })
        );
        assert_eq!(
            check(Sqe::release(CAP, 1)),
            Ok(Request::Release { cap: cap() })
        );
        assert_eq!(
            check(Sqe::recv(CAP, RESULTS, 1)),
            Ok(Request::Recv {
                cap: cap(),
                buffer: RESULTS
            })
        );
        assert_eq!(
            check(Sqe::return_call(CAP, 9, PARAMS, 1)),
            Ok(Request::Return {
                cap: cap(),
                token: 9,
                reply: Some(PARAMS),
                caps: CapsSent::NONE,
                exception: false,
            })
        );
        assert_eq!(
            check(Sqe::return_call(CAP, 9, Buffer::NONE, 1)),
            Ok(Request::Return {
                cap: cap(),
                token: 9,
                reply: None,
                caps: CapsSent::NONE,
                exception: false,
            })
        );
    }

    #[test]
    fn capability_ids_end_the_params() {
        let with_two = Sqe::call(CAP, 2, PARAMS, RESULTS, 77).carrying_caps(2, true);
        assert_eq!(
            check(with_two),
            Ok(Request::Call {
                cap: cap(),
                method: 2,
                params: Some(Buffer::new(PARAMS.addr, PARAMS.len - 8)),
                results: Some(RESULTS),
                caps: CapsSent {
                    addr: PARAMS.addr + PARAMS.len as u64 - 8,
                    count: 2,
                    moved: true
                },
            })
        );
        // Only capability ids: the default params struct.
        let only_caps =
            Sqe::call(CAP, 2, Buffer::new(PARAMS.addr, 4), RESULTS, 1).carrying_caps(1, false);
        assert!(matches!(
            check(only_caps),
            Ok(Request::Call {
                params: None,
                caps: CapsSent {
                    count: 1,
                    moved: false,
                    ..
                },
                ..
            })
        ));
        // More ids than the buffer holds, or than one call may carry.
        let short =
            Sqe::call(CAP, 2, Buffer::new(PARAMS.addr, 7), RESULTS, 1).carrying_caps(2, false);
        assert_eq!(check(short), Err(TransportError::MalformedMessage));
        let none = Sqe::call(CAP, 2, Buffer::NONE, RESULTS, 1).carrying_caps(1, false);
        assert_eq!(check(none), Err(TransportError::MalformedMessage));
        let many = Sqe::call(CAP, 2, PARAMS, RESULTS, 1)
            .carrying_caps(MAX_TRANSFER_CAPS as u16 + 1, false);
        assert_eq!(check(many), Err(TransportError::MessageTooLarge));
        // A RETURN carries them too, or an exception, not both.
        let ret = Sqe::return_call(CAP, 9, PARAMS, 1).carrying_caps(1, false);
        assert!(matches!(
            check(ret),
            Ok(Request::Return {
                caps: CapsSent { count: 1, .. },
                exception: false,
                ..
            })
        ));
        let exception = Sqe::return_exception(CAP, 9, PARAMS, 1);
        assert!(matches!(
            check(exception),
            Ok(Request::Return {
                exception: true,
                ..
            })
        ));
        assert_eq!(
            check(exception.carrying_caps(1, false)),
            Err(TransportError::ReservedNotZero)
        );
        // Nothing else carries capabilities or takes these flags.
        let recv = Sqe {
            caps: 1,
            ..Sqe::recv(CAP, RESULTS, 1)
        };
        assert_eq!(check(recv), Err(TransportError::ReservedNotZero));
        let call_exception = Sqe {
            flags: SQE_EXCEPTION,
            ..call()
        };
        assert_eq!(check(call_exception), Err(TransportError::ReservedNotZero));
        let release_move = Sqe {
            flags: SQE_MOVE_CAPS,
            ..Sqe::release(CAP, 1)
        };
        assert_eq!(check(release_move), Err(TransportError::ReservedNotZero));
    }

    #[test]
    fn unknown_opcodes() {
        for opcode in [6, 7, 0x7f, 0xff] {
            let sqe = Sqe {
                opcode,
                ..Sqe::nop(0)
            };
            assert_eq!(check(sqe), Err(TransportError::UnknownOpcode));
        }
        // The opcode is checked before anything else.
        let garbage = Sqe::from_words([0xff, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(check(garbage), Err(TransportError::UnknownOpcode));
    }

    #[test]
    fn flags_and_reserved_fields_must_be_zero_for_every_opcode() {
        let valid = [
            Sqe::nop(1),
            call(),
            Sqe::release(CAP, 1),
            Sqe::recv(CAP, RESULTS, 1),
            Sqe::return_call(CAP, 9, PARAMS, 1),
            Sqe::cancel(9, 1),
        ];
        let breakers: [fn(&mut Sqe); 5] = [
            |s| s.flags = 4,
            |s| s.reserved0 = 1,
            |s| s.flags |= 0x80,
            |s| s.reserved2 = 1,
            |s| s.reserved3 = 1 << 63,
        ];
        for sqe in valid {
            for breaker in breakers {
                let mut broken = sqe;
                breaker(&mut broken);
                assert_eq!(
                    check(broken),
                    Err(TransportError::ReservedNotZero),
                    "{broken:?}"
                );
            }
        }
    }

    #[test]
    fn cancel_names_its_target_in_token_and_uses_nothing_else() {
        assert_eq!(
            check(Sqe::cancel(0xfeed, 1)),
            Ok(Request::Cancel { target: 0xfeed })
        );
        let users: [fn(&mut Sqe); 4] = [
            |s| s.cap = CAP,
            |s| s.method = 1,
            |s| {
                *s = Sqe {
                    params_addr: PARAMS.addr,
                    params_len: PARAMS.len,
                    ..*s
                }
            },
            |s| {
                *s = Sqe {
                    results_addr: RESULTS.addr,
                    results_len: RESULTS.len,
                    ..*s
                }
            },
        ];
        for user in users {
            let mut sqe = Sqe::cancel(3, 1);
            user(&mut sqe);
            assert_eq!(check(sqe), Err(TransportError::ReservedNotZero), "{sqe:?}");
        }
    }

    #[test]
    fn fields_an_opcode_does_not_use_must_be_zero() {
        let nop_with = |f: fn(&mut Sqe)| {
            let mut sqe = Sqe::nop(5);
            f(&mut sqe);
            check(sqe)
        };
        assert_eq!(
            nop_with(|s| s.cap = CAP),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            nop_with(|s| s.method = 1),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            nop_with(|s| s.params_len = 8),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            nop_with(|s| s.results_addr = 8),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            nop_with(|s| s.token = 1),
            Err(TransportError::ReservedNotZero)
        );

        let call_with_token = Sqe { token: 4, ..call() };
        assert_eq!(check(call_with_token), Err(TransportError::ReservedNotZero));

        let release_with = |f: fn(&mut Sqe)| {
            let mut sqe = Sqe::release(CAP, 5);
            f(&mut sqe);
            check(sqe)
        };
        assert_eq!(
            release_with(|s| s.method = 1),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            release_with(|s| s.params_addr = PARAMS.addr),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            release_with(|s| s.results_len = 1),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            release_with(|s| s.token = 1),
            Err(TransportError::ReservedNotZero)
        );

        let recv_with = |f: fn(&mut Sqe)| {
            let mut sqe = Sqe::recv(CAP, RESULTS, 5);
            f(&mut sqe);
            check(sqe)
        };
        assert_eq!(
            recv_with(|s| s.method = 3),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            recv_with(|s| s.params_len = 8),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            recv_with(|s| s.token = 1),
            Err(TransportError::ReservedNotZero)
        );

        let return_with = |f: fn(&mut Sqe)| {
            let mut sqe = Sqe::return_call(CAP, 9, PARAMS, 5);
            f(&mut sqe);
            check(sqe)
        };
        assert_eq!(
            return_with(|s| s.method = 3),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            return_with(|s| s.results_len = 8),
            Err(TransportError::ReservedNotZero)
        );
        assert_eq!(
            return_with(|s| s.results_addr = 8),
            Err(TransportError::ReservedNotZero)
        );
    }

    #[test]
    fn an_empty_buffer_has_address_zero() {
        let params_addr_only = Sqe::call(CAP, 0, Buffer::new(PARAMS.addr, 0), RESULTS, 0);
        assert_eq!(
            check(params_addr_only),
            Err(TransportError::ReservedNotZero)
        );
        let results_addr_only = Sqe::call(CAP, 0, PARAMS, Buffer::new(RESULTS.addr, 0), 0);
        assert_eq!(
            check(results_addr_only),
            Err(TransportError::ReservedNotZero)
        );
        let reply_addr_only = Sqe::return_call(CAP, 1, Buffer::new(PARAMS.addr, 0), 0);
        assert_eq!(check(reply_addr_only), Err(TransportError::ReservedNotZero));
    }

    #[test]
    fn messages_over_64_kib_are_refused() {
        let max = Buffer::new(CALLER.base, MAX_MESSAGE_BYTES);
        let over = Buffer::new(CALLER.base, MAX_MESSAGE_BYTES + 1);
        assert!(check(Sqe::call(CAP, 0, max, max, 0)).is_ok());
        assert_eq!(
            check(Sqe::call(CAP, 0, over, RESULTS, 0)),
            Err(TransportError::MessageTooLarge)
        );
        assert_eq!(
            check(Sqe::call(CAP, 0, PARAMS, over, 0)),
            Err(TransportError::MessageTooLarge)
        );
        assert_eq!(
            check(Sqe::recv(CAP, over, 0)),
            Err(TransportError::MessageTooLarge)
        );
        assert_eq!(
            check(Sqe::return_call(CAP, 1, over, 0)),
            Err(TransportError::MessageTooLarge)
        );
        // Size comes before range: a huge buffer far outside is "too large".
        let far = Buffer::new(u64::MAX, u32::MAX);
        assert_eq!(
            check(Sqe::call(CAP, 0, far, RESULTS, 0)),
            Err(TransportError::MessageTooLarge)
        );
    }

    #[test]
    fn buffers_must_lie_inside_the_caller() {
        let end = CALLER.base + CALLER.size;
        let last_byte = Buffer::new(end - 1, 1);
        assert!(check(Sqe::call(CAP, 0, last_byte, last_byte, 0)).is_ok());
        let outside = [
            Buffer::new(end, 1),
            Buffer::new(end - 1, 2),
            Buffer::new(CALLER.base - 1, 1),
            Buffer::new(CALLER.base - 1, 16),
            Buffer::new(0x1000, 8),
            Buffer::new(u64::MAX - 3, 8),
            Buffer::new(u64::MAX, 1),
        ];
        for buffer in outside {
            let err = Err(TransportError::BufferOutsideCaller);
            assert_eq!(
                check(Sqe::call(CAP, 0, buffer, RESULTS, 0)),
                err,
                "{buffer:?}"
            );
            assert_eq!(
                check(Sqe::call(CAP, 0, PARAMS, buffer, 0)),
                err,
                "{buffer:?}"
            );
            assert_eq!(check(Sqe::recv(CAP, buffer, 0)), err, "{buffer:?}");
            assert_eq!(
                check(Sqe::return_call(CAP, 1, buffer, 0)),
                err,
                "{buffer:?}"
            );
        }
    }

    #[test]
    fn recv_needs_a_buffer() {
        assert_eq!(
            check(Sqe::recv(CAP, Buffer::NONE, 0)),
            Err(TransportError::BufferOutsideCaller)
        );
    }

    #[test]
    fn null_capabilities_and_tokens_are_invalid() {
        assert_eq!(
            check(Sqe::call(0, 0, PARAMS, RESULTS, 0)),
            Err(TransportError::InvalidCap)
        );
        assert_eq!(check(Sqe::release(0, 0)), Err(TransportError::InvalidCap));
        assert_eq!(
            check(Sqe::recv(0, RESULTS, 0)),
            Err(TransportError::InvalidCap)
        );
        assert_eq!(
            check(Sqe::return_call(0, 1, PARAMS, 0)),
            Err(TransportError::InvalidCap)
        );
        assert_eq!(
            check(Sqe::return_call(CAP, 0, PARAMS, 0)),
            Err(TransportError::InvalidCap)
        );
        // Ranges come before the capability.
        let outside = Buffer::new(0x10, 8);
        assert_eq!(
            check(Sqe::call(0, 0, outside, RESULTS, 0)),
            Err(TransportError::BufferOutsideCaller)
        );
    }

    #[test]
    fn several_regions() {
        let regions = [
            CALLER,
            Region {
                base: 0x100_0000,
                size: 0x1000,
                writable: true,
            },
        ];
        let second = Buffer::new(0x100_0800, 0x800);
        let straddling = Buffer::new(CALLER.base + CALLER.size - 8, 16);
        assert!(validate(&Sqe::call(CAP, 0, PARAMS, second, 0), &regions[..]).is_ok());
        assert_eq!(
            validate(&Sqe::call(CAP, 0, straddling, RESULTS, 0), &regions[..]),
            Err(TransportError::BufferOutsideCaller)
        );
    }

    #[test]
    fn results_and_recv_buffers_must_be_writable() {
        let code = Region {
            base: 0x100_0000,
            size: 0x1000,
            writable: false,
        };
        let regions = [CALLER, code];
        let read_only = Buffer::new(code.base, 64);
        // Params and replies may come from read-only memory...
        assert!(validate(&Sqe::call(CAP, 0, read_only, RESULTS, 0), &regions[..]).is_ok());
        assert!(validate(&Sqe::return_call(CAP, 9, read_only, 0), &regions[..]).is_ok());
        // ...results and RECV buffers may not.
        assert_eq!(
            validate(&Sqe::call(CAP, 0, PARAMS, read_only, 0), &regions[..]),
            Err(TransportError::BufferOutsideCaller)
        );
        assert_eq!(
            validate(&Sqe::recv(CAP, read_only, 0), &regions[..]),
            Err(TransportError::BufferOutsideCaller)
        );
    }

    #[test]
    fn a_region_at_the_top_of_memory() {
        let top = Region {
            base: u64::MAX - 0xfff,
            size: 0x1000,
            writable: true,
        };
        assert!(top.contains(u64::MAX - 0xfff..u64::MAX, Access::Write));
        assert!(!top.contains(u64::MAX - 0x1000..u64::MAX, Access::Read));
        let mut set = RegionSet::new();
        assert_eq!(set.insert(top), Ok(()));
        assert!(set.contains(u64::MAX - 0xfff..u64::MAX, Access::Write));
        let past_the_end = Region {
            size: 0x1001,
            ..top
        };
        assert_eq!(
            RegionSet::new().insert(past_the_end),
            Err(RegionError::Empty)
        );
    }

    #[test]
    fn region_sets_refuse_overlaps_and_empty_regions() {
        let region = |base, size| Region {
            base,
            size,
            writable: false,
        };
        let mut set = RegionSet::new();
        assert_eq!(set.insert(region(0x3000, 0x1000)), Ok(()));
        assert_eq!(set.insert(region(0x1000, 0x1000)), Ok(()));
        assert_eq!(set.insert(region(0x2000, 0x1000)), Ok(()), "touching both");
        assert_eq!(set.insert(region(0x2fff, 1)), Err(RegionError::Overlaps));
        assert_eq!(set.insert(region(0x0, 0x1001)), Err(RegionError::Overlaps));
        assert_eq!(
            set.insert(region(0x3800, 0x1000)),
            Err(RegionError::Overlaps)
        );
        assert_eq!(
            set.insert(region(0x1000, 0x1000)),
            Err(RegionError::Overlaps)
        );
        assert_eq!(set.insert(region(0x9000, 0)), Err(RegionError::Empty));
        let bases: Vec<u64> = set.regions().iter().map(|r| r.base).collect();
        assert_eq!(bases, [0x1000, 0x2000, 0x3000]);
        // A buffer must lie in one region, even where two touch.
        assert!(set.contains(0x1800..0x2000, Access::Read));
        assert!(!set.contains(0x1800..0x2001, Access::Read));
        assert!(!set.contains(0x800..0x900, Access::Read));
        assert!(!set.contains(0x4000..0x4001, Access::Read));
        set.clear();
        assert!(!set.contains(0x1800..0x2000, Access::Read));
    }

    proptest! {
        /// Any 64 bytes: an answer, never a panic, and only ABI codes.
        #[test]
        fn arbitrary_sqes_never_panic(bytes in any::<[u8; 64]>()) {
            let sqe = Sqe::from_bytes(&bytes);
            let answer = validate(&sqe, &CALLER);
            prop_assert_eq!(sqe.is_plain_nop(), answer == Ok(Request::Nop));
            match answer {
                Ok(_) => {}
                Err(e) => prop_assert!(TransportError::ALL.contains(&e)),
            }
        }

        /// The same, with fields biased towards values that pass the earlier
        /// checks, so the later ones get exercised too.
        #[test]
        fn nearly_valid_sqes_never_panic(
            opcode in 0u8..6,
            cap in prop_oneof![Just(0u32), Just(CAP), any::<u32>()],
            method in prop_oneof![Just(0u16), any::<u16>()],
            params in buffer(),
            results in buffer(),
            token in prop_oneof![Just(0u64), any::<u64>()],
            caps in prop_oneof![Just(0u16), 0u16..10],
            flags in prop_oneof![Just(0u8), 0u8..4],
            user_data in any::<u64>(),
        ) {
            let sqe = Sqe {
                opcode,
                cap,
                method,
                params_addr: params.addr,
                params_len: params.len,
                results_addr: results.addr,
                results_len: results.len,
                token,
                caps,
                flags,
                ..Sqe::nop(user_data)
            };
            let answer = validate(&sqe, &CALLER);
            // The nucleus's NOP shortcut answers exactly the NOPs validate accepts.
            prop_assert_eq!(sqe.is_plain_nop(), answer == Ok(Request::Nop));
            match answer {
                Ok(Request::Call { params: p, results: r, caps: sent, .. }) => {
                    for b in [p, r].into_iter().flatten() {
                        prop_assert!(b.len <= MAX_MESSAGE_BYTES);
                        prop_assert!(CALLER.contains(b.addr..b.addr + b.len as u64, Access::Read));
                    }
                    // The capability ids are the params buffer's last bytes.
                    prop_assert_eq!(sent.count as u16, caps);
                    if caps > 0 {
                        let end = sent.addr + sent.bytes() as u64;
                        prop_assert!(CALLER.contains(sent.addr..end, Access::Read));
                        prop_assert_eq!(end, params.addr + params.len as u64);
                        prop_assert_eq!(p.map_or(0, |p| p.len) as usize + sent.bytes(), params.len as usize);
                    }
                }
                Ok(_) => {}
                Err(e) => prop_assert!(TransportError::ALL.contains(&e)),
            }
        }
    }

    proptest! {
        /// The binary search answers as a scan of every region would.
        #[test]
        fn region_sets_agree_with_a_scan(
            regions in proptest::collection::vec((0u64..64, 1u64..8, any::<bool>()), 0..12),
            probes in proptest::collection::vec((0u64..80 * 0x100, 1u64..0x300, any::<bool>()), 1..40),
        ) {
            let mut set = RegionSet::new();
            let mut accepted = Vec::new();
            for (page, pages, writable) in regions {
                let region = Region { base: page * 0x100, size: pages * 0x100, writable };
                let overlaps = accepted.iter().any(|r: &Region| {
                    region.base < r.base + r.size && r.base < region.base + region.size
                });
                prop_assert_eq!(set.insert(region).is_ok(), !overlaps);
                if !overlaps {
                    accepted.push(region);
                }
            }
            for (start, len, write) in probes {
                let access = if write { Access::Write } else { Access::Read };
                let range = start..start + len;
                prop_assert_eq!(
                    set.contains(range.clone(), access),
                    CallerMemory::contains(&accepted[..], range, access)
                );
            }
        }
    }

    fn buffer() -> impl Strategy<Value = Buffer> {
        prop_oneof![
            Just(Buffer::NONE),
            (0u64..CALLER.size, 1u32..=MAX_MESSAGE_BYTES)
                .prop_map(|(offset, len)| Buffer::new(CALLER.base + offset, len)),
            (any::<u64>(), any::<u32>()).prop_map(|(addr, len)| Buffer::new(addr, len)),
        ]
    }
}
