//! `sigil attest verify` end to end: the real binary on real evidence from
//! the shared test data, and on simulation evidence.

use std::process::{Command, Output};

use sigil_testsupport::attestation::{path, read};
use sigil_testsupport::cli::{run, text as out};

/// `sigil attest verify ARGS`.
fn verify(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["attest", "verify"])
        .args(args))
}

/// `sigil attest verify` of the real SGX quote with its collateral at
/// [`AT`], then `extra`.
fn verify_sgx(extra: &[&str]) -> Output {
    let (quote, collateral) = (td(SGX_QUOTE), td(SGX_COLL));
    let mut args = vec![
        "--evidence",
        &quote,
        "--collateral",
        &collateral,
        "--at",
        AT,
    ];
    args.extend_from_slice(extra);
    verify(&args)
}

fn td(rel: &str) -> String {
    path(rel).to_string_lossy().into_owned()
}

const SGX_QUOTE: &str = "phala-dcap-qvl/sgx_quote";
const SGX_COLL: &str = "phala-dcap-qvl/sgx_quote_collateral.json";
const AT: &str = "2025-07-01T00:00:00Z";

fn sgx_mrenclave() -> String {
    hex::encode(&read(SGX_QUOTE)[112..144])
}

fn session(dir: &std::path::Path, rule: &str, security: &str) -> String {
    let p = dir.join("session.yaml");
    std::fs::write(
        &p,
        format!(
            "name: demo/tee-manager\nservices:\n  - name: app\n    command: /bin/app\n    attestation:\n      - {rule}\n{security}"
        ),
    )
    .unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn verifies_a_real_sgx_quote_and_prints_claims() {
    let o = verify_sgx(&[]);
    let s = out(&o);
    assert!(o.status.success(), "{s}");
    assert!(s.contains("tee:               sgx"), "{s}");
    assert!(
        s.contains(&format!("mrenclave:         {}", sgx_mrenclave())),
        "{s}"
    );
    assert!(
        s.contains("tcb status:        ConfigurationAndSWHardeningNeeded"),
        "{s}"
    );
    assert!(s.contains("INTEL-SA-00289, INTEL-SA-00615"), "{s}");

    let o = verify_sgx(&["--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["claims"]["tee"], "sgx");
    assert_eq!(v["claims"]["mrenclave"], sgx_mrenclave());
    assert_eq!(v["claims"]["platform_id"].as_str().unwrap().len(), 12);
}

#[test]
fn collateral_directory_works() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(path(SGX_COLL), dir.path().join("a.json")).unwrap();
    std::fs::write(dir.path().join("junk.json"), "not collateral").unwrap();
    let o = verify(&[
        "--evidence",
        &td(SGX_QUOTE),
        "--collateral",
        dir.path().to_str().unwrap(),
        "--at",
        AT,
    ]);
    assert!(o.status.success(), "{}", out(&o));
}

#[test]
fn session_decision_lists_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rule = format!("mrenclave: {}", sgx_mrenclave());
    let s = session(dir.path(), &rule, "");
    let o = verify_sgx(&["--session", &s, "--service", "app"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("REFUSE"), "{text}");
    assert!(
        text.contains("TCB status ConfigurationAndSWHardeningNeeded (advisories INTEL-SA-00289, INTEL-SA-00615) not tolerated by session demo/tee-manager"),
        "{text}"
    );
    assert!(
        text.contains("advisories INTEL-SA-00289, INTEL-SA-00615 not listed in ignore_advisories"),
        "{text}"
    );

    let s = session(
        dir.path(),
        &rule,
        "security:\n  attestation:\n    tolerate: [configuration-needed, software-hardening-needed, hyperthreading]\n    ignore_advisories: [INTEL-SA-00289, INTEL-SA-00615]\n",
    );
    let o = verify_sgx(&["--session", &s, "--service", "app", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"]["accept"], true, "{v}");

    // Wrong report data: refused.
    let o = verify_sgx(&[
        "--session",
        &s,
        "--service",
        "app",
        "--report-data",
        &"00".repeat(64),
    ]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("report data does not match"), "{text}");
}

#[test]
fn stale_collateral_is_refused_naming_the_crl() {
    let o = verify(&[
        "--evidence",
        &td("phala-dcap-qvl/tdx_quote"),
        "--collateral",
        &td("phala-dcap-qvl/tdx_quote_collateral.json"),
        "--at",
        "2026-11-29T00:00:00Z",
    ]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("NOT verified") && text.contains("CRL") && text.contains("expired"),
        "{text}"
    );
}

#[test]
fn snp_report_with_vcek() {
    let o = verify(&[
        "--evidence",
        &td("coco-trustee/snp/test-report.bin"),
        "--certs",
        &td("coco-trustee/snp/test-vcek.der"),
        "--at",
        "2026-01-01T00:00:00Z",
        "--json",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["claims"]["tee"], "snp");
    let r = read("coco-trustee/snp/test-report.bin");
    assert_eq!(v["claims"]["snp_measurement"], hex::encode(&r[0x90..0xC0]));
}

#[test]
fn simulation_evidence_only_in_simulation_mode() {
    let dir = tempfile::tempdir().unwrap();
    let e = sigil_attest::simulation::make_evidence([3; 32], [4; 64]);
    let ev = dir.path().join("ev.json");
    std::fs::write(&ev, e.to_json()).unwrap();
    let ev = ev.to_str().unwrap();
    let rule = format!("simulation_measurement: {}", hex::encode([3u8; 32]));
    let s = session(dir.path(), &rule, "");
    let o = verify(&["--evidence", ev, "--session", &s, "--service", "app"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("NO HARDWARE GUARANTEE"), "{text}");
    assert!(
        text.contains("does not set attestation mode simulation"),
        "{text}"
    );
    let s = session(
        dir.path(),
        &rule,
        "security:\n  attestation:\n    mode: simulation\n",
    );
    let o = verify(&[
        "--evidence",
        ev,
        "--session",
        &s,
        "--service",
        "app",
        "--report-data",
        &"04".repeat(64),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("ACCEPT"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("junk.bin");
    std::fs::write(&f, [1u8, 2, 3]).unwrap();
    let o = verify(&["--evidence", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("pass --kind"), "{}", out(&o));
    let o = verify(&["--evidence", &td(SGX_QUOTE)]);
    assert!(out(&o).contains("needs --collateral"), "{}", out(&o));
}
