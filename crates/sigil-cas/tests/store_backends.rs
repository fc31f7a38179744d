//! The same behaviour on every store backend: a real CAS over real TLS on
//! loopback, on a redb file and (feature `postgres`) on a real PostgreSQL
//! server reached over TLS (verify-full, SCRAM). Each test below runs once
//! per backend (`<test>::redb`, `<test>::postgres`).

mod common;
#[cfg(feature = "postgres")]
mod postgres_support;

use std::path::Path;
use std::sync::Arc;

use common::*;
use http_body_util::BodyExt;
use sigil_attest::simulation::{make_evidence, SimulationVerifier};
use sigil_attest::Verifiers;
use sigil_cas::{Config, ConnInfo, RunningServer, Server};
use sigil_client::attest::AttestAccepted;
use sigil_client::ClientError;

/// Where a test CAS keeps its data.
enum Backend {
    Redb,
    #[cfg(feature = "postgres")]
    Postgres {
        cluster: Arc<postgres_support::Cluster>,
        db: String,
    },
}

impl Backend {
    fn config(&self, dir: &Path) -> Config {
        #[allow(unused_mut)]
        let mut c = config(dir);
        #[cfg(feature = "postgres")]
        if let Backend::Postgres { cluster, db } = self {
            c.store = sigil_cas::StoreConfig::Postgres(cluster.options(db));
        }
        c
    }

    async fn start(&self, dir: &Path) -> RunningServer {
        Server::start(self.config(dir)).await.unwrap()
    }

    /// CAS processes sharing this store: one for a redb file (it is
    /// locked), two on PostgreSQL (each with its own data directory).
    fn replicas(&self) -> usize {
        match self {
            Backend::Redb => 1,
            #[cfg(feature = "postgres")]
            Backend::Postgres { .. } => 2,
        }
    }
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redb() {
                super::$name(super::Backend::Redb).await
            }

            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(cluster) = super::postgres_support::shared() else {
                    return;
                };
                let db = cluster.new_database();
                let c = cluster.clone();
                super::$name(super::Backend::Postgres { cluster, db: db.clone() }).await;
                // It ran on PostgreSQL: the log is in the database.
                let n: u64 = c
                    .psql(&db, "SELECT count(*) FROM sigil_cas_audit")
                    .trim()
                    .parse()
                    .unwrap();
                assert!(n > 0);
            }
        }
    )*};
}

on_every_backend!(
    sessions_lifecycle,
    secrets_stay_sealed_and_are_released_to_attested_workloads,
    restart_keeps_sessions_secrets_identity_and_audit,
    backup_restores_into_a_redb_data_dir,
    concurrent_updates_have_one_winner_per_version,
);

// The migration path into PostgreSQL, from a backup of either backend.
#[cfg(feature = "postgres")]
on_every_backend!(backup_restores_into_an_empty_postgres_database);

fn status(e: &ClientError) -> u16 {
    match e {
        ClientError::Api { status, .. } => *status,
        other => panic!("expected an API error, got {other}"),
    }
}

const M: [u8; 32] = [7; 32];
const EXPORTER: [u8; 64] = [3; 64];

fn attested_yaml(predecessor: Option<&str>, version: &str, size: u32) -> String {
    let pred = predecessor
        .map(|p| format!("predecessor: {p}\n"))
        .unwrap_or_default();
    format!(
        "{pred}name: shop\nservices:\n  - name: web\n    command: [/bin/web]\n    environment:\n      VERSION: \"{version}\"\n      PASSWORD: \"$$SIGIL::password$$\"\n      TLS_CERT: \"$$SIGIL::cert:crt$$\"\n    attestation:\n      - simulation_measurement: {}\nsecrets:\n  - name: password\n    kind: ascii\n    size: {size}\n  - name: ca\n    kind: x509-ca\n    common_name: Shop CA\n  - name: cert\n    kind: x509\n    issuer: ca\n    common_name: web.shop\nsecurity:\n  attestation:\n    mode: simulation\naccess_policy:\n  read: [CREATOR]\n  update: [CREATOR]\n",
        hex::encode(M)
    )
}

