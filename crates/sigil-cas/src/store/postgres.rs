//! The PostgreSQL backend: several CAS replicas share one database.
//!
//! The trait is synchronous and called from blocking threads (and, for a
//! few calls at start and `/metrics`, from async ones). So the store owns a
//! small private tokio runtime that drives the connections; a call enters
//! that runtime's context and waits for its future on the calling thread
//! with a plain park/unpark executor. Nothing calls a tokio `block_on`, so
//! no "runtime inside a runtime" panic is possible whoever calls.
//!
//! Schema, transactions and isolation: `docs/cas-store.md`.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use sigil_client::audit::AuditEntry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, IsolationLevel, Row, Transaction};

use super::redb::{secret_key, split_secret_key, BackupTable, BackupWriter, RedbStore};
use super::{
    check_len, expect_holds, next_entry, parse_entry, parse_head, parse_record, record_bytes,
    redact_url, AuditDraft, AuditHead, AuditReport, BackupStats, ChainCheck, Change, CommitError,
    PostgresOptions, SessionRecord, SessionStore, AUDIT_HEAD, FORMAT, FORMAT_VERSION,
};
use crate::seal::MasterKey;
use crate::CasError;

/// The version of the tables below; a database with another one is refused.
const SCHEMA_VERSION: i32 = 1;
/// Advisory lock held while the schema is checked or created, so replicas
/// starting together do not race on `CREATE TABLE` ("SIGILCAS").
const SCHEMA_LOCK: i64 = 0x5349_4749_4c43_4153;
/// Version 1. Text keys use the "C" collation so that `ORDER BY` is byte
/// order, as in redb (names sort the same on both backends). Values are the
/// exact bytes redb stores, so a backup is a straight copy.
const SCHEMA_V1: &str = r#"
CREATE TABLE sigil_cas_sessions (
    name   text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);
CREATE TABLE sigil_cas_secrets (
    session text COLLATE "C" NOT NULL,
    name    text COLLATE "C" NOT NULL,
    blob    bytea NOT NULL,
    PRIMARY KEY (session, name)
);
CREATE TABLE sigil_cas_audit (
    idx   bigint PRIMARY KEY CHECK (idx >= 0),
    entry bytea NOT NULL
);
CREATE TABLE sigil_cas_meta (
    key   text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);
"#;

/// Attempts of one operation on serialization failures, deadlocks and
/// connections found closed before anything was committed.
const TRIES: u32 = 8;
/// Deadline of one operation (all its attempts).
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of a backup.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);
/// Deadline to open a connection unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per batch when reading the audit log.
const BATCH: i64 = 1024;
/// Largest CA file read.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// How the connection to the server is protected (`sslmode`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum SslMode {
    /// No TLS.
    Disable,
    /// TLS; the certificate is checked only if a CA file is given.
    Require,
    /// TLS; the certificate must chain to the roots, any name.
    VerifyCa,
    /// TLS; chain and host name checked (default).
    VerifyFull,
}

/// The PostgreSQL backend.
pub struct PostgresStore {
    rt: Option<tokio::runtime::Runtime>,
    pool: Arc<Pool>,
    key: Option<Arc<MasterKey>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.pool.target)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Allowed in any context, async or not (a plain drop is not).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum PgError {
    /// The server or the connection failed.
    Pg(tokio_postgres::Error),
    /// The connection broke during COMMIT: the outcome is unknown.
    InDoubt(tokio_postgres::Error),
    /// Anything else (integrity, configuration).
    Cas(CasError),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Pg(e)
    }
}

impl From<CasError> for PgError {
    fn from(e: CasError) -> Self {
        PgError::Cas(e)
    }
}

/// The server's message and code, or the error with its causes (the TLS
/// or I/O failure behind "error performing TLS handshake").
fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(d) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", d.message(), d.code().code());
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl PgError {
    /// Safe to run the whole operation again: the server rolled it back.
    fn retryable(&self) -> bool {
        match self {
            PgError::Pg(e) => {
                e.is_closed()
                    || e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                    || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
            }
            _ => false,
        }
    }

    /// The connection can serve another operation.
    fn connection_usable(&self) -> bool {
        matches!(self, PgError::Pg(e) if e.as_db_error().is_some())
            || matches!(self, PgError::Cas(_))
    }

    fn into_cas(self, target: &str) -> CasError {
        match self {
            PgError::Pg(e) => CasError::Store(format!("PostgreSQL {target}: {}", pg_message(&e))),
            PgError::InDoubt(e) => CasError::Store(format!(
                "PostgreSQL {target}: the connection broke while committing ({}); the change may or may not have been made: check the session and the audit log",
                pg_message(&e)
            )),
            PgError::Cas(e) => e,
        }
    }
}

/// A bounded pool: at most `size` connections, idle ones kept for reuse.
struct Pool {
    cfg: tokio_postgres::Config,
    tls: tls::MakeRustls,
    idle: Mutex<Vec<Client>>,
    slots: Arc<Semaphore>,
    /// The URL without its password, for messages.
    target: String,
    handle: tokio::runtime::Handle,
}

/// A connection taken from the pool; back to it on drop if still usable.
struct Conn {
    client: Option<Client>,
    pool: Arc<Pool>,
    usable: bool,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    fn client(&mut self) -> Result<&mut Client, PgError> {
        self.client
            .as_mut()
            .ok_or_else(|| PgError::Cas(CasError::Internal("connection already released".into())))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if self.usable && !c.is_closed() {
                if let Ok(mut idle) = self.pool.idle.lock() {
                    idle.push(c);
                }
            }
        }
    }
}

