//! The audit log's hash chain, shared by the CAS (which writes it) and the
//! clients (which verify it).
//!
//! `hash_i = SHA-256(hash_{i-1} || canonical_i)` with `hash_{-1}` = 32 zero
//! bytes, where `canonical_i` is the compact JSON of the entry's fields in
//! declaration order without `hash` (see `docs/cas-store.md`).

use serde::{Deserialize, Serialize};

/// One entry of the audit log, as stored and as returned by `GET /v1/audit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 0, without gaps.
    pub index: u64,
    /// RFC 3339 UTC time of the change.
    pub time: String,
    /// Who: `sha256:…` client fingerprint, or `cas` for the CAS itself.
    pub actor: String,
    /// What: `session.create`, `session.update`, `session.delete`, `attest`, …
    pub action: String,
    /// The session concerned, if any.
    pub session: Option<String>,
    /// Session hash before the change (hex).
    pub old_hash: Option<String>,
    /// Session hash after the change (hex).
    pub new_hash: Option<String>,
    /// Free-form details (never secrets).
    pub details: serde_json::Value,
    /// Hash of the previous entry (hex; 64 zeros for the first).
    pub prev: String,
    /// Hash of this entry (hex).
    pub hash: String,
}

#[derive(Serialize)]
struct Canonical<'a> {
    index: u64,
    time: &'a str,
    actor: &'a str,
    action: &'a str,
    session: &'a Option<String>,
    old_hash: &'a Option<String>,
    new_hash: &'a Option<String>,
    details: &'a serde_json::Value,
    prev: &'a str,
}

impl AuditEntry {
    /// Computes this entry's hash from its fields and its `prev`.
    pub fn compute_hash(&self) -> [u8; 32] {
        let canonical = Canonical {
            index: self.index,
            time: &self.time,
            actor: &self.actor,
            action: &self.action,
            session: &self.session,
            old_hash: &self.old_hash,
            new_hash: &self.new_hash,
            details: &self.details,
            prev: &self.prev,
        };
        // Serializing plain strings, integers and a Value cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        let mut prev = [0u8; 32];
        // A malformed `prev` hashes as zeros; verification reports it anyway.
        let _ = hex::decode_to_slice(&self.prev, &mut prev);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&prev);
        ctx.update(&bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Fills `prev` and `hash` so the entry follows `prev_hash`.
    pub fn seal(&mut self, prev_hash: &[u8; 32]) {
        self.prev = hex::encode(prev_hash);
        self.hash = hex::encode(self.compute_hash());
    }
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {index}: {reason}")]
pub struct ChainError {
    /// Index (position in the slice given, plus `first_index`) of the first bad entry.
    pub index: u64,
    /// What is wrong there.
    pub reason: String,
}

/// Verifies a contiguous run of entries that starts at `first_index` and
/// follows `prev_hash` (zeros for the beginning of the log). Returns the hash
/// of the last entry.
pub fn verify_chain(
    entries: &[AuditEntry],
    first_index: u64,
    prev_hash: [u8; 32],
) -> Result<[u8; 32], ChainError> {
    let mut prev = prev_hash;
    for (i, e) in entries.iter().enumerate() {
        let expected_index = first_index + i as u64;
        let bad = |reason: String| ChainError {
            index: expected_index,
            reason,
        };
        if e.index != expected_index {
            return Err(bad(format!(
                "index is {} (an entry was removed or inserted)",
                e.index
            )));
        }
        if e.prev != hex::encode(prev) {
            return Err(bad("does not link to the previous entry".into()));
        }
        let h = e.compute_hash();
        if e.hash != hex::encode(h) {
            return Err(bad("content does not match its hash (edited)".into()));
        }
        prev = h;
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = [0u8; 32];
        (0..n)
            .map(|i| {
                let mut e = AuditEntry {
                    index: i,
                    time: "2026-01-01T00:00:00Z".into(),
                    actor: "cas".into(),
                    action: "session.create".into(),
                    session: Some(format!("s{i}")),
                    old_hash: None,
                    new_hash: Some("00".repeat(32)),
                    details: serde_json::json!({"k": i}),
                    prev: String::new(),
                    hash: String::new(),
                };
                e.seal(&prev);
                hex::decode_to_slice(&e.hash, &mut prev).unwrap();
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        let head = verify_chain(&c, 0, [0; 32]).unwrap();
        assert_eq!(hex::encode(head), c[4].hash);
        // A suffix verifies from its predecessor's hash.
        let mut p = [0u8; 32];
        hex::decode_to_slice(&c[1].hash, &mut p).unwrap();
        verify_chain(&c[2..], 2, p).unwrap();
    }

    #[test]
    fn edited_entry_is_detected() {
        let mut c = chain(5);
        c[2].actor = "sha256:attacker".into();
        assert_eq!(verify_chain(&c, 0, [0; 32]).unwrap_err().index, 2);
    }

    #[test]
    fn removed_entry_is_detected() {
        let mut c = chain(5);
        c.remove(3);
        assert_eq!(verify_chain(&c, 0, [0; 32]).unwrap_err().index, 3);
    }

    #[test]
    fn rehashed_edit_breaks_the_link() {
        let mut c = chain(5);
        c[1].details = serde_json::json!({"forged": true});
        let mut p = [0u8; 32];
        hex::decode_to_slice(&c[0].hash, &mut p).unwrap();
        c[1].seal(&p);
        assert_eq!(verify_chain(&c, 0, [0; 32]).unwrap_err().index, 2);
    }
}
