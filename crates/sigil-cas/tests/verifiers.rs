//! The CAS's attestation verifiers configured through `Config::verifiers`
//! (what `sigil cas serve --collateral-dir/--snp-cert-dir/...` sets): real
//! SGX/TDX and SEV-SNP evidence from the shared test data, posted to a real
//! CAS on loopback. The evidence cannot be bound to the test's TLS
//! connection, so every attempt is refused; what the reasons say shows
//! whether the configured collateral let the CAS verify the evidence.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use sigil_attest::{Evidence, TeeKind};
use sigil_cas::attest_api::VerifierConfig;
use sigil_cas::{CasError, Clock, Server};
use sigil_client::attest::{AttestRefused, ATTEST_PATH};
use sigil_client::CasClient;
use sigil_testsupport::attestation::testdata;

#[derive(Debug)]
struct FixedClock(SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

fn session(name: &str) -> String {
    format!(
        "name: {name}\nservices:\n  - name: app\n    command: [/bin/app]\n    attestation:\n      - mrtd: {m48}\n      - measurement: {m48}\naccess_policy:\n{pol}\n",
        m48 = "ab".repeat(48),
        pol = policy("CREATOR", "CREATOR", "CREATOR"),
    )
}

/// Starts a CAS with `v` (and a clock), creates session `t`, posts
/// `evidence` for `t/app` and returns the refusal reasons.
async fn reasons_with(
    dir: &Path,
    v: VerifierConfig,
    clock: Option<SystemTime>,
    evidence: &Evidence,
) -> Vec<String> {
    let mut cfg = config(dir);
    cfg.verifiers = v;
    if let Some(t) = clock {
        cfg.clock = Arc::new(FixedClock(t));
    }
    let s = Server::start(cfg).await.unwrap();
    let a = client(&s, Some(&id("alice"))).await;
    a.create_session(&session("t")).await.unwrap();
    let c = CasClient::connect(&s.addr.to_string(), s.fingerprint, None)
        .await
        .unwrap();
    let req = attest_request("t/app", evidence);
    let r = c
        .request(
            hyper::Method::POST,
            ATTEST_PATH,
            Some("application/json"),
            serde_json::to_vec(&req).unwrap().into(),
        )
        .await
        .unwrap();
    s.shutdown().await;
    assert_eq!(r.status, 403, "{:?}", String::from_utf8_lossy(&r.body));
    let refused: AttestRefused = serde_json::from_slice(&r.body).unwrap();
    refused.reasons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snp_vceks_come_from_the_configured_directory() {
    let td = testdata();
    let report = std::fs::read(td.join("coco-trustee/snp/test-report.bin")).unwrap();
    let vcek = std::fs::read(td.join("coco-trustee/snp/test-vcek.der")).unwrap();
    let rep = sigil_attest::snp::parse_report(&report).unwrap();
    let ev = Evidence {
        version: 1,
        kind: TeeKind::Snp,
        data: report,
        certs: None,
    };
    let d = tempfile::tempdir().unwrap();
    let certs = d.path().join("vceks");
    std::fs::create_dir(&certs).unwrap();
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let v = |dir: &Path| VerifierConfig {
        snp_cert_dir: Some(dir.to_path_buf()),
        // Never the network: no PCCS is used for SNP, but keep DCAP local.
        collateral_dir: Some(empty.clone()),
        ..Default::default()
    };

    // No VCEK anywhere: not verified.
    let r = reasons_with(&d.path().join("cas1"), v(&certs), None, &ev).await;
    assert!(
        r.iter()
            .any(|x| x.contains("evidence not verified") && x.contains("no VCEK")),
        "{r:?}"
    );
    // The VCEK in the configured directory: verified; refused only for the
    // channel binding and the measurement.
    std::fs::write(
        certs.join(format!(
            "{}_{:016x}.der",
            hex::encode(rep.chip_id),
            rep.reported_tcb
        )),
        vcek,
    )
    .unwrap();
    let r = reasons_with(&d.path().join("cas2"), v(&certs), None, &ev).await;
    assert!(!r.iter().any(|x| x.contains("not verified")), "{r:?}");
    assert!(r.iter().any(|x| x.contains("report data")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcap_collateral_comes_from_the_configured_directory() {
    let td = testdata();
    let quote = std::fs::read(td.join("phala-dcap-qvl/tdx_quote")).unwrap();
    let ev = Evidence {
        version: 1,
        kind: TeeKind::Tdx,
        data: quote,
        certs: None,
    };
    // The collateral is expired today; verify at a time it was valid.
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_751_328_000); // 2025-07-01
    let d = tempfile::tempdir().unwrap();
    let coll = d.path().join("collateral");
    std::fs::create_dir(&coll).unwrap();
    let v = VerifierConfig {
        collateral_dir: Some(coll.clone()),
        ..Default::default()
    };
    let r = reasons_with(&d.path().join("cas1"), v.clone(), Some(at), &ev).await;
    assert!(
        r.iter().any(|x| x.contains("evidence not verified")),
        "{r:?}"
    );
    std::fs::copy(
        td.join("phala-dcap-qvl/tdx_quote_collateral.json"),
        coll.join("tdx.json"),
    )
    .unwrap();
    let r = reasons_with(&d.path().join("cas2"), v, Some(at), &ev).await;
    assert!(!r.iter().any(|x| x.contains("not verified")), "{r:?}");
    assert!(r.iter().any(|x| x.contains("report data")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_verifier_configuration_stops_the_start() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing");
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let cases = [
        (
            VerifierConfig {
                collateral_dir: Some(missing.clone()),
                ..Default::default()
            },
            "missing",
        ),
        (
            VerifierConfig {
                collateral_dir: Some(d.path().to_path_buf()),
                pccs_url: Some("http://127.0.0.1:1".into()),
                ..Default::default()
            },
            "not both",
        ),
        (
            VerifierConfig {
                pccs_url: Some("ftp://pccs".into()),
                ..Default::default()
            },
            "is not an http(s) URL",
        ),
        (
            VerifierConfig {
                snp_cert_dir: Some(file.clone()),
                collateral_dir: Some(d.path().to_path_buf()),
                ..Default::default()
            },
            "is not a directory",
        ),
        (
            VerifierConfig {
                snp_kds_url: Some("kdsintf".into()),
                collateral_dir: Some(d.path().to_path_buf()),
                ..Default::default()
            },
            "SNP KDS URL",
        ),
    ];
    for (i, (v, needle)) in cases.into_iter().enumerate() {
        let data = d.path().join(format!("cas{i}"));
        let mut cfg = config(&data);
        cfg.verifiers = v;
        let e = match Server::start(cfg).await {
            Err(e) => e,
            Ok(_) => panic!("case {i} started"),
        };
        assert!(matches!(e, CasError::Config(_)), "{e:?}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
        assert!(!data.exists(), "case {i}: nothing created");
    }
}
