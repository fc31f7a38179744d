//! Sealing a directory tree into a volume.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

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

/// Sealed files of at most this many plaintext bytes are packed into shared
/// blobs (FORMAT.md §1); larger ones get a blob of their own.
pub const PACK_MAX_FILE: u64 = 64 << 10;
/// A pack is closed once it holds this many bytes.
const PACK_TARGET: u64 = 32 << 20;
/// Sealed bytes a pack collects before one write.
const PACK_WRITE: usize = 1 << 20;
/// Files of a directory opened by one parallel job; its small ones go
/// into one pack.
const GROUP_FILES: usize = 64;

thread_local! {
    /// Reused I/O buffer, so the hot path does not allocate per chunk.
    pub(crate) static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A file with several links, sealed once every path of it is known.
struct Job {
    /// Index of its entry in the manifest.
    entry: usize,
    src: PathBuf,
    region: Region,
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
    let created = prepare_empty_dir(dst)?;
    let r = seal_into(src, &meta, dst, regions, chunk_size, key);
    if r.is_err() {
        // Leave nothing half-written behind.
        if created {
            let _ = fs::remove_dir_all(dst);
        } else {
            let _ = fs::remove_dir_all(dst.join(DATA_DIR));
            let _ = fs::remove_file(manifest_path(dst));
        }
    }
    r
}

/// What every file of a seal shares.
struct Ctx<'a> {
    dst: &'a Path,
    regions: &'a Regions,
    chunk_size: u32,
    keys: FileKeys,
    /// (dev, ino) of `dst`, which must not be inside the source.
    dst_id: (u64, u64),
    /// Entries listed so far, across the directories listed in parallel:
    /// checked against [`MAX_ENTRIES`] before a directory's files are
    /// sealed, so an oversized tree is refused before it is written.
    listed: AtomicUsize,
    /// Open packs nobody is appending to right now (at most one per worker
    /// is in use at a time).
    packs: Mutex<Vec<Pack>>,
}

impl Ctx<'_> {
    /// A pack for one job to append to: an idle one, or a new one.
    fn take_pack(&self) -> Result<Pack, FsError> {
        let idle = self
            .packs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(p) => Ok(p),
            None => Pack::create(self.dst),
        }
    }

    /// Gives a pack back to the idle list, or closes it if it is full.
    fn put_pack(&self, mut pack: Pack) -> Result<(), FsError> {
        if pack.len >= PACK_TARGET {
            return pack.flush();
        }
        self.packs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pack);
        Ok(())
    }

    /// Writes out what the idle packs still hold (all packs are idle once
    /// every file is sealed).
    fn finish_packs(&self) -> Result<(), FsError> {
        let packs = std::mem::take(&mut *self.packs.lock().unwrap_or_else(PoisonError::into_inner));
        for mut p in packs {
            p.flush()?;
        }
        Ok(())
    }
}

/// A blob of small sealed files, appended to by one worker at a time.
struct Pack {
    id: [u8; 16],
    path: PathBuf,
    file: File,
    /// Bytes written plus bytes waiting in `buf`.
    len: u64,
    /// Sealed bytes not written yet: `buf[..fill]` (`buf` only grows, so
    /// it is not zeroed again for every file).
    buf: Vec<u8>,
    fill: usize,
}

impl Pack {
    fn create(dst: &Path) -> Result<Self, FsError> {
        let mut id = [0u8; 16];
        crypto::random(&mut id)?;
        let path = blob_path(dst, &id);
        let file = create_new(&path, 0o644)?;
        Ok(Pack {
            id,
            path,
            file,
            len: 0,
            buf: Vec::new(),
            fill: 0,
        })
    }

    fn flush(&mut self) -> Result<(), FsError> {
        self.file
            .write_all(&self.buf[..self.fill])
            .map_err(|e| FsError::io("write", &self.path, e))?;
        self.fill = 0;
        Ok(())
    }

