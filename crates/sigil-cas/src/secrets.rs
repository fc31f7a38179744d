//! Secret material: generation (once), keeping across updates, and
//! rendering into placeholders.
//!
//! Keys are generated with ring (ECDSA P-256/P-384, Ed25519, PKCS#8), except
//! RSA keys, which ring cannot generate: those come from [`crate::rsa_keygen`]
//! and are checked by ring at once. Certificates are made by rcgen with its
//! ring backend, so every signature is ring's.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};
use sigil_client::identity::pem_encode;
use sigil_session::placeholder::Format;
use sigil_session::{KeyAlgorithm, Secret, SecretKind, Session};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::seal::MasterKey;
use crate::CasError;

/// Characters of generated `ascii` secrets (printable, no quoting trouble).
const ASCII_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+=~";

/// Default validity of an `x509-ca` certificate: 10 years.
const DEFAULT_CA_VALID_FOR_SECS: u64 = 10 * 365 * 86_400;

/// The material of one secret, sealed as JSON in the store.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Material {
    /// Identifies name-independent kind parameters; equal ids mean "keep".
    pub kind_id: String,
    /// Kind spelling (`ascii`, `x509`…).
    pub kind: String,
    /// ascii/binary/explicit: the value; key kinds: PKCS#8 DER of the key.
    pub value: Vec<u8>,
    /// x509 kinds: certificate DER.
    pub cert: Option<Vec<u8>>,
    /// x509: issuer certificates DER, nearest first.
    pub chain: Vec<Vec<u8>>,
    /// Key algorithm for key kinds.
    pub algorithm: Option<String>,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("kind", &self.kind)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// The signature algorithm certificates signed by a key of `a` use.
fn sign_alg(a: KeyAlgorithm) -> &'static rcgen::SignatureAlgorithm {
    match a {
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        // PKCS#1 v1.5 with SHA-256: what every TLS stack and webpki accept.
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => &rcgen::PKCS_RSA_SHA256,
    }
}

fn kind_id(kind: &SecretKind) -> String {
    match kind {
        SecretKind::Ascii { size } => format!("ascii:{size}"),
        SecretKind::Binary { size } => format!("binary:{size}"),
        SecretKind::Explicit { value } => format!(
            "explicit:{}",
            hex::encode(ring::digest::digest(&ring::digest::SHA256, value.expose()))
        ),
        SecretKind::PrivateKey {
            algorithm,
            value: None,
        } => format!("private-key:{}", algorithm.as_str()),
        // A given key: a different key is a different secret.
        SecretKind::PrivateKey {
            algorithm,
            value: Some(v),
        } => format!(
            "private-key:{}:given:{}",
            algorithm.as_str(),
            hex::encode(ring::digest::digest(&ring::digest::SHA256, v.expose()))
        ),
        SecretKind::X509Ca {
            common_name,
            valid_for,
            algorithm,
        } => format!(
            "x509-ca:{}:{:?}:{:?}",
            algorithm.as_str(),
            common_name,
            valid_for.map(|d| d.as_secs())
        ),
        // The key is kept; the certificate is reissued on every update.
        SecretKind::X509 { algorithm, .. } => format!("x509:{}", algorithm.as_str()),
        SecretKind::Imported => "imported".into(),
    }
}

