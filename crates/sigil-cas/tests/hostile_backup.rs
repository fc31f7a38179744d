//! `sigil cas restore` (`sigil_cas::restore`) reading a hostile backup file
//! into a new data directory: not a redb file, empty, truncated, from a
//! future store format, with a rewritten audit entry or head, under the
//! wrong master key. Each is refused with one line naming the problem and
//! leaves nothing in the data directory (no store, no temporary copy). A
//! backup whose session record was altered restores (records are checked
//! when read), and the CAS then refuses to serve that session.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use redb::{ReadableTable, TableDefinition};
use sigil_cas::MasterKeySource;
use zeroize::Zeroizing;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// A real backup of a CAS holding two sessions.
async fn backup(dir: &Path) -> PathBuf {
    let s = start(&dir.join("cas")).await;
    let a = client(&s, Some(&id("alice"))).await;
    let pol = policy("CREATOR", "CREATOR", "CREATOR");
    a.create_session(&simple_yaml("one", &pol)).await.unwrap();
    a.create_session(&simple_yaml("two", &pol)).await.unwrap();
    s.shutdown().await;
    let out = dir.join("backup.redb");
    sigil_cas::backup(&dir.join("cas"), &out).unwrap();
    out
}

/// A change an attacker makes to a backup, through redb.
type Alteration = Box<dyn FnOnce(&redb::WriteTransaction)>;

fn altered(src: &Path, dst: &Path, alter: impl FnOnce(&redb::WriteTransaction)) {
    std::fs::copy(src, dst).unwrap();
    let db = redb::Database::open(dst).unwrap();
    let tx = db.begin_write().unwrap();
    alter(&tx);
    tx.commit().unwrap();
}

/// Restores `file` into a fresh directory; on failure checks the message
/// is one line and nothing was left behind.
fn restore_err(file: &Path, key: &MasterKeySource) -> String {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("restored");
    let e = sigil_cas::restore(file, &data, Some(key))
        .map(|r| format!("restored {} entries", r.entries))
        .expect_err("hostile backup restored");
    let m = e.to_string();
    assert!(!m.contains('\n'), "not one line: {m:?}");
    let left: Vec<_> = std::fs::read_dir(&data)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{m}: left {left:?} in the data directory");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_no_backup_are_refused_and_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let good = backup(d.path()).await;
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"this is not a database\n".repeat(200)),
        (
            "random-ish",
            (0..16384u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("first half", bytes[..bytes.len() / 2].to_vec()),
        ("first page", bytes[..4096.min(bytes.len())].to_vec()),
        ("header zeroed", {
            let mut b = bytes.clone();
            b[..512].fill(0);
            b
        }),
    ];
    for (what, b) in cases {
        let f = d.path().join(format!("{what}.redb"));
        std::fs::write(&f, &b).unwrap();
        let m = restore_err(&f, &key());
        assert!(!m.is_empty(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_backups_are_refused_naming_the_problem_and_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let good = backup(d.path()).await;
    let cases: Vec<(&str, Alteration, &str)> = vec![
        (
            "an audit entry that is not JSON",
            Box::new(|tx| {
                tx.open_table(AUDIT)
                    .unwrap()
                    .insert(1, &b"{\"index\":"[..])
                    .unwrap();
            }),
            "entry 1",
        ),
        (
            "an audit entry rewritten",
            Box::new(|tx| {
                let mut t = tx.open_table(AUDIT).unwrap();
                let e = t.get(1).unwrap().unwrap().value().to_vec();
                let e = String::from_utf8(e)
                    .unwrap()
                    .replace("session.create", "session.delete");
                t.insert(1, e.as_bytes()).unwrap();
            }),
            "entry 1",
        ),
        (
            "the audit head replaced by garbage",
            Box::new(|tx| {
                tx.open_table(META)
                    .unwrap()
                    .insert("audit_head", &b"\xff\x00"[..])
                    .unwrap();
            }),
            "head",
        ),
        (
            "the last audit entry removed",
            Box::new(|tx| {
                let mut t = tx.open_table(AUDIT).unwrap();
                let last = t.last().unwrap().unwrap().0.value();
                t.remove(last).unwrap();
            }),
            "head",
        ),
        (
            "a store format from the future",
            Box::new(|tx| {
                tx.open_table(META)
                    .unwrap()
                    .insert("format", &b"sigil-cas-store-v9"[..])
                    .unwrap();
            }),
            "unknown store format",
        ),
    ];
    for (what, alter, expect) in cases {
        let bad = d.path().join("altered.redb");
        let _ = std::fs::remove_file(&bad);
        altered(&good, &bad, alter);
        let m = restore_err(&bad, &key());
        assert!(m.contains(expect), "{what}: {m}");
    }
    // The wrong master key: said so, nothing left.
    let other = MasterKeySource::Hex(Zeroizing::new("22".repeat(32)));
    let m = restore_err(&good, &other);
    assert!(m.contains("master key does not match"), "{m}");
    // And the good backup still restores.
    let t = tempfile::tempdir().unwrap();
    let r = sigil_cas::restore(&good, &t.path().join("ok"), Some(&key())).unwrap();
    assert!(r.head_mac_checked && r.entries >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_session_record_is_refused_by_restore() {
    let d = tempfile::tempdir().unwrap();
    let good = backup(d.path()).await;
    for (what, value) in [
        ("not JSON", b"\x00\x01garbage".to_vec()),
        (
            "JSON of another shape",
            br#"{"name":"one","hash":[1,2,3]}"#.to_vec(),
        ),
    ] {
        let bad = d.path().join("altered.redb");
        let _ = std::fs::remove_file(&bad);
        altered(&good, &bad, |tx| {
            tx.open_table(SESSIONS)
                .unwrap()
                .insert("one", value.as_slice())
                .unwrap();
        });
        // Every record is checked before the store is put in place (as a
        // restore into PostgreSQL does): refused, naming the session, and
        // nothing is left in the data directory.
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("restored");
        let e = sigil_cas::restore(&bad, &data, Some(&key()))
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains('\n') && e.contains("session `one`") && e.contains("malformed"),
            "{what}: {e}"
        );
        let left: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
        assert!(left.is_empty(), "{what}: left behind: {left:?}");
    }
    // The same session record with a valid shape but another hash: its MAC
    // no longer matches.
    let bad = d.path().join("altered.redb");
    let _ = std::fs::remove_file(&bad);
    altered(&good, &bad, |tx| {
        let mut t = tx.open_table(SESSIONS).unwrap();
        let rec = t.get("one").unwrap().unwrap().value().to_vec();
        let mut v: serde_json::Value = serde_json::from_slice(&rec).unwrap();
        let h = v["hash"].as_str().unwrap().to_string();
        let flipped = if h.starts_with('0') { "1" } else { "0" };
        v["hash"] = serde_json::Value::String(format!("{flipped}{}", &h[1..]));
        t.insert("one", serde_json::to_vec(&v).unwrap().as_slice())
            .unwrap();
    });
    let t = tempfile::tempdir().unwrap();
    let e = sigil_cas::restore(&bad, &t.path().join("restored"), Some(&key()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`one`") && !e.contains('\n'), "{e}");
}
