//! The image format of the read-only file tree: a POSIX ustar archive, the
//! `tar` format every tool writes (`tar --format=ustar`, `tar --format=pax`,
//! GNU tar's default, Go's `archive/tar`, Python's `tarfile`).
//!
//! What is accepted, and everything else is refused with an
//! [`ArchiveError`] saying what and where:
//!
//! - 512-byte headers with the `ustar\0` `00` (POSIX) or `ustar ` ` \0`
//!   (GNU) magic and a correct checksum (unsigned, or signed as some old
//!   tools computed it); numbers in octal or GNU base-256;
//! - regular files (`0`, NUL, and contiguous `7`), directories (`5`),
//!   symbolic links (`2`), hard links to an earlier regular file (`1`);
//! - long names and link targets through pax extended headers (`x`, keys
//!   `path`, `linkpath`, `size`, `mtime`; others ignored) or GNU `L`/`K`
//!   entries; pax global headers (`g`) are skipped;
//! - the end: the first all-zero block, after which every byte must be zero;
//!   an archive without it is truncated.
//!
//! Paths are UTF-8, relative ("./" and a leading "/" are dropped), without
//! "..", at most [`MAX_PATH`] bytes. Parents need no entry of their own;
//! they are created as needed. Two entries for one path are refused, except
//! a directory's own entry after a path inside it created it.
//!
//! [`ArchiveBuilder`] writes archives this accepts; [`validate`] checks one.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

/// Tar's unit: headers are one block, data is padded to whole blocks.
pub const BLOCK: usize = 512;

/// The longest path (or link target) accepted, as POSIX's `PATH_MAX`.
pub const MAX_PATH: usize = 4096;

/// The largest pax or GNU long-name extension accepted.
pub const MAX_EXTENSION: usize = 64 * 1024;

/// Why an archive was refused, and the offset of the header it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveError {
    /// Byte offset of the header (or of the end of the archive).
    pub offset: usize,
    pub kind: ArchiveErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveErrorKind {
    /// A header or an entry's data runs past the end of the image.
    Truncated,
    /// The image ends without the all-zero end-of-archive block.
    MissingEnd,
    /// Non-zero bytes after the end-of-archive block.
    TrailingData,
    BadChecksum {
        stored: u64,
        computed: u64,
    },
    /// The header is not a ustar (POSIX or GNU) header.
    NotUstar,
    /// A numeric field is not an octal or base-256 number.
    BadNumber {
        field: &'static str,
    },
    /// An entry type this format does not carry (devices, FIFOs, ...).
    UnsupportedType(u8),
    /// A pax extended header record is malformed.
    BadPaxRecord,
    /// A pax or GNU extension larger than [`MAX_EXTENSION`].
    ExtensionTooLarge,
    /// A pax or GNU extension header not followed by an entry.
    DanglingExtension,
    NotUtf8 {
        field: &'static str,
    },
    EmptyPath,
    /// A path with a ".." component.
    ParentComponent(String),
    PathTooLong,
    /// The path names the root, but the entry is not a directory.
    RootNotDirectory,
    /// Two entries for the same path.
    Duplicate(String),
    /// A path goes through something that is not a directory.
    ParentNotDirectory(String),
    /// A hard link's target is not an earlier regular file.
    BadHardLink {
        path: String,
        target: String,
    },
    /// A directory or link entry with data.
    UnexpectedData(String),
    /// More entries than node ids.
    TooManyEntries,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad archive at byte {}: ", self.offset)?;
        match &self.kind {
            ArchiveErrorKind::Truncated => write!(f, "truncated: an entry runs past the end"),
            ArchiveErrorKind::MissingEnd => write!(f, "no end-of-archive block (truncated?)"),
            ArchiveErrorKind::TrailingData => {
                write!(f, "non-zero bytes after the end-of-archive block")
            }
            ArchiveErrorKind::BadChecksum { stored, computed } => write!(
                f,
                "header checksum is {stored:o} but the header sums to {computed:o}"
            ),
            ArchiveErrorKind::NotUstar => write!(f, "not a ustar header (wrong magic)"),
            ArchiveErrorKind::BadNumber { field } => write!(f, "the {field} field is not a number"),
            ArchiveErrorKind::UnsupportedType(kind) => write!(
                f,
                "unsupported entry type {:?} (only files, directories and links)",
                char::from(*kind)
            ),
            ArchiveErrorKind::BadPaxRecord => write!(f, "malformed pax extended header"),
            ArchiveErrorKind::ExtensionTooLarge => {
                write!(f, "extension header larger than {MAX_EXTENSION} bytes")
            }
            ArchiveErrorKind::DanglingExtension => {
                write!(f, "extension header not followed by an entry")
            }
            ArchiveErrorKind::NotUtf8 { field } => write!(f, "the {field} is not UTF-8"),
            ArchiveErrorKind::EmptyPath => write!(f, "empty path"),
            ArchiveErrorKind::ParentComponent(path) => {
                write!(f, "path {path:?} has a \"..\" component")
            }
            ArchiveErrorKind::PathTooLong => write!(f, "path longer than {MAX_PATH} bytes"),
            ArchiveErrorKind::RootNotDirectory => write!(f, "the root entry is not a directory"),
            ArchiveErrorKind::Duplicate(path) => write!(f, "second entry for {path:?}"),
            ArchiveErrorKind::ParentNotDirectory(path) => {
                write!(f, "a parent of {path:?} is not a directory")
            }
            ArchiveErrorKind::BadHardLink { path, target } => write!(
                f,
                "hard link {path:?} -> {target:?}: the target is not an earlier regular file"
            ),
            ArchiveErrorKind::UnexpectedData(path) => {
                write!(f, "{path:?} is not a regular file but has data")
            }
            ArchiveErrorKind::TooManyEntries => write!(f, "too many entries"),
        }
    }
}

