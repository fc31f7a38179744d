//! The CAS through the real `sigil` binary: `sigil cas serve` as a child
//! process on loopback, driven by `sigil identity|cas trust|session|audit`.

mod cas_support;

use redb::ReadableTable;

use cas_support::*;

#[test]
fn session_lifecycle_through_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("cas");
    let cfg = d.path().join("config");
    let cas = Cas::start(&data);

    // Identity and trust.
    let id: serde_json::Value =
        serde_json::from_str(&ok(&sigil(&cfg, &["identity", "create", "--json"]))).unwrap();
    let fp = id["fingerprint"].as_str().unwrap().to_string();
    assert!(fp.starts_with("sha256:"));
    let e = fails(&sigil(&cfg, &["identity", "create"]));
    assert!(e.contains("already"), "{e}");
    // Without trust: a one-line error saying what to do.
    let e = fails(&sigil(&cfg, &["session", "list"]));
    assert!(e.contains("sigil cas trust"), "{e}");
    ok(&sigil(
        &cfg,
        &["cas", "trust", &cas.addr, "--fingerprint", &cas.fingerprint],
    ));

    // Local check and hash.
    let file = d.path().join("app.yaml");
    std::fs::write(&file, session_yaml("app", 16, CREATOR_ONLY)).unwrap();
    let f = file.to_str().unwrap();
    assert!(ok(&sigil(&cfg, &["session", "check", f])).starts_with("ok app "));
    let local_hash = ok(&sigil(&cfg, &["session", "hash", f])).trim().to_string();
    let bad = d.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: x\nsecrets:\n  - name: k\n    kind: private-key\n    algorithm: rsa-2048\n",
    )
    .unwrap();
    let e = fails(&sigil(&cfg, &["session", "check", bad.to_str().unwrap()]));
    assert!(e.contains("cannot be generated"), "{e}");

    // Create: the CAS's hash is the local hash.
    let w: serde_json::Value =
        serde_json::from_str(&ok(&sigil(&cfg, &["session", "create", f, "--json"]))).unwrap();
    assert_eq!(w["hash"], local_hash.as_str());

    // Update without predecessor in the file: filled in by the CLI.
    std::fs::write(&file, session_yaml("app", 20, CREATOR_ONLY)).unwrap();
    let u: serde_json::Value =
        serde_json::from_str(&ok(&sigil(&cfg, &["session", "update", f, "--json"]))).unwrap();
    assert_eq!(u["predecessor"], local_hash.as_str());
    let h2 = u["hash"].as_str().unwrap().to_string();

    // A stale predecessor written by hand: refused with both hashes, one line.
    std::fs::write(
        &file,
        format!(
            "predecessor: {local_hash}\n{}",
            session_yaml("app", 24, CREATOR_ONLY)
        ),
    )
    .unwrap();
    let e = fails(&sigil(&cfg, &["session", "update", f]));
    assert!(
        e.contains("409") && e.contains(&h2) && e.contains(&local_hash),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");

    // Show and list.
    let info: serde_json::Value =
        serde_json::from_str(&ok(&sigil(&cfg, &["session", "show", "app", "--json"]))).unwrap();
    assert_eq!(info["hash"], h2.as_str());
    assert_eq!(info["creator"], fp.as_str());
    let list = ok(&sigil(&cfg, &["session", "list"]));
    assert!(list.contains(&format!("{h2} app")), "{list}");

    // Another identity is refused (403).
    let other = d.path().join("other-id");
    ok(&sigil(
        &cfg,
        &["identity", "create", "--dir", other.to_str().unwrap()],
    ));
    let e = fails(&sigil(
        &cfg,
        &[
            "session",
            "show",
            "app",
            "--identity",
            other.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("403"), "{e}");
    std::fs::write(&file, session_yaml("app", 28, CREATOR_ONLY)).unwrap();
    let e = fails(&sigil(
        &cfg,
        &[
            "session",
            "update",
            f,
            "--identity",
            other.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("403"), "{e}");
    // A wrong pin is refused.
    let e = fails(&sigil(
        &cfg,
        &[
            "session",
            "list",
            "--cas",
            &cas.addr,
            "--cas-fingerprint",
            &"ab".repeat(32),
        ],
    ));
    assert!(e.contains("fingerprint"), "{e}");

    // Audit over the API.
    let shown = ok(&sigil(&cfg, &["audit", "show", "--json"]));
    let actions: Vec<String> = shown
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(actions, ["cas.start", "session.create", "session.update"]);
    let v = ok(&sigil(&cfg, &["audit", "verify"]));
    assert!(v.contains("intact: 3 entries"), "{v}");

    ok(&sigil(&cfg, &["session", "delete", "app"]));
    assert!(fails(&sigil(&cfg, &["session", "show", "app"])).contains("404"));

    // Backup while running, then offline verification and tamper detection.
    let backup = d.path().join("backup.redb");
    ok(&sigil(
        &cfg,
        &[
            "cas",
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            backup.to_str().unwrap(),
        ],
    ));
    cas.stop();
    let mut off = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"));
    off.args(["audit", "verify", "--data-dir", data.to_str().unwrap()])
        .env("SIGIL_CAS_MASTER_KEY", KEY_HEX);
    let o = off.output().unwrap();
    let v = ok(&o);
    assert!(v.contains("intact: 4 entries"), "{v}");
    assert!(!v.contains("not checked"), "{v}");

    // Tamper with the store file: change who did entry 1.
    {
        let db = redb::Database::open(data.join("store.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit");
            let mut t = tx.open_table(def).unwrap();
            let mut e: serde_json::Value =
                serde_json::from_slice(t.get(1u64).unwrap().unwrap().value()).unwrap();
            e["actor"] = serde_json::json!("sha256:innocent");
            t.insert(1u64, serde_json::to_vec(&e).unwrap().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let o = sigil(
        &cfg,
        &["audit", "verify", "--data-dir", data.to_str().unwrap()],
    );
    let e = fails(&o);
    assert!(e.contains("NOT intact") && e.contains("entry 1"), "{e}");

    // The backup restores into a new data dir and serves again.
    let restored = d.path().join("restored");
    let mut r = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"));
    r.args([
        "cas",
        "restore",
        "--backup",
        backup.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ])
    .env("SIGIL_CAS_MASTER_KEY", KEY_HEX);
    assert!(ok(&r.output().unwrap()).contains("audit log verified"));
    let cas2 = Cas::start(&restored);
    assert_eq!(cas2.fingerprint, cas_fp(&data));
    cas2.stop();
}

fn cas_fp(data: &std::path::Path) -> String {
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("cas.json")).unwrap()).unwrap();
    info["fingerprint"].as_str().unwrap().to_string()
}
