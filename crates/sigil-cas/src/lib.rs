//! The Configuration and Attestation Service (CAS): session store, secrets,
//! audit log, management and attestation API.
//!
//! Start one with [`Server::start`]; the HTTP API is specified in
//! `docs/cas-api.md`, the store in `docs/cas-store.md`.

pub mod api;
pub mod attest_api;
mod error;
pub mod http;
pub mod metrics;
pub mod ratelimit;
mod rsa_keygen;
pub mod seal;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;

use std::path::Path;

pub use error::CasError;
pub use seal::{scrub_env, MasterKey, MasterKeySource};
pub use server::{Config, Limits, RunningServer, Server};
pub use sigil_client::wire::ResolvedService;
pub use state::{CasState, Clock, ConnInfo, SystemClock};
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
pub use store::{AuditReport, BackupStats, PostgresOptions, RedbStore, SessionStore, StoreConfig};

/// Verifies the audit log of a stopped CAS's data directory. With a master
/// key the head MAC is checked too (detects a rewritten or truncated log).
pub fn verify_data_dir(
    data_dir: &Path,
    key: Option<&MasterKeySource>,
) -> Result<AuditReport, CasError> {
    let path = data_dir.join(server::STORE_FILE);
    if !path.exists() {
        return Err(CasError::Config(format!(
            "{} does not exist: not a CAS data directory",
            path.display()
        )));
    }
    let key = match key {
        Some(k) => Some(std::sync::Arc::new(MasterKey::load(k, false)?)),
        None => None,
    };
    let store = RedbStore::open(&path, key.clone())?;
    store::verify_audit_exclusive(&store, key.as_deref())
}

/// `p` relative to the current directory (the running CAS may have another).
fn absolute(p: &Path) -> Result<std::path::PathBuf, CasError> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()
        .map_err(|e| CasError::Config(e.to_string()))?
        .join(p))
}

/// Makes a consistent backup of a data directory into `out` (a new redb
/// file). If the CAS is running, asks it over `DATA_DIR/admin.sock`;
/// otherwise opens the store itself. Secrets stay sealed: the master key is
/// not part of the backup.
pub fn backup(data_dir: &Path, out: &Path) -> Result<BackupStats, CasError> {
    use std::io::{BufRead, BufReader, Write};
    let out = absolute(out)?;
    let sock = data_dir.join(server::ADMIN_SOCKET);
    if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
        let req = serde_json::json!({"op": "backup", "out": out});
        writeln!(s, "{req}").map_err(|e| CasError::Store(format!("admin socket: {e}")))?;
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .map_err(|e| CasError::Store(format!("admin socket: {e}")))?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| CasError::Store(format!("admin socket answered badly: {e}")))?;
        if v["ok"] == serde_json::Value::Bool(true) {
            return serde_json::from_value(v["stats"].clone())
                .map_err(|e| CasError::Store(format!("admin socket answered badly: {e}")));
        }
        return Err(CasError::Store(
            v["error"].as_str().unwrap_or("backup failed").to_string(),
        ));
    }
    let path = data_dir.join(server::STORE_FILE);
    if !path.exists() {
        return Err(CasError::Config(format!(
            "{} does not exist: not a CAS data directory",
            path.display()
        )));
    }
    let store = RedbStore::open(&path, None)?;
    store.backup_to(&out)
}

/// Makes a consistent backup of a PostgreSQL store (one snapshot, while
/// replicas keep writing) into `out`: a new redb file in the same format as
/// [`backup`], which `sigil cas restore` reads. Secrets stay sealed.
pub fn backup_postgres(opts: &PostgresOptions, out: &Path) -> Result<BackupStats, CasError> {
    #[cfg(feature = "postgres")]
    {
        PostgresStore::connect(opts, None)?.backup_to(&absolute(out)?)
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (opts, out);
        Err(CasError::Config(
            "this build has no PostgreSQL store (cargo feature `postgres` of sigil-cas)".into(),
        ))
    }
}

/// Restores a backup into a new data directory. The master key (`key`, or
/// the default for `data_dir`) must be the one the backup was made with;
/// the restored audit log is verified with it before the store is put in
/// place.
pub fn restore(
    backup_file: &Path,
    data_dir: &Path,
    key: Option<&MasterKeySource>,
) -> Result<AuditReport, CasError> {
    let dest = data_dir.join(server::STORE_FILE);
    if dest.exists() {
        return Err(CasError::Config(format!(
            "{} exists; restore into a new data directory",
            dest.display()
        )));
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|e| CasError::Config(format!("cannot create {}: {e}", data_dir.display())))?;
    }
    let src = key
        .cloned()
        .unwrap_or_else(|| MasterKeySource::resolve(None, data_dir));
    let mk = std::sync::Arc::new(MasterKey::load(&src, false).map_err(|e| {
        CasError::Config(format!(
            "{e}: a restore needs the master key the backup was made with"
        ))
    })?);
    let tmp = data_dir.join("store.redb.restoring");
    std::fs::copy(backup_file, &tmp)
        .map_err(|e| CasError::Config(format!("cannot copy {}: {e}", backup_file.display())))?;
    // Every failure below removes the copy (an unopenable file too). The
    // same complete check as a restore into PostgreSQL: audit chain and
    // head MAC, every record MAC, every sealed secret and the sealed
    // identity opened with the key.
    let report = match store::open_verified(&tmp, backup_file, &mk) {
        Err(CasError::Integrity(m)) if m.contains("MAC") => Err(CasError::Config(format!(
            "the master key does not match this backup, or it was altered ({m})"
        ))),
        // The store is closed before it is moved into place.
        other => other.map(|(_store, _, audit)| audit),
    };
    match report {
        Ok(r) => {
            std::fs::rename(&tmp, &dest)
                .map_err(|e| CasError::Config(format!("cannot write {}: {e}", dest.display())))?;
            Ok(r)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