impl Pool {
    async fn get(self: &Arc<Self>) -> Result<Conn, PgError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CasError::Internal("the connection pool is closed".into()))?;
        loop {
            let c = self.idle.lock().ok().and_then(|mut v| v.pop());
            match c {
                Some(c) if !c.is_closed() => {
                    return Ok(Conn {
                        client: Some(c),
                        pool: self.clone(),
                        usable: false,
                        _permit: permit,
                    })
                }
                Some(_) => continue,
                None => break,
            }
        }
        let (client, connection) = self.cfg.connect(self.tls.clone()).await.map_err(|e| {
            CasError::Store(format!(
                "cannot connect to PostgreSQL {}: {}",
                self.target,
                pg_message(&e)
            ))
        })?;
        self.handle.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %pg_message(&e), "PostgreSQL connection closed");
            }
        });
        Ok(Conn {
            client: Some(client),
            pool: self.clone(),
            usable: false,
            _permit: permit,
        })
    }
}

/// Runs one operation with a pooled connection, again (with backoff) while
/// it fails in a way the server rolled back.
macro_rules! attempt {
    ($pool:expr, |$c:ident| $body:expr) => {{
        let mut tried = 0u32;
        loop {
            let mut $c = $pool.get().await?;
            let r: Result<_, PgError> = async { $body }.await;
            $c.usable = match &r {
                Ok(_) => true,
                Err(e) => e.connection_usable(),
            };
            drop($c);
            match r {
                Err(e) if e.retryable() && tried + 1 < TRIES => {
                    tried += 1;
                    backoff(tried).await;
                }
                other => break other,
            }
        }
    }};
}

async fn backoff(tried: u32) {
    let base = 5u64 << tried.min(7);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(base + nanos % base)).await;
}

/// Waits for a future on the calling thread (park/unpark), whatever that
/// thread is; the connections it talks to run on the store's runtime.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, PgError> {
    row.try_get(i).map_err(PgError::Pg)
}

fn index_of(i: i64) -> Result<u64, PgError> {
    u64::try_from(i)
        .map_err(|_| PgError::Cas(CasError::Integrity(format!("audit index {i} is negative"))))
}

fn sql_index(i: u64) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

/// Splits `sslmode` off the URL (tokio-postgres knows only disable, prefer
/// and require) and refuses the parameters Sigil does not take from a URL.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, SslMode), CasError> {
    let shown = redact_url(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(CasError::Config(
            "the PostgreSQL store needs a URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=verify-full]".into(),
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = SslMode::VerifyFull;
    let mut kept = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "sslmode" => {
                mode = match v {
                    "disable" => SslMode::Disable,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    "allow" | "prefer" => {
                        return Err(CasError::Config(format!(
                            "sslmode={v} in {shown} may silently fall back to an unencrypted connection; use verify-full (default), verify-ca, require or, on a trusted network, disable"
                        )))
                    }
                    _ => {
                        return Err(CasError::Config(format!(
                            "sslmode={v} in {shown} is unknown; use verify-full (default), verify-ca, require or disable"
                        )))
                    }
                }
            }
            "sslrootcert" | "sslcert" | "sslkey" | "sslcrl" | "sslpassword" => {
                return Err(CasError::Config(format!(
                    "`{k}` is not taken from the URL; give the server's CA with --postgres-ca-file and a client certificate with --postgres-client-cert and --postgres-client-key"
                )))
            }
            _ => kept.push(kv),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut cfg: tokio_postgres::Config = rebuilt
        .parse()
        .map_err(|e| CasError::Config(format!("PostgreSQL URL {shown}: {e}")))?;
    let unix = cfg
        .get_hosts()
        .iter()
        .filter(|h| matches!(h, tokio_postgres::config::Host::Unix(_)))
        .count();
    if unix > 0 && unix < cfg.get_hosts().len() {
        return Err(CasError::Config(format!(
            "{shown} mixes unix-socket and TCP hosts; give one kind"
        )));
    }
    // TLS is for TCP; a unix socket is local to the machine.
    let tcp = unix == 0;
    cfg.ssl_mode(if mode == SslMode::Disable || !tcp {
        tokio_postgres::config::SslMode::Disable
    } else {
        tokio_postgres::config::SslMode::Require
    });
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("sigil-cas");
    }
    Ok((cfg, if tcp { mode } else { SslMode::Disable }))
}

/// What opening a store does with the tables.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Schema {
    /// Checks the version, or creates the tables if there are none.
    Create,
    /// Checks the version; a database without the tables is an error and
    /// nothing is created (read-only tools such as `sigil audit verify`).
    Existing,
    /// Nothing yet: a restore creates them in its own transaction.
    Later,
}

impl PostgresStore {
    /// Connects (checking the server now), then checks the schema version
    /// or creates the tables on first start. `key` is needed for writes.
    pub fn connect(
        opts: &PostgresOptions,
        key: Option<Arc<MasterKey>>,
    ) -> Result<PostgresStore, CasError> {
        Self::open(opts, key, Schema::Create)
    }

    /// Connects to a database that must already hold a CAS store (of this
    /// schema version); writes nothing.
    pub fn connect_existing(
        opts: &PostgresOptions,
        key: Option<Arc<MasterKey>>,
    ) -> Result<PostgresStore, CasError> {
        Self::open(opts, key, Schema::Existing)
    }

