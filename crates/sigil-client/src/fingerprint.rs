//! SPKI SHA-256 fingerprints: the identity of a CAS and of a client.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ClientError;

/// SHA-256 over the DER `SubjectPublicKeyInfo` of a certificate.
///
/// Displayed as `sha256:` followed by 64 lowercase hex digits; parsing also
/// accepts the bare 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of the public key in a DER certificate.
    pub fn of_cert_der(der: &[u8]) -> Result<Fingerprint, ClientError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| ClientError::Certificate(format!("cannot parse certificate: {e}")))?;
        Ok(Fingerprint::of_spki_der(
            cert.tbs_certificate.subject_pki.raw,
        ))
    }

    /// Fingerprint of a DER `SubjectPublicKeyInfo`.
    pub fn of_spki_der(spki: &[u8]) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, spki);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }

    /// The bare 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time equality (pins are compared like MACs).
    pub fn ct_eq(&self, other: &Fingerprint) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0[..].ct_eq(&other.0[..]))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let h = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .unwrap_or(s);
        if h.len() != 64 {
            return Err(ClientError::BadFingerprint(format!(
                "expected 64 hex digits (optionally prefixed by `sha256:`), got {} characters",
                h.len()
            )));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(h, &mut out)
            .map_err(|e| ClientError::BadFingerprint(format!("not hexadecimal: {e}")))?;
        Ok(Fingerprint(out))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let f = Fingerprint([0xab; 32]);
        let s = f.to_string();
        assert!(s.starts_with("sha256:"));
        assert_eq!(s.parse::<Fingerprint>().unwrap(), f);
        assert_eq!(f.to_hex().parse::<Fingerprint>().unwrap(), f);
    }

    #[test]
    fn rejects_bad_fingerprints() {
        assert!("sha256:abcd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
        assert!("".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn garbage_certificate_is_an_error() {
        assert!(Fingerprint::of_cert_der(b"not a certificate").is_err());
    }
}
