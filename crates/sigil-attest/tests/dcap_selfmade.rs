//! Self-made DCAP evidence: a test CA hierarchy generated here (root, PCK
//! CA, PCK leaf with the Intel SGX extension, TCB signing certificate, CRLs)
//! stands in for Intel's, signs TCB info and QE identity, and a test
//! "quoting enclave" signs quotes. Covers every branch without the shared
//! test data, and checks dcap-qvl reaches the same verdicts.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension, DnType,
    IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use sigil_attest::collateral::{Collateral, StaticCollateral};
use sigil_attest::dcap::DcapVerifier;
use sigil_attest::{TcbStatus, VerifyError};
use std::sync::Arc;
use time::macros::datetime;
use time::OffsetDateTime;

const T0: u64 = 1_736_899_200; // 2025-01-15T00:00:00Z
const FMSPC: [u8; 6] = [0x00, 0x90, 0x6E, 0xD5, 0x00, 0x00];
const QE_MRSIGNER: [u8; 32] = [0x8C; 32];
const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9, 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07,
];

// --- a little DER ---------------------------------------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 128 {
        v.push(n as u8);
    } else if n < 256 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut c = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut tmp = vec![(a & 0x7f) as u8];
        let mut x = a >> 7;
        while x > 0 {
            tmp.push(((x & 0x7f) as u8) | 0x80);
            x >>= 7;
        }
        tmp.reverse();
        c.extend(tmp);
    }
    tlv(0x06, &c)
}

const SGX_EXT: [u64; 9] = [1, 2, 840, 113741, 1, 13, 1, 0, 0];

fn sgx_oid(suffix: &[u64]) -> Vec<u8> {
    let mut a = SGX_EXT[..7].to_vec();
    a.extend_from_slice(suffix);
    oid(&a)
}

fn pair(name: Vec<u8>, value: Vec<u8>) -> Vec<u8> {
    tlv(0x30, &[name, value].concat())
}

fn int(v: u16) -> Vec<u8> {
    if v < 0x80 {
        tlv(0x02, &[v as u8])
    } else {
        let b = v.to_be_bytes();
        if b[0] == 0 {
            tlv(0x02, &[0, b[1]])
        } else if b[0] & 0x80 != 0 {
            tlv(0x02, &[0, b[0], b[1]])
        } else {
            tlv(0x02, &b)
        }
    }
}

/// The Intel SGX extension of a PCK certificate.
fn sgx_extension(cpu_svn: [u8; 16], pce_svn: u16) -> Vec<u8> {
    let mut tcb = Vec::new();
    for (i, s) in cpu_svn.iter().enumerate() {
        tcb.extend(pair(sgx_oid(&[2, i as u64 + 1]), int(u16::from(*s))));
    }
    tcb.extend(pair(sgx_oid(&[2, 17]), int(pce_svn)));
    tcb.extend(pair(sgx_oid(&[2, 18]), tlv(0x04, &cpu_svn)));
    let body = [
        pair(sgx_oid(&[1]), tlv(0x04, &[0x11; 16])),
        pair(sgx_oid(&[2]), tlv(0x30, &tcb)),
        pair(sgx_oid(&[3]), tlv(0x04, &[0, 0])),
        pair(sgx_oid(&[4]), tlv(0x04, &FMSPC)),
        pair(sgx_oid(&[5]), tlv(0x0A, &[0])),
    ]
    .concat();
    tlv(0x30, &body)
}

// --- the test PKI -----------------------------------------------------------

fn ring_key(k: &KeyPair) -> EcdsaKeyPair {
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &k.serialize_der(),
        &SystemRandom::new(),
    )
    .unwrap()
}

fn sign(k: &EcdsaKeyPair, msg: &[u8]) -> Vec<u8> {
    k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec()
}

fn ca_params(cn: &str, serial: u8) -> CertificateParams {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Sigil Test");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = datetime!(2024-01-01 0:00 UTC);
    p.not_after = datetime!(2034-01-01 0:00 UTC);
    p.serial_number = Some(SerialNumber::from(vec![serial]));
    p
}

