//! `sigil fs seal|open|verify` through the real binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory removed on drop (no extra dev-dependency).
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!(
            "sigil-fs-cli-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env_remove("SIGIL_FS_KEY")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "sigil failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .to_string()
}

fn tree(src: &Path) {
    fs::create_dir_all(src.join("app")).unwrap();
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("app/secret.py"), b"SECRET = 'hunter2-hunter2'\n").unwrap();
    fs::write(src.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(src.join("app/model.bin"), big).unwrap();
    std::os::unix::fs::symlink("secret.py", src.join("app/link")).unwrap();
}

#[test]
fn seal_prints_key_and_tag_and_open_restores_the_tree() {
    let t = Tmp::new("roundtrip");
    let src = t.path().join("src");
    tree(&src);
    let vol = t.path().join("vol");
    let out = ok(&sigil(&[
        "fs",
        "seal",
        src.to_str().unwrap(),
        vol.to_str().unwrap(),
        "--encrypt",
        "/app",
        "--chunk-size",
        "4096",
    ]));
    let key = field(&out, "key");
    let tag = field(&out, "tag");
    assert_eq!(key.len(), 64);
    assert_eq!(tag.len(), 64);

    let dst = t.path().join("dst");
    let o = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args([
            "fs",
            "open",
            vol.to_str().unwrap(),
            dst.to_str().unwrap(),
            "--tag",
            &tag,
        ])
        .env("SIGIL_FS_KEY", &key)
        .output()
        .unwrap();
    ok(&o);
    for f in ["app/secret.py", "app/model.bin", "etc/hosts"] {
        assert_eq!(
            fs::read(src.join(f)).unwrap(),
            fs::read(dst.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(
        fs::read_link(dst.join("app/link")).unwrap(),
        Path::new("secret.py")
    );

    let v = ok(&sigil(&[
        "fs",
        "verify",
        vol.to_str().unwrap(),
        "--key",
        &key,
        "--tag",
        &tag,
    ]));
    assert!(v.contains("sealed files: 2"), "{v}");
    assert!(v.contains("plain files (content not protected): 1"), "{v}");
}

#[test]
fn key_out_writes_a_private_key_file_and_tamper_is_reported_without_the_key() {
    let t = Tmp::new("keyfile");
    let src = t.path().join("src");
    tree(&src);
    let vol = t.path().join("vol");
    let keyfile = t.path().join("vol.key");
    let out = ok(&sigil(&[
        "fs",
        "seal",
        src.to_str().unwrap(),
        vol.to_str().unwrap(),
        "--default-region",
        "encrypted",
        "--plain",
        "etc/hosts",
        "--chunk-size",
        "4096",
        "--key-out",
        keyfile.to_str().unwrap(),
    ]));
    assert!(
        !out.contains("key:"),
        "key printed despite --key-out: {out}"
    );
    let tag = field(&out, "tag");
    let mode = fs::metadata(&keyfile).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = fs::read_to_string(&keyfile).unwrap().trim().to_string();
    assert_eq!(key.len(), 64);

    // --key-out never overwrites.
    let again = sigil(&[
        "fs",
        "seal",
        src.to_str().unwrap(),
        t.path().join("vol2").to_str().unwrap(),
        "--key-out",
        keyfile.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert_eq!(fs::read_to_string(&keyfile).unwrap().trim(), key);

    // Tamper with chunk 2 of the model: verify names file and chunk.
    let vol_key = ["--key-file", keyfile.to_str().unwrap(), "--tag", &tag];
    let mut data: Vec<PathBuf> = fs::read_dir(vol.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    data.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let model = data.last().unwrap();
    let mut bytes = fs::read(model).unwrap();
    bytes[40 + 2 * (4096 + 16) + 5] ^= 1;
    fs::write(model, &bytes).unwrap();
    let mut args = vec!["fs", "verify", vol.to_str().unwrap()];
    args.extend(vol_key);
    let o = sigil(&args);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("app/model.bin"), "{err}");
    assert!(err.contains("chunk 2"), "{err}");
    assert!(!err.contains(&key), "key in error output: {err}");

    let dst = t.path().join("dst");
    let mut args = vec!["fs", "open", vol.to_str().unwrap(), dst.to_str().unwrap()];
    args.extend(vol_key);
    let o = sigil(&args);
    assert!(!o.status.success());
    assert!(!dst.exists(), "failed open left plaintext behind");
}

#[test]
fn wrong_tag_and_bad_key_are_refused_clearly() {
    let t = Tmp::new("refuse");
    let src = t.path().join("src");
    tree(&src);
    let vol = t.path().join("vol");
    let out = ok(&sigil(&[
        "fs",
        "seal",
        src.to_str().unwrap(),
        vol.to_str().unwrap(),
        "--encrypt",
        "app",
    ]));
    let key = field(&out, "key");
    let tag = field(&out, "tag");
    let other_tag = "00".repeat(32);
    let o = sigil(&[
        "fs",
        "verify",
        vol.to_str().unwrap(),
        "--key",
        &key,
        "--tag",
        &other_tag,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("tag mismatch"), "{err}");

    let bad_key = format!("{}zz", &key[..62]);
    let o = sigil(&[
        "fs",
        "verify",
        vol.to_str().unwrap(),
        "--key",
        &bad_key,
        "--tag",
        &tag,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid volume key"), "{err}");
    assert!(!err.contains(&key[..62]), "key echoed: {err}");

    let o = sigil(&["fs", "verify", vol.to_str().unwrap(), "--tag", &tag]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--key-file"));

    let o = sigil(&[
        "fs",
        "seal",
        src.to_str().unwrap(),
        t.path().join("v2").to_str().unwrap(),
        "--chunk-size",
        "8",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("chunk size 8"));
}

#[test]
fn seal_with_an_existing_key_file() {
    let t = Tmp::new("existing-key");
    let src = t.path().join("src");
    tree(&src);
    let keyfile = t.path().join("k");
    fs::write(&keyfile, format!("{}\n", "ab".repeat(32))).unwrap();
    let vol = t.path().join("vol");
    let out = ok(&sigil(&[
        "fs",
        "seal",
        src.to_str().unwrap(),
        vol.to_str().unwrap(),
        "--encrypt",
        "app",
        "--key-file",
        keyfile.to_str().unwrap(),
    ]));
    assert!(!out.contains("key:"));
    let tag = field(&out, "tag");
    ok(&sigil(&[
        "fs",
        "verify",
        vol.to_str().unwrap(),
        "--key",
        &"ab".repeat(32),
        "--tag",
        &tag,
    ]));
}
