//! Pull and push against a real registry (Debian's `docker-registry`) on
//! loopback: round trips with digest comparison, multi-platform indexes, TLS
//! with a private CA and htpasswd basic auth from a docker config.json,
//! refused credentials, corrupted content, missing tags, and interoperability
//! with real podman in both directions.

use std::io::Write;
use std::path::{Path, PathBuf};

use sigil_registry::testing::{available, LocalRegistry, RegistryConfig};
use sigil_testsupport::tools::require;

/// Whether the loopback registry can run; under CI it must.
fn registry_present() -> bool {
    require(available(), "docker-registry (scripts/setup.sh)")
}
use sigil_registry::{pull, push, Auth, AuthFiles, Error, Options, Platform};

fn insecure(reg: &LocalRegistry) -> Options {
    Options {
        insecure_registries: vec![reg.host.clone()],
        ..Default::default()
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
    )
}

/// A test image (two gzip layers) as an OCI layout directory, via sigil-image.
fn built_layout(dir: &Path, marker: &str) -> PathBuf {
    let out = dir.join(format!("layout-{marker}"));
    sigil_image::build::ImageBuilder::new()
        .layer(|l| l.add_bytes("/etc/marker", marker.as_bytes(), 0o644))
        .layer(|l| {
            l.add_dir("/app", 0o755)
                .add_bytes("/app/data", &vec![7u8; 300_000], 0o600)
        })
        .entrypoint(["/app/run"])
        .env("MARKER", marker)
        .write_oci_dir(&out)
        .expect("build layout");
    out
}

fn index_json(layout: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

fn top_digest(layout: &Path) -> String {
    index_json(layout)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

fn manifest_blobs(layout: &Path, manifest_digest: &str) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_slice(&blob(layout, manifest_digest)).unwrap();
    let mut v = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        v.push(l["digest"].as_str().unwrap().to_string());
    }
    v
}

fn leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".sigil-pull-"))
        .collect()
}

#[test]
fn push_then_pull_round_trip_keeps_every_digest() {
    if !registry_present() {
        return;
    }
    let reg = LocalRegistry::start(&RegistryConfig::default());
    let t = tempfile::tempdir().unwrap();
    let src = built_layout(t.path(), "round-trip");
    let r = format!("{}/sigil/round:v1", reg.host);
    let opts = insecure(&reg);

    let pushed = push(&src, &r, &Auth::Anonymous, &opts).unwrap();
    let want = top_digest(&src);
    assert_eq!(pushed.digest, want);
    assert_eq!(pushed.blobs_uploaded, 3, "config + 2 layers");
    assert_eq!(pushed.blobs_skipped, 0);

    let dest = t.path().join("pulled");
    let pulled = pull(&r, &dest, &Auth::Anonymous, &opts).unwrap();
    assert_eq!(pulled.manifest_digest, want);
    assert_eq!(pulled.layers, 2);
    assert!(pulled.index_digest.is_none());
    assert_eq!(blob(&dest, &want), blob(&src, &want), "manifest bytes");
    for d in manifest_blobs(&src, &want) {
        let b = blob(&dest, &d);
        assert_eq!(sha256(&b), d);
        assert_eq!(b, blob(&src, &d));
    }
    let idx = index_json(&dest);
    assert_eq!(
        idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        r.as_str()
    );
    assert!(dest.join("oci-layout").is_file());

    // sigil-image reads the pulled layout, layers and all.
    let img = sigil_image::source::SourceImage::open(&dest, None, &sigil_image::Limits::default())
        .unwrap();
    assert_eq!(img.layers.len(), 2);
    let mut layer = img.open_layer(0).unwrap();
    let mut tar_bytes = Vec::new();
    std::io::copy(&mut layer, &mut tar_bytes).unwrap();
    assert!(tar_bytes.windows(10).any(|w| w == b"round-trip"));

    // Pushing again uploads nothing; pushing an OCI archive of it under
    // another tag also works and skips every blob.
    let again = push(&src, &r, &Auth::Anonymous, &opts).unwrap();
    assert_eq!((again.blobs_uploaded, again.blobs_skipped), (0, 3));
    let ar = t.path().join("image.tar");
    {
        let f = std::fs::File::create(&ar).unwrap();
        let mut b = tar::Builder::new(f);
        b.append_dir_all(".", &src).unwrap();
        b.finish().unwrap();
    }
    let r2 = format!("{}/sigil/round:from-archive", reg.host);
    let p2 = push(&ar, &r2, &Auth::Anonymous, &opts).unwrap();
    assert_eq!(p2.digest, want);
    assert_eq!(p2.blobs_skipped, 3);
    // By digest too.
    let by_digest = format!("{}/sigil/round@{want}", reg.host);
    let d2 = t.path().join("by-digest");
    assert_eq!(
        pull(&by_digest, &d2, &Auth::Anonymous, &opts)
            .unwrap()
            .manifest_digest,
        want
    );

    // Refuses to overwrite a non-empty destination.
    let e = pull(&r, &dest, &Auth::Anonymous, &opts).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    assert!(leftovers(t.path()).is_empty());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn one_file_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let d = sha256(bytes);
    let p = layout
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    std::fs::write(p, bytes).unwrap();
    (d, bytes.len())
}