    pub(crate) fn open(
        opts: &PostgresOptions,
        key: Option<Arc<MasterKey>>,
        schema: Schema,
    ) -> Result<PostgresStore, CasError> {
        let (cfg, mode) = parse_url(&opts.url)?;
        let target = format!("at {}", redact_url(&opts.url));
        match mode {
            SslMode::Disable => {
                tracing::warn!("PostgreSQL {target}: no TLS (sslmode=disable or a unix socket)")
            }
            SslMode::Require if opts.ca_file.is_none() => tracing::warn!(
                "PostgreSQL {target}: sslmode=require without --postgres-ca-file does not check the server's certificate"
            ),
            _ => {}
        }
        let tls = tls::MakeRustls::new(mode, opts)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sigil-cas-pg")
            .enable_all()
            .build()
            .map_err(|e| CasError::Internal(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let pool = Arc::new(Pool {
            cfg,
            tls,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(opts.pool_size.max(1))),
            target,
            handle: rt.handle().clone(),
        });
        let store = PostgresStore {
            rt: Some(rt),
            pool,
            key,
        };
        if schema != Schema::Later {
            let create = schema == Schema::Create;
            store.run(OP_TIMEOUT, |pool| async move {
                attempt!(pool, |c| init_schema(c.client()?, create, &pool.target)
                    .await)
            })?;
        }
        Ok(store)
    }

    /// Where the store is (the URL without its password).
    pub fn target(&self) -> &str {
        &self.pool.target
    }

    /// Verifies the audit chain, its head and (with the key) the head MAC
    /// in one snapshot, so replicas writing meanwhile cause no false alarm
    /// and entries beyond the head are caught (as
    /// [`super::verify_audit_exclusive`] does for a file nobody writes).
    pub fn verify_audit_snapshot(&self, key: Option<&MasterKey>) -> Result<AuditReport, CasError> {
        let (report, len) = self.run(BACKUP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| {
                let tx = snapshot(c.client()?).await?;
                let r = verify_in(&tx, key).await?;
                tx.commit().await?;
                Ok::<_, PgError>(r)
            })
        })?;
        check_len(report, len)
    }

    /// Writes a verified backup (`src`, with the counts `expect`) into
    /// this database, which must hold no CAS data yet: one transaction
    /// (see `restore_in`). Opened with [`Schema::Later`] and the key.
    pub(crate) fn restore_from(
        &self,
        src: &RedbStore,
        expect: &BackupStats,
    ) -> Result<AuditReport, CasError> {
        let key = self.key()?;
        self.run(BACKUP_TIMEOUT, |pool| async move {
            // Not retried: a second attempt after an unknown outcome would
            // find the first one's rows and refuse.
            let mut c = pool.get().await?;
            let r = restore_in(c.client()?, &pool.target, src, key, expect).await;
            c.usable = match &r {
                Ok(_) => true,
                Err(e) => e.connection_usable(),
            };
            r
        })
    }

    fn key(&self) -> Result<&MasterKey, CasError> {
        self.key
            .as_deref()
            .ok_or_else(|| CasError::Config("the store is open without the master key".into()))
    }

    /// Runs `op` against the pool within `limit`, on the calling thread.
    fn run<'a, T, F, Fut>(&'a self, limit: Duration, op: F) -> Result<T, CasError>
    where
        F: FnOnce(&'a Arc<Pool>) -> Fut,
        Fut: Future<Output = Result<T, PgError>> + 'a,
    {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| CasError::Internal("the PostgreSQL store is closed".into()))?;
        // Timers and sockets created by `op` belong to the store's runtime,
        // whose threads drive them.
        let _ctx = rt.enter();
        let fut = tokio::time::timeout(limit, op(&self.pool));
        match block_on(fut) {
            Ok(r) => r.map_err(|e| e.into_cas(&self.pool.target)),
            Err(_) => Err(CasError::Store(format!(
                "PostgreSQL {}: no answer within {} s",
                self.pool.target,
                limit.as_secs()
            ))),
        }
    }
}

/// A read-only transaction on one snapshot of every table (REPEATABLE
/// READ): a consistent view while replicas keep writing.
async fn snapshot(c: &mut Client) -> Result<Transaction<'_>, PgError> {
    Ok(c.build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

async fn init_schema(c: &mut Client, create: bool, target: &str) -> Result<(), PgError> {
    let tx = c.transaction().await?;
    ensure_schema(&tx, create, target).await?;
    tx.commit().await?;
    Ok(())
}

/// Checks the schema version (creating the tables if `create` and there
/// are none) under the advisory lock, inside the caller's transaction.
async fn ensure_schema(tx: &Transaction<'_>, create: bool, target: &str) -> Result<(), PgError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    if create {
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS sigil_cas_schema (
                id smallint PRIMARY KEY CHECK (id = 1),
                version integer NOT NULL)",
        )
        .await?;
    } else {
        let r = tx
            .query_one("SELECT to_regclass('sigil_cas_schema') IS NOT NULL", &[])
            .await?;
        if !col::<bool>(&r, 0)? {
            return Err(CasError::Store(format!(
                "PostgreSQL {target} holds no Sigil CAS store (no table sigil_cas_schema in its search_path)"
            ))
            .into());
        }
    }
    let version: Option<i32> = match tx
        .query_opt("SELECT version FROM sigil_cas_schema WHERE id = 1", &[])
        .await?
    {
        Some(r) => Some(col(&r, 0)?),
        None => None,
    };
    match version {
        None if create => {
            tx.batch_execute(SCHEMA_V1).await?;
            tx.execute(
                "INSERT INTO sigil_cas_schema (id, version) VALUES (1, $1)",
                &[&SCHEMA_VERSION],
            )
            .await?;
            tx.execute(
                "INSERT INTO sigil_cas_meta (key, value) VALUES ($1, $2)",
                &[&FORMAT, &FORMAT_VERSION],
            )
            .await?;
        }
        None => {
            return Err(CasError::Store(format!(
                "PostgreSQL {target}: the Sigil CAS schema table is empty (a store never completed)"
            ))
            .into())
        }
        Some(SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(CasError::Store(format!(
                "the database holds Sigil CAS schema version {v}; this Sigil knows version {SCHEMA_VERSION} only (use a matching Sigil)"
            ))
            .into())
        }
    }
    if meta_in(tx, FORMAT).await?.as_deref() != Some(FORMAT_VERSION) {
        return Err(CasError::Store("the database has an unknown store format".into()).into());
    }
    Ok(())
}

