//! The error type. Every message is one line; text taken from the input is
//! cut short (see [`one_line`]) so a hostile document cannot make it huge.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with an OCI layout, archive or document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed or missing content (bad digest, missing blob, not a tar...).
    #[error("{0}")]
    Malformed(String),
    /// A size or count limit, or a size that differs from the descriptor's.
    #[error("{0}")]
    Limit(String),
    /// Content whose digest is not the one its descriptor names.
    #[error("{what}: digest mismatch (expected {expected}, got {actual})")]
    DigestMismatch {
        /// Which blob (`manifest`, `config`, ...).
        what: String,
        /// The descriptor's digest.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// A host file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The host path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Adds the host path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// At most `max` characters of `s`, on one line (control characters become
/// spaces, `...` marks a cut): for outside text that ends up in messages.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push_str("...");
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_cuts_and_flattens() {
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line(&"x".repeat(100), 5), "xxxxx...");
        assert_eq!(one_line(" t ", 10), "t");
    }
}
