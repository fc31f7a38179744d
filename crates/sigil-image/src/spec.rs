//! The OCI image-spec and docker-archive JSON documents this crate reads and
//! writes (the OCI ones are `sigil-oci`'s, re-exported here). Unknown fields
//! are ignored on input; the image config is kept as a JSON value so that
//! everything we don't change (labels, exposed ports, user, history, ...)
//! survives the conversion untouched.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::{Error, Result};

pub use sigil_oci::spec::{
    Descriptor, Index, Manifest, Platform, ANN_REF_NAME, MT_CONFIG, MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_LAYER_TAR, MT_DOCKER_LAYER_ZSTD, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_INDEX,
    MT_LAYER_GZIP, MT_LAYER_TAR, MT_LAYER_ZSTD, MT_MANIFEST,
};

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
            MT_LAYER_ZSTD | MT_DOCKER_LAYER_ZSTD => Some(Compression::Zstd),
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