/// The audit chain, its head and (with the key) the head MAC, read in the
/// caller's transaction, and the number of rows of the log.
async fn verify_in(
    tx: &Transaction<'_>,
    key: Option<&MasterKey>,
) -> Result<(AuditReport, u64), PgError> {
    let head = meta_in(tx, AUDIT_HEAD)
        .await?
        .map(|v| parse_head(&v))
        .transpose()?;
    let mut check = ChainCheck::new();
    loop {
        let want = check.want(head.as_ref());
        if want == 0 {
            break;
        }
        let batch = range_in(tx, check.count(), want).await?;
        if batch.is_empty() {
            break;
        }
        check.feed(&batch)?;
    }
    let len = len_in(tx).await?;
    Ok((check.finish(head.as_ref(), key)?, len))
}

/// Rows inserted per statement by a restore.
const RESTORE_ROWS: usize = 512;

/// Inserts `(text, bytea)` rows with one statement per batch.
async fn insert_pairs(
    tx: &Transaction<'_>,
    table: &str,
    columns: &str,
    rows: &[(&str, &[u8])],
) -> Result<(), PgError> {
    let sql =
        format!("INSERT INTO {table} ({columns}) SELECT * FROM unnest($1::text[], $2::bytea[])");
    for chunk in rows.chunks(RESTORE_ROWS) {
        let (k, v): (Vec<&str>, Vec<&[u8]>) = chunk.iter().copied().unzip();
        tx.execute(sql.as_str(), &[&k, &v]).await?;
    }
    Ok(())
}

/// One restore: schema (created if absent), the emptiness check, every
/// row of the backup, and the audit chain read back and verified with the
/// key, in one transaction, so a refused or failed restore writes nothing.
async fn restore_in(
    c: &mut Client,
    target: &str,
    src: &RedbStore,
    key: &MasterKey,
    expect: &BackupStats,
) -> Result<AuditReport, PgError> {
    let tx = c.transaction().await?;
    ensure_schema(&tx, true, target).await?;
    // No CAS may write meanwhile (one starting waits on the advisory lock).
    tx.batch_execute(
        "LOCK TABLE sigil_cas_sessions, sigil_cas_secrets, sigil_cas_audit, sigil_cas_meta IN EXCLUSIVE MODE",
    )
    .await?;
    let r = tx
        .query_one(
            "SELECT (SELECT count(*) FROM sigil_cas_sessions), (SELECT count(*) FROM sigil_cas_secrets),
                    (SELECT count(*) FROM sigil_cas_audit), (SELECT count(*) FROM sigil_cas_meta WHERE key <> $1)",
            &[&FORMAT],
        )
        .await?;
    let held: [i64; 4] = [col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?];
    if held.iter().any(|n| *n != 0) {
        return Err(CasError::Config(format!(
            "PostgreSQL {target} is not empty: it holds a CAS store ({} sessions, {} secrets, {} audit entries, {} meta values); a backup is restored only into an empty database (a new database, or a new schema chosen with options=-csearch_path%3DNAME in the URL); nothing was written",
            held[0], held[1], held[2], held[3]
        ))
        .into());
    }
    let sessions = src.raw_rows(BackupTable::Sessions)?;
    let rows: Vec<(&str, &[u8])> = sessions.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
    insert_pairs(&tx, "sigil_cas_sessions", "name, record", &rows).await?;
    let meta = src.raw_rows(BackupTable::Meta)?;
    let rows: Vec<(&str, &[u8])> = meta
        .iter()
        .filter(|(k, _)| k != FORMAT)
        .map(|(k, v)| (k.as_str(), &v[..]))
        .collect();
    insert_pairs(&tx, "sigil_cas_meta", "key, value", &rows).await?;
    let secrets = src.raw_rows(BackupTable::Secrets)?;
    for chunk in secrets.chunks(RESTORE_ROWS) {
        let mut cols: (Vec<&str>, Vec<&str>, Vec<&[u8]>) = Default::default();
        for (k, v) in chunk {
            let (session, name) = split_secret_key(k)?;
            cols.0.push(session);
            cols.1.push(name);
            cols.2.push(v);
        }
        tx.execute(
            "INSERT INTO sigil_cas_secrets (session, name, blob)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])",
            &[&cols.0, &cols.1, &cols.2],
        )
        .await?;
    }
    let mut from = 0u64;
    loop {
        let rows = src.raw_audit(from, BATCH as u64)?;
        let Some((last, _)) = rows.last() else { break };
        from = last.saturating_add(1);
        let (idx, entries): (Vec<i64>, Vec<&[u8]>) =
            rows.iter().map(|(i, e)| (sql_index(*i), &e[..])).unzip();
        tx.execute(
            "INSERT INTO sigil_cas_audit (idx, entry) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
            &[&idx, &entries],
        )
        .await?;
    }
    // Read back: what is committed verifies, with the key, as the backup did.
    let (report, len) = verify_in(&tx, Some(key)).await?;
    let report = check_len(report, len)?;
    let r = tx
        .query_one(
            "SELECT (SELECT count(*) FROM sigil_cas_sessions), (SELECT count(*) FROM sigil_cas_secrets)",
            &[],
        )
        .await?;
    let (n_sessions, n_secrets): (i64, i64) = (col(&r, 0)?, col(&r, 1)?);
    if u64::try_from(n_sessions).ok() != Some(expect.sessions)
        || u64::try_from(n_secrets).ok() != Some(expect.secrets)
        || report.entries != expect.audit_entries
    {
        return Err(CasError::Internal(format!(
            "restore read back {n_sessions} sessions, {n_secrets} secrets and {} audit entries instead of {}, {} and {}; nothing was written",
            report.entries, expect.sessions, expect.secrets, expect.audit_entries
        ))
        .into());
    }
    commit_write(tx).await?;
    Ok(report)
}

