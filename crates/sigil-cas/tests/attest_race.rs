//! An attestation is decided against one version of the session; the
//! configuration and secrets released must come from that same version,
//! even if the session is updated while the evidence is being verified
//! (verification can take seconds: collateral fetches).
//!
//! A verifier that updates the session in the middle of verification (real
//! CAS state, real redb store, real simulation evidence) makes the race
//! deterministic.

mod common;

use std::sync::Arc;

use common::*;
use http_body_util::BodyExt;
use sigil_attest::simulation::SimulationVerifier;
use sigil_attest::{Claims, Evidence, TeeKind, Verifier, Verifiers, VerifyError};
use sigil_cas::{CasState, ConnInfo, RunningServer};
use sigil_client::attest::AttestAccepted;
use sigil_client::{Fingerprint, SessionWritten};

const OLD: [u8; 32] = [1; 32];
const NEW: [u8; 32] = [2; 32];
const EXPORTER: [u8; 64] = [9; 64];

fn yaml(predecessor: Option<&str>, measurement: [u8; 32], version: &str) -> String {
    let pred = predecessor
        .map(|p| format!("predecessor: {p}\n"))
        .unwrap_or_default();
    format!(
        "{pred}name: race\nservices:\n  - name: app\n    command: [/bin/app]\n    environment:\n      VERSION: {version}\n    attestation:\n      - simulation_measurement: {}\nsecurity:\n  attestation:\n    mode: simulation\naccess_policy:\n  read: [CREATOR]\n  update: [CREATOR]\n",
        hex::encode(measurement)
    )
}

/// Simulation verification that first lets the operator update the session
/// (as a concurrent `PUT /v1/sessions` would).
struct UpdatingVerifier {
    state: Arc<CasState>,
    who: Fingerprint,
    new_yaml: String,
}

impl Verifier for UpdatingVerifier {
    fn kind(&self) -> TeeKind {
        TeeKind::Simulation
    }

    fn verify(&self, evidence: &Evidence, now: u64) -> Result<Claims, VerifyError> {
        self.state
            .update_session(&self.who, &self.new_yaml)
            .map_err(|e| VerifyError::Rejected(format!("test update failed: {e}")))?;
        SimulationVerifier.verify(evidence, now)
    }
}

fn request(measurement: [u8; 32]) -> Vec<u8> {
    sim_attest_body("race/app", measurement, EXPORTER)
}

/// A CAS with version one of session `race` (OLD measurement), created by
/// alice: the server, alice and version one.
async fn with_version_one() -> (
    tempfile::TempDir,
    RunningServer,
    Fingerprint,
    SessionWritten,
) {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let alice = id("alice").fingerprint();
    let v1 = s
        .state
        .create_session(&alice, &yaml(None, OLD, "one"))
        .unwrap();
    (d, s, alice, v1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_during_verification_releases_nothing_of_the_new_version() {
    let (_d, s, alice, v1) = with_version_one().await;
    // Version two revokes the OLD measurement and carries new configuration.
    let v2 = yaml(Some(&v1.hash), NEW, "two");
    let verifiers = Verifiers::new().with(Box::new(UpdatingVerifier {
        state: s.state.clone(),
        who: alice,
        new_yaml: v2,
    }));
    let conn = ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        client: None,
        exporter: Some(EXPORTER),
    };
    // A workload with the OLD measurement, decided under version one.
    let st = s.state.clone();
    let resp = tokio::task::spawn_blocking(move || {
        sigil_cas::attest_api::handle_with(&st, &conn, &request(OLD), &verifiers)
    })
    .await
    .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    // Before the fix this was 200 with VERSION=two: configuration of a
    // version that no longer admits this measurement.
    assert_ne!(status, 200, "released: {text}");
    assert!(!text.contains("two"), "{text}");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("changed during attestation"), "{text}");

    // The attempt is audited as a retry, without configuration.
    let audit = s.state.audit_page(&alice, 0, 100).unwrap();
    let last = audit
        .entries
        .iter()
        .rev()
        .find(|e| e.action == "attest")
        .expect("attest audited");
    assert_eq!(last.details["result"], "retry");

    // The launcher's retry is decided against version two: OLD is refused,
    // NEW gets version two's configuration.
    let plain = Verifiers::new().with(Box::new(SimulationVerifier));
    let resp = sigil_cas::attest_api::handle_with(&s.state, &conn, &request(OLD), &plain);
    assert_eq!(resp.status().as_u16(), 403);
    let resp = sigil_cas::attest_api::handle_with(&s.state, &conn, &request(NEW), &plain);
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let a: AttestAccepted = serde_json::from_slice(&body).unwrap();
    assert_eq!(a.service.environment["VERSION"], "two");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_at_a_stale_or_deleted_version_is_a_conflict() {
    let (_d, s, alice, v1) = with_version_one().await;
    let r = s.state.resolve_service_at("race", "app", &v1.hash).unwrap();
    assert_eq!(r.environment["VERSION"], "one");
    let v2 = s
        .state
        .update_session(&alice, &yaml(Some(&v1.hash), NEW, "two"))
        .unwrap();
    let e = s
        .state
        .resolve_service_at("race", "app", &v1.hash)
        .unwrap_err();
    assert!(matches!(e, sigil_cas::CasError::Conflict { .. }), "{e}");
    s.state.delete_session(&alice, "race").unwrap();
    let e = s
        .state
        .resolve_service_at("race", "app", &v2.hash)
        .unwrap_err();
    assert!(matches!(e, sigil_cas::CasError::Conflict { .. }), "{e}");
    s.shutdown().await;
}