/// Attests as the workload `shop/web` (simulation evidence bound to a
/// connection's exporter) and returns what the CAS released.
async fn attest(s: &RunningServer) -> AttestAccepted {
    let st = s.state.clone();
    let resp = tokio::task::spawn_blocking(move || {
        let conn = ConnInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client: None,
            exporter: Some(EXPORTER),
        };
        let req =
            serde_json::to_vec(&attest_request("shop/web", make_evidence(M, EXPORTER))).unwrap();
        let v = Verifiers::new().with(Box::new(SimulationVerifier));
        sigil_cas::attest_api::handle_with(&st, &conn, &req, &v)
    })
    .await
    .unwrap();
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

async fn sessions_lifecycle(b: Backend) {
    let d = tempfile::tempdir().unwrap();
    let s = b.start(d.path()).await;
    let alice = id("alice");
    let c = client(&s, Some(&alice)).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    let v1 = c
        .create_session(&app_yaml("app", &pol, "info"))
        .await
        .unwrap();
    assert_eq!(c.get_session("app").await.unwrap().hash, v1.hash);
    // Creating it again is a conflict.
    let e = c
        .create_session(&app_yaml("app", &pol, "info"))
        .await
        .unwrap_err();
    assert_eq!(status(&e), 409);
    // A stale predecessor is a conflict naming the current hash.
    let stale = format!(
        "predecessor: {}\n{}",
        "ab".repeat(32),
        app_yaml("app", &pol, "debug")
    );
    match c.update_session_exact(&stale).await.unwrap_err() {
        ClientError::Api {
            status, current, ..
        } => {
            assert_eq!(status, 409);
            assert_eq!(current.as_deref(), Some(v1.hash.as_str()));
        }
        e => panic!("{e}"),
    }
    let v2 = c
        .update_session(&app_yaml("app", &pol, "debug"))
        .await
        .unwrap();
    assert_eq!(v2.predecessor.as_deref(), Some(v1.hash.as_str()));
    // Names list in byte order on every backend.
    for n in ["b-two", "Zed", "a-one"] {
        c.create_session(&simple_yaml(n, &pol)).await.unwrap();
    }
    let names: Vec<String> = c
        .list()
        .await
        .unwrap()
        .sessions
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["Zed", "a-one", "app", "b-two"]);
    c.delete("b-two").await.unwrap();
    assert_eq!(status(&c.get_session("b-two").await.unwrap_err()), 404);
    // Every write is in the audit log, which verifies with its head MAC.
    let log = c.audit().await.unwrap();
    let actions: Vec<&str> = log
        .iter()
        .filter(|e| e.action.starts_with("session."))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "session.create",
            "session.update",
            "session.create",
            "session.create",
            "session.create",
            "session.delete"
        ]
    );
    sigil_client::audit::verify_chain(&log, 0, [0; 32]).unwrap();
    let r = s.state.verify_audit().unwrap();
    assert_eq!(r.entries, log.len() as u64);
    assert!(r.head_mac_checked);
    s.shutdown().await;
}

async fn secrets_stay_sealed_and_are_released_to_attested_workloads(b: Backend) {
    let d = tempfile::tempdir().unwrap();
    let s = b.start(d.path()).await;
    let alice = id("alice").fingerprint();
    let v1 = s
        .state
        .create_session(&alice, &attested_yaml(None, "1", 24))
        .unwrap();
    let a = attest(&s).await;
    let password = a.service.environment["PASSWORD"].clone();
    assert_eq!(password.len(), 24);
    assert!(a.service.environment["TLS_CERT"].contains("BEGIN CERTIFICATE"));
    assert_eq!(a.service.environment["VERSION"], "1");
    // The store holds the secrets sealed only.
    let st = s.state.clone();
    let sealed = tokio::task::spawn_blocking(move || st.store.secrets("shop").unwrap())
        .await
        .unwrap();
    let names: Vec<&str> = sealed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ca", "cert", "password"]);
    for (_, blob) in &sealed {
        assert!(blob.starts_with(b"S1"));
        assert!(!blob
            .windows(password.len())
            .any(|w| w == password.as_bytes()));
    }
    // An update with the same secret kinds keeps the values; the new
    // configuration is released.
    let v2 = s
        .state
        .update_session(&alice, &attested_yaml(Some(&v1.hash), "2", 24))
        .unwrap();
    let a = attest(&s).await;
    assert_eq!(a.service.environment["VERSION"], "2");
    assert_eq!(a.service.environment["PASSWORD"], password);
    // A changed secret kind gets a new value.
    s.state
        .update_session(&alice, &attested_yaml(Some(&v2.hash), "3", 32))
        .unwrap();
    let a = attest(&s).await;
    assert_eq!(a.service.environment["PASSWORD"].len(), 32);
    assert_ne!(a.service.environment["PASSWORD"], password);
    s.state.verify_audit().unwrap();
    s.shutdown().await;
}

