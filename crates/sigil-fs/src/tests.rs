//! In-crate tests that need to forge *authenticated* hostile manifests
//! (a compromised sealer, or a bug): the opener must still refuse them
//! instead of writing outside its destination.

use std::fs;
use std::path::Path;

use crate::format::{Manifest, RawEntry, RawKind, MAX_ENTRIES};
use crate::{crypto, open, verify, FsError, Region, VolumeKey, VolumeTag, DATA_DIR, MANIFEST_FILE};

fn dir(path: &str) -> RawEntry {
    RawEntry {
        path: path.as_bytes().to_vec(),
        mode: 0o755,
        kind: RawKind::Dir,
    }
}

fn link(path: &str, target: &str) -> RawEntry {
    RawEntry {
        path: path.as_bytes().to_vec(),
        mode: 0,
        kind: RawKind::Symlink {
            target: target.as_bytes().to_vec(),
        },
    }
}

fn plain_file(path: &str, id: u8) -> RawEntry {
    plain_at(path, id, id, 0)
}

/// A plain file in blob `blob` at `offset` (only offset 0 of its own blob
/// is valid).
fn plain_at(path: &str, id: u8, blob: u8, offset: u64) -> RawEntry {
    RawEntry {
        path: path.as_bytes().to_vec(),
        mode: 0o644,
        kind: RawKind::File {
            region: Region::Plain,
            size: 1,
            file_id: [id; 16],
            digest: [0; 32],
            blob: [blob; 16],
            offset,
        },
    }
}

/// An encrypted file of `size` bytes (one chunk of 4096 at most: sealed
/// length 56 + size) at `offset` of blob `blob`.
fn sealed_file(path: &str, id: u8, blob: u8, offset: u64, size: u64) -> RawEntry {
    RawEntry {
        path: path.as_bytes().to_vec(),
        mode: 0o644,
        kind: RawKind::File {
            region: Region::Encrypted,
            size,
            file_id: [id; 16],
            digest: [0; 32],
            blob: [blob; 16],
            offset,
        },
    }
}

/// Writes a volume whose manifest is exactly `plain` (sealed under `key`),
/// with a plain data file for every id 1..=4; returns its tag.
fn forge(vol: &Path, key: &VolumeKey, plain: Vec<u8>) -> VolumeTag {
    fs::create_dir_all(vol.join(DATA_DIR)).unwrap();
    for id in 1u8..=4 {
        fs::write(vol.join(DATA_DIR).join(hex::encode([id; 16])), b"X").unwrap();
    }
    let sealed = crypto::seal_manifest(key, [9; 16], plain).unwrap();
    fs::write(vol.join(MANIFEST_FILE), &sealed).unwrap();
    VolumeTag(crypto::sha256(&sealed))
}

fn encode_unchecked(entries: Vec<RawEntry>) -> Vec<u8> {
    Manifest {
        chunk_size: 4096,
        entries,
    }
    .encode()
}

