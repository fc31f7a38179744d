//! The store: sessions, their sealed secrets, the audit log and a few meta
//! values, behind the [`SessionStore`] trait (redb today; a PostgreSQL
//! backend can implement the same trait). Layout: `docs/cas-store.md`.
//!
//! Every write goes through [`SessionStore::commit`] or
//! [`SessionStore::append_audit`]: one transaction that also appends the
//! audit entry recording it and updates the MAC'd audit head, committed
//! durably before it returns.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use sigil_client::audit::{verify_chain, AuditEntry};

use crate::seal::MasterKey;
use crate::CasError;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Meta key of the MAC'd audit head.
const AUDIT_HEAD: &str = "audit_head";
/// Meta key of the store format version.
const FORMAT: &str = "format";
const FORMAT_VERSION: &[u8] = b"sigil-cas-store-v1";

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

    fn new(key: &MasterKey, count: u64, hash: String) -> AuditHead {
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
    /// Writes a consistent copy of the whole store to a new file.
    fn backup_to(&self, out: &Path) -> Result<BackupStats, CasError>;
}

/// The redb backend: one file, `DATA_DIR/store.redb`.
pub struct RedbStore {
    db: Database,
    key: Option<Arc<MasterKey>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbStore")
    }
}

fn parse_entry(bytes: &[u8], index: u64) -> Result<AuditEntry, CasError> {
    serde_json::from_slice(bytes)
        .map_err(|e| CasError::Integrity(format!("audit entry {index} is not valid JSON: {e}")))
}

