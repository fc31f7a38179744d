//! On-disk encoding: sealed-file headers, the manifest, limits and path
//! rules. See `FORMAT.md` for the specification; this module is its
//! implementation and every decoder here treats its input as hostile.

use std::collections::{HashMap, HashSet};

use crate::Region;

/// Magic of a sealed file.
pub const FILE_MAGIC: [u8; 8] = *b"SIGILFSF";
/// Magic of the sealed manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"SIGILFSM";
/// Volume format version (manifest header and plaintext) written and
/// accepted: 2 added blob ids and offsets (packs of small files).
pub const VERSION: u8 = 2;
/// Version byte of a sealed file's header: the sealed-file layout, which
/// volume format 2 did not change.
pub const FILE_VERSION: u8 = 1;
/// Length of a sealed-file header.
pub const HEADER_LEN: usize = 40;
/// Length of the sealed manifest's clear header.
pub const MANIFEST_HEADER_LEN: usize = 28;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE: u32 = 16;
/// Largest chunk size accepted (16 MiB).
pub const MAX_CHUNK_SIZE: u32 = 1 << 24;
/// Default chunk size (64 KiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 16;
/// Most chunks a file may have (the STREAM counter is 32 bits).
pub const MAX_CHUNKS: u64 = 1 << 32;
/// Longest path (bytes) inside a volume.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest path component (bytes).
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target (bytes).
pub const MAX_LINK_LEN: usize = 4096;
/// Most entries in a manifest.
pub const MAX_ENTRIES: usize = 1 << 20;
/// Largest manifest plaintext (64 MiB).
pub const MAX_MANIFEST_LEN: usize = 64 << 20;
/// Permission bits kept from a file's mode.
pub const MODE_MASK: u32 = 0o7777;

/// Region byte in headers and the manifest.
pub(crate) fn region_code(r: Region) -> u8 {
    match r {
        Region::Encrypted => 1,
        Region::Authenticated => 2,
        Region::Plain => 3,
    }
}

fn region_from_code(c: u8) -> Option<Region> {
    match c {
        1 => Some(Region::Encrypted),
        2 => Some(Region::Authenticated),
        3 => Some(Region::Plain),
        _ => None,
    }
}

/// The 40-byte header of a sealed (encrypted or authenticated) file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// `Encrypted` or `Authenticated`.
    pub region: Region,
    /// Plaintext bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// Random per-file identifier (names the sealed file, salts its key).
    pub file_id: [u8; 16],
    /// Plaintext size in bytes.
    pub size: u64,
}

impl FileHeader {
    /// Encodes: magic(8) version(1) region(1) reserved(2)=0 chunk_size(u32 LE)
    /// file_id(16) size(u64 LE).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&FILE_MAGIC);
        h[8] = FILE_VERSION;
        h[9] = region_code(self.region);
        h[12..16].copy_from_slice(&self.chunk_size.to_le_bytes());
        h[16..32].copy_from_slice(&self.file_id);
        h[32..40].copy_from_slice(&self.size.to_le_bytes());
        h
    }

    /// Decodes and checks a header; the error says which field is wrong.
    pub fn decode(h: &[u8]) -> Result<Self, String> {
        if h.len() < HEADER_LEN {
            return Err(format!(
                "header truncated ({} of {HEADER_LEN} bytes)",
                h.len()
            ));
        }
        if h[..8] != FILE_MAGIC {
            return Err("bad magic (not a sealed file)".into());
        }
        if h[8] != FILE_VERSION {
            return Err(format!("unsupported version {}", h[8]));
        }
        let region = match region_from_code(h[9]) {
            Some(r @ (Region::Encrypted | Region::Authenticated)) => r,
            _ => return Err(format!("bad region code {}", h[9])),
        };
        if h[10] != 0 || h[11] != 0 {
            return Err("reserved header bytes are not zero".into());
        }
        let chunk_size = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        check_chunk_size(chunk_size)?;
        let mut file_id = [0u8; 16];
        file_id.copy_from_slice(&h[16..32]);
        let mut sz = [0u8; 8];
        sz.copy_from_slice(&h[32..40]);
        let size = u64::from_le_bytes(sz);
        let hdr = FileHeader {
            region,
            chunk_size,
            file_id,
            size,
        };
        hdr.layout()?;
        Ok(hdr)
    }

    /// Chunk geometry of this file, or why it is impossible.
    pub fn layout(&self) -> Result<Layout, String> {
        Layout::new(self.size, self.chunk_size)
    }
}

