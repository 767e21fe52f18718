//! The read-only file tree a program sees, parsed once from a ustar image
//! (see [`crate::archive`]) and shared cheaply between instances.
//!
//! File contents stay in the image: a file node is a range of it. Lookups
//! resolve WASI paths the way POSIX does (symlinks followed, at most
//! [`MAX_SYMLINK_FOLLOWS`] of them; "." and ".."), inside the tree: ".." at
//! the root is `ENOTCAPABLE`, since that would leave what the instance was
//! given, and an absolute symlink target starts at the tree's root.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use crate::archive::{self, ArchiveError, ArchiveErrorKind, EntryKind};
use crate::errno::Errno;

/// Following more symbolic links than this in one lookup is `ELOOP`.
pub const MAX_SYMLINK_FOLLOWS: usize = 40;

/// The bytes a tree is parsed from: borrowed for the life of the program
/// (an image the OS mapped) or shared.
#[derive(Clone, Debug)]
pub enum Image {
    Static(&'static [u8]),
    Shared(Arc<[u8]>),
}

impl Image {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Image::Static(bytes) => bytes,
            Image::Shared(bytes) => bytes,
        }
    }
}

impl From<&'static [u8]> for Image {
    fn from(bytes: &'static [u8]) -> Image {
        Image::Static(bytes)
    }
}

impl From<Vec<u8>> for Image {
    fn from(bytes: Vec<u8>) -> Image {
        Image::Shared(bytes.into())
    }
}

impl From<Arc<[u8]>> for Image {
    fn from(bytes: Arc<[u8]>) -> Image {
        Image::Shared(bytes)
    }
}

/// A node of one tree. Ids are only meaningful for the tree that gave them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// A stable number for the node, never 0 (WASI's `ino`).
    pub fn inode(self) -> u64 {
        u64::from(self.0) + 1
    }
}

#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Entries sorted by name, so `fd_readdir` cookies are plain indices.
    Directory {
        entries: Box<[(Box<str>, NodeId)]>,
        parent: NodeId,
    },
    File {
        data: Range<usize>,
    },
    Symlink {
        target: Box<str>,
    },
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: NodeKind,
    /// Modification time in nanoseconds since 1970.
    pub mtime_nanos: u64,
    /// Names the node has (hard links share a node).
    pub links: u64,
}

impl Node {
    pub fn is_directory(&self) -> bool {
        matches!(self.kind, NodeKind::Directory { .. })
    }

    /// Bytes: a file's length, a link target's length, 0 for directories.
    pub fn size(&self) -> u64 {
        match &self.kind {
            NodeKind::File { data } => data.len() as u64,
            NodeKind::Symlink { target } => target.len() as u64,
            NodeKind::Directory { .. } => 0,
        }
    }
}

/// A parsed, read-only file tree. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Tree {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    image: Image,
    nodes: Vec<Node>,
}

/// A node while the tree is built: directories are maps until the end.
enum Draft {
    Directory {
        entries: BTreeMap<String, NodeId>,
        parent: NodeId,
        /// An entry of its own was seen (not only paths inside it).
        explicit: bool,
    },
    File(Range<usize>),
    Symlink(Box<str>),
}

struct Builder {
    drafts: Vec<(Draft, u64, u64)>, // draft, mtime (s), links
}

impl Builder {
    fn new() -> Builder {
        Builder {
            drafts: alloc::vec![(
                Draft::Directory {
                    entries: BTreeMap::new(),
                    parent: Tree::ROOT,
                    explicit: false,
                },
                0,
                1,
            )],
        }
    }

    fn push(&mut self, draft: Draft, mtime: u64) -> Result<NodeId, ArchiveErrorKind> {
        let id = u32::try_from(self.drafts.len()).map_err(|_| ArchiveErrorKind::TooManyEntries)?;
        self.drafts.push((draft, mtime, 1));
        Ok(NodeId(id))
    }

    fn child(&self, dir: NodeId, name: &str) -> Option<NodeId> {
        match &self.drafts[dir.0 as usize].0 {
            Draft::Directory { entries, .. } => entries.get(name).copied(),
            _ => None,
        }
    }

