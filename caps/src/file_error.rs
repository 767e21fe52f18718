//! What a Directory or File call failed on, carried as an exception's
//! `detail` (storage.capnp lists the numbers), so that a guest can answer
//! its own callers precisely (a WASI errno, for instance).

/// The codes are ABI: they never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum FileError {
    NotFound = 1,
    Exists = 2,
    NotDirectory = 3,
    IsDirectory = 4,
    NotEmpty = 5,
    NoSpace = 6,
    TooLarge = 7,
    NameTooLong = 8,
    Escapes = 9,
    Invalid = 10,
    ReadOnly = 11,
    Corrupt = 12,
    Io = 13,
}

impl FileError {
    pub const ALL: [FileError; 13] = [
        FileError::NotFound,
        FileError::Exists,
        FileError::NotDirectory,
        FileError::IsDirectory,
        FileError::NotEmpty,
        FileError::NoSpace,
        FileError::TooLarge,
        FileError::NameTooLong,
        FileError::Escapes,
        FileError::Invalid,
        FileError::ReadOnly,
        FileError::Corrupt,
        FileError::Io,
    ];

    /// The error an exception's detail names; `None` for 0 and for codes
    /// this ABI does not define.
    pub fn from_detail(detail: u16) -> Option<FileError> {
        Self::ALL.iter().copied().find(|e| *e as u16 == detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_round_trip_and_are_dense() {
        for (i, error) in FileError::ALL.iter().enumerate() {
            assert_eq!(*error as u16, i as u16 + 1);
            assert_eq!(FileError::from_detail(*error as u16), Some(*error));
        }
        assert_eq!(FileError::from_detail(0), None);
        assert_eq!(FileError::from_detail(14), None);
    }
}