    /// Seals the opened source `src` (a small file) at the end of the pack;
    /// returns its manifest entry kind.
    fn append(
        &mut self,
        src: &Source,
        rel: &[u8],
        region: Region,
        file_id: [u8; 16],
        ctx: &Ctx,
    ) -> Result<RawKind, FsError> {
        let header = FileHeader {
            region,
            chunk_size: ctx.chunk_size,
            file_id,
            size: src.size,
        };
        let layout = header.layout().map_err(|reason| FsError::Unsupported {
            path: src.path.to_path_buf(),
            reason,
        })?;
        let hbytes = header.encode();
        let fc = FileCrypto::new(&ctx.keys, &header, rel)?;
        let sealed_len = layout.sealed_len as usize;
        let end = self.fill + sealed_len;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let out = &mut self.buf[self.fill..end];
        out[..HEADER_LEN].copy_from_slice(&hbytes);
        let mut d = TagDigest::new(&hbytes);
        let mut pos = HEADER_LEN;
        for c in 0..layout.chunks {
            let (off, len) = layout.plain_range(c);
            let chunk = &mut out[pos..pos + len];
            src.file
                .read_exact_at(chunk, off)
                .map_err(|e| FsError::io(SHRANK, src.path, e))?;
            let tag = fc.seal_chunk(c, c + 1 == layout.chunks, chunk)?;
            out[pos + len..pos + len + TAG_LEN].copy_from_slice(&tag);
            d.update(&tag);
            pos += len + TAG_LEN;
        }
        let offset = self.len;
        self.len += layout.sealed_len;
        self.fill = end;
        if self.fill >= PACK_WRITE {
            self.flush()?;
        }
        Ok(RawKind::File {
            region,
            size: src.size,
            file_id,
            digest: d.finish(),
            blob: self.id,
            offset,
        })
    }
}

const SHRANK: &str = "read (did the file shrink while sealing?)";

/// A regular file of the tree to seal.
struct FileJob<'a> {
    /// Its path (for errors, and to open it when `at` is `None`).
    src: &'a Path,
    /// Its directory, open, and its name in it: opened with `openat`, no
    /// walk of the whole path per file.
    at: Option<(&'a OwnedFd, &'a OsStr)>,
    rel: &'a [u8],
    region: Region,
}

/// What became of a listed regular file.
enum Outcome {
    /// Sealed: its manifest entry kind and permission bits.
    Sealed(RawKind, u32),
    /// It has several links: sealed later, once for all its paths.
    Linked { id: (u64, u64), mode: u32 },
}

fn packable(region: Region, size: u64) -> bool {
    region != Region::Plain && size <= PACK_MAX_FILE
}

/// Seals `jobs` in parallel, with fresh random file ids; returns what
/// became of each, in order. Each file is opened and stat'ed once (the
/// listing only read directory entries): small sealed files are packed
/// right away, `GROUP_FILES` per job into one pack; larger ones are noted
/// and then sealed alone, one job each (with parallel batches inside). With
/// `defer_links`, files with several links are left for later.
fn seal_files(jobs: &[FileJob], defer_links: bool, ctx: &Ctx) -> Result<Vec<Outcome>, FsError> {
    let mut ids = vec![0u8; 16 * jobs.len()];
    crypto::random(&mut ids)?;
    let file_id = |k: usize| {
        let mut id = [0u8; 16];
        id.copy_from_slice(&ids[16 * k..16 * k + 16]);
        id
    };
    let linked = |src: &Source| Outcome::Linked {
        id: src.id,
        mode: src.mode,
    };
    let first: Vec<Vec<Option<Outcome>>> = jobs
        .par_chunks(GROUP_FILES)
        .enumerate()
        .map(|(g, group)| {
            let mut pack: Option<Pack> = None;
            let mut out = Vec::with_capacity(group.len());
            let mut run = || {
                for (k, j) in group.iter().enumerate() {
                    let src = Source::open(j)?;
                    if defer_links && src.nlink > 1 {
                        out.push(Some(linked(&src)));
                    } else if packable(j.region, src.size) {
                        let p = match &mut pack {
                            Some(p) => p,
                            None => pack.insert(ctx.take_pack()?),
                        };
                        let kind =
                            p.append(&src, j.rel, j.region, file_id(g * GROUP_FILES + k), ctx)?;
                        out.push(Some(Outcome::Sealed(kind, src.mode)));
                    } else {
                        out.push(None);
                    }
                }
                Ok::<_, FsError>(())
            };
            run()?;
            if let Some(p) = pack {
                ctx.put_pack(p)?;
            }
            Ok(out)
        })
        .collect::<Result<_, FsError>>()?;
    let mut outcomes: Vec<Option<Outcome>> = first.into_iter().flatten().collect();
    let alone: Vec<usize> = (0..outcomes.len())
        .filter(|&k| outcomes[k].is_none())
        .collect();
    let sealed: Vec<Outcome> = alone
        .par_iter()
        .map(|&k| {
            let j = &jobs[k];
            let src = Source::open(j)?;
            if defer_links && src.nlink > 1 {
                return Ok(linked(&src));
            }
            let kind = seal_file(&src, j.rel, j.region, file_id(k), ctx)?;
            Ok(Outcome::Sealed(kind, src.mode))
        })
        .collect::<Result<_, FsError>>()?;
    for (&k, o) in alone.iter().zip(sealed) {
        outcomes[k] = Some(o);
    }
    Ok(outcomes.into_iter().flatten().collect())
}

