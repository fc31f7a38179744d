//! Shared by the CAS fuzz targets: a real CAS state on a real redb file
//! (in /dev/shm when it exists, so commits cost no disk flush) holding one
//! session with a service, a generated secret and an injected file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::BodyExt;
use sigil_attest::simulation::SimulationVerifier;
use sigil_attest::Verifiers;
use sigil_cas::ratelimit::RateLimiter;
use sigil_cas::{CasState, MasterKey, RedbStore, SystemClock};
use sigil_client::Fingerprint;

/// Simulation measurement of the base session's service.
pub const M: [u8; 32] = [5; 32];
/// TLS exporter of the fuzzed connection.
pub const EXPORTER: [u8; 64] = [3; 64];
/// The creator of the base session, and another identity.
pub const ALICE: Fingerprint = Fingerprint([1; 32]);
pub const BOB: Fingerprint = Fingerprint([2; 32]);

pub fn base_yaml() -> String {
    format!(
        "name: base\nservices:\n  - name: app\n    image_name: img\n    command: [/bin/app, \"--token=$$SIGIL::tok:hex$$\"]\n    environment:\n      PW: \"$$SIGIL::pw$$\"\n    attestation:\n      - simulation_measurement: {}\nimages:\n  - name: img\n    injection_files:\n      - path: /etc/app.conf\n        content: \"key=$$SIGIL::tok:base64$$\"\nsecrets:\n  - name: tok\n    kind: binary\n    size: 16\n  - name: pw\n    kind: ascii\n    size: 12\nsecurity:\n  attestation:\n    mode: simulation\n",
        hex::encode(M)
    )
}

/// A directory for one run's files: /dev/shm if there is one.
pub fn scratch() -> tempfile::TempDir {
    let base = Path::new("/dev/shm");
    if base.is_dir() {
        tempfile::tempdir_in(base).expect("temp dir in /dev/shm")
    } else {
        tempfile::tempdir().expect("temp dir")
    }
}

pub fn master_key() -> Arc<MasterKey> {
    Arc::new(MasterKey::from_bytes(&[0x11; 32]))
}

/// A fresh store at `path` with the base session created by ALICE.
pub fn state(path: &Path) -> Arc<CasState> {
    let store = Arc::new(RedbStore::open(path, Some(master_key())).expect("open store"));
    let st = state_on(store);
    st.create_session(&ALICE, &base_yaml())
        .expect("base session is valid");
    st
}

/// A CAS state over `store` (the master key of [`master_key`]).
pub fn state_on(store: Arc<dyn sigil_cas::SessionStore>) -> Arc<CasState> {
    Arc::new(CasState {
        store,
        key: master_key(),
        metrics: Default::default(),
        clock: Arc::new(SystemClock),
        attest_limiter: RateLimiter::new(1e9, u32::MAX),
        fingerprint: Fingerprint([9; 32]),
        audit_readers: None,
        session_creators: None,
        verifiers: Arc::new(Verifiers::new().with(Box::new(SimulationVerifier))),
    })
}

pub fn store_path(dir: &Path) -> PathBuf {
    dir.join("store.redb")
}

/// Status and body of a handler's answer.
pub fn body(resp: sigil_cas::http::HttpResponse) -> (u16, Vec<u8>) {
    let status = resp.status().as_u16();
    let bytes = block_on(resp.into_body().collect())
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    (status, bytes)
}

/// `Full<Bytes>` is ready at once; a current-thread runtime polls it.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::OnceLock;
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
    .block_on(f)
}

/// An error answer is JSON `{"error": ...}` with one line of text.
pub fn assert_clear_error(status: u16, body: &[u8]) {
    if status < 400 {
        return;
    }
    assert_ne!(
        status,
        500,
        "internal error on hostile input: {}",
        String::from_utf8_lossy(body)
    );
    let e: serde_json::Value = serde_json::from_slice(body).expect("error body is JSON");
    let msg = e["error"].as_str().expect("error body has `error`");
    assert!(!msg.is_empty() && !msg.contains('\n'), "{status}: {msg:?}");
}
