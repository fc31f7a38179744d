//! The store: sessions, their sealed secrets, the audit log and a few meta
//! values, behind the small synchronous [`SessionStore`] trait. Two
//! backends: [`RedbStore`] (one embedded file, the default) and, with the
//! `postgres` cargo feature, [`PostgresStore`] (one PostgreSQL database
//! that several CAS replicas share). Layout and transactions:
//! `docs/cas-store.md`.
//!
//! Every write goes through [`SessionStore::commit`] or
//! [`SessionStore::append_audit`]: one transaction that also appends the
//! audit entry recording it and updates the MAC'd audit head, committed
//! durably before it returns. Both backends store the same bytes (record
//! JSON, sealed secrets, entry JSON, head JSON), so a backup of either is
//! the same redb file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sigil_client::audit::{verify_chain, AuditEntry};
use zeroize::Zeroizing;

use crate::seal::MasterKey;
use crate::CasError;

mod migrate;
#[cfg(feature = "postgres")]
mod postgres;
mod redb;

pub(crate) use self::migrate::open_verified;
pub use self::migrate::{restore_postgres, verify_postgres, RestoreReport};
#[cfg(feature = "postgres")]
pub use self::postgres::PostgresStore;
pub use self::redb::RedbStore;

/// Meta key of the MAC'd audit head.
pub(crate) const AUDIT_HEAD: &str = "audit_head";
/// Meta key of the store format version.
pub(crate) const FORMAT: &str = "format";
/// The store format (the meta value under [`FORMAT`]), the same for every backend.
pub(crate) const FORMAT_VERSION: &[u8] = b"sigil-cas-store-v1";

/// Which backend the CAS stores its data in.
#[derive(Clone, Debug, Default)]
pub enum StoreConfig {
    /// The embedded redb file `DATA_DIR/store.redb` (default).
    #[default]
    Redb,
    /// A PostgreSQL database shared by every replica (`postgres` feature).
    Postgres(PostgresOptions),
}

/// How to reach the PostgreSQL database. The URL is a secret (it may hold
/// the password): `Debug` shows it with the password replaced.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=verify-full&...`
    /// (`sslmode`: `disable`, `require`, `verify-ca`, `verify-full`; default
    /// `verify-full`; see `docs/cas-store.md`).
    pub url: Zeroizing<String>,
    /// PEM file of the CA certificate(s) the server's certificate must chain
    /// to; without it, the Mozilla roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate (chain) to authenticate with to the server (pg_hba
    /// `cert`), with [`Self::client_key`].
    pub client_cert: Option<PathBuf>,
    /// PEM private key of [`Self::client_cert`]: mode 0600 and owned by
    /// this user, or 0640 and owned by root (as libpq requires). Never
    /// read into a message.
    pub client_key: Option<PathBuf>,
    /// Most connections each CAS process opens.
    pub pool_size: usize,
}

impl PostgresOptions {
    /// Options for a URL, with the default pool size (8).
    pub fn new(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: Zeroizing::new(url.into()),
            ca_file: None,
            client_cert: None,
            client_key: None,
            pool_size: 8,
        }
    }

    /// The URL with its password (in the authority or a `password=`
    /// parameter) replaced by `<redacted>`: for messages and logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &self.redacted_url())
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Replaces the password of a `postgres://` URL (authority and query).
pub(crate) fn redact_url(url: &str) -> String {
    const R: &str = "<redacted>";
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        // Not a URL: say nothing about it rather than risk printing a secret.
        None => return R.to_string(),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{R}@{hosts}"),
            None => format!("{userinfo}@{hosts}"),
        },
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={R}"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

/// A stored session. `policy`, `hash` and `creator` are kept in clear (they
/// are needed for access checks without decrypting) and protected by `mac`;
/// the document itself is sealed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Session name.
    pub name: String,
    /// Session hash, hex.
    pub hash: String,
    /// Creator fingerprint, hex.
    pub creator: String,
    /// Access policy principals (`CREATOR`, `ANY`, `NONE`, hex).
    pub policy: StoredPolicy,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Session YAML sealed under the master key (context `session`, name), base64.
    pub sealed_yaml: String,
    /// HMAC of the record without this field (context `record`, name), hex.
    pub mac: String,
}

