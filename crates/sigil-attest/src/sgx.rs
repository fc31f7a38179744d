//! SGX: DCAP quote v3. The verification itself is in [`crate::dcap`].

use crate::dcap::{DcapKindVerifier, DcapVerifier};
use crate::evidence::TeeKind;
use std::sync::Arc;

/// A [`crate::Verifier`] for SGX evidence sharing `dcap`'s caches.
pub fn verifier(dcap: Arc<DcapVerifier>) -> DcapKindVerifier {
    DcapKindVerifier {
        kind: TeeKind::Sgx,
        inner: dcap,
    }
}