    /// The directory `parts` names, created (implicitly) where missing.
    fn directory(&mut self, parts: &[&str], path: &str) -> Result<NodeId, ArchiveErrorKind> {
        let mut current = Tree::ROOT;
        for part in parts {
            current = match self.child(current, part) {
                Some(next) if matches!(self.drafts[next.0 as usize].0, Draft::Directory { .. }) => {
                    next
                }
                Some(_) => return Err(ArchiveErrorKind::ParentNotDirectory(path.to_string())),
                None => {
                    let draft = Draft::Directory {
                        entries: BTreeMap::new(),
                        parent: current,
                        explicit: false,
                    };
                    let id = self.push(draft, 0)?;
                    self.link(current, part, id);
                    id
                }
            };
        }
        Ok(current)
    }

    fn link(&mut self, dir: NodeId, name: &str, id: NodeId) {
        if let Draft::Directory { entries, .. } = &mut self.drafts[dir.0 as usize].0 {
            entries.insert(name.to_string(), id);
        }
    }

    fn add(&mut self, entry: archive::Entry<'_>) -> Result<(), ArchiveErrorKind> {
        let path = entry.path.as_ref();
        let parts = archive::components(path)?;
        let Some((name, parent_parts)) = parts.split_last() else {
            // The root's own entry.
            let EntryKind::Directory = entry.kind else {
                return Err(ArchiveErrorKind::RootNotDirectory);
            };
            return self.explicit_directory(Tree::ROOT, entry.mtime, path);
        };
        let parent = self.directory(parent_parts, path)?;
        let existing = self.child(parent, name);
        match (entry.kind, existing) {
            (EntryKind::Directory, Some(id)) => {
                if !matches!(self.drafts[id.0 as usize].0, Draft::Directory { .. }) {
                    return Err(ArchiveErrorKind::Duplicate(path.to_string()));
                }
                self.explicit_directory(id, entry.mtime, path)
            }
            (_, Some(_)) => Err(ArchiveErrorKind::Duplicate(path.to_string())),
            (EntryKind::Directory, None) => {
                let draft = Draft::Directory {
                    entries: BTreeMap::new(),
                    parent,
                    explicit: true,
                };
                let id = self.push(draft, entry.mtime)?;
                self.link(parent, name, id);
                Ok(())
            }
            (EntryKind::File { data }, None) => {
                let id = self.push(Draft::File(data), entry.mtime)?;
                self.link(parent, name, id);
                Ok(())
            }
            (EntryKind::Symlink { target }, None) => {
                if target.is_empty() || target.len() > archive::MAX_PATH {
                    return Err(ArchiveErrorKind::PathTooLong);
                }
                let id = self.push(Draft::Symlink(target.as_ref().into()), entry.mtime)?;
                self.link(parent, name, id);
                Ok(())
            }
            (EntryKind::HardLink { target }, None) => {
                let bad = || ArchiveErrorKind::BadHardLink {
                    path: path.to_string(),
                    target: target.to_string(),
                };
                let target_parts = archive::components(&target).map_err(|_| bad())?;
                let mut current = Tree::ROOT;
                for part in &target_parts {
                    current = self.child(current, part).ok_or_else(bad)?;
                }
                if !matches!(self.drafts[current.0 as usize].0, Draft::File(_)) {
                    return Err(bad());
                }
                self.drafts[current.0 as usize].2 += 1;
                self.link(parent, name, current);
                Ok(())
            }
        }
    }

    fn explicit_directory(
        &mut self,
        id: NodeId,
        mtime: u64,
        path: &str,
    ) -> Result<(), ArchiveErrorKind> {
        let (draft, draft_mtime, _) = &mut self.drafts[id.0 as usize];
        if let Draft::Directory { explicit, .. } = draft {
            if *explicit {
                return Err(ArchiveErrorKind::Duplicate(path.to_string()));
            }
            *explicit = true;
            *draft_mtime = mtime;
        }
        Ok(())
    }

