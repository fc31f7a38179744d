//! Hostile local client files: `cas.toml` (the trusted CAS and its pin)
//! and the identity directory, as a user's editor, another program or an
//! attacker with write access to the config directory may leave them.
//! Every refusal is one line, names the file, never echoes a key and
//! never panics. Real files in a real temporary directory.

use sigil_client::config::CasTrust;
use sigil_client::{Fingerprint, Identity};

fn one_line(e: &impl std::fmt::Display) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "error is not one line: {m:?}");
    m
}

fn load_toml(text: &[u8]) -> Result<Option<CasTrust>, String> {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("cas.toml"), text).unwrap();
    CasTrust::load(d.path()).map_err(|e| one_line(&e))
}

#[test]
fn malformed_cas_toml_is_one_line_naming_the_file() {
    let fp = format!("sha256:{}", "ab".repeat(32));
    let cases: Vec<Vec<u8>> = vec![
        b"address = 3\n".to_vec(),
        // No fingerprint.
        b"address = \"h:1\"\n".to_vec(),
        // A fingerprint of the wrong length.
        b"address = \"h:1\"\nfingerprint = \"sha256:abab\"\n".to_vec(),
        b"address = \"h:1\"\nfingerprint = \"sha256:zz\"\n".to_vec(),
        b"[[[[".to_vec(),
        // Not UTF-8.
        vec![0xff, 0xfe, 0x00, 0x41],
        // A key given twice.
        format!("address = \"h:1\"\nfingerprint = \"{fp}\"\naddress = \"x:2\"\n").into_bytes(),
    ];
    for c in cases {
        let e = load_toml(&c).expect_err(&String::from_utf8_lossy(&c));
        assert!(e.contains("cas.toml"), "{e}");
    }
}

#[test]
fn a_large_cas_toml_is_refused_by_size() {
    // 64 KiB + 1 of comment: refused by its size, before parsing.
    let mut big = b"address = \"h:1\"\n".to_vec();
    big.resize(64 * 1024 + 1, b'#');
    let e = load_toml(&big).unwrap_err();
    assert!(e.contains("too large"), "{e}");
    // Exactly at the cap it is read (and refused for what it says).
    let mut at = b"#".repeat(64 * 1024 - 1);
    at.push(b'\n');
    let e = load_toml(&at).unwrap_err();
    assert!(!e.contains("too large"), "{e}");
}

#[test]
fn deeply_nested_toml_does_not_overflow_the_stack() {
    // Arrays nested 30 000 deep, read on a small stack: refused cleanly.
    let depth = 30_000;
    let mut t = String::from("x = ");
    t.push_str(&"[".repeat(depth));
    t.push_str(&"]".repeat(depth));
    let r = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || load_toml(t.as_bytes()))
        .unwrap()
        .join()
        .expect("no stack overflow or panic");
    assert!(r.is_err());
}

#[test]
fn a_good_cas_toml_still_loads() {
    let t = CasTrust {
        address: "127.0.0.1:8081".into(),
        fingerprint: Fingerprint([0xab; 32]),
    };
    let d = tempfile::tempdir().unwrap();
    t.save(d.path()).unwrap();
    let text = std::fs::read(d.path().join("cas.toml")).unwrap();
    assert_eq!(load_toml(&text).unwrap(), Some(t));
}

#[test]
fn hostile_identity_files_are_refused_without_echoing_the_key() {
    let good = Identity::generate("me", &[]).unwrap();
    let other = Identity::generate("other", &[]).unwrap();
    let key = good.key_pem().to_string();
    let secret_line = key.lines().nth(1).unwrap().to_string();
    let cert = good.cert_pem().into_bytes();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("empty", vec![], vec![]),
        ("not PEM", b"hello".to_vec(), b"world".to_vec()),
        ("not UTF-8", vec![0xff; 64], cert.clone()),
        ("certificate as key", cert.clone(), cert.clone()),
        (
            "key of another identity",
            other.key_pem().as_bytes().to_vec(),
            cert.clone(),
        ),
        (
            "broken base64",
            key.replace(&secret_line[..8], "!!!!!!!!").into_bytes(),
            cert.clone(),
        ),
        (
            "truncated key",
            key.as_bytes()[..key.len() / 2].to_vec(),
            cert.clone(),
        ),
        ("over 64 KiB", vec![b'A'; 64 * 1024 + 1], cert.clone()),
    ];
    for (what, k, c) in cases {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("key.pem"), &k).unwrap();
        std::fs::write(d.path().join("cert.pem"), &c).unwrap();
        let e = Identity::load(d.path()).expect_err(what);
        let m = one_line(&e);
        assert!(
            !m.contains(&secret_line),
            "{what}: the error echoes the key: {m}"
        );
        assert!(
            !format!("{e:?}").contains(&secret_line),
            "{what}: Debug echoes the key"
        );
    }
    // The real pair still loads.
    let d = tempfile::tempdir().unwrap();
    good.save(d.path()).unwrap();
    assert_eq!(
        Identity::load(d.path()).unwrap().fingerprint(),
        good.fingerprint()
    );
}
