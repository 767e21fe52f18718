//! [`MemoryVolume`]: directories and files in memory, with the meaning
//! the OS's storage service gives them (caps/schema/storage.capnp), for a
//! [`System`](crate::System) to delegate its file methods to: a scratch
//! directory that needs no disk, and the volume the tests run programs on.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::errno::Errno;
use crate::system::{DirEntry, DirectoryHandle, FileHandle, Metadata, OpenOptions, Opened};

/// Largest file, as the storage service allows (`EFBIG` past it).
pub const MAX_FILE_BYTES: u64 = (1 << 31) - 1;

/// What [`MemoryVolume::new`] holds at most: a program cannot make the
/// host allocate more than this (a write far past the end fills the gap).
pub const DEFAULT_CAPACITY: u64 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Directory,
    File(Vec<u8>),
}

/// What a handle names: a path, not a node, as storage's capabilities do
/// (after a rename the handle reaches whatever is at its path).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Handle {
    Directory(String),
    File(String),
}

/// A volume in memory. Paths are keys ("" is the root, "a/b" a path in
/// it); every handle names one. Nothing here panics on any argument.
#[derive(Clone, Debug)]
pub struct MemoryVolume {
    nodes: BTreeMap<String, Node>,
    handles: BTreeMap<u32, Handle>,
    next_handle: u32,
    /// Most bytes all files may hold together (`ENOSPC` past it).
    capacity: u64,
    syncs: u64,
    largest_io: usize,
}

impl Default for MemoryVolume {
    fn default() -> MemoryVolume {
        MemoryVolume::new()
    }
}

impl MemoryVolume {
    /// An empty volume of [`DEFAULT_CAPACITY`] bytes.
    pub fn new() -> MemoryVolume {
        MemoryVolume::with_capacity(DEFAULT_CAPACITY)
    }

    /// An empty volume whose files hold at most `bytes` together.
    pub fn with_capacity(bytes: u64) -> MemoryVolume {
        let mut nodes = BTreeMap::new();
        nodes.insert(String::new(), Node::Directory);
        MemoryVolume {
            nodes,
            handles: BTreeMap::new(),
            next_handle: 1,
            capacity: bytes,
            syncs: 0,
            largest_io: 0,
        }
    }

    /// A new handle on the root directory (to preopen).
    pub fn root(&mut self) -> DirectoryHandle {
        self.new_handle(Handle::Directory(String::new()))
    }

    /// Puts a file at `path` (its parents made as needed), for setting up.
    pub fn insert_file(&mut self, path: &str, contents: &[u8]) {
        let mut parent = String::new();
        for name in path.split('/').filter(|name| !name.is_empty()) {
            self.nodes.entry(parent.clone()).or_insert(Node::Directory);
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(name);
        }
        self.nodes.insert(parent, Node::File(contents.to_vec()));
    }

    /// What the file at `path` holds (`None`: no file there).
    pub fn contents(&self, path: &str) -> Option<&[u8]> {
        match self.nodes.get(path) {
            Some(Node::File(bytes)) => Some(bytes),
            _ => None,
        }
    }

    pub fn is_directory(&self, path: &str) -> bool {
        self.nodes.get(path) == Some(&Node::Directory)
    }

    /// Handles given out and not closed.
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    /// How many times a file was synced.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// The most bytes one read or write carried.
    pub fn largest_io(&self) -> usize {
        self.largest_io
    }

    fn new_handle(&mut self, handle: Handle) -> u32 {
        let number = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        self.handles.insert(number, handle);
        number
    }

    fn directory_path(&self, dir: DirectoryHandle) -> Result<&str, Errno> {
        match self.handles.get(&dir) {
            Some(Handle::Directory(path)) => match self.nodes.get(path) {
                Some(Node::Directory) => Ok(path),
                Some(Node::File(_)) => Err(Errno::NotDir),
                None => Err(Errno::NoEnt),
            },
            _ => Err(Errno::BadF),
        }
    }

    fn file_path(&self, file: FileHandle) -> Result<String, Errno> {
        match self.handles.get(&file) {
            Some(Handle::File(path)) => Ok(path.clone()),
            _ => Err(Errno::BadF),
        }
    }

