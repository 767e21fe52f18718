//! The storage services: Directory and File, on the volumes `storage`
//! mounted. Each capability names an opened object here (a volume, a path
//! in it, whether it may write), by its key in a generational table: a
//! released object's capability is stale. A guest gets a Directory for
//! each of its mounts at start (`open_mount`); opening mints more, never
//! with more rights than the directory they came from. Every path a guest
//! names is confined to its directory (`fsd::resolve`).
//!
//! File system calls run to completion inside the call (littlefs is not
//! asynchronous); while the disk works the CPU halts (`irq::wait_until`).
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use caps::interfaces::{directory, file};
use caps::rights::storage as storage_rights;
use caps::{
    CapId, CapTable, Exception, ExceptionCode, FileError, Interface, Message, Rights,
    TransportError,
};
use fsd::{Error, Kind, OpenFlags};
use spin::Mutex;

use crate::service::{Caller, Reply, Service, uniform};
use crate::storage::VolumeIndex;
use nucleus_core::endpoint::{Capability, Object};

/// An opened directory or file.
#[derive(Clone)]
struct Opened {
    volume: VolumeIndex,
    /// Its volume path ("" for the root).
    path: String,
    directory: bool,
    writable: bool,
    owner: u32,
}

/// Most objects open at once, in all, and per guest.
const MAX_OPENED: u16 = 4096;
pub const MAX_OPENED_PER_GUEST: usize = 128;
/// Most bytes one readAt returns (a guest wanting more calls again); also
/// bounded by the caller's results buffer.
const MAX_READ_BYTES: usize = 60 * 1024;
/// What a read's results need besides the bytes (Cap'n Proto framing).
const READ_OVERHEAD: usize = 64;
/// Most entries one list returns.
const MAX_LIST_ENTRIES: u32 = 64;

static OPENED: Mutex<CapTable<Opened>> = Mutex::new(CapTable::new(MAX_OPENED));

fn opened(key: CapId) -> Result<Opened, TransportError> {
    OPENED
        .lock()
        .get(key)
        .cloned()
        .map_err(|_| TransportError::StaleCap)
}

/// Mints a capability of a new object; `Err` with the exception to send
/// when the guest holds too many.
fn mint(object: Opened) -> Result<Capability, Result<Reply, TransportError>> {
    let mut table = OPENED.lock();
    let owner = object.owner;
    if count_owned(&table, owner) >= MAX_OPENED_PER_GUEST {
        return Err(overloaded(&alloc::format!(
            "too many open files and directories: a guest may hold {MAX_OPENED_PER_GUEST}"
        )));
    }
    let interface = if object.directory {
        Interface::Directory
    } else {
        Interface::File
    };
    let rights = if object.writable {
        storage_rights::READ_WRITE
    } else {
        storage_rights::READ_ONLY
    };
    match table.insert(object) {
        Ok(key) => Ok(Capability {
            object: Object::Item { interface, key },
            rights,
            badge: 0,
        }),
        Err(_) => Err(overloaded("the nucleus holds as many open files as it can")),
    }
}

/// Objects of `owner` (a linear count; the table is small and bounded).
fn count_owned(table: &CapTable<Opened>, owner: u32) -> usize {
    table.iter().filter(|(_, o)| o.owner == owner).count()
}

fn overloaded(message: &str) -> Result<Reply, TransportError> {
    Ok(Reply::Exception(Exception::new(
        ExceptionCode::Overloaded,
        message,
    )))
}

/// The Directory capability for a guest's mount of `volume`, read-only if
/// asked or if the disk is; its raw id and whether it writes. Fails when
/// the volume is not mounted.
pub fn open_mount(volume: &str, read_only: bool, owner: u32) -> Result<(Capability, bool), String> {
    let Some((index, disk_read_only)) = crate::storage::find(volume) else {
        return Err(alloc::format!("volume '{volume}' is not mounted"));
    };
    let writable = !read_only && !disk_read_only;
    mint(Opened {
        volume: index,
        path: String::new(),
        directory: true,
        writable,
        owner,
    })
    .map(|capability| (capability, writable))
    .map_err(|_| String::from("too many open files and directories"))
}

/// A guest has gone: what it had open closes.
pub fn owner_gone(owner: u32) {
    let mut table = OPENED.lock();
    let keys: Vec<CapId> = table
        .iter()
        .filter(|(_, o)| o.owner == owner)
        .map(|(key, _)| key)
        .collect();
    for key in keys {
        let _ = table.remove(key);
    }
}

