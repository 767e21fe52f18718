//! Directories and files the [`System`] holds: writable preopens (a volume
//! the OS mounted for the program, a host directory) and what is opened in
//! them.
//!
//! Paths are resolved here, lexically (storage has no links): "." and
//! empty components drop out, ".." steps back, and stepping above the
//! directory fd the call names is `ENOTCAPABLE`, as a capability-based
//! runtime confines each directory fd. The System gets plain relative
//! paths only. What POSIX decides from what is at a path (`EISDIR` for
//! unlinking a directory, `ENOTDIR` for removing a file as a directory,
//! renaming a file over a directory) is checked here with a stat first,
//! so every System answers the same way; a read-only mount refuses a
//! change with `EROFS` after the same checks, without asking the System
//! to make it.
//!
//! Storage has no inode numbers, links or times: `ino` is a hash of the
//! path inside the mount (so `os.SameFile` works), links are one, times
//! are 0, and setting times, linking and symlinking are `ENOSYS`.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Fd, FdKind, Filestat, MountKind, Wasi, WasiResult, write_dirent};
use crate::abi::{fdflags, filetype, layout, oflags, rights};
use crate::errno::Errno;
use crate::memory::GuestMemory;
use crate::system::{
    DirectoryHandle, FileHandle, MAX_FILE_IO, Metadata, OpenOptions, Opened, System,
};

/// Most entries one `fd_readdir` asks the System for at a time: with
/// names of up to 255 bytes, what one 64 KiB message carries.
const MAX_LIST_BATCH: u32 = 128;

/// The rights that act on the paths in a directory.
const PATH_RIGHTS: u64 = rights::PATH_CREATE_DIRECTORY
    | rights::PATH_CREATE_FILE
    | rights::PATH_LINK_SOURCE
    | rights::PATH_LINK_TARGET
    | rights::PATH_OPEN
    | rights::FD_READDIR
    | rights::PATH_READLINK
    | rights::PATH_RENAME_SOURCE
    | rights::PATH_RENAME_TARGET
    | rights::PATH_FILESTAT_GET
    | rights::PATH_FILESTAT_SET_SIZE
    | rights::PATH_FILESTAT_SET_TIMES
    | rights::PATH_SYMLINK
    | rights::PATH_REMOVE_DIRECTORY
    | rights::PATH_UNLINK_FILE;

/// FNV-1a, for the stand-in inode numbers.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The root of every mount hashes to this.
const ROOT_INO: u64 = FNV_OFFSET;

/// A directory fd the System holds.
#[derive(Clone, Copy, Debug)]
pub(super) struct SystemDirectory {
    /// Index of the preopen it is in.
    pub(super) mount: usize,
    pub(super) handle: DirectoryHandle,
    pub(super) ino: u64,
    /// The ino of its parent (its own at the preopen), for "..".
    pub(super) parent_ino: u64,
    pub(super) preopen: bool,
}

impl SystemDirectory {
    pub(super) fn preopen(mount: usize, root: DirectoryHandle) -> SystemDirectory {
        SystemDirectory {
            mount,
            handle: root,
            ino: ROOT_INO,
            parent_ino: ROOT_INO,
            preopen: true,
        }
    }
}

/// `path_open`'s arguments once checked; both rights are already cut to
/// what the directory may hand on.
pub(super) struct OpenRequest {
    pub(super) open_flags: u16,
    pub(super) fd_flags: u16,
    pub(super) rights_base: u64,
    pub(super) rights_inheriting: u64,
}

/// A path resolved inside a system directory.
#[derive(Debug, PartialEq, Eq)]
struct Resolved {
    /// As the System takes it: plain components joined by "/", or "." for
    /// the directory itself.
    path: String,
    ino: u64,
    parent_ino: u64,
    /// A trailing "/" (or a last "." or "..") insists on a directory.
    names_directory: bool,
    /// The last component as written was "." (rmdir refuses that).
    ends_in_dot: bool,
}

impl Resolved {
    fn is_self(&self) -> bool {
        self.path == "."
    }

    /// The directory the last component is in.
    fn parent(&self) -> &str {
        match self.path.rfind('/') {
            Some(slash) => &self.path[..slash],
            None => ".",
        }
    }
}

