//! The policy decision: do these claims satisfy a service's attestation rules
//! and its session's security section?
//!
//! A rule and a tolerance are the session language's own types
//! (`sigil-session`'s `AttestationRule` and `Tolerance`, re-exported here):
//! they are plain data, and a mirrored copy only had to be kept in step.
//! [`SecurityPolicy`] stays this crate's own: it is what `decide` needs of
//! a session's `Security` section (see `crate::session` for the mapping).

use crate::claims::{Claims, SnpTcb, TcbStatus};
use crate::evidence::TeeKind;
use std::collections::BTreeSet;
use std::fmt;

/// One attestation rule of a service: every field that is `Some` must
/// match (AND); a service's rules are a list of which one must match (OR).
/// `isvsvn_min` is also the minimum SEV-SNP guest SVN.
pub use sigil_session::AttestationRule as Rule;

/// Something a session may tolerate that is refused by default. The session
/// language's own type: a copy here needed a conversion kept in step with it.
pub use sigil_session::Tolerance;

/// The security section of a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// `attestation.mode: simulation`: accept simulation evidence.
    pub allow_simulation: bool,
    /// What the session tolerates.
    pub tolerate: BTreeSet<Tolerance>,
    /// Advisory IDs the session accepts.
    pub ignore_advisories: BTreeSet<String>,
    /// SEV-SNP: the lowest TCB accepted, component by component, in the
    /// reported, committed and launch TCB. `fmc` applies only to reports
    /// that have an FMC SPL (Turin and later).
    pub snp_min_tcb: Option<SnpTcb>,
}

/// One reason for a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The report data does not carry the value bound to this TLS channel.
    ReportDataMismatch,
    /// Simulation evidence, but the session is not in simulation mode.
    SimulationNotAllowed,
    /// No rule of the service matches; one explanation per rule.
    NoRuleMatched(Vec<String>),
    /// The service has no attestation rule for this kind of TEE.
    NoRules,
    /// Debug mode without the debug-mode tolerance.
    Debug,
    /// TCB status not tolerated.
    TcbStatus {
        /// The status.
        status: TcbStatus,
        /// The advisories that came with it.
        advisories: Vec<String>,
        /// The tolerances that would be needed.
        needs: Vec<Tolerance>,
    },
    /// Advisory IDs not listed in `ignore_advisories`.
    Advisories(Vec<String>),
    /// TDX service TD without the service-td tolerance.
    ServiceTd,
    /// TDX SEPT_VE_DISABLE not set without the tolerance.
    SeptVeNotDisabled,
    /// SMT enabled without the hyperthreading tolerance.
    Hyperthreading,
    /// SEV-SNP report requested from a VMPL other than 0.
    SnpVmpl(u32),
    /// SEV-SNP guest policy allows a migration agent (MIGRATE_MA).
    SnpMigrationAgent,
    /// An SEV-SNP TCB (`which`: reported, committed or launch) below the
    /// session's minimum: (component, SPL in the report, minimum).
    SnpTcbBelowMinimum {
        /// Which of the report's TCB versions.
        which: &'static str,
        /// Every component below its minimum.
        below: Vec<(&'static str, u8, u8)>,
    },
    /// The session sets an SEV-SNP minimum TCB but the claims carry no TCB.
    SnpTcbMissing,
}

