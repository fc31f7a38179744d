//! Every row of EXPECTED_DCAP.tsv (verdicts of dcap-qvl 0.7.1 on real
//! quotes), checked against Sigil's verifier + decide, and against dcap-qvl
//! itself run in the same test.

use sigil_attest::collateral::{Collateral, StaticCollateral};
use sigil_attest::dcap::DcapVerifier;
use sigil_attest::policy::{decide, tolerances_for, Reason, Rule, SecurityPolicy, Tolerance};
use sigil_attest::time_util::parse_time;
use sigil_attest::{Claims, TeeKind, VerifyError};
use sigil_testsupport::attestation::{read_evidence, testdata, tsv};
use std::sync::Arc;

struct Row {
    quote: String,
    raw: Vec<u8>,
    collateral: Collateral,
    time: u64,
    allow_debug: bool,
    allow_service_td: bool,
    expected: String,
}

fn rows() -> Vec<Row> {
    tsv("EXPECTED_DCAP.tsv")
        .into_iter()
        .map(|r| {
            assert_eq!(r.len(), 5, "bad row {r:?}");
            let collateral =
                Collateral::from_file(&testdata().join(&r[1])).expect("collateral parses");
            Row {
                raw: read_evidence(&r[0]),
                quote: r[0].clone(),
                collateral,
                time: parse_time(&r[2]).expect("time"),
                allow_debug: r[3].contains("ALLOW_DEBUG=1"),
                allow_service_td: r[3].contains("ALLOW_SERVICE_TD=1"),
                expected: r[4].clone(),
            }
        })
        .collect()
}

fn sigil(row: &Row) -> Result<Claims, VerifyError> {
    let v = DcapVerifier::new(Arc::new(StaticCollateral(Arc::new(row.collateral.clone()))));
    v.verify_quote(&row.raw, row.time)
}

/// dcap-qvl 0.7.1 (ring), run now, as "OK status=.. advisories=[..]" / "ERR ..".
fn reference(row: &Row) -> String {
    let v = dcap_qvl::verify::QuoteVerifier::new(sigil_attest::dcap::INTEL_ROOT_CA_DER.to_vec())
        .with_config::<dcap_qvl::configs::RingConfig>()
        .allow_debug(row.allow_debug)
        .allow_service_td(row.allow_service_td);
    match v.verify(&row.raw, &row.collateral.inner, row.time) {
        Ok(r) => format!("OK status={} advisories={:?}", r.status, r.advisory_ids),
        Err(e) => format!("ERR {e:#}"),
    }
}

/// The policy that tolerates exactly what the row's options and dcap-qvl's
/// defaults tolerate: every TCB status and advisory (dcap-qvl's `verify`
/// reports them without judging), debug / service TD per options.
fn dcap_equivalent_policy(row: &Row, c: &Claims) -> SecurityPolicy {
    let mut p = SecurityPolicy::default();
    p.tolerate.extend(tolerances_for(c.tcb_status));
    p.tolerate.insert(Tolerance::Hyperthreading);
    p.ignore_advisories.extend(c.advisory_ids.iter().cloned());
    if row.allow_debug {
        p.tolerate.insert(Tolerance::DebugMode);
    }
    if row.allow_service_td {
        p.tolerate.insert(Tolerance::ServiceTd);
    }
    p
}

fn rule_for(c: &Claims) -> Rule {
    match c.tee {
        TeeKind::Sgx => Rule {
            mrenclave: c.mrenclave,
            ..Rule::default()
        },
        _ => Rule {
            mrtd: c.mrtd,
            ..Rule::default()
        },
    }
}

