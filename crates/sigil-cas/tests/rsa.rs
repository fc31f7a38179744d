//! RSA keys and mixed RSA/ECDSA certificate chains, end to end: a real CAS on
//! loopback generates them, a client attests over TLS with simulation
//! evidence bound to the channel (as the launcher does) and checks what is
//! released with ring and webpki.

mod common;

use std::collections::BTreeMap;

use common::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use sigil_client::attest::{AttestAccepted, ATTEST_PATH};
use sigil_client::CasClient;

const MEASUREMENT: [u8; 32] = [7; 32];
/// Test key (openssl genpkey, PKCS#1 encoding): `kind: private-key` with a value.
const GIVEN_RSA: &str = include_str!("../../sigil-session/tests/data/keys/rsa2048-pkcs1.pem");

fn session(log_level: &str, given_value: &str) -> String {
    let given: String = given_value
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    format!(
        r#"
name: rsa
services:
  - name: app
    image_name: img
    command: ["/bin/app"]
    environment:
      LOG_LEVEL: {log_level}
    attestation:
      - simulation_measurement: {m}
secrets:
  - name: k2048
    kind: private-key
    algorithm: rsa-2048
  - name: k3072
    kind: private-key
    algorithm: RSA3072
  - name: rsaca
    kind: x509-ca
    common_name: RSA CA
    algorithm: rsa-2048
  - name: leaf_ec
    kind: x509
    issuer: rsaca
    common_name: ec.svc
    dns: [ec.svc]
    algorithm: ecdsa-p256
  - name: ecca
    kind: x509-ca
    common_name: EC CA
    algorithm: ecdsa-p384
  - name: leaf_rsa
    kind: x509
    issuer: ecca
    common_name: rsa.svc
    dns: [rsa.svc]
    algorithm: rsa-3072
  - name: given
    kind: private-key
    value: |
{given}images:
  - name: img
    injection_files:
      - {{path: /k2048.pem, content: "$$SIGIL::k2048$$"}}
      - {{path: /k3072.pem, content: "$$SIGIL::k3072:privatekey$$"}}
      - {{path: /rsaca.crt, content: "$$SIGIL::rsaca:crt$$"}}
      - {{path: /rsaca.key, content: "$$SIGIL::rsaca:privatekey$$"}}
      - {{path: /ecca.crt, content: "$$SIGIL::ecca:crt$$"}}
      - {{path: /leaf_ec.chain, content: "$$SIGIL::leaf_ec:chain$$"}}
      - {{path: /leaf_ec.key, content: "$$SIGIL::leaf_ec:privatekey$$"}}
      - {{path: /leaf_rsa.chain, content: "$$SIGIL::leaf_rsa:chain$$"}}
      - {{path: /leaf_rsa.key, content: "$$SIGIL::leaf_rsa:privatekey$$"}}
      - {{path: /given.pem, content: "$$SIGIL::given:pem$$"}}
security:
  attestation:
    mode: simulation
access_policy:
{pol}
"#,
        m = hex::encode(MEASUREMENT),
        pol = policy("CREATOR", "CREATOR", "CREATOR"),
    )
}

/// Attests as `rsa/app` on a fresh connection, evidence bound to its TLS
/// exporter, and returns the injected files.
async fn attest(s: &sigil_cas::RunningServer) -> BTreeMap<String, Vec<u8>> {
    let c = CasClient::connect(&s.addr.to_string(), s.fingerprint, None)
        .await
        .unwrap();
    let ev = sigil_attest::simulation::make_evidence(MEASUREMENT, c.exporter());
    let req = attest_request("rsa/app", ev);
    let body = c.post_json(ATTEST_PATH, &req).await.unwrap();
    let a: AttestAccepted = serde_json::from_slice(&body).unwrap();
    assert_eq!(a.tee, "simulation");
    a.service
        .injection_files
        .iter()
        .map(|f| (f.path.clone(), f.content.clone()))
        .collect()
}

fn key_der(pem: &[u8]) -> Vec<u8> {
    PrivatePkcs8KeyDer::from_pem_slice(pem)
        .expect("PKCS#8 PEM")
        .secret_pkcs8_der()
        .to_vec()
}

fn certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .expect("certificate PEM")
}

/// The RSA key in `pem` parses in ring; returns its modulus bits, and a
/// signature over `msg` (PKCS#1 v1.5, SHA-256).
fn rsa_sign(pem: &[u8], msg: &[u8]) -> (usize, Vec<u8>) {
    let kp = ring::rsa::KeyPair::from_pkcs8(&key_der(pem)).expect("ring parses the RSA key");
    let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public());
    assert_eq!(c.e, [1, 0, 1], "e = 65537");
    let mut sig = vec![0; kp.public().modulus_len()];
    kp.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        msg,
        &mut sig,
    )
    .unwrap();
    (sigil_session::keys::rsa_modulus_bits(&kp), sig)
}