/// A reason together with the session it refers to, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Session name.
    pub session: String,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.session;
        match &self.reason {
            Reason::ReportDataMismatch => write!(
                f,
                "report data does not match the TLS channel the evidence arrived on (replayed or relayed evidence)"
            ),
            Reason::SimulationNotAllowed => write!(
                f,
                "simulation evidence (no hardware protection) but session {s} does not set attestation mode simulation"
            ),
            Reason::NoRuleMatched(why) => write!(
                f,
                "no attestation rule of session {s} matches: {}",
                why.join("; ")
            ),
            Reason::NoRules => write!(f, "session {s} has no attestation rule for this service"),
            Reason::Debug => write!(
                f,
                "debug mode (memory readable by the host) not tolerated by session {s} (needs tolerate: debug-mode)"
            ),
            Reason::TcbStatus {
                status,
                advisories,
                needs,
            } => {
                write!(f, "TCB status {status}")?;
                if !advisories.is_empty() {
                    write!(f, " (advisories {})", advisories.join(", "))?;
                }
                write!(f, " not tolerated by session {s}")?;
                let needs: Vec<_> = needs.iter().map(|t| t.as_str()).collect();
                write!(f, " (needs tolerate: {})", needs.join(", "))
            }
            Reason::Advisories(ids) => write!(
                f,
                "advisories {} not listed in ignore_advisories of session {s}",
                ids.join(", ")
            ),
            Reason::ServiceTd => write!(
                f,
                "TD is bound to a service TD (non-zero MRSERVICETD) not tolerated by session {s} (needs tolerate: service-td)"
            ),
            Reason::SeptVeNotDisabled => write!(
                f,
                "TD does not set SEPT_VE_DISABLE, not tolerated by session {s} (needs tolerate: sept-ve-not-disabled)"
            ),
            Reason::Hyperthreading => write!(
                f,
                "hyperthreading (SMT) is enabled, not tolerated by session {s} (needs tolerate: hyperthreading)"
            ),
            Reason::SnpMigrationAgent => write!(
                f,
                "SEV-SNP guest policy allows a migration agent (MIGRATE_MA), which can export the guest's memory; refused for session {s}"
            ),
            Reason::SnpTcbBelowMinimum { which, below } => {
                let parts: Vec<String> = below
                    .iter()
                    .map(|(c, have, min)| format!("{c} SPL {have} < minimum {min}"))
                    .collect();
                write!(
                    f,
                    "SEV-SNP {which} TCB is below the minimum of session {s}: {} (security.attestation.snp.min_tcb){}",
                    parts.join(", "),
                    if *which == "launch" {
                        "; the guest was launched on older firmware: relaunch it"
                    } else {
                        ""
                    }
                )
            }
            Reason::SnpTcbMissing => write!(
                f,
                "session {s} sets an SEV-SNP minimum TCB but the evidence carries no TCB"
            ),
            Reason::SnpVmpl(v) => write!(
                f,
                "SEV-SNP report requested at VMPL {v}, not 0: code at that level is not what the launch measurement describes (e.g. a guest under an SVSM), refused for session {s}"
            ),
        }
    }
}

/// The result of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The evidence satisfies the session.
    Accept,
    /// Refused, with every reason.
    Refuse(Vec<Refusal>),
}

impl Decision {
    /// Whether the decision is [`Decision::Accept`].
    pub fn is_accept(&self) -> bool {
        matches!(self, Decision::Accept)
    }

    /// The reasons of a refusal (empty for Accept).
    pub fn reasons(&self) -> Vec<&Reason> {
        match self {
            Decision::Accept => vec![],
            Decision::Refuse(r) => r.iter().map(|r| &r.reason).collect(),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Accept => f.write_str("ACCEPT"),
            Decision::Refuse(rs) => {
                f.write_str("REFUSE")?;
                for r in rs {
                    write!(f, "\n  - {r}")?;
                }
                Ok(())
            }
        }
    }
}

/// Tolerances a TCB status needs.
pub fn tolerances_for(status: TcbStatus) -> Vec<Tolerance> {
    use TcbStatus::*;
    use Tolerance as T;
    match status {
        UpToDate | NotEvaluated => vec![],
        SWHardeningNeeded => vec![T::SoftwareHardeningNeeded],
        ConfigurationNeeded => vec![T::ConfigurationNeeded],
        ConfigurationAndSWHardeningNeeded => {
            vec![T::ConfigurationNeeded, T::SoftwareHardeningNeeded]
        }
        OutOfDate | TDRelaunchAdvised => vec![T::OutdatedTcb],
        OutOfDateConfigurationNeeded | TDRelaunchAdvisedConfigurationNeeded => {
            vec![T::OutdatedTcb, T::ConfigurationNeeded]
        }
    }
}

