//! Intel DCAP quote verification (SGX quote v3, TDX quote v4/v5) with a
//! verified-collateral cache.
//!
//! Built on dcap-qvl: its quote parser, TCB info / QE identity types, PCK
//! extension parser and TCB-level primitives are used as they are; the steps
//! of `dcap_qvl::verify` are followed one by one (same checks, same order of
//! TCB-level matching and status convergence, see `tests/dcap_real.rs`
//! which compares verdicts with dcap-qvl on every real quote), with two
//! differences:
//!
//! 1. Work that depends only on the collateral (TCB info and QE identity
//!    signatures and chains, CRLs) is done once per collateral content hash,
//!    and the PCK chain once per (collateral, chain) pair. A quote then costs
//!    the QE report signature, the attestation-key binding hash and the quote
//!    signature, plus the time checks of every collateral item.
//! 2. Debug mode, TDX service TDs and SEPT_VE_DISABLE are returned as claims
//!    instead of errors: they are policy, decided by [`crate::decide`].

use crate::claims::{Claims, TcbStatus};
use crate::collateral::{Collateral, CollateralRequest, CollateralSource, PckCa};
use crate::der::{cert_info, crl_dates, pem_certs};
use crate::evidence::{Evidence, TeeKind, MAX_EVIDENCE_DATA};
use crate::time_util::{format_unix, parse_rfc3339};
use crate::VerifyError;
use dcap_qvl::quote::{Quote, Report, TDAttributes, TDReport10};
use dcap_qvl::tcb_info::{TcbInfo, TcbLevel, TcbStatus as QvlStatus, TcbStatusWithAdvisory};
use dcap_qvl::QeIdentity;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use rustls_pki_types::{CertificateDer, UnixTime};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webpki::{CertRevocationList, OwnedCertRevocationList};

/// SHA-256 fingerprint of Intel's production SGX root CA.
pub const INTEL_ROOT_CA_SHA256: &str =
    "44A0196B2B99F889B8E149E95B807A350E7424964399E885A7CBB8CCFAB674D3";

/// Intel SGX Root CA (production), DER. Public certificate; its SHA-256 is
/// [`INTEL_ROOT_CA_SHA256`] (checked by a unit test).
pub const INTEL_ROOT_CA_DER: &[u8] = include_bytes!("intel_sgx_root_ca.der");

/// Cache entries kept per cache before it is emptied (bounded memory).
const MAX_CACHE: usize = 4096;

const INTEL_QE_VENDOR_ID: [u8; 16] = dcap_qvl::INTEL_QE_VENDOR_ID;
const TEE_TYPE_SGX: u32 = 0;
const TEE_TYPE_TDX: u32 = 0x81;
const ATTESTATION_KEY_ECDSA_P256: u16 = 2;

/// A dated piece of collateral, for freshness checks and error messages.
#[derive(Clone, Debug)]
struct Dated {
    what: String,
    not_before: u64,
    not_after: u64,
}

fn check_dates(items: &[Dated], now: u64) -> Result<(), VerifyError> {
    let mut expired: Vec<&Dated> = items.iter().filter(|d| now > d.not_after).collect();
    if !expired.is_empty() {
        expired.sort_by_key(|d| d.not_after);
        let list: Vec<String> = expired
            .iter()
            .map(|d| format!("{} expired at {}", d.what, format_unix(d.not_after)))
            .collect();
        return Err(VerifyError::CollateralExpired(format!(
            "{} (verification time {})",
            list.join("; "),
            format_unix(now)
        )));
    }
    if let Some(d) = items.iter().find(|d| now < d.not_before) {
        return Err(VerifyError::CollateralExpired(format!(
            "{} is not valid before {} (verification time {})",
            d.what,
            format_unix(d.not_before),
            format_unix(now)
        )));
    }
    Ok(())
}

/// Collateral whose signatures and chains have been verified.
struct VerifiedCollateral {
    tcb_info: TcbInfo,
    qe_identity: QeIdentity,
    crls: [CertRevocationList<'static>; 2],
    dated: Vec<Dated>,
    fmspc: [u8; 6],
}

/// A parsed PCK chain (leaf first) from a quote.
struct ParsedPck {
    chain: Vec<Vec<u8>>,
    leaf_key: Vec<u8>,
    cpu_svn: [u8; 16],
    pce_svn: u16,
    fmspc: [u8; 6],
    ca: PckCa,
    smt_enabled: Option<bool>,
    dated: Vec<Dated>,
}

/// Statistics of the caches (for tests and the benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Collateral sets verified (cache misses).
    pub collateral_verified: u64,
    /// PCK chains verified (cache misses).
    pub pck_chains_verified: u64,
}

/// Verifier for SGX and TDX DCAP quotes.
pub struct DcapVerifier {
    root_der: Vec<u8>,
    source: Arc<dyn CollateralSource>,
    collateral: Mutex<HashMap<[u8; 32], Arc<VerifiedCollateral>>>,
    parsed_pck: Mutex<HashMap<[u8; 32], Arc<ParsedPck>>>,
    verified_pck: Mutex<std::collections::HashSet<([u8; 32], [u8; 32])>>,
    stats: Mutex<CacheStats>,
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut o = [0u8; 32];
    o.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, b).as_ref());
    o
}