#[test]
fn authenticated_but_hostile_manifests_are_refused() {
    let cases: Vec<(&str, Vec<RawEntry>, &str)> = vec![
        ("dotdot", vec![plain_file("../escape", 1)], "'..'"),
        ("absolute", vec![plain_file("/tmp/escape", 1)], "absolute"),
        (
            "through a symlink",
            vec![link("a", "/tmp"), plain_file("a/escape", 1)],
            "parent is not a directory",
        ),
        (
            "through a file",
            vec![plain_file("a", 1), plain_file("a/b", 2)],
            "parent is not a directory",
        ),
        (
            "missing parent",
            vec![plain_file("x/y", 1)],
            "parent is not a directory",
        ),
        ("duplicate", vec![dir("a"), dir("a")], "strictly increasing"),
        ("unsorted", vec![dir("b"), dir("a")], "strictly increasing"),
        (
            "forward hard link",
            vec![
                RawEntry {
                    path: b"a".to_vec(),
                    mode: 0,
                    kind: RawKind::HardLink { target: 1 },
                },
                plain_file("b", 1),
            ],
            "hard link",
        ),
        (
            "hard link to a directory",
            vec![
                dir("a"),
                RawEntry {
                    path: b"b".to_vec(),
                    mode: 0,
                    kind: RawKind::HardLink { target: 0 },
                },
            ],
            "hard link",
        ),
        (
            "shared file id",
            vec![plain_file("a", 1), plain_file("b", 1)],
            "file id used twice",
        ),
        (
            "mode bits",
            vec![RawEntry {
                mode: 0o170000,
                ..dir("a")
            }],
            "mode",
        ),
        (
            "empty component",
            vec![plain_file("a//b", 1)],
            "empty path component",
        ),
        ("NUL", vec![plain_file("a\0b", 1)], "NUL"),
        ("empty symlink", vec![link("l", "")], "symlink"),
        (
            "gap in a pack",
            vec![sealed_file("a", 1, 9, 0, 4), sealed_file("b", 2, 9, 61, 4)],
            "starts at offset 61, expected 60",
        ),
        (
            "overlap in a pack",
            vec![sealed_file("a", 1, 9, 0, 4), sealed_file("b", 2, 9, 59, 4)],
            "starts at offset 59, expected 60",
        ),
        (
            "same range twice",
            vec![sealed_file("a", 1, 9, 0, 4), sealed_file("b", 2, 9, 0, 4)],
            "starts at offset 0, expected 60",
        ),
        (
            "pack not starting at 0",
            vec![sealed_file("a", 1, 9, 60, 4)],
            "starts at offset 60, expected 0",
        ),
        (
            "range overflow",
            vec![sealed_file("a", 1, 9, u64::MAX - 10, 4)],
            "overflows",
        ),
        (
            "plain file at an offset",
            vec![plain_at("a", 1, 1, 5)],
            "plain file not at offset 0",
        ),
        (
            "plain file sharing a pack",
            vec![sealed_file("a", 1, 9, 0, 4), plain_at("b", 2, 9, 0)],
            "plain file",
        ),
    ];
    let t = tempfile::tempdir().unwrap();
    let key = VolumeKey::generate().unwrap();
    for (i, (name, entries, want)) in cases.into_iter().enumerate() {
        let vol = t.path().join(format!("vol{i}"));
        let tag = forge(&vol, &key, encode_unchecked(entries));
        let out = t.path().join(format!("box{i}/out"));
        let err = open(&vol, &out, &key, &tag).unwrap_err();
        assert!(
            matches!(err, FsError::ManifestFormat { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(want), "{name}: {err}");
        assert!(!out.exists(), "{name}: destination created");
        assert!(!t.path().join(format!("box{i}/escape")).exists());
        assert!(verify(&vol, &key, &tag).is_err());
    }
}

#[test]
fn a_version_1_volume_is_refused_with_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let key = VolumeKey::generate().unwrap();
    let vol = t.path().join("vol");
    let tag = forge(&vol, &key, encode_unchecked(vec![dir("a")]));
    let mp = vol.join(MANIFEST_FILE);
    let mut sealed = fs::read(&mp).unwrap();
    assert_eq!(sealed[8], 2);
    assert!(open(&vol, &t.path().join("o0"), &key, &tag).is_ok());
    sealed[8] = 1;
    fs::write(&mp, &sealed).unwrap();
    let tag = VolumeTag(crypto::sha256(&sealed));
    let err = verify(&vol, &key, &tag).unwrap_err();
    assert!(matches!(err, FsError::ManifestFormat { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("volume format version 1: reseal with this version"),
        "{err}"
    );
}

#[test]
fn forged_but_valid_manifest_opens() {
    // The forging helper itself is sound: a valid forged volume opens.
    let t = tempfile::tempdir().unwrap();
    let key = VolumeKey::generate().unwrap();
    let vol = t.path().join("vol");
    let tag = forge(
        &vol,
        &key,
        encode_unchecked(vec![
            dir("a"),
            plain_file("a/b", 1),
            link("a/l", "../../etc"),
        ]),
    );
    let out = t.path().join("out");
    open(&vol, &out, &key, &tag).unwrap();
    assert_eq!(fs::read(out.join("a/b")).unwrap(), b"X");
    assert_eq!(
        fs::read_link(out.join("a/l")).unwrap(),
        Path::new("../../etc")
    );
}

#[test]
fn manifest_decoder_survives_every_truncation_and_flip() {
    let m = Manifest {
        chunk_size: 4096,
        entries: vec![
            dir("a"),
            plain_file("a/f", 1),
            link("a/l", "f"),
            RawEntry {
                path: b"a/h".to_vec(),
                mode: 0,
                kind: RawKind::HardLink { target: 1 },
            },
        ],
    };
    // `a/h` sorts before `a/l`: fix the order first.
    let mut m = m;
    m.entries.sort_by(|x, y| x.path.cmp(&y.path));
    if let RawKind::HardLink { target } = &mut m.entries[2].kind {
        *target = 1;
    }
    let bytes = m.encode();
    assert_eq!(Manifest::decode(&bytes).unwrap(), m);
    for n in 0..bytes.len() {
        assert!(Manifest::decode(&bytes[..n]).is_err(), "truncated to {n}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Manifest::decode(&longer).unwrap_err().contains("trailing"));
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let _ = Manifest::decode(&b);
        }
    }
    // A huge entry count is refused before allocating.
    let mut huge = bytes.clone();
    huge[5..9].copy_from_slice(&((MAX_ENTRIES as u32) + 1).to_le_bytes());
    assert!(Manifest::decode(&huge).unwrap_err().contains("entries"));
    huge[5..9].copy_from_slice(&(MAX_ENTRIES as u32).to_le_bytes());
    assert!(Manifest::decode(&huge).is_err());
}

#[test]
fn file_header_decoder_names_the_bad_field() {
    use crate::format::FileHeader;
    let h = FileHeader {
        region: Region::Encrypted,
        chunk_size: 65536,
        file_id: [3; 16],
        size: 5 << 32,
    };
    let b = h.encode();
    assert_eq!(FileHeader::decode(&b).unwrap(), h);
    let cases: [(usize, u8, &str); 5] = [
        (0, b'X', "magic"),
        (8, 2, "version"),
        (9, 3, "region"),
        (10, 1, "reserved"),
        (15, 0xff, "chunk size"),
    ];
    for (i, v, want) in cases {
        let mut bad = b;
        bad[i] = v;
        let e = FileHeader::decode(&bad).unwrap_err();
        assert!(e.contains(want), "byte {i}: {e}");
    }
    assert!(FileHeader::decode(&b[..39])
        .unwrap_err()
        .contains("truncated"));
    // A size that would need more than 2^32 chunks.
    let mut bad = b;
    bad[12..16].copy_from_slice(&16u32.to_le_bytes());
    bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(FileHeader::decode(&bad).unwrap_err().contains("chunks"));
}

#[test]
fn key_and_tag_parsing_and_redaction() {
    let k = VolumeKey::generate().unwrap();
    let hexed = k.to_hex();
    assert_eq!(
        VolumeKey::from_hex(&hexed).unwrap().as_bytes(),
        k.as_bytes()
    );
    assert_eq!(format!("{k:?}"), "VolumeKey(<redacted>)");
    let bad = format!("{}zz", &hexed[..62]);
    let e = VolumeKey::from_hex(&bad).unwrap_err().to_string();
    assert!(!e.contains(&hexed[..62]), "{e}");
    assert!(VolumeKey::from_hex("abcd").is_err());
    let t = VolumeTag([0xab; 32]);
    let s = t.to_string();
    assert_eq!(s.len(), 64);
    assert_eq!(s.parse::<VolumeTag>().unwrap(), t);
    assert!("xyz".parse::<VolumeTag>().is_err());
    assert!(format!("{t:?}").contains(&s));
}
