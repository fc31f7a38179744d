//! The evidence wire type sent by the launcher to the CAS (`/v1/attest`).
//! Specified in `docs/evidence.md`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest accepted quote/report (`data`), decoded. Real DCAP quotes are
/// 5–10 KiB, SNP reports 1184 bytes.
pub const MAX_EVIDENCE_DATA: usize = 64 * 1024;
/// Largest accepted certificate bundle (`certs`), decoded.
pub const MAX_EVIDENCE_CERTS: usize = 64 * 1024;
/// Current version of the evidence wire format.
pub const EVIDENCE_VERSION: u32 = 1;

/// The kind of TEE that produced evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeeKind {
    /// Intel SGX enclave, DCAP quote v3.
    Sgx,
    /// Intel TDX trust domain, DCAP quote v4/v5.
    Tdx,
    /// AMD SEV-SNP guest, attestation report.
    Snp,
    /// Simulation: no hardware guarantee at all.
    Simulation,
}

impl std::fmt::Display for TeeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TeeKind::Sgx => "sgx",
            TeeKind::Tdx => "tdx",
            TeeKind::Snp => "snp",
            TeeKind::Simulation => "simulation",
        })
    }
}

impl std::str::FromStr for TeeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sgx" => Ok(TeeKind::Sgx),
            "tdx" => Ok(TeeKind::Tdx),
            "snp" => Ok(TeeKind::Snp),
            "simulation" => Ok(TeeKind::Simulation),
            _ => Err(format!(
                "unknown TEE kind {s:?} (expected sgx, tdx, snp or simulation)"
            )),
        }
    }
}

/// Attestation evidence as sent on the wire (JSON).
///
/// `data` is the raw quote (SGX/TDX), the 1184-byte attestation report (SNP)
/// or the simulation structure; `certs` optionally carries certificates
/// (SNP: VCEK or VLEK and optionally ASK/ARK, PEM or a single DER; SGX/TDX:
/// a PCK chain in PEM, when the quote does not embed it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Wire format version; currently 1.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Which TEE produced it.
    pub kind: TeeKind,
    /// The quote or report, base64 on the wire.
    #[serde(with = "b64", rename = "data")]
    pub data: Vec<u8>,
    /// Optional certificates, base64 on the wire.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub certs: Option<Vec<u8>>,
}

fn default_version() -> u32 {
    EVIDENCE_VERSION
}

impl Evidence {
    /// Evidence of `kind` with raw `data` and no certificates.
    pub fn new(kind: TeeKind, data: Vec<u8>) -> Self {
        Self {
            version: EVIDENCE_VERSION,
            kind,
            data,
            certs: None,
        }
    }

    /// Parses evidence from JSON, enforcing the size limits and the version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, crate::VerifyError> {
        // base64 inflates by 4/3; allow some room for the envelope.
        let limit = (MAX_EVIDENCE_DATA + MAX_EVIDENCE_CERTS) * 4 / 3 + 4096;
        if bytes.len() > limit {
            return Err(crate::VerifyError::TooLarge {
                what: "evidence JSON",
                size: bytes.len(),
                limit,
            });
        }
        let e: Evidence =
            serde_json::from_slice(bytes).map_err(|err| crate::VerifyError::Malformed {
                what: "evidence JSON",
                detail: err.to_string(),
            })?;
        e.check_limits()?;
        Ok(e)
    }

    /// Checks version and size limits.
    pub fn check_limits(&self) -> Result<(), crate::VerifyError> {
        if self.version != EVIDENCE_VERSION {
            return Err(crate::VerifyError::Malformed {
                what: "evidence",
                detail: format!(
                    "unsupported version {} (this verifier reads version {EVIDENCE_VERSION})",
                    self.version
                ),
            });
        }
        if self.data.len() > MAX_EVIDENCE_DATA {
            return Err(crate::VerifyError::TooLarge {
                what: "evidence data",
                size: self.data.len(),
                limit: MAX_EVIDENCE_DATA,
            });
        }
        if let Some(c) = &self.certs {
            if c.len() > MAX_EVIDENCE_CERTS {
                return Err(crate::VerifyError::TooLarge {
                    what: "evidence certs",
                    size: c.len(),
                    limit: MAX_EVIDENCE_CERTS,
                });
            }
        }
        Ok(())
    }

    /// Serialises to JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data to a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

mod b64 {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

mod b64_opt {
    use super::*;
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&B64.encode(v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| B64.decode(s.as_bytes()).map_err(serde::de::Error::custom))
            .transpose()
    }
}
