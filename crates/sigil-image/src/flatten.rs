//! Flattening layers into one root file system.
//!
//! The tree's metadata (type, mode, owner, mtime, link target, xattrs) lives
//! in memory, keyed by the path relative to `/`; only directories and regular
//! file contents are written to a private staging directory. No symlink or
//! device is ever created on the host, so a hostile layer cannot make us write
//! outside the staging directory: every path is normalized (no `..`, no
//! absolute paths) and every ancestor must be a directory *in the image*.
//!
//! Layers are applied bottom first with OCI whiteout semantics: `.wh.NAME`
//! deletes NAME from lower layers, `.wh..wh..opq` hides everything lower
//! layers put in its directory.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::error::IoContext;
use crate::{Error, Limits, Result};

/// Type of a node in the image tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file (content in the staging directory).
    File,
    /// Symbolic link with its target, verbatim.
    Symlink(String),
    /// Hard link to another path of the image (content shared on disk).
    Hardlink(String),
    /// Character device (major, minor).
    Char(u32, u32),
    /// Block device (major, minor).
    Block(u32, u32),
    /// Named pipe.
    Fifo,
}

/// One node of the image tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Type.
    pub kind: Kind,
    /// Permission bits (incl. setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time (seconds).
    pub mtime: u64,
    /// Extended attributes (e.g. `security.capability`), from PAX headers.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Node {
    /// A directory node with the given mode, owned by root.
    pub fn dir(mode: u32) -> Node {
        Node {
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }
}

/// A flattened root file system being built.
pub struct Rootfs {
    staging: PathBuf,
    nodes: BTreeMap<String, Node>,
    limits: Limits,
    total_bytes: u64,
    entries: u64,
}

