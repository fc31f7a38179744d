//! Property: for random trees, chunk sizes and region rules, `open(seal(t))`
//! reproduces `t` exactly (content, modes, symlinks, hard links, names that
//! are not UTF-8), `verify` accepts it and every file reads back through
//! `Volume::reader` from a random offset.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sigil_fs::*;

#[derive(Debug, Clone)]
enum Kind {
    Dir(u32),
    File { len: usize, seed: u8, mode: u32 },
    Symlink(Vec<u8>),
    HardLink(usize),
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"a".to_vec()),
        Just(b"b".to_vec()),
        Just(b"app".to_vec()),
        Just(b"usr".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(b"with space".to_vec()),
        Just(b".hidden".to_vec()),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        prop::sample::select(vec![0o700u32, 0o750, 0o755]).prop_map(Kind::Dir),
        (
            0usize..5000,
            any::<u8>(),
            prop::sample::select(vec![0o600u32, 0o644, 0o755, 0o400, 0o4711])
        )
            .prop_map(|(len, seed, mode)| Kind::File { len, seed, mode }),
        prop::collection::vec(prop::sample::select(b"ab/.\xff".to_vec()), 1..12)
            .prop_map(Kind::Symlink),
        (0usize..8).prop_map(Kind::HardLink),
    ]
}

fn region() -> impl Strategy<Value = Region> {
    prop::sample::select(vec![
        Region::Encrypted,
        Region::Authenticated,
        Region::Plain,
    ])
}

/// Builds the tree; entries whose parent is not a directory (or that
/// already exist) are skipped. Returns the number of entries created.
fn build(root: &Path, spec: &[(Vec<Vec<u8>>, Kind)]) -> usize {
    fs::create_dir_all(root).unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut made = 0;
    for (comps, kind) in spec {
        let mut p = root.to_path_buf();
        for c in comps {
            p.push(OsStr::from_bytes(c));
        }
        let parent = p.parent().unwrap();
        match fs::symlink_metadata(parent) {
            Ok(m) if m.is_dir() => {}
            _ => continue,
        }
        if fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        match kind {
            Kind::Dir(mode) => {
                fs::create_dir(&p).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Kind::File { len, seed, mode } => {
                let data: Vec<u8> = (0..*len)
                    .map(|i| (i as u8).wrapping_mul(13) ^ seed)
                    .collect();
                fs::write(&p, data).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
                files.push(p.clone());
            }
            Kind::Symlink(t) => std::os::unix::fs::symlink(OsStr::from_bytes(t), &p).unwrap(),
            Kind::HardLink(i) => {
                if files.is_empty() {
                    continue;
                }
                fs::hard_link(&files[i % files.len()], &p).unwrap();
            }
        }
        made += 1;
    }
    made
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn seal_open_round_trip(
        spec in prop::collection::vec((prop::collection::vec(name(), 1..4), kind()), 0..16),
        chunk_size in prop::sample::select(vec![16u32, 17, 100, 1000, 4096, 65536]),
        default in region(),
        rules in prop::collection::vec((prop::collection::vec(name(), 0..3), region()), 0..4),
        offset_frac in 0.0f64..1.0,
    ) {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        build(&src, &spec);
        let mut regions = Regions::with_default(default);
        for (comps, r) in &rules {
            let p: PathBuf = comps.iter().map(|c| OsStr::from_bytes(c)).collect();
            regions = regions.rule(p, *r);
        }
        let vol = t.path().join("vol");
        let out = t.path().join("out");
        let opts = SealOptions { chunk_size, threads: Some(2) };
        let sealed = seal(&src, &vol, &regions, &opts).unwrap();
        open(&vol, &out, &sealed.key, &sealed.tag).unwrap();
        prop_assert_eq!(common::snapshot(&src), common::snapshot(&out));
        verify(&vol, &sealed.key, &sealed.tag).unwrap();

        let v = Volume::open(&vol, &sealed.key, &sealed.tag).unwrap();
        for e in v.entries() {
            let want_region = regions.region_of(&e.path);
            match &e.kind {
                EntryKind::File { size, region } => {
                    // Hard-linked files take the strongest region of their
                    // names, so it is never weaker than the rule's.
                    let strength = |r: &Region| match r {
                        Region::Encrypted => 2,
                        Region::Authenticated => 1,
                        Region::Plain => 0,
                    };
                    prop_assert!(strength(region) >= strength(&want_region));
                    let want = fs::read(src.join(&e.path)).unwrap();
                    prop_assert_eq!(*size, want.len() as u64);
                    let mut r = v.reader(&e.path).unwrap();
                    let off = (want.len() as f64 * offset_frac) as u64;
                    r.seek(SeekFrom::Start(off)).unwrap();
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).unwrap();
                    prop_assert_eq!(&got[..], &want[off as usize..]);
                }
                EntryKind::Symlink { target } => {
                    prop_assert_eq!(&fs::read_link(src.join(&e.path)).unwrap(), target);
                }
                _ => {}
            }
        }
    }
}
