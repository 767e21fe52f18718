//! The volumes the appliance mounted for a guest (StartInfo's `mounts`):
//! Directory and File capabilities (caps/schema/storage.capnp), called by
//! id for runtimes that keep their own table of them (the WASI layer).
//! Every path is relative to the directory called; a failure the service
//! names is an exception whose detail is a [`FileError`] ([`file_error`]).

use alloc::vec::Vec;

use caps::interfaces::{directory, file};
use caps::{CapId, FileError, MAX_MESSAGE_BYTES, TransportError};

use crate::ring::{CallError, call, call_expecting, call_with_caps};

/// Most bytes one read or write carries (a message's limit, less
/// framing); longer ones are split.
pub const MAX_IO_BYTES: usize = 60 * 1024;

/// What a failed call says went wrong with the file, if it says.
pub fn file_error(error: &CallError) -> Option<FileError> {
    match error {
        CallError::Exception(exception) => FileError::from_detail(exception.detail),
        CallError::Transport(_) => None,
    }
}

/// What [`open`] opened: a File, or a Directory when `directory`.
pub struct Opened {
    pub cap: CapId,
    pub directory: bool,
    pub size: u64,
}

pub fn open(dir: CapId, params: &directory::OpenParams) -> Result<Opened, CallError> {
    let (results, caps) = call_with_caps::<directory::Open>(dir, params, &[], false)?;
    match caps.as_slice() {
        [cap] => Ok(Opened {
            cap: *cap,
            directory: results.metadata.directory,
            size: results.metadata.size,
        }),
        more => {
            // Not what the schema promises: keep none of them.
            for &cap in more {
                close(cap);
            }
            Err(CallError::Transport(TransportError::MalformedMessage))
        }
    }
}

pub fn mkdir(dir: CapId, path: &str) -> Result<(), CallError> {
    let params = directory::MkdirParams { path: path.into() };
    call::<directory::Mkdir>(dir, &params).map(|_| ())
}

/// Removes a file, or a directory that is empty.
pub fn remove(dir: CapId, path: &str) -> Result<(), CallError> {
    let params = directory::RemoveParams { path: path.into() };
    call::<directory::Remove>(dir, &params).map(|_| ())
}

/// Moves `from` in `dir` to `to` in `to_dir` (`None`: `dir` itself),
/// replacing a file there.
pub fn rename(dir: CapId, from: &str, to_dir: Option<CapId>, to: &str) -> Result<(), CallError> {
    let params = directory::RenameParams {
        from: from.into(),
        to_directory: to_dir.map_or(0, CapId::raw),
        to: to.into(),
    };
    call::<directory::Rename>(dir, &params).map(|_| ())
}

/// Up to `max` entries after the first `skip`; fewer means the end.
pub fn list(dir: CapId, skip: u64, max: u32) -> Result<Vec<directory::Entry>, CallError> {
    let params = directory::ListParams { skip, max };
    // Names make the size: ask for a message's worth at once.
    call_expecting::<directory::List>(dir, &params, MAX_MESSAGE_BYTES as usize).map(|r| r.entries)
}

/// What `path` is ("" or "." for `dir` itself).
pub fn stat(dir: CapId, path: &str) -> Result<directory::Metadata, CallError> {
    let params = directory::StatParams { path: path.into() };
    call::<directory::Stat>(dir, &params).map(|r| r.metadata)
}

pub fn info(dir: CapId) -> Result<directory::InfoResults, CallError> {
    call::<directory::Info>(dir, &directory::InfoParams)
}

/// Up to `max` bytes (at most [`MAX_IO_BYTES`]) from `offset`; fewer at
/// the end of the file.
pub fn read_at(file: CapId, offset: u64, max: u32) -> Result<Vec<u8>, CallError> {
    let max = max.min(MAX_IO_BYTES as u32);
    let params = file::ReadAtParams { offset, max };
    // Room for the bytes and the message around them.
    call_expecting::<file::ReadAt>(file, &params, max as usize + 64).map(|r| r.data)
}

/// Writes all of `data` at `offset`, in calls of at most [`MAX_IO_BYTES`].
pub fn write_at(file: CapId, offset: u64, data: &[u8]) -> Result<(), CallError> {
    let mut at = offset;
    for chunk in data.chunks(MAX_IO_BYTES) {
        let params = file::WriteAtParams {
            offset: at,
            data: chunk.to_vec(),
        };
        call::<file::WriteAt>(file, &params)?;
        at = at.saturating_add(chunk.len() as u64);
    }
    Ok(())
}

/// Writes all of `data` at the end; the size after.
pub fn append(file: CapId, data: &[u8]) -> Result<u64, CallError> {
    let mut size = None;
    for chunk in data.chunks(MAX_IO_BYTES) {
        let params = file::AppendParams {
            data: chunk.to_vec(),
        };
        size = Some(call::<file::Append>(file, &params)?.size);
    }
    match size {
        Some(size) => Ok(size),
        None => self::size(file),
    }
}

pub fn size(file: CapId) -> Result<u64, CallError> {
    call::<file::Size>(file, &file::SizeParams).map(|r| r.size)
}

/// Cuts the file to `size`, or extends it with zeros.
pub fn truncate(file: CapId, size: u64) -> Result<(), CallError> {
    call::<file::Truncate>(file, &file::TruncateParams { size }).map(|_| ())
}

/// Everything written before is durable when this returns.
pub fn sync(file: CapId) -> Result<(), CallError> {
    call::<file::Sync>(file, &file::SyncParams).map(|_| ())
}

/// Releases a File or Directory capability.
pub fn close(cap: CapId) {
    let _ = crate::clients::release(cap);
}