impl core::error::Error for ArchiveError {}

/// What one archive entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind<'a> {
    /// A regular file; its bytes are `image[data]`.
    File {
        data: Range<usize>,
    },
    Directory,
    Symlink {
        target: Cow<'a, str>,
    },
    /// Another name for an earlier regular file.
    HardLink {
        target: Cow<'a, str>,
    },
}

/// One entry of an archive, as [`entries`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Offset of the entry's first header (its extension header, if any).
    pub offset: usize,
    /// The path as the archive spells it (see [`components`]).
    pub path: Cow<'a, str>,
    /// Modification time, seconds since 1970.
    pub mtime: u64,
    pub kind: EntryKind<'a>,
}

/// Reads the entries of a ustar image in order. After the first error the
/// iterator ends; the structure checks between entries (duplicates,
/// parents) are the tree's, see `Tree::from_ustar`.
pub fn entries(image: &[u8]) -> Entries<'_> {
    Entries {
        image,
        offset: 0,
        done: false,
    }
}

/// Checks that `image` is an archive the tree accepts.
pub fn validate(image: &[u8]) -> Result<(), ArchiveError> {
    crate::tree::Tree::check_ustar(image)
}

/// Splits an archive path into its components, dropping "", "." and a
/// leading "/"; refuses ".." and over-long paths. No components means the
/// root.
pub fn components(path: &str) -> Result<Vec<&str>, ArchiveErrorKind> {
    if path.len() > MAX_PATH {
        return Err(ArchiveErrorKind::PathTooLong);
    }
    if path.is_empty() {
        return Err(ArchiveErrorKind::EmptyPath);
    }
    let mut out = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(ArchiveErrorKind::ParentComponent(path.to_string())),
            name => out.push(name),
        }
    }
    Ok(out)
}

pub struct Entries<'a> {
    image: &'a [u8],
    offset: usize,
    done: bool,
}

/// Header field ranges (POSIX ustar).
mod field {
    use core::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub const CHECKSUM: Range<usize> = 148..156;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    pub const MAGIC: Range<usize> = 257..263;
    pub const VERSION: Range<usize> = 263..265;
    pub const PREFIX: Range<usize> = 345..500;
}

const POSIX_MAGIC: &[u8] = b"ustar\0";
const POSIX_VERSION: &[u8] = b"00";
const GNU_MAGIC: &[u8] = b"ustar ";
const GNU_VERSION: &[u8] = b" \0";

/// What extension headers said about the next entry.
#[derive(Default)]
struct Pending<'a> {
    /// Offset of the first extension header, which the entry reports.
    offset: Option<usize>,
    path: Option<Cow<'a, str>>,
    linkpath: Option<Cow<'a, str>>,
    size: Option<u64>,
    mtime: Option<u64>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.read_entry();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result.transpose()
    }
}

impl<'a> Entries<'a> {
    fn fail<T>(&self, offset: usize, kind: ArchiveErrorKind) -> Result<T, ArchiveError> {
        Err(ArchiveError { offset, kind })
    }