/// A two-platform layout (linux/amd64 and linux/arm64/v8) under one index.
fn multi_arch_layout(dir: &Path) -> (PathBuf, String, String, String) {
    let l = dir.join("multi");
    std::fs::create_dir_all(l.join("blobs/sha256")).unwrap();
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let tar = one_file_tar("arch", arch.as_bytes());
        let diff_id = sha256(&tar);
        let (ld, ls) = put_blob(&l, &gzip(&tar));
        let cfg = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/arch"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        let (cd, cs) = put_blob(&l, &serde_json::to_vec(&cfg).unwrap());
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}],
        });
        let (md, ms) = put_blob(&l, &serde_json::to_vec(&m).unwrap());
        let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms, "platform": platform,
        }));
        digests.push(md);
    }
    let idx = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let (xd, xs) = put_blob(&l, &serde_json::to_vec(&idx).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": xd, "size": xs}],
    });
    std::fs::write(l.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    std::fs::write(l.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (l, xd, digests[0].clone(), digests[1].clone())
}

#[test]
fn multi_platform_index_resolves_to_the_requested_platform() {
    if !registry_present() {
        return;
    }
    let reg = LocalRegistry::start(&RegistryConfig::default());
    let t = tempfile::tempdir().unwrap();
    let (src, index, amd64, arm64) = multi_arch_layout(t.path());
    let r = format!("{}/sigil/multi:1", reg.host);
    let opts = insecure(&reg);
    let pushed = push(&src, &r, &Auth::Anonymous, &opts).unwrap();
    assert_eq!(pushed.digest, index);
    assert_eq!(pushed.blobs_uploaded, 4);

    let d1 = t.path().join("amd64");
    let p = pull(&r, &d1, &Auth::Anonymous, &opts).unwrap();
    assert_eq!(p.manifest_digest, amd64);
    assert_eq!(p.index_digest.as_deref(), Some(index.as_str()));
    let idx = index_json(&d1);
    assert_eq!(idx["manifests"][0]["platform"]["architecture"], "amd64");
    let img = sigil_image::source::SourceImage::open(&d1, None, &Default::default()).unwrap();
    assert_eq!(img.config["architecture"], "amd64");

    let d2 = t.path().join("arm64");
    let arm = Options {
        platform: "linux/arm64".parse::<Platform>().unwrap(),
        ..opts.clone()
    };
    let p = pull(&r, &d2, &Auth::Anonymous, &arm).unwrap();
    assert_eq!(p.manifest_digest, arm64);
    let img = sigil_image::source::SourceImage::open(&d2, None, &Default::default()).unwrap();
    assert_eq!(img.config["architecture"], "arm64");

    let s390 = Options {
        platform: "linux/s390x".parse::<Platform>().unwrap(),
        ..opts.clone()
    };
    let d3 = t.path().join("s390x");
    let e = pull(&r, &d3, &Auth::Anonymous, &s390)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no linux/s390x image") && e.contains("linux/amd64, linux/arm64/v8"),
        "{e}"
    );
    assert!(!d3.exists());
    assert!(leftovers(t.path()).is_empty());
}

