//! Private keys given in a session (`kind: private-key` with a `value`).
//!
//! The value is PEM text (`PRIVATE KEY` = PKCS#8, `RSA PRIVATE KEY` =
//! PKCS#1, `EC PRIVATE KEY` = SEC1) or DER in any of those three forms. It is
//! normalised to PKCS#8 DER (PKCS#1 and SEC1 are only wrapped in a PKCS#8
//! envelope, byte for byte) and then parsed by ring, which checks that the
//! key is well-formed and consistent; the algorithm is what ring accepted it
//! as. Nothing here does any cryptography itself.

use base64::Engine;
use zeroize::Zeroizing;

use crate::model::KeyAlgorithm;

/// Why a private-key value was refused. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

fn err(s: impl Into<String>) -> KeyError {
    KeyError(s.into())
}

// DER of the AlgorithmIdentifier members used to wrap PKCS#1 and SEC1 keys.
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
const OID_EC_P256: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // prime256v1
];
const OID_EC_P384: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
    0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, // secp384r1
];

/// Appends a DER tag and definite length.
fn der_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// `PrivateKeyInfo { version 0, algorithm, privateKey OCTET STRING }`.
fn wrap_pkcs8(alg_id: &[u8], inner: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(Vec::with_capacity(inner.len() + 32));
    body.extend_from_slice(&[0x02, 0x01, 0x00]);
    der_header(&mut body, 0x30, alg_id.len());
    body.extend_from_slice(alg_id);
    der_header(&mut body, 0x04, inner.len());
    body.extend_from_slice(inner);
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 8));
    der_header(&mut out, 0x30, body.len());
    out.extend_from_slice(&body);
    out
}

thread_local! {
    static RING_CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times [`pkcs8_algorithm`] ran on this thread: lets tests prove
/// that reading a session checks each given key once. Not for production
/// use.
#[doc(hidden)]
pub fn ring_key_checks_on_this_thread() -> u64 {
    RING_CHECKS.with(|c| c.get())
}

/// The algorithm of a PKCS#8 DER private key, as ring parses it. RSA keys
/// must have a 2048- or 3072-bit modulus.
pub fn pkcs8_algorithm(der: &[u8]) -> Result<KeyAlgorithm, KeyError> {
    RING_CHECKS.with(|c| c.set(c.get() + 1));
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    // The first rejection that is neither "wrong algorithm" nor "does not
    // parse" says what is wrong with a key of the right shape.
    let mut why: Option<String> = None;
    let mut garbled = false;
    let mut note = |what: &str, e: ring::error::KeyRejected| {
        let e = e.to_string();
        match e.as_str() {
            "WrongAlgorithm" => {}
            "InvalidEncoding" => garbled = true,
            _ if why.is_none() => {
                why = Some(format!("{what} key rejected by ring: {}", explain(&e)))
            }
            _ => {}
        }
    };
    match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng) {
        Ok(_) => return Ok(KeyAlgorithm::EcdsaP256),
        Err(e) => note("ECDSA P-256", e),
    }
    match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der, &rng) {
        Ok(_) => return Ok(KeyAlgorithm::EcdsaP384),
        Err(e) => note("ECDSA P-384", e),
    }
    match Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        Ok(_) => return Ok(KeyAlgorithm::Ed25519),
        Err(e) => note("Ed25519", e),
    }
    match RsaKeyPair::from_pkcs8(der) {
        Ok(kp) => {
            return match rsa_modulus_bits(&kp) {
                2048 => Ok(KeyAlgorithm::Rsa2048),
                3072 => Ok(KeyAlgorithm::Rsa3072),
                n => Err(err(format!(
                    "RSA key with a {n}-bit modulus; only 2048 and 3072 bits are supported"
                ))),
            }
        }
        Err(e) => note("RSA", e),
    }
    Err(err(match why {
        Some(w) => w,
        None if garbled => "not a well-formed private key (the PKCS#8 DER does not parse)".into(),
        None => "not a private key of a supported algorithm (ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072)".into(),
    }))
}

