//! Fuzzes the private-key value decoder (PEM/DER, PKCS#8/PKCS#1/SEC1): it
//! must never panic; an error is one line; whatever it accepts is PKCS#8
//! that ring parses as the reported algorithm, and decodes to itself again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sigil_session::keys::{normalize_private_key, pkcs8_algorithm};

fuzz_target!(|data: &[u8]| {
    match normalize_private_key(data) {
        Ok((der, alg)) => {
            assert_eq!(pkcs8_algorithm(&der).expect("accepted key parses"), alg);
            let (again, alg2) = normalize_private_key(&der).expect("PKCS#8 DER is accepted");
            assert_eq!((&again[..], alg2), (&der[..], alg));
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
