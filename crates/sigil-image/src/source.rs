//! Opening an input image: an OCI image layout (directory or tar) or a
//! `docker save` / `podman save` archive. Everything read here is outside
//! input: JSON documents are size-limited, blob names are validated digests
//! or archive member names (never host paths), and layer blobs are verified
//! against their digest while they are streamed.

use std::io::{self, Read};
use std::path::Path;

use sigil_oci::layout::{normalize_member, Layout};
use sigil_oci::spec::is_index_media_type;

use crate::digest::{Digest, HashReader};
use crate::spec::{
    parse_json, Compression, Descriptor, DockerManifestEntry, Index, Manifest, Platform, RunConfig,
};
use crate::{Error, Limits, Result};

/// The kind of input, as detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// OCI image layout directory.
    OciDir,
    /// Tar of an OCI image layout (`podman save --format oci-archive`).
    OciArchive,
    /// docker-archive (`docker save`, `podman save`).
    DockerArchive,
}

/// One layer of the input image.
#[derive(Debug, Clone)]
pub struct SourceLayer {
    /// Name for messages (digest or archive member).
    pub name: String,
    /// Where the blob is: a digest (OCI) or an archive member (docker-archive).
    blob: BlobRef,
    /// Compression, if known from the media type (else sniffed).
    pub compression: Option<Compression>,
    /// Expected digest of the compressed blob, if the format gives one.
    pub digest: Option<Digest>,
    /// Size of the compressed blob, if the format gives one.
    pub size: Option<u64>,
    /// Expected digest of the uncompressed tar (config `rootfs.diff_ids`).
    pub diff_id: Option<Digest>,
}

#[derive(Debug, Clone)]
enum BlobRef {
    Digest(Digest),
    Member(String),
}

/// An opened input image.
#[derive(Debug)]
pub struct SourceImage {
    /// What the input was.
    pub kind: SourceKind,
    store: Layout,
    /// The image config document, kept whole.
    pub config: serde_json::Value,
    /// Parsed run configuration (entrypoint, env, ...).
    pub run: RunConfig,
    /// The layers, bottom first.
    pub layers: Vec<SourceLayer>,
    /// Name the input gave the image, if any (ref.name annotation or RepoTags).
    pub name: Option<String>,
    limits: Limits,
}

impl SourceImage {
    /// Opens `path`, detecting an OCI layout directory, an OCI archive or a
    /// docker-archive. `reference` picks an image when the input holds several
    /// (matched against `org.opencontainers.image.ref.name` or `RepoTags`).
    pub fn open(path: &Path, reference: Option<&str>, limits: &Limits) -> Result<SourceImage> {
        let store = Layout::open(path, limits.max_entries)?;
        let is_dir = matches!(store, Layout::Dir(_));
        if is_dir && !store.has("index.json") {
            return Err(Error::image(format!(
                "{}: a directory but not an OCI image layout (no index.json)",
                path.display()
            )));
        }
        let kind = if store.has("index.json") {
            if is_dir {
                SourceKind::OciDir
            } else {
                SourceKind::OciArchive
            }
        } else if store.has("manifest.json") {
            SourceKind::DockerArchive
        } else {
            return Err(Error::image(format!(
                "{}: neither an OCI layout (index.json) nor a docker-archive (manifest.json)",
                path.display()
            )));
        };
        let mut img = SourceImage {
            kind,
            store,
            config: serde_json::Value::Null,
            run: RunConfig::default(),
            layers: Vec::new(),
            name: None,
            limits: limits.clone(),
        };
        match kind {
            SourceKind::DockerArchive => img.load_docker(reference)?,
            _ => img.load_oci(reference)?,
        }
        if img.layers.len() > limits.max_layers {
            return Err(Error::Limit(format!(
                "{} layers (at most {})",
                img.layers.len(),
                limits.max_layers
            )));
        }
        img.run = RunConfig::from_image_config(&img.config)?;
        Ok(img)
    }

    fn read_small(&self, member: &str) -> Result<Vec<u8>> {
        Ok(self.store.read_small(member, self.limits.max_json_bytes)?)
    }

    fn read_blob(&self, d: &Descriptor, what: &str) -> Result<Vec<u8>> {
        Ok(self.store.read_blob(d, self.limits.max_json_bytes, what)?)
    }

