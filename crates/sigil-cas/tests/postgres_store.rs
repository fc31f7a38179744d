//! The PostgreSQL store on its own: TLS modes and authentication against a
//! real server, calls from any thread, what someone with write access to
//! the database can and cannot do, schema and master-key checks, a server
//! restart under a running CAS, replicas starting together; restoring a
//! backup into PostgreSQL (refusals), offline audit verification, and
//! client-certificate authentication (pg_hba `cert`).
//! (The behaviour shared with redb is in `store_backends.rs`.)
#![cfg(feature = "postgres")]

mod common;
mod postgres_support;

use std::sync::Arc;

use common::*;
use postgres_support::{Cluster, CERT_ROLE, PASSWORD};
use sigil_cas::{
    Config, MasterKey, MasterKeySource, PostgresOptions, PostgresStore, Server, SessionStore,
    StoreConfig,
};
use sigil_client::{AuditEntry, ClientError};

fn pg_config(dir: &std::path::Path, c: &Cluster, db: &str) -> Config {
    let mut cfg = config(dir);
    cfg.store = StoreConfig::Postgres(c.options(db));
    cfg
}

fn opts(
    c: &Cluster,
    host: &str,
    db: &str,
    query: &str,
    ca: Option<&std::path::Path>,
) -> PostgresOptions {
    let mut o = PostgresOptions::new(c.url_on(host, db, query));
    o.ca_file = ca.map(|p| p.to_path_buf());
    o
}

fn master() -> Arc<MasterKey> {
    Arc::new(MasterKey::load(&key(), false).unwrap())
}

fn connect_err(o: &PostgresOptions) -> String {
    let e = PostgresStore::connect(o, None).unwrap_err().to_string();
    assert!(!e.contains(PASSWORD), "the password leaked: {e}");
    e
}

#[test]
fn tls_modes_and_authentication() {
    let Some(c) = postgres_support::shared() else {
        return;
    };
    let db = c.new_database();
    let ca = Some(c.ca_file.as_path());
    // verify-full (the default) with the server's CA: connects, creates
    // the schema; SCRAM with channel binding works over our TLS.
    PostgresStore::connect(&opts(&c, "127.0.0.1", &db, "", ca), None).unwrap();
    PostgresStore::connect(
        &opts(&c, "127.0.0.1", &db, "channel_binding=require", ca),
        None,
    )
    .unwrap();
    // 127.0.0.2 is the same server, but not a name in its certificate.
    let e = connect_err(&opts(&c, "127.0.0.2", &db, "sslmode=verify-full", ca));
    assert!(e.contains("certificate"), "{e}");
    PostgresStore::connect(&opts(&c, "127.0.0.2", &db, "sslmode=verify-ca", ca), None).unwrap();
    // Another CA: refused whether the name is checked or not.
    let other = Some(c.other_ca_file.as_path());
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = connect_err(&opts(
            &c,
            "127.0.0.1",
            &db,
            &format!("sslmode={mode}"),
            other,
        ));
        assert!(
            e.contains("UnknownIssuer") || e.contains("certificate"),
            "{mode}: {e}"
        );
    }
    // The Mozilla roots (no CA file) do not know this test CA.
    let e = connect_err(&opts(&c, "127.0.0.1", &db, "", None));
    assert!(e.contains("certificate"), "{e}");
    // require without a CA file: encrypted, not authenticated (as libpq).
    PostgresStore::connect(&opts(&c, "127.0.0.1", &db, "sslmode=require", None), None).unwrap();
    // A unix socket (host=/path) uses no TLS and needs no DNS name.
    let sock = PostgresOptions::new(format!(
        "postgres://sigil@/{db}?host={}&port={}",
        c.socket_dir().display(),
        c.port
    ));
    PostgresStore::connect(&sock, None).unwrap();
    // No TLS: this server refuses, and says why.
    let e = connect_err(&opts(&c, "127.0.0.1", &db, "sslmode=disable", None));
    assert!(e.contains("no encryption") || e.contains("pg_hba"), "{e}");
    // A wrong password is refused without being echoed.
    let mut o = opts(&c, "127.0.0.1", &db, "", ca);
    o.url = zeroize::Zeroizing::new(o.url.replace(PASSWORD, "Wr0ng-pw-123"));
    let e = PostgresStore::connect(&o, None).unwrap_err().to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("Wr0ng-pw-123"), "{e}");
    // Debug output and messages name the server, never the password.
    let o = c.options(&db);
    let shown = format!("{o:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("127.0.0.1"),
        "{shown}"
    );
    let store = PostgresStore::connect(&o, None).unwrap();
    assert!(!format!("{store:?}").contains(PASSWORD));
    assert!(!store.target().contains(PASSWORD));
}

