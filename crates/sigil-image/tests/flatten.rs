//! Reading and flattening real OCI/docker archives built on this machine,
//! including hostile ones: path traversal, writes through symlinks, absurd
//! sizes, decompression bombs, corrupt data, digest mismatches.

mod common;

use common::{raw_end, raw_entry};
use sigil_image::build::ImageBuilder;
use sigil_image::flatten::{Kind, Rootfs};
use sigil_image::source::{SourceImage, SourceKind};
use sigil_image::{Error, Limits};
use std::io;
use std::path::Path;

fn flatten(img: &Path, limits: &Limits, staging: &Path) -> Result<Rootfs, Error> {
    let src = SourceImage::open(img, None, limits)?;
    let mut root = Rootfs::new(staging, limits)?;
    for i in 0..src.layers.len() {
        let mut r = src.open_layer(i)?;
        root.apply_layer(&src.layers[i].name, &mut r, &mut |_| {})?;
        io::copy(&mut r, &mut io::sink()).map_err(|e| Error::image(e.to_string()))?;
    }
    Ok(root)
}

fn three_layers() -> ImageBuilder {
    ImageBuilder::new()
        .layer(|l| {
            l.add_bytes("etc/keep", b"keep", 0o644)
                .add_bytes("etc/gone", b"gone", 0o644)
                .add_bytes("opt/old/a", b"a", 0o644)
                .add_bytes("opt/old/sub/b", b"b", 0o644)
                .add_symlink("bin/sh", "/usr/bin/dash")
                .add_bytes("usr/bin/dash", b"not really", 0o755)
        })
        .layer(|l| {
            l.whiteout("etc/gone")
                .opaque("opt/old")
                .add_bytes("opt/old/new", b"new", 0o600)
                .add_bytes("etc/keep", b"replaced", 0o640)
        })
        .layer(|l| l.whiteout("bin/sh").add_dir("var/empty", 0o700))
        .entrypoint(["/usr/bin/dash"])
}

fn assert_three_layers(root: &Rootfs) {
    let read = |p: &str| root.read(p, 1 << 20).unwrap();
    assert_eq!(read("etc/keep"), b"replaced");
    assert_eq!(root.get("etc/keep").unwrap().mode, 0o640);
    assert!(root.get("etc/gone").is_none());
    assert!(root.get("opt/old/a").is_none());
    assert!(root.get("opt/old/sub").is_none());
    assert!(root.get("opt/old/sub/b").is_none());
    assert_eq!(read("opt/old/new"), b"new");
    assert!(root.get("bin/sh").is_none());
    assert_eq!(root.get("var/empty").unwrap().kind, Kind::Dir);
    assert_eq!(root.get("var/empty").unwrap().mode, 0o700);
}

#[test]
fn whiteouts_and_opaque_dirs_in_all_input_formats() {
    let t = tempfile::tempdir().unwrap();
    let b = three_layers();
    let oci = t.path().join("oci.tar");
    let docker = t.path().join("docker.tar");
    let dir = t.path().join("layout");
    b.write_oci_archive(&oci).unwrap();
    b.write_docker_archive(&docker, "localhost/three:latest")
        .unwrap();
    b.write_oci_dir(&dir).unwrap();
    for (img, kind) in [
        (&oci, SourceKind::OciArchive),
        (&docker, SourceKind::DockerArchive),
        (&dir, SourceKind::OciDir),
    ] {
        let src = SourceImage::open(img, None, &Limits::default()).unwrap();
        assert_eq!(src.kind, kind);
        assert_eq!(src.layers.len(), 3);
        assert_eq!(src.run.entrypoint, vec!["/usr/bin/dash".to_string()]);
        let root = flatten(
            img,
            &Limits::default(),
            &t.path().join(format!("s-{kind:?}")),
        )
        .unwrap();
        assert_three_layers(&root);
    }
}

#[test]
fn zstd_and_uncompressed_layers() {
    use sigil_image::archive::LayerCompression;
    use sigil_image::spec::Compression;
    let t = tempfile::tempdir().unwrap();
    for (i, kind) in [Compression::Zstd, Compression::None]
        .into_iter()
        .enumerate()
    {
        let img = t.path().join(format!("{i}.tar"));
        three_layers()
            .compression(LayerCompression {
                kind,
                level: 3,
                threads: 0,
            })
            .write_oci_archive(&img)
            .unwrap();
        let src = SourceImage::open(&img, None, &Limits::default()).unwrap();
        assert_eq!(src.layers[0].compression, Some(kind));
        let root = flatten(&img, &Limits::default(), &t.path().join(format!("s{i}"))).unwrap();
        assert_three_layers(&root);
    }
}

