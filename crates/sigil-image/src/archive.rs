//! Writing images: an OCI archive (tar of an OCI image layout) or a
//! docker-archive. The archive is written to a temporary file in the
//! destination directory and renamed into place only when complete, so a
//! failure never leaves a half-written image behind.
//!
//! Layer blobs are streamed straight into the archive: a placeholder tar
//! header is written, the (compressed) layer follows, and the header is
//! rewritten once the digest and size are known. Nothing is written twice.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::digest::{Digest, HashWriter};
use crate::error::IoContext;
use crate::flatten::{Content, Kind, Node, Rootfs};
use crate::spec::{self, Compression, Descriptor, DockerManifestEntry, Index, Manifest};
use crate::{Error, Result};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI archive (`podman load`, `skopeo copy oci-archive:`).
    OciArchive,
    /// docker-archive (`docker load`, `podman load`); layers uncompressed.
    DockerArchive,
}

/// Compression of an output layer, with its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerCompression {
    /// Algorithm.
    pub kind: Compression,
    /// Level (zstd: 1..19, negative = fast; gzip: 0..9).
    pub level: i32,
    /// Worker threads for zstd (0 = single-threaded).
    pub threads: u32,
}

impl LayerCompression {
    /// No compression (used for sealed data, which does not compress).
    pub const NONE: LayerCompression = LayerCompression {
        kind: Compression::None,
        level: 0,
        threads: 0,
    };
}

/// A layer written to the archive.
#[derive(Debug, Clone)]
pub struct WrittenLayer {
    /// Descriptor of the blob.
    pub desc: Descriptor,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// The compressor of a layer stream (see [`LayerTar`]).
pub enum Enc<W: Write> {
    /// Uncompressed.
    None(W),
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Enc<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Enc::None(w) => w.write(b),
            Enc::Gzip(w) => w.write(b),
            Enc::Zstd(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Enc::None(w) => w.flush(),
            Enc::Gzip(w) => w.flush(),
            Enc::Zstd(w) => w.flush(),
        }
    }
}

impl<W: Write> Enc<W> {
    fn new(w: W, c: LayerCompression) -> io::Result<Self> {
        Ok(match c.kind {
            Compression::None => Enc::None(w),
            Compression::Gzip => Enc::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::new(c.level.clamp(0, 9) as u32),
            )),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(w, c.level)?;
                if c.threads > 0 {
                    e.multithread(c.threads)?;
                }
                Enc::Zstd(e)
            }
        })
    }
    fn finish(self) -> io::Result<W> {
        match self {
            Enc::None(w) => Ok(w),
            Enc::Gzip(w) => w.finish(),
            Enc::Zstd(w) => w.finish(),
        }
    }
}

/// The layer tar being written (see [`ImageWriter::add_layer`]): what is
/// written is hashed on this thread (the diff_id, SHA-256 of the
/// uncompressed tar) and handed on in chunks.
pub type LayerTar = tar::Builder<HashWriter<ChunkSender>>;

/// A writer that hands what is written, in 1 MiB chunks, to the thread that
/// compresses, hashes and stores the layer; building the tar (reading file
/// contents) runs on the caller's core meanwhile.
pub struct ChunkSender {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 1 << 20;

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        match &self.tx {
            Some(tx) => tx
                .send(chunk)
                .map_err(|_| io::Error::other("layer writer stopped")),
            None => Err(io::Error::other("layer writer closed")),
        }
    }
}

impl Write for ChunkSender {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = b.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An image archive being written.
pub struct ImageWriter {
    dest: PathBuf,
    tmp: Option<tempfile::NamedTempFile>,
    out: BufWriter<File>,
    format: Format,
    layers: Vec<WrittenLayer>,
}

fn blob_header(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    // Blob names are short and ASCII (blobs/sha256/<64 hex>), so ustar fits.
    let _ = h.set_path(path);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h.set_cksum();
    h
}

/// The directory an output file `dest` goes into (`.` for a bare name),
/// which must exist.
pub fn output_dir(dest: &Path) -> Result<PathBuf> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "output directory {} does not exist",
            dir.display()
        )));
    }
    Ok(dir)
}

