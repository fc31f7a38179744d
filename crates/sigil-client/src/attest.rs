//! Wire types of `POST /v1/attest`, the launcher's one request to the CAS.
//! Specified in `docs/protocol.md`.
//!
//! The evidence travels as the JSON object of `sigil_attest::Evidence`
//! (`docs/evidence.md`); it is kept as a JSON value here so that this crate
//! does not depend on the verifiers.

use serde::{Deserialize, Serialize};

use crate::wire::ResolvedService;

/// Path of the attestation endpoint.
pub const ATTEST_PATH: &str = "/v1/attest";
/// Version of the attest request/response format.
pub const ATTEST_VERSION: u32 = 1;
/// Largest request body the CAS reads (evidence is at most 128 KiB decoded,
/// base64 adds a third).
pub const MAX_ATTEST_REQUEST: usize = 256 * 1024;
/// Largest answer the launcher reads (injected files and volume keys of one
/// service).
pub const MAX_ATTEST_RESPONSE: usize = 8 * 1024 * 1024;
/// Most refusal reasons a launcher reads and prints.
pub const MAX_REASONS: usize = 64;

/// The launcher's request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// Format version, [`ATTEST_VERSION`].
    pub version: u32,
    /// `session/service`.
    pub config_id: String,
    /// The evidence (`sigil_attest::Evidence` as JSON), whose report data
    /// must equal the TLS exporter of this connection.
    pub evidence: serde_json::Value,
    /// The launcher's version, for the audit log.
    pub launcher_version: String,
}

/// 200 answer: the service's configuration with secrets substituted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestAccepted {
    /// Format version, [`ATTEST_VERSION`].
    pub version: u32,
    /// TEE kind of the verified evidence (`sgx`, `tdx`, `snp`, `simulation`).
    pub tee: String,
    /// The measurement the CAS verified (hex): MRENCLAVE, MRTD,
    /// SNP MEASUREMENT or the simulation measurement.
    pub measurement: String,
    /// What to run and with what.
    pub service: ResolvedService,
}

/// 403 answer: attestation refused, with every reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttestRefused {
    /// One line summary.
    pub error: String,
    /// Every reason the CAS refused (evidence, policy, session).
    #[serde(default)]
    pub reasons: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_refuses_unknown_fields() {
        let ok = r#"{"version":1,"config_id":"a/b","evidence":{},"launcher_version":"0.1"}"#;
        let r: AttestRequest = serde_json::from_str(ok).unwrap();
        assert_eq!(r.config_id, "a/b");
        let extra =
            r#"{"version":1,"config_id":"a/b","evidence":{},"launcher_version":"0.1","x":1}"#;
        assert!(serde_json::from_str::<AttestRequest>(extra).is_err());
        let refused: AttestRefused =
            serde_json::from_str(r#"{"error":"attestation refused"}"#).unwrap();
        assert!(refused.reasons.is_empty());
    }
}
