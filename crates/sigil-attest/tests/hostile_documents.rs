//! Hostile evidence JSON (what a launcher posts) and collateral JSON (the
//! cache files and `--collateral` directories): over the size limits,
//! unknown fields, another version, bad base64 or hex, unknown TEE kinds,
//! recursion deep enough to exhaust a naive parser. Each is refused with
//! one line naming what is wrong; a collateral directory full of junk is
//! indexed without failing, and the junk is skipped.

use sigil_attest::collateral::{Collateral, CollateralRequest, CollateralSource, DirCollateral};
use sigil_attest::evidence::{MAX_EVIDENCE_CERTS, MAX_EVIDENCE_DATA};
use sigil_attest::{Evidence, TeeKind, VerifyError};

fn one_line(e: &VerifyError) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "not one line: {m:?}");
    assert!(m.len() < 1024, "too long: {} bytes", m.len());
    m
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn hostile_evidence_json_is_refused_naming_the_problem() {
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "malformed evidence JSON"),
        (
            "deeply nested",
            deep.into_bytes(),
            "malformed evidence JSON",
        ),
        (
            "unknown field",
            br#"{"kind":"sgx","data":"AAAA","admin":1}"#.to_vec(),
            "unknown field",
        ),
        (
            "unknown kind",
            br#"{"kind":"tpm","data":"AAAA"}"#.to_vec(),
            "malformed evidence JSON",
        ),
        (
            "not base64",
            br#"{"kind":"sgx","data":"!!!!"}"#.to_vec(),
            "malformed evidence JSON",
        ),
        (
            "version 2",
            br#"{"version":2,"kind":"sgx","data":"AAAA"}"#.to_vec(),
            "unsupported version 2",
        ),
        (
            "data over 64 KiB",
            format!(
                r#"{{"kind":"sgx","data":"{}"}}"#,
                b64(&vec![0; MAX_EVIDENCE_DATA + 1])
            )
            .into_bytes(),
            "evidence data is too large",
        ),
        (
            "certificates over 64 KiB",
            format!(
                r#"{{"kind":"snp","data":"AAAA","certs":"{}"}}"#,
                b64(&vec![0; MAX_EVIDENCE_CERTS + 1])
            )
            .into_bytes(),
            "evidence certs is too large",
        ),
        (
            "whole document over the limit",
            vec![b' '; 200 * 1024],
            "evidence JSON is too large",
        ),
    ];
    for (what, json, expect) in cases {
        let e = Evidence::from_json(&json).expect_err(what);
        let m = one_line(&e);
        assert!(m.contains(expect), "{what}: {m}");
    }
    // At the limits exactly: accepted.
    let e = Evidence {
        version: 1,
        kind: TeeKind::Snp,
        data: vec![1; MAX_EVIDENCE_DATA],
        certs: Some(vec![2; MAX_EVIDENCE_CERTS]),
    };
    assert_eq!(Evidence::from_json(e.to_json().as_bytes()).unwrap(), e);
}

fn good_collateral_json() -> serde_json::Value {
    serde_json::json!({
        "pck_crl_issuer_chain": "chain", "root_ca_crl": "00", "pck_crl": "01",
        "tcb_info_issuer_chain": "chain", "tcb_info": "{}", "tcb_info_signature": "02",
        "qe_identity_issuer_chain": "chain", "qe_identity": "{}", "qe_identity_signature": "03"
    })
}

#[test]
fn hostile_collateral_json_is_refused_naming_the_problem() {
    Collateral::from_json(good_collateral_json().to_string().as_bytes()).unwrap();
    let with = |k: &str, v: serde_json::Value| {
        let mut j = good_collateral_json();
        j[k] = v;
        j.to_string().into_bytes()
    };
    let mut missing = good_collateral_json();
    missing.as_object_mut().unwrap().remove("pck_crl");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"\x00garbage".to_vec(), "malformed collateral"),
        ("missing field", missing.to_string().into_bytes(), "pck_crl"),
        ("unknown field", with("extra", 1.into()), "unknown field"),
        (
            "CRL not hex",
            with("pck_crl", "zz".into()),
            "pck_crl is not hex",
        ),
        (
            "signature of odd length",
            with("tcb_info_signature", "abc".into()),
            "tcb_info_signature is not hex",
        ),
        (
            "wrong type",
            with("tcb_info", 5.into()),
            "malformed collateral",
        ),
        (
            "over 1 MiB",
            vec![b' '; 1024 * 1024 + 1],
            "collateral JSON is too large",
        ),
    ];
    for (what, json, expect) in cases {
        let e = Collateral::from_json(&json).expect_err(what);
        let m = one_line(&e);
        assert!(m.contains(expect), "{what}: {m}");
    }
}

#[test]
fn a_collateral_directory_of_junk_is_indexed_and_the_junk_skipped() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("garbage.json"), b"\xff\xfe not json").unwrap();
    std::fs::write(d.path().join("huge.json"), vec![b' '; 1024 * 1024 + 10]).unwrap();
    std::fs::write(d.path().join("odd.json"), with_bad_hex()).unwrap();
    std::fs::create_dir(d.path().join("dir.json")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/x.json", d.path().join("dangling.json")).unwrap();
    std::fs::write(d.path().join("ok.json"), good_collateral_json().to_string()).unwrap();
    let dir = DirCollateral::new(d.path()).expect("junk does not fail the directory");
    // Nothing in it is for this platform: a clear "unavailable", one line.
    let req = CollateralRequest {
        tee: TeeKind::Sgx,
        fmspc: [0, 0x60, 0x6a, 0, 0, 0],
        ca: sigil_attest::collateral::PckCa::Processor,
    };
    let e = dir.get(&req, 1_750_000_000).map(drop).unwrap_err();
    one_line(&e);
}

fn with_bad_hex() -> String {
    let mut j = good_collateral_json();
    j["root_ca_crl"] = "not hex".into();
    j.to_string()
}
