//! Shared helpers: a real CAS on loopback in a tempdir, real clients.
#![allow(dead_code)]

use std::path::Path;

use sigil_cas::{Config, MasterKeySource, RunningServer, Server};
use sigil_client::{CasClient, ClientError, Identity};
use zeroize::Zeroizing;

pub const KEY_HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";

pub fn key() -> MasterKeySource {
    MasterKeySource::Hex(Zeroizing::new(KEY_HEX.to_string()))
}

pub fn config(dir: &Path) -> Config {
    let mut c = Config::new(dir, "127.0.0.1:0".parse().unwrap());
    c.master_key = Some(key());
    c
}

pub async fn start(dir: &Path) -> RunningServer {
    Server::start(config(dir)).await.unwrap()
}

/// A CAS on a new temporary directory, which lives as long as the returned
/// guard.
pub async fn start_temp() -> (tempfile::TempDir, RunningServer) {
    start_temp_with(|_| {}).await
}

/// [`start_temp`] with `tune` applied to the configuration first.
pub async fn start_temp_with(tune: impl FnOnce(&mut Config)) -> (tempfile::TempDir, RunningServer) {
    let d = tempfile::tempdir().unwrap();
    let mut c = config(d.path());
    tune(&mut c);
    (d, Server::start(c).await.unwrap())
}

pub async fn client(s: &RunningServer, id: Option<&Identity>) -> CasClient {
    CasClient::connect(&s.addr.to_string(), s.fingerprint, id)
        .await
        .unwrap()
}

pub fn id(name: &str) -> Identity {
    Identity::generate(name, &[]).unwrap()
}

/// A session with every secret kind the CAS generates.
pub fn app_yaml(name: &str, extra_policy: &str, log_level: &str) -> String {
    format!(
        r#"
name: {name}
services:
  - name: app
    image_name: img
    command: ["/bin/app", "--token=$$SIGIL::token:hex$$"]
    environment:
      PASSWORD: "$$SIGIL::password$$"
      GREETING: "$$SIGIL::greeting$$"
      LOG_LEVEL: {log_level}
secrets:
  - name: password
    kind: ascii
    size: 24
  - name: token
    kind: binary
    size: 16
  - name: greeting
    value: "explicit-greeting-value"
  - name: ca
    kind: x509-ca
    common_name: Test CA
  - name: cert
    kind: x509
    issuer: ca
    common_name: app.svc
    dns: [app.svc]
    valid_for: 30d
  - name: key
    kind: private-key
    algorithm: ed25519
volumes:
  - name: data
    key: c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00
images:
  - name: img
    volumes:
      - name: data
        path: /data
    injection_files:
      - path: /etc/app/tls.crt
        content: $$SIGIL::cert:chain$$
      - path: /etc/app/tls.key
        content: $$SIGIL::cert:privatekey$$
      - path: /etc/app/token.bin
        content: $$SIGIL::token:der$$
      - path: /etc/app/ed.key
        content: $$SIGIL::key$$
access_policy:
{extra_policy}
"#
    )
}

pub fn policy(read: &str, update: &str, create: &str) -> String {
    format!("  read: [{read}]\n  update: [{update}]\n  create_sessions: [{create}]")
}

pub fn simple_yaml(name: &str, policy: &str) -> String {
    format!(
        "name: {name}\nsecrets:\n  - name: s\n    kind: ascii\n    size: 8\naccess_policy:\n{policy}\n"
    )
}

/// The `/v1/attest` request a launcher sends for `config_id` with `evidence`.
pub fn attest_request(
    config_id: &str,
    evidence: impl serde::Serialize,
) -> sigil_client::attest::AttestRequest {
    sigil_client::attest::AttestRequest {
        version: sigil_client::attest::ATTEST_VERSION,
        config_id: config_id.into(),
        evidence: serde_json::to_value(evidence).unwrap(),
        launcher_version: "test".into(),
    }
}

/// The HTTP status of an API error; fails the test on any other error.
pub fn api_status(e: &ClientError) -> u16 {
    match e {
        ClientError::Api { status, .. } => *status,
        other => panic!("expected an API error, got {other}"),
    }
}

/// The names of the sessions `c` may list, in the server's order.
pub async fn session_names(c: &CasClient) -> Vec<String> {
    let list = c.list().await.unwrap().sessions;
    list.into_iter().map(|s| s.name).collect()
}

/// A [`simple_yaml`] session only its creator may read, update or create
/// sessions in.
pub fn creator_only(name: &str) -> String {
    simple_yaml(name, &policy("CREATOR", "CREATOR", "CREATOR"))
}

/// The `/v1/attest` body of a launcher of `config_id` with simulation
/// evidence of `measurement`, bound to the TLS `exporter`.
pub fn sim_attest_body(config_id: &str, measurement: [u8; 32], exporter: [u8; 64]) -> Vec<u8> {
    let ev = sigil_attest::simulation::make_evidence(measurement, exporter);
    serde_json::to_vec(&attest_request(config_id, ev)).unwrap()
}