fn seal_into(
    src: &Path,
    sm: &fs::Metadata,
    dst: &Path,
    regions: &Regions,
    chunk_size: u32,
    key: &VolumeKey,
) -> Result<VolumeTag, FsError> {
    let data = dst.join(DATA_DIR);
    fs::create_dir(&data).map_err(|e| FsError::io("create directory", &data, e))?;
    let dm = fs::metadata(dst).map_err(|e| FsError::io("stat", dst, e))?;
    if (sm.dev(), sm.ino()) == (dm.dev(), dm.ino()) {
        return Err(FsError::Unsupported {
            path: src.to_path_buf(),
            reason: "the volume being written is inside the source tree".into(),
        });
    }
    let ctx = Ctx {
        dst,
        regions,
        chunk_size,
        keys: FileKeys::new(key),
        dst_id: (dm.dev(), dm.ino()),
        listed: AtomicUsize::new(0),
        packs: Mutex::new(Vec::new()),
    };
    // Files with one link are sealed while the tree is listed (no serial
    // scan before the parallel work starts).
    // (scan_dir refuses more than MAX_ENTRIES entries.)
    let mut scanned = scan_and_seal(src, &ctx)?;
    scanned.par_sort_unstable_by(|a, b| a.rel.cmp(&b.rel));

    // A hard-linked file is stored once, under its first path, with the
    // strongest region of all its paths.
    let mut strongest: HashMap<(u64, u64), Region> = HashMap::new();
    for s in &scanned {
        if let ScanKind::Linked { id, .. } = &s.kind {
            let r = regions.region_of_bytes(&s.rel);
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
            ScanKind::Sealed(kind) => kind,
            ScanKind::Linked { abs, id } => {
                if let Some(&p) = primary.get(&id) {
                    entries.push(RawEntry {
                        path: s.rel,
                        mode: 0,
                        kind: RawKind::HardLink { target: p },
                    });
                    continue;
                }
                primary.insert(id, index as u32);
                let region = strongest
                    .get(&id)
                    .copied()
                    .unwrap_or_else(|| regions.region_of_bytes(&s.rel));
                jobs.push(Job {
                    entry: index,
                    src: abs,
                    region,
                });
                // Filled in below, once sealed.
                RawKind::Dir
            }
        };
        entries.push(RawEntry {
            path: s.rel,
            mode: s.mode,
            kind,
        });
    }
    let file_jobs: Vec<FileJob> = jobs
        .iter()
        .map(|j| FileJob {
            src: &j.src,
            at: None,
            rel: &entries[j.entry].path,
            region: j.region,
        })
        .collect();
    let sealed = seal_files(&file_jobs, false, &ctx)?;
    drop(file_jobs);
    for (j, o) in jobs.iter().zip(sealed) {
        if let Outcome::Sealed(kind, _) = o {
            entries[j.entry].kind = kind;
        }
    }
    ctx.finish_packs()?;

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
    /// A file with one link, already sealed: its manifest entry.
    Sealed(RawKind),
    /// A file with several links, (dev, ino): sealed later, once.
    Linked {
        abs: PathBuf,
        id: (u64, u64),
    },
}