async fn meta_in(
    c: &impl tokio_postgres::GenericClient,
    key: &str,
) -> Result<Option<Vec<u8>>, PgError> {
    match c
        .query_opt("SELECT value FROM sigil_cas_meta WHERE key = $1", &[&key])
        .await?
    {
        Some(r) => Ok(Some(col(&r, 0)?)),
        None => Ok(None),
    }
}

async fn range_in(
    c: &impl tokio_postgres::GenericClient,
    from: u64,
    limit: u64,
) -> Result<Vec<AuditEntry>, PgError> {
    let (a, b) = (sql_index(from), sql_index(from.saturating_add(limit)));
    let rows = c
        .query(
            "SELECT idx, entry FROM sigil_cas_audit WHERE idx >= $1 AND idx < $2 ORDER BY idx",
            &[&a, &b],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let i = index_of(col(r, 0)?)?;
            Ok(parse_entry(col(r, 1)?, i)?)
        })
        .collect()
}

async fn len_in(c: &impl tokio_postgres::GenericClient) -> Result<u64, PgError> {
    let r = c
        .query_one("SELECT count(*) FROM sigil_cas_audit", &[])
        .await?;
    index_of(col(&r, 0)?)
}

/// Appends the next entry and updates the head; the caller holds the
/// audit table lock.
async fn append_in(
    tx: &Transaction<'_>,
    key: &MasterKey,
    draft: AuditDraft,
) -> Result<AuditEntry, PgError> {
    let last = match tx
        .query_opt(
            "SELECT idx, entry FROM sigil_cas_audit ORDER BY idx DESC LIMIT 1",
            &[],
        )
        .await?
    {
        Some(r) => Some((index_of(col(&r, 0)?)?, col::<Vec<u8>>(&r, 1)?)),
        None => None,
    };
    let (e, bytes, head) = next_entry(key, last.as_ref().map(|(i, b)| (*i, &b[..])), draft)?;
    tx.execute(
        "INSERT INTO sigil_cas_audit (idx, entry) VALUES ($1, $2)",
        &[&sql_index(e.index), &bytes],
    )
    .await?;
    tx.execute(
        "INSERT INTO sigil_cas_meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&AUDIT_HEAD, &head],
    )
    .await?;
    Ok(e)
}

/// A writing transaction: SERIALIZABLE, and every writer first takes the
/// audit table in EXCLUSIVE mode (readers are not blocked). LOCK takes no
/// snapshot, so the snapshot starts after the previous writer committed:
/// writers run one after the other and see each other's data, and the
/// chain cannot fork. SERIALIZABLE stays as the safety net; its rare
/// failures are retried.
async fn begin_write(c: &mut Client) -> Result<Transaction<'_>, PgError> {
    let tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await?;
    tx.batch_execute("LOCK TABLE sigil_cas_audit IN EXCLUSIVE MODE")
        .await?;
    Ok(tx)
}

async fn commit_write(tx: Transaction<'_>) -> Result<(), PgError> {
    tx.commit().await.map_err(|e| {
        if e.as_db_error().is_some() {
            // The server answered (e.g. a serialization failure): rolled back.
            PgError::Pg(e)
        } else {
            PgError::InDoubt(e)
        }
    })
}

/// One attempt of a commit: `Ok(Err(current))` is a failed compare-and-swap.
async fn commit_in(
    c: &mut Client,
    key: &MasterKey,
    change: &Change,
) -> Result<Result<AuditEntry, Option<String>>, PgError> {
    let tx = begin_write(c).await?;
    let current = match tx
        .query_opt(
            "SELECT record FROM sigil_cas_sessions WHERE name = $1",
            &[&change.name],
        )
        .await?
    {
        Some(r) => Some(parse_record(&change.name, col(&r, 0)?)?.hash),
        None => None,
    };
    if !expect_holds(&change.expect, current.as_deref()) {
        tx.rollback().await?;
        return Ok(Err(current));
    }
    match &change.record {
        Some(r) => {
            tx.execute(
                "INSERT INTO sigil_cas_sessions (name, record) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
                &[&change.name, &record_bytes(r)?],
            )
            .await?;
        }
        None => {
            tx.execute(
                "DELETE FROM sigil_cas_sessions WHERE name = $1",
                &[&change.name],
            )
            .await?;
        }
    }
    tx.execute(
        "DELETE FROM sigil_cas_secrets WHERE session = $1",
        &[&change.name],
    )
    .await?;
    if !change.secrets.is_empty() {
        let st = tx
            .prepare("INSERT INTO sigil_cas_secrets (session, name, blob) VALUES ($1, $2, $3)")
            .await?;
        for (n, blob) in &change.secrets {
            tx.execute(&st, &[&change.name, n, blob]).await?;
        }
    }
    let e = append_in(&tx, key, change.audit.clone()).await?;
    commit_write(tx).await?;
    Ok(Ok(e))
}

