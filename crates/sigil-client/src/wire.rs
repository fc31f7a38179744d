//! JSON bodies of the CAS management API (`docs/cas-api.md`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::audit::AuditEntry;

/// Error body of every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One line saying what is wrong (and, where useful, what to do).
    pub error: String,
    /// For 409 on update: the session's current hash (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// For 409 on update: the predecessor the request carried (hex), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<String>,
}

/// Answer to create and update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionWritten {
    /// Session name.
    pub name: String,
    /// The session's new hash (hex).
    pub hash: String,
    /// The hash it replaced (update only).
    pub predecessor: Option<String>,
}

/// Answer to `GET /v1/sessions/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Session name.
    pub name: String,
    /// Current hash (hex).
    pub hash: String,
    /// Fingerprint of the identity that created it (`sha256:…`).
    pub creator: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last update.
    pub updated_at: String,
    /// The session YAML with explicit secret values redacted.
    pub yaml: String,
}

/// One row of `GET /v1/sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// Session name.
    pub name: String,
    /// Current hash (hex).
    pub hash: String,
}

/// Answer to `GET /v1/sessions`: the sessions the caller may read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionList {
    /// Sessions sorted by name.
    pub sessions: Vec<SessionSummary>,
}

/// Answer to `GET /v1/audit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Entries from `from`, in order.
    pub entries: Vec<AuditEntry>,
    /// Total number of entries in the log.
    pub total: u64,
    /// Hash of the previous entry of the first one returned (hex), so a page
    /// can be verified on its own.
    pub prev: String,
}

/// Answer to `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The CAS fingerprint.
    pub fingerprint: String,
}

/// What the CAS writes to `DATA_DIR/cas.json` and prints at start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CasInfo {
    /// Bound address, `IP:PORT`.
    pub listen: String,
    /// SPKI SHA-256 fingerprint of the CAS certificate (`sha256:…`).
    pub fingerprint: String,
}

/// A service of a session with all secret placeholders substituted: what a
/// launcher needs to start it. Secret-bearing fields are redacted by `Debug`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedService {
    /// Session name.
    pub session: String,
    /// Session hash this was resolved from (hex).
    pub session_hash: String,
    /// Service name.
    pub service: String,
    /// argv.
    pub command: Vec<String>,
    /// Environment.
    pub environment: BTreeMap<String, String>,
    /// Working directory.
    pub pwd: Option<String>,
    /// Files to inject into the container before the service starts.
    pub injection_files: Vec<ResolvedFile>,
    /// Encrypted volumes of the service's image.
    pub volumes: Vec<ResolvedVolume>,
}

impl fmt::Debug for ResolvedService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedService")
            .field("session", &self.session)
            .field("session_hash", &self.session_hash)
            .field("service", &self.service)
            .field(
                "command",
                &format_args!("<{} args redacted>", self.command.len()),
            )
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .field("pwd", &self.pwd)
            .field("injection_files", &self.injection_files)
            .field("volumes", &self.volumes)
            .finish()
    }
}

impl Drop for ResolvedService {
    fn drop(&mut self) {
        self.command.zeroize();
        for v in self.environment.values_mut() {
            v.zeroize();
        }
    }
}

/// A file to inject, content base64 on the wire.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedFile {
    /// Absolute path inside the container.
    pub path: String,
    /// Content after substitution.
    #[serde(with = "b64")]
    pub content: Vec<u8>,
    /// Unix mode bits.
    pub mode: u32,
}

impl fmt::Debug for ResolvedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedFile")
            .field("path", &self.path)
            .field(
                "content",
                &format_args!("<{} bytes redacted>", self.content.len()),
            )
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

impl Drop for ResolvedFile {
    fn drop(&mut self) {
        self.content.zeroize();
    }
}

/// An encrypted volume and its key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedVolume {
    /// Volume name.
    pub name: String,
    /// Mount path inside the container.
    pub path: String,
    /// Volume key, hex (secret).
    pub key: Option<String>,
    /// Expected root tag, hex.
    pub tag: Option<String>,
}

impl fmt::Debug for ResolvedVolume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedVolume")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("tag", &self.tag)
            .finish()
    }
}

impl Drop for ResolvedVolume {
    fn drop(&mut self) {
        if let Some(k) = self.key.as_mut() {
            k.zeroize();
        }
    }
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_service_debug_redacts_and_json_round_trips() {
        let r = ResolvedService {
            session: "s".into(),
            session_hash: "00".repeat(32),
            service: "app".into(),
            command: vec!["run".into(), "--password=hunter2".into()],
            environment: [("DB_PASS".to_string(), "hunter2".to_string())].into(),
            pwd: None,
            injection_files: vec![ResolvedFile {
                path: "/etc/x".into(),
                content: b"hunter2".to_vec(),
                mode: 0o600,
            }],
            volumes: vec![ResolvedVolume {
                name: "v".into(),
                path: "/data".into(),
                key: Some("hunter2".into()),
                tag: None,
            }],
        };
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("DB_PASS"));
        let json = serde_json::to_string(&r).unwrap();
        let back: ResolvedService = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