fn leaf_params(cn: &str, serial: u8) -> CertificateParams {
    let mut p = ca_params(cn, serial);
    p.is_ca = IsCa::NoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

struct Pki {
    root_der: Vec<u8>,
    root_pem: String,
    root: rcgen::Certificate,
    root_key: KeyPair,
    pck_ca: rcgen::Certificate,
    pck_ca_key: KeyPair,
    tcb_signer: rcgen::Certificate,
    tcb_key: KeyPair,
}

fn pki() -> Pki {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root = ca_params("Test SGX Root CA", 1)
        .self_signed(&root_key)
        .unwrap();
    let pck_ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pck_ca = ca_params("Test SGX PCK Processor CA", 2)
        .signed_by(&pck_ca_key, &root, &root_key)
        .unwrap();
    let tcb_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let tcb_signer = leaf_params("Test SGX TCB Signing", 3)
        .signed_by(&tcb_key, &root, &root_key)
        .unwrap();
    Pki {
        root_der: root.der().to_vec(),
        root_pem: root.pem(),
        root,
        root_key,
        pck_ca,
        pck_ca_key,
        tcb_signer,
        tcb_key,
    }
}

fn crl(
    issuer: &rcgen::Certificate,
    key: &KeyPair,
    revoked: &[u8],
    next: OffsetDateTime,
) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: datetime!(2025-01-01 0:00 UTC),
        next_update: next,
        crl_number: SerialNumber::from(vec![1]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(vec![*s]),
                revocation_time: datetime!(2025-01-01 0:00 UTC),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer, key)
    .unwrap()
    .der()
    .to_vec()
}

/// What a test case changes.
#[derive(Clone)]
struct Case {
    tcb_status: &'static str,
    advisories: &'static [&'static str],
    pck_cpu_svn: [u8; 16],
    level_cpu_svn: [u8; 16],
    revoke_pck: bool,
    debug: bool,
    tamper_tcb_info: bool,
    qe_mrsigner: [u8; 32],
    resign_quote: bool,
    crl_next: OffsetDateTime,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            tcb_status: "UpToDate",
            advisories: &[],
            pck_cpu_svn: [5; 16],
            level_cpu_svn: [5; 16],
            revoke_pck: false,
            debug: false,
            tamper_tcb_info: false,
            qe_mrsigner: QE_MRSIGNER,
            resign_quote: false,
            crl_next: datetime!(2025-02-01 0:00 UTC),
        }
    }
}

struct Made {
    quote: Vec<u8>,
    collateral: Collateral,
    root_der: Vec<u8>,
}

