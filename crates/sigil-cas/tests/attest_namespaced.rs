//! A service of a namespaced session (`team/shop`) attests as
//! `team/shop/web`: the service is what follows the last '/'.

mod common;

use common::*;
use sigil_attest::simulation::SimulationVerifier;
use sigil_attest::Verifiers;
use sigil_cas::ConnInfo;

const M: [u8; 32] = [2; 32];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_session_services_attest() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let who = id("team").fingerprint();
    s.state
        .create_session(
            &who,
            "name: team\naccess_policy:\n  create_sessions: [CREATOR]\n",
        )
        .unwrap();
    s.state
        .create_session(
            &who,
            &format!(
                "name: team/shop\nservices:\n  - name: web\n    command: [/bin/web]\n    attestation:\n      - simulation_measurement: {}\nsecurity:\n  attestation:\n    mode: simulation\n",
                hex::encode(M)
            ),
        )
        .unwrap();
    let exporter = [1u8; 64];
    let conn = ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        client: None,
        exporter: Some(exporter),
    };
    let verifiers = Verifiers::new().with(Box::new(SimulationVerifier));
    let status = |cid: &str| {
        sigil_cas::attest_api::handle_with(
            &s.state,
            &conn,
            &sim_attest_body(cid, M, exporter),
            &verifiers,
        )
        .status()
        .as_u16()
    };
    assert_eq!(status("team/shop/web"), 200);
    // The namespace itself has no service `shop/web`, and bad names stay bad.
    assert_eq!(status("team/shop/nope"), 403);
    for bad in ["team//web", "team/../web", "team/shop/", "/web"] {
        assert_eq!(status(bad), 400, "{bad}");
    }
    s.shutdown().await;
}
