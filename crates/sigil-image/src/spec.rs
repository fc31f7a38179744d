//! The OCI image-spec and docker-archive JSON documents this crate reads and
//! writes. Unknown fields are ignored on input; the image config is kept as a
//! JSON value so that everything we don't change (labels, exposed ports, user,
//! history, ...) survives the conversion untouched.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::{Error, Result};

/// OCI image index media type.
pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer.
pub const MT_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Gzip OCI layer.
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Zstd OCI layer.
pub const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest (accepted on input inside OCI layouts).
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (accepted like an index).
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker gzip layer.
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer.
pub const MT_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// The annotation that names an image in an index.
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Descriptor {
    /// Media type of the referenced blob.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// The validated digest; a malformed one is an image error.
    pub fn digest(&self) -> Result<Digest> {
        Digest::parse(&self.digest)
            .ok_or_else(|| Error::image(format!("malformed digest {:?}", self.digest)))
    }
}

/// Platform of a manifest in an index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Platform {
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// OS (`linux`).
    pub os: String,
}

/// `index.json` of an OCI layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// Media type (optional in the spec).
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// Media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerManifestEntry {
    /// Path of the config JSON inside the archive.
    #[serde(rename = "Config")]
    pub config: String,
    /// Image names.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars inside the archive, bottom first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// From a layer media type; `None` for unknown (e.g. encrypted) media types.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        match mt {
            MT_LAYER_TAR | MT_DOCKER_LAYER_TAR => Some(Compression::None),
            MT_LAYER_GZIP | MT_DOCKER_LAYER_GZIP => Some(Compression::Gzip),
            MT_LAYER_ZSTD | "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// Sniffs the compression from the first bytes of a blob (docker-archive
    /// layers have no media type).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI media type of a layer with this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => MT_LAYER_TAR,
            Compression::Gzip => MT_LAYER_GZIP,
            Compression::Zstd => MT_LAYER_ZSTD,
        }
    }
}

/// Parses a JSON document that came from an image, with a clear error naming it.
pub fn parse_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::image(format!("{what}: {e}")))
}

/// The parts of an image config (`config` object) that conversion reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` as `K=V` strings.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`.
    pub user: String,
    /// `ExposedPorts` keys (`8080/tcp`).
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

impl RunConfig {
    /// Reads the run configuration out of an image config document; absent
    /// fields are empty. Wrong types are an error rather than silently empty.
    pub fn from_image_config(cfg: &serde_json::Value) -> Result<RunConfig> {
        let c = match cfg.get("config") {
            None | Some(serde_json::Value::Null) => return Ok(RunConfig::default()),
            Some(c) => c,
        };
        let strings = |k: &str| -> Result<Vec<String>> {
            match c.get(k) {
                None | Some(serde_json::Value::Null) => Ok(Vec::new()),
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| Error::image(format!("image config {k}: {e}"))),
            }
        };
        let string = |k: &str| -> Result<String> {
            match c.get(k) {
                None | Some(serde_json::Value::Null) => Ok(String::new()),
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| Error::image(format!("image config {k}: {e}"))),
            }
        };
        let exposed_ports = match c.get("ExposedPorts") {
            Some(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(_) => return Err(Error::image("image config ExposedPorts: not an object")),
        };
        let labels = match c.get("Labels") {
            None | Some(serde_json::Value::Null) => BTreeMap::new(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| Error::image(format!("image config Labels: {e}")))?,
        };
        Ok(RunConfig {
            entrypoint: strings("Entrypoint")?,
            cmd: strings("Cmd")?,
            env: strings("Env")?,
            working_dir: string("WorkingDir")?,
            user: string("User")?,
            exposed_ports,
            labels,
        })
    }
}
