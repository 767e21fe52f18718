//! Submission and completion entries as plain values. The ring holds them as
//! words of atomics ([`SqeSlot`](crate::ring::SqeSlot)); these are the
//! copies each side works on. Byte offsets are those of docs/abi.md, in
//! little-endian words.

use crate::error::TransportError;

/// What an SQE asks for. The SQE keeps the raw byte, since a guest may send
/// any value; this is the decoded form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Does nothing; completes with result 0. Useful to measure the ring.
    Nop = 0,
    /// Calls a method of a capability.
    Call = 1,
    /// Drops a capability from the caller's table.
    Release = 2,
    /// Waits for a call on an endpoint capability the caller serves.
    Recv = 3,
    /// Answers a call that RECV delivered.
    Return = 4,
    /// Gives up on calls still in progress: those of the caller's SQEs
    /// whose `user_data` is the SQE's `token`.
    Cancel = 5,
}

impl Opcode {
    pub const ALL: [Opcode; 6] = [
        Opcode::Nop,
        Opcode::Call,
        Opcode::Release,
        Opcode::Recv,
        Opcode::Return,
        Opcode::Cancel,
    ];

    pub const fn from_u8(raw: u8) -> Option<Opcode> {
        match raw {
            0 => Some(Opcode::Nop),
            1 => Some(Opcode::Call),
            2 => Some(Opcode::Release),
            3 => Some(Opcode::Recv),
            4 => Some(Opcode::Return),
            5 => Some(Opcode::Cancel),
            _ => None,
        }
    }
}

/// A guest buffer: `len` bytes at `addr`. `len == 0` means "no buffer" and
/// then `addr` must be 0 too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Buffer {
    pub addr: u64,
    pub len: u32,
}

impl Buffer {
    pub const NONE: Buffer = Buffer { addr: 0, len: 0 };

    pub const fn new(addr: u64, len: u32) -> Buffer {
        Buffer { addr, len }
    }

    pub const fn is_none(&self) -> bool {
        self.len == 0
    }
}

/// A submission queue entry (64 bytes in the ring). Every field is public and
/// raw because this is what a guest wrote, valid or not; the nucleus turns it
/// into a typed [`Request`](crate::validate::Request) with
/// [`validate`](crate::validate::validate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sqe {
    /// Byte 0: an [`Opcode`] as sent.
    pub opcode: u8,
    /// Byte 1: [`SQE_MOVE_CAPS`] (CALL, RETURN) and [`SQE_EXCEPTION`]
    /// (RETURN); every other bit must be 0.
    pub flags: u8,
    /// Bytes 2-3: must be 0.
    pub reserved0: u16,
    /// Bytes 4-7: a raw [`CapId`](crate::cap::CapId); 0 is none.
    pub cap: u32,
    /// Bytes 8-15: opaque to the nucleus, echoed in the completion.
    pub user_data: u64,
    /// Bytes 16-17: method ordinal within the capability's interface (CALL).
    pub method: u16,
    /// Bytes 18-19: CALL and RETURN: how many capability ids (u32 each,
    /// at most [`MAX_TRANSFER_CAPS`]) end the params buffer, after the
    /// message. Otherwise 0.
    pub caps: u16,
    /// Bytes 20-23.
    pub params_len: u32,
    /// Bytes 24-31.
    pub params_addr: u64,
    /// Bytes 32-39.
    pub results_addr: u64,
    /// Bytes 40-43.
    pub results_len: u32,
    /// Bytes 44-47: must be 0.
    pub reserved2: u32,
    /// Bytes 48-55: RETURN: the call token a RECV delivered; CANCEL: the
    /// `user_data` of the calls to give up on. Otherwise 0.
    pub token: u64,
    /// Bytes 56-63: must be 0.
    pub reserved3: u64,
}

impl Sqe {
    pub const BYTES: usize = 64;
    pub const WORDS: usize = 8;