impl RedbStore {
    /// Opens or creates the store. `key` is needed for writes (audit head
    /// MAC); without it the store can be read and verified structurally.
    pub fn open(path: &Path, key: Option<Arc<MasterKey>>) -> Result<RedbStore, CasError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => CasError::Store(format!(
                "{} is in use by another process (a running CAS?)",
                path.display()
            )),
            e => CasError::Store(format!("cannot open {}: {e}", path.display())),
        })?;
        let tx = db.begin_write()?;
        {
            tx.open_table(SESSIONS)?;
            tx.open_table(SECRETS)?;
            tx.open_table(AUDIT)?;
            let mut meta = tx.open_table(META)?;
            let existing = meta.get(FORMAT)?.map(|v| v.value().to_vec());
            match existing {
                None => {
                    meta.insert(FORMAT, FORMAT_VERSION)?;
                }
                Some(v) if v == FORMAT_VERSION => {}
                Some(_) => {
                    return Err(CasError::Store(format!(
                        "{} has an unknown store format",
                        path.display()
                    )))
                }
            }
        }
        tx.commit()?;
        Ok(RedbStore { db, key })
    }

    /// The underlying database (tests use it to play an attacker with the file).
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn key(&self) -> Result<&MasterKey, CasError> {
        self.key
            .as_deref()
            .ok_or_else(|| CasError::Config("the store is open without the master key".into()))
    }

    fn append_in(
        &self,
        audit: &mut redb::Table<u64, &[u8]>,
        meta: &mut redb::Table<&str, &[u8]>,
        draft: AuditDraft,
    ) -> Result<AuditEntry, CasError> {
        let key = self.key()?;
        let (index, prev) = match audit.last()? {
            Some((k, v)) => {
                let i = k.value();
                let e = parse_entry(v.value(), i)?;
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
        audit.insert(index, bytes.as_slice())?;
        let head = AuditHead::new(key, index + 1, e.hash.clone());
        let hb = serde_json::to_vec(&head).map_err(|e| CasError::Internal(e.to_string()))?;
        meta.insert(AUDIT_HEAD, hb.as_slice())?;
        Ok(e)
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
    let mut prev = [0u8; 32];
    let mut count = 0u64;
    loop {
        let want = match &head {
            Some(h) if h.count > count => (h.count - count).min(1024),
            Some(_) => 0,
            None => 1024,
        };
        let batch = if want == 0 {
            Vec::new()
        } else {
            store.audit_range(count, want)?
        };
        if batch.is_empty() {
            break;
        }
        prev = verify_chain(&batch, count, prev).map_err(|e| CasError::Integrity(e.to_string()))?;
        count += batch.len() as u64;
    }
    let head_hash = hex::encode(prev);
    match &head {
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
    if let (Some(key), Some(h)) = (key, &head) {
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

/// [`verify_audit`] for a store nobody else writes to: entries beyond the
/// recorded head are an error too.
pub fn verify_audit_exclusive(
    store: &dyn SessionStore,
    key: Option<&MasterKey>,
) -> Result<AuditReport, CasError> {
    let r = verify_audit(store, key)?;
    let len = store.audit_len()?;
    if len != r.entries {
        return Err(CasError::Integrity(format!(
            "audit chain broken at entry {}: the log has {len} entries but its head records {}",
            r.entries, r.entries
        )));
    }
    Ok(r)
}

fn secret_key(session: &str, secret: &str) -> String {
    format!("{session}\u{0}{secret}")
}

fn secret_range(session: &str) -> (String, String) {
    (format!("{session}\u{0}"), format!("{session}\u{1}"))
}

fn parse_record(name: &str, bytes: &[u8]) -> Result<SessionRecord, CasError> {
    serde_json::from_slice(bytes).map_err(|e| {
        CasError::Integrity(format!(
            "the stored record of session `{name}` is malformed: {e}"
        ))
    })
}

impl SessionStore for RedbStore {
    fn get(&self, name: &str) -> Result<Option<SessionRecord>, CasError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SESSIONS)?;
        let v = t.get(name)?;
        v.map(|v| parse_record(name, v.value())).transpose()
    }

    fn list(&self) -> Result<Vec<SessionRecord>, CasError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SESSIONS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push(parse_record(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn secrets(&self, session: &str) -> Result<Vec<(String, Vec<u8>)>, CasError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SECRETS)?;
        let (a, b) = secret_range(session);
        let mut out = Vec::new();
        for item in t.range(a.as_str()..b.as_str())? {
            let (k, v) = item?;
            let name = k.value().split_once('\u{0}').map(|x| x.1).unwrap_or("");
            out.push((name.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn commit(&self, change: Change) -> Result<AuditEntry, CommitError> {
        let tx = self.db.begin_write()?;
        let entry;
        {
            let mut sessions = tx.open_table(SESSIONS)?;
            let current = match sessions.get(change.name.as_str())? {
                Some(v) => Some(parse_record(&change.name, v.value())?.hash),
                None => None,
            };
            let ok = match (&change.expect, &current) {
                (Expect::Absent, None) => true,
                (Expect::Hash(h), Some(c)) => h == c,
                _ => false,
            };
            if !ok {
                // Dropping the transaction aborts it: nothing is written.
                return Err(CommitError::Conflict { current });
            }
            match &change.record {
                Some(r) => {
                    let b = serde_json::to_vec(r).map_err(|e| CasError::Internal(e.to_string()))?;
                    sessions.insert(change.name.as_str(), b.as_slice())?;
                }
                None => {
                    sessions.remove(change.name.as_str())?;
                }
            }
            let mut secrets = tx.open_table(SECRETS)?;
            let (a, b) = secret_range(&change.name);
            let old: Vec<String> = secrets
                .range(a.as_str()..b.as_str())?
                .map(|i| i.map(|(k, _)| k.value().to_string()))
                .collect::<Result<_, _>>()?;
            for k in old {
                secrets.remove(k.as_str())?;
            }
            for (n, blob) in &change.secrets {
                secrets.insert(secret_key(&change.name, n).as_str(), blob.as_slice())?;
            }
            let mut audit = tx.open_table(AUDIT)?;
            let mut meta = tx.open_table(META)?;
            entry = self.append_in(&mut audit, &mut meta, change.audit)?;
        }
        tx.commit()?;
        Ok(entry)
    }

    fn append_audit(&self, draft: AuditDraft) -> Result<AuditEntry, CasError> {
        let tx = self.db.begin_write()?;
        let entry;
        {
            let mut audit = tx.open_table(AUDIT)?;
            let mut meta = tx.open_table(META)?;
            entry = self.append_in(&mut audit, &mut meta, draft)?;
        }
        tx.commit()?;
        Ok(entry)
    }

    fn audit_len(&self) -> Result<u64, CasError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(AUDIT)?.len()?)
    }

    fn audit_range(&self, from: u64, limit: u64) -> Result<Vec<AuditEntry>, CasError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        for item in t.range(from..from.saturating_add(limit))? {
            let (k, v) = item?;
            out.push(parse_entry(v.value(), k.value())?);
        }
        Ok(out)
    }

    fn audit_head(&self) -> Result<Option<AuditHead>, CasError> {
        match self.meta(AUDIT_HEAD)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|_| {
                CasError::Integrity("the stored audit head is malformed".into())
            })?)),
            None => Ok(None),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, CasError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        let v = t.get(key)?.map(|v| v.value().to_vec());
        Ok(v)
    }

    fn meta_insert_if_absent(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, CasError> {
        let tx = self.db.begin_write()?;
        let out;
        {
            let mut t = tx.open_table(META)?;
            let existing = t.get(key)?.map(|v| v.value().to_vec());
            out = match existing {
                Some(v) => v,
                None => {
                    t.insert(key, value)?;
                    value.to_vec()
                }
            };
        }
        tx.commit()?;
        Ok(out)
    }

    fn backup_to(&self, out: &Path) -> Result<BackupStats, CasError> {
        if out.exists() {
            return Err(CasError::BadRequest(format!(
                "{} exists; choose a new file for the backup",
                out.display()
            )));
        }
        // One read transaction: a consistent snapshot while writers go on.
        let rtx = self.db.begin_read()?;
        let tmp = out.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        let copy = Database::create(&tmp)
            .map_err(|e| CasError::Store(format!("cannot create {}: {e}", tmp.display())))?;
        let wtx = copy.begin_write()?;
        let mut stats = BackupStats {
            sessions: 0,
            secrets: 0,
            audit_entries: 0,
        };
        {
            for def in [SESSIONS, SECRETS, META] {
                let src = rtx.open_table(def)?;
                let mut dst = wtx.open_table(def)?;
                let mut n = 0u64;
                for item in src.iter()? {
                    let (k, v) = item?;
                    dst.insert(k.value(), v.value())?;
                    n += 1;
                }
                match def.name() {
                    "sessions" => stats.sessions = n,
                    "secrets" => stats.secrets = n,
                    _ => {}
                }
            }
            let src = rtx.open_table(AUDIT)?;
            let mut dst = wtx.open_table(AUDIT)?;
            for item in src.iter()? {
                let (k, v) = item?;
                dst.insert(k.value(), v.value())?;
                stats.audit_entries += 1;
            }
        }
        wtx.commit()?;
        drop(copy);
        std::fs::rename(&tmp, out)
            .map_err(|e| CasError::Store(format!("cannot write {}: {e}", out.display())))?;
        Ok(stats)
    }
}