fn child_ino(parent: u64, name: &str) -> u64 {
    let mut hash = parent;
    for &byte in b"/".iter().chain(name.as_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash.max(1)
}

/// Resolves `path` (already checked to be relative) inside `dir`.
fn resolve(dir: &SystemDirectory, path: &str) -> Result<Resolved, Errno> {
    if path.is_empty() {
        return Err(Errno::NoEnt);
    }
    if path.contains('\0') {
        return Err(Errno::Inval);
    }
    let mut names: Vec<&str> = Vec::new();
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                names.pop().ok_or(Errno::NotCapable)?;
            }
            name => names.push(name),
        }
    }
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let (ino, parent_ino) = match names.split_last() {
        None => (dir.ino, dir.parent_ino),
        Some((name, parents)) => {
            let parent = parents
                .iter()
                .fold(dir.ino, |ino, parent| child_ino(ino, parent));
            (child_ino(parent, name), parent)
        }
    };
    Ok(Resolved {
        path: if names.is_empty() {
            String::from(".")
        } else {
            names.join("/")
        },
        ino,
        parent_ino,
        names_directory: path.ends_with('/') || last == "." || last == "..",
        ends_in_dot: last == ".",
    })
}

pub(super) fn directory_stat(mount: usize, ino: u64) -> Filestat {
    Filestat {
        dev: mount as u64 + 1,
        ino,
        filetype: filetype::DIRECTORY,
        nlink: 1,
        size: 0,
        time: 0,
    }
}

pub(super) fn file_stat(mount: usize, ino: u64, size: u64) -> Filestat {
    Filestat {
        dev: mount as u64 + 1,
        ino,
        filetype: filetype::REGULAR_FILE,
        nlink: 1,
        size,
        time: 0,
    }
}

fn stat_of(mount: usize, ino: u64, metadata: Metadata) -> Filestat {
    if metadata.directory {
        directory_stat(mount, ino)
    } else {
        file_stat(mount, ino, metadata.size)
    }
}

/// Largest file offset WASI (a signed 64-bit `off_t` in Go) can name.
const MAX_OFFSET: u64 = i64::MAX as u64;

impl<S: System> Wasi<S> {
    /// The fd as a system directory holding `needed`; `None` for any other
    /// kind of fd (the caller's tree code then answers for it).
    pub(super) fn system_dir(
        &self,
        fd: u32,
        needed: u64,
    ) -> Result<Option<SystemDirectory>, Errno> {
        let entry = self.fd(fd)?;
        let FdKind::SystemDirectory(dir) = entry.kind else {
            return Ok(None);
        };
        if entry.rights_base & needed != needed {
            return Err(Errno::NotCapable);
        }
        Ok(Some(dir))
    }

    fn writable(&self, mount: usize) -> bool {
        matches!(
            self.mounts.get(mount).map(|mount| &mount.kind),
            Some(MountKind::System { writable: true, .. })
        )
    }

    /// The parent of `resolved` is a directory that exists.
    fn check_parent(&mut self, dir: &SystemDirectory, resolved: &Resolved) -> WasiResult {
        match self.system.stat(dir.handle, resolved.parent()) {
            Ok(metadata) if metadata.directory => Ok(()),
            Ok(_) => Err(Errno::NotDir),
            Err(errno) => Err(errno),
        }
    }

    /// Making `resolved` on a read-only mount: what a writable one would
    /// say first (`EEXIST`, `ENOENT`, `ENOTDIR`), else `EROFS`.
    fn refuse_read_only_create(&mut self, dir: &SystemDirectory, resolved: &Resolved) -> Errno {
        match self.system.stat(dir.handle, &resolved.path) {
            Ok(_) => Errno::Exist,
            Err(Errno::NoEnt) => match self.check_parent(dir, resolved) {
                Ok(()) => Errno::RoFs,
                Err(errno) => errno,
            },
            Err(errno) => errno,
        }
    }