/// Checks chunk-size bounds.
pub fn check_chunk_size(cs: u32) -> Result<(), String> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&cs) {
        return Err(format!(
            "chunk size {cs} out of bounds ({MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE})"
        ));
    }
    Ok(())
}

/// Where chunks of a sealed file live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Plaintext size.
    pub size: u64,
    /// Plaintext bytes per chunk.
    pub chunk_size: u64,
    /// Number of chunks (at least 1: an empty file has one empty final chunk).
    pub chunks: u64,
    /// Total length of the sealed file.
    pub sealed_len: u64,
}

impl Layout {
    /// Geometry for `size` bytes in chunks of `chunk_size`.
    pub fn new(size: u64, chunk_size: u32) -> Result<Self, String> {
        check_chunk_size(chunk_size)?;
        let cs = u64::from(chunk_size);
        let chunks = size.div_ceil(cs).max(1);
        if chunks > MAX_CHUNKS {
            return Err(format!(
                "file of {size} bytes needs {chunks} chunks of {cs} (at most {MAX_CHUNKS})"
            ));
        }
        let sealed_len = (chunks * TAG_LEN as u64)
            .checked_add(size)
            .and_then(|v| v.checked_add(HEADER_LEN as u64))
            .ok_or_else(|| format!("file size {size} too large"))?;
        Ok(Layout {
            size,
            chunk_size: cs,
            chunks,
            sealed_len,
        })
    }

    /// Plaintext offset and length of chunk `i`.
    pub fn plain_range(&self, i: u64) -> (u64, usize) {
        let off = i * self.chunk_size;
        let len = self.chunk_size.min(self.size.saturating_sub(off));
        (off, len as usize)
    }

    /// Offset of chunk `i` in the sealed file.
    pub fn sealed_offset(&self, i: u64) -> u64 {
        HEADER_LEN as u64 + i * (self.chunk_size + TAG_LEN as u64)
    }
}

/// Kind of a manifest entry, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawKind {
    /// A directory.
    Dir,
    /// A regular file with its own content.
    File {
        /// Its region.
        region: Region,
        /// Plaintext size.
        size: u64,
        /// Random identifier, in the sealed file's header and key.
        file_id: [u8; 16],
        /// SHA-256 of header || all chunk tags (zero for plain files).
        digest: [u8; 32],
        /// The blob holding the file: `data/<hex(blob)>`.
        blob: [u8; 16],
        /// Where the sealed file starts in its blob.
        offset: u64,
    },
    /// A symbolic link; the target is data, never followed.
    Symlink {
        /// Raw target bytes.
        target: Vec<u8>,
    },
    /// A hard link to the earlier `File` entry with this index.
    HardLink {
        /// Index of the primary entry.
        target: u32,
    },
}

/// One manifest entry, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// Normalised relative path bytes.
    pub path: Vec<u8>,
    /// Permission bits (`MODE_MASK`); 0 for symlinks.
    pub mode: u32,
    /// What it is.
    pub kind: RawKind,
}

/// The decoded manifest plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Chunk size of every sealed file in the volume.
    pub chunk_size: u32,
    /// Entries in strictly increasing byte order of path.
    pub entries: Vec<RawEntry>,
}

/// Checks that `p` is a normalised relative path: non-empty components
/// separated by single `/`, no `.`/`..`, no NUL, within length limits.
pub fn check_path(p: &[u8]) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty path");
    }
    if p.len() > MAX_PATH_LEN {
        return Err("path too long");
    }
    if p.contains(&0) {
        return Err("path contains a NUL byte");
    }
    if p[0] == b'/' {
        return Err("absolute path");
    }
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" => return Err("empty path component"),
            b"." | b".." => return Err("'.' or '..' component"),
            c if c.len() > MAX_NAME_LEN => return Err("path component too long"),
            _ => {}
        }
    }
    Ok(())
}