/// Checks the measurement claims against the quote bytes.
fn check_claims_against_bytes(row: &Row, c: &Claims) {
    let version = u16::from_le_bytes([row.raw[0], row.raw[1]]);
    let body = 48 + if version == 5 { 6 } else { 0 };
    match c.tee {
        TeeKind::Sgx => {
            assert_eq!(
                c.mrenclave.unwrap()[..],
                row.raw[body + 64..body + 96],
                "{}",
                row.quote
            );
            assert_eq!(c.mrsigner.unwrap()[..], row.raw[body + 128..body + 160]);
            assert_eq!(c.report_data[..], row.raw[body + 320..body + 384]);
        }
        TeeKind::Tdx => {
            assert_eq!(
                c.mrtd.unwrap()[..],
                row.raw[body + 136..body + 184],
                "{}",
                row.quote
            );
            assert_eq!(c.rtmr.unwrap()[3][..], row.raw[body + 472..body + 520]);
            assert_eq!(c.report_data[..], row.raw[body + 520..body + 584]);
        }
        _ => panic!("unexpected TEE"),
    }
    assert_eq!(c.platform_id.len(), 6);
    assert!(c.collateral_expiry.unwrap() >= row.time);
}

#[test]
fn every_expected_dcap_row() {
    let rows = rows();
    assert!(
        rows.len() >= 13,
        "EXPECTED_DCAP.tsv has {} rows",
        rows.len()
    );
    let mut accepted = 0;
    for row in &rows {
        let ctx = format!("{} @{} ({})", row.quote, row.time, row.expected);
        // dcap-qvl, run now, still says what the table says.
        let r = reference(row);
        if let Some(ok) = row.expected.strip_prefix("OK ") {
            let want = ok.split(" qe=").next().unwrap();
            assert_eq!(r, format!("OK {want}"), "dcap-qvl disagrees: {ctx}");
        } else {
            assert!(r.starts_with("ERR"), "dcap-qvl disagrees: {ctx}: {r}");
        }

        let got = sigil(row);
        if let Some(ok) = row.expected.strip_prefix("OK status=") {
            let c = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let status = ok.split(' ').next().unwrap();
            assert_eq!(c.tcb_status.to_string(), status, "{ctx}");
            let adv = ok.split("advisories=").nth(1).unwrap();
            let adv = adv.split(']').next().unwrap().trim_start_matches('[');
            let want: Vec<String> = adv
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_matches('"').to_string())
                .collect();
            assert_eq!(c.advisory_ids, want, "{ctx}");
            check_claims_against_bytes(row, &c);
            let p = dcap_equivalent_policy(row, &c);
            let d = decide(&c, &[rule_for(&c)], &p, &c.report_data, "test");
            assert!(d.is_accept(), "{ctx}: {d}");
            // The default policy refuses anything but a clean UpToDate.
            let strict = decide(
                &c,
                &[rule_for(&c)],
                &SecurityPolicy::default(),
                &c.report_data,
                "s",
            );
            let clean = c.tcb_status == sigil_attest::TcbStatus::UpToDate
                && c.advisory_ids.is_empty()
                && !c.debug
                && !c.has_service_td()
                && c.smt_enabled != Some(true);
            assert_eq!(strict.is_accept(), clean, "{ctx}: {strict}");
            accepted += 1;
        } else {
            let policy_refusal = [
                ("Debug mode is enabled", Reason::Debug, Tolerance::DebugMode),
                (
                    "SEPT_VE_DISABLE is not enabled",
                    Reason::SeptVeNotDisabled,
                    Tolerance::SeptVeNotDisabled,
                ),
                (
                    "Invalid MR service TD",
                    Reason::ServiceTd,
                    Tolerance::ServiceTd,
                ),
            ]
            .into_iter()
            .find(|(m, _, _)| row.expected.contains(m));
            match policy_refusal {
                Some((_, reason, tol)) => {
                    // Genuine evidence; the refusal is the policy's.
                    let c = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    check_claims_against_bytes(row, &c);
                    let mut p = dcap_equivalent_policy(row, &c);
                    let d = decide(&c, &[rule_for(&c)], &p, &c.report_data, "test");
                    assert_eq!(d.reasons(), vec![&reason], "{ctx}: {d}");
                    p.tolerate.insert(tol);
                    let d = decide(&c, &[rule_for(&c)], &p, &c.report_data, "test");
                    assert!(d.is_accept(), "{ctx}: {d}");
                }
                None => {
                    let e = got.expect_err(&ctx);
                    if row.expected.contains("CrlExpired") {
                        assert!(matches!(e, VerifyError::CollateralExpired(_)), "{ctx}: {e}");
                        assert!(e.to_string().contains("CRL"), "{ctx}: {e}");
                    }
                    if row.expected.contains("No matching TCB level") {
                        assert!(
                            e.to_string().contains("No matching TCB level"),
                            "{ctx}: {e}"
                        );
                    }
                }
            }
        }
    }
    assert!(accepted >= 7, "{accepted} rows accepted");
}