/// The trait is synchronous; called straight from an async task on a
/// current-thread runtime it must neither panic ("runtime within a
/// runtime") nor deadlock.
#[tokio::test(flavor = "current_thread")]
async fn store_calls_from_an_async_task_work() {
    let Some(c) = postgres_support::shared() else {
        return;
    };
    let db = c.new_database();
    let store = PostgresStore::connect(&c.options(&db), Some(master())).unwrap();
    assert_eq!(store.get("nothing").unwrap(), None);
    let v = store.meta_insert_if_absent("k", b"first").unwrap();
    assert_eq!(v, b"first");
    assert_eq!(
        store.meta_insert_if_absent("k", b"second").unwrap(),
        b"first"
    );
    assert_eq!(store.audit_len().unwrap(), 0);
    drop(store); // dropping it here must not panic either
}

async fn populated(c: &Cluster, db: &str, dir: &std::path::Path) -> sigil_cas::RunningServer {
    populated_with(pg_config(dir, c, db)).await
}

/// A CAS on `cfg` with two sessions (six secrets, an update).
async fn populated_with(cfg: Config) -> sigil_cas::RunningServer {
    let s = Server::start(cfg).await.unwrap();
    let alice = id("alice");
    let a = client(&s, Some(&alice)).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    a.create_session(&app_yaml("private", &pol, "info"))
        .await
        .unwrap();
    a.create_session(&simple_yaml("two", &pol)).await.unwrap();
    a.update_session(&simple_yaml("two", &pol).replace("size: 8", "size: 12"))
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_sees_no_clear_secret_or_document() {
    let Some(c) = postgres_support::shared() else {
        return;
    };
    let db = c.new_database();
    let d = tempfile::tempdir().unwrap();
    let s = populated(&c, &db, d.path()).await;
    s.shutdown().await;
    // The explicit value and the command line of the session are in no row.
    for needle in ["explicit-greeting-value", "/bin/app", "BEGIN"] {
        let n = c.psql(
            &db,
            &format!(
                "SELECT (SELECT count(*) FROM sigil_cas_secrets WHERE position(convert_to('{needle}', 'UTF8') in blob) > 0)
                      + (SELECT count(*) FROM sigil_cas_sessions WHERE position(convert_to('{needle}', 'UTF8') in record) > 0)
                      + (SELECT count(*) FROM sigil_cas_meta WHERE position(convert_to('{needle}', 'UTF8') in value) > 0)"
            ),
        );
        assert_eq!(n.trim(), "0", "{needle} is stored in clear");
    }
    let secrets = c.psql(
        &db,
        "SELECT count(*) FROM sigil_cas_secrets WHERE session = 'private'",
    );
    assert_eq!(secrets.trim(), "6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_row_is_detected() {
    let Some(c) = postgres_support::shared() else {
        return;
    };
    // A session record whose clear-text policy is edited to let anyone read.
    let db = c.new_database();
    let d = tempfile::tempdir().unwrap();
    let s = populated(&c, &db, d.path()).await;
    let changed = c.psql(
        &db,
        "UPDATE sigil_cas_sessions SET record = convert_to(replace(convert_from(record, 'UTF8'), '\"read\":[\"CREATOR\"]', '\"read\":[\"ANY\"]'), 'UTF8') WHERE name = 'private' RETURNING name",
    );
    assert_eq!(changed.lines().next(), Some("private"));
    let mallory = client(&s, Some(&id("mallory"))).await;
    match mallory.get_session("private").await.unwrap_err() {
        ClientError::Api { status, error, .. } => {
            assert_eq!(status, 500);
            assert!(error.contains("integrity"), "{error}");
        }
        e => panic!("{e}"),
    }
    s.shutdown().await;

    // An audit entry rewritten: the chain breaks at it, the CAS refuses to start.
    let db = c.new_database();
    let d = tempfile::tempdir().unwrap();
    let s = populated(&c, &db, d.path()).await;
    c.psql(
        &db,
        "UPDATE sigil_cas_audit SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'session.create', 'session.delete'), 'UTF8') WHERE idx = 1",
    );
    let e = s.state.verify_audit().unwrap_err().to_string();
    assert!(e.contains("entry 1"), "{e}");
    s.shutdown().await;
    let e = Server::start(pg_config(d.path(), &c, &db))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("tampered"), "{e}");

    // The last entry removed: the MAC'd head still counts it.
    let db = c.new_database();
    let d = tempfile::tempdir().unwrap();
    populated(&c, &db, d.path()).await.shutdown().await;
    c.psql(
        &db,
        "DELETE FROM sigil_cas_audit WHERE idx = (SELECT max(idx) FROM sigil_cas_audit)",
    );
    let e = Server::start(pg_config(d.path(), &c, &db))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("head records") && e.contains("tampered"), "{e}");

    // The chain rewritten consistently from entry 1 on (every hash
    // recomputed): only the head MAC, which needs the master key, catches it.
    let db = c.new_database();
    let d = tempfile::tempdir().unwrap();
    populated(&c, &db, d.path()).await.shutdown().await;
    let reader = PostgresStore::connect(&c.options(&db), None).unwrap();
    let entries: Vec<AuditEntry> = reader.audit_range(0, 1000).unwrap();
    let mut prev = [0u8; 32];
    hex::decode_to_slice(&entries[0].hash, &mut prev).unwrap();
    for mut e in entries.into_iter().skip(1) {
        if e.index == 1 {
            e.details = serde_json::json!({"forged": true});
        }
        e.seal(&prev);
        hex::decode_to_slice(&e.hash, &mut prev).unwrap();
        let bytes = hex::encode(serde_json::to_vec(&e).unwrap());
        c.psql(
            &db,
            &format!(
                "UPDATE sigil_cas_audit SET entry = decode('{bytes}', 'hex') WHERE idx = {}",
                e.index
            ),
        );
    }
    let head: serde_json::Value =
        serde_json::from_slice(&reader.meta("audit_head").unwrap().unwrap()).unwrap();
    let forged_head =
        serde_json::json!({"count": head["count"], "hash": hex::encode(prev), "mac": head["mac"]});
    c.psql(
        &db,
        &format!(
            "UPDATE sigil_cas_meta SET value = decode('{}', 'hex') WHERE key = 'audit_head'",
            hex::encode(serde_json::to_vec(&forged_head).unwrap())
        ),
    );
    // Without the key the rewrite looks fine; with it, it does not.
    let r = reader.verify_audit_snapshot(None).unwrap();
    assert!(!r.head_mac_checked);
    let e = reader
        .verify_audit_snapshot(Some(&master()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("MAC"), "{e}");
    let e = Server::start(pg_config(d.path(), &c, &db))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("MAC") && e.contains("refusing to start"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_version_and_master_key_are_checked() {
    let Some(c) = postgres_support::shared() else {
        return;
    };
    let db = c.new_database();
    let d = tempfile::tempdir().unwrap();
    populated(&c, &db, d.path()).await.shutdown().await;
    // Another master key: refused, naming the key as a likely cause.
    let mut cfg = pg_config(d.path(), &c, &db);
    cfg.master_key = Some(MasterKeySource::Hex(zeroize::Zeroizing::new(
        "22".repeat(32),
    )));
    let e = Server::start(cfg).await.unwrap_err().to_string();
    assert!(e.contains("master key"), "{e}");
    // No master key given: never made up for a shared store.
    let fresh = tempfile::tempdir().unwrap();
    let mut cfg = pg_config(fresh.path(), &c, &db);
    cfg.master_key = Some(MasterKeySource::File(fresh.path().join("master.key")));
    let e = Server::start(cfg).await.unwrap_err().to_string();
    assert!(e.contains("same master key"), "{e}");
    assert!(!fresh.path().join("master.key").exists());
    // A schema from a newer Sigil: refused before anything is written.
    c.psql(&db, "UPDATE sigil_cas_schema SET version = 2");
    let before = c.psql(&db, "SELECT count(*) FROM sigil_cas_audit");
    let e = Server::start(pg_config(d.path(), &c, &db))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("schema version 2"), "{e}");
    assert_eq!(c.psql(&db, "SELECT count(*) FROM sigil_cas_audit"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_share_one_identity() {
    let Some(c) = postgres_support::shared() else {
        return;
    };
    let db = c.new_database();
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, b, x) = tokio::join!(
        Server::start(pg_config(d1.path(), &c, &db)),
        Server::start(pg_config(d2.path(), &c, &db)),
        Server::start(pg_config(d3.path(), &c, &db)),
    );
    let (a, b, x) = (a.unwrap(), b.unwrap(), x.unwrap());
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_eq!(a.fingerprint, x.fingerprint);
    let r = a.state.verify_audit().unwrap();
    assert_eq!(r.entries, 3, "three cas.start entries in one chain");
    // A backup of the live database (no CAS involved) restores into redb.
    let out = d1.path().join("live.redb");
    let o = c.options(&db);
    let o2 = out.clone();
    let stats = tokio::task::spawn_blocking(move || sigil_cas::backup_postgres(&o, &o2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.audit_entries, 3);
    let restored = tempfile::tempdir().unwrap();
    let rr = sigil_cas::restore(&out, &restored.path().join("cas"), Some(&key())).unwrap();
    assert_eq!(rr.entries, 3);
    for s in [a, b, x] {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cas_survives_a_database_restart() {
    // Its own cluster: the restart would disturb the other tests.
    let Some(c) = Cluster::start() else {
        return;
    };
    let db = c.new_database();
    let d = tempfile::tempdir().unwrap();
    let s = Server::start(pg_config(d.path(), &c, &db)).await.unwrap();
    let alice = id("alice");
    let a = client(&s, Some(&alice)).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    let v1 = a.create_session(&simple_yaml("s", &pol)).await.unwrap();
    // Pooled connections die with the server; the next calls reconnect.
    c.restart();
    assert_eq!(a.get_session("s").await.unwrap().hash, v1.hash);
    let v2 = a
        .update_session(&simple_yaml("s", &pol).replace("size: 8", "size: 10"))
        .await
        .unwrap();
    assert_eq!(v2.predecessor.as_deref(), Some(v1.hash.as_str()));
    s.state.verify_audit().unwrap();
    s.shutdown().await;
    // And a CAS started afterwards finds everything.
    let s = Server::start(pg_config(d.path(), &c, &db)).await.unwrap();
    let a = client(&s, Some(&alice)).await;
    assert_eq!(a.get_session("s").await.unwrap().hash, v2.hash);
    s.shutdown().await;
}

/// The names of the CAS tables in `db` (none after a refused restore).
fn cas_tables(c: &Cluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE tablename LIKE 'sigil_cas%'",
    )
    .trim()
    .to_string()
}

fn restore_err(backup: &std::path::Path, o: &PostgresOptions, key: &MasterKeySource) -> String {
    let e = sigil_cas::store::restore_postgres(backup, o, key)
        .unwrap_err()
        .to_string();
    assert!(!e.contains(PASSWORD), "the password leaked: {e}");
    e
}

/// A copy of the backup `src` at `dst` with `alter` applied to it, as an
/// attacker with the file would.
fn altered(
    src: &std::path::Path,
    dst: &std::path::Path,
    alter: impl FnOnce(&redb::WriteTransaction),
) {
    std::fs::copy(src, dst).unwrap();
    let db = redb::Database::open(dst).unwrap();
    let tx = db.begin_write().unwrap();
    alter(&tx);
    tx.commit().unwrap();
}

const SESSIONS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("sessions");
const SECRETS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("secrets");
const AUDIT: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit");

/// `sigil cas restore BACKUP --postgres-url`: a database that holds a
/// store, a backup altered anywhere, the wrong master key and a file that
/// is no backup are refused, naming what is wrong, with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_postgres_refuses_and_writes_nothing() {
    use redb::ReadableTable;
    let Some(c) = postgres_support::shared() else {
        return;
    };
    // A backup of an embedded CAS.
    let d = tempfile::tempdir().unwrap();
    let s = populated_with(config(d.path())).await;
    let backup = d.path().join("cas.redb");
    let (st, o) = (s.state.clone(), backup.clone());
    tokio::task::spawn_blocking(move || st.store.backup_to(&o))
        .await
        .unwrap()
        .unwrap();
    s.shutdown().await;

    // A database a CAS runs on is not empty: refused, nothing changed.
    let busy = c.new_database();
    let s = populated(&c, &busy, tempfile::tempdir().unwrap().path()).await;
    let before = c.psql(&busy, "SELECT count(*), max(idx) FROM sigil_cas_audit");
    let e = restore_err(&backup, &c.options(&busy), &key());
    assert!(
        e.contains("not empty") && e.contains("2 sessions") && e.contains("nothing was written"),
        "{e}"
    );
    assert_eq!(
        c.psql(&busy, "SELECT count(*), max(idx) FROM sigil_cas_audit"),
        before
    );
    s.state.verify_audit().unwrap();
    s.shutdown().await;

    // Altered backups: each refused before the database is touched.
    type Alter = Box<dyn FnOnce(&redb::WriteTransaction)>;
    let cases: Vec<(&str, Alter, &str)> = vec![
        (
            "a session's clear-text policy opened to anyone",
            Box::new(|tx| {
                let mut t = tx.open_table(SESSIONS).unwrap();
                let rec = t.get("private").unwrap().unwrap().value().to_vec();
                let rec = String::from_utf8(rec)
                    .unwrap()
                    .replace(r#""read":["CREATOR"]"#, r#""read":["ANY"]"#);
                t.insert("private", rec.as_bytes()).unwrap();
            }),
            "record of session `private` fails its integrity check",
        ),
        (
            "a sealed secret with one bit flipped",
            Box::new(|tx| {
                let mut t = tx.open_table(SECRETS).unwrap();
                let k = "private\u{0}password";
                let mut blob = t.get(k).unwrap().unwrap().value().to_vec();
                let last = blob.len() - 1;
                blob[last] ^= 1;
                t.insert(k, blob.as_slice()).unwrap();
            }),
            "sealed secret `password` of session `private` does not open",
        ),
        (
            "a sealed secret moved to another secret's name",
            Box::new(|tx| {
                let mut t = tx.open_table(SECRETS).unwrap();
                let blob = t
                    .get("private\u{0}token")
                    .unwrap()
                    .unwrap()
                    .value()
                    .to_vec();
                t.insert("private\u{0}password", blob.as_slice()).unwrap();
            }),
            "sealed secret `password`",
        ),
        (
            "the first audit entry (the CAS's start) dated otherwise",
            Box::new(|tx| {
                let mut t = tx.open_table(AUDIT).unwrap();
                let e = t.get(0).unwrap().unwrap().value().to_vec();
                let e: serde_json::Value = serde_json::from_slice(&e).unwrap();
                let mut e = e.as_object().unwrap().clone();
                e.insert("time".into(), "2000-01-01T00:00:00Z".into());
                t.insert(0, serde_json::to_vec(&e).unwrap().as_slice())
                    .unwrap();
            }),
            "entry 0",
        ),
        (
            "the last audit entry removed",
            Box::new(|tx| {
                let mut t = tx.open_table(AUDIT).unwrap();
                let last = t.last().unwrap().unwrap().0.value();
                t.remove(last).unwrap();
            }),
            "head records",
        ),
    ];
    for (what, alter, expect) in cases {
        let bad = d.path().join("altered.redb");
        let _ = std::fs::remove_file(&bad);
        altered(&backup, &bad, alter);
        let db = c.new_database();
        let e = restore_err(&bad, &c.options(&db), &key());
        assert!(
            e.contains("backup is damaged") && e.contains(expect),
            "{what}: {e}"
        );
        assert_eq!(cas_tables(&c, &db), "", "{what}: something was written");
    }

    // The wrong master key: said so, nothing written.
    let db = c.new_database();
    let wrong = MasterKeySource::Hex(zeroize::Zeroizing::new("22".repeat(32)));
    let e = restore_err(&backup, &c.options(&db), &wrong);
    assert!(e.contains("master key does not match"), "{e}");
    assert_eq!(cas_tables(&c, &db), "");
    // Not a backup at all.
    let junk = d.path().join("junk.redb");
    std::fs::write(&junk, b"not a redb file, just text").unwrap();
    let e = restore_err(&junk, &c.options(&db), &key());
    assert!(e.contains("is not a Sigil CAS backup"), "{e}");
    let e = restore_err(&d.path().join("missing.redb"), &c.options(&db), &key());
    assert!(e.contains("cannot read the backup"), "{e}");
    // Truncated (redb asserts on it: caught), and an empty redb file.
    let bytes = std::fs::read(&backup).unwrap();
    std::fs::write(&junk, &bytes[..bytes.len() / 2]).unwrap();
    let e = restore_err(&junk, &c.options(&db), &key());
    assert!(e.contains("not a") && e.contains("Sigil CAS backup"), "{e}");
    let empty = d.path().join("empty.redb");
    drop(redb::Database::create(&empty).unwrap());
    let e = restore_err(&empty, &c.options(&db), &key());
    assert!(e.contains("holds no audit log"), "{e}");
    assert_eq!(cas_tables(&c, &db), "");

    // A database holding only the empty tables (a CAS that never wrote)
    // is empty: the restore goes through, and a second one is refused.
    PostgresStore::connect(&c.options(&db), None).unwrap();
    let r = sigil_cas::store::restore_postgres(&backup, &c.options(&db), &key()).unwrap();
    assert_eq!((r.stats.sessions, r.stats.secrets), (2, 7));
    let e = restore_err(&backup, &c.options(&db), &key());
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(
        c.psql(&db, "SELECT count(*) FROM sigil_cas_audit").trim(),
        r.audit.entries.to_string()
    );
}

/// `sigil audit verify --postgres-url`: the chain, the head and (with the
/// key) its MAC, offline; a tampered row is named; nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_audit_verify_on_postgres() {
    let Some(c) = postgres_support::shared() else {
        return;
    };
    let db = c.new_database();
    let d = tempfile::tempdir().unwrap();
    let s = populated(&c, &db, d.path()).await;
    let n = s.state.verify_audit().unwrap().entries;
    // While the CAS runs: one snapshot, no false alarm.
    let r = sigil_cas::store::verify_postgres(&c.options(&db), Some(&key())).unwrap();
    assert_eq!(r.entries, n);
    assert!(r.head_mac_checked);
    s.shutdown().await;
    let r = sigil_cas::store::verify_postgres(&c.options(&db), None).unwrap();
    assert!(!r.head_mac_checked);
    assert_eq!(r.entries, n);
    // Another key: the head MAC fails.
    let wrong = MasterKeySource::Hex(zeroize::Zeroizing::new("22".repeat(32)));
    let e = sigil_cas::store::verify_postgres(&c.options(&db), Some(&wrong))
        .unwrap_err()
        .to_string();
    assert!(e.contains("MAC"), "{e}");
    // A tampered row is found and named.
    c.psql(
        &db,
        "UPDATE sigil_cas_audit SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'session.update', 'session.create'), 'UTF8') WHERE idx = 3",
    );
    for k in [Some(key()), None] {
        let e = sigil_cas::store::verify_postgres(&c.options(&db), k.as_ref())
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry 3"), "{e}");
        assert!(!e.contains(PASSWORD), "{e}");
    }
    // A database without a store: said so, and no table is created.
    let empty = c.new_database();
    let e = sigil_cas::store::verify_postgres(&c.options(&empty), Some(&key()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds no Sigil CAS store"), "{e}");
    assert!(!e.contains(PASSWORD), "{e}");
    assert_eq!(cas_tables(&c, &empty), "");
}

/// pg_hba `cert`: the CAS, a backup, a restore and the offline audit
/// check log in with a client certificate and no password; a missing,
/// foreign or mismatched certificate and an exposed key file are refused,
/// and no message shows the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_authentication() {
    use std::os::unix::fs::PermissionsExt;
    let Some(c) = postgres_support::shared() else {
        return;
    };
    let db = c.new_database_of(CERT_ROLE);
    let o = c.cert_options(&db, &c.client);
    assert!(!o.url.contains(&format!("{CERT_ROLE}:")), "no password");
    // A CAS on it, used over its API.
    let d = tempfile::tempdir().unwrap();
    let mut cfg = config(d.path());
    cfg.store = StoreConfig::Postgres(o.clone());
    let s = populated_with(cfg).await;
    let fp = s.fingerprint;
    s.shutdown().await;
    // The tables are the certificate role's: it was the one logged in.
    let owner = c.psql(
        &db,
        "SELECT tableowner FROM pg_tables WHERE tablename = 'sigil_cas_audit'",
    );
    assert_eq!(owner.trim(), CERT_ROLE);
    // Backup, offline verification and a restore with the certificate.
    let out = d.path().join("b.redb");
    let stats = sigil_cas::backup_postgres(&o, &out).unwrap();
    assert_eq!(stats.sessions, 2);
    let r = sigil_cas::store::verify_postgres(&o, Some(&key())).unwrap();
    assert!(r.head_mac_checked);
    let target = c.new_database_of(CERT_ROLE);
    let r = sigil_cas::store::restore_postgres(&out, &c.cert_options(&target, &c.client), &key())
        .unwrap();
    assert_eq!(r.stats, stats);
    let mut cfg = config(tempfile::tempdir().unwrap().path());
    cfg.store = StoreConfig::Postgres(c.cert_options(&target, &c.client));
    let s = Server::start(cfg).await.unwrap();
    assert_eq!(s.fingerprint, fp);
    s.shutdown().await;

    let key_pem = std::fs::read_to_string(&c.client.1).unwrap();
    let body = key_pem.lines().nth(1).unwrap().to_string();
    let refused = |o: &PostgresOptions| {
        let e = PostgresStore::connect(o, None).unwrap_err().to_string();
        assert!(
            !e.contains(&body) && !e.contains("PRIVATE KEY"),
            "key shown: {e}"
        );
        e
    };
    // No certificate: the server asks for one.
    let mut none = o.clone();
    none.client_cert = None;
    none.client_key = None;
    let e = refused(&none);
    assert!(e.contains("certificate"), "{e}");
    // A certificate from a CA the server does not trust for clients.
    let e = refused(&c.cert_options(&db, &c.rogue_client));
    assert!(e.contains("certificate") || e.contains("UnknownCA"), "{e}");
    // The certificate with another key.
    let e = refused(&c.cert_options(&db, &(c.client.0.clone(), c.rogue_client.1.clone())));
    assert!(e.contains("does not belong to the certificate"), "{e}");
    // Half a pair.
    let mut half = o.clone();
    half.client_key = None;
    let e = refused(&half);
    assert!(e.contains("--postgres-client-key"), "{e}");
    // A key file others may read, like libpq: refused, naming the fix.
    let dir = tempfile::tempdir().unwrap();
    let open_key = dir.path().join("open.key");
    std::fs::copy(&c.client.1, &open_key).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = refused(&c.cert_options(&db, &(c.client.0.clone(), open_key.clone())));
    assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
    // 0600 is fine; so is 0640 for a file root owns (a Kubernetes Secret
    // volume with fsGroup), but not for one of another user.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let with_key = c.cert_options(&db, &(c.client.0.clone(), open_key.clone()));
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    PostgresStore::connect(&with_key, None).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    if root {
        PostgresStore::connect(&with_key, None).unwrap();
    } else {
        assert!(refused(&with_key).contains("mode 640"));
    }
    // Not a key: the content is not quoted.
    let junk = dir.path().join("junk.key");
    std::fs::write(&junk, key_pem.replace("PRIVATE KEY", "SOMETHING")).unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = refused(&c.cert_options(&db, &(c.client.0.clone(), junk)));
    assert!(e.contains("holds no PEM private key"), "{e}");
    // The password role cannot use the certificate role's rule, and the
    // certificate role has no password to fall back on.
    let mut pw = c.options(&db);
    pw.url = zeroize::Zeroizing::new(pw.url.replace("sigil:", &format!("{CERT_ROLE}:")));
    let e = refused(&pw);
    assert!(e.contains("certificate"), "{e}");
}
