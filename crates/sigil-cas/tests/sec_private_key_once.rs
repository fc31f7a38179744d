//! A private key given in a session is checked by ring once per value:
//! parsing the session does it, and validation, the CAS's own check and
//! materializing the secrets reuse that verdict. Parsing an RSA key (ring
//! checks the key's consistency) is the expensive part of reading such a
//! session, and the CAS reads sessions on every attestation.

use std::collections::BTreeMap;

use sigil_cas::secrets::{materialize, validate};
use sigil_cas::MasterKey;
use sigil_session::keys::ring_key_checks_on_this_thread as checks;
use sigil_session::Session;

const RSA_PKCS1: &str = include_str!("../../sigil-session/tests/data/keys/rsa2048-pkcs1.pem");
const P384_PKCS8: &str = include_str!("../../sigil-session/tests/data/keys/p384-pkcs8.pem");

fn session() -> Session {
    let block = |k: &str| {
        k.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let yaml = format!(
        "name: keys\nsecrets:\n  - name: rsa\n    kind: private-key\n    value: |\n{}  - name: ec\n    kind: private-key\n    algorithm: ecdsa-p384\n    value: |\n{}",
        block(RSA_PKCS1),
        block(P384_PKCS8)
    );
    Session::parse(&yaml).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn given_keys_are_checked_by_ring_once() {
    let before = checks();
    let s = session();
    // One successful check per key (PKCS#1 is wrapped once, so one try).
    assert_eq!(checks() - before, 2, "ring checks while parsing");
    let after_parse = checks();
    s.validate().unwrap();
    validate(&s).unwrap();
    let key = MasterKey::from_bytes(&[7; 32]);
    let m = materialize(&key, &s, &BTreeMap::new(), &|_| Ok(None), false).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        checks(),
        after_parse,
        "validation, the CAS check or materialize parsed a given key again"
    );
    // A session built in code has no verdict yet: checked once, then kept.
    let copy = s.clone();
    let fresh = {
        let mut f = copy;
        for sec in &mut f.secrets {
            if let sigil_session::SecretKind::PrivateKey { value: Some(v), .. } = &mut sec.kind {
                *v = sigil_session::SecretValue::new(v.expose().to_vec());
            }
        }
        f
    };
    let before = checks();
    fresh.validate().unwrap();
    validate(&fresh).unwrap();
    assert_eq!(checks() - before, 2);
}
