//! Sealing a directory tree into a volume.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::crypto::{self, FileCrypto, FileKeys, TagDigest};
use crate::format::{
    check_chunk_size, check_path, FileHeader, Layout, Manifest, RawEntry, RawKind, HEADER_LEN,
    MAX_ENTRIES, MAX_LINK_LEN, MODE_MASK, TAG_LEN,
};
use crate::{
    blob_path, manifest_path, prepare_empty_dir, FsError, Region, Regions, SealOptions, Sealed,
    VolumeKey, VolumeTag, DATA_DIR,
};

/// Bytes of plaintext handled per parallel job (a batch of chunks).
pub(crate) const BATCH_BYTES: u64 = 4 << 20;

thread_local! {
    /// Reused I/O buffer, so the hot path does not allocate per chunk.
    pub(crate) static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A file to seal, found while scanning the source.
struct Job {
    /// Index of its entry in the manifest.
    entry: usize,
    src: PathBuf,
    region: Region,
    file_id: [u8; 16],
}

/// Seals `src` into a new volume at `dst` with a fresh random key.
pub fn seal(
    src: &Path,
    dst: &Path,
    regions: &Regions,
    opts: &SealOptions,
) -> Result<Sealed, FsError> {
    let key = VolumeKey::generate()?;
    let tag = seal_with_key(src, dst, regions, opts, &key)?;
    Ok(Sealed { key, tag })
}

/// Seals `src` into a new volume at `dst` under `key`. `dst` must not exist
/// or be an empty directory. Returns the volume tag.
pub fn seal_with_key(
    src: &Path,
    dst: &Path,
    regions: &Regions,
    opts: &SealOptions,
    key: &VolumeKey,
) -> Result<VolumeTag, FsError> {
    regions.validate()?;
    check_chunk_size(opts.chunk_size).map_err(FsError::InvalidOptions)?;
    match opts.threads {
        Some(0) => Err(FsError::InvalidOptions("threads must be at least 1".into())),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| FsError::InvalidOptions(format!("cannot start {n} threads: {e}")))?
            .install(|| seal_inner(src, dst, regions, opts.chunk_size, key)),
        None => seal_inner(src, dst, regions, opts.chunk_size, key),
    }
}

fn seal_inner(
    src: &Path,
    dst: &Path,
    regions: &Regions,
    chunk_size: u32,
    key: &VolumeKey,
) -> Result<VolumeTag, FsError> {
    let meta = fs::metadata(src).map_err(|e| FsError::io("stat", src, e))?;
    if !meta.is_dir() {
        return Err(FsError::Unsupported {
            path: src.to_path_buf(),
            reason: "source is not a directory".into(),
        });
    }
    let mut scanned = scan_tree(src)?;
    scanned.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));

    // A hard-linked file is stored once, under its first path, with the
    // strongest region of all its paths.
    let mut strongest: HashMap<(u64, u64), Region> = HashMap::new();
    for s in &scanned {
        if let Scanned {
            kind: ScanKind::File { ino: Some(id), .. },
            rel,
            ..
        } = s
        {
            let r = regions.region_of_bytes(rel);
            let e = strongest.entry(*id).or_insert(r);
            if r.strength() > e.strength() {
                *e = r;
            }
        }
    }

    let mut entries = Vec::with_capacity(scanned.len());
    let mut jobs = Vec::new();
    let mut primary: HashMap<(u64, u64), u32> = HashMap::new();
    for s in scanned {
        let index = entries.len();
        let kind = match s.kind {
            ScanKind::Dir => RawKind::Dir,
            ScanKind::Symlink(target) => RawKind::Symlink { target },
            ScanKind::File { ino, size } => {
                if let Some(id) = ino {
                    if let Some(&p) = primary.get(&id) {
                        entries.push(RawEntry {
                            path: s.rel,
                            mode: 0,
                            kind: RawKind::HardLink { target: p },
                        });
                        continue;
                    }
                    primary.insert(id, index as u32);
                }
                let region = match ino {
                    Some(id) => strongest
                        .get(&id)
                        .copied()
                        .unwrap_or_else(|| regions.region_of_bytes(&s.rel)),
                    None => regions.region_of_bytes(&s.rel),
                };
                // The random file id is filled in below, for all files
                // with one call to the random generator.
                jobs.push(Job {
                    entry: index,
                    src: s.abs,
                    region,
                    file_id: [0; 16],
                });
                RawKind::File {
                    region,
                    size,
                    file_id: [0; 16],
                    digest: [0; 32],
                }
            }
        };
        entries.push(RawEntry {
            path: s.rel,
            mode: s.mode,
            kind,
        });
    }
    if entries.len() > MAX_ENTRIES {
        return Err(FsError::Unsupported {
            path: src.to_path_buf(),
            reason: format!(
                "{} entries (a volume holds at most {MAX_ENTRIES})",
                entries.len()
            ),
        });
    }

    let mut ids = vec![0u8; 16 * jobs.len()];
    crypto::random(&mut ids)?;
    for (j, id) in jobs.iter_mut().zip(ids.chunks_exact(16)) {
        j.file_id.copy_from_slice(id);
        if let RawKind::File { file_id, .. } = &mut entries[j.entry].kind {
            *file_id = j.file_id;
        }
    }
    // Large files first: their batches spread over all threads while the
    // many small files fill the gaps at the end.
    jobs.sort_by_key(|j| std::cmp::Reverse(entries_size(&entries[j.entry])));

    prepare_empty_dir(dst)?;
    let data = dst.join(DATA_DIR);
    fs::create_dir(&data).map_err(|e| FsError::io("create directory", &data, e))?;

    let keys = FileKeys::new(key);
    let results: Vec<(usize, u64, [u8; 32])> = jobs
        .par_iter()
        .map(|j| {
            let (size, digest) = seal_file(j, &entries[j.entry].path, dst, chunk_size, &keys)?;
            Ok((j.entry, size, digest))
        })
        .collect::<Result<_, FsError>>()?;
    for (idx, new_size, new_digest) in results {
        if let RawKind::File { size, digest, .. } = &mut entries[idx].kind {
            *size = new_size;
            *digest = new_digest;
        }
    }

    let manifest = Manifest {
        chunk_size,
        entries,
    };
    let plain = manifest.encode();
    if plain.len() > crate::format::MAX_MANIFEST_LEN {
        return Err(FsError::Unsupported {
            path: src.to_path_buf(),
            reason: "manifest would exceed its size limit (too many or too long names)".into(),
        });
    }
    let mut salt = [0u8; 16];
    crypto::random(&mut salt)?;
    let sealed = crypto::seal_manifest(key, salt, plain)?;
    // The manifest is written last: an interrupted seal leaves no manifest,
    // hence no volume that could open.
    let mp = manifest_path(dst);
    let mut f = create_new(&mp, 0o644)?;
    f.write_all(&sealed)
        .and_then(|_| f.sync_all())
        .map_err(|e| FsError::io("write", &mp, e))?;
    Ok(VolumeTag(crypto::sha256(&sealed)))
}