impl SessionStore for PostgresStore {
    fn get(&self, name: &str) -> Result<Option<SessionRecord>, CasError> {
        self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| {
                match c
                    .client()?
                    .query_opt(
                        "SELECT record FROM sigil_cas_sessions WHERE name = $1",
                        &[&name],
                    )
                    .await?
                {
                    Some(r) => Ok(Some(parse_record(name, col(&r, 0)?)?)),
                    None => Ok(None),
                }
            })
        })
    }

    fn list(&self) -> Result<Vec<SessionRecord>, CasError> {
        self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| {
                let rows = c
                    .client()?
                    .query(
                        "SELECT name, record FROM sigil_cas_sessions ORDER BY name",
                        &[],
                    )
                    .await?;
                rows.iter()
                    .map(|r| Ok(parse_record(col(r, 0)?, col(r, 1)?)?))
                    .collect::<Result<Vec<_>, PgError>>()
            })
        })
    }

    fn secrets(&self, session: &str) -> Result<Vec<(String, Vec<u8>)>, CasError> {
        self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| {
                let rows = c
                    .client()?
                    .query(
                        "SELECT name, blob FROM sigil_cas_secrets WHERE session = $1 ORDER BY name",
                        &[&session],
                    )
                    .await?;
                rows.iter()
                    .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
                    .collect::<Result<Vec<_>, PgError>>()
            })
        })
    }

    fn commit(&self, change: Change) -> Result<AuditEntry, CommitError> {
        let key = self.key()?;
        let change = &change;
        match self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| commit_in(c.client()?, key, change).await)
        })? {
            Ok(e) => Ok(e),
            Err(current) => Err(CommitError::Conflict { current }),
        }
    }

    fn append_audit(&self, draft: AuditDraft) -> Result<AuditEntry, CasError> {
        let key = self.key()?;
        let draft = &draft;
        self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| {
                let tx = begin_write(c.client()?).await?;
                let e = append_in(&tx, key, draft.clone()).await?;
                commit_write(tx).await?;
                Ok(e)
            })
        })
    }

    fn audit_len(&self) -> Result<u64, CasError> {
        self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| len_in(c.client()?).await)
        })
    }

    fn audit_range(&self, from: u64, limit: u64) -> Result<Vec<AuditEntry>, CasError> {
        self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| range_in(c.client()?, from, limit).await)
        })
    }

    fn audit_head(&self) -> Result<Option<AuditHead>, CasError> {
        self.meta(AUDIT_HEAD)?.map(|v| parse_head(&v)).transpose()
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, CasError> {
        self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| meta_in(c.client()?, key).await)
        })
    }

    fn meta_insert_if_absent(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, CasError> {
        self.run(OP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| {
                let client = c.client()?;
                // Two statements, each with its own snapshot (READ
                // COMMITTED): if another replica's insert won, the second
                // sees its value.
                let inserted = client
                    .query_opt(
                        "INSERT INTO sigil_cas_meta (key, value) VALUES ($1, $2)
                         ON CONFLICT (key) DO NOTHING RETURNING value",
                        &[&key, &value],
                    )
                    .await?;
                match inserted {
                    Some(r) => col(&r, 0),
                    None => meta_in(client, key).await?.ok_or_else(|| {
                        PgError::Cas(CasError::Store(format!(
                            "meta value `{key}` vanished while being set"
                        )))
                    }),
                }
            })
        })
    }

    fn backup_to(&self, out: &Path) -> Result<BackupStats, CasError> {
        if out.exists() {
            return Err(CasError::BadRequest(format!(
                "{} exists; choose a new file for the backup",
                out.display()
            )));
        }
        self.run(BACKUP_TIMEOUT, |pool| async move {
            attempt!(pool, |c| {
                let mut w = BackupWriter::create(out)?;
                // One snapshot of every table while writers go on.
                let tx = snapshot(c.client()?).await?;
                let rows = tx
                    .query("SELECT name, record FROM sigil_cas_sessions", &[])
                    .await?;
                let sessions = rows
                    .iter()
                    .map(|r| Ok((col::<String>(r, 0)?, col::<Vec<u8>>(r, 1)?)))
                    .collect::<Result<Vec<_>, PgError>>()?;
                w.put(BackupTable::Sessions, sessions)?;
                let rows = tx
                    .query("SELECT session, name, blob FROM sigil_cas_secrets", &[])
                    .await?;
                let secrets = rows
                    .iter()
                    .map(|r| {
                        Ok((
                            secret_key(col(r, 0)?, col(r, 1)?),
                            col::<Vec<u8>>(r, 2)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, PgError>>()?;
                w.put(BackupTable::Secrets, secrets)?;
                let rows = tx.query("SELECT key, value FROM sigil_cas_meta", &[]).await?;
                let meta = rows
                    .iter()
                    .map(|r| Ok((col::<String>(r, 0)?, col::<Vec<u8>>(r, 1)?)))
                    .collect::<Result<Vec<_>, PgError>>()?;
                w.put(BackupTable::Meta, meta)?;
                let mut from = 0i64;
                loop {
                    let rows = tx
                        .query(
                            "SELECT idx, entry FROM sigil_cas_audit WHERE idx >= $1 ORDER BY idx LIMIT $2",
                            &[&from, &BATCH],
                        )
                        .await?;
                    let Some(last) = rows.last() else { break };
                    from = col::<i64>(last, 0)?.saturating_add(1);
                    let batch = rows
                        .iter()
                        .map(|r| Ok((index_of(col(r, 0)?)?, col::<Vec<u8>>(r, 1)?)))
                        .collect::<Result<Vec<_>, PgError>>()?;
                    w.put_audit(batch)?;
                }
                tx.commit().await?;
                Ok(w.finish()?)
            })
        })
    }
}

/// TLS to the server with rustls (ring), and SCRAM channel binding.
mod tls {
    use std::io;
    use std::path::Path;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{CertificateError, RootCertStore};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
    use zeroize::Zeroizing;

    use super::{SslMode, MAX_CA_FILE};
    use crate::store::PostgresOptions;
    use crate::CasError;

    /// Largest client key file read.
    const MAX_KEY_FILE: u64 = 64 * 1024;

    /// The client certificate chain (PEM, leaf first).
    fn client_chain(p: &Path) -> Result<Vec<CertificateDer<'static>>, CasError> {
        let bad = |why: String| {
            CasError::Config(format!(
                "PostgreSQL client certificate {}: {why}",
                p.display()
            ))
        };
        let meta = std::fs::metadata(p).map_err(|e| bad(e.to_string()))?;
        if meta.len() > MAX_CA_FILE {
            return Err(bad(format!("larger than {MAX_CA_FILE} bytes")));
        }
        let pem = std::fs::read(p).map_err(|e| bad(e.to_string()))?;
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not PEM certificates ({e})")))?;
        if chain.is_empty() {
            return Err(bad("holds no certificate".into()));
        }
        Ok(chain)
    }

    /// The client private key (PEM: PKCS#8, PKCS#1 or SEC1). As libpq
    /// requires, the file is owned by this user with no access for group
    /// or others, or owned by root with at most group read (a Kubernetes
    /// Secret volume with `fsGroup`). Nothing of its content is ever put
    /// in a message.
    fn client_key(p: &Path) -> Result<PrivateKeyDer<'static>, CasError> {
        use std::os::unix::fs::MetadataExt;
        let bad =
            |why: String| CasError::Config(format!("PostgreSQL client key {}: {why}", p.display()));
        let meta = std::fs::metadata(p).map_err(|e| bad(e.to_string()))?;
        let mode = meta.mode() & 0o777;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let private = match meta.uid() {
            0 => mode & 0o037 == 0,
            owner => owner == me && mode & 0o077 == 0,
        };
        if !private {
            return Err(bad(format!(
                "mode {mode:o}, owner uid {}: it must be owned by this user with mode 0600 (or by root with mode 0640 at most); run `chmod 600 {}`",
                meta.uid(),
                p.display()
            )));
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(bad(format!("larger than {MAX_KEY_FILE} bytes")));
        }
        let pem = Zeroizing::new(std::fs::read(p).map_err(|e| bad(e.to_string()))?);
        // The parser's error could quote a line of the file: not shown.
        PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|_| bad("holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into()))
    }

    fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, CasError> {
        let mut roots = RootCertStore::empty();
        let Some(p) = ca_file else {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok(roots);
        };
        let bad =
            |why: String| CasError::Config(format!("PostgreSQL CA file {}: {why}", p.display()));
        let meta = std::fs::metadata(p).map_err(|e| bad(e.to_string()))?;
        if meta.len() > MAX_CA_FILE {
            return Err(bad(format!("larger than {MAX_CA_FILE} bytes")));
        }
        let pem = std::fs::read(p).map_err(|e| bad(e.to_string()))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("not PEM certificates ({e})")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("unusable certificate ({e})")))?;
        }
        if roots.is_empty() {
            return Err(bad("holds no certificate".into()));
        }
        Ok(roots)
    }

    /// `verify-ca`, and `require` with a CA file: the chain must verify,
    /// the name is not checked. `require` without a CA file (`webpki`
    /// absent): the certificate is not checked, encryption only (as libpq
    /// does). The handshake signature is checked either way.
    #[derive(Debug)]
    struct ChainOnly {
        webpki: Option<Arc<WebPkiServerVerifier>>,
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let Some(webpki) = &self.webpki else {
                return Ok(ServerCertVerified::assertion());
            };
            // webpki checks the chain first, the name last: a name error
            // means the chain verified.
            match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                r => r,
            }
        }

        // The same algorithms the webpki verifier was built with.
        sigil_client::provider_signature_checks!(provider);
    }

    /// Makes rustls connections for tokio-postgres.
    #[derive(Clone)]
    pub(super) struct MakeRustls(Arc<rustls::ClientConfig>);

    impl MakeRustls {
        pub(super) fn new(mode: SslMode, opts: &PostgresOptions) -> Result<MakeRustls, CasError> {
            let ca_file = opts.ca_file.as_deref();
            let p = sigil_client::tls::provider();
            let builder = rustls::ClientConfig::builder_with_provider(p.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| CasError::Config(e.to_string()))?;
            let webpki = |roots: RootCertStore| {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), p.clone())
                    .build()
                    .map_err(|e| CasError::Config(format!("PostgreSQL TLS roots: {e}")))
            };
            let verifier: Arc<dyn ServerCertVerifier> = match (mode, ca_file) {
                (SslMode::VerifyFull | SslMode::Disable, _) => webpki(roots(ca_file)?)?,
                (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Arc::new(ChainOnly {
                    webpki: Some(webpki(roots(ca_file)?)?),
                    provider: p.clone(),
                }),
                (SslMode::Require, None) => Arc::new(ChainOnly {
                    webpki: None,
                    provider: p.clone(),
                }),
            };
            let builder = builder
                .dangerous()
                .with_custom_certificate_verifier(verifier);
            let mut cfg = match (&opts.client_cert, &opts.client_key) {
                (Some(cert), Some(key)) => builder
                    .with_client_auth_cert(client_chain(cert)?, client_key(key)?)
                    .map_err(|e| {
                        let why = match e {
                            rustls::Error::InconsistentKeys(_) => {
                                "the key does not belong to the certificate".to_string()
                            }
                            e => e.to_string(),
                        };
                        CasError::Config(format!(
                            "PostgreSQL client certificate {} and key {}: {why}",
                            cert.display(),
                            key.display()
                        ))
                    })?,
                (None, None) => builder.with_no_client_auth(),
                _ => {
                    return Err(CasError::Config(
                        "a PostgreSQL client certificate needs its key and the key its certificate: give both --postgres-client-cert and --postgres-client-key".into(),
                    ))
                }
            };
            // PostgreSQL 17's direct TLS wants this ALPN; older servers ignore it.
            cfg.alpn_protocols = vec![b"postgresql".to_vec()];
            Ok(MakeRustls(Arc::new(cfg)))
        }
    }

    impl<S> MakeTlsConnect<S> for MakeRustls
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = RustlsStream<S>;
        type TlsConnect = RustlsConnect;
        type Error = io::Error;

        fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
            // tokio-postgres asks for a connector for every host, unix
            // sockets too (which never use it, and whose path is no DNS
            // name): a bad name is an error only once TLS is attempted.
            Ok(RustlsConnect {
                cfg: self.0.clone(),
                name: ServerName::try_from(domain.to_string()).ok(),
            })
        }
    }

    /// One TLS connection to make.
    pub(super) struct RustlsConnect {
        cfg: Arc<rustls::ClientConfig>,
        name: Option<ServerName<'static>>,
    }

    impl<S> TlsConnect<S> for RustlsConnect
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = RustlsStream<S>;
        type Error = io::Error;
        type Future =
            Pin<Box<dyn std::future::Future<Output = io::Result<RustlsStream<S>>> + Send>>;

        fn connect(self, stream: S) -> Self::Future {
            Box::pin(async move {
                let name = self.name.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the host is neither a DNS name nor an IP address",
                    )
                })?;
                let s = tokio_rustls::TlsConnector::from(self.cfg)
                    .connect(name, stream)
                    .await?;
                Ok(RustlsStream(s))
            })
        }
    }

    /// A TLS stream to the server.
    pub(super) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

    /// RFC 5929 `tls-server-end-point`: the server certificate hashed with
    /// its signature's hash (SHA-256 for MD5 and SHA-1); none for other
    /// algorithms, as PostgreSQL does.
    fn end_point(cert: &[u8]) -> Option<Vec<u8>> {
        use ring::digest::{digest, SHA256, SHA384, SHA512};
        let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
        let alg = match c.signature_algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.113549.1.1.4"
            | "1.2.840.113549.1.1.5"
            | "1.2.840.113549.1.1.11"
            | "1.2.840.10045.4.1"
            | "1.2.840.10045.4.3.2" => &SHA256,
            "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => &SHA384,
            "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => &SHA512,
            _ => return None,
        };
        Some(digest(alg, cert).as_ref().to_vec())
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
        fn channel_binding(&self) -> ChannelBinding {
            let (_, conn) = self.0.get_ref();
            match conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| end_point(c))
            {
                Some(h) => ChannelBinding::tls_server_end_point(h),
                None => ChannelBinding::none(),
            }
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_split_off_and_defaults_to_verify_full() {
        let (c, m) = parse_url("postgres://u:pw@db.example:5433/cas").unwrap();
        assert_eq!(m, SslMode::VerifyFull);
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(c.get_dbname(), Some("cas"));
        let (c, m) =
            parse_url("postgresql://u@db/cas?sslmode=verify-ca&application_name=x").unwrap();
        assert_eq!(m, SslMode::VerifyCa);
        assert_eq!(c.get_application_name(), Some("x"));
        let (c, m) = parse_url("postgres://u@db/cas?sslmode=disable").unwrap();
        assert_eq!(m, SslMode::Disable);
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        // A unix socket never uses TLS.
        let (c, m) = parse_url("postgres://u@%2Frun%2Fpg/cas").unwrap();
        assert_eq!(m, SslMode::Disable);
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn weak_or_unknown_settings_are_refused_without_echoing_the_password() {
        for (url, what) in [
            ("postgres://u:s3cret@db/cas?sslmode=prefer", "fall back"),
            ("postgres://u:s3cret@db/cas?sslmode=allow", "fall back"),
            ("postgres://u:s3cret@db/cas?sslmode=maybe", "unknown"),
            (
                "postgres://u:s3cret@db/cas?sslrootcert=/x",
                "--postgres-ca-file",
            ),
            ("host=db password=s3cret", "URL"),
            ("postgres://u:s3cret@db/cas?bogus=1", "bogus"),
        ] {
            let e = parse_url(url).unwrap_err().to_string();
            assert!(e.contains(what), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{url}: {e}");
        }
    }

    #[test]
    fn mixed_socket_and_tcp_hosts_are_refused() {
        let e = parse_url("postgres://u@db/cas?host=/run/pg,db2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mixes"), "{e}");
    }
}
