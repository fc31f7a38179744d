//! The store as an attacker with the file sees it, and backups.

mod common;

use common::*;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

async fn populated(dir: &std::path::Path) -> sigil_cas::RunningServer {
    let s = start(dir).await;
    let a = client(&s, Some(&id("alice"))).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    a.create_session(&simple_yaml("one", &pol)).await.unwrap();
    a.create_session(&simple_yaml("two", &pol)).await.unwrap();
    a.update_session(&simple_yaml("one", &pol).replace("size: 8", "size: 12"))
        .await
        .unwrap();
    s
}

fn edit<F: FnOnce(&redb::WriteTransaction)>(dir: &std::path::Path, f: F) {
    let db = redb::Database::open(dir.join("store.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    f(&tx);
    tx.commit().unwrap();
}

fn entry(tx: &redb::WriteTransaction, i: u64) -> sigil_client::AuditEntry {
    let t = tx.open_table(AUDIT).unwrap();
    let v = t.get(i).unwrap().unwrap();
    serde_json::from_slice(v.value()).unwrap()
}

fn put(tx: &redb::WriteTransaction, e: &sigil_client::AuditEntry) {
    let mut t = tx.open_table(AUDIT).unwrap();
    t.insert(e.index, serde_json::to_vec(e).unwrap().as_slice())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_entry_is_detected_and_cas_refuses_to_start() {
    let d = tempfile::tempdir().unwrap();
    populated(d.path()).await.shutdown().await;
    sigil_cas::verify_data_dir(d.path(), Some(&key())).unwrap();
    edit(d.path(), |tx| {
        let mut e = entry(tx, 2);
        e.actor = "sha256:someone-else".into();
        put(tx, &e);
    });
    let err = sigil_cas::verify_data_dir(d.path(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("entry 2"), "{err}");
    let err = sigil_cas::Server::start(config(d.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("tampered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_entry_is_detected() {
    let d = tempfile::tempdir().unwrap();
    populated(d.path()).await.shutdown().await;
    edit(d.path(), |tx| {
        tx.open_table(AUDIT).unwrap().remove(1u64).unwrap();
    });
    let err = sigil_cas::verify_data_dir(d.path(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("entry 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistently_rewritten_or_truncated_log_fails_the_head_mac() {
    let d = tempfile::tempdir().unwrap();
    populated(d.path()).await.shutdown().await;
    // Rewrite entry 1 and re-hash every later entry: the chain is valid
    // again, but the MAC'd head no longer matches.
    edit(d.path(), |tx| {
        let n = tx.open_table(AUDIT).unwrap().len().unwrap();
        let mut prev = [0u8; 32];
        hex::decode_to_slice(entry(tx, 0).hash, &mut prev).unwrap();
        for i in 1..n {
            let mut e = entry(tx, i);
            if i == 1 {
                e.details = serde_json::json!({"forged": true});
            }
            e.seal(&prev);
            hex::decode_to_slice(&e.hash, &mut prev).unwrap();
            put(tx, &e);
        }
    });
    let err = sigil_cas::verify_data_dir(d.path(), Some(&key()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("head"), "{err}");

    // Truncation of the last entry is caught too.
    let d2 = tempfile::tempdir().unwrap();
    populated(d2.path()).await.shutdown().await;
    edit(d2.path(), |tx| {
        let mut t = tx.open_table(AUDIT).unwrap();
        let last = t.last().unwrap().unwrap().0.value();
        t.remove(last).unwrap();
    });
    assert!(sigil_cas::verify_data_dir(d2.path(), None).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_session_record_is_refused() {
    let d = tempfile::tempdir().unwrap();
    populated(d.path()).await.shutdown().await;
    let mallory = id("mallory");
    // Grant mallory read access by editing the clear-text policy.
    edit(d.path(), |tx| {
        let mut t = tx.open_table(SESSIONS).unwrap();
        let mut rec: serde_json::Value =
            serde_json::from_slice(t.get("one").unwrap().unwrap().value()).unwrap();
        rec["policy"]["read"] = serde_json::json!(["ANY"]);
        t.insert("one", serde_json::to_vec(&rec).unwrap().as_slice())
            .unwrap();
    });
    let s = start(d.path()).await;
    let m = client(&s, Some(&mallory)).await;
    let e = m.get_session("one").await.unwrap_err().to_string();
    assert!(e.contains("500") && e.contains("integrity"), "{e}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_running_and_restore() {
    let d = tempfile::tempdir().unwrap();
    let s = populated(d.path()).await;
    let before = s
        .state
        .resolve_service("one", "nope")
        .unwrap_err()
        .to_string();
    assert!(before.contains("no service"));
    let secret_before = s.state.materials("one").unwrap()["s"].value.clone();
    let out = d.path().join("backup.redb");
    // The CAS is running: the backup goes through the admin socket.
    let stats = sigil_cas::backup(d.path(), &out).unwrap();
    assert_eq!(stats.sessions, 2);
    assert!(stats.audit_entries >= 4);
    // A second backup to the same file is refused (no overwrite).
    assert!(sigil_cas::backup(d.path(), &out).is_err());
    let fp = s.fingerprint;
    s.shutdown().await;

    // Restore with the wrong key: refused, nothing left behind.
    let r = tempfile::tempdir().unwrap();
    let target = r.path().join("cas");
    let wrong = sigil_cas::MasterKeySource::Hex(zeroize::Zeroizing::new("22".repeat(32)));
    let e = sigil_cas::restore(&out, &target, Some(&wrong))
        .unwrap_err()
        .to_string();
    assert!(e.contains("master key"), "{e}");
    assert!(!target.join("store.redb").exists());
    // The right key: same identity, same sessions, same secrets.
    let rep = sigil_cas::restore(&out, &target, Some(&key())).unwrap();
    assert_eq!(rep.entries, stats.audit_entries);
    assert!(
        sigil_cas::restore(&out, &target, Some(&key())).is_err(),
        "no overwrite"
    );
    let s2 = start(&target).await;
    assert_eq!(s2.fingerprint, fp);
    assert_eq!(s2.state.materials("one").unwrap()["s"].value, secret_before);
    let a = client(&s2, Some(&id("x"))).await;
    assert!(
        a.list().await.unwrap().sessions.is_empty(),
        "policies still apply"
    );
    s2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_matches_on_both_ends() {
    // The server compares the report data with ITS exporter of the
    // connection: evidence carrying the client's exporter of the same
    // connection is accepted, the exporter of another connection to the
    // same CAS is refused as a replay. Real TLS on loopback.
    use sigil_client::attest::ATTEST_PATH;
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let m = [8u8; 32];
    s.state
        .create_session(
            &id("dev").fingerprint(),
            &format!(
                "name: bind\nservices:\n  - name: app\n    command: [/bin/app]\n    attestation:\n      - simulation_measurement: {}\nsecurity:\n  attestation:\n    mode: simulation\n",
                hex::encode(m)
            ),
        )
        .unwrap();
    let c1 = client(&s, None).await;
    let c2 = client(&s, None).await;
    assert_ne!(c1.exporter(), c2.exporter(), "per connection");
    assert_ne!(c1.exporter(), [0u8; 64]);
    let req =
        |rd: [u8; 64]| attest_request("bind/app", sigil_attest::simulation::make_evidence(m, rd));
    // c2's exporter sent over c1: refused, naming the channel mismatch.
    let r = c1
        .request(
            hyper::Method::POST,
            ATTEST_PATH,
            Some("application/json"),
            serde_json::to_vec(&req(c2.exporter())).unwrap().into(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 403);
    let refused: sigil_client::attest::AttestRefused = serde_json::from_slice(&r.body).unwrap();
    assert!(
        refused
            .reasons
            .iter()
            .any(|x| x.contains("report data does not match")),
        "{:?}",
        refused.reasons
    );
    // c1's own exporter over c1: accepted.
    c1.post_json(ATTEST_PATH, &req(c1.exporter()))
        .await
        .unwrap();
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_entry_appended_after_the_head_is_detected() {
    let d = tempfile::tempdir().unwrap();
    populated(d.path()).await.shutdown().await;
    edit(d.path(), |tx| {
        let n = tx.open_table(AUDIT).unwrap().len().unwrap();
        let mut e = entry(tx, n - 1);
        let mut prev = [0u8; 32];
        hex::decode_to_slice(&e.hash, &mut prev).unwrap();
        e.index = n;
        e.action = "session.delete".into();
        e.seal(&prev);
        put(tx, &e);
    });
    let err = sigil_cas::verify_data_dir(d.path(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head records"), "{err}");
}