/// The parent of a normalised path, or `None` for a top-level name.
pub fn parent(p: &[u8]) -> Option<&[u8]> {
    p.iter().rposition(|&b| b == b'/').map(|i| &p[..i])
}

impl Manifest {
    /// Encodes the manifest plaintext (see FORMAT.md).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 96);
        out.push(VERSION);
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&(e.path.len() as u16).to_le_bytes());
            out.extend_from_slice(&e.path);
            let code = match e.kind {
                RawKind::Dir => 1u8,
                RawKind::File { .. } => 2,
                RawKind::Symlink { .. } => 3,
                RawKind::HardLink { .. } => 4,
            };
            out.push(code);
            out.extend_from_slice(&e.mode.to_le_bytes());
            match &e.kind {
                RawKind::Dir => {}
                RawKind::File {
                    region,
                    size,
                    file_id,
                    digest,
                    blob,
                    offset,
                } => {
                    out.push(region_code(*region));
                    out.extend_from_slice(&size.to_le_bytes());
                    out.extend_from_slice(file_id);
                    out.extend_from_slice(digest);
                    out.extend_from_slice(blob);
                    out.extend_from_slice(&offset.to_le_bytes());
                }
                RawKind::Symlink { target } => {
                    out.extend_from_slice(&(target.len() as u16).to_le_bytes());
                    out.extend_from_slice(target);
                }
                RawKind::HardLink { target } => out.extend_from_slice(&target.to_le_bytes()),
            }
        }
        out
    }

    /// Decodes and validates a manifest plaintext. Errors say what is wrong
    /// and at which entry.
    pub fn decode(buf: &[u8]) -> Result<Self, String> {
        if buf.len() > MAX_MANIFEST_LEN {
            return Err(format!("manifest larger than {MAX_MANIFEST_LEN} bytes"));
        }
        let mut r = Reader { buf, pos: 0 };
        let version = r.u8().ok_or("truncated before version")?;
        if version != VERSION {
            return Err(format!("unsupported manifest version {version}"));
        }
        let chunk_size = r.u32().ok_or("truncated before chunk size")?;
        check_chunk_size(chunk_size)?;
        let count = r.u32().ok_or("truncated before entry count")? as usize;
        if count > MAX_ENTRIES {
            return Err(format!("{count} entries (at most {MAX_ENTRIES})"));
        }
        // Each entry takes at least 8 bytes: never reserve more than the
        // input could hold.
        let mut entries: Vec<RawEntry> = Vec::with_capacity(count.min(buf.len() / 8));
        let mut dirs: HashSet<&[u8]> = HashSet::new();
        let mut ids: HashSet<[u8; 16]> = HashSet::new();
        for i in 0..count {
            let err = |what: &str| format!("entry {i}: {what}");
            let plen = r.u16().ok_or_else(|| err("truncated"))? as usize;
            let path = r.bytes(plen).ok_or_else(|| err("truncated path"))?;
            check_path(path).map_err(err)?;
            let shown = String::from_utf8_lossy(path).into_owned();
            let err = |what: &str| format!("entry {i} ({shown:?}): {what}");
            if let Some(prev) = entries.last() {
                if prev.path.as_slice() >= path {
                    return Err(err("paths not in strictly increasing order (duplicate?)"));
                }
            }
            if let Some(par) = parent(path) {
                if !dirs.contains(par) {
                    return Err(err("parent is not a directory of the volume"));
                }
            }
            let code = r.u8().ok_or_else(|| err("truncated"))?;
            let mode = r.u32().ok_or_else(|| err("truncated"))?;
            if mode & !MODE_MASK != 0 {
                return Err(err("mode has bits outside 0o7777"));
            }
            let kind = match code {
                1 => RawKind::Dir,
                2 => {
                    let rc = r.u8().ok_or_else(|| err("truncated"))?;
                    let region = region_from_code(rc).ok_or_else(|| err("bad region code"))?;
                    let size = r.u64().ok_or_else(|| err("truncated"))?;
                    let mut file_id = [0u8; 16];
                    file_id.copy_from_slice(r.bytes(16).ok_or_else(|| err("truncated"))?);
                    let mut digest = [0u8; 32];
                    digest.copy_from_slice(r.bytes(32).ok_or_else(|| err("truncated"))?);
                    let mut blob = [0u8; 16];
                    blob.copy_from_slice(r.bytes(16).ok_or_else(|| err("truncated"))?);
                    let offset = r.u64().ok_or_else(|| err("truncated"))?;
                    Layout::new(size, chunk_size).map_err(|e| err(&e))?;
                    if !ids.insert(file_id) {
                        return Err(err("file id used twice"));
                    }
                    RawKind::File {
                        region,
                        size,
                        file_id,
                        digest,
                        blob,
                        offset,
                    }
                }
                3 => {
                    let tlen = r.u16().ok_or_else(|| err("truncated"))? as usize;
                    let target = r.bytes(tlen).ok_or_else(|| err("truncated"))?;
                    if target.is_empty() || target.len() > MAX_LINK_LEN || target.contains(&0) {
                        return Err(err("bad symlink target"));
                    }
                    if mode != 0 {
                        return Err(err("symlink with a mode"));
                    }
                    RawKind::Symlink {
                        target: target.to_vec(),
                    }
                }
                4 => {
                    let t = r.u32().ok_or_else(|| err("truncated"))?;
                    match entries.get(t as usize) {
                        Some(RawEntry {
                            kind: RawKind::File { .. },
                            ..
                        }) => {}
                        _ => return Err(err("hard link to something that is not an earlier file")),
                    }
                    RawKind::HardLink { target: t }
                }
                _ => return Err(err("unknown entry type")),
            };
            if kind == RawKind::Dir {
                dirs.insert(path);
            }
            entries.push(RawEntry {
                path: path.to_vec(),
                mode,
                kind,
            });
        }
        if r.pos != buf.len() {
            return Err(format!(
                "{} trailing bytes after the last entry",
                buf.len() - r.pos
            ));
        }
        let m = Manifest {
            chunk_size,
            entries,
        };
        m.blob_lengths()?;
        Ok(m)
    }

    /// The length every blob must have (`None`: a plain file's blob, whose
    /// length is not fixed), after checking that the files of each blob
    /// tile it exactly (FORMAT.md §1, §4.2). Errors name an entry.
    pub fn blob_lengths(&self) -> Result<HashMap<[u8; 16], Option<u64>>, String> {
        // (blob, offset, end or None for plain, entry index)
        let mut ranges: Vec<([u8; 16], u64, Option<u64>, usize)> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let RawKind::File {
                region,
                size,
                blob,
                offset,
                ..
            } = e.kind
            else {
                continue;
            };
            let err = |what: String| {
                format!("entry {i} ({:?}): {what}", String::from_utf8_lossy(&e.path))
            };
            let end = if region == Region::Plain {
                if offset != 0 {
                    return Err(err("plain file not at offset 0 of its blob".into()));
                }
                None
            } else {
                let len = Layout::new(size, self.chunk_size).map_err(&err)?.sealed_len;
                Some(
                    offset
                        .checked_add(len)
                        .ok_or_else(|| err("range overflows".into()))?,
                )
            };
            ranges.push((blob, offset, end, i));
        }
        ranges.sort_unstable_by_key(|r| (r.0, r.1, r.3));
        let mut lens: HashMap<[u8; 16], Option<u64>> = HashMap::new();
        for (k, &(blob, offset, end, i)) in ranges.iter().enumerate() {
            let first = k == 0 || ranges[k - 1].0 != blob;
            let err = |what: String| {
                format!(
                    "entry {i} ({:?}): blob {}: {what}",
                    String::from_utf8_lossy(&self.entries[i].path),
                    hex::encode(blob)
                )
            };
            let expected = if first {
                0
            } else {
                match lens.get(&blob).copied().flatten() {
                    Some(prev_end) => prev_end,
                    None => return Err(err("shared with a plain file".into())),
                }
            };
            if !first && end.is_none() {
                return Err(err("plain file in a shared blob".into()));
            }
            if offset != expected {
                return Err(err(format!(
                    "starts at offset {offset}, expected {expected} (the files of a blob must tile it: no gap, no overlap)"
                )));
            }
            lens.insert(blob, end);
        }
        Ok(lens)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
}