    fn finish(self, image: Image) -> Tree {
        let nodes = self
            .drafts
            .into_iter()
            .map(|(draft, mtime, links)| Node {
                kind: match draft {
                    Draft::Directory {
                        entries, parent, ..
                    } => NodeKind::Directory {
                        entries: entries
                            .into_iter()
                            .map(|(name, id)| (name.into_boxed_str(), id))
                            .collect(),
                        parent,
                    },
                    Draft::File(data) => NodeKind::File { data },
                    Draft::Symlink(target) => NodeKind::Symlink { target },
                },
                mtime_nanos: mtime.saturating_mul(1_000_000_000),
                links,
            })
            .collect();
        Tree {
            inner: Arc::new(Inner { image, nodes }),
        }
    }
}

impl Tree {
    pub const ROOT: NodeId = NodeId(0);

    /// Parses and checks a ustar image; see [`crate::archive`] for what is
    /// accepted.
    pub fn from_ustar(image: impl Into<Image>) -> Result<Tree, ArchiveError> {
        let image = image.into();
        let builder = Tree::build(image.bytes())?;
        Ok(builder.finish(image))
    }

    /// The checks of [`Tree::from_ustar`] without keeping the tree.
    pub(crate) fn check_ustar(image: &[u8]) -> Result<(), ArchiveError> {
        Tree::build(image).map(drop)
    }

    fn build(image: &[u8]) -> Result<Builder, ArchiveError> {
        let mut builder = Builder::new();
        for entry in archive::entries(image) {
            let entry = entry?;
            let offset = entry.offset;
            builder
                .add(entry)
                .map_err(|kind| ArchiveError { offset, kind })?;
        }
        Ok(builder)
    }

    /// A tree with nothing but its root directory.
    pub fn empty() -> Tree {
        Builder::new().finish(Image::Static(&[]))
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.inner.nodes.get(id.0 as usize)
    }

    /// Number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.inner.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 1
    }

    /// A file's contents (empty for anything else).
    pub fn contents(&self, id: NodeId) -> &[u8] {
        match self.node(id).map(|node| &node.kind) {
            Some(NodeKind::File { data }) => {
                self.inner.image.bytes().get(data.clone()).unwrap_or(&[])
            }
            _ => &[],
        }
    }

    /// Entry `index` of a directory as `fd_readdir` lists it: "." and ".."
    /// first, then the entries by name.
    pub fn directory_entry(&self, dir: NodeId, index: u64) -> Option<(&str, NodeId)> {
        let NodeKind::Directory { entries, parent } = &self.node(dir)?.kind else {
            return None;
        };
        match index {
            0 => Some((".", dir)),
            1 => Some(("..", *parent)),
            _ => {
                let index = usize::try_from(index - 2).ok()?;
                entries.get(index).map(|(name, id)| (name.as_ref(), *id))
            }
        }
    }

    fn child(&self, dir: NodeId, name: &str) -> Result<NodeId, Errno> {
        match &self.node(dir).ok_or(Errno::NoEnt)?.kind {
            NodeKind::Directory { entries, .. } => entries
                .binary_search_by(|(entry, _)| entry.as_ref().cmp(name))
                .map(|index| entries[index].1)
                .map_err(|_| Errno::NoEnt),
            _ => Err(Errno::NotDir),
        }
    }

    fn parent(&self, dir: NodeId) -> Result<NodeId, Errno> {
        if dir == Tree::ROOT {
            return Err(Errno::NotCapable);
        }
        match &self.node(dir).ok_or(Errno::NoEnt)?.kind {
            NodeKind::Directory { parent, .. } => Ok(*parent),
            _ => Err(Errno::NotDir),
        }
    }

    /// Resolves `path` from the directory `start`. Symbolic links on the
    /// way are followed; the last one only with `follow`. A path ending in
    /// "/" (or "/." or "/..") must name a directory.
    pub fn lookup(&self, start: NodeId, path: &str, follow: bool) -> Result<NodeId, Errno> {
        if path.is_empty() {
            return Err(Errno::NoEnt);
        }
        if path.len() > archive::MAX_PATH {
            return Err(Errno::NameTooLong);
        }
        let mut must_be_directory = names_directory(path);
        let mut current = if path.starts_with('/') {
            Tree::ROOT
        } else {
            start
        };
        // Components still to walk, last first.
        let mut todo: Vec<&str> = path.split('/').rev().collect();
        let mut follows = 0;
        while let Some(component) = todo.pop() {
            match component {
                "" | "." => {
                    if !self.node(current).is_some_and(Node::is_directory) {
                        return Err(Errno::NotDir);
                    }
                    continue;
                }
                ".." => {
                    current = self.parent(current)?;
                    continue;
                }
                _ => {}
            }
            let child = self.child(current, component)?;
            let last = todo.iter().all(|rest| rest.is_empty() || *rest == ".");
            let node = self.node(child).ok_or(Errno::NoEnt)?;
            match &node.kind {
                NodeKind::Symlink { target } if !last || follow || must_be_directory => {
                    follows += 1;
                    if follows > MAX_SYMLINK_FOLLOWS {
                        return Err(Errno::Loop);
                    }
                    if last && names_directory(target) {
                        must_be_directory = true;
                    }
                    if target.starts_with('/') {
                        current = Tree::ROOT;
                    }
                    todo.extend(target.split('/').rev());
                }
                _ => current = child,
            }
        }
        if must_be_directory && !self.node(current).is_some_and(Node::is_directory) {
            return Err(Errno::NotDir);
        }
        Ok(current)
    }

    /// The directory that would hold `path`'s last component, for calls
    /// that create or remove it.
    pub fn lookup_parent(&self, start: NodeId, path: &str) -> Result<NodeId, Errno> {
        let trimmed = path.trim_end_matches('/');
        match trimmed.rfind('/') {
            Some(slash) => self.lookup(start, &trimmed[..=slash], true),
            None if trimmed.is_empty() && !path.is_empty() => Ok(Tree::ROOT),
            None => match self.node(start) {
                Some(node) if node.is_directory() => Ok(start),
                _ => Err(Errno::NotDir),
            },
        }
    }
}