fn make(p: &Pki, case: &Case) -> Made {
    // PCK leaf with the SGX extension.
    let pck_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut lp = leaf_params("Test SGX PCK Certificate", 9);
    lp.custom_extensions.push(CustomExtension::from_oid_content(
        &SGX_EXT[..7],
        sgx_extension(case.pck_cpu_svn, 13),
    ));
    let pck = lp.signed_by(&pck_key, &p.pck_ca, &p.pck_ca_key).unwrap();
    let chain_pem = format!("{}{}{}", pck.pem(), p.pck_ca.pem(), p.root_pem);

    // TCB info and QE identity, signed by the TCB signer.
    let comps: Vec<String> = case
        .level_cpu_svn
        .iter()
        .map(|s| format!("{{\"svn\":{s}}}"))
        .collect();
    let adv: Vec<String> = case.advisories.iter().map(|a| format!("\"{a}\"")).collect();
    let tcb_info = format!(
        "{{\"id\":\"SGX\",\"version\":3,\"issueDate\":\"2025-01-01T00:00:00Z\",\"nextUpdate\":\"2025-02-01T00:00:00Z\",\"fmspc\":\"{}\",\"pceId\":\"0000\",\"tcbType\":0,\"tcbEvaluationDataNumber\":17,\"tcbLevels\":[{{\"tcb\":{{\"sgxtcbcomponents\":[{}],\"pcesvn\":13}},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"{}\",\"advisoryIDs\":[{}]}}]}}",
        hex::encode_upper(FMSPC),
        comps.join(","),
        case.tcb_status,
        adv.join(",")
    );
    let qe_identity = format!(
        "{{\"id\":\"QE\",\"version\":2,\"issueDate\":\"2025-01-01T00:00:00Z\",\"nextUpdate\":\"2025-02-01T00:00:00Z\",\"tcbEvaluationDataNumber\":17,\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\",\"attributes\":\"11000000000000000000000000000000\",\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",\"mrsigner\":\"{}\",\"isvprodid\":1,\"tcbLevels\":[{{\"tcb\":{{\"isvsvn\":8}},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"UpToDate\"}}]}}",
        hex::encode_upper(case.qe_mrsigner)
    );
    let tk = ring_key(&p.tcb_key);
    let tcb_sig = sign(&tk, tcb_info.as_bytes());
    let qe_sig = sign(&tk, qe_identity.as_bytes());
    let tcb_info = if case.tamper_tcb_info {
        tcb_info.replace(
            "\"tcbEvaluationDataNumber\":17",
            "\"tcbEvaluationDataNumber\":18",
        )
    } else {
        tcb_info
    };
    let issuer_chain = format!("{}{}", p.tcb_signer.pem(), p.root_pem);
    let collateral = Collateral::new(dcap_qvl::QuoteCollateralV3 {
        pck_crl_issuer_chain: format!("{}{}", p.pck_ca.pem(), p.root_pem),
        root_ca_crl: crl(&p.root, &p.root_key, &[], case.crl_next),
        pck_crl: crl(
            &p.pck_ca,
            &p.pck_ca_key,
            if case.revoke_pck { &[9] } else { &[] },
            case.crl_next,
        ),
        tcb_info_issuer_chain: issuer_chain.clone(),
        tcb_info,
        tcb_info_signature: tcb_sig,
        qe_identity_issuer_chain: issuer_chain,
        qe_identity,
        qe_identity_signature: qe_sig,
        pck_certificate_chain: None,
    });

    // The quote: header, ISV enclave report, auth data.
    let ak = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    let ak = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        ak.as_ref(),
        &SystemRandom::new(),
    )
    .unwrap();
    let ak_pub = &ak.public_key().as_ref()[1..]; // drop the 0x04
    let mut q = Vec::new();
    q.extend_from_slice(&3u16.to_le_bytes());
    q.extend_from_slice(&2u16.to_le_bytes());
    q.extend_from_slice(&0u32.to_le_bytes());
    q.extend_from_slice(&8u16.to_le_bytes());
    q.extend_from_slice(&13u16.to_le_bytes());
    q.extend_from_slice(&INTEL_QE_VENDOR_ID);
    q.extend_from_slice(&[0; 20]);
    let mut report = vec![0u8; 384];
    report[48] = if case.debug { 0x07 } else { 0x05 }; // INIT | MODE64 (| DEBUG)
    report[64..96].copy_from_slice(&[0xAA; 32]); // MRENCLAVE
    report[128..160].copy_from_slice(&[0xBB; 32]); // MRSIGNER
    report[256..258].copy_from_slice(&7u16.to_le_bytes()); // ISVPRODID
    report[258..260].copy_from_slice(&3u16.to_le_bytes()); // ISVSVN
    report[320..384].copy_from_slice(&[0xCC; 64]); // report data
    q.extend_from_slice(&report);
    let signed = q.clone();

    // QE report, binding the attestation key, signed by the PCK key.
    let qe_auth = [0x5Au8; 32];
    let mut qe = vec![0u8; 384];
    qe[48..64].copy_from_slice(&hex::decode("11000000000000000000000000000000").unwrap());
    qe[128..160].copy_from_slice(&QE_MRSIGNER);
    qe[256..258].copy_from_slice(&1u16.to_le_bytes());
    qe[258..260].copy_from_slice(&8u16.to_le_bytes());
    let bind = ring::digest::digest(&ring::digest::SHA256, &[ak_pub, &qe_auth[..]].concat());
    qe[320..352].copy_from_slice(bind.as_ref());
    let qe_sig = sign(&ring_key(&pck_key), &qe);

    let quote_sig = if case.resign_quote {
        // Signed by another key than the one the QE certified.
        let other =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let other = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            other.as_ref(),
            &SystemRandom::new(),
        )
        .unwrap();
        sign(&other, &signed)
    } else {
        sign(&ak, &signed)
    };
    let mut auth = Vec::new();
    auth.extend_from_slice(&quote_sig);
    auth.extend_from_slice(ak_pub);
    auth.extend_from_slice(&qe);
    auth.extend_from_slice(&qe_sig);
    auth.extend_from_slice(&(qe_auth.len() as u16).to_le_bytes());
    auth.extend_from_slice(&qe_auth);
    auth.extend_from_slice(&5u16.to_le_bytes());
    auth.extend_from_slice(&(chain_pem.len() as u32).to_le_bytes());
    auth.extend_from_slice(chain_pem.as_bytes());
    q.extend_from_slice(&(auth.len() as u32).to_le_bytes());
    q.extend_from_slice(&auth);
    Made {
        quote: q,
        collateral,
        root_der: p.root_der.clone(),
    }
}