    fn load_oci(&mut self, reference: Option<&str>) -> Result<()> {
        let index: Index = parse_json("index.json", &self.read_small("index.json")?)?;
        let desc = pick_manifest(&index.manifests, reference)?;
        self.name = desc.ref_name().map(str::to_string);
        let mut desc = desc.clone();
        // Follow one level of nested index / manifest list to the linux/amd64 image.
        if is_index_media_type(&desc.media_type) {
            let inner: Index = parse_json("nested index", &self.read_blob(&desc, "index")?)?;
            desc = pick_manifest(&inner.manifests, None)?.clone();
        }
        let manifest: Manifest = parse_json("manifest", &self.read_blob(&desc, "manifest")?)?;
        if manifest.layers.len() > self.limits.max_layers {
            return Err(Error::Limit(format!(
                "{} layers (at most {})",
                manifest.layers.len(),
                self.limits.max_layers
            )));
        }
        let cfg_bytes = self.read_blob(&manifest.config, "config")?;
        self.config = parse_json("image config", &cfg_bytes)?;
        let diff_ids = diff_ids(&self.config)?;
        for (i, l) in manifest.layers.iter().enumerate() {
            let d = l.digest()?;
            let compression = Compression::from_media_type(&l.media_type);
            if compression.is_none() {
                return Err(Error::image(format!(
                    "layer {d}: unsupported media type {:?}",
                    l.media_type
                )));
            }
            self.layers.push(SourceLayer {
                name: d.to_string(),
                blob: BlobRef::Digest(d.clone()),
                compression,
                digest: Some(d),
                size: Some(l.size),
                diff_id: diff_ids.get(i).cloned(),
            });
        }
        Ok(())
    }

    fn load_docker(&mut self, reference: Option<&str>) -> Result<()> {
        let entries: Vec<DockerManifestEntry> =
            parse_json("manifest.json", &self.read_small("manifest.json")?)?;
        let entry = match reference {
            Some(r) => entries
                .iter()
                .find(|e| {
                    e.repo_tags
                        .as_ref()
                        .is_some_and(|t| t.iter().any(|t| t == r || t.ends_with(&format!("/{r}"))))
                })
                .ok_or_else(|| Error::image(format!("no image named {r:?} in the archive")))?,
            None => match entries.as_slice() {
                [one] => one,
                [] => return Err(Error::image("manifest.json lists no image")),
                _ => {
                    return Err(Error::image(
                        "the archive holds several images; name one with --from PATH:NAME",
                    ))
                }
            },
        };
        self.name = entry.repo_tags.as_ref().and_then(|t| t.first().cloned());
        let cfg_name = normalize_member(&entry.config);
        let cfg_bytes = self.read_small(&cfg_name)?;
        self.config = parse_json("image config", &cfg_bytes)?;
        let diff_ids = diff_ids(&self.config)?;
        if diff_ids.len() != entry.layers.len() {
            return Err(Error::image(format!(
                "config lists {} diff_ids but manifest.json {} layers",
                diff_ids.len(),
                entry.layers.len()
            )));
        }
        for (i, l) in entry.layers.iter().enumerate() {
            let member = normalize_member(l);
            self.layers.push(SourceLayer {
                name: member.clone(),
                blob: BlobRef::Member(member),
                compression: None,
                digest: None,
                size: None,
                diff_id: Some(diff_ids[i].clone()),
            });
        }
        Ok(())
    }

    /// Opens layer `i` as a stream of its uncompressed tar. The compressed
    /// and uncompressed digests (when known) are checked as the stream ends:
    /// reading to EOF returns an error on mismatch, so callers must drain it.
    pub fn open_layer(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        self.layer_reader(i, false)
    }

    /// Like [`SourceImage::open_layer`], but as a pipeline across cores:
    /// one thread reads the blob and checks its digest, one decompresses,
    /// and the caller's thread hashes the uncompressed stream (the diff_id)
    /// while it consumes it. Blocks travel in 1 MiB chunks.
    pub fn open_layer_pipelined(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        self.layer_reader(i, true)
    }

