//! Simulation evidence: a documented structure that carries a measurement
//! and report data with NO hardware guarantee whatsoever. Anyone can make
//! it. [`crate::decide`] only accepts it when the session sets
//! `attestation.mode: simulation`.
//!
//! Layout (108 bytes, see `docs/evidence.md`):
//! `"SIGILSIM"` (8) | version u16 LE = 1 | reserved u16 = 0 |
//! measurement (32) | report data (64).

use crate::claims::Claims;
use crate::evidence::{Evidence, TeeKind};
use crate::{Verifier, VerifyError};

/// Magic at the start of simulation evidence.
pub const MAGIC: &[u8; 8] = b"SIGILSIM";
/// Version of the simulation structure.
pub const VERSION: u16 = 1;
/// Exact length of the simulation structure.
pub const LEN: usize = 8 + 2 + 2 + 32 + 64;

/// Builds simulation evidence for a workload (used by the launcher when no
/// TEE is present).
pub fn make_evidence(measurement: [u8; 32], report_data: [u8; 64]) -> Evidence {
    let mut data = Vec::with_capacity(LEN);
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&VERSION.to_le_bytes());
    data.extend_from_slice(&[0, 0]);
    data.extend_from_slice(&measurement);
    data.extend_from_slice(&report_data);
    Evidence::new(TeeKind::Simulation, data)
}

/// Parses the simulation structure: (measurement, report data).
pub fn parse(data: &[u8]) -> Result<([u8; 32], [u8; 64]), VerifyError> {
    let bad = |detail: String| VerifyError::Malformed {
        what: "simulation evidence",
        detail,
    };
    if data.len() != LEN {
        return Err(bad(format!("length {} (expected {LEN})", data.len())));
    }
    if &data[..8] != MAGIC {
        return Err(bad("missing SIGILSIM magic".into()));
    }
    let version = u16::from_le_bytes([data[8], data[9]]);
    if version != VERSION {
        return Err(bad(format!("unsupported version {version}")));
    }
    if data[10..12] != [0, 0] {
        return Err(bad("reserved bytes are not zero".into()));
    }
    let mut m = [0u8; 32];
    m.copy_from_slice(&data[12..44]);
    let mut rd = [0u8; 64];
    rd.copy_from_slice(&data[44..108]);
    Ok((m, rd))
}

/// Verifier for simulation evidence. "Verification" only parses: there is
/// nothing to check cryptographically.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimulationVerifier;

impl Verifier for SimulationVerifier {
    fn kind(&self) -> TeeKind {
        TeeKind::Simulation
    }

    fn verify(&self, evidence: &Evidence, _now: u64) -> Result<Claims, VerifyError> {
        evidence.check_limits()?;
        if evidence.kind != TeeKind::Simulation {
            return Err(VerifyError::Unsupported(evidence.kind));
        }
        let (m, rd) = parse(&evidence.data)?;
        let mut c = Claims::empty(TeeKind::Simulation);
        c.simulation_measurement = Some(m);
        c.report_data = rd;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_hostile() {
        let e = make_evidence([7; 32], [9; 64]);
        let c = SimulationVerifier.verify(&e, 0).unwrap();
        assert_eq!(c.simulation_measurement, Some([7; 32]));
        assert_eq!(c.report_data, [9; 64]);
        let json = e.to_json();
        let back = Evidence::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, e);
        for cut in 0..LEN {
            assert!(parse(&e.data[..cut]).is_err());
        }
        for i in 0..12 {
            let mut d = e.data.clone();
            d[i] ^= 1;
            assert!(parse(&d).is_err(), "byte {i}");
        }
    }
}