/// ring's rejection reasons, in words.
fn explain(e: &str) -> &str {
    match e {
        "TooSmall" => "too small (RSA keys must have 2048 or 3072 bits)",
        "TooLarge" => "too large (RSA keys must have 2048 or 3072 bits)",
        "InconsistentComponents" => "its components are inconsistent",
        "PublicKeyIsMissing" => "the public key is missing (ring requires it inside the key)",
        "VersionNotSupported" => "unsupported PKCS#8 version",
        "InvalidComponent" => "a component is out of range",
        other => other,
    }
}

/// Exact bit length of an RSA key pair's modulus.
pub fn rsa_modulus_bits(kp: &ring::rsa::KeyPair) -> usize {
    let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public());
    let n: Vec<u8> = c.n.into_iter().skip_while(|b| *b == 0).collect();
    match n.first() {
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// Decodes one PEM block: (label, DER). Text outside the block is ignored
/// (RFC 7468 allows explanatory text); encrypted keys are refused.
fn pem_decode(text: &str) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let mut lines = text.lines().map(str::trim);
    let label = loop {
        let Some(l) = lines.next() else {
            return Err(err(
                "value is not PEM (no `-----BEGIN …-----` line) nor DER",
            ));
        };
        if let Some(rest) = l.strip_prefix("-----BEGIN ") {
            break rest
                .strip_suffix("-----")
                .ok_or_else(|| err("malformed PEM `-----BEGIN` line"))?
                .to_string();
        }
    };
    let end = format!("-----END {label}-----");
    let mut b64 = Zeroizing::new(String::new());
    let mut ended = false;
    for l in lines.by_ref() {
        if l == end {
            ended = true;
            break;
        }
        if l.contains(':') {
            return Err(err(
                "PEM headers (an encrypted key?) are not supported: give the key unencrypted",
            ));
        }
        b64.push_str(l);
    }
    if !ended {
        return Err(err(format!(
            "PEM block has no `-----END {label}-----` line"
        )));
    }
    if lines.any(|l| l.starts_with("-----BEGIN ")) {
        return Err(err(
            "value holds more than one PEM block; give exactly one key",
        ));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| err(format!("PEM block `{label}` is not valid base64")))?;
    Ok((label, Zeroizing::new(der)))
}

