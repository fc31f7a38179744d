//! Errors of the CAS, each mapped to an HTTP status.

use hyper::StatusCode;

/// Everything that can go wrong in the CAS. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No client certificate (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Access policy refuses (403).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown session, service, route (404).
    #[error("{0}")]
    NotFound(String),
    /// Stale or missing predecessor, or the session exists (409).
    #[error("{message}")]
    Conflict {
        /// What happened.
        message: String,
        /// Current hash, hex.
        current: Option<String>,
        /// Hash the request carried, hex.
        given: Option<String>,
    },
    /// Body too large (413).
    #[error("{0}")]
    TooLarge(String),
    /// Rate limit (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// Not built (501).
    #[error("{0}")]
    NotImplemented(String),
    /// Store failure (500).
    #[error("store: {0}")]
    Store(String),
    /// Stored data failed an integrity check (500).
    #[error("integrity: {0}")]
    Integrity(String),
    /// Bad configuration at start.
    #[error("configuration: {0}")]
    Config(String),
    /// Anything else (500).
    #[error("internal: {0}")]
    Internal(String),
}

impl CasError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            CasError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CasError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            CasError::Forbidden(_) => StatusCode::FORBIDDEN,
            CasError::NotFound(_) => StatusCode::NOT_FOUND,
            CasError::Conflict { .. } => StatusCode::CONFLICT,
            CasError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            CasError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            CasError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            CasError::Store(_)
            | CasError::Integrity(_)
            | CasError::Config(_)
            | CasError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<redb::Error> for CasError {
    fn from(e: redb::Error) -> Self {
        CasError::Store(e.to_string())
    }
}

macro_rules! redb_err {
    ($($t:ty),*) => {$(
        impl From<$t> for CasError {
            fn from(e: $t) -> Self {
                CasError::Store(e.to_string())
            }
        }
    )*};
}
redb_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
