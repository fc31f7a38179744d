//! The documents this crate reads (manifests, indexes, `index.json`) and the
//! OCI image layout it reads and writes. All of it is outside input: sizes
//! are limited, digests are validated (`sha256:` + 64 lowercase hex) before
//! they become file names, and blob files must be regular files.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sigil_oci::layout::Layout;

pub(crate) use sigil_oci::spec::{
    Descriptor, ANN_REF_NAME, MANIFEST_MEDIA_TYPES as ACCEPT, MT_DOCKER_LIST, MT_DOCKER_MANIFEST,
    MT_INDEX as MT_OCI_INDEX, MT_MANIFEST as MT_OCI_MANIFEST,
};

use crate::error::{one_line, Error, IoContext, Result};
use crate::{Limits, Platform};

/// A parsed manifest or index: what this crate needs of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// An image manifest.
    Image {
        /// Config descriptor.
        config: Descriptor,
        /// Layers, bottom first.
        layers: Vec<Descriptor>,
    },
    /// An image index or docker manifest list.
    Index {
        /// The entries.
        manifests: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

fn check_desc(what: &str, d: &Descriptor) -> Result<()> {
    d.digest()
        .map(drop)
        .map_err(|e| Error::Layout(format!("{what}: {e}")))
}

/// Parses a manifest or index. `media_type` is the Content-Type the registry
/// (or the referring descriptor) gave, if any; the document's own
/// `mediaType` field is used otherwise. Returns the media type used.
pub fn parse_manifest(
    bytes: &[u8],
    media_type: Option<&str>,
    limits: &Limits,
) -> Result<(String, Parsed)> {
    if bytes.len() as u64 > limits.max_manifest_bytes {
        return Err(Error::Limit(format!(
            "manifest is larger than {} bytes",
            limits.max_manifest_bytes
        )));
    }
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| {
        Error::Registry(format!(
            "manifest is not valid JSON: {}",
            one_line(&e.to_string(), 200)
        ))
    })?;
    if doc.schema_version != Some(2) {
        return Err(Error::Registry(
            "manifest: unsupported schemaVersion (only 2 is supported)".into(),
        ));
    }
    // Content-Type may carry parameters or be a generic JSON type.
    let header = media_type
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_string())
        .filter(|m| ACCEPT.contains(&m.as_str()));
    let mt = match (header, doc.media_type) {
        (Some(h), _) => h,
        (None, Some(m)) => m,
        (None, None) if doc.manifests.is_some() => MT_OCI_INDEX.to_string(),
        (None, None) => MT_OCI_MANIFEST.to_string(),
    };
    match mt.as_str() {
        MT_OCI_INDEX | MT_DOCKER_LIST => {
            let manifests = doc
                .manifests
                .ok_or_else(|| Error::Registry("index: no \"manifests\" list".into()))?;
            if manifests.len() > limits.max_index_entries {
                return Err(Error::Limit(format!(
                    "index lists {} manifests (at most {})",
                    manifests.len(),
                    limits.max_index_entries
                )));
            }
            for m in &manifests {
                check_desc("index entry", m)?;
            }
            Ok((mt, Parsed::Index { manifests }))
        }
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => {
            let config = doc
                .config
                .ok_or_else(|| Error::Registry("manifest: no \"config\"".into()))?;
            let layers = doc
                .layers
                .ok_or_else(|| Error::Registry("manifest: no \"layers\"".into()))?;
            check_desc("config", &config)?;
            if config.size > limits.max_config_bytes {
                return Err(Error::Limit(format!(
                    "image config is {} bytes (at most {})",
                    config.size, limits.max_config_bytes
                )));
            }
            if layers.len() > limits.max_layers {
                return Err(Error::Limit(format!(
                    "{} layers (at most {})",
                    layers.len(),
                    limits.max_layers
                )));
            }
            for l in &layers {
                check_desc("layer", l)?;
                if l.size > limits.max_blob_bytes {
                    return Err(Error::Limit(format!(
                        "layer {} is {} bytes (at most {})",
                        l.digest, l.size, limits.max_blob_bytes
                    )));
                }
            }
            Ok((mt, Parsed::Image { config, layers }))
        }
        other => Err(Error::Registry(format!(
            "unsupported manifest media type {:?}",
            one_line(other, 120)
        ))),
    }
}

