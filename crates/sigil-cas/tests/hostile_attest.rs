//! `POST /v1/attest` bodies from a hostile launcher (anyone who can reach
//! the CAS): too large, nested deep enough to exhaust a recursive parser,
//! unknown fields, another version, hostile config ids, evidence that is
//! no object, not base64, too large, of an unknown kind, or simulation
//! evidence with garbage inside. Each gets a 4xx with one line of JSON
//! error (or a 403 with reasons), never a 500 or a panic; no session is
//! touched and the audit chain stays intact. Real CAS state on a real
//! redb file, driven through the handler the router calls.

mod common;

use common::*;
use http_body_util::BodyExt;
use serde_json::json;
use sigil_attest::simulation::{make_evidence, SimulationVerifier};
use sigil_attest::Verifiers;
use sigil_cas::ConnInfo;
use sigil_client::attest::MAX_ATTEST_REQUEST;

const M: [u8; 32] = [5; 32];
const EXPORTER: [u8; 64] = [3; 64];

fn session() -> String {
    format!(
        "name: app\nservices:\n  - name: web\n    command: [/bin/web, \"$$SIGIL::tok:hex$$\"]\n    attestation:\n      - simulation_measurement: {}\nsecrets:\n  - name: tok\n    kind: binary\n    size: 16\nsecurity:\n  attestation:\n    mode: simulation\n",
        hex::encode(M)
    )
}

fn req(config_id: &str, evidence: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": 1, "config_id": config_id, "evidence": evidence, "launcher_version": "t"
    }))
    .unwrap()
}

fn good_evidence() -> serde_json::Value {
    serde_json::to_value(make_evidence(M, EXPORTER)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_attest_bodies_get_clear_4xx_and_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let who = id("owner").fingerprint();
    s.state.create_session(&who, &session()).unwrap();
    let hash_before = s.state.read_session("app").unwrap().unwrap().0.hash;

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut sim_garbage = make_evidence(M, EXPORTER);
    sim_garbage.data.truncate(17);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty", vec![], 400),
        ("not JSON", b"\xff\xfe{".to_vec(), 400),
        ("deeply nested", deep.into_bytes(), 400),
        ("nested evidence", req("app/web", serde_json::from_str(&format!("{}1{}", "[".repeat(120), "]".repeat(120))).unwrap()), 403),
        ("too large", vec![b' '; MAX_ATTEST_REQUEST + 1], 413),
        (
            "unknown field",
            serde_json::to_vec(&json!({"version":1,"config_id":"app/web","evidence":good_evidence(),"launcher_version":"t","admin":true})).unwrap(),
            400,
        ),
        (
            "version 2",
            serde_json::to_vec(&json!({"version":2,"config_id":"app/web","evidence":good_evidence(),"launcher_version":"t"})).unwrap(),
            400,
        ),
        ("config id without service", req("app", good_evidence()), 400),
        ("config id with NUL", req("app/w\u{0}eb", good_evidence()), 400),
        ("config id climbing", req("../app/web", good_evidence()), 400),
        ("unknown session", req("nope/web", good_evidence()), 403),
        ("unknown service", req("app/nope", good_evidence()), 403),
        ("evidence a string", req("app/web", json!("AAAA")), 403),
        ("evidence not base64", req("app/web", json!({"kind":"simulation","data":"!!!"})), 403),
        ("evidence of an unknown kind", req("app/web", json!({"kind":"tpm","data":"AAAA"})), 403),
        (
            "evidence data over 64 KiB",
            req("app/web", json!({"kind":"simulation","data": base64_of(&vec![0u8; 64 * 1024 + 1])})),
            403,
        ),
        (
            "certificates over 64 KiB",
            req("app/web", json!({"kind":"simulation","data":"AAAA","certs": base64_of(&vec![0u8; 64 * 1024 + 1])})),
            403,
        ),
        ("simulation evidence cut short", req("app/web", serde_json::to_value(&sim_garbage).unwrap()), 403),
        (
            "an SGX quote of zeros",
            req("app/web", json!({"kind":"sgx","data": base64_of(&[0u8; 1200])})),
            403,
        ),
    ];
    let verifiers = Verifiers::new().with(Box::new(SimulationVerifier));
    let conn = ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        client: None,
        exporter: Some(EXPORTER),
    };
    for (what, body, want) in cases {
        let resp = sigil_cas::attest_api::handle_with(&s.state, &conn, &body, &verifiers);
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{what}: answer is not JSON ({e})"));
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no error: {v}"));
        assert_eq!(status, want, "{what}: {v}");
        assert!(!msg.contains('\n'), "{what}: {msg:?}");
        for r in v["reasons"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            assert!(!r.contains('\n') && r.len() < 2048, "{what}: reason {r:?}");
        }
    }
    // Nothing changed; the refusals are audited and the chain verifies.
    assert_eq!(
        s.state.read_session("app").unwrap().unwrap().0.hash,
        hash_before
    );
    s.state.verify_audit().unwrap();
    // The same CAS still accepts the real launcher.
    let ok = sigil_cas::attest_api::handle_with(
        &s.state,
        &conn,
        &req("app/web", good_evidence()),
        &verifiers,
    );
    assert_eq!(ok.status().as_u16(), 200);
    s.shutdown().await;
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