/// Normalises a private-key value (PEM text or DER; PKCS#8, PKCS#1 RSA or
/// SEC1 EC) to PKCS#8 DER and returns it with the algorithm ring parsed it as.
pub fn normalize_private_key(value: &[u8]) -> Result<(Zeroizing<Vec<u8>>, KeyAlgorithm), KeyError> {
    let trimmed = value.trim_ascii_start();
    let (label, der) = if trimmed.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(value).map_err(|_| err("PEM value is not UTF-8"))?;
        let (label, der) = pem_decode(text)?;
        (Some(label), der)
    } else {
        (None, Zeroizing::new(value.to_vec()))
    };
    let candidates: Vec<Zeroizing<Vec<u8>>> = match label.as_deref() {
        Some("PRIVATE KEY") => vec![der],
        Some("RSA PRIVATE KEY") => vec![wrap_pkcs8(OID_RSA_ENCRYPTION, &der)],
        Some("EC PRIVATE KEY") => {
            vec![wrap_pkcs8(OID_EC_P256, &der), wrap_pkcs8(OID_EC_P384, &der)]
        }
        Some("ENCRYPTED PRIVATE KEY") => {
            return Err(err(
                "encrypted private keys are not supported: give the key unencrypted",
            ))
        }
        Some(other) => {
            return Err(err(format!(
                "PEM block is `{}`, expected `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`",
                crate::yaml::truncate(other)
            )))
        }
        // DER: PKCS#8 first, then the two unwrapped forms.
        None => vec![
            wrap_pkcs8(OID_RSA_ENCRYPTION, &der),
            wrap_pkcs8(OID_EC_P256, &der),
            wrap_pkcs8(OID_EC_P384, &der),
            der,
        ],
    };
    let mut first_err = None;
    // For DER the plain PKCS#8 candidate is last in the list but its error
    // is the most telling; keep the PKCS#8 attempt's error when there is one.
    let n = candidates.len();
    for (i, c) in candidates.into_iter().enumerate() {
        match pkcs8_algorithm(&c) {
            Ok(a) => return Ok((c, a)),
            Err(e) => {
                if first_err.is_none() || (label.is_none() && i == n - 1) {
                    first_err = Some(e);
                }
            }
        }
    }
    Err(first_err.unwrap_or_else(|| err("not a private key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p256_pkcs8() -> Vec<u8> {
        let rng = ring::rand::SystemRandom::new();
        ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .unwrap()
        .as_ref()
        .to_vec()
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let mut s = format!("-----BEGIN {label}-----\n");
        for c in b.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(c).unwrap());
            s.push('\n');
        }
        s.push_str(&format!("-----END {label}-----\n"));
        s
    }

    #[test]
    fn pkcs8_pem_and_der() {
        let der = p256_pkcs8();
        let (k, a) = normalize_private_key(pem("PRIVATE KEY", &der).as_bytes()).unwrap();
        assert_eq!(a, KeyAlgorithm::EcdsaP256);
        assert_eq!(&k[..], &der[..]);
        let (k, a) = normalize_private_key(&der).unwrap();
        assert_eq!(a, KeyAlgorithm::EcdsaP256);
        assert_eq!(&k[..], &der[..]);
    }

    #[test]
    fn ed25519_and_p384() {
        let rng = ring::rand::SystemRandom::new();
        let ed = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        assert_eq!(pkcs8_algorithm(ed.as_ref()).unwrap(), KeyAlgorithm::Ed25519);
        let p384 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        assert_eq!(
            pkcs8_algorithm(p384.as_ref()).unwrap(),
            KeyAlgorithm::EcdsaP384
        );
    }

    #[test]
    fn sec1_is_wrapped() {
        // ring's P-256 PKCS#8 holds a SEC1 ECPrivateKey in its last OCTET STRING.
        let der = p256_pkcs8();
        // 0x30 0x81 len, version (3 bytes), alg id (0x30 0x13 …: 21 bytes), 0x04 len.
        assert_eq!(&der[..2], &[0x30, 0x81]);
        let inner_start = 3 + 3 + 21;
        assert_eq!(der[inner_start], 0x04);
        let sec1 = &der[inner_start + 2..];
        let (k, a) = normalize_private_key(pem("EC PRIVATE KEY", sec1).as_bytes()).unwrap();
        assert_eq!(a, KeyAlgorithm::EcdsaP256);
        assert_eq!(&k[..], &der[..]);
    }

    #[test]
    fn hostile_values() {
        let der = p256_pkcs8();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "well-formed"),
            (b"hello".to_vec(), "well-formed"),
            (b"-----BEGIN PRIVATE KEY-----\nAAAA\n".to_vec(), "END"),
            (
                b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n".to_vec(),
                "base64",
            ),
            (
                pem("ENCRYPTED PRIVATE KEY", &der).into_bytes(),
                "encrypted",
            ),
            (pem("CERTIFICATE", &der).into_bytes(), "`CERTIFICATE`"),
            (
                pem("PRIVATE KEY", &der[..der.len() - 3]).into_bytes(),
                "well-formed",
            ),
            (
                format!("{}{}", pem("PRIVATE KEY", &der), pem("PRIVATE KEY", &der)).into_bytes(),
                "more than one",
            ),
            (
                b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n".to_vec(),
                "headers",
            ),
            // A P-256 key presented as RSA.
            (pem("RSA PRIVATE KEY", &der).into_bytes(), "well-formed"),
        ];
        for (v, want) in cases {
            let e = normalize_private_key(&v).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
    }
}
