//! Opening, verifying and reading sealed volumes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::crypto::{self, FileCrypto, FileKeys, ManifestOpenError, TagDigest};
use crate::format::{
    FileHeader, Layout, Manifest, RawEntry, RawKind, HEADER_LEN, MANIFEST_HEADER_LEN,
    MAX_MANIFEST_LEN, TAG_LEN,
};
use crate::seal::{create_new, open_nofollow, BATCH_BYTES, BUF};
use crate::{blob_path, manifest_path, prepare_empty_dir, FsError, Region, VolumeKey, VolumeTag};

/// What an entry of a volume is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// How it is protected.
        region: Region,
        /// Its size in bytes.
        size: u64,
    },
    /// A symbolic link (recreated as is, never followed).
    Symlink {
        /// The link target.
        target: PathBuf,
    },
    /// Another name for an earlier regular file.
    HardLink {
        /// The path of that file.
        target: PathBuf,
    },
}

/// One entry of a volume, as listed by its manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the volume root.
    pub path: PathBuf,
    /// Permission bits (0 for symlinks and hard links).
    pub mode: u32,
    /// What it is.
    pub kind: EntryKind,
}

/// What `verify` checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Sealed (encrypted or authenticated) files verified.
    pub sealed_files: u64,
    /// Plain files (present, but their content is not protected).
    pub plain_files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links (extra names of a file).
    pub hard_links: u64,
    /// Chunks verified.
    pub chunks: u64,
    /// Plaintext bytes verified.
    pub bytes: u64,
}

/// An opened (tag-checked, manifest-authenticated) volume. Files are read
/// lazily: each chunk is verified when it is read.
pub struct Volume {
    root: PathBuf,
    keys: FileKeys,
    manifest: Manifest,
    entries: Vec<Entry>,
    /// Length each blob must have (`None`: a plain file's own blob).
    blob_lens: HashMap<[u8; 16], Option<u64>>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("root", &self.root)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn os(p: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(p.to_vec()))
}

