//! Arbitrary bytes as a DCAP quote: parsing, length checks, PEM chain and
//! PCK extension parsing must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_attest::collateral::{Collateral, CollateralRequest, CollateralSource};
use sigil_attest::dcap::DcapVerifier;
use std::sync::{Arc, OnceLock};

/// Collateral that is never valid: verification stops after parsing.
struct NoCollateral;
impl CollateralSource for NoCollateral {
    fn get(
        &self,
        _: &CollateralRequest,
        _: u64,
    ) -> Result<Arc<Collateral>, sigil_attest::VerifyError> {
        Err(sigil_attest::VerifyError::CollateralUnavailable("fuzz".into()))
    }
}

fuzz_target!(|data: &[u8]| {
    static V: OnceLock<DcapVerifier> = OnceLock::new();
    let v = V.get_or_init(|| DcapVerifier::new(Arc::new(NoCollateral)));
    let _ = v.verify_quote(data, 1_750_000_000);
    // The same bytes as a PCK chain beside a quote.
    let _ = v.verify_quote_with(data, Some(data), 1_750_000_000);
});