/// The access policy as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct StoredPolicy {
    /// Readers.
    pub read: Vec<String>,
    /// Updaters.
    pub update: Vec<String>,
    /// May create sessions in the namespace.
    pub create_sessions: Vec<String>,
}

impl SessionRecord {
    fn mac_input(&self) -> Vec<u8> {
        let mut r = self.clone();
        r.mac = String::new();
        serde_json::to_vec(&r).unwrap_or_default()
    }

    /// Computes and sets `mac`.
    pub fn seal_mac(&mut self, key: &MasterKey) {
        self.mac = hex::encode(key.mac(&[b"record", self.name.as_bytes()], &self.mac_input()));
    }

    /// Checks `mac`.
    pub fn check_mac(&self, key: &MasterKey) -> Result<(), CasError> {
        let tag = hex::decode(&self.mac).unwrap_or_default();
        if key.verify_mac(&[b"record", self.name.as_bytes()], &self.mac_input(), &tag) {
            Ok(())
        } else {
            Err(CasError::Integrity(format!(
                "the stored record of session `{}` fails its integrity check",
                self.name
            )))
        }
    }
}

/// The fields of an audit entry that the caller provides; the store adds
/// index, prev and hash.
#[derive(Clone, Debug)]
pub struct AuditDraft {
    /// RFC 3339.
    pub time: String,
    /// `sha256:…` or `cas`.
    pub actor: String,
    /// e.g. `session.update`.
    pub action: String,
    /// Session concerned.
    pub session: Option<String>,
    /// Old hash, hex.
    pub old_hash: Option<String>,
    /// New hash, hex.
    pub new_hash: Option<String>,
    /// Details (never secrets).
    pub details: serde_json::Value,
}

/// What the change expects the session to be before it.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Must not exist.
    Absent,
    /// Must exist with this hash (hex).
    Hash(String),
}

/// One atomic change to a session.
#[derive(Debug)]
pub struct Change {
    /// Session name.
    pub name: String,
    /// Compare-and-swap condition.
    pub expect: Expect,
    /// New record, or `None` to delete.
    pub record: Option<SessionRecord>,
    /// The complete set of the session's sealed secrets after the change.
    pub secrets: Vec<(String, Vec<u8>)>,
    /// The audit entry recording the change.
    pub audit: AuditDraft,
}

/// Why a commit did not happen.
#[derive(Debug)]
pub enum CommitError {
    /// The condition failed; `current` is the hash found (hex), if any.
    Conflict {
        /// Current hash.
        current: Option<String>,
    },
    /// The store failed.
    Store(CasError),
}

impl<E: Into<CasError>> From<E> for CommitError {
    fn from(e: E) -> Self {
        CommitError::Store(e.into())
    }
}

/// The audit head as stored: last index and hash, MAC'd with the master key
/// so that a store-file attacker cannot rewrite or truncate the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditHead {
    /// Number of entries.
    pub count: u64,
    /// Hash of the last entry, hex (64 zeros if none).
    pub hash: String,
    /// HMAC (context `audit-head`) over `count || hash`, hex.
    pub mac: String,
}

impl AuditHead {
    fn mac_input(count: u64, hash: &str) -> Vec<u8> {
        let mut v = count.to_be_bytes().to_vec();
        v.extend_from_slice(hash.as_bytes());
        v
    }

    pub(crate) fn new(key: &MasterKey, count: u64, hash: String) -> AuditHead {
        let mac = hex::encode(key.mac(&[b"audit-head"], &Self::mac_input(count, &hash)));
        AuditHead { count, hash, mac }
    }

    /// Checks the MAC.
    pub fn check(&self, key: &MasterKey) -> bool {
        let tag = hex::decode(&self.mac).unwrap_or_default();
        key.verify_mac(
            &[b"audit-head"],
            &Self::mac_input(self.count, &self.hash),
            &tag,
        )
    }
}

/// Result of verifying the audit log of a store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// Hash of the last entry, hex.
    pub head: String,
    /// Whether the head MAC was checked (needs the master key).
    pub head_mac_checked: bool,
}

/// Counts of a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupStats {
    /// Sessions copied.
    pub sessions: u64,
    /// Sealed secrets copied.
    pub secrets: u64,
    /// Audit entries copied.
    pub audit_entries: u64,
}

