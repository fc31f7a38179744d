//! `POST /v1/attest` (`docs/protocol.md` §4): verify attestation evidence
//! bound to this TLS connection (via [`ConnInfo::exporter`]), decide against
//! the session's policy and release the service's configuration
//! ([`CasState::resolve_service`]).
//!
//! The router has already applied the per-IP rate limit and the body size
//! limit; the handler runs on a blocking thread. Every attempt with a
//! well-formed request, accepted or refused, is appended to the audit log
//! with the claims and the reasons, never the secrets.

use std::sync::OnceLock;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};
use sigil_attest::{Claims, Decision, Evidence, TeeKind, Verifiers};
use sigil_client::attest::{
    AttestAccepted, AttestRefused, AttestRequest, ATTEST_VERSION, MAX_ATTEST_REQUEST,
};

use crate::http::{error, json as json_response, HttpResponse};
use crate::state::{CasState, ConnInfo};

/// Environment variable naming the PCCS (or Intel PCS) base URL used to
/// fetch SGX/TDX collateral. Default: Intel's PCS.
pub const ENV_PCCS_URL: &str = "SIGIL_PCCS_URL";
/// Environment variable naming a directory to cache collateral in.
pub const ENV_COLLATERAL_CACHE: &str = "SIGIL_COLLATERAL_CACHE";

/// The verifiers of this process: simulation always; SEV-SNP with the
/// built-in AMD roots; SGX and TDX with DCAP collateral from the PCCS.
/// Built on first use. A verifier that cannot be constructed is left out
/// (its evidence is then refused as unsupported, with that reason).
pub fn default_verifiers() -> &'static Verifiers {
    static V: OnceLock<Verifiers> = OnceLock::new();
    V.get_or_init(|| {
        let mut v = Verifiers::new().with(Box::new(sigil_attest::simulation::SimulationVerifier));
        match sigil_attest::snp::SnpVerifier::new() {
            Ok(s) => v = v.with(Box::new(s)),
            Err(e) => tracing::warn!("SEV-SNP verification unavailable: {e}"),
        }
        let base = std::env::var(ENV_PCCS_URL)
            .unwrap_or_else(|_| "https://api.trustedservices.intel.com".to_string());
        let cache = std::env::var_os(ENV_COLLATERAL_CACHE).map(std::path::PathBuf::from);
        match sigil_attest::collateral::PccsCollateral::new(&base, cache) {
            Ok(src) => {
                let dcap = std::sync::Arc::new(sigil_attest::dcap::DcapVerifier::new(
                    std::sync::Arc::new(src),
                ));
                v = v
                    .with(Box::new(sigil_attest::sgx::verifier(dcap.clone())))
                    .with(Box::new(sigil_attest::tdx::verifier(dcap)));
            }
            Err(e) => tracing::warn!("SGX/TDX verification unavailable: {e}"),
        }
        v
    })
}

/// Handles one attestation request with the process's verifiers.
pub fn handle(state: &CasState, conn: &ConnInfo, body: Bytes) -> HttpResponse {
    handle_with(state, conn, &body, default_verifiers())
}

/// The measurement the claims carry, hex (what a session rule pins).
pub fn measurement_hex(c: &Claims) -> String {
    match c.tee {
        TeeKind::Sgx => c.mrenclave.map(hex::encode),
        TeeKind::Tdx => c.mrtd.map(hex::encode),
        TeeKind::Snp => c.snp_measurement.map(hex::encode),
        TeeKind::Simulation => c.simulation_measurement.map(hex::encode),
    }
    .unwrap_or_default()
}

/// The claims as audit JSON (no secrets in claims; report data is a
/// channel-bound value, not a secret, but it is omitted as useless).
pub fn claims_json(c: &Claims) -> Value {
    let h = |o: Option<&[u8]>| o.map(hex::encode);
    json!({
        "tee": c.tee.to_string(),
        "mrenclave": h(c.mrenclave.as_ref().map(|x| &x[..])),
        "mrsigner": h(c.mrsigner.as_ref().map(|x| &x[..])),
        "isv_prod_id": c.isv_prod_id,
        "svn": c.svn,
        "mrtd": h(c.mrtd.as_ref().map(|x| &x[..])),
        "rtmr": c.rtmr.map(|r| r.iter().map(hex::encode).collect::<Vec<_>>()),
        "service_td": c.service_td,
        "sept_ve_disabled": c.sept_ve_disabled,
        "snp_measurement": h(c.snp_measurement.as_ref().map(|x| &x[..])),
        "simulation_measurement": h(c.simulation_measurement.as_ref().map(|x| &x[..])),
        "debug": c.debug,
        "smt_enabled": c.smt_enabled,
        "tcb_status": c.tcb_status.to_string(),
        "advisory_ids": c.advisory_ids,
        "platform_id": hex::encode(&c.platform_id),
    })
}

