//! Every row of EXPECTED_SNP.tsv: real AMD SEV-SNP reports with their VCEKs
//! (certificate serial 0) and ASK/ARK chains.

mod common;

use base64::Engine as _;
use common::{read_evidence, testdata, tsv};
use sigil_attest::snp::SnpVerifier;
use sigil_attest::time_util::parse_time;
use sigil_attest::{TeeKind, VerifyError};

/// Every certificate in the data is valid then (Genoa VCEK from 2025-05-27).
fn at() -> u64 {
    parse_time("2026-01-01T00:00:00Z").unwrap()
}

fn pem(der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn bundle(vek: &str, chain: &str) -> Vec<u8> {
    let vek = std::fs::read(testdata().join(vek)).unwrap();
    let chain = std::fs::read_to_string(testdata().join(chain)).unwrap();
    format!("{}{}", pem(&vek), chain).into_bytes()
}

#[test]
fn every_expected_snp_row() {
    let v = SnpVerifier::new().unwrap();
    let rows = tsv("EXPECTED_SNP.tsv");
    assert!(rows.len() >= 5);
    let mut valid = 0;
    for r in &rows {
        let report = read_evidence(&r[0]);
        let certs = bundle(&r[1], &r[2]);
        let got = v.verify_report(&report, Some(&certs), at());
        match r[3].as_str() {
            "VALID" => {
                let c = got.unwrap_or_else(|e| panic!("{r:?}: {e}"));
                assert_eq!(c.tee, TeeKind::Snp);
                assert_eq!(c.snp_measurement.unwrap()[..], report[0x90..0xC0]);
                assert_eq!(c.report_data[..], report[0x50..0x90]);
                assert_eq!(
                    c.svn,
                    Some(u32::from_le_bytes(report[4..8].try_into().unwrap()))
                );
                assert_eq!(c.platform_id[..], report[0x1A0..0x1E0]);
                valid += 1;
            }
            "INVALID" => {
                let e = got.expect_err(&format!("{r:?}"));
                assert!(
                    matches!(
                        e,
                        VerifyError::BadSignature(_)
                            | VerifyError::BadChain { .. }
                            | VerifyError::Rejected(_)
                    ),
                    "{r:?}: {e}"
                );
            }
            other => panic!("unknown verdict {other}"),
        }
    }
    assert_eq!(valid, 3);
}

#[test]
fn vcek_alone_uses_builtin_ask_and_ark() {
    let v = SnpVerifier::new().unwrap();
    let report = read_evidence("coco-trustee/snp/test-report.bin");
    let vcek = std::fs::read(testdata().join("coco-trustee/snp/test-vcek.der")).unwrap();
    v.verify_report(&report, Some(&vcek), at()).unwrap();
    // A VCEK for another chip/TCB does not verify this report.
    let other = std::fs::read(testdata().join("virtee-sev/vcek_milan.der")).unwrap();
    assert!(v.verify_report(&report, Some(&other), at()).is_err());
    // No VCEK at all: a clear "unavailable" error.
    let e = v.verify_report(&report, None, at()).unwrap_err();
    assert!(matches!(e, VerifyError::CollateralUnavailable(_)), "{e}");
    // Outside the VCEK's validity.
    let e = v
        .verify_report(
            &report,
            Some(&vcek),
            parse_time("2031-01-01T00:00:00Z").unwrap(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("valid from"), "{e}");
}

#[test]
fn vcek_from_cache_directory() {
    let dir = tempfile::tempdir().unwrap();
    let report = read_evidence("virtee-sev/report_milan.hex");
    let rep = sigil_attest::snp::parse_report(&report).unwrap();
    let vcek = std::fs::read(testdata().join("virtee-sev/vcek_milan.der")).unwrap();
    std::fs::write(
        dir.path().join(format!(
            "{}_{:016x}.der",
            hex::encode(rep.chip_id),
            rep.reported_tcb
        )),
        vcek,
    )
    .unwrap();
    let v = SnpVerifier::new().unwrap().with_cert_dir(dir.path());
    v.verify_report(&report, None, at()).unwrap();
}

#[test]
fn every_byte_flip_of_a_report_is_refused() {
    let v = SnpVerifier::new().unwrap();
    for (rep, vek, chain) in [
        (
            "coco-trustee/snp/test-report.bin",
            "coco-trustee/snp/test-vcek.der",
            "coco-trustee/snp/milan_ask_ark_asvk.pem",
        ),
        (
            "coco-trustee/snp/e2e-genoa-report.bin",
            "coco-trustee/snp/e2e-genoa-vcek.der",
            "coco-trustee/snp/genoa_ask_ark_asvk.pem",
        ),
    ] {
        let report = read_evidence(rep);
        let certs = bundle(vek, chain);
        v.verify_report(&report, Some(&certs), at()).unwrap();
        for i in 0..report.len() {
            let mut r = report.clone();
            r[i] ^= 0x01;
            assert!(
                v.verify_report(&r, Some(&certs), at()).is_err(),
                "{rep}: flipping byte {i:#x} was accepted"
            );
        }
        for cut in [0, 1, 0x2A0, report.len() - 1] {
            assert!(v.verify_report(&report[..cut], Some(&certs), at()).is_err());
        }
    }
}
