//! QEMU's `isa-debug-exit` device: the nucleus writes a byte to its port and
//! QEMU exits with status `(byte << 1) | 1`. Test images use it to report a
//! result; the harness on the host decodes the status with [`decode_status`].

/// I/O port of the `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// What the nucleus reports when it ends a test run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0x10,
    Failure = 0x11,
}

impl ExitCode {
    /// The process status QEMU exits with after the nucleus writes this code.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }
}

/// Maps a QEMU exit status back to the nucleus's exit code, if it is one.
pub fn decode_status(status: i32) -> Option<ExitCode> {
    [ExitCode::Success, ExitCode::Failure]
        .into_iter()
        .find(|code| code.qemu_status() == status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_differ_from_plain_exits() {
        assert_eq!(ExitCode::Success.qemu_status(), 33);
        assert_eq!(ExitCode::Failure.qemu_status(), 35);
        assert_eq!(decode_status(33), Some(ExitCode::Success));
        assert_eq!(decode_status(35), Some(ExitCode::Failure));
        // QEMU's own exits (0 on shutdown, 1 on error) are never mistaken for ours.
        assert_eq!(decode_status(0), None);
        assert_eq!(decode_status(1), None);
    }
}