fn refuse(
    state: &CasState,
    conn: &ConnInfo,
    audit_session: Option<&str>,
    mut details: Value,
    reasons: Vec<String>,
) -> HttpResponse {
    details["result"] = json!("refused");
    details["reasons"] = json!(reasons);
    details["peer"] = json!(conn.peer.to_string());
    state
        .metrics
        .inc("sigil_cas_attest_total", &[("result", "refused")]);
    tracing::info!(peer = %conn.peer, "attestation refused: {}", reasons.join("; "));
    if let Err(e) = state.append_audit(&actor(conn), "attest", audit_session, details) {
        // An attempt that cannot be audited is not answered with details.
        tracing::error!("cannot audit an attestation attempt: {e}");
        return error(StatusCode::INTERNAL_SERVER_ERROR, "audit log unavailable");
    }
    json_response(
        StatusCode::FORBIDDEN,
        &AttestRefused {
            error: "attestation refused".into(),
            reasons,
        },
    )
}

fn actor(conn: &ConnInfo) -> String {
    format!("launcher@{}", conn.peer.ip())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// As [`handle`], with explicit verifiers (tests use the same set).
pub fn handle_with(
    state: &CasState,
    conn: &ConnInfo,
    body: &[u8],
    verifiers: &Verifiers,
) -> HttpResponse {
    if body.len() > MAX_ATTEST_REQUEST {
        state
            .metrics
            .inc("sigil_cas_attest_total", &[("result", "bad_request")]);
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("attest request larger than {MAX_ATTEST_REQUEST} bytes"),
        );
    }
    let bad = |msg: String| {
        state
            .metrics
            .inc("sigil_cas_attest_total", &[("result", "bad_request")]);
        error(StatusCode::BAD_REQUEST, msg)
    };
    let req: AttestRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid attest request: {e}")),
    };
    if req.version != ATTEST_VERSION {
        return bad(format!(
            "unsupported attest request version {} (this CAS speaks {ATTEST_VERSION})",
            req.version
        ));
    }
    let Some((session_name, service_name)) = req.config_id.split_once('/') else {
        return bad(format!(
            "config_id {:?} is not session/service",
            req.config_id.chars().take(100).collect::<String>()
        ));
    };
    if !valid_name(session_name) || !valid_name(service_name) {
        return bad("config_id has an invalid session or service name".into());
    }
    let launcher_version: String = req.launcher_version.chars().take(64).collect();
    let Some(expected_rd) = conn.exporter else {
        return bad("attestation needs a TLS 1.3 connection".into());
    };
    let mut details = json!({
        "config_id": req.config_id,
        "launcher_version": launcher_version,
    });

    let evidence: Evidence = match serde_json::from_value(req.evidence) {
        Ok(e) => e,
        Err(e) => {
            return refuse(
                state,
                conn,
                None,
                details,
                vec![format!("malformed evidence: {e}")],
            )
        }
    };
    details["tee"] = json!(evidence.kind.to_string());
    if let Err(e) = evidence.check_limits() {
        return refuse(state, conn, None, details, vec![format!("evidence: {e}")]);
    }

    let session = match state.read_session(session_name) {
        Ok(Some((_, s))) => s,
        Ok(None) => {
            return refuse(
                state,
                conn,
                None,
                details,
                vec![format!(
                    "unknown config id {}: no session {session_name}",
                    req.config_id
                )],
            )
        }
        Err(e) => {
            tracing::error!("attest: reading session {session_name}: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the session");
        }
    };
    let Some((rules, policy)) = sigil_attest::session::policy_for(&session, service_name) else {
        return refuse(
            state,
            conn,
            Some(session_name),
            details,
            vec![format!(
                "unknown config id {}: session {session_name} has no service {service_name}",
                req.config_id
            )],
        );
    };

    let now = state
        .clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = match verifiers.verify(&evidence, now) {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                state,
                conn,
                Some(session_name),
                details,
                vec![format!("evidence not verified: {e}")],
            )
        }
    };
    details["claims"] = claims_json(&claims);
    details["measurement"] = json!(measurement_hex(&claims));

    match sigil_attest::decide(&claims, &rules, &policy, &expected_rd, session_name) {
        Decision::Refuse(rs) => {
            let reasons = rs.iter().map(|r| r.to_string()).collect();
            refuse(state, conn, Some(session_name), details, reasons)
        }
        Decision::Accept => {
            let service = match state.resolve_service(session_name, service_name) {
                Ok(s) => s,
                Err(e) => {
                    return refuse(
                        state,
                        conn,
                        Some(session_name),
                        details,
                        vec![format!(
                            "configuration of {} cannot be resolved: {e}",
                            req.config_id
                        )],
                    )
                }
            };
            details["result"] = json!("accepted");
            details["peer"] = json!(conn.peer.to_string());
            details["session_hash"] = json!(service.session_hash);
            if claims.tee == TeeKind::Simulation {
                tracing::warn!(
                    "SIMULATION attestation accepted for {} from {} (no hardware protection; session allows attestation mode simulation)",
                    req.config_id,
                    conn.peer
                );
            }
            if let Err(e) = state.append_audit(&actor(conn), "attest", Some(session_name), details)
            {
                // No secrets leave without an audit record.
                tracing::error!("cannot audit an attestation: {e}");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "audit log unavailable");
            }
            state
                .metrics
                .inc("sigil_cas_attest_total", &[("result", "accepted")]);
            json_response(
                StatusCode::OK,
                &AttestAccepted {
                    version: ATTEST_VERSION,
                    tee: claims.tee.to_string(),
                    measurement: measurement_hex(&claims),
                    service,
                },
            )
        }
    }
}