enum ScanKind {
    Dir,
    Symlink(Vec<u8>),
    /// `ino` is (dev, ino) when the file has more than one link.
    File {
        ino: Option<(u64, u64)>,
        size: u64,
    },
}

struct Scanned {
    rel: Vec<u8>,
    abs: PathBuf,
    mode: u32,
    kind: ScanKind,
}

fn entries_size(e: &RawEntry) -> u64 {
    match e.kind {
        RawKind::File { size, .. } => size,
        _ => 0,
    }
}

/// Lists the tree under `src`, one directory level at a time with the
/// directories of a level read in parallel (no recursion, so any depth the
/// path limit allows is fine).
fn scan_tree(src: &Path) -> Result<Vec<Scanned>, FsError> {
    let mut out = Vec::new();
    let mut level = vec![(src.to_path_buf(), Vec::new())];
    while !level.is_empty() {
        let listed: Vec<Vec<Scanned>> = level
            .par_iter()
            .map(|(abs, rel)| scan_dir(abs, rel))
            .collect::<Result<_, _>>()?;
        level = Vec::new();
        for s in listed.into_iter().flatten() {
            if matches!(s.kind, ScanKind::Dir) {
                level.push((s.abs.clone(), s.rel.clone()));
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn scan_dir(dir: &Path, parent: &[u8]) -> Result<Vec<Scanned>, FsError> {
    let rd = fs::read_dir(dir).map_err(|e| FsError::io("read directory", dir, e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| FsError::io("read directory", dir, e))?;
        let abs = ent.path();
        let name = ent.file_name();
        let mut rel = Vec::with_capacity(parent.len() + 1 + name.len());
        rel.extend_from_slice(parent);
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        if let Err(reason) = check_path(&rel) {
            return Err(FsError::Unsupported {
                path: abs,
                reason: reason.into(),
            });
        }
        // lstat relative to the open directory (does not follow symlinks,
        // no walk of the whole path).
        let meta = ent.metadata().map_err(|e| FsError::io("stat", &abs, e))?;
        let ft = meta.file_type();
        let mode = meta.mode() & MODE_MASK;
        let kind = if ft.is_dir() {
            ScanKind::Dir
        } else if ft.is_symlink() {
            let t = fs::read_link(&abs).map_err(|e| FsError::io("read link", &abs, e))?;
            let t = t.into_os_string().into_vec();
            if t.is_empty() || t.len() > MAX_LINK_LEN {
                return Err(FsError::Unsupported {
                    path: abs,
                    reason: "symlink target empty or too long".into(),
                });
            }
            ScanKind::Symlink(t)
        } else if ft.is_file() {
            let ino = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
            ScanKind::File {
                ino,
                size: meta.len(),
            }
        } else {
            return Err(FsError::Unsupported {
                path: abs,
                reason: "not a regular file, directory or symlink (devices, FIFOs and sockets cannot be sealed)".into(),
            });
        };
        out.push(Scanned {
            rel,
            abs,
            mode: if matches!(kind, ScanKind::Symlink(_)) {
                0
            } else {
                mode
            },
            kind,
        });
    }
    Ok(out)
}

use std::os::unix::ffi::OsStringExt;

pub(crate) fn create_new(path: &Path, mode: u32) -> Result<File, FsError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| FsError::io("create", path, e))
}

pub(crate) fn open_nofollow(path: &Path) -> Result<File, FsError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| FsError::io("open", path, e))
}