fn malformed(what: &'static str, detail: impl ToString) -> VerifyError {
    VerifyError::Malformed {
        what,
        detail: detail.to_string(),
    }
}

fn rejected(detail: impl ToString) -> VerifyError {
    VerifyError::Rejected(detail.to_string())
}

fn unix(now: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(now))
}

/// (issueDate, nextUpdate) of a TCB info JSON, unverified.
pub(crate) fn tcb_info_dates(tcb_info_json: &str) -> Option<(u64, u64)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct D {
        issue_date: String,
        next_update: String,
    }
    let d: D = serde_json::from_str(tcb_info_json).ok()?;
    Some((
        parse_rfc3339(&d.issue_date)?,
        parse_rfc3339(&d.next_update)?,
    ))
}

/// Verifies a raw ECDSA P-256 signature (r || s, 64 bytes).
fn verify_p256(key: &[u8], msg: &[u8], sig: &[u8], what: &str) -> Result<(), VerifyError> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key)
        .verify(msg, sig)
        .map_err(|_| VerifyError::BadSignature(format!("{what} signature does not verify")))
}

/// Verifies `leaf` (+ intermediates) up to the root with both CRLs at `now`.
fn verify_chain(
    what: &'static str,
    chain: &[Vec<u8>],
    root_der: &[u8],
    anchor: &rustls_pki_types::TrustAnchor<'_>,
    crls: &[CertRevocationList<'static>; 2],
    now: u64,
) -> Result<usize, VerifyError> {
    let bad = |detail: String| VerifyError::BadChain { what, detail };
    let [leaf, rest @ ..] = chain else {
        return Err(bad("empty certificate chain".into()));
    };
    if rest.len() > 4 {
        return Err(bad(format!("{} intermediate certificates", rest.len())));
    }
    let leaf_der = CertificateDer::from(leaf.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| bad(format!("cannot parse leaf certificate: {e:?}")))?;
    let inter: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let crl_refs: Vec<&CertRevocationList<'_>> = crls.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
        .map_err(|_| bad("no CRL".into()))?
        .with_depth(webpki::RevocationCheckDepth::Chain)
        .with_status_policy(webpki::UnknownStatusPolicy::Deny)
        .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
        .build();
    let anchors = [anchor.clone()];
    let path = ee
        .verify_for_usage(
            &[webpki::ring::ECDSA_P256_SHA256],
            &anchors,
            &inter,
            unix(now),
            webpki::KeyUsage::server_auth(),
            Some(revocation),
            None,
        )
        .map_err(|e| bad(describe_webpki(e)))?;
    // Every certificate sent must be on the verified path or be the trusted
    // root itself: a chain carrying unused (possibly corrupted) certificates
    // is not what the platform produced.
    let used: Vec<Vec<u8>> = path
        .intermediate_certificates()
        .map(|c| c.der().as_ref().to_vec())
        .collect();
    for c in rest {
        if !used.contains(c) && c.as_slice() != root_der {
            return Err(bad(
                "the chain contains a certificate that is neither on the path nor the trusted root"
                    .into(),
            ));
        }
    }
    Ok(used.len())
}

fn describe_webpki(e: webpki::Error) -> String {
    match e {
        webpki::Error::CertRevoked => "certificate is revoked".into(),
        webpki::Error::UnknownIssuer => "does not chain to the trusted Intel root".into(),
        webpki::Error::InvalidSignatureForPublicKey => "a certificate signature is invalid".into(),
        webpki::Error::CertExpired { .. } => "a certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => "a certificate is not valid yet".into(),
        webpki::Error::CrlExpired { .. } => "a CRL has expired".into(),
        webpki::Error::UnknownRevocationStatus => "no CRL covers a certificate".into(),
        e => format!("{e:?}"),
    }
}

impl DcapVerifier {
    /// A verifier trusting Intel's production root, with collateral from `source`.
    pub fn new(source: Arc<dyn CollateralSource>) -> Self {
        Self::with_root(INTEL_ROOT_CA_DER.to_vec(), source)
    }

    /// A verifier trusting `root_der` (tests, Intel's sample data).
    pub fn with_root(root_der: Vec<u8>, source: Arc<dyn CollateralSource>) -> Self {
        DcapVerifier {
            root_der,
            source,
            collateral: Mutex::new(HashMap::new()),
            parsed_pck: Mutex::new(HashMap::new()),
            verified_pck: Mutex::new(std::collections::HashSet::new()),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    /// Cache statistics.
    pub fn stats(&self) -> CacheStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    fn bump(&self, f: impl FnOnce(&mut CacheStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s)
        }
    }

    fn anchor(&self) -> Result<rustls_pki_types::TrustAnchor<'_>, VerifyError> {
        webpki::anchor_from_trusted_cert(&CertificateDer::from(self.root_der.as_slice()))
            .map(|a| a.to_owned())
            .map_err(|e| VerifyError::BadChain {
                what: "trusted root",
                detail: format!("cannot use root certificate: {e:?}"),
            })
    }

    /// Verifies the collateral's signatures and chains (once per content hash).
    fn verified_collateral(
        &self,
        c: &Collateral,
        now: u64,
    ) -> Result<Arc<VerifiedCollateral>, VerifyError> {
        if let Some(v) = self
            .collateral
            .lock()
            .ok()
            .and_then(|m| m.get(&c.hash).cloned())
        {
            check_dates(&v.dated, now)?;
            return Ok(v);
        }
        let v = Arc::new(self.verify_collateral(c, now)?);
        self.bump(|s| s.collateral_verified += 1);
        if let Ok(mut m) = self.collateral.lock() {
            if m.len() >= MAX_CACHE {
                m.clear();
            }
            m.insert(c.hash, v.clone());
        }
        Ok(v)
    }

    fn verify_collateral(
        &self,
        c: &Collateral,
        now: u64,
    ) -> Result<VerifiedCollateral, VerifyError> {
        let c = &c.inner;
        let anchor = self.anchor()?;
        let root = cert_info("trusted root", &self.root_der)?;
        let mut dated = vec![Dated {
            what: format!("root certificate ({})", root.subject),
            not_before: root.not_before,
            not_after: root.not_after,
        }];
        let root_crl_d = crl_dates("root CA CRL", &c.root_ca_crl)?;
        let pck_crl_d = crl_dates("PCK CRL", &c.pck_crl)?;
        for (name, d) in [("root CA CRL", &root_crl_d), ("PCK CRL", &pck_crl_d)] {
            dated.push(Dated {
                what: format!("{name} ({})", d.issuer),
                not_before: d.this_update,
                not_after: d.next_update.unwrap_or(u64::MAX),
            });
        }
        let tcb_info: TcbInfo =
            serde_json::from_str(&c.tcb_info).map_err(|e| malformed("TCB info", e))?;
        let qe_identity: QeIdentity =
            serde_json::from_str(&c.qe_identity).map_err(|e| malformed("QE identity", e))?;
        let date = |what: &'static str, s: &str| {
            parse_rfc3339(s).ok_or_else(|| malformed(what, format!("bad date {s:?}")))
        };
        dated.push(Dated {
            what: format!("TCB info (FMSPC {})", tcb_info.fmspc.to_uppercase()),
            not_before: date("TCB info", &tcb_info.issue_date)?,
            not_after: date("TCB info", &tcb_info.next_update)?,
        });
        dated.push(Dated {
            what: format!("QE identity ({})", qe_identity.id),
            not_before: date("QE identity", &qe_identity.issue_date)?,
            not_after: date("QE identity", &qe_identity.next_update)?,
        });
        let mut fmspc = [0u8; 6];
        hex::decode_to_slice(&tcb_info.fmspc, &mut fmspc)
            .map_err(|_| malformed("TCB info", "FMSPC is not 6 hex bytes"))?;

        let crls: [CertRevocationList<'static>; 2] = [
            OwnedCertRevocationList::from_der(&c.root_ca_crl)
                .map_err(|e| malformed("root CA CRL", format!("{e:?}")))?
                .into(),
            OwnedCertRevocationList::from_der(&c.pck_crl)
                .map_err(|e| malformed("PCK CRL", format!("{e:?}")))?
                .into(),
        ];
        // Freshness first, so that stale collateral is refused naming what expired.
        check_dates(&dated, now)?;
        // The root itself must not be revoked by its own CRL.
        if matches!(crls[0].find_serial(&root.serial), Ok(Some(_))) {
            return Err(VerifyError::BadChain {
                what: "trusted root",
                detail: "the root certificate is revoked by the root CA CRL".into(),
            });
        }

        // TCB info and QE identity: each signed (P-256, over its JSON) by a
        // certificate the root issues directly; the same checks for both,
        // and each signer's validity is kept with the verified collateral.
        let root_signed = |signer: &'static str,
                           chain: &[Vec<u8>],
                           chain_checked: bool,
                           document: &str,
                           body: &str,
                           signature: &[u8],
                           certificate: &str|
         -> Result<Dated, VerifyError> {
            if !chain_checked {
                let n = verify_chain(signer, chain, &self.root_der, &anchor, &crls, now)?;
                if n != 0 {
                    return Err(VerifyError::BadChain {
                        what: signer,
                        detail: "must be issued directly by the root CA".into(),
                    });
                }
            }
            let info = cert_info(signer, &chain[0])?;
            verify_p256(&info.spki_bits, body.as_bytes(), signature, document)?;
            Ok(Dated {
                what: format!("{certificate} ({})", info.subject),
                not_before: info.not_before,
                not_after: info.not_after,
            })
        };
        let tcb_chain = pem_certs("TCB info issuer chain", c.tcb_info_issuer_chain.as_bytes())?;
        dated.push(root_signed(
            "TCB info signer",
            &tcb_chain,
            false,
            "TCB info",
            &c.tcb_info,
            &c.tcb_info_signature,
            "TCB signing certificate",
        )?);
        let qe_chain = pem_certs(
            "QE identity issuer chain",
            c.qe_identity_issuer_chain.as_bytes(),
        )?;
        // Usually the very chain just verified: not verified twice.
        dated.push(root_signed(
            "QE identity signer",
            &qe_chain,
            qe_chain == tcb_chain,
            "QE identity",
            &c.qe_identity,
            &c.qe_identity_signature,
            "QE identity signing certificate",
        )?);

        let mut tcb_info = tcb_info;
        canonicalize_tcb_levels(&mut tcb_info);
        Ok(VerifiedCollateral {
            tcb_info,
            qe_identity,
            crls,
            dated,
            fmspc,
        })
    }

    fn parsed_pck(&self, cert_type: u16, data: &[u8]) -> Result<Arc<ParsedPck>, VerifyError> {
        let mut key_input = cert_type.to_le_bytes().to_vec();
        key_input.extend_from_slice(data);
        let key = sha256(&key_input);
        if let Some(p) = self
            .parsed_pck
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return Ok(p);
        }
        let chain = match cert_type {
            5 => pem_certs("PCK certificate chain", data)?,
            t => {
                return Err(malformed(
                    "quote",
                    format!(
                        "certification data type {t} (only 5, an embedded PCK chain, is supported)"
                    ),
                ))
            }
        };
        let p = Arc::new(parse_pck(chain)?);
        if let Ok(mut m) = self.parsed_pck.lock() {
            if m.len() >= MAX_CACHE {
                m.clear();
            }
            m.insert(key, p.clone());
        }
        Ok(p)
    }

    /// Verifies a raw DCAP quote at `now`, fetching collateral from the source.
    pub fn verify_quote(&self, raw: &[u8], now: u64) -> Result<Claims, VerifyError> {
        self.verify_quote_with(raw, None, now)
    }

    /// As [`Self::verify_quote`], with an optional PEM PCK chain supplied
    /// beside the quote (for quotes without an embedded chain).
    pub fn verify_quote_with(
        &self,
        raw: &[u8],
        pck_pem: Option<&[u8]>,
        now: u64,
    ) -> Result<Claims, VerifyError> {
        if raw.len() > MAX_EVIDENCE_DATA {
            return Err(VerifyError::TooLarge {
                what: "quote",
                size: raw.len(),
                limit: MAX_EVIDENCE_DATA,
            });
        }
        let quote = Quote::parse(raw).map_err(|e| malformed("quote", e))?;
        let h = &quote.header;
        let tee = match (h.tee_type, h.version) {
            (TEE_TYPE_SGX, 3) => TeeKind::Sgx,
            (TEE_TYPE_TDX, 4 | 5) => TeeKind::Tdx,
            (TEE_TYPE_SGX, v) => {
                return Err(malformed(
                    "quote",
                    format!("SGX quote version {v} (expected 3)"),
                ))
            }
            (TEE_TYPE_TDX, v) => {
                return Err(malformed(
                    "quote",
                    format!("TDX quote version {v} (expected 4 or 5)"),
                ))
            }
            (t, _) => return Err(malformed("quote", format!("unknown TEE type {t:#x}"))),
        };
        if h.qe_vendor_id != INTEL_QE_VENDOR_ID {
            return Err(malformed("quote", "unknown QE vendor ID"));
        }
        if h.attestation_key_type != ATTESTATION_KEY_ECDSA_P256 {
            return Err(malformed(
                "quote",
                format!(
                    "attestation key type {} (expected 2, ECDSA P-256)",
                    h.attestation_key_type
                ),
            ));
        }
        let signed_len = quote.signed_length();
        let signed = raw
            .get(..signed_len)
            .ok_or_else(|| malformed("quote", "shorter than its signed part"))?;
        check_auth_data_length(raw, signed_len, &quote.auth_data)?;
        let auth = quote.auth_data.clone().into_v3();

        // PCK chain: embedded in the quote, else supplied beside it.
        let pck = match (quote.inner_cert_type(), pck_pem) {
            (5, _) => self.parsed_pck(5, quote.inner_cert_data())?,
            (_, Some(pem)) => self.parsed_pck(5, pem)?,
            (t, None) => self.parsed_pck(t, quote.inner_cert_data())?,
        };

        let coll = self.source.get(
            &CollateralRequest {
                tee,
                fmspc: pck.fmspc,
                ca: pck.ca,
            },
            now,
        )?;
        let vc = self.verified_collateral(&coll, now)?;

        // PCK chain to the root, with both CRLs: once per (collateral, chain).
        let chain_hash = sha256(&pck.chain.concat());
        let key = (coll.hash, chain_hash);
        let known = self
            .verified_pck
            .lock()
            .map(|m| m.contains(&key))
            .unwrap_or(false);
        if known {
            check_dates(&pck.dated, now)?;
        } else {
            check_dates(&pck.dated, now)?;
            verify_chain(
                "PCK certificate",
                &pck.chain,
                &self.root_der,
                &self.anchor()?,
                &vc.crls,
                now,
            )?;
            self.bump(|s| s.pck_chains_verified += 1);
            if let Ok(mut m) = self.verified_pck.lock() {
                if m.len() >= MAX_CACHE {
                    m.clear();
                }
                m.insert(key);
            }
        }

        // QE report: signed by the PCK key, binds the attestation key.
        verify_p256(
            &pck.leaf_key,
            &auth.qe_report,
            &auth.qe_report_signature,
            "QE report",
        )?;
        let qe = QeReport::parse(&auth.qe_report);
        if auth.qe_auth_data.data.len() != 32 {
            return Err(malformed("quote", "QE authentication data is not 32 bytes"));
        }
        let mut bind = auth.ecdsa_attestation_key.to_vec();
        bind.extend_from_slice(&auth.qe_auth_data.data);
        if sha256(&bind)[..] != qe.report_data[..32] {
            return Err(rejected(
                "QE report does not bind the attestation key (hash mismatch)",
            ));
        }
        let qe_level = check_qe_identity(&qe, &vc.qe_identity, tee)?;

        // The quote itself, signed by the attestation key.
        let mut ak = vec![4u8];
        ak.extend_from_slice(&auth.ecdsa_attestation_key);
        verify_p256(&ak, signed, &auth.ecdsa_signature, "quote")?;

        // TCB level.
        if pck.fmspc != vc.fmspc {
            return Err(rejected(
                "FMSPC of the PCK certificate does not match the TCB info",
            ));
        }
        let (platform, current) = match_platform_tcb(&vc.tcb_info, &quote, tee, &pck)?;
        let platform_status =
            TcbStatusWithAdvisory::new(platform.tcb_status, platform.advisory_ids.clone());
        let qe_status = TcbStatusWithAdvisory::new(qe_level.0, qe_level.1);
        let mut fin = platform_status.merge(&qe_status);
        let current_status = current.as_ref().map(|l| {
            TcbStatusWithAdvisory::new(l.tcb_status, vec![])
                .merge(&TcbStatusWithAdvisory::new(qe_level.0, vec![]))
                .status
        });
        if fin.status == QvlStatus::Revoked || current_status == Some(QvlStatus::Revoked) {
            return Err(rejected("TCB status is Revoked"));
        }
        if let Some(cur) = current_status {
            fin.status = check_for_relaunch(fin.status, cur);
        }

        let mut claims = Claims::empty(tee);
        claims.tcb_status = map_status(fin.status)?;
        claims.advisory_ids = fin.advisory_ids;
        claims.platform_id = pck.fmspc.to_vec();
        claims.smt_enabled = pck.smt_enabled;
        claims.collateral_expiry = vc
            .dated
            .iter()
            .chain(pck.dated.iter())
            .map(|d| d.not_after)
            .min();
        fill_report_claims(&mut claims, &quote.report)?;
        Ok(claims)
    }
}