fn file_error(error: Error) -> FileError {
    match error {
        Error::NotFound => FileError::NotFound,
        Error::Exists => FileError::Exists,
        Error::NotDirectory => FileError::NotDirectory,
        Error::IsDirectory => FileError::IsDirectory,
        Error::NotEmpty => FileError::NotEmpty,
        Error::NoSpace => FileError::NoSpace,
        Error::TooLarge => FileError::TooLarge,
        Error::NameTooLong => FileError::NameTooLong,
        Error::Escapes(_) => FileError::Escapes,
        Error::Invalid(_) => FileError::Invalid,
        Error::ReadOnly => FileError::ReadOnly,
        Error::Corrupt => FileError::Corrupt,
        Error::Io => FileError::Io,
    }
}

/// The exception a file system error sends: the FileError as its detail.
fn failure(error: Error) -> Result<Reply, TransportError> {
    let code = match error {
        Error::Escapes(_) | Error::Invalid(_) | Error::NameTooLong | Error::TooLarge => {
            ExceptionCode::InvalidArgument
        }
        Error::NoSpace => ExceptionCode::Overloaded,
        Error::ReadOnly => ExceptionCode::Denied,
        _ => ExceptionCode::Failed,
    };
    Ok(Reply::Exception(Exception::with_detail(
        code,
        file_error(error) as u16,
        &alloc::format!("{error}"),
    )))
}

/// Runs `f` on the object's volume; a file system error becomes its
/// exception.
fn on_volume<T>(
    object: &Opened,
    f: impl FnOnce(&fsd::Volume) -> Result<T, Error>,
) -> Result<T, Result<Reply, TransportError>> {
    match crate::storage::with_volume(object.volume, f) {
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => Err(failure(error)),
        None => Err(Err(TransportError::StaleCap)),
    }
}

fn writable(object: &Opened) -> Result<(), Result<Reply, TransportError>> {
    if object.writable {
        Ok(())
    } else {
        Err(failure(Error::ReadOnly))
    }
}

fn metadata(stat: fsd::Stat) -> directory::Metadata {
    directory::Metadata {
        directory: stat.kind == Kind::Directory,
        size: stat.size,
    }
}

/// `?` for the handlers' two-level results.
macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(reply) => return reply,
        }
    };
}

pub struct DirectoryService;
pub struct FileService;