struct Scanned {
    rel: Vec<u8>,
    mode: u32,
    kind: ScanKind,
}

/// Lists the tree under `src` and seals its files with one link, one
/// directory level at a time: the directories of a level, and the files
/// of each directory, in parallel. No recursion, so any depth the path
/// limit allows is fine.
fn scan_and_seal(src: &Path, ctx: &Ctx) -> Result<Vec<Scanned>, FsError> {
    let mut out = Vec::new();
    let mut level = vec![(src.to_path_buf(), Vec::new())];
    while !level.is_empty() {
        let listed: Vec<DirListing> = level
            .par_iter()
            .map(|(abs, rel)| scan_dir(abs, rel, ctx))
            .collect::<Result<_, _>>()?;
        level = Vec::new();
        for (entries, subdirs) in listed {
            out.extend(entries);
            level.extend(subdirs);
        }
    }
    Ok(out)
}

/// A directory's entries (files with one link already sealed) and its
/// subdirectories (absolute and relative paths).
type DirListing = (Vec<Scanned>, Vec<(PathBuf, Vec<u8>)>);

fn scan_dir(dir: &Path, parent: &[u8], ctx: &Ctx) -> Result<DirListing, FsError> {
    // Below the root, a directory that turned into a symlink since it was
    // listed is refused, not followed.
    let nofollow = if parent.is_empty() {
        OFlags::empty()
    } else {
        OFlags::NOFOLLOW
    };
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | nofollow,
        Mode::empty(),
    )
    .map_err(|e| FsError::io("open directory", dir, e.into()))?;
    // Listed, stat'ed and opened through this one descriptor: every name
    // is looked up in the directory that listed it.
    let mut rd = rustix::fs::Dir::read_from(&dir_fd)
        .map_err(|e| FsError::io("read directory", dir, e.into()))?;
    let mut out = Vec::new();
    let mut subdirs = Vec::new();
    // (index in out, source path, name, region) of regular files: opened
    // and stat'ed once, when they are sealed.
    let mut files: Vec<(usize, PathBuf, std::ffi::OsString, Region)> = Vec::new();
    while let Some(ent) = rd.read() {
        let ent = ent.map_err(|e| FsError::io("read directory", dir, e.into()))?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name).to_os_string();
        let abs = dir.join(&name);
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
        // The type from the directory entry; lstat (relative to the
        // directory, not following symlinks) only for directories and where
        // the file system does not say. Regular files are stat'ed once
        // opened.
        let mut ft = ent.file_type();
        let mut st = None;
        if matches!(ft, FileType::Directory | FileType::Unknown) {
            let s = rustix::fs::statat(&dir_fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| FsError::io("stat", &abs, e.into()))?;
            ft = FileType::from_raw_mode(s.st_mode);
            st = Some(s);
        }
        let mut mode = 0;
        let kind = if let (FileType::Directory, Some(st)) = (ft, &st) {
            mode = st.st_mode & MODE_MASK;
            if (st.st_dev, st.st_ino) == ctx.dst_id {
                return Err(FsError::Unsupported {
                    path: abs,
                    reason: "the volume being written is inside the source tree".into(),
                });
            }
            subdirs.push((abs, rel.clone()));
            ScanKind::Dir
        } else if ft == FileType::Symlink {
            let t = rustix::fs::readlinkat(&dir_fd, &name, Vec::new())
                .map_err(|e| FsError::io("read link", &abs, e.into()))?
                .into_bytes();
            if t.is_empty() || t.len() > MAX_LINK_LEN {
                return Err(FsError::Unsupported {
                    path: abs,
                    reason: "symlink target empty or too long".into(),
                });
            }
            ScanKind::Symlink(t)
        } else if ft == FileType::RegularFile {
            let region = ctx.regions.region_of_bytes(&rel);
            files.push((out.len(), abs, name, region));
            ScanKind::Dir // replaced below, once sealed
        } else {
            return Err(FsError::Unsupported {
                path: abs,
                reason: "not a regular file, directory or symlink (devices, FIFOs and sockets cannot be sealed)".into(),
            });
        };
        out.push(Scanned { rel, mode, kind });
    }
    let listed = ctx.listed.fetch_add(out.len(), Ordering::Relaxed) + out.len();
    if listed > MAX_ENTRIES {
        return Err(FsError::Unsupported {
            path: dir.to_path_buf(),
            reason: format!("{listed} entries (a volume holds at most {MAX_ENTRIES})"),
        });
    }
    let jobs: Vec<FileJob> = files
        .iter()
        .map(|(i, abs, name, region)| FileJob {
            src: abs,
            at: Some((&dir_fd, name)),
            rel: &out[*i].rel,
            region: *region,
        })
        .collect();
    let sealed = seal_files(&jobs, true, ctx)?;
    drop(jobs);
    for ((i, abs, _, _), o) in files.into_iter().zip(sealed) {
        let s = &mut out[i];
        match o {
            Outcome::Sealed(kind, mode) => {
                s.kind = ScanKind::Sealed(kind);
                s.mode = mode;
            }
            Outcome::Linked { id, mode } => {
                s.kind = ScanKind::Linked { abs, id };
                s.mode = mode;
            }
        }
    }
    Ok((out, subdirs))
}

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

