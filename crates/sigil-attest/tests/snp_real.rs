//! Every row of EXPECTED_SNP.tsv: real AMD SEV-SNP reports with their VCEKs
//! (certificate serial 0) and ASK/ARK chains.

use base64::Engine as _;
use sigil_attest::snp::SnpVerifier;
use sigil_attest::time_util::parse_time;
use sigil_attest::{SnpTcb, TeeKind, VerifyError};
use sigil_testsupport::attestation::{read_evidence, testdata, tsv};
use sigil_testsupport::net::{response, serve_http};

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
                // Genuine guest reports come from VMPL 0 (offset 0x30).
                assert_eq!(
                    c.snp_vmpl,
                    Some(u32::from_le_bytes(report[0x30..0x34].try_into().unwrap()))
                );
                assert_eq!(c.snp_vmpl, Some(0), "{r:?}");
                let policy = u64::from_le_bytes(report[8..16].try_into().unwrap());
                assert_eq!(c.snp_migration_agent, Some(policy & (1 << 18) != 0));
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

/// A KDS-compatible server on loopback serves the real VCEK; the verifier
/// fetches it once, keeps it in the cache directory, and works offline after.
#[test]
fn vcek_from_kds_then_cache() {
    use std::sync::{Arc, Mutex};
    let vcek = std::fs::read(testdata().join("virtee-sev/vcek_milan.der")).unwrap();
    let paths = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = paths.clone();
    let url = serve_http(move |path| {
        seen.lock().unwrap().push(path.to_string());
        if path.starts_with("/vcek/v1/Milan/") {
            response("200 OK", "", &vcek)
        } else {
            response("404 Not Found", "", b"nope")
        }
    });
    let report = read_evidence("virtee-sev/report_milan.hex");
    let rep = sigil_attest::snp::parse_report(&report).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v = SnpVerifier::new()
        .unwrap()
        .with_cert_dir(dir.path())
        .with_kds(&url);
    v.verify_report(&report, None, at()).unwrap();
    let p = paths.lock().unwrap().clone();
    assert_eq!(p.len(), 1, "{p:?}");
    let tcb = rep.reported_tcb.to_le_bytes();
    assert_eq!(
        p[0],
        format!(
            "/vcek/v1/Milan/{}?blSPL={:02}&teeSPL={:02}&snpSPL={:02}&ucodeSPL={:02}",
            hex::encode(rep.chip_id),
            tcb[0],
            tcb[1],
            tcb[6],
            tcb[7]
        )
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Offline now: a dead KDS, the cache directory still serves.
    let v2 = SnpVerifier::new()
        .unwrap()
        .with_cert_dir(dir.path())
        .with_kds("http://127.0.0.1:1");
    v2.verify_report(&report, None, at()).unwrap();
    // No cache, dead KDS: a clear error.
    let e = SnpVerifier::new()
        .unwrap()
        .with_kds("http://127.0.0.1:1")
        .verify_report(&report, None, at())
        .unwrap_err();
    assert!(matches!(e, VerifyError::CollateralUnavailable(_)), "{e}");
}

/// The TCB claims of the real reports, split by generation, as
/// EXPECTED_SNP.tsv's notes give them (Milan: reported bl=3 tee=0 snp=8
/// ucode=115 while the current microcode is 206; Genoa: bl=10 tee=0 snp=23
/// ucode=25).
#[test]
fn tcb_claims_of_real_reports() {
    let v = SnpVerifier::new().unwrap();
    let milan = v
        .verify_report(
            &read_evidence("coco-trustee/snp/test-report.bin"),
            Some(&bundle(
                "coco-trustee/snp/test-vcek.der",
                "coco-trustee/snp/milan_ask_ark_asvk.pem",
            )),
            at(),
        )
        .unwrap();
    let t = milan.snp_tcb.unwrap();
    let tcb = |bootloader, tee, snp, microcode| SnpTcb {
        bootloader,
        tee,
        snp,
        microcode,
        fmc: None,
    };
    assert_eq!(t.reported, tcb(3, 0, 8, 115));
    assert_eq!(t.committed, tcb(3, 0, 8, 115));
    assert_eq!(t.launch, tcb(3, 0, 8, 115));
    assert_eq!(t.current, tcb(3, 0, 8, 206));
    let genoa = v
        .verify_report(
            &read_evidence("coco-trustee/snp/e2e-genoa-report.bin"),
            Some(&bundle(
                "coco-trustee/snp/e2e-genoa-vcek.der",
                "coco-trustee/snp/genoa_ask_ark_asvk.pem",
            )),
            at(),
        )
        .unwrap();
    assert_eq!(genoa.snp_tcb.unwrap().reported, tcb(10, 0, 23, 25));
}

/// A session's `security.attestation.snp.min_tcb` against the real
/// reports: the exact TCB passes, one SPL more in any component refuses
/// naming the component, the report's value and the minimum.
#[test]
fn session_min_tcb_against_real_reports() {
    use sigil_attest::{decide, Decision, Reason};
    let v = SnpVerifier::new().unwrap();
    for (rep, vek, chain, spl) in [
        (
            "coco-trustee/snp/test-report.bin",
            "coco-trustee/snp/test-vcek.der",
            "coco-trustee/snp/milan_ask_ark_asvk.pem",
            [3u8, 0, 8, 115],
        ),
        (
            "coco-trustee/snp/e2e-genoa-report.bin",
            "coco-trustee/snp/e2e-genoa-vcek.der",
            "coco-trustee/snp/genoa_ask_ark_asvk.pem",
            [10, 0, 23, 25],
        ),
    ] {
        let report = read_evidence(rep);
        let c = v
            .verify_report(&report, Some(&bundle(vek, chain)), at())
            .unwrap();
        let session = |min: [u8; 4]| {
            let yaml = format!(
                "name: snp/app\nservices:\n  - name: app\n    attestation:\n      - measurement: {}\nsecurity:\n  attestation:\n    snp:\n      min_tcb: {{bootloader: {}, tee: {}, snp: {}, microcode: {}}}\n",
                hex::encode(&report[0x90..0xC0]),
                min[0],
                min[1],
                min[2],
                min[3]
            );
            sigil_session::Session::parse(&yaml).unwrap_or_else(|e| panic!("{e}"))
        };
        let decide_with = |min: [u8; 4]| {
            let s = session(min);
            let (rules, mut policy) = sigil_attest::session::policy_for(&s, "app").unwrap();
            // SMT is on in these reports; not what this test is about.
            policy
                .tolerate
                .insert(sigil_attest::Tolerance::Hyperthreading);
            decide(&c, &rules, &policy, &c.report_data, "snp/app")
        };
        assert_eq!(decide_with(spl), Decision::Accept, "{rep}");
        assert_eq!(decide_with([0, 0, 0, 0]), Decision::Accept, "{rep}");
        let names = ["bootloader", "TEE", "SNP", "microcode"];
        for i in 0..4 {
            let mut min = spl;
            min[i] += 1;
            let d = decide_with(min);
            // Reported, committed and launch TCB are equal in these reports:
            // each is below the minimum in the same component.
            let reasons = d.reasons();
            assert_eq!(reasons.len(), 3, "{rep}: {d}");
            for (r, which) in reasons.iter().zip(["reported", "committed", "launch"]) {
                assert_eq!(
                    **r,
                    Reason::SnpTcbBelowMinimum {
                        which,
                        below: vec![(names[i], spl[i], min[i])]
                    }
                );
            }
            let text = d.to_string();
            assert!(
                text.contains(&format!(
                    "SEV-SNP reported TCB is below the minimum of session snp/app: {} SPL {} < minimum {}",
                    names[i], spl[i], min[i]
                )),
                "{text}"
            );
        }
    }
}