    pub const fn nop(user_data: u64) -> Sqe {
        Sqe {
            opcode: Opcode::Nop as u8,
            flags: 0,
            reserved0: 0,
            cap: 0,
            user_data,
            method: 0,
            caps: 0,
            params_len: 0,
            params_addr: 0,
            results_addr: 0,
            results_len: 0,
            reserved2: 0,
            token: 0,
            reserved3: 0,
        }
    }

    pub const fn call(
        cap: u32,
        method: u16,
        params: Buffer,
        results: Buffer,
        user_data: u64,
    ) -> Sqe {
        Sqe {
            opcode: Opcode::Call as u8,
            cap,
            method,
            params_addr: params.addr,
            params_len: params.len,
            results_addr: results.addr,
            results_len: results.len,
            ..Sqe::nop(user_data)
        }
    }

    pub const fn release(cap: u32, user_data: u64) -> Sqe {
        Sqe {
            opcode: Opcode::Release as u8,
            cap,
            ..Sqe::nop(user_data)
        }
    }

    /// Waits on endpoint `cap` for a call; its params arrive in `buffer`.
    pub const fn recv(cap: u32, buffer: Buffer, user_data: u64) -> Sqe {
        Sqe {
            opcode: Opcode::Recv as u8,
            cap,
            results_addr: buffer.addr,
            results_len: buffer.len,
            ..Sqe::nop(user_data)
        }
    }

    /// Answers the call that RECV on `cap` delivered with `token`; `reply`
    /// holds the results message.
    pub const fn return_call(cap: u32, token: u64, reply: Buffer, user_data: u64) -> Sqe {
        Sqe {
            opcode: Opcode::Return as u8,
            cap,
            token,
            params_addr: reply.addr,
            params_len: reply.len,
            ..Sqe::nop(user_data)
        }
    }

    /// Gives up on the caller's calls in progress whose `user_data` is
    /// `target`: each completes with `-14 Cancelled`, and this SQE with how
    /// many did.
    pub const fn cancel(target: u64, user_data: u64) -> Sqe {
        Sqe {
            opcode: Opcode::Cancel as u8,
            token: target,
            ..Sqe::nop(user_data)
        }
    }

    /// This CALL or RETURN with `caps` capability ids ending its params
    /// buffer (already in it), moved instead of copied when `moved`.
    pub const fn carrying_caps(self, caps: u16, moved: bool) -> Sqe {
        Sqe {
            caps,
            flags: self.flags | if moved { SQE_MOVE_CAPS } else { 0 },
            ..self
        }
    }

    /// Answers the call `token` names with an exception: `reply` holds an
    /// [`Exception`](crate::message::Exception) message.
    pub const fn return_exception(cap: u32, token: u64, reply: Buffer, user_data: u64) -> Sqe {
        Sqe {
            flags: SQE_EXCEPTION,
            ..Sqe::return_call(cap, token, reply, user_data)
        }
    }

    pub const fn params(&self) -> Buffer {
        Buffer::new(self.params_addr, self.params_len)
    }

    pub const fn results(&self) -> Buffer {
        Buffer::new(self.results_addr, self.results_len)
    }

    /// The eight little-endian words as stored in an [`SqeSlot`](crate::ring::SqeSlot).
    pub const fn to_words(&self) -> [u64; 8] {
        [
            self.opcode as u64
                | (self.flags as u64) << 8
                | (self.reserved0 as u64) << 16
                | (self.cap as u64) << 32,
            self.user_data,
            self.method as u64 | (self.caps as u64) << 16 | (self.params_len as u64) << 32,
            self.params_addr,
            self.results_addr,
            self.results_len as u64 | (self.reserved2 as u64) << 32,
            self.token,
            self.reserved3,
        ]
    }

    /// Any eight words are an SQE; whether it is a valid one is
    /// [`validate`](crate::validate::validate)'s question.
    pub const fn from_words(words: [u64; 8]) -> Sqe {
        Sqe {
            opcode: words[0] as u8,
            flags: (words[0] >> 8) as u8,
            reserved0: (words[0] >> 16) as u16,
            cap: (words[0] >> 32) as u32,
            user_data: Sqe::words_user_data(&words),
            method: words[2] as u16,
            caps: (words[2] >> 16) as u16,
            params_len: (words[2] >> 32) as u32,
            params_addr: words[3],
            results_addr: words[4],
            results_len: words[5] as u32,
            reserved2: (words[5] >> 32) as u32,
            token: words[6],
            reserved3: words[7],
        }
    }