fn auth_file(dir: &Path, host: &str, user: &str, pass: &str) -> PathBuf {
    use base64::Engine as _;
    let p = dir.join("auth.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::write(
        &p,
        serde_json::to_vec(&serde_json::json!({"auths": {host: {"auth": auth}}})).unwrap(),
    )
    .unwrap();
    p
}

/// Everything logged (TRACE, every crate) while `f` runs on this thread.
/// The blocking API runs its runtime on the calling thread, so this sees
/// oci-client's, reqwest's, hyper's and rustls' events too.
fn capture_logs(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    tracing::subscriber::with_default(sub, f);
    let v = buf.0.lock().unwrap().clone();
    String::from_utf8_lossy(&v).to_string()
}

#[test]
fn tls_registry_with_private_ca_and_htpasswd_auth() {
    if !registry_present() {
        return;
    }
    let password = "Sup3r-secret-pa55";
    let reg = LocalRegistry::start(&RegistryConfig {
        tls: true,
        user: Some(("sigil".into(), password.into())),
    });
    let t = tempfile::tempdir().unwrap();
    let src = built_layout(t.path(), "tls");
    let r = format!("{}/private/app:1", reg.host);
    let with_ca = Options {
        ca_file: reg.ca_file.clone(),
        ..Default::default()
    };
    let files = AuthFiles {
        paths: vec![
            t.path().join("absent.json"),
            auth_file(t.path(), &reg.host, "sigil", password),
        ],
    };
    let auth = files.lookup(&reg.host).unwrap();
    assert!(matches!(auth, Auth::Basic { .. }));

    let pushed = push(&src, &r, &auth, &with_ca).unwrap();
    let dest = t.path().join("pulled");
    let pulled = pull(&r, &dest, &auth, &with_ca).unwrap();
    assert_eq!(pulled.manifest_digest, pushed.digest);

    // Without the CA: a TLS error, not a silent downgrade.
    let e = pull(&r, &t.path().join("x1"), &auth, &Options::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.to_lowercase().contains("certificate") || msg.contains("Unknown"),
        "{msg}"
    );

    // Wrong password: a clear 401 naming the user, never the password.
    let wrong_pw = "Wr0ng-pa55word-xyz";
    let wrong = Auth::basic("sigil", wrong_pw);
    for e in [
        pull(&r, &t.path().join("x2"), &wrong, &with_ca).unwrap_err(),
        push(
            &src,
            &format!("{}/private/other:1", reg.host),
            &wrong,
            &with_ca,
        )
        .unwrap_err(),
    ] {
        assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
        let (d, s) = (format!("{e:?}"), e.to_string());
        assert!(s.contains("401") && s.contains("\"sigil\""), "{s}");
        assert!(!s.contains('\n'));
        for text in [&d, &s] {
            assert!(
                !text.contains(wrong_pw) && !text.contains(password),
                "{text}"
            );
        }
    }
    // Nor in the logs, at the most verbose level, of a pull with the right
    // password and a push with a wrong one (nor the basic-auth header value).
    let logs = capture_logs(|| {
        let d = t.path().join("logged");
        pull(&r, &d, &auth, &with_ca).unwrap();
        let _ = push(&src, &r, &wrong, &with_ca);
    });
    assert!(logs.len() > 1000, "expected trace logs, got {}", logs.len());
    for secret in [password, wrong_pw] {
        assert!(!logs.contains(secret));
        let header = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!("sigil:{secret}"))
        };
        assert!(!logs.contains(&header));
    }
    // Credentials never appear in Debug output of the auth or options.
    let dbg = format!("{auth:?} {wrong:?} {with_ca:?} {files:?}");
    assert!(!dbg.contains(password) && !dbg.contains(wrong_pw), "{dbg}");

    // No credentials at all.
    let e = pull(&r, &t.path().join("x3"), &Auth::Anonymous, &with_ca).unwrap_err();
    assert!(
        e.to_string().contains("401") && e.to_string().contains("without credentials"),
        "{e}"
    );
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn corrupted_blob_or_manifest_is_refused_and_nothing_is_left() {
    if !registry_present() {
        return;
    }
    let reg = LocalRegistry::start(&RegistryConfig::default());
    let t = tempfile::tempdir().unwrap();
    let src = built_layout(t.path(), "corrupt");
    let opts = insecure(&reg);
    let r = format!("{}/sigil/corrupt:1", reg.host);
    let pushed = push(&src, &r, &Auth::Anonymous, &opts).unwrap();

    // Flip one byte of the last layer in the registry's storage (same size).
    let layer = manifest_blobs(&src, &pushed.digest).pop().unwrap();
    let p = reg.blob_data_path(&layer);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
    let dest = t.path().join("pulled");
    let e = pull(&r, &dest, &Auth::Anonymous, &opts).unwrap_err();
    match &e {
        Error::DigestMismatch { expected, .. } => assert_eq!(expected, &layer),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(!dest.exists());
    assert!(leftovers(t.path()).is_empty());

    // A manifest whose bytes no longer match its digest: change a digit
    // of the config size, which keeps it valid JSON.
    let r2 = format!("{}/sigil/corrupt-manifest:1", reg.host);
    let src2 = built_layout(t.path(), "corrupt-manifest");
    let pushed2 = push(&src2, &r2, &Auth::Anonymous, &opts).unwrap();
    let mp = reg.blob_data_path(&pushed2.digest);
    let text = std::fs::read_to_string(&mp).unwrap();
    let at = text.find("\"size\":").unwrap() + 7;
    let mut b = text.into_bytes();
    b[at] = if b[at] == b'9' { b'1' } else { b'9' };
    std::fs::write(&mp, &b).unwrap();
    let e = pull(&r2, &dest, &Auth::Anonymous, &opts).unwrap_err();
    assert!(
        matches!(e, Error::DigestMismatch { .. }),
        "{e:?} / {}",
        reg.log()
    );
    assert!(!dest.exists());

    // A local blob that does not match its digest is never uploaded.
    let src3 = built_layout(t.path(), "corrupt-local");
    let m3 = top_digest(&src3);
    // The first layer holds the marker, so no other image shares it.
    let l3 = manifest_blobs(&src3, &m3)[1].clone();
    let lp = src3
        .join("blobs/sha256")
        .join(l3.trim_start_matches("sha256:"));
    let mut lb = std::fs::read(&lp).unwrap();
    let n = lb.len() - 10;
    lb[n] ^= 0x01;
    std::fs::write(&lp, &lb).unwrap();
    let r3 = format!("{}/sigil/corrupt-local:1", reg.host);
    let e = push(&src3, &r3, &Auth::Anonymous, &opts).unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(!reg.blob_data_path(&l3).exists());
}

#[test]
fn missing_tag_and_repository_are_clear_errors() {
    if !registry_present() {
        return;
    }
    let reg = LocalRegistry::start(&RegistryConfig::default());
    let t = tempfile::tempdir().unwrap();
    let opts = insecure(&reg);
    let src = built_layout(t.path(), "missing");
    push(
        &src,
        &format!("{}/sigil/there:1", reg.host),
        &Auth::Anonymous,
        &opts,
    )
    .unwrap();
    for r in [
        format!("{}/sigil/there:nope", reg.host),
        format!("{}/sigil/absent:1", reg.host),
    ] {
        let e = pull(&r, &t.path().join("d"), &Auth::Anonymous, &opts).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
        let s = e.to_string();
        assert!(s.contains(&r) && s.contains("manifest unknown"), "{s}");
        assert!(!s.contains('\n'));
    }
    let e = pull("Not A Ref", &t.path().join("d"), &Auth::Anonymous, &opts).unwrap_err();
    assert!(e.to_string().starts_with("invalid image reference"), "{e}");
    // Plain HTTP is only used for listed registries.
    let e = pull(
        &format!("{}/sigil/there:1", reg.host),
        &t.path().join("d"),
        &Auth::Anonymous,
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Registry(_)), "{e:?}");
    assert!(leftovers(t.path()).is_empty());
}