impl Volume {
    /// Reads `manifest.sigil`, checks that its SHA-256 is `tag` (before
    /// anything else is parsed), authenticates and decodes it.
    pub fn open(path: impl AsRef<Path>, key: &VolumeKey, tag: &VolumeTag) -> Result<Self, FsError> {
        let root = path.as_ref().to_path_buf();
        let mp = manifest_path(&root);
        let f = open_nofollow(&mp)?;
        let limit = (MANIFEST_HEADER_LEN + MAX_MANIFEST_LEN + TAG_LEN) as u64;
        let mut sealed = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut sealed)
            .map_err(|e| FsError::io("read", &mp, e))?;
        if sealed.len() as u64 > limit {
            return Err(FsError::ManifestFormat {
                manifest: mp,
                reason: format!("larger than the limit of {limit} bytes"),
            });
        }
        let actual = VolumeTag(crypto::sha256(&sealed));
        if !actual.ct_eq(tag) {
            return Err(FsError::TagMismatch {
                manifest: mp,
                expected: *tag,
                actual,
            });
        }
        let plain = match crypto::open_manifest(key, &mut sealed) {
            Ok(p) => zeroize::Zeroizing::new(p),
            Err(ManifestOpenError::Auth) => return Err(FsError::ManifestAuth { manifest: mp }),
            Err(ManifestOpenError::Format(reason)) => {
                return Err(FsError::ManifestFormat {
                    manifest: mp,
                    reason,
                })
            }
            Err(ManifestOpenError::Crypto(e)) => return Err(e),
        };
        let manifest = Manifest::decode(&plain).map_err(|reason| FsError::ManifestFormat {
            manifest: mp.clone(),
            reason,
        })?;
        // Decode checked the tiling already; this cannot fail.
        let blob_lens = manifest
            .blob_lengths()
            .map_err(|reason| FsError::ManifestFormat {
                manifest: mp.clone(),
                reason,
            })?;
        let entries = manifest
            .entries
            .iter()
            .map(|e| Entry {
                path: os(&e.path),
                mode: e.mode,
                kind: match &e.kind {
                    RawKind::Dir => EntryKind::Dir,
                    RawKind::File { region, size, .. } => EntryKind::File {
                        region: *region,
                        size: *size,
                    },
                    RawKind::Symlink { target } => EntryKind::Symlink { target: os(target) },
                    RawKind::HardLink { target } => EntryKind::HardLink {
                        target: os(&manifest.entries[*target as usize].path),
                    },
                },
            })
            .collect();
        Ok(Volume {
            root,
            keys: FileKeys::new(key),
            manifest,
            entries,
            blob_lens,
        })
    }

    /// Every entry, in the manifest's order (parents before children).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The chunk size of the volume's sealed files.
    pub fn chunk_size(&self) -> u32 {
        self.manifest.chunk_size
    }

    fn find(&self, path: &Path) -> Result<usize, FsError> {
        let raw = path.as_os_str().as_bytes();
        let trimmed: Vec<u8> = {
            let mut v = Vec::with_capacity(raw.len());
            for c in raw
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty() && *c != b".")
            {
                if !v.is_empty() {
                    v.push(b'/');
                }
                v.extend_from_slice(c);
            }
            v
        };
        self.manifest
            .entries
            .binary_search_by(|e| e.path.as_slice().cmp(&trimmed))
            .map_err(|_| FsError::NotFound {
                path: path.to_path_buf(),
            })
    }

    /// The blob under `data/` that holds the content of the regular file
    /// (or hard link) at `path`; small sealed files share packs, see
    /// [`Volume::data_range`].
    pub fn data_file(&self, path: impl AsRef<Path>) -> Result<PathBuf, FsError> {
        self.data_range(path).map(|(blob, _)| blob)
    }

    /// The blob and the byte range in it that hold the file at `path`: its
    /// sealed bytes (FORMAT.md §3), or for a plain file its content as
    /// recorded at seal time.
    pub fn data_range(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<(PathBuf, std::ops::Range<u64>), FsError> {
        let path = path.as_ref();
        let mut idx = self.find(path)?;
        if let RawKind::HardLink { target } = self.manifest.entries[idx].kind {
            idx = target as usize;
        }
        match self.manifest.entries[idx].kind {
            RawKind::File {
                region,
                size,
                blob,
                offset,
                ..
            } => {
                let len = if region == Region::Plain {
                    size
                } else {
                    Layout::new(size, self.manifest.chunk_size)
                        .map_err(|_| FsError::BadPath {
                            path: path.to_path_buf(),
                            reason: "impossible size (checked when the manifest was decoded)",
                        })?
                        .sealed_len
                };
                Ok((blob_path(&self.root, &blob), offset..offset + len))
            }
            _ => Err(FsError::NotAFile {
                path: path.to_path_buf(),
            }),
        }
    }

    /// A streaming reader of the file at `path` (a hard link reads its
    /// target). Seeking is free; each chunk is read and verified on demand,
    /// so any position is reachable without reading from the start. Reads
    /// of a tampered chunk fail with an `io::Error` wrapping
    /// [`FsError::ChunkAuth`]. Plain files are read as stored, unverified.
    pub fn reader(&self, path: impl AsRef<Path>) -> Result<FileReader, FsError> {
        let path = path.as_ref();
        let mut idx = self.find(path)?;
        if let RawKind::HardLink { target } = self.manifest.entries[idx].kind {
            idx = target as usize;
        }
        let entry = &self.manifest.entries[idx];
        let RawKind::File { .. } = entry.kind else {
            return Err(FsError::NotAFile {
                path: path.to_path_buf(),
            });
        };
        let sf = SealedFile::open(self, entry)?;
        Ok(FileReader {
            inner: sf,
            pos: 0,
            cached: None,
            buf: Vec::new(),
        })
    }
}

