//! Client and server TLS identities: a private key and a self-signed
//! certificate. The certificate carries no trust; its SPKI fingerprint is
//! the identity.

use std::fmt;
use std::fs;
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::{ClientError, Fingerprint};

/// Largest PEM file we read for an identity (keys and certs are small).
const MAX_PEM_BYTES: u64 = 64 * 1024;

/// File name of the private key inside an identity directory.
pub const KEY_FILE: &str = "key.pem";
/// File name of the certificate inside an identity directory.
pub const CERT_FILE: &str = "cert.pem";

/// A TLS identity: ECDSA P-256 PKCS#8 key and a self-signed certificate.
#[derive(Clone)]
pub struct Identity {
    key_pkcs8: Zeroizing<Vec<u8>>,
    cert_der: Vec<u8>,
    fingerprint: Fingerprint,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Identity {
    /// Generates a new ECDSA P-256 key and a self-signed certificate for it.
    pub fn generate(common_name: &str, dns_names: &[String]) -> Result<Identity, ClientError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| ClientError::Certificate(format!("key generation failed: {e}")))?;
        let mut params = rcgen::CertificateParams::new(dns_names.to_vec())
            .map_err(|e| ClientError::Certificate(format!("bad certificate name: {e}")))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params
            .self_signed(&key)
            .map_err(|e| ClientError::Certificate(format!("self-signing failed: {e}")))?;
        Identity::from_der(key.serialize_der(), cert.der().to_vec())
    }

    /// Builds an identity from a PKCS#8 DER key and a DER certificate.
    pub fn from_der(key_pkcs8: Vec<u8>, cert_der: Vec<u8>) -> Result<Identity, ClientError> {
        let key_pkcs8 = Zeroizing::new(key_pkcs8);
        let fingerprint = Fingerprint::of_cert_der(&cert_der)?;
        // Refuse a key that does not belong to the certificate: the TLS
        // handshake would fail later with a far less helpful message.
        let kp = rcgen::KeyPair::try_from(key_pkcs8.as_slice())
            .map_err(|e| ClientError::Certificate(format!("unusable private key: {e}")))?;
        if Fingerprint::of_spki_der(&kp.public_key_der()) != fingerprint {
            return Err(ClientError::Certificate(
                "the private key does not match the certificate".into(),
            ));
        }
        Ok(Identity {
            key_pkcs8,
            cert_der,
            fingerprint,
        })
    }

    /// Builds an identity from PEM text (PKCS#8 key, certificate).
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Identity, ClientError> {
        let key = match rustls_pemfile::private_key(&mut key_pem.as_bytes()) {
            Ok(Some(PrivateKeyDer::Pkcs8(k))) => k.secret_pkcs8_der().to_vec(),
            Ok(Some(_)) => {
                return Err(ClientError::Certificate(
                    "the private key must be PKCS#8 (`BEGIN PRIVATE KEY`)".into(),
                ))
            }
            Ok(None) => return Err(ClientError::Certificate("no private key in PEM".into())),
            Err(e) => return Err(ClientError::Certificate(format!("bad key PEM: {e}"))),
        };
        let cert = match rustls_pemfile::certs(&mut cert_pem.as_bytes()).next() {
            Some(Ok(c)) => c.to_vec(),
            Some(Err(e)) => {
                return Err(ClientError::Certificate(format!(
                    "bad certificate PEM: {e}"
                )))
            }
            None => return Err(ClientError::Certificate("no certificate in PEM".into())),
        };
        Identity::from_der(key, cert)
    }

    /// Loads `key.pem` and `cert.pem` from a directory.
    pub fn load(dir: &Path) -> Result<Identity, ClientError> {
        let key = read_limited(&dir.join(KEY_FILE))?;
        let cert = read_limited(&dir.join(CERT_FILE))?;
        Identity::from_pem(&key, &cert)
    }

    /// Writes `key.pem` (mode 0600) and `cert.pem` into `dir`, creating it
    /// (mode 0700). Refuses to overwrite an existing key. Each file is
    /// written to a temporary file, fsynced and then moved into place, so a
    /// failure leaves neither a partial key nor a key without certificate.
    pub fn save(&self, dir: &Path) -> Result<(), ClientError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ClientError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let key_pem = self.key_pem();
        crate::atomic::create_new(&key_path, key_pem.as_bytes(), 0o600)
            .map_err(|e| ClientError::Io(format!("cannot create {}: {e}", key_path.display())))?;
        if let Err(e) = crate::atomic::replace(&cert_path, self.cert_pem().as_bytes(), 0o644) {
            // Take the key back out: a key without its certificate is unusable
            // and would block the next attempt.
            let _ = fs::remove_file(&key_path);
            return Err(ClientError::Io(format!(
                "cannot write {}: {e}",
                cert_path.display()
            )));
        }
        Ok(())
    }

    /// The SPKI SHA-256 fingerprint of this identity.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// The private key, PKCS#8 PEM. Secret: do not log.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem_encode("PRIVATE KEY", &self.key_pkcs8))
    }

    /// The private key, PKCS#8 DER. Secret: do not log.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        &self.key_pkcs8
    }

    /// rustls form of the certificate chain (one self-signed cert).
    pub fn rustls_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert_der.clone())]
    }

    /// rustls form of the private key.
    pub fn rustls_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.to_vec()))
    }
}

