//! Tamper tests: every kind of change a host can make to a sealed volume
//! must make `open` and `verify` fail, naming the place, and leave no
//! plaintext behind.

use std::fs;
use std::path::{Path, PathBuf};

use sigil_fs::*;

const CS: u32 = 16;

fn opts() -> SealOptions {
    SealOptions {
        chunk_size: CS,
        threads: Some(2),
    }
}

/// A small tree with only protected files (plain content is unprotected by
/// design, see FORMAT.md §2): two encrypted files of equal size (for swap
/// tests), a multi-chunk authenticated file and an empty one.
fn small_tree(root: &Path) {
    fs::create_dir_all(root.join("app/sub")).unwrap();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(
        root.join("app/a.key"),
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .unwrap();
    fs::write(
        root.join("app/b.key"),
        b"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    )
    .unwrap();
    fs::write(root.join("app/sub/empty"), b"").unwrap();
    fs::write(
        root.join("bin/tool"),
        b"#!/bin/sh\necho authenticated tool\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../app/a.key", root.join("bin/link")).unwrap();
}

fn regions() -> Regions {
    Regions::with_default(Region::Encrypted).authenticate("bin")
}

struct Fixture {
    _t: tempfile::TempDir,
    dir: PathBuf,
    src: PathBuf,
    vol: PathBuf,
    sealed: Sealed,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let src = dir.join("src");
    small_tree(&src);
    let vol = dir.join("vol");
    let sealed = seal(&src, &vol, &regions(), &opts()).unwrap();
    Fixture {
        _t: t,
        dir,
        src,
        vol,
        sealed,
    }
}

impl Fixture {
    /// Sealed file of a volume path.
    fn blob_of(&self, path: &str) -> PathBuf {
        Volume::open(&self.vol, &self.sealed.key, &self.sealed.tag)
            .unwrap()
            .data_file(path)
            .unwrap()
    }

    fn open_fails(&self, what: &str) -> FsError {
        let out = self.dir.join("out");
        let err = open(&self.vol, &out, &self.sealed.key, &self.sealed.tag)
            .expect_err(&format!("open accepted a volume with {what}"));
        assert!(
            !out.exists(),
            "{what}: failed open left {} behind",
            out.display()
        );
        let verr = verify(&self.vol, &self.sealed.key, &self.sealed.tag)
            .expect_err(&format!("verify accepted a volume with {what}"));
        let key_hex = self.sealed.key.to_hex();
        for msg in [err.to_string(), format!("{err:?}"), verr.to_string()] {
            assert!(!msg.contains(key_hex.as_str()), "key in error: {msg}");
        }
        err
    }
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(all_files(&p));
        } else {
            v.push(p);
        }
    }
    v.sort();
    v
}

/// The volume path each sealed file belongs to.
fn blob_names(f: &Fixture) -> Vec<(PathBuf, &'static str)> {
    ["app/a.key", "app/b.key", "app/sub/empty", "bin/tool"]
        .into_iter()
        .map(|p| (f.blob_of(p), p))
        .collect()
}

#[test]
fn every_flipped_byte_is_detected_and_named() {
    let f = fixture();
    let blobs = blob_names(&f);
    let files = all_files(&f.vol);
    assert_eq!(files.len(), 5, "manifest + 4 sealed files");
    let mut flips = 0;
    for file in &files {
        let orig = fs::read(file).unwrap();
        for i in 0..orig.len() {
            let mut bad = orig.clone();
            bad[i] ^= 0x01;
            fs::write(file, &bad).unwrap();
            let what = format!("byte {i} of {} flipped", file.display());
            let err = f.open_fails(&what);
            fs::write(file, &orig).unwrap();
            flips += 1;
            if file.ends_with(MANIFEST_FILE) {
                assert!(matches!(err, FsError::TagMismatch { .. }), "{what}: {err}");
                continue;
            }
            let (_, vpath) = blobs.iter().find(|(b, _)| b == file).unwrap();
            let msg = err.to_string();
            assert!(
                msg.contains(vpath),
                "{what}: error does not name {vpath}: {msg}"
            );
            if i < 40 {
                assert!(matches!(err, FsError::FileFormat { .. }), "{what}: {err}");
            } else {
                let chunk = ((i - 40) / (CS as usize + 16)) as u64;
                match err {
                    FsError::ChunkAuth { chunk: c, .. } => assert_eq!(c, chunk, "{what}"),
                    other => panic!("{what}: expected chunk {chunk} error, got {other}"),
                }
            }
        }
    }
    assert!(flips > 300, "volume unexpectedly small: {flips} bytes");
    // And the untouched volume still opens to the original tree.
    open(&f.vol, &f.dir.join("ok"), &f.sealed.key, &f.sealed.tag).unwrap();
    assert_eq!(
        fs::read(f.dir.join("ok/bin/tool")).unwrap(),
        fs::read(f.src.join("bin/tool")).unwrap()
    );
}

