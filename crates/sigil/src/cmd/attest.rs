//! `sigil attest`: verify attestation evidence by hand.
//!
//! `sigil attest verify --evidence FILE [--collateral FILE|DIR] [--at TIME]
//! [--session FILE --service NAME] [--report-data HEX] [--json]` prints the
//! claims and, with a session, the decision. Exit status: 0 verified (and
//! accepted, with a session), 1 not genuine / not verifiable, 2 genuine but
//! refused by the session.

use anyhow::{anyhow, bail, Context, Result};
use sigil_attest::collateral::{
    Collateral, CollateralSource, DirCollateral, PccsCollateral, StaticCollateral,
};
use sigil_attest::dcap::DcapVerifier;
use sigil_attest::snp::SnpVerifier;
use sigil_attest::{decide, Claims, Decision, Evidence, TeeKind, Verifiers};
use std::path::{Path, PathBuf};
use std::sync::Arc;

subcommand_args! {
    /// Arguments of `sigil attest`.
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Verify evidence and print its claims (and a session's decision).
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// Evidence: Sigil evidence JSON, or a raw quote / SNP report (binary or hex).
    #[arg(long)]
    evidence: PathBuf,
    /// Kind of a raw evidence file (detected from its content if omitted).
    #[arg(long)]
    kind: Option<TeeKind>,
    /// Certificates for a raw evidence file (SNP VCEK/VLEK + ASK/ARK, PEM or DER).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// DCAP collateral: a JSON file, or a directory of them (air-gapped);
    /// for SNP, a directory of cached VCEKs.
    #[arg(long)]
    collateral: Option<PathBuf>,
    /// Fetch DCAP collateral from this PCCS-compatible URL (Intel PCS or a local PCCS).
    #[arg(long)]
    pccs: Option<String>,
    /// Fetch missing SNP VCEKs from this KDS-compatible URL (e.g. https://kdsintf.amd.com).
    #[arg(long)]
    kds: Option<String>,
    /// On-disk cache for collateral fetched with --pccs.
    #[arg(long, requires = "pccs")]
    cache_dir: Option<PathBuf>,
    /// Verification time: RFC 3339 or Unix seconds (default: now).
    #[arg(long)]
    at: Option<String>,
    /// Session file (YAML) to decide against.
    #[arg(long, requires = "service")]
    session: Option<PathBuf>,
    /// Service of the session.
    #[arg(long, requires = "session")]
    service: Option<String>,
    /// Expected report data (64 bytes hex); without it, the binding is not checked.
    #[arg(long)]
    report_data: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `sigil attest`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Verify(a) => verify(a),
    }
}

fn read_evidence(a: &VerifyArgs) -> Result<Evidence> {
    let bytes = std::fs::read(&a.evidence)
        .with_context(|| format!("cannot read {}", a.evidence.display()))?;
    let trimmed = bytes.trim_ascii_start();
    let mut e = if trimmed.starts_with(b"{") {
        Evidence::from_json(&bytes)?
    } else {
        // Hex text or raw bytes.
        let raw = match std::str::from_utf8(&bytes) {
            Ok(s)
                if !s.trim().is_empty()
                    && s.trim()
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace()) =>
            {
                let h: String = s.split_whitespace().collect();
                hex::decode(h).context("evidence is not valid hex")?
            }
            _ => bytes.clone(),
        };
        let kind = match a.kind {
            Some(k) => k,
            None => detect_kind(&raw)?,
        };
        Evidence::new(kind, raw)
    };
    if let Some(c) = &a.certs {
        e.certs = Some(std::fs::read(c).with_context(|| format!("cannot read {}", c.display()))?);
    }
    e.check_limits()?;
    Ok(e)
}

fn detect_kind(raw: &[u8]) -> Result<TeeKind> {
    if raw.starts_with(sigil_attest::simulation::MAGIC) {
        return Ok(TeeKind::Simulation);
    }
    if raw.len() == sigil_attest::snp::REPORT_LEN {
        return Ok(TeeKind::Snp);
    }
    if raw.len() >= 8 {
        let version = u16::from_le_bytes([raw[0], raw[1]]);
        let tee = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
        match (version, tee) {
            (3, 0) => return Ok(TeeKind::Sgx),
            (4 | 5, 0x81) => return Ok(TeeKind::Tdx),
            _ => {}
        }
    }
    bail!("cannot tell what kind of evidence this is; pass --kind sgx|tdx|snp|simulation")
}