fn read_limited(path: &Path) -> Result<Zeroizing<String>, ClientError> {
    read_capped(path, MAX_PEM_BYTES).map_err(|e| match e {
        ReadCapped::Io(e) => ClientError::Io(format!(
            "cannot read {}: {e} (create an identity with `sigil identity create`)",
            path.display()
        )),
        ReadCapped::TooLarge => ClientError::Io(format!(
            "{} is larger than {MAX_PEM_BYTES} bytes; not an identity file",
            path.display()
        )),
    })
}

/// Why [`read_capped`] failed.
pub(crate) enum ReadCapped {
    Io(std::io::Error),
    TooLarge,
}

/// Reads a UTF-8 file of at most `limit` bytes into a zeroized buffer. The
/// limit is enforced while reading, not from the metadata: a FIFO or a
/// device (length 0 in `stat`) must not make us read without end.
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<Zeroizing<String>, ReadCapped> {
    use std::io::Read;
    let f = fs::File::open(path).map_err(ReadCapped::Io)?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(ReadCapped::Io)?;
    if buf.len() as u64 > limit {
        return Err(ReadCapped::TooLarge);
    }
    let text = std::str::from_utf8(&buf).map_err(|_| {
        ReadCapped::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8",
        ))
    })?;
    Ok(Zeroizing::new(text.to_string()))
}

/// PEM-encodes DER bytes under a label (64-column base64 lines).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so each chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate("test", &[]).unwrap();
        id.save(dir.path()).unwrap();
        let again = Identity::load(dir.path()).unwrap();
        assert_eq!(again.fingerprint(), id.fingerprint());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No overwrite of an existing key.
        assert!(id.save(dir.path()).is_err());
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let id = Identity::generate("test", &[]).unwrap();
        let dbg = format!("{id:?}");
        let pem = id.key_pem();
        let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        for line in body {
            assert!(!dbg.contains(line));
        }
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn mismatched_key_and_cert_are_refused() {
        let a = Identity::generate("a", &[]).unwrap();
        let b = Identity::generate("b", &[]).unwrap();
        let err = Identity::from_pem(&a.key_pem(), &b.cert_pem()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn garbage_pem_is_refused() {
        assert!(Identity::from_pem("garbage", "garbage").is_err());
    }

    #[test]
    fn failed_save_leaves_nothing_and_never_clobbers() {
        match std::env::var_os("SIGIL_TEST_CHILD_DIR") {
            Some(d) => {
                // Child: every write to a regular file fails (EFBIG).
                let d = std::path::PathBuf::from(d).join("new");
                let e = Identity::generate("x", &[]).unwrap().save(&d).unwrap_err();
                assert!(e.to_string().contains("cannot create"), "{e}");
                let names: Vec<_> = fs::read_dir(&d).unwrap().collect();
                assert!(names.is_empty(), "partial files left: {names:?}");
            }
            None => {
                let d = tempfile::tempdir().unwrap();
                let exe = std::env::current_exe().unwrap();
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg("trap '' XFSZ; ulimit -f 0 && exec \"$0\" --exact \"$1\" --nocapture --test-threads=1")
                    .arg(exe)
                    .arg("identity::tests::failed_save_leaves_nothing_and_never_clobbers")
                    .env("SIGIL_TEST_CHILD_DIR", d.path())
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success() && text.contains("1 passed"), "{text}");
                // An existing identity is neither replaced nor mixed.
                let dir = d.path().join("id");
                let a = Identity::generate("a", &[]).unwrap();
                a.save(&dir).unwrap();
                let key = fs::read(dir.join(KEY_FILE)).unwrap();
                let cert = fs::read(dir.join(CERT_FILE)).unwrap();
                let b = Identity::generate("b", &[]).unwrap();
                assert!(b.save(&dir).is_err());
                assert_eq!(fs::read(dir.join(KEY_FILE)).unwrap(), key);
                assert_eq!(fs::read(dir.join(CERT_FILE)).unwrap(), cert);
                assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
                assert_eq!(Identity::load(&dir).unwrap().fingerprint(), a.fingerprint());
            }
        }
    }
}