    /// Opens `path` in `dir`; the new fd's number.
    pub(super) fn system_open(
        &mut self,
        dir: SystemDirectory,
        path: &str,
        request: OpenRequest,
    ) -> Result<u32, Errno> {
        let resolved = resolve(&dir, path)?;
        let create = request.open_flags & oflags::CREAT != 0;
        let exclusive = create && request.open_flags & oflags::EXCL != 0;
        let truncate = request.open_flags & oflags::TRUNC != 0;
        let directory = request.open_flags & oflags::DIRECTORY != 0 || resolved.names_directory;
        let writing = request.rights_base & rights::FD_WRITE != 0;
        if create && request.open_flags & oflags::DIRECTORY != 0 {
            return Err(Errno::Inval);
        }
        if create && resolved.names_directory {
            return Err(Errno::IsDir);
        }
        // Before anything is opened, so that EMFILE leaves nothing behind.
        let number = self.allocate_fd()?;
        if !self.writable(dir.mount) && (create || truncate || writing) {
            return Err(match self.system.stat(dir.handle, &resolved.path) {
                Ok(_) if exclusive => Errno::Exist,
                Ok(metadata) if metadata.directory => Errno::IsDir,
                Ok(_) if directory => Errno::NotDir,
                Ok(_) => Errno::RoFs,
                Err(Errno::NoEnt) if create => match self.check_parent(&dir, &resolved) {
                    Ok(()) => Errno::RoFs,
                    Err(errno) => errno,
                },
                Err(errno) => errno,
            });
        }
        let options = OpenOptions {
            create,
            exclusive,
            truncate,
            directory,
        };
        let (kind, rights_base) = match self.system.open(dir.handle, &resolved.path, options)? {
            Opened::Directory(handle) => {
                if writing || truncate {
                    self.system.close_directory(handle);
                    return Err(Errno::IsDir);
                }
                (
                    FdKind::SystemDirectory(SystemDirectory {
                        mount: dir.mount,
                        handle,
                        ino: resolved.ino,
                        parent_ino: resolved.parent_ino,
                        preopen: false,
                    }),
                    // Go opens a directory without the path rights of
                    // writing (PATH_FILESTAT_SET_SIZE for O_TRUNC, say)
                    // yet hands them on to what it opens there, as
                    // runtimes ignoring rights allow (os.Root relies on
                    // it): a directory may do in its paths what it may
                    // hand on, never more than its parent could.
                    request.rights_base | (request.rights_inheriting & PATH_RIGHTS),
                )
            }
            Opened::File(handle) => {
                if directory {
                    self.system.close_file(handle);
                    return Err(Errno::NotDir);
                }
                (
                    FdKind::SystemFile {
                        mount: dir.mount,
                        handle,
                        ino: resolved.ino,
                        position: 0,
                    },
                    request.rights_base,
                )
            }
        };
        self.fds.insert(
            number,
            Fd {
                kind,
                rights_base,
                rights_inheriting: request.rights_inheriting,
                flags: request.fd_flags & fdflags::ALL,
            },
        );
        Ok(number)
    }

    pub(super) fn system_path_stat(
        &mut self,
        dir: SystemDirectory,
        path: &str,
    ) -> Result<Filestat, Errno> {
        let resolved = resolve(&dir, path)?;
        let metadata = self.system.stat(dir.handle, &resolved.path)?;
        if resolved.names_directory && !metadata.directory {
            return Err(Errno::NotDir);
        }
        Ok(stat_of(dir.mount, resolved.ino, metadata))
    }

    pub(super) fn system_mkdir(&mut self, dir: SystemDirectory, path: &str) -> WasiResult {
        let resolved = resolve(&dir, path)?;
        if resolved.is_self() {
            return Err(Errno::Exist);
        }
        if !self.writable(dir.mount) {
            return Err(self.refuse_read_only_create(&dir, &resolved));
        }
        self.system.mkdir(dir.handle, &resolved.path)
    }

    pub(super) fn system_unlink(&mut self, dir: SystemDirectory, path: &str) -> WasiResult {
        let resolved = resolve(&dir, path)?;
        if resolved.is_self() {
            return Err(Errno::IsDir);
        }
        let metadata = self.system.stat(dir.handle, &resolved.path)?;
        if metadata.directory {
            return Err(Errno::IsDir);
        }
        if resolved.names_directory {
            return Err(Errno::NotDir);
        }
        if !self.writable(dir.mount) {
            return Err(Errno::RoFs);
        }
        self.system.remove(dir.handle, &resolved.path)
    }