/// A sealed file on disk, checked against the manifest (length, header).
struct SealedFile {
    path: PathBuf,
    blob: PathBuf,
    file: File,
    /// Where the sealed file starts in its blob.
    base: u64,
    /// `None` for plain files.
    sealed: Option<(Layout, FileCrypto, [u8; HEADER_LEN], [u8; 32])>,
    size: u64,
}

impl SealedFile {
    fn open(vol: &Volume, e: &RawEntry) -> Result<Self, FsError> {
        let RawKind::File {
            region,
            size,
            file_id,
            digest,
            blob: blob_id,
            offset: base,
        } = e.kind
        else {
            return Err(FsError::NotAFile { path: os(&e.path) });
        };
        let path = os(&e.path);
        let blob = blob_path(&vol.root, &blob_id);
        let file = open_nofollow(&blob).map_err(|err| match err {
            FsError::Io { source, .. } => FsError::FileFormat {
                path: path.clone(),
                blob: blob.clone(),
                reason: format!("cannot open: {source}"),
            },
            other => other,
        })?;
        let meta = file.metadata().map_err(|e| FsError::io("stat", &blob, e))?;
        let ff = |reason: String| FsError::FileFormat {
            path: path.clone(),
            blob: blob.clone(),
            reason,
        };
        if !meta.is_file() {
            return Err(ff("not a regular file".into()));
        }
        if region == Region::Plain {
            let size = meta.len();
            return Ok(SealedFile {
                path,
                blob,
                file,
                base: 0,
                sealed: None,
                size,
            });
        }
        let header = FileHeader {
            region,
            chunk_size: vol.manifest.chunk_size,
            file_id,
            size,
        };
        let layout = header.layout().map_err(ff)?;
        // Decode made the files of each blob tile it: the blob's length is
        // the end of its last file.
        let blob_len = vol
            .blob_lens
            .get(&blob_id)
            .copied()
            .flatten()
            .ok_or_else(|| ff("blob not in the manifest's blob list".into()))?;
        if meta.len() != blob_len {
            return Err(ff(format!(
                "length is {} bytes, expected {} (truncated or appended)",
                meta.len(),
                blob_len
            )));
        }
        let expected = header.encode();
        let mut h = [0u8; HEADER_LEN];
        file.read_exact_at(&mut h, base)
            .map_err(|e| FsError::io("read", &blob, e))?;
        if h != expected {
            let why = match FileHeader::decode(&h) {
                Err(r) => format!("bad header: {r}"),
                Ok(_) => "header does not match the manifest (swapped or replaced file)".into(),
            };
            return Err(ff(why));
        }
        let fc = FileCrypto::new(&vol.keys, &header, &e.path)?;
        Ok(SealedFile {
            path,
            blob,
            file,
            base,
            sealed: Some((layout, fc, expected, digest)),
            size,
        })
    }

    fn chunk_err(&self, chunk: u64) -> FsError {
        FsError::ChunkAuth {
            path: self.path.clone(),
            blob: self.blob.clone(),
            chunk,
        }
    }

