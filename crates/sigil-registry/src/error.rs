//! Errors. Every message is one line and never contains a credential: the
//! types that hold secrets ([`crate::Auth`]) are never formatted into one, and
//! registry response bodies are cut short and stripped of control characters.

use std::path::{Path, PathBuf};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong pulling or pushing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    Reference {
        /// The text given.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A credentials file is unreadable, malformed or asks for something unsupported.
    #[error("{0}")]
    Credentials(String),
    /// The registry refused the credentials (or asked for some and got none).
    #[error("registry {registry}: authentication failed (401 Unauthorized) {who}")]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// "as user NAME" or "without credentials".
        who: String,
    },
    /// The registry does not have the manifest or blob.
    #[error("{0}")]
    NotFound(String),
    /// Content whose digest is not the one it was asked for.
    #[error("{what}: digest mismatch (expected {expected}, got {actual})")]
    DigestMismatch {
        /// Which manifest or blob.
        what: String,
        /// The digest that was asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A size limit or a size mismatch.
    #[error("{0}")]
    Limit(String),
    /// Another error from the registry or the connection to it.
    #[error("{0}")]
    Registry(String),
    /// The local OCI layout or archive is not usable.
    #[error("{0}")]
    Layout(String),
    /// Something in the options (CA file, platform, destination) is wrong.
    #[error("{0}")]
    Usage(String),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Adds the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// At most `max` characters of `s`, on one line: registry bodies are outside
/// input and end up in messages.
pub(crate) use sigil_oci::error::one_line;

/// Errors of the shared OCI layout reading (`sigil-oci`): all of them are
/// about the local layout or archive being pushed.
impl From<sigil_oci::Error> for Error {
    fn from(e: sigil_oci::Error) -> Error {
        match e {
            sigil_oci::Error::Malformed(m) => Error::Layout(m),
            sigil_oci::Error::Limit(m) => Error::Limit(m),
            sigil_oci::Error::DigestMismatch {
                what,
                expected,
                actual,
            } => Error::DigestMismatch {
                what: format!("local {what}"),
                expected,
                actual,
            },
            sigil_oci::Error::Io { path, source } => Error::Io { path, source },
        }
    }
}

/// A chain of error sources on one line (reqwest hides the useful part, e.g.
/// "certificate verify failed", in a source).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    one_line(&s, 600)
}