async fn restart_keeps_sessions_secrets_identity_and_audit(b: Backend) {
    let d = tempfile::tempdir().unwrap();
    let s = b.start(d.path()).await;
    let alice = id("alice").fingerprint();
    let v1 = s
        .state
        .create_session(&alice, &attested_yaml(None, "1", 20))
        .unwrap();
    let before = attest(&s).await;
    let fp = s.fingerprint;
    s.shutdown().await;

    let s = b.start(d.path()).await;
    assert_eq!(s.fingerprint, fp, "the CAS identity is in the store");
    let c = client(&s, None).await;
    assert_eq!(c.health().await.unwrap().fingerprint, fp.to_string());
    let after = attest(&s).await;
    assert_eq!(after.service.session_hash, v1.hash);
    assert_eq!(
        after.service.environment["PASSWORD"],
        before.service.environment["PASSWORD"]
    );
    let page = s.state.audit_page(&alice, 0, 1000).unwrap();
    let starts = page
        .entries
        .iter()
        .filter(|e| e.action == "cas.start")
        .count();
    assert_eq!(starts, 2);
    s.state.verify_audit().unwrap();
    s.shutdown().await;
}

/// A CAS on a backend with two sessions of alice's (`shop`, whose workload
/// attested, and `other`), backed up into `DIR/backup.redb`; still running.
struct BackedUp {
    alice: sigil_client::Identity,
    shop: String,
    released: AttestAccepted,
    out: std::path::PathBuf,
    stats: sigil_cas::BackupStats,
    log: Vec<sigil_client::AuditEntry>,
}

async fn backed_up(b: &Backend, dir: &Path, other_yaml: &str) -> (RunningServer, BackedUp) {
    let s = b.start(dir).await;
    let alice = id("alice");
    let shop = s
        .state
        .create_session(&alice.fingerprint(), &attested_yaml(None, "1", 20))
        .unwrap()
        .hash;
    let c = client(&s, Some(&alice)).await;
    c.create_session(other_yaml).await.unwrap();
    let released = attest(&s).await;
    let out = dir.join("backup.redb");
    let (st, o) = (s.state.clone(), out.clone());
    let stats = tokio::task::spawn_blocking(move || st.store.backup_to(&o))
        .await
        .unwrap()
        .unwrap();
    let log = c.audit().await.unwrap();
    assert_eq!(stats.sessions, 2);
    assert_eq!(stats.audit_entries, log.len() as u64);
    let k = BackedUp {
        alice,
        shop,
        released,
        out,
        stats,
        log,
    };
    (s, k)
}

/// The restored CAS `s` serves what `b` held: identity, sessions, the
/// secrets released to the workload, and the audit chain, continued.
async fn serves_the_backup(s: &RunningServer, b: &BackedUp, fp: sigil_client::Fingerprint) {
    assert_eq!(
        s.fingerprint, fp,
        "the CAS identity travels with the backup"
    );
    let c = client(s, Some(&b.alice)).await;
    assert_eq!(c.get_session("shop").await.unwrap().hash, b.shop);
    c.get_session("other").await.unwrap();
    let again = attest(s).await;
    for var in ["PASSWORD", "TLS_CERT"] {
        assert_eq!(
            again.service.environment[var],
            b.released.service.environment[var]
        );
    }
    let after = c.audit().await.unwrap();
    assert_eq!(after[..b.log.len()], b.log[..]);
    assert_eq!(after[b.log.len()].action, "cas.start");
    assert_eq!(after[b.log.len()].prev, b.log[b.log.len() - 1].hash);
    let v = s.state.verify_audit().unwrap();
    assert!(v.head_mac_checked);
}

async fn backup_restores_into_a_redb_data_dir(b: Backend) {
    let d = tempfile::tempdir().unwrap();
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    let (s, k) = backed_up(&b, d.path(), &simple_yaml("other", &pol)).await;
    assert_eq!(k.stats.secrets, 4);
    let fp = s.fingerprint;
    // A second backup to the same file is refused, the first is intact.
    let (st, o) = (s.state.clone(), k.out.clone());
    let again = tokio::task::spawn_blocking(move || st.store.backup_to(&o))
        .await
        .unwrap();
    assert!(again.unwrap_err().to_string().contains("exists"));
    s.shutdown().await;

    let restored = tempfile::tempdir().unwrap();
    let dir = restored.path().join("cas");
    let r = sigil_cas::restore(&k.out, &dir, Some(&key())).unwrap();
    assert_eq!(r.entries, k.stats.audit_entries);
    assert!(r.head_mac_checked);
    let s = common::start(&dir).await;
    serves_the_backup(&s, &k, fp).await;
    s.shutdown().await;
}