/// The unsigned length fields must describe the quote exactly (only zero
/// padding may follow), so that no byte of a quote can change unnoticed.
fn check_auth_data_length(
    raw: &[u8],
    signed_len: usize,
    auth: &dcap_qvl::quote::AuthData,
) -> Result<(), VerifyError> {
    use dcap_qvl::quote::AuthData;
    let field = raw
        .get(signed_len..signed_len + 4)
        .ok_or_else(|| malformed("quote", "no authentication data"))?;
    let declared = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
    let qe_part = |q: &[u8; 384], a: usize, c: usize| q.len() + 64 + 2 + a + 2 + 4 + c;
    let actual = match auth {
        AuthData::V3(a) => {
            64 + 64
                + qe_part(
                    &a.qe_report,
                    a.qe_auth_data.data.len(),
                    a.certification_data.body.data.len(),
                )
        }
        AuthData::V4(a) => {
            let inner = qe_part(
                &a.qe_report_data.qe_report,
                a.qe_report_data.qe_auth_data.data.len(),
                a.qe_report_data.certification_data.body.data.len(),
            );
            if a.certification_data.cert_type != 6 {
                return Err(malformed(
                    "quote",
                    format!(
                        "outer certification data type {} (expected 6, QE report data)",
                        a.certification_data.cert_type
                    ),
                ));
            }
            if a.certification_data.body.data.len() != inner {
                return Err(malformed(
                    "quote",
                    "QE certification data length does not match its content",
                ));
            }
            64 + 64 + 2 + 4 + inner
        }
    };
    if declared != actual {
        return Err(malformed(
            "quote",
            format!("authentication data length field says {declared}, content is {actual}"),
        ));
    }
    let end = signed_len + 4 + actual;
    if raw
        .get(end..)
        .is_none_or(|rest| rest.iter().any(|b| *b != 0))
    {
        return Err(malformed("quote", "unexpected bytes after the quote"));
    }
    Ok(())
}

