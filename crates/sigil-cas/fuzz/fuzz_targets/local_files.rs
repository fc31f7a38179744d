//! Local files that a user may have edited or another program may have
//! written. Byte 0 says which: the client's `cas.toml` (trusted CAS
//! address and pin, read by `CasTrust::load` under its 64 KiB cap), its
//! identity directory (`key.pem`, `cert.pem`; a `\0` splits key from
//! certificate), or the CAS master key file (64 hex digits, at most
//! 1 KiB, mode 0600). Nothing may panic; errors are one line and never
//! contain the file's bytes; a loaded trust saves and loads back equal; a
//! loaded identity is a consistent pair.
#![no_main]

mod common;

use sigil_client::config::CasTrust;
use sigil_client::Identity;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [which, payload @ ..] = data else { return };
    let dir = common::scratch();
    if which % 3 == 2 {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.path().join("master.key");
        std::fs::write(&p, payload).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let src = sigil_cas::MasterKeySource::File(p);
        if let Err(e) = sigil_cas::MasterKey::load(&src, false) {
            let m = e.to_string();
            assert!(!m.contains('\n'), "{m:?}");
            if payload.len() >= 8 {
                if let Ok(t) = std::str::from_utf8(payload) {
                    assert!(
                        !m.contains(t.trim()) || t.trim().len() < 8,
                        "error echoes the key file"
                    );
                }
            }
        }
    } else if which % 3 == 0 {
        std::fs::write(dir.path().join("cas.toml"), payload).unwrap();
        let loaded = CasTrust::load(dir.path());
        if let Err(e) = &loaded {
            let m = e.to_string();
            assert!(!m.contains('\n'), "{m:?}");
        }
        if let Ok(Some(t)) = loaded {
            let _ = sigil_client::client::parse_address(&t.address);
            let again = dir.path().join("again");
            t.save(&again).expect("a loaded trust saves");
            assert_eq!(CasTrust::load(&again).unwrap(), Some(t));
        }
    } else {
        let (key, cert) = match payload.iter().position(|b| *b == 0) {
            Some(i) => (&payload[..i], &payload[i + 1..]),
            None => (payload, &b""[..]),
        };
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        if let Ok(id) = Identity::load(dir.path()) {
            // What loads is a consistent pair that reloads to itself.
            let again = Identity::from_pem(&id.key_pem(), &id.cert_pem()).unwrap();
            assert_eq!(again.fingerprint(), id.fingerprint());
        }
    }
});