    /// A NOP with every field but `user_data` zero: the one form of NOP
    /// [`validate`](crate::validate::validate) accepts, checked in a few
    /// instructions so the nucleus can answer it without the full path.
    #[inline]
    pub const fn is_plain_nop(&self) -> bool {
        Sqe::words_are_plain_nop(&self.to_words())
    }

    /// The `user_data` of the SQE these words are.
    #[inline]
    pub const fn words_user_data(w: &[u64; 8]) -> u64 {
        w[1]
    }

    /// [`Sqe::is_plain_nop`] on the eight words as they sit in the ring,
    /// before they are taken apart into fields.
    #[inline]
    pub const fn words_are_plain_nop(w: &[u64; 8]) -> bool {
        (w[0] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) == 0
    }

    pub fn to_bytes(&self) -> [u8; 64] {
        words_to_bytes(self.to_words())
    }

    pub fn from_bytes(bytes: &[u8; 64]) -> Sqe {
        Sqe::from_words(bytes_to_words(bytes))
    }
}

/// CQE flag bit 0: the results buffer holds an
/// [`Exception`](crate::message::Exception) from the service, and `result` is
/// its length.
pub const CQE_EXCEPTION: u32 = 1;
/// CQE flags bits 8-15: how many capability ids end the results (after the
/// message, inside `result`'s bytes); they name capabilities the call put in
/// the caller's table.
pub const CQE_CAPS_SHIFT: u32 = 8;
const CQE_CAPS_MASK: u32 = 0xff << CQE_CAPS_SHIFT;

/// SQE flag bit 0 (CALL, RETURN): the capabilities the params name are
/// moved out of the sender's table, not copied.
pub const SQE_MOVE_CAPS: u8 = 1;
/// SQE flag bit 1 (RETURN only): the reply is an
/// [`Exception`](crate::message::Exception), which the caller receives with
/// its CQE's `EXCEPTION` flag.
pub const SQE_EXCEPTION: u8 = 2;
/// Most capabilities one CALL or RETURN carries, and one completion brings.
pub const MAX_TRANSFER_CAPS: usize = 8;
/// Bytes of one capability id at the end of a payload.
pub const CAP_ID_BYTES: usize = 4;

/// A completion queue entry (32 bytes in the ring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cqe {
    /// Bytes 0-7: the SQE's `user_data`.
    pub user_data: u64,
    /// Bytes 8-11: bytes written to the results buffer (>= 0) or a
    /// [`TransportError`] code (< 0).
    pub result: i32,
    /// Bytes 12-15: [`CQE_EXCEPTION`] or 0.
    pub flags: u32,
    /// Bytes 16-23: RECV: the call token; otherwise 0.
    pub aux: u64,
    /// Bytes 24-31: RECV: the badge of the capability the caller called
    /// through; otherwise 0.
    pub badge: u64,
}

/// What a completion says, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success: this many bytes of results were written, of which the last
    /// `caps` * 4 are capability ids.
    Done { written: u32, aux: u64, caps: u32 },
    /// The service raised an exception; it is `len` bytes in the results buffer.
    Exception { len: u32 },
    /// The call was not delivered.
    Failed(TransportError),
    /// A result or flags this ABI version does not define.
    Unknown { result: i32, flags: u32 },
}

impl Cqe {
    pub const BYTES: usize = 32;
    pub const WORDS: usize = 4;

    pub const fn done(user_data: u64, written: u32, aux: u64) -> Cqe {
        Cqe {
            user_data,
            result: written as i32,
            flags: 0,
            aux,
            badge: 0,
        }
    }