fn parse_pck(chain: Vec<Vec<u8>>) -> Result<ParsedPck, VerifyError> {
    let leaf = chain
        .first()
        .ok_or_else(|| malformed("PCK certificate chain", "empty"))?;
    let ext = dcap_qvl::intel::parse_pck_extension(leaf)
        .map_err(|e| malformed("PCK certificate", format!("Intel SGX extension: {e}")))?;
    let li = cert_info("PCK certificate", leaf)?;
    // The issuer names the CA: "Intel SGX PCK Platform CA" or "... Processor CA".
    let ca = if li.issuer.contains("Platform") {
        PckCa::Platform
    } else {
        PckCa::Processor
    };
    let mut dated = Vec::new();
    for (i, c) in chain.iter().enumerate() {
        let ci = cert_info("PCK certificate chain", c)?;
        dated.push(Dated {
            what: if i == 0 {
                "PCK certificate".to_string()
            } else {
                format!("PCK chain certificate ({})", ci.subject)
            },
            not_before: ci.not_before,
            not_after: ci.not_after,
        });
    }
    Ok(ParsedPck {
        leaf_key: li.spki_bits,
        cpu_svn: ext.cpu_svn,
        pce_svn: ext.pce_svn,
        fmspc: ext.fmspc,
        ca,
        smt_enabled: ext.smt_enabled,
        chain,
        dated,
    })
}