fn p256_sign(pem: &[u8], msg: &[u8]) -> Vec<u8> {
    let rng = ring::rand::SystemRandom::new();
    let kp = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &key_der(pem),
        &rng,
    )
    .expect("ring parses the P-256 key");
    kp.sign(&rng, msg).unwrap().as_ref().to_vec()
}

/// The leaf of `chain_pem` chains to `ca_pem` for server auth as `dns`,
/// and the chain is leaf then CA.
fn verify_chain(chain_pem: &[u8], ca_pem: &[u8], dns: &str) {
    let chain = certs(chain_pem);
    let ca = certs(ca_pem);
    assert_eq!(chain.len(), 2, "leaf, then issuer");
    assert_eq!(chain[1], ca[0]);
    let anchor = webpki::anchor_from_trusted_cert(&ca[0]).unwrap();
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .expect("chain verifies");
    leaf.verify_is_valid_for_subject_name(&ServerName::try_from(dns).unwrap())
        .unwrap();
}

fn leaf(chain_pem: &[u8]) -> CertificateDer<'static> {
    certs(chain_pem).remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_keys_and_mixed_chains_are_released_and_usable() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let a = client(&s, Some(&id("alice"))).await;
    a.create_session(&session("info", GIVEN_RSA)).await.unwrap();
    let f = attest(&s).await;
    let msg = b"signed by the released key";

    // Plain RSA keys: ring parses them, with the right modulus size.
    assert_eq!(rsa_sign(&f["/k2048.pem"], msg).0, 2048);
    assert_eq!(rsa_sign(&f["/k3072.pem"], msg).0, 3072);
    assert_ne!(key_der(&f["/k2048.pem"]), key_der(&f["/k3072.pem"]));

    // RSA CA (self-signed, verifies as its own anchor) issuing an ECDSA leaf.
    assert_eq!(rsa_sign(&f["/rsaca.key"], msg).0, 2048);
    verify_chain(&f["/leaf_ec.chain"], &f["/rsaca.crt"], "ec.svc");
    let ec_leaf = leaf(&f["/leaf_ec.chain"]);
    let ec_leaf_cert = webpki::EndEntityCert::try_from(&ec_leaf).unwrap();
    ec_leaf_cert
        .verify_signature(
            webpki::ring::ECDSA_P256_SHA256,
            msg,
            &p256_sign(&f["/leaf_ec.key"], msg),
        )
        .expect("leaf key matches leaf certificate");
    // The CA's key is the CA certificate's key.
    let rsaca = certs(&f["/rsaca.crt"]).remove(0);
    webpki::EndEntityCert::try_from(&rsaca)
        .unwrap()
        .verify_signature(
            webpki::ring::RSA_PKCS1_2048_8192_SHA256,
            msg,
            &rsa_sign(&f["/rsaca.key"], msg).1,
        )
        .expect("CA key matches CA certificate");

    // ECDSA CA issuing an RSA-3072 leaf.
    verify_chain(&f["/leaf_rsa.chain"], &f["/ecca.crt"], "rsa.svc");
    let (bits, sig) = rsa_sign(&f["/leaf_rsa.key"], msg);
    assert_eq!(bits, 3072);
    let rsa_leaf = leaf(&f["/leaf_rsa.chain"]);
    let rsa_leaf_cert = webpki::EndEntityCert::try_from(&rsa_leaf).unwrap();
    rsa_leaf_cert
        .verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, msg, &sig)
        .expect("RSA leaf key matches its certificate");
    // A signature by another key does not verify (the check can fail).
    let other = rsa_sign(&f["/k3072.pem"], msg).1;
    assert!(rsa_leaf_cert
        .verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, msg, &other)
        .is_err());

    // The given key is released as the same key, in PKCS#8.
    let (bits, _) = rsa_sign(&f["/given.pem"], msg);
    assert_eq!(bits, 2048);
    let pkcs1 = rustls_pki_types::PrivatePkcs1KeyDer::from_pem_slice(GIVEN_RSA.as_bytes()).unwrap();
    let given = key_der(&f["/given.pem"]);
    assert!(
        given.ends_with(pkcs1.secret_pkcs1_der()),
        "PKCS#8 wraps the given PKCS#1 key"
    );

    // Update: keys and CAs stay, leaf certificates are reissued with their keys.
    a.update_session(&session("debug", GIVEN_RSA))
        .await
        .unwrap();
    let g = attest(&s).await;
    for p in [
        "/k2048.pem",
        "/k3072.pem",
        "/rsaca.crt",
        "/rsaca.key",
        "/ecca.crt",
        "/leaf_ec.key",
        "/leaf_rsa.key",
        "/given.pem",
    ] {
        assert_eq!(f[p], g[p], "{p} kept across the update");
    }
    for p in ["/leaf_ec.chain", "/leaf_rsa.chain"] {
        assert_ne!(leaf(&f[p]), leaf(&g[p]), "{p} reissued");
    }
    verify_chain(&g["/leaf_ec.chain"], &g["/rsaca.crt"], "ec.svc");
    verify_chain(&g["/leaf_rsa.chain"], &g["/ecca.crt"], "rsa.svc");

    // The given key is never shown back: not in the session as read, the
    // list or the audit log.
    let key_line = GIVEN_RSA.lines().nth(5).unwrap();
    let info = a.get_session("rsa").await.unwrap();
    let shown = format!(
        "{}{:?}{:?}",
        info.yaml,
        a.list().await.unwrap(),
        a.audit().await.unwrap()
    );
    assert!(info.yaml.contains("<redacted>"), "{}", info.yaml);
    assert!(!shown.contains(key_line));

    // Not in the store file in the clear.
    s.shutdown().await;
    let raw = std::fs::read(d.path().join("store.redb")).unwrap();
    for k in ["/k2048.pem", "/leaf_rsa.key", "/given.pem"] {
        let der = key_der(&f[k]);
        assert!(!raw.windows(64).any(|w| w == &der[der.len() - 64..]), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_mismatched_given_keys_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let a = client(&s, Some(&id("alice"))).await;
    // Flip one base64 character in the middle of the key.
    let mut tampered = GIVEN_RSA.to_string();
    let mid = tampered.len() / 2;
    let c = tampered.as_bytes()[mid];
    let repl = if c == b'A' { "B" } else { "A" };
    tampered.replace_range(mid..mid + 1, repl);
    let truncated: String = GIVEN_RSA.lines().take(5).collect::<Vec<_>>().join("\n");
    let cases = [
        (tampered, "secrets[6].value"),
        (truncated, "no `-----END RSA PRIVATE KEY-----` line"),
        ("garbage".to_string(), "not a well-formed private key"),
        (
            GIVEN_RSA.replace("RSA PRIVATE KEY", "CERTIFICATE"),
            "expected `PRIVATE KEY`",
        ),
    ];
    for (value, needle) in cases {
        let e = a
            .create_session(&session("info", &value))
            .await
            .unwrap_err();
        assert_eq!(api_status(&e), 400, "{e}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert!(!msg.contains("MII"), "no key material in errors: {msg}");
        assert!(a.get_session("rsa").await.is_err(), "nothing half-written");
    }
    // Declared algorithm that does not match the key.
    let yaml = session("info", GIVEN_RSA).replace(
        "  - name: given\n    kind: private-key\n",
        "  - name: given\n    kind: private-key\n    algorithm: ecdsa-p256\n",
    );
    let e = a.create_session(&yaml).await.unwrap_err();
    assert_eq!(api_status(&e), 400);
    assert!(
        e.to_string()
            .contains("the key in `value` is rsa-2048, not ecdsa-p256"),
        "{e}"
    );
    assert!(a.get_session("rsa").await.is_err());
    // The same session with a good key is accepted.
    a.create_session(&session("info", GIVEN_RSA)).await.unwrap();
    s.shutdown().await;
}

/// RSA-3072 generation takes long; the CAS answers other requests
/// meanwhile. On a single-threaded runtime (server and clients share one
/// thread), health checks can only be answered during the creation if the
/// generation runs off the async thread.
#[tokio::test(flavor = "current_thread")]
async fn cas_keeps_serving_while_rsa_keys_are_generated() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path()).await;
    let a = client(&s, Some(&id("alice"))).await;
    let h = client(&s, None).await;
    let keys: String = (0..6)
        .map(|i| format!("  - {{name: k{i}, kind: private-key, algorithm: rsa-3072}}\n"))
        .collect();
    let yaml = format!(
        "name: slow\nsecrets:\n{keys}access_policy:\n{}\n",
        policy("CREATOR", "CREATOR", "CREATOR")
    );
    let create = tokio::spawn(async move { a.create_session(&yaml).await.map(|_| ()) });
    let mut answered_meanwhile = 0;
    while !create.is_finished() {
        h.health().await.unwrap();
        if !create.is_finished() {
            answered_meanwhile += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    create.await.unwrap().unwrap();
    // Blocking the thread would let at most one check slip in before the
    // creation request arrives; generation gives time for hundreds.
    eprintln!("health checks answered during the creation: {answered_meanwhile}");
    assert!(
        answered_meanwhile >= 5,
        "only {answered_meanwhile} health checks were answered while six RSA-3072 keys were generated"
    );
    s.shutdown().await;
}