/// An opened source file and what its fstat said.
struct Source<'a> {
    file: File,
    path: &'a Path,
    size: u64,
    /// Permission bits.
    mode: u32,
    nlink: u64,
    /// (dev, ino): identifies hard links.
    id: (u64, u64),
}

impl<'a> Source<'a> {
    fn open(job: &FileJob<'a>) -> Result<Self, FsError> {
        let path = job.src;
        let file = match job.at {
            Some((dir, name)) => rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map(File::from)
            .map_err(|e| FsError::io("open", path, e.into()))?,
            None => open_nofollow(path)?,
        };
        let meta = file.metadata().map_err(|e| FsError::io("stat", path, e))?;
        if !meta.is_file() {
            return Err(FsError::Unsupported {
                path: path.to_path_buf(),
                reason: "changed into something other than a regular file while sealing".into(),
            });
        }
        Ok(Source {
            file,
            path,
            size: meta.len(),
            mode: meta.mode() & MODE_MASK,
            nlink: meta.nlink(),
            id: (meta.dev(), meta.ino()),
        })
    }
}

/// Seals one file alone into `data/<file_id>` (blob id = file id); returns
/// its manifest entry kind (size as read, digest of the sealed form).
fn seal_file(
    source: &Source,
    rel: &[u8],
    region: Region,
    file_id: [u8; 16],
    ctx: &Ctx,
) -> Result<RawKind, FsError> {
    let (src, src_path, size) = (&source.file, source.path, source.size);
    let blob = blob_path(ctx.dst, &file_id);
    let mut out = create_new(&blob, 0o644)?;
    if region == Region::Plain {
        let mut src = src;
        let copied =
            std::io::copy(&mut src, &mut out).map_err(|e| FsError::io("copy", src_path, e))?;
        return Ok(RawKind::File {
            region,
            size: copied,
            file_id,
            digest: [0; 32],
            blob: file_id,
            offset: 0,
        });
    }
    let header = FileHeader {
        region,
        chunk_size: ctx.chunk_size,
        file_id,
        size,
    };
    let layout = header.layout().map_err(|reason| FsError::Unsupported {
        path: src_path.to_path_buf(),
        reason,
    })?;
    let hbytes = header.encode();
    let fc = FileCrypto::new(&ctx.keys, &header, rel)?;
    let per_batch = (BATCH_BYTES / layout.chunk_size).max(1);
    let batches = layout.chunks.div_ceil(per_batch);
    let io = SealIo {
        layout: &layout,
        fc: &fc,
        header: &hbytes,
        src,
        src_path,
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
    Ok(RawKind::File {
        region,
        size,
        file_id,
        digest: d.finish(),
        blob: file_id,
        offset: 0,
    })
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
                    self.src
                        .read_exact_at(chunk, off)
                        .map_err(|e| FsError::io(SHRANK, self.src_path, e))?;
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