    /// Success with `written` bytes, the last `caps` * 4 of them capability
    /// ids (`caps` at most [`MAX_TRANSFER_CAPS`]).
    pub const fn done_with_caps(user_data: u64, written: u32, caps: u32) -> Cqe {
        Cqe {
            flags: (caps << CQE_CAPS_SHIFT) & CQE_CAPS_MASK,
            ..Cqe::done(user_data, written, 0)
        }
    }

    pub const fn exception(user_data: u64, len: u32) -> Cqe {
        Cqe {
            user_data,
            result: len as i32,
            flags: CQE_EXCEPTION,
            aux: 0,
            badge: 0,
        }
    }

    pub const fn failed(user_data: u64, error: TransportError) -> Cqe {
        Cqe {
            user_data,
            result: error.code(),
            flags: 0,
            aux: 0,
            badge: 0,
        }
    }

    pub const fn outcome(&self) -> Outcome {
        let caps = (self.flags & CQE_CAPS_MASK) >> CQE_CAPS_SHIFT;
        match (self.result, self.flags & !CQE_CAPS_MASK) {
            (result, 0) if result >= 0 && caps as usize * CAP_ID_BYTES <= result as usize => {
                Outcome::Done {
                    written: result as u32,
                    aux: self.aux,
                    caps,
                }
            }
            _ if caps != 0 => Outcome::Unknown {
                result: self.result,
                flags: self.flags,
            },
            (result, CQE_EXCEPTION) if result >= 0 => Outcome::Exception { len: result as u32 },
            (result, 0) => match TransportError::from_code(result) {
                Some(error) => Outcome::Failed(error),
                None => Outcome::Unknown { result, flags: 0 },
            },
            (result, flags) => Outcome::Unknown { result, flags },
        }
    }

    pub const fn to_words(&self) -> [u64; 4] {
        [
            self.user_data,
            self.result as u32 as u64 | (self.flags as u64) << 32,
            self.aux,
            self.badge,
        ]
    }