fn hostile(layer: Vec<u8>, limits: &Limits) -> String {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("img.tar");
    ImageBuilder::new()
        .layer(|l| {
            l.add_symlink("evil", "/tmp")
                .add_bytes("ok/file", b"x", 0o644)
        })
        .raw_layer(layer)
        .write_oci_archive(&img)
        .unwrap();
    let staging = t.path().join("staging");
    let err = match flatten(&img, limits, &staging) {
        Ok(_) => panic!("hostile layer accepted"),
        Err(e) => e.to_string(),
    };
    // Nothing escaped the staging directory.
    assert!(!t.path().join("pwned").exists());
    assert!(!Path::new("/tmp/pwned-by-sigil-test").exists());
    assert!(!err.contains('\n'), "multi-line error: {err}");
    err
}

/// [`hostile`] with a layer of one raw tar entry, under the default limits.
fn hostile_entry(name: &[u8], kind: tar::EntryType, data: &[u8], link: Option<&[u8]>) -> String {
    hostile(
        raw_end(raw_entry(name, kind, data, link)),
        &Limits::default(),
    )
}

#[test]
fn path_traversal_is_refused() {
    for name in [&b"../pwned"[..], b"ok/../../pwned"] {
        let e = hostile_entry(name, tar::EntryType::Regular, b"x", None);
        assert!(e.contains("path traversal"), "{e}");
    }
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let e = hostile_entry(
        b"evil/pwned-by-sigil-test",
        tar::EntryType::Regular,
        b"x",
        None,
    );
    assert!(e.contains("passes through symlink /evil"), "{e}");
}

#[test]
fn hard_link_leaving_the_image_is_refused() {
    for (target, expect) in [
        (&b"../../etc/passwd"[..], "leaves the image"),
        (b"/etc/passwd", "not a regular file of the image"),
    ] {
        let e = hostile_entry(b"h", tar::EntryType::Link, b"", Some(target));
        assert!(e.contains(expect), "{e}");
    }
}

#[test]
fn absurd_sizes_and_decompression_bombs_are_refused() {
    // 64 MiB of zeros compresses to ~64 KiB of gzip.
    let mut tarb = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(64 << 20);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    tarb.append_data(&mut h, "bomb", io::repeat(0).take_(64 << 20))
        .unwrap();
    let layer = tarb.into_inner().unwrap();
    let limits = Limits {
        max_layer_bytes: 8 << 20,
        ..Limits::default()
    };
    let e = hostile(layer.clone(), &limits);
    assert!(
        e.contains("limit exceeded") || e.contains("more than"),
        "{e}"
    );
    let limits = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    let e = hostile(layer, &limits);
    assert!(e.contains("unpacks to more than"), "{e}");
}

trait TakeExt: io::Read + Sized {
    fn take_(self, n: u64) -> io::Take<Self> {
        io::Read::take(self, n)
    }
}
impl<R: io::Read> TakeExt for R {}

#[test]
fn too_many_entries_is_refused() {
    let mut v = Vec::new();
    for i in 0..50 {
        v.extend(raw_entry(
            format!("f{i}").as_bytes(),
            tar::EntryType::Regular,
            b"",
            None,
        ));
    }
    let e = hostile(
        raw_end(v),
        &Limits {
            max_entries: 20,
            ..Limits::default()
        },
    );
    assert!(e.contains("more than 20 entries"), "{e}");
}