/// CAS-specific checks on top of the session language's validation: a
/// given private key must be one ring accepts as the declared algorithm
/// (the parser checks this too; sessions reach the CAS as YAML, but the
/// check is cheap and keeps this module safe on its own).
pub fn validate(session: &Session) -> Result<(), CasError> {
    let mut problems = Vec::new();
    for s in &session.secrets {
        if let SecretKind::PrivateKey {
            algorithm,
            value: Some(v),
        } = &s.kind
        {
            // Ring's verdict is kept with the value: no second parse.
            match v.private_key_algorithm() {
                Ok(a) if a == *algorithm => {}
                Ok(a) => problems.push(format!(
                    "secrets.{}: the key in `value` is {}, not {}",
                    s.name,
                    a.as_str(),
                    algorithm.as_str()
                )),
                Err(e) => problems.push(format!("secrets.{}.value: {e}", s.name)),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CasError::BadRequest(problems.join("; ")))
    }
}

/// Most RSA keys one session create or update may make the CAS generate.
/// RSA generation takes up to seconds of CPU per key, and any identity may
/// create a top-level session: without a cap, one 1 MiB session asking for
/// thousands of `rsa-3072` keys would occupy the CAS for hours.
pub const MAX_RSA_KEYGEN_PER_CHANGE: usize = 32;

fn is_rsa(a: KeyAlgorithm) -> bool {
    matches!(a, KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072)
}

/// Refuses, before any key is generated, a change that needs more than
/// [`MAX_RSA_KEYGEN_PER_CHANGE`] new RSA keys (secrets whose material is
/// kept from `old` need none).
fn check_rsa_generation(
    session: &Session,
    old: &BTreeMap<String, Material>,
) -> Result<(), CasError> {
    // A reissued certificate keeps its key: only missing or changed
    // secrets need a new one.
    let needed = session
        .secrets
        .iter()
        .filter(|s| {
            let rsa = match &s.kind {
                SecretKind::PrivateKey {
                    algorithm,
                    value: None,
                } => is_rsa(*algorithm),
                SecretKind::X509Ca { algorithm, .. } | SecretKind::X509 { algorithm, .. } => {
                    is_rsa(*algorithm)
                }
                _ => false,
            };
            rsa && old
                .get(&s.name)
                .is_none_or(|m| m.kind_id != kind_id(&s.kind))
        })
        .count();
    if needed > MAX_RSA_KEYGEN_PER_CHANGE {
        return Err(CasError::BadRequest(format!(
            "session `{}` needs {needed} new RSA keys; the CAS generates at most {MAX_RSA_KEYGEN_PER_CHANGE} per create or update (add them over several updates, or use ecdsa-p256/ed25519)",
            session.name.as_str()
        )));
    }
    Ok(())
}

/// Random printable string of `n` characters (rejection sampling, no bias).
fn random_ascii(key: &MasterKey, n: usize) -> Result<Vec<u8>, CasError> {
    let mut out = Vec::with_capacity(n);
    let limit = 256 - (256 % ASCII_ALPHABET.len());
    let mut buf = [0u8; 64];
    while out.len() < n {
        key.random(&mut buf)?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < n {
                out.push(ASCII_ALPHABET[b as usize % ASCII_ALPHABET.len()]);
            }
        }
    }
    Ok(out)
}

fn gen_key(a: KeyAlgorithm) -> Result<rcgen::KeyPair, CasError> {
    let rsa_bits = match a {
        KeyAlgorithm::Rsa2048 => 2048,
        KeyAlgorithm::Rsa3072 => 3072,
        _ => {
            return rcgen::KeyPair::generate_for(sign_alg(a))
                .map_err(|e| CasError::Internal(format!("key generation failed: {e}")))
        }
    };
    let der = crate::rsa_keygen::generate(rsa_bits)?;
    // rcgen's ring backend parses it again (ring::RsaKeyPair) and signs with it.
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(der.as_slice()),
        sign_alg(a),
    )
    .map_err(|e| CasError::Internal(format!("generated RSA key unusable: {e}")))
}

fn load_key(m: &Material, a: KeyAlgorithm) -> Result<rcgen::KeyPair, CasError> {
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(m.value.as_slice()),
        sign_alg(a),
    )
    .map_err(|e| CasError::Integrity(format!("stored key is unusable: {e}")))
}

fn ca_params(cn: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn validity(p: &mut rcgen::CertificateParams, secs: u64) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::seconds(secs.min(100 * 365 * 86_400) as i64);
}

fn random_serial(key: &MasterKey) -> Result<rcgen::SerialNumber, CasError> {
    let mut s = [0u8; 16];
    key.random(&mut s)?;
    s[0] &= 0x7f;
    Ok(rcgen::SerialNumber::from_slice(&s))
}

fn ca_cn(session: &Session, s: &Secret, cn: &Option<String>) -> String {
    cn.clone()
        .unwrap_or_else(|| format!("{} {}", session.name.as_str(), s.name))
}

/// Looks up secret material by name while generating (own, already made, or imported).
pub type Lookup<'a> = dyn Fn(&str) -> Result<Option<Material>, CasError> + 'a;