#[test]
fn swapped_files_are_detected() {
    let f = fixture();
    let a = f.blob_of("app/a.key");
    let b = f.blob_of("app/b.key");
    let (da, db) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    assert_eq!(da.len(), db.len());
    fs::write(&a, &db).unwrap();
    fs::write(&b, &da).unwrap();
    let err = f.open_fails("two files swapped");
    assert!(matches!(err, FsError::FileFormat { .. }), "{err}");
    assert!(err.to_string().contains("swapped or replaced"), "{err}");

    // A smarter host also patches the file id in the header: the key and
    // the path binding still differ, so chunk 0 fails.
    let mut patched = db.clone();
    patched[16..32].copy_from_slice(&da[16..32]);
    fs::write(&a, &patched).unwrap();
    fs::write(&b, &db).unwrap();
    let err = f.open_fails("file replaced by another with a patched header");
    assert!(matches!(err, FsError::ChunkAuth { chunk: 0, .. }), "{err}");
    assert!(err.to_string().contains("app/a.key"), "{err}");
}

#[test]
fn swapped_chunks_are_detected() {
    let f = fixture();
    let a = f.blob_of("app/a.key");
    let orig = fs::read(&a).unwrap();
    let slot = CS as usize + 16;
    let mut bad = orig.clone();
    // Chunks 0 and 1 are full chunks of the same length.
    bad[40..40 + slot].copy_from_slice(&orig[40 + slot..40 + 2 * slot]);
    bad[40 + slot..40 + 2 * slot].copy_from_slice(&orig[40..40 + slot]);
    fs::write(&a, &bad).unwrap();
    let err = f.open_fails("two chunks swapped");
    assert!(matches!(err, FsError::ChunkAuth { chunk: 0, .. }), "{err}");
}

#[test]
fn truncation_and_appending_are_detected() {
    let f = fixture();
    let a = f.blob_of("bin/tool");
    let orig = fs::read(&a).unwrap();
    let slot = CS as usize + 16;

    // Drop the last chunk.
    fs::write(&a, &orig[..orig.len() - (orig.len() - 40) % slot]).unwrap();
    let err = f.open_fails("last chunk dropped");
    assert!(err.to_string().contains("truncated or appended"), "{err}");

    // Drop the last chunk and patch the header's size to match.
    let keep = 40 + 2 * slot;
    let mut cut = orig[..keep].to_vec();
    cut[32..40].copy_from_slice(&(2 * CS as u64).to_le_bytes());
    fs::write(&a, &cut).unwrap();
    let err = f.open_fails("truncated with a consistent header");
    assert!(matches!(err, FsError::FileFormat { .. }), "{err}");

    // Append a copy of a chunk.
    let mut long = orig.clone();
    long.extend_from_slice(&orig[40..40 + slot]);
    fs::write(&a, &long).unwrap();
    let err = f.open_fails("chunk appended");
    assert!(err.to_string().contains("truncated or appended"), "{err}");

    // Remove the file altogether.
    fs::remove_file(&a).unwrap();
    let err = f.open_fails("sealed file removed");
    assert!(err.to_string().contains("bin/tool"), "{err}");
}

#[test]
fn rollback_to_an_earlier_seal_is_refused_by_tag() {
    let f = fixture();
    // An earlier seal of the same tree under the same key.
    let old = f.dir.join("old");
    let old_tag = seal_with_key(&f.src, &old, &regions(), &opts(), &f.sealed.key).unwrap();
    assert_ne!(old_tag, f.sealed.tag, "reseal must give a fresh tag");
    // Both are valid volumes on their own.
    verify(&old, &f.sealed.key, &old_tag).unwrap();
    // Replace the whole current volume with the old one.
    fs::remove_dir_all(&f.vol).unwrap();
    fs::rename(&old, &f.vol).unwrap();
    let err = f.open_fails("volume rolled back");
    match err {
        FsError::TagMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, f.sealed.tag);
            assert_eq!(actual, old_tag);
        }
        other => panic!("expected a tag mismatch, got {other}"),
    }
}

#[test]
fn rollback_of_a_single_file_is_refused() {
    let f = fixture();
    let old = f.dir.join("old");
    seal_with_key(&f.src, &old, &regions(), &opts(), &f.sealed.key).unwrap();
    // Put the old volume's sealed files in place of the current ones, under
    // the current names.
    let cur = all_files(&f.vol.join(DATA_DIR));
    let prev = all_files(&old.join(DATA_DIR));
    for (c, _) in cur.iter().zip(&prev) {
        let size = fs::metadata(c).unwrap().len();
        if let Some(p) = prev.iter().find(|p| fs::metadata(p).unwrap().len() == size) {
            fs::copy(p, c).unwrap();
        }
    }
    let err = f.open_fails("sealed files replaced by an earlier seal's");
    assert!(matches!(err, FsError::FileFormat { .. }), "{err}");
}

