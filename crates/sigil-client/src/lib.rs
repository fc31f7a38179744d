//! Wire types of the CAS API and a TLS client for it, shared by the CLI,
//! `sigil convert` and `sigil-init`.
//!
//! The CAS is trusted by pinning the SPKI SHA-256 fingerprint of its
//! self-signed certificate ([`tls::PinnedServerVerifier`]); clients
//! authenticate with an [`Identity`] whose fingerprint the CAS uses in
//! access policies.

pub mod atomic;
pub mod attest;
pub mod audit;
pub mod client;
pub mod config;
pub mod config_id;
pub mod fingerprint;
pub mod identity;
pub mod tls;
pub mod wire;

pub use audit::AuditEntry;
pub use client::{BlockingCasClient, CasClient};
pub use fingerprint::Fingerprint;
pub use identity::Identity;
pub use wire::*;

/// Errors of the client. Messages are one line and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A fingerprint string is malformed.
    #[error("bad fingerprint: {0}")]
    BadFingerprint(String),
    /// An address is malformed.
    #[error("bad CAS address: {0}")]
    BadAddress(String),
    /// A certificate or key is unusable.
    #[error("certificate: {0}")]
    Certificate(String),
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Connecting failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The server is not the pinned CAS.
    #[error("CAS fingerprint mismatch: {0}")]
    PinMismatch(String),
    /// HTTP-level failure.
    #[error("HTTP: {0}")]
    Http(String),
    /// Local file problem.
    #[error("{0}")]
    Io(String),
    /// The session YAML does not parse.
    #[error("invalid session: {0}")]
    BadSession(String),
    /// The CAS answered with an error status.
    #[error("CAS refused ({status}): {error}{}", conflict_hint(current, given))]
    Api {
        /// HTTP status code.
        status: u16,
        /// The CAS's reason.
        error: String,
        /// Current hash (409 only).
        current: Option<String>,
        /// Predecessor given (409 only).
        given: Option<String>,
    },
}

fn conflict_hint(current: &Option<String>, given: &Option<String>) -> String {
    match (current, given) {
        (Some(c), Some(g)) => format!(" (current {c}, given {g})"),
        (Some(c), None) => format!(" (current {c}, none given)"),
        _ => String::new(),
    }
}