#[test]
fn debug_tolerated_row_matches_default_row() {
    // Same quote with and without ALLOW_DEBUG: identical claims.
    let rows = rows();
    let dbg: Vec<&Row> = rows
        .iter()
        .filter(|r| r.quote.ends_with("quote_sgx.bin"))
        .collect();
    assert_eq!(dbg.len(), 2);
    let a = sigil(dbg[0]).unwrap();
    let b = sigil(dbg[1]).unwrap();
    assert_eq!(a, b);
    assert!(a.debug);
}

/// Flips every byte of the signed body, the signatures, the attestation
/// key, the QE report and auth data, and the PCK chain of a real SGX and a
/// real TDX quote: each must be refused.
#[test]
fn every_byte_flip_is_refused() {
    let rows = rows();
    for name in ["phala-dcap-qvl/sgx_quote", "phala-dcap-qvl/tdx_quote"] {
        let row = rows
            .iter()
            .find(|r| r.quote == name && r.expected.starts_with("OK"))
            .unwrap();
        let v = DcapVerifier::new(Arc::new(StaticCollateral(Arc::new(row.collateral.clone()))));
        v.verify_quote(&row.raw, row.time)
            .expect("unmodified quote verifies");
        let mut flips = 0;
        for i in 0..row.raw.len() {
            let mut q = row.raw.clone();
            q[i] ^= 0x01;
            if let Ok(c) = v.verify_quote(&q, row.time) {
                panic!(
                    "{name}: flipping byte {i} of {} was accepted: {c}",
                    row.raw.len()
                );
            }
            flips += 1;
        }
        assert_eq!(flips, row.raw.len());
        // Truncations are refused too (spot-check every 97th length), up to
        // the zero padding some quote buffers carry.
        let end = row.raw.iter().rposition(|b| *b != 0).unwrap() + 1;
        for cut in (0..end).step_by(97) {
            assert!(v.verify_quote(&row.raw[..cut], row.time).is_err());
        }
    }
}

#[test]
fn collateral_is_verified_once() {
    let row = rows()
        .into_iter()
        .find(|r| r.quote == "phala-dcap-qvl/sgx_quote" && r.expected.starts_with("OK"))
        .unwrap();
    let v = DcapVerifier::new(Arc::new(StaticCollateral(Arc::new(row.collateral.clone()))));
    for _ in 0..5 {
        v.verify_quote(&row.raw, row.time).unwrap();
    }
    let s = v.stats();
    assert_eq!((s.collateral_verified, s.pck_chains_verified), (1, 1));
    // A cached collateral is still refused once expired, naming what expired.
    let e = v
        .verify_quote(&row.raw, row.time + 400 * 86400)
        .unwrap_err();
    assert!(matches!(e, VerifyError::CollateralExpired(_)), "{e}");
    assert!(e.to_string().contains("expired at"), "{e}");
}

#[test]
fn wrong_root_is_refused() {
    let row = rows()
        .into_iter()
        .find(|r| r.quote == "phala-dcap-qvl/sgx_quote" && r.expected.starts_with("OK"))
        .unwrap();
    // Intel's synthetic sample root (a different CA) as the trust anchor.
    let pem =
        std::fs::read(testdata().join("intel-qvl-sampleData/sgx/trustedRootCaCert.pem")).unwrap();
    let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
    let v = DcapVerifier::with_root(
        der,
        Arc::new(StaticCollateral(Arc::new(row.collateral.clone()))),
    );
    let e = v.verify_quote(&row.raw, row.time).unwrap_err();
    assert!(matches!(e, VerifyError::BadChain { .. }), "{e}");
}
