//! `POST /v1/attest` (`docs/protocol.md` §4): verify attestation evidence
//! bound to this TLS connection (via [`ConnInfo::exporter`]), decide against
//! the session's policy and release the service's configuration
//! ([`CasState::resolve_service`]).
//!
//! The router has already applied the per-IP rate limit and the body size
//! limit; the handler runs on a blocking thread. Every attempt with a
//! well-formed request, accepted or refused, is appended to the audit log
//! with the claims and the reasons, never the secrets.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};
use sigil_attest::collateral::{CollateralSource, DirCollateral, PccsCollateral};
use sigil_attest::{Claims, Decision, Evidence, TeeKind, Verifiers};
use sigil_client::attest::{
    AttestAccepted, AttestRefused, AttestRequest, ATTEST_VERSION, MAX_ATTEST_REQUEST,
};

use crate::http::{error, json as json_response, HttpResponse};
use crate::state::{CasState, ConnInfo};
use crate::CasError;

/// Environment variable naming the PCCS (or Intel PCS) base URL used to
/// fetch SGX/TDX collateral (fallback for `--pccs-url`).
pub const ENV_PCCS_URL: &str = "SIGIL_PCCS_URL";
/// Environment variable naming a directory to cache fetched collateral in
/// (fallback for `--collateral-cache`).
pub const ENV_COLLATERAL_CACHE: &str = "SIGIL_COLLATERAL_CACHE";
/// Environment variable naming a directory of collateral JSON files used
/// instead of a PCCS (fallback for `--collateral-dir`).
pub const ENV_COLLATERAL_DIR: &str = "SIGIL_COLLATERAL_DIR";
/// Environment variable naming the SEV-SNP VCEK directory (fallback for
/// `--snp-cert-dir`).
pub const ENV_SNP_CERT_DIR: &str = "SIGIL_SNP_CERT_DIR";
/// Environment variable naming a KDS-compatible URL for missing VCEKs
/// (fallback for `--snp-kds-url`).
pub const ENV_SNP_KDS_URL: &str = "SIGIL_SNP_KDS_URL";
/// Where DCAP collateral comes from when nothing is configured.
pub const DEFAULT_PCCS_URL: &str = "https://api.trustedservices.intel.com";

/// Where the attestation verifiers get their collateral. A field left
/// `None` falls back to its environment variable (see
/// [`VerifierConfig::with_env_fallbacks`]); `docs/cas-api.md` lists both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifierConfig {
    /// SGX/TDX collateral from this PCCS-compatible URL (Intel PCS or a
    /// PCCS). Default: Intel's PCS, unless `collateral_dir` is set.
    pub pccs_url: Option<String>,
    /// SGX/TDX collateral from a directory of JSON files instead of a PCCS
    /// (air-gapped sites). Exclusive with `pccs_url`.
    pub collateral_dir: Option<PathBuf>,
    /// On-disk cache of collateral fetched from the PCCS.
    pub collateral_cache: Option<PathBuf>,
    /// SEV-SNP: VCEKs (`<chip_id hex>_<reported_tcb hex>.der`) for reports
    /// whose evidence carries none; also where fetched VCEKs are kept.
    pub snp_cert_dir: Option<PathBuf>,
    /// SEV-SNP: fetch missing VCEKs from this KDS-compatible URL (AMD's is
    /// `https://kdsintf.amd.com`). Default: no fetching.
    pub snp_kds_url: Option<String>,
}

fn env_str(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn check_url(what: &str, url: &str) -> Result<(), CasError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(CasError::Config(format!(
            "{what} {:?} is not an http(s) URL",
            url.chars().take(200).collect::<String>()
        )))
    }
}