    /// The next real entry, with any extension headers before it applied;
    /// `None` at a correct end of archive.
    fn read_entry(&mut self) -> Result<Option<Entry<'a>>, ArchiveError> {
        let mut pending = Pending::default();
        loop {
            let offset = self.offset;
            let Some(header) = self.image.get(offset..offset.saturating_add(BLOCK)) else {
                let kind = if offset >= self.image.len() && pending.offset.is_none() {
                    ArchiveErrorKind::MissingEnd
                } else if pending.offset.is_some() && offset >= self.image.len() {
                    ArchiveErrorKind::DanglingExtension
                } else {
                    // A partial block at the end: end marker missing or cut.
                    if self.image[offset..].iter().all(|&byte| byte == 0)
                        && pending.offset.is_none()
                    {
                        ArchiveErrorKind::MissingEnd
                    } else {
                        ArchiveErrorKind::Truncated
                    }
                };
                // The last entry's padding may reach past the image: the
                // error is at its end, not beyond.
                return self.fail(offset.min(self.image.len()), kind);
            };
            if header.iter().all(|&byte| byte == 0) {
                if let Some(extension) = pending.offset {
                    return self.fail(extension, ArchiveErrorKind::DanglingExtension);
                }
                if self.image[offset..].iter().any(|&byte| byte != 0) {
                    return self.fail(offset, ArchiveErrorKind::TrailingData);
                }
                return Ok(None);
            }
            check_header(header).map_err(|kind| ArchiveError { offset, kind })?;
            let typeflag = header[field::TYPEFLAG];
            let header_size = number(&header[field::SIZE], "size")
                .map_err(|kind| ArchiveError { offset, kind })?;
            let is_extension = matches!(typeflag, b'x' | b'g' | b'L' | b'K');
            // A pax size applies to the entry, not to an extension header.
            let size = match (is_extension, pending.size) {
                (false, Some(size)) => size,
                _ => header_size,
            };
            let data = self.data_range(offset, size)?;
            let next = data
                .end
                .checked_next_multiple_of(BLOCK)
                .ok_or(ArchiveError {
                    offset,
                    kind: ArchiveErrorKind::Truncated,
                })?;
            self.offset = next;
            let bytes = &self.image[data.clone()];
            if is_extension && bytes.len() > MAX_EXTENSION {
                return self.fail(offset, ArchiveErrorKind::ExtensionTooLarge);
            }
            match typeflag {
                b'x' => {
                    pending.offset.get_or_insert(offset);
                    parse_pax(bytes, &mut pending).map_err(|kind| ArchiveError { offset, kind })?;
                    continue;
                }
                b'g' => continue,
                b'L' | b'K' => {
                    pending.offset.get_or_insert(offset);
                    let text = until_nul(bytes);
                    let text = core::str::from_utf8(text).map_err(|_| ArchiveError {
                        offset,
                        kind: ArchiveErrorKind::NotUtf8 {
                            field: "GNU long name",
                        },
                    })?;
                    if typeflag == b'L' {
                        pending.path = Some(Cow::Borrowed(text));
                    } else {
                        pending.linkpath = Some(Cow::Borrowed(text));
                    }
                    continue;
                }
                _ => {}
            }
            let entry_offset = pending.offset.unwrap_or(offset);
            let path = match pending.path.take() {
                Some(path) => path,
                None => header_path(header).map_err(|kind| ArchiveError { offset, kind })?,
            };
            let mtime = match pending.mtime {
                Some(mtime) => mtime,
                None => number(&header[field::MTIME], "mtime")
                    .map_err(|kind| ArchiveError { offset, kind })?,
            };
            let link_target = |pending: &mut Pending<'a>| -> Result<Cow<'a, str>, ArchiveError> {
                match pending.linkpath.take() {
                    Some(target) => Ok(target),
                    None => core::str::from_utf8(until_nul(&header[field::LINKNAME]))
                        .map(Cow::Borrowed)
                        .map_err(|_| ArchiveError {
                            offset,
                            kind: ArchiveErrorKind::NotUtf8 { field: "link name" },
                        }),
                }
            };
            let kind = match typeflag {
                b'0' | b'\0' | b'7' => EntryKind::File { data },
                b'5' | b'1' | b'2' if size != 0 => {
                    return self.fail(
                        entry_offset,
                        ArchiveErrorKind::UnexpectedData(path.into_owned()),
                    );
                }
                b'5' => EntryKind::Directory,
                b'1' => EntryKind::HardLink {
                    target: link_target(&mut pending)?,
                },
                b'2' => EntryKind::Symlink {
                    target: link_target(&mut pending)?,
                },
                other => return self.fail(offset, ArchiveErrorKind::UnsupportedType(other)),
            };
            return Ok(Some(Entry {
                offset: entry_offset,
                path,
                mtime,
                kind,
            }));
        }
    }

    /// The data after the header at `offset`, which must lie in the image.
    fn data_range(&self, offset: usize, size: u64) -> Result<Range<usize>, ArchiveError> {
        let truncated = ArchiveError {
            offset,
            kind: ArchiveErrorKind::Truncated,
        };
        let start = offset + BLOCK;
        let size = usize::try_from(size).map_err(|_| truncated.clone())?;
        let end = start.checked_add(size).ok_or(truncated.clone())?;
        if end > self.image.len() {
            return Err(truncated);
        }
        Ok(start..end)
    }
}

