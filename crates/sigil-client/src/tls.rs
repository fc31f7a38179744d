//! TLS configuration: the CAS is trusted by the SPKI SHA-256 pin of its
//! self-signed certificate, never by WebPKI. The pin replaces chain
//! validation only; the handshake signature is still verified with the ring
//! provider's algorithms, so a peer must hold the pinned private key.

use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::CertificateError;

use crate::{ClientError, Fingerprint, Identity};

// For `provider_signature_checks!` in other crates: the rustls it was built with.
#[doc(hidden)]
pub use rustls;

/// Label of the TLS exporter that binds attestation evidence to a connection.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-sigil-attestation-v1";

/// The ring crypto provider, the only one Sigil uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The handshake-signature methods of a rustls `ServerCertVerifier` or
/// `ClientCertVerifier` (`verify_tls12_signature`, `verify_tls13_signature`,
/// `supported_verify_schemes`), checked with the algorithms of the
/// verifier's `Arc<CryptoProvider>` field named by the argument (`provider`,
/// or `0` in a tuple struct). Every Sigil verifier that decides on the
/// certificate itself (a pin, any name, any client) expands this in its
/// trait impl, so the peer must still prove it holds the certificate's key,
/// with ring's algorithms, and the three methods are written once.
#[macro_export]
macro_rules! provider_signature_checks {
    ($provider:tt) => {
        $crate::provider_signature_checks!(@check $provider, verify_tls12_signature);
        $crate::provider_signature_checks!(@check $provider, verify_tls13_signature);

        fn supported_verify_schemes(
            &self,
        ) -> ::std::vec::Vec<$crate::tls::rustls::SignatureScheme> {
            self.$provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
    // The trait method and the rustls function that does its work share a name.
    (@check $provider:tt, $method:ident) => {
        fn $method(
            &self,
            message: &[u8],
            cert: &$crate::tls::rustls::pki_types::CertificateDer<'_>,
            dss: &$crate::tls::rustls::DigitallySignedStruct,
        ) -> ::std::result::Result<
            $crate::tls::rustls::client::danger::HandshakeSignatureValid,
            $crate::tls::rustls::Error,
        > {
            $crate::tls::rustls::crypto::$method(
                message,
                cert,
                dss,
                &self.$provider.signature_verification_algorithms,
            )
        }
    };
}

/// Accepts exactly the server certificate whose SPKI hashes to the pin.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl PinnedServerVerifier {
    /// A verifier for the given pin.
    pub fn new(pin: Fingerprint) -> Self {
        PinnedServerVerifier {
            pin,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of_cert_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if fp.ct_eq(&self.pin) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    crate::provider_signature_checks!(provider);
}

/// A TLS 1.3-only client configuration that pins the server and optionally
/// presents a client identity.
pub fn client_config(
    pin: Fingerprint,
    identity: Option<&Identity>,
) -> Result<rustls::ClientConfig, ClientError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier::new(pin)));
    let mut cfg = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.rustls_chain(), id.rustls_key())
            .map_err(|e| ClientError::Tls(format!("client identity unusable: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
