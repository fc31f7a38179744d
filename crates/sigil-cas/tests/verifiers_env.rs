//! Environment variables as fallbacks of the verifier configuration (a test
//! binary of its own: it changes the process environment).

mod common;

use common::*;
use sigil_cas::attest_api::{
    VerifierConfig, ENV_COLLATERAL_DIR, ENV_PCCS_URL, ENV_SNP_CERT_DIR, ENV_SNP_KDS_URL,
};
use sigil_cas::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_the_fallback_and_configuration_wins() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let dir = d.path().join("dir");
    std::fs::create_dir(&dir).unwrap();

    // Env only: used, and checked.
    std::env::set_var(ENV_SNP_CERT_DIR, &file);
    let e = Server::start(config(&d.path().join("a")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");
    let v = VerifierConfig::default().with_env_fallbacks();
    assert_eq!(v.snp_cert_dir.as_deref(), Some(file.as_path()));

    // Configuration wins over the environment.
    let mut cfg = config(&d.path().join("b"));
    cfg.verifiers.snp_cert_dir = Some(dir.clone());
    let s = Server::start(cfg).await.unwrap();
    s.shutdown().await;
    std::env::remove_var(ENV_SNP_CERT_DIR);

    // A collateral directory (config or env) replaces the PCCS variable.
    std::env::set_var(ENV_PCCS_URL, "ftp://nope");
    let e = Server::start(config(&d.path().join("c")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("PCCS URL"), "{e}");
    std::env::set_var(ENV_COLLATERAL_DIR, &dir);
    let v = VerifierConfig::default().with_env_fallbacks();
    assert_eq!(v.collateral_dir.as_deref(), Some(dir.as_path()));
    assert_eq!(v.pccs_url, None);
    let s = Server::start(config(&d.path().join("d"))).await.unwrap();
    s.shutdown().await;
    // An explicit PCCS URL ignores the directory variable.
    let v = VerifierConfig {
        pccs_url: Some("http://127.0.0.1:1".into()),
        ..Default::default()
    }
    .with_env_fallbacks();
    assert_eq!(v.collateral_dir, None);
    std::env::remove_var(ENV_COLLATERAL_DIR);
    std::env::remove_var(ENV_PCCS_URL);

    std::env::set_var(ENV_SNP_KDS_URL, "http://127.0.0.1:1/");
    let v = VerifierConfig::default().with_env_fallbacks();
    assert_eq!(v.snp_kds_url.as_deref(), Some("http://127.0.0.1:1/"));
    assert!(
        v.describe().contains("KDS http://127.0.0.1:1/"),
        "{}",
        v.describe()
    );
    std::env::remove_var(ENV_SNP_KDS_URL);
}