#[test]
fn wrong_key_wrong_tag_and_recomputed_tag() {
    let f = fixture();
    let other = VolumeKey::generate().unwrap();
    let err = open(&f.vol, &f.dir.join("o1"), &other, &f.sealed.tag).unwrap_err();
    assert!(matches!(err, FsError::ManifestAuth { .. }), "{err}");
    let tag = VolumeTag([7; 32]);
    let err = open(&f.vol, &f.dir.join("o2"), &f.sealed.key, &tag).unwrap_err();
    assert!(matches!(err, FsError::TagMismatch { .. }), "{err}");
    assert!(!f.dir.join("o1").exists() && !f.dir.join("o2").exists());

    // Even a host that could make the tag match (it cannot: the CAS holds
    // it) does not get a modified manifest past the key.
    let mp = f.vol.join(MANIFEST_FILE);
    let orig = fs::read(&mp).unwrap();
    for i in [0usize, 8, 10, 12, 27, 28, orig.len() / 2, orig.len() - 1] {
        let mut bad = orig.clone();
        bad[i] ^= 0x40;
        fs::write(&mp, &bad).unwrap();
        let t = VolumeTag(ring_sha256(&bad));
        let err = open(&f.vol, &f.dir.join("o3"), &f.sealed.key, &t).unwrap_err();
        assert!(
            matches!(
                err,
                FsError::ManifestAuth { .. } | FsError::ManifestFormat { .. }
            ),
            "byte {i}: {err}"
        );
    }
    fs::write(&mp, &orig[..20]).unwrap();
    let t = VolumeTag(ring_sha256(&orig[..20]));
    let err = open(&f.vol, &f.dir.join("o4"), &f.sealed.key, &t).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

fn ring_sha256(b: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut o = [0u8; 32];
    o.copy_from_slice(d.as_ref());
    o
}

#[test]
fn reader_names_the_tampered_chunk_and_other_chunks_still_read() {
    let f = fixture();
    let a = f.blob_of("bin/tool");
    let mut bytes = fs::read(&a).unwrap();
    let slot = CS as usize + 16;
    bytes[40 + slot + 3] ^= 0x20; // chunk 1
    fs::write(&a, &bytes).unwrap();
    let v = Volume::open(&f.vol, &f.sealed.key, &f.sealed.tag).unwrap();
    let mut r = v.reader("bin/tool").unwrap();
    use std::io::{Read, Seek, SeekFrom};
    let mut first = [0u8; 16];
    r.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"#!/bin/sh\necho a");
    let err = r.read(&mut first).unwrap_err();
    let inner = err.get_ref().unwrap().downcast_ref::<FsError>().unwrap();
    assert!(
        matches!(inner, FsError::ChunkAuth { chunk: 1, .. }),
        "{inner}"
    );
    assert!(inner.to_string().contains("bin/tool"));
    r.seek(SeekFrom::Start(32)).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    let want = fs::read(f.src.join("bin/tool")).unwrap();
    assert_eq!(rest, &want[32..]);
}

#[test]
fn plain_files_are_unprotected_by_design_but_cannot_be_added() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    let vol = t.path().join("vol");
    let s = seal(&src, &vol, &Regions::new(), &opts()).unwrap();
    let blob = all_files(&vol.join(DATA_DIR)).pop().unwrap();
    assert_eq!(fs::read(&blob).unwrap(), b"127.0.0.1 localhost\n");
    fs::write(&blob, b"10.0.0.1 changed-by-host\n").unwrap();
    // A host-added file in data/ is not part of the volume.
    fs::write(
        vol.join(DATA_DIR).join("00112233445566778899aabbccddeeff"),
        b"x",
    )
    .unwrap();
    let out = t.path().join("out");
    open(&vol, &out, &s.key, &s.tag).unwrap();
    assert_eq!(
        fs::read(out.join("etc/hosts")).unwrap(),
        b"10.0.0.1 changed-by-host\n"
    );
    assert_eq!(all_files(&out).len(), 1);
}

#[test]
fn destination_must_be_empty() {
    let f = fixture();
    let out = f.dir.join("busy");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("keep"), b"mine").unwrap();
    let err = open(&f.vol, &out, &f.sealed.key, &f.sealed.tag).unwrap_err();
    assert!(matches!(err, FsError::DestinationNotEmpty { .. }), "{err}");
    assert_eq!(fs::read(out.join("keep")).unwrap(), b"mine");
    let err = seal(&f.src, &out, &regions(), &opts()).unwrap_err();
    assert!(matches!(err, FsError::DestinationNotEmpty { .. }), "{err}");
    // An existing empty directory is fine, and a failed open empties it again.
    let empty = f.dir.join("empty");
    fs::create_dir(&empty).unwrap();
    let tool = f.blob_of("bin/tool");
    let mut b = fs::read(&tool).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    fs::write(&tool, &b).unwrap();
    open(&f.vol, &empty, &f.sealed.key, &f.sealed.tag).unwrap_err();
    assert!(empty.is_dir());
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}
