//! `sqe_validator`: an SQE (the first 64 bytes) against the regions the
//! rest describe (17 bytes each: base, size, writable), as the nucleus
//! keeps them in a [`RegionSet`].

use alloc::vec::Vec;
use core::ops::Range;

use super::Input;
use crate::entry::{CAP_ID_BYTES, Sqe};
use crate::error::TransportError;
use crate::validate::{
    Access, CallerMemory, MAX_MESSAGE_BYTES, Region, RegionError, RegionSet, Request, validate,
};

/// A guest's regions when the input names none: image, heap, ring, stack.
const GUEST: [Region; 4] = [
    Region {
        base: 0x1000_0020_0000,
        size: 0x4_0000,
        writable: false,
    },
    Region {
        base: 0x1000_0024_1000,
        size: 0x10_0000,
        writable: true,
    },
    Region {
        base: 0x1000_0034_2000,
        size: 0x1_3000,
        writable: true,
    },
    Region {
        base: 0x1000_0035_6000,
        size: 0x2_0000,
        writable: true,
    },
];

/// The region's last byte, `None` for an empty or wrapping region.
fn last_byte(region: &Region) -> Option<u64> {
    region.base.checked_add(region.size.checked_sub(1)?)
}

/// Whether some region of `regions` holds all of `range`, by a plain scan
/// with the arithmetic written out another way.
fn scan_holds(regions: &[Region], range: &Range<u64>, access: Access) -> bool {
    regions.iter().any(|region| {
        let end = region.base as u128 + region.size as u128;
        region.base <= range.start
            && range.end as u128 <= end
            && (region.writable || access == Access::Read)
    })
}

pub fn sqe_validator(data: &[u8]) {
    let mut input = Input::new(data);
    let sqe = Sqe::from_bytes(&input.take::<64>());
    assert_eq!(Sqe::from_words(sqe.to_words()), sqe);
    assert_eq!(Sqe::from_bytes(&sqe.to_bytes()), sqe);

    // The regions the set accepts, each checked against the ones before.
    let mut set = RegionSet::new();
    let mut accepted: Vec<Region> = Vec::new();
    let offered: Vec<Region> = if input.is_empty() {
        GUEST.to_vec()
    } else {
        let mut offered = Vec::new();
        while !input.is_empty() && offered.len() < 16 {
            offered.push(Region {
                base: input.u64(),
                size: input.u64(),
                writable: input.u8() & 1 == 1,
            });
        }
        offered
    };
    for region in offered {
        let expected = match last_byte(&region) {
            None => Err(RegionError::Empty),
            Some(last) => {
                let overlaps = accepted.iter().any(|other| {
                    let other_last = last_byte(other).expect("accepted regions are not empty");
                    region.base <= other_last && other.base <= last
                });
                if overlaps {
                    Err(RegionError::Overlaps)
                } else {
                    Ok(())
                }
            }
        };
        assert_eq!(
            set.insert(region),
            expected,
            "{region:?} after {accepted:?}"
        );
        if expected.is_ok() {
            accepted.push(region);
        }
    }
    assert!(set.regions().windows(2).all(|w| w[0].base < w[1].base));
    assert_eq!(set.regions().len(), accepted.len());

    // The set (binary search and its last-hit hint) answers as a scan does,
    // whatever range it was asked about before.
    let probes = [
        sqe.params_addr..sqe.params_addr.saturating_add(sqe.params_len as u64),
        sqe.results_addr..sqe.results_addr.saturating_add(sqe.results_len as u64),
        sqe.token..sqe.token.saturating_add(sqe.reserved3 >> 48),
    ];
    for range in probes.iter().filter(|r| !r.is_empty()) {
        for access in [Access::Read, Access::Write] {
            let expected = scan_holds(&accepted, range, access);
            assert_eq!(set.contains(range.clone(), access), expected, "{range:x?}");
            assert_eq!(
                CallerMemory::contains(&accepted[..], range.clone(), access),
                expected
            );
        }
    }

    let answer = validate(&sqe, &set);
    assert_eq!(validate(&sqe, &set), answer, "the hint changes nothing");
    assert_eq!(validate(&sqe, &accepted[..]), answer, "as against a scan");
    match answer {
        // What validation itself can find wrong; the rest is the nucleus's.
        Err(error) => assert!(
            matches!(
                error,
                TransportError::UnknownOpcode
                    | TransportError::ReservedNotZero
                    | TransportError::MessageTooLarge
                    | TransportError::BufferOutsideCaller
                    | TransportError::InvalidCap
                    | TransportError::MalformedMessage
            ),
            "{error:?}"
        ),
        Ok(request) => check_request(&sqe, &request, &accepted),
    }
}

/// An accepted request names only the caller's memory (writable memory
/// for what the nucleus writes), and only what the SQE said.
fn check_request(sqe: &Sqe, request: &Request, regions: &[Region]) {
    let (read, written, caps) = match *request {
        Request::Nop | Request::Release { .. } | Request::Cancel { .. } => (None, None, None),
        Request::Call {
            params,
            results,
            caps,
            ..
        } => (params, results, Some(caps)),
        Request::Recv { buffer, .. } => (None, Some(buffer), None),
        Request::Return { reply, caps, .. } => (reply, None, Some(caps)),
    };
    for (buffer, access) in [(read, Access::Read), (written, Access::Write)] {
        let Some(buffer) = buffer else { continue };
        assert!(buffer.len > 0 && buffer.len <= MAX_MESSAGE_BYTES);
        let end = buffer.addr.checked_add(buffer.len as u64).unwrap();
        assert!(
            scan_holds(regions, &(buffer.addr..end), access),
            "{buffer:x?}"
        );
    }
    if let Some(caps) = caps.filter(|c| c.count > 0) {
        // The ids end the params buffer the SQE named.
        assert_eq!(caps.count as u16, sqe.caps);
        let end = caps.addr + caps.bytes() as u64;
        assert_eq!(end, sqe.params_addr + sqe.params_len as u64);
        assert!(scan_holds(regions, &(caps.addr..end), Access::Read));
        assert_eq!(caps.bytes(), caps.count as usize * CAP_ID_BYTES);
    }
}