fn collateral_source(a: &VerifyArgs) -> Result<Arc<dyn CollateralSource>> {
    if let Some(url) = &a.pccs {
        let cache = a.cache_dir.clone();
        return Ok(Arc::new(PccsCollateral::new(url, cache)?));
    }
    match &a.collateral {
        Some(p) if p.is_dir() => Ok(Arc::new(DirCollateral::new(p)?)),
        Some(p) => Ok(Arc::new(StaticCollateral(Arc::new(Collateral::from_file(
            p,
        )?)))),
        None => bail!("DCAP evidence needs --collateral FILE|DIR or --pccs URL"),
    }
}

fn verifiers(a: &VerifyArgs, kind: TeeKind) -> Result<Verifiers> {
    let mut v = Verifiers::new().with(Box::new(sigil_attest::simulation::SimulationVerifier));
    match kind {
        TeeKind::Sgx | TeeKind::Tdx => {
            let d = Arc::new(DcapVerifier::new(collateral_source(a)?));
            v = v
                .with(Box::new(sigil_attest::sgx::verifier(d.clone())))
                .with(Box::new(sigil_attest::tdx::verifier(d)));
        }
        TeeKind::Snp => {
            let mut s = SnpVerifier::new()?;
            if let Some(dir) = a.collateral.as_deref().filter(|p| p.is_dir()) {
                s = s.with_cert_dir(dir);
            }
            if let Some(k) = &a.kds {
                s = s.with_kds(k.as_str());
            }
            v = v.with(Box::new(s));
        }
        TeeKind::Simulation => {}
    }
    Ok(v)
}

fn parse_report_data(s: &str) -> Result<[u8; 64]> {
    let b = hex::decode(s.trim()).context("--report-data is not hex")?;
    b.try_into()
        .map_err(|b: Vec<u8>| anyhow!("--report-data is {} bytes, expected 64", b.len()))
}

fn load_session(path: &Path) -> Result<sigil_session::Session> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read session {}", path.display()))?;
    sigil_session::Session::parse(&text)
        .map_err(|e| anyhow!("session {} is invalid:\n{e}", path.display()))
}

fn verify(a: VerifyArgs) -> Result<()> {
    let now = match &a.at {
        Some(t) => sigil_attest::time_util::parse_time(t)
            .ok_or_else(|| anyhow!("--at {t:?} is neither RFC 3339 nor Unix seconds"))?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let evidence = read_evidence(&a)?;
    let session = a.session.as_deref().map(load_session).transpose()?;
    let expected = a
        .report_data
        .as_deref()
        .map(parse_report_data)
        .transpose()?;
    let result = verifiers(&a, evidence.kind)?.verify(&evidence, now);
    let claims: Claims = match result {
        Ok(c) => c,
        Err(e) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({ "verified": false, "error": e.to_string() })
                );
                std::process::exit(1);
            }
            bail!("evidence NOT verified: {e}");
        }
    };
    let decision: Option<(String, Decision)> = match (&session, &a.service) {
        (Some(s), Some(svc)) => {
            let (rules, policy) = sigil_attest::session::policy_for(s, svc)
                .ok_or_else(|| anyhow!("session {} has no service {svc:?}", s.name))?;
            let rd = expected.unwrap_or(claims.report_data);
            Some((
                s.name.to_string(),
                decide(&claims, &rules, &policy, &rd, &s.name.to_string()),
            ))
        }
        _ => None,
    };
    let binding_ok = expected.map(|rd| rd == claims.report_data);
    if a.json {
        let mut out = serde_json::json!({
            "verified": true,
            "verification_time": sigil_attest::time_util::format_unix(now),
            "claims": claims,
        });
        if let Some(ok) = binding_ok {
            out["report_data_matches"] = ok.into();
        }
        if let Some((name, d)) = &decision {
            let reasons: Vec<String> = match d {
                Decision::Accept => vec![],
                Decision::Refuse(r) => r.iter().map(|r| r.to_string()).collect(),
            };
            out["decision"] = serde_json::json!({
                "session": name,
                "accept": d.is_accept(),
                "reasons": reasons,
            });
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "evidence verified at {}",
            sigil_attest::time_util::format_unix(now)
        );
        if claims.tee == TeeKind::Simulation {
            println!("WARNING: simulation evidence carries no hardware guarantee");
        }
        println!("{claims}");
        match binding_ok {
            Some(true) => println!("report data:       matches --report-data"),
            Some(false) => println!("report data:       DOES NOT match --report-data"),
            None => println!("report data:       not checked (no --report-data)"),
        }
        if let Some((name, d)) = &decision {
            println!("decision (session {name}): {d}");
        }
    }
    let refused = decision.is_some_and(|(_, d)| !d.is_accept()) || binding_ok == Some(false);
    if refused {
        std::process::exit(2);
    }
    Ok(())
}