impl Service for DirectoryService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::Directory, method, storage_rights::READ)
    }

    fn call(
        &self,
        method: u16,
        object: Option<CapId>,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError> {
        let dir = opened(object.ok_or(TransportError::WrongCapKind)?)?;
        let resolve = |path: &str| fsd::resolve(&dir.path, path).map_err(failure);
        match method {
            directory::OPEN => {
                let params = directory::OpenParams::decode(params)?;
                let path = attempt!(resolve(&params.path));
                let flags = OpenFlags {
                    create: params.create,
                    exclusive: params.exclusive,
                    truncate: params.truncate,
                };
                if params.directory && params.create {
                    return failure(Error::Invalid("create a directory with mkdir"));
                }
                if flags.create || flags.truncate {
                    attempt!(writable(&dir));
                }
                let stat = attempt!(on_volume(&dir, |v| v.open(&path, flags)));
                if params.directory && stat.kind != Kind::Directory {
                    return failure(Error::NotDirectory);
                }
                let capability = attempt!(mint(Opened {
                    volume: dir.volume,
                    path,
                    directory: stat.kind == Kind::Directory,
                    writable: dir.writable,
                    owner: caller.info.owner,
                }));
                let Object::Item { key, .. } = capability.object else {
                    unreachable!("mint makes items");
                };
                let reply = caller.results_granting(
                    &directory::OpenResults {
                        metadata: metadata(stat),
                    },
                    &[capability],
                );
                if reply.is_err() {
                    let _ = OPENED.lock().remove(key);
                }
                reply
            }
            directory::MKDIR => {
                let path = attempt!(resolve(&directory::MkdirParams::decode(params)?.path));
                attempt!(writable(&dir));
                attempt!(on_volume(&dir, |v| v.mkdir(&path)));
                caller.results(&directory::MkdirResults {})
            }
            directory::REMOVE => {
                let path = attempt!(resolve(&directory::RemoveParams::decode(params)?.path));
                attempt!(writable(&dir));
                attempt!(on_volume(&dir, |v| v.remove(&path)));
                caller.results(&directory::RemoveResults {})
            }
            directory::RENAME => {
                let params = directory::RenameParams::decode(params)?;
                let target = match params.to_directory {
                    0 => dir.clone(),
                    raw => {
                        let id = CapId::from_raw(raw).ok_or(TransportError::InvalidCap)?;
                        match caller.caps.get(id)?.object {
                            Object::Item {
                                interface: Interface::Directory,
                                key,
                            } => opened(key)?,
                            _ => return Err(TransportError::WrongCapKind),
                        }
                    }
                };
                if target.volume != dir.volume {
                    return failure(Error::Invalid("a rename cannot cross volumes"));
                }
                let from = attempt!(resolve(&params.from));
                let to = attempt!(fsd::resolve(&target.path, &params.to).map_err(failure));
                attempt!(writable(&dir));
                attempt!(writable(&target));
                attempt!(on_volume(&dir, |v| v.rename(&from, &to)));
                caller.results(&directory::RenameResults {})
            }
            directory::LIST => {
                let params = directory::ListParams::decode(params)?;
                let max = params.max.min(MAX_LIST_ENTRIES) as usize;
                let entries = attempt!(on_volume(&dir, |v| v.list(&dir.path, params.skip, max)));
                caller.results(&directory::ListResults {
                    entries: entries
                        .into_iter()
                        .map(|entry| directory::Entry {
                            name: entry.name,
                            metadata: metadata(entry.stat),
                        })
                        .collect(),
                })
            }
            directory::STAT => {
                let path = attempt!(resolve(&directory::StatParams::decode(params)?.path));
                let stat = attempt!(on_volume(&dir, |v| v.stat(&path)));
                caller.results(&directory::StatResults {
                    metadata: metadata(stat),
                })
            }
            _ => {
                let (size, free) = attempt!(on_volume(&dir, |v| Ok((
                    u64::from(v.size_mib()) << 20,
                    v.free_bytes()?
                ))));
                caller.results(&directory::InfoResults {
                    size_bytes: size,
                    free_bytes: free,
                    writable: dir.writable,
                })
            }
        }
    }

    fn release(&self, object: CapId, _owner: u32) {
        let _ = OPENED.lock().remove(object);
    }
}

impl Service for FileService {
    fn rights(&self, method: u16) -> Result<Rights, TransportError> {
        uniform(Interface::File, method, storage_rights::READ)
    }

    fn call(
        &self,
        method: u16,
        object: Option<CapId>,
        params: &[u8],
        caller: &mut Caller,
    ) -> Result<Reply, TransportError> {
        let opened_file = opened(object.ok_or(TransportError::WrongCapKind)?)?;
        let path = opened_file.path.as_str();
        match method {
            file::READ_AT => {
                let params = file::ReadAtParams::decode(params)?;
                let room = (caller.results.len as usize).saturating_sub(READ_OVERHEAD);
                let max = (params.max as usize).min(MAX_READ_BYTES).min(room);
                let data = attempt!(on_volume(&opened_file, |v| v.read_at(
                    path,
                    params.offset,
                    max
                )));
                caller.results(&file::ReadAtResults { data })
            }
            file::WRITE_AT => {
                let params = file::WriteAtParams::decode(params)?;
                attempt!(writable(&opened_file));
                attempt!(on_volume(&opened_file, |v| v.write_at(
                    path,
                    params.offset,
                    &params.data
                )));
                caller.results(&file::WriteAtResults {})
            }
            file::APPEND => {
                let params = file::AppendParams::decode(params)?;
                attempt!(writable(&opened_file));
                let size = attempt!(on_volume(&opened_file, |v| v.append(path, &params.data)));
                caller.results(&file::AppendResults { size })
            }
            file::SIZE => {
                let stat = attempt!(on_volume(&opened_file, |v| v.stat(path)));
                caller.results(&file::SizeResults { size: stat.size })
            }
            file::TRUNCATE => {
                let size = file::TruncateParams::decode(params)?.size;
                attempt!(writable(&opened_file));
                attempt!(on_volume(&opened_file, |v| v.truncate(path, size)));
                caller.results(&file::TruncateResults {})
            }
            _ => {
                attempt!(on_volume(&opened_file, |v| v.sync()));
                caller.results(&file::SyncResults {})
            }
        }
    }

    fn release(&self, object: CapId, _owner: u32) {
        let _ = OPENED.lock().remove(object);
    }
}