/// Normalizes a path from a layer or the command line to the form used as
/// key: relative to `/`, no `.`/empty components. `..` is refused.
pub fn normalize(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn parent(path: &str) -> &str {
    path.rfind('/').map(|i| &path[..i]).unwrap_or("")
}

fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

impl Rootfs {
    /// An empty tree whose file contents go to `staging` (created, must not exist
    /// or be empty, on a file system we own).
    pub fn new(staging: &Path, limits: &Limits) -> Result<Rootfs> {
        fs::create_dir_all(staging).at(staging)?;
        fs::set_permissions(staging, fs::Permissions::from_mode(0o700)).at(staging)?;
        Ok(Rootfs {
            staging: staging.to_path_buf(),
            nodes: BTreeMap::new(),
            limits: limits.clone(),
            total_bytes: 0,
            entries: 0,
        })
    }

    /// The node at `path` (normalized, relative to `/`).
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// All nodes in path order (parents before children).
    pub fn nodes(&self) -> &BTreeMap<String, Node> {
        &self.nodes
    }

    /// The host path holding the content of a file or directory of the image.
    pub fn disk_path(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.staging.clone()
        } else {
            self.staging.join(path)
        }
    }

    /// Total bytes of regular file content extracted so far.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Applies one uncompressed layer tar on top of the tree. `name` is used in
    /// errors; `progress` is called with the number of content bytes written.
    pub fn apply_layer(
        &mut self,
        name: &str,
        tar_stream: impl Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let lerr = |msg: String| Error::Layer {
            layer: name.to_string(),
            msg,
        };
        let mut ar = tar::Archive::new(tar_stream);
        let mut this_layer: HashSet<String> = HashSet::new();
        let entries = ar
            .entries()
            .map_err(|e| lerr(format!("not a tar stream: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| lerr(format!("corrupt tar: {e}")))?;
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(Error::Limit(format!(
                    "more than {} entries in the image",
                    self.limits.max_entries
                )));
            }
            let raw = entry.path_bytes().into_owned();
            if raw.len() > self.limits.max_path_len {
                return Err(lerr(format!(
                    "path longer than {} bytes",
                    self.limits.max_path_len
                )));
            }
            let raw = String::from_utf8(raw).map_err(|e| {
                lerr(format!(
                    "non-UTF-8 path {:?}",
                    String::from_utf8_lossy(e.as_bytes())
                ))
            })?;
            let path =
                normalize(&raw).ok_or_else(|| lerr(format!("path traversal in entry {raw:?}")))?;
            if path.is_empty() {
                // The root directory itself: nothing to do.
                continue;
            }
            let base = path.rsplit('/').next().unwrap_or(&path);
            if let Some(hidden) = base.strip_prefix(".wh.") {
                let dir = parent(&path).to_string();
                self.check_ancestors(&dir, &lerr)?;
                if hidden == ".wh..opq" {
                    self.opaque(&dir, &this_layer)?;
                } else if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(lerr(format!("malformed whiteout {raw:?}")));
                } else {
                    let victim = if dir.is_empty() {
                        hidden.to_string()
                    } else {
                        format!("{dir}/{hidden}")
                    };
                    self.remove_subtree(&victim)?;
                }
                continue;
            }
            let hdr = entry.header().clone();
            let mode = hdr.mode().map_err(|e| lerr(format!("{path}: {e}")))? & 0o7777;
            let uid = hdr.uid().map_err(|e| lerr(format!("{path}: {e}")))?;
            let gid = hdr.gid().map_err(|e| lerr(format!("{path}: {e}")))?;
            let mtime = hdr.mtime().unwrap_or(0);
            let mut xattrs = Vec::new();
            if let Ok(Some(exts)) = entry.pax_extensions() {
                for ext in exts.flatten() {
                    if let Ok(k) = ext.key() {
                        if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((x.to_string(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
            let et = hdr.entry_type();
            let kind = match et {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let t = entry
                        .link_name_bytes()
                        .ok_or_else(|| lerr(format!("{path}: link without target")))?;
                    if t.len() > self.limits.max_path_len {
                        return Err(lerr(format!("{path}: link target too long")));
                    }
                    let t = String::from_utf8(t.into_owned())
                        .map_err(|_| lerr(format!("{path}: non-UTF-8 link target")))?;
                    if et == tar::EntryType::Symlink {
                        Kind::Symlink(t)
                    } else {
                        let t = normalize(&t).filter(|t| !t.is_empty()).ok_or_else(|| {
                            lerr(format!("{path}: hard link target {t:?} leaves the image"))
                        })?;
                        Kind::Hardlink(t)
                    }
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    let maj = hdr.device_major().ok().flatten().unwrap_or(0);
                    let min = hdr.device_minor().ok().flatten().unwrap_or(0);
                    if et == tar::EntryType::Char {
                        Kind::Char(maj, min)
                    } else {
                        Kind::Block(maj, min)
                    }
                }
                tar::EntryType::Fifo => Kind::Fifo,
                tar::EntryType::XGlobalHeader => continue,
                other => return Err(lerr(format!("{path}: unsupported entry type {other:?}"))),
            };
            self.check_ancestors(&path, &lerr)?;
            self.make_parents(&path, &mut this_layer)?;
            // Replacing: a directory over a directory only updates metadata;
            // anything else removes what was there.
            let existing_dir = matches!(self.nodes.get(&path).map(|n| &n.kind), Some(Kind::Dir));
            if !(existing_dir && kind == Kind::Dir) && self.nodes.contains_key(&path) {
                self.remove_subtree(&path)?;
            }
            let disk = self.disk_path(&path);
            match &kind {
                Kind::Dir if !existing_dir => {
                    fs::create_dir(&disk).at(&disk)?;
                }
                Kind::File => {
                    let size = entry.size();
                    if size > self.limits.max_layer_bytes {
                        return Err(Error::Limit(format!("{path}: file of {size} bytes")));
                    }
                    self.total_bytes += size;
                    if self.total_bytes > self.limits.max_total_bytes {
                        return Err(Error::Limit(format!(
                            "image unpacks to more than {} bytes",
                            self.limits.max_total_bytes
                        )));
                    }
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode_0600()
                        .open(&disk)
                        .at(&disk)?;
                    let n = io::copy(&mut entry, &mut f)
                        .map_err(|e| lerr(format!("{path}: corrupt data: {e}")))?;
                    if n != size {
                        return Err(lerr(format!("{path}: truncated ({n} of {size} bytes)")));
                    }
                    progress(n);
                }
                Kind::Hardlink(t) => {
                    let target_is_file = matches!(
                        self.nodes.get(t).map(|n| &n.kind),
                        Some(Kind::File | Kind::Hardlink(_))
                    );
                    if !target_is_file {
                        return Err(lerr(format!(
                            "{path}: hard link to {t:?}, which is not a regular file of the image"
                        )));
                    }
                    let src = self.disk_path(t);
                    fs::hard_link(&src, &disk).at(&disk)?;
                }
                _ => {}
            }
            this_layer.insert(path.clone());
            self.nodes.insert(
                path,
                Node {
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime,
                    xattrs,
                },
            );
        }
        Ok(())
    }

    /// Every ancestor of `path` that exists must be a directory of the image:
    /// a layer may not write through a symlink (it could point anywhere).
    fn check_ancestors(&self, path: &str, lerr: &dyn Fn(String) -> Error) -> Result<()> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let anc = &path[..end + i];
            match self.nodes.get(anc).map(|n| &n.kind) {
                None | Some(Kind::Dir) => {}
                Some(Kind::Symlink(_)) => {
                    return Err(lerr(format!("{path}: passes through symlink /{anc}")))
                }
                Some(_) => return Err(lerr(format!("{path}: /{anc} is not a directory"))),
            }
            end += i + 1;
        }
        Ok(())
    }

    fn make_parents(&mut self, path: &str, this_layer: &mut HashSet<String>) -> Result<()> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let anc = path[..end + i].to_string();
            if !self.nodes.contains_key(&anc) {
                let disk = self.disk_path(&anc);
                fs::create_dir(&disk).at(&disk)?;
                self.nodes.insert(anc.clone(), Node::dir(0o755));
            }
            this_layer.insert(anc);
            end += i + 1;
        }
        Ok(())
    }

    /// Removes `path` and everything below it (whiteout); absent is fine.
    pub fn remove_subtree(&mut self, path: &str) -> Result<()> {
        let keys: Vec<String> = self
            .nodes
            .range(path.to_string()..)
            .take_while(|(k, _)| k.starts_with(path))
            .filter(|(k, _)| *k == path || is_under(k, path))
            .map(|(k, _)| k.clone())
            .collect();
        let top = self.nodes.get(path).map(|n| n.kind.clone());
        for k in keys {
            self.nodes.remove(&k);
        }
        let disk = self.disk_path(path);
        match top {
            Some(Kind::Dir) => fs::remove_dir_all(&disk).at(&disk)?,
            Some(Kind::File | Kind::Hardlink(_)) => fs::remove_file(&disk).at(&disk)?,
            _ => {}
        }
        Ok(())
    }

    fn opaque(&mut self, dir: &str, this_layer: &HashSet<String>) -> Result<()> {
        let mut victims: Vec<(String, Kind)> = self
            .nodes
            .iter()
            .filter(|(k, _)| is_under(k, dir) && !this_layer.contains(*k))
            .map(|(k, n)| (k.clone(), n.kind.clone()))
            .collect();
        // Children before parents.
        victims.sort_by(|a, b| b.0.cmp(&a.0));
        for (k, kind) in victims {
            self.nodes.remove(&k);
            let disk = self.disk_path(&k);
            match kind {
                Kind::Dir => fs::remove_dir_all(&disk).at(&disk)?,
                Kind::File | Kind::Hardlink(_) => fs::remove_file(&disk).at(&disk)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Moves `path` (and everything below it) out of the tree into `dst_root`
    /// (same relative path). Files and directories are renamed, symlinks are
    /// created there; devices and FIFOs are refused (they cannot be protected).
    /// Returns the nodes moved, in path order.
    pub fn take_subtree(&mut self, path: &str, dst_root: &Path) -> Result<Vec<(String, Node)>> {
        let moved: Vec<(String, Node)> = self
            .nodes
            .iter()
            .filter(|(k, _)| *k == path || is_under(k, path))
            .map(|(k, n)| (k.clone(), n.clone()))
            .collect();
        for (k, n) in &moved {
            let dst = dst_root.join(k);
            if let Some(p) = dst.parent() {
                fs::create_dir_all(p).at(p)?;
            }
            match &n.kind {
                Kind::Dir => {
                    if !dst.exists() {
                        fs::create_dir(&dst).at(&dst)?;
                    }
                }
                Kind::File | Kind::Hardlink(_) => {
                    let src = self.disk_path(k);
                    fs::rename(&src, &dst).at(&dst)?;
                    fs::set_permissions(&dst, fs::Permissions::from_mode(n.mode & 0o777))
                        .at(&dst)?;
                }
                Kind::Symlink(t) => std::os::unix::fs::symlink(t, &dst).at(&dst)?,
                _ => {
                    return Err(Error::Usage(format!(
                        "/{k} is a device or FIFO and cannot be protected"
                    )))
                }
            }
        }
        for (k, n) in moved.iter().rev() {
            if n.kind == Kind::Dir {
                fs::set_permissions(
                    dst_root.join(k),
                    fs::Permissions::from_mode((n.mode & 0o777) | 0o700),
                )
                .at(dst_root.join(k))?;
            }
            self.nodes.remove(k);
        }
        let disk = self.disk_path(path);
        if disk.is_dir() {
            fs::remove_dir_all(&disk).at(&disk)?;
        }
        Ok(moved)
    }

    /// Whether the on-disk content of two file nodes is the same inode.
    pub fn same_content(&self, a: &str, b: &str) -> bool {
        match (
            fs::metadata(self.disk_path(a)),
            fs::metadata(self.disk_path(b)),
        ) {
            (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
            _ => false,
        }
    }

    /// Inserts a node programmatically (used for the files conversion adds).
    pub fn insert_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        let path = normalize(path).ok_or_else(|| Error::Usage(format!("bad path {path:?}")))?;
        let mut scratch = HashSet::new();
        self.make_parents(&path, &mut scratch)?;
        if self.nodes.contains_key(&path) {
            self.remove_subtree(&path)?;
        }
        let disk = self.disk_path(&path);
        fs::write(&disk, content).at(&disk)?;
        self.nodes.insert(
            path,
            Node {
                kind: Kind::File,
                mode,
                uid: 0,
                gid: 0,
                mtime: 0,
                xattrs: Vec::new(),
            },
        );
        Ok(())
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}
impl Mode0600 for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Runs `src` (typically a decompressor) on its own thread and hands its
/// output over in 1 MiB chunks, so decompression overlaps with whatever
/// consumes the stream (tar parsing and file writes) on the other core.
pub fn threaded_reader(mut src: Box<dyn Read + Send>) -> impl Read {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    std::thread::spawn(move || loop {
        let mut buf = vec![0u8; 1 << 20];
        let mut filled = 0;
        let res = loop {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match res {
            Ok(()) => {
                buf.truncate(filled);
                let eof = filled == 0;
                if tx.send(Ok(buf)).is_err() || eof {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    });
    ChunkReader {
        rx,
        cur: Vec::new(),
        pos: 0,
        done: false,
    }
}

struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    if chunk.is_empty() {
                        self.done = true;
                        return Ok(0);
                    }
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("decompression thread ended early"));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..n + self.pos]);
        self.pos += n;
        Ok(n)
    }
}
