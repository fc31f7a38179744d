//! RSA key generation: the one place where Sigil uses a crypto crate other
//! than ring.
//!
//! ring can use RSA keys but cannot generate them, and sessions written for
//! SCONE (5GZORRO's among them) ask for `rsa-2048`/`rsa-3072` keys and
//! certificates. So only the *generation* (prime search, with the operating
//! system's randomness through `getrandom`, e = 65537) is done by RustCrypto's
//! `rsa` crate. Its key is serialised to PKCS#8 DER and immediately parsed and
//! checked by ring; every later use of the key (certificate signing through
//! rcgen's ring backend, the launcher's TLS) goes through ring. Nothing else
//! of the `rsa` crate is used. The alternatives and the reasoning are in
//! ARCHITECTURE.md, "Crypto backend".

use rsa::pkcs8::EncodePrivateKey;
use zeroize::Zeroizing;

use crate::CasError;

/// Generates an RSA key with a `bits`-bit modulus (2048 or 3072) and public
/// exponent 65537; returns its PKCS#8 DER after ring has accepted it.
///
/// Slow (RSA-3072 can take seconds): call it off the async threads. The CAS
/// runs every API handler in `spawn_blocking`, so it keeps serving.
pub fn generate(bits: usize) -> Result<Zeroizing<Vec<u8>>, CasError> {
    if bits != 2048 && bits != 3072 {
        return Err(CasError::Internal(format!(
            "RSA key size {bits} is not supported"
        )));
    }
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
        .map_err(|e| CasError::Internal(format!("RSA key generation failed: {e}")))?;
    // `SecretDocument` zeroizes itself; the copy we return is zeroized too.
    let doc = key
        .to_pkcs8_der()
        .map_err(|e| CasError::Internal(format!("RSA key encoding failed: {e}")))?;
    drop(key);
    let der = Zeroizing::new(doc.as_bytes().to_vec());
    let kp = ring::rsa::KeyPair::from_pkcs8(&der)
        .map_err(|e| CasError::Internal(format!("ring rejected a generated RSA key: {e}")))?;
    let got = sigil_session::keys::rsa_modulus_bits(&kp);
    if got != bits {
        return Err(CasError::Internal(format!(
            "generated RSA key has {got} bits, not {bits}"
        )));
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_2048_is_accepted_by_ring_and_signs() {
        let der = generate(2048).unwrap();
        let kp = ring::rsa::KeyPair::from_pkcs8(&der).unwrap();
        assert_eq!(sigil_session::keys::rsa_modulus_bits(&kp), 2048);
        let rng = ring::rand::SystemRandom::new();
        let mut sig = vec![0; kp.public().modulus_len()];
        kp.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, b"msg", &mut sig)
            .unwrap();
        let pk = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            kp.public().as_ref(),
        );
        pk.verify(b"msg", &sig).unwrap();
        // e = 65537.
        let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public());
        assert_eq!(c.e, [1, 0, 1]);
        // Two keys differ.
        assert_ne!(&der[..], &generate(2048).unwrap()[..]);
        assert!(generate(1024).is_err());
    }
}
