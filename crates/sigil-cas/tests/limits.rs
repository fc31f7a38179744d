//! Limits on what one session can make the CAS do. Any identity may create
//! a top-level session, so a session must not be able to make the CAS
//! expand a large secret through thousands of placeholders into gigabytes
//! of memory, nor spend hours generating RSA keys.

mod common;

use common::*;
use http_body_util::BodyExt;
use sigil_attest::simulation::SimulationVerifier;
use sigil_attest::Verifiers;
use sigil_cas::state::MAX_RESOLVED_SECRET_BYTES;
use sigil_cas::ConnInfo;
use sigil_client::attest::AttestRefused;

const M: [u8; 32] = [5; 32];

/// `vars` environment variables, each holding eight hex renderings of a
/// 64 KiB secret (1 MiB per variable).
fn yaml(name: &str, vars: usize) -> String {
    let value = "$$SIGIL::big:hex$$".repeat(8);
    let env: String = (0..vars)
        .map(|i| format!("      V{i}: \"{value}\"\n"))
        .collect();
    format!(
        "name: {name}\nservices:\n  - name: app\n    command: [/bin/app]\n    environment:\n{env}    attestation:\n      - simulation_measurement: {}\nsecrets:\n  - name: big\n    kind: binary\n    size: 65536\nsecurity:\n  attestation:\n    mode: simulation\n",
        hex::encode(M)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substituted_secrets_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let who = id("anyone").fingerprint();
    assert_eq!(MAX_RESOLVED_SECRET_BYTES, 4 * 1024 * 1024);

    // 3 MiB of substituted secrets: within the budget.
    s.state.create_session(&who, &yaml("fits", 3)).unwrap();
    let r = s.state.resolve_service("fits", "app").unwrap();
    assert_eq!(r.environment["V2"].len(), 8 * 2 * 65536);

    // 5 MiB: refused, naming the limit, before it is all allocated.
    s.state.create_session(&who, &yaml("huge", 5)).unwrap();
    let e = s.state.resolve_service("huge", "app").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("exceed 4194304 bytes"), "{msg}");
    assert!(msg.contains("service `app` of session `huge`"), "{msg}");

    // Through /v1/attest: a refusal with that reason, not a 200.
    let exporter = [3u8; 64];
    let body = sim_attest_body("huge/app", M, exporter);
    let conn = ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        client: None,
        exporter: Some(exporter),
    };
    let verifiers = Verifiers::new().with(Box::new(SimulationVerifier));
    let st = s.state.clone();
    let resp = tokio::task::spawn_blocking(move || {
        sigil_cas::attest_api::handle_with(&st, &conn, &body, &verifiers)
    })
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let r: AttestRefused = serde_json::from_slice(&body).unwrap();
    assert!(
        r.reasons.iter().any(|x| x.contains("exceed 4194304 bytes")),
        "{:?}",
        r.reasons
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_key_generation_per_change_is_bounded() {
    use sigil_cas::secrets::MAX_RSA_KEYGEN_PER_CHANGE;
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let who = id("anyone").fingerprint();
    let n = MAX_RSA_KEYGEN_PER_CHANGE + 1;
    let secrets: String = (0..n)
        .map(|i| format!("  - name: k{i}\n    kind: private-key\n    algorithm: rsa-3072\n"))
        .collect();
    let yaml = format!("name: rsa-bomb\nsecrets:\n{secrets}");
    let st = s.state.clone();
    let r = tokio::task::spawn_blocking(move || st.create_session(&who, &yaml))
        .await
        .unwrap();
    let e = r.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("needs {n} new RSA keys")) && msg.contains("at most 32"),
        "{msg}"
    );
    assert!(matches!(e, sigil_cas::CasError::BadRequest(_)), "{e:?}");
    assert!(s.state.read_session("rsa-bomb").unwrap().is_none());
    s.shutdown().await;
}
