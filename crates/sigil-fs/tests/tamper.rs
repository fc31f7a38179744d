//! Tamper tests: every kind of change a host can make to a sealed volume
//! must make `open` and `verify` fail, naming the place, and leave no
//! plaintext behind.

use std::fs;
use std::ops::Range;
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
    /// The blob holding a volume path and the range of its sealed bytes
    /// (small files share packs).
    fn range_of(&self, path: &str) -> (PathBuf, Range<usize>) {
        let (blob, r) = Volume::open(&self.vol, &self.sealed.key, &self.sealed.tag)
            .unwrap()
            .data_range(path)
            .unwrap();
        (blob, r.start as usize..r.end as usize)
    }

    /// The sealed bytes of a volume path.
    fn sealed_bytes(&self, path: &str) -> Vec<u8> {
        let (blob, r) = self.range_of(path);
        fs::read(blob).unwrap()[r].to_vec()
    }
}

/// Replaces `range` of the file at `blob` with `bytes` (any length).
fn splice(blob: &Path, range: Range<usize>, bytes: &[u8]) {
    let mut all = fs::read(blob).unwrap();
    all.splice(range, bytes.iter().copied());
    fs::write(blob, all).unwrap();
}

impl Fixture {
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

/// Where each sealed file is: blob, range, volume path.
fn blob_names(f: &Fixture) -> Vec<(PathBuf, Range<usize>, &'static str)> {
    ["app/a.key", "app/b.key", "app/sub/empty", "bin/tool"]
        .into_iter()
        .map(|p| {
            let (b, r) = f.range_of(p);
            (b, r, p)
        })
        .collect()
}

#[test]
fn every_flipped_byte_is_detected_and_named() {
    let f = fixture();
    let blobs = blob_names(&f);
    let files = all_files(&f.vol);
    // The four small files are packed (one pack per worker at most).
    assert!(
        (2..=3).contains(&files.len()),
        "manifest + 1 or 2 packs: {files:?}"
    );
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
            let (_, r, vpath) = blobs
                .iter()
                .find(|(b, r, _)| b == file && r.contains(&i))
                .unwrap();
            let msg = err.to_string();
            assert!(
                msg.contains(vpath),
                "{what}: error does not name {vpath}: {msg}"
            );
            let i = i - r.start;
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
    let (a, ra) = f.range_of("app/a.key");
    let (b, rb) = f.range_of("app/b.key");
    let (da, db) = (f.sealed_bytes("app/a.key"), f.sealed_bytes("app/b.key"));
    assert_eq!(da.len(), db.len());
    splice(&a, ra.clone(), &db);
    splice(&b, rb.clone(), &da);
    let err = f.open_fails("two files swapped");
    assert!(matches!(err, FsError::FileFormat { .. }), "{err}");
    assert!(err.to_string().contains("swapped or replaced"), "{err}");

    // A smarter host also patches the file id in the header: the key and
    // the path binding still differ, so chunk 0 fails.
    let mut patched = db.clone();
    patched[16..32].copy_from_slice(&da[16..32]);
    splice(&a, ra, &patched);
    splice(&b, rb, &db);
    let err = f.open_fails("file replaced by another with a patched header");
    assert!(matches!(err, FsError::ChunkAuth { chunk: 0, .. }), "{err}");
    assert!(err.to_string().contains("app/a.key"), "{err}");
}

#[test]
fn swapped_chunks_are_detected() {
    let f = fixture();
    let (a, ra) = f.range_of("app/a.key");
    let orig = f.sealed_bytes("app/a.key");
    let slot = CS as usize + 16;
    let mut bad = orig.clone();
    // Chunks 0 and 1 are full chunks of the same length.
    bad[40..40 + slot].copy_from_slice(&orig[40 + slot..40 + 2 * slot]);
    bad[40 + slot..40 + 2 * slot].copy_from_slice(&orig[40..40 + slot]);
    splice(&a, ra, &bad);
    let err = f.open_fails("two chunks swapped");
    assert!(matches!(err, FsError::ChunkAuth { chunk: 0, .. }), "{err}");
}

#[test]
fn truncation_and_appending_are_detected() {
    let f = fixture();
    let (a, ra) = f.range_of("bin/tool");
    let pack = fs::read(&a).unwrap();
    let orig = f.sealed_bytes("bin/tool");
    let slot = CS as usize + 16;
    let restore = || fs::write(&a, &pack).unwrap();

    // Drop the last chunk of the file inside its pack.
    splice(
        &a,
        ra.clone(),
        &orig[..orig.len() - (orig.len() - 40) % slot],
    );
    let err = f.open_fails("last chunk dropped");
    assert!(err.to_string().contains("truncated or appended"), "{err}");
    restore();

    // Drop the last chunk and patch the header's size to match.
    let keep = 40 + 2 * slot;
    let mut cut = orig[..keep].to_vec();
    cut[32..40].copy_from_slice(&(2 * CS as u64).to_le_bytes());
    splice(&a, ra.clone(), &cut);
    let err = f.open_fails("truncated with a consistent header");
    assert!(matches!(err, FsError::FileFormat { .. }), "{err}");
    restore();

    // Insert a copy of a chunk after the file's last one.
    splice(&a, ra.end..ra.end, &orig[40..40 + slot]);
    let err = f.open_fails("chunk inserted");
    assert!(err.to_string().contains("truncated or appended"), "{err}");
    restore();

    // Append to the pack, or cut its end.
    let mut long = pack.clone();
    long.extend_from_slice(&orig[40..40 + slot]);
    fs::write(&a, &long).unwrap();
    let err = f.open_fails("bytes appended to the pack");
    assert!(err.to_string().contains("truncated or appended"), "{err}");
    fs::write(&a, &pack[..pack.len() - 1]).unwrap();
    let err = f.open_fails("pack truncated by one byte");
    assert!(err.to_string().contains("truncated or appended"), "{err}");
    restore();

    // Remove the pack altogether: the error names a file of it.
    let in_pack: Vec<_> = blob_names(&f)
        .into_iter()
        .filter(|(b, _, _)| *b == a)
        .map(|(_, _, p)| p)
        .collect();
    fs::remove_file(&a).unwrap();
    let err = f.open_fails("sealed file removed");
    let msg = err.to_string();
    assert!(in_pack.iter().any(|p| msg.contains(p)), "{msg}");
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
    // Put the old volume's sealed bytes of a file in place of the current
    // ones (same length, same place in the pack).
    let (ob, or) = Volume::open(&old, &f.sealed.key, &{
        let tag = fs::read(old.join(MANIFEST_FILE)).unwrap();
        VolumeTag(ring_sha256(&tag))
    })
    .unwrap()
    .data_range("bin/tool")
    .unwrap();
    let prev = fs::read(ob).unwrap()[or.start as usize..or.end as usize].to_vec();
    let (cur, cr) = f.range_of("bin/tool");
    assert_eq!(prev.len(), cr.len());
    splice(&cur, cr, &prev);
    let err = f.open_fails("a sealed file replaced by an earlier seal's");
    assert!(matches!(err, FsError::FileFormat { .. }), "{err}");
    assert!(err.to_string().contains("bin/tool"), "{err}");
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
    let (a, ra) = f.range_of("bin/tool");
    let mut bytes = fs::read(&a).unwrap();
    let slot = CS as usize + 16;
    bytes[ra.start + 40 + slot + 3] ^= 0x20; // chunk 1
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
    let (tool, r) = f.range_of("bin/tool");
    let mut b = fs::read(&tool).unwrap();
    b[r.end - 1] ^= 1;
    fs::write(&tool, &b).unwrap();
    open(&f.vol, &empty, &f.sealed.key, &f.sealed.tag).unwrap_err();
    assert!(empty.is_dir());
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

/// A volume with more small files than fit in one pack: ranges moved
/// between packs, swapped inside a pack, or a whole pack replaced by
/// another are refused; a file stored alone next to them still reads.
#[test]
fn packs_refuse_moved_ranges_across_and_inside_packs() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    // 600 x 60,000 bytes = 36 MB of small files: more than one pack of
    // 32 MiB, whatever the threads do.
    for i in 0..600u32 {
        let body: Vec<u8> = (0..60_000u32).map(|j| (i * 7 + j) as u8).collect();
        fs::write(src.join(format!("d/f{i:03}")), body).unwrap();
    }
    let big: Vec<u8> = (0..200_000u32).map(|j| (j % 251) as u8).collect();
    fs::write(src.join("big"), &big).unwrap();
    let vol = t.path().join("vol");
    let opts = SealOptions {
        chunk_size: 4096,
        threads: Some(2),
    };
    let s = seal(&src, &vol, &Regions::with_default(Region::Encrypted), &opts).unwrap();
    let v = Volume::open(&vol, &s.key, &s.tag).unwrap();
    let loc = |p: &str| {
        let (b, r) = v.data_range(p).unwrap();
        (b, r.start as usize..r.end as usize)
    };
    let (big_blob, big_range) = loc("big");
    assert_eq!(big_range.start, 0, "a large file is stored alone");
    assert_eq!(
        fs::metadata(&big_blob).unwrap().len() as usize,
        big_range.end
    );
    let mut by_pack: std::collections::BTreeMap<PathBuf, Vec<String>> = Default::default();
    for i in 0..600 {
        let p = format!("d/f{i:03}");
        by_pack.entry(loc(&p).0).or_default().push(p);
    }
    assert!(by_pack.len() >= 2, "expected at least two packs");
    let mut packs = by_pack.values();
    let (x, y) = (
        packs.next().unwrap()[0].clone(),
        packs.next().unwrap()[0].clone(),
    );
    let (same1, same2) = {
        let v = by_pack.values().next().unwrap();
        (v[0].clone(), v[1].clone())
    };
    let refused = |what: &str, names: &[&str]| {
        let err = verify(&vol, &s.key, &s.tag).expect_err(what);
        let msg = err.to_string();
        assert!(names.iter().any(|n| msg.contains(n)), "{what}: {msg}");
        let out = t.path().join("out");
        open(&vol, &out, &s.key, &s.tag).expect_err(what);
        assert!(!out.exists(), "{what}: plaintext left behind");
        // The reader refuses when opening the file (header) or reading it.
        if let Ok(mut r) = v.reader(names[0]) {
            let mut buf = Vec::new();
            use std::io::Read;
            assert!(r.read_to_end(&mut buf).is_err(), "{what}: reader accepted");
        }
    };
    for (p, q, what) in [
        (&x, &y, "two files of different packs swapped"),
        (&same1, &same2, "two files of one pack swapped"),
    ] {
        let ((bp, rp), (bq, rq)) = (loc(p), loc(q));
        let (orig_p, orig_q) = (fs::read(&bp).unwrap(), fs::read(&bq).unwrap());
        let dp = orig_p[rp.clone()].to_vec();
        let dq = orig_q[rq.clone()].to_vec();
        assert_eq!(dp.len(), dq.len());
        splice(&bp, rp, &dq);
        splice(&bq, rq, &dp);
        refused(what, &[p, q]);
        fs::write(&bp, &orig_p).unwrap();
        fs::write(&bq, &orig_q).unwrap();
    }
    // A whole pack replaced by another (cut to the same length).
    let (bx, _) = loc(&x);
    let (by, _) = loc(&y);
    let (ox, oy) = (fs::read(&bx).unwrap(), fs::read(&by).unwrap());
    let mut fake = oy.clone();
    fake.resize(ox.len(), 0);
    fs::write(&bx, &fake).unwrap();
    refused("a pack replaced by another", &[x.as_str()]);
    fs::write(&bx, &ox).unwrap();
    // Untouched, everything opens; the reader reaches any chunk of a
    // packed file and of the large one.
    verify(&vol, &s.key, &s.tag).unwrap();
    use std::io::{Read, Seek, SeekFrom};
    let mut r = v.reader("d/f123").unwrap();
    r.seek(SeekFrom::Start(3 * 4096 + 5)).unwrap();
    let mut b = [0u8; 10];
    r.read_exact(&mut b).unwrap();
    let want: Vec<u8> = (0..60_000u32).map(|j| (123 * 7 + j) as u8).collect();
    assert_eq!(&b[..], &want[3 * 4096 + 5..3 * 4096 + 15]);
    let mut r = v.reader("big").unwrap();
    r.seek(SeekFrom::Start(150_000)).unwrap();
    r.read_exact(&mut b).unwrap();
    assert_eq!(&b[..], &big[150_000..150_010]);
}