impl VerifierConfig {
    /// Fills every unset field from its environment variable
    /// (`SIGIL_PCCS_URL`, `SIGIL_COLLATERAL_DIR`, `SIGIL_COLLATERAL_CACHE`,
    /// `SIGIL_SNP_CERT_DIR`, `SIGIL_SNP_KDS_URL`); set fields win.
    pub fn with_env_fallbacks(mut self) -> VerifierConfig {
        // A configured collateral directory replaces the PCCS, so the
        // PCCS variable is only a fallback when no directory is set at all.
        if self.collateral_dir.is_none() && self.pccs_url.is_none() {
            self.collateral_dir = env_path(ENV_COLLATERAL_DIR);
            if self.collateral_dir.is_none() {
                self.pccs_url = env_str(ENV_PCCS_URL);
            }
        }
        self.collateral_cache = self
            .collateral_cache
            .or_else(|| env_path(ENV_COLLATERAL_CACHE));
        self.snp_cert_dir = self.snp_cert_dir.or_else(|| env_path(ENV_SNP_CERT_DIR));
        self.snp_kds_url = self.snp_kds_url.or_else(|| env_str(ENV_SNP_KDS_URL));
        self
    }

    /// Builds the verifiers: simulation always; SEV-SNP with the built-in
    /// AMD roots; SGX and TDX with DCAP collateral from the directory or
    /// the PCCS. A source that was configured but cannot be used is an
    /// error (the CAS does not start half-configured).
    pub fn build(&self) -> Result<Verifiers, CasError> {
        let cfg = |e: sigil_attest::VerifyError| CasError::Config(e.to_string());
        let mut v = Verifiers::new().with(Box::new(sigil_attest::simulation::SimulationVerifier));

        let mut snp = sigil_attest::snp::SnpVerifier::new().map_err(cfg)?;
        if let Some(d) = &self.snp_cert_dir {
            if !d.is_dir() {
                return Err(CasError::Config(format!(
                    "SNP certificate directory {} is not a directory",
                    d.display()
                )));
            }
            snp = snp.with_cert_dir(d);
        }
        if let Some(u) = &self.snp_kds_url {
            check_url("SNP KDS URL", u)?;
            snp = snp.with_kds(u.as_str());
        }
        v = v.with(Box::new(snp));

        let source: Arc<dyn CollateralSource> = match (&self.collateral_dir, &self.pccs_url) {
            (Some(_), Some(_)) => {
                return Err(CasError::Config(
                    "give either a collateral directory or a PCCS URL, not both".into(),
                ))
            }
            (Some(d), None) => Arc::new(DirCollateral::new(d).map_err(cfg)?),
            (None, url) => {
                let url = url.as_deref().unwrap_or(DEFAULT_PCCS_URL);
                check_url("PCCS URL", url)?;
                Arc::new(PccsCollateral::new(url, self.collateral_cache.clone()).map_err(cfg)?)
            }
        };
        let dcap = Arc::new(sigil_attest::dcap::DcapVerifier::new(source));
        Ok(v.with(Box::new(sigil_attest::sgx::verifier(dcap.clone())))
            .with(Box::new(sigil_attest::tdx::verifier(dcap))))
    }

    /// One line for the log: where collateral comes from.
    pub fn describe(&self) -> String {
        let dcap = match (&self.collateral_dir, &self.pccs_url) {
            (Some(d), _) => format!("directory {}", d.display()),
            (None, u) => format!("PCCS {}", u.as_deref().unwrap_or(DEFAULT_PCCS_URL)),
        };
        let snp = match (&self.snp_cert_dir, &self.snp_kds_url) {
            (None, None) => "from the evidence only".to_string(),
            (d, k) => format!(
                "from the evidence{}{}",
                d.as_ref()
                    .map(|d| format!(", directory {}", d.display()))
                    .unwrap_or_default(),
                k.as_ref().map(|k| format!(", KDS {k}")).unwrap_or_default()
            ),
        };
        format!("SGX/TDX collateral: {dcap}; SNP VCEKs: {snp}")
    }
}