    fn layer_reader(&self, i: usize, threads: bool) -> Result<Box<dyn Read + Send>> {
        let l = self
            .layers
            .get(i)
            .ok_or_else(|| Error::image(format!("no layer {i}")))?;
        let member = match &l.blob {
            BlobRef::Digest(d) => d.blob_path(),
            BlobRef::Member(m) => m.clone(),
        };
        let (raw, stored) = self.store.open_member(&member)?;
        // The blob must be exactly the size its descriptor says (OCI).
        if let Some(size) = l.size.filter(|s| *s != stored) {
            return Err(Error::image(format!(
                "layer {}: {stored} bytes but the descriptor says {size}",
                l.name
            )));
        }
        let mut raw = io::BufReader::with_capacity(1 << 20, raw);
        let comp = match l.compression {
            Some(c) => c,
            None => {
                let head = io::BufRead::fill_buf(&mut raw)
                    .map_err(|e| Error::image(format!("layer {}: {e}", l.name)))?;
                Compression::sniff(head)
            }
        };
        // A blob checked against its descriptor digest (OCI) is verified;
        // decompressing it is deterministic, so its diff_id is not hashed
        // again (that was 1.4 GB of SHA-256 in the benchmark). Blobs without
        // a digest (docker-archive) are checked against the diff_id.
        let skip_diff_id = l.digest.is_some();
        let raw: Box<dyn Read + Send> = Box::new(VerifyingReader::new(
            raw,
            l.digest.clone(),
            u64::MAX,
            &l.name,
        ));
        let raw: Box<dyn Read + Send> = if threads && comp != Compression::None {
            Box::new(crate::flatten::threaded_reader(raw))
        } else {
            raw
        };
        let raw = io::BufReader::with_capacity(1 << 20, raw);
        let plain: Box<dyn Read + Send> = match comp {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(raw)
                    .map_err(|e| Error::image(format!("layer {}: {e}", l.name)))?,
            ),
        };
        let plain: Box<dyn Read + Send> = if threads {
            Box::new(crate::flatten::threaded_reader(plain))
        } else {
            plain
        };
        Ok(Box::new(VerifyingReader::new(
            plain,
            if skip_diff_id {
                None
            } else {
                l.diff_id.clone()
            },
            self.limits.max_layer_bytes,
            &l.name,
        )))
    }
}

/// Reader that checks a digest when the stream ends and caps the size.
struct VerifyingReader<R> {
    inner: Option<HashReader<R>>,
    expected: Option<Digest>,
    name: String,
}

impl<R: Read> VerifyingReader<R> {
    fn new(r: R, expected: Option<Digest>, limit: u64, name: &str) -> Self {
        VerifyingReader {
            inner: Some(match expected {
                Some(_) => HashReader::new(r, limit),
                None => HashReader::counting(r, limit),
            }),
            expected,
            name: name.to_string(),
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(inner) = self.inner.take() {
                if let (Some(exp), (Some(d), _)) = (&self.expected, inner.finish()) {
                    if &d != exp {
                        return Err(io::Error::other(format!(
                            "{}: digest mismatch (content is {d})",
                            self.name
                        )));
                    }
                }
            }
        }
        Ok(n)
    }
}

fn diff_ids(cfg: &serde_json::Value) -> Result<Vec<Digest>> {
    let ids = cfg
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .ok_or_else(|| Error::image("image config has no rootfs.diff_ids"))?;
    ids.iter()
        .map(|v| {
            v.as_str()
                .and_then(Digest::parse)
                .ok_or_else(|| Error::image(format!("image config: malformed diff_id {v}")))
        })
        .collect()
}

fn pick_manifest<'a>(list: &'a [Descriptor], reference: Option<&str>) -> Result<&'a Descriptor> {
    if let Some(r) = reference {
        return list
            .iter()
            .find(|d| d.has_ref_name(r))
            .ok_or_else(|| Error::image(format!("no image named {r:?} in index.json")));
    }
    match list {
        [] => Err(Error::image("index.json lists no manifest")),
        [one] => Ok(one),
        many => many
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.satisfies(&Platform::default()))
            })
            .ok_or_else(|| {
                Error::image("index.json lists several images; name one with --from PATH:NAME")
            }),
    }
}
