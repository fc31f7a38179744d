//! TDX: DCAP quote v4 and v5 (TDX 1.0 and 1.5 bodies). The verification
//! itself is in [`crate::dcap`].

use crate::dcap::{DcapKindVerifier, DcapVerifier};
use crate::evidence::TeeKind;
use std::sync::Arc;

/// A [`crate::Verifier`] for TDX evidence sharing `dcap`'s caches.
pub fn verifier(dcap: Arc<DcapVerifier>) -> DcapKindVerifier {
    DcapKindVerifier {
        kind: TeeKind::Tdx,
        inner: dcap,
    }
}