/// podman with the flags this machine needs; its stdout, trimmed.
fn podman_ok(args: &[&str]) -> String {
    sigil_testsupport::podman::podman(args).trim().to_string()
}

#[test]
fn podman_pulls_what_we_push_and_we_pull_what_podman_pushes() {
    if !registry_present() {
        return;
    }
    assert!(
        sigil_testsupport::tools::podman_present(),
        "podman is missing: run scripts/setup.sh"
    );
    let reg = LocalRegistry::start(&RegistryConfig::default());
    let t = tempfile::tempdir().unwrap();
    let opts = insecure(&reg);
    let tag = format!("{}", std::process::id());

    // We push, podman pulls.
    let src = built_layout(t.path(), "to-podman");
    let r = format!("{}/interop/ours:{tag}", reg.host);
    let pushed = push(&src, &r, &Auth::Anonymous, &opts).unwrap();
    podman_ok(&["pull", "-q", "--tls-verify=false", &r]);
    let digest = podman_ok(&["image", "inspect", "--format", "{{.Digest}}", &r]);
    let cfg = podman_ok(&["image", "inspect", "--format", "{{.Id}}", &r]);
    podman_ok(&["rmi", &r]);
    assert_eq!(digest, pushed.digest);
    let m: serde_json::Value = serde_json::from_slice(&blob(&src, &pushed.digest)).unwrap();
    assert_eq!(
        format!("sha256:{cfg}"),
        m["config"]["digest"].as_str().unwrap()
    );

    // Podman pushes (an image it loaded from an OCI archive), we pull.
    let ar = t.path().join("podman-src.tar");
    let local = format!("localhost/sigil-registry-test:{tag}");
    sigil_image::build::ImageBuilder::new()
        .layer(|l| l.add_bytes("/from-podman", b"hello from podman", 0o644))
        .cmd(["/from-podman"])
        .write_oci_archive_named(&ar, &local)
        .unwrap();
    podman_ok(&["load", "-q", "-i", ar.to_str().unwrap()]);
    let theirs = format!("{}/interop/theirs:{tag}", reg.host);
    let o =
        sigil_testsupport::podman::output(&["push", "-q", "--tls-verify=false", &local, &theirs]);
    let id = podman_ok(&["image", "inspect", "--format", "{{.Id}}", &local]);
    podman_ok(&["rmi", &local]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dest = t.path().join("from-podman");
    let pulled = pull(&theirs, &dest, &Auth::Anonymous, &opts).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&blob(&dest, &pulled.manifest_digest)).unwrap();
    assert_eq!(
        m["config"]["digest"].as_str().unwrap(),
        format!("sha256:{id}")
    );
    let img = sigil_image::source::SourceImage::open(&dest, None, &Default::default()).unwrap();
    assert_eq!(img.layers.len(), 1);
    let mut tar_bytes = Vec::new();
    std::io::copy(&mut img.open_layer(0).unwrap(), &mut tar_bytes).unwrap();
    assert!(tar_bytes.windows(17).any(|w| w == b"hello from podman"));
    // And we can push it on again.
    let again = push(
        &dest,
        &format!("{}/interop/again:{tag}", reg.host),
        &Auth::Anonymous,
        &opts,
    )
    .unwrap();
    assert_eq!(again.digest, pulled.manifest_digest);
}
