//! The OCI image-spec documents Sigil reads and writes, and their media
//! types. Unknown fields are ignored on input.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{one_line, Error, Result};

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
/// Docker schema 2 manifest (accepted like an OCI manifest).
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (accepted like an index).
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker gzip layer.
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer.
pub const MT_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker zstd layer.
pub const MT_DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// The manifest and index media types Sigil understands (a registry
/// `Accept` list).
pub const MANIFEST_MEDIA_TYPES: &[&str] =
    &[MT_MANIFEST, MT_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST];
/// The annotation that names an image in an index.
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// True for an index or docker manifest list media type.
pub fn is_index_media_type(mt: &str) -> bool {
    mt == MT_INDEX || mt == MT_DOCKER_LIST
}

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Descriptor {
    /// Media type of the referenced blob.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// `sha256:<hex>` (validated by [`Descriptor::digest`] before use).
    pub digest: String,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor with no platform and no annotations.
    pub fn new(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The validated digest; a malformed or non-sha256 one is refused with
    /// a one-line, length-bounded message.
    pub fn digest(&self) -> Result<Digest> {
        Digest::parse_checked(&self.digest)
    }

    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(ANN_REF_NAME).map(String::as_str)
    }

    /// Whether the ref.name annotation names `name`: the whole name
    /// (`localhost/app:1`) or its tag (`1`), as podman and skopeo write it.
    pub fn has_ref_name(&self, name: &str) -> bool {
        self.ref_name()
            .is_some_and(|n| n == name || n.ends_with(&format!(":{name}")))
    }
}

/// The platform of an index entry, also the platform asked for on pull
/// (written `linux/amd64` or `linux/arm64/v8`; the default is linux/amd64).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8`, `v7`, ... when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl Platform {
    /// Whether an index entry with platform `self` is what `want` asks
    /// for: same OS and architecture, and the variant if `want` names one.
    pub fn satisfies(&self, want: &Platform) -> bool {
        self.os == want.os
            && self.architecture == want.architecture
            && match &want.variant {
                Some(v) => self.variant.as_deref() == Some(v.as_str()),
                None => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Platform> {
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 32
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(Error::Malformed(format!(
                "invalid platform {:?}: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64",
                one_line(s, 64)
            )));
        }
        Ok(Platform {
            os: parts[0].into(),
            architecture: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

/// `index.json` of an OCI layout, or an image index blob.
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

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn descriptor_round_trip_keeps_field_order() {
        let mut d = Descriptor::new(MT_MANIFEST, &Digest::parse(D).unwrap(), 3);
        d.platform = Some("linux/arm64/v8".parse().unwrap());
        d.annotations
            .insert(ANN_REF_NAME.into(), "localhost/app:1".into());
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(
            j,
            format!(
                r#"{{"mediaType":"{MT_MANIFEST}","digest":"{D}","size":3,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}},"annotations":{{"{ANN_REF_NAME}":"localhost/app:1"}}}}"#
            )
        );
        assert_eq!(serde_json::from_str::<Descriptor>(&j).unwrap(), d);
        // Layer descriptors carry neither platform nor annotations.
        let l = Descriptor::new(MT_LAYER_TAR, &Digest::parse(D).unwrap(), 1);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            format!(r#"{{"mediaType":"{MT_LAYER_TAR}","digest":"{D}","size":1}}"#)
        );
    }

    #[test]
    fn ref_names() {
        let mut d = Descriptor::new(MT_MANIFEST, &Digest::parse(D).unwrap(), 3);
        assert!(!d.has_ref_name("1"));
        d.annotations
            .insert(ANN_REF_NAME.into(), "localhost/app:1".into());
        assert!(d.has_ref_name("1"));
        assert!(d.has_ref_name("localhost/app:1"));
        assert!(!d.has_ref_name("v1"));
        assert!(!d.has_ref_name("app"));
    }

    #[test]
    fn malformed_digest_is_refused_briefly() {
        let mut d = Descriptor::new(MT_MANIFEST, &Digest::parse(D).unwrap(), 3);
        d.digest = format!("md5:{}", "a\n".repeat(100_000));
        let e = d.digest().unwrap_err().to_string();
        assert!(e.len() < 200 && !e.contains('\n'), "{e}");
    }

    #[test]
    fn platforms() {
        assert_eq!(Platform::default().to_string(), "linux/amd64");
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.satisfies(&"linux/arm64".parse().unwrap()));
        assert!(!p.satisfies(&"linux/arm64/v7".parse().unwrap()));
        assert!(!p.satisfies(&Platform::default()));
        for bad in ["linux", "linux/", "a/b/c/d", "Linux/amd64", "linux/amd64\n"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
