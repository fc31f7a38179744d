//! End-to-end conversion of real images built from this host's files (the
//! host's python3 with its libraries and standard library, plus a small web
//! app), checked with real podman and by opening the sealed volume.
//!
//! The launcher is not what these tests exercise: where a launcher binary is
//! needed, the host's static `ldconfig` stands in for it (only its bytes and
//! its being a static ELF matter here; the launcher's own tests run it).

mod common;

use common::{contains, decompress, files_under};
use sigil_image::archive::{Format, LayerCompression};
use sigil_image::build::ImageBuilder;
use sigil_image::convert::{convert, ConvertOptions, NoProgress};
use sigil_image::spec::Compression;
use sigil_image::{Error, Limits};
use sigil_init::config::{InitConfig, Mode};
use sigil_testsupport::cli::static_elf;
use sigil_testsupport::podman::podman;
use std::path::{Path, PathBuf};

const MARKER: &[u8] = b"SIGIL-MARKER-7f3a9c-this-must-never-appear-in-plaintext";

fn python_image(dir: &Path) -> PathBuf {
    let img = dir.join("python-app.tar");
    let mut secret = b"api_key = '".to_vec();
    secret.extend_from_slice(MARKER);
    secret.extend_from_slice(b"'\n");
    ImageBuilder::new()
        .layer(|l| {
            l.add_host_elf("/usr/bin/python3.11", "usr/bin/python3.11")
                .add_symlink("usr/bin/python3", "python3.11")
                .add_host_dir("/usr/lib/python3.11/json", "usr/lib/python3.11/json")
                .add_host_file("/usr/lib/python3.11/os.py", "usr/lib/python3.11/os.py")
                .add_bytes("app/old.txt", b"old", 0o644)
                .add_bytes("opt/cache/stale", b"stale", 0o644)
                .add_bytes("app/run.sh", b"#!/usr/bin/env python3\nprint(1)\n", 0o755)
                .add_symlink("app/escape", "../../../../usr/bin/python3.11")
        })
        .layer(|l| {
            l.add_bytes(
                "app/main.py",
                b"import http.server\nhttp.server.test(port=8080)\n",
                0o644,
            )
            .add_bytes("app/secret.py", &secret, 0o600)
            .add_bytes("app/static/index.html", b"<h1>hello</h1>", 0o644)
            .whiteout("app/old.txt")
        })
        .layer(|l| {
            l.opaque("opt/cache")
                .add_bytes("opt/cache/fresh", b"fresh", 0o644)
        })
        .entrypoint(["/usr/bin/python3"])
        .cmd(["/app/main.py"])
        .env("PYTHONUNBUFFERED", "1")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .working_dir("/app")
        .label("org.example.team", "5g-core")
        .expose("8080/tcp")
        .user("0:0")
        .write_oci_archive_named(&img, "localhost/pyapp:1")
        .unwrap();
    img
}

fn options(from: &Path, to: &Path) -> ConvertOptions {
    ConvertOptions {
        from: from.to_path_buf(),
        from_ref: None,
        to: to.to_path_buf(),
        format: Format::OciArchive,
        compression: LayerCompression {
            kind: Compression::Zstd,
            level: 1,
            threads: 2,
        },
        image_name: "pyapp-sigil".into(),
        binary: Some("/usr/bin/python3".into()),
        encrypt: vec!["/app".into(), "/usr/lib/python3.11".into()],
        authenticate: vec![],
        plain: vec!["/app/static".into()],
        launcher: static_elf().into(),
        cas_addr: "cas.example:8081".into(),
        cas_pin: format!("sha256:{}", "ab".repeat(32)).parse().unwrap(),
        session: "pyapp".into(),
        service: "web".into(),
        mode: Mode::Auto,
        volume_name: "fs".into(),
        limits: Limits::default(),
        seal_threads: Some(2),
    }
}

/// Unpacks an archive into a directory.
fn unpack(ar: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    tar::Archive::new(std::fs::File::open(ar).unwrap())
        .unpack(dir)
        .unwrap();
}