    pub(super) fn system_rmdir(&mut self, dir: SystemDirectory, path: &str) -> WasiResult {
        let resolved = resolve(&dir, path)?;
        if resolved.is_self() || resolved.ends_in_dot {
            return Err(Errno::Inval);
        }
        if !self.system.stat(dir.handle, &resolved.path)?.directory {
            return Err(Errno::NotDir);
        }
        if !self.writable(dir.mount) {
            return Err(Errno::RoFs);
        }
        self.system.remove(dir.handle, &resolved.path)
    }

    pub(super) fn system_rename(
        &mut self,
        old_dir: SystemDirectory,
        old_path: &str,
        new_dir: SystemDirectory,
        new_path: &str,
    ) -> WasiResult {
        let from = resolve(&old_dir, old_path)?;
        let to = resolve(&new_dir, new_path)?;
        if from.is_self() || to.is_self() {
            return Err(Errno::Inval);
        }
        let source = self.system.stat(old_dir.handle, &from.path)?;
        if from.names_directory && !source.directory {
            return Err(Errno::NotDir);
        }
        match self.system.stat(new_dir.handle, &to.path) {
            Ok(target) if source.directory && !target.directory => return Err(Errno::NotDir),
            Ok(target) if !source.directory && target.directory => return Err(Errno::IsDir),
            Ok(_) => {}
            Err(Errno::NoEnt) if to.names_directory && !source.directory => {
                return Err(Errno::NotDir);
            }
            Err(Errno::NoEnt) => {}
            Err(errno) => return Err(errno),
        }
        if old_dir.mount != new_dir.mount {
            return Err(Errno::XDev);
        }
        if !self.writable(old_dir.mount) {
            return Err(Errno::RoFs);
        }
        self.system
            .rename(old_dir.handle, &from.path, new_dir.handle, &to.path)
    }

    /// Storage has no hard links: `ENOSYS` after the checks a file system
    /// with them would make.
    pub(super) fn system_link(
        &mut self,
        old_dir: SystemDirectory,
        old_path: &str,
        new_dir: SystemDirectory,
        new_path: &str,
    ) -> WasiResult {
        let from = resolve(&old_dir, old_path)?;
        let to = resolve(&new_dir, new_path)?;
        if self.system.stat(old_dir.handle, &from.path)?.directory {
            return Err(Errno::Perm);
        }
        match self.refuse_read_only_create(&new_dir, &to) {
            Errno::RoFs if old_dir.mount != new_dir.mount => Err(Errno::XDev),
            Errno::RoFs if self.writable(new_dir.mount) => Err(Errno::NoSys),
            errno => Err(errno),
        }
    }

    /// Storage has no symbolic links either.
    pub(super) fn system_symlink(&mut self, dir: SystemDirectory, path: &str) -> WasiResult {
        let resolved = resolve(&dir, path)?;
        match self.refuse_read_only_create(&dir, &resolved) {
            Errno::RoFs if self.writable(dir.mount) => Err(Errno::NoSys),
            errno => Err(errno),
        }
    }

    /// `fd_readdir`: ".", "..", then the System's entries; cookie n is
    /// entry n, so entry n + 2 is the System's `skip` n.
    pub(super) fn system_readdir(
        &mut self,
        memory: &mut GuestMemory,
        dir: SystemDirectory,
        buf: u32,
        buf_len: u32,
        cookie: u64,
        bufused: u32,
    ) -> WasiResult {
        let range = memory.range(buf, buf_len)?;
        memory.check_u32(bufused)?;
        let out = &mut memory.bytes_mut()[range];
        let mut used = 0;
        let mut index = cookie;
        while used < out.len() {
            match index {
                0 => write_dirent(out, &mut used, 0, dir.ino, ".", filetype::DIRECTORY),
                1 => write_dirent(out, &mut used, 1, dir.parent_ino, "..", filetype::DIRECTORY),
                _ => {
                    // About as many as the room left could take, at least one.
                    let room = out.len() - used;
                    let max = (room / (layout::DIRENT_SIZE + 1) + 1).min(MAX_LIST_BATCH as usize);
                    let entries = match self.system.list(dir.handle, index - 2, max as u32) {
                        Ok(entries) => entries,
                        Err(errno) if used == 0 => return Err(errno),
                        // What was written stands; the next call meets the error.
                        Err(_) => break,
                    };
                    let last_batch = entries.len() < max;
                    for entry in entries.iter().take(max) {
                        if used >= out.len() {
                            break;
                        }
                        let kind = if entry.metadata.directory {
                            filetype::DIRECTORY
                        } else {
                            filetype::REGULAR_FILE
                        };
                        let ino = child_ino(dir.ino, &entry.name);
                        write_dirent(out, &mut used, index, ino, &entry.name, kind);
                        index = index.saturating_add(1);
                    }
                    if last_batch {
                        break;
                    }
                    continue;
                }
            }
            index += 1;
        }
        memory.write_u32(bufused, used as u32)
    }