#[test]
fn corrupt_layer_and_digest_mismatch_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("layout");
    three_layers().write_oci_dir(&dir).unwrap();
    let src = SourceImage::open(&dir, None, &Limits::default()).unwrap();
    let blob = dir
        .join("blobs/sha256")
        .join(src.layers[0].name.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let err = flatten(&dir, &Limits::default(), &t.path().join("s"))
        .err()
        .expect("corrupt layer accepted")
        .to_string();
    assert!(
        err.contains("corrupt") || err.contains("digest mismatch") || err.contains("invalid"),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

#[test]
fn missing_and_malformed_inputs_name_the_problem() {
    let t = tempfile::tempdir().unwrap();
    let e = SourceImage::open(&t.path().join("nope.tar"), None, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.tar"), "{e}");
    let junk = t.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all").unwrap();
    let e = SourceImage::open(&junk, None, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("junk.tar"), "{e}");
    let dir = t.path().join("layout");
    three_layers().write_oci_dir(&dir).unwrap();
    std::fs::write(dir.join("index.json"), vec![b' '; 5 << 20]).unwrap();
    let e = SourceImage::open(&dir, None, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("limit exceeded") && e.contains("index.json"),
        "{e}"
    );
}

#[test]
fn written_layer_keeps_input_order_and_hard_links() {
    use sigil_image::archive::append_rootfs;
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("img.tar");
    let mut lower = Vec::new();
    lower.extend(raw_entry(b"z/", tar::EntryType::Directory, b"", None));
    lower.extend(raw_entry(b"z/f", tar::EntryType::Regular, b"F", None));
    lower.extend(raw_entry(b"a/target", tar::EntryType::Regular, b"T1", None));
    lower.extend(raw_entry(
        b"a/link",
        tar::EntryType::Link,
        b"",
        Some(b"a/target"),
    ));
    lower.extend(raw_entry(b"b/x", tar::EntryType::Regular, b"X", None));
    let mut upper = Vec::new();
    upper.extend(raw_entry(b"a/target", tar::EntryType::Regular, b"T2", None));
    upper.extend(raw_entry(b"c/l2", tar::EntryType::Link, b"", Some(b"b/x")));
    let mut z = raw_entry(b"z/", tar::EntryType::Directory, b"", None);
    // Mode 0750 (octal field of the old header at offset 100).
    z[100..108].copy_from_slice(b"0000750\0");
    let mut h = tar::Header::from_byte_slice(&z[..512]).clone();
    h.set_cksum();
    z[..512].copy_from_slice(h.as_bytes());
    upper.extend(z);
    ImageBuilder::new()
        .raw_layer(raw_end(lower))
        .raw_layer(raw_end(upper))
        .write_oci_archive(&img)
        .unwrap();
    let root = flatten(&img, &Limits::default(), &t.path().join("s")).unwrap();
    let mut tarb = tar::Builder::new(Vec::new());
    append_rootfs(&mut tarb, &root, &|_| false, &mut |_| {}).unwrap();
    let out = tarb.into_inner().unwrap();
    let mut ar = tar::Archive::new(&out[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let et = e.header().entry_type();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8(l.to_vec()).unwrap());
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        io::Read::read_to_end(&mut e, &mut data).unwrap();
        seen.push((p, et, link, mode, data));
    }
    let pos = |p: &str| seen.iter().position(|s| s.0 == p).unwrap();
    // Parents first, with the upper layer's metadata.
    assert!(pos("z/") < pos("z/f"));
    assert_eq!(seen[pos("z/")].3, 0o750);
    // The link whose target was replaced keeps the old content as a file.
    assert_eq!(seen[pos("a/link")].1, tar::EntryType::Regular);
    assert_eq!(seen[pos("a/link")].4, b"T1");
    assert_eq!(seen[pos("a/target")].4, b"T2");
    // A link into a lower layer stays a link, after its target.
    assert_eq!(seen[pos("c/l2")].1, tar::EntryType::Link);
    assert_eq!(seen[pos("c/l2")].2.as_deref(), Some("b/x"));
    assert!(pos("b/x") < pos("c/l2"));
    assert_eq!(seen.iter().filter(|s| s.0 == "a/target").count(), 1);
}

/// Rewrites `index.json` of an OCI layout directory through `f`.
fn edit_index(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("index.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// A blob must be exactly the size its descriptor gives (OCI image-spec:
/// content of another length is not to be trusted). sigil-registry always
/// checked this; sigil-image checked only the digest until the layout
/// reading was shared (sigil-oci), so these were accepted before.
#[test]
fn blob_sizes_must_match_their_descriptors() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("layout");
    three_layers().write_oci_dir(&dir).unwrap();
    assert!(SourceImage::open(&dir, None, &Limits::default()).is_ok());

    // The manifest's size in index.json.
    let bad = t.path().join("bad-manifest-size");
    three_layers().write_oci_dir(&bad).unwrap();
    edit_index(&bad, |v| {
        let s = v["manifests"][0]["size"].as_u64().unwrap();
        v["manifests"][0]["size"] = (s - 1).into();
    });
    let e = SourceImage::open(&bad, None, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("but the descriptor says"), "{e}");

    // A layer's size in the manifest (the manifest rewritten, so its own
    // digest and size are right).
    let bad = t.path().join("bad-layer-size");
    three_layers().write_oci_dir(&bad).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bad.join("index.json")).unwrap()).unwrap();
    let old = index["manifests"][0]["digest"].as_str().unwrap();
    let blobs = bad.join("blobs/sha256");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join(&old[7..])).unwrap()).unwrap();
    let s = m["layers"][0]["size"].as_u64().unwrap();
    m["layers"][0]["size"] = (s + 1).into();
    let mb = serde_json::to_vec(&m).unwrap();
    let d = sigil_image::digest::Digest::of(&mb);
    std::fs::write(blobs.join(d.hex()), &mb).unwrap();
    edit_index(&bad, |v| {
        v["manifests"][0]["digest"] = d.to_string().into();
        v["manifests"][0]["size"] = mb.len().into();
    });
    let e = flatten(&bad, &Limits::default(), &t.path().join("s"))
        .err()
        .expect("layer of the wrong size accepted")
        .to_string();
    assert!(e.contains("but the descriptor says"), "{e}");
}

/// A hostile digest string is quoted briefly, on one line (sigil-image used
/// to quote it whole).
#[test]
fn malformed_digest_error_is_short() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("layout");
    three_layers().write_oci_dir(&dir).unwrap();
    edit_index(&dir, |v| {
        v["manifests"][0]["digest"] = format!("md5:{}", "x".repeat(1 << 20)).into();
    });
    let e = SourceImage::open(&dir, None, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.len() < 300 && e.contains("only sha256"),
        "{}",
        &e[..300.min(e.len())]
    );
}