/// Compares the reported TCB (bound to the VCEK), the committed TCB (the
/// floor the platform cannot be rolled back below) and the launch TCB (a
/// guest launched on older firmware stays exposed to it) with `min`.
fn snp_tcb_reasons(claims: &Claims, min: &SnpTcb, reasons: &mut Vec<Reason>) {
    let Some(t) = &claims.snp_tcb else {
        reasons.push(Reason::SnpTcbMissing);
        return;
    };
    for (which, tcb) in [
        ("reported", &t.reported),
        ("committed", &t.committed),
        ("launch", &t.launch),
    ] {
        // Components pair up in order; FMC is last, so a report or a
        // minimum without one compares the four common components only.
        let below: Vec<(&'static str, u8, u8)> = tcb
            .components()
            .zip(min.components())
            .filter(|((_, have), (_, m))| have < m)
            .map(|((n, have), (_, m))| (n, have, m))
            .collect();
        if !below.is_empty() {
            reasons.push(Reason::SnpTcbBelowMinimum { which, below });
        }
    }
}

/// Explains why `rule` does not match `claims`, or `None` if it matches.
fn rule_mismatch(rule: &Rule, c: &Claims) -> Option<String> {
    let mut why = Vec::new();
    fn cmp<const N: usize>(
        why: &mut Vec<String>,
        name: &str,
        want: &Option<[u8; N]>,
        have: Option<&[u8; N]>,
    ) {
        if let Some(w) = want {
            match have {
                Some(h) if h == w => {}
                Some(h) => why.push(format!(
                    "{name} is {} (expected {})",
                    hex::encode(h),
                    hex::encode(w)
                )),
                None => why.push(format!("evidence has no {name}")),
            }
        }
    }
    cmp(&mut why, "MRENCLAVE", &rule.mrenclave, c.mrenclave.as_ref());
    cmp(&mut why, "MRSIGNER", &rule.mrsigner, c.mrsigner.as_ref());
    if let Some(p) = rule.isvprodid {
        match c.isv_prod_id {
            Some(h) if h == p => {}
            Some(h) => why.push(format!("ISVPRODID is {h} (expected {p})")),
            None => why.push("evidence has no ISVPRODID".into()),
        }
    }
    if let Some(min) = rule.isvsvn_min {
        match c.svn {
            Some(h) if h >= u32::from(min) => {}
            Some(h) => why.push(format!("SVN {h} is below the minimum {min}")),
            None => why.push("evidence has no SVN".into()),
        }
    }
    cmp(&mut why, "MRTD", &rule.mrtd, c.mrtd.as_ref());
    for (i, want) in rule.rtmr.iter().enumerate() {
        let have = c.rtmr.as_ref().map(|r| &r[i]);
        cmp(&mut why, &format!("RTMR{i}"), want, have);
    }
    cmp(
        &mut why,
        "SNP measurement",
        &rule.snp_measurement,
        c.snp_measurement.as_ref(),
    );
    cmp(
        &mut why,
        "simulation measurement",
        &rule.simulation_measurement,
        c.simulation_measurement.as_ref(),
    );
    let constrains_this_tee = match c.tee {
        TeeKind::Sgx => {
            rule.mrenclave.is_some() || rule.mrsigner.is_some() || rule.isvprodid.is_some()
        }
        TeeKind::Tdx => rule.mrtd.is_some() || rule.rtmr.iter().any(Option::is_some),
        TeeKind::Snp => rule.snp_measurement.is_some(),
        TeeKind::Simulation => rule.simulation_measurement.is_some(),
    };
    // A rule that says nothing about this TEE's identity must not match it,
    // or an empty/min-SVN-only rule would admit any workload.
    if !constrains_this_tee {
        why.push(format!("rule does not identify a {} workload", c.tee));
    }
    if why.is_empty() {
        None
    } else {
        Some(why.join(", "))
    }
}

/// Decides whether `claims` satisfy a service's `rules` and the session's
/// security `policy`, with the report data bound to `expected_report_data`
/// (derived from the TLS channel by the caller). Collects every reason.
pub fn decide(
    claims: &Claims,
    rules: &[Rule],
    policy: &SecurityPolicy,
    expected_report_data: &[u8; 64],
    session_name: &str,
) -> Decision {
    let mut reasons = Vec::new();

    // Constant time: the expected value is derived from the TLS channel secret.
    #[allow(deprecated)]
    let report_data_ok =
        ring::constant_time::verify_slices_are_equal(&claims.report_data, expected_report_data)
            .is_ok();
    if !report_data_ok {
        reasons.push(Reason::ReportDataMismatch);
    }
    if claims.tee == TeeKind::Simulation && !policy.allow_simulation {
        reasons.push(Reason::SimulationNotAllowed);
    }
    if rules.is_empty() {
        reasons.push(Reason::NoRules);
    } else {
        let mismatches: Vec<String> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| rule_mismatch(r, claims).map(|w| format!("rule {}: {w}", i + 1)))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        // `collect::<Option<_>>` is None as soon as one rule matched.
        if !mismatches.is_empty() {
            reasons.push(Reason::NoRuleMatched(mismatches));
        }
    }
    let tol = |t| policy.tolerate.contains(&t);
    if claims.debug && !tol(Tolerance::DebugMode) {
        reasons.push(Reason::Debug);
    }
    let needs = tolerances_for(claims.tcb_status);
    if needs.iter().any(|t| !tol(*t)) {
        reasons.push(Reason::TcbStatus {
            status: claims.tcb_status,
            advisories: claims.advisory_ids.clone(),
            needs,
        });
    }
    let unignored: Vec<String> = claims
        .advisory_ids
        .iter()
        .filter(|a| !policy.ignore_advisories.contains(*a))
        .cloned()
        .collect();
    if !unignored.is_empty() {
        reasons.push(Reason::Advisories(unignored));
    }
    if claims.has_service_td() && !tol(Tolerance::ServiceTd) {
        reasons.push(Reason::ServiceTd);
    }
    if claims.sept_ve_disabled == Some(false) && !tol(Tolerance::SeptVeNotDisabled) {
        reasons.push(Reason::SeptVeNotDisabled);
    }
    if claims.smt_enabled == Some(true) && !tol(Tolerance::Hyperthreading) {
        reasons.push(Reason::Hyperthreading);
    }
    // Any VMPL can ask the PSP for a report with any report data; only the
    // most privileged one (0) runs what the launch measurement covers. A
    // guest at VMPL 1-3 (under an SVSM or paravisor) can be any kernel.
    if let Some(v) = claims.snp_vmpl.filter(|v| *v != 0) {
        reasons.push(Reason::SnpVmpl(v));
    }
    if claims.snp_migration_agent == Some(true) {
        reasons.push(Reason::SnpMigrationAgent);
    }
    if let (TeeKind::Snp, Some(min)) = (claims.tee, &policy.snp_min_tcb) {
        snp_tcb_reasons(claims, min, &mut reasons);
    }

    if reasons.is_empty() {
        Decision::Accept
    } else {
        Decision::Refuse(
            reasons
                .into_iter()
                .map(|reason| Refusal {
                    session: session_name.to_string(),
                    reason,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sgx_claims() -> Claims {
        let mut c = Claims::empty(TeeKind::Sgx);
        c.mrenclave = Some([1; 32]);
        c.mrsigner = Some([2; 32]);
        c.isv_prod_id = Some(3);
        c.svn = Some(5);
        c.report_data = [4; 64];
        c.tcb_status = TcbStatus::UpToDate;
        c
    }

    fn rule() -> Rule {
        Rule {
            mrenclave: Some([1; 32]),
            ..Rule::default()
        }
    }

    #[test]
    fn accepts_matching_claims() {
        let d = decide(
            &sgx_claims(),
            &[rule()],
            &SecurityPolicy::default(),
            &[4; 64],
            "s",
        );
        assert_eq!(d, Decision::Accept);
    }

    #[test]
    fn snp_reports_from_vmpl_above_0_or_with_a_migration_agent_are_refused() {
        let mut c = Claims::empty(TeeKind::Snp);
        c.snp_measurement = Some([6; 48]);
        c.report_data = [4; 64];
        let r = Rule {
            snp_measurement: Some([6; 48]),
            ..Rule::default()
        };
        let p = SecurityPolicy::default();
        c.snp_vmpl = Some(0);
        assert_eq!(
            decide(&c, std::slice::from_ref(&r), &p, &[4; 64], "s"),
            Decision::Accept
        );
        for v in [1, 2, 3] {
            c.snp_vmpl = Some(v);
            let d = decide(&c, std::slice::from_ref(&r), &p, &[4; 64], "s");
            assert_eq!(d.reasons(), vec![&Reason::SnpVmpl(v)]);
            assert!(d.to_string().contains(&format!("VMPL {v}")), "{d}");
        }
        c.snp_vmpl = Some(0);
        c.snp_migration_agent = Some(true);
        let d = decide(&c, std::slice::from_ref(&r), &p, &[4; 64], "s");
        assert_eq!(d.reasons(), vec![&Reason::SnpMigrationAgent]);
        c.snp_migration_agent = Some(false);
        assert_eq!(
            decide(&c, std::slice::from_ref(&r), &p, &[4; 64], "s"),
            Decision::Accept
        );
    }

    #[test]
    fn snp_min_tcb_holds_reported_committed_and_launch_tcb() {
        use crate::claims::SnpTcbs;
        let tcb = |bootloader, tee, snp, microcode, fmc| SnpTcb {
            bootloader,
            tee,
            snp,
            microcode,
            fmc,
        };
        let mut c = Claims::empty(TeeKind::Snp);
        c.snp_measurement = Some([6; 48]);
        c.report_data = [4; 64];
        let ok = tcb(3, 0, 8, 115, None);
        c.snp_tcb = Some(SnpTcbs {
            reported: ok,
            committed: ok,
            launch: tcb(2, 0, 8, 115, None),
            current: tcb(3, 0, 8, 206, None),
        });
        let r = Rule {
            snp_measurement: Some([6; 48]),
            ..Rule::default()
        };
        let mut p = SecurityPolicy::default();
        let d =
            |c: &Claims, p: &SecurityPolicy| decide(c, std::slice::from_ref(&r), p, &[4; 64], "s");
        // No minimum: accepted whatever the TCB.
        assert!(d(&c, &p).is_accept());
        p.snp_min_tcb = Some(tcb(3, 0, 8, 115, None));
        // The guest was launched on bootloader 2: relaunch it.
        let dec = d(&c, &p);
        assert_eq!(
            dec.reasons(),
            vec![&Reason::SnpTcbBelowMinimum {
                which: "launch",
                below: vec![("bootloader", 2, 3)]
            }]
        );
        assert!(dec.to_string().contains("relaunch"), "{dec}");
        // The current TCB is not held to the minimum: the reported one is
        // what the signature vouches for, and current >= committed anyway.
        let t = c.snp_tcb.as_mut().unwrap();
        t.launch = ok;
        t.current = tcb(0, 0, 0, 0, None);
        assert!(d(&c, &p).is_accept());
        // Several components of one TCB in one reason.
        c.snp_tcb.as_mut().unwrap().committed = tcb(3, 0, 7, 100, None);
        let dec = d(&c, &p);
        assert_eq!(
            dec.reasons(),
            vec![&Reason::SnpTcbBelowMinimum {
                which: "committed",
                below: vec![("SNP", 7, 8), ("microcode", 100, 115)]
            }]
        );
        assert!(
            dec.to_string().contains(
                "SEV-SNP committed TCB is below the minimum of session s: SNP SPL 7 < minimum 8, microcode SPL 100 < minimum 115"
            ),
            "{dec}"
        );
        // FMC: held to its minimum only where the report has one (Turin).
        let all = |t: SnpTcb| SnpTcbs {
            reported: t,
            committed: t,
            launch: t,
            current: t,
        };
        c.snp_tcb = Some(all(tcb(3, 0, 8, 115, Some(1))));
        p.snp_min_tcb = Some(tcb(3, 0, 8, 115, Some(2)));
        assert_eq!(d(&c, &p).reasons().len(), 3);
        p.snp_min_tcb = Some(tcb(3, 0, 8, 115, Some(1)));
        assert!(d(&c, &p).is_accept());
        c.snp_tcb = Some(all(ok));
        p.snp_min_tcb = Some(tcb(3, 0, 8, 115, Some(9)));
        assert!(d(&c, &p).is_accept());
        // Claims without a TCB fail closed; other TEEs are not affected.
        c.snp_tcb = None;
        assert_eq!(d(&c, &p).reasons(), vec![&Reason::SnpTcbMissing]);
        assert!(decide(&sgx_claims(), &[rule()], &p, &[4; 64], "s").is_accept());
    }

    #[test]
    fn report_data_mismatch_refused() {
        let d = decide(
            &sgx_claims(),
            &[rule()],
            &SecurityPolicy::default(),
            &[5; 64],
            "s",
        );
        assert_eq!(d.reasons(), vec![&Reason::ReportDataMismatch]);
    }

    #[test]
    fn rules_are_or_of_and() {
        let wrong = Rule {
            mrenclave: Some([1; 32]),
            mrsigner: Some([9; 32]),
            ..Rule::default()
        };
        let p = SecurityPolicy::default();
        let d = decide(
            &sgx_claims(),
            std::slice::from_ref(&wrong),
            &p,
            &[4; 64],
            "s",
        );
        assert!(matches!(d.reasons()[..], [Reason::NoRuleMatched(_)]));
        assert!(d.to_string().contains("MRSIGNER is 0202"), "{d}");
        let d = decide(&sgx_claims(), &[wrong, rule()], &p, &[4; 64], "s");
        assert!(d.is_accept());
        // Minimum SVN.
        let svn = Rule {
            mrsigner: Some([2; 32]),
            isvprodid: Some(3),
            isvsvn_min: Some(6),
            ..Rule::default()
        };
        let d = decide(&sgx_claims(), &[svn], &p, &[4; 64], "s");
        assert!(
            d.to_string().contains("SVN 5 is below the minimum 6"),
            "{d}"
        );
        // A rule with no identity for this TEE never matches.
        let d = decide(&sgx_claims(), &[Rule::default()], &p, &[4; 64], "s");
        assert!(!d.is_accept());
        assert_eq!(
            decide(&sgx_claims(), &[], &p, &[4; 64], "s").reasons(),
            vec![&Reason::NoRules]
        );
    }

    #[test]
    fn tcb_status_and_advisories_need_tolerance() {
        let mut c = sgx_claims();
        c.tcb_status = TcbStatus::OutOfDate;
        c.advisory_ids = vec!["INTEL-SA-00960".into(), "INTEL-SA-00982".into()];
        let mut p = SecurityPolicy::default();
        let d = decide(&c, &[rule()], &p, &[4; 64], "tee-manager");
        let text = d.to_string();
        assert!(
            text.contains("TCB status OutOfDate (advisories INTEL-SA-00960, INTEL-SA-00982) not tolerated by session tee-manager"),
            "{text}"
        );
        assert_eq!(d.reasons().len(), 2);
        p.tolerate.insert(Tolerance::OutdatedTcb);
        p.ignore_advisories.insert("INTEL-SA-00960".into());
        let d = decide(&c, &[rule()], &p, &[4; 64], "s");
        assert_eq!(
            d.reasons(),
            vec![&Reason::Advisories(vec!["INTEL-SA-00982".into()])]
        );
        p.ignore_advisories.insert("INTEL-SA-00982".into());
        assert!(decide(&c, &[rule()], &p, &[4; 64], "s").is_accept());
        // Every status maps to the tolerances it needs.
        c.advisory_ids.clear();
        for (status, tols) in [
            (
                TcbStatus::SWHardeningNeeded,
                vec![Tolerance::SoftwareHardeningNeeded],
            ),
            (
                TcbStatus::ConfigurationNeeded,
                vec![Tolerance::ConfigurationNeeded],
            ),
            (
                TcbStatus::ConfigurationAndSWHardeningNeeded,
                vec![
                    Tolerance::ConfigurationNeeded,
                    Tolerance::SoftwareHardeningNeeded,
                ],
            ),
            (TcbStatus::TDRelaunchAdvised, vec![Tolerance::OutdatedTcb]),
            (
                TcbStatus::OutOfDateConfigurationNeeded,
                vec![Tolerance::OutdatedTcb, Tolerance::ConfigurationNeeded],
            ),
        ] {
            c.tcb_status = status;
            let mut p = SecurityPolicy::default();
            assert!(!decide(&c, &[rule()], &p, &[4; 64], "s").is_accept());
            for t in &tols[1..] {
                p.tolerate.insert(*t);
            }
            assert!(!decide(&c, &[rule()], &p, &[4; 64], "s").is_accept());
            p.tolerate.insert(tols[0]);
            assert!(
                decide(&c, &[rule()], &p, &[4; 64], "s").is_accept(),
                "{status}"
            );
        }
    }

    #[test]
    fn flags_need_tolerance() {
        for (tol, set) in [
            (
                Tolerance::DebugMode,
                (|c: &mut Claims| c.debug = true) as fn(&mut Claims),
            ),
            (Tolerance::ServiceTd, |c| c.service_td = true),
            (Tolerance::SeptVeNotDisabled, |c| {
                c.sept_ve_disabled = Some(false)
            }),
            (Tolerance::Hyperthreading, |c| c.smt_enabled = Some(true)),
        ] {
            let mut c = sgx_claims();
            set(&mut c);
            let mut p = SecurityPolicy::default();
            let d = decide(&c, &[rule()], &p, &[4; 64], "s");
            assert_eq!(d.reasons().len(), 1, "{tol}");
            assert!(d.to_string().contains(tol.as_str()), "{d}");
            p.tolerate.insert(tol);
            assert!(decide(&c, &[rule()], &p, &[4; 64], "s").is_accept());
        }
    }

    #[test]
    fn simulation_only_in_simulation_mode() {
        let e = crate::simulation::make_evidence([3; 32], [4; 64]);
        let c = crate::Verifier::verify(&crate::simulation::SimulationVerifier, &e, 0).unwrap();
        let r = Rule {
            simulation_measurement: Some([3; 32]),
            ..Rule::default()
        };
        let mut p = SecurityPolicy::default();
        assert_eq!(
            decide(&c, std::slice::from_ref(&r), &p, &[4; 64], "s").reasons(),
            vec![&Reason::SimulationNotAllowed]
        );
        p.allow_simulation = true;
        assert!(decide(&c, &[r], &p, &[4; 64], "s").is_accept());
        // An SGX rule does not admit simulation evidence.
        assert!(!decide(&c, &[rule()], &p, &[4; 64], "s").is_accept());
        for t in [
            "debug-mode",
            "outdated-tcb",
            "service-td",
            "sept-ve-not-disabled",
        ] {
            assert_eq!(Tolerance::parse(t).unwrap().as_str(), t);
        }
    }
}