#[test]
fn converted_image_loads_in_podman_keeps_metadata_and_hides_protected_files() {
    let t = tempfile::tempdir().unwrap();
    let img = python_image(t.path());
    let out = t.path().join("out.tar");
    let opts = options(&img, &out);
    let conv = convert(&opts, &NoProgress).unwrap();

    // The binary resolved inside the image, its libraries authenticated.
    assert_eq!(conv.binary.real, "usr/bin/python3.11");
    assert!(
        conv.binary.libs.iter().any(|l| l.contains("libc.so.6")),
        "{:?}",
        conv.binary.libs
    );
    let vol = conv.volume.as_ref().expect("a volume");
    assert!(vol.paths.contains(&"/app".to_string()));
    assert!(vol.paths.contains(&"/usr/lib/python3.11".to_string()));
    assert!(!format!("{conv:?}").contains(&vol.key.to_hex().to_string()));

    // Scan every blob of the output, raw and decompressed, for the marker.
    let layout = t.path().join("layout");
    unpack(&out, &layout);
    let blobs = files_under(&layout.join("blobs/sha256"));
    assert!(blobs.len() >= 4);
    for (name, data) in &blobs {
        assert!(!contains(data, MARKER), "marker in blob {name}");
        assert!(
            !contains(&decompress(data), MARKER),
            "marker in blob {name} (decompressed)"
        );
    }

    // init.toml and the measurement, recomputed from the host's python bytes.
    let (_, init_bytes) = {
        let ex = t.path().join("exported");
        let name = format!("sigil-test-{}", std::process::id());
        podman(&["load", "-i", out.to_str().unwrap()]);
        let cid = podman(&["create", "--name", &name, &conv.image_name])
            .trim()
            .to_string();
        let fs_tar = t.path().join("fs.tar");
        podman(&["export", "-o", fs_tar.to_str().unwrap(), &cid]);
        podman(&["rm", &cid]);
        let inspect = podman(&["image", "inspect", &conv.image_name]);
        podman(&["rmi", &conv.image_name]);
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        let c = &v[0]["Config"];
        assert_eq!(c["Entrypoint"], serde_json::json!(["/sigil/sigil-init"]));
        assert!(
            c["Cmd"].is_null() || c["Cmd"] == serde_json::json!([]),
            "{c}"
        );
        assert!(c["Env"]
            .as_array()
            .unwrap()
            .contains(&"PYTHONUNBUFFERED=1".into()));
        assert_eq!(c["WorkingDir"], "/app");
        assert_eq!(c["User"], "0:0");
        assert!(c["ExposedPorts"].get("8080/tcp").is_some());
        assert_eq!(c["Labels"]["org.example.team"], "5g-core");
        assert_eq!(
            c["Labels"]["io.sigil.simulation-measurement"],
            hex::encode(conv.measurement)
        );
        unpack(&fs_tar, &ex);
        (
            ex.clone(),
            std::fs::read(ex.join("sigil/init.toml")).unwrap(),
        )
    };
    let ex = t.path().join("exported");
    assert!(ex.join("sigil/sigil-init").is_file());
    assert_eq!(
        std::fs::read(ex.join("sigil/sigil-init")).unwrap(),
        std::fs::read(static_elf()).unwrap()
    );
    assert!(ex.join("sigil/volumes/fs").is_dir());
    assert!(ex.join("usr/bin/python3.11").is_file());
    assert!(std::fs::symlink_metadata(ex.join("usr/bin/python3"))
        .unwrap()
        .file_type()
        .is_symlink());
    for gone in [
        "app",
        "usr/lib/python3.11",
        "app/old.txt",
        "opt/cache/stale",
    ] {
        assert!(
            std::fs::symlink_metadata(ex.join(gone)).is_err(),
            "{gone} survived"
        );
    }
    assert_eq!(std::fs::read(ex.join("opt/cache/fresh")).unwrap(), b"fresh");
    for lib in &conv.binary.libs {
        assert!(
            std::fs::symlink_metadata(ex.join(lib)).is_err(),
            "/{lib} left in rootfs"
        );
    }

    let init = InitConfig::parse(&init_bytes).unwrap();
    assert_eq!(init, conv.init);
    assert_eq!(init.binary, "/usr/bin/python3.11");
    assert_eq!(init.config_id.to_string(), "pyapp/web");
    let expected = sigil_init::measurement::from_bytes(
        &std::fs::read(static_elf()).unwrap(),
        &init_bytes,
        &std::fs::read("/usr/bin/python3.11").unwrap(),
    );
    assert_eq!(conv.measurement, expected);

    // The sealed volume opens with the key and tag and restores the files.
    let opened = t.path().join("opened");
    sigil_fs::open(&ex.join("sigil/volumes/fs"), &opened, &vol.key, &vol.tag).unwrap();
    let secret = std::fs::read(opened.join("app/secret.py")).unwrap();
    assert!(contains(&secret, MARKER));
    assert_eq!(
        std::fs::read(opened.join("app/static/index.html")).unwrap(),
        b"<h1>hello</h1>"
    );
    assert_eq!(
        std::fs::read(opened.join("usr/lib/python3.11/os.py")).unwrap(),
        std::fs::read("/usr/lib/python3.11/os.py").unwrap()
    );
    let libc = conv
        .binary
        .libs
        .iter()
        .find(|l| l.contains("libc.so.6"))
        .unwrap();
    assert!(opened.join(libc).is_file());

    // Nothing but the output is left next to it.
    let mut names: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    names.sort();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

#[test]
fn docker_archive_output_loads_in_podman() {
    let t = tempfile::tempdir().unwrap();
    let img = python_image(t.path());
    let out = t.path().join("out-docker.tar");
    let mut opts = options(&img, &out);
    opts.format = Format::DockerArchive;
    opts.image_name = format!("pyapp-docker-{}", std::process::id());
    let conv = convert(&opts, &NoProgress).unwrap();
    let loaded = podman(&["load", "-i", out.to_str().unwrap()]);
    assert!(loaded.contains(&conv.image_name), "{loaded}");
    let inspect = podman(&["image", "inspect", &conv.image_name]);
    podman(&["rmi", &conv.image_name]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        v[0]["Config"]["Entrypoint"],
        serde_json::json!(["/sigil/sigil-init"])
    );
}

/// Runs a conversion expected to fail; checks the error is one line and
/// that nothing was left in the output directory.
fn failing(opts: &ConvertOptions) -> String {
    let before: Vec<_> = std::fs::read_dir(opts.to.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let e = convert(opts, &NoProgress)
        .expect_err("conversion should fail")
        .to_string();
    assert!(!e.contains('\n'), "multi-line error: {e}");
    let after: Vec<_> = std::fs::read_dir(opts.to.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "files left behind after: {e}");
    e
}

#[test]
fn bad_inputs_fail_with_one_line_and_leave_nothing() {
    let t = tempfile::tempdir().unwrap();
    let img = python_image(t.path());
    let out = t.path().join("out.tar");

    let mut o = options(&img, &out);
    o.binary = Some("/app/run.sh".into());
    o.encrypt = vec!["/usr/lib/python3.11".into()];
    o.plain = vec![];
    let e = failing(&o);
    assert!(
        e.contains("is a script") && e.contains("--binary python3"),
        "{e}"
    );

    let mut o = options(&img, &out);
    o.binary = Some("/app/escape".into());
    o.encrypt = vec!["/usr/lib/python3.11".into()];
    o.plain = vec![];
    let e = failing(&o);
    assert!(e.contains("leaves the image"), "{e}");

    let mut o = options(&img, &out);
    o.encrypt.push("/srv/nothing".into());
    let e = failing(&o);
    assert!(
        e.contains("/srv/nothing") && e.contains("does not exist"),
        "{e}"
    );

    let mut o = options(&img, &out);
    o.binary = Some("/usr/bin/python9".into());
    let e = failing(&o);
    assert!(e.contains("python9") && e.contains("does not exist"), "{e}");

    let mut o = options(&img, &out);
    o.encrypt = vec!["/usr/bin".into()];
    let e = failing(&o);
    assert!(e.contains("measured"), "{e}");

    let o = options(&t.path().join("missing.tar"), &out);
    let e = failing(&o);
    assert!(e.contains("missing.tar"), "{e}");

    let mut o = options(&img, &out);
    o.launcher = PathBuf::from("/usr/bin/python3.11");
    let e = failing(&o);
    assert!(e.contains("dynamically linked"), "{e}");

    // A corrupt layer: flip a byte in the middle of the biggest blob.
    let layout = t.path().join("corrupt-layout");
    unpack(&img, &layout);
    let blobs = files_under(&layout.join("blobs/sha256"));
    let (name, mut data) = blobs.into_iter().max_by_key(|(_, d)| d.len()).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    std::fs::write(layout.join("blobs/sha256").join(&name), &data).unwrap();
    let o = options(&layout, &out);
    let e = failing(&o);
    assert!(e.starts_with("layer sha256:"), "{e}");
    assert!(!out.exists());
}

#[test]
fn hard_link_to_protected_file_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("hl.tar");
    let mut layer = tar::Builder::new(Vec::new());
    for (p, et, link) in [
        ("app/", tar::EntryType::Directory, None),
        ("app/secret", tar::EntryType::Regular, None),
        ("copy", tar::EntryType::Link, Some("app/secret")),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(et);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match link {
            Some(l) => {
                h.set_size(0);
                layer.append_link(&mut h, p, l).unwrap();
            }
            None if et == tar::EntryType::Regular => {
                h.set_size(MARKER.len() as u64);
                layer.append_data(&mut h, p, MARKER).unwrap();
            }
            None => {
                h.set_size(0);
                layer.append_data(&mut h, p, std::io::empty()).unwrap();
            }
        }
    }
    ImageBuilder::new()
        .layer(|l| l.add_host_elf("/usr/bin/python3.11", "usr/bin/python3.11"))
        .raw_layer(layer.into_inner().unwrap())
        .write_oci_archive(&img)
        .unwrap();
    let mut o = options(&img, &t.path().join("out.tar"));
    o.encrypt = vec!["/app".into()];
    o.plain = vec![];
    o.binary = Some("/usr/bin/python3.11".into());
    let e = failing(&o);
    assert!(e.contains("/copy") && e.contains("hard link"), "{e}");
}

#[test]
fn symlink_binary_is_resolved_in_the_image_not_on_the_host() {
    // /usr/bin/tool -> /opt/real/tool in the image; the host has no /opt/real.
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("sym.tar");
    ImageBuilder::new()
        .layer(|l| {
            l.add_host_elf("/usr/bin/python3.11", "opt/real/tool")
                .add_symlink("usr/bin/tool", "/opt/real/tool")
        })
        .write_oci_archive(&img)
        .unwrap();
    assert!(!Path::new("/opt/real/tool").exists());
    let mut o = options(&img, &t.path().join("out.tar"));
    o.encrypt = vec![];
    o.plain = vec![];
    o.binary = Some("/usr/bin/tool".into());
    let conv = convert(&o, &NoProgress).unwrap();
    assert_eq!(conv.binary.real, "opt/real/tool");
    assert_eq!(conv.init.binary, "/opt/real/tool");
    let _: Result<(), Error> = Ok(());
}

/// The paths of the first (root) layer of a converted OCI archive.
fn root_layer_paths(out: &Path, dir: &Path) -> Vec<String> {
    unpack(out, dir);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.join("blobs/sha256")
                .join(m.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let l = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = std::fs::read(
        dir.join("blobs/sha256")
            .join(l.trim_start_matches("sha256:")),
    )
    .unwrap();
    let plain = decompress(&blob);
    let mut ar = tar::Archive::new(&plain[..]);
    let mut v: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            String::from_utf8(e.path_bytes().to_vec())
                .unwrap()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn single_layer_image_is_written_while_read_and_a_wrong_guess_is_redone() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("one.tar");
    let mut secret = b"key = '".to_vec();
    secret.extend_from_slice(MARKER);
    ImageBuilder::new()
        .layer(|l| {
            l.add_host_elf("/usr/bin/python3.11", "usr/bin/python3.11")
                .add_symlink("usr/bin/python3", "python3.11")
                .add_bytes("app/secret.py", &secret, 0o600)
                .add_bytes("etc/hostname", b"box", 0o644)
        })
        .entrypoint(["/usr/bin/python3"])
        .write_oci_archive(&img)
        .unwrap();
    let mut roots = Vec::new();
    // The binary named directly: its libraries are known before they pass
    // and held back. Through the symlink that comes after the file: the
    // libraries were written before they were known, the guess fails and
    // the layer is written again from the staged copy.
    for (i, (binary, streamed)) in [("/usr/bin/python3.11", true), ("/usr/bin/python3", false)]
        .into_iter()
        .enumerate()
    {
        let out = t.path().join(format!("out{i}.tar"));
        let mut opts = options(&img, &out);
        opts.binary = Some(binary.into());
        opts.encrypt = vec!["/app".into()];
        opts.plain = vec![];
        opts.image_name = "single-sigil".into();
        let conv = convert(&opts, &NoProgress).unwrap();
        assert_eq!(conv.streamed, streamed, "{binary}");
        assert!(conv.binary.libs.iter().any(|l| l.contains("libc.so.6")));
        let paths = root_layer_paths(&out, &t.path().join(format!("u{i}")));
        assert!(paths.contains(&"usr/bin/python3.11".to_string()));
        assert!(paths.contains(&"etc/hostname".to_string()));
        assert!(!paths.iter().any(|p| p.starts_with("app")), "{paths:?}");
        for lib in &conv.binary.libs {
            assert!(!paths.contains(lib), "{lib} in the root layer");
        }
        for (name, data) in files_under(&t.path().join(format!("u{i}/blobs/sha256"))) {
            assert!(!contains(&decompress(&data), MARKER), "marker in {name}");
        }
        roots.push(paths);
    }
    assert_eq!(roots[0], roots[1]);
    // The streamed output loads.
    let loaded = podman(&["load", "-i", t.path().join("out0.tar").to_str().unwrap()]);
    assert!(loaded.contains("single-sigil"), "{loaded}");
    podman(&["rmi", "localhost/single-sigil:latest"]);
}
