//! TLS configuration: the CAS is trusted by the SPKI SHA-256 pin of its
//! self-signed certificate, never by WebPKI. The pin replaces chain
//! validation only; the handshake signature is still verified with the ring
//! provider's algorithms, so a peer must hold the pinned private key.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::{ClientError, Fingerprint, Identity};

/// Label of the TLS exporter that binds attestation evidence to a connection.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-sigil-attestation-v1";

/// The ring crypto provider, the only one Sigil uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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