    /// Reads from `offset` into the iovecs in order, at most
    /// [`MAX_FILE_IO`] bytes per System call, until they are full or the
    /// file ends; the bytes read.
    pub(super) fn system_read(
        &mut self,
        memory: &mut GuestMemory,
        file: FileHandle,
        iovecs: &[(u32, u32)],
        offset: u64,
    ) -> Result<u32, Errno> {
        let mut read: u32 = 0;
        let mut at = offset;
        for &(buf, len) in iovecs {
            // The count is a u32: stop where it would overflow.
            let len = len.min(u32::MAX - read);
            let mut done = 0;
            while done < len {
                let take = (len - done).min(MAX_FILE_IO as u32);
                // Inside memory: read_iovecs checked buf..buf + len.
                let out = memory.slice_mut(buf.wrapping_add(done), take)?;
                let got = match self.system.read_at(file, at, out) {
                    Ok(got) => got.min(take as usize) as u32,
                    Err(errno) if read == 0 => return Err(errno),
                    Err(_) => return Ok(read),
                };
                read += got;
                done += got;
                at = at.saturating_add(u64::from(got));
                if got < take {
                    return Ok(read);
                }
            }
        }
        Ok(read)
    }

    /// Writes the iovecs in order at `at` (`None`: at the end of the file),
    /// at most [`MAX_FILE_IO`] bytes per System call: the bytes written
    /// (fewer when a later call failed) and the position after the last
    /// one (`None` if nothing was written).
    pub(super) fn system_write(
        &mut self,
        memory: &GuestMemory,
        file: FileHandle,
        iovecs: &[(u32, u32)],
        at: Option<u64>,
    ) -> Result<(u32, Option<u64>), Errno> {
        let mut written: u32 = 0;
        let mut next = at;
        let mut end = None;
        for &(buf, len) in iovecs {
            let len = len.min(u32::MAX - written);
            let mut done = 0;
            while done < len {
                let take = (len - done).min(MAX_FILE_IO as u32);
                let bytes = memory.slice(buf.wrapping_add(done), take)?;
                let result = match next {
                    Some(offset) => match offset
                        .checked_add(u64::from(take))
                        .filter(|&after| after <= MAX_OFFSET)
                    {
                        None => Err(Errno::FBig),
                        Some(after) => self.system.write_at(file, offset, bytes).map(|()| after),
                    },
                    None => self.system.append(file, bytes),
                };
                match result {
                    Ok(after) => {
                        written += take;
                        done += take;
                        end = Some(after);
                        if next.is_some() {
                            next = Some(after);
                        }
                    }
                    Err(errno) if written == 0 => return Err(errno),
                    Err(_) => return Ok((written, end)),
                }
            }
        }
        Ok((written, end))
    }

    /// `ftruncate`: only on a file open for writing (`EINVAL` otherwise,
    /// as Linux says), to a size an `off_t` holds.
    pub(super) fn system_set_size(
        &mut self,
        entry: &Fd,
        file: FileHandle,
        size: u64,
    ) -> WasiResult {
        if entry.rights_base & rights::FD_WRITE == 0 || size > MAX_OFFSET {
            return Err(Errno::Inval);
        }
        self.system.truncate(file, size)
    }

    /// `posix_fallocate`: the file grows to cover the range if it is
    /// shorter; nothing is reserved beyond that.
    pub(super) fn system_allocate(
        &mut self,
        entry: &Fd,
        file: FileHandle,
        offset: u64,
        len: u64,
    ) -> WasiResult {
        if entry.rights_base & rights::FD_WRITE == 0 {
            return Err(Errno::BadF);
        }
        if len == 0 {
            return Err(Errno::Inval);
        }
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= MAX_OFFSET)
            .ok_or(Errno::FBig)?;
        if self.system.file_size(file)? < end {
            self.system.truncate(file, end)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
