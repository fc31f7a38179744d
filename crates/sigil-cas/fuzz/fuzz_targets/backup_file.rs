//! A backup file handed to `sigil cas restore` (and, after a restore, the
//! store the CAS reads): the redb file format, and inside it the stored
//! session records, sealed secrets, audit entries and audit head, all of
//! which the CAS parses as JSON or sealed blobs.
//!
//! A real backup is made once (a session with secrets, a successful
//! simulation attestation, so the audit log has entries with claims).
//! Byte 0 picks the attack: overwrite bytes of the file at an offset
//! (bytes 1-4) or truncate it there, or replace one stored value (a
//! session record, a secret, an audit entry, the audit head or the format
//! marker) with the payload through redb itself. Then `restore` runs.
//! Invariants: no panic; an error is one line and leaves neither the store
//! nor the temporary copy behind; a restored store can be opened and read
//! (reads may fail, cleanly).
#![no_main]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::*;
use redb::{ReadableTableMetadata, TableDefinition};
use sigil_cas::{MasterKeySource, RedbStore, SessionStore};
use zeroize::Zeroizing;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

struct Template {
    _dir: tempfile::TempDir,
    bytes: Vec<u8>,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        // redb 2.6 asserts on some damaged files (a truncated one, a header
        // naming a longer layout); `restore` catches that panic and refuses
        // the file. libfuzzer-sys aborts on every panic, caught or not, so
        // those are let through here; any other panic still aborts, and a
        // redb panic outside `restore` still reaches the harness uncaught.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("/redb-")) {
                abort(info);
            }
        }));
        let dir = scratch();
        let st = state(&store_path(dir.path()));
        let ev = sigil_attest::simulation::make_evidence(M, EXPORTER);
        let req = sigil_client::attest::AttestRequest {
            version: sigil_client::attest::ATTEST_VERSION,
            config_id: "base/app".into(),
            evidence: serde_json::from_str(&ev.to_json()).unwrap(),
            launcher_version: "fuzz".into(),
        };
        let conn = sigil_cas::ConnInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client: None,
            exporter: Some(EXPORTER),
        };
        let r = sigil_cas::attest_api::handle_with(
            &st,
            &conn,
            &serde_json::to_vec(&req).unwrap(),
            &st.verifiers,
        );
        assert_eq!(r.status().as_u16(), 200);
        let out = dir.path().join("backup.redb");
        st.store.backup_to(&out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        Template { _dir: dir, bytes }
    })
}

fn key_source() -> MasterKeySource {
    MasterKeySource::Hex(Zeroizing::new(hex::encode([0x11u8; 32])))
}

/// Replaces one stored value of the backup at `path` with `value`.
fn replace_value(path: &std::path::Path, which: u8, value: &[u8]) -> bool {
    let Ok(db) = redb::Database::open(path) else {
        return false;
    };
    let Ok(tx) = db.begin_write() else {
        return false;
    };
    let r: Result<(), ()> = (|| {
        match which % 6 {
            0 => {
                let mut t = tx.open_table(SESSIONS).map_err(drop)?;
                t.insert("base", value).map_err(drop)?;
            }
            1 => {
                let mut t = tx.open_table(SECRETS).map_err(drop)?;
                t.insert("base\u{0}tok", value).map_err(drop)?;
            }
            2 | 3 => {
                let mut t = tx.open_table(AUDIT).map_err(drop)?;
                let n = t.len().map_err(drop)?;
                let at = if which % 6 == 2 {
                    0
                } else {
                    n.saturating_sub(1)
                };
                t.insert(at, value).map_err(drop)?;
            }
            4 => {
                let mut t = tx.open_table(META).map_err(drop)?;
                t.insert("audit_head", value).map_err(drop)?;
            }
            _ => {
                let mut t = tx.open_table(META).map_err(drop)?;
                t.insert("format", value).map_err(drop)?;
            }
        }
        Ok(())
    })();
    if r.is_err() {
        return false;
    }
    tx.commit().is_ok()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let t = template();
    let dir = scratch();
    let backup: PathBuf = dir.path().join("in.redb");
    match mode % 3 {
        0 | 1 => {
            let [a, b, c, d, payload @ ..] = rest else {
                return;
            };
            let mut bytes = t.bytes.clone();
            let at = u32::from_le_bytes([*a, *b, *c, *d]) as usize % bytes.len();
            if mode % 3 == 0 {
                let end = (at + payload.len()).min(bytes.len());
                bytes[at..end].copy_from_slice(&payload[..end - at]);
            } else {
                bytes.truncate(at);
                bytes.extend_from_slice(payload);
            }
            std::fs::write(&backup, &bytes).unwrap();
        }
        _ => {
            let [which, payload @ ..] = rest else { return };
            std::fs::write(&backup, &t.bytes).unwrap();
            if !replace_value(&backup, *which, payload) {
                return;
            }
        }
    }

    let data_dir = dir.path().join("data");
    let key = key_source();
    match sigil_cas::restore(&backup, &data_dir, Some(&key)) {
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            let left: Vec<_> = std::fs::read_dir(&data_dir)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "restore failed ({msg}) and left {left:?}");
        }
        Ok(_report) => {
            // The CAS reads what was restored: cleanly, whatever it holds.
            let store = RedbStore::open(&data_dir.join("store.redb"), Some(master_key()))
                .expect("a restored store opens");
            if let Ok(list) = store.list() {
                for r in list {
                    let _ = store.secrets(&r.name);
                }
            }
            let _ = store.audit_range(0, 1000);
            let st = state_on(std::sync::Arc::new(store));
            for e in [
                st.read_session("base").map(drop),
                st.resolve_service("base", "app").map(drop),
                st.list_sessions(&ALICE).map(drop),
                st.get_session_info(&ALICE, "base").map(drop),
                st.verify_audit().map(drop),
            ]
            .into_iter()
            .filter_map(Result::err)
            {
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "{msg}");
            }
        }
    }
});
