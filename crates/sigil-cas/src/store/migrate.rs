//! Restoring a backup (the redb backup format, written by `sigil cas
//! backup` from either backend) into an empty PostgreSQL store: the
//! migration path from the embedded store to PostgreSQL, and offline
//! verification of a PostgreSQL store. `docs/cas-store.md`, "Migration".
//!
//! The backup is verified completely with the master key before anything
//! is written: the audit chain, its head and head MAC, every session
//! record's MAC, every sealed secret and the sealed CAS identity (each
//! opened, so a blob altered or moved fails). Then it is written in one
//! transaction that also reads the audit chain back and verifies it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::redb::{split_secret_key, BackupTable, RedbStore};
use super::{
    parse_record, verify_audit_exclusive, AuditReport, BackupStats, PostgresOptions, SessionStore,
    FORMAT, FORMAT_VERSION,
};
use crate::seal::{MasterKey, MasterKeySource};
use crate::CasError;

/// Meta key of the sealed CAS identity (written by the server).
const IDENTITY: &str = "identity";

/// What a restore into PostgreSQL wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// Rows restored.
    pub stats: BackupStats,
    /// The audit log as read back from the database and verified.
    pub audit: AuditReport,
}

/// A private copy of the backup file, removed on drop: opening a redb file
/// writes to it, and the operator's backup stays untouched.
struct TempCopy(PathBuf);

impl TempCopy {
    fn of(backup: &Path) -> Result<TempCopy, CasError> {
        use std::os::unix::fs::OpenOptionsExt;
        let meta = std::fs::metadata(backup).map_err(|e| {
            CasError::Config(format!("cannot read the backup {}: {e}", backup.display()))
        })?;
        if !meta.is_file() {
            return Err(CasError::Config(format!(
                "the backup {} is not a file",
                backup.display()
            )));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("sigil-restore-{}-{nanos}.redb", std::process::id()));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CasError::Config(format!("cannot create {}: {e}", path.display())))?;
        let copy = TempCopy(path);
        let mut src = std::fs::File::open(backup).map_err(|e| {
            CasError::Config(format!("cannot read the backup {}: {e}", backup.display()))
        })?;
        std::io::copy(&mut src, &mut out).map_err(|e| {
            CasError::Config(format!(
                "cannot copy the backup {} to {}: {e}",
                backup.display(),
                copy.0.display()
            ))
        })?;
        Ok(copy)
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Prefixes integrity errors with where they were found.
fn in_backup(e: CasError) -> CasError {
    match e {
        CasError::Integrity(m) => CasError::Integrity(format!("the backup is damaged: {m}")),
        e => e,
    }
}

/// Verifies everything in a backup with the master key; returns its
/// counts. Nothing is trusted that the key does not vouch for.
fn verify_backup(
    store: &RedbStore,
    key: &MasterKey,
) -> Result<(BackupStats, AuditReport), CasError> {
    if store.meta(FORMAT)?.as_deref() != Some(FORMAT_VERSION) {
        return Err(CasError::Config(
            "the backup has an unknown store format".into(),
        ));
    }
    // The identity first: AES-GCM tells a wrong key apart from tampering.
    let identity = store.meta(IDENTITY)?;
    if let Some(blob) = &identity {
        key.open(&[b"cas-identity"], blob).map_err(|_| {
            CasError::Config(
                "the master key does not match this backup (the CAS identity in it does not open with the key; or it was altered)"
                    .into(),
            )
        })?;
    }
    let audit = verify_audit_exclusive(store, Some(key)).map_err(|e| match e {
        CasError::Integrity(m) if m.contains("MAC") && identity.is_none() => CasError::Integrity(
            format!("the backup is damaged or from another master key: {m}"),
        ),
        e => in_backup(e),
    })?;
    let sessions = store.raw_rows(BackupTable::Sessions)?;
    let mut names = BTreeSet::new();
    for (name, bytes) in &sessions {
        let rec = parse_record(name, bytes).map_err(in_backup)?;
        if &rec.name != name {
            return Err(in_backup(CasError::Integrity(format!(
                "the row of session `{name}` holds the record of `{}`",
                rec.name
            ))));
        }
        rec.check_mac(key).map_err(in_backup)?;
        names.insert(name.as_str());
    }
    let secrets = store.raw_rows(BackupTable::Secrets)?;
    for (k, blob) in &secrets {
        let (session, name) = split_secret_key(k).map_err(in_backup)?;
        if !names.contains(session) {
            return Err(in_backup(CasError::Integrity(format!(
                "secret `{name}` belongs to session `{session}`, which is not in the backup"
            ))));
        }
        // Opened and dropped at once (zeroized): only its integrity matters.
        key.open(&[b"secret", session.as_bytes(), name.as_bytes()], blob)
            .map_err(|_| {
                in_backup(CasError::Integrity(format!(
                    "sealed secret `{name}` of session `{session}` does not open with the master key"
                )))
            })?;
    }
    let stats = BackupStats {
        sessions: sessions.len() as u64,
        secrets: secrets.len() as u64,
        audit_entries: audit.entries,
    };
    Ok((stats, audit))
}

/// Opens the private copy `copy` of the backup `backup` and verifies it
/// completely ([`verify_backup`]); the check both restores (into a data
/// directory and into PostgreSQL) run before writing anything. redb
/// asserts on some damaged files (e.g. truncated): a panic while opening
/// or reading is a refused backup, not a crash. A backup without an audit
/// log is an empty or foreign redb file (a CAS audits its own start).
pub(crate) fn open_verified(
    copy: &Path,
    backup: &Path,
    mk: &Arc<MasterKey>,
) -> Result<(RedbStore, BackupStats, AuditReport), CasError> {
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let src = RedbStore::open(copy, Some(mk.clone())).map_err(|e| {
            CasError::Config(format!(
                "{} is not a Sigil CAS backup: {e}",
                backup.display()
            ))
        })?;
        let (stats, audit) = verify_backup(&src, mk)?;
        if stats.audit_entries == 0 {
            return Err(CasError::Config(format!(
                "{} is not a Sigil CAS backup (it holds no audit log)",
                backup.display()
            )));
        }
        Ok((src, stats, audit))
    }));
    checked.unwrap_or_else(|_| {
        Err(CasError::Config(format!(
            "{} is not a readable Sigil CAS backup (damaged redb file)",
            backup.display()
        )))
    })
}

