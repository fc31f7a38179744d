//! Helpers shared by the integration tests: build trees, compare trees.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a tree looks like: path -> (kind, mode, content or link target, inode group).
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(PathBuf),
}

/// Snapshot of a tree (never follows symlinks). Hard links are reported as
/// groups of paths sharing an inode.
pub fn snapshot(root: &Path) -> (BTreeMap<PathBuf, Node>, Vec<Vec<PathBuf>>) {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    // Inode numbers and directory order differ between trees: compare the
    // groups as sorted sets of sorted paths.
    let mut groups: Vec<Vec<PathBuf>> = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    (out, groups)
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<PathBuf, Node>,
    inodes: &mut BTreeMap<u64, Vec<PathBuf>>,
) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let m = fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        if m.is_dir() {
            out.insert(rel, Node::Dir(mode));
            walk(root, &p, out, inodes);
        } else if m.file_type().is_symlink() {
            out.insert(rel, Node::Link(fs::read_link(&p).unwrap()));
        } else {
            inodes.entry(m.ino()).or_default().push(rel.clone());
            out.insert(rel, Node::File(mode, fs::read(&p).unwrap()));
        }
    }
}
