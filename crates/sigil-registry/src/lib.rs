//! Pulling images from and pushing images to OCI distribution registries,
//! to and from OCI image layouts, for `sigil image pull|push` and
//! `sigil convert --from docker://REF` / `--push REF`.
//!
//! - [`pull`]: resolves a reference (an image index or docker manifest list
//!   is resolved to one platform, linux/amd64 unless told otherwise), fetches
//!   the manifest, the config and the layers, verifies every blob's digest
//!   and size while streaming it to disk, and writes an OCI image layout
//!   directory (`oci-layout`, `index.json`, `blobs/sha256/...`) that
//!   `sigil_image::source::SourceImage::open` reads. Nothing is left behind
//!   on failure: the layout is written to a temporary sibling directory and
//!   renamed into place at the end.
//! - [`push`]: uploads the blobs of an OCI layout directory or OCI archive
//!   (skipping the ones the registry already has) and then the manifest (and,
//!   for a multi-platform layout, every platform manifest and the index).
//!
//! The registry protocol is `oci-client` on reqwest with rustls and the ring
//! provider (installed here as the process default if none is). Manifests
//! are fetched by this crate with a size limit enforced while reading, so a
//! hostile registry cannot make us hold more than [`Limits::max_manifest_bytes`].
//!
//! Credentials: [`AuthFiles::from_env`] and [`Auth`]; see `docs/registry.md`.

pub mod auth;
mod client;
pub mod error;
mod layout;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use auth::{parse_auth_config, Auth, AuthFiles};
pub use client::{pull_async, push_async};
pub use error::{Error, Result};
pub use layout::parse_manifest;

/// An image reference as the registry client understands it.
pub use oci_client::Reference;

/// Size and count limits on what a registry sends.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest or index accepted (the registry default is 4 MiB too).
    pub max_manifest_bytes: u64,
    /// Largest image config accepted.
    pub max_config_bytes: u64,
    /// Most layers in one image.
    pub max_layers: usize,
    /// Largest single layer blob.
    pub max_blob_bytes: u64,
    /// Most manifests in an index.
    pub max_index_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_config_bytes: 4 << 20,
            max_layers: 512,
            max_blob_bytes: 64 << 30,
            max_index_entries: 1024,
        }
    }
}

/// An OS/architecture(/variant) pair, written `linux/amd64` or
/// `linux/arm64/v8` (the platform of an index entry, and the one asked for).
pub use sigil_oci::spec::Platform;

/// How to talk to registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Which image of an index to pull (default linux/amd64).
    pub platform: Platform,
    /// Registries (`host[:port]`, exactly as in the reference) spoken to over
    /// plain HTTP. Only these; every other registry is HTTPS.
    pub insecure_registries: Vec<String>,
    /// PEM file with extra CA certificates trusted for registries (in
    /// addition to the system roots).
    pub ca_file: Option<PathBuf>,
    /// Size limits.
    pub limits: Limits,
}

/// What [`pull`] fetched.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pulled, normalized (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// Digest of the image manifest written to the layout.
    pub manifest_digest: String,
    /// Digest of the index / manifest list the manifest was chosen from, if any.
    pub index_digest: Option<String>,
    /// Media type of the manifest.
    pub media_type: String,
    /// Number of layers.
    pub layers: usize,
    /// Bytes of config and layer blobs downloaded.
    pub bytes: u64,
    /// The layout directory written.
    pub layout: PathBuf,
}

/// What [`push`] uploaded.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference pushed to, normalized.
    pub reference: String,
    /// Digest of the manifest (or index) the tag now points at.
    pub digest: String,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// Parses an image reference (`[docker://]host[:port]/name[:tag][@sha256:...]`,
/// Docker Hub short names allowed). The error is one line.
pub fn parse_reference(s: &str) -> Result<Reference> {
    let t = s.strip_prefix("docker://").unwrap_or(s);
    let bad = |reason: &str| Error::Reference {
        reference: error::one_line(s, 256),
        reason: reason.to_string(),
    };
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.len() > 1024 {
        return Err(bad("longer than 1024 bytes"));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains white space or control characters"));
    }
    let r = Reference::from_str(t).map_err(|e| bad(&e.to_string()))?;
    if r.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("repository name must be lowercase"));
    }
    Ok(r)
}

/// The registry host of a reference (`docker.io` for Docker Hub names), as
/// used to look up credentials.
pub fn registry_of(r: &Reference) -> &str {
    r.registry()
}

/// Blocking [`pull_async`]: pulls `reference` into a new OCI layout at `dest`
/// (which must not exist, or be an empty directory). Must not be called from
/// inside a tokio runtime.
pub fn pull(reference: &str, dest: &Path, auth: &Auth, opts: &Options) -> Result<Pulled> {
    runtime()?.block_on(pull_async(reference, dest, auth, opts))
}

/// Blocking [`push_async`]: pushes the image in `src` (an OCI layout
/// directory or an OCI archive tar) to `reference`. Must not be called from
/// inside a tokio runtime.
pub fn push(src: &Path, reference: &str, auth: &Auth, opts: &Options) -> Result<Pushed> {
    runtime()?.block_on(push_async(src, reference, auth, opts))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Registry(format!("cannot start the I/O runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = parse_reference("docker://127.0.0.1:5000/a/b:t1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("t1"));
        let r = parse_reference("busybox").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/busybox");
        for bad in ["", "UPPER/case", "a b", "x:y:z:w", "a\nb", "host/na me:tag"] {
            let e = parse_reference(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid image reference"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
