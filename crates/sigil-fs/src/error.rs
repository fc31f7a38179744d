//! Errors of sealing, opening and verifying volumes.
//!
//! Every variant names the place that failed (the path inside the volume,
//! the sealed file on disk, the chunk index) and none carries key material:
//! keys never reach this module.

use std::path::PathBuf;

use crate::VolumeTag;

/// Everything that can go wrong with a sealed volume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// An I/O operation on `path` failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A volume key could not be parsed (the input is never echoed).
    #[error("invalid volume key: {0}")]
    InvalidKey(&'static str),
    /// A volume tag could not be parsed.
    #[error("invalid volume tag: {0}")]
    InvalidTag(&'static str),
    /// Seal options out of bounds.
    #[error("invalid seal options: {0}")]
    InvalidOptions(String),
    /// A region rule has an unusable path.
    #[error("invalid region path {path:?}: {reason}")]
    InvalidRegion {
        /// The rule's path, as given.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The source tree contains something that cannot be sealed.
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The source path.
        path: PathBuf,
        /// Why it cannot be sealed.
        reason: String,
    },
    /// The destination of `seal` or `open` exists and is not an empty directory.
    #[error("destination {} exists and is not an empty directory", path.display())]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// The manifest's digest is not the expected volume tag: a different,
    /// tampered or older (rolled back) volume.
    #[error("volume tag mismatch for {}: found {actual}, expected {expected} (different, tampered or rolled-back volume)", manifest.display())]
    TagMismatch {
        /// The manifest file.
        manifest: PathBuf,
        /// The tag the caller expected.
        expected: VolumeTag,
        /// The digest of the manifest on disk.
        actual: VolumeTag,
    },
    /// The manifest failed authentication with the given key.
    #[error("manifest {}: authentication failed (wrong key or tampered manifest)", manifest.display())]
    ManifestAuth {
        /// The manifest file.
        manifest: PathBuf,
    },
    /// The manifest is malformed or violates a limit.
    #[error("manifest {}: {reason}", manifest.display())]
    ManifestFormat {
        /// The manifest file.
        manifest: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A sealed file has a bad header or length.
    #[error("{} (sealed file {}): {reason}", path.display(), blob.display())]
    FileFormat {
        /// The path inside the volume.
        path: PathBuf,
        /// The sealed file on disk.
        blob: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A chunk of a sealed file failed authentication.
    #[error("{} (sealed file {}): chunk {chunk} failed authentication (tampered, swapped, reordered or truncated)", path.display(), blob.display())]
    ChunkAuth {
        /// The path inside the volume.
        path: PathBuf,
        /// The sealed file on disk.
        blob: PathBuf,
        /// Index of the failing chunk (0-based).
        chunk: u64,
    },
    /// All chunks verified but the digest of the sealed file differs from
    /// the manifest's.
    #[error("{} (sealed file {}): digest does not match the manifest", path.display(), blob.display())]
    DigestMismatch {
        /// The path inside the volume.
        path: PathBuf,
        /// The sealed file on disk.
        blob: PathBuf,
    },
    /// No entry with this path in the volume.
    #[error("{}: no such entry in the volume", path.display())]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// The entry is not a regular file (or a hard link to one).
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path asked for.
        path: PathBuf,
    },
    /// A path inside the volume is not acceptable.
    #[error("{}: {reason}", path.display())]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The system random generator or a key derivation failed.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}

impl FsError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FsError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
