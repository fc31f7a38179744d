//! Sealing a directory tree into a volume.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::crypto::{self, FileCrypto, TagDigest};
use crate::format::{
    check_chunk_size, check_path, FileHeader, Layout, Manifest, RawEntry, RawKind, MAX_ENTRIES,
    MAX_LINK_LEN, MODE_MASK, TAG_LEN,
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
    let mut scanned = Vec::new();
    scan(src, &mut Vec::new(), &mut scanned)?;
    scanned.sort_by(|a, b| a.rel.cmp(&b.rel));

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
                let mut file_id = [0u8; 16];
                crypto::random(&mut file_id)?;
                jobs.push(Job {
                    entry: index,
                    src: s.abs,
                    region,
                    file_id,
                });
                RawKind::File {
                    region,
                    size,
                    file_id,
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

    prepare_empty_dir(dst)?;
    let data = dst.join(DATA_DIR);
    fs::create_dir(&data).map_err(|e| FsError::io("create directory", &data, e))?;

    let results: Vec<(usize, u64, [u8; 32])> = jobs
        .par_iter()
        .map(|j| {
            let (size, digest) = seal_file(j, &entries[j.entry].path, dst, chunk_size, key)?;
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

fn scan(dir: &Path, rel: &mut Vec<u8>, out: &mut Vec<Scanned>) -> Result<(), FsError> {
    let rd = fs::read_dir(dir).map_err(|e| FsError::io("read directory", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| FsError::io("read directory", dir, e))?;
        let abs = ent.path();
        let name = ent.file_name();
        let old = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        if let Err(reason) = check_path(rel) {
            return Err(FsError::Unsupported {
                path: abs,
                reason: reason.into(),
            });
        }
        let meta = fs::symlink_metadata(&abs).map_err(|e| FsError::io("stat", &abs, e))?;
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
        let is_dir = matches!(kind, ScanKind::Dir);
        out.push(Scanned {
            rel: rel.clone(),
            abs: abs.clone(),
            mode: if matches!(kind, ScanKind::Symlink(_)) {
                0
            } else {
                mode
            },
            kind,
        });
        if is_dir {
            scan(&abs, rel, out)?;
        }
        rel.truncate(old);
    }
    Ok(())
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

/// Seals one file; returns its size (as read) and the digest of its sealed form.
fn seal_file(
    job: &Job,
    rel: &[u8],
    dst: &Path,
    chunk_size: u32,
    key: &VolumeKey,
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
    let fc = FileCrypto::new(key, &header, rel)?;
    out.set_len(layout.sealed_len)
        .map_err(|e| FsError::io("resize", &blob, e))?;
    out.write_all_at(&hbytes, 0)
        .map_err(|e| FsError::io("write", &blob, e))?;
    let per_batch = (BATCH_BYTES / layout.chunk_size).max(1);
    let batches = layout.chunks.div_ceil(per_batch);
    let run = |b: u64| {
        let first = b * per_batch;
        let end = (first + per_batch).min(layout.chunks);
        seal_batch(&layout, &fc, &src, &job.src, &out, &blob, first, end)
    };
    let tags: Vec<Vec<[u8; TAG_LEN]>> = if batches == 1 {
        vec![run(0)?]
    } else {
        (0..batches)
            .into_par_iter()
            .map(run)
            .collect::<Result<_, _>>()?
    };
    let mut d = TagDigest::new(&hbytes);
    for t in tags.iter().flatten() {
        d.update(t);
    }
    Ok((size, d.finish()))
}

#[allow(clippy::too_many_arguments)]
fn seal_batch(
    layout: &Layout,
    fc: &FileCrypto,
    src: &File,
    src_path: &Path,
    out: &File,
    blob: &Path,
    first: u64,
    end: u64,
) -> Result<Vec<[u8; TAG_LEN]>, FsError> {
    let start = layout.sealed_offset(first);
    let total = if end == layout.chunks {
        layout.sealed_len - start
    } else {
        layout.sealed_offset(end) - start
    } as usize;
    BUF.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < total {
            buf.resize(total, 0);
        }
        let mut tags = Vec::with_capacity((end - first) as usize);
        let mut pos = 0usize;
        for i in first..end {
            let (off, len) = layout.plain_range(i);
            let chunk = &mut buf[pos..pos + len];
            src.read_exact_at(chunk, off).map_err(|e| {
                FsError::io("read (did the file shrink while sealing?)", src_path, e)
            })?;
            let tag = fc.seal_chunk(i, i + 1 == layout.chunks, chunk)?;
            buf[pos + len..pos + len + TAG_LEN].copy_from_slice(&tag);
            tags.push(tag);
            pos += len + TAG_LEN;
        }
        out.write_all_at(&buf[..total], start)
            .map_err(|e| FsError::io("write", blob, e))?;
        Ok(tags)
    })
}
