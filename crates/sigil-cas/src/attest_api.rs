//! `POST /v1/attest`: verify attestation evidence bound to this TLS
//! connection (via [`ConnInfo::exporter`]), decide against the session's
//! policy and release the service's configuration
//! ([`CasState::resolve_service`]).
//!
//! Placeholder until the launcher side lands: answers 501. The router has
//! already applied the per-IP rate limit and the body size limit; the
//! handler runs on a blocking thread. Available on `state`:
//! `read_session`/`session`, `resolve_service`, `append_audit` (JSON
//! details), `metrics`, `clock`.

use bytes::Bytes;
use hyper::StatusCode;

use crate::http::{error, HttpResponse};
use crate::state::{CasState, ConnInfo};

/// Handles one attestation request.
pub fn handle(state: &CasState, conn: &ConnInfo, body: Bytes) -> HttpResponse {
    let _ = (conn, body);
    state
        .metrics
        .inc("sigil_cas_attest_total", &[("result", "not_implemented")]);
    error(
        StatusCode::NOT_IMPLEMENTED,
        "attestation is not implemented in this CAS yet",
    )
}
