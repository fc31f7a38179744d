//! Conversions from the session language (`sigil-session`) to the policy
//! inputs of [`crate::decide`]. Rules and tolerances need none: the policy
//! uses the session's own types.

use crate::policy::{Rule, SecurityPolicy};
use sigil_session as s;

impl From<&s::Security> for SecurityPolicy {
    fn from(sec: &s::Security) -> Self {
        SecurityPolicy {
            allow_simulation: sec.attestation_mode == s::AttestationMode::Simulation,
            tolerate: sec.tolerate.clone(),
            ignore_advisories: sec.ignore_advisories.clone(),
            snp_min_tcb: sec.snp_min_tcb.map(|m| crate::claims::SnpTcb {
                bootloader: m.bootloader,
                tee: m.tee,
                snp: m.snp,
                microcode: m.microcode,
                fmc: m.fmc,
            }),
        }
    }
}

/// The rules of service `service` and the security policy of `session`, or
/// `None` if the session has no such service.
pub fn policy_for(session: &s::Session, service: &str) -> Option<(Vec<Rule>, SecurityPolicy)> {
    let svc = session.service(service)?;
    Some((
        svc.attestation.clone(),
        SecurityPolicy::from(&session.security),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Tolerance;

    #[test]
    fn session_yaml_to_policy() {
        let yaml = "name: demo/tee-manager\nservices:\n  - name: app\n    command: /bin/app\n    attestation:\n      - mrenclave: 0101010101010101010101010101010101010101010101010101010101010101\nsecurity:\n  attestation:\n    mode: simulation\n    tolerate: [debug-mode, outdated-tcb]\n    ignore_advisories: [INTEL-SA-00615]\n";
        let session = s::Session::parse(yaml).unwrap_or_else(|e| panic!("{e}"));
        let (rules, p) = policy_for(&session, "app").unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].mrenclave, Some([1; 32]));
        assert!(p.allow_simulation);
        assert!(p.tolerate.contains(&Tolerance::DebugMode));
        assert!(p.tolerate.contains(&Tolerance::OutdatedTcb));
        assert!(p.ignore_advisories.contains("INTEL-SA-00615"));
        assert!(policy_for(&session, "other").is_none());
    }
}