fn check_header(header: &[u8]) -> Result<(), ArchiveErrorKind> {
    let magic = &header[field::MAGIC];
    let version = &header[field::VERSION];
    let posix = magic == POSIX_MAGIC && version == POSIX_VERSION;
    let gnu = magic == GNU_MAGIC && version == GNU_VERSION;
    if !posix && !gnu {
        return Err(ArchiveErrorKind::NotUstar);
    }
    let stored = number(&header[field::CHECKSUM], "checksum")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (index, &byte) in header.iter().enumerate() {
        let byte = if field::CHECKSUM.contains(&index) {
            b' '
        } else {
            byte
        };
        unsigned += u64::from(byte);
        signed += i64::from(byte as i8);
    }
    if stored != unsigned && i64::try_from(stored) != Ok(signed) {
        return Err(ArchiveErrorKind::BadChecksum {
            stored,
            computed: unsigned,
        });
    }
    Ok(())
}

/// The path a header names by itself: POSIX headers may split it into
/// prefix and name; GNU headers use the prefix bytes for other things.
fn header_path(header: &[u8]) -> Result<Cow<'_, str>, ArchiveErrorKind> {
    let utf8 = |bytes| {
        core::str::from_utf8(bytes).map_err(|_| ArchiveErrorKind::NotUtf8 { field: "path" })
    };
    let name = utf8(until_nul(&header[field::NAME]))?;
    let prefix = until_nul(&header[field::PREFIX]);
    if header[field::MAGIC] != *POSIX_MAGIC || prefix.is_empty() {
        return Ok(Cow::Borrowed(name));
    }
    Ok(Cow::Owned(format!("{}/{name}", utf8(prefix)?)))
}

/// Bytes up to the first NUL.
fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&byte| byte == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// A numeric header field: octal digits with optional leading spaces and a
/// space or NUL terminator (empty is 0), or GNU base-256 (high bit set).
fn number(bytes: &[u8], name: &'static str) -> Result<u64, ArchiveErrorKind> {
    let bad = ArchiveErrorKind::BadNumber { field: name };
    if let Some((&first, rest)) = bytes.split_first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return Err(bad); // negative
        }
        let mut value = u64::from(first & 0x3f);
        for &byte in rest {
            value = value
                .checked_mul(256)
                .and_then(|value| value.checked_add(u64::from(byte)))
                .ok_or(bad.clone())?;
        }
        return Ok(value);
    }
    let mut digits = bytes.iter().skip_while(|&&byte| byte == b' ').peekable();
    let mut value: u64 = 0;
    while let Some(&&byte) = digits.peek() {
        if !(b'0'..=b'7').contains(&byte) {
            break;
        }
        value = value
            .checked_mul(8)
            .and_then(|value| value.checked_add(u64::from(byte - b'0')))
            .ok_or(bad.clone())?;
        digits.next();
    }
    if digits.all(|&byte| byte == b' ' || byte == 0) {
        Ok(value)
    } else {
        Err(bad)
    }
}

/// Applies the records of a pax extended header: "LEN KEY=VALUE\n" each,
/// LEN counting the whole record.
fn parse_pax<'a>(mut bytes: &'a [u8], pending: &mut Pending<'a>) -> Result<(), ArchiveErrorKind> {
    let bad = ArchiveErrorKind::BadPaxRecord;
    while !bytes.is_empty() {
        let space = bytes
            .iter()
            .position(|&byte| byte == b' ')
            .ok_or(bad.clone())?;
        let len: usize = core::str::from_utf8(&bytes[..space])
            .ok()
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
            .ok_or(bad.clone())?;
        if len <= space + 1 || len > bytes.len() || bytes[len - 1] != b'\n' {
            return Err(bad);
        }
        let record = &bytes[space + 1..len - 1];
        bytes = &bytes[len..];
        let equals = record
            .iter()
            .position(|&byte| byte == b'=')
            .ok_or(bad.clone())?;
        let (key, value) = (&record[..equals], &record[equals + 1..]);
        let text = || {
            core::str::from_utf8(value).map_err(|_| ArchiveErrorKind::NotUtf8 {
                field: "pax record",
            })
        };
        match key {
            b"path" => pending.path = Some(Cow::Borrowed(text()?)),
            b"linkpath" => pending.linkpath = Some(Cow::Borrowed(text()?)),
            b"size" => pending.size = Some(decimal(text()?).ok_or(bad.clone())?),
            // Fractional seconds are dropped.
            b"mtime" => {
                let seconds = text()?.split('.').next().unwrap_or("");
                pending.mtime = Some(decimal(seconds).ok_or(bad.clone())?);
            }
            _ => {}
        }
    }
    Ok(())
}

fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Why [`ArchiveBuilder`] refused an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    InvalidPath {
        path: String,
        reason: ArchiveErrorKind,
    },
    /// The path was added before.
    Duplicate(String),
    /// A parent of the path was added as something other than a directory.
    ParentNotDirectory(String),
    /// Only directories can be the root.
    RootNotDirectory,
    /// A link target that is empty or longer than [`MAX_PATH`].
    InvalidTarget(String),
    /// A file of 8 GiB or more.
    TooLarge(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidPath { path, reason } => {
                write!(f, "cannot archive {path:?}: ")?;
                match reason {
                    ArchiveErrorKind::EmptyPath => write!(f, "empty path"),
                    ArchiveErrorKind::PathTooLong => write!(f, "longer than {MAX_PATH} bytes"),
                    _ => write!(f, "it has a \"..\" component"),
                }
            }
            BuildError::Duplicate(path) => write!(f, "{path:?} is already in the archive"),
            BuildError::ParentNotDirectory(path) => {
                write!(f, "a parent of {path:?} is not a directory")
            }
            BuildError::RootNotDirectory => write!(f, "only a directory can be the root"),
            BuildError::InvalidTarget(path) => write!(f, "bad link target for {path:?}"),
            BuildError::TooLarge(path) => write!(f, "{path:?} is 8 GiB or larger"),
        }
    }
}

impl core::error::Error for BuildError {}

/// Writes ustar archives that [`validate`] accepts: POSIX headers, pax
/// records for paths and link targets too long for them, directories with
/// mode 0755, files 0644, owner 0. Entries keep the order they are added in,
/// so the same calls give the same bytes.
#[derive(Default)]
pub struct ArchiveBuilder {
    out: Vec<u8>,
    /// Every path added so far (normalised), and whether it is a directory.
    added: alloc::collections::BTreeMap<String, bool>,
}

/// The largest size an octal size field holds (11 digits).
const MAX_OCTAL_11: u64 = 0o777_7777_7777;

impl ArchiveBuilder {
    pub fn new() -> ArchiveBuilder {
        ArchiveBuilder::default()
    }

    /// Adds a directory; `"."` is the root (to give it an mtime).
    pub fn directory(&mut self, path: &str, mtime: u64) -> Result<&mut Self, BuildError> {
        let name = self.claim(path, true)?;
        let name = if name.is_empty() {
            String::from("./")
        } else {
            name + "/"
        };
        self.entry(&name, b'5', &[], "", mtime, 0o755);
        Ok(self)
    }

    pub fn file(
        &mut self,
        path: &str,
        contents: &[u8],
        mtime: u64,
    ) -> Result<&mut Self, BuildError> {
        if contents.len() as u64 > MAX_OCTAL_11 {
            return Err(BuildError::TooLarge(path.to_string()));
        }
        let name = self.claim(path, false)?;
        self.entry(&name, b'0', contents, "", mtime, 0o644);
        Ok(self)
    }

    /// Adds a symbolic link to `target`, which is stored as given.
    pub fn symlink(
        &mut self,
        path: &str,
        target: &str,
        mtime: u64,
    ) -> Result<&mut Self, BuildError> {
        if target.is_empty() || target.len() > MAX_PATH || target.contains('\0') {
            return Err(BuildError::InvalidTarget(path.to_string()));
        }
        let name = self.claim(path, false)?;
        self.entry(&name, b'2', &[], target, mtime, 0o777);
        Ok(self)
    }