/// Handles one attestation request with the CAS's verifiers.
pub fn handle(state: &CasState, conn: &ConnInfo, body: Bytes) -> HttpResponse {
    handle_with(state, conn, &body, &state.verifiers)
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
        "snp_vmpl": c.snp_vmpl,
        "snp_migration_agent": c.snp_migration_agent,
        "snp_tcb": c.snp_tcb,
        "simulation_measurement": h(c.simulation_measurement.as_ref().map(|x| &x[..])),
        "debug": c.debug,
        "smt_enabled": c.smt_enabled,
        "tcb_status": c.tcb_status.to_string(),
        "advisory_ids": c.advisory_ids,
        "platform_id": hex::encode(&c.platform_id),
    })
}

/// The bookkeeping of every audited attempt, whatever its outcome: the
/// result, reasons and peer go into the audit entry, which must be written
/// before anything is answered; then the attempt is counted. `false` when
/// the audit log cannot take the entry: answer [`audit_unavailable`].
#[must_use]
fn audit_attempt(
    state: &CasState,
    conn: &ConnInfo,
    audit_session: Option<&str>,
    mut details: Value,
    result: &'static str,
    reasons: &[String],
) -> bool {
    details["result"] = json!(result);
    if !reasons.is_empty() {
        details["reasons"] = json!(reasons);
    }
    details["peer"] = json!(conn.peer.to_string());
    let actor = format!("launcher@{}", conn.peer.ip());
    if let Err(e) = state.append_audit(&actor, "attest", audit_session, details) {
        tracing::error!("cannot audit an attestation attempt: {e}");
        state
            .metrics
            .inc("sigil_cas_attest_total", &[("result", "audit_failed")]);
        return false;
    }
    state
        .metrics
        .inc("sigil_cas_attest_total", &[("result", result)]);
    true
}

/// An attempt that cannot be audited is not answered with details, and no
/// secret leaves without an audit record.
fn audit_unavailable() -> HttpResponse {
    error(StatusCode::INTERNAL_SERVER_ERROR, "audit log unavailable")
}

fn refuse(
    state: &CasState,
    conn: &ConnInfo,
    audit_session: Option<&str>,
    details: Value,
    reasons: Vec<String>,
) -> HttpResponse {
    tracing::info!(peer = %conn.peer, "attestation refused: {}", reasons.join("; "));
    if !audit_attempt(state, conn, audit_session, details, "refused", &reasons) {
        return audit_unavailable();
    }
    json_response(
        StatusCode::FORBIDDEN,
        &AttestRefused {
            error: "attestation refused".into(),
            reasons,
        },
    )
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
    // The launcher reads config ids with the same function.
    let (session_name, service_name) =
        match sigil_client::config_id::split_config_id(&req.config_id) {
            Ok(parts) => parts,
            Err(e) => return bad(e.to_string()),
        };
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

    let (record, session) = match state.read_session(session_name) {
        Ok(Some(found)) => found,
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
            // Release exactly the version the decision was made under.
            let service = match state.resolve_decided(session_name, service_name, &record, &session)
            {
                Ok(s) => s,
                Err(CasError::Conflict { .. }) => {
                    // Not a refusal: the launcher retries (5xx) and is
                    // decided against the new version.
                    let why = [format!("session {session_name} changed during attestation")];
                    if !audit_attempt(state, conn, Some(session_name), details, "retry", &why) {
                        return audit_unavailable();
                    }
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("session {session_name} changed during attestation; retry"),
                    );
                }
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
            details["session_hash"] = json!(service.session_hash);
            if claims.tee == TeeKind::Simulation {
                tracing::warn!(
                    "SIMULATION attestation accepted for {} from {} (no hardware protection; session allows attestation mode simulation)",
                    req.config_id,
                    conn.peer
                );
            }
            if !audit_attempt(state, conn, Some(session_name), details, "accepted", &[]) {
                return audit_unavailable();
            }
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