/// Picks the entry for `p` from an index. Attestation manifests
/// (platform unknown/unknown) never match.
pub(crate) fn pick_platform<'a>(list: &'a [Descriptor], p: &Platform) -> Result<&'a Descriptor> {
    let found = list
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|dp| dp.satisfies(p)));
    found.ok_or_else(|| {
        let have: Vec<String> = list
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .map(|dp| one_line(&dp.to_string(), 40))
            .take(16)
            .collect();
        Error::NotFound(format!(
            "the index has no {p} image (it has: {})",
            if have.is_empty() {
                "no platforms".to_string()
            } else {
                have.join(", ")
            }
        ))
    })
}

/// Writes `oci-layout` and `index.json` naming one manifest.
pub(crate) fn write_layout_meta(dir: &Path, manifest: &Descriptor) -> Result<()> {
    let p = dir.join("oci-layout");
    std::fs::write(&p, br#"{"imageLayoutVersion":"1.0.0"}"#).at(&p)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [manifest],
    });
    let p = dir.join("index.json");
    let bytes =
        serde_json::to_vec(&index).map_err(|e| Error::Layout(format!("index.json: {e}")))?;
    std::fs::write(&p, bytes).at(&p)
}

/// A local image to push: an OCI layout directory or an OCI archive tar.
#[derive(Debug)]
pub(crate) struct Source(Layout);

/// Most entries read from an OCI archive's table of contents.
const MAX_TAR_MEMBERS: u64 = 100_000;

impl Source {
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let src = Source(Layout::open(path, MAX_TAR_MEMBERS)?);
        if !src.0.has("index.json") {
            let docker = src.0.has("manifest.json");
            return Err(Error::Layout(format!(
                "{}: not an OCI image layout (no index.json){}",
                path.display(),
                if docker {
                    "; it looks like a docker-archive, which cannot be pushed as is (convert it to an OCI archive first)"
                } else {
                    ""
                }
            )));
        }
        Ok(src)
    }

    /// The host file holding the blob `d` names and the (offset, size) of
    /// its data.
    pub(crate) fn locate_blob(&self, d: &Descriptor) -> Result<(PathBuf, u64, u64)> {
        Ok(self.0.locate(&d.digest()?.blob_path())?)
    }

    /// Reads a blob whole (manifests, indexes), checking size and digest.
    pub(crate) fn read_blob(&self, d: &Descriptor, limit: u64, what: &str) -> Result<Vec<u8>> {
        Ok(self.0.read_blob(d, limit, what)?)
    }

    /// `index.json`, parsed.
    pub(crate) fn index(&self, limits: &Limits) -> Result<Vec<Descriptor>> {
        let bytes = self.0.read_small("index.json", limits.max_manifest_bytes)?;
        match parse_manifest(&bytes, Some(MT_OCI_INDEX), limits)? {
            (_, Parsed::Index { manifests }) => Ok(manifests),
            _ => Err(Error::Layout("index.json is not an image index".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn hostile_manifests_are_refused_with_one_line() {
        let l = Limits::default();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"{".to_vec(),
            b"[]".to_vec(),
            br#"{"schemaVersion":1}"#.to_vec(),
            br#"{"schemaVersion":2,"mediaType":"text/plain"}"#.to_vec(),
            br#"{"schemaVersion":2,"config":{"digest":"sha256:../../etc/passwd","size":1},"layers":[]}"#.to_vec(),
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":99999999}},"layers":[]}}"#).into_bytes(),
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":1}},"layers":[{{"digest":"sha512:ab","size":1}}]}}"#).into_bytes(),
            format!(r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_INDEX}","manifests":[{{"digest":"md5:x","size":1}}]}}"#).into_bytes(),
            vec![b' '; (l.max_manifest_bytes + 1) as usize],
        ];
        for c in cases {
            let e = parse_manifest(&c, None, &l).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
        }
        let many = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":1}},"layers":[{}]}}"#,
            vec![format!(r#"{{"digest":"{D}","size":1}}"#); 600].join(",")
        );
        let e = parse_manifest(many.as_bytes(), None, &l)
            .unwrap_err()
            .to_string();
        assert!(e.contains("600 layers"), "{e}");
    }

    #[test]
    fn header_media_type_wins_and_index_detected() {
        let l = Limits::default();
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MT_OCI_MANIFEST}","digest":"{D}","size":3,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let (mt, p) = parse_manifest(idx.as_bytes(), Some("application/json"), &l).unwrap();
        assert_eq!(mt, MT_OCI_INDEX);
        let Parsed::Index { manifests } = p else {
            panic!()
        };
        let arm: Platform = "linux/arm64".parse().unwrap();
        assert!(pick_platform(&manifests, &arm).is_ok());
        let e = pick_platform(&manifests, &Platform::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no linux/amd64 image (it has: linux/arm64/v8)"),
            "{e}"
        );
    }
}
