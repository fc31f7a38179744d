//! Flattening layers into one root file system.
//!
//! The tree's metadata (type, mode, owner, mtime, link target, xattrs) lives
//! in memory, keyed by the path relative to `/`. File contents are not
//! unpacked: each layer's uncompressed tar stream is copied as it is parsed
//! into one staged file (`layer-N.tar` in a private directory), and a file
//! node records where its data lies in it ([`Content`]). Writing the
//! flattened layer then reads the contents back by offset, in one sequential
//! pass; no per-file staging, no symlink or device is ever created on the
//! host, and a hostile layer cannot make us write outside the staging
//! directory: every path is normalized (no `..`, no absolute paths) and every
//! ancestor must be a directory *in the image*.
//!
//! Layers are applied bottom first with OCI whiteout semantics: `.wh.NAME`
//! deletes NAME from lower layers, `.wh..wh..opq` hides everything lower
//! layers put in its directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::error::IoContext;
use crate::{Error, Limits, Result};

/// Type of a node in the image tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file (content in a staged layer, see [`Node::content`]).
    File,
    /// Symbolic link with its target, verbatim.
    Symlink(String),
    /// Hard link to another path of the image (content shared).
    Hardlink(String),
    /// Character device (major, minor).
    Char(u32, u32),
    /// Block device (major, minor).
    Block(u32, u32),
    /// Named pipe.
    Fifo,
}

/// Where the data of a regular file lies: a byte range of a staged layer.
/// Two nodes with the same `Content` are hard links of each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Content {
    /// Index of the staged layer (bottom first).
    pub layer: u32,
    /// Offset of the data in the layer's uncompressed tar stream.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
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
    /// The data of a regular file or hard link.
    pub content: Option<Content>,
    /// When the node was created, counted in input entries over all layers:
    /// writing nodes in this order keeps every parent before its children
    /// and every hard-link target before its links, as in the input.
    pub seq: u64,
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
            content: None,
            seq: 0,
        }
    }
}

/// Watches a layer being applied ([`Rootfs::apply_layer_observed`]).
pub trait Observer {
    /// `path` was added to the tree (after `new_parents`, the directories
    /// made for it, parents first). For a regular file, `data` reads its
    /// content (reading it is optional; what is not read is skipped).
    fn added(
        &mut self,
        root: &Rootfs,
        new_parents: &[String],
        path: &str,
        data: Option<&mut dyn Read>,
    ) -> Result<()>;
    /// A node already in the tree was removed or replaced (whiteout, opaque
    /// directory, a second entry for the same path).
    fn changed(&mut self);
}

/// A flattened root file system being built.
pub struct Rootfs {
    staging: PathBuf,
    layers: Vec<File>,
    nodes: BTreeMap<String, Node>,
    limits: Limits,
    total_bytes: u64,
    entries: u64,
    seq: u64,
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

/// Copies everything read through it into a staged file.
struct Tee<R> {
    inner: R,
    out: BufWriter<File>,
    err: Option<io::Error>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.err = Some(e);
            return Err(io::Error::other(format!("staging: {msg}")));
        }
        Ok(n)
    }
}

