//! What the fuzz target in `wasm-host/fuzz` checks, as a function of the
//! fuzzer's bytes, so that the committed seeds (`wasm-host/fuzz/seeds/`)
//! run as ordinary tests too.
//!
//! `ustar_tree`: the input as a tree image. It is refused with an error
//! inside the image, or it is a tree whose every node is reached once from
//! the root under sorted, plain names, whose files lie inside the image,
//! whose paths look up to their nodes, whose symbolic links resolve
//! inside the tree, and which the archive builder writes back as itself.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::archive::{self, ArchiveBuilder, EntryKind, MAX_PATH};
use crate::errno::Errno;
use crate::tree::{NodeId, NodeKind, Tree};

/// A target's check of one input: it panics when an invariant breaks.
pub type Check = fn(&[u8]);

/// Every target by name, as `wasm-host/fuzz/fuzz_targets/NAME.rs` calls it.
pub const TARGETS: &[(&str, Check)] = &[("ustar_tree", ustar_tree)];

/// What a path names, comparable across two trees.
#[derive(Debug, PartialEq, Eq)]
enum Listed<'a> {
    Directory,
    File(&'a [u8]),
    Symlink(&'a str),
}

pub fn ustar_tree(data: &[u8]) {
    for entry in archive::entries(data) {
        match entry {
            Ok(entry) => {
                assert!(entry.offset < data.len());
                if let EntryKind::File { data: range } = entry.kind {
                    assert!(range.start <= range.end && range.end <= data.len());
                }
            }
            Err(error) => assert!(error.offset <= data.len()),
        }
    }
    let tree = Tree::from_ustar(data.to_vec());
    assert_eq!(
        archive::validate(data).err(),
        tree.as_ref().err().cloned(),
        "validate answers as parsing does"
    );
    let Ok(tree) = tree else { return };
    let listing = walk(&tree, data.len());
    for (path, id) in &listing {
        if path.len() <= MAX_PATH {
            assert_eq!(tree.lookup(Tree::ROOT, path, false), Ok(*id), "{path}");
        }
        if let Some(NodeKind::Symlink { .. }) = tree.node(*id).map(|n| &n.kind) {
            match tree.lookup(Tree::ROOT, path, true) {
                Ok(target) => assert!(tree.node(target).is_some()),
                Err(errno) => assert!(
                    matches!(
                        errno,
                        Errno::NoEnt
                            | Errno::NotDir
                            | Errno::Loop
                            | Errno::NotCapable
                            | Errno::NameTooLong
                    ),
                    "{path}: {errno:?}"
                ),
            }
        }
    }
    round_trip(&tree, &listing);
}

/// Every path from the root (the root itself as ".") with its node,
/// checking the structure on the way.
fn walk(tree: &Tree, image_len: usize) -> Vec<(String, NodeId)> {
    let mut listing = Vec::new();
    let mut directories = vec![(String::from("."), Tree::ROOT)];
    listing.push((String::from("."), Tree::ROOT));
    while let Some((path, dir)) = directories.pop() {
        assert_eq!(tree.directory_entry(dir, 0), Some((".", dir)));
        let parent = tree.directory_entry(dir, 1).expect("..").1;
        if dir == Tree::ROOT {
            assert_eq!(parent, Tree::ROOT);
        }
        let mut index = 2;
        let mut previous: Option<&str> = None;
        while let Some((name, child)) = tree.directory_entry(dir, index) {
            assert!(!name.is_empty() && name != "." && name != ".." && !name.contains('/'));
            assert!(previous < Some(name), "entries sorted, each once");
            previous = Some(name);
            let node = tree.node(child).expect("a node of this tree");
            let child_path = if dir == Tree::ROOT {
                name.to_string()
            } else {
                alloc::format!("{path}/{name}")
            };
            match &node.kind {
                NodeKind::Directory { parent, .. } => {
                    assert_eq!(*parent, dir);
                    directories.push((child_path.clone(), child));
                }
                NodeKind::File { data } => {
                    assert!(data.start <= data.end && data.end <= image_len);
                    assert_eq!(tree.contents(child).len(), data.len());
                }
                NodeKind::Symlink { target } => {
                    assert!(!target.is_empty() && target.len() <= MAX_PATH);
                }
            }
            listing.push((child_path, child));
            index += 1;
        }
    }
    // Every node is reached: directories by one name, files by as many
    // as they have links.
    let mut names: BTreeMap<NodeId, u64> = BTreeMap::new();
    for (_, id) in &listing {
        *names.entry(*id).or_default() += 1;
    }
    assert_eq!(names.len(), tree.len(), "every node reached");
    for (id, count) in names {
        let node = tree.node(id).expect("a node");
        let expected = match node.kind {
            NodeKind::File { .. } => node.links,
            _ => 1,
        };
        assert_eq!(count, expected, "names of {id:?}");
    }
    listing
}

fn listed<'t>(tree: &'t Tree, id: NodeId) -> Listed<'t> {
    match &tree.node(id).expect("a node").kind {
        NodeKind::Directory { .. } => Listed::Directory,
        NodeKind::File { .. } => Listed::File(tree.contents(id)),
        NodeKind::Symlink { target } => Listed::Symlink(target),
    }
}

/// The tree, written out by the builder (a hard link as a copy) and read
/// again, lists the same paths with the same contents and times. Names
/// with a NUL byte, which only a pax record can carry, the builder
/// refuses: they are left out.
fn round_trip(tree: &Tree, listing: &[(String, NodeId)]) {
    if listing.iter().any(|(path, id)| {
        path.contains('\0') || matches!(listed(tree, *id), Listed::Symlink(t) if t.contains('\0'))
    }) {
        return;
    }
    let seconds = |id: NodeId| tree.node(id).expect("a node").mtime_nanos / 1_000_000_000;
    let mut builder = ArchiveBuilder::new();
    for (path, id) in listing {
        let mtime = seconds(*id);
        let added = match listed(tree, *id) {
            Listed::Directory => builder.directory(path, mtime),
            Listed::File(contents) => builder.file(path, contents, mtime),
            Listed::Symlink(target) => builder.symlink(path, target, mtime),
        };
        added.unwrap_or_else(|e| panic!("the builder refused {path:?}: {e}"));
    }
    let again = Tree::from_ustar(builder.finish()).expect("what the builder writes reads back");
    assert_eq!(
        again.len(),
        listing.len(),
        "a node per path, hard links copied"
    );
    for (path, id) in listing {
        let found = again
            .lookup(Tree::ROOT, path, false)
            .unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
        assert_eq!(listed(&again, found), listed(tree, *id), "{path:?}");
        assert_eq!(
            again.node(found).expect("a node").mtime_nanos / 1_000_000_000,
            seconds(*id),
            "{path:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    /// Every committed seed passes its check: the seeds, crashes found by
    /// fuzzing among them, are regression tests.
    #[test]
    fn every_committed_seed_passes() {
        for (target, check) in super::TARGETS {
            for (file, bytes) in fuzz_seeds::read(env!("CARGO_MANIFEST_DIR"), target) {
                std::eprintln!("{target}: {}", file.display());
                check(&bytes);
            }
        }
    }
}
