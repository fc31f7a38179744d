//! `sigil image push|pull` against a real registry (Debian's
//! `docker-registry`) on loopback: plain HTTP with --insecure-registry, and
//! TLS with --ca-file plus htpasswd auth from $REGISTRY_AUTH_FILE.

use std::path::Path;
use std::process::{Command, Output};

use sigil_registry::testing::{available, LocalRegistry, RegistryConfig};

fn sigil(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sigil"));
    c.args(args)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent-sigil-test-home")
        .env_remove("XDG_RUNTIME_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run sigil")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn layout(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("layout");
    sigil_image::build::ImageBuilder::new()
        .layer(|l| l.add_bytes("/hello", b"hello registry cli", 0o644))
        .cmd(["/hello"])
        .write_oci_dir(&out)
        .expect("build layout");
    out
}

#[test]
fn push_and_pull_over_plain_http_with_insecure_registry() {
    if !available() {
        return;
    }
    let reg = LocalRegistry::start(&RegistryConfig::default());
    let t = tempfile::tempdir().unwrap();
    let src = layout(t.path());
    let r = format!("{}/cli/hello:1", reg.host);

    // Without --insecure-registry the client insists on HTTPS.
    let o = sigil(&["image", "push", src.to_str().unwrap(), &r], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(&format!("--insecure-registry {}", reg.host)),
        "{err}"
    );

    let out = ok(&sigil(
        &[
            "image",
            "push",
            src.to_str().unwrap(),
            &r,
            "--insecure-registry",
            &reg.host,
        ],
        &[],
    ));
    assert!(out.starts_with(&format!("pushed {r}@sha256:")), "{out}");
    assert!(out.contains("2 blobs uploaded, 0 already there"), "{out}");

    let dest = t.path().join("pulled");
    let out = ok(&sigil(
        &[
            "image",
            "pull",
            &format!("docker://{r}"),
            dest.to_str().unwrap(),
            "--insecure-registry",
            &reg.host,
            "--platform",
            "linux/amd64",
        ],
        &[],
    ));
    assert!(out.contains("1 layers"), "{out}");
    let img = sigil_image::source::SourceImage::open(&dest, None, &Default::default()).unwrap();
    assert_eq!(img.layers.len(), 1);
    let idx = std::fs::read_to_string(src.join("index.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&idx).unwrap();
    let want = want["manifests"][0]["digest"].as_str().unwrap();
    assert!(out.contains(want), "{out} / {want}");

    // A missing tag and a bad reference: one clear line each.
    let o = sigil(
        &[
            "image",
            "pull",
            &format!("{}/cli/hello:missing", reg.host),
            t.path().join("m").to_str().unwrap(),
            "--insecure-registry",
            &reg.host,
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("manifest unknown"),
        "{err}"
    );
    let o = sigil(&["image", "pull", "Bad Ref", "x"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid image reference"), "{err}");
    let o = sigil(&["image", "pull", &r, "x", "--platform", "linux"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid platform"), "{err}");
}

#[test]
fn tls_registry_with_ca_file_and_registry_auth_file() {
    if !available() {
        return;
    }
    let pw = "cli-Secret-pw-42";
    let reg = LocalRegistry::start(&RegistryConfig {
        tls: true,
        user: Some(("ci".into(), pw.into())),
    });
    let t = tempfile::tempdir().unwrap();
    let src = layout(t.path());
    let ca = reg.ca_file.clone().unwrap();
    let r = format!("{}/cli/private:1", reg.host);
    let write_auth = |name: &str, pass: &str| {
        let p = t.path().join(name);
        std::fs::write(
            &p,
            serde_json::json!({"auths": {reg.host.clone(): {"username": "ci", "password": pass}}})
                .to_string(),
        )
        .unwrap();
        p
    };
    let good = write_auth("good.json", pw);
    let bad = write_auth("bad.json", "not-the-password");

    ok(&sigil(
        &[
            "image",
            "push",
            src.to_str().unwrap(),
            &r,
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        &[("REGISTRY_AUTH_FILE", &good)],
    ));
    let dest = t.path().join("pulled");
    ok(&sigil(
        &[
            "image",
            "pull",
            &r,
            dest.to_str().unwrap(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        &[("REGISTRY_AUTH_FILE", &good)],
    ));
    assert!(dest.join("index.json").is_file());

    // Wrong password: 401, the user named, the password nowhere.
    let o = sigil(
        &[
            "image",
            "pull",
            &r,
            t.path().join("x").to_str().unwrap(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        &[("REGISTRY_AUTH_FILE", &bad)],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("401") && err.contains("\"ci\""),
        "{err}"
    );
    assert!(
        !err.contains("not-the-password") && !err.contains(pw),
        "{err}"
    );

    // --authfile comes before $REGISTRY_AUTH_FILE; DOCKER_CONFIG works too.
    ok(&sigil(
        &[
            "image",
            "pull",
            &r,
            t.path().join("y").to_str().unwrap(),
            "--ca-file",
            ca.to_str().unwrap(),
            "--authfile",
            good.to_str().unwrap(),
        ],
        &[("REGISTRY_AUTH_FILE", &bad)],
    ));
    let dc = t.path().join("docker");
    std::fs::create_dir(&dc).unwrap();
    std::fs::copy(&good, dc.join("config.json")).unwrap();
    ok(&sigil(
        &[
            "image",
            "pull",
            &r,
            t.path().join("z").to_str().unwrap(),
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        &[("DOCKER_CONFIG", &dc)],
    ));
}
