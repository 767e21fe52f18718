//! Transport errors: what the nucleus puts in a CQE's `result` when it could
//! not deliver a call. A service's own failures are not transport errors;
//! they travel as an [`Exception`](crate::message::Exception) in the results.

/// A transport failure, carried in a CQE as a negative `result`.
///
/// The codes are ABI: they never change meaning, and new ones only get new
/// numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportError {
    /// The SQE's opcode is not one this ABI version defines.
    UnknownOpcode,
    /// A flag, a reserved field, or a field the opcode does not use is not zero.
    ReservedNotZero,
    /// The CapId is null, or names a slot the caller's table never allocated.
    InvalidCap,
    /// The CapId's slot exists but holds another generation: it was released.
    StaleCap,
    /// A buffer is not entirely inside the caller's own memory, or its end
    /// overflows the address space.
    BufferOutsideCaller,
    /// `params_len` or `results_len` exceeds [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES).
    MessageTooLarge,
    /// The capability's interface has no method with this ordinal.
    UnknownMethod,
    /// The params are not a valid message for the method.
    MalformedMessage,
    /// The results (or the exception) do not fit in the results buffer.
    ResultsTooSmall,
    /// The caller's capability table is full.
    CapQuotaExceeded,
    /// The operation does not apply to this kind of capability (RECV on a
    /// capability that is not an endpoint, for instance).
    WrongCapKind,
    /// The opcode is valid in this ABI but this nucleus does not implement it yet.
    NotSupported,
    /// The capability lacks a right the operation needs (a method's right,
    /// or `transfer` to pass it on).
    MissingRight,
    /// The caller gave the call up (CANCEL) before it completed.
    Cancelled,
    /// The nucleus could not get the memory this request needs now (its
    /// heap is exhausted); the same request may work later.
    OutOfMemory,
}

impl TransportError {
    /// Every error, in code order (-1, -2, ...).
    pub const ALL: [TransportError; 15] = [
        TransportError::UnknownOpcode,
        TransportError::ReservedNotZero,
        TransportError::InvalidCap,
        TransportError::StaleCap,
        TransportError::BufferOutsideCaller,
        TransportError::MessageTooLarge,
        TransportError::UnknownMethod,
        TransportError::MalformedMessage,
        TransportError::ResultsTooSmall,
        TransportError::CapQuotaExceeded,
        TransportError::WrongCapKind,
        TransportError::NotSupported,
        TransportError::MissingRight,
        TransportError::Cancelled,
        TransportError::OutOfMemory,
    ];

    /// The negative value a CQE carries in `result`.
    pub const fn code(self) -> i32 {
        match self {
            TransportError::UnknownOpcode => -1,
            TransportError::ReservedNotZero => -2,
            TransportError::InvalidCap => -3,
            TransportError::StaleCap => -4,
            TransportError::BufferOutsideCaller => -5,
            TransportError::MessageTooLarge => -6,
            TransportError::UnknownMethod => -7,
            TransportError::MalformedMessage => -8,
            TransportError::ResultsTooSmall => -9,
            TransportError::CapQuotaExceeded => -10,
            TransportError::WrongCapKind => -11,
            TransportError::NotSupported => -12,
            TransportError::MissingRight => -13,
            TransportError::Cancelled => -14,
            TransportError::OutOfMemory => -15,
        }
    }

    /// The error a CQE's `result` names; `None` for success values and for
    /// codes this ABI version does not define.
    pub const fn from_code(code: i32) -> Option<TransportError> {
        if code >= 0 || code < -(Self::ALL.len() as i32) {
            return None;
        }
        Some(Self::ALL[(-code - 1) as usize])
    }

    /// A short description in words, for logs and for people.
    pub const fn describe(self) -> &'static str {
        match self {
            TransportError::UnknownOpcode => "unknown opcode",
            TransportError::ReservedNotZero => "a flag, reserved or unused field is not zero",
            TransportError::InvalidCap => "invalid capability (null or never allocated)",
            TransportError::StaleCap => {
                "stale capability (released, or the object it named is gone)"
            }
            TransportError::BufferOutsideCaller => "buffer outside the caller's memory",
            TransportError::MessageTooLarge => "message larger than 64 KiB",
            TransportError::UnknownMethod => "unknown method for this interface",
            TransportError::MalformedMessage => "params are not a valid message for the method",
            TransportError::ResultsTooSmall => "results buffer too small",
            TransportError::CapQuotaExceeded => "capability quota exceeded",
            TransportError::WrongCapKind => "wrong kind of capability for this operation",
            TransportError::NotSupported => "not supported by this nucleus yet",
            TransportError::MissingRight => "the capability lacks the right this needs",
            TransportError::Cancelled => "cancelled by the caller",
            TransportError::OutOfMemory => "the nucleus is out of memory for now",
        }
    }
}

impl core::fmt::Display for TransportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.describe(), self.code())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn codes_are_dense_negative_and_round_trip() {
        for (i, error) in TransportError::ALL.iter().enumerate() {
            assert_eq!(error.code(), -(i as i32) - 1);
            assert_eq!(TransportError::from_code(error.code()), Some(*error));
        }
        assert_eq!(TransportError::from_code(0), None);
        assert_eq!(TransportError::from_code(5), None);
        assert_eq!(TransportError::from_code(-16), None);
        assert_eq!(TransportError::from_code(i32::MIN), None);
    }

    #[test]
    fn display_names_the_error_in_words() {
        assert_eq!(
            format!("{}", TransportError::StaleCap),
            "stale capability (released, or the object it named is gone) (-4)"
        );
        assert!(format!("{}", TransportError::NotSupported).contains("not supported"));
    }
}