    /// Verifies chunks `first..end` (reading them with one positional read)
    /// and, if `out` is given, writes their plaintext to it. Returns the tags.
    fn process_batch(
        &self,
        first: u64,
        end: u64,
        out: Option<(&File, &Path)>,
    ) -> Result<Vec<[u8; TAG_LEN]>, FsError> {
        let Some((layout, fc, _, _)) = &self.sealed else {
            return Ok(Vec::new());
        };
        let start = layout.sealed_offset(first);
        let stop = if end == layout.chunks {
            layout.sealed_len
        } else {
            layout.sealed_offset(end)
        };
        let total = (stop - start) as usize;
        BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.len() < total {
                buf.resize(total, 0);
            }
            self.file
                .read_exact_at(&mut buf[..total], self.base + start)
                .map_err(|e| FsError::io("read", &self.blob, e))?;
            let mut tags = Vec::with_capacity((end - first) as usize);
            let mut pos = 0usize;
            let mut wpos = 0usize;
            for i in first..end {
                let (_, len) = layout.plain_range(i);
                let (chunk, rest) = buf[pos..].split_at_mut(len);
                let tag = &rest[..TAG_LEN];
                fc.open_chunk(i, i + 1 == layout.chunks, chunk, tag)
                    .map_err(|_| self.chunk_err(i))?;
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(tag);
                tags.push(t);
                if out.is_some() {
                    // Compact plaintext so that one write covers the batch.
                    buf.copy_within(pos..pos + len, wpos);
                    wpos += len;
                }
                pos += len + TAG_LEN;
            }
            if let Some((f, p)) = out {
                f.write_all_at(&buf[..wpos], layout.plain_range(first).0)
                    .map_err(|e| FsError::io("write", p, e))?;
            }
            Ok(tags)
        })
    }

    /// Verifies the whole file (in parallel batches for large files),
    /// optionally writing the plaintext to `out`; checks the digest.
    fn process_all(&self, out: Option<(&File, &Path)>) -> Result<u64, FsError> {
        let Some((layout, _, header, digest)) = &self.sealed else {
            if let Some((f, p)) = out {
                let mut src = &self.file;
                let mut dst = f;
                io::copy(&mut src, &mut dst).map_err(|e| FsError::io("copy", p, e))?;
            }
            return Ok(0);
        };
        let per_batch = (BATCH_BYTES / layout.chunk_size).max(1);
        let batches = layout.chunks.div_ceil(per_batch);
        let run = |b: u64| {
            let first = b * per_batch;
            self.process_batch(first, (first + per_batch).min(layout.chunks), out)
        };
        let tags: Vec<Vec<[u8; TAG_LEN]>> = if batches == 1 {
            vec![run(0)?]
        } else {
            (0..batches)
                .into_par_iter()
                .map(run)
                .collect::<Result<_, _>>()?
        };
        let mut d = TagDigest::new(header);
        for t in tags.iter().flatten() {
            d.update(t);
        }
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&d.finish()[..], &digest[..])) {
            return Err(FsError::DigestMismatch {
                path: self.path.clone(),
                blob: self.blob.clone(),
            });
        }
        Ok(layout.chunks)
    }
}

/// Streaming, seekable reader of one file of a [`Volume`].
pub struct FileReader {
    inner: SealedFile,
    pos: u64,
    cached: Option<u64>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("path", &self.inner.path)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.inner.size
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.size == 0
    }

    fn load(&mut self, i: u64) -> io::Result<()> {
        if self.cached == Some(i) {
            return Ok(());
        }
        self.cached = None;
        let Some((layout, fc, _, _)) = &self.inner.sealed else {
            return Ok(());
        };
        let (_, len) = layout.plain_range(i);
        self.buf.resize(len + TAG_LEN, 0);
        self.inner
            .file
            .read_exact_at(&mut self.buf, self.inner.base + layout.sealed_offset(i))?;
        let (chunk, tag) = self.buf.split_at_mut(len);
        fc.open_chunk(i, i + 1 == layout.chunks, chunk, tag)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, self.inner.chunk_err(i)))?;
        self.buf.truncate(len);
        self.cached = Some(i);
        Ok(())
    }
}

impl Read for FileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let Some((layout, _, _, _)) = &self.inner.sealed else {
            let n = self.inner.file.read_at(out, self.pos)?;
            self.pos += n as u64;
            return Ok(n);
        };
        if self.pos >= layout.size {
            return Ok(0);
        }
        let cs = layout.chunk_size;
        let i = self.pos / cs;
        self.load(i)?;
        let off = (self.pos - i * cs) as usize;
        let n = (self.buf.len() - off).min(out.len());
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.inner.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}