impl ImageWriter {
    /// Starts writing an archive that will appear at `dest` on [`ImageWriter::finish`].
    pub fn create(dest: &Path, format: Format) -> Result<ImageWriter> {
        let dir = output_dir(dest)?;
        let tmp = tempfile::Builder::new()
            .prefix(".sigil-image-")
            .suffix(".partial")
            .tempfile_in(&dir)
            .at(&dir)?;
        let file = tmp.reopen().at(tmp.path())?;
        let mut w = ImageWriter {
            dest: dest.to_path_buf(),
            tmp: Some(tmp),
            out: BufWriter::with_capacity(1 << 20, file),
            format,
            layers: Vec::new(),
        };
        if format == Format::OciArchive {
            w.add_small("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            w.add_dir("blobs/")?;
            w.add_dir("blobs/sha256/")?;
        }
        Ok(w)
    }

    fn tmp_path(&self) -> PathBuf {
        self.tmp
            .as_ref()
            .map(|t| t.path().to_path_buf())
            .unwrap_or_default()
    }

    fn add_dir(&mut self, path: &str) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        let _ = h.set_path(path);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_cksum();
        let p = self.tmp_path();
        self.out.write_all(h.as_bytes()).at(p)
    }

    fn add_small(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let h = blob_header(path, data.len() as u64);
        let p = self.tmp_path();
        self.out.write_all(h.as_bytes()).at(&p)?;
        self.out.write_all(data).at(&p)?;
        let pad = (512 - data.len() % 512) % 512;
        self.out.write_all(&vec![0u8; pad]).at(&p)
    }

    fn add_blob(&mut self, data: &[u8]) -> Result<Digest> {
        let d = Digest::of(data);
        let name = match self.format {
            Format::OciArchive => format!("blobs/sha256/{}", d.hex()),
            Format::DockerArchive => format!("{}.json", d.hex()),
        };
        self.add_small(&name, data)?;
        Ok(d)
    }