    pub const fn from_words(words: [u64; 4]) -> Cqe {
        Cqe {
            user_data: words[0],
            result: words[1] as u32 as i32,
            flags: (words[1] >> 32) as u32,
            aux: words[2],
            badge: words[3],
        }
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        words_to_bytes(self.to_words())
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Cqe {
        Cqe::from_words(bytes_to_words(bytes))
    }
}

fn words_to_bytes<const W: usize, const B: usize>(words: [u64; W]) -> [u8; B] {
    let mut bytes = [0; B];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

fn bytes_to_words<const W: usize, const B: usize>(bytes: &[u8; B]) -> [u64; W] {
    let mut words = [0; W];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut le = [0; 8];
        le.copy_from_slice(chunk);
        *word = u64::from_le_bytes(le);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every field at the byte offset docs/abi.md gives.
    #[test]
    fn sqe_fields_sit_at_their_documented_offsets() {
        let sqe = Sqe {
            opcode: 0x01,
            flags: 0x02,
            reserved0: 0x0403,
            cap: 0x0807_0605,
            user_data: 0x100f_0e0d_0c0b_0a09,
            method: 0x1211,
            caps: 0x1413,
            params_len: 0x1817_1615,
            params_addr: 0x201f_1e1d_1c1b_1a19,
            results_addr: 0x2827_2625_2423_2221,
            results_len: 0x2c2b_2a29,
            reserved2: 0x302f_2e2d,
            token: 0x3837_3635_3433_3231,
            reserved3: 0x403f_3e3d_3c3b_3a39,
        };
        let bytes = sqe.to_bytes();
        for (offset, byte) in bytes.iter().enumerate() {
            assert_eq!(*byte as usize, offset + 1, "byte {offset}");
        }
        assert_eq!(Sqe::from_bytes(&bytes), sqe);
    }

    #[test]
    fn cqe_fields_sit_at_their_documented_offsets() {
        let cqe = Cqe {
            user_data: 0x0807_0605_0403_0201,
            result: 0x0c0b_0a09,
            flags: 0x100f_0e0d,
            aux: 0x1817_1615_1413_1211,
            badge: 0x201f_1e1d_1c1b_1a19,
        };
        let bytes = cqe.to_bytes();
        for (offset, byte) in bytes.iter().enumerate() {
            assert_eq!(*byte as usize, offset + 1, "byte {offset}");
        }
        assert_eq!(Cqe::from_bytes(&bytes), cqe);
    }

    #[test]
    fn constructors_fill_the_fields_each_opcode_uses() {
        let params = Buffer::new(0x1000, 16);
        let results = Buffer::new(0x2000, 64);
        let call = Sqe::call(0x1_0002, 3, params, results, 7);
        assert_eq!(Opcode::from_u8(call.opcode), Some(Opcode::Call));
        assert_eq!((call.cap, call.method, call.user_data), (0x1_0002, 3, 7));
        assert_eq!((call.params(), call.results()), (params, results));
        let recv = Sqe::recv(5, results, 8);
        assert_eq!((recv.results(), recv.params()), (results, Buffer::NONE));
        let ret = Sqe::return_call(5, 99, params, 9);
        assert_eq!(
            (ret.token, ret.params(), ret.results()),
            (99, params, Buffer::NONE)
        );
        assert_eq!(Sqe::release(5, 1).opcode, Opcode::Release as u8);
        assert_eq!(Sqe::cancel(7, 2).to_words(), [5, 2, 0, 0, 0, 0, 7, 0]);
        assert_eq!(Sqe::nop(4).to_words(), [0, 4, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn opcodes_decode_and_nothing_else_does() {
        for op in Opcode::ALL {
            assert_eq!(Opcode::from_u8(op as u8), Some(op));
        }
        for raw in 6..=u8::MAX {
            assert_eq!(Opcode::from_u8(raw), None);
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            Cqe::done(1, 40, 0x1_0003).outcome(),
            Outcome::Done {
                written: 40,
                aux: 0x1_0003,
                caps: 0
            }
        );
        assert_eq!(
            Cqe::done_with_caps(1, 40, 2).outcome(),
            Outcome::Done {
                written: 40,
                aux: 0,
                caps: 2
            }
        );
        // More capability ids than bytes written, or capabilities with an
        // exception: not a completion this ABI defines.
        assert!(matches!(
            Cqe::done_with_caps(1, 4, 2).outcome(),
            Outcome::Unknown { .. }
        ));
        let exception_with_caps = Cqe {
            flags: CQE_EXCEPTION | 1 << CQE_CAPS_SHIFT,
            ..Cqe::exception(1, 32)
        };
        assert!(matches!(
            exception_with_caps.outcome(),
            Outcome::Unknown { .. }
        ));
        assert_eq!(
            Cqe::exception(1, 32).outcome(),
            Outcome::Exception { len: 32 }
        );
        assert_eq!(
            Cqe::failed(1, TransportError::StaleCap).outcome(),
            Outcome::Failed(TransportError::StaleCap)
        );
        let odd = Cqe {
            result: -100,
            ..Cqe::default()
        };
        assert_eq!(
            odd.outcome(),
            Outcome::Unknown {
                result: -100,
                flags: 0
            }
        );
        let odd_flags = Cqe {
            flags: 6,
            ..Cqe::default()
        };
        assert_eq!(
            odd_flags.outcome(),
            Outcome::Unknown {
                result: 0,
                flags: 6
            }
        );
    }

    proptest! {
        #[test]
        fn sqe_words_round_trip(words in any::<[u64; 8]>()) {
            let sqe = Sqe::from_words(words);
            prop_assert_eq!(sqe.to_words(), words);
            prop_assert_eq!(Sqe::from_bytes(&sqe.to_bytes()), sqe);
        }

        #[test]
        fn cqe_words_round_trip(words in any::<[u64; 4]>()) {
            let cqe = Cqe::from_words(words);
            prop_assert_eq!(cqe.to_words(), words);
            prop_assert_eq!(Cqe::from_bytes(&cqe.to_bytes()), cqe);
        }
    }
}