/// The fields of the QE's SGX report we check (fixed layout, 384 bytes).
struct QeReport {
    misc_select: u32,
    attributes: [u8; 16],
    mr_signer: [u8; 32],
    isv_prod_id: u16,
    isv_svn: u16,
    report_data: [u8; 64],
}

impl QeReport {
    fn parse(r: &[u8; 384]) -> Self {
        let mut q = QeReport {
            misc_select: u32::from_le_bytes([r[16], r[17], r[18], r[19]]),
            attributes: [0; 16],
            mr_signer: [0; 32],
            isv_prod_id: u16::from_le_bytes([r[256], r[257]]),
            isv_svn: u16::from_le_bytes([r[258], r[259]]),
            report_data: [0; 64],
        };
        q.attributes.copy_from_slice(&r[48..64]);
        q.mr_signer.copy_from_slice(&r[128..160]);
        q.report_data.copy_from_slice(&r[320..384]);
        q
    }
}

const TCB_INFO_STATUSES: &[QvlStatus] = &[
    QvlStatus::UpToDate,
    QvlStatus::OutOfDate,
    QvlStatus::ConfigurationNeeded,
    QvlStatus::Revoked,
    QvlStatus::OutOfDateConfigurationNeeded,
    QvlStatus::SWHardeningNeeded,
    QvlStatus::ConfigurationAndSWHardeningNeeded,
];
const TDX_MODULE_STATUSES: &[QvlStatus] = &[
    QvlStatus::UpToDate,
    QvlStatus::OutOfDate,
    QvlStatus::Revoked,
];
const QE_IDENTITY_STATUSES: &[QvlStatus] = &[
    QvlStatus::UpToDate,
    QvlStatus::OutOfDate,
    QvlStatus::ConfigurationNeeded,
    QvlStatus::Revoked,
    QvlStatus::OutOfDateConfigurationNeeded,
];

