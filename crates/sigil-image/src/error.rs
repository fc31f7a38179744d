//! The error type of this crate. Every variant renders as one line that names
//! what is wrong (the path, the blob, the limit), never a secret.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while reading, converting or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named host path.
    #[error("{path}: {source}")]
    Io {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input image is malformed (bad JSON, missing blob, digest mismatch...).
    #[error("invalid image: {0}")]
    Image(String),
    /// A layer is malformed or hostile (path traversal, corrupt data...).
    #[error("layer {layer}: {msg}")]
    Layer {
        /// Which layer (digest or index).
        layer: String,
        /// What is wrong.
        msg: String,
    },
    /// A size or count limit was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// The program given with `--binary` cannot be used.
    #[error("--binary {path}: {msg}")]
    Binary {
        /// The path inside the image, as given.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A path given on the command line is not usable.
    #[error("{0}")]
    Usage(String),
    /// Not supported by this build.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Error from the sealed-volume layer.
    #[error("sealing volume: {0}")]
    Seal(String),
}

impl Error {
    /// Wraps an I/O error with the host path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An invalid-image error.
    pub fn image(msg: impl Into<String>) -> Self {
        Error::Image(msg.into())
    }
}

/// Errors of the shared OCI layout reading keep their meaning: malformed
/// content and digest mismatches are image errors, limits stay limits.
impl From<sigil_oci::Error> for Error {
    fn from(e: sigil_oci::Error) -> Self {
        match e {
            sigil_oci::Error::Limit(m) => Error::Limit(m),
            sigil_oci::Error::Io { path, source } => Error::Io { path, source },
            e @ (sigil_oci::Error::Malformed(_) | sigil_oci::Error::DigestMismatch { .. }) => {
                Error::Image(e.to_string())
            }
        }
    }
}

/// Adds a host path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