/// Storage of sessions, secrets, audit log and meta values.
pub trait SessionStore: Send + Sync {
    /// One session record (MAC not checked here).
    fn get(&self, name: &str) -> Result<Option<SessionRecord>, CasError>;
    /// All session records, sorted by name.
    fn list(&self) -> Result<Vec<SessionRecord>, CasError>;
    /// The sealed secrets of a session, sorted by secret name.
    fn secrets(&self, session: &str) -> Result<Vec<(String, Vec<u8>)>, CasError>;
    /// Applies a change atomically (compare-and-swap on the session hash,
    /// replace its secrets, append the audit entry), durably.
    fn commit(&self, change: Change) -> Result<AuditEntry, CommitError>;
    /// Appends an audit entry on its own, durably.
    fn append_audit(&self, draft: AuditDraft) -> Result<AuditEntry, CasError>;
    /// Number of audit entries.
    fn audit_len(&self) -> Result<u64, CasError>;
    /// Up to `limit` audit entries from `from`.
    fn audit_range(&self, from: u64, limit: u64) -> Result<Vec<AuditEntry>, CasError>;
    /// The stored audit head, if any entry was ever written.
    fn audit_head(&self) -> Result<Option<AuditHead>, CasError>;
    /// A meta value.
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, CasError>;
    /// Sets a meta value unless present; returns the value now stored.
    fn meta_insert_if_absent(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, CasError>;
    /// Writes a consistent copy of the whole store to a new redb file (the
    /// backup format of every backend: `sigil cas restore` reads it).
    fn backup_to(&self, out: &Path) -> Result<BackupStats, CasError>;
}

/// Reads a stored audit entry.
pub(crate) fn parse_entry(bytes: &[u8], index: u64) -> Result<AuditEntry, CasError> {
    serde_json::from_slice(bytes)
        .map_err(|e| CasError::Integrity(format!("audit entry {index} is not valid JSON: {e}")))
}

/// Reads a stored session record (its MAC is checked by the caller).
pub(crate) fn parse_record(name: &str, bytes: &[u8]) -> Result<SessionRecord, CasError> {
    serde_json::from_slice(bytes).map_err(|e| {
        CasError::Integrity(format!(
            "the stored record of session `{name}` is malformed: {e}"
        ))
    })
}

/// Whether the compare-and-swap condition holds for the current hash.
pub(crate) fn expect_holds(expect: &Expect, current: Option<&str>) -> bool {
    match (expect, current) {
        (Expect::Absent, None) => true,
        (Expect::Hash(h), Some(c)) => h == c,
        _ => false,
    }
}

/// The stored bytes of a record.
pub(crate) fn record_bytes(r: &SessionRecord) -> Result<Vec<u8>, CasError> {
    serde_json::to_vec(r).map_err(|e| CasError::Internal(e.to_string()))
}

/// The next audit entry after the last stored one (`None`: the log is
/// empty), sealed into the chain, with the bytes to store for it and for
/// the new MAC'd head. Both backends call this inside the transaction that
/// writes them.
pub(crate) fn next_entry(
    key: &MasterKey,
    last: Option<(u64, &[u8])>,
    draft: AuditDraft,
) -> Result<(AuditEntry, Vec<u8>, Vec<u8>), CasError> {
    let (index, prev) = match last {
        Some((i, bytes)) => {
            let e = parse_entry(bytes, i)?;
            let mut p = [0u8; 32];
            hex::decode_to_slice(&e.hash, &mut p).map_err(|_| {
                CasError::Integrity(format!("audit entry {i} has a malformed hash"))
            })?;
            (i + 1, p)
        }
        None => (0, [0u8; 32]),
    };
    let mut e = AuditEntry {
        index,
        time: draft.time,
        actor: draft.actor,
        action: draft.action,
        session: draft.session,
        old_hash: draft.old_hash,
        new_hash: draft.new_hash,
        details: draft.details,
        prev: String::new(),
        hash: String::new(),
    };
    e.seal(&prev);
    let bytes = serde_json::to_vec(&e).map_err(|e| CasError::Internal(e.to_string()))?;
    let head = AuditHead::new(key, index + 1, e.hash.clone());
    let hb = serde_json::to_vec(&head).map_err(|e| CasError::Internal(e.to_string()))?;
    Ok((e, bytes, hb))
}

/// Reads a stored audit head.
pub(crate) fn parse_head(bytes: &[u8]) -> Result<AuditHead, CasError> {
    serde_json::from_slice(bytes)
        .map_err(|_| CasError::Integrity("the stored audit head is malformed".into()))
}

/// Entries read per batch when verifying.
pub(crate) const VERIFY_BATCH: u64 = 1024;

/// An audit chain checked batch by batch from index 0, then against the
/// stored head. Shared by [`verify_audit`] and the PostgreSQL snapshot check.
pub(crate) struct ChainCheck {
    prev: [u8; 32],
    count: u64,
}

impl ChainCheck {
    pub(crate) fn new() -> ChainCheck {
        ChainCheck {
            prev: [0; 32],
            count: 0,
        }
    }