fn ensure_status(s: QvlStatus, valid: &[QvlStatus], structure: &str) -> Result<(), VerifyError> {
    if valid.contains(&s) {
        Ok(())
    } else {
        Err(rejected(format!(
            "unrecognised TCB status {s} in {structure}"
        )))
    }
}

/// QE identity policy (as dcap-qvl): returns the QE TCB level's status.
fn check_qe_identity(
    qe: &QeReport,
    id: &QeIdentity,
    tee: TeeKind,
) -> Result<(QvlStatus, Vec<String>), VerifyError> {
    let (want_id, versions): (&str, &[u8]) = match tee {
        TeeKind::Tdx => ("TD_QE", &[2, 3]),
        _ => ("QE", &[2]),
    };
    if id.id != want_id || !versions.contains(&id.version) {
        return Err(rejected(format!(
            "QE identity is {} version {} but a {tee} quote needs {want_id}",
            id.id, id.version
        )));
    }
    if qe.mr_signer != id.mrsigner {
        return Err(rejected("QE MRSIGNER does not match the QE identity"));
    }
    if qe.attributes[0] & 0x02 != 0 {
        return Err(rejected("the quoting enclave is a debug enclave"));
    }
    if qe.isv_prod_id != id.isvprodid {
        return Err(rejected("QE ISVPRODID does not match the QE identity"));
    }
    let mask = u32::from_le_bytes(id.miscselect_mask);
    if qe.misc_select & mask != u32::from_le_bytes(id.miscselect) & mask {
        return Err(rejected("QE MISCSELECT does not match the QE identity"));
    }
    for i in 0..16 {
        if qe.attributes[i] & id.attributes_mask[i] != id.attributes[i] & id.attributes_mask[i] {
            return Err(rejected("QE ATTRIBUTES do not match the QE identity"));
        }
    }
    for l in &id.tcb_levels {
        if qe.isv_svn >= l.tcb.isvsvn {
            ensure_status(l.tcb_status, QE_IDENTITY_STATUSES, "QE identity")?;
            return Ok((l.tcb_status, l.advisory_ids.clone()));
        }
    }
    Err(rejected(format!(
        "QE ISVSVN {} is below every QE identity TCB level",
        qe.isv_svn
    )))
}