    /// `path` in the directory `dir` names, as a key.
    fn join(&self, dir: DirectoryHandle, path: &str) -> Result<String, Errno> {
        let base = self.directory_path(dir)?;
        if path == "." {
            return Ok(String::from(base));
        }
        for name in path.split('/') {
            match name {
                ".." => return Err(Errno::NotCapable),
                "" | "." => return Err(Errno::Inval),
                _ if name.contains('\0') => return Err(Errno::Inval),
                _ => {}
            }
        }
        let mut joined = String::from(base);
        if !joined.is_empty() {
            joined.push('/');
        }
        joined.push_str(path);
        Ok(joined)
    }

    /// Why nothing is at `key`: a file on the way (`ENOTDIR`) or not
    /// (`ENOENT`).
    fn missing(&self, key: &str) -> Errno {
        let mut at = 0;
        while let Some(slash) = key[at..].find('/') {
            let prefix = &key[..at + slash];
            match self.nodes.get(prefix) {
                Some(Node::File(_)) => return Errno::NotDir,
                None => return Errno::NoEnt,
                Some(Node::Directory) => at += slash + 1,
            }
        }
        Errno::NoEnt
    }

    /// The parent of `key` must be a directory for something to be made
    /// there.
    fn check_parent(&self, key: &str) -> Result<(), Errno> {
        let parent = key.rfind('/').map_or("", |slash| &key[..slash]);
        match self.nodes.get(parent) {
            Some(Node::Directory) => Ok(()),
            Some(Node::File(_)) => Err(Errno::NotDir),
            None => Err(self.missing(parent)),
        }
    }

    fn has_children(&self, key: &str) -> bool {
        let prefix = child_prefix(key);
        self.nodes
            .range(prefix.clone()..)
            .find(|(path, _)| path.len() > prefix.len())
            .is_some_and(|(path, _)| path.starts_with(&prefix))
    }