    /// Entries checked so far (the index to read next).
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// How many entries to read next (0: the head's count is reached).
    pub(crate) fn want(&self, head: Option<&AuditHead>) -> u64 {
        match head {
            Some(h) if h.count > self.count => (h.count - self.count).min(VERIFY_BATCH),
            Some(_) => 0,
            None => VERIFY_BATCH,
        }
    }

    /// Checks the next batch (which must start at [`Self::count`]).
    pub(crate) fn feed(&mut self, batch: &[AuditEntry]) -> Result<(), CasError> {
        self.prev = verify_chain(batch, self.count, self.prev)
            .map_err(|e| CasError::Integrity(e.to_string()))?;
        self.count += batch.len() as u64;
        Ok(())
    }

    /// Compares the end of the chain with the stored head and (with the
    /// master key) checks the head MAC.
    pub(crate) fn finish(
        self,
        head: Option<&AuditHead>,
        key: Option<&MasterKey>,
    ) -> Result<AuditReport, CasError> {
        let count = self.count;
        let head_hash = hex::encode(self.prev);
        match head {
            None if count > 0 => {
                return Err(CasError::Integrity(
                    "the audit head is missing although entries exist".into(),
                ))
            }
            Some(h) if h.count != count || h.hash != head_hash => {
                return Err(CasError::Integrity(format!(
                    "audit chain broken at entry {}: the log has {count} entries but its head records {} (entries removed, added or rewritten)",
                    count.min(h.count),
                    h.count
                )))
            }
            _ => {}
        }
        let mut checked = head.is_none();
        if let (Some(key), Some(h)) = (key, head) {
            if !h.check(key) {
                return Err(CasError::Integrity(
                    "the audit head MAC does not verify: the log was rewritten".into(),
                ));
            }
            checked = true;
        }
        Ok(AuditReport {
            entries: count,
            head: head_hash,
            head_mac_checked: checked,
        })
    }
}

/// Verifies the whole audit chain of a store, its stored head, and (with
/// the master key) the head MAC. The error names the first broken index.
/// Entries appended after the head was read are not checked; use
/// [`verify_audit_exclusive`] when nothing else writes.
pub fn verify_audit(
    store: &dyn SessionStore,
    key: Option<&MasterKey>,
) -> Result<AuditReport, CasError> {
    // Head first: entries appended after it was read are not checked.
    let head = store.audit_head()?;
    let mut check = ChainCheck::new();
    loop {
        let want = check.want(head.as_ref());
        if want == 0 {
            break;
        }
        let batch = store.audit_range(check.count(), want)?;
        if batch.is_empty() {
            break;
        }
        check.feed(&batch)?;
    }
    check.finish(head.as_ref(), key)
}

/// The error when a log holds more entries than its head records.
pub(crate) fn check_len(report: AuditReport, len: u64) -> Result<AuditReport, CasError> {
    if len != report.entries {
        return Err(CasError::Integrity(format!(
            "audit chain broken at entry {}: the log has {len} entries but its head records {}",
            report.entries, report.entries
        )));
    }
    Ok(report)
}

/// [`verify_audit`] for a store nobody else writes to: entries beyond the
/// recorded head are an error too. (A PostgreSQL store shared by running
/// replicas is checked in one snapshot instead:
/// `PostgresStore::verify_audit_snapshot`.)
pub fn verify_audit_exclusive(
    store: &dyn SessionStore,
    key: Option<&MasterKey>,
) -> Result<AuditReport, CasError> {
    let r = verify_audit(store, key)?;
    check_len(r, store.audit_len()?)
}