    /// The archive, with its end-of-archive blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 2 * BLOCK, 0);
        self.out
    }

    /// Checks a new path and records it; returns it normalised ("" for the
    /// root).
    fn claim(&mut self, path: &str, is_directory: bool) -> Result<String, BuildError> {
        let invalid = |reason| BuildError::InvalidPath {
            path: path.to_string(),
            reason,
        };
        if path.contains('\0') {
            return Err(invalid(ArchiveErrorKind::NotUtf8 { field: "path" }));
        }
        let parts = components(path).map_err(invalid)?;
        if parts.is_empty() && !is_directory {
            return Err(BuildError::RootNotDirectory);
        }
        let normalised = parts.join("/");
        if self.added.contains_key(&normalised) {
            return Err(BuildError::Duplicate(path.to_string()));
        }
        for end in 1..parts.len() {
            if self.added.get(&parts[..end].join("/")) == Some(&false) {
                return Err(BuildError::ParentNotDirectory(path.to_string()));
            }
        }
        self.added.insert(normalised.clone(), is_directory);
        Ok(normalised)
    }

    fn entry(&mut self, path: &str, typeflag: u8, data: &[u8], link: &str, mtime: u64, mode: u64) {
        let split = split_ustar_name(path);
        let mut pax = String::new();
        if split.is_none() {
            pax_record(&mut pax, "path", path);
        }
        if link.len() > field::LINKNAME.len() {
            pax_record(&mut pax, "linkpath", link);
        }
        if !pax.is_empty() {
            let name = format!(
                "PaxHeaders/{}",
                path.rsplit('/')
                    .find(|part| !part.is_empty())
                    .unwrap_or("entry")
            );
            let name = truncate_to(&name, field::NAME.len());
            self.header(("", name), b'x', pax.len() as u64, mtime, "", 0o644);
            self.data(pax.as_bytes());
        }
        let (prefix, name) = split.unwrap_or(("", truncate_to(path, field::NAME.len())));
        let link = truncate_to(link, field::LINKNAME.len());
        self.header(
            (prefix, name),
            typeflag,
            data.len() as u64,
            mtime,
            link,
            mode,
        );
        self.data(data);
    }

    fn header(
        &mut self,
        (prefix, name): (&str, &str),
        typeflag: u8,
        size: u64,
        mtime: u64,
        link: &str,
        mode: u64,
    ) {
        let mut header = [0u8; BLOCK];
        header[field::NAME][..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut header[100..108], mode);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[field::SIZE], size);
        octal(&mut header[field::MTIME], mtime.min(MAX_OCTAL_11));
        header[field::TYPEFLAG] = typeflag;
        header[field::LINKNAME][..link.len()].copy_from_slice(link.as_bytes());
        header[field::MAGIC].copy_from_slice(POSIX_MAGIC);
        header[field::VERSION].copy_from_slice(POSIX_VERSION);
        octal(&mut header[329..337], 0);
        octal(&mut header[337..345], 0);
        header[field::PREFIX][..prefix.len()].copy_from_slice(prefix.as_bytes());
        header[field::CHECKSUM].fill(b' ');
        let sum: u64 = header.iter().map(|&byte| u64::from(byte)).sum();
        let checksum = format!("{sum:06o}\0 ");
        header[field::CHECKSUM].copy_from_slice(checksum.as_bytes());
        self.out.extend_from_slice(&header);
    }

    fn data(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let padded = self.out.len().next_multiple_of(BLOCK);
        self.out.resize(padded, 0);
    }
}

/// Splits a path into ustar's 155-byte prefix and 100-byte name, at a '/'.
fn split_ustar_name(path: &str) -> Option<(&str, &str)> {
    let (name_max, prefix_max) = (field::NAME.len(), field::PREFIX.len());
    if path.len() <= name_max {
        return Some(("", path));
    }
    path.match_indices('/')
        .map(|(index, _)| (&path[..index], &path[index + 1..]))
        .find(|(prefix, name)| {
            prefix.len() <= prefix_max && !name.is_empty() && name.len() <= name_max
        })
}

/// The longest prefix of `text` of at most `max` bytes on a char boundary.
fn truncate_to(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An octal number filling `field` but its last byte, which is NUL.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    field[width] = 0;
}