/// Intel QVL's order of TCB levels (see dcap-qvl `canonicalize_tcb_levels`).
fn canonicalize_tcb_levels(t: &mut TcbInfo) {
    let is_tdx = t.version >= 3 && t.id == "TDX";
    t.tcb_levels.sort_by(|a, b| {
        b.tcb
            .sgx_components
            .cmp(&a.tcb.sgx_components)
            .then_with(|| b.tcb.pce_svn.cmp(&a.tcb.pce_svn))
            .then_with(|| {
                if is_tdx {
                    b.tcb.tdx_components.cmp(&a.tcb.tdx_components)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
    });
}

fn find_tcb_level<'a>(
    t: &'a TcbInfo,
    pck: &ParsedPck,
    tee_tcb_svn: Option<&[u8; 16]>,
) -> Result<&'a TcbLevel, VerifyError> {
    for l in &t.tcb_levels {
        let short = l
            .shortfalls(&pck.cpu_svn, pck.pce_svn, tee_tcb_svn)
            .map_err(|e| malformed("TCB info", e))?;
        if short.is_empty() {
            ensure_status(l.tcb_status, TCB_INFO_STATUSES, "TCB info")?;
            return Ok(l);
        }
    }
    Err(rejected("No matching TCB level found"))
}

fn evaluate_tdx_tcb(
    t: &TcbInfo,
    pck: &ParsedPck,
    tee_tcb_svn: &[u8; 16],
) -> Result<TcbLevel, VerifyError> {
    let mut level = find_tcb_level(t, pck, Some(tee_tcb_svn))?.clone();
    let Some(identity) = t
        .tdx_module_identity(tee_tcb_svn)
        .map_err(|e| rejected(format!("TDX module: {e}")))?
    else {
        return Ok(level);
    };
    let module = identity
        .tcb_levels
        .iter()
        .find(|l| l.shortfall(tee_tcb_svn).is_none())
        .ok_or_else(|| {
            rejected(format!(
                "TDX module ISVSVN {} is below every TDX module TCB level",
                tee_tcb_svn[0]
            ))
        })?;
    ensure_status(
        module.tcb_status,
        TDX_MODULE_STATUSES,
        "TDX module identity",
    )?;
    let merged = TcbStatusWithAdvisory::new(level.tcb_status, level.advisory_ids.clone()).merge(
        &TcbStatusWithAdvisory::new(module.tcb_status, module.advisory_ids.clone()),
    );
    level.tcb_status = merged.status;
    level.advisory_ids = merged.advisory_ids;
    Ok(level)
}

fn decode_hex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], VerifyError> {
    let mut o = [0u8; N];
    hex::decode_to_slice(s, &mut o).map_err(|_| malformed("TCB info", format!("bad {what}")))?;
    Ok(o)
}

fn verify_tdx_module_identity(t: &TcbInfo, td: &TDReport10) -> Result<(), VerifyError> {
    let base = t
        .tdx_module
        .as_ref()
        .ok_or_else(|| malformed("TCB info", "TDX TCB info has no tdxModule"))?;
    let (mut signer, mut attrs, mut mask) = (
        decode_hex::<48>(&base.mrsigner, "tdxModule.mrsigner")?,
        decode_hex::<8>(&base.attributes, "tdxModule.attributes")?,
        decode_hex::<8>(&base.attributes_mask, "tdxModule.attributesMask")?,
    );
    if let Some(id) = t
        .tdx_module_identity(&td.tee_tcb_svn)
        .map_err(|e| rejected(format!("TDX module: {e}")))?
    {
        signer = decode_hex::<48>(&id.mrsigner, "tdxModuleIdentity.mrsigner")?;
        attrs = decode_hex::<8>(&id.attributes, "tdxModuleIdentity.attributes")?;
        mask = decode_hex::<8>(&id.attributes_mask, "tdxModuleIdentity.attributesMask")?;
    }
    if td.mr_signer_seam != signer {
        return Err(rejected("TDX module MRSIGNER does not match the TCB info"));
    }
    for i in 0..8 {
        let a = td.seam_attributes[i];
        if a & mask[i] != attrs[i] & mask[i] || a & !mask[i] != 0 {
            return Err(rejected(
                "TDX module SEAMATTRIBUTES do not match the TCB info",
            ));
        }
    }
    Ok(())
}

fn match_platform_tcb(
    t: &TcbInfo,
    quote: &Quote,
    tee: TeeKind,
    pck: &ParsedPck,
) -> Result<(TcbLevel, Option<TcbLevel>), VerifyError> {
    match tee {
        TeeKind::Tdx if t.version < 3 || t.id != "TDX" => {
            return Err(rejected(
                "TDX quote with non-TDX TCB info in the collateral",
            ))
        }
        TeeKind::Sgx if t.version < 2 || t.id != "SGX" => {
            return Err(rejected(
                "SGX quote with non-SGX TCB info in the collateral",
            ))
        }
        _ => {}
    }
    if tee == TeeKind::Sgx {
        return Ok((find_tcb_level(t, pck, None)?.clone(), None));
    }
    let td = quote
        .report
        .as_td10()
        .ok_or_else(|| malformed("quote", "TDX quote without a TD report"))?;
    let level = evaluate_tdx_tcb(t, pck, &td.tee_tcb_svn)?;
    verify_tdx_module_identity(t, td)?;
    let current = quote
        .report
        .as_td15()
        .map(|td15| evaluate_tdx_tcb(t, pck, &td15.tee_tcb_svn2))
        .transpose()?;
    Ok((level, current))
}