    /// Streams one layer into the archive: `fill` appends entries to the tar.
    /// docker-archive layers are always uncompressed. The tar is built and
    /// hashed (diff_id) on the caller's thread; a second thread compresses
    /// it, hashes the blob and writes it, so both cores work. An uncompressed
    /// layer is hashed once (its digest is its diff_id).
    pub fn add_layer(
        &mut self,
        compression: LayerCompression,
        fill: impl FnOnce(&mut LayerTar) -> Result<()>,
    ) -> Result<WrittenLayer> {
        let compression = match self.format {
            Format::OciArchive => compression,
            Format::DockerArchive => LayerCompression::NONE,
        };
        let p = self.tmp_path();
        self.out.flush().at(&p)?;
        let hdr_pos = self.out.get_mut().stream_position().at(&p)?;
        self.out.write_all(&[0u8; 512]).at(&p)?;
        // Write-back starts while the layer is written (fdatasync on a
        // third thread every 128 MiB), so the final sync_all finds little
        // left to do.
        let syncer_file = self.out.get_ref().try_clone().at(&p)?;
        let out = &mut self.out;
        let (filled, written) = std::thread::scope(|s| {
            let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(8);
            let (sync_tx, sync_rx) = mpsc::sync_channel::<()>(1);
            s.spawn(move || {
                for () in sync_rx {
                    let _ = syncer_file.sync_data();
                }
            });
            let writer = s.spawn(move || -> io::Result<(Option<Digest>, u64)> {
                if compression.kind == Compression::None {
                    // Written as it is: the digest is the diff_id.
                    let mut size = 0u64;
                    for chunk in rx {
                        out.write_all(&chunk)?;
                        let before = size;
                        size += chunk.len() as u64;
                        if before >> 27 != size >> 27 {
                            // One sync at a time; skip if one is running.
                            let _ = sync_tx.try_send(());
                        }
                    }
                    return Ok((None, size));
                }
                drop(sync_tx);
                let mut enc = Enc::new(HashWriter::new(&mut *out), compression)?;
                for chunk in rx {
                    enc.write_all(&chunk)?;
                }
                let (_, digest, size) = enc.finish()?.finish();
                Ok((Some(digest), size))
            });
            let mut tarb = tar::Builder::new(HashWriter::new(ChunkSender {
                tx: Some(tx),
                buf: Vec::with_capacity(CHUNK),
            }));
            tarb.mode(tar::HeaderMode::Complete);
            tarb.follow_symlinks(false);
            let filled = fill(&mut tarb).and_then(|()| {
                let (mut cs, diff_id, len) = tarb.into_inner().at(&p)?.finish();
                cs.send().at(&p)?;
                cs.tx = None;
                Ok((diff_id, len))
            });
            // On failure the sender is dropped here (with the builder), so
            // the writer thread ends.
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("layer writer panicked")));
            (filled, written)
        });
        // A failed writer (e.g. disk full) explains a failed fill; report it first.
        let (digest, size) = written.at(&p)?;
        let (diff_id, plain_size) = filled?;
        let digest = digest.unwrap_or_else(|| diff_id.clone());
        if compression.kind == Compression::None && plain_size != size {
            return Err(Error::image("layer writer lost data"));
        }
        let out = &mut self.out;
        let pad = (512 - size % 512) % 512;
        out.write_all(&vec![0u8; pad as usize]).at(&p)?;
        out.flush().at(&p)?;
        let name = match self.format {
            Format::OciArchive => format!("blobs/sha256/{}", digest.hex()),
            Format::DockerArchive => format!("{}.tar", diff_id.hex()),
        };
        let h = blob_header(&name, size);
        let f = self.out.get_mut();
        let end = f.stream_position().at(&p)?;
        f.seek(SeekFrom::Start(hdr_pos)).at(&p)?;
        f.write_all(h.as_bytes()).at(&p)?;
        f.seek(SeekFrom::Start(end)).at(&p)?;
        let layer = WrittenLayer {
            desc: Descriptor::new(compression.kind.media_type(), &digest, size),
            diff_id,
        };
        self.layers.push(layer.clone());
        Ok(layer)
    }

    /// Adds a layer from a complete uncompressed tar given as bytes.
    pub fn add_raw_layer(
        &mut self,
        compression: LayerCompression,
        tar_bytes: &[u8],
    ) -> Result<WrittenLayer> {
        self.add_layer(compression, |t| {
            let w = t.get_mut();
            w.write_all(tar_bytes)
                .map_err(|e| Error::image(format!("writing raw layer: {e}")))?;
            Ok(())
        })
    }

    /// Writes the config (its `rootfs.diff_ids` are set to the layers
    /// written), the manifest and index, and moves the archive into place.
    /// `ref_name` names the image (`localhost/name:tag`).
    pub fn finish(mut self, mut config: serde_json::Value, ref_name: &str) -> Result<Descriptor> {
        let diff_ids: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|l| serde_json::Value::String(l.diff_id.to_string()))
            .collect();
        if !config.is_object() {
            return Err(Error::image("image config is not a JSON object"));
        }
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        let cfg_bytes = serde_json::to_vec(&config).map_err(|e| Error::image(e.to_string()))?;
        let cfg_digest = self.add_blob(&cfg_bytes)?;
        let manifest_desc = match self.format {
            Format::OciArchive => {
                let manifest = Manifest {
                    schema_version: 2,
                    media_type: Some(spec::MT_MANIFEST.to_string()),
                    config: Descriptor::new(spec::MT_CONFIG, &cfg_digest, cfg_bytes.len() as u64),
                    layers: self.layers.iter().map(|l| l.desc.clone()).collect(),
                    annotations: BTreeMap::new(),
                };
                let mb = serde_json::to_vec(&manifest).map_err(|e| Error::image(e.to_string()))?;
                let md = self.add_blob(&mb)?;
                let mut desc = Descriptor::new(spec::MT_MANIFEST, &md, mb.len() as u64);
                desc.annotations
                    .insert(spec::ANN_REF_NAME.to_string(), ref_name.to_string());
                let index = Index {
                    schema_version: 2,
                    media_type: Some(spec::MT_INDEX.to_string()),
                    manifests: vec![desc.clone()],
                };
                let ib = serde_json::to_vec(&index).map_err(|e| Error::image(e.to_string()))?;
                self.add_small("index.json", &ib)?;
                desc
            }
            Format::DockerArchive => {
                let entry = DockerManifestEntry {
                    config: format!("{}.json", cfg_digest.hex()),
                    repo_tags: Some(vec![ref_name.to_string()]),
                    layers: self
                        .layers
                        .iter()
                        .map(|l| format!("{}.tar", l.diff_id.hex()))
                        .collect(),
                };
                let mb =
                    serde_json::to_vec(&vec![entry]).map_err(|e| Error::image(e.to_string()))?;
                self.add_small("manifest.json", &mb)?;
                Descriptor::new(spec::MT_CONFIG, &cfg_digest, cfg_bytes.len() as u64)
            }
        };
        let p = self.tmp_path();
        self.out.write_all(&[0u8; 1024]).at(&p)?;
        self.out.flush().at(&p)?;
        self.out.get_ref().sync_all().at(&p)?;
        let tmp = self
            .tmp
            .take()
            .ok_or_else(|| Error::image("writer already finished"))?;
        tmp.persist(&self.dest)
            .map_err(|e| Error::io(&self.dest, e.error))?;
        fs::set_permissions(
            &self.dest,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .at(&self.dest)?;
        Ok(manifest_desc)
    }
}

