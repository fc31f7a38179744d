//! `sigil fs seal|open|verify` through the real binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sigil_testsupport::cli::{field, ok, run};
use sigil_testsupport::tempdir;

fn sigil(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env_remove("SIGIL_FS_KEY"))
}

/// `sigil fs seal SRC VOL EXTRA…`.
fn seal(src: &Path, vol: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["fs", "seal", src.to_str().unwrap(), vol.to_str().unwrap()];
    args.extend_from_slice(extra);
    sigil(&args)
}

/// `sigil fs verify VOL EXTRA…`.
fn verify(vol: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["fs", "verify", vol.to_str().unwrap()];
    args.extend_from_slice(extra);
    sigil(&args)
}

/// A temporary directory with the source tree in `src/`; `vol` names where
/// the volume goes.
fn workdir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempdir();
    let src = t.path().join("src");
    tree(&src);
    let vol = t.path().join("vol");
    (t, src, vol)
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
    let (t, src, vol) = workdir();
    let out = ok(&seal(
        &src,
        &vol,
        &["--encrypt", "/app", "--chunk-size", "4096"],
    ));
    let key = field(&out, "key");
    let tag = field(&out, "tag");
    assert_eq!(key.len(), 64);
    assert_eq!(tag.len(), 64);

    let dst = t.path().join("dst");
    ok(&run(Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["fs", "open", vol.to_str().unwrap(), dst.to_str().unwrap()])
        .args(["--tag", &tag])
        .env("SIGIL_FS_KEY", &key)));
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

    let v = ok(&verify(&vol, &["--key", &key, "--tag", &tag]));
    assert!(v.contains("sealed files: 2"), "{v}");
    assert!(v.contains("plain files (content not protected): 1"), "{v}");
}

#[test]
fn key_out_writes_a_private_key_file_and_tamper_is_reported_without_the_key() {
    let (t, src, vol) = workdir();
    let keyfile = t.path().join("vol.key");
    let out = ok(&seal(
        &src,
        &vol,
        &[
            "--default-region",
            "encrypted",
            "--plain",
            "etc/hosts",
            "--chunk-size",
            "4096",
            "--key-out",
            keyfile.to_str().unwrap(),
        ],
    ));
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
    let again = seal(
        &src,
        &t.path().join("vol2"),
        &["--key-out", keyfile.to_str().unwrap()],
    );
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
    let o = verify(&vol, &vol_key);
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
    let (t, src, vol) = workdir();
    let out = ok(&seal(&src, &vol, &["--encrypt", "app"]));
    let key = field(&out, "key");
    let tag = field(&out, "tag");
    let other_tag = "00".repeat(32);
    let o = verify(&vol, &["--key", &key, "--tag", &other_tag]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("tag mismatch"), "{err}");

    let bad_key = format!("{}zz", &key[..62]);
    let o = verify(&vol, &["--key", &bad_key, "--tag", &tag]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid volume key"), "{err}");
    assert!(!err.contains(&key[..62]), "key echoed: {err}");

    let o = verify(&vol, &["--tag", &tag]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--key-file"));

    let o = seal(&src, &t.path().join("v2"), &["--chunk-size", "8"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("chunk size 8"));
}

#[test]
fn seal_with_an_existing_key_file() {
    let (t, src, vol) = workdir();
    let keyfile = t.path().join("k");
    fs::write(&keyfile, format!("{}\n", "ab".repeat(32))).unwrap();
    let out = ok(&seal(
        &src,
        &vol,
        &["--encrypt", "app", "--key-file", keyfile.to_str().unwrap()],
    ));
    assert!(!out.contains("key:"));
    let tag = field(&out, "tag");
    ok(&verify(&vol, &["--key", &"ab".repeat(32), "--tag", &tag]));
}
