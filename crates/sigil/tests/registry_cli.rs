//! `sigil image push|pull` against a real registry (Debian's
//! `docker-registry`) on loopback: plain HTTP with --insecure-registry, and
//! TLS with --ca-file plus htpasswd auth from $REGISTRY_AUTH_FILE.

use std::path::Path;
use std::process::{Command, Output};

use sigil_registry::testing::{available, LocalRegistry, RegistryConfig};
use sigil_testsupport::cli::{fails_with, ok, static_elf};
use sigil_testsupport::listing;
use sigil_testsupport::tools::require;

/// Whether the loopback registry can run; under CI it must.
fn registry_present() -> bool {
    require(available(), "docker-registry (scripts/setup.sh)")
}

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

/// `sigil ARGS… --insecure-registry HOST`: plain HTTP to the loopback
/// registry at HOST.
fn sigil_insecure(args: &[&str], host: &str) -> Output {
    let mut args = args.to_vec();
    args.extend(["--insecure-registry", host]);
    sigil(&args, &[])
}

const PIN: &str = "sha256:0101010101010101010101010101010101010101010101010101010101010101";

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
    if !registry_present() {
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

    let out = ok(&sigil_insecure(
        &["image", "push", src.to_str().unwrap(), &r],
        &reg.host,
    ));
    assert!(out.starts_with(&format!("pushed {r}@sha256:")), "{out}");
    assert!(out.contains("2 blobs uploaded, 0 already there"), "{out}");

    let dest = t.path().join("pulled");
    let out = ok(&sigil_insecure(
        &[
            "image",
            "pull",
            &format!("docker://{r}"),
            dest.to_str().unwrap(),
            "--platform",
            "linux/amd64",
        ],
        &reg.host,
    ));
    assert!(out.contains("1 layers"), "{out}");
    let img = sigil_image::source::SourceImage::open(&dest, None, &Default::default()).unwrap();
    assert_eq!(img.layers.len(), 1);
    let idx = std::fs::read_to_string(src.join("index.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&idx).unwrap();
    let want = want["manifests"][0]["digest"].as_str().unwrap();
    assert!(out.contains(want), "{out} / {want}");

    // A missing tag and a bad reference: one clear line each.
    fails_with(
        &sigil_insecure(
            &[
                "image",
                "pull",
                &format!("{}/cli/hello:missing", reg.host),
                t.path().join("m").to_str().unwrap(),
            ],
            &reg.host,
        ),
        "manifest unknown",
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
    if !registry_present() {
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
    // `sigil image pull R DEST --ca-file CA MORE…` with `env`.
    let pull = |dest: &str, more: &[&str], env: &[(&str, &Path)]| {
        let mut args = vec!["image", "pull", &r, dest, "--ca-file", ca.to_str().unwrap()];
        args.extend_from_slice(more);
        sigil(&args, env)
    };
    let dest = t.path().join("pulled");
    ok(&pull(
        dest.to_str().unwrap(),
        &[],
        &[("REGISTRY_AUTH_FILE", &good)],
    ));
    assert!(dest.join("index.json").is_file());

    // Wrong password: 401, the user named, the password nowhere.
    let o = pull(
        t.path().join("x").to_str().unwrap(),
        &[],
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
    ok(&pull(
        t.path().join("y").to_str().unwrap(),
        &["--authfile", good.to_str().unwrap()],
        &[("REGISTRY_AUTH_FILE", &bad)],
    ));
    let dc = t.path().join("docker");
    std::fs::create_dir(&dc).unwrap();
    std::fs::copy(&good, dc.join("config.json")).unwrap();
    ok(&pull(
        t.path().join("z").to_str().unwrap(),
        &[],
        &[("DOCKER_CONFIG", &dc)],
    ));
}

/// `sigil convert --from docker://REF --push REF`: the image comes from the
/// loopback registry and the converted one goes back to it, byte for byte
/// the archive written with --to.
#[test]
fn convert_pulls_from_and_pushes_to_the_registry() {
    if !registry_present() {
        return;
    }
    let ldconfig = static_elf();
    let reg = LocalRegistry::start(&RegistryConfig::default());
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("in");
    sigil_image::build::ImageBuilder::new()
        .layer(|l| l.add_host_elf(ldconfig, "bin/app"))
        .layer(|l| l.add_bytes("data/secret.txt", b"registry convert secret", 0o600))
        .entrypoint(["/bin/app"])
        .write_oci_dir(&src)
        .unwrap();
    let r_in = format!("{}/convert/in:1", reg.host);
    let r_out = format!("{}/convert/out:sigil", reg.host);
    ok(&sigil_insecure(
        &["image", "push", src.to_str().unwrap(), &r_in],
        &reg.host,
    ));
    let out = t.path().join("app.tar");
    let o = sigil_insecure(
        &[
            "convert",
            "--from",
            &format!("docker://{r_in}"),
            "--to",
            out.to_str().unwrap(),
            "--dir",
            "/data",
            "--launcher",
            ldconfig,
            "--cas-pin",
            PIN,
            "--allow-simulation",
            "--push",
            &r_out,
        ],
        &reg.host,
    );
    let stdout = ok(&o);
    assert!(
        stdout.contains(&format!("pushed {r_out}@sha256:")),
        "{stdout}"
    );
    // Only the outputs are left next to them: no pulled layout.
    let names = listing(t.path());
    assert_eq!(names, ["app.session.yaml", "app.tar", "in"], "{names:?}");

    // What the registry has is the archive that was written.
    let written = t.path().join("written");
    std::fs::create_dir(&written).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&out)
        .arg("-C")
        .arg(&written)
        .status()
        .unwrap();
    assert!(st.success());
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(written.join("index.json")).unwrap()).unwrap();
    let want = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
    let back = t.path().join("back");
    let auth = sigil_registry::Auth::Anonymous;
    let opts = sigil_registry::Options {
        insecure_registries: vec![reg.host.clone()],
        ..Default::default()
    };
    let p = sigil_registry::pull(&r_out, &back, &auth, &opts).unwrap();
    assert_eq!(p.manifest_digest, want);
    // The session and the image name point at the pushed reference.
    let img = sigil_image::source::SourceImage::open(&back, None, &Default::default()).unwrap();
    assert!(!img.layers.is_empty());
    let session = std::fs::read_to_string(t.path().join("app.session.yaml")).unwrap();
    assert!(!session.is_empty());
    assert_eq!(
        idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap(),
        r_out
    );

    // A missing input tag: one line, nothing written.
    let out2 = t.path().join("none.tar");
    let o = sigil_insecure(
        &[
            "convert",
            "--from",
            &format!("docker://{}/convert/in:missing", reg.host),
            "--to",
            out2.to_str().unwrap(),
            "--launcher",
            ldconfig,
            "--cas-pin",
            PIN,
        ],
        &reg.host,
    );
    fails_with(&o, "manifest unknown");
    assert!(!out2.exists());
}