/// Whether a path can only name a directory: it ends in "/", "." or "..".
fn names_directory(path: &str) -> bool {
    matches!(path.rsplit('/').next(), Some("" | "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveBuilder;

    fn sample() -> Tree {
        let mut builder = ArchiveBuilder::new();
        builder
            .directory("etc", 100)
            .unwrap()
            .file("etc/hosts", b"hosts\n", 200)
            .unwrap()
            .file("a/b/c.txt", b"deep", 0)
            .unwrap()
            .symlink("hosts", "etc/hosts", 0)
            .unwrap()
            .symlink("abs", "/a/b", 0)
            .unwrap()
            .symlink("up", "../etc", 0)
            .unwrap()
            .symlink("a/b/back", "../../etc/", 0)
            .unwrap()
            .symlink("loop1", "loop2", 0)
            .unwrap()
            .symlink("loop2", "loop1", 0)
            .unwrap()
            .symlink("dangling", "nowhere", 0)
            .unwrap();
        Tree::from_ustar(builder.finish()).unwrap()
    }

    fn name_of(tree: &Tree, id: NodeId) -> String {
        // Find the node's name by scanning (tests only).
        for index in 0..tree.len() {
            let dir = NodeId(index as u32);
            let mut entry = 2;
            while let Some((name, child)) = tree.directory_entry(dir, entry) {
                if child == id {
                    return name.to_string();
                }
                entry += 1;
            }
        }
        String::from("/")
    }

    #[test]
    fn files_read_back_their_contents() {
        let tree = sample();
        let hosts = tree.lookup(Tree::ROOT, "etc/hosts", true).unwrap();
        assert_eq!(tree.contents(hosts), b"hosts\n");
        assert_eq!(tree.node(hosts).unwrap().mtime_nanos, 200_000_000_000);
        let etc = tree.lookup(Tree::ROOT, "etc", true).unwrap();
        assert_eq!(tree.node(etc).unwrap().mtime_nanos, 100_000_000_000);
        assert_eq!(tree.contents(etc), b"");
    }

    #[test]
    fn symlinks_are_followed_unless_last_and_not_asked() {
        let tree = sample();
        let hosts = tree.lookup(Tree::ROOT, "etc/hosts", true).unwrap();
        assert_eq!(tree.lookup(Tree::ROOT, "hosts", true), Ok(hosts));
        let link = tree.lookup(Tree::ROOT, "hosts", false).unwrap();
        assert!(matches!(
            tree.node(link).unwrap().kind,
            NodeKind::Symlink { .. }
        ));
        let c = tree.lookup(Tree::ROOT, "a/b/c.txt", false).unwrap();
        assert_eq!(tree.lookup(Tree::ROOT, "abs/c.txt", false), Ok(c));
        assert_eq!(tree.lookup(Tree::ROOT, "a/b/back/hosts", false), Ok(hosts));
        // A trailing slash follows the last link and wants a directory.
        let etc = tree.lookup(Tree::ROOT, "etc", false).unwrap();
        assert_eq!(
            tree.lookup(Tree::ROOT, "a/b/back", false)
                .map(|id| name_of(&tree, id)),
            Ok("back".into())
        );
        assert_eq!(tree.lookup(Tree::ROOT, "a/b/back/", false), Ok(etc));
        assert_eq!(tree.lookup(Tree::ROOT, "hosts/", true), Err(Errno::NotDir));
    }

    #[test]
    fn dot_and_dotdot_walk_but_never_above_the_root() {
        let tree = sample();
        let etc = tree.lookup(Tree::ROOT, "etc", true).unwrap();
        assert_eq!(tree.lookup(Tree::ROOT, "./a/../etc/.", true), Ok(etc));
        assert_eq!(tree.lookup(etc, "..", true), Ok(Tree::ROOT));
        assert_eq!(tree.lookup(Tree::ROOT, "..", true), Err(Errno::NotCapable));
        assert_eq!(tree.lookup(etc, "../..", true), Err(Errno::NotCapable));
        assert_eq!(tree.lookup(Tree::ROOT, "up", true), Err(Errno::NotCapable));
        assert_eq!(
            tree.lookup(Tree::ROOT, "etc/hosts/..", true),
            Err(Errno::NotDir)
        );
        assert_eq!(tree.lookup(Tree::ROOT, ".", true), Ok(Tree::ROOT));
    }

    #[test]
    fn missing_loops_and_dangling_links_have_their_errnos() {
        let tree = sample();
        assert_eq!(tree.lookup(Tree::ROOT, "nope", true), Err(Errno::NoEnt));
        assert_eq!(tree.lookup(Tree::ROOT, "", true), Err(Errno::NoEnt));
        assert_eq!(tree.lookup(Tree::ROOT, "loop1", true), Err(Errno::Loop));
        assert!(tree.lookup(Tree::ROOT, "loop1", false).is_ok());
        assert_eq!(tree.lookup(Tree::ROOT, "dangling", true), Err(Errno::NoEnt));
        assert_eq!(
            tree.lookup(Tree::ROOT, "etc/hosts/x", true),
            Err(Errno::NotDir)
        );
        assert_eq!(
            tree.lookup(Tree::ROOT, &"a/".repeat(3000), true),
            Err(Errno::NameTooLong)
        );
    }

    #[test]
    fn directory_entries_list_dot_dotdot_then_names_in_order() {
        let tree = sample();
        let names: Vec<&str> = (0..)
            .map_while(|index| tree.directory_entry(Tree::ROOT, index))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                ".", "..", "a", "abs", "dangling", "etc", "hosts", "loop1", "loop2", "up"
            ]
        );
        let etc = tree.lookup(Tree::ROOT, "etc", true).unwrap();
        assert_eq!(tree.directory_entry(etc, 1), Some(("..", Tree::ROOT)));
        assert_eq!(tree.directory_entry(etc, 3), None);
        let hosts = tree.lookup(Tree::ROOT, "etc/hosts", true).unwrap();
        assert_eq!(tree.directory_entry(hosts, 0), None);
    }

    #[test]
    fn parents_of_new_names_resolve() {
        let tree = sample();
        let etc = tree.lookup(Tree::ROOT, "etc", true).unwrap();
        assert_eq!(tree.lookup_parent(Tree::ROOT, "etc/new"), Ok(etc));
        assert_eq!(tree.lookup_parent(Tree::ROOT, "new"), Ok(Tree::ROOT));
        assert_eq!(tree.lookup_parent(Tree::ROOT, "new/"), Ok(Tree::ROOT));
        assert_eq!(
            tree.lookup_parent(Tree::ROOT, "missing/new"),
            Err(Errno::NoEnt)
        );
        assert_eq!(
            tree.lookup_parent(Tree::ROOT, "etc/hosts/new"),
            Err(Errno::NotDir)
        );
    }

    #[test]
    fn hard_links_share_a_node() {
        let mut image = ArchiveBuilder::new();
        image.file("data", b"shared", 0).unwrap();
        let mut image = image.finish();
        image.truncate(image.len() - 2 * archive::BLOCK);
        let mut link = [0u8; archive::BLOCK];
        link[..4].copy_from_slice(b"same");
        link[100..107].copy_from_slice(b"0000644");
        link[124..135].copy_from_slice(b"00000000000");
        link[136..147].copy_from_slice(b"00000000000");
        link[156] = b'1';
        link[157..161].copy_from_slice(b"data");
        link[257..263].copy_from_slice(b"ustar\0");
        link[263..265].copy_from_slice(b"00");
        link[148..156].fill(b' ');
        let sum: u64 = link.iter().map(|&byte| u64::from(byte)).sum();
        link[148..156].copy_from_slice(alloc::format!("{sum:06o}\0 ").as_bytes());
        image.extend_from_slice(&link);
        image.resize(image.len() + 2 * archive::BLOCK, 0);
        let tree = Tree::from_ustar(image.clone()).unwrap();
        let data = tree.lookup(Tree::ROOT, "data", true).unwrap();
        assert_eq!(tree.lookup(Tree::ROOT, "same", true), Ok(data));
        assert_eq!(tree.node(data).unwrap().links, 2);

        // A link to something missing is refused.
        image[1024 + 157..1024 + 161].copy_from_slice(b"miss");
        let header = &mut image[1024..1536];
        header[148..156].fill(b' ');
        let sum: u64 = header.iter().map(|&byte| u64::from(byte)).sum();
        header[148..156].copy_from_slice(alloc::format!("{sum:06o}\0 ").as_bytes());
        assert!(matches!(
            Tree::from_ustar(image).unwrap_err().kind,
            ArchiveErrorKind::BadHardLink { .. }
        ));
    }

    #[test]
    fn duplicates_and_files_as_parents_are_refused() {
        // Built by hand: the builder itself refuses these.
        let file = |name: &str| {
            let mut builder = ArchiveBuilder::new();
            builder.file(name, b"x", 0).unwrap();
            let mut image = builder.finish();
            image.truncate(image.len() - 2 * archive::BLOCK);
            image
        };
        let mut image = file("a");
        image.extend(file("./a"));
        image.resize(image.len() + 2 * archive::BLOCK, 0);
        assert_eq!(
            Tree::from_ustar(image).unwrap_err().kind,
            ArchiveErrorKind::Duplicate("a".into())
        );
        let mut image = file("a");
        image.extend(file("a/b"));
        image.resize(image.len() + 2 * archive::BLOCK, 0);
        assert_eq!(
            Tree::from_ustar(image).unwrap_err().kind,
            ArchiveErrorKind::ParentNotDirectory("a/b".into())
        );
    }

    #[test]
    fn a_directory_entry_after_its_contents_is_fine_once() {
        let mut builder = ArchiveBuilder::new();
        builder
            .file("d/f", b"", 0)
            .unwrap()
            .directory("d", 9)
            .unwrap();
        let tree = Tree::from_ustar(builder.finish()).unwrap();
        let d = tree.lookup(Tree::ROOT, "d", true).unwrap();
        assert_eq!(tree.node(d).unwrap().mtime_nanos, 9_000_000_000);
    }

    #[test]
    fn an_empty_tree_has_only_its_root() {
        let tree = Tree::empty();
        assert!(tree.is_empty());
        assert_eq!(tree.directory_entry(Tree::ROOT, 2), None);
        assert!(
            Tree::from_ustar(ArchiveBuilder::new().finish())
                .unwrap()
                .is_empty()
        );
    }
}