fn verify(m: &Made, at: u64) -> Result<sigil_attest::Claims, VerifyError> {
    DcapVerifier::with_root(
        m.root_der.clone(),
        Arc::new(StaticCollateral(Arc::new(m.collateral.clone()))),
    )
    .verify_quote(&m.quote, at)
}

/// dcap-qvl's verdict on the same evidence, with the same root.
fn qvl(m: &Made, at: u64, allow_debug: bool) -> Result<String, String> {
    dcap_qvl::verify::QuoteVerifier::new(m.root_der.clone())
        .with_config::<dcap_qvl::configs::RingConfig>()
        .allow_debug(allow_debug)
        .verify(&m.quote, &m.collateral.inner, at)
        .map(|r| r.status)
        .map_err(|e| format!("{e:#}"))
}

/// Evidence made for `case` is refused by Sigil, with an error that names
/// `reason`, and by dcap-qvl; returns Sigil's error.
fn refused(case: Case, reason: &str) -> VerifyError {
    let m = make(&pki(), &case);
    let e = verify(&m, T0).unwrap_err();
    assert!(e.to_string().contains(reason), "{e}");
    assert!(qvl(&m, T0, false).is_err());
    e
}

#[test]
fn valid_self_made_quote() {
    let p = pki();
    let m = make(&p, &Case::default());
    let c = verify(&m, T0).unwrap();
    assert_eq!(c.tcb_status, TcbStatus::UpToDate);
    assert_eq!(c.mrenclave, Some([0xAA; 32]));
    assert_eq!(c.mrsigner, Some([0xBB; 32]));
    assert_eq!((c.isv_prod_id, c.svn), (Some(7), Some(3)));
    assert_eq!(c.report_data, [0xCC; 64]);
    assert_eq!(c.platform_id, FMSPC);
    assert!(!c.debug);
    assert_eq!(
        c.collateral_expiry,
        Some(datetime!(2025-02-01 0:00 UTC).unix_timestamp() as u64)
    );
    assert_eq!(qvl(&m, T0, false).unwrap(), "UpToDate");
}

#[test]
fn each_tcb_status_becomes_a_claim() {
    let p = pki();
    for (status, want) in [
        ("UpToDate", TcbStatus::UpToDate),
        ("SWHardeningNeeded", TcbStatus::SWHardeningNeeded),
        ("ConfigurationNeeded", TcbStatus::ConfigurationNeeded),
        (
            "ConfigurationAndSWHardeningNeeded",
            TcbStatus::ConfigurationAndSWHardeningNeeded,
        ),
        ("OutOfDate", TcbStatus::OutOfDate),
        (
            "OutOfDateConfigurationNeeded",
            TcbStatus::OutOfDateConfigurationNeeded,
        ),
    ] {
        let m = make(
            &p,
            &Case {
                tcb_status: status,
                advisories: &["INTEL-SA-00001", "INTEL-SA-00002"],
                ..Case::default()
            },
        );
        let c = verify(&m, T0).unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(c.tcb_status, want);
        assert_eq!(c.advisory_ids, vec!["INTEL-SA-00001", "INTEL-SA-00002"]);
        assert_eq!(qvl(&m, T0, false).unwrap(), status);
    }
    // Revoked is never a claim.
    refused(
        Case {
            tcb_status: "Revoked",
            ..Case::default()
        },
        "Revoked",
    );
}