fn node_header(node: &Node, et: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(et);
    h.set_mode(node.mode);
    h.set_uid(node.uid);
    h.set_gid(node.gid);
    h.set_mtime(node.mtime);
    h.set_size(size);
    h
}

/// Appends every node of `root` for which `skip` is false to a layer tar,
/// in input order (parents before children, hard-link targets before their
/// links), reading file contents from the staged layers. A hard link is
/// written as a link to the first path written with the same content, or as
/// a regular file if there is none (its target was removed or replaced). A
/// hard link whose target is skipped would carry a plaintext copy of skipped
/// (protected) content, so it is refused.
pub fn append_rootfs<W: Write>(
    tarb: &mut tar::Builder<W>,
    root: &Rootfs,
    skip: &dyn Fn(&str) -> bool,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut written = HashMap::new();
    let mut buf = Vec::new();
    for (path, node) in root.nodes_in_input_order() {
        if skip(path) {
            continue;
        }
        if let Kind::Hardlink(t) = &node.kind {
            if root.same_content(path, t) && skip(t) {
                return Err(Error::Usage(format!(
                    "/{path} is a hard link to protected /{t}: it would keep a plaintext copy; protect it too"
                )));
            }
        }
        append_one(tarb, root, path, node, &mut written, None, &mut buf)?;
        if let Some(c) = node.content {
            progress(c.size);
        }
    }
    Ok(())
}

/// Appends one node of `root` to a layer tar (with its xattrs as PAX
/// records). A regular file or hard link whose content is in `written`
/// becomes a hard link to that path; otherwise its content is written
/// (read from `data` if given, else from the staged layers, `buf` being the
/// read buffer) and recorded in `written`.
pub fn append_one<W: Write>(
    tarb: &mut tar::Builder<W>,
    root: &Rootfs,
    path: &str,
    node: &Node,
    written: &mut HashMap<Content, String>,
    data: Option<&mut dyn io::Read>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let werr = |e: io::Error| Error::image(format!("writing /{path}: {e}"));
    if !node.xattrs.is_empty() {
        let pax: Vec<(String, &[u8])> = node
            .xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        tarb.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(werr)?;
    }
    match (&node.kind, node.content) {
        (Kind::Dir, _) => {
            let mut h = node_header(node, tar::EntryType::Directory, 0);
            tarb.append_data(&mut h, format!("{path}/"), io::empty())
                .map_err(werr)?;
        }
        (Kind::File | Kind::Hardlink(_), Some(c)) => {
            if let Some(first) = written.get(&c) {
                let mut h = node_header(node, tar::EntryType::Link, 0);
                tarb.append_link(&mut h, path, first).map_err(werr)?;
            } else {
                let mut h = node_header(node, tar::EntryType::Regular, c.size);
                match data {
                    Some(d) => tarb.append_data(
                        &mut h,
                        path,
                        Exact {
                            inner: d,
                            left: c.size,
                        },
                    ),
                    None => tarb.append_data(&mut h, path, root.content_reader(c, buf)?),
                }
                .map_err(werr)?;
                written.insert(c, path.to_string());
            }
        }
        (Kind::File | Kind::Hardlink(_), None) => {
            return Err(Error::image(format!("/{path}: file without content")))
        }
        (Kind::Symlink(t), _) => {
            let mut h = node_header(node, tar::EntryType::Symlink, 0);
            tarb.append_link(&mut h, path, t).map_err(werr)?;
        }
        (Kind::Char(maj, min) | Kind::Block(maj, min), _) => {
            let et = if matches!(node.kind, Kind::Char(..)) {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = node_header(node, et, 0);
            h.set_device_major(*maj).map_err(werr)?;
            h.set_device_minor(*min).map_err(werr)?;
            tarb.append_data(&mut h, path, io::empty()).map_err(werr)?;
        }
        (Kind::Fifo, _) => {
            let mut h = node_header(node, tar::EntryType::Fifo, 0);
            tarb.append_data(&mut h, path, io::empty()).map_err(werr)?;
        }
    }
    Ok(())
}

/// Reads exactly `left` bytes: running short is an error, not a short entry.
struct Exact<'a> {
    inner: &'a mut dyn io::Read,
    left: u64,
}