impl Rootfs {
    /// An empty tree whose layers are staged in `staging` (created, must not
    /// exist or be empty, on a file system we own; mode 0700).
    pub fn new(staging: &Path, limits: &Limits) -> Result<Rootfs> {
        fs::create_dir_all(staging).at(staging)?;
        fs::set_permissions(staging, fs::Permissions::from_mode(0o700)).at(staging)?;
        Ok(Rootfs {
            staging: staging.to_path_buf(),
            layers: Vec::new(),
            nodes: BTreeMap::new(),
            limits: limits.clone(),
            total_bytes: 0,
            entries: 0,
            seq: 0,
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

    /// All nodes in input order ([`Node::seq`]; a parent made implicitly for
    /// an entry comes before it): the order to write them in a layer tar.
    pub fn nodes_in_input_order(&self) -> Vec<(&String, &Node)> {
        let mut v: Vec<(&String, &Node)> = self.nodes.iter().collect();
        v.sort_by_key(|(p, n)| (n.seq, p.len()));
        v
    }

    /// Total bytes of regular file content in all layers applied so far.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Reads the whole content of the regular file (or hard link) at `path`,
    /// refusing more than `max` bytes.
    pub fn read(&self, path: &str, max: u64) -> Result<Vec<u8>> {
        let c = self
            .get(path)
            .and_then(|n| n.content)
            .ok_or_else(|| Error::Usage(format!("/{path} is not a regular file of the image")))?;
        if c.size > max {
            return Err(Error::Limit(format!("/{path} is larger than {max} bytes")));
        }
        let mut buf = Vec::with_capacity(c.size as usize);
        let mut scratch = Vec::new();
        self.content_reader(c, &mut scratch)?
            .read_to_end(&mut buf)
            .map_err(|e| Error::image(format!("reading /{path}: {e}")))?;
        Ok(buf)
    }

    /// A reader of staged content; `buf` is reused between files (1 MiB reads).
    pub fn content_reader<'a>(
        &'a self,
        c: Content,
        buf: &'a mut Vec<u8>,
    ) -> Result<ContentReader<'a>> {
        let file = self
            .layers
            .get(c.layer as usize)
            .ok_or_else(|| Error::image(format!("no staged layer {}", c.layer)))?;
        if buf.len() < 1 << 20 {
            buf.resize(1 << 20, 0);
        }
        Ok(ContentReader {
            file,
            off: c.offset,
            left: c.size,
            buf,
            pos: 0,
            len: 0,
        })
    }

    /// Applies one uncompressed layer tar on top of the tree. `name` is used in
    /// errors; `progress` is called with the number of content bytes seen.
    /// The stream is copied to a staged file as it is parsed; it is read up
    /// to the end of the tar archive (callers drain the rest, if they verify
    /// a digest).
    pub fn apply_layer(
        &mut self,
        name: &str,
        tar_stream: impl Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        self.apply_layer_observed(name, tar_stream, progress, None)
    }

    /// [`Rootfs::apply_layer`], telling `observer` about every change as it
    /// happens (used to write a single-layer image while it is read).
    pub fn apply_layer_observed(
        &mut self,
        name: &str,
        tar_stream: impl Read,
        progress: &mut dyn FnMut(u64),
        observer: Option<&mut dyn Observer>,
    ) -> Result<()> {
        let layer = self.layers.len() as u32;
        let staged = self.staging.join(format!("layer-{layer}.tar"));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged)
            .at(&staged)?;
        let out = BufWriter::with_capacity(1 << 20, file.try_clone().at(&staged)?);
        self.layers.push(file);
        let mut ar = tar::Archive::new(Tee {
            inner: tar_stream,
            out,
            err: None,
        });
        let res = self.apply_entries(name, layer, &mut ar, progress, observer);
        let mut tee = ar.into_inner();
        if let Some(e) = tee.err.take() {
            return Err(Error::io(&staged, e));
        }
        res?;
        tee.out.flush().at(&staged)?;
        Ok(())
    }

