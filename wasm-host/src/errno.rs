//! WASI `errno` values (`wasi_snapshot_preview1`). Go's `syscall.Errno` on
//! wasip1 uses these numbers as they are, so the value a host returns is the
//! error a Go program sees.

use core::fmt;

macro_rules! errnos {
    ($($name:ident = $value:literal, $symbol:literal, $text:literal;)*) => {
        /// A WASI error. Success is not an `Errno`: every import here returns
        /// `Result<_, Errno>` and success becomes 0 at the wasm boundary.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum Errno {
            $(
                #[doc = $text]
                $name = $value,
            )*
        }

        impl Errno {
            /// Every errno, in numeric order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name),*];

            /// The number WASI (and Go's `syscall.Errno`) uses.
            pub const fn code(self) -> u16 {
                self as u16
            }

            /// `None` for 0 (success) and for numbers WASI does not define.
            pub fn from_code(code: u16) -> Option<Errno> {
                Errno::ALL.iter().copied().find(|errno| errno.code() == code)
            }

            /// The symbolic name, e.g. `EBADF`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Errno::$name => $symbol,)*
                }
            }

            /// What the error means, as WASI's documentation puts it.
            pub const fn description(self) -> &'static str {
                match self {
                    $(Errno::$name => $text,)*
                }
            }
        }
    };
}

errnos! {
    TooBig = 1, "E2BIG", "Argument list too long.";
    Acces = 2, "EACCES", "Permission denied.";
    AddrInUse = 3, "EADDRINUSE", "Address in use.";
    AddrNotAvail = 4, "EADDRNOTAVAIL", "Address not available.";
    AfNoSupport = 5, "EAFNOSUPPORT", "Address family not supported.";
    Again = 6, "EAGAIN", "Resource unavailable, or operation would block.";
    Already = 7, "EALREADY", "Connection already in progress.";
    BadF = 8, "EBADF", "Bad file descriptor.";
    BadMsg = 9, "EBADMSG", "Bad message.";
    Busy = 10, "EBUSY", "Device or resource busy.";
    Canceled = 11, "ECANCELED", "Operation canceled.";
    Child = 12, "ECHILD", "No child processes.";
    ConnAborted = 13, "ECONNABORTED", "Connection aborted.";
    ConnRefused = 14, "ECONNREFUSED", "Connection refused.";
    ConnReset = 15, "ECONNRESET", "Connection reset.";
    DeadLk = 16, "EDEADLK", "Resource deadlock would occur.";
    DestAddrReq = 17, "EDESTADDRREQ", "Destination address required.";
    Dom = 18, "EDOM", "Mathematics argument out of domain of function.";
    DQuot = 19, "EDQUOT", "Reserved.";
    Exist = 20, "EEXIST", "File exists.";
    Fault = 21, "EFAULT", "Bad address.";
    FBig = 22, "EFBIG", "File too large.";
    HostUnreach = 23, "EHOSTUNREACH", "Host is unreachable.";
    IdRm = 24, "EIDRM", "Identifier removed.";
    IlSeq = 25, "EILSEQ", "Illegal byte sequence.";
    InProgress = 26, "EINPROGRESS", "Operation in progress.";
    Intr = 27, "EINTR", "Interrupted function.";
    Inval = 28, "EINVAL", "Invalid argument.";
    Io = 29, "EIO", "I/O error.";
    IsConn = 30, "EISCONN", "Socket is connected.";
    IsDir = 31, "EISDIR", "Is a directory.";
    Loop = 32, "ELOOP", "Too many levels of symbolic links.";
    MFile = 33, "EMFILE", "File descriptor value too large.";
    MLink = 34, "EMLINK", "Too many links.";
    MsgSize = 35, "EMSGSIZE", "Message too large.";
    MultiHop = 36, "EMULTIHOP", "Reserved.";
    NameTooLong = 37, "ENAMETOOLONG", "Filename too long.";
    NetDown = 38, "ENETDOWN", "Network is down.";
    NetReset = 39, "ENETRESET", "Connection aborted by network.";
    NetUnreach = 40, "ENETUNREACH", "Network unreachable.";
    NFile = 41, "ENFILE", "Too many files open in system.";
    NoBufs = 42, "ENOBUFS", "No buffer space available.";
    NoDev = 43, "ENODEV", "No such device.";
    NoEnt = 44, "ENOENT", "No such file or directory.";
    NoExec = 45, "ENOEXEC", "Executable file format error.";
    NoLck = 46, "ENOLCK", "No locks available.";
    NoLink = 47, "ENOLINK", "Reserved.";
    NoMem = 48, "ENOMEM", "Not enough space.";
    NoMsg = 49, "ENOMSG", "No message of the desired type.";
    NoProtoOpt = 50, "ENOPROTOOPT", "Protocol not available.";
    NoSpc = 51, "ENOSPC", "No space left on device.";
    NoSys = 52, "ENOSYS", "Function not supported.";
    NotConn = 53, "ENOTCONN", "The socket is not connected.";
    NotDir = 54, "ENOTDIR", "Not a directory or a symbolic link to a directory.";
    NotEmpty = 55, "ENOTEMPTY", "Directory not empty.";
    NotRecoverable = 56, "ENOTRECOVERABLE", "State not recoverable.";
    NotSock = 57, "ENOTSOCK", "Not a socket.";
    NotSup = 58, "ENOTSUP", "Not supported, or operation not supported on socket.";
    NoTty = 59, "ENOTTY", "Inappropriate I/O control operation.";
    NxIo = 60, "ENXIO", "No such device or address.";
    Overflow = 61, "EOVERFLOW", "Value too large to be stored in data type.";
    OwnerDead = 62, "EOWNERDEAD", "Previous owner died.";
    Perm = 63, "EPERM", "Operation not permitted.";
    Pipe = 64, "EPIPE", "Broken pipe.";
    Proto = 65, "EPROTO", "Protocol error.";
    ProtoNoSupport = 66, "EPROTONOSUPPORT", "Protocol not supported.";
    ProtoType = 67, "EPROTOTYPE", "Protocol wrong type for socket.";
    Range = 68, "ERANGE", "Result too large.";
    RoFs = 69, "EROFS", "Read-only file system.";
    SPipe = 70, "ESPIPE", "Invalid seek.";
    Srch = 71, "ESRCH", "No such process.";
    Stale = 72, "ESTALE", "Reserved.";
    TimedOut = 73, "ETIMEDOUT", "Connection timed out.";
    TxtBsy = 74, "ETXTBSY", "Text file busy.";
    XDev = 75, "EXDEV", "Cross-device link.";
    NotCapable = 76, "ENOTCAPABLE", "Extension: Capabilities insufficient.";
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.description())
    }
}

impl core::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_from_1_to_76() {
        for (index, errno) in Errno::ALL.iter().enumerate() {
            assert_eq!(usize::from(errno.code()), index + 1, "{errno}");
        }
        assert_eq!(Errno::ALL.len(), 76);
    }

    #[test]
    fn from_code_round_trips_and_refuses_unknown_numbers() {
        for &errno in Errno::ALL {
            assert_eq!(Errno::from_code(errno.code()), Some(errno));
        }
        assert_eq!(Errno::from_code(0), None);
        assert_eq!(Errno::from_code(77), None);
    }

    #[test]
    fn names_match_the_wasi_spelling() {
        assert_eq!(Errno::BadF.name(), "EBADF");
        assert_eq!(Errno::NotCapable.name(), "ENOTCAPABLE");
        assert_eq!(Errno::RoFs.name(), "EROFS");
        assert_eq!(Errno::TooBig.name(), "E2BIG");
    }
}
