//! Arbitrary bytes as evidence JSON, then through the simulation verifier.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_attest::Verifier as _;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = sigil_attest::Evidence::from_json(data) {
        let _ = sigil_attest::simulation::SimulationVerifier.verify(&e, 0);
        let _ = e.to_json();
    }
    let _ = sigil_attest::simulation::parse(data);
});