/// Produces the material of every non-imported secret of `session`: keeps
/// `old` material whose kind is unchanged, generates the rest, reissues
/// x509 certificates. `imported` resolves issuers that are imported secrets.
pub fn materialize(
    key: &MasterKey,
    session: &Session,
    old: &BTreeMap<String, Material>,
    imported: &Lookup<'_>,
    reissue: bool,
) -> Result<BTreeMap<String, Material>, CasError> {
    validate(session)?;
    check_rsa_generation(session, old)?;
    let mut out: BTreeMap<String, Material> = BTreeMap::new();
    // Order: plain secrets and CAs first, then leaf certificates (their
    // issuers must exist).
    let mut leaves = Vec::new();
    for s in &session.secrets {
        let id = kind_id(&s.kind);
        if matches!(s.kind, SecretKind::Imported) {
            continue;
        }
        if matches!(s.kind, SecretKind::X509 { .. }) {
            leaves.push(s);
            continue;
        }
        if let Some(m) = old.get(&s.name).filter(|m| m.kind_id == id) {
            out.insert(s.name.clone(), m.clone());
            continue;
        }
        let m = match &s.kind {
            SecretKind::Ascii { size } => Material::simple(id, "ascii", random_ascii(key, *size)?),
            SecretKind::Binary { size } => {
                let mut v = vec![0u8; *size];
                key.random(&mut v)?;
                Material::simple(id, "binary", v)
            }
            SecretKind::Explicit { value } => {
                Material::simple(id, "explicit", value.expose().to_vec())
            }
            SecretKind::PrivateKey { algorithm, value } => {
                let der = match value {
                    // Checked by ring in `validate` above.
                    Some(v) => v.expose().to_vec(),
                    None => gen_key(*algorithm)?.serialize_der(),
                };
                let mut m = Material::simple(id, "private-key", der);
                m.algorithm = Some(algorithm.as_str().into());
                m
            }
            SecretKind::X509Ca {
                common_name,
                valid_for,
                algorithm,
            } => {
                let k = gen_key(*algorithm)?;
                let mut p = ca_params(&ca_cn(session, s, common_name));
                validity(
                    &mut p,
                    valid_for
                        .map(|d| d.as_secs())
                        .unwrap_or(DEFAULT_CA_VALID_FOR_SECS),
                );
                p.serial_number = Some(random_serial(key)?);
                let cert = p
                    .self_signed(&k)
                    .map_err(|e| CasError::Internal(format!("CA certificate: {e}")))?;
                Material {
                    kind_id: id,
                    kind: "x509-ca".into(),
                    value: k.serialize_der(),
                    cert: Some(cert.der().to_vec()),
                    chain: vec![],
                    algorithm: Some(algorithm.as_str().into()),
                }
            }
            SecretKind::X509 { .. } | SecretKind::Imported => continue,
        };
        out.insert(s.name.clone(), m);
    }
    for s in leaves {
        let SecretKind::X509 {
            issuer,
            common_name,
            dns,
            valid_for,
            algorithm,
        } = &s.kind
        else {
            continue;
        };
        let id = kind_id(&s.kind);
        let kept = old.get(&s.name).filter(|m| m.kind_id == id);
        if let (Some(m), false) = (kept, reissue) {
            out.insert(s.name.clone(), m.clone());
            continue;
        }
        let issuer_m = match out.get(issuer) {
            Some(m) => m.clone(),
            None => imported(issuer)?.ok_or_else(|| {
                CasError::BadRequest(format!(
                    "secrets.{}: issuer `{issuer}` is not available (own x509-ca secret, or an imported one exported to this session)",
                    s.name
                ))
            })?,
        };
        let (Some(issuer_cert), Some(issuer_alg)) = (&issuer_m.cert, &issuer_m.algorithm) else {
            return Err(CasError::BadRequest(format!(
                "secrets.{}: issuer `{issuer}` is not an x509-ca secret",
                s.name
            )));
        };
        let issuer_alg = KeyAlgorithm::parse(issuer_alg)
            .ok_or_else(|| CasError::Integrity("stored issuer algorithm unknown".into()))?;
        let issuer_key = load_key(&issuer_m, issuer_alg)?;
        let issuer_cn = ca_subject_cn(issuer_cert)?;
        // rcgen signs with the issuer's DN and key; rebuild them.
        let issuer_obj = ca_params(&issuer_cn)
            .self_signed(&issuer_key)
            .map_err(|e| CasError::Internal(format!("issuer: {e}")))?;
        let leaf_key = match kept {
            Some(m) => load_key(m, *algorithm)?,
            None => gen_key(*algorithm)?,
        };
        let mut p = rcgen::CertificateParams::new(dns.clone())
            .map_err(|e| CasError::BadRequest(format!("secrets.{}: {e}", s.name)))?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, common_name.as_str());
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(random_serial(key)?);
        validity(&mut p, valid_for.as_secs());
        let cert = p
            .signed_by(&leaf_key, &issuer_obj, &issuer_key)
            .map_err(|e| CasError::Internal(format!("certificate: {e}")))?;
        let mut chain = vec![issuer_cert.clone()];
        chain.extend(issuer_m.chain.iter().cloned());
        out.insert(
            s.name.clone(),
            Material {
                kind_id: id,
                kind: "x509".into(),
                value: leaf_key.serialize_der(),
                cert: Some(cert.der().to_vec()),
                chain,
                algorithm: Some(algorithm.as_str().into()),
            },
        );
    }
    Ok(out)
}

