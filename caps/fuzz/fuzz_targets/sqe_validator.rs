//! Arbitrary bytes as an SQE (the first 64) and a caller region (the next
//! 17): the validator must answer without panicking, only with ABI error
//! codes, and a request it accepts must name only the caller's memory, and
//! only its writable memory for results.
#![no_main]

use caps::{
    Access, CallerMemory, MAX_MESSAGE_BYTES, Region, Request, Sqe, TransportError, validate,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sqe_bytes = [0u8; 64];
    let n = data.len().min(64);
    sqe_bytes[..n].copy_from_slice(&data[..n]);
    let sqe = Sqe::from_bytes(&sqe_bytes);
    assert_eq!(Sqe::from_words(sqe.to_words()), sqe);

    let word = |at: usize| {
        let mut le = [0u8; 8];
        if let Some(bytes) = data.get(at..at + 8) {
            le.copy_from_slice(bytes);
        }
        u64::from_le_bytes(le)
    };
    let caller = if data.len() >= 81 {
        Region {
            base: word(64),
            size: word(72),
            writable: data[80] & 1 == 1,
        }
    } else {
        Region {
            base: 0x40_0000,
            size: 0x10_0000,
            writable: true,
        }
    };

    match validate(&sqe, &caller) {
        Err(error) => assert!(TransportError::ALL.contains(&error)),
        Ok(request) => {
            let (read, written) = match request {
                Request::Nop | Request::Release { .. } => (None, None),
                Request::Call {
                    params, results, ..
                } => (params, results),
                Request::Recv { buffer, .. } => (None, Some(buffer)),
                Request::Return { reply, .. } => (reply, None),
            };
            for (buffer, access) in [(read, Access::Read), (written, Access::Write)] {
                let Some(buffer) = buffer else { continue };
                assert!(buffer.len > 0 && buffer.len <= MAX_MESSAGE_BYTES);
                let end = buffer.addr.checked_add(buffer.len as u64).unwrap();
                assert!(caller.contains(buffer.addr..end, access));
            }
        }
    }
});
