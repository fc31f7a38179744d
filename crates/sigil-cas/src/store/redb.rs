//! The redb backend: one file, `DATA_DIR/store.redb`, and the backup
//! format of every backend (a redb file with the same tables).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use sigil_client::audit::AuditEntry;

use super::{
    expect_holds, next_entry, parse_entry, parse_head, parse_record, record_bytes, AuditDraft,
    AuditHead, BackupStats, Change, CommitError, SessionRecord, SessionStore, AUDIT_HEAD, FORMAT,
    FORMAT_VERSION,
};
use crate::seal::MasterKey;
use crate::CasError;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

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

/// The key of a secret in the `secrets` table (and in backups).
pub(crate) fn secret_key(session: &str, secret: &str) -> String {
    format!("{session}\u{0}{secret}")
}

/// The session and secret names of a key of the `secrets` table.
pub(crate) fn split_secret_key(key: &str) -> Result<(&str, &str), CasError> {
    key.split_once('\u{0}').ok_or_else(|| {
        CasError::Integrity(format!(
            "the secrets table has a malformed key {key:?} (no session/secret separator)"
        ))
    })
}

fn secret_range(session: &str) -> (String, String) {
    (format!("{session}\u{0}"), format!("{session}\u{1}"))
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

    /// Every row of a text-keyed table (sessions, secrets, meta) as
    /// stored, in key order: what a restore copies.
    pub(crate) fn raw_rows(&self, table: BackupTable) -> Result<Vec<(String, Vec<u8>)>, CasError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(text_table(table)?)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Up to `limit` audit rows from index `from`, as stored.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn raw_audit(&self, from: u64, limit: u64) -> Result<Vec<(u64, Vec<u8>)>, CasError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        for item in t.range(from..from.saturating_add(limit))? {
            let (k, v) = item?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn append_in(
        &self,
        audit: &mut redb::Table<u64, &[u8]>,
        meta: &mut redb::Table<&str, &[u8]>,
        draft: AuditDraft,
    ) -> Result<AuditEntry, CasError> {
        let key = self.key()?;
        let last = audit.last()?.map(|(k, v)| (k.value(), v.value().to_vec()));
        let (e, bytes, head) = next_entry(key, last.as_ref().map(|(i, b)| (*i, &b[..])), draft)?;
        audit.insert(e.index, bytes.as_slice())?;
        meta.insert(AUDIT_HEAD, head.as_slice())?;
        Ok(e)
    }
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
            if !expect_holds(&change.expect, current.as_deref()) {
                // Dropping the transaction aborts it: nothing is written.
                return Err(CommitError::Conflict { current });
            }
            match &change.record {
                Some(r) => {
                    sessions.insert(change.name.as_str(), record_bytes(r)?.as_slice())?;
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
        self.meta(AUDIT_HEAD)?.map(|v| parse_head(&v)).transpose()
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
        let mut w = BackupWriter::create(out)?;
        // One read transaction: a consistent snapshot while writers go on.
        let rtx = self.db.begin_read()?;
        copy_table(&rtx, &mut w, SESSIONS, BackupTable::Sessions)?;
        copy_table(&rtx, &mut w, SECRETS, BackupTable::Secrets)?;
        copy_table(&rtx, &mut w, META, BackupTable::Meta)?;
        copy_table(&rtx, &mut w, AUDIT, BackupTable::Audit)?;
        w.finish()
    }
}

/// A table of the backup format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BackupTable {
    Sessions,
    Secrets,
    Meta,
    Audit,
}

/// The definition of a text-keyed table of the backup format.
fn text_table(
    table: BackupTable,
) -> Result<TableDefinition<'static, &'static str, &'static [u8]>, CasError> {
    match table {
        BackupTable::Sessions => Ok(SESSIONS),
        BackupTable::Secrets => Ok(SECRETS),
        BackupTable::Meta => Ok(META),
        BackupTable::Audit => Err(CasError::Internal("audit rows have numeric keys".into())),
    }
}

