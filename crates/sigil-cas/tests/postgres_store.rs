//! The PostgreSQL store on its own: TLS modes and authentication against a
//! real server, calls from any thread, what someone with write access to
//! the database can and cannot do, schema and master-key checks, a server
//! restart under a running CAS, replicas starting together.
//! (The behaviour shared with redb is in `store_backends.rs`.)
#![cfg(feature = "postgres")]

mod common;
mod postgres_support;

use std::sync::Arc;

use common::*;
use postgres_support::{Cluster, PASSWORD};
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
    let s = Server::start(pg_config(dir, c, db)).await.unwrap();
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