/// A backup of this backend restored into a new PostgreSQL database
/// (`sigil cas restore BACKUP --postgres-url`), then served from there by
/// a CAS with the same master key.
#[cfg(feature = "postgres")]
async fn backup_restores_into_an_empty_postgres_database(b: Backend) {
    let Some(cluster) = postgres_support::shared() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    let (s, k) = backed_up(&b, d.path(), &app_yaml("other", &pol, "info")).await;
    let fp = s.fingerprint;
    s.shutdown().await;
    let backup_bytes = std::fs::read(&k.out).unwrap();

    let db = cluster.new_database();
    let (o, p) = (cluster.options(&db), k.out.clone());
    let r = tokio::task::spawn_blocking(move || sigil_cas::store::restore_postgres(&p, &o, &key()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.stats, k.stats);
    assert_eq!(r.stats.secrets, 9);
    assert_eq!(r.audit.entries, k.stats.audit_entries);
    assert!(r.audit.head_mac_checked);
    assert_eq!(
        std::fs::read(&k.out).unwrap(),
        backup_bytes,
        "the backup was changed"
    );
    let rows = cluster.psql(&db, "SELECT count(*) FROM sigil_cas_secrets");
    assert_eq!(rows.trim(), "9");

    let pg = Backend::Postgres {
        cluster: cluster.clone(),
        db,
    };
    let d2 = tempfile::tempdir().unwrap();
    let s = pg.start(d2.path()).await;
    serves_the_backup(&s, &k, fp).await;
    // Another identity is still refused by the restored access policy.
    let e = client(&s, Some(&id("mallory")))
        .await
        .get_session("other")
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    s.shutdown().await;
}

async fn concurrent_updates_have_one_winner_per_version(b: Backend) {
    let dirs: Vec<_> = (0..b.replicas())
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut servers = Vec::new();
    for d in &dirs {
        servers.push(b.start(d.path()).await);
    }
    // Every replica serves the same identity.
    assert!(servers
        .iter()
        .all(|s| s.fingerprint == servers[0].fingerprint));
    let alice = id("alice");
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    let doc = |n: u32| simple_yaml("hot", &pol).replace("size: 8", &format!("size: {n}"));
    let mut clients = Vec::new();
    for i in 0..8 {
        clients.push(Arc::new(
            client(&servers[i % servers.len()], Some(&alice)).await,
        ));
    }
    let mut current = clients[0].create_session(&doc(8)).await.unwrap().hash;
    let mut chain = vec![current.clone()];
    const ROUNDS: u32 = 6;
    for round in 0..ROUNDS {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, c) in clients.iter().enumerate() {
            let c = c.clone();
            let body = format!("predecessor: {current}\n{}", doc(9 + round * 16 + i as u32));
            tasks.spawn(async move { c.update_session_exact(&body).await });
        }
        let mut winners = Vec::new();
        while let Some(r) = tasks.join_next().await {
            match r.unwrap() {
                Ok(w) => winners.push(w.hash),
                Err(e) => assert_eq!(status(&e), 409, "{e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        current = winners.pop().unwrap();
        chain.push(current.clone());
    }
    // One audit chain, no fork: each update names the previous version.
    let log = clients[1].audit().await.unwrap();
    sigil_client::audit::verify_chain(&log, 0, [0; 32]).unwrap();
    let updates: Vec<_> = log
        .iter()
        .filter(|e| e.action == "session.update")
        .collect();
    assert_eq!(updates.len(), ROUNDS as usize);
    for (i, e) in updates.iter().enumerate() {
        assert_eq!(e.old_hash.as_deref(), Some(chain[i].as_str()));
        assert_eq!(e.new_hash.as_deref(), Some(chain[i + 1].as_str()));
    }
    for s in &servers {
        let r = s.state.verify_audit().unwrap();
        assert_eq!(r.entries, log.len() as u64);
        assert!(r.head_mac_checked);
    }
    for s in servers {
        s.shutdown().await;
    }
}