/// Copies one table of the snapshot `rtx` into the backup, counting its rows
/// (one function for the string-keyed tables and the u64-keyed audit log).
fn copy_table<K: redb::Key + 'static>(
    rtx: &redb::ReadTransaction,
    w: &mut BackupWriter,
    def: TableDefinition<'static, K, &'static [u8]>,
    table: BackupTable,
) -> Result<(), CasError> {
    let src = rtx.open_table(def)?;
    let mut dst = w.tx()?.open_table(def)?;
    let mut n = 0;
    for item in src.iter()? {
        let (k, v) = item?;
        dst.insert(k.value(), v.value())?;
        n += 1;
    }
    drop(dst);
    w.count(table, n);
    Ok(())
}

/// Writes a backup: a new redb file with the store's tables, written to
/// `OUT.partial` in one write transaction and renamed into place by
/// [`BackupWriter::finish`]; dropped unfinished, it removes the partial file.
pub(crate) struct BackupWriter {
    // Dropped in this order: the transaction before its database.
    tx: Option<WriteTransaction>,
    db: Option<Database>,
    tmp: PathBuf,
    out: PathBuf,
    stats: BackupStats,
}

impl BackupWriter {
    /// Refuses an existing `out`; starts `out.partial`.
    pub(crate) fn create(out: &Path) -> Result<BackupWriter, CasError> {
        if out.exists() {
            return Err(CasError::BadRequest(format!(
                "{} exists; choose a new file for the backup",
                out.display()
            )));
        }
        let tmp = out.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        let db = Database::create(&tmp)
            .map_err(|e| CasError::Store(format!("cannot create {}: {e}", tmp.display())))?;
        let tx = db.begin_write()?;
        Ok(BackupWriter {
            tx: Some(tx),
            db: Some(db),
            tmp,
            out: out.to_path_buf(),
            stats: BackupStats {
                sessions: 0,
                secrets: 0,
                audit_entries: 0,
            },
        })
    }

    fn tx(&self) -> Result<&WriteTransaction, CasError> {
        self.tx
            .as_ref()
            .ok_or_else(|| CasError::Internal("the backup is already finished".into()))
    }

    fn count(&mut self, table: BackupTable, n: u64) {
        match table {
            BackupTable::Sessions => self.stats.sessions += n,
            BackupTable::Secrets => self.stats.secrets += n,
            BackupTable::Audit => self.stats.audit_entries += n,
            BackupTable::Meta => {}
        }
    }

    /// Adds rows to a table keyed by text (`Secrets` keys: [`secret_key`]).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn put<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        table: BackupTable,
        rows: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), CasError> {
        let def = text_table(table)?;
        let mut n = 0;
        {
            let mut t = self.tx()?.open_table(def)?;
            for (k, v) in rows {
                t.insert(k.as_ref(), v.as_ref())?;
                n += 1;
            }
        }
        self.count(table, n);
        Ok(())
    }

    /// Adds audit entries.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn put_audit<V: AsRef<[u8]>>(
        &mut self,
        rows: impl IntoIterator<Item = (u64, V)>,
    ) -> Result<(), CasError> {
        let mut n = 0;
        {
            let mut t = self.tx()?.open_table(AUDIT)?;
            for (k, v) in rows {
                t.insert(k, v.as_ref())?;
                n += 1;
            }
        }
        self.count(BackupTable::Audit, n);
        Ok(())
    }

    /// Commits the copy and renames it to the backup's name.
    pub(crate) fn finish(mut self) -> Result<BackupStats, CasError> {
        let tx = self
            .tx
            .take()
            .ok_or_else(|| CasError::Internal("the backup is already finished".into()))?;
        // Every table exists in a backup, even an empty one.
        for def in [SESSIONS, SECRETS, META] {
            tx.open_table(def)?;
        }
        tx.open_table(AUDIT)?;
        tx.commit()?;
        self.db = None;
        std::fs::rename(&self.tmp, &self.out)
            .map_err(|e| CasError::Store(format!("cannot write {}: {e}", self.out.display())))?;
        Ok(self.stats.clone())
    }
}

impl Drop for BackupWriter {
    fn drop(&mut self) {
        if self.tx.take().is_some() {
            // Unfinished (an error on the way): leave nothing behind.
            self.db = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