/// Verifies every sealed file of a volume (all chunks, lengths, headers,
/// digests) without writing anything.
pub fn verify(volume: &Path, key: &VolumeKey, tag: &VolumeTag) -> Result<VerifyReport, FsError> {
    let vol = Volume::open(volume, key, tag)?;
    let chunks = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    vol.manifest.entries.par_iter().try_for_each(|e| {
        if let RawKind::File { region, size, .. } = e.kind {
            let sf = SealedFile::open(&vol, e)?;
            let n = sf.process_all(None)?;
            if region != Region::Plain {
                chunks.fetch_add(n, Ordering::Relaxed);
                bytes.fetch_add(size, Ordering::Relaxed);
            }
        }
        Ok::<_, FsError>(())
    })?;
    let mut r = VerifyReport {
        chunks: chunks.into_inner(),
        bytes: bytes.into_inner(),
        ..Default::default()
    };
    for e in &vol.manifest.entries {
        match e.kind {
            RawKind::Dir => r.dirs += 1,
            RawKind::File {
                region: Region::Plain,
                ..
            } => r.plain_files += 1,
            RawKind::File { .. } => r.sealed_files += 1,
            RawKind::Symlink { .. } => r.symlinks += 1,
            RawKind::HardLink { .. } => r.hard_links += 1,
        }
    }
    Ok(r)
}

/// Verifies the volume and materialises its tree into `dst` (which must
/// not exist or be an empty directory). On any failure everything written
/// into `dst` is removed again, so a failed open leaves no plaintext behind.
pub fn open(volume: &Path, dst: &Path, key: &VolumeKey, tag: &VolumeTag) -> Result<(), FsError> {
    let vol = Volume::open(volume, key, tag)?;
    let created = prepare_empty_dir(dst)?;
    let r = materialise(&vol, dst);
    if r.is_err() {
        cleanup(dst, created);
    }
    r
}

fn cleanup(dst: &Path, created: bool) {
    if created {
        let _ = fs::remove_dir_all(dst);
    } else if let Ok(rd) = fs::read_dir(dst) {
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    let _ = fs::remove_dir_all(&p);
                }
                _ => {
                    let _ = fs::remove_file(&p);
                }
            }
        }
    }
}

fn materialise(vol: &Volume, dst: &Path) -> Result<(), FsError> {
    let entries = &vol.manifest.entries;
    // The decoder guarantees: relative normalised paths, parents are
    // directory entries listed earlier, no duplicates. Directories are
    // created first (mode 0700 so they stay writable), then files in
    // parallel with create_new + O_NOFOLLOW, then links, then final
    // directory modes deepest first. Nothing is ever followed.
    for e in entries {
        if let RawKind::Dir = e.kind {
            let p = dst.join(os(&e.path));
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&p)
                .map_err(|err| FsError::io("create directory", &p, err))?;
        }
    }
    entries.par_iter().try_for_each(|e| {
        if let RawKind::File { .. } = e.kind {
            let sf = SealedFile::open(vol, e)?;
            let p = dst.join(os(&e.path));
            let f = create_new(&p, 0o600)?;
            sf.process_all(Some((&f, &p)))?;
            f.set_permissions(fs::Permissions::from_mode(e.mode))
                .map_err(|err| FsError::io("chmod", &p, err))?;
        }
        Ok::<_, FsError>(())
    })?;
    for e in entries {
        let p = dst.join(os(&e.path));
        match &e.kind {
            RawKind::Symlink { target } => std::os::unix::fs::symlink(os(target), &p)
                .map_err(|err| FsError::io("create symlink", &p, err))?,
            RawKind::HardLink { target } => {
                let t = dst.join(os(&entries[*target as usize].path));
                fs::hard_link(&t, &p).map_err(|err| FsError::io("create hard link", &p, err))?
            }
            _ => {}
        }
    }
    for e in entries.iter().rev() {
        if let RawKind::Dir = e.kind {
            let p = dst.join(os(&e.path));
            fs::set_permissions(&p, fs::Permissions::from_mode(e.mode))
                .map_err(|err| FsError::io("chmod", &p, err))?;
        }
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;