    fn apply_entries<R: Read>(
        &mut self,
        name: &str,
        layer: u32,
        ar: &mut tar::Archive<R>,
        progress: &mut dyn FnMut(u64),
        mut observer: Option<&mut dyn Observer>,
    ) -> Result<()> {
        let lerr = |msg: String| Error::Layer {
            layer: name.to_string(),
            msg,
        };
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
                    if self.opaque(&dir, &this_layer) {
                        if let Some(o) = observer.as_deref_mut() {
                            o.changed();
                        }
                    }
                } else if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(lerr(format!("malformed whiteout {raw:?}")));
                } else {
                    let victim = if dir.is_empty() {
                        hidden.to_string()
                    } else {
                        format!("{dir}/{hidden}")
                    };
                    if self.nodes.contains_key(&victim) {
                        if let Some(o) = observer.as_deref_mut() {
                            o.changed();
                        }
                    }
                    self.remove_subtree(&victim);
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
            self.seq += 1;
            let seq = self.seq;
            let new_parents = self.make_parents(&path, seq, &mut this_layer);
            // Replacing: a directory over a directory only updates metadata
            // (and keeps its place in the order); anything else removes what
            // was there.
            let existing = self.nodes.get(&path);
            let existing_dir = matches!(existing.map(|n| &n.kind), Some(Kind::Dir));
            let seq = match existing {
                Some(n) if existing_dir && kind == Kind::Dir => n.seq,
                _ => seq,
            };
            if self.nodes.contains_key(&path) {
                if let Some(o) = observer.as_deref_mut() {
                    o.changed();
                }
                if !(existing_dir && kind == Kind::Dir) {
                    self.remove_subtree(&path);
                }
            }
            let content = match &kind {
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
                    progress(size);
                    // The data is not read here: the archive skips it, which
                    // copies it into the staged layer at this offset.
                    Some(Content {
                        layer,
                        offset: entry.raw_file_position(),
                        size,
                    })
                }
                Kind::Hardlink(t) => {
                    let target = self.nodes.get(t).and_then(|n| match n.kind {
                        Kind::File | Kind::Hardlink(_) => n.content,
                        _ => None,
                    });
                    match target {
                        Some(c) => Some(c),
                        None => {
                            return Err(lerr(format!(
                            "{path}: hard link to {t:?}, which is not a regular file of the image"
                        )))
                        }
                    }
                }
                _ => None,
            };
            this_layer.insert(path.clone());
            let is_file = kind == Kind::File;
            self.nodes.insert(
                path.clone(),
                Node {
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime,
                    xattrs,
                    content,
                    seq,
                },
            );
            if let Some(o) = observer.as_deref_mut() {
                let data: Option<&mut dyn Read> = if is_file { Some(&mut entry) } else { None };
                o.added(self, &new_parents, &path, data)?;
            }
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

    fn make_parents(
        &mut self,
        path: &str,
        seq: u64,
        this_layer: &mut HashSet<String>,
    ) -> Vec<String> {
        let mut made = Vec::new();
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let anc = path[..end + i].to_string();
            if !self.nodes.contains_key(&anc) {
                let mut d = Node::dir(0o755);
                d.seq = seq;
                self.nodes.insert(anc.clone(), d);
                made.push(anc.clone());
            }
            this_layer.insert(anc);
            end += i + 1;
        }
        made
    }

    /// Removes `path` and everything below it (whiteout); absent is fine.
    pub fn remove_subtree(&mut self, path: &str) {
        let keys: Vec<String> = self
            .nodes
            .range(path.to_string()..)
            .take_while(|(k, _)| k.starts_with(path))
            .filter(|(k, _)| *k == path || is_under(k, path))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.nodes.remove(&k);
        }
    }

    /// Hides what lower layers put in `dir`; returns whether anything went.
    fn opaque(&mut self, dir: &str, this_layer: &HashSet<String>) -> bool {
        let victims: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| is_under(k, dir) && !this_layer.contains(*k))
            .cloned()
            .collect();
        let any = !victims.is_empty();
        for k in victims {
            self.nodes.remove(&k);
        }
        any
    }

    /// Moves `path` (and everything below it) out of the tree into `dst_root`
    /// (same relative path), as a host tree for sealing: directories and
    /// files (mode 0600 while written, then their permission bits; hard links
    /// inside stay hard links), symlinks are created there; devices and FIFOs
    /// are refused (they cannot be protected). Returns the nodes moved, in
    /// path order.
    pub fn take_subtree(&mut self, path: &str, dst_root: &Path) -> Result<Vec<(String, Node)>> {
        let moved: Vec<(String, Node)> = self
            .nodes
            .iter()
            .filter(|(k, _)| *k == path || is_under(k, path))
            .map(|(k, n)| (k.clone(), n.clone()))
            .collect();
        let mut written: HashMap<Content, PathBuf> = HashMap::new();
        let mut buf = Vec::new();
        for (k, n) in &moved {
            let dst = dst_root.join(k);
            if let Some(p) = dst.parent() {
                fs::create_dir_all(p).at(p)?;
            }
            match (&n.kind, n.content) {
                (Kind::Dir, _) => {
                    if !dst.exists() {
                        fs::create_dir(&dst).at(&dst)?;
                    }
                }
                (Kind::File | Kind::Hardlink(_), Some(c)) => {
                    if let Some(first) = written.get(&c) {
                        fs::hard_link(first, &dst).at(&dst)?;
                        continue;
                    }
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&dst)
                        .at(&dst)?;
                    io::copy(&mut self.content_reader(c, &mut buf)?, &mut f).at(&dst)?;
                    drop(f);
                    fs::set_permissions(&dst, fs::Permissions::from_mode(n.mode & 0o777))
                        .at(&dst)?;
                    written.insert(c, dst);
                }
                (Kind::Symlink(t), _) => std::os::unix::fs::symlink(t, &dst).at(&dst)?,
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
        Ok(moved)
    }

    /// Whether two file nodes share their content (hard links of each other).
    pub fn same_content(&self, a: &str, b: &str) -> bool {
        match (
            self.get(a).and_then(|n| n.content),
            self.get(b).and_then(|n| n.content),
        ) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }
}

/// Reads one file's content from a staged layer, 1 MiB per system call.
/// Running short of the recorded size is an error (never a short file).
pub struct ContentReader<'a> {
    file: &'a File,
    off: u64,
    left: u64,
    buf: &'a mut Vec<u8>,
    pos: usize,
    len: usize,
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len {
            if self.left == 0 || out.is_empty() {
                return Ok(0);
            }
            let want = (self.buf.len() as u64).min(self.left) as usize;
            let n = self.file.read_at(&mut self.buf[..want], self.off)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "staged layer is shorter than its entries",
                ));
            }
            self.off += n as u64;
            self.left -= n as u64;
            self.pos = 0;
            self.len = n;
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs `src` (typically a decompressor) on its own thread and hands its
/// output over in 1 MiB chunks, so decompression overlaps with whatever
/// consumes the stream (tar parsing and file writes) on the other core.
pub fn threaded_reader(mut src: Box<dyn Read + Send>) -> impl Read + Send {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    // Buffers come back to be filled again (zeroing 1 MiB per chunk showed
    // up in profiles).
    let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || loop {
        let mut buf = back_rx.try_recv().unwrap_or_default();
        buf.resize(1 << 20, 0);
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
        back: back_tx,
        cur: Vec::new(),
        pos: 0,
        done: false,
    }
}

struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    back: mpsc::Sender<Vec<u8>>,
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
                    let old = std::mem::replace(&mut self.cur, chunk);
                    if old.capacity() > 0 {
                        let _ = self.back.send(old);
                    }
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
