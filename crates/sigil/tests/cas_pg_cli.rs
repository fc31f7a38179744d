//! The embedded -> PostgreSQL migration through the real `sigil` binary:
//! a CAS on redb with a session and a generated secret, `sigil cas backup`,
//! `sigil cas restore BACKUP --postgres-url` into a real PostgreSQL (TLS,
//! verify-full), `sigil audit verify --postgres-url`, then `sigil cas
//! serve` on the database serving the same session under the same CAS
//! identity. The database password never shows in any output.

mod cas_support;
#[path = "../../sigil-cas/tests/postgres_support/mod.rs"]
mod postgres_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use cas_support::*;
use sigil_testsupport::cli::cas_serve_banner;

/// `sigil` with the master key and the PostgreSQL CA in the environment;
/// checks that the password is in neither output stream.
fn sigil_pg(cfg: &std::path::Path, args: &[&str], ca: &std::path::Path) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env("SIGIL_CONFIG_DIR", cfg)
        .env("SIGIL_CAS_MASTER_KEY", KEY_HEX)
        .arg("--postgres-ca-file")
        .arg(ca)
        .env_remove("SIGIL_CAS_POSTGRES_URL")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run sigil");
    for s in [&o.stdout, &o.stderr] {
        assert!(
            !String::from_utf8_lossy(s).contains(postgres_support::PASSWORD),
            "the database password was printed: {args:?}"
        );
    }
    o
}

#[test]
fn migrate_an_embedded_cas_to_postgres_through_the_cli() {
    let Some(pg) = postgres_support::shared() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("cas");
    let cfg = d.path().join("config");

    // A CAS on the embedded store with one session (and its secret).
    let cas = Cas::start(&data);
    ok(&sigil(&cfg, &["identity", "create"]));
    ok(&sigil(
        &cfg,
        &["cas", "trust", &cas.addr, "--fingerprint", &cas.fingerprint],
    ));
    let file = d.path().join("app.yaml");
    std::fs::write(&file, session_yaml("app", 16, CREATOR_ONLY)).unwrap();
    let created: serde_json::Value = serde_json::from_str(&ok(&sigil(
        &cfg,
        &["session", "create", file.to_str().unwrap(), "--json"],
    )))
    .unwrap();
    let hash = created["hash"].as_str().unwrap().to_string();
    let backup = d.path().join("backup.redb");
    cas_backup(&cfg, &data, &backup);
    let fingerprint = cas.fingerprint.clone();
    cas.stop();

    // Restore into an empty database; a second restore is refused.
    let db = pg.new_database();
    let url = pg.url_on("127.0.0.1", &db, "sslmode=verify-full");
    let restore = [
        "cas",
        "restore",
        backup.to_str().unwrap(),
        "--postgres-url",
        url.as_str(),
    ];
    ok(&sigil_pg(&cfg, &restore, &pg.ca_file));
    let e = fails(&sigil_pg(&cfg, &restore, &pg.ca_file));
    assert!(
        e.contains("not empty") && e.contains("nothing was written"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");

    // Offline verification of the database's audit log, with the key.
    let v = ok(&sigil_pg(
        &cfg,
        &["audit", "verify", "--postgres-url", url.as_str()],
        &pg.ca_file,
    ));
    assert!(v.contains("intact") && !v.contains("not checked"), "{v}");

    // A CAS on the database: same identity, same session.
    let pg_data = d.path().join("cas-pg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["cas", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&pg_data)
        .arg("--postgres-ca-file")
        .arg(&pg.ca_file)
        .env("SIGIL_CAS_POSTGRES_URL", &url)
        .env("SIGIL_CAS_MASTER_KEY", KEY_HEX)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let served = cas_serve_banner(&mut lines);
    let (addr, fp) = match served {
        Some(v) => v,
        None => {
            let _ = child.kill();
            panic!("sigil cas serve on PostgreSQL exited before printing its address");
        }
    };
    assert_eq!(fp, fingerprint, "the CAS identity travels with the backup");
    let info = sigil(
        &cfg,
        &[
            "session",
            "show",
            "app",
            "--json",
            "--cas",
            &addr,
            "--cas-fingerprint",
            &fp,
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
    let info: serde_json::Value = serde_json::from_str(&ok(&info)).unwrap();
    assert_eq!(info["hash"], hash.as_str());
}
