//! Sealed blobs from a (possibly hostile) store file never open and never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = sigil_cas::MasterKey::from_bytes(&[7; 32]);
    assert!(k.open(&[b"secret", b"s", b"n"], data).is_err());
    let _ = sigil_cas::secrets::Material::open(&k, "s", "n", data);
});