/// The subject common name of a DER certificate we issued.
fn ca_subject_cn(der: &[u8]) -> Result<String, CasError> {
    let (_, c) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| CasError::Integrity("stored CA certificate does not parse".into()))?;
    let cn = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok(cn)
}

impl Material {
    fn simple(kind_id: String, kind: &str, value: Vec<u8>) -> Material {
        Material {
            kind_id,
            kind: kind.into(),
            value,
            cert: None,
            chain: vec![],
            algorithm: None,
        }
    }

    /// Seals for storage under (session, secret).
    pub fn seal(&self, key: &MasterKey, session: &str, secret: &str) -> Result<Vec<u8>, CasError> {
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(self).map_err(|e| CasError::Internal(e.to_string()))?,
        );
        key.seal(&[b"secret", session.as_bytes(), secret.as_bytes()], &json)
    }

    /// Opens a sealed material of (session, secret).
    pub fn open(
        key: &MasterKey,
        session: &str,
        secret: &str,
        blob: &[u8],
    ) -> Result<Material, CasError> {
        let json = key.open(&[b"secret", session.as_bytes(), secret.as_bytes()], blob)?;
        serde_json::from_slice(&json).map_err(|_| {
            CasError::Integrity(format!("secret `{secret}` of `{session}` is malformed"))
        })
    }

    fn is_key_kind(&self) -> bool {
        matches!(self.kind.as_str(), "private-key" | "x509" | "x509-ca")
    }

    fn raw(&self) -> &[u8] {
        match &self.cert {
            Some(c) => c,
            None => &self.value,
        }
    }

    /// Renders the secret in a format. `in_file` allows raw bytes (`der`).
    pub fn render(&self, name: &str, format: Format, in_file: bool) -> Result<Vec<u8>, CasError> {
        let no = |what: &str| {
            Err(CasError::BadRequest(format!(
                "secret `{name}` ({}) cannot be rendered as `{what}`",
                self.kind
            )))
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(match format {
            Format::Default => match self.kind.as_str() {
                "binary" => hex::encode(&self.value).into_bytes(),
                "private-key" => pem_encode("PRIVATE KEY", &self.value).into_bytes(),
                "x509" | "x509-ca" => pem_encode("CERTIFICATE", self.raw()).into_bytes(),
                _ => self.value.clone(),
            },
            Format::Hex => hex::encode(self.raw()).into_bytes(),
            Format::Base64 => b64.encode(self.raw()).into_bytes(),
            Format::Der => {
                if !in_file {
                    return Err(CasError::BadRequest(format!(
                        "secret `{name}`: format `der` yields raw bytes and is only allowed in injection files"
                    )));
                }
                self.raw().to_vec()
            }
            Format::Pem => match self.kind.as_str() {
                "private-key" => pem_encode("PRIVATE KEY", &self.value).into_bytes(),
                "x509" | "x509-ca" => pem_encode("CERTIFICATE", self.raw()).into_bytes(),
                _ => return no("pem"),
            },
            Format::Crt => match &self.cert {
                Some(c) => pem_encode("CERTIFICATE", c).into_bytes(),
                None => return no("crt"),
            },
            Format::Chain => match &self.cert {
                Some(c) => {
                    let mut s = pem_encode("CERTIFICATE", c);
                    for i in &self.chain {
                        s.push_str(&pem_encode("CERTIFICATE", i));
                    }
                    s.into_bytes()
                }
                None => return no("chain"),
            },
            Format::PrivateKey => {
                if self.is_key_kind() {
                    pem_encode("PRIVATE KEY", &self.value).into_bytes()
                } else {
                    return no("privatekey");
                }
            }
        })
    }
}