/// Intel QVL's `checkForRelaunch` (see dcap-qvl `TcbStatus::check_for_relaunch`).
fn check_for_relaunch(launch: QvlStatus, current: QvlStatus) -> QvlStatus {
    use QvlStatus::*;
    let cfg = |s| {
        matches!(
            s,
            ConfigurationNeeded
                | OutOfDateConfigurationNeeded
                | ConfigurationAndSWHardeningNeeded
                | TDRelaunchAdvisedConfigurationNeeded
        )
    };
    match (launch, current) {
        (
            OutOfDate | OutOfDateConfigurationNeeded,
            UpToDate | SWHardeningNeeded | ConfigurationNeeded | ConfigurationAndSWHardeningNeeded,
        ) => {
            if cfg(launch) || cfg(current) {
                TDRelaunchAdvisedConfigurationNeeded
            } else {
                TDRelaunchAdvised
            }
        }
        _ => launch,
    }
}

fn map_status(s: QvlStatus) -> Result<TcbStatus, VerifyError> {
    Ok(match s {
        QvlStatus::UpToDate => TcbStatus::UpToDate,
        QvlStatus::SWHardeningNeeded => TcbStatus::SWHardeningNeeded,
        QvlStatus::ConfigurationNeeded => TcbStatus::ConfigurationNeeded,
        QvlStatus::ConfigurationAndSWHardeningNeeded => {
            TcbStatus::ConfigurationAndSWHardeningNeeded
        }
        QvlStatus::OutOfDate => TcbStatus::OutOfDate,
        QvlStatus::OutOfDateConfigurationNeeded => TcbStatus::OutOfDateConfigurationNeeded,
        QvlStatus::TDRelaunchAdvised => TcbStatus::TDRelaunchAdvised,
        QvlStatus::TDRelaunchAdvisedConfigurationNeeded => {
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded
        }
        QvlStatus::Revoked => return Err(rejected("TCB status is Revoked")),
    })
}

/// Fills measurement claims from the report body; refuses TD attributes
/// that no policy may accept (migratable, reserved bits, SERVTD_EXT on a
/// TDX 1.0 body), as dcap-qvl does.
fn fill_report_claims(c: &mut Claims, r: &Report) -> Result<(), VerifyError> {
    if let Some(e) = r.as_sgx() {
        c.mrenclave = Some(e.mr_enclave);
        c.mrsigner = Some(e.mr_signer);
        c.isv_prod_id = Some(e.isv_prod_id);
        c.svn = Some(u32::from(e.isv_svn));
        c.debug = e.attributes[0] & 0x02 != 0;
        c.report_data = e.report_data;
        return Ok(());
    }
    let td = r
        .as_td10()
        .ok_or_else(|| malformed("quote", "unknown report body"))?;
    let a = TDAttributes::parse(td.td_attributes).map_err(|e| malformed("TD attributes", e))?;
    if a.reserved != 0 {
        return Err(rejected("reserved bits in TD attributes are set"));
    }
    if a.sec.migratable {
        return Err(rejected("TD migration is enabled"));
    }
    let td15 = r.as_td15();
    if a.sec.servtd_ext && td15.is_none() {
        return Err(rejected("SERVTD_EXT is set on a TDX 1.0 report"));
    }
    c.mrtd = Some(td.mr_td);
    c.rtmr = Some([td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3]);
    c.report_data = td.report_data;
    // TUD bit 0 is DEBUG; bits 4..6 enable profiling: the host can observe
    // the TD either way, so both count as debug.
    c.debug = a.tud != 0;
    c.sept_ve_disabled = Some(a.sec.sept_ve_disable);
    if let Some(t) = td15 {
        c.mr_service_td = Some(t.mr_service_td);
        c.service_td = t.mr_service_td != [0u8; 48] || a.sec.servtd_ext;
    }
    Ok(())
}

/// `Verifier` for SGX or TDX evidence, sharing one [`DcapVerifier`] (and
/// its caches).
pub struct DcapKindVerifier {
    pub(crate) kind: TeeKind,
    pub(crate) inner: Arc<DcapVerifier>,
}

impl crate::Verifier for DcapKindVerifier {
    fn kind(&self) -> TeeKind {
        self.kind
    }

    fn verify(&self, evidence: &Evidence, now: u64) -> Result<Claims, VerifyError> {
        evidence.check_limits()?;
        let c = self
            .inner
            .verify_quote_with(&evidence.data, evidence.certs.as_deref(), now)?;
        if c.tee != self.kind {
            return Err(malformed(
                "evidence",
                format!("kind says {} but the quote is a {} quote", self.kind, c.tee),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_root_is_intels() {
        let fp = hex::encode_upper(sha256(INTEL_ROOT_CA_DER));
        assert_eq!(fp, INTEL_ROOT_CA_SHA256);
    }

    #[test]
    fn relaunch_mirrors_qvl() {
        use QvlStatus::*;
        assert_eq!(check_for_relaunch(OutOfDate, UpToDate), TDRelaunchAdvised);
        assert_eq!(
            check_for_relaunch(OutOfDate, ConfigurationNeeded),
            TDRelaunchAdvisedConfigurationNeeded
        );
        assert_eq!(check_for_relaunch(OutOfDate, OutOfDate), OutOfDate);
        assert_eq!(check_for_relaunch(UpToDate, OutOfDate), UpToDate);
    }
}