/// Appends "LEN KEY=VALUE\n", where LEN counts the whole record.
fn pax_record(out: &mut String, key: &str, value: &str) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.push_str(&format!("{len} {key}={value}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(image: &[u8]) -> Result<Vec<Entry<'_>>, ArchiveError> {
        entries(image).collect()
    }

    /// One header block with the given fields and a correct checksum.
    fn raw_header(name: &str, typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut builder = ArchiveBuilder::new();
        builder.header(("", name), typeflag, size, 0, "", 0o644);
        builder.out.try_into().unwrap()
    }

    fn fix_checksum(header: &mut [u8]) {
        header[field::CHECKSUM].fill(b' ');
        let sum: u64 = header[..BLOCK].iter().map(|&byte| u64::from(byte)).sum();
        header[field::CHECKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn builder_output_reads_back_entry_for_entry() {
        let mut builder = ArchiveBuilder::new();
        builder
            .directory("etc", 1_700_000_000)
            .unwrap()
            .file("etc/hosts", b"127.0.0.1 localhost\n", 1_700_000_001)
            .unwrap()
            .symlink("hosts", "etc/hosts", 5)
            .unwrap()
            .file("empty", b"", 0)
            .unwrap();
        let image = builder.finish();
        assert_eq!(image.len() % BLOCK, 0);
        let entries = collect(&image).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].path, "etc/");
        assert_eq!(entries[0].kind, EntryKind::Directory);
        assert_eq!(entries[0].mtime, 1_700_000_000);
        assert_eq!(entries[1].path, "etc/hosts");
        let EntryKind::File { data } = &entries[1].kind else {
            panic!("not a file: {:?}", entries[1]);
        };
        assert_eq!(&image[data.clone()], b"127.0.0.1 localhost\n");
        assert_eq!(
            entries[2].kind,
            EntryKind::Symlink {
                target: Cow::Borrowed("etc/hosts")
            }
        );
        assert_eq!(entries[3].kind, EntryKind::File { data: 2560..2560 });
    }

    #[test]
    fn long_paths_use_the_prefix_field_or_a_pax_record() {
        let medium = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let long = format!("{}/{}", "d".repeat(200), "f".repeat(150));
        let link_target = "t".repeat(300);
        let mut builder = ArchiveBuilder::new();
        builder.file(&medium, b"m", 0).unwrap();
        builder.file(&long, b"l", 0).unwrap();
        builder.symlink("link", &link_target, 0).unwrap();
        let image = builder.finish();
        let entries = collect(&image).unwrap();
        assert_eq!(entries[0].path, medium);
        assert_eq!(entries[1].path, long);
        assert_eq!(
            entries[2].kind,
            EntryKind::Symlink {
                target: Cow::Owned(link_target)
            }
        );
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let mut out = String::new();
        pax_record(&mut out, "path", "abc");
        assert_eq!(out, "12 path=abc\n");
        let mut out = String::new();
        pax_record(&mut out, "path", &"x".repeat(90));
        assert_eq!(
            out.len(),
            out.split(' ').next().unwrap().parse::<usize>().unwrap()
        );
    }

    #[test]
    fn the_builder_refuses_what_the_reader_would() {
        let mut builder = ArchiveBuilder::new();
        builder.file("a", b"", 0).unwrap();
        assert_eq!(
            builder.file("a", b"", 0).err(),
            Some(BuildError::Duplicate("a".into()))
        );
        assert_eq!(
            builder.file("./a/", b"", 0).err(),
            Some(BuildError::Duplicate("./a/".into()))
        );
        assert_eq!(
            builder.file("a/b", b"", 0).err(),
            Some(BuildError::ParentNotDirectory("a/b".into()))
        );
        assert!(matches!(
            builder.file("x/../y", b"", 0),
            Err(BuildError::InvalidPath { .. })
        ));
        assert!(matches!(
            builder.file("", b"", 0),
            Err(BuildError::InvalidPath { .. })
        ));
        assert_eq!(
            builder.file(".", b"", 0).err(),
            Some(BuildError::RootNotDirectory)
        );
        assert!(builder.symlink("s", "", 0).is_err());
        builder.directory(".", 7).unwrap();
        assert!(validate(&builder.finish()).is_ok());
    }

    #[test]
    fn an_empty_archive_is_two_zero_blocks() {
        let image = ArchiveBuilder::new().finish();
        assert_eq!(image, [0; 2 * BLOCK]);
        assert_eq!(collect(&image).unwrap(), []);
    }

    #[test]
    fn a_missing_end_is_refused() {
        let mut builder = ArchiveBuilder::new();
        builder.file("a", b"data", 0).unwrap();
        let image = builder.finish();
        let cut = &image[..2 * BLOCK];
        assert_eq!(collect(cut).unwrap_err().kind, ArchiveErrorKind::MissingEnd);
        assert_eq!(collect(&[]).unwrap_err().kind, ArchiveErrorKind::MissingEnd);
    }

    #[test]
    fn truncated_data_is_refused() {
        let mut builder = ArchiveBuilder::new();
        builder.file("a", &[7; 1000], 0).unwrap();
        let image = builder.finish();
        let error = collect(&image[..BLOCK + 600]).unwrap_err();
        assert_eq!(
            error,
            ArchiveError {
                offset: 0,
                kind: ArchiveErrorKind::Truncated
            }
        );
        let error = collect(&image[..BLOCK + 1024 + 100]).unwrap_err();
        assert_eq!(error.kind, ArchiveErrorKind::MissingEnd);
    }

    #[test]
    fn data_unpadded_at_the_end_is_refused_at_the_end() {
        let mut image = raw_header("a", b'0', 10).to_vec();
        image.extend_from_slice(b"0123456789");
        assert_eq!(
            collect(&image).unwrap_err(),
            ArchiveError {
                offset: image.len(),
                kind: ArchiveErrorKind::MissingEnd
            }
        );
    }

    #[test]
    fn a_flipped_byte_breaks_the_checksum() {
        let mut builder = ArchiveBuilder::new();
        builder.file("a", b"x", 0).unwrap();
        let mut image = builder.finish();
        image[0] = b'b';
        assert!(matches!(
            collect(&image).unwrap_err().kind,
            ArchiveErrorKind::BadChecksum { .. }
        ));
    }

    #[test]
    fn signed_checksums_from_old_tools_are_accepted() {
        let mut header = raw_header("\u{e9}t\u{e9}", b'0', 0);
        header[field::CHECKSUM].fill(b' ');
        let signed: i64 = header.iter().map(|&byte| i64::from(byte as i8)).sum();
        header[field::CHECKSUM].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        let mut image = header.to_vec();
        image.resize(3 * BLOCK, 0);
        assert_eq!(collect(&image).unwrap()[0].path, "\u{e9}t\u{e9}");
    }

    #[test]
    fn wrong_magic_and_bad_numbers_are_refused() {
        let mut header = raw_header("a", b'0', 0);
        header[field::MAGIC].copy_from_slice(b"nope!\0");
        fix_checksum(&mut header);
        let mut image = header.to_vec();
        image.resize(3 * BLOCK, 0);
        assert_eq!(
            collect(&image).unwrap_err().kind,
            ArchiveErrorKind::NotUstar
        );

        let mut header = raw_header("a", b'0', 0);
        header[field::SIZE].copy_from_slice(b"0000000009x\0");
        fix_checksum(&mut header);
        let mut image = header.to_vec();
        image.resize(3 * BLOCK, 0);
        assert_eq!(
            collect(&image).unwrap_err().kind,
            ArchiveErrorKind::BadNumber { field: "size" }
        );
    }

    #[test]
    fn numbers_accept_spaces_nul_and_base_256() {
        assert_eq!(number(b"  0000755 \0", "mode"), Ok(0o755));
        assert_eq!(number(b"\0\0\0\0", "mtime"), Ok(0));
        assert_eq!(number(&[0x80, 0, 0, 1, 0], "size"), Ok(256));
        assert!(number(&[0xc0, 0, 0, 1], "size").is_err());
        assert!(
            number(
                &[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                "size"
            )
            .is_err()
        );
        assert!(number(b"77777777777777777777777", "size").is_err());
        assert!(number(b"12 3", "size").is_err());
    }

    #[test]
    fn device_entries_are_unsupported() {
        let mut image = raw_header("dev/null", b'3', 0).to_vec();
        image.resize(3 * BLOCK, 0);
        assert_eq!(
            collect(&image).unwrap_err().kind,
            ArchiveErrorKind::UnsupportedType(b'3')
        );
    }

    #[test]
    fn directories_with_data_are_refused() {
        let mut image = raw_header("d/", b'5', 10).to_vec();
        image.resize(4 * BLOCK, 0);
        assert_eq!(
            collect(&image).unwrap_err().kind,
            ArchiveErrorKind::UnexpectedData("d/".into())
        );
    }

    #[test]
    fn trailing_garbage_after_the_end_is_refused() {
        let mut image = ArchiveBuilder::new().finish();
        image.push(1);
        assert_eq!(
            collect(&image).unwrap_err().kind,
            ArchiveErrorKind::TrailingData
        );
    }

    #[test]
    fn gnu_long_names_apply_to_the_next_entry() {
        let long = "n".repeat(300);
        let mut header = raw_header("././@LongLink", b'L', long.len() as u64 + 1);
        header[field::MAGIC].copy_from_slice(GNU_MAGIC);
        header[field::VERSION].copy_from_slice(GNU_VERSION);
        fix_checksum(&mut header);
        let mut image = header.to_vec();
        image.extend_from_slice(long.as_bytes());
        image.push(0);
        image.resize(image.len().next_multiple_of(BLOCK), 0);
        image.extend_from_slice(&raw_header("truncated-name", b'0', 0));
        image.resize(image.len() + 2 * BLOCK, 0);
        let entries = collect(&image).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].path, long);
        assert_eq!(entries[0].offset, 0);
    }

    #[test]
    fn an_extension_without_an_entry_is_refused() {
        let mut image = raw_header("PaxHeaders/x", b'x', 12).to_vec();
        image.extend_from_slice(b"12 path=abc\n");
        image.resize(4 * BLOCK, 0);
        assert_eq!(
            collect(&image).unwrap_err().kind,
            ArchiveErrorKind::DanglingExtension
        );
    }

    #[test]
    fn malformed_pax_records_are_refused() {
        for records in [
            &b"99 path=abc\n"[..],
            b"12 path=abc!",
            b"x path=abc\n",
            b"8 pathx\n",
            b"3 a\n",
        ] {
            let mut pending = Pending::default();
            assert_eq!(
                parse_pax(records, &mut pending),
                Err(ArchiveErrorKind::BadPaxRecord),
                "{:?}",
                core::str::from_utf8(records)
            );
        }
        let mut pending = Pending::default();
        parse_pax(
            b"16 mtime=12.345\n11 size=42\n14 comment=hi\n",
            &mut pending,
        )
        .unwrap();
        assert_eq!((pending.mtime, pending.size), (Some(12), Some(42)));
    }

    #[test]
    fn components_drop_dots_and_slashes_and_refuse_dotdot() {
        assert_eq!(components("./a//b/./c/").unwrap(), ["a", "b", "c"]);
        assert_eq!(components("/abs").unwrap(), ["abs"]);
        assert_eq!(components("./").unwrap(), [] as [&str; 0]);
        assert!(matches!(
            components("a/../b"),
            Err(ArchiveErrorKind::ParentComponent(_))
        ));
        assert_eq!(components(""), Err(ArchiveErrorKind::EmptyPath));
        assert_eq!(
            components(&"a".repeat(MAX_PATH + 1)),
            Err(ArchiveErrorKind::PathTooLong)
        );
    }
}