#[test]
fn no_matching_tcb_level() {
    refused(
        Case {
            pck_cpu_svn: [4; 16],
            ..Case::default()
        },
        "No matching TCB level",
    );
}

#[test]
fn bad_quote_signature() {
    let e = refused(
        Case {
            resign_quote: true,
            ..Case::default()
        },
        "quote",
    );
    assert!(matches!(e, VerifyError::BadSignature(_)), "{e}");
}

#[test]
fn tampered_tcb_info() {
    let e = refused(
        Case {
            tamper_tcb_info: true,
            ..Case::default()
        },
        "TCB info",
    );
    assert!(matches!(e, VerifyError::BadSignature(_)), "{e}");
}

#[test]
fn wrong_root() {
    let p = pki();
    let m = make(&p, &Case::default());
    let other = pki();
    let v = DcapVerifier::with_root(
        other.root_der.clone(),
        Arc::new(StaticCollateral(Arc::new(m.collateral.clone()))),
    );
    let e = v.verify_quote(&m.quote, T0).unwrap_err();
    assert!(matches!(e, VerifyError::BadChain { .. }), "{e}");
    // Nor does Intel's production root accept the test hierarchy.
    let v = DcapVerifier::new(Arc::new(StaticCollateral(Arc::new(m.collateral.clone()))));
    assert!(v.verify_quote(&m.quote, T0).is_err());
}

#[test]
fn revoked_pck() {
    let e = refused(
        Case {
            revoke_pck: true,
            ..Case::default()
        },
        "revoked",
    );
    assert!(matches!(e, VerifyError::BadChain { .. }), "{e}");
}

#[test]
fn expired_collateral_names_what_expired() {
    let p = pki();
    // CRLs expire before the TCB info.
    let m = make(
        &p,
        &Case {
            crl_next: datetime!(2025-01-20 0:00 UTC),
            ..Case::default()
        },
    );
    verify(&m, T0).unwrap();
    let late = datetime!(2025-01-25 0:00 UTC).unix_timestamp() as u64;
    let e = verify(&m, late).unwrap_err();
    assert!(matches!(e, VerifyError::CollateralExpired(_)), "{e}");
    let s = e.to_string();
    assert!(s.contains("root CA CRL") && s.contains("PCK CRL"), "{s}");
    assert!(s.contains("2025-01-20T00:00:00Z"), "{s}");
    assert!(!s.contains("TCB info"), "{s}");
    // After the TCB info's nextUpdate too.
    let later = datetime!(2025-02-02 0:00 UTC).unix_timestamp() as u64;
    let s = verify(&m, later).unwrap_err().to_string();
    assert!(s.contains("TCB info (FMSPC 00906ED50000) expired"), "{s}");
    assert!(qvl(&m, later, false).is_err());
    // Before the collateral was issued.
    let early = datetime!(2024-12-01 0:00 UTC).unix_timestamp() as u64;
    assert!(verify(&m, early)
        .unwrap_err()
        .to_string()
        .contains("not valid before"));
}

#[test]
fn qe_identity_mismatch() {
    refused(
        Case {
            qe_mrsigner: [1; 32],
            ..Case::default()
        },
        "QE MRSIGNER",
    );
}

#[test]
fn debug_enclave_is_a_claim_not_an_error() {
    let p = pki();
    let m = make(
        &p,
        &Case {
            debug: true,
            ..Case::default()
        },
    );
    let c = verify(&m, T0).unwrap();
    assert!(c.debug);
    assert!(qvl(&m, T0, false).unwrap_err().contains("Debug"));
    assert_eq!(qvl(&m, T0, true).unwrap(), "UpToDate");
}

#[test]
fn every_byte_flip_of_a_self_made_quote_is_refused() {
    let p = pki();
    let m = make(&p, &Case::default());
    let v = DcapVerifier::with_root(
        m.root_der.clone(),
        Arc::new(StaticCollateral(Arc::new(m.collateral.clone()))),
    );
    v.verify_quote(&m.quote, T0).unwrap();
    for i in 0..m.quote.len() {
        let mut q = m.quote.clone();
        q[i] ^= 0x80;
        assert!(
            v.verify_quote(&q, T0).is_err(),
            "byte {i} flipped was accepted"
        );
    }
}