/// Plaintext bytes sealed per read/encrypt/write step inside a batch:
/// small enough that the buffer stays in the core's L2 cache between the
/// read, the encryption and the write (at least one chunk).
const PIECE_BYTES: u64 = 256 << 10;

/// Seals one file; returns its size (as read) and the digest of its sealed form.
fn seal_file(
    job: &Job,
    rel: &[u8],
    dst: &Path,
    chunk_size: u32,
    keys: &FileKeys,
) -> Result<(u64, [u8; 32]), FsError> {
    let src = open_nofollow(&job.src)?;
    let meta = src
        .metadata()
        .map_err(|e| FsError::io("stat", &job.src, e))?;
    if !meta.is_file() {
        return Err(FsError::Unsupported {
            path: job.src.clone(),
            reason: "changed into something other than a regular file while sealing".into(),
        });
    }
    let size = meta.len();
    let blob = blob_path(dst, &job.file_id);
    let mut out = create_new(&blob, 0o644)?;
    if job.region == Region::Plain {
        let mut src = src;
        let copied =
            std::io::copy(&mut src, &mut out).map_err(|e| FsError::io("copy", &job.src, e))?;
        return Ok((copied, [0; 32]));
    }
    let header = FileHeader {
        region: job.region,
        chunk_size,
        file_id: job.file_id,
        size,
    };
    let layout = header.layout().map_err(|reason| FsError::Unsupported {
        path: job.src.clone(),
        reason,
    })?;
    let hbytes = header.encode();
    let fc = FileCrypto::new(keys, &header, rel)?;
    let per_batch = (BATCH_BYTES / layout.chunk_size).max(1);
    let batches = layout.chunks.div_ceil(per_batch);
    let io = SealIo {
        layout: &layout,
        fc: &fc,
        header: &hbytes,
        src: &src,
        src_path: &job.src,
        out: &out,
        blob: &blob,
    };
    let tags: Vec<Vec<[u8; TAG_LEN]>> = if batches == 1 {
        // The common small file: header and chunks in one write, no resize.
        vec![io.seal_range(0, layout.chunks)?]
    } else {
        out.set_len(layout.sealed_len)
            .map_err(|e| FsError::io("resize", &blob, e))?;
        (0..batches)
            .into_par_iter()
            .map(|b| {
                let first = b * per_batch;
                io.seal_range(first, (first + per_batch).min(layout.chunks))
            })
            .collect::<Result<_, _>>()?
    };
    let mut d = TagDigest::new(&hbytes);
    for t in tags.iter().flatten() {
        d.update(t);
    }
    Ok((size, d.finish()))
}

/// What sealing one file's chunks needs.
struct SealIo<'a> {
    layout: &'a Layout,
    fc: &'a FileCrypto,
    header: &'a [u8; HEADER_LEN],
    src: &'a File,
    src_path: &'a Path,
    out: &'a File,
    blob: &'a Path,
}

impl SealIo<'_> {
    /// Seals chunks `first..end`, in pieces of about `PIECE_BYTES`: one
    /// positional read per chunk into the thread's buffer, encryption in
    /// place, one positional write per piece (the piece holding chunk 0
    /// starts with the header). Returns the tags.
    fn seal_range(&self, first: u64, end: u64) -> Result<Vec<[u8; TAG_LEN]>, FsError> {
        let layout = self.layout;
        let per_piece = (PIECE_BYTES / layout.chunk_size).max(1);
        let mut tags = Vec::with_capacity((end - first) as usize);
        BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            let mut i = first;
            while i < end {
                let stop = (i + per_piece).min(end);
                let (start, mut pos) = if i == 0 {
                    (0, HEADER_LEN)
                } else {
                    (layout.sealed_offset(i), 0)
                };
                let total = if stop == layout.chunks {
                    layout.sealed_len - start
                } else {
                    layout.sealed_offset(stop) - start
                } as usize;
                if buf.len() < total {
                    buf.resize(total, 0);
                }
                if i == 0 {
                    buf[..HEADER_LEN].copy_from_slice(self.header);
                }
                for c in i..stop {
                    let (off, len) = layout.plain_range(c);
                    let chunk = &mut buf[pos..pos + len];
                    self.src.read_exact_at(chunk, off).map_err(|e| {
                        FsError::io(
                            "read (did the file shrink while sealing?)",
                            self.src_path,
                            e,
                        )
                    })?;
                    let tag = self.fc.seal_chunk(c, c + 1 == layout.chunks, chunk)?;
                    buf[pos + len..pos + len + TAG_LEN].copy_from_slice(&tag);
                    tags.push(tag);
                    pos += len + TAG_LEN;
                }
                self.out
                    .write_all_at(&buf[..total], start)
                    .map_err(|e| FsError::io("write", self.blob, e))?;
                i = stop;
            }
            Ok(tags)
        })
    }
}