impl io::Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated entry",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Appends a host directory tree (directories and regular files, sorted)
/// under `prefix` in the layer, owned by root, keeping permission bits.
pub fn append_host_tree<W: Write>(
    tarb: &mut tar::Builder<W>,
    host_dir: &Path,
    prefix: &str,
) -> Result<()> {
    fn walk<W: Write>(tarb: &mut tar::Builder<W>, dir: &Path, rel: &str) -> Result<()> {
        for n in sorted_names(dir)? {
            let name = n
                .to_str()
                .ok_or_else(|| Error::image(format!("non-UTF-8 name in {}", dir.display())))?;
            let p = dir.join(name);
            let r = format!("{rel}/{name}");
            let m = fs::symlink_metadata(&p).at(&p)?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777;
            let node = Node::dir(mode);
            let werr = |e: io::Error| Error::image(format!("writing {r}: {e}"));
            if m.is_dir() {
                let mut h = node_header(&node, tar::EntryType::Directory, 0);
                tarb.append_data(&mut h, format!("{r}/"), io::empty())
                    .map_err(werr)?;
                walk(tarb, &p, &r)?;
            } else if m.is_file() {
                let f = File::open(&p).at(&p)?;
                let mut h = node_header(&node, tar::EntryType::Regular, m.len());
                tarb.append_data(&mut h, &r, f).map_err(werr)?;
            } else if m.file_type().is_symlink() {
                let t = fs::read_link(&p).at(&p)?;
                let mut h = node_header(&node, tar::EntryType::Symlink, 0);
                tarb.append_link(&mut h, &r, t).map_err(werr)?;
            } else {
                return Err(Error::image(format!(
                    "{}: unsupported file type",
                    p.display()
                )));
            }
        }
        Ok(())
    }
    append_dir(tarb, prefix, 0o755)?;
    walk(tarb, host_dir, prefix)
}

/// The names in a host directory, sorted (so layers are reproducible).
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .at(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .at(dir)?;
    names.sort();
    Ok(names)
}

/// Appends a directory owned by root with `mode`.
pub fn append_dir<W: Write>(tarb: &mut tar::Builder<W>, path: &str, mode: u32) -> Result<()> {
    let mut h = node_header(&Node::dir(mode), tar::EntryType::Directory, 0);
    tarb.append_data(&mut h, format!("{path}/"), io::empty())
        .map_err(|e| Error::image(format!("writing /{path}: {e}")))
}

/// Appends one in-memory regular file to a layer.
pub fn append_bytes<W: Write>(
    tarb: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> Result<()> {
    let mut h = node_header(
        &Node {
            kind: Kind::File,
            ..Node::dir(mode)
        },
        tar::EntryType::Regular,
        data.len() as u64,
    );
    tarb.append_data(&mut h, path, data)
        .map_err(|e| Error::image(format!("writing {path}: {e}")))
}