/// Restores a backup into an empty PostgreSQL store (see the module
/// documentation). `key` must be the master key the backup was made with;
/// the CAS replicas then start with that key on the database.
pub fn restore_postgres(
    backup: &Path,
    opts: &PostgresOptions,
    key: &MasterKeySource,
) -> Result<RestoreReport, CasError> {
    let mk = Arc::new(MasterKey::load(key, false).map_err(|e| {
        CasError::Config(format!(
            "{e}: a restore needs the master key the backup was made with"
        ))
    })?);
    let copy = TempCopy::of(backup)?;
    // Every table is read once here, so the writing below reads what was
    // checked.
    let (src, stats, _) = open_verified(&copy.0, backup, &mk)?;
    write_postgres(&src, opts, mk, &stats).map(|audit| RestoreReport { stats, audit })
}

#[cfg(feature = "postgres")]
fn write_postgres(
    src: &RedbStore,
    opts: &PostgresOptions,
    key: Arc<MasterKey>,
    stats: &BackupStats,
) -> Result<AuditReport, CasError> {
    use super::postgres::Schema;
    super::PostgresStore::open(opts, Some(key), Schema::Later)?.restore_from(src, stats)
}

#[cfg(not(feature = "postgres"))]
fn write_postgres(
    _: &RedbStore,
    _: &PostgresOptions,
    _: Arc<MasterKey>,
    _: &BackupStats,
) -> Result<AuditReport, CasError> {
    Err(no_postgres())
}

#[cfg(not(feature = "postgres"))]
fn no_postgres() -> CasError {
    CasError::Config(
        "this build has no PostgreSQL store (cargo feature `postgres` of sigil-cas)".into(),
    )
}

/// Verifies the audit log of a PostgreSQL store offline (no CAS needed;
/// replicas may keep running): the chain, the head and, with the master
/// key, the head MAC, in one snapshot; entries beyond the head are an
/// error. Writes nothing; a database without a CAS store is an error.
pub fn verify_postgres(
    opts: &PostgresOptions,
    key: Option<&MasterKeySource>,
) -> Result<AuditReport, CasError> {
    let key = key.map(|k| MasterKey::load(k, false)).transpose()?;
    #[cfg(feature = "postgres")]
    {
        super::PostgresStore::connect_existing(opts, None)?.verify_audit_snapshot(key.as_ref())
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (opts, key);
        Err(no_postgres())
    }
}