    fn used_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|node| match node {
                Node::File(bytes) => bytes.len() as u64,
                Node::Directory => 0,
            })
            .sum()
    }

    /// The file at `key`, resized to at least (`grow`) or exactly `size`
    /// bytes within the limits.
    fn resize(&mut self, key: &str, size: u64, grow: bool) -> Result<&mut Vec<u8>, Errno> {
        if size > MAX_FILE_BYTES {
            return Err(Errno::FBig);
        }
        let current = match self.nodes.get(key) {
            Some(Node::File(bytes)) => bytes.len() as u64,
            Some(Node::Directory) => return Err(Errno::IsDir),
            None => return Err(self.missing(key)),
        };
        let target = if grow { size.max(current) } else { size };
        if target > current && self.used_bytes() - current + target > self.capacity {
            return Err(Errno::NoSpc);
        }
        match self.nodes.get_mut(key) {
            Some(Node::File(bytes)) => {
                bytes.resize(target as usize, 0);
                Ok(bytes)
            }
            _ => Err(Errno::NoEnt),
        }
    }

    pub fn open(
        &mut self,
        dir: DirectoryHandle,
        path: &str,
        options: OpenOptions,
    ) -> Result<Opened, Errno> {
        let key = self.join(dir, path)?;
        if options.directory && options.create {
            return Err(Errno::Inval);
        }
        match self.nodes.get_mut(&key) {
            Some(_) if options.create && options.exclusive => Err(Errno::Exist),
            Some(Node::Directory) if options.create || options.truncate => Err(Errno::IsDir),
            Some(Node::Directory) => Ok(Opened::Directory(self.new_handle(Handle::Directory(key)))),
            Some(Node::File(_)) if options.directory => Err(Errno::NotDir),
            Some(Node::File(bytes)) => {
                if options.truncate {
                    bytes.clear();
                }
                Ok(Opened::File(self.new_handle(Handle::File(key))))
            }
            None if !options.create => Err(self.missing(&key)),
            None => {
                self.check_parent(&key)?;
                self.nodes.insert(key.clone(), Node::File(Vec::new()));
                Ok(Opened::File(self.new_handle(Handle::File(key))))
            }
        }
    }

    pub fn mkdir(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        let key = self.join(dir, path)?;
        if self.nodes.contains_key(&key) {
            return Err(Errno::Exist);
        }
        self.check_parent(&key)?;
        self.nodes.insert(key, Node::Directory);
        Ok(())
    }

    pub fn remove(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        let key = self.join(dir, path)?;
        match self.nodes.get(&key) {
            None => Err(self.missing(&key)),
            Some(_) if key.is_empty() => Err(Errno::Inval),
            Some(Node::Directory) if self.has_children(&key) => Err(Errno::NotEmpty),
            Some(_) => {
                self.nodes.remove(&key);
                Ok(())
            }
        }
    }

    pub fn rename(
        &mut self,
        dir: DirectoryHandle,
        from: &str,
        to_dir: DirectoryHandle,
        to: &str,
    ) -> Result<(), Errno> {
        let from = self.join(dir, from)?;
        let to = self.join(to_dir, to)?;
        let moving_directory = match self.nodes.get(&from) {
            None => return Err(self.missing(&from)),
            Some(node) => *node == Node::Directory,
        };
        if from.is_empty() || to.is_empty() || to.starts_with(&child_prefix(&from)) {
            return Err(Errno::Inval);
        }
        if from == to {
            return Ok(());
        }
        match self.nodes.get(&to) {
            Some(Node::Directory) if !moving_directory => return Err(Errno::IsDir),
            Some(Node::Directory) if self.has_children(&to) => return Err(Errno::NotEmpty),
            Some(Node::File(_)) if moving_directory => return Err(Errno::NotDir),
            _ => {}
        }
        self.check_parent(&to)?;
        let prefix = child_prefix(&from);
        let moved: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(path, _)| path.clone())
            .collect();
        if let Some(node) = self.nodes.remove(&from) {
            self.nodes.insert(to.clone(), node);
        }
        for path in moved {
            if let Some(node) = self.nodes.remove(&path) {
                let mut renamed = to.clone();
                renamed.push_str(&path[from.len()..]);
                self.nodes.insert(renamed, node);
            }
        }
        Ok(())
    }

    pub fn list(
        &mut self,
        dir: DirectoryHandle,
        skip: u64,
        max: u32,
    ) -> Result<Vec<DirEntry>, Errno> {
        let key = String::from(self.directory_path(dir)?);
        let prefix = child_prefix(&key);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        Ok(self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            // Not the directory itself (the root's prefix is ""), nor deeper.
            .filter(|(path, _)| path.len() > prefix.len() && !path[prefix.len()..].contains('/'))
            .skip(skip)
            .take(max as usize)
            .map(|(path, node)| DirEntry {
                name: String::from(&path[prefix.len()..]),
                metadata: metadata(node),
            })
            .collect())
    }

    pub fn stat(&mut self, dir: DirectoryHandle, path: &str) -> Result<Metadata, Errno> {
        let key = self.join(dir, path)?;
        match self.nodes.get(&key) {
            Some(node) => Ok(metadata(node)),
            None => Err(self.missing(&key)),
        }
    }

    pub fn read_at(
        &mut self,
        file: FileHandle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Errno> {
        let key = self.file_path(file)?;
        self.largest_io = self.largest_io.max(buf.len());
        match self.nodes.get(&key) {
            Some(Node::File(bytes)) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let take = buf.len().min(bytes.len() - start);
                buf[..take].copy_from_slice(&bytes[start..start + take]);
                Ok(take)
            }
            Some(Node::Directory) => Err(Errno::IsDir),
            None => Err(self.missing(&key)),
        }
    }

    pub fn write_at(&mut self, file: FileHandle, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        let key = self.file_path(file)?;
        self.largest_io = self.largest_io.max(bytes.len());
        let end = offset.checked_add(bytes.len() as u64).ok_or(Errno::FBig)?;
        let contents = self.resize(&key, end, true)?;
        // Within MAX_FILE_BYTES, so both fit a usize.
        let start = offset as usize;
        contents[start..start + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    pub fn append(&mut self, file: FileHandle, bytes: &[u8]) -> Result<u64, Errno> {
        let size = self.file_size(file)?;
        self.write_at(file, size, bytes)?;
        Ok(size + bytes.len() as u64)
    }

    pub fn file_size(&mut self, file: FileHandle) -> Result<u64, Errno> {
        let key = self.file_path(file)?;
        match self.nodes.get(&key) {
            Some(Node::File(bytes)) => Ok(bytes.len() as u64),
            Some(Node::Directory) => Err(Errno::IsDir),
            None => Err(self.missing(&key)),
        }
    }

    pub fn truncate(&mut self, file: FileHandle, size: u64) -> Result<(), Errno> {
        let key = self.file_path(file)?;
        self.resize(&key, size, false).map(|_| ())
    }

    pub fn sync_file(&mut self, file: FileHandle) -> Result<(), Errno> {
        self.file_size(file)?;
        self.syncs += 1;
        Ok(())
    }

    pub fn close_file(&mut self, file: FileHandle) {
        if matches!(self.handles.get(&file), Some(Handle::File(_))) {
            self.handles.remove(&file);
        }
    }

    pub fn close_directory(&mut self, dir: DirectoryHandle) {
        if matches!(self.handles.get(&dir), Some(Handle::Directory(_))) {
            self.handles.remove(&dir);
        }
    }
}

/// What every key inside the directory `key` starts with.
fn child_prefix(key: &str) -> String {
    let mut prefix = String::from(key);
    if !prefix.is_empty() {
        prefix.push('/');
    }
    prefix
}

fn metadata(node: &Node) -> Metadata {
    match node {
        Node::Directory => Metadata {
            directory: true,
            size: 0,
        },
        Node::File(bytes) => Metadata {
            directory: false,
            size: bytes.len() as u64,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: OpenOptions = OpenOptions {
        create: true,
        exclusive: false,
        truncate: false,
        directory: false,
    };

    fn file(volume: &mut MemoryVolume, root: u32, path: &str) -> FileHandle {
        match volume.open(root, path, CREATE) {
            Ok(Opened::File(handle)) => handle,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn files_are_made_written_read_and_listed_in_name_order() {
        let mut volume = MemoryVolume::new();
        let root = volume.root();
        volume.mkdir(root, "d").unwrap();
        let f = file(&mut volume, root, "d/b");
        volume.write_at(f, 3, b"xyz").unwrap();
        assert_eq!(volume.contents("d/b"), Some(&b"\0\0\0xyz"[..]));
        assert_eq!(volume.append(f, b"!"), Ok(7));
        let mut buf = [0u8; 16];
        assert_eq!(volume.read_at(f, 5, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"z!");
        assert_eq!(volume.read_at(f, 99, &mut buf), Ok(0));
        file(&mut volume, root, "d/a");
        volume.mkdir(root, "d/c").unwrap();
        file(&mut volume, root, "d/c/inner");
        let Ok(Opened::Directory(d)) = volume.open(root, "d", OpenOptions::default()) else {
            panic!("d is a directory");
        };
        let names: Vec<String> = volume
            .list(d, 0, 10)
            .unwrap()
            .into_iter()
            .map(|entry| entry.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(volume.list(d, 2, 10).unwrap().len(), 1);
        assert!(volume.list(d, 3, 10).unwrap().is_empty());
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let mut volume = MemoryVolume::with_capacity(10);
        let root = volume.root();
        let f = file(&mut volume, root, "f");
        volume.mkdir(root, "d").unwrap();
        file(&mut volume, root, "d/x");
        let exclusive = OpenOptions {
            exclusive: true,
            ..CREATE
        };
        assert_eq!(volume.open(root, "f", exclusive), Err(Errno::Exist));
        assert_eq!(volume.open(root, "f/x", CREATE), Err(Errno::NotDir));
        assert_eq!(volume.open(root, "no/x", CREATE), Err(Errno::NoEnt));
        assert_eq!(volume.open(root, "d", CREATE), Err(Errno::IsDir));
        assert_eq!(volume.mkdir(root, "d"), Err(Errno::Exist));
        assert_eq!(volume.remove(root, "d"), Err(Errno::NotEmpty));
        assert_eq!(volume.remove(root, "."), Err(Errno::Inval));
        assert_eq!(volume.stat(root, "../x"), Err(Errno::NotCapable));
        assert_eq!(volume.rename(root, "d", root, "d/x/y"), Err(Errno::Inval));
        assert_eq!(volume.rename(root, "f", root, "d"), Err(Errno::IsDir));
        assert_eq!(volume.write_at(f, 0, &[1; 11]), Err(Errno::NoSpc));
        assert_eq!(volume.truncate(f, MAX_FILE_BYTES + 1), Err(Errno::FBig));
        volume.remove(root, "f").unwrap();
        assert_eq!(volume.file_size(f), Err(Errno::NoEnt));
    }

    #[test]
    fn renaming_a_directory_moves_what_it_holds() {
        let mut volume = MemoryVolume::new();
        let root = volume.root();
        volume.mkdir(root, "a").unwrap();
        volume.mkdir(root, "a/b").unwrap();
        file(&mut volume, root, "a/b/f");
        volume.rename(root, "a", root, "z").unwrap();
        assert!(volume.contents("z/b/f").is_some());
        assert!(!volume.is_directory("a"));
        assert_eq!(volume.stat(root, "a/b/f"), Err(Errno::NoEnt));
    }
}
